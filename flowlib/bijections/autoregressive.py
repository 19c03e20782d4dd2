"""Masked autoregressive flows: MADE masks, MAF (fast density, sequential sampling) and IAF (the reverse).

An autoregressive map transforms coordinate i given only the coordinates before it in a fixed ``order``:

    z_i = (x_i - mu_i(x_<i)) * exp(-alpha_i(x_<i))            (MAF, data -> latent)

so dz_i/dx_j = 0 for every j after i: the Jacobian is triangular (in the variable order) with diagonal
exp(-alpha_i), and

    log|det dz/dx| = -sum_i alpha_i(x_<i)                     (O(D), no determinant to compute).

Every mu_i and alpha_i comes from ONE network pass, because a MADE (Germain et al. 2015) masks its weights so
that output i cannot see inputs i, i+1, ...: density evaluation is one parallel pass. The inverse,

    x_i = z_i * exp(alpha_i(x_<i)) + mu_i(x_<i),

needs x_<i before x_i: D passes, one coordinate at a time. MAF (Papamakarios et al. 2017) therefore has fast
density and slow sampling; IAF (Kingma et al. 2016) = ``Inverse(MAF)`` has the opposite trade-off.

Numerics: alpha is a soft-bounded ``scale_bound * tanh(raw / scale_bound)``, so a single layer never scales by more
than e^scale_bound (default 6; an unbounded exp is the classic cause of NaNs, and a tight bound of 3 measurably hurt
the fit of the rings and 8 Gaussians). The MADE's last layer is zero-initialised, so a fresh layer is exactly the
identity (mu = alpha = 0) and a deep stack starts as the identity.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.nets import activation_of
from flowlib.core import Compose, Flow, Inverse


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask`` (out_features, in_features): y = (W*M) x + b.

    The mask is a buffer (saved in the state_dict, moved by ``.to``).
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}.")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_degrees(dim: int, hidden: Sequence[int], order: Tensor) -> list[Tensor]:
    """MADE's degrees: input variable order[k] has degree k + 1; hidden units cycle through 1..D-1.

    A unit of degree d may depend only on inputs of degree <= d; the outputs of variable i use hidden units of
    degree < deg(i), which is what makes output i independent of x_i and everything after it.
    """
    deg_in = torch.empty(dim, dtype=torch.long)
    deg_in[order] = torch.arange(1, dim + 1)
    degrees = [deg_in]
    for h in hidden:
        # D = 1: degree 0 units see no input at all (the single output is then a learned constant).
        degrees.append(torch.arange(h) % max(dim - 1, 1) + 1 if dim > 1 else torch.zeros(h, dtype=torch.long))
    return degrees




class MADE(nn.Module):
    """A masked MLP: ``(B, D) -> (B, n_params, D)`` where output [:, :, i] depends only on x_<i (in ``order``).

    Args:
        dim: D.  hidden: hidden layer widths.  n_params: outputs per coordinate (2 for shift and log-scale).
        order: the variable ordering (a permutation of range(D)); default 0, 1, ..., D-1.
        zero_init: zero the last layer, so every output starts at 0.
        activation: "relu", "gelu" or "tanh".
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), n_params: int = 2, order: Tensor | None = None,
                 zero_init: bool = True, activation: str = "relu"):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"MADE needs a positive integer dimension, got {dim!r}.")
        if len(hidden) < 1 or any(int(h) < 1 for h in hidden):
            raise ValueError(f"MADE needs at least one hidden layer of positive width, got {list(hidden)}.")
        order = torch.arange(dim) if order is None else torch.as_tensor(order, dtype=torch.long).reshape(-1)
        if not torch.equal(torch.sort(order).values, torch.arange(dim)):
            raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {order.tolist()}.")
        activation_of(activation)  # an unknown name is refused here, when the layer is built
        self.dim, self.n_params = dim, n_params
        self.register_buffer("order", order)
        degrees = made_degrees(dim, list(hidden), order)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:]):
            mask = d_out[:, None] >= d_in[None, :]
            layers += [MaskedLinear(len(d_in), len(d_out), mask), activation_of(activation)]
        # output unit (p, i) belongs to variable i and sees hidden units of strictly lower degree
        deg_out = degrees[0].repeat(n_params)  # (n_params * D,), laid out as [p0: x_0..x_D-1, p1: ...]
        self.out = MaskedLinear(len(degrees[-1]), n_params * dim, (deg_out[:, None] > degrees[-1][None, :]))
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x)).reshape(x.shape[0], self.n_params, self.dim)  # (B, n_params, D)


class MAF(Flow):
    """Masked autoregressive affine flow, data -> latent in one pass:

        z_i = (x_i - mu_i(x_<i)) * exp(-alpha_i(x_<i)),     log|det dz/dx| = -sum_i alpha_i.

    ``inverse`` (sampling) is sequential: D MADE passes. Input shape (B, dim).

    Args:
        dim: D.  hidden: MADE hidden widths.  order: variable ordering (default identity; ``"reverse"`` allowed).
        scale_bound: |alpha_i| < scale_bound (soft tanh bound).  activation: the MADE's ("relu", "gelu", "tanh").
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), order: Tensor | str | None = None,
                 scale_bound: float = 6.0, activation: str = "relu"):
        super().__init__()
        if isinstance(order, str):
            if order != "reverse":
                raise ValueError(f"order must be a permutation, None or 'reverse', got {order!r}.")
            order = torch.arange(dim - 1, -1, -1)
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be > 0, got {scale_bound}.")
        self.made = MADE(dim, hidden, n_params=2, order=order, activation=activation)
        self.scale_bound = float(scale_bound)
        self.event_shape = (dim,)

    @property
    def order(self) -> Tensor:
        return self.made.order

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.made(x)  # (B, 2, D)
        shift, raw = h[:, 0], h[:, 1]
        log_scale = self.scale_bound * torch.tanh(raw / self.scale_bound)
        return shift, log_scale

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._params(x)  # one pass: every coordinate at once
        z = (x - shift) * torch.exp(-log_scale)
        return z, -log_scale.sum(1)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(z)
        log_scale = torch.zeros_like(z)
        for i in self.order.tolist():  # D passes: x_i needs x_<i first
            shift, ls = self._params(x)
            pick = torch.zeros(z.shape[1], dtype=torch.bool, device=z.device)
            pick[i] = True  # out-of-place updates keep autograd happy
            x = torch.where(pick, z * torch.exp(ls) + shift, x)
            log_scale = torch.where(pick, ls, log_scale)
        return x, log_scale.sum(1)


class IAF(Inverse):
    """Inverse autoregressive flow: ``Inverse(MAF(...))``. In the data -> latent direction it is sequential (D
    passes); in the sampling direction one pass, x_i = z_i * exp(alpha_i(z_<i)) + mu_i(z_<i) — fast sampling, slow
    density of arbitrary data. Same arguments as MAF."""

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), order: Tensor | str | None = None,
                 scale_bound: float = 6.0, activation: str = "relu"):
        super().__init__(MAF(dim, hidden, order, scale_bound, activation))

    @property
    def order(self) -> Tensor:
        return self.flow.order
