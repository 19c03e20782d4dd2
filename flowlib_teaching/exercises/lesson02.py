"""Checkers for the exercises of lesson 02 (Jacobians and triangular maps), in the framework of
``flowlib_teaching.exercises.framework``: a checker says WHAT is wrong (``ExerciseResult.diagnosis``
names the mistake), a placeholder answer (``...``, ``None``, or a function that raises ``NotImplementedError`` or
returns nothing) is "not answered yet" and raises nothing, and ``strict=True`` (the hidden solution cells and the
tests) raises ``ExerciseError`` on anything but a correct answer.

Lesson 02:
    check_area(number)                      area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]
    check_triangular_logdet(fn)             fn(J) -> log|det J| (B,) for lower-triangular J (B, D, D)
    check_sine_shear_jacobian(fn)           fn(x1, x2, c) -> 2x2 Jacobian of y = (x1 + c sin x2, x2 + c sin x1)
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from flowlib_teaching.exercises.framework import ExerciseError, ExerciseResult, MISSING, Verdict, call, checker, number, numbers, short, wrong

__all__ = ["ExerciseError", "ExerciseResult", "check_area", "check_triangular_logdet", "check_sine_shear_jacobian",
           "AREA_MATRIX"]


# ---- lesson 02 -------------------------------------------------------------------------------------------------------
AREA_MATRIX = [[1.0, 2.0], [1.5, 0.5]]  # det = 0.5 - 3 = -2.5


@checker("Exercise 1 — the area of the image of the unit square",
          "replace the ... with a number: det A = ad − bc for A = [[1, 2], [1.5, 0.5]], then take |·|.",
          answer="value")
def check_area(answer) -> str:
    """Exercise 02.1: the area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]."""
    a = number(answer, diagnosis="not_a_number")
    (p, q), (r, s) = AREA_MATRIX
    det = p * s - q * r
    if math.isclose(a, abs(det), abs_tol=1e-6):
        return (f"the area is |det A| = |{p}·{s} − {q}·{r}| = {abs(det)}. The negative sign of det A says the square "
                f"is also mirrored.")
    if math.isclose(a, det, abs_tol=1e-6):
        raise wrong("signed_det", f"{a} is det A itself. An area cannot be negative: the area is |det A|; the sign "
                                   f"only says that A flips orientation.")
    if math.isclose(abs(a), p * s + q * r, abs_tol=1e-6):
        raise wrong("plus_bc", "check the sign in the formula: det [[a, b], [c, d]] = ad − bc, not ad + bc.")
    if math.isclose(a, p + s, abs_tol=1e-6):
        raise wrong("trace", "that is the trace (a + d), the sum of the diagonal, not the determinant.")
    if math.isclose(a, p * s, abs_tol=1e-6):
        raise wrong("diagonal_product", "A is not triangular, so the product of the diagonal is not its "
                                         "determinant: subtract bc.")
    raise wrong("wrong", f"{a} is not the area. Compute det A = ad − bc for A = {AREA_MATRIX}, then take |·|.")


def _lower_triangular_batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    J = torch.tril(torch.randn(6, 5, 5, generator=g, dtype=torch.float64))
    diag = torch.rand(6, 5, generator=g, dtype=torch.float64) * 2 + 0.2
    sign = torch.where(torch.rand(6, 5, generator=g) < 0.4, -1.0, 1.0).double()
    return J - torch.diag_embed(torch.diagonal(J, dim1=1, dim2=2)) + torch.diag_embed(sign * diag)


@checker("Exercise 3 — log|det J| of a triangular Jacobian",
          "write triangular_logdet(J) for a batch J of shape (B, D, D) and run the cell again.")
def check_triangular_logdet(fn: Callable) -> str:
    """Exercise 02.3: ``fn(J)`` for a batch of lower-triangular J (B, D, D) returns log|det J| of shape (B,),
    from the diagonal only."""
    J = _lower_triangular_batch()
    out = numbers(call(fn, J.clone()), "your result")
    truth = torch.linalg.slogdet(J)[1]
    if out.shape != truth.shape:
        raise wrong("shape", f"expected one number per matrix, shape (B,) = {tuple(truth.shape)}, got "
                              f"{tuple(out.shape)}. Sum over the diagonal dimension only.")
    if torch.allclose(out, truth, atol=1e-8):
        # A full-matrix answer (slogdet) passes the numbers but misses the point; test that only the diagonal matters
        J2 = J.clone()
        J2[:, 0, 3] += 100.0  # no longer triangular: the diagonal is unchanged, the determinant is not
        try:
            out2 = numbers(call(fn, J2), "your result")
        except Verdict:
            out2 = None
        if out2 is not None and out2.shape == truth.shape and torch.allclose(out2, truth, atol=1e-8):
            return "log|det J| = Σ log|J_ii| for a triangular J: D logs instead of an O(D³) determinant."
        raise wrong("full_determinant", "the numbers are right, but you computed a full determinant (it reacts to "
                                         "entries off the diagonal): use only the diagonal (torch.diagonal(J, "
                                         "dim1=-2, dim2=-1)), which costs O(D) instead of O(D³).")
    diag = torch.diagonal(J, dim1=1, dim2=2)
    if bool(torch.isnan(out).any()):
        raise wrong("log_of_negative", "you got NaN: some diagonal entries are negative, and log of a negative "
                                        "number is undefined. Take the absolute value first: log|J_ii|.")
    if torch.allclose(out, diag.prod(1).abs(), atol=1e-8) or torch.allclose(out, diag.prod(1), atol=1e-8):
        raise wrong("not_log", "that is |det J| (a product), not its log. Sum the logs instead: Σ log|J_ii| (also "
                                "safer: a product of many numbers under- or overflows).")
    # the whole matrix: log|J| summed over every entry is −inf here (the zeros above the diagonal)
    if bool(torch.isneginf(out).all()) or \
            torch.allclose(out, torch.log(J.abs().clamp_min(1e-300)).sum((1, 2)), atol=1e-6) or \
            torch.allclose(out, J.abs().sum((1, 2)), atol=1e-6):
        raise wrong("whole_matrix", "you summed over the whole matrix (log 0 = −inf for the zeros above the "
                                     "diagonal); only the diagonal entries J_ii count.")
    raise wrong("wrong", "the values differ from log|det J| (checked against torch.linalg.slogdet). Expected "
                          f"{truth[:3].numpy().round(4).tolist()}..., got {out[:3].numpy().round(4).tolist()}...")


@checker("Exercise 2 — the Jacobian of the sine shear",
          "write sine_shear_jacobian(x1, x2, c) returning [[∂y₁/∂x₁, ∂y₁/∂x₂], [∂y₂/∂x₁, ∂y₂/∂x₂]] and run the "
          "cell again.")
def check_sine_shear_jacobian(fn: Callable) -> str:
    """Exercise 02.2: ``fn(x1, x2, c)`` returns the 2x2 Jacobian of y = (x1 + c sin x2, x2 + c sin x1) (c: the shear
    strength; not called s, which lesson 04 uses for a coupling layer's log-scale) as
    [[dy1/dx1, dy1/dx2], [dy2/dx1, dy2/dx2]] (a nested list, array or tensor)."""
    from flowlib.testing import jacobian
    from flowlib_teaching.maps2d import sine_shear

    for x1, x2, c in [(0.3, -1.2, 0.7), (1.1, 0.4, 0.5), (-2.0, 2.5, 0.9)]:
        out = call(fn, x1, x2, c)
        try:
            got = torch.as_tensor(out, dtype=torch.float64).reshape(2, 2)
        except (TypeError, ValueError, RuntimeError):
            raise wrong("not_2x2", f"expected a 2x2 matrix, got {short(out)}.") from None
        truth = jacobian(lambda v: sine_shear(v, c), torch.tensor([[x1, x2]], dtype=torch.float64))[0]
        if torch.allclose(got, truth, atol=1e-6):
            continue
        where = f"at x = ({x1}, {x2}), c = {c}"
        if torch.allclose(got, truth.T, atol=1e-6):
            raise wrong("transposed", f"{where} you returned the transpose: row i holds the derivatives of output "
                                       f"y_i (J[i][j] = ∂y_i/∂x_j).")
        no_c = torch.tensor([[1.0, math.cos(x2)], [math.cos(x1), 1.0]], dtype=torch.float64)
        if torch.allclose(got, no_c, atol=1e-6):
            raise wrong("forgot_c", f"{where} your off-diagonal entries are cos x₂ and cos x₁ without the shear "
                                     f"strength c: y₁ = x₁ + c·sin x₂, so ∂y₁/∂x₂ = c·cos x₂.")
        sin_for_cos = torch.tensor([[1.0, c * math.sin(x2)], [c * math.sin(x1), 1.0]], dtype=torch.float64)
        if torch.allclose(got, sin_for_cos, atol=1e-6) or torch.allclose(got, -sin_for_cos + 2 * torch.eye(2,
                                                                                   dtype=torch.float64), atol=1e-6):
            raise wrong("sin_for_cos", f"{where} your off-diagonal entries use sin where the derivative of sin is "
                                        f"needed: d/dx₂ (c·sin x₂) = c·cos x₂.")
        if torch.allclose(got.diagonal(), truth.diagonal(), atol=1e-6):
            raise wrong("off_diagonal", f"{where} the diagonal is right but the off-diagonal entries are not: "
                                         f"∂y_1/∂x_2 = c·cos x_2 and ∂y_2/∂x_1 = ?")
        raise wrong("wrong", f"{where} expected {truth.numpy().round(4).tolist()}, got "
                              f"{got.numpy().round(4).tolist()} (checked against autograd).")
    return ("J = [[1, c·cos x₂], [c·cos x₁, 1]], the same as autograd at three points; det J = 1 − c² cos x₁ cos x₂ "
            "> 0 for |c| < 1, so the map is locally invertible everywhere.")
