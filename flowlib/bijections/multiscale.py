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

from flowlib.bijections.reshape import _chw
from flowlib.core import Flow


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
            shape = level.forward_shape(shape)
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
