"""Glow's coupling layer and its learned prior for the factored-out half (Kingma & Dhariwal 2018, sections 3.3-3.4).

GlowCoupling splits the C channels of x (B, C, H, W) into x_a (the first C//2, passed through) and x_b (the rest):

    affine:    z_b = x_b * exp(s) + t,   (h, t) = NN(x_a),  s = log sigmoid(h + 2)     log|det| = sum(s)
    additive:  z_b = x_b + t,            t = NN(x_a)                                    log|det| = 0
    z_a = x_a

The same block-triangular Jacobian as RealNVP's coupling (lesson 04), with a channel split instead of a mask, so the
network sees C//2 channels and works on nothing else: half the cost of a masked coupling. Glow's choices:
  - the scale is sigmoid(h + 2), in (0, 1): it can never blow up (openai/glow #62); ActNorm supplies expansion;
  - the network's last convolution starts at zero, so t = 0 and h = 0 at the start: every coupling starts as a
    fixed contraction by sigmoid(2) = 0.88 (affine) or as the identity (additive), and a deep stack starts tame.
No fixed permutation is needed between two couplings: the 1x1 convolution before each one mixes the channels.

SplitPrior is Glow's learned prior for the half that a multi-scale flow factors out. Glow models the factored-out
channels z_out as N(mu(z_keep), sigma(z_keep)^2), with mu and log sigma from a zero-initialised convolution of the
kept channels. The same density, written as a flow so that the latent stays ONE flat standard normal vector
(lesson 05's multi-scale convention, which keeps reconstruction exact):

    u_out = (z_out - mu(z_keep)) * exp(-log_sigma(z_keep)),   u_keep = z_keep,   log|det| = -sum(log_sigma)

then N(0, I) on u. At the start mu = 0 and log_sigma = 0, so a fresh model has exactly the standard-normal prior.
The factored-out channels are the FIRST half (flowlib.bijections.multiscale factors out ``h[:, :C//2]``).
log_sigma is bounded softly, 3 * tanh(h / 3), like the couplings' scales.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.core import Flow, FlowInputError, sum_except_batch
from flowlib.nets import ConvNet


def _chw(event_shape, who: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in event_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[0] < 2:
        raise ValueError(f"{who} needs an image shape (C, H, W) with C >= 2 channels to split, got {shape}.")
    return shape  # type: ignore[return-value]


class GlowCoupling(Flow):
    """z = (x_a, x_b * exp(s) + t) with (h, t) = NN(x_a), s = log sigmoid(h + 2) — or z_b = x_b + t (additive).

    log|det dz/dx| = sum over x_b of s (affine), 0 (additive). Shapes (B, C, H, W); x_a = x[:, :C//2].

    Args:
        event_shape: (C, H, W).
        hidden: width of the network NN: conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 (zero-initialised).
        kind: "affine" or "additive".
        net: a network of your own mapping (B, C//2, H, W) -> (B, k * (C - C//2), H, W), k = 2 (affine) or 1.
    """

    def __init__(self, event_shape: Sequence[int], hidden: int = 128, kind: str = "affine",
                 net: nn.Module | None = None):
        super().__init__()
        if kind not in ("affine", "additive"):
            raise ValueError(f"kind must be 'affine' or 'additive', got {kind!r}.")
        c, h, w = _chw(event_shape, "GlowCoupling")
        self.event_shape, self.kind = (c, h, w), kind
        self.c_a, self.c_b = c // 2, c - c // 2
        k = 2 if kind == "affine" else 1
        # Our own network runs in channels-last memory format (weights and input) and, on the CPU, computes its 3x3
        # convolutions with very few channels unfolded (ConvNet's unfold_thin): the same convolutions, but oneDNN's CPU
        # kernels are faster this way (benchmarks/README.md, Glow). A network passed in is left as it is (it may
        # reshape in ways that need the usual NCHW layout).
        self._channels_last = net is None
        self.net = net if net is not None else ConvNet(self.c_a, k * self.c_b, hidden=hidden, unfold_thin=True).to(
            memory_format=torch.channels_last)
        with torch.no_grad():  # the network must fit the split: refuse a wrong one now, with the shapes
            p = next(self.net.parameters(), None)
            out = self.net(torch.zeros(1, self.c_a, h, w, dtype=p.dtype if p is not None else None))
        if tuple(out.shape) != (1, k * self.c_b, h, w):
            raise ValueError(f"GlowCoupling({kind}) on {self.event_shape}: the network must map (1, {self.c_a}, {h}, "
                             f"{w}) to (1, {k * self.c_b}, {h}, {w}), but it outputs {tuple(out.shape)}.")

    def _params(self, x_a: Tensor) -> tuple[Tensor | None, Tensor]:
        if self._channels_last:  # (the layout only; .contiguous() hands the usual NCHW layout back)
            out = self.net(x_a.contiguous(memory_format=torch.channels_last)).contiguous()
        else:
            out = self.net(x_a)
        if self.kind == "additive":
            return None, out
        h, t = out[:, : self.c_b], out[:, self.c_b:]
        return F.logsigmoid(h + 2.0), t

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.c_a], x[:, self.c_a:]
        s, t = self._params(x_a)
        if s is None:
            return torch.cat([x_a, x_b + t], 1), x.new_zeros(x.shape[0])
        return torch.cat([x_a, x_b * s.exp() + t], 1), sum_except_batch(s)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z_a, z_b = z[:, : self.c_a], z[:, self.c_a:]
        s, t = self._params(z_a)  # z_a == x_a: the same s and t as in forward
        if s is None:
            return torch.cat([z_a, z_b - t], 1), z.new_zeros(z.shape[0])
        return torch.cat([z_a, (z_b - t) * (-s).exp()], 1), -sum_except_batch(s)

    def extra_repr(self) -> str:
        return f"{self.kind}, event_shape={self.event_shape}"


class SplitPrior(Flow):
    """u_out = (z_out - mu(z_keep)) * exp(-log_sigma(z_keep)), u_keep = z_keep; log|det| = -sum(log_sigma).

    z_out = z[:, :C//2] (the channels a multi-scale flow factors out next), z_keep = z[:, C//2:]. mu and log_sigma
    come from one zero-initialised 3x3 convolution of z_keep, so a fresh SplitPrior is the identity. Shapes (B, C, H, W).
    """

    def __init__(self, event_shape: Sequence[int], bound: float = 3.0):
        super().__init__()
        c, h, w = _chw(event_shape, "SplitPrior")
        self.event_shape = (c, h, w)
        self.c_out, self.c_keep = c // 2, c - c // 2
        self.bound = float(bound)
        self.conv = nn.Conv2d(self.c_keep, 2 * self.c_out, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def mean_and_log_sigma(self, z_keep: Tensor) -> tuple[Tensor, Tensor]:
        """The learned prior of the factored-out half: N(mu, exp(log_sigma)^2), each (B, C//2, H, W)."""
        h = self.conv(z_keep)
        mu, raw = h[:, : self.c_out], h[:, self.c_out:]
        return mu, self.bound * torch.tanh(raw / self.bound)

    def _forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z_out, z_keep = z[:, : self.c_out], z[:, self.c_out:]
        mu, log_sigma = self.mean_and_log_sigma(z_keep)
        return torch.cat([(z_out - mu) * (-log_sigma).exp(), z_keep], 1), -sum_except_batch(log_sigma)

    def _inverse(self, u: Tensor) -> tuple[Tensor, Tensor]:
        u_out, z_keep = u[:, : self.c_out], u[:, self.c_out:]
        mu, log_sigma = self.mean_and_log_sigma(z_keep)
        return torch.cat([u_out * log_sigma.exp() + mu, z_keep], 1), sum_except_batch(log_sigma)
