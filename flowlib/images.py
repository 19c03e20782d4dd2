"""Images as continuous data: dequantization, the logit pre-processing, and bits per dimension — in one place.

The convention of the whole course (lessons 05-07), written once:

    x      integer pixels in {0, ..., L - 1}^D                       (L levels: 256 for 8-bit Fashion-MNIST)
    y      = x + u,  u ~ Uniform[0, 1)^D                             (uniform dequantization, noise width 1)
    model  a density q(y) on [0, L)^D, written as a flow that first pre-processes y:
               y -> y / L -> alpha + (1 - 2 alpha) * (y / L) -> logit(.) -> the image flow -> z
           every step is a Flow, so every step's log-det is part of log q(y): nothing to add by hand.

Because the noise has width 1, each integer x owns a unit cube, and by Jensen's inequality

    log P(x) >= E_u[ log q(x + u) ],    so    bits/dim = -E_u[ log q(x + u) ] / (D ln 2)

is an upper bound on the model's discrete code length, in bits per pixel and channel. Two classic mistakes this
avoids: noise of width w != 1 without the - D log w correction (the bound then is off by D log2 w bits), and a
scaling or logit step whose log-det is left out (phlippe/uvadlc_notebooks #57, #93). D is read off the data, never
hard-coded, and the number of levels is checked against the data (rosinality/glow-pytorch #3, #4).

Lesson 04's digits (17 grey levels) use the same function with the scaling done outside the model:
y = (x + u) / 17, so ``bits_per_dim(..., levels=17, scale=1/17)`` adds the D log(1/17) of that scaling.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import Compose, Flow
from .bijections.elementwise import Affine, Logit


def check_pixels(x: Tensor, levels: int = 256) -> None:
    """Raise a clear error unless ``x`` holds integers in {0, ..., levels - 1}."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor of integer pixels, got {type(x).__name__}.")
    if x.is_floating_point() and not bool((x == x.round()).all()):
        raise ValueError(f"expected integer pixel values (0..{levels - 1}), got non-integer floats: are these "
                         f"already dequantized or scaled to [0, 1]? Pass the raw integer images.")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= levels:
        raise ValueError(f"pixel values must lie in 0..{levels - 1} for {levels} levels; got {lo}..{hi}.")


def dequantize(x: Tensor, levels: int = 256, generator: torch.Generator | None = None, noise_width: float = 1.0,
               scale: float = 1.0) -> Tensor:
    """y = (x + w u) * scale with u ~ Uniform[0, 1): integer pixels (any integer dtype) -> floats.

    The defaults (w = 1, scale = 1) give y in [0, levels), the course's convention for images; the digits of lesson
    04 use scale = 1/17 (y in [0, 1)). ``noise_width`` < 1 exists to show a mistake; ``bits_per_dim`` corrects it.
    """
    check_pixels(x, levels)
    if not 0 < noise_width <= 1:
        raise ValueError(f"noise_width must be in (0, 1], got {noise_width}.")
    u = torch.rand(x.shape, generator=generator, dtype=torch.get_default_dtype()).to(x.device)
    return (x.to(u.dtype) + noise_width * u) * scale


def logit_preprocessing(levels: int = 256, alpha: float = 0.05) -> Flow:
    """The flow y -> logit(alpha + (1 - 2 alpha) y / levels), made of ``Affine`` and ``Logit`` layers.

    ``alpha`` keeps values away from 0 and 1, where the logit is infinite (RealNVP used 0.05). Its log-det,
    D * (log(1 - 2 alpha) - log levels) + sum of the logit's, is counted because the layers are flows.
    """
    if not 0 <= alpha < 0.5:
        raise ValueError(f"alpha must lie in [0, 0.5), got {alpha}.")
    return Compose(Affine(1.0 / levels, 0.0), Affine(1 - 2 * alpha, alpha), Logit())


def pixels_from_data(y: Tensor, levels: int = 256, scale: float = 1.0) -> Tensor:
    """A model sample y back to integer pixels: floor(y / scale), clamped to the valid range (uint8 if it fits)."""
    x = torch.floor(y / scale).clamp(0, levels - 1)
    return x.to(torch.uint8) if levels <= 256 else x.long()


@torch.no_grad()
def bits_per_dim(model, x: Tensor, levels: int = 256, samples: int = 1, generator: torch.Generator | None = None,
                 noise_width: float = 1.0, scale: float = 1.0) -> Tensor:
    """bits/dim of integer images ``x`` (B, ...) under ``model``, a density on y = (x + w u) * scale; shape (B,).

        bits/dim = -( E_u[log q(y)] + D log scale + D log w ) / (D ln 2)

    The D log scale term is the log-det of a scaling done outside the model (none for the images of lesson 05,
    whose model starts with its own scaling); the D log w term corrects a noise narrower than a bin (w < 1).
    ``samples`` > 1 averages log q over several noise draws. A non-finite log-likelihood raises: nothing is averaged
    away (a nansum would make a broken model look fine).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}.")
    check_pixels(x, levels)
    d = x[0].numel()
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for _ in range(samples):
        lp = model.log_prob(dequantize(x, levels, generator, noise_width, scale)).double()
        if not bool(torch.isfinite(lp).all()):
            raise FloatingPointError(f"{int((~torch.isfinite(lp)).sum())} of {lp.numel()} log-likelihoods are "
                                     f"non-finite (NaN or inf); a bits/dim computed from them would be meaningless.")
        total += lp.to(total.device)
    log_p = total / samples + d * (math.log(scale) + math.log(noise_width))
    return -log_p / (d * math.log(2))
