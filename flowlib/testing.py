"""Brute-force checks of the Flow contract, used by the test suite (over a registry of every flow) and by the
notebooks' sanity cells. Each check compares a flow against something it cannot fake: its own inverse, or the
Jacobian that autograd computes from the map itself, in float64, with a general ``slogdet``.

Every check raises ``FlowCheckError`` (an AssertionError) with the numbers that disagree, and otherwise returns a
``CheckResult`` that prints as one readable line.
"""
from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .core import Flow


class FlowCheckError(AssertionError):
    """A flow failed a brute-force check."""


@dataclass
class CheckResult:
    check: str
    flow: str
    max_error: float
    tolerance: float

    def __str__(self) -> str:
        return f"{self.check} of {self.flow}: passed (max error {self.max_error:.2e} <= {self.tolerance:.0e})"

    def _repr_pretty_(self, p, cycle):  # IPython shows the readable line
        p.text(str(self))


def describe(flow: Flow) -> str:
    """A short name for a flow that shows its structure: Inverse(Affine), Compose(3: Affine, Exp, ...)."""
    from .core import Compose, Inverse

    if isinstance(flow, Inverse):
        return f"Inverse({describe(flow.flow)})"
    if isinstance(flow, Compose):
        names = [describe(f) for f in flow.flows]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        return f"Compose({len(names)}: {shown})"
    return type(flow).__name__


def _double(flow: Flow, x: Tensor) -> tuple[Flow, Tensor]:
    return copy.deepcopy(flow).double(), x.detach().double()


def _fail(check: str, flow: Flow, message: str) -> None:
    raise FlowCheckError(f"{check} of {describe(flow)} failed: {message}")


def jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The Jacobian of ``fn`` at every sample of a batch, by autograd: (B, D_out, D_in), with D the flattened size.

    ``fn`` maps a batch to a batch (for a flow, ``lambda x: flow(x)[0]``). Samples are handled one at a time so that
    the result is the true per-sample Jacobian, whatever the map does across the batch.
    """
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]

        def flat(v: Tensor, shape=xi.shape) -> Tensor:
            return fn(v.reshape(shape)).reshape(-1)

        out.append(torch.autograd.functional.jacobian(flat, xi.reshape(-1), vectorize=True))
    return torch.stack(out)


def brute_force_logdet(flow: Flow, x: Tensor, direction: str = "forward") -> Tensor:
    """log|det J| of ``flow.forward`` (or ``flow.inverse``) at each sample, from the autograd Jacobian, in float64."""
    f64, x64 = _double(flow, x)
    fn = (lambda v: f64(v)[0]) if direction == "forward" else (lambda v: f64.inverse(v)[0])
    sign, logabsdet = torch.linalg.slogdet(jacobian(fn, x64))
    return logabsdet


def check_round_trip(flow: Flow, x: Tensor, atol: float = 1e-5) -> CheckResult:
    """inverse(forward(x)) == x, and the two log-dets sum to zero (float64)."""
    f64, x64 = _double(flow, x)
    with torch.no_grad():
        z, ld_f = f64(x64)
        x_back, ld_i = f64.inverse(z)
    err_x = float((x_back - x64).abs().max())
    err_ld = float((ld_f + ld_i).abs().max())
    if not err_x <= atol:
        _fail("round trip", flow, f"inverse(forward(x)) differs from x by up to {err_x:.3g} (tolerance {atol}).")
    if not err_ld <= atol:
        _fail("round trip", flow, f"forward log-det + inverse log-det should be 0, but is up to {err_ld:.3g}; "
                                  f"is the inverse's log-det missing or of the wrong sign?")
    return CheckResult("round trip", describe(flow), max(err_x, err_ld), atol)


def check_logdet(flow: Flow, x: Tensor, atol: float = 1e-6) -> CheckResult:
    """The flow's log-dets (both directions) against log|det| of the autograd Jacobian, in float64."""
    f64, x64 = _double(flow, x)
    with torch.no_grad():
        z, ld_f = f64(x64)
        _, ld_i = f64.inverse(z)
    worst = 0.0
    for direction, point, claimed in (("forward", x64, ld_f), ("inverse", z, ld_i)):
        truth = brute_force_logdet(f64, point, direction)
        err = float((claimed - truth).abs().max())
        worst = max(worst, err)
        if not err <= atol:
            i = int((claimed - truth).abs().argmax())
            _fail("log-det", flow, f"{direction} log-det at sample {i} is {float(claimed[i]):.6g} but the autograd "
                                   f"Jacobian gives {float(truth[i]):.6g} (error {err:.3g}, tolerance {atol}).")
    return CheckResult("log-det vs autograd Jacobian", describe(flow), worst, atol)


def check_triangular(flow: Flow, x: Tensor, structure: str = "lower", order: Tensor | None = None,
                     atol: float = 1e-10) -> CheckResult:
    """The forward Jacobian is lower/upper triangular or diagonal (``structure``), in float64.

    ``order`` (optional) is the variable ordering of an autoregressive map: the Jacobian is checked after permuting
    rows and columns by it (output i may depend only on inputs that come no later in the order).
    """
    if structure not in ("lower", "upper", "diagonal"):
        raise ValueError(f"structure must be 'lower', 'upper' or 'diagonal', got {structure!r}.")
    f64, x64 = _double(flow, x)
    J = jacobian(lambda v: f64(v)[0], x64)  # (B, D, D)
    if J.shape[1] != J.shape[2]:
        _fail("triangular structure", flow, f"the Jacobian is not square: {tuple(J.shape[1:])}.")
    if order is not None:
        idx = torch.as_tensor(order).reshape(-1)
        J = J[:, idx][:, :, idx]
    D = J.shape[-1]
    ones = torch.ones(D, D, dtype=torch.bool)
    allowed = {"lower": torch.tril(ones), "upper": torch.triu(ones), "diagonal": torch.eye(D, dtype=torch.bool)}
    outside = J.abs().masked_fill(allowed[structure], 0.0)
    err = float(outside.max()) if D > 1 else 0.0
    if not err <= atol:
        b, i, j = [int(v) for v in torch.nonzero(outside == outside.max())[0]]
        _fail("triangular structure", flow, f"expected a {structure} Jacobian, but dz_{i}/dx_{j} = "
                                            f"{float(J[b, i, j]):.3g} at sample {b}.")
    return CheckResult(f"{structure}-triangular Jacobian", describe(flow), err, atol)


def check_gradients(flow: Flow, x: Tensor, perturb: float = 0.05, seed: int = 0) -> CheckResult:
    """Every parameter receives a finite, non-zero gradient from the negative log-likelihood of a copy of the flow.

    The copy's parameters are first nudged by ``perturb`` times Gaussian noise: zero-initialised layers (which make
    a fresh coupling the identity) legitimately block gradients to the layers before them at initialisation.
    """
    f = copy.deepcopy(flow).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(perturb * torch.randn(p.shape, generator=g, dtype=p.dtype))
    params = dict(f.named_parameters())
    if not params:
        return CheckResult("gradient reaches every parameter (it has none)", describe(flow), 0.0, 0.0)
    z, logdet = f(x.detach().double())
    nll = (0.5 * z.reshape(z.shape[0], -1).pow(2).sum(1) - logdet).mean()
    nll.backward()
    missing = [n for n, p in params.items() if p.grad is None]
    if missing:
        _fail("gradients", flow, f"no gradient reached {missing}: are they used in forward?")
    bad = [n for n, p in params.items() if not bool(torch.isfinite(p.grad).all())]
    if bad:
        _fail("gradients", flow, f"non-finite gradients in {bad}.")
    zero = [n for n, p in params.items() if float(p.grad.abs().max()) == 0.0]
    if zero:
        _fail("gradients", flow, f"the gradient of {zero} is exactly zero.")
    return CheckResult("gradient reaches every parameter", describe(flow), 0.0, 0.0)


def check_state_dict(flow: Flow, make_fresh: Callable[[], Flow], x: Tensor, atol: float = 0.0) -> CheckResult:
    """Saving with ``torch.save(state_dict)`` and loading with ``weights_only=True`` into a freshly built flow gives
    the same outputs: all state a flow needs lives in its ``state_dict``."""
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    buf.seek(0)
    fresh = make_fresh()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    flow_mode, fresh_mode = flow.training, fresh.training
    flow.eval(), fresh.eval()
    with torch.no_grad():
        z1, l1 = flow(x)
        z2, l2 = fresh(x)
    flow.train(flow_mode), fresh.train(fresh_mode)
    err = max(float((z1 - z2).abs().max()), float((l1 - l2).abs().max()))
    if not err <= atol:
        _fail("state_dict round trip", flow, f"a reloaded copy gives outputs that differ by {err:.3g}: some state "
                                             f"lives outside the state_dict (a Python attribute instead of a buffer?).")
    return CheckResult("state_dict round trip", describe(flow), err, atol)
