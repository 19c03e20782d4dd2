"""Fixed permutations of the coordinates: z = x[:, perm].

A permutation only reorders coordinates, so |det| = 1 and log|det| = 0 in both directions. Between two
autoregressive or coupling layers it lets every coordinate take its turn at being transformed given the others.
Its Jacobian is a permutation matrix: not triangular, but trivially invertible (inverse: x = z[:, argsort(perm)]).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from flowlib.core import Flow


class Permutation(Flow):
    """z_i = x_{perm[i]} for a fixed permutation ``perm`` of range(D); log|det| = 0. Acts on shape (B, D)."""

    def __init__(self, perm: Sequence[int] | Tensor):
        super().__init__()
        p = torch.as_tensor(perm, dtype=torch.long).reshape(-1)
        d = p.numel()
        if d < 1 or not torch.equal(torch.sort(p).values, torch.arange(d)):
            raise ValueError(f"perm must be a permutation of 0..D-1 (each index once), got {p.tolist()}.")
        self.register_buffer("perm", p)
        self.register_buffer("inverse_perm", torch.argsort(p))
        self.event_shape = (d,)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_perm], z.new_zeros(z.shape[0])


class Reverse(Permutation):
    """z = (x_D, ..., x_1): the coordinates in reverse order; log|det| = 0."""

    def __init__(self, dim: int):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"Reverse needs a positive dimension, got {dim!r}.")
        super().__init__(torch.arange(dim - 1, -1, -1))
