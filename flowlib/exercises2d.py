"""Checkers for the exercises of lessons 02 (Jacobians and triangular maps) and 03 (composition and maximum
likelihood).

Every checker takes the learner's answer and returns a ``Feedback`` that displays as one line saying what is right
or, when wrong, WHAT is wrong. A placeholder answer (``...``, ``None`` or a function that raises
``NotImplementedError``) gets a polite "not answered yet", never an exception. With ``strict=True`` (used by the
hidden solution cells and the tests) anything but a correct answer raises ``AssertionError`` with the same message.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Feedback", "check_area", "check_triangular_logdet", "check_sine_shear_jacobian",
           "check_composition_log_prob", "check_kl_gap", "check_pass_counts", "AREA_MATRIX", "KL_NUMBERS"]


@dataclass
class Feedback:
    ok: bool | None  # True correct, False wrong, None not answered
    message: str

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        color = {True: "#1b5e20", False: "#b00020", None: "#555555"}[self.ok]
        return f"<span style='color:{color}'>{html.escape(self.message)}</span>"

    def __bool__(self) -> bool:
        return bool(self.ok)


def _placeholder(answer) -> bool:
    return answer is None or answer is ...


def _result(ok: bool | None, message: str, strict: bool) -> Feedback:
    prefix = {True: "Correct! ", False: "Not quite: ", None: "Not answered yet: "}[ok]
    fb = Feedback(ok, prefix + message)
    if strict and ok is not True:
        raise AssertionError(fb.message)
    return fb


def _call(fn: Callable, *args):
    """Run the learner's function; ('todo', None) for a placeholder, ('error', message) if it fails."""
    if _placeholder(fn):
        return "todo", None
    if not callable(fn):
        return "error", f"expected a function, got {type(fn).__name__}."
    try:
        out = fn(*args)
    except NotImplementedError:
        return "todo", None
    except Exception as e:  # the learner's bug: report it, do not raise
        return "error", f"your function raised {type(e).__name__}: {e}"
    if _placeholder(out):
        return "todo", None
    return "ok", out


_TODO = "replace the ... with your answer and run the cell again."

# ---- lesson 02 -------------------------------------------------------------------------------------------------------
AREA_MATRIX = [[1.0, 2.0], [1.5, 0.5]]  # det = 0.5 - 3 = -2.5


def check_area(answer, strict: bool = False) -> Feedback:
    """Exercise 02.1: the area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]."""
    if _placeholder(answer):
        return _result(None, _TODO, strict)
    try:
        a = float(answer)
    except (TypeError, ValueError):
        return _result(False, f"expected a number, got {answer!r}.", strict)
    (p, q), (r, s) = AREA_MATRIX
    det = p * s - q * r
    if math.isclose(a, abs(det), abs_tol=1e-6):
        return _result(True, f"the area is |det A| = |{p}·{s} − {q}·{r}| = {abs(det)}. The negative sign of det A "
                             f"says the square is also mirrored.", strict)
    if math.isclose(a, det, abs_tol=1e-6):
        return _result(False, f"{a} is det A itself. An area cannot be negative: the area is |det A|; the sign "
                              f"only says that A flips orientation.", strict)
    if math.isclose(abs(a), p * s + q * r, abs_tol=1e-6):
        return _result(False, "check the sign in the formula: det [[a, b], [c, d]] = ad − bc, not ad + bc.", strict)
    if math.isclose(a, p + s, abs_tol=1e-6):
        return _result(False, "that is the trace (a + d), the sum of the diagonal, not the determinant.", strict)
    if math.isclose(a, p * s, abs_tol=1e-6):
        return _result(False, "A is not triangular, so the product of the diagonal is not its determinant: "
                              "subtract bc.", strict)
    return _result(False, f"{a} is not the area. Compute det A = ad − bc for A = {AREA_MATRIX}, then take |·|.",
                   strict)


def _lower_triangular_batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    J = torch.tril(torch.randn(6, 5, 5, generator=g, dtype=torch.float64))
    diag = torch.rand(6, 5, generator=g, dtype=torch.float64) * 2 + 0.2
    sign = torch.where(torch.rand(6, 5, generator=g) < 0.4, -1.0, 1.0).double()
    return J - torch.diag_embed(torch.diagonal(J, dim1=1, dim2=2)) + torch.diag_embed(sign * diag)


def check_triangular_logdet(fn: Callable, strict: bool = False) -> Feedback:
    """Exercise 02.2: ``fn(J)`` for a batch of lower-triangular J (B, D, D) returns log|det J| of shape (B,),
    from the diagonal only."""
    J = _lower_triangular_batch()
    status, out = _call(fn, J.clone())
    if status == "todo":
        return _result(None, "write triangular_logdet(J) and run the cell again.", strict)
    if status == "error":
        return _result(False, out, strict)
    out = torch.as_tensor(out, dtype=torch.float64)
    truth = torch.linalg.slogdet(J)[1]
    if out.shape != truth.shape:
        return _result(False, f"expected one number per matrix, shape (B,) = {tuple(truth.shape)}, got "
                              f"{tuple(out.shape)}. Sum over the diagonal dimension only.", strict)
    if torch.allclose(out, truth, atol=1e-8):
        # A full-matrix answer (slogdet) passes the numbers but misses the point; test that only the diagonal matters
        J2 = J.clone()
        J2[:, 0, 3] += 100.0  # no longer triangular: the diagonal is unchanged, the determinant is not
        status2, out2 = _call(fn, J2)
        if status2 == "ok" and torch.allclose(torch.as_tensor(out2, dtype=torch.float64), truth, atol=1e-8):
            return _result(True, "log|det J| = Σ log|J_ii| for a triangular J: D logs instead of an O(D³) "
                                 "determinant.", strict)
        return _result(False, "the numbers are right, but you computed a full determinant (it reacts to entries off "
                              "the diagonal): use only the diagonal (torch.diagonal(J, dim1=-2, dim2=-1)), which "
                              "costs O(D) instead of O(D³).", strict)
    diag = torch.diagonal(J, dim1=1, dim2=2)
    if bool(torch.isnan(out).any()):
        return _result(False, "you got NaN: some diagonal entries are negative, and log of a negative number is "
                              "undefined. Take the absolute value first: log|J_ii|.", strict)
    if torch.allclose(out, diag.prod(1).abs(), atol=1e-8) or torch.allclose(out, diag.prod(1), atol=1e-8):
        return _result(False, "that is |det J| (a product), not its log. Sum the logs instead: Σ log|J_ii| "
                              "(also safer: a product of many numbers under- or overflows).", strict)
    if torch.allclose(out, torch.log(J.abs().clamp_min(1e-300)).sum((1, 2)), atol=1e-6) or \
            torch.allclose(out, J.abs().sum((1, 2)), atol=1e-6):
        return _result(False, "you summed over the whole matrix; only the diagonal entries J_ii count.", strict)
    return _result(False, "the values differ from log|det J| (checked against torch.linalg.slogdet). Expected "
                          f"{truth[:3].numpy().round(4).tolist()}..., got {out[:3].numpy().round(4).tolist()}...",
                   strict)


def check_sine_shear_jacobian(fn: Callable, strict: bool = False) -> Feedback:
    """Exercise 02.3: ``fn(x1, x2, s)`` returns the 2x2 Jacobian of y = (x1 + s sin x2, x2 + s sin x1) as
    [[dy1/dx1, dy1/dx2], [dy2/dx1, dy2/dx2]] (a nested list, array or tensor)."""
    from .testing import jacobian
    from .widgets2d import sine_shear

    points = [(0.3, -1.2, 0.7), (1.1, 0.4, 0.5), (-2.0, 2.5, 0.9)]
    for x1, x2, s in points:
        status, out = _call(fn, x1, x2, s)
        if status == "todo":
            return _result(None, "write sine_shear_jacobian(x1, x2, s) and run the cell again.", strict)
        if status == "error":
            return _result(False, out, strict)
        try:
            got = torch.as_tensor(out, dtype=torch.float64).reshape(2, 2)
        except (TypeError, ValueError, RuntimeError):
            return _result(False, f"expected a 2x2 matrix, got {out!r}.", strict)
        p = torch.tensor([[x1, x2]], dtype=torch.float64)
        truth = jacobian(lambda v: sine_shear(v, s), p)[0]
        if torch.allclose(got, truth, atol=1e-6):
            continue
        where = f"at x = ({x1}, {x2}), s = {s}"
        if torch.allclose(got, truth.T, atol=1e-6):
            return _result(False, f"{where} you returned the transpose: row i holds the derivatives of output y_i "
                                  f"(J[i][j] = ∂y_i/∂x_j).", strict)
        if torch.allclose(got.diagonal(), truth.diagonal(), atol=1e-6):
            return _result(False, f"{where} the diagonal is right but the off-diagonal entries are not: "
                                  f"∂y_1/∂x_2 = s·cos x_2 and ∂y_2/∂x_1 = ?", strict)
        return _result(False, f"{where} expected {truth.numpy().round(4).tolist()}, got "
                              f"{got.numpy().round(4).tolist()} (checked against autograd).", strict)
    return _result(True, "J = [[1, s·cos x₂], [s·cos x₁, 1]], the same as autograd at three points; det J = "
                         "1 − s² cos x₁ cos x₂ > 0 for |s| < 1, so the map is locally invertible everywhere.", strict)


# ---- lesson 03 -------------------------------------------------------------------------------------------------------
def _small_stack():
    from .autoregressive import maf
    from .distributions import StandardNormal

    torch.manual_seed(3)
    flow = maf(2, num_layers=3, hidden=(16,))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    return list(flow.flows), StandardNormal(2)


def check_composition_log_prob(fn: Callable, strict: bool = False) -> Feedback:
    """Exercise 03.1: ``fn(flows, base, x)`` returns log q(x) for the composition of ``flows`` (data -> latent,
    applied in list order) and the base distribution, shape (B,)."""
    from .core import Compose
    from .models import FlowModel

    flows, base = _small_stack()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 1.5
    with torch.no_grad():
        status, out = _call(fn, flows, base, x)
        if status == "todo":
            return _result(None, "write composition_log_prob(flows, base, x) and run the cell again.", strict)
        if status == "error":
            return _result(False, out, strict)
        out = torch.as_tensor(out).detach().double()
        truth = FlowModel(Compose(*flows), base).log_prob(x).double()
        if out.shape != truth.shape:
            return _result(False, f"expected one log-density per sample, shape {tuple(truth.shape)}, got "
                                  f"{tuple(out.shape)}.", strict)
        if torch.allclose(out, truth, atol=1e-4):
            return _result(True, "log q(x) = log p(z) + Σ_k log|det ∂h_k/∂h_{k-1}|, one pass through the stack.",
                           strict)
        z, lds = x, []
        for f in flows:
            z, ld = f(z)
            lds.append(ld)
        total = torch.stack(lds).sum(0)
        lp = base.log_prob(z)
        diagnoses = [
            (lp - total, "the log-dets have the wrong sign: in the data -> latent direction they are ADDED, "
                         "log q(x) = log p(z) + Σ log|det ∂f_k/∂h|."),
            (lp, "you left out the log-determinants: each layer stretches or squeezes volume, and that changes "
                 "the density."),
            (total, "you left out log p(z), the base density at the final latent."),
            (lp + lds[-1], "only the last layer's log-det is included; every layer contributes one."),
            (base.log_prob(x) + total, "the base density must be evaluated at z = f(x), the end of the stack, "
                                       "not at x."),
        ]
        for candidate, why in diagnoses:
            if torch.allclose(out, candidate.double(), atol=1e-4):
                return _result(False, why, strict)
    return _result(False, "the values differ from FlowModel(Compose(*flows), base).log_prob(x); apply the flows in "
                          "list order, sum their log-dets, and add log p(z).", strict)


KL_NUMBERS = {"nll": 2.61, "floor": 2.39}  # nats


def check_kl_gap(answer, strict: bool = False) -> Feedback:
    """Exercise 03.2: with held-out NLL 2.61 nats and floor (entropy of p_data) 2.39 nats, estimate KL(p_data || q)."""
    if _placeholder(answer):
        return _result(None, _TODO, strict)
    try:
        a = float(answer)
    except (TypeError, ValueError):
        return _result(False, f"expected a number, got {answer!r}.", strict)
    nll, floor = KL_NUMBERS["nll"], KL_NUMBERS["floor"]
    if math.isclose(a, nll - floor, abs_tol=1e-3):
        return _result(True, f"KL(p_data ‖ q) = E[−log q] − H(p_data) = {nll} − {floor} = {nll - floor:.2f} nats. "
                             f"Minimising the NLL minimises exactly this, because H(p_data) does not depend on q.",
                       strict)
    if math.isclose(a, floor - nll, abs_tol=1e-3):
        return _result(False, "a KL divergence is never negative: the model's NLL (cross-entropy) is at least the "
                              "data's entropy. Subtract the other way round.", strict)
    if math.isclose(a, nll, abs_tol=1e-3):
        return _result(False, "that is the cross-entropy E[−log q(x)] itself; the KL is what is left after "
                              "subtracting the data's own entropy.", strict)
    if math.isclose(a, -nll, abs_tol=1e-3) or math.isclose(a, nll + floor, abs_tol=1e-3):
        return _result(False, "write the cross-entropy as E_p[−log q] = H(p) + KL(p ‖ q) and solve for the KL.",
                       strict)
    return _result(False, f"{a} is not it. Use E_p[−log q] = H(p) + KL(p ‖ q) with the numbers above.", strict)


PASS_KEYS = ("maf_density", "maf_sampling", "iaf_density", "iaf_sampling")


def check_pass_counts(answer, dim: int = 10, strict: bool = False) -> Feedback:
    """Exercise 03.3: network passes needed by ONE autoregressive layer in D = 10 dimensions, as a dict with keys
    maf_density, maf_sampling, iaf_density (of arbitrary data x), iaf_sampling."""
    if _placeholder(answer):
        return _result(None, "fill in all four numbers and run the cell again.", strict)
    if not isinstance(answer, dict) or set(answer) != set(PASS_KEYS):
        return _result(False, f"expected a dict with exactly the keys {list(PASS_KEYS)}.", strict)
    if any(_placeholder(answer[k]) for k in PASS_KEYS):
        return _result(None, "fill in all four numbers and run the cell again.", strict)
    truth = {"maf_density": 1, "maf_sampling": dim, "iaf_density": dim, "iaf_sampling": 1}
    why = {"maf_density": "MAF's density needs z_i = (x_i − μ_i(x_<i))·exp(−α_i(x_<i)): every x is known, so one "
                          "masked pass gives all μ_i, α_i.",
           "maf_sampling": "MAF's sampling computes x_i from x_<i, which must exist first: one pass per coordinate.",
           "iaf_density": "IAF's density of a given x needs z_<i before z_i: one pass per coordinate.",
           "iaf_sampling": "IAF samples from z, all known at once: one pass."}
    wrong = [k for k in PASS_KEYS if answer[k] != truth[k]]
    if not wrong:
        return _result(True, "MAF: density 1 pass, sampling D passes; IAF: the reverse. Same maths, "
                             "opposite directions.", strict)
    k = wrong[0]
    return _result(False, f"{k} = {answer[k]!r} is wrong ({len(wrong)} of 4 wrong). Hint: {why[k]}", strict)
