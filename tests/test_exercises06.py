"""Lesson 06's checkers: the right answer passes, each classic mistake gets its own diagnosis, placeholders are
"not answered yet", and a crashing answer is reported, not raised."""
from __future__ import annotations

import pytest
import torch

from flowlib_teaching.exercises.framework import ExerciseError
from flowlib_teaching.exercises.lesson06 import check_actnorm_init, check_conv1x1_logdet, check_glow_latent_shapes


def _logdet(W, H, Wd):
    return H * Wd * torch.linalg.slogdet(W)[1]


@pytest.mark.parametrize("answer, diagnosis", [
    (_logdet, "correct"),
    (lambda W, H, Wd: torch.linalg.slogdet(W)[1], "forgot_hw"),
    (lambda W, H, Wd: (H + Wd) * torch.linalg.slogdet(W)[1], "h_plus_w"),
    (lambda W, H, Wd: W.shape[0] * H * Wd * torch.linalg.slogdet(W)[1], "times_c"),
    (lambda W, H, Wd: H * Wd * torch.log(torch.linalg.det(W)), "no_abs"),
    (lambda W, H, Wd: -_logdet(W, H, Wd), "wrong_sign"),
    (lambda W, H, Wd: H * Wd * torch.linalg.det(W), "det_not_log"),
    (lambda W, H, Wd: 1.0, "other"),
    (lambda W, H, Wd: "a string", "not_numeric"),
    (lambda W, H, Wd: 1 / 0, "raised"),
    (lambda W, H, Wd: ..., "missing"),
])
def test_conv1x1_logdet(answer, diagnosis):
    assert check_conv1x1_logdet(answer).diagnosis == diagnosis


def _init(x):
    m, s = x.mean((0, 2, 3)), x.std((0, 2, 3), unbiased=False)
    return -s.log(), -m / s


@pytest.mark.parametrize("answer, diagnosis", [
    (_init, "correct"),
    (lambda x: (-x.std((0, 2, 3)).log(), -x.mean((0, 2, 3)) / x.std((0, 2, 3))), "unbiased_std"),
    (lambda x: (-x.var((0, 2, 3), unbiased=False).log(), -x.mean((0, 2, 3))), "variance"),
    (lambda x: (-_init(x)[0], _init(x)[1]), "scale_sign"),
    (lambda x: (_init(x)[0], -x.mean((0, 2, 3))), "shift_unscaled"),
    (lambda x: (_init(x)[0], -_init(x)[1]), "shift_sign"),
    (lambda x: (x.mean(0), x.mean(0)), "wrong_shape"),
    # one image's statistics instead of the batch's (unreachable before: it compared with the batch's std)
    (lambda x: (-x[0].std((1, 2), unbiased=False).log(), -x[0].mean((1, 2)) / x[0].std((1, 2), unbiased=False)),
     "first_sample"),
    (lambda x: _init(x)[0], "not_a_pair"),
    (lambda x: None, "missing"),
])
def test_actnorm_init(answer, diagnosis):
    assert check_actnorm_init(answer).diagnosis == diagnosis


def _shapes(shape, levels, halve=True, keep_last=True):
    c, h, w = shape
    out = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        last = level == levels - 1
        out.append((c, h, w) if last and keep_last else (c // 2, h, w))
        if halve and not last:
            c -= c // 2
    return out


@pytest.mark.parametrize("answer, diagnosis", [
    (_shapes, "correct"),
    (lambda s, L: _shapes(s, L, halve=False), "forgot_halving"),
    (lambda s, L: _shapes(s, L, keep_last=False), "last_level"),
    (lambda s, L: _shapes(s, L)[:-1] or [(1, 1, 1)], "count"),
    (lambda s, L: [(1, 1, 1)] * L, "count_values"),
    (lambda s, L: 42, "not_shapes"),
])
def test_glow_latent_shapes(answer, diagnosis):
    assert check_glow_latent_shapes(answer).diagnosis == diagnosis


def test_strict_raises_on_a_wrong_answer():
    with pytest.raises(ExerciseError):
        check_conv1x1_logdet(lambda W, H, Wd: 0.0, strict=True)
    check_conv1x1_logdet(_logdet, strict=True)
