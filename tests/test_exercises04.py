"""Lesson 04's exercise checkers: right answers pass, placeholders are 'not answered', common mistakes are named."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib_teaching.exercises import lesson04 as E


def inverse_right(z, mask, log_scale_and_shift):
    s, t = log_scale_and_shift(z)
    return (z - t) * torch.exp(-s), -s.sum(1)


def zeros_right(mask):
    m = mask.bool()
    return ~torch.eye(len(m), dtype=torch.bool) & (m[:, None] | ~m[None, :])


def bpd_right(L):
    return -(L - 64 * math.log(17)) / (64 * math.log(2))


def placeholder(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, right", [
    (E.check_coupling_inverse, inverse_right),
    (E.check_guaranteed_zeros, zeros_right),
    (E.check_honest_bits_per_dim, bpd_right),
])
def test_right_answers_pass_and_placeholders_are_not_answered(check, right):
    assert check(right, strict=True).passed
    for p in (None, ..., placeholder, lambda *a: None):
        r = check(p)
        assert r.status == "not answered" and "not answered yet" in str(r)
    with pytest.raises(E.ExerciseError):
        check(placeholder, strict=True)


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda z, m, f: ((z - f(z)[1]) * torch.exp(f(z)[0]), -f(z)[0].sum(1)), "wrong_sign_scale"),
    (lambda z, m, f: (z * torch.exp(-f(z)[0]) - f(z)[1], -f(z)[0].sum(1)), "wrong_order"),
    (lambda z, m, f: (z * torch.exp(-f(z)[0]), -f(z)[0].sum(1)), "forgot_shift"),
    (lambda z, m, f: ((z - f(z)[1]) * torch.exp(-f(z)[0]), f(z)[0].sum(1)), "logdet_sign"),
    (lambda z, m, f: ((z - f(z)[1]) * torch.exp(-f(z)[0]), torch.zeros(len(z))), "logdet_zero"),
    (lambda z, m, f: (z - f(z)[1]) * torch.exp(-f(z)[0]), "not_a_pair"),
    (lambda z, m, f: (z + 1.0, torch.zeros(len(z))), "changed_passed_through"),
    (lambda z, m, f: (z[:, :3], torch.zeros(len(z))), "shape"),
    (lambda z, m, f: 1 / 0, "raised"),
])
def test_inverse_mistakes_are_named(answer, diagnosis):
    r = E.check_coupling_inverse(answer)
    assert r.status == "wrong" and r.diagnosis == diagnosis, str(r)


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda m: zeros_right(m).T, "transposed"),
    (lambda m: torch.ones(len(m), len(m), dtype=torch.bool), "diagonal"),
    (lambda m: ~torch.eye(len(m), dtype=torch.bool), "not_guaranteed"),
    (lambda m: torch.zeros(len(m), len(m), dtype=torch.bool), "missed_zero"),
    (lambda m: torch.zeros(3, 3), "shape"),
])
def test_zero_pattern_mistakes_are_named(answer, diagnosis):
    r = E.check_guaranteed_zeros(answer)
    assert r.status == "wrong" and r.diagnosis == diagnosis, str(r)


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda L: -L / (64 * math.log(2)), "forgot_scaling"),
    (lambda L: -(L + 64 * math.log(17)) / (64 * math.log(2)), "scaling_sign"),
    (lambda L: -(L - 64 * math.log(17)) / 64, "nats"),
    (lambda L: -(L - 64 * math.log(17)) / math.log(2), "not_per_dim"),
    (lambda L: (L - 64 * math.log(17)) / (64 * math.log(2)), "sign"),
    (lambda L: 3.0, "value"),
    (lambda L: "four", "not_a_number"),
])
def test_bpd_mistakes_are_named(answer, diagnosis):
    r = E.check_honest_bits_per_dim(answer)
    assert r.status == "wrong" and r.diagnosis == diagnosis, str(r)


def test_the_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    E.check_coupling_inverse(inverse_right)
    assert torch.equal(torch.rand(1), before)
