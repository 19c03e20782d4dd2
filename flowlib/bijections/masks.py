"""Binary masks that say which coordinates a coupling layer passes through and which it transforms.

THE convention, used everywhere in flowlib and the course:

    mask == 1   the coordinate is PASSED THROUGH unchanged (z_i = x_i); the networks see only these
    mask == 0   the coordinate is TRANSFORMED, conditioned on the passed-through ones

A mask has the shape of one sample (the event shape): ``(D,)`` for vectors, ``(C, H, W)`` for images. It is a float
tensor of zeros and ones, so that ``mask * x`` keeps the passed-through part. ``flip(mask)`` (= 1 - mask) swaps the
roles; stacking layers with a mask and its flip is what lets every coordinate be transformed (lesson 04).

Kinds (Dinh et al. 2017, RealNVP, section 3.4):
    half_mask(D)              first half passed through, second half transformed (vectors; D must be even)
    alternating_mask(D)       even positions passed through (the 1D "checkerboard"; any D >= 2)
    random_mask(D)            a random half (a half split after a fixed random shuffle)
    checkerboard_mask(C,H,W)  pixels with (i + j) even passed through, in every channel
    channel_mask(C,H,W)       the first C/2 channels passed through (C must be even)
"""
from __future__ import annotations

import torch
from torch import Tensor


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{what} must be a positive integer, got {v!r}.")
    return v


def half_mask(dim: int, first: bool = True) -> Tensor:
    """(D,) mask passing through the first half (``first=True``) or the second half. D must be even: an odd D has
    no two equal halves (use ``alternating_mask`` or build an explicit mask)."""
    dim = _positive_int(dim, "dim")
    if dim % 2:
        raise ValueError(f"half_mask cannot split an odd dimension: D = {dim} has no two equal halves. Use "
                         f"alternating_mask({dim}) or an explicit mask of shape ({dim},).")
    m = torch.zeros(dim)
    m[: dim // 2] = 1.0
    return m if first else flip(m)


def alternating_mask(dim: int, parity: int = 0) -> Tensor:
    """(D,) mask passing through positions i with i % 2 == parity. D >= 2 (one coordinate cannot be split)."""
    dim = _positive_int(dim, "dim")
    if dim < 2:
        raise ValueError("a coupling needs at least 2 dimensions: with D = 1 there is nothing to condition on.")
    return (torch.arange(dim) % 2 == parity % 2).float()


def random_mask(dim: int, generator: torch.Generator | None = None) -> Tensor:
    """(D,) mask passing through a random floor(D/2) of the coordinates (seed it with ``generator``)."""
    dim = _positive_int(dim, "dim")
    if dim < 2:
        raise ValueError("a coupling needs at least 2 dimensions: with D = 1 there is nothing to condition on.")
    m = torch.zeros(dim)
    m[torch.randperm(dim, generator=generator)[: dim // 2]] = 1.0
    return m


def checkerboard_mask(channels: int, height: int, width: int, parity: int = 0) -> Tensor:
    """(C, H, W) mask passing through the pixels with (i + j) % 2 == parity, the same in every channel."""
    c, h, w = (_positive_int(v, n) for v, n in ((channels, "channels"), (height, "height"), (width, "width")))
    if h * w < 2:
        raise ValueError(f"a checkerboard needs at least 2 pixels, got H x W = {h} x {w}.")
    ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
    return (ij % 2 == parity % 2).float().expand(c, h, w).clone()


def channel_mask(channels: int, height: int, width: int, first: bool = True) -> Tensor:
    """(C, H, W) mask passing through the first C/2 channels (``first=True``) or the last C/2. C must be even."""
    c, h, w = (_positive_int(v, n) for v, n in ((channels, "channels"), (height, "height"), (width, "width")))
    if c % 2:
        raise ValueError(f"channel_mask cannot split an odd number of channels: C = {c} (shape ({c}, {h}, {w})) has "
                         f"no two equal halves. Use checkerboard_mask({c}, {h}, {w}), or squeeze first.")
    m = torch.zeros(c, h, w)
    m[: c // 2] = 1.0
    return m if first else flip(m)


def flip(mask: Tensor) -> Tensor:
    """The complementary mask: what was passed through is now transformed, and vice versa."""
    return 1.0 - mask


def check_mask(mask: Tensor, who: str = "mask") -> Tensor:
    """Validate a mask (a tensor of zeros and ones with at least one of each) and return it as float."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{who} must be a torch.Tensor of zeros and ones, got {type(mask).__name__}.")
    if mask.dim() == 0:
        raise ValueError(f"{who} must have the shape of one sample, e.g. (D,) or (C, H, W); got a scalar.")
    m = mask.detach().float()
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError(f"{who} must contain only 0 (transformed) and 1 (passed through); got other values.")
    n_pass = int(m.sum())
    if n_pass == 0:
        raise ValueError(f"{who} of shape {tuple(m.shape)} has no 1: nothing is passed through, so the networks "
                         f"would have nothing to condition on.")
    if n_pass == m.numel():
        raise ValueError(f"{who} of shape {tuple(m.shape)} is all ones: every coordinate is passed through and the "
                         f"layer would be the identity.")
    return m
