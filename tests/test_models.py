"""Base distributions and FlowModel against torch.distributions (a trusted oracle)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import flowlib as fl


def test_standard_normal_log_prob_matches_torch():
    base = fl.StandardNormal((2, 3))
    z = torch.randn(7, 2, 3)
    expected = D.Normal(0.0, 1.0).log_prob(z).sum((1, 2))
    assert torch.allclose(base.log_prob(z), expected, atol=1e-5)


def test_temperature_scales_the_standard_deviation():
    base = fl.StandardNormal(4)
    z = base.sample(20000, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.std()) - 0.5) < 0.01


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_sample_counts(n):
    with pytest.raises(ValueError, match="positive integer"):
        fl.StandardNormal(2).sample(n)


def test_uniform_log_prob_outside_support_is_minus_inf():
    base = fl.StandardUniform(1)
    lp = base.log_prob(torch.tensor([[0.5], [1.5]]))
    assert lp[0] == 0 and lp[1] == -math.inf


def test_log_normal_from_exp_matches_torch():
    model = fl.FlowModel(fl.Inverse(fl.Exp()), fl.StandardNormal(1))  # x = exp(z)
    x = torch.tensor([[0.3], [1.0], [4.0]])
    assert torch.allclose(model.log_prob(x), D.LogNormal(0.0, 1.0).log_prob(x)[:, 0], atol=1e-6)


def test_inverse_cdf_sampling_gives_the_logistic_density():
    # Sigmoid is the logistic CDF: pushing Uniform(0,1) through its inverse samples the logistic distribution.
    model = fl.FlowModel(fl.Sigmoid(), fl.StandardUniform(1))
    x = torch.tensor([[-2.0], [0.0], [3.0]])
    logistic = -x - 2 * torch.nn.functional.softplus(-x)
    assert torch.allclose(model.log_prob(x), logistic[:, 0], atol=1e-6)
    samples = model.sample(20000, generator=torch.Generator().manual_seed(0))
    assert abs(float(samples.var()) - math.pi**2 / 3) < 0.15  # logistic variance pi^2/3


def test_uniform_through_affine_has_density_one_third():
    model = fl.FlowModel(fl.Inverse(fl.Affine(3.0, 1.0)), fl.StandardUniform(1))  # x = 3 z + 1
    lp = model.log_prob(torch.tensor([[1.5], [3.9], [4.5]]))
    assert torch.allclose(lp[:2], torch.full((2,), -math.log(3.0)))
    assert lp[2] == -math.inf


def test_sample_with_log_prob_agrees_with_log_prob():
    model = fl.FlowModel(fl.Compose(fl.SinhArcsinh(0.5, 1.3), fl.Affine(2.0, -1.0)), fl.StandardNormal(2))
    x, lp = model.sample_with_log_prob(50)
    assert torch.allclose(lp, model.log_prob(x), atol=1e-5)
