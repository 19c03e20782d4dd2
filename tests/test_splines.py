"""The rational-quadratic spline against its definition (Durkan et al. 2019): it interpolates its knots with the
given slopes, is increasing, is the identity outside [-B, B] and when its parameters are zero, and its inverse is
exact. (Log-dets against autograd, triangular structure, gradients and state_dict: tests/test_flows.py, via the
registry.)"""
from __future__ import annotations

import pytest
import torch

import flowlib as fl
from flowlib.bijections import splines
from flowlib.bijections.splines import RQSpline, SplineMAF, rational_quadratic_spline
from flowlib.builders import spline_maf


def _random_params(n: int, bins: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [2 * torch.randn(n, k, generator=g, dtype=torch.float64) for k in (bins, bins, bins - 1)]


def test_spline_interpolates_its_knots_with_their_slopes():
    bins, bound = 6, 2.5
    raw_w, raw_h, raw_d = _random_params(1, bins)
    xk, _ = splines._knots(raw_w, bound)  # (1, K + 1)
    yk, _ = splines._knots(raw_h, bound)
    slopes = splines._slopes(raw_d)
    x = xk.reshape(-1)  # every knot, ends included
    expand = [p.expand(len(x), -1) for p in (raw_w, raw_h, raw_d)]
    y, log_deriv = rational_quadratic_spline(x, *expand, bound=bound)
    torch.testing.assert_close(y, yk.reshape(-1), atol=1e-12, rtol=0)
    torch.testing.assert_close(log_deriv.exp(), slopes.reshape(-1), atol=1e-9, rtol=1e-9)
    assert float(slopes[0, 0]) == 1.0 and float(slopes[0, -1]) == 1.0  # matches the identity tails


def test_spline_is_increasing_identity_outside_and_exactly_invertible():
    bins, bound = 8, 3.0
    x = torch.linspace(-5, 5, 4001, dtype=torch.float64)
    params = [p.expand(len(x), -1) for p in _random_params(1, bins, seed=1)]
    y, log_deriv = rational_quadratic_spline(x, *params, bound=bound)
    assert bool((y[1:] > y[:-1]).all())
    outside = x.abs() > bound
    assert torch.equal(y[outside], x[outside]) and bool((log_deriv[outside] == 0).all())
    x_back, log_deriv_inv = rational_quadratic_spline(y, *params, bound=bound, inverse=True)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_deriv_inv, -log_deriv, atol=1e-10, rtol=0)
    # and the derivative is the (central, step 1e-6) finite difference of the map
    step = 1e-6
    y_plus, _ = rational_quadratic_spline(x + step, *params, bound=bound)
    y_minus, _ = rational_quadratic_spline(x - step, *params, bound=bound)
    torch.testing.assert_close(log_deriv.exp(), (y_plus - y_minus) / (2 * step), rtol=1e-5, atol=1e-7)


def test_zero_parameters_give_the_identity():
    x = 3 * torch.randn(200, 2, dtype=torch.float64)
    for flow in (RQSpline(2).double(), spline_maf(2, num_layers=3).double()):
        z, logdet = flow(x)
        torch.testing.assert_close(z, x, atol=1e-12, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(200, dtype=torch.float64), atol=1e-12, rtol=0)


def test_spline_maf_first_coordinate_is_an_unconditional_spline():
    torch.manual_seed(0)
    layer = SplineMAF(2, hidden=(8,), bins=4)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn(p.shape))
    x = torch.randn(50, 2)
    other = x.clone()
    other[:, 1] = 3 * torch.randn(50)  # change only the second coordinate
    with torch.no_grad():
        assert torch.allclose(layer(x)[0][:, 0], layer(other)[0][:, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="bins"):
        RQSpline(2, bins=1)
    with pytest.raises(ValueError, match="bound"):
        SplineMAF(2, bound=0.0)
    with pytest.raises(ValueError, match="order"):
        SplineMAF(2, order="backwards")
    with pytest.raises(ValueError, match="num_layers"):
        spline_maf(2, num_layers=0)
    with pytest.raises(ValueError, match="3K - 1"):
        splines.spline_params(torch.zeros(3, 10), bins=4)


def test_spline_flow_trains():
    """A few hundred steps on the 8 Gaussians already beat the same number of affine MAF steps."""
    from flowlib.data import toy2d
    from flowlib.builders import maf
    from flowlib.training import fit

    ds = toy2d.get("8gaussians")
    x_test = ds.sample(4000, seed=1)
    nll = {}
    for name, flow in (("spline", spline_maf(2, num_layers=2, hidden=(32, 32))), ("maf", maf(2, 4, (32, 32)))):
        fl.seed_everything(0)
        model = fl.FlowModel(flow, fl.StandardNormal(2))
        fit(model, ds.sampler(seed=0), steps=150, lr=5e-3, batch_size=256, progress=False)
        with torch.no_grad():
            nll[name] = float(-model.log_prob(x_test).mean())
    assert nll["spline"] < nll["maf"]
