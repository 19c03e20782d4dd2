"""Glow's layers beyond the registry's generic checks: ActNorm's data-dependent start and its saved flag, the 1x1
convolutions against slogdet, the split prior's zero start, the whole model's exact reconstruction and its errors."""
from __future__ import annotations

import io
import math

import pytest
import torch

from flowlib.bijections import ActNorm, ChannelPermutation, GlowCoupling, InvConv1x1, InvConv1x1LU, SplitPrior
from flowlib.builders import glow, glow_flow


def test_actnorm_initialises_to_zero_mean_unit_variance_per_channel():
    x = torch.randn(32, 3, 4, 4) * torch.tensor([0.5, 3.0, 10.0]).view(1, 3, 1, 1) + torch.tensor([1., -2., 5.]).view(1, 3, 1, 1)
    a = ActNorm(3, (3, 4, 4))
    z, logdet = a(x)
    assert bool(a.initialised)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    # the H*W factor: 16 pixels per channel, each scaled by exp(log_scale_c)
    assert torch.allclose(logdet, torch.full((32,), 16 * float(a.log_scale.detach().sum())))


def test_actnorm_constant_channel_gives_no_nan_and_scale_one():
    x = torch.randn(8, 2, 3, 3)
    x[:, 1] = 4.0  # a constant channel in the first batch: std 0
    a = ActNorm(2)
    z, logdet = a(x)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    assert float(a.log_scale[1]) == 0.0
    assert torch.allclose(z[:, 1], torch.zeros_like(z[:, 1]), atol=1e-6)


def _reinitialises_after_reload(cls) -> bool:
    """Train an ActNorm, save its state_dict, load it into a fresh one, run a first training-mode batch: did the
    fresh one overwrite the loaded parameters with a new data-dependent initialisation?"""
    trained = cls(3)
    trained(torch.randn(16, 3, 2, 2) * 5 + 2)  # initialise
    with torch.no_grad():
        trained.log_scale.add_(0.3)  # "training" moved it
    buf = io.BytesIO()
    torch.save(trained.state_dict(), buf)
    buf.seek(0)
    fresh = cls(3)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(4, 3, 2, 2)
    z_fresh, _ = fresh.train()(x)
    z_trained, _ = trained(x)
    return not (torch.equal(fresh.log_scale.detach(), trained.log_scale.detach()) and torch.allclose(z_fresh, z_trained))


def test_actnorm_reloaded_does_not_reinitialise():
    assert not _reinitialises_after_reload(ActNorm)


def test_reload_check_catches_a_flag_kept_outside_the_state_dict():
    """The bug of rosinality/glow-pytorch #6: "initialised" as a Python attribute, lost on reload. Planted here."""
    class PythonFlag(ActNorm):
        def __init__(self, c):
            super().__init__(c)
            del self.initialised  # the buffer goes; a plain attribute takes its place
            self.initialised = torch.tensor(False)

    assert "initialised" not in PythonFlag(3).state_dict()
    assert _reinitialises_after_reload(PythonFlag)


@pytest.mark.parametrize("cls", [InvConv1x1, InvConv1x1LU])
@pytest.mark.parametrize("c", [1, 4, 17])
def test_conv1x1_logdet_is_hw_times_slogdet_in_float64(cls, c):
    conv = cls(c, seed=0).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype))
    w = conv.weight if cls is InvConv1x1 else conv.weight()
    x = torch.randn(2, c, 3, 5, dtype=torch.float64)
    z, logdet = conv(x)
    assert torch.allclose(logdet, torch.full((2,), 15 * float(torch.linalg.slogdet(w)[1]), dtype=torch.float64),
                          atol=1e-10)
    assert torch.allclose(z, torch.einsum("ij,bjhw->bihw", w, x), atol=1e-12)
    x_back, logdet_inv = conv.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-10) and torch.allclose(logdet + logdet_inv, torch.zeros(2, dtype=torch.float64))


def test_lu_starts_as_the_same_map_as_the_plain_convolution():
    plain, lu = InvConv1x1(6, seed=3), InvConv1x1LU(6, seed=3)
    assert torch.allclose(plain.weight, lu.weight(), atol=1e-6)
    # P and the signs are buffers (fixed), the factors are parameters
    assert {n for n, _ in lu.named_buffers()} >= {"P", "sign"}
    assert {n for n, _ in lu.named_parameters()} == {"lower", "upper", "log_s"}


def test_lu_weight_indexes_rows_by_the_permutation_exactly_as_the_product_p_l_u():
    lu = InvConv1x1LU(7, seed=5).double()
    assert not torch.equal(lu.P, torch.eye(7, dtype=torch.float64))  # a real permutation (and not its own inverse)
    assert not torch.equal(lu.P, lu.P.T)
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=p.dtype))
    lower, upper = lu.factors()
    assert torch.allclose(lu.weight(), lu.P @ lower @ upper, atol=1e-14)  # the definition, W = P L U'
    z = torch.randn(2, 7, 3, 2, dtype=torch.float64)
    x, _ = lu.inverse(z)  # two triangular solves after P^T
    assert torch.allclose(torch.einsum("oc,bchw->bohw", lu.P @ lower @ upper, x), z, atol=1e-12)


@pytest.mark.parametrize("c_in, c_out", [(1, 2), (2, 4), (3, 4), (2, 6), (4, 8)])
def test_convnet_unfolded_thin_convolutions_compute_the_same_map_and_gradients(c_in, c_out):
    from flowlib.nets import ConvNet

    torch.manual_seed(c_in + c_out)
    plain = ConvNet(c_in, c_out, hidden=16).double()
    with torch.no_grad():
        plain.net[4].weight.normal_()  # a trained network: the zero last layer would hide a wrong last convolution
        plain.net[4].bias.normal_()
    thin = ConvNet(c_in, c_out, hidden=16, unfold_thin=True).double()
    thin.load_state_dict(plain.state_dict())
    assert [n for n, _ in thin.named_parameters()] == [n for n, _ in plain.named_parameters()]
    x = torch.randn(3, c_in, 5, 6, dtype=torch.float64, requires_grad=True)
    out_plain, out_thin = plain(x), thin(x)
    assert torch.allclose(out_thin, out_plain, atol=1e-12)
    g = torch.randn_like(out_plain)
    grads_plain = torch.autograd.grad(out_plain, [x, *plain.parameters()], g)
    grads_thin = torch.autograd.grad(out_thin, [x, *thin.parameters()], g)
    for a, b in zip(grads_thin, grads_plain):
        assert torch.allclose(a, b, atol=1e-11)


def test_fresh_split_prior_and_coupling_start_tame():
    x = torch.randn(3, 4, 2, 2)
    z, logdet = SplitPrior((4, 2, 2))(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(3))  # a fresh model has the standard-normal prior
    z, logdet = GlowCoupling((4, 2, 2), hidden=8, kind="additive")(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(3))
    z, logdet = GlowCoupling((4, 2, 2), hidden=8)(x)  # affine: x_b * sigmoid(2), t = 0
    assert torch.allclose(z[:, 2:], x[:, 2:] * torch.sigmoid(torch.tensor(2.0)))
    assert torch.allclose(logdet, torch.full((3,), 8 * math.log(torch.sigmoid(torch.tensor(2.0)).item())))


@pytest.mark.parametrize("mixing", ["lu", "conv", "reverse", "shuffle"])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_glow_reconstructs_exactly_from_its_flat_latent(mixing, coupling):
    torch.manual_seed(0)
    model = glow((1, 8, 8), levels=2, steps=2, hidden=8, coupling=coupling, mixing=mixing)
    x = torch.randint(0, 256, (6, 1, 8, 8)).float() + torch.rand(6, 1, 8, 8)
    model.log_prob(x)  # ActNorm's initialisation pass
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    model.eval()
    z, _ = model.flow(x)
    assert z.shape == (6, 64)
    x_back, _ = model.flow.inverse(z)
    assert float((x_back - x).abs().max()) < 1e-3  # float32, pixels in [0, 256)
    assert torch.isfinite(model.log_prob(x)).all()


def test_glow_builder_refuses_bad_arguments_with_what_to_do():
    with pytest.raises(ValueError, match="odd size"):
        glow_flow((1, 28, 28), levels=3)
    with pytest.raises(ValueError, match="mixing must be one of"):
        glow_flow((1, 8, 8), mixing="1x1")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        glow_flow((1, 8, 8), steps=0)
    with pytest.raises(ValueError, match="permutation of 0..C-1"):
        ChannelPermutation([0, 0, 1])


def test_glow_refuses_images_of_the_wrong_size():
    model = glow((1, 8, 8), levels=2, steps=1, hidden=4)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model.log_prob(torch.rand(2, 1, 28, 28) * 255)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model.log_prob(torch.rand(2, 3, 8, 8) * 255)
