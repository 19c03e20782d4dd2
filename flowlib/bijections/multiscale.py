"""Multi-scale image flows (RealNVP, Dinh et al. 2017, section 3.6): squeeze, and factor out half the channels
after each level, so that later levels work on fewer, coarser variables.

    (C, H, W) --squeeze--> (4C, H/2, W/2) --level 1--> split: 2C channels leave as z_1, 2C go on
              --squeeze--> (8C, H/4, W/4) --level 2--> ... the last level keeps everything: z_L.

``MultiScale`` is a Flow like any other: ``forward`` returns one flat latent (B, C*H*W) that holds every level's
factored-out part, so ``inverse`` of it reconstructs x exactly (nothing is re-sampled). ``split_latents`` and
``merge_latents`` convert between the flat latent and the per-level tensors.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .core import Compose, Flow, Inverse


class Squeeze(Flow):
    """Space to channels: (B, C, H, W) -> (B, 4C, H/2, W/2); a permutation, so log|det| = 0.

    Convention: each 2x2 block of a channel becomes 4 consecutive channels, in reading order: new channel
    4c + 2i + j holds pixel (2h + i, 2w + j) of channel c. Lesson 05 checks this on a small numbered tensor.
    """

    def __init__(self, event_shape: Sequence[int] | None = None):
        super().__init__()
        if event_shape is not None:
            c, h, w = _chw(event_shape, "Squeeze")
            if h % 2 or w % 2:
                raise ValueError(f"Squeeze needs an even height and width, got (C, H, W) = ({c}, {h}, {w}).")
            self.event_shape = (c, h, w)
            self.latent_shape = self.output_shape(self.event_shape)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = _chw(shape, "Squeeze")
        return 4 * c, h // 2, w // 2

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if v.dim() != 4:
            raise ValueError(f"Squeeze.{direction} expects (B, C, H, W), got {tuple(v.shape)}.")
        if direction == "forward" and (v.shape[2] % 2 or v.shape[3] % 2):
            raise ValueError(f"Squeeze needs an even height and width, got {tuple(v.shape)}.")
        if direction == "inverse" and v.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse needs a channel count divisible by 4, got {tuple(v.shape)}.")

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, x.new_zeros(b)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b, c4, h, w = z.shape
        x = z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)
        return x, z.new_zeros(b)


class Reshape(Flow):
    """(B, *in_shape) <-> (B, *out_shape), the same values in the same order: log|det| = 0.

    E.g. ``Reshape((64,), (1, 8, 8))`` lets a convolutional flow model vectors of 64 pixels.
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]):
        super().__init__()
        self.event_shape, self.latent_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.event_shape) != math.prod(self.latent_shape):
            raise ValueError(f"Reshape cannot turn shape {self.event_shape} ({math.prod(self.event_shape)} values) "
                             f"into {self.latent_shape} ({math.prod(self.latent_shape)} values).")

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return self.latent_shape

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.latent_shape), x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.reshape(z.shape[0], *self.event_shape), z.new_zeros(z.shape[0])


def output_shape(flow: Flow, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape a flow's forward produces from one sample of ``shape``, without running it."""
    if isinstance(flow, (Squeeze, Reshape)):
        return flow.output_shape(shape)
    if isinstance(flow, Compose):
        for f in flow.flows:
            shape = output_shape(f, shape)
        return tuple(shape)
    if isinstance(flow, Inverse) and isinstance(flow.flow, Squeeze):
        c, h, w = shape
        return c // 4, 2 * h, 2 * w
    return tuple(shape)


class MultiScale(Flow):
    """Levels of flows with half the channels factored out after every level but the last.

    Args:
        event_shape: (C, H, W) of one input image.
        levels: the flow of each level; a level may change the shape (e.g. start with a ``Squeeze``); after level
            l < L its output's first half of channels is factored out.

    forward: x -> flat z (B, C*H*W) = concat(flatten(z_1), ..., flatten(z_L)), logdet = sum of the levels'.
    """

    def __init__(self, event_shape: Sequence[int], levels: Sequence[Flow]):
        super().__init__()
        self.event_shape = _chw(event_shape, "MultiScale")
        if not levels:
            raise ValueError("MultiScale needs at least one level.")
        self.levels = torch.nn.ModuleList(levels)
        shape, self.latent_shapes = self.event_shape, []
        for i, level in enumerate(levels):
            shape = output_shape(level, shape)
            if i < len(levels) - 1:
                if shape[0] % 2:
                    raise ValueError(f"level {i + 1} outputs {shape[0]} channels, which cannot be split in half.")
                self.latent_shapes.append((shape[0] // 2, *shape[1:]))
                shape = (shape[0] - shape[0] // 2, *shape[1:])
            else:
                self.latent_shapes.append(tuple(shape))
        dims = sum(math.prod(s) for s in self.latent_shapes)
        if dims != math.prod(self.event_shape):
            raise ValueError(f"the levels change the number of variables: {math.prod(self.event_shape)} in, "
                             f"{dims} out.")
        self.latent_shape = (dims,)  # one flat latent

    def split_latents(self, z: Tensor) -> list[Tensor]:
        """The flat latent (B, D) as per-level tensors [(B, *latent_shapes[0]), ...]."""
        sizes = [math.prod(s) for s in self.latent_shapes]
        return [p.reshape(z.shape[0], *s) for p, s in zip(z.split(sizes, dim=1), self.latent_shapes)]

    def merge_latents(self, zs: Sequence[Tensor]) -> Tensor:
        """Per-level tensors back into the flat latent (B, D)."""
        return torch.cat([p.reshape(p.shape[0], -1) for p in zs], dim=1)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet, zs = x.new_zeros(x.shape[0]), []
        h = x
        for i, level in enumerate(self.levels):
            h, ld = level(h)
            logdet = logdet + ld
            if i < len(self.levels) - 1:
                k = self.latent_shapes[i][0]
                zs.append(h[:, :k])
                h = h[:, k:]
        zs.append(h)
        return self.merge_latents(zs), logdet

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        zs = self.split_latents(z)
        logdet = z.new_zeros(z.shape[0])
        h = zs[-1]
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                h = torch.cat([zs[i], h], dim=1)
            h, ld = self.levels[i].inverse(h)
            logdet = logdet + ld
        return h, logdet


def _chw(shape: Sequence[int], who: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{who} needs an image shape (C, H, W), got {shape}.")
    return shape  # type: ignore[return-value]
