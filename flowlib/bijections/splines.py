"""Monotone rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline Flows").

An affine layer can only shift and stretch a coordinate. A *spline* layer bends it: on [-B, B] the map is a
piecewise rational-quadratic function through K + 1 knots (x_k, y_k), increasing, with positive slopes delta_k at
the knots; outside [-B, B] it is the identity (slope 1 at both ends, so the pieces join smoothly).

In bin k (x_k <= x < x_{k+1}), with width w = x_{k+1} - x_k, height h = y_{k+1} - y_k, slope s = h / w,
xi = (x - x_k) / w in [0, 1) and the knot slopes d0 = delta_k, d1 = delta_{k+1}:

    y = y_k + h (s xi^2 + d0 xi (1 - xi)) / (s + (d0 + d1 - 2 s) xi (1 - xi))

    dy/dx = s^2 (d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2) / (s + (d0 + d1 - 2 s) xi (1 - xi))^2   > 0

so log|det| of an element-wise spline is sum_i log dy_i/dx_i (no determinant to compute). The inverse is exact:
given y in bin k, xi solves the quadratic a xi^2 + b xi + c = 0 with (dy = y - y_k)

    a = h (s - d0) + dy (d0 + d1 - 2 s),   b = h d0 - dy (d0 + d1 - 2 s),   c = -s dy,

and the root in [0, 1] is xi = 2c / (-b - sqrt(b^2 - 4ac)) (the form that does not cancel when a is tiny).

Parameters. Unconstrained numbers become a valid spline: widths and heights by a softmax (they sum to 2B) with a
floor, interior slopes by a softplus with a floor. All-zero parameters give equal bins and slopes 1: the identity.
That is what makes a zero-initialised network a safe start, as for the affine layers.

``RQSpline`` is an element-wise spline with its own learnable knots (a 1D flow per coordinate); ``SplineMAF`` is an
autoregressive layer whose spline for x_i comes from a MADE that sees only x_<i ("RQ-NSF (AR)" in the paper): a
MAF with the affine map replaced by a spline. ``spline_maf`` stacks them with alternating orders.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.bijections.autoregressive import MADE
from flowlib.core import Compose, Flow, sum_except_batch

MIN_BIN = 1e-3  # smallest bin width / height, as a fraction of the interval 2B
MIN_SLOPE = 1e-3  # smallest knot slope
_SLOPE_SHIFT = math.log(math.expm1(1.0 - MIN_SLOPE))  # softplus(0 + shift) + MIN_SLOPE = 1


def spline_params(raw: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split unconstrained parameters (..., 3K - 1) into raw widths (..., K), heights (..., K), slopes (..., K - 1)."""
    if raw.shape[-1] != 3 * bins - 1:
        raise ValueError(f"a {bins}-bin spline needs 3K - 1 = {3 * bins - 1} parameters, got {raw.shape[-1]}.")
    return raw[..., :bins], raw[..., bins:2 * bins], raw[..., 2 * bins:]


def _softmax(raw: Tensor) -> Tensor:
    """softmax over the last dimension, written out: for the short rows of a spline (K ~ 8) it is several times
    faster than ``torch.softmax`` on a CPU, and a third of a training step was spent there."""
    e = torch.exp(raw - raw.amax(dim=-1, keepdim=True).detach())  # the shift cancels; it only avoids overflow
    return e / e.sum(dim=-1, keepdim=True)


def _knots(raw: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Knot positions (..., K + 1) from -B to B and the bin sizes (..., K), from unconstrained (..., K)."""
    K = raw.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * K) * _softmax(raw)
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))  # (..., K + 1), from 0 to 1
    knots = 2 * bound * knots - bound
    knots = torch.cat([torch.full_like(knots[..., :1], -bound), knots[..., 1:-1],
                       torch.full_like(knots[..., :1], bound)], dim=-1)  # exact ends despite rounding
    return knots, knots[..., 1:] - knots[..., :-1]


def _slopes(raw: Tensor) -> Tensor:
    """Knot slopes (..., K + 1): 1 at both ends (to match the identity tails), positive inside."""
    inner = MIN_SLOPE + F.softplus(raw + _SLOPE_SHIFT)
    one = torch.ones_like(inner[..., :1])
    return torch.cat([one, inner, one], dim=-1)


def rational_quadratic_spline(v: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_slopes: Tensor,
                              bound: float = 3.0, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """Apply a monotone rational-quadratic spline element-wise (or its inverse).

    Args:
        v: inputs, any shape S.
        raw_widths, raw_heights: (*S, K) unconstrained; raw_slopes: (*S, K - 1) unconstrained (one spline per
            element of v; broadcast them yourself if the splines are shared).
        bound: B, the spline acts on [-B, B]; outside it the map is the identity.
        inverse: False: y = g(v) and log dy/dv; True: x = g^{-1}(v) and log dx/dv.

    Returns:
        (output, log-derivative), both of shape S.
    """
    xk, widths = _knots(raw_widths, bound)
    yk, heights = _knots(raw_heights, bound)
    slopes = _slopes(raw_slopes)
    inside = (v >= -bound) & (v <= bound)
    vc = v.clamp(-bound, bound)  # the spline branch is computed everywhere and kept only inside: no NaN gradients
    # the bin of each element: how many interior knots lie at or below it (the knots of y in the inverse direction)
    knots = yk if inverse else xk
    k = (vc.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1, keepdim=True)  # (*S, 1), in 0..K-1

    def pick(t: Tensor) -> Tensor:
        return t.gather(-1, k).squeeze(-1)

    x0, w, y0, h = pick(xk), pick(widths), pick(yk), pick(heights)
    d0, d1 = pick(slopes), pick(slopes[..., 1:])
    s = h / w
    if inverse:
        dy = vc - y0
        curve = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * curve
        b = h * d0 - dy * curve
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp_min(0.0)
        xi = (2 * c / (-b - torch.sqrt(disc))).clamp(0.0, 1.0)
    else:
        xi = (vc - x0) / w
    t = xi * (1 - xi)
    denom = s + (d0 + d1 - 2 * s) * t
    log_deriv = 2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2) - 2 * torch.log(denom)
    if inverse:
        out, log_deriv = x0 + xi * w, -log_deriv
    else:
        out = y0 + h * (s * xi * xi + d0 * t) / denom
    return torch.where(inside, out, v), torch.where(inside, log_deriv, torch.zeros_like(log_deriv))


class RQSpline(Flow):
    """An element-wise monotone rational-quadratic spline with learnable knots, one spline per coordinate:

        z_i = g_i(x_i) on [-B, B], identity outside;     log|det dz/dx| = sum_i log g_i'(x_i).

    Starts as the identity. ``shape`` is the event shape (e.g. (2,)); ``bins`` is K.
    """

    def __init__(self, shape: Sequence[int] | int, bins: int = 8, bound: float = 3.0):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if bins < 2:
            raise ValueError(f"a spline needs at least 2 bins, got {bins}.")
        if not bound > 0:
            raise ValueError(f"bound must be > 0, got {bound}.")
        self.event_shape, self.bins, self.bound = shape, int(bins), float(bound)
        self.raw = nn.Parameter(torch.zeros(*shape, 3 * bins - 1))

    def _spline(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw = self.raw.to(v.dtype).expand(*v.shape, -1)
        out, log_deriv = rational_quadratic_spline(v, *spline_params(raw, self.bins), self.bound, inverse)
        return out, sum_except_batch(log_deriv)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, inverse=True)


class SplineMAF(Flow):
    """A masked autoregressive spline layer (data -> latent in one pass):

        z_i = g(x_i; theta_i(x_<i)),      log|det dz/dx| = sum_i log g'(x_i; theta_i(x_<i)),

    where g is a K-bin rational-quadratic spline on [-B, B] (identity outside) and the 3K - 1 parameters theta_i
    come from a MADE that cannot see x_i, x_i+1, ... (in ``order``). The Jacobian is triangular, as for MAF; the
    inverse is sequential, D MADE passes, each followed by an exact spline inverse. Input shape (B, dim).

    Args:
        dim: D.  hidden: MADE hidden widths.  bins: K.  bound: B.
        order: variable ordering (default identity; ``"reverse"`` allowed).  activation: the MADE's.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), bins: int = 8, bound: float = 4.0,
                 order: Tensor | str | None = None, activation: str = "relu"):
        super().__init__()
        if isinstance(order, str):
            if order != "reverse":
                raise ValueError(f"order must be a permutation, None or 'reverse', got {order!r}.")
            order = torch.arange(dim - 1, -1, -1)
        if bins < 2:
            raise ValueError(f"a spline needs at least 2 bins, got {bins}.")
        if not bound > 0:
            raise ValueError(f"bound must be > 0, got {bound}.")
        self.made = MADE(dim, hidden, n_params=3 * bins - 1, order=order, activation=activation)
        self.bins, self.bound = int(bins), float(bound)
        self.event_shape = (dim,)

    @property
    def order(self) -> Tensor:
        return self.made.order

    def _spline(self, v: Tensor, context: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw = self.made(context).transpose(1, 2).contiguous()  # (B, D, 3K - 1): each coordinate's spline
        return rational_quadratic_spline(v, *spline_params(raw, self.bins), self.bound, inverse)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_deriv = self._spline(x, x, inverse=False)  # one pass: every coordinate at once
        return z, log_deriv.sum(1)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(z)
        log_deriv = torch.zeros_like(z)
        for i in self.order.tolist():  # D passes: the spline of x_i needs x_<i first
            xi, ld = self._spline(z, x, inverse=True)
            pick = torch.zeros(z.shape[1], dtype=torch.bool, device=z.device)
            pick[i] = True
            x = torch.where(pick, xi, x)
            log_deriv = torch.where(pick, ld, log_deriv)
        return x, log_deriv.sum(1)
