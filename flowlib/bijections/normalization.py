"""ActNorm (Kingma & Dhariwal 2018, Glow, section 3.1): a per-channel affine map whose starting values come from data.

For an image batch x of shape (B, C, H, W), with one log-scale s_c and one shift b_c per channel,

    z[:, c, h, w] = x[:, c, h, w] * exp(s_c) + b_c          log|det dz/dx| = H * W * sum_c s_c

(every one of the H*W pixels of channel c is scaled by exp(s_c): forgetting the H*W factor is a classic bug).
For vectors (B, D) it is the same with H * W = 1. Inverse: x = (z - b_c) * exp(-s_c).

Data-dependent initialisation. The first forward pass in training mode sets s and b so that this batch comes out
with zero mean and unit variance per channel; from then on s and b are ordinary parameters. This gives every layer
of a deep, freshly built flow well-scaled inputs without batch statistics at training time (BatchNorm would make
each sample's density depend on the rest of its batch). Three details that public Glow code got wrong:
  - "initialised" is a buffer, so it is saved in the state_dict: a reloaded model does not re-initialise on its
    first batch and overwrite the trained s and b (rosinality/glow-pytorch #6);
  - a channel that is constant over the first batch has standard deviation 0; its scale is left at 1 instead of
    1/0 (no inf, no NaN; vislearn/FrEIA #121);
  - under torch.distributed the statistics are all-reduced over every process's share of the batch, so that every
    replica starts from the same parameters (rosinality/glow-pytorch #2).
The initialisation pass is the one place where the batch is mixed (its output for one sample depends on the others);
after it, each sample is transformed independently. ``mixes_batch()`` says so to flowlib.testing.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from flowlib.core import Flow


class ActNorm(Flow):
    """z = x * exp(log_scale) + shift per channel; log|det| = (H*W) * sum(log_scale). Shapes (B, C, H, W) or (B, D).

    Args:
        num_channels: C (the size of dimension 1).
        event_shape: optional full shape of one sample, e.g. (C, H, W), checked on input.
        eps: a channel whose standard deviation over the first batch is below ``eps`` keeps scale 1.
    """

    def __init__(self, num_channels: int, event_shape: Sequence[int] | None = None, eps: float = 1e-6):
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"ActNorm needs a positive number of channels, got {num_channels!r}.")
        if event_shape is not None:
            event_shape = tuple(int(s) for s in event_shape)
            if event_shape[0] != num_channels:
                raise ValueError(f"ActNorm: event_shape {event_shape} does not start with num_channels={num_channels}.")
            self.event_shape = event_shape
        self.num_channels, self.eps = num_channels, float(eps)
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.shift = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("initialised", torch.tensor(False))

    def mixes_batch(self) -> bool:
        """Its first forward pass in training mode sets the scales from the whole batch's statistics."""
        return self.training and not bool(self.initialised)

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if v.dim() < 2 or v.shape[1] != self.num_channels:
            from flowlib.core import FlowInputError
            raise FlowInputError(f"ActNorm.{direction} expected (B, {self.num_channels}) or (B, {self.num_channels}, "
                                 f"H, W) with {self.num_channels} channels in dimension 1, got {tuple(v.shape)}.")

    def _view(self, p: Tensor, x: Tensor) -> Tensor:  # (C,) -> (1, C, 1, 1) or (1, C)
        return p.to(x.dtype).reshape(1, -1, *([1] * (x.dim() - 2)))

    def _pixels(self, x: Tensor) -> int:
        return math.prod(x.shape[2:]) if x.dim() > 2 else 1

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """Set log_scale and shift so that ``x`` (this process's share of the batch) comes out standardised per channel,
        with statistics over the global batch when torch.distributed is running."""
        c = self.num_channels
        v = x.detach().double().transpose(0, 1).reshape(c, -1)  # (C, B*H*W)
        stats = torch.stack([v.sum(1), v.pow(2).sum(1), torch.full((c,), float(v.shape[1]), dtype=v.dtype,
                                                                     device=v.device)])  # (3, C)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(stats)  # sums over every process's share
        n = stats[2]
        mean = stats[0] / n
        var = (stats[1] / n - mean.pow(2)).clamp_min(0.0)
        std = var.sqrt()
        log_scale = torch.where(std > self.eps, -std.clamp_min(self.eps).log(), torch.zeros_like(std))
        self.log_scale.copy_(log_scale.to(self.log_scale.dtype))
        self.shift.copy_((-mean * log_scale.exp()).to(self.shift.dtype))
        self.initialised.fill_(True)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialised):
            self.initialise(x)
        z = x * self._view(self.log_scale, x).exp() + self._view(self.shift, x)
        logdet = (self._pixels(x) * self.log_scale.to(x.dtype).sum()).expand(x.shape[0]).contiguous()
        return z, logdet

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = (z - self._view(self.shift, z)) * (-self._view(self.log_scale, z)).exp()
        logdet = (-self._pixels(z) * self.log_scale.to(z.dtype).sum()).expand(z.shape[0]).contiguous()
        return x, logdet

    def extra_repr(self) -> str:
        return f"{self.num_channels}, initialised={bool(self.initialised)}"
