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


A = 0.01


def _ld(y, s_of_y=lambda y: A + (1 - 2 * A) * y, one_minus_2a=True):
    s = s_of_y(y)
    return ((math.log(1 - 2 * A) if one_minus_2a else 0.0) - torch.log(s) - torch.log1p(-s)).sum(1)


def bpd_right(log_q_w, y):  # written independently of the library's logit_bits_per_dim
    log_q_y = log_q_w + _ld(y)
    return -(log_q_y - 64 * math.log(17)) / (64 * math.log(2))


def bpd_by_autograd(log_q_w, y):
    """The same answer with the logit's derivative from autograd instead of a formula: an oracle for the checker."""
    y = y.clone().requires_grad_(True)
    w = torch.logit(A + (1 - 2 * A) * y)
    (dw,) = torch.autograd.grad(w.sum(), y)  # element-wise map: the Jacobian is diagonal
    log_q_y = log_q_w + dw.abs().log().sum(1)
    return (-(log_q_y - 64 * math.log(17)) / (64 * math.log(2))).detach()


def placeholder(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, right", [
    (E.check_coupling_inverse, inverse_right),
    (E.check_guaranteed_zeros, zeros_right),
    (E.check_logit_bits_per_dim, bpd_right),
    (E.check_logit_bits_per_dim, bpd_by_autograd),
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
    # dividing by the log-scale (inf/NaN where s = 0): it used to be reported as "changed_passed_through"
    (lambda z, m, f: ((z - f(z)[1]) / f(z)[0], -f(z)[0].sum(1)), "scale_not_log"),
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
    (lambda q, y: -(q - 64 * math.log(17)) / (64 * math.log(2)), "forgot_logit_logdet"),
    (lambda q, y: -(q - _ld(y) - 64 * math.log(17)) / (64 * math.log(2)), "logit_logdet_sign"),
    (lambda q, y: -(q + _ld(y, one_minus_2a=False) - 64 * math.log(17)) / (64 * math.log(2)), "forgot_one_minus_2alpha"),
    (lambda q, y: -(q + _ld(y, s_of_y=lambda v: v) - 64 * math.log(17)) / (64 * math.log(2)), "logit_of_y"),
    (lambda q, y: -(q + _ld(y)) / (64 * math.log(2)), "forgot_scaling"),
    (lambda q, y: -(q + _ld(y) + 64 * math.log(17)) / (64 * math.log(2)), "scaling_sign"),
    (lambda q, y: -(q + _ld(y) - 64 * math.log(17)) / 64, "nats"),
    (lambda q, y: -(q + _ld(y) - 64 * math.log(17)) / math.log(2), "not_per_dim"),
    (lambda q, y: (q + _ld(y) - 64 * math.log(17)) / (64 * math.log(2)), "sign"),
    (lambda q, y: bpd_right(q, y) + 0.01, "value"),
    (lambda q, y: bpd_right(q, y)[0], "shape"),
    (lambda q, y: "four", "not_numeric"),
])
def test_bpd_mistakes_are_named(answer, diagnosis):
    r = E.check_logit_bits_per_dim(answer)
    assert r.status == "wrong" and r.diagnosis == diagnosis, str(r)


def test_value_feedback_counts_images_from_one():
    r = E.check_logit_bits_per_dim(lambda q, y: bpd_right(q, y) + torch.tensor([0, 0, 1.0, 0, 0], dtype=q.dtype))
    assert "image 3 (counting from 1)" in r.message, str(r)


def test_inverted_mask_convention_is_named_and_indices_count_from_one():
    # reading mask = 1 as "transformed" gives the transpose of the right pattern, for every mask: named as both
    r = E.check_guaranteed_zeros(lambda m: zeros_right(1 - m))
    assert r.diagnosis == "transposed" and "FLIPPED mask" in r.message and "PASSED THROUGH" in r.message, str(r)
    # marking everything zero: the first wrong entry is row 1, column 1 of the lesson's numbering (tensor [0, 0])
    r = E.check_guaranteed_zeros(lambda m: torch.ones(len(m), len(m), dtype=torch.bool))
    assert "dz_1/dx_1" in r.message and "dz_0" not in r.message, str(r)


def test_the_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    E.check_coupling_inverse(inverse_right)
    assert torch.equal(torch.rand(1), before)
