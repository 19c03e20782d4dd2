"""Image flows: squeeze on a numbered tensor, the multi-scale latent, the bits/dim convention, checkpoints."""
from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.training import checkpoints
from flowlib.builders import multiscale_realnvp, multiscale_realnvp_flow
from flowlib.images import bits_per_dim, check_pixels, dequantize, logit_preprocessing, pixels_from_data
from flowlib.bijections import MultiScale, Squeeze


def test_squeeze_on_a_numbered_tensor():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, logdet = Squeeze()(x)
    assert z.shape == (1, 4, 2, 2) and float(logdet) == 0
    # channel 2i + j holds pixel (2h + i, 2w + j)
    assert z[0, 0].tolist() == [[0, 2], [8, 10]]
    assert z[0, 1].tolist() == [[1, 3], [9, 11]]
    assert z[0, 2].tolist() == [[4, 6], [12, 14]]
    assert torch.equal(Squeeze().inverse(z)[0], x)


def test_squeeze_refuses_odd_sizes_with_the_shape():
    with pytest.raises(ValueError, match=r"even height and width.*\(1, 3, 4\)"):
        Squeeze((1, 3, 4))
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(2, 1, 3, 4))


def test_multiscale_flat_latent_holds_every_level_and_reconstructs_exactly():
    torch.manual_seed(0)
    flow = multiscale_realnvp_flow((1, 8, 8), levels=2, couplings=2, hidden=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    x = torch.randn(3, 1, 8, 8)
    z, _ = flow(x)
    assert z.shape == (3, 64)
    assert flow.latent_shapes == [(2, 4, 4), (8, 2, 2)]
    parts = flow.split_latents(z)
    assert [tuple(p.shape[1:]) for p in parts] == flow.latent_shapes
    assert torch.equal(flow.merge_latents(parts), z)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-5)  # nothing re-sampled: exact reconstruction


def test_multiscale_rejects_a_wrong_latent_shape():
    flow = MultiScale((1, 4, 4), [Squeeze((1, 4, 4))])
    with pytest.raises(fl.FlowInputError, match=r"\(B, 16\)"):
        flow.inverse(torch.zeros(2, 4, 2, 2))


def test_bits_per_dim_of_a_uniform_model_is_exactly_the_bit_depth():
    # a density that is uniform on [0, 256)^D (q = 256^-D) must score exactly 8 bits/dim, whatever D is
    class Uniform(torch.nn.Module):
        def log_prob(self, y):
            return torch.full((y.shape[0],), -y[0].numel() * math.log(256.0))

    x = torch.randint(0, 256, (5, 1, 6, 6), dtype=torch.uint8)
    assert torch.allclose(bits_per_dim(Uniform(), x), torch.full((5,), 8.0, dtype=torch.float64))


def test_logit_preprocessing_logdet_is_counted():
    # log q(y) of the pre-processing + N(0, I) equals the change of variables done by hand
    pre = logit_preprocessing(256, alpha=0.05)
    model = fl.FlowModel(pre, fl.StandardNormal((1, 2, 2)))
    y = torch.tensor([[[[0.5, 100.2], [255.9, 37.0]]]])
    s = 0.05 + 0.9 * y / 256
    logit = torch.log(s) - torch.log1p(-s)
    by_hand = (-0.5 * logit**2 - 0.5 * math.log(2 * math.pi) + math.log(0.9 / 256) - torch.log(s)
               - torch.log1p(-s)).sum()
    assert torch.allclose(model.log_prob(y), by_hand.reshape(1), atol=1e-4)


def test_bad_pixels_are_refused_with_the_range():
    with pytest.raises(ValueError, match="0..255"):
        check_pixels(torch.tensor([[0, 256]]))
    with pytest.raises(ValueError, match="already dequantized"):
        check_pixels(torch.tensor([[0.5, 3.0]]))
    with pytest.raises(ValueError, match="0..31"):
        bits_per_dim(None, torch.tensor([[40]]), levels=32)


def test_non_finite_likelihood_raises_instead_of_being_averaged_away():
    class Broken(torch.nn.Module):
        def log_prob(self, y):
            return torch.tensor([0.0, float("nan")])

    with pytest.raises(FloatingPointError, match="1 of 2"):
        bits_per_dim(Broken(), torch.zeros(2, 3, dtype=torch.long))


def test_narrow_noise_is_corrected_and_outside_scaling_counted():
    # The discrete uniform model over 17 levels, P(x) = 17^-D, seen through y = (x + w u) / 17: its density is
    # uniform on the boxes [x/17, (x + w)/17), q(y) = 17^-D / (w/17)^D = w^-D. For every noise width w the honest
    # bound must come out as exactly log2 17 bits/dim: the D log(1/17) of the scaling and the D log w of the
    # narrow noise are both accounted for.
    class UniformOnUnitBox(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = w

        def log_prob(self, y):
            return torch.full((y.shape[0],), -y[0].numel() * math.log(self.w))

    x = torch.randint(0, 17, (4, 64))
    for w in (1.0, 0.5, 0.25):
        bpd = bits_per_dim(UniformOnUnitBox(w), x, levels=17, scale=1 / 17, noise_width=w)
        assert torch.allclose(bpd, torch.full((4,), math.log2(17), dtype=torch.float64))


def test_dequantize_stays_in_its_bin_and_pixels_come_back():
    x = torch.randint(0, 256, (4, 1, 3, 3), dtype=torch.uint8)
    y = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert bool(((y >= x.float()) & (y < x.float() + 1)).all())
    assert torch.equal(pixels_from_data(y), x)


def test_untrained_model_scores_above_the_uniform_bound_and_samples_pixels():
    torch.manual_seed(0)
    model = multiscale_realnvp((1, 8, 8), levels=2, couplings=2, hidden=4)
    x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    assert bits_per_dim(model, x).shape == (8,)
    with torch.no_grad():
        s = pixels_from_data(model.sample(3))
    assert s.shape == (3, 1, 8, 8) and s.dtype == torch.uint8


def test_checkpoint_round_trip_and_manifest_errors(tmp_path):
    model = multiscale_realnvp((1, 8, 8), levels=2, couplings=2, hidden=4)
    path = tmp_path / "m.pt"
    checkpoints.save(path, {"config": {"a": 1}, "model": model.state_dict()})
    assert not list(tmp_path.glob("*.tmp")), "the atomic save left a temporary file"
    payload = checkpoints.load(path)
    assert payload["config"] == {"a": 1}
    manifest = tmp_path / "manifest.json"
    checkpoints.write_manifest_entry("m", {"file": "m.pt", "sha256": checkpoints.sha256(path),
                                           "command": "python -m flowlib.training.images m"}, manifest)
    assert checkpoints.load_pretrained("m", manifest)[1]["file"] == "m.pt"
    with pytest.raises(checkpoints.CheckpointError, match="lists \\['m'\\]"):
        checkpoints.load_pretrained("other", manifest)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(checkpoints.CheckpointError, match="corrupt.*python -m flowlib.training.images m"):
        checkpoints.load_pretrained("m", manifest)
    path.unlink()
    with pytest.raises(checkpoints.CheckpointError, match="missing.*train it again"):
        checkpoints.load_pretrained("m", manifest)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="could not be read"):
        checkpoints.load(tmp_path / "junk.pt")
