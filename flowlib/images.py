"""Images as continuous data: dequantization, the logit pre-processing, and bits per dimension — in one place.

The convention of the whole course (lessons 05-07), written once:

    x      integer pixels in {0, ..., 2^b - 1}^D                     (b = num_bits, 8 for Fashion-MNIST)
    y      = x + u,  u ~ Uniform[0, 1)^D                             (uniform dequantization, noise width 1)
    model  a density q(y) on [0, 2^b)^D, written as a flow that first pre-processes y:
               y -> y / 2^b -> alpha + (1 - 2 alpha) * (y / 2^b) -> logit(.) -> the image flow -> z
           every step is a Flow, so every step's log-det is part of log q(y): nothing to add by hand.

Because the noise has width 1, each integer x owns a unit cube, and by Jensen's inequality

    log P(x) >= E_u[ log q(x + u) ],    so    bits/dim = -E_u[ log q(x + u) ] / (D ln 2)

is an upper bound on the model's discrete code length, in bits per pixel and channel. Two classic mistakes this
avoids: noise of width w != 1 without the - D log w correction (the bound then is off by D log2 w bits), and a
scaling or logit step whose log-det is left out (phlippe/uvadlc_notebooks #57, #93). D is read off the data, never
hard-coded, and the bit depth is checked against the data (rosinality/glow-pytorch #3, #4).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import Compose, Flow
from .elementwise import Affine, Logit


def check_pixels(x: Tensor, num_bits: int = 8) -> None:
    """Raise a clear error unless ``x`` holds integers in {0, ..., 2^num_bits - 1}."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor of integer pixels, got {type(x).__name__}.")
    if x.is_floating_point():
        if not bool((x == x.round()).all()):
            raise ValueError("expected integer pixel values (0..255 for 8 bits), got non-integer floats: are these "
                             "already dequantized or scaled to [0, 1]? Pass the raw integer images.")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= 2**num_bits:
        raise ValueError(f"pixel values must lie in 0..{2**num_bits - 1} for num_bits={num_bits}; got {lo}..{hi}.")


def dequantize(x: Tensor, num_bits: int = 8, generator: torch.Generator | None = None) -> Tensor:
    """y = x + u with u ~ Uniform[0, 1): integer pixels (any integer dtype) -> floats in [0, 2^b)."""
    check_pixels(x, num_bits)
    u = torch.rand(x.shape, generator=generator, dtype=torch.get_default_dtype()).to(x.device)
    return x.to(u.dtype) + u


def logit_preprocessing(num_bits: int = 8, alpha: float = 0.05) -> Flow:
    """The flow y -> logit(alpha + (1 - 2 alpha) y / 2^b), made of ``Affine`` and ``Logit`` layers.

    ``alpha`` keeps values away from 0 and 1, where the logit is infinite (RealNVP used 0.05). Its log-det,
    D * (log(1 - 2 alpha) - b log 2) + sum of the logit's, is counted because the layers are flows.
    """
    if not 0 <= alpha < 0.5:
        raise ValueError(f"alpha must lie in [0, 0.5), got {alpha}.")
    return Compose(Affine(1.0 / 2**num_bits, 0.0), Affine(1 - 2 * alpha, alpha), Logit())


def pixels_from_data(y: Tensor, num_bits: int = 8) -> Tensor:
    """A model sample y in [0, 2^b) back to integer pixels: floor, clamped to the valid range (uint8 for b <= 8)."""
    x = torch.floor(y).clamp(0, 2**num_bits - 1)
    return x.to(torch.uint8) if num_bits <= 8 else x.long()


@torch.no_grad()
def bits_per_dim(model, x: Tensor, num_bits: int = 8, samples: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
    """bits/dim of integer images ``x`` (B, ...) under ``model`` (a density on dequantized y = x + u), shape (B,).

    ``samples`` > 1 averages log q over several noise draws (a slightly tighter estimate of the same bound).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}.")
    check_pixels(x, num_bits)
    d = x[0].numel()
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for _ in range(samples):
        total += model.log_prob(dequantize(x, num_bits, generator)).double()
    return -(total / samples) / (d * math.log(2))
