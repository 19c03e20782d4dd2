"""The lesson-01 exercise checkers: each accepts the right answer, names each planted mistake, treats an untouched
placeholder politely, and raises only with strict=True."""
import math

import numpy as np
import pytest
import torch

from flowlib import Affine, Exp, FlowModel, Inverse, StandardNormal, StandardUniform
from flowlib_teaching.exercises.lesson01 import (ExerciseError, check_affine_uniform_density, check_exponential_sampler,
                               check_lognormal_log_prob, check_square_density)


def inside(x, lo, hi, value):
    return torch.where((x >= lo) & (x <= hi), torch.as_tensor(value, dtype=x.dtype), torch.zeros((), dtype=x.dtype))


def log_normal_pdf(z):
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi)


def phi(z):
    return torch.exp(log_normal_pdf(z))


def not_implemented(*args):
    raise NotImplementedError


PLACEHOLDERS = [None, ..., lambda *a: None, lambda *a: ..., not_implemented]

# (checker, right answers, {planted mistake: expected diagnosis})
CASES = {
    "affine_uniform": (
        check_affine_uniform_density,
        [lambda x: inside(x, 1, 4, 1 / 3),
         lambda x: torch.exp(FlowModel(Inverse(Affine(3.0, 1.0)), StandardUniform()).log_prob(x)),
         lambda x: np.where((np.asarray(x) >= 1) & (np.asarray(x) <= 4), 1 / 3, 0.0)],
        {
            "multiplied_by_jacobian": lambda x: inside(x, 1, 4, 3.0),
            "missing_jacobian": lambda x: inside(x, 1, 4, 1.0),
            "base_density": lambda x: inside(x, 0, 1, 1.0),
            "used_g_not_f": lambda x: inside(3 * x + 1, 0, 1, 1 / 3),
            "wrong_support": lambda x: inside(x, 0, 3, 1 / 3),
            "wrong_height": lambda x: inside(x, 1, 4, 0.25),
            "not_constant": lambda x: inside(x, 1, 4, 1.0) * (x - 1) * 2 / 9,
            "negative": lambda x: -inside(x, 1, 4, 1 / 3),
            "returned_log_density": FlowModel(Inverse(Affine(3.0, 1.0)), StandardUniform()).log_prob,
            "raised": lambda x: 1 / 3 if x > 1 else 0.0,
            "scalar": lambda x: 1 / 3,
            "zero": lambda x: torch.zeros_like(x),
        }),
    "lognormal": (
        check_lognormal_log_prob,
        [lambda x: log_normal_pdf(torch.log(x)) - torch.log(x),
         FlowModel(Inverse(Exp()), StandardNormal()),
         FlowModel(Inverse(Exp()), StandardNormal()).log_prob],
        {
            "logdet_wrong_sign": lambda x: log_normal_pdf(torch.log(x)) + torch.log(x),
            "missing_logdet": lambda x: log_normal_pdf(torch.log(x)),
            "returned_density": lambda x: torch.exp(log_normal_pdf(torch.log(x)) - torch.log(x)),
            "wrong_direction": FlowModel(Exp(), StandardNormal()).log_prob,
            "base_at_x": lambda x: log_normal_pdf(x) - torch.log(x),
            "constant_offset": lambda x: -0.5 * torch.log(x) ** 2 - torch.log(x),
            "not_finite": lambda x: log_normal_pdf(torch.log(x - 1)) - torch.log(x),
            "wrong": lambda x: -torch.log(x) ** 2 - torch.log(x),
        }),
    "exponential": (
        check_exponential_sampler,
        [lambda n, rate: -torch.log(torch.rand(n)) / rate,
         lambda n, rate: -torch.log1p(-torch.rand(n)) / rate,
         lambda n, rate: -np.log(np.random.rand(n)) / rate],
        {
            "negative_samples": lambda n, rate: torch.log(torch.rand(n)) / rate,
            "rate_confusion": lambda n, rate: -torch.log(torch.rand(n)) * rate,
            "nan": lambda n, rate: -torch.log(torch.randn(n)) / rate,
            "non_uniform_input": lambda n, rate: -torch.log(torch.randn(n).abs()) / rate,
            "missing_rate": lambda n, rate: -torch.log(torch.rand(n)),
            "not_random": lambda n, rate: -torch.log(torch.rand(n, generator=torch.Generator().manual_seed(3))) / rate,
            "wrong_distribution": lambda n, rate: torch.rand(n) * 0.9,
            "applied_cdf": lambda n, rate: 1 - torch.exp(-rate * torch.rand(n)),
            "shape": lambda n, rate: -torch.log(torch.rand(10)) / rate,
            "inf": lambda n, rate: -torch.log(torch.cat([torch.zeros(1), torch.rand(n - 1)])) / rate,
        }),
    "square": (
        check_square_density,
        [lambda x: phi(x.sqrt()) / x.sqrt(),
         lambda x: (phi(x.sqrt()) + phi(-x.sqrt())) / (2 * x.sqrt())],
        {
            "one_preimage": lambda x: phi(x.sqrt()) / (2 * x.sqrt()),
            "missing_jacobian": lambda x: 2 * phi(x.sqrt()),
            "multiplied_by_jacobian": lambda x: 2 * phi(x.sqrt()) * 2 * x.sqrt(),
            "base_at_x": lambda x: phi(x) / x.sqrt(),
            "returned_log_density": lambda x: torch.log(phi(x.sqrt()) / x.sqrt()),
            "wrong": lambda x: torch.exp(-x),
        }),
}


@pytest.mark.parametrize("name", CASES)
def test_right_answers_pass(name):
    check, rights, _ = CASES[name]
    for answer in rights:
        result = check(answer)
        assert result.passed, str(result)
        assert result.status == "correct" and result.diagnosis == "correct"
        assert str(result).startswith("✓")
        assert check(answer, strict=True).passed  # strict does not raise on a right answer


MISTAKES = [(name, diagnosis) for name, (_, _, wrongs) in CASES.items() for diagnosis in wrongs]


@pytest.mark.parametrize("name,diagnosis", MISTAKES)
def test_each_planted_mistake_gets_its_own_diagnosis(name, diagnosis):
    check, _, wrongs = CASES[name]
    result = check(wrongs[diagnosis])
    assert result.diagnosis == diagnosis, str(result)
    assert result.status == "wrong" and not result.passed
    text = str(result)
    assert text.startswith("✗") and "Hint:" in text
    assert len(result.message) > 30  # says what is wrong, not just "incorrect"
    with pytest.raises(ExerciseError):
        check(wrongs[diagnosis], strict=True)


def test_messages_name_the_mistake():
    """Spot-check the words a learner reads for the mistakes the lesson warns about."""
    r = check_affine_uniform_density(CASES["affine_uniform"][2]["multiplied_by_jacobian"])
    assert "multiplied" in r.message and "9.00" in r.message  # the wrong density integrates to 9
    r = check_lognormal_log_prob(CASES["lognormal"][2]["logdet_wrong_sign"])
    assert "wrong sign" in r.message and "−log x" in r.message
    r = check_lognormal_log_prob(CASES["lognormal"][2]["missing_logdet"])
    assert "missing" in r.message and "1.65" in r.message
    r = check_exponential_sampler(CASES["exponential"][2]["rate_confusion"])
    assert "1/rate" in r.message and "mean" in r.message
    r = check_exponential_sampler(CASES["exponential"][2]["negative_samples"])
    assert "negative" in r.message and "minus" in r.hint
    r = check_exponential_sampler(CASES["exponential"][2]["nan"])
    assert "torch.randn" in r.hint
    r = check_square_density(CASES["square"][2]["one_preimage"])
    assert "0.50" in r.message and "preimage" in r.message


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("placeholder", range(len(PLACEHOLDERS)))
def test_placeholders_are_not_answered_yet_and_do_not_raise(name, placeholder):
    check = CASES[name][0]
    result = check(PLACEHOLDERS[placeholder])
    assert result.status == "not answered" and result.diagnosis == "missing"
    assert "not answered yet" in str(result)
    assert "Not answered yet" in result._repr_html_()
    with pytest.raises(ExerciseError, match="not answered yet"):
        check(PLACEHOLDERS[placeholder], strict=True)


def test_not_a_function():
    result = check_square_density(0.5)
    assert result.diagnosis == "not_a_function" and "float" in result.message


def test_html_rendering_escapes_and_marks():
    good = check_square_density(CASES["square"][1][0])._repr_html_()
    bad = check_square_density(CASES["square"][2]["one_preimage"])._repr_html_()
    assert "✓ Correct" in good and "✗ Not yet right" in bad and "Hint:" in bad


def test_sampler_check_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    expected_t, expected_n = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    first = check_exponential_sampler(CASES["exponential"][1][0])
    second = check_exponential_sampler(CASES["exponential"][1][0])
    assert first.message == second.message  # the same seeded draw each time
    assert torch.equal(torch.rand(3), expected_t)
    assert np.array_equal(np.random.rand(3), expected_n)


def test_sampler_rate_is_a_parameter():
    # with rate = 1 multiplying and dividing agree, so the right answer must pass at another rate too
    assert check_exponential_sampler(lambda n, rate: -torch.log(torch.rand(n)) / rate, rate=0.5).passed
    wrong = check_exponential_sampler(lambda n, rate: -torch.log(torch.rand(n)) * rate, rate=0.5)
    assert wrong.diagnosis == "rate_confusion"


def test_affine_exercise_with_a_decreasing_map():
    """x = 5 − 2z: support [3, 5], height 1/2; forgetting |·| gives a negative density."""
    check = lambda q: check_affine_uniform_density(q, a=-2.0, b=5.0)  # noqa: E731
    right = check(lambda x: inside(x, 3, 5, 0.5))
    assert right.passed and "x = −2z + 5" in right.exercise
    cases = {
        "missing_absolute_value": lambda x: inside(x, 3, 5, -0.5),
        "multiplied_by_jacobian": lambda x: inside(x, 3, 5, 2.0),
        "missing_jacobian": lambda x: inside(x, 3, 5, 1.0),
        "base_density": lambda x: inside(x, 0, 1, 1.0),
        "used_g_not_f": lambda x: inside(-2 * x + 5, 0, 1, 0.5),  # non-zero on [2, 2.5]
        "wrong_support": lambda x: inside(x, 5, 7, 0.5),
    }
    for diagnosis, answer in cases.items():
        result = check(answer)
        assert result.diagnosis == diagnosis, str(result)
    assert "(x − 5)/(−2)" in check(None).hint


def test_square_exercise_with_a_shift():
    """x = (z − 1)²: the two preimages 1 ± √x have different densities, so the c = 0 shortcut fails."""
    c = 1.0
    check = lambda q: check_square_density(q, c=c)  # noqa: E731
    right = check(lambda x: (phi(c + x.sqrt()) + phi(c - x.sqrt())) / (2 * x.sqrt()))
    assert right.passed and "(z − 1)²" in right.exercise
    cases = {
        "ignored_shift": lambda x: phi(x.sqrt()) / x.sqrt(),
        "one_preimage": lambda x: phi(c + x.sqrt()) / (2 * x.sqrt()),
        "missing_jacobian": lambda x: phi(c + x.sqrt()) + phi(c - x.sqrt()),
        "multiplied_by_jacobian": lambda x: (phi(c + x.sqrt()) + phi(c - x.sqrt())) * 2 * x.sqrt(),
    }
    for diagnosis, answer in cases.items():
        assert check(answer).diagnosis == diagnosis, str(check(answer))
    # the other single preimage: the mass it reports is P(z < 1) ≈ 0.84
    other = check(lambda x: phi(c - x.sqrt()) / (2 * x.sqrt()))
    assert other.diagnosis == "one_preimage" and "0.84" in other.message


def test_a_correct_sampler_with_its_own_generator_is_never_rejected():
    """The checker cannot reseed a sampler that draws from its own generator; its threshold (KS at the 1e-9 level)
    must still accept every such correct sampler: 40 independent runs, all accepted."""
    rng = np.random.default_rng(12345)  # fresh numbers every call, untouched by the checker's seeding

    def own_generator(n, rate):
        return -np.log1p(-rng.random(n)) / rate

    results = [check_exponential_sampler(own_generator) for _ in range(40)]
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed][:1]


def test_the_threshold_still_catches_a_small_scale_error():
    wrong = check_exponential_sampler(lambda n, rate: -torch.log(torch.rand(n)) / (1.05 * rate))
    assert wrong.status == "wrong", str(wrong)


def test_framework_reads_numbers_or_says_what_was_expected():
    from flowlib_teaching.exercises.framework import Verdict, number, numbers

    assert number(2) == 2.0 and number(np.float32(1.5)) == 1.5 and number(torch.tensor([3.0])) == 3.0
    with pytest.raises(Verdict) as err:
        number("two", "the area", diagnosis="not_a_number")
    assert err.value.diagnosis == "not_a_number" and "the area should be a number" in err.value.message
    with pytest.raises(Verdict) as err:
        number(torch.ones(3), "the norm")  # several numbers are not one
    assert err.value.diagnosis == "not_numeric"

    t = numbers([[1, 2]], "your x", (1, 2))
    assert t.dtype == torch.float64 and t.tolist() == [[1.0, 2.0]]
    assert not numbers(torch.ones(2, requires_grad=True), "y").requires_grad
    with pytest.raises(Verdict) as err:
        numbers("abc", "your x")
    assert err.value.diagnosis == "not_numeric"
    with pytest.raises(Verdict) as err:
        numbers(torch.ones(3), "your x", (2,), hint="work on batches")
    assert err.value.diagnosis == "shape" and err.value.hint == "work on batches"
