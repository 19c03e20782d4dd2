"""Lesson 07's maths: exact encode/decode, temperature, interpolation, attribute directions, levels, the
out-of-distribution sets and the baselines of the bits/dim table, each against an independent computation."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from flowlib import images, latents, ood
from flowlib.builders import glow
from flowlib.image_baselines import ImageVAE, ImportanceWeighted, PixelHistogram, fit_histogram
from flowlib.builders import multiscale_realnvp


def _perturbed(model, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _perturbed(glow(levels=2, steps=2, hidden=8))


@pytest.fixture(scope="module")
def pixels():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 1, 28, 28), generator=g).to(torch.uint8)


@pytest.mark.parametrize("builder", ["glow", "realnvp"])
def test_encode_decode_is_exact(builder, pixels):
    torch.manual_seed(0)
    m = _perturbed(glow(levels=2, steps=2, hidden=8) if builder == "glow" else
                   multiscale_realnvp(levels=2, couplings=2, hidden=8))
    z = latents.encode(m, pixels)
    assert z.shape == (6, 784)
    y = latents.decode(m, z)
    assert float((y - pixels.float() - 0.5).abs().max()) < 1e-3  # bin centres, float32 (ulp at 256: 1.5e-5)
    assert torch.equal(latents.to_pixels(y), pixels)
    # the encoding is the model's own forward pass at x + 1/2 (computed in float64, rounded once to float32)
    with torch.no_grad():
        assert torch.allclose(z, m.flow(pixels.float() + 0.5)[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(z, copy.deepcopy(m).double().flow(pixels.double() + 0.5)[0].float())


def test_a_float64_model_encodes_and_decodes_in_float64(pixels):
    """The round trip's error in float32 is rounding: the same model moved to float64 (model.double()) encodes and
    decodes in float64, and its error drops by many orders of magnitude."""
    torch.manual_seed(0)
    m32 = _perturbed(glow(levels=2, steps=2, hidden=8))
    m64 = copy.deepcopy(m32).double()
    z32, z64 = latents.encode(m32, pixels, precision="model"), latents.encode(m64, pixels)
    assert z32.dtype == torch.float32 and z64.dtype == torch.float64
    err32 = float((latents.decode(m32, z32, precision="model") - pixels.float() - 0.5).abs().max())
    y64 = latents.decode(m64, z64)
    assert y64.dtype == torch.float64
    err64 = float((y64 - pixels.double() - 0.5).abs().max())
    assert err64 < 1e-9 and err64 < err32 / 1e4, (err32, err64)


# The shipped Glow's test images with the largest float32 round-trip error: found by running encode/decode with
# precision="model" over all 10,000 test images (batches of 500) and sorting by the largest pixel error.
WORST_ROUND_TRIP_IMAGES = [4114, 6573, 1278, 3129, 8742, 2590]


def test_the_shipped_glow_round_trip_meets_1e_4_on_its_worst_test_images():
    """Issue 14's target: max |decode(encode(x)) - (x + 1/2)| < 1e-4 on the [0, 1] image scale, float32 latents in
    and out. The default float64 computation is within a tenth of that (its floor: rounding the latents to float32
    and decoding them exactly moves image 4114 by 1.1e-3 grey levels); the float32 computation (precision="model",
    the code before the fix) is not, on these images."""
    from flowlib.data import fashion_mnist
    from flowlib.training.images import load_pretrained_model

    model, _ = load_pretrained_model("glow-fmnist")
    x = fashion_mnist.load("test")[0][WORST_ROUND_TRIP_IMAGES]

    def worst(precision: str) -> float:
        z = latents.encode(model, x, precision=precision)
        y = latents.decode(model, z, precision=precision)
        assert z.dtype == y.dtype == torch.float32  # float32 latents and images in and out
        assert torch.equal(latents.to_pixels(y), x)
        return float((y.double() - x.double() - 0.5).abs().max())

    accurate, fast = worst("float64"), worst("model")
    assert accurate / 256 < 1e-4  # the target, [0, 1] scale
    bound = 256 * 1e-5  # a tenth of the target: 2.6e-3 grey levels
    assert accurate < bound < fast, (accurate, fast)  # the fix passes; the float32 computation (0.011-0.03) fails


def test_the_float64_copy_follows_the_model_and_keeps_its_overflows(pixels):
    """precision="float64" runs a cached float64 copy: a decoding that leaves float32's range must still count as
    overflowed, and the copy must be made again when the weights change (an optimiser step modifies them in place)."""
    torch.manual_seed(0)
    m = _perturbed(glow(levels=2, steps=2, hidden=8))
    z = latents.encode(m, pixels)
    # ~10 times the latents: the coupling inverses' exp(-s) passes float32's range (3.4e38) for some images, not
    # float64's (1.8e308). Computed in float64, exactly those images overflow, as in the model's own float32.
    far = 9.765625 * z

    def overflowed(model, zs, **kw) -> list[bool]:
        return torch.isnan(latents.decode(model, zs, nonfinite="nan", **kw)).reshape(len(zs), -1).any(1).tolist()

    in_float32 = overflowed(m, far, precision="model")
    assert any(in_float32) and not all(in_float32)
    assert overflowed(m, far) == in_float32
    assert sum(overflowed(copy.deepcopy(m).double(), far.double())) < sum(in_float32)  # float64 alone overflows less
    with pytest.raises(OverflowError, match="nonfinite='nan'"):
        latents.decode(m, far)

    with torch.no_grad():
        next(m.parameters()).mul_(1.5)  # in place, as a training step does
    z_after = latents.encode(m, pixels)
    assert not torch.equal(z, z_after)
    assert torch.equal(z_after, latents.encode(copy.deepcopy(m).double(), pixels).float())
    with pytest.raises(ValueError, match="precision must be one of"):
        latents.encode(m, pixels, precision="float16")


def test_encode_accepts_single_images_and_refuses_bad_ones(model, pixels):
    z = latents.encode(model, pixels[0, 0])
    assert torch.allclose(z, latents.encode(model, pixels[:1]))
    assert latents.encode(model, pixels[0]).shape == (1, 784)
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 28, 28\).*got \(2, 1, 32, 32\)"):
        latents.encode(model, torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="integer pixel values"):
        latents.encode(model, pixels.float() / 255)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        latents.encode(model, torch.full((1, 1, 28, 28), 300))
    with pytest.raises(ValueError, match=r"flat latents of shape \(B, 784\)"):
        latents.decode(model, torch.zeros(2, 10))
    with pytest.raises(ValueError, match="MultiScale"):
        latents.encode(torch.nn.Linear(2, 2), pixels)


def test_temperature(model):
    with pytest.raises(ValueError, match=r"temperature must lie in \[0.0, 2.0\]"):
        latents.sample(model, 2, temperature=3.0)
    with pytest.raises(ValueError, match="temperature must be a number"):
        latents.sample(model, 2, temperature="hot")
    cold = latents.sample(model, 3, temperature=0.0)  # z = 0 for all three: one image
    assert torch.allclose(cold[0], cold[1]) and torch.allclose(cold[0], cold[2])
    eps = latents.base_noise(model, 2, seed=5)
    assert torch.allclose(latents.sample(model, 2, 0.5, seed=5), latents.decode(model, 0.5 * eps))


def test_slerp_against_the_great_circle():
    e0, e1 = torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    e0[0], e1[3] = 2.0, 2.0  # orthogonal, radius 2: slerp is 2 (cos(t pi/2) e0/2 + sin(t pi/2) e1/2)
    for t in (0.0, 0.2, 0.5, 1.0):
        want = math.cos(t * math.pi / 2) * e0 + math.sin(t * math.pi / 2) * e1
        assert torch.allclose(latents.slerp(e0, e1, t), want, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(784, generator=g), torch.randn(784, generator=g)
    b = b / b.norm() * a.norm()
    path = latents.interpolate(a, b, 7, "spherical")
    assert torch.allclose(path.norm(dim=1), a.norm().expand(7), rtol=1e-5)  # stays on the sphere
    line = latents.interpolate(a, b, 7, "linear")
    assert float(line[3].norm()) < 0.75 * float(a.norm())  # the straight line cuts inside: ~ |a| / sqrt(2)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(latents.slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: falls back to linear
    with pytest.raises(ValueError, match="method must be one of"):
        latents.interpolate(a, b, 5, "cubic")
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        latents.interpolate(a, b, 1)


def test_shell_radius_against_monte_carlo():
    g = torch.Generator().manual_seed(0)
    for d, t in [(784, 1.0), (784, 0.6), (3, 1.0)]:
        mc = float((t * torch.randn(20000, d, generator=g, dtype=torch.float64)).norm(dim=1).mean())
        assert latents.shell_radius(d, t) == pytest.approx(mc, rel=0.01)


def test_class_names():
    assert latents.class_index("Ankle boot") == 9 and latents.class_index("ankle-boot") == 9
    assert latents.class_index("T-shirt") == 0 and latents.class_index("top") == 0 and latents.class_index(7) == 7
    with pytest.raises(ValueError, match=r"unknown Fashion-MNIST class 'hat'; choose one of \['T-shirt/top'"):
        latents.class_index("hat")
    with pytest.raises(ValueError, match=r"class index must be 0\.\.9"):
        latents.class_index(10)


def test_attribute_direction_is_a_difference_of_class_means():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 6, generator=g)
    labels = torch.tensor([7, 9, 7, 9, 9] * 8)
    d = latents.attribute_direction(z, labels, "Sneaker", "Ankle boot")
    assert torch.allclose(d, z[labels == 9].mean(0) - z[labels == 7].mean(0))
    means = latents.class_means(z, labels)
    assert torch.allclose(means[9] - means[7], d) and bool(torch.isnan(means[0]).all())
    moved = latents.apply_direction(z[0], d, [0.0, 1.0, 2.0])
    assert torch.allclose(moved[2], z[0] + 2 * d)
    with pytest.raises(ValueError, match="same class"):
        latents.attribute_direction(z, labels, "sneaker", 7)
    with pytest.raises(ValueError, match="no example of class 'Bag'"):
        latents.attribute_direction(z, labels, "Bag", "Sneaker")


def test_levels_swap_and_resample(model, pixels):
    assert latents.level_count(model) == 2
    z = latents.encode(model, pixels[:2])
    zs = latents.split_levels(model, z)
    assert [tuple(p.shape[1:]) for p in zs] == [(2, 14, 14), (8, 7, 7)]
    assert torch.equal(latents.merge_levels(model, zs), z)
    za, zb = z[:1], z[1:]
    mixed = latents.split_levels(model, latents.swap_levels(model, za, zb, [2]))
    assert torch.equal(mixed[0], zs[0][:1]) and torch.equal(mixed[1], zs[1][1:])
    assert torch.equal(latents.swap_levels(model, za, zb, [1, 2]), zb)
    fresh = latents.split_levels(model, latents.resample_levels(model, za, [1], temperature=0.5))
    assert torch.equal(fresh[1], zs[1][:1]) and not torch.equal(fresh[0], zs[0][:1])
    # re-drawing the factored-out level loses the image: the reconstruction is no longer exact
    y = latents.decode(model, latents.resample_levels(model, za, [1]))
    assert float((y - pixels[:1].float() - 0.5).abs().max()) > 1.0
    with pytest.raises(ValueError, match=r"levels 1\.\.2 \(1 = finest, 2 = coarsest\); got \[3\]"):
        latents.swap_levels(model, za, zb, [3])


def test_ood_sets():
    g = torch.Generator().manual_seed(0)
    clothes = torch.randint(0, 256, (20, 1, 28, 28), generator=g).to(torch.uint8)
    sets = ood.ood_sets(clothes, 10)
    assert list(sets) == list(ood.SETS)
    for name, x in sets.items():
        assert x.shape == (10, 1, 28, 28) and x.dtype == torch.uint8, name
    assert torch.equal(sets["Fashion-MNIST test"], clothes[:10])
    assert torch.equal(sets["inverted"].long(), 255 - clothes[:10].long())
    assert torch.equal(sets["flipped upside down"][:, :, 0], clothes[:10, :, 27])
    c = sets["constant"].reshape(10, -1)
    assert bool((c == c[:, :1]).all())
    digits = ood.digits_28x28()
    assert digits.shape == (1797, 1, 28, 28) and int(digits.max()) == 255
    assert int(digits[:, :, :4].max()) == 0  # centred in a 20x20 box, like MNIST
    with pytest.raises(ValueError, match="only 20 test images"):
        ood.ood_sets(clothes, 50)


def test_pixel_histogram_is_the_discrete_cross_entropy():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 4, (200, 1, 2, 3), generator=g).to(torch.uint8) * 60
    test = torch.randint(0, 4, (30, 1, 2, 3), generator=g).to(torch.uint8) * 60
    h = PixelHistogram(PixelHistogram.counts(train, 256), alpha=0.5)
    # brute force: P(pixel i = k) from the counts, by a loop
    flat = train.reshape(200, -1).long()
    lp = torch.zeros(30, dtype=torch.float64)
    for i in range(6):
        counts = torch.bincount(flat[:, i], minlength=256).double() + 0.5
        lp += torch.log(counts / counts.sum())[test.reshape(30, -1)[:, i].long()]
    assert torch.allclose(h.discrete_log_prob(test), lp)
    bpd = images.bits_per_dim(h, test, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bpd, -lp / (6 * math.log(2)))  # tight: the dequantized bound IS the discrete number
    pooled = fit_histogram(train, test, "pooled", alphas=(0.5,))
    all_pixels = torch.bincount(flat.reshape(-1), minlength=256).double() + 0.5
    assert torch.allclose(pooled.discrete_log_prob(test),
                          torch.log(all_pixels / all_pixels.sum())[test.reshape(30, -1).long()].sum(1))
    fitted = fit_histogram(train, test, alphas=(0.01, 100.0))
    assert fitted.alpha == 0.01
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_histogram(train, test, "global")


def test_image_vae_bounds_include_the_preprocessing_logdet():
    torch.manual_seed(0)
    vae = ImageVAE((1, 4, 4), latent=2, hidden=8)
    y = images.dequantize(torch.randint(0, 256, (5, 1, 4, 4)))
    s = 0.05 + 0.9 * y.double() / 256  # the pre-processing written out: y -> s -> logit(s)
    logdet = (math.log(0.9 / 256) - torch.log(s) - torch.log1p(-s)).reshape(5, -1).sum(1)
    v = torch.log(s / (1 - s)).float().reshape(5, -1)
    torch.manual_seed(1)
    elbo = vae.elbo(y)
    torch.manual_seed(1)
    assert torch.allclose(elbo, vae.vae.elbo(v) + logdet.float(), atol=1e-3)
    torch.manual_seed(1)
    assert torch.allclose(vae.importance_log_prob(y, k=1), elbo, atol=1e-4)  # K = 1 is the ELBO
    torch.manual_seed(2)
    many = vae.importance_log_prob(y, k=200, chunk=64)
    torch.manual_seed(2)
    assert bool((many >= vae.elbo(y, k=200) - 1e-4).all())  # log mean exp >= mean log (same samples)
    torch.manual_seed(3)
    view = ImportanceWeighted(vae, 3).log_prob(y)
    torch.manual_seed(3)
    assert torch.allclose(view, vae.importance_log_prob(y, k=3))
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 4, 4\)"):
        vae.elbo(torch.rand(2, 1, 5, 5) * 255)


def test_a_missing_shipped_model_names_the_command_that_makes_it(monkeypatch):
    from flowlib.training.checkpoints import CheckpointError
    from flowlib.training.images import CONFIGS, load_pretrained_model

    from .tiny_configs import TINY

    monkeypatch.setitem(CONFIGS, "glow-fmnist-tiny", TINY["glow-fmnist-tiny"])  # a recipe that is not shipped

    with pytest.raises(CheckpointError, match=r"no checkpoint named 'glow-fmnist-tiny'.*python -m "
                                              r"flowlib.training glow-fmnist-tiny --release"):
        load_pretrained_model("glow-fmnist-tiny")


def test_bpd_table_rows_and_file(tmp_path):
    from flowlib.training import bpd_table

    test = torch.randint(0, 256, (8, 1, 28, 28)).to(torch.uint8)
    row = bpd_table.compute_row("uniform", test, log=lambda m: None)
    assert row["bpd"] == 8.0 and row["test_images"] == 8
    assert "| uniform | none | 8.0000 |" in bpd_table.format_table([row])
    with pytest.raises(ValueError, match="unknown row 'gan'"):
        bpd_table.compute_row("gan", test)
    with pytest.raises(FileNotFoundError, match="python -m flowlib.training.bpd_table"):
        bpd_table.load_table(tmp_path / "none.json")


def test_a_decoding_that_overflows_is_reported_or_returned_as_nan(model, pixels):
    z = latents.encode(model, pixels[:3])
    z[1] *= 1e38  # far outside the shell: the inverse overflows
    with pytest.raises(OverflowError, match="lower the temperature or strength.*nonfinite='nan'"):
        latents.decode(model, z)
    y = latents.decode(model, z, nonfinite="nan")
    assert bool(torch.isnan(y[1]).all()) and bool(torch.isfinite(y[[0, 2]]).all())
    assert torch.equal(latents.to_pixels(y[[0, 2]]), pixels[[0, 2]])  # the others still decode exactly
    with pytest.raises(ValueError, match="to_grey"):
        latents.to_pixels(y)
    assert bool(torch.isnan(latents.to_grey(y)[1]).all())
    with pytest.raises(ValueError, match="nonfinite must be 'raise' or 'nan'"):
        latents.decode(model, z, nonfinite="skip")
