"""Base distributions p(z) for flows. Each has ``log_prob(z) -> (B,)`` (summed over the event) and
``sample(n, temperature=1.0)``. They are modules so that ``model.to(device)`` moves them (their constants are buffers).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _event_shape(shape) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any((not isinstance(s, int)) or s < 1 for s in shape):
        raise ValueError(f"event_shape must be positive integers, got {shape}.")
    return shape


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}.")
    return n


class StandardNormal(nn.Module):
    """p(z) = N(0, I) over ``event_shape``.   log p(z) = -0.5 * (|z|^2 + D log 2 pi).

    ``sample(n, temperature=T)`` draws from N(0, T^2 I) (Glow's "temperature"); T < 1 gives less varied samples (what else changes depends on the flow: see FlowModel).
    """

    def __init__(self, event_shape=1):
        super().__init__()
        self.event_shape = _event_shape(event_shape)
        self.register_buffer("_anchor", torch.zeros(()))  # gives the module a device and dtype

    def log_prob(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != self.event_shape:
            raise ValueError(f"StandardNormal expected z of shape (B, {self.event_shape}), got {tuple(z.shape)}.")
        d = math.prod(self.event_shape)
        return -0.5 * (z.reshape(z.shape[0], -1).pow(2).sum(1) + d * math.log(2 * math.pi))

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        n = _check_n(n)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        z = torch.randn((n, *self.event_shape), generator=generator, device=self._anchor.device,
                        dtype=self._anchor.dtype)
        return z * temperature


class StandardUniform(nn.Module):
    """p(z) = Uniform(0, 1)^D over ``event_shape``.   log p(z) = 0 inside the unit cube, -inf outside.

    The base of inverse-CDF sampling (lesson 01): if F is a CDF, x = F^{-1}(u) with u ~ Uniform(0, 1) has CDF F.
    """

    def __init__(self, event_shape=1):
        super().__init__()
        self.event_shape = _event_shape(event_shape)
        self.register_buffer("_anchor", torch.zeros(()))

    def log_prob(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != self.event_shape:
            raise ValueError(f"StandardUniform expected z of shape (B, {self.event_shape}), got {tuple(z.shape)}.")
        inside = ((z >= 0) & (z <= 1)).reshape(z.shape[0], -1).all(1)
        return torch.where(inside, z.new_zeros(z.shape[0]), z.new_full((z.shape[0],), -math.inf))

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        n = _check_n(n)
        if temperature != 1.0:
            raise ValueError("StandardUniform has no temperature; sample it with temperature=1.0.")
        u = torch.rand((n, *self.event_shape), generator=generator, device=self._anchor.device,
                       dtype=self._anchor.dtype)
        # torch.rand draws from [0, 1); an exact 0 would be sent to -inf by an inverse CDF such as the logit
        return u.clamp_min(torch.finfo(u.dtype).tiny)
