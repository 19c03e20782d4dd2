"""The Flow contract: checked inputs with messages that name what was expected, Compose, Inverse, trace."""
from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.core import Flow, FlowInputError


def test_compose_sums_logdets_and_inverts_in_reverse_order():
    a, b = fl.Affine(2.0, 1.0), fl.Exp()
    x = torch.tensor([[0.1], [-0.3]])
    z, logdet = fl.Compose(a, b)(x)
    assert torch.allclose(z, torch.exp(2 * x + 1))
    assert torch.allclose(logdet, math.log(2.0) + (2 * x + 1)[:, 0])
    x_back, ld_inv = fl.Compose(a, b).inverse(z)
    assert torch.allclose(x_back, x, atol=1e-6) and torch.allclose(ld_inv, -logdet, atol=1e-6)


def test_trace_returns_every_state_with_cumulative_logdet():
    flow = fl.Compose(fl.Affine(2.0, 0.0), fl.Affine(3.0, 1.0))
    x = torch.ones(4, 1)
    states = flow.trace(x)
    assert len(states) == 3
    assert torch.equal(states[0][0], x)
    assert torch.allclose(states[1][0], 2 * x) and torch.allclose(states[2][0], 6 * x + 1)
    assert torch.allclose(states[2][1], torch.full((4,), math.log(6.0)))
    back = flow.trace(states[-1][0], direction="inverse")
    assert torch.allclose(back[-1][0], x)
    with pytest.raises(ValueError, match="direction"):
        flow.trace(x, direction="sideways")


def test_inverse_swaps_directions():
    g = fl.Affine(3.0, 1.0)  # the generative map x = 3 z + 1
    f = fl.Inverse(g)  # the flow x -> z
    z, logdet = f(torch.tensor([[4.0], [1.0]]))
    assert torch.allclose(z, torch.tensor([[1.0], [0.0]]))
    assert torch.allclose(logdet, torch.full((2,), -math.log(3.0)))


def test_logdet_is_on_input_dtype():
    flow = fl.Compose(fl.Affine(2.0, 1.0)).double()
    _, logdet = flow(torch.randn(3, 2, dtype=torch.float64))
    assert logdet.dtype == torch.float64


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([[1, 2]]), "floating-point"),
    ([[1.0, 2.0]], "torch.Tensor"),
    (torch.tensor(1.0), "batch dimension"),
    (torch.tensor([[1.0, float("nan")]]), "non-finite"),
    (torch.tensor([[1.0, float("inf")]]), "non-finite"),
    (torch.zeros(0, 2), "empty batch"),
])
def test_bad_inputs_get_clear_errors(bad, match):
    with pytest.raises(FlowInputError, match=match):
        fl.Affine(2.0, 1.0)(bad)


def test_event_shape_is_checked_with_expected_shape_in_message():
    flow = fl.Affine(2.0)
    flow.event_shape = (2,)
    with pytest.raises(FlowInputError, match=r"expected x of shape \(B, 2\).*got \(4, 3\)"):
        flow(torch.zeros(4, 3))
    with pytest.raises(FlowInputError, match=r"expected z of shape"):
        flow.inverse(torch.zeros(4, 3))


@pytest.mark.parametrize("flow, direction, value, match", [
    (fl.Logit(), "forward", 1.5, r"strictly inside \(0, 1\)"),
    (fl.Sigmoid(), "inverse", 0.0, r"strictly inside \(0, 1\)"),
    (fl.Exp(), "inverse", -1.0, "positive"),
])
def test_domain_errors(flow, direction, value, match):
    v = torch.full((2, 1), value)
    with pytest.raises(FlowInputError, match=match):
        flow(v) if direction == "forward" else flow.inverse(v)


def test_invalid_construction():
    with pytest.raises(ValueError, match="non-zero scale"):
        fl.Affine(0.0)
    with pytest.raises(ValueError, match="tailweight > 0"):
        fl.SinhArcsinh(tailweight=0.0)
    with pytest.raises(TypeError, match="Flow instances"):
        fl.Compose(fl.Affine(1.0), torch.nn.Linear(2, 2))


def test_contract_violation_in_a_new_layer_is_caught():
    class ScalarLogdet(Flow):
        def _forward(self, x):
            return x, torch.tensor(0.0)  # a scalar that relies on broadcasting: not allowed

    with pytest.raises(RuntimeError, match=r"shape \(B,\)"):
        ScalarLogdet()(torch.zeros(3, 2))


def test_checks_can_be_turned_off_for_speed():
    x = torch.tensor([[float("nan")]])
    with fl.checks(False):
        z, _ = fl.Affine(2.0)(x)  # no error, no synchronisation
    assert torch.isnan(z).all()
    with pytest.raises(FlowInputError):
        fl.Affine(2.0)(x)


def test_monotone_tanh_inverse_is_differentiable():
    f = fl.MonotoneTanh(num_bumps=3)
    z = torch.randn(5, 1, requires_grad=True)
    x, _ = f.inverse(z)
    (dx_dz,) = torch.autograd.grad(x.sum(), z)
    _, logdet_fwd = f(x.detach())
    # dx/dz = 1 / (dz/dx) element-wise
    assert torch.allclose(dx_dz[:, 0], torch.exp(-logdet_fwd), rtol=1e-4)
