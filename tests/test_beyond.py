"""Lesson 08's two looks beyond: a continuous-time flow (flow matching, RK4, instantaneous change of variables)
checked against an exact density, and a transformer-conditioned autoregressive flow that trains on a toy density.
(The brute-force checks of both are in the registry, tests/flow_registry.py.)"""
from __future__ import annotations

import pytest
import torch

from flowlib import FlowModel, StandardNormal
from flowlib.data import toy2d
from flowlib.bijections.continuous import (ContinuousFlow, LinearVelocity, VelocityMLP, divergence, flow_matching_loss, rk4,
                                train_flow_matching)
from flowlib.training import fit
from flowlib.bijections.transformer import TransformerAutoregressive, transformer_flow

A = [[0.3, -0.8], [0.5, -0.2]]
B = [0.5, -1.0]


def test_linear_velocity_gives_the_exact_gaussian_density():
    lin = LinearVelocity(A, B).double()
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    errors = []
    for steps in (4, 8, 16):
        model = FlowModel(ContinuousFlow(lin, steps=steps), StandardNormal(2)).double()
        with torch.no_grad():
            errors.append(float((model.log_prob(x) - lin.exact_log_prob(x)).abs().max()))
    assert errors[-1] < 1e-6, errors
    assert errors[0] / errors[1] > 8 and errors[1] / errors[2] > 8, f"RK4 should converge like h^4: {errors}"


def test_exact_density_oracle_is_itself_right():
    # for a diagonal A the flow is known by hand: x_1 = e^a x_0 + (e^a - 1)/a b per coordinate
    lin = LinearVelocity([[0.5, 0.0], [0.0, -1.0]], [1.0, 2.0])
    x = torch.tensor([[0.3, -0.4], [2.0, 1.0]], dtype=torch.float64)
    a = torch.tensor([0.5, -1.0], dtype=torch.float64)
    m = (a.exp() - 1) / a * torch.tensor([1.0, 2.0], dtype=torch.float64)
    s = a.exp()
    want = (-0.5 * ((x - m) / s).pow(2) - s.log() - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(1)
    assert torch.allclose(lin.exact_log_prob(x), want, atol=1e-12)


def test_divergence_is_the_trace_of_the_jacobian():
    v = VelocityMLP(3, hidden=16, layers=2).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.full((4,), 0.3, dtype=torch.float64)
    _, div = divergence(v, x, t)
    for i in range(4):
        J = torch.autograd.functional.jacobian(lambda u: v(u[None], t[:1])[0], x[i])
        assert torch.allclose(div[i], torch.trace(J), atol=1e-12)


def test_flow_matching_learns_a_density():
    torch.manual_seed(0)
    data = toy2d.get("8gaussians")
    v = VelocityMLP(2, hidden=32, layers=2)
    losses = train_flow_matching(v, data.sampler(seed=1), steps=150, batch_size=128, progress=False)
    assert sum(losses[-30:]) / 30 < 0.8 * sum(losses[:30]) / 30
    model = FlowModel(ContinuousFlow(v, steps=8), StandardNormal(2))
    x = data.sample(300, seed=2)
    with torch.no_grad():
        nll = -float(model.log_prob(x).mean())
        samples = model.sample(300, generator=torch.Generator().manual_seed(3))
    untrained = FlowModel(ContinuousFlow(VelocityMLP(2, hidden=32, layers=2), steps=8), StandardNormal(2))
    with torch.no_grad():
        nll_untrained = -float(untrained.log_prob(x).mean())
    assert nll < nll_untrained - 0.5, (nll, nll_untrained)
    radius = float(samples.norm(dim=1).median())  # the data sit on a circle of radius 4 / 1.414 = 2.83
    assert abs(radius - 4 / 1.414) < 0.4, radius


def test_flow_matching_loss_is_zero_for_the_true_velocity_of_a_point_mass():
    # data = one point c: the straight-line velocity given x_t is (c - x_t) / (1 - t), exactly x_1 - x_0
    c = torch.tensor([[1.5, -0.5]])

    class Exact(torch.nn.Module):
        def forward(self, x, t):
            return (c - x) / (1 - t[:, None])

    assert float(flow_matching_loss(Exact(), c.expand(64, 2))) < 1e-10


def test_rk4_and_continuous_flow_refuse_bad_steps():
    with pytest.raises(ValueError, match="positive integer"):
        ContinuousFlow(VelocityMLP(2), steps=0)
    with pytest.raises(ValueError, match="positive integer"):
        rk4(VelocityMLP(2), torch.zeros(1, 2), 0.0, 1.0, steps=2.5)
    with pytest.raises(ValueError, match="dimension"):
        ContinuousFlow(torch.nn.Identity())


def test_transformer_flow_inverts_token_by_token_and_trains():
    torch.manual_seed(0)
    data = toy2d.get("moons")
    model = FlowModel(transformer_flow(2, blocks=2, width=16), StandardNormal(2))
    x = data.sample(300, seed=4)
    with torch.no_grad():
        before = -float(model.log_prob(x).mean())
    fit(model, data.sampler(seed=5), steps=60, lr=5e-3, batch_size=128, progress=False)
    with torch.no_grad():
        after = -float(model.log_prob(x).mean())
        z, _ = model.flow(x)
        back, _ = model.flow.inverse(z)
    assert after < before - 0.3, (before, after)
    assert float((back - x).abs().max()) < 1e-4


def test_transformer_autoregressive_refuses_bad_arguments():
    with pytest.raises(ValueError, match="multiple of token_dim"):
        TransformerAutoregressive(5, token_dim=2)
    with pytest.raises(ValueError, match="divisible"):
        TransformerAutoregressive(2, width=10, heads=3)
    with pytest.raises(ValueError, match="permutation"):
        TransformerAutoregressive(3, order=[0, 0, 1])
