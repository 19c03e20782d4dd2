"""Builders for image flows: the multi-scale RealNVP of lesson 05 (Dinh et al. 2017, section 3.6).

Each level squeezes, applies a per-channel learnable affine map (a normalisation, like ActNorm without its
data-dependent start) and affine couplings whose masks alternate between checkerboard and channel-wise, then factors
out half the channels. (The paper's first level also runs checkerboard couplings at full resolution before the
squeeze; we leave them out to save compute and have not measured what they would add.)
The model works on dequantized pixels y = x + u in [0, 2^b) and begins with the logit pre-processing
(flowlib.images), so ``log_prob`` is the density the bits/dim bound needs, every log-det included.
"""
from __future__ import annotations

import torch

from .core import Compose, Flow
from .coupling import AffineCoupling
from .distributions import StandardNormal
from .elementwise import Affine
from .images import logit_preprocessing
from .masks import channel_mask, checkerboard_mask
from .models import FlowModel
from .multiscale import MultiScale, Squeeze


def _channel_affine(c: int) -> Flow:
    return Affine(torch.ones(c, 1, 1), torch.zeros(c, 1, 1), learnable=True)


def _alternating_couplings(shape, n: int, hidden: int) -> list[Flow]:
    """checkerboard (parity 0), checkerboard (parity 1), channel (first half), channel (second half), repeated:
    every variable is transformed by every second layer, and both kinds of neighbourhood are mixed."""
    c, h, w = shape
    out: list[Flow] = []
    for i in range(n):
        kind, parity = divmod(i % 4, 2)
        mask = checkerboard_mask(c, h, w, parity=parity) if kind == 0 else channel_mask(c, h, w, first=parity == 0)
        out.append(AffineCoupling(mask, hidden=hidden))
    return out


def multiscale_realnvp_flow(shape=(1, 28, 28), levels: int = 2, couplings: int = 8, hidden: int = 128) -> MultiScale:
    """The image flow alone (on logit-space inputs of ``shape``), without pre-processing or base.

    Level l: squeeze, a per-channel learnable affine map, ``couplings`` affine couplings whose masks alternate
    checkerboard / channel-wise; then half the channels are factored out (except after the last level).
    For Fashion-MNIST: (1, 28, 28) -> (4, 14, 14), 2 channels out -> (8, 7, 7), all out.
    """
    c, h, w = shape
    stages: list[Flow] = []
    for level in range(levels):
        if h % 2 or w % 2:
            raise ValueError(f"level {level + 1} cannot squeeze a {h}x{w} image (odd size); use fewer levels.")
        flows: list[Flow] = [Squeeze((c, h, w))]
        c, h, w = 4 * c, h // 2, w // 2
        flows.append(_channel_affine(c))
        flows += _alternating_couplings((c, h, w), couplings, hidden)
        stages.append(Compose(*flows))
        c = c // 2  # half the channels are factored out after this level
    return MultiScale(shape, stages)


def multiscale_realnvp(shape=(1, 28, 28), levels: int = 2, couplings: int = 8, hidden: int = 128,
                       pixel_levels: int = 256, alpha: float = 0.05) -> FlowModel:
    """A FlowModel for integer images of ``shape`` (dequantized): pre-processing + multi-scale RealNVP + N(0, I)."""
    flow = Compose(logit_preprocessing(pixel_levels, alpha),
                   multiscale_realnvp_flow(shape, levels, couplings, hidden))
    d = shape[0] * shape[1] * shape[2]
    return FlowModel(flow, StandardNormal(d))
