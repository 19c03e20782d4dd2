"""Lesson 05's checkers accept the right answers and name each planted mistake."""
from __future__ import annotations

import math

import pytest

from flowlib_teaching.exercises.lesson01 import ExerciseError
from flowlib_teaching.exercises.lesson05 import check_bits_per_dim, check_noise_width_correction, check_squeeze_index


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda nll, shape: nll / (math.prod(shape) * math.log(2)), "correct"),
    (lambda nll, shape: nll / math.prod(shape), "nats"),
    (lambda nll, shape: nll / math.log(2), "per_image"),
    (lambda nll, shape: nll / (784 * math.log(2)), "hard_coded_784"),
    (lambda nll, shape: nll / (shape[1] * shape[2] * math.log(2)), "forgot_channels"),
    (lambda nll, shape: nll / (math.prod(shape) * math.log(10)), "log10"),
    (lambda nll, shape: "many", "not_numeric"),
    (lambda nll, shape: ..., "missing"),
])
def test_bits_per_dim_checker(answer, diagnosis):
    assert check_bits_per_dim(answer).diagnosis == diagnosis


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda r, w: r - math.log2(w), "correct"),
    (lambda r, w: r + math.log2(w), "wrong_sign"),
    (lambda r, w: r, "no_correction"),
    (lambda r, w: r - math.log(w), "natural_log"),
    (lambda r, w: r + 1, "other"),
])
def test_noise_width_checker(answer, diagnosis):
    assert check_noise_width_correction(answer).diagnosis == diagnosis


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda c, h, w: (4 * c + 2 * (h % 2) + w % 2, h // 2, w // 2), "correct"),
    (lambda c, h, w: (4 * c + 2 * (w % 2) + h % 2, h // 2, w // 2), "swapped"),
    (lambda c, h, w: (4 * c + 2 * (h % 2) + w % 2, h, w), "position"),
    (lambda c, h, w: (c + 2 * (h % 2) + w % 2, h // 2, w // 2), "channel"),
    (lambda c, h, w: 7, "not_a_triple"),
])
def test_squeeze_index_checker(answer, diagnosis):
    assert check_squeeze_index(answer).diagnosis == diagnosis


def test_strict_raises_on_a_wrong_answer_and_placeholders_are_polite():
    with pytest.raises(ExerciseError, match="wrong way"):
        check_noise_width_correction(lambda r, w: r + math.log2(w), strict=True)
    result = check_squeeze_index(lambda c, h, w: ...)
    assert result.status == "not answered" and "not answered yet" in str(result)
