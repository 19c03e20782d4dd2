"""scikit-learn's 8x8 digits as a density-estimation benchmark, with honest bits per dimension (data and its
convention only: the baseline is ``flowlib.baselines.PixelHistogram``, the model ``flowlib.builders.conv_realnvp``,
the lesson's training recipes live in the teaching layer's experiments).

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

from flowlib import images

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


SKLEARN_MISSING = ("scikit-learn's 8x8 digits need scikit-learn, which is not installed in this Python. Install it with "
                   "`pip install scikit-learn`, or install the course's extras, which include it: "
                   "`pip install -e \".[course]\"` in the course's checkout (`./course setup` does that).")


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (images (1797, 64) with grey levels 0..16, labels (1797,)), from scikit-learn, which
    ships them (no download). scikit-learn is imported only here: without it, an ImportError says what to install."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(SKLEARN_MISSING) from err
    data = load_digits()
    return np.asarray(data.data), np.asarray(data.target)


def load_digits_split(seed: int = 0, n_train: int = 1000, n_val: int = 350) -> DigitsSplit:
    """The fixed split of scikit-learn's digits: a seeded shuffle, then train / val / test (the rest, 447 images)."""
    pixels, targets = load_digits_arrays()
    x = torch.as_tensor(pixels, dtype=torch.long)  # (1797, 64), values 0..16
    labels = torch.as_tensor(targets, dtype=torch.long)
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
    Raises if any log-likelihood is not finite (no NaN is averaged away). ``image_bits_per_dim`` gives each image's.
    """
    return float(image_bits_per_dim(model, x, repeats, noise_width, seed, batch_size).mean())


def image_bits_per_dim(model, x: Tensor, repeats: int = 4, noise_width: float = 1.0, seed: int = 0,
                       batch_size: int = 512) -> Tensor:
    """``bits_per_dim`` of each image, shape (N,) (float64, on the CPU): the bound for that image, its log q
    averaged over ``repeats`` noise draws. Without gradients, in eval mode (the model's mode is restored). The noise
    comes from one generator seeded with ``seed``, drawn repeat after repeat, batch after batch: for N <= batch_size
    the same draws as ``dequantize(x, torch.Generator().manual_seed(seed), noise_width)`` called ``repeats`` times.
    """
    _check_levels(x)
    g = torch.Generator().manual_seed(seed)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = p.device if p is not None else torch.device("cpu")
    total = torch.zeros(len(x), dtype=torch.float64)
    try:
        with torch.no_grad():
            for _ in range(repeats):
                for i in range(0, len(x), batch_size):
                    # the one bits/dim of the course (flowlib.images): scaling by 1/17 and noise width both counted
                    bpd = images.bits_per_dim(model, x[i:i + batch_size].to(device), LEVELS, generator=g,
                                              noise_width=noise_width, scale=1.0 / LEVELS)
                    total[i:i + batch_size] += bpd.double().cpu()
    finally:
        if was_training:
            model.train()
    return total / repeats


def uniform_bits_per_dim() -> float:
    """The reference every model must beat: a uniform distribution over the 17 levels, log2 17 = 4.087."""
    return math.log2(LEVELS)


def sampler(x: Tensor, seed: int = 0, noise_width: float = 1.0):
    """A function n -> a batch of n training images, drawn at random and freshly dequantized at every call (for
    ``flowlib.training.fit``): the model never sees the same noise twice, which is what the bound assumes."""
    _check_levels(x)
    g = torch.Generator().manual_seed(seed)

    def draw(n: int) -> Tensor:
        return dequantize(x[torch.randint(0, len(x), (n,), generator=g)], g, noise_width)

    return draw
