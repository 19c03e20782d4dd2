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
                   each step in the backward pass (a coupling's network runs once there, not twice; ActNorm's and the
                   LU 1x1 convolution's backward steps are written out, without a graph: see below)
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

Speed (benchmarks/README.md, glow_memory). The recomputation runs each step as an inner flow call, without the Flow
contract's per-call checks; the stack checks each rebuilt input for non-finite values itself. On the CPU the first
training step calls ``keep_freed_memory()``: with glibc's default, the memory each step frees went back to the system
and was faulted in again by the next step, some 350,000 page faults per training step at K = 32.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from flowlib.core import Compose, Flow, FlowInputError, FlowNumericalError, _all_finite, _inside

STRATEGIES = ("invertible", "checkpoint", None)


def check_strategy(strategy) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"memory strategy must be one of {STRATEGIES} (None = ordinary autograd), got {strategy!r}.")


# ---- the allocator: keep the memory a step frees for the next one ---------------------------------------------------
AUTO_KEEP_FREED_MEMORY = True  # MemorySavingCompose("invertible") calls keep_freed_memory() once, on the CPU
_kept_freed_memory: bool | None = None  # None: not asked yet; else what keep_freed_memory() returned


def keep_freed_memory(mmap_threshold_mb: int = 64, trim_threshold_mb: int = 512) -> bool:
    """Ask the C library's allocator (glibc malloc, on Linux) to keep the memory freed during a training step for reuse,
    instead of handing it back to the system. Returns True if it was set, False where the C library is not glibc.

    Why. PyTorch's CPU tensors come from malloc. By default glibc serves large blocks by ``mmap`` and unmaps them when
    they are freed (above an adaptive threshold of at most 32 MB), and gives the free top of its heap back to the system
    once it exceeds twice that threshold. Backprop by the inverse keeps one step's activations at a time: in the forward
    pass without a graph and in the backward pass, each step allocates its tensors and frees them again, at the top of
    a small heap, so glibc returns the memory after every step and the next step takes it back: every page is faulted
    in and zeroed by the kernel again. For the benchmark's Glow at K = 32 steps per level (benchmarks/README.md,
    glow_memory) that was about 350,000 page faults per training step, some 0.6 s of CPU time at the 1.75 us a fault
    cost there. Ordinary autograd holds its activations until the backward pass, so its heap stays in place and it
    hardly faults.

    With this call, blocks up to ``mmap_threshold_mb`` come from the heap and up to ``trim_threshold_mb`` of free heap
    is kept: freed pages are reused, not faulted in again. The peak memory does not grow (what is kept was in use a
    moment before and is used again), but the process's resident size stays near its peak between steps instead of
    shrinking. The setting is process-wide and permanent (glibc has no call to restore its adaptive default).
    ``MemorySavingCompose`` with ``strategy="invertible"`` calls it once, the first time it trains on the CPU (set
    ``flowlib.memory.AUTO_KEEP_FREED_MEMORY = False`` before to prevent it); ``python -m benchmarks glow_memory`` calls
    it in the process of every configuration, ordinary autograd's included, so that all of them run on the same
    allocator.
    """
    global _kept_freed_memory
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _kept_freed_memory = False
        return False
    try:
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = (libc.mallopt(m_mmap_threshold, int(mmap_threshold_mb) * 2**20) == 1
              and libc.mallopt(m_trim_threshold, int(trim_threshold_mb) * 2**20) == 1)
    except (OSError, AttributeError):
        ok = False
    _kept_freed_memory = ok
    return ok


def leaf_steps(flow: Flow) -> list[Flow]:
    """The flows of a (nested) Compose, flattened in the order forward applies them."""
    if isinstance(flow, Compose):
        return [leaf for f in flow.flows for leaf in leaf_steps(f)]
    return [flow]


def needs_initialisation(module: nn.Module) -> bool:
    """True if some sub-module still has a data-dependent initialisation to do (ActNorm before its first batch)."""
    return any(isinstance(getattr(m, "initialised", None), torch.Tensor) and not bool(m.initialised)
               for m in module.modules())


# ---- one step of the backward pass ----------------------------------------------------------------------------------
# The backward pass walks the steps from the last to the first. For each step it needs, from the step's (detached)
# output y and the gradients reaching that output, dL/dy and dL/dlogdet (the latter the same for every step: the
# log-dets are summed), three things: the rebuilt input x, dL/dx, and dL/dtheta for the step's parameters. A class of
# flows can say how, in one of two ways:
#
# register_vjp(cls, fn)        fn(step, y, grad_y, grad_logdet) -> (x, grad_x, [(parameter, gradient or None), ...]),
#                              everything detached: the vector-Jacobian product written out (ActNorm and the LU 1x1
#                              convolution: a few tensor operations, no graph), or computed with autograd inside fn
#                              (Glow's coupling: its network's graph only). Gradients for parameters that do not
#                              require one are dropped by the caller.
# register_recompute(cls, fn)  fn(step, y) -> (x, y_again, logdet): x the rebuilt input, a leaf that requires grad;
#                              y_again and logdet (None: a constant log-det) the step's outputs recomputed from x WITH
#                              a graph, which the stack then differentiates with autograd.
#
# Any other flow gets the generic recompute: its inverse without a graph, then its forward with one. The functions run
# inside the backward pass as inner flow calls, so ``step._forward``/``step._inverse`` and ``step(x)`` alike run
# without the contract checks; the stack checks that each rebuilt input is finite.
Recompute = Callable[[Flow, Tensor], tuple]
Vjp = Callable[[Flow, Tensor, Tensor, Tensor], tuple]
_RECOMPUTE: dict[type, Recompute] = {}
_VJP: dict[type, Vjp] = {}


def register_recompute(cls: type, fn: Recompute) -> None:
    """Give a class of flows a cheaper way to rebuild its input and its graph than "inverse, then forward"."""
    _VJP.pop(cls, None)
    _RECOMPUTE[cls] = fn


def register_vjp(cls: type, fn: Vjp) -> None:
    """Give a class of flows its backward step directly: rebuilt input, input gradient and parameter gradients."""
    _RECOMPUTE.pop(cls, None)
    _VJP[cls] = fn


def _generic_recompute(step: Flow, y: Tensor):
    with torch.no_grad():
        x, _ = step.inverse(y)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y_again, logdet = step(x)
    return x, y_again, logdet


def _vjp_by_graph(recompute: Recompute | None, step: Flow, y: Tensor, grad_y: Tensor, grad_ld: Tensor):
    """A backward step from a recompute function (None: the generic one), differentiated by autograd."""
    x, y_again, logdet = (recompute or _generic_recompute)(step, y)
    params = [p for p in step.parameters() if p.requires_grad]
    outputs, grad_outputs = [y_again], [grad_y]
    if logdet is not None and logdet.requires_grad:
        outputs.append(logdet)
        grad_outputs.append(grad_ld)
    found = torch.autograd.grad(outputs, [x] + params, grad_outputs, allow_unused=True)
    return x.detach(), torch.zeros_like(x) if found[0] is None else found[0], list(zip(params, found[1:]))


def _registered(step: Flow):
    """The function registered for the step's class or its nearest base class, unless the step's class redefines the
    map (``_forward`` or ``_inverse``): a function written for the base's map would be wrong for it."""
    kind = type(step)
    for cls in kind.__mro__:
        if cls in _VJP or cls in _RECOMPUTE:
            if kind._forward is not cls._forward or kind._inverse is not cls._inverse:
                return None, None
            return _VJP.get(cls), _RECOMPUTE.get(cls)
    return None, None


def _step_vjp(step: Flow, y: Tensor, grad_y: Tensor, grad_ld: Tensor):
    vjp, recompute = _registered(step)
    if vjp is not None:
        return vjp(step, y, grad_y, grad_ld)
    return _vjp_by_graph(recompute, step, y, grad_y, grad_ld)


def _coupling_vjp(step, y: Tensor, grad_y: Tensor, grad_ld: Tensor):
    """Glow's coupling, y = (x_a, x_b exp(s) + t) with (s, t) from the network of x_a, log-det sum(s).

    x_a = y_a exactly, so the network runs ONCE, with a graph, for both the reconstruction x_b = (y_b - t) exp(-s)
    and the gradients (instead of once in the inverse and once more in the forward). The element-wise part is written
    out: dL/dx_b = g_b exp(s), dL/dt = g_b, dL/ds = g_b x_b exp(s) + dL/dlogdet; autograd takes (dL/ds, dL/dt)
    through the network to x_a and the parameters, and dL/dx_a = g_a + that."""
    c = step.c_a
    y_a, y_b = y[:, :c], y[:, c:]
    g_a, g_b = grad_y[:, :c], grad_y[:, c:]
    x_a = y_a.detach().requires_grad_(True)
    with torch.enable_grad():
        s, t = step._params(x_a)
    params = [p for p in step.parameters() if p.requires_grad]
    if s is None:  # additive: y_b = x_b + t, log-det 0
        x_b, grad_x_b = y_b - t.detach(), g_b
        outputs, grad_outputs = [t], [g_b]
    else:
        scale = s.detach().exp()
        x_b = (y_b - t.detach()) * (-s.detach()).exp()
        grad_x_b = g_b * scale
        grad_s = g_b * x_b * scale + grad_ld.reshape(-1, *([1] * (s.dim() - 1)))
        outputs, grad_outputs = [s, t], [grad_s, g_b]
    found = torch.autograd.grad(outputs, [x_a] + params, grad_outputs, allow_unused=True)
    grad_x_a = g_a if found[0] is None else g_a + found[0]
    return torch.cat([y_a, x_b], 1), torch.cat([grad_x_a, grad_x_b], 1), list(zip(params, found[1:]))


def _actnorm_vjp(step, y: Tensor, grad_y: Tensor, grad_ld: Tensor):
    """ActNorm, y = x exp(log_scale) + shift per channel, log-det = pixels * sum(log_scale); no graph needed:
    dL/dx = g exp(log_scale), dL/dshift = sum g, dL/dlog_scale = sum(g x) exp(log_scale) + pixels * sum(dL/dlogdet)
    (sums over the batch and the pixels)."""
    x, _ = step._inverse(y)
    scale = step._view(step.log_scale, y).exp()
    dims = [0, *range(2, y.dim())]
    grad_log_scale = (grad_y * x).sum(dims) * scale.reshape(-1) + step._pixels(y) * grad_ld.sum()
    return x, grad_y * scale, [(step.log_scale, grad_log_scale.to(step.log_scale.dtype)),
                               (step.shift, grad_y.sum(dims).to(step.shift.dtype))]


def _lu_conv_vjp(step, y: Tensor, grad_y: Tensor, grad_ld: Tensor):
    """The LU 1x1 convolution, y = W x at every pixel with W = P L U', U' = U + diag(sign exp(log_s)), log-det
    H W sum(log_s); no graph needed: dL/dx = W^T g at every pixel, dL/dW = sum over batch and pixels of g x^T, then
    through W = (L U')[perm] (rows permuted): dL/d(L U') = dL/dW with the rows put back, dL/dL = that U'^T (strictly
    lower part), dL/dU' = L^T that (strictly upper part; its diagonal times sign exp(log_s) for log_s, plus H W times
    the summed dL/dlogdet)."""
    x, _ = step._inverse(y)  # the layer's own inverse (two triangular solves)
    b, c, h, w = y.shape
    lower, upper = (m.to(y.dtype) for m in step.factors())
    weight = (lower @ upper)[step.P.argmax(1)]
    g = grad_y.reshape(b, c, h * w)  # (B, C, pixels): batched matrix products, faster here than einsum
    grad_x = torch.matmul(weight.T, g).reshape(b, c, h, w)
    grad_lu = (g @ x.reshape(b, c, h * w).transpose(1, 2)).sum(0)[step.P.argmax(0)]  # rows back in L U' order
    grad_upper_full = lower.T @ grad_lu
    mask = step.lower_mask.to(y.dtype)
    grad_log_s = (torch.diagonal(grad_upper_full) * step.sign.to(y.dtype) * step.log_s.to(y.dtype).exp()
                  + h * w * grad_ld.sum())
    return x, grad_x, [(step.lower, (grad_lu @ upper.T * mask).to(step.lower.dtype)),
                       (step.upper, (grad_upper_full * mask.T).to(step.upper.dtype)),
                       (step.log_s, grad_log_s.to(step.log_s.dtype))]


def _register_defaults() -> None:
    from flowlib.bijections.conv1x1 import InvConv1x1LU
    from flowlib.bijections.glow import GlowCoupling
    from flowlib.bijections.normalization import ActNorm

    register_vjp(GlowCoupling, _coupling_vjp)
    register_vjp(ActNorm, _actnorm_vjp)
    register_vjp(InvConv1x1LU, _lu_conv_vjp)


_register_defaults()


def _finite(x: Tensor) -> bool:
    """All of ``x`` finite: one reduction (a sum with an inf or NaN in it is not finite); only if the sum is not (it may
    also have overflowed) the exact element-wise test."""
    return bool(torch.isfinite(x.sum())) or _all_finite(x)


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
        y = y.detach()
        grad_y = torch.zeros_like(y) if grad_z is None else grad_z
        grad_ld = y.new_zeros(y.shape[0]) if grad_logdet is None else grad_logdet
        position = {id(p): i for i, p in enumerate(ctx.params)}
        # the parameters' gradients are summed into buffers made now, before the walk: made during it, each small
        # long-lived tensor would sit between the large short-lived ones and fragment the heap, so that its peak grew
        # with the depth
        grads = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in ctx.params]
        reached = [False] * len(ctx.params)
        n = len(ctx.steps)
        # The recomputation runs each step's map as an inner call (``_inside``): without the Flow contract's input and
        # output checks and dtype casts, which would otherwise run on every inverse and forward here, since the
        # backward pass is outside any flow call. The stack checks what matters itself: every rebuilt input must be
        # finite (the one device synchronisation per step), and a non-finite one is reported naming the step.
        with _inside():
            for k in range(n - 1, -1, -1):
                step = ctx.steps[k]
                try:
                    x, grad_x, param_grads = _step_vjp(step, y, grad_y, grad_ld)
                except (FlowInputError, FlowNumericalError) as e:  # an inverse met a value outside its domain
                    raise _unrebuildable(step, k, n, y.dtype) from e
                if not _finite(x):
                    raise _unrebuildable(step, k, n, y.dtype)
                for p, g in param_grads:
                    i = position.get(id(p))
                    if g is not None and i is not None:
                        try:
                            grads[i].add_(g)
                        except RuntimeError:  # under vmap (a brute-force Jacobian, vectorized), g is batched and
                            grads[i] = grads[i] + g  # an ordinary buffer cannot take it in place
                        reached[i] = True
                y, grad_y = x, grad_x
                del x, grad_x, param_grads
        return (grad_y, None, *(g if r else None for g, r in zip(grads, reached)))


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
        if self.strategy == "invertible" and _kept_freed_memory is None and AUTO_KEEP_FREED_MEMORY and \
                x.device.type == "cpu":
            keep_freed_memory()
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
