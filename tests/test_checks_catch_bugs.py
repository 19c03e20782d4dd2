"""The brute-force checks must fail on broken flows: a check that cannot fail is no check."""
from __future__ import annotations

import math

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


# ---- bugs only the stronger checks catch ----------------------------------------------------------------------------
class LeaksAcrossTheBatch(Flow):
    """z = x + c * mean over the batch of x. Exactly invertible for any batch (mean(z) = (1 + c) mean(x)), and with
    one sample at a time it is z = (1 + c) x with log-det D log(1 + c), which is what it claims: round trip and the
    per-sample Jacobian both pass. But sample i's output depends on every other sample."""

    c = 0.5

    def _forward(self, x):
        return x + self.c * x.mean(0, keepdim=True), x.new_full((x.shape[0],), x[0].numel() * math.log1p(self.c))

    def _inverse(self, z):
        x = z - self.c / (1 + self.c) * z.mean(0, keepdim=True)
        return x, z.new_full((z.shape[0],), -z[0].numel() * math.log1p(self.c))


class LogdetOffByOneMillionth(fl.SinhArcsinh):
    """A log-det wrong by 1e-6 (a dropped small term, a float32 constant in a float64 sum). The old tolerance of
    1e-6 let it pass; correct flows agree to 1e-10 or better in float64 (measured over the registry), so the
    tolerance of 1e-8 fails it."""

    def _forward(self, x):
        z, logdet = super()._forward(x)
        return z, logdet + 1e-6

    def _inverse(self, z):
        x, logdet = super()._inverse(z)
        return x, logdet - 1e-6


class HugeShift(fl.Affine):
    """z = x + 1e6: exact in float64, but float32 keeps only 7 digits, so the round trip loses x's decimals."""

    def __init__(self):
        super().__init__(1.0, 1e6)


def test_a_layer_that_leaks_across_the_batch_passes_the_old_checks_but_not_batch_independence():
    flow = LeaksAcrossTheBatch()
    T.check_round_trip(flow, x)
    T.check_logdet(flow, x)  # the per-sample Jacobian (one sample at a time) cannot see the leak
    with pytest.raises(T.FlowCheckError, match="sample 0 depends on sample 1|depends on sample"):
        T.check_batch_independence(flow, x)


def test_a_one_in_a_million_logdet_error_fails_in_float64():
    flow = LogdetOffByOneMillionth(0.4, 1.3, learnable=True)
    T.check_round_trip(flow, x, atol=1e-5)  # forward and inverse still agree with each other
    with pytest.raises(T.FlowCheckError, match="log-det"):
        T.check_logdet(flow, x)


def test_float32_drift_is_caught_by_the_float32_check_only():
    flow = HugeShift()
    T.check_round_trip(flow, x)
    T.check_logdet(flow, x)  # both in float64: exact
    with pytest.raises(T.FlowCheckError, match="round trip in float32"):
        T.check_float32(flow, x)


def test_a_layer_that_mixes_the_batch_only_while_initialising_is_checked_in_its_normal_mode():
    class InitialisesOnFirstBatch(fl.Affine):
        """An ActNorm-like layer: its first forward pass sets the shift from the batch mean (mixing the batch)."""

        def __init__(self):
            super().__init__(torch.full((2,), 2.0), torch.zeros(2), learnable=True)
            self.register_buffer("initialized", torch.tensor(False))

        def mixes_batch(self):
            return not bool(self.initialized)

        def _forward(self, x):
            if not self.initialized:
                with torch.no_grad():
                    self.shift.copy_(-2.0 * x.mean(0))
                    self.initialized.fill_(True)
            return super()._forward(x)

    flow = InitialisesOnFirstBatch()
    T.check_batch_independence(flow, x)  # runs the initialising pass first, then checks the normal mode
    assert not flow.initialized, "the check must work on a copy"

    class NeverStopsMixing(InitialisesOnFirstBatch):
        def mixes_batch(self):
            return True

    with pytest.raises(T.FlowCheckError, match="still mix the batch"):
        T.check_batch_independence(NeverStopsMixing(), x)


def test_perturb_moves_every_parameter_reproducibly():
    a, b = fl.Affine(2.0, 1.0, learnable=True), fl.Affine(2.0, 1.0, learnable=True)
    T.perturb(a, 0.3, seed=5), T.perturb(b, 0.3, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert float(a.shift.detach()) != 1.0
