"""Lesson 05's checkers accept the right answers (written here independently of the library) and name each planted
mistake."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib import images
from flowlib_teaching.exercises.lesson01 import ExerciseError
from flowlib_teaching.exercises.lesson05 import check_latent_shapes, check_pipeline_bits_per_dim, check_unsqueeze


def _pre(y, alpha, levels=256, at=None, one_minus_2a=True):
    s = alpha + (1 - 2 * alpha) * y / levels if at is None else at(y)
    v = (math.log(1 - 2 * alpha) if one_minus_2a else 0.0) - math.log(levels) - torch.log(s) - torch.log1p(-s)
    return v.reshape(len(y), -1).sum(1)


def bpd_right(lpz, ld, y, alpha):
    return -(lpz + ld + _pre(y, alpha)) / (y[0].numel() * math.log(2))


def bpd_through_flowlib(lpz, ld, y, alpha):
    """The same answer from flowlib's own pre-processing flow: an oracle the checker cannot share a bug with."""
    pre = images.logit_preprocessing(256, alpha).double()
    _, ld_pre = pre(y)
    return -(lpz + ld + ld_pre) / (y[0].numel() * math.log(2))


LN2 = math.log(2)


@pytest.mark.parametrize("answer, diagnosis", [
    (bpd_right, "correct"),
    (bpd_through_flowlib, "correct"),
    (lambda p, l, y, a: -(p + l) / (y[0].numel() * LN2), "forgot_preprocessing"),
    (lambda p, l, y, a: -(p + _pre(y, a)) / (y[0].numel() * LN2), "forgot_flow_logdet"),
    (lambda p, l, y, a: -(p - l + _pre(y, a)) / (y[0].numel() * LN2), "flow_logdet_sign"),
    (lambda p, l, y, a: -(p + l - _pre(y, a)) / (y[0].numel() * LN2), "preprocessing_sign"),
    (lambda p, l, y, a: -(p + l + _pre(y, a, levels=1, at=lambda v: a + (1 - 2 * a) * v / 256))
     / (y[0].numel() * LN2), "forgot_1_over_256"),
    (lambda p, l, y, a: -(p + l + _pre(y, a, one_minus_2a=False)) / (y[0].numel() * LN2), "forgot_one_minus_2alpha"),
    (lambda p, l, y, a: -(p + l + _pre(y, a, at=lambda v: v / 256)) / (y[0].numel() * LN2), "logit_at_y"),
    (lambda p, l, y, a: -(p + l + _pre(y, a)) * LN2 / y[0].numel(), "multiplied_by_ln2"),
    (lambda p, l, y, a: -(p + l + _pre(y, a)) / y[0].numel(), "nats"),
    (lambda p, l, y, a: -(p + l + _pre(y, a)) / LN2, "per_image"),
    (lambda p, l, y, a: -(p + l + _pre(y, a)) / (784 * LN2), "hard_coded_784"),
    (lambda p, l, y, a: -(p + l + _pre(y, a)) / (y.shape[2] * y.shape[3] * LN2), "forgot_channels"),
    (lambda p, l, y, a: (p + l + _pre(y, a)) / (y[0].numel() * LN2), "sign"),
    (lambda p, l, y, a: bpd_right(p, l, y, a) + torch.tensor([0, 0.5, 0, 0], dtype=torch.float64), "value"),
    (lambda p, l, y, a: bpd_right(p, l, y, a).mean(), "shape"),
    (lambda p, l, y, a: "many", "not_numeric"),
    (lambda p, l, y, a: ..., "missing"),
])
def test_pipeline_bits_per_dim_checker(answer, diagnosis):
    r = check_pipeline_bits_per_dim(answer)
    assert r.diagnosis == diagnosis, str(r)


def test_value_feedback_counts_from_one():
    r = check_pipeline_bits_per_dim(
        lambda p, l, y, a: bpd_right(p, l, y, a) + torch.tensor([0, 0.5, 0, 0], dtype=torch.float64))
    assert "image 2 (counting from 1)" in r.message


def unsqueeze_right(z):
    b, c4, h, w = z.shape
    return z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)


def unsqueeze_by_loops(z):  # pixel by pixel from the stated convention: channel 4c + 2i + j <- pixel (2h + i, 2w + j)
    b, c4, h, w = z.shape
    x = torch.empty(b, c4 // 4, 2 * h, 2 * w, dtype=z.dtype)
    for c in range(c4 // 4):
        for i in range(2):
            for j in range(2):
                x[:, c, i::2, j::2] = z[:, 4 * c + 2 * i + j]
    return x


@pytest.mark.parametrize("answer, diagnosis", [
    (unsqueeze_right, "correct"),
    (unsqueeze_by_loops, "correct"),
    (lambda z: z.reshape(z.shape[0], z.shape[1] // 4, 2 * z.shape[2], 2 * z.shape[3]), "plain_reshape"),
    (lambda z: z.reshape(z.shape[0], z.shape[1] // 4, 2, 2, z.shape[2], z.shape[3]).permute(0, 1, 4, 3, 5, 2)
     .reshape(z.shape[0], z.shape[1] // 4, 2 * z.shape[2], 2 * z.shape[3]), "swapped"),
    (lambda z: z.reshape(z.shape[0], 2, 2, z.shape[1] // 4, z.shape[2], z.shape[3]).permute(0, 3, 4, 1, 5, 2)
     .reshape(z.shape[0], z.shape[1] // 4, 2 * z.shape[2], 2 * z.shape[3]), "channel_blocks"),
    (lambda z: __import__("flowlib").Squeeze()(z)[0], "squeezed_again"),
    (lambda z: z, "shape"),
    (lambda z: unsqueeze_right(z).flip(-1), "wrong"),
    (lambda z: ..., "missing"),
])
def test_unsqueeze_checker(answer, diagnosis):
    r = check_unsqueeze(answer)
    assert r.diagnosis == diagnosis, str(r)


def shapes_right(shape, levels):
    c, h, w = shape
    out = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        if level < levels - 1:
            out.append((c // 2, h, w))
            c //= 2
        else:
            out.append((c, h, w))
    return out


def _no_factor(shape, levels):
    c, h, w = shape
    out = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        out.append((c // 2, h, w) if level < levels - 1 else (c, h, w))
    return out


@pytest.mark.parametrize("answer, diagnosis", [
    (shapes_right, "correct"),
    (_no_factor, "no_factor_out"),
    (lambda s, L: shapes_right(s, L)[:-1] + [(shapes_right(s, L)[-1][0] // 2, *shapes_right(s, L)[-1][1:])],
     "last_level_halved"),
    (lambda s, L: shapes_right(s, L)[:-1], "count"),
    (lambda s, L: [(1, 1, 1)] * L, "count_values"),
    (lambda s, L: [(sh[0], s[1], s[2]) for sh in shapes_right(s, L)], "forgot_squeeze"),
    (lambda s, L: 3, "not_shapes"),
])
def test_latent_shapes_checker(answer, diagnosis):
    r = check_latent_shapes(answer)
    assert r.diagnosis == diagnosis, str(r)


def test_strict_raises_on_a_wrong_answer_and_placeholders_are_polite():
    with pytest.raises(ExerciseError, match="MULTIPLIED"):
        check_pipeline_bits_per_dim(lambda p, l, y, a: -(p + l + _pre(y, a)) * LN2 / y[0].numel(), strict=True)
    result = check_unsqueeze(lambda z: ...)
    assert result.status == "not answered" and "not answered yet" in str(result)
