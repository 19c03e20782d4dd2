"""Exercise checkers of lessons 02/03 (in the flowlib_teaching.exercises.lesson01 framework): placeholders are 'not answered yet',
right answers pass, typical wrong answers are told what is wrong (message and diagnosis), and strict mode raises
ExerciseError."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib_teaching.exercises import lesson02 as ex
from flowlib_teaching.exercises import lesson03 as ex3


def _todo(*args):
    raise NotImplementedError


@pytest.mark.parametrize("checker,placeholder", [
    (ex.check_area, ...), (ex3.check_kl_gap, None), (ex.check_triangular_logdet, _todo),
    (ex.check_sine_shear_jacobian, _todo), (ex3.check_composition_log_prob, _todo),
    (ex3.check_pass_counts, {"maf_density": ..., "maf_sampling": ..., "iaf_density": ..., "iaf_sampling": ...}),
])
def test_placeholder_is_not_answered_yet(checker, placeholder):
    fb = checker(placeholder)
    assert fb.status == "not answered" and not fb.passed and "not answered yet" in str(fb)
    assert fb.diagnosis == "missing"
    with pytest.raises(ex.ExerciseError, match="not answered yet"):
        checker(placeholder, strict=True)


def test_a_function_that_returns_nothing_is_not_answered_yet():
    assert ex.check_triangular_logdet(lambda J: None).status == "not answered"
    assert ex3.check_composition_log_prob(lambda flows, base, x: ...).status == "not answered"


def test_results_are_exercise_results():
    fb = ex.check_area(2.5)
    assert isinstance(fb, ex.ExerciseResult) and fb.passed and fb.status == "correct"
    assert str(fb).startswith("✓") and "Exercise 1" in str(fb) and "|det A|" in fb._repr_html_()
    assert "D = 10" in ex3.check_pass_counts(...).exercise


def test_area():
    assert ex.check_area(2.5, strict=True).passed
    assert "|det A|" in ex.check_area(-2.5).message and ex.check_area(-2.5).diagnosis == "signed_det"
    assert "ad − bc" in ex.check_area(3.5).message
    assert "trace" in ex.check_area(1.5).message
    assert ex.check_area("two").diagnosis == "not_a_number"
    with pytest.raises(ex.ExerciseError, match="trace"):
        ex.check_area(1.5, strict=True)


def test_triangular_logdet():
    good = lambda J: torch.diagonal(J, dim1=-2, dim2=-1).abs().log().sum(-1)  # noqa: E731
    assert ex.check_triangular_logdet(good, strict=True).passed
    assert "NaN" in ex.check_triangular_logdet(lambda J: torch.diagonal(J, dim1=1, dim2=2).log().sum(-1)).message
    assert "not its log" in ex.check_triangular_logdet(
        lambda J: torch.diagonal(J, dim1=1, dim2=2).prod(-1).abs()).message
    full = ex.check_triangular_logdet(lambda J: torch.linalg.slogdet(J)[1])
    assert "only the diagonal" in full.message and full.diagnosis == "full_determinant"
    assert "shape" in ex.check_triangular_logdet(lambda J: torch.diagonal(J, dim1=1, dim2=2).abs().log()).message
    assert "raised ZeroDivisionError" in ex.check_triangular_logdet(lambda J: 1 / 0).message
    # the whole matrix: log 0 = −inf above the diagonal (this diagnosis could not fire before it looked for −inf)
    whole = ex.check_triangular_logdet(lambda J: J.abs().log().sum((1, 2)))
    assert whole.diagnosis == "whole_matrix" and "only the diagonal" in whole.message


def test_sine_shear_jacobian():
    good = lambda a, b, s: [[1, s * math.cos(b)], [s * math.cos(a), 1]]  # noqa: E731
    assert ex.check_sine_shear_jacobian(good, strict=True).passed
    assert "transpose" in ex.check_sine_shear_jacobian(lambda a, b, s: [[1, s * math.cos(a)],
                                                                        [s * math.cos(b), 1]]).message
    assert "off-diagonal" in ex.check_sine_shear_jacobian(lambda a, b, s: [[1, 0], [0, 1]]).message
    assert ex.check_sine_shear_jacobian(lambda a, b, s: "J").diagnosis == "not_2x2"
    assert ex.check_sine_shear_jacobian(2.0).diagnosis == "not_a_function"


def test_composition_log_prob():
    def good(flows, base, x):
        total = torch.zeros(x.shape[0])
        for f in flows:
            x, ld = f(x)
            total = total + ld
        return base.log_prob(x) + total

    def minus(flows, base, x):
        total = torch.zeros(x.shape[0])
        for f in flows:
            x, ld = f(x)
            total = total - ld
        return base.log_prob(x) + total

    def no_logdet(flows, base, x):
        for f in flows:
            x, _ = f(x)
        return base.log_prob(x)

    assert ex3.check_composition_log_prob(good, strict=True).passed
    assert "wrong sign" in ex3.check_composition_log_prob(minus).message
    assert ex3.check_composition_log_prob(minus).diagnosis == "logdet_sign"
    assert "left out the log-determinants" in ex3.check_composition_log_prob(no_logdet).message
    with pytest.raises(ex.ExerciseError, match="wrong sign"):
        ex3.check_composition_log_prob(minus, strict=True)


def test_kl_gap():
    assert ex3.check_kl_gap(0.22, strict=True).passed
    assert "never negative" in ex3.check_kl_gap(-0.22).message
    assert ex3.check_kl_gap(12345.0).diagnosis == "wrong"  # an unrecognised number gets a message, not a NameError
    assert "cross-entropy" in ex3.check_kl_gap(2.61).message


def test_pass_counts():
    right = {"maf_density": 1, "maf_sampling": 10, "iaf_density": 10, "iaf_sampling": 1}
    assert ex3.check_pass_counts(right, strict=True).passed
    fb = ex3.check_pass_counts({**right, "maf_sampling": 1})
    assert not fb.passed and "maf_sampling" in fb.message and "one pass per coordinate" in fb.hint
    assert fb.diagnosis == "wrong_maf_sampling" and "one pass per coordinate" in str(fb)
    assert "keys" in ex3.check_pass_counts({"maf": 1}).message
    assert ex3.check_pass_counts({**right, "iaf_density": ...}).status == "not answered"


def test_pass_counts_accept_d_minus_one():
    """D − 1 for a sequential direction is right too (the first coordinate's pass can be skipped); flowlib runs D."""
    fb = ex3.check_pass_counts({"maf_density": 1, "maf_sampling": 9, "iaf_density": 9, "iaf_sampling": 1}, strict=True)
    assert fb.passed and "skipped" in fb.message
    assert ex3.check_pass_counts({"maf_density": 1, "maf_sampling": 10, "iaf_density": 9, "iaf_sampling": 1}).passed
    assert ex3.check_pass_counts({"maf_density": 1, "maf_sampling": 8, "iaf_density": 10, "iaf_sampling": 1}
                                ).diagnosis == "wrong_maf_sampling"
    assert ex3.check_pass_counts({"maf_density": 0, "maf_sampling": 10, "iaf_density": 10, "iaf_sampling": 1}
                                ).diagnosis == "wrong_maf_density"


# ---- the diagnoses added after the read-throughs as new students (issue 11) -----------------------------------------
def test_headers_match_the_lesson_numbering():
    # lesson 02: exercise 2 is the Jacobian by hand, exercise 3 the triangular log-det
    assert ex.check_sine_shear_jacobian(_todo).exercise.startswith("Exercise 2 —")
    assert ex.check_triangular_logdet(_todo).exercise.startswith("Exercise 3 —")


def test_sine_shear_forgot_c_and_sin_for_cos():
    forgot_c = ex.check_sine_shear_jacobian(lambda x1, x2, c: [[1, math.cos(x2)], [math.cos(x1), 1]])
    assert forgot_c.diagnosis == "forgot_c" and "c·cos x₂" in forgot_c.message
    sin = ex.check_sine_shear_jacobian(lambda x1, x2, c: [[1, c * math.sin(x2)], [c * math.sin(x1), 1]])
    assert sin.diagnosis == "sin_for_cos"


def test_composition_in_reversed_order_is_named():
    def reversed_order(flows, base, x):
        h, total = x, torch.zeros(x.shape[0])
        for f in reversed(flows):
            h, ld = f(h)
            total = total + ld
        return base.log_prob(h) + total

    r = ex3.check_composition_log_prob(reversed_order)
    assert r.diagnosis == "reversed_order", str(r)


@pytest.mark.parametrize("answer", [2.61 / 2.39, 3.0, (2.61 - 2.39) / math.log(2), -1.0])
def test_kl_gap_any_wrong_number_gets_a_message_not_a_crash(answer):
    r = ex3.check_kl_gap(answer)
    assert r.status == "wrong" and "E_{p_data}" in (r.message + r.hint) or r.diagnosis == "units", str(r)
    assert "NameError" not in str(r)


def test_kl_gap_in_bits_is_named():
    assert ex3.check_kl_gap((2.61 - 2.39) / math.log(2)).diagnosis == "units"


def test_maf_and_iaf_swapped_is_named():
    r = ex3.check_pass_counts({"maf_density": 10, "maf_sampling": 1, "iaf_density": 1, "iaf_sampling": 10})
    assert r.diagnosis == "maf_iaf_swapped", str(r)
