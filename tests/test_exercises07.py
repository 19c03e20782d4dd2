"""Lesson 07's checkers accept the right answers and name each planted mistake."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib_teaching.exercises.framework import ExerciseError
from flowlib_teaching.exercises.lesson07 import check_attribute_direction, check_shell_radius, check_slerp


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda d, t: t * math.sqrt(d), "correct"),
    (lambda d, t: t * math.sqrt(d - 0.5), "correct"),
    (lambda d, t: d * t * t, "squared"),
    (lambda d, t: math.sqrt(d), "no_temperature"),
    (lambda d, t: math.sqrt(d * t), "variance_t"),
    (lambda d, t: t, "per_coordinate"),
    (lambda d, t: "far", "not_numeric"),
    (lambda d, t: 2 * d, "other"),
    (lambda d, t: ..., "missing"),
])
def test_shell_radius_checker(answer, diagnosis):
    assert check_shell_radius(answer).diagnosis == diagnosis


def _slerp(z0, z1, t):
    w = torch.arccos(torch.dot(z0, z1) / (z0.norm() * z1.norm()))
    return torch.sin((1 - t) * w) / torch.sin(w) * z0 + torch.sin(t * w) / torch.sin(w) * z1


@pytest.mark.parametrize("answer, diagnosis", [
    (_slerp, "correct"),
    (lambda z0, z1, t: (1 - t) * z0 + t * z1, "linear"),
    (lambda z0, z1, t: _slerp(z0, z1, 1 - t), "reversed"),
    (lambda z0, z1, t: _slerp(z0, z1, t) / _slerp(z0, z1, t).norm(), "unit_norm"),
    (lambda z0, z1, t: _slerp(z0, z1, t)[:10], "shape"),
    (lambda z0, z1, t: "z", "not_a_tensor"),
    (lambda z0, z1, t: 2 * _slerp(z0, z1, t), "other"),
    (lambda z0, z1, t: 1 / 0, "raised"),
])
def test_slerp_checker(answer, diagnosis):
    assert check_slerp(answer).diagnosis == diagnosis


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda z, y, s, t: z[y == t].mean(0) - z[y == s].mean(0), "correct"),
    (lambda z, y, s, t: z[y == s].mean(0) - z[y == t].mean(0), "reversed"),
    (lambda z, y, s, t: z[y == t].sum(0) - z[y == s].sum(0), "sum"),
    (lambda z, y, s, t: z[y == t].mean(0) - z.mean(0), "overall_mean"),
    (lambda z, y, s, t: z[y == t].mean(0), "target_only"),
    (lambda z, y, s, t: z[y == t].mean(0) - z[y == s].mean(0) + 1, "other"),
])
def test_attribute_direction_checker(answer, diagnosis):
    assert check_attribute_direction(answer).diagnosis == diagnosis


def test_strict_raises_on_a_wrong_answer_and_placeholders_are_polite():
    with pytest.raises(ExerciseError, match="LINEAR interpolation"):
        check_slerp(lambda z0, z1, t: (1 - t) * z0 + t * z1, strict=True)
    result = check_attribute_direction(lambda z, y, s, t: ...)
    assert result.status == "not answered" and "not answered yet" in str(result)
