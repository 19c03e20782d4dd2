"""Answer checkers for lesson 06 (Glow); same behaviour as flowlib_teaching.exercises.lesson01 (placeholders are "not answered yet",
``strict=True`` raises).

    check_conv1x1_logdet(fn)      fn(W, H, Wd) -> log|det dz/dx| of a 1x1 convolution with C x C matrix W over H x Wd
    check_actnorm_init(fn)        fn(x) -> (log_scale, shift), each (C,): ActNorm's data-dependent start for x (B, C, H, W)
    check_glow_latent_shapes(fn)  fn(shape, levels) -> the shape of each level's factored-out latent, as Glow builds it
"""
from __future__ import annotations

import math

import torch

from flowlib_teaching.exercises.framework import call, checker, number, wrong

__all__ = ["check_actnorm_init", "check_conv1x1_logdet", "check_glow_latent_shapes"]


def _matrices() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0], [1.5, 0.0]], dtype=torch.float64)  # det = -3: the sign matters
    c = torch.randn(5, 5, generator=g, dtype=torch.float64) * 0.3 + torch.eye(5, dtype=torch.float64)
    return [a, b, c]


@checker("Exercise 1 — the log-determinant of a 1x1 convolution",
          "the Jacobian is block-diagonal: one copy of W for each of the H·W pixels.")
def check_conv1x1_logdet(fn) -> str:
    for w, (h, wd) in zip(_matrices(), [(4, 4), (3, 5), (7, 7)]):
        sign, logabs = torch.linalg.slogdet(w)
        want = h * wd * float(logabs)
        got = number(call(fn, w.clone(), h, wd), "the log-determinant")
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-8):
            continue
        c = w.shape[0]
        if math.isclose(got, float(logabs), rel_tol=1e-6, abs_tol=1e-8):
            raise wrong("forgot_hw", f"for a {c}x{c} W on a {h}x{wd} image you give {got:.4f} = log|det W|, the "
                                      f"log-det of ONE pixel. The convolution applies W at each of the {h * wd} "
                                      f"pixels.", "multiply by H·W (a bug shipped by public Glow code).")
        if math.isclose(got, (h + wd) * float(logabs), rel_tol=1e-6):
            raise wrong("h_plus_w", f"you multiply by H + W = {h + wd}; the pixel count is H·W = {h * wd}.")
        if math.isclose(got, c * h * wd * float(logabs), rel_tol=1e-6):
            raise wrong("times_c", f"you multiply by C·H·W = {c * h * wd}; log|det W| already accounts for the "
                                    f"{c} channels of one pixel.", "multiply by H·W only.")
        if math.isclose(got, h * wd * float(torch.linalg.det(w)), rel_tol=1e-6):
            raise wrong("det_not_log", "you use det W, not its logarithm.", "use torch.linalg.slogdet(W)[1].")
        if float(sign) < 0 and not math.isfinite(got):
            raise wrong("no_abs", f"this W has a negative determinant ({float(torch.linalg.det(w)):.3g}), and your "
                                   f"answer is {got}: the log of a negative number.",
                         "a density needs |det|: use torch.linalg.slogdet(W)[1] (log|det W|).")
        if math.isclose(got, -want, rel_tol=1e-6):
            raise wrong("wrong_sign", f"you give {got:.4f}, the negative of the answer: that is the inverse's "
                                       f"log-det (x = W⁻¹ z).")
        raise wrong("other", f"for a {c}x{c} W on a {h}x{wd} image the answer is {want:.4f}; you give {got:.4f}.")
    return "H·W·log|det W|: the same C×C determinant once per pixel, computed once."


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x1 = torch.randn(6, 3, 2, 2, generator=g, dtype=torch.float64) * torch.tensor([0.5, 2.0, 4.0],
                                                                                   dtype=torch.float64).view(1, 3, 1, 1)
    x1 = x1 + torch.tensor([1.0, -3.0, 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    x2 = torch.rand(4, 2, 3, 3, generator=g, dtype=torch.float64) * 10
    return [x1, x2]


def _as_pair(out, c: int):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise wrong("not_a_pair", f"return a pair (log_scale, shift), got {type(out).__name__}.")
    vals = []
    for name, v in zip(("log_scale", "shift"), out):
        t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
        if t.numel() != c:
            raise wrong("wrong_shape", f"{name} should hold one number per channel ({c}), got {t.numel()} values.",
                         "the statistics are over the batch AND the pixels: x.mean(dim=(0, 2, 3)).")
        vals.append(t)
    return vals


@checker("Exercise 2 — ActNorm's data-dependent initialisation",
          "after the first batch, z = x·exp(log_scale) + shift has mean 0 and variance 1 in every channel.")
def check_actnorm_init(fn) -> str:
    for x in _batches():
        c = x.shape[1]
        log_scale, shift = _as_pair(call(fn, x.clone()), c)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3), unbiased=False)
        want_ls, want_shift = -std.log(), -mean / std
        if torch.allclose(log_scale, want_ls, rtol=1e-5, atol=1e-7) and torch.allclose(shift, want_shift, rtol=1e-5,
                                                                                         atol=1e-7):
            continue
        n = x.numel() // c
        std_unbiased = x.std(dim=(0, 2, 3), unbiased=True)
        if torch.allclose(log_scale, -std_unbiased.log(), rtol=1e-5):
            raise wrong("unbiased_std", f"you use the unbiased standard deviation (divide by n − 1 = {n - 1}); the "
                                         f"output's variance is then (n−1)/n, not 1.",
                         "x.std(dim=(0, 2, 3), unbiased=False).")
        if torch.allclose(log_scale, -(std ** 2).log(), rtol=1e-5):
            raise wrong("variance", "your log_scale is −log(variance): divide by the standard deviation, not the "
                                     "variance.")
        if torch.allclose(log_scale, std.log(), rtol=1e-5):
            raise wrong("scale_sign", "your log_scale is +log(std): that multiplies by the standard deviation, "
                                       "widening the channels further.", "log_scale = −log(std).")
        if torch.allclose(log_scale, want_ls, rtol=1e-5):
            if torch.allclose(shift, -mean, rtol=1e-5, atol=1e-7):
                raise wrong("shift_unscaled", "log_scale is right; the shift is −mean, but the shift is added AFTER "
                                               "the scaling.", "shift = −mean · exp(log_scale) = −mean / std.")
            if torch.allclose(shift, mean / std, rtol=1e-5, atol=1e-7):
                raise wrong("shift_sign", "log_scale is right; the shift has the wrong sign.")
            raise wrong("shift", f"log_scale is right; the shift should be {want_shift.numpy().round(4).tolist()}, "
                                  f"you give {shift.numpy().round(4).tolist()}.")
        # statistics of the first image only (over its pixels, not the batch)
        mean0, std0 = x[0].mean(dim=(1, 2)), x[0].std(dim=(1, 2), unbiased=False)
        if torch.allclose(log_scale, -std0.log(), rtol=1e-5) or torch.allclose(shift, -mean0 / std0, rtol=1e-5):
            raise wrong("first_sample", "your statistics come from one image (x[0]); ActNorm's come from the whole "
                                         "batch and all pixels.", "x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), "
                                                                   "unbiased=False).")
        raise wrong("other", f"for this batch log_scale should be {want_ls.numpy().round(4).tolist()} and shift "
                              f"{want_shift.numpy().round(4).tolist()}; you give {log_scale.numpy().round(4).tolist()} "
                              f"and {shift.numpy().round(4).tolist()}.")
    return "log_scale = −log std, shift = −mean/std, per channel, over the batch and every pixel."


@checker("Exercise 3 — the shape of each level's latent in Glow",
          "each level squeezes (C, H, W) -> (4C, H/2, W/2); every level but the last factors out half the channels.")
def check_glow_latent_shapes(fn) -> str:
    from flowlib.builders import glow_flow

    for shape, levels in [((1, 28, 28), 2), ((3, 32, 32), 3), ((2, 8, 8), 1), ((1, 16, 16), 4)]:
        want = [tuple(s) for s in glow_flow(shape, levels=levels, steps=1, hidden=2).latent_shapes]
        out = call(fn, shape, levels)
        try:
            got = [tuple(int(v) for v in s) for s in out]
        except (TypeError, ValueError):
            raise wrong("not_shapes", f"return a list of (C, H, W) tuples, one per level; got {out!r:.80}.") from None
        if got == want:
            continue
        if len(got) != len(want):
            raise wrong("count", f"for {shape} with {levels} level(s) there is one latent per level ({levels}); "
                                  f"you give {len(got)}.")
        # the usual slip: forgetting that only half the channels go on after a level
        c, h, w = shape
        no_halving = []
        for _ in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            no_halving.append((c // 2, h, w))
        no_halving[-1] = (c, h, w)
        if got == no_halving:
            raise wrong("forgot_halving", f"for {shape}, {levels} levels you give {got}: the next level squeezes "
                                           f"only the half that was KEPT.", f"the answer is {want}.")
        if got[-1] != want[-1] and got[:-1] == want[:-1]:
            raise wrong("last_level", f"the last level keeps all its channels (nothing is left to go on): "
                                       f"{want[-1]}, you give {got[-1]}.")
        total = sum(math.prod(s) for s in got)
        if total != math.prod(shape):
            raise wrong("count_values", f"your latents hold {total} values, the image {math.prod(shape)}: a flow "
                                         f"never changes the number of values.", f"the answer for {shape} is {want}.")
        raise wrong("other", f"for {shape} with {levels} level(s) the latents are {want}; you give {got}.")
    return "squeeze, then half the channels leave at every level but the last; the sizes add up to C·H·W."
