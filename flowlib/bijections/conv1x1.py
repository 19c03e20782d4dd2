"""Mixing the channels of an image between couplings (Glow, Kingma & Dhariwal 2018, section 3.2).

A coupling layer transforms one half of the channels given the other, so something must move information between the
halves. Three choices, compared in Glow's ablation (and in lesson 06):

    ChannelPermutation   a fixed reversal or random shuffle of the channels         log|det| = 0
    InvConv1x1           a learned C x C matrix W applied at every pixel              log|det| = H*W * log|det W|
    InvConv1x1LU         the same W, parameterised as W = P L (U + diag(sign * exp(log_s)))
                                                                                       log|det| = H*W * sum(log_s)

For x of shape (B, C, H, W), a 1x1 convolution computes z[:, :, h, w] = W @ x[:, :, h, w] at each of the H*W pixels,
so the Jacobian is block-diagonal with H*W copies of W and log|det| = H*W * log|det W|.

Costs. log|det W| of a general C x C matrix is O(C^3) (an LU factorisation inside ``slogdet``); we compute it in
float64, because in float32 the accumulated rounding of a large C drifts (PITFALLS: log-dets in too low a precision).
The LU form keeps the factors themselves as parameters: P is a fixed permutation and ``sign`` fixed signs (buffers),
L is unit lower-triangular, U strictly upper-triangular, and log|det W| = sum(log_s) costs O(C). Its inverse never
forms W^-1: two triangular solves (O(C^2) per pixel). Lesson 06 measures both against C.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.core import Flow


def _random_orthogonal(c: int, generator: torch.Generator | None = None) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # a uniformly random rotation/reflection: |det| = 1 at the start


def _chw(event_shape, who: str):
    if event_shape is None:
        return None
    shape = tuple(int(s) for s in event_shape)
    if len(shape) != 3:
        raise ValueError(f"{who} works on images: event_shape must be (C, H, W), got {shape}.")
    return shape


class ChannelPermutation(Flow):
    """z[:, i] = x[:, perm[i]] for a fixed permutation of the C channels; log|det| = 0. Shapes (B, C, H, W).

    ``ChannelPermutation.reverse(C)`` reverses the channels (RealNVP's choice between couplings);
    ``ChannelPermutation.shuffle(C, seed)`` draws a fixed random order.
    """

    def __init__(self, perm: Sequence[int] | Tensor, event_shape: Sequence[int] | None = None):
        super().__init__()
        p = torch.as_tensor(perm, dtype=torch.long).reshape(-1)
        if p.numel() < 1 or not torch.equal(torch.sort(p).values, torch.arange(p.numel())):
            raise ValueError(f"perm must be a permutation of 0..C-1 (each index once), got {p.tolist()}.")
        self.register_buffer("perm", p)
        self.register_buffer("inverse_perm", torch.argsort(p))
        shape = _chw(event_shape, "ChannelPermutation")
        if shape is not None and shape[0] != p.numel():
            raise ValueError(f"ChannelPermutation of {p.numel()} channels cannot act on event_shape {shape}.")
        self.event_shape = shape

    @classmethod
    def reverse(cls, channels: int, event_shape=None) -> "ChannelPermutation":
        return cls(torch.arange(channels - 1, -1, -1), event_shape)

    @classmethod
    def shuffle(cls, channels: int, seed: int = 0, event_shape=None) -> "ChannelPermutation":
        return cls(torch.randperm(channels, generator=torch.Generator().manual_seed(seed)), event_shape)

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if v.dim() != 4 or v.shape[1] != self.perm.numel():
            from flowlib.core import FlowInputError
            raise FlowInputError(f"ChannelPermutation.{direction} expects (B, {self.perm.numel()}, H, W), "
                                 f"got {tuple(v.shape)}.")

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_perm], z.new_zeros(z.shape[0])


class InvConv1x1(Flow):
    """z = W x at every pixel, with a learned C x C matrix W (a random rotation at the start).

    log|det dz/dx| = H * W * log|det W|, computed by ``slogdet`` in float64 (O(C^3)); inverse: W^-1 z, with W^-1 also
    computed in float64. Shapes (B, C, H, W).
    """

    def __init__(self, channels: int, event_shape: Sequence[int] | None = None, seed: int | None = None):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"InvConv1x1 needs a positive number of channels, got {channels!r}.")
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.weight = nn.Parameter(_random_orthogonal(channels, g).to(torch.get_default_dtype()))
        shape = _chw(event_shape, "InvConv1x1")
        if shape is not None and shape[0] != channels:
            raise ValueError(f"InvConv1x1 of {channels} channels cannot act on event_shape {shape}.")
        self.event_shape, self.channels = shape, channels

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if v.dim() != 4 or v.shape[1] != self.channels:
            from flowlib.core import FlowInputError
            raise FlowInputError(f"InvConv1x1.{direction} expects (B, {self.channels}, H, W), got {tuple(v.shape)}.")

    def log_abs_det_weight(self) -> Tensor:
        """log|det W|, in float64 whatever the parameter's dtype (O(C^3))."""
        return torch.linalg.slogdet(self.weight.double())[1]

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight.to(x.dtype)
        z = F.conv2d(x, w[:, :, None, None])
        logdet = (x.shape[2] * x.shape[3] * self.log_abs_det_weight()).to(x.dtype)
        return z, logdet.expand(x.shape[0]).contiguous()

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        w_inv = torch.linalg.inv(self.weight.double()).to(z.dtype)
        x = F.conv2d(z, w_inv[:, :, None, None])
        logdet = (-z.shape[2] * z.shape[3] * self.log_abs_det_weight()).to(z.dtype)
        return x, logdet.expand(z.shape[0]).contiguous()


class InvConv1x1LU(Flow):
    """The 1x1 convolution with W = P L (U + diag(sign * exp(log_s))), Glow's LU parameterisation.

    Buffers (fixed): P, the permutation matrix, and ``sign``, the signs of the diagonal. Parameters: the strictly
    lower part of L (its diagonal is 1), the strictly upper part of U, and log_s. Then det W = det P * prod(sign * s),
    so log|det dz/dx| = H * W * sum(log_s), O(C). Inverse: x = U'^-1 L^-1 P^T z by two triangular solves.
    Initialised from the LU factorisation of a random rotation, so it starts as the same map as ``InvConv1x1``.
    """

    def __init__(self, channels: int, event_shape: Sequence[int] | None = None, seed: int | None = None):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"InvConv1x1LU needs a positive number of channels, got {channels!r}.")
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        p, lower, upper = torch.linalg.lu(_random_orthogonal(channels, g))
        diag = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("P", p.to(dtype))
        self.register_buffer("sign", torch.sign(diag).to(dtype))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1).to(dtype))
        self.register_buffer("eye", torch.eye(channels, dtype=dtype))
        self.lower = nn.Parameter(lower.to(dtype))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
        self.log_s = nn.Parameter(diag.abs().log().to(dtype))
        shape = _chw(event_shape, "InvConv1x1LU")
        if shape is not None and shape[0] != channels:
            raise ValueError(f"InvConv1x1LU of {channels} channels cannot act on event_shape {shape}.")
        self.event_shape, self.channels = shape, channels

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if v.dim() != 4 or v.shape[1] != self.channels:
            from flowlib.core import FlowInputError
            raise FlowInputError(f"InvConv1x1LU.{direction} expects (B, {self.channels}, H, W), got {tuple(v.shape)}.")

    def factors(self) -> tuple[Tensor, Tensor]:
        """(L, U'): L unit lower-triangular, U' upper-triangular with diagonal sign * exp(log_s)."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * self.log_s.exp())
        return lower, upper

    def weight(self) -> Tensor:
        """W = P L U' (C x C).

        P is a permutation matrix (one 1 in each row: P[i, perm[i]] = 1), so P A takes row perm[i] of A as its row i:
        we index the rows of L U' instead of multiplying by P, one matrix product (O(C^3)) fewer.
        """
        lower, upper = self.factors()
        return (lower @ upper)[self.P.argmax(1)]

    def _logdet(self, v: Tensor) -> Tensor:
        return (v.shape[2] * v.shape[3] * self.log_s.to(v.dtype).sum()).expand(v.shape[0]).contiguous()

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight().to(x.dtype)
        # z[b, :, h, w] = W @ x[b, :, h, w]; einsum may hand back a permuted layout: the output is a plain tensor
        return torch.einsum("oc,bchw->bohw", w, x).contiguous(), self._logdet(x)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = z.shape
        lower, upper = (m.to(z.dtype) for m in self.factors())
        cols = z.permute(1, 0, 2, 3).reshape(c, -1)  # (C, B*H*W): one column per pixel
        cols = cols[self.P.argmax(0)]  # P^-1 = P^T: row j of P^T v is v[i] for the i with P[i, j] = 1
        cols = torch.linalg.solve_triangular(lower, cols, upper=False, unitriangular=True)
        cols = torch.linalg.solve_triangular(upper, cols, upper=True)
        x = cols.reshape(c, b, h, w).permute(1, 0, 2, 3).contiguous()
        return x, -self._logdet(z)
