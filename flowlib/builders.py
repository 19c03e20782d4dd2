"""Model builders, all in one place: MAF and spline MAF (lessons 02-03), RealNVP / NICE on vectors (lesson 04),
the multi-scale RealNVP for images (lesson 05) and its digits variant, Glow (lesson 06).

RealNVP (or NICE) for vectors: a stack of coupling layers whose masks alternate.

    f = [scale] o c_K o ... o c_2 o c_1        (data -> latent; c_1 acts first)

Why alternate: a coupling copies its passed-through coordinates unchanged. If every layer passed the same half
through, that half would leave the stack exactly as it came in (z_p = x_p), and the model's density of x_p would be
the base density; the layers must take turns, so that every coordinate is transformed and can depend on every other.

The optional last layer is an element-wise affine map with a learned scale per coordinate. NICE needs it: additive
couplings preserve volume, so without it the model could not even change the data's overall spread (Dinh et al.
2014, section 3.3). It is kept for the affine version too, so the two differ only in their couplings.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from flowlib.bijections.autoregressive import IAF, MAF
from flowlib.bijections.conv1x1 import ChannelPermutation, InvConv1x1, InvConv1x1LU
from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling
from flowlib.bijections.elementwise import Affine
from flowlib.bijections.glow import GlowCoupling, SplitPrior
from flowlib.bijections.masks import alternating_mask, channel_mask, checkerboard_mask, flip, half_mask, random_mask
from flowlib.bijections.multiscale import MultiScale
from flowlib.bijections.normalization import ActNorm
from flowlib.bijections.reshape import Reshape, Squeeze
from flowlib.bijections.splines import SplineMAF
from flowlib.core import Compose, Flow
from flowlib.distributions import StandardNormal
from flowlib.images import logit_preprocessing
from flowlib.models import FlowModel

MASK_KINDS = ("alternating", "half", "random", "same")


def coupling_masks(dim: int, num_couplings: int, kind: str = "alternating",
                   generator: torch.Generator | None = None) -> list[Tensor]:
    """The schedule of masks of a stack: which mask (1 = passed through) each of the ``num_couplings`` layers uses.

    ``kind`` names the schedule, not a single mask (those are in ``flowlib.bijections.masks``). Every kind but "same" flips
    the mask from one layer to the next, so the layers take turns:

    - "alternating": ``alternating_mask`` (1 0 1 0 ...), then its flip (0 1 0 1 ...), and so on;
    - "half": ``half_mask`` (1 1 0 0), then its flip (0 0 1 1), and so on;
    - "random": a fresh ``random_mask`` for every pair of layers, then its flip;
    - "same": ``half_mask`` in EVERY layer, never flipped (the mistake lesson 04 demonstrates).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}.")
    if kind == "same":
        return [half_mask(dim) for _ in range(num_couplings)]
    masks = []
    for k in range(num_couplings):
        if k % 2:
            masks.append(flip(masks[-1]))
        elif kind == "alternating":
            masks.append(alternating_mask(dim))
        elif kind == "half":
            masks.append(half_mask(dim))
        else:
            masks.append(random_mask(dim, generator))
    return masks


def make_realnvp(dim: int, num_couplings: int = 8, hidden: int = 64, layers: int = 2,
                 coupling: str = "affine", masks: str | Sequence[Tensor] = "alternating",
                 final_scale: bool = True, activation: str = "relu", bound: float = 2.0,
                 generator: torch.Generator | None = None) -> Compose:
    """A ``Compose`` of ``num_couplings`` coupling layers on vectors of size ``dim`` (event shape ``(dim,)``).

    Args:
        coupling: "affine" (RealNVP) or "additive" (NICE).
        masks: a kind understood by ``coupling_masks`` or an explicit list of ``num_couplings`` masks of shape
            ``(dim,)`` (1 = passed through).
        hidden, layers, activation: each conditioner is an ``MLP`` with zero-initialised last layer.
        final_scale: end with a learned element-wise ``Affine`` (needed by NICE; see the module docstring).
        bound: the soft bound on each affine log-scale.
        generator: seeds the random masks.
    """
    if coupling not in ("affine", "additive"):
        raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"a coupling flow needs vectors of dimension >= 2, got dim={dim!r}.")
    if isinstance(masks, str):
        mask_list = coupling_masks(dim, num_couplings, masks, generator)
    else:
        mask_list = list(masks)
        if len(mask_list) != num_couplings:
            raise ValueError(f"got {len(mask_list)} masks for num_couplings={num_couplings}.")
        for i, m in enumerate(mask_list):
            if tuple(m.shape) != (dim,):
                raise ValueError(f"mask {i} has shape {tuple(m.shape)} but the data has shape ({dim},): a mask "
                                 f"must have the shape of one sample.")
    layers_: list[Flow] = []
    for m in mask_list:
        if coupling == "affine":
            layers_.append(AffineCoupling(m, hidden=hidden, layers=layers, activation=activation, bound=bound))
        else:
            layers_.append(AdditiveCoupling(m, hidden=hidden, layers=layers, activation=activation))
    if final_scale:
        layers_.append(Affine(torch.ones(dim), torch.zeros(dim), learnable=True))
    return Compose(*layers_)


# ---- autoregressive (lessons 02-03) ----------------------------------------------------------------------------------
def maf(dim: int, num_layers: int = 5, hidden: Sequence[int] = (64, 64), scale_bound: float = 6.0,
        inverse: bool = False, activation: str = "relu") -> Compose:
    """A stack of ``num_layers`` MAF layers (or IAF layers with ``inverse=True``) whose orders alternate between
    0..D-1 and its reverse, so each coordinate is transformed given the others in turn."""
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}.")
    layer = IAF if inverse else MAF
    return Compose(*[layer(dim, hidden, None if k % 2 == 0 else "reverse", scale_bound, activation) for k in range(num_layers)])


def spline_maf(dim: int, num_layers: int = 4, hidden: Sequence[int] = (64, 64), bins: int = 8, bound: float = 4.0,
               activation: str = "relu") -> Compose:
    """A stack of ``num_layers`` SplineMAF layers whose orders alternate between 0..D-1 and its reverse.

    The default interval [-4, 4] holds the 2D densities of ``flowlib.data.toy2d`` (and most of a standard normal);
    values outside it pass through unchanged, so a wider range of data needs a larger ``bound`` (or standardising).
    """
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}.")
    return Compose(*[SplineMAF(dim, hidden, bins, bound, None if k % 2 == 0 else "reverse", activation)
                     for k in range(num_layers)])


# ---- images (lesson 05) ---------------------------------------------------------------------------------------------
# Builders for image flows: the multi-scale RealNVP of lesson 05 (Dinh et al. 2017, section 3.6).
# 
# Each level squeezes, applies a per-channel learnable affine map (a normalisation, like ActNorm without its
# data-dependent start) and affine couplings whose masks alternate between checkerboard and channel-wise, then factors
# out half the channels. (The paper's first level also runs checkerboard couplings at full resolution before the
# squeeze; on 28x28 single-channel images that costs a third of the compute for little gain, measured in lesson 05.)
# The model works on dequantized pixels y = x + u in [0, 2^b) and begins with the logit pre-processing
# (flowlib.images), so ``log_prob`` is the density the bits/dim bound needs, every log-det included.


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


def conv_realnvp(levels: int = 2, couplings: int = 8, hidden: int = 64, alpha: float = 0.01):
    """A convolutional multi-scale RealNVP for the digits (lesson 05's architecture), on the
    lesson's y = (x + u)/17 in [0, 1)^64: view y as a 1x8x8 image, the logit pre-processing
    logit(alpha + (1 - 2 alpha) y) (its log-det is part of log q), then ``multiscale_realnvp_flow``: squeeze to
    4x4x4, ``couplings`` conv affine couplings (checkerboard / channel masks), factor out half, squeeze to 8x2x2,
    ``couplings`` more. A standard normal base on the flat 64-dim latent. ``log_prob`` and ``sample`` use flat
    (B, 64) vectors, like the MLP RealNVP."""
    flow = Compose(Reshape((64,), (1, 8, 8)), logit_preprocessing(levels=1, alpha=alpha),
                   multiscale_realnvp_flow((1, 8, 8), levels, couplings, hidden))
    return FlowModel(flow, StandardNormal(64))


# ---- Glow (lesson 06) -----------------------------------------------------------------------------------------------
# Glow (Kingma & Dhariwal 2018) for images of shape (C, H, W), with L levels of K steps:
#
#     logit pre-processing (flowlib.images) -> level 1 -> ... -> level L -> one flat latent ~ N(0, I)
#     level l:  Squeeze -> K x [ActNorm -> channel mixing -> GlowCoupling] -> SplitPrior -> factor out half (l < L)
#
# For Fashion-MNIST (1, 28, 28) with L = 2: (4, 14, 14), 2 channels factored out -> (8, 7, 7), all kept as the last
# latent. ``mixing`` picks the channel mixing of Glow's ablation: "lu" (default), "conv" (plain 1x1 convolution),
# "reverse" or "shuffle" (fixed permutations); ``coupling`` picks "affine" (default) or "additive".

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
