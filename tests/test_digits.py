"""The digits split, dequantization and the honest bits/dim, checked against exact discrete computations."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib.baselines import PixelHistogram
from flowlib.builders import conv_realnvp
from flowlib.data import digits as D
from flowlib.training import KeepBest
from flowlib_teaching.experiments import train_conv_realnvp, train_realnvp
from flowlib_teaching.plot_images import digit_grid


@pytest.fixture(scope="module")
def split():
    return D.load_digits_split()


def test_split_is_fixed_disjoint_and_complete(split):
    assert (len(split.train), len(split.val), len(split.test)) == (1000, 350, 447)
    assert len(split.test) >= 400
    again = D.load_digits_split()
    assert torch.equal(split.test, again.test) and torch.equal(split.train_labels, again.train_labels)
    every = torch.cat([split.train, split.val, split.test])
    assert every.shape == (1797, 64) and every.dtype == torch.long
    assert int(every.min()) == 0 and int(every.max()) == 16
    # no image index is used twice: compare with sklearn's own array, row multiset
    from sklearn.datasets import load_digits

    ref = torch.as_tensor(load_digits().data, dtype=torch.long)
    assert sorted(map(tuple, every.tolist())) == sorted(map(tuple, ref.tolist()))
    assert not torch.equal(D.load_digits_split(seed=1).test, split.test)


def test_without_scikit_learn_the_error_says_what_to_install(monkeypatch):
    import builtins

    from flowlib import ood

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):  # `import sklearn...` fails as it does where it is not installed
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    for load in (D.load_digits_split, ood.digits_28x28):
        with pytest.raises(ImportError, match="scikit-learn") as err:
            load()
        message = str(err.value)
        assert "pip install scikit-learn" in message and 'pip install -e ".[course]"' in message


def test_the_install_command_names_the_extra_that_pulls_scikit_learn():
    import pathlib
    import tomllib

    pyproject = tomllib.loads((pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    course = pyproject["project"]["optional-dependencies"]["course"]
    assert any(r.replace(" ", "").startswith("scikit-learn") for r in course)


def test_dequantize_fills_each_cell_and_quantize_undoes_it(split):
    y = D.dequantize(split.train, torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and float(y.min()) >= 0 and float(y.max()) < 1
    assert torch.equal(D.quantize(y), split.train)
    frac = y * 17 - split.train  # the noise u, which must fill (0, 1), not (0, 0.5)
    assert float(frac.min()) < 0.01 and float(frac.max()) > 0.99


@pytest.mark.parametrize("bad", [torch.tensor([[17]]), torch.tensor([[-1]]), torch.tensor([[0.5]])])
def test_dequantize_refuses_what_is_not_a_grey_level(bad):
    with pytest.raises(ValueError, match=r"0\.\.16|integer"):
        D.dequantize(bad)


class _Histogram:
    """Independent pixels with given level probabilities p[i, k], as a density piecewise constant on cells of width
    w / 17: exactly the model for which the dequantization bound is tight. Its discrete NLL is known exactly."""

    def __init__(self, p, width=1.0):
        self.logp, self.width = p.log(), width

    def log_prob(self, y):
        k = torch.clamp(torch.floor(y * 17), 0, 16).long()
        inside = (y * 17 - k) < self.width
        lp = self.logp.gather(1, k.T).T + math.log(17 / self.width)  # density = p / (w / 17) on its cell part
        return torch.where(inside, lp, torch.full_like(lp, -math.inf)).sum(1)


def _marginals(x):
    counts = torch.stack([torch.bincount(x[:, i], minlength=17) for i in range(64)]).double() + 1.0
    return counts / counts.sum(1, keepdim=True)


def test_bits_per_dim_is_exact_for_the_uniform_model(split):
    uniform = _Histogram(torch.full((64, 17), 1 / 17))
    assert D.bits_per_dim(uniform, split.test) == pytest.approx(math.log2(17), abs=1e-9)
    assert D.uniform_bits_per_dim() == pytest.approx(4.087, abs=1e-3)


def test_bits_per_dim_equals_the_discrete_nll_of_a_histogram_model(split):
    p = _marginals(split.train)
    exact = float(-p.log().gather(1, split.test.T).T.sum(1).mean()) / (64 * math.log(2))
    assert D.bits_per_dim(_Histogram(p), split.test) == pytest.approx(exact, abs=1e-9)
    assert exact < 4.0  # the marginals alone already beat uniform


def test_half_width_noise_is_honest_only_with_its_correction(split):
    """A model that puts all its mass on the half-cells [x, x + 0.5) has twice the density: without the 64 log 0.5
    correction its number would be exactly 1 bit/dim better than its true discrete NLL."""
    p = _marginals(split.train)
    exact = float(-p.log().gather(1, split.test.T).T.sum(1).mean()) / (64 * math.log(2))
    half = _Histogram(p, width=0.5)
    assert D.bits_per_dim(half, split.test, noise_width=0.5) == pytest.approx(exact, abs=1e-9)
    # what leaving out 64 log w reports: the same noise, the same scaling log-det, no width correction
    y = D.dequantize(split.test, torch.Generator().manual_seed(0), noise_width=0.5)
    uncorrected = float(-(half.log_prob(y) - 64 * math.log(17)).mean()) / (64 * math.log(2))
    assert exact - uncorrected == pytest.approx(1.0, abs=1e-9)


def test_bits_per_dim_refuses_non_finite_likelihoods(split):
    class Broken:
        def log_prob(self, y):
            return torch.full((len(y),), float("nan"))

    with pytest.raises(FloatingPointError, match="non-finite"):
        D.bits_per_dim(Broken(), split.test[:10])


def test_image_grid_shape():
    g = digit_grid(torch.zeros(10, 64, dtype=torch.long), nrow=5)
    assert g.shape == (2 * 9 + 1, 5 * 9 + 1)


def test_sampler_draws_fresh_noise_each_call(split):
    draw = D.sampler(split.train[:5], seed=0)
    a, b = draw(200), draw(200)
    assert a.shape == (200, 64) and not torch.equal(a, b)
    assert set(D.quantize(a).unique().tolist()) <= set(split.train[:5].unique().tolist())


def test_a_short_training_run_beats_uniform_and_keeps_the_best_validation_weights(split):
    model, keeper, history = train_realnvp(split, steps=100, num_couplings=4, hidden=32, every=25)
    steps, vals = zip(*history.extra["val_bpd"])
    assert steps == (25, 50, 75, 100)
    assert keeper.best == min(vals) and keeper.best_step == steps[vals.index(min(vals))]
    assert D.bits_per_dim(model, split.val, repeats=1) == pytest.approx(keeper.best, abs=1e-9)  # restored
    assert keeper.best < D.uniform_bits_per_dim() - 0.5
    with pytest.raises(RuntimeError, match="no validation score"):
        KeepBest(lambda m: D.bits_per_dim(m, split.val, repeats=1), every=10).restore(model)


def test_pixel_histogram_is_a_normalised_density_whose_bits_per_dim_is_the_discrete_cross_entropy(split):
    hist = PixelHistogram.fit(split.train, split.val, levels=D.LEVELS, scale=1 / D.LEVELS)
    assert hist.alpha in PixelHistogram.ALPHAS
    # the smoothing was chosen on validation: no other candidate scores better there
    n = PixelHistogram.counts(split.train, D.LEVELS)
    assert n.shape == (64, 17) and int(n.sum()) == 64 * len(split.train)
    assert all(hist.discrete_bits_per_dim(split.val) <= PixelHistogram(n, a, scale=1 / D.LEVELS).discrete_bits_per_dim(split.val)
               for a in PixelHistogram.ALPHAS)
    # the discrete cross-entropy computed directly, from the counts, with no dequantization
    p = (n.double() + hist.alpha) / (len(split.train) + 17 * hist.alpha)
    assert torch.allclose(p.sum(1), torch.ones(64, dtype=torch.float64))
    exact = float(-torch.stack([p[i, split.test[:, i]].log() for i in range(64)]).sum(0).mean()) / (64 * math.log(2))
    assert hist.discrete_bits_per_dim(split.test) == pytest.approx(exact, abs=1e-12)
    # the honest dequantized bound of the course is tight for it: the same number
    assert D.bits_per_dim(hist, split.test, repeats=2) == pytest.approx(exact, abs=1e-9)
    assert 2.3 < exact < 2.6  # far better than uniform (4.087): position alone says a lot


def test_pixel_histogram_density_is_constant_on_cells_and_factorises():
    """q(y) = prod_i 17 p[i, floor(17 y_i)]: constant on each cell of width 1/17, and with every row of p summing to
    1 each pixel's factor integrates to 1 over [0, 1), so q integrates to 1 over [0, 1)^64."""
    x = torch.randint(0, 17, (30, 64), generator=torch.Generator().manual_seed(0))
    hist = PixelHistogram(PixelHistogram.counts(x, D.LEVELS), alpha=0.5, scale=1 / D.LEVELS)
    g = torch.Generator().manual_seed(1)
    a, b = D.dequantize(x, g), D.dequantize(x, g)  # the same cells, different noise
    assert not torch.equal(a, b) and torch.equal(hist.log_prob(a), hist.log_prob(b))
    p = hist.log_p.exp()
    assert torch.allclose(p.sum(1), torch.ones(64, dtype=torch.float64))
    by_hand = torch.stack([(17 * p[i, x[:, i]]).log() for i in range(64)]).sum(0)
    assert torch.allclose(hist.log_prob(a), by_hand, atol=1e-9)
    assert D.quantize(D.dequantize(hist.sample(5, generator=g), g)).shape == (5, 64)
    with pytest.raises(ValueError, match="alpha"):
        PixelHistogram(PixelHistogram.counts(x, D.LEVELS), alpha=0.0, scale=1 / D.LEVELS)


@pytest.mark.parametrize("width", [1.0, 0.5, 0.1])
def test_pixel_histogram_with_width_spreads_each_level_over_its_box_and_integrates_to_one(split, width):
    hist = PixelHistogram.fit(split.train, split.val, levels=D.LEVELS, scale=1 / D.LEVELS)
    narrow = hist.with_width(width)
    assert narrow.width == width and hist.width == 1.0 and torch.equal(narrow.log_p, hist.log_p)
    # on width-w noise: log p[i, x_i] + log(17 / w) per pixel, every pixel in its own box
    y = D.dequantize(split.test, torch.Generator().manual_seed(2), noise_width=width)
    by_hand = torch.stack([hist.log_p[i, split.test[:, i]] for i in range(64)]).sum(0) + 64 * math.log(17 / width)
    assert torch.allclose(narrow.log_prob(y), by_hand, atol=1e-9)
    # the corrected bits/dim does not move with w: it is the discrete cross-entropy
    assert D.bits_per_dim(narrow, split.test, repeats=1, noise_width=width) == pytest.approx(
        hist.discrete_bits_per_dim(split.test), abs=1e-9)
    # one pixel: q integrates to 1 over [0, 1) (a midpoint sum; q is constant on boxes whose edges are grid points)
    one = PixelHistogram(PixelHistogram.counts(split.train[:, 27:28], D.LEVELS), alpha=0.5, scale=1 / D.LEVELS)
    n = 17 * 200
    grid = ((torch.arange(n, dtype=torch.float64) + 0.5) / n).reshape(-1, 1)
    q = one.with_width(width).log_prob(grid).exp()
    assert float(q.sum() / n) == pytest.approx(1.0, abs=1e-12)
    if width < 1:
        assert (q == 0).float().mean() == pytest.approx(1 - width, abs=0.01)  # nothing outside the boxes


def test_pixel_histogram_puts_float32_values_at_the_box_edges_in_the_right_box():
    x = torch.arange(17).reshape(-1, 1)
    hist = PixelHistogram(PixelHistogram.counts(x, D.LEVELS), alpha=1.0, scale=1 / D.LEVELS).with_width(0.5)
    lowest = (x.float() + 0.0) / 17  # u = 0: may round just below the box
    highest = (x.float() + 0.5 * torch.tensor(1 - 2**-24)) / 17  # u just below 1: may round onto the box's end
    want = hist.log_p[0, 0] + math.log(2 * 17)  # every level has the same probability here
    for y in (lowest, highest):
        assert torch.allclose(hist.log_prob(y), want.expand(17), atol=1e-12)
    assert hist.log_prob(torch.tensor([[0.75 / 17]])).item() == -math.inf  # the empty half of the cell
    with pytest.raises(ValueError, match="width"):
        hist.with_width(1.5)


def test_image_bits_per_dim_is_each_images_bound_and_averages_to_bits_per_dim(split):
    from flowlib import images

    hist = PixelHistogram.fit(split.train, split.val, levels=D.LEVELS, scale=1 / D.LEVELS)
    per_image = D.image_bits_per_dim(hist, split.test, repeats=2)
    exact = -hist.discrete_log_prob(split.test) / (64 * math.log(2))  # the histogram's bound is tight, per image
    assert per_image.shape == (len(split.test),) and torch.allclose(per_image, exact, atol=1e-9)

    torch.manual_seed(0)
    model = conv_realnvp(couplings=2, hidden=8)
    for p in model.parameters():
        p.data += 0.05 * torch.randn_like(p)
    model.train()
    x = split.test[:40]
    got = D.image_bits_per_dim(model, x, repeats=3, noise_width=0.5, seed=4)
    assert model.training and not got.requires_grad  # mode restored, no graph kept
    model.eval()
    with torch.no_grad():  # the same noise draws as images.bits_per_dim from the same seed
        want = images.bits_per_dim(model, x, D.LEVELS, samples=3, generator=torch.Generator().manual_seed(4),
                                   noise_width=0.5, scale=1 / D.LEVELS)
    assert torch.allclose(got, want.double(), atol=1e-5)
    assert float(got.mean()) == pytest.approx(D.bits_per_dim(model, x, repeats=3, noise_width=0.5, seed=4), abs=1e-12)
    in_batches = D.image_bits_per_dim(model, x, repeats=3, noise_width=0.5, seed=4, batch_size=16)
    assert float(in_batches.mean()) == pytest.approx(float(got.mean()), abs=0.2)  # same bound, other noise draws


def test_conv_realnvp_is_an_invertible_flow_on_flat_digits_with_every_log_det_counted():
    from flowlib import testing as T

    torch.manual_seed(0)
    model = conv_realnvp(couplings=2, hidden=8)
    for p in model.parameters():  # leave the zero-initialised start: a generic, non-trivial map
        p.data += 0.05 * torch.randn_like(p)
    y = D.dequantize(torch.randint(0, 17, (3, 64), generator=torch.Generator().manual_seed(0)))
    assert model.flow(y)[0].shape == (3, 64) and model.sample(2).shape == (2, 64)
    T.check_round_trip(model.flow, y, atol=1e-4)
    T.check_logdet(model.flow, y[:2])  # the full 64x64 Jacobian by autograd, logit pre-processing included


def test_a_short_conv_training_run_keeps_the_best_validation_weights(split):
    model, keeper, history = train_conv_realnvp(split, steps=60, couplings=2, hidden=16, every=20)
    steps, vals = zip(*history.extra["val_bpd"])
    assert steps == (20, 40, 60) and keeper.best == min(vals)
    assert D.bits_per_dim(model, split.val, repeats=1) == pytest.approx(keeper.best, abs=1e-9)  # restored
    assert keeper.best < D.uniform_bits_per_dim() - 0.5
