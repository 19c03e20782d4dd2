"""Lesson 08's checkers accept the right answers and name each planted mistake."""
from __future__ import annotations

import pytest
import torch

from flowlib_teaching.exercises.framework import ExerciseError
from flowlib_teaching.exercises.lesson08 import check_backward_step, check_conditioner_passes, check_linear_logdet


def _right(step, y, grad_y, grad_logdet):
    with torch.no_grad():
        x, _ = step.inverse(y)
    x = x.requires_grad_(True)
    y_again, logdet = step(x)
    torch.autograd.backward([y_again, logdet], [grad_y, grad_logdet])
    return x.detach(), x.grad


def _no_reconstruction(step, y, grad_y, grad_logdet):
    x = y.clone().requires_grad_(True)
    y_again, logdet = step(x)
    torch.autograd.backward([y_again, logdet], [grad_y, grad_logdet])
    return x.detach(), x.grad


def _forgot_logdet(step, y, grad_y, grad_logdet):
    with torch.no_grad():
        x, _ = step.inverse(y)
    x = x.requires_grad_(True)
    step(x)[0].backward(grad_y)
    return x.detach(), x.grad


def _only_grad_x(step, y, grad_y, grad_logdet):
    with torch.no_grad():
        x, _ = step.inverse(y)
    x = x.requires_grad_(True)
    y_again, logdet = step(x)
    gx = torch.autograd.grad([y_again, logdet], [x], [grad_y, grad_logdet])[0]
    return x.detach(), gx


@pytest.mark.parametrize("answer, diagnosis", [
    (_right, "correct"), (_no_reconstruction, "no_reconstruction"), (_forgot_logdet, "forgot_logdet"),
    (_only_grad_x, "no_param_grads"), (lambda s, y, g, l: 3, "not_a_pair"), (lambda s, y, g, l: ..., "missing"),
])
def test_backward_step_checker(answer, diagnosis):
    assert check_backward_step(answer).diagnosis == diagnosis


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda A: torch.trace(A), "correct"),
    (lambda A: torch.linalg.slogdet(torch.linalg.matrix_exp(A))[1], "correct"),
    (lambda A: -torch.trace(A), "sign"),
    (lambda A: torch.linalg.slogdet(A)[1], "det_of_A"),
    (lambda A: torch.trace(A) / 2, "other"),
    (lambda A: "trace", "not_numeric"),
])
def test_linear_logdet_checker(answer, diagnosis):
    assert check_linear_logdet(answer).diagnosis == diagnosis


@pytest.mark.parametrize("answer, diagnosis", [
    (lambda t, k: (k, t * k), "correct"), (lambda t, k: (t * k, k), "swapped"), (lambda t, k: (k, t), "forgot_blocks"),
    (lambda t, k: (1, t * k), "one_pass"), (lambda t, k: (k, k), "other"), (lambda t, k: 5, "not_a_pair"),
])
def test_conditioner_passes_checker(answer, diagnosis):
    assert check_conditioner_passes(answer).diagnosis == diagnosis


def test_strict_raises_and_the_global_random_state_is_left_alone():
    state = torch.get_rng_state()
    check_backward_step(_right, strict=True)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ExerciseError, match="log-det"):
        check_backward_step(_forgot_logdet, strict=True)
