"""Model builders: each returns a ready-to-train FlowModel (or its flow) from a few size arguments.

Glow (Kingma & Dhariwal 2018) for images of shape (C, H, W), with L levels of K steps:

    logit pre-processing (flowlib.images) -> level 1 -> ... -> level L -> one flat latent ~ N(0, I)
    level l:  Squeeze -> K x [ActNorm -> channel mixing -> GlowCoupling] -> SplitPrior -> factor out half (l < L)

For Fashion-MNIST (1, 28, 28) with L = 2: (4, 14, 14), 2 channels factored out -> (8, 7, 7), all kept as the last
latent. ``mixing`` picks the channel mixing of Glow's ablation: "lu" (default), "conv" (plain 1x1 convolution),
"reverse" or "shuffle" (fixed permutations); ``coupling`` picks "affine" (default) or "additive".
"""
from __future__ import annotations

from typing import Sequence

import torch

from .bijections.conv1x1 import ChannelPermutation, InvConv1x1, InvConv1x1LU
from .bijections.glow import GlowCoupling, SplitPrior
from .bijections.normalization import ActNorm
from .core import Compose, Flow
from .distributions import StandardNormal
from .images import logit_preprocessing
from .models import FlowModel
from .multiscale import MultiScale, Squeeze

MIXINGS = ("lu", "conv", "reverse", "shuffle")
COUPLINGS = ("affine", "additive")


def _mixing(kind: str, shape: tuple[int, int, int], seed: int) -> Flow:
    c = shape[0]
    if kind == "lu":
        return InvConv1x1LU(c, shape, seed=seed)
    if kind == "conv":
        return InvConv1x1(c, shape, seed=seed)
    if kind == "reverse":
        return ChannelPermutation.reverse(c, shape)
    return ChannelPermutation.shuffle(c, seed=seed, event_shape=shape)


def glow_step(shape: Sequence[int], hidden: int = 128, coupling: str = "affine", mixing: str = "lu",
              seed: int = 0) -> Compose:
    """One step of flow: ActNorm -> channel mixing -> coupling, on images of ``shape`` (C, H, W)."""
    shape = tuple(int(s) for s in shape)
    return Compose(ActNorm(shape[0], shape), _mixing(mixing, shape, seed), GlowCoupling(shape, hidden, coupling))


def glow_flow(shape: Sequence[int] = (1, 28, 28), levels: int = 2, steps: int = 16, hidden: int = 128,
              coupling: str = "affine", mixing: str = "lu", split_prior: bool = True) -> MultiScale:
    """The multi-scale Glow flow alone, on logit-space images of ``shape``; forward returns one flat latent."""
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}.")
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
    for name, v in (("levels", levels), ("steps", steps), ("hidden", hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    c, h, w = (int(s) for s in shape)
    stages: list[Flow] = []
    for level in range(levels):
        if h % 2 or w % 2:
            raise ValueError(f"Glow level {level + 1} cannot squeeze a {h}x{w} image (odd size): use at most {level} "
                             f"level(s) for images of shape {tuple(shape)}.")
        flows: list[Flow] = [Squeeze((c, h, w))]
        c, h, w = 4 * c, h // 2, w // 2
        flows += [glow_step((c, h, w), hidden, coupling, mixing, seed=1000 * level + k) for k in range(steps)]
        if level < levels - 1:
            if split_prior:
                flows.append(SplitPrior((c, h, w)))
            c = c // 2
        stages.append(Compose(*flows))
    return MultiScale(tuple(shape), stages)


def glow(shape: Sequence[int] = (1, 28, 28), levels: int = 2, steps: int = 16, hidden: int = 128,
         coupling: str = "affine", mixing: str = "lu", split_prior: bool = True, pixel_levels: int = 256,
         alpha: float = 0.05) -> FlowModel:
    """A Glow FlowModel for dequantized integer images of ``shape``: logit pre-processing + multi-scale Glow + N(0, I).

    The pre-processing is lesson 05's (scaling and logit as flows, alpha = 0.05), so bits/dim are computed by the one
    ``flowlib.images.bits_per_dim`` exactly as for the RealNVP and the two are comparable.
    """
    flow = Compose(logit_preprocessing(pixel_levels, alpha),
                   glow_flow(shape, levels, steps, hidden, coupling, mixing, split_prior))
    d = int(shape[0]) * int(shape[1]) * int(shape[2])
    return FlowModel(flow, StandardNormal(d))
