"""scikit-learn's 8x8 digits as a density-estimation benchmark, with honest bits per dimension.

The data: 1797 images of 8x8 = 64 pixels, each pixel an integer grey level x in {0, 1, ..., 16} (17 levels).
``load_digits_split`` makes one fixed, seeded split: 1000 train, 350 validation, 447 test images.

The dequantization convention (written once, used everywhere in the course):

    x in {0..16}^64  (discrete data)
    u ~ Uniform(0, 1)^64
    y = (x + u) / 17  in (0, 1)^64   (what the flow models, with a density q(y))

Why this gives a bound on the discrete data. Let v = x + u; its density is p_v(v) = q(v / 17) * 17^-64 (the
scaling y = v / 17 has log|det dy/dv| = -64 log 17, and it must be counted). The cells [x, x + 1) tile space, so the
model assigns the discrete image x the probability P(x) = integral over its cell of p_v, and by Jensen's inequality

    log P(x) >= E_u[log p_v(x + u)] = E_u[log q((x + u) / 17)] - 64 log 17.

So  bits/dim = -(E_u[log q(y)] - 64 log 17) / (64 log 2)  is an upper bound on the model's true discrete NLL.
Sanity check: the uniform density q = 1 on (0, 1)^64 scores exactly log2 17 = 4.087 bits/dim.

With noise of width w (u ~ Uniform(0, w), y = (x + u) / 17) the bound becomes E_u[log q(y)] - 64 log 17 + 64 log w.
Leaving out the 64 log w term (a known mistake: w = 0.5 with no correction) flatters the model by -log2 w bits per
dimension (1 bit for w = 0.5) and the number is no longer a bound: it can be pushed down without limit by shrinking w.

References: Theis, van den Oord & Bethge 2016 (A note on the evaluation of generative models), section 3.1;
Dinh et al. 2017 (RealNVP), section 4.1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import images
from .core import Compose
from .multiscale import Reshape

LEVELS = 17  # grey levels 0..16
SIDE = 8
DIM = SIDE * SIDE


@dataclass
class DigitsSplit:
    """Integer images (N, 64) with values 0..16 (torch.long) and their labels (N,), for each part of the split."""

    train: Tensor
    val: Tensor
    test: Tensor
    train_labels: Tensor
    val_labels: Tensor
    test_labels: Tensor

    def __repr__(self) -> str:
        return (f"DigitsSplit(train={len(self.train)}, val={len(self.val)}, test={len(self.test)}; "
                f"{DIM} pixels with {LEVELS} grey levels 0..{LEVELS - 1})")


def load_digits_split(seed: int = 0, n_train: int = 1000, n_val: int = 350) -> DigitsSplit:
    """The fixed split of scikit-learn's digits: a seeded shuffle, then train / val / test (the rest, 447 images)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(np.asarray(data.data), dtype=torch.long)  # (1797, 64), values 0..16
    labels = torch.as_tensor(np.asarray(data.target), dtype=torch.long)
    if n_train < 1 or n_val < 0 or n_train + n_val >= len(x):
        raise ValueError(f"n_train={n_train} and n_val={n_val} leave no test images out of {len(x)}.")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, va, te = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
    return DigitsSplit(x[tr], x[va], x[te], labels[tr], labels[va], labels[te])


def _check_levels(x: Tensor) -> None:
    images.check_pixels(x, LEVELS)


def dequantize(x: Tensor, generator: torch.Generator | None = None, noise_width: float = 1.0) -> Tensor:
    """y = (x + u) / 17 with u ~ Uniform(0, noise_width), as float32. ``noise_width=1`` is the right width: the
    noise then fills each grey level's cell [x, x + 1) exactly. (flowlib.images.dequantize with scale 1/17.)"""
    return images.dequantize(x, LEVELS, generator, noise_width, scale=1.0 / LEVELS)


def quantize(y: Tensor) -> Tensor:
    """Back to grey levels: x = floor(17 y), clipped to 0..16 (for showing samples)."""
    return torch.clamp(torch.floor(y * LEVELS), 0, LEVELS - 1).long()


def bits_per_dim(model, x: Tensor, repeats: int = 4, noise_width: float = 1.0, seed: int = 0,
                 batch_size: int = 512) -> float:
    """The honest bits/dim of ``model`` (with ``log_prob(y)`` on y in (0, 1)^64) on integer images ``x``.

    bpd = -(E[log q(y)] - D log 17 + D log w) / (D log 2), averaged over the images and over ``repeats`` draws
    of the dequantization noise u ~ Uniform(0, w). An upper bound on the model's discrete NLL in bits per pixel for
    any w in (0, 1] (the model puts at least the mass of [x, x + w) on x); w = 1, the default, fills the cell.
    Raises if any log-likelihood is not finite (no NaN is averaged away).
    """
    _check_levels(x)
    g = torch.Generator().manual_seed(seed)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = p.device if p is not None else torch.device("cpu")
    total, count = 0.0, 0
    try:
        for _ in range(repeats):
            for i in range(0, len(x), batch_size):
                # the one bits/dim of the course (flowlib.images): scaling by 1/17 and noise width both accounted for
                bpd = images.bits_per_dim(model, x[i:i + batch_size].to(device), LEVELS, generator=g,
                                          noise_width=noise_width, scale=1.0 / LEVELS)
                total += float(bpd.sum())
                count += len(bpd)
    finally:
        if was_training:
            model.train()
    return total / count


def uniform_bits_per_dim() -> float:
    """The reference every model must beat: a uniform distribution over the 17 levels, log2 17 = 4.087."""
    return math.log2(LEVELS)


class PixelHistogram(torch.nn.Module):
    """The baseline a flow must beat: independent pixels, each of the 64 positions with its own grey-level frequencies.

    p[i, k] = (n[i, k] + alpha) / (N + 17 alpha), where n[i, k] counts the training images whose pixel i has level k
    (add-alpha smoothing: a level never seen at a position still gets a little mass). As a density on y = (x + u)/17
    it is piecewise constant, q(y) = prod_i 17 p[i, floor(17 y_i)], so ``log_prob`` integrates to 1 and the
    dequantization bound is tight: its bits/dim is exactly the discrete cross-entropy -E[log2 P(x)] / 64.
    ``PixelHistogram.fit(train, val)`` picks alpha on the validation images (the test set is never looked at).
    """

    ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

    def __init__(self, counts: Tensor, alpha: float = 0.1):
        super().__init__()
        if tuple(counts.shape) != (DIM, LEVELS):
            raise ValueError(f"counts must have shape ({DIM}, {LEVELS}), got {tuple(counts.shape)}.")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (else an unseen level has probability 0), got {alpha}.")
        self.alpha = float(alpha)
        c = counts.double() + alpha
        self.register_buffer("log_p", (c / c.sum(1, keepdim=True)).log())  # (64, 17), log P(pixel i = level k)

    @staticmethod
    def counts(x: Tensor) -> Tensor:
        """n[i, k]: how many of the images ``x`` (N, 64) have level k at position i; shape (64, 17)."""
        _check_levels(x)
        return torch.nn.functional.one_hot(x.long(), LEVELS).sum(0)

    @classmethod
    def fit(cls, train: Tensor, val: Tensor, alphas=ALPHAS) -> "PixelHistogram":
        """Counts from ``train``; the smoothing alpha with the lowest validation bits/dim."""
        n = cls.counts(train)
        return min((cls(n, a) for a in alphas), key=lambda m: m.discrete_bits_per_dim(val))

    def discrete_log_prob(self, x: Tensor) -> Tensor:
        """log P(x) of integer images (N, 64), in nats; shape (N,)."""
        _check_levels(x)
        return self.log_p.gather(1, x.long().T.to(self.log_p.device)).sum(0)

    def discrete_bits_per_dim(self, x: Tensor) -> float:
        """The exact code length -E[log2 P(x)] / 64 of integer images, averaged over the images."""
        return float(-self.discrete_log_prob(x).mean()) / (DIM * math.log(2))

    def log_prob(self, y: Tensor) -> Tensor:
        """log q(y) for y in [0, 1)^64, shape (B,): the level probability spread evenly over its cell of width 1/17."""
        k = quantize(y).to(self.log_p.device)  # the cell of each pixel, as ``quantize`` finds it
        return self.log_p.gather(1, k.T).sum(0) + DIM * math.log(LEVELS)  # float64, like the counts

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n integer images (n, 64), each pixel drawn independently from its position's frequencies."""
        return torch.multinomial(self.log_p.exp(), n, replacement=True, generator=generator).T.contiguous()


def image_grid(x: Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Integer or float images (N, 64) as one 2D array for ``plt.imshow(..., cmap="gray_r")``, ``nrow`` per row,
    with blank (NaN) borders."""
    from .plot_images import image_grid as grid

    return grid(x.detach().float().reshape(-1, 1, SIDE, SIDE).cpu(), nrow, pad, fill=float("nan")).numpy()


def sampler(x: Tensor, seed: int = 0, noise_width: float = 1.0):
    """A function n -> a batch of n training images, drawn at random and freshly dequantized at every call (for
    ``flowlib.train.fit``): the model never sees the same noise twice, which is what the bound assumes."""
    _check_levels(x)
    g = torch.Generator().manual_seed(seed)

    def draw(n: int) -> Tensor:
        return dequantize(x[torch.randint(0, len(x), (n,), generator=g)], g, noise_width)

    return draw


class KeepBest:
    """A ``fit`` callback: every ``every`` steps, the validation bits/dim; it keeps a copy of the best weights.

    Small data overfits quickly (1000 training images), so the model to report is the one with the best validation
    score, not the last one: ``keeper.restore(model)`` after training. The test set is never looked at here.
    """

    def __init__(self, x_val: Tensor, every: int = 50, repeats: int = 1, noise_width: float = 1.0):
        self.x_val, self.every, self.repeats, self.noise_width = x_val, every, repeats, noise_width
        self.best, self.best_step, self.state = math.inf, 0, None

    def __call__(self, step: int, loss: float, model, history) -> None:
        if step % self.every:
            return
        v = bits_per_dim(model, self.x_val, repeats=self.repeats, noise_width=self.noise_width)
        history.log("val_bpd", step, v)
        if v < self.best:
            self.best, self.best_step = v, step
            self.state = {k: t.detach().clone() for k, t in model.state_dict().items()}

    def restore(self, model) -> None:
        if self.state is None:
            raise RuntimeError(f"no validation score was recorded: train for at least every={self.every} steps.")
        model.load_state_dict(self.state)


def train_realnvp(split: DigitsSplit, steps: int = 600, num_couplings: int = 8, hidden: int = 256,
                  layers: int = 2, lr: float = 1e-3, batch_size: int = 128, every: int = 50, seed: int = 0,
                  noise_width: float = 1.0, progress: bool = False):
    """Lesson 04's recipe: a RealNVP (affine couplings, random half masks, ``flowlib.realnvp.make_realnvp``) with a
    standard normal base, trained on freshly dequantized training images and early-stopped on the validation
    bits/dim. Returns ``(model, keeper, history)``; the model holds the best validation weights."""
    from .distributions import StandardNormal
    from .models import FlowModel
    from .realnvp import make_realnvp
    from .train import fit

    torch.manual_seed(seed)
    flow = make_realnvp(DIM, num_couplings, hidden, layers, masks="random",
                        generator=torch.Generator().manual_seed(seed))
    model = FlowModel(flow, StandardNormal(DIM))
    keeper = KeepBest(split.val, every=every, noise_width=noise_width)
    history = fit(model, sampler(split.train, seed=seed, noise_width=noise_width), steps, lr=lr,
                  batch_size=batch_size, callbacks=[keeper], progress=progress, seed=seed)
    keeper.restore(model)
    return model, keeper, history


def conv_realnvp(levels: int = 2, couplings: int = 8, hidden: int = 64, alpha: float = 0.01):
    """A convolutional multi-scale RealNVP for the digits (lesson 05's architecture, ``image_models``), on the
    lesson's y = (x + u)/17 in [0, 1)^64: view y as a 1x8x8 image, the logit pre-processing
    logit(alpha + (1 - 2 alpha) y) (its log-det is part of log q), then ``multiscale_realnvp_flow``: squeeze to
    4x4x4, ``couplings`` conv affine couplings (checkerboard / channel masks), factor out half, squeeze to 8x2x2,
    ``couplings`` more. A standard normal base on the flat 64-dim latent. ``log_prob`` and ``sample`` use flat
    (B, 64) vectors, like the MLP RealNVP."""
    from .distributions import StandardNormal
    from .image_models import multiscale_realnvp_flow
    from .models import FlowModel

    flow = Compose(Reshape((DIM,), (1, SIDE, SIDE)), images.logit_preprocessing(levels=1, alpha=alpha),
                   multiscale_realnvp_flow((1, SIDE, SIDE), levels, couplings, hidden))
    return FlowModel(flow, StandardNormal(DIM))


def train_conv_realnvp(split: DigitsSplit, steps: int = 600, levels: int = 2, couplings: int = 8, hidden: int = 64,
                       alpha: float = 0.01, lr: float = 2e-3, weight_decay: float = 0.1, batch_size: int = 64,
                       every: int = 50, seed: int = 0, noise_width: float = 1.0, progress: bool = False):
    """Lesson 04's digits model: ``conv_realnvp`` trained on freshly dequantized training images with AdamW (decoupled
    weight decay), a cosine learning-rate schedule over ``steps``, and early stopping on the validation bits/dim.
    Returns ``(model, keeper, history)``; the model holds the best validation weights."""
    from .train import fit

    torch.manual_seed(seed)
    model = conv_realnvp(levels, couplings, hidden, alpha)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    keeper = KeepBest(split.val, every=every, noise_width=noise_width)
    history = fit(model, sampler(split.train, seed=seed, noise_width=noise_width), steps, lr=lr,
                  batch_size=batch_size, optimizer=opt, scheduler=sched, callbacks=[keeper], progress=progress,
                  seed=seed)
    keeper.restore(model)
    return model, keeper, history
