"""An affine autoregressive flow whose conditioner is a causal transformer (lesson 08's second look beyond).

The map is lesson 02's autoregressive affine map, written on a sequence of T tokens x_1, ..., x_T (each a group of
``token_dim`` coordinates of x, taken in a given order):

    z_i = (x_i - mu_i(x_<i)) * exp(-a_i(x_<i))        log|det dz/dx| = - sum_i sum_coords a_i

Its Jacobian is block lower-triangular in the token order, so the log-det is the sum of the diagonal; the density
direction is one parallel pass; sampling inverts token by token (T passes). What is new is the conditioner: instead
of MADE's masked MLP (lesson 02), a transformer block with causal self-attention computes (mu_i, a_i) from the tokens
before i. The input sequence is shifted right by one (a learned start token first), so position i of the causal
block sees exactly x_<i. The head is zero-initialised: a fresh block is the identity.

This is the design of TarFlow (Zhai et al. 2024, "Normalizing flows are capable generative models"): a stack of
such blocks on image patches, the token order reversed from one block to the next, trained by maximum likelihood.
Here it runs on 2D toy densities (T = 2 tokens of one coordinate) to show the mechanics and pass the same
brute-force checks as every flow; the same class takes longer sequences (``dim`` = T * token_dim).
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from flowlib.core import Compose, Flow


class CausalBlock(nn.Module):
    """Pre-norm transformer block: h + attn(LN(h)) with a causal mask, then h + MLP(LN(h)). (B, T, W) -> (B, T, W)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, h: Tensor) -> Tensor:
        t = h.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=h.device), 1)  # True: may NOT attend
        a = self.ln1(h)
        h = h + self.attn(a, a, a, attn_mask=causal, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class TransformerAutoregressive(Flow):
    """z_i = (x_i - mu_i(x_<i)) exp(-a_i(x_<i)) over T = dim / token_dim tokens, (mu, a) from a causal transformer.

    Args:
        dim: D, the size of one sample (B, D).
        token_dim: coordinates per token (D must be a multiple of it).
        width, heads, layers: the transformer's width, attention heads and number of blocks.
        order: "natural", "reverse" or a permutation of 0..D-1: ``order[k]`` is the coordinate placed k-th in the
            sequence (tokens are consecutive groups of ``token_dim`` in that order).
        scale_bound: a_i = bound * tanh(raw / bound), so that one block never scales by more than e^bound.
    """

    def __init__(self, dim: int, token_dim: int = 1, width: int = 32, heads: int = 2, layers: int = 1,
                 order: str | Tensor = "natural", scale_bound: float = 3.0):
        super().__init__()
        if not isinstance(dim, int) or dim < 1 or not isinstance(token_dim, int) or token_dim < 1 or dim % token_dim:
            raise ValueError(f"dim must be a positive multiple of token_dim, got dim={dim!r}, token_dim={token_dim!r}.")
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by the number of heads ({heads}).")
        if isinstance(order, str):
            if order not in ("natural", "reverse"):
                raise ValueError(f"order must be 'natural', 'reverse' or a permutation, got {order!r}.")
            perm = torch.arange(dim) if order == "natural" else torch.arange(dim - 1, -1, -1)
        else:
            perm = torch.as_tensor(order, dtype=torch.long).reshape(-1)
            if not torch.equal(torch.sort(perm).values, torch.arange(dim)):
                raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {perm.tolist()}.")
        self.event_shape = (dim,)
        self.dim, self.token_dim, self.tokens = dim, token_dim, dim // token_dim
        self.scale_bound = float(scale_bound)
        self.register_buffer("order", perm)
        self.register_buffer("inverse_order", torch.argsort(perm))
        self.embed = nn.Linear(token_dim, width)
        self.start = nn.Parameter(0.02 * torch.randn(width))
        self.position = nn.Parameter(0.02 * torch.randn(self.tokens, width))
        self.blocks = nn.ModuleList(CausalBlock(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2 * token_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _sequence(self, x: Tensor) -> Tensor:  # (B, D) -> (B, T, token_dim) in the flow's order
        return x[:, self.order].reshape(x.shape[0], self.tokens, self.token_dim)

    def _unsequence(self, s: Tensor) -> Tensor:  # (B, T, token_dim) -> (B, D)
        return s.reshape(s.shape[0], self.dim)[:, self.inverse_order]

    def conditioner(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, a), each (B, T, token_dim); position i depends on tokens 0..i-1 only."""
        b = seq.shape[0]
        h = self.embed(seq[:, :-1])  # (B, T-1, W): the tokens shifted right ...
        h = torch.cat([self.start.to(h.dtype).expand(b, 1, -1), h], 1)  # ... behind a start token: (B, T, W)
        h = h + self.position.to(h.dtype)
        for block in self.blocks:
            h = block(h)
        mu, raw = self.head(self.ln(h)).chunk(2, dim=-1)
        return mu, self.scale_bound * torch.tanh(raw / self.scale_bound)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        seq = self._sequence(x)
        mu, a = self.conditioner(seq)
        z = (seq - mu) * torch.exp(-a)
        return self._unsequence(z), -a.reshape(x.shape[0], -1).sum(1)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        zs = self._sequence(z)
        seq = torch.zeros_like(zs)
        for i in range(self.tokens):  # token i needs tokens < i: T passes, the price of an autoregressive sampler
            mu, a = self.conditioner(seq)
            seq = seq.clone()
            seq[:, i] = zs[:, i] * torch.exp(a[:, i]) + mu[:, i]
        return self._unsequence(seq), a.reshape(z.shape[0], -1).sum(1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, tokens={self.tokens}x{self.token_dim}, order={self.order.tolist()}"


def transformer_flow(dim: int = 2, blocks: int = 4, token_dim: int = 1, width: int = 32, heads: int = 2,
                     layers: int = 1, scale_bound: float = 3.0) -> Compose:
    """TarFlow's layout at toy scale: ``blocks`` TransformerAutoregressive flows, the order reversed each time."""
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive integer, got {blocks!r}.")
    return Compose(*[TransformerAutoregressive(dim, token_dim, width, heads, layers,
                                               order="natural" if k % 2 == 0 else "reverse", scale_bound=scale_bound)
                     for k in range(blocks)])


__all__ = ["CausalBlock", "TransformerAutoregressive", "transformer_flow"]
