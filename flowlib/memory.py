"""Backpropagation without stored activations: a stack of invertible steps whose memory stays flat in depth.

Ordinary autograd keeps, for every step f_k of a stack z = f_K o ... o f_1 (x), the tensors its backward pass needs:
the step's input and everything its network computed. Memory grows linearly with the depth K. An invertible stack
does not need them: in the backward pass, each step's input can be recomputed from its output by the inverse,

    x_{k-1} = f_k^{-1}(x_k),     k = K, ..., 1      (x_K = z, the only tensor kept from the forward pass)

and the step's vector-Jacobian product is then taken by running f_k once more, with gradients on, from x_{k-1}:

    (dL/dx_{k-1}, dL/dtheta_k) = VJP of  x_{k-1}, theta_k -> (x_k, logdet_k)  with  (dL/dx_k, dL/dlogdet)

(the total log-det is a sum, so every step's log-det receives the same upstream gradient dL/dlogdet). At any moment
only one step's activations are alive: the memory of a training step no longer grows with K (Gomez et al. 2017,
"The reversible residual network", did this for residual blocks; here it is done for flows, log-dets included).

``MemorySavingCompose`` is a ``Compose`` (same sub-modules, so the same ``state_dict`` keys: a checkpoint saved with
one strategy loads into the other) with a ``strategy``:

    "invertible"   the above, a custom autograd.Function; memory O(1) in K; costs one inverse and one extra forward of
                   each step in the backward pass (a coupling's network runs once there, not twice: see below)
    "checkpoint"   plain gradient checkpointing (torch.utils.checkpoint): each step's INPUT is kept, its inner
                   activations recomputed; memory still grows with K, more slowly (what the public Glow code does)
    None           an ordinary Compose

Conditions. Each step must be a deterministic function (no dropout) whose inverse is accurate: the reconstructed
inputs carry the inverse's rounding error, which accumulates over depth (lesson 08 measures it in float32).
ActNorm's data-dependent initialisation needs the real activations, so while any step still has to initialise, the
batch first goes through an ordinary pass without gradients (which initialises), then through the memory-saving
one. Gradients reach parameters through the usual ``AccumulateGrad`` path, so optimizers, gradient clipping and
DistributedDataParallel's hooks see nothing different. Only the forward (density) direction saves memory; second
derivatives through it are not supported.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from flowlib.core import Compose, Flow, FlowInputError, FlowNumericalError

STRATEGIES = ("invertible", "checkpoint", None)


def check_strategy(strategy) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"memory strategy must be one of {STRATEGIES} (None = ordinary autograd), got {strategy!r}.")


def leaf_steps(flow: Flow) -> list[Flow]:
    """The flows of a (nested) Compose, flattened in the order forward applies them."""
    if isinstance(flow, Compose):
        return [leaf for f in flow.flows for leaf in leaf_steps(f)]
    return [flow]


def needs_initialisation(module: nn.Module) -> bool:
    """True if some sub-module still has a data-dependent initialisation to do (ActNorm before its first batch)."""
    return any(isinstance(getattr(m, "initialised", None), torch.Tensor) and not bool(m.initialised)
               for m in module.modules())


# ---- recomputing one step in the backward pass ---------------------------------------------------------------------
# A recompute function takes a step and its (detached) output y and returns (x, y_again, logdet, extra_grad):
# x is the reconstructed input (a leaf that requires grad), y_again and logdet are the step's outputs recomputed from
# x WITH a graph, and extra_grad (or None) is a gradient that reaches x directly besides the graph.
Recompute = Callable[[Flow, Tensor], tuple]
_RECOMPUTE: dict[type, Recompute] = {}


def register_recompute(cls: type, fn: Recompute) -> None:
    """Give a class of flows a cheaper way to rebuild its input and its graph than "inverse, then forward"."""
    _RECOMPUTE[cls] = fn


def _generic_recompute(step: Flow, y: Tensor):
    with torch.no_grad():
        x, _ = step.inverse(y)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y_again, logdet = step(x)
    return x, y_again, logdet


def _recompute(step: Flow, y: Tensor):
    for cls in type(step).__mro__:
        if cls in _RECOMPUTE:
            return _RECOMPUTE[cls](step, y)
    return _generic_recompute(step, y)


def _coupling_recompute(step, y: Tensor):
    """Glow's coupling: x_a = y_a exactly, so its network runs ONCE, with a graph, for both the reconstruction of
    x_b = (y_b - t) exp(-s) and the recomputed forward y_b = x_b exp(s) + t (instead of once in the inverse and once
    more in the forward)."""
    c = step.c_a
    x_a = y[:, :c].detach().requires_grad_(True)
    with torch.enable_grad():
        s, t = step._params(x_a)
    with torch.no_grad():
        x_b = (y[:, c:] - t) if s is None else (y[:, c:] - t) * (-s).exp()
    x_b = x_b.detach().requires_grad_(True)
    with torch.enable_grad():
        if s is None:
            y_b, logdet = x_b + t, None
        else:
            y_b, logdet = x_b * s.exp() + t, s.reshape(s.shape[0], -1).sum(1)
    return (x_a, x_b), y_b, logdet


def _register_defaults() -> None:
    from flowlib.bijections.glow import GlowCoupling

    register_recompute(GlowCoupling, _coupling_recompute)


_register_defaults()


def _unrebuildable(step: Flow, k: int, n: int, dtype) -> FlowNumericalError:
    return FlowNumericalError(
        f"backprop by the inverse (memory='invertible'): rebuilding the input of step {k + 1} of {n} "
        f"({type(step).__name__}) from its output overflowed {dtype} (non-finite values), so its gradient cannot be "
        f"computed. The step is too ill-conditioned to invert in this precision (e.g. a coupling with large scales). "
        f"Use memory='checkpoint' (it stores each segment's input instead of rebuilding it), compute in float64, or "
        f"keep the weights tamer (warm-up, a lower learning rate).")


class _InvertibleStack(torch.autograd.Function):
    """forward: run every step without a graph, keep only the output. backward: walk back step by step."""

    @staticmethod
    def forward(ctx, x: Tensor, steps: list[Flow], *params: Tensor):
        with torch.no_grad():
            z, logdet = x, x.new_zeros(x.shape[0])
            for f in steps:
                z, ld = f(z)
                logdet = logdet + ld
        if z._base is not None or z.data_ptr() == x.data_ptr():
            z = z.clone()  # the output must own its memory: it is the one tensor the backward pass starts from
        ctx.steps, ctx.params = steps, params
        ctx.save_for_backward(z)
        return z, logdet

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z: Tensor | None, grad_logdet: Tensor | None):
        (y,) = ctx.saved_tensors
        grad_y = torch.zeros_like(y) if grad_z is None else grad_z
        grad_ld = y.new_zeros(y.shape[0]) if grad_logdet is None else grad_logdet
        position = {id(p): i for i, p in enumerate(ctx.params)}
        grads: list[Tensor | None] = [None] * len(ctx.params)
        for k in range(len(ctx.steps) - 1, -1, -1):
            step = ctx.steps[k]
            try:
                x, y_again, logdet = _recompute(step, y.detach())
                rebuilt = torch.cat([v.detach() for v in x], 1) if isinstance(x, tuple) else x.detach()
                finite = bool(torch.isfinite(rebuilt).all())
            except (FlowInputError, FlowNumericalError) as e:  # an inverse met or made a non-finite value
                raise _unrebuildable(step, k, len(ctx.steps), y.dtype) from e
            if not finite:
                raise _unrebuildable(step, k, len(ctx.steps), y.dtype)
            own = [p for p in step.parameters() if p.requires_grad and id(p) in position]
            if isinstance(x, tuple):  # the coupling's split: (x_a, x_b), with y_a = x_a passed straight through
                x_a, x_b = x
                outputs, grad_outputs = [y_again], [grad_y[:, x_a.shape[1]:]]
                inputs = [x_a, x_b]
            else:
                outputs, grad_outputs, inputs = [y_again], [grad_y], [x]
            if logdet is not None and logdet.requires_grad:
                outputs.append(logdet)
                grad_outputs.append(grad_ld)
            found = torch.autograd.grad(outputs, inputs + own, grad_outputs, allow_unused=True)
            g_in = [torch.zeros_like(v) if g is None else g for v, g in zip(inputs, found[: len(inputs)])]
            if isinstance(x, tuple):
                grad_y = torch.cat([g_in[0] + grad_y[:, : x_a.shape[1]], g_in[1]], 1)
                y = torch.cat([x_a.detach(), x_b.detach()], 1)
            else:
                grad_y, y = g_in[0], x.detach()
            for p, g in zip(own, found[len(inputs):]):
                if g is not None:
                    i = position[id(p)]
                    grads[i] = g if grads[i] is None else grads[i] + g
            del x, y_again, logdet, found
        return (grad_y, None, *grads)


class MemorySavingCompose(Compose):
    """A ``Compose`` that trains without storing its steps' activations (``strategy="invertible"``), with gradient
    checkpointing (``"checkpoint"``), or as usual (``None``). Same maps, log-dets and ``state_dict`` as ``Compose``.

    Nested ``Compose`` steps (e.g. Glow's ActNorm -> 1x1 conv -> coupling) are flattened into their leaf flows: each
    leaf is one unit of recomputation.
    """

    def __init__(self, *flows: Flow, strategy: str | None = "invertible"):
        super().__init__(*flows)
        check_strategy(strategy)
        self.strategy = strategy

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.strategy is None or not torch.is_grad_enabled():
            return super()._forward(x)
        params = tuple(p for p in self.parameters() if p.requires_grad)
        if not params and not x.requires_grad:
            return super()._forward(x)
        if self.training and needs_initialisation(self):
            with torch.no_grad():  # ActNorm's data-dependent start needs the real activations: one plain pass
                super()._forward(x)
        steps = leaf_steps(self)
        if self.strategy == "checkpoint":
            logdet = x.new_zeros(x.shape[0])
            # no early stop: the Flow contract checks the outputs after the computation, so the recomputation must
            # run to the end of each step
            with set_checkpoint_early_stop(False):
                for f in steps:
                    x, ld = checkpoint(f._forward, x, use_reentrant=False)  # inner call: no contract checks
                    logdet = logdet + ld
            return x, logdet
        return _InvertibleStack.apply(x, steps, *params)

    def extra_repr(self) -> str:
        return f"strategy={self.strategy!r}"


def set_memory_strategy(module: nn.Module, strategy: str | None) -> int:
    """Set the strategy of every ``MemorySavingCompose`` inside ``module``; returns how many there were."""
    check_strategy(strategy)
    found = [m for m in module.modules() if isinstance(m, MemorySavingCompose)]
    if not found:
        raise ValueError(f"{type(module).__name__} contains no MemorySavingCompose: build it with a memory option, "
                         f"e.g. flowlib.builders.glow(..., memory='invertible').")
    for m in found:
        m.strategy = strategy
    return len(found)


def saved_bytes(model: nn.Module, x: Tensor) -> int:
    """The bytes autograd stores for the backward pass of one training loss ``-model.log_prob(x).mean()``.

    Every tensor autograd saves while the loss is computed passes through a saved-tensor hook
    (``torch.autograd.graph.saved_tensors_hooks``) that adds up ``numel * element_size``; then the loss is
    backpropagated (so the stored graph is used and freed, and ``model``'s parameters receive gradients, which
    accumulate like in any training step). A tensor saved by two operations is counted twice, and parameters that an
    operation keeps count too: the number is what the graph holds on to, an upper bound on the extra memory it
    takes. Activations that a strategy recomputes in the backward pass (gradient checkpointing, backprop by the
    inverse) are made after the hook is gone and are not counted: they are never held across the whole step.
    """
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = -model.log_prob(x).mean()
    loss.backward()
    return total
