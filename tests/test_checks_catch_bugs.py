"""The brute-force checks must fail on broken flows: a check that cannot fail is no check."""
from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib import testing as T
from flowlib.core import Flow, sum_except_batch


class WrongSignLogdet(fl.Affine):
    def _forward(self, x):
        z, logdet = super()._forward(x)
        return z, -logdet


class ForgotFactorTwo(Flow):
    """z = exp(2x) with the log-det written as x instead of 2x (the chain rule's factor forgotten). Forward and
    inverse agree with each other, so only the comparison with the true Jacobian can catch it."""

    def _forward(self, x):
        return torch.exp(2 * x), sum_except_batch(x)

    def _inverse(self, z):
        x = torch.log(z) / 2
        return x, -sum_except_batch(x)


class InverseWithoutLogdet(fl.Exp):
    def _inverse(self, z):
        x, _ = super()._inverse(z)
        return x, torch.zeros_like(x[:, 0])


class NotTriangular(Flow):
    def _forward(self, x):
        z = torch.stack([x[:, 0] + x[:, 1], x[:, 1]], 1)
        return z, x.new_zeros(x.shape[0])

    def _inverse(self, z):
        return torch.stack([z[:, 0] - z[:, 1], z[:, 1]], 1), z.new_zeros(z.shape[0])


class UnusedParameter(fl.Affine):
    def __init__(self):
        super().__init__(2.0, 1.0, learnable=True)
        self.forgotten = torch.nn.Parameter(torch.ones(2))


class StateOutsideStateDict(fl.Affine):
    def __init__(self):
        super().__init__(1.0, 0.0)
        self.offset = 0.0  # a Python attribute, lost on reload (ActNorm's classic bug)

    def _forward(self, x):
        return x + self.offset, x.new_zeros(x.shape[0])


x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))


def test_wrong_sign_logdet_fails_logdet_check():
    with pytest.raises(T.FlowCheckError, match="log-det"):
        T.check_logdet(WrongSignLogdet(3.0, 1.0), x)


def test_wrong_sign_logdet_fails_round_trip():
    with pytest.raises(T.FlowCheckError, match="sum to|should be 0"):
        T.check_round_trip(WrongSignLogdet(3.0, 1.0), x)


def test_missing_chain_rule_factor_fails_only_the_jacobian_check():
    T.check_round_trip(ForgotFactorTwo(), x)  # self-consistent...
    with pytest.raises(T.FlowCheckError, match="autograd"):
        T.check_logdet(ForgotFactorTwo(), x)  # ...but wrong


def test_inverse_without_logdet_fails():
    with pytest.raises(T.FlowCheckError):
        T.check_round_trip(InverseWithoutLogdet(), x)


def test_non_triangular_jacobian_is_detected():
    # dz_0/dx_1 = 1 sits above the diagonal
    with pytest.raises(T.FlowCheckError, match="dz_0/dx_1"):
        T.check_triangular(NotTriangular(), x, structure="lower")
    T.check_triangular(NotTriangular(), x, structure="upper")


def test_unused_parameter_is_detected():
    with pytest.raises(T.FlowCheckError, match="forgotten"):
        T.check_gradients(UnusedParameter(), x)


def test_state_outside_state_dict_is_detected():
    flow = StateOutsideStateDict()
    flow.offset = 1.0
    with pytest.raises(T.FlowCheckError, match="state_dict"):
        T.check_state_dict(flow, StateOutsideStateDict, x)


def test_correct_flow_passes_and_reports():
    result = T.check_logdet(fl.SinhArcsinh(0.3, 2.0), x)
    assert result.max_error < 1e-8
    assert "passed" in str(result)
