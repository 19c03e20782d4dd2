"""Checkers for the exercises of lessons 02 (Jacobians and triangular maps) and 03 (composition and maximum
likelihood), in the framework of ``flowlib.exercises``: a checker says WHAT is wrong (``ExerciseResult.diagnosis``
names the mistake), a placeholder answer (``...``, ``None``, or a function that raises ``NotImplementedError`` or
returns nothing) is "not answered yet" and raises nothing, and ``strict=True`` (the hidden solution cells and the
tests) raises ``ExerciseError`` on anything but a correct answer.

Lesson 02:
    check_area(number)                      area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]
    check_triangular_logdet(fn)             fn(J) -> log|det J| (B,) for lower-triangular J (B, D, D)
    check_sine_shear_jacobian(fn)           fn(x1, x2, c) -> 2x2 Jacobian of y = (x1 + c sin x2, x2 + c sin x1)
Lesson 03:
    check_composition_log_prob(fn)          fn(flows, base, x) -> log q(x) of a stack of flows
    check_kl_gap(number)                    KL(p_data || q) from a held-out NLL and the floor
    check_pass_counts(dict)                 network passes of MAF / IAF, density and sampling, D = 10
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .exercises import MISSING, ExerciseError, ExerciseResult, _call, _checker, _short, _Verdict, _wrong

__all__ = ["ExerciseError", "ExerciseResult", "check_area", "check_triangular_logdet", "check_sine_shear_jacobian",
           "check_composition_log_prob", "check_kl_gap", "check_pass_counts", "AREA_MATRIX", "KL_NUMBERS"]


def _number(answer) -> float:
    try:
        return float(answer)
    except (TypeError, ValueError):
        raise _wrong("not_a_number", f"expected a number, got {_short(answer)}.") from None


def _tensor(out, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(out.detach() if isinstance(out, torch.Tensor) else out, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _wrong("not_numeric", f"{what} is a {type(out).__name__} ({_short(out)}), not numbers.") from None


# ---- lesson 02 -------------------------------------------------------------------------------------------------------
AREA_MATRIX = [[1.0, 2.0], [1.5, 0.5]]  # det = 0.5 - 3 = -2.5


@_checker("Exercise 02.1 — the area of the image of the unit square",
          "replace the ... with a number: det A = ad − bc for A = [[1, 2], [1.5, 0.5]], then take |·|.",
          answer="value")
def check_area(answer) -> str:
    """Exercise 02.1: the area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]."""
    a = _number(answer)
    (p, q), (r, s) = AREA_MATRIX
    det = p * s - q * r
    if math.isclose(a, abs(det), abs_tol=1e-6):
        return (f"the area is |det A| = |{p}·{s} − {q}·{r}| = {abs(det)}. The negative sign of det A says the square "
                f"is also mirrored.")
    if math.isclose(a, det, abs_tol=1e-6):
        raise _wrong("signed_det", f"{a} is det A itself. An area cannot be negative: the area is |det A|; the sign "
                                   f"only says that A flips orientation.")
    if math.isclose(abs(a), p * s + q * r, abs_tol=1e-6):
        raise _wrong("plus_bc", "check the sign in the formula: det [[a, b], [c, d]] = ad − bc, not ad + bc.")
    if math.isclose(a, p + s, abs_tol=1e-6):
        raise _wrong("trace", "that is the trace (a + d), the sum of the diagonal, not the determinant.")
    if math.isclose(a, p * s, abs_tol=1e-6):
        raise _wrong("diagonal_product", "A is not triangular, so the product of the diagonal is not its "
                                         "determinant: subtract bc.")
    raise _wrong("wrong", f"{a} is not the area. Compute det A = ad − bc for A = {AREA_MATRIX}, then take |·|.")


def _lower_triangular_batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    J = torch.tril(torch.randn(6, 5, 5, generator=g, dtype=torch.float64))
    diag = torch.rand(6, 5, generator=g, dtype=torch.float64) * 2 + 0.2
    sign = torch.where(torch.rand(6, 5, generator=g) < 0.4, -1.0, 1.0).double()
    return J - torch.diag_embed(torch.diagonal(J, dim1=1, dim2=2)) + torch.diag_embed(sign * diag)


@_checker("Exercise 02.3 — log|det J| of a triangular Jacobian",
          "write triangular_logdet(J) for a batch J of shape (B, D, D) and run the cell again.")
def check_triangular_logdet(fn: Callable) -> str:
    """Exercise 02.2: ``fn(J)`` for a batch of lower-triangular J (B, D, D) returns log|det J| of shape (B,),
    from the diagonal only."""
    J = _lower_triangular_batch()
    out = _tensor(_call(fn, J.clone()), "your result")
    truth = torch.linalg.slogdet(J)[1]
    if out.shape != truth.shape:
        raise _wrong("shape", f"expected one number per matrix, shape (B,) = {tuple(truth.shape)}, got "
                              f"{tuple(out.shape)}. Sum over the diagonal dimension only.")
    if torch.allclose(out, truth, atol=1e-8):
        # A full-matrix answer (slogdet) passes the numbers but misses the point; test that only the diagonal matters
        J2 = J.clone()
        J2[:, 0, 3] += 100.0  # no longer triangular: the diagonal is unchanged, the determinant is not
        try:
            out2 = _tensor(_call(fn, J2), "your result")
        except _Verdict:
            out2 = None
        if out2 is not None and out2.shape == truth.shape and torch.allclose(out2, truth, atol=1e-8):
            return "log|det J| = Σ log|J_ii| for a triangular J: D logs instead of an O(D³) determinant."
        raise _wrong("full_determinant", "the numbers are right, but you computed a full determinant (it reacts to "
                                         "entries off the diagonal): use only the diagonal (torch.diagonal(J, "
                                         "dim1=-2, dim2=-1)), which costs O(D) instead of O(D³).")
    diag = torch.diagonal(J, dim1=1, dim2=2)
    if bool(torch.isnan(out).any()):
        raise _wrong("log_of_negative", "you got NaN: some diagonal entries are negative, and log of a negative "
                                        "number is undefined. Take the absolute value first: log|J_ii|.")
    if torch.allclose(out, diag.prod(1).abs(), atol=1e-8) or torch.allclose(out, diag.prod(1), atol=1e-8):
        raise _wrong("not_log", "that is |det J| (a product), not its log. Sum the logs instead: Σ log|J_ii| (also "
                                "safer: a product of many numbers under- or overflows).")
    if torch.allclose(out, torch.log(J.abs().clamp_min(1e-300)).sum((1, 2)), atol=1e-6) or \
            torch.allclose(out, J.abs().sum((1, 2)), atol=1e-6):
        raise _wrong("whole_matrix", "you summed over the whole matrix; only the diagonal entries J_ii count.")
    raise _wrong("wrong", "the values differ from log|det J| (checked against torch.linalg.slogdet). Expected "
                          f"{truth[:3].numpy().round(4).tolist()}..., got {out[:3].numpy().round(4).tolist()}...")


@_checker("Exercise 02.2 — the Jacobian of the sine shear",
          "write sine_shear_jacobian(x1, x2, c) returning [[∂y₁/∂x₁, ∂y₁/∂x₂], [∂y₂/∂x₁, ∂y₂/∂x₂]] and run the "
          "cell again.")
def check_sine_shear_jacobian(fn: Callable) -> str:
    """Exercise 02.2: ``fn(x1, x2, c)`` returns the 2x2 Jacobian of y = (x1 + c sin x2, x2 + c sin x1) (c: the shear
    strength; not called s, which lesson 04 uses for a coupling layer's log-scale) as
    [[dy1/dx1, dy1/dx2], [dy2/dx1, dy2/dx2]] (a nested list, array or tensor)."""
    from .testing import jacobian
    from .widgets2d import sine_shear

    for x1, x2, c in [(0.3, -1.2, 0.7), (1.1, 0.4, 0.5), (-2.0, 2.5, 0.9)]:
        out = _call(fn, x1, x2, c)
        try:
            got = torch.as_tensor(out, dtype=torch.float64).reshape(2, 2)
        except (TypeError, ValueError, RuntimeError):
            raise _wrong("not_2x2", f"expected a 2x2 matrix, got {_short(out)}.") from None
        truth = jacobian(lambda v: sine_shear(v, c), torch.tensor([[x1, x2]], dtype=torch.float64))[0]
        if torch.allclose(got, truth, atol=1e-6):
            continue
        where = f"at x = ({x1}, {x2}), c = {c}"
        if torch.allclose(got, truth.T, atol=1e-6):
            raise _wrong("transposed", f"{where} you returned the transpose: row i holds the derivatives of output "
                                       f"y_i (J[i][j] = ∂y_i/∂x_j).")
        no_c = torch.tensor([[1.0, math.cos(x2)], [math.cos(x1), 1.0]], dtype=torch.float64)
        if torch.allclose(got, no_c, atol=1e-6):
            raise _wrong("forgot_c", f"{where} your off-diagonal entries are cos x₂ and cos x₁ without the shear "
                                     f"strength c: y₁ = x₁ + c·sin x₂, so ∂y₁/∂x₂ = c·cos x₂.")
        sin_for_cos = torch.tensor([[1.0, c * math.sin(x2)], [c * math.sin(x1), 1.0]], dtype=torch.float64)
        if torch.allclose(got, sin_for_cos, atol=1e-6) or torch.allclose(got, -sin_for_cos + 2 * torch.eye(2,
                                                                                   dtype=torch.float64), atol=1e-6):
            raise _wrong("sin_for_cos", f"{where} your off-diagonal entries use sin where the derivative of sin is "
                                        f"needed: d/dx₂ (c·sin x₂) = c·cos x₂.")
        if torch.allclose(got.diagonal(), truth.diagonal(), atol=1e-6):
            raise _wrong("off_diagonal", f"{where} the diagonal is right but the off-diagonal entries are not: "
                                         f"∂y_1/∂x_2 = c·cos x_2 and ∂y_2/∂x_1 = ?")
        raise _wrong("wrong", f"{where} expected {truth.numpy().round(4).tolist()}, got "
                              f"{got.numpy().round(4).tolist()} (checked against autograd).")
    return ("J = [[1, c·cos x₂], [c·cos x₁, 1]], the same as autograd at three points; det J = 1 − c² cos x₁ cos x₂ "
            "> 0 for |c| < 1, so the map is locally invertible everywhere.")


# ---- lesson 03 -------------------------------------------------------------------------------------------------------
def _small_stack():
    from .autoregressive import maf
    from .distributions import StandardNormal

    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(3)
        flow = maf(2, num_layers=3, hidden=(16,))
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.3 * torch.randn(p.shape))
    return list(flow.flows), StandardNormal(2)


@_checker("Exercise 03.1 — log q(x) of a stack of flows",
          "write composition_log_prob(flows, base, x) and run the cell again.")
def check_composition_log_prob(fn: Callable) -> str:
    """Exercise 03.1: ``fn(flows, base, x)`` returns log q(x) for the composition of ``flows`` (data -> latent,
    applied in list order) and the base distribution, shape (B,)."""
    from .core import Compose
    from .models import FlowModel

    flows, base = _small_stack()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 1.5
    with torch.no_grad():
        out = _tensor(_call(fn, flows, base, x.clone()), "your result")
        truth = FlowModel(Compose(*flows), base).log_prob(x).double()
        if out.shape != truth.shape:
            raise _wrong("shape", f"expected one log-density per sample, shape {tuple(truth.shape)}, got "
                                  f"{tuple(out.shape)}.")
        if torch.allclose(out, truth, atol=1e-4):
            return "log q(x) = log p(z) + Σ_k log|det ∂h_k/∂h_{k-1}|, one pass through the stack."
        z, lds = x, []
        for f in flows:
            z, ld = f(z)
            lds.append(ld)
        total = torch.stack(lds).sum(0)
        lp = base.log_prob(z)
        zr, total_r = x, torch.zeros(x.shape[0])
        for f in reversed(flows):
            zr, ld = f(zr)
            total_r = total_r + ld
        diagnoses = [
            ("reversed_order", base.log_prob(zr) + total_r, "you applied the flows in reverse list order; the list "
                                                             "goes from the data to the latent: h₁ = flows[0](x), "
                                                             "h₂ = flows[1](h₁), ..."),
            ("logdet_sign", lp - total, "the log-dets have the wrong sign: in the data -> latent direction they are "
                                        "ADDED, log q(x) = log p(z) + Σ log|det ∂f_k/∂h|."),
            ("missing_logdet", lp, "you left out the log-determinants: each layer stretches or squeezes volume, and "
                                   "that changes the density."),
            ("missing_base", total, "you left out log p(z), the base density at the final latent."),
            ("last_logdet_only", lp + lds[-1], "only the last layer's log-det is included; every layer contributes "
                                               "one."),
            ("base_at_x", base.log_prob(x) + total, "the base density must be evaluated at z = f(x), the end of the "
                                                    "stack, not at x."),
        ]
        for diagnosis, candidate, why in diagnoses:
            if torch.allclose(out, candidate.double(), atol=1e-4):
                raise _wrong(diagnosis, why)
    raise _wrong("wrong", "the values differ from FlowModel(Compose(*flows), base).log_prob(x); apply the flows in "
                          "list order, sum their log-dets, and add log p(z).")


KL_NUMBERS = {"nll": 2.61, "floor": 2.39}  # nats


@_checker("Exercise 03.2 — reading a gap as a KL divergence",
          "replace the ... with a number, using E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q).", answer="value")
def check_kl_gap(answer) -> str:
    """Exercise 03.2: with held-out NLL 2.61 nats and floor (entropy of p_data) 2.39 nats, estimate KL(p_data || q)."""
    a = _number(answer)
    nll, floor = KL_NUMBERS["nll"], KL_NUMBERS["floor"]
    if math.isclose(a, nll - floor, abs_tol=1e-3):
        return (f"KL(p_data ‖ q) = E[−log q] − H(p_data) = {nll} − {floor} = {nll - floor:.2f} nats. Minimising the "
                f"NLL minimises exactly this, because H(p_data) does not depend on q.")
    if math.isclose(a, floor - nll, abs_tol=1e-3):
        raise _wrong("negative_kl", "a KL divergence is never negative: the model's NLL (cross-entropy) is at least "
                                    "the data's entropy. Subtract the other way round.")
    if math.isclose(a, nll, abs_tol=1e-3):
        raise _wrong("cross_entropy", "that is the cross-entropy E[−log q(x)] itself; the KL is what is left after "
                                      "subtracting the data's own entropy.")
    if math.isclose(a, -nll, abs_tol=1e-3) or math.isclose(a, nll + floor, abs_tol=1e-3):
        raise _wrong("decomposition", "write the cross-entropy as E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q) "
                                      "and solve for the KL.")
    if math.isclose(a, (nll - floor) / math.log(2), abs_tol=1e-3) or math.isclose(a, (nll - floor) * math.log(2),
                                                                                   abs_tol=1e-3):
        raise _wrong("units", f"{a} is the gap converted between nats and bits; both numbers are given in nats, and "
                              "the question asks for nats.")
    raise _wrong("wrong", f"{a:g} is not it. Use " + "E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q) with the "
                          "numbers above.")


PASS_KEYS = ("maf_density", "maf_sampling", "iaf_density", "iaf_sampling")


@_checker("Exercise 03.3 — network passes of one autoregressive layer in D = {dim} dimensions",
          "fill in all four numbers and run the cell again.", answer="value")
def check_pass_counts(answer, dim: int = 10) -> str:
    """Exercise 03.3: network passes needed by ONE autoregressive layer in D = 10 dimensions, as a dict with keys
    maf_density, maf_sampling, iaf_density (of arbitrary data x), iaf_sampling.

    Counting convention: flowlib's sequential direction runs one pass per coordinate, D in all
    (``MAF._inverse``). D − 1 is accepted too: the first coordinate's shift and scale depend on no input (they are
    constants of the network), so a careful implementation can skip that pass."""
    if not isinstance(answer, dict) or set(answer) != set(PASS_KEYS):
        raise _wrong("keys", f"expected a dict with exactly the keys {list(PASS_KEYS)}.")
    if any(answer[k] is None or answer[k] is Ellipsis for k in PASS_KEYS):
        raise _Verdict(MISSING, "some of the four numbers are still `...`.",
                       "fill in all four numbers and run the cell again.", "missing")
    accepted = {"maf_density": (1,), "maf_sampling": (dim, dim - 1), "iaf_density": (dim, dim - 1),
                "iaf_sampling": (1,)}
    why = {"maf_density": "MAF's density needs z_i = (x_i − μ_i(x_<i))·exp(−α_i(x_<i)): every x is known, so one "
                          "masked pass gives all μ_i, α_i.",
           "maf_sampling": "MAF's sampling computes x_i from x_<i, which must exist first: one pass per coordinate.",
           "iaf_density": "IAF's density of a given x needs z_<i before z_i: one pass per coordinate.",
           "iaf_sampling": "IAF samples from z, all known at once: one pass."}
    wrong = [k for k in PASS_KEYS if answer[k] not in accepted[k]]
    if not wrong:
        note = ""
        if dim - 1 in (answer["maf_sampling"], answer["iaf_density"]):
            note = (f" (You counted {dim - 1} for a sequential direction: right if the first coordinate's pass is "
                    f"skipped, since its shift and scale depend on no input; flowlib runs all {dim}.)")
        return "MAF: density 1 pass, sampling D passes; IAF: the reverse. Same maths, opposite directions." + note
    swapped = {"maf_density": (dim, dim - 1), "maf_sampling": (1,), "iaf_density": (1,), "iaf_sampling": (dim, dim - 1)}
    if all(answer[k] in swapped[k] for k in PASS_KEYS):
        raise _wrong("maf_iaf_swapped", "your four numbers are right for the other model: you swapped MAF and IAF.",
                     "MAF computes its shift and scale from x (the data), so its DENSITY direction is one pass; IAF "
                     "computes them from z, so its SAMPLING direction is one pass.")
    k = wrong[0]
    raise _wrong(f"wrong_{k}", f"{k} = {answer[k]!r} is wrong ({len(wrong)} of 4 wrong).", why[k])
