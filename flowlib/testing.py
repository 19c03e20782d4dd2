"""Brute-force checks of the Flow contract, used by the test suite (over a registry of every flow) and by the
notebooks' sanity cells. Each check compares a flow against something it cannot fake: its own inverse, the Jacobian
that autograd computes from the map itself in float64 with a general ``slogdet``, the same flow in float64 (for the
float32 check), or the Jacobian of a whole batch (for batch independence).

Tolerances. In float64 the brute-force errors of correct flows are around 1e-12 (measured over the registry), so the
default tolerances (1e-9 for round trips, 1e-8 for log-dets) fail an error of 1e-6 by two orders of magnitude. In
float32 errors are relative to the size of the values: ``check_float32`` compares with the float64 result.

Every check raises ``FlowCheckError`` (an AssertionError) with the numbers that disagree, and otherwise returns a
``CheckResult`` that prints as one readable line.
"""
from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

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


def perturb(flow: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    """Add ``scale`` times seeded Gaussian noise to every parameter, in place; returns the module.

    A fresh coupling, MAF or Glow step is the identity (zero-initialised last layer), which hides most bugs and blocks
    gradients to the layers before it; checks (and tests) run on a perturbed copy to see a real map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return flow


_perturb = perturb  # check_gradients has an argument of that name


def check_round_trip(flow: Flow, x: Tensor, atol: float = 1e-9) -> CheckResult:
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


def check_logdet(flow: Flow, x: Tensor, atol: float = 1e-8) -> CheckResult:
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
    f = _perturb(copy.deepcopy(flow).double(), perturb, seed)
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


def _leave_initialisation(f: Flow, x: Tensor) -> None:
    """Run one forward pass if some layer declares that it mixes the batch (e.g. ActNorm's data-dependent start)."""
    if any(isinstance(m, Flow) and m.mixes_batch() for m in f.modules()):
        with torch.no_grad():
            f(x)
        still = [type(m).__name__ for m in f.modules() if isinstance(m, Flow) and m.mixes_batch()]
        if still:
            _fail("batch independence", f, f"{still} still mix the batch after a forward pass: a layer may only "
                                           f"couple the samples of a batch while it initialises.")


def check_batch_independence(flow: Flow, x: Tensor, atol: float = 1e-10) -> CheckResult:
    """Sample i's output and log-det depend on sample i only: the Jacobian of the whole flattened batch (outputs and
    log-dets against inputs, by autograd in float64) is block-diagonal across samples, in both directions.

    A layer may declare that it mixes the batch while it initialises (``Flow.mixes_batch``); it is then run once
    and checked in its normal mode. Checked in the flow's current mode (train or eval)."""
    if x.shape[0] < 2:
        raise ValueError("check_batch_independence needs a batch of at least 2 samples.")
    f64, x64 = _double(flow, x)
    _leave_initialisation(f64, x64)
    with torch.no_grad():
        z = f64(x64)[0]
    worst = 0.0
    for direction, point in (("forward", x64), ("inverse", z)):
        run = f64 if direction == "forward" else f64.inverse
        b = point.shape[0]

        def whole(v: Tensor, shape=point.shape) -> Tensor:
            out, logdet = run(v.reshape(shape))
            return torch.cat([out.reshape(b, -1), logdet.reshape(b, 1)], dim=1).reshape(-1)

        J = torch.autograd.functional.jacobian(whole, point.reshape(-1), vectorize=True)
        J = J.reshape(b, -1, b, point[0].numel())  # (sample out, value, sample in, value)
        cross = J.abs().clone()
        cross[torch.arange(b), :, torch.arange(b), :] = 0.0
        err = float(cross.max())
        worst = max(worst, err)
        if not err <= atol:
            i, k, j, _ = [int(v) for v in torch.nonzero(cross == cross.max())[0]]
            what = "log-det" if k == J.shape[1] - 1 else f"output value {k}"
            _fail("batch independence", flow, f"in the {direction} direction the {what} of sample {i} depends on "
                                              f"sample {j} (derivative {float(J[i, k, j].abs().max()):.3g}): the "
                                              f"layer leaks across the batch (batch statistics?).")
    return CheckResult("batch independence", describe(flow), worst, atol)


def check_float32(flow: Flow, x: Tensor, rtol: float = 1e-4) -> CheckResult:
    """The flow in float32 agrees with itself in float64: outputs, log-dets (both directions) and the float32 round
    trip, each within ``rtol`` relative to the size of the values (errors are scaled by 1 + |value|).

    float32 keeps about 7 significant digits; a stack loses a few more, so 1e-4 leaves room for deep flows while a
    layer that throws digits away (cancellation, a product that overflows, a float64 constant cast to float32 in the
    wrong place) fails."""
    f64, x64 = _double(flow, x)
    f32, x32 = copy.deepcopy(f64).float(), x64.float()
    _leave_initialisation(f64, x64)
    _leave_initialisation(f32, x32)
    with torch.no_grad():
        z64, ld64 = f64(x64)
        z32, ld32 = f32(x32)
        back32, ldi32 = f32.inverse(z32)
        _, ldi64 = f64.inverse(z64)

    def rel(a: Tensor, b: Tensor) -> float:
        return float(((a.double() - b) .abs() / (1 + b.abs())).max())

    errors = {"output": rel(z32, z64), "forward log-det": rel(ld32, ld64), "inverse log-det": rel(ldi32, ldi64),
              "round trip": rel(back32, x64)}
    for what, err in errors.items():
        if not err <= rtol:
            _fail("float32", flow, f"the {what} in float32 differs from float64 by {err:.3g} relative (tolerance "
                                   f"{rtol}): the layer loses precision in float32.")
    return CheckResult("float32 vs float64", describe(flow), max(errors.values()), rtol)
