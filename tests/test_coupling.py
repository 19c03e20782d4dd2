"""Coupling layers, masks, conditioner nets and the RealNVP builder (lesson 04).

The brute-force checks (round trip, log-det vs autograd, triangular structure, gradients, state_dict) run over the
registry in test_flows.py; here are the properties specific to couplings, each tested against something independent:
the autograd Jacobian, a hand-written formula, or a count of network calls."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flowlib import testing as T
from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling
from flowlib.bijections.masks import (alternating_mask, channel_mask, check_mask, checkerboard_mask, flip, half_mask,
                           random_mask)
from flowlib.nets import MLP, ConvNet
from flowlib.builders import coupling_masks, make_realnvp


def nudge(flow, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return flow


# ---- masks --------------------------------------------------------------------------------------------------------
def test_masks_follow_the_one_convention():
    assert half_mask(4).tolist() == [1, 1, 0, 0]
    assert half_mask(4, first=False).tolist() == [0, 0, 1, 1]
    assert alternating_mask(5).tolist() == [1, 0, 1, 0, 1]
    assert alternating_mask(5, parity=1).tolist() == [0, 1, 0, 1, 0]
    cb = checkerboard_mask(2, 3, 3)
    assert cb.shape == (2, 3, 3) and cb[0, 0, 0] == 1 and cb[1, 0, 1] == 0 and cb[1, 1, 1] == 1
    assert torch.equal(cb[0], cb[1])
    ch = channel_mask(4, 2, 2)
    assert ch[:2].eq(1).all() and ch[2:].eq(0).all()
    assert torch.equal(flip(flip(ch)), ch) and torch.equal(flip(ch) + ch, torch.ones_like(ch))
    r = random_mask(10, torch.Generator().manual_seed(0))
    assert r.sum() == 5 and torch.equal(r, random_mask(10, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("make, match", [
    (lambda: half_mask(5), r"odd dimension: D = 5"),
    (lambda: channel_mask(3, 4, 4), r"odd number of channels: C = 3 \(shape \(3, 4, 4\)\)"),
    (lambda: alternating_mask(1), "at least 2 dimensions"),
    (lambda: check_mask(torch.ones(3)), r"shape \(3,\) is all ones"),
    (lambda: check_mask(torch.zeros(3)), "has no 1"),
    (lambda: check_mask(torch.tensor([1.0, 0.5])), "only 0"),
])
def test_bad_masks_are_refused_with_the_shape(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---- construction-time shape errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: AffineCoupling(half_mask(4), net=MLP(6, 12)), r"mask has shape \(4,\).*inputs of shape \(6,\)"),
    (lambda: AdditiveCoupling(checkerboard_mask(1, 8, 8), net=MLP(64, 64)), r"mask has shape \(1, 8, 8\)"),
    (lambda: AffineCoupling(checkerboard_mask(1, 4, 4), net=ConvNet(3, 6)),
     r"mask has shape \(1, 4, 4\).*3 input channels"),
    (lambda: AffineCoupling(half_mask(4), net=MLP(4, 4)), r"must output shape \(1, 8\).*outputs \(1, 4\)"),
    (lambda: AffineCoupling(half_mask(4), net=nn.Linear(6, 8)), r"mask has shape \(4,\).*\(1, 4\)"),
    (lambda: make_realnvp(4, 2, masks=[half_mask(6), half_mask(6)]), r"shape \(6,\) but the data has shape \(4,\)"),
    (lambda: make_realnvp(5, 2, masks="half"), r"odd dimension: D = 5"),
])
def test_a_mask_that_does_not_fit_fails_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_input_shape_at_call_names_both_shapes():
    layer = AffineCoupling(half_mask(4))
    with pytest.raises(ValueError, match=r"shape \(B, 4\).*got \(3, 6\)"):
        layer(torch.randn(3, 6))


# ---- the maps -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda: AdditiveCoupling(half_mask(4)), (4,)),
    (lambda: AffineCoupling(alternating_mask(5)), (5,)),
    (lambda: AffineCoupling(checkerboard_mask(1, 4, 4)), (1, 4, 4)),
    (lambda: make_realnvp(6, 4), (6,)),
])
def test_a_fresh_coupling_is_exactly_the_identity(make, shape):
    x = torch.randn(7, *shape)
    z, logdet = make()(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(7))


def test_passed_through_coordinates_are_copied_exactly():
    for layer in (nudge(AdditiveCoupling(half_mask(6))), nudge(AffineCoupling(random_mask(6))),
                  nudge(AffineCoupling(checkerboard_mask(2, 4, 4), hidden=8))):
        x = torch.randn(5, *layer.event_shape)
        z, _ = layer(x)
        keep = layer.mask.bool().expand_as(x)
        assert torch.equal(z[keep], x[keep])
        assert not torch.allclose(z[~keep], x[~keep])  # and the rest really moves


def test_affine_matches_the_realnvp_formula_written_out():
    layer = nudge(AffineCoupling(half_mask(4), hidden=8))
    x = torch.randn(6, 4)
    h, t = layer.net(x * layer.mask).chunk(2, dim=1)
    s = 2.0 * torch.tanh(h / 2.0)
    z_expected = torch.cat([x[:, :2], x[:, 2:] * torch.exp(s[:, 2:]) + t[:, 2:]], dim=1)
    z, logdet = layer(x)
    assert torch.allclose(z, z_expected, atol=1e-6)
    assert torch.allclose(logdet, s[:, 2:].sum(1), atol=1e-6)


def test_additive_coupling_preserves_volume_by_autograd():
    layer = nudge(AdditiveCoupling(alternating_mask(6), hidden=8), scale=1.0).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    J = T.jacobian(lambda v: layer(v)[0], x)
    assert torch.allclose(torch.linalg.det(J), torch.ones(4, dtype=torch.float64), atol=1e-10)
    assert torch.equal(layer(x)[1], torch.zeros(4, dtype=torch.float64))


def test_jacobian_has_the_zero_block_and_identity_block():
    layer = nudge(AffineCoupling(half_mask(6), hidden=8), scale=1.0).double()
    J = T.jacobian(lambda v: layer(v)[0], torch.randn(3, 6, dtype=torch.float64))
    assert torch.equal(J[:, :3, :3], torch.eye(3, dtype=torch.float64).expand(3, 3, 3))  # z_p = x_p
    assert torch.equal(J[:, :3, 3:], torch.zeros(3, 3, 3, dtype=torch.float64))  # the zero block
    lower_right = J[:, 3:, 3:]
    assert torch.equal(lower_right, torch.diag_embed(torch.diagonal(lower_right, dim1=1, dim2=2)))  # diagonal
    assert J[:, 3:, :3].abs().min() > 0  # the lower-left block is dense


def test_a_stack_of_alternating_couplings_has_a_dense_jacobian_but_the_same_half_does_not():
    x = torch.randn(2, 4, dtype=torch.float64)
    for kind, dense in (("half", True), ("same", False)):
        torch.manual_seed(0)
        flow = nudge(make_realnvp(4, num_couplings=3, hidden=8, masks=kind, final_scale=False), 1.0).double()
        J = T.jacobian(lambda v: flow(v)[0], x)
        assert bool((J.abs() > 1e-12).all()) is dense
        if not dense:
            z, _ = flow(x)
            assert torch.equal(z[:, :2], x[:, :2])  # the same half, untouched through the whole stack


class _CountingSquare(nn.Module):
    """A conditioner that is NOT invertible (it squares its input) and counts its calls."""

    def __init__(self, d_out: int):
        super().__init__()
        self.calls = 0
        self.lin = nn.Linear(4, d_out)

    def forward(self, v):
        self.calls += 1
        return self.lin(v ** 2)


@pytest.mark.parametrize("cls, k", [(AdditiveCoupling, 1), (AffineCoupling, 2)])
def test_inverse_only_evaluates_the_network_once_and_needs_no_inverse_of_it(cls, k):
    net = _CountingSquare(4 * k)
    layer = cls(alternating_mask(4), net=net)
    net.calls = 0  # the construction-time shape probe called it once
    x = torch.randn(8, 4)
    z, ld = layer(x)
    x_back, ld_back = layer.inverse(z)
    assert net.calls == 2  # one forward evaluation in each direction, no iterative solve
    assert torch.allclose(x_back, x, atol=1e-5) and torch.allclose(ld + ld_back, torch.zeros(8), atol=1e-5)


def test_tanh_bound_keeps_a_huge_network_output_finite():
    layer = AffineCoupling(half_mask(4), bound=2.0)
    with torch.no_grad():
        layer.net.net[-1].bias.fill_(1e4)  # an exploding conditioner: exp(1e4) would overflow
    x = torch.randn(5, 4)
    z, logdet = layer(x)
    assert torch.isfinite(z).all()
    assert torch.allclose(logdet, torch.full((5,), 2 * 2.0))  # 2 transformed coordinates, each at the bound
    x_back, _ = layer.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-4)


def test_sigmoid_scale_is_glows_choice():
    layer = AffineCoupling(half_mask(2), scale="sigmoid")
    z, logdet = layer(torch.tensor([[1.0, 3.0]]))
    s = 1 / (1 + math.exp(-2.0))  # sigmoid(0 + 2)
    assert torch.allclose(z, torch.tensor([[1.0, 3.0 * s]]))
    assert torch.allclose(logdet, torch.tensor([math.log(s)]))


def test_nets_start_at_zero_output():
    assert MLP(3, 5)(torch.randn(4, 3)).abs().max() == 0
    assert ConvNet(2, 4, hidden=8)(torch.randn(1, 2, 5, 5)).abs().max() == 0
    assert ConvNet(2, 4, hidden=8)(torch.randn(1, 2, 5, 5)).shape == (1, 4, 5, 5)


def test_coupling_masks_kinds():
    ms = coupling_masks(4, 4, "half")
    assert [m.tolist() for m in ms] == [[1, 1, 0, 0], [0, 0, 1, 1]] * 2
    ms = coupling_masks(4, 4, "alternating")  # the name of the schedule; the pattern along the vector is 1 0 1 0
    assert [m.tolist() for m in ms] == [[1, 0, 1, 0], [0, 1, 0, 1]] * 2
    ms = coupling_masks(6, 4, "random", torch.Generator().manual_seed(1))
    assert torch.equal(ms[1], flip(ms[0])) and torch.equal(ms[3], flip(ms[2]))
    assert all(torch.equal(m, half_mask(4)) for m in coupling_masks(4, 3, "same"))


# ---- it learns ----------------------------------------------------------------------------------------------------
def test_realnvp_learns_a_nonlinear_2d_density_beyond_any_gaussian():
    """Moons: a short training run must beat the best Gaussian (fitted in closed form) on held-out data, and the
    additive and affine versions must both work."""
    from flowlib.data import toy2d
    from flowlib.distributions import StandardNormal
    from flowlib.models import FlowModel
    from flowlib.training import fit

    torch.manual_seed(0)
    train, test = toy2d.sample("moons", 4000, seed=0), toy2d.sample("moons", 2000, seed=1)
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    gauss_nll = float(-gauss.log_prob(test).mean())
    for coupling in ("affine", "additive"):
        torch.manual_seed(0)
        model = FlowModel(make_realnvp(2, num_couplings=6, hidden=32, coupling=coupling), StandardNormal(2))
        fit(model, train, steps=300, lr=3e-3, batch_size=256, progress=False)
        with torch.no_grad():
            nll = float(-model.log_prob(test).mean())
        assert nll < gauss_nll - 0.4, f"{coupling}: held-out NLL {nll:.3f} vs Gaussian {gauss_nll:.3f}"


def test_compare_couplings_trains_each_kind_by_the_same_recipe_and_measures_the_same_held_out_set():
    from flowlib.data import toy2d
    from flowlib.training.toy2d import evaluate_2d
    from flowlib_teaching.experiments import compare_couplings

    rows = compare_couplings("checkerboard", steps=5, num_couplings=2, hidden=8, batch_size=64, n_test=500,
                             floor_samples=1000)
    assert [r["coupling"] for r in rows] == ["additive", "affine"]
    test = toy2d.get("checkerboard").sample(500, seed=10_000)
    for r in rows:
        ev = evaluate_2d(r["model"], "checkerboard", test)
        assert r["test_nll"] == pytest.approx(ev["nll"], abs=1e-9) and r["stderr"] == pytest.approx(ev["nll_stderr"])
        assert r["floor"] == pytest.approx(math.log(32)) and r["gap"] == pytest.approx(r["test_nll"] - math.log(32))
