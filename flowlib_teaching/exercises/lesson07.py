"""Answer checkers for lesson 07 (what an exact latent and an exact likelihood buy); same behaviour as
flowlib_teaching.exercises.lesson01 (placeholders are "not answered yet", ``strict=True`` raises).

    check_shell_radius(fn)         fn(d, temperature) -> the typical norm |z| of z ~ N(0, T^2 I_d), d large
    check_slerp(fn)                fn(z0, z1, t) -> spherical interpolation between two latents (D,)
    check_attribute_direction(fn)  fn(z, labels, source, target) -> mean z of class target - mean z of class source
"""
from __future__ import annotations

import math

import torch

from flowlib_teaching.exercises.framework import call, checker, number, wrong

__all__ = ["check_attribute_direction", "check_shell_radius", "check_slerp"]


def _vector(v, shape, what: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(v, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise wrong("not_a_tensor", f"{what} should be a tensor of shape {tuple(shape)}, got "
                                     f"{type(v).__name__}.") from None
    if tuple(t.shape) != tuple(shape):
        raise wrong("shape", f"{what} should have shape {tuple(shape)}, yours has {tuple(t.shape)}.")
    return t


@checker("Exercise 1 — the typical norm of a Gaussian latent",
          "|z|^2 = z_1^2 + ... + z_d^2 adds d terms of mean T^2; the norm is its square root, concentrated.")
def check_shell_radius(fn) -> str:
    from flowlib.latents import shell_radius

    for d, t in [(784, 1.0), (784, 0.7), (3072, 1.0), (100, 0.5)]:
        got = number(call(fn, d, t), "the norm")
        want = shell_radius(d, t)
        if abs(got - want) <= 0.01 * want:
            continue
        if math.isclose(got, d * t * t, rel_tol=0.01):
            raise wrong("squared", f"for d = {d}, T = {t:g} you give {got:g}: that is E|z|^2 (= d T^2), the squared "
                                    f"norm.", "take the square root.")
        if math.isclose(got, math.sqrt(d), rel_tol=0.01) and t != 1:
            raise wrong("no_temperature", f"for d = {d}, T = {t:g} you give {got:g} = sqrt(d): the temperature is "
                                           f"missing.", "each coordinate has standard deviation T.")
        if math.isclose(got, math.sqrt(d * t), rel_tol=0.01) and t != 1:
            raise wrong("variance_t", f"for d = {d}, T = {t:g} you give sqrt(d T) = {got:g}: T is the standard "
                                       f"deviation, so each z_i^2 has mean T^2, not T.")
        if math.isclose(got, t, rel_tol=0.01) or math.isclose(got, 1.0, rel_tol=0.01):
            raise wrong("per_coordinate", f"you give {got:g}, the size of ONE coordinate; the norm adds up all "
                                           f"{d} of them.", "|z| = sqrt(sum of z_i^2).")
        raise wrong("other", f"for d = {d}, T = {t:g} the typical norm is {want:.3f}, you give {got:g}.")
    return ("|z| ≈ T·sqrt(d): for Fashion-MNIST's d = 784 that is 28 at T = 1, and almost no sample lies near "
            "z = 0, where the density is highest.")


@checker("Exercise 2 — spherical interpolation (slerp)",
          "cos w = <z0, z1> / (|z0| |z1|); slerp = sin((1 − t) w)/sin w · z0 + sin(t w)/sin w · z1.")
def check_slerp(fn) -> str:
    from flowlib.latents import slerp

    g = torch.Generator().manual_seed(7)
    z0 = torch.randn(64, generator=g, dtype=torch.float64)
    z1 = 1.3 * torch.randn(64, generator=g, dtype=torch.float64)
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        got = _vector(call(fn, z0.clone(), z1.clone(), t), z0.shape, f"slerp(z0, z1, {t})")
        want = slerp(z0, z1, t)
        if torch.allclose(got, want, atol=1e-6, rtol=1e-6):
            continue
        if torch.allclose(got, (1 - t) * z0 + t * z1, atol=1e-6):
            raise wrong("linear", f"at t = {t} you return (1 − t) z0 + t z1: that is LINEAR interpolation. Its norm "
                                   f"at t = 0.5 is {float(((z0 + z1) / 2).norm()):.2f}, well below both endpoints' "
                                   f"({float(z0.norm()):.2f}, {float(z1.norm()):.2f}).",
                         "interpolate the angle, not the coordinates.")
        if torch.allclose(got, slerp(z0, z1, 1 - t), atol=1e-6):
            raise wrong("reversed", f"at t = {t} you return the point for t = {1 - t:g}: the endpoints are swapped.",
                         "t = 0 must give z0, t = 1 must give z1.")
        if torch.allclose(got, want / want.norm(), atol=1e-6):
            raise wrong("unit_norm", f"at t = {t} your vector has norm 1: you interpolated the directions but "
                                      f"dropped the lengths.", "do not normalise the result.")
        raise wrong("other", f"at t = {t} your vector differs from slerp by up to "
                              f"{float((got - want).abs().max()):.3g} (norm {float(got.norm()):.3f} instead of "
                              f"{float(want.norm()):.3f}).")
    return "slerp(z0, z1, t), checked at five points on two latents of different lengths."


@checker("Exercise 3 — an attribute direction from labels",
          "average the latents of each of the two classes; the direction points from the source's mean to the "
          "target's.")
def check_attribute_direction(fn) -> str:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(60, 16, generator=g, dtype=torch.float64)
    labels = torch.arange(60) % 4
    labels[:9] = 2  # classes of different sizes, so a sum is not a multiple of the mean
    for source, target in [(1, 2), (3, 0)]:
        got = _vector(call(fn, z.clone(), labels.clone(), source, target), (16,), "the direction")
        want = z[labels == target].mean(0) - z[labels == source].mean(0)
        if torch.allclose(got, want, atol=1e-9):
            continue
        if torch.allclose(got, -want, atol=1e-9):
            raise wrong("reversed", f"for source {source} and target {target} your direction points from the target "
                                     f"to the source.", "target mean minus source mean: adding it moves towards the "
                                                        "target.")
        if torch.allclose(got, z[labels == target].sum(0) - z[labels == source].sum(0), atol=1e-9):
            raise wrong("sum", "you subtract the SUMS of the latents: the classes have different sizes, so the "
                                "result depends on how many examples each class has.", "use the means.")
        if torch.allclose(got, z[labels == target].mean(0) - z.mean(0), atol=1e-9):
            raise wrong("overall_mean", "you subtract the mean over ALL latents, not over the source class.")
        if torch.allclose(got, z[labels == target].mean(0), atol=1e-9):
            raise wrong("target_only", "you return the target's mean latent; subtract the source's mean.")
        raise wrong("other", f"for source {source} and target {target} your direction differs from the expected "
                              f"one by up to {float((got - want).abs().max()):.3g}.")
    return "mean(z | target) − mean(z | source), for classes of different sizes."
