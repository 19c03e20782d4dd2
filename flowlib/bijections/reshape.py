"""Flows that only rearrange values: log|det| = 0.

``Squeeze`` trades space for channels (the multi-scale architecture of RealNVP and Glow), ``Reshape`` views one
sample with another shape of the same size. Both say what they do to a shape (``forward_shape``/``inverse_shape``),
so a stack that contains them knows its own input and output shapes.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from flowlib.core import Flow, FlowInputError, _fmt


class Squeeze(Flow):
    """Space to channels: (B, C, H, W) -> (B, 4C, H/2, W/2); a permutation, so log|det| = 0.

    Convention: each 2x2 block of a channel becomes 4 consecutive channels, in reading order: new channel
    4c + 2i + j holds pixel (2h + i, 2w + j) of channel c. Lesson 05 checks this on a small numbered tensor.
    """

    def __init__(self, event_shape: Sequence[int] | None = None):
        super().__init__()
        if event_shape is not None:
            self.event_shape = _chw(event_shape, "Squeeze")
            self.latent_shape = self.forward_shape(self.event_shape)

    def forward_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        if self.event_shape is not None and shape != self.event_shape:
            raise FlowInputError(f"Squeeze.forward expected x of shape {_fmt(self.event_shape)}, got {_fmt(shape)}.")
        c, h, w = _chw(shape, "Squeeze.forward")
        if h % 2 or w % 2:
            raise FlowInputError(f"Squeeze needs an even height and width, got (C, H, W) = ({c}, {h}, {w}).")
        return 4 * c, h // 2, w // 2

    def inverse_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        if self.latent_shape is not None and shape != self.latent_shape:
            raise FlowInputError(f"Squeeze.inverse expected z of shape {_fmt(self.latent_shape)}, got {_fmt(shape)}.")
        c4, h, w = _chw(shape, "Squeeze.inverse")
        if c4 % 4:
            raise FlowInputError(f"Squeeze.inverse needs a channel count divisible by 4, got (C, H, W) = "
                                 f"({c4}, {h}, {w}).")
        return c4 // 4, 2 * h, 2 * w

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
            raise FlowInputError(f"Reshape cannot turn shape {self.event_shape} ({math.prod(self.event_shape)} values) "
                             f"into {self.latent_shape} ({math.prod(self.latent_shape)} values).")

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.latent_shape), x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.reshape(z.shape[0], *self.event_shape), z.new_zeros(z.shape[0])


def _chw(shape: Sequence[int], who: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise FlowInputError(f"{who} needs an image shape (C, H, W), got {shape}.")
    return shape  # type: ignore[return-value]
