"""Baselines a flow is measured against: a histogram of independent pixels (lessons 04 and 05) and a small
Gaussian VAE (lesson 03).

The VAE, for vector data:

    encoder  e(u | x) = N(u; m(x), diag s(x)^2)        decoder  p(x | u) = N(x; mu(u), diag sigma(u)^2)
    prior    p(u) = N(0, I)

(u is the VAE's latent, to keep z for the flow's.) The VAE's likelihood p(x) = ∫ p(x | u) p(u) du has no closed
form; training maximises the evidence lower bound

    ELBO(x) = E_{e(u|x)}[log p(x | u) + log p(u) - log e(u | x)]  <=  log p(x),

and the true log p(x) can only be estimated, e.g. by importance sampling with K samples from e(u | x) (IWAE,
Burda et al. 2016), a tighter bound that approaches log p(x) as K grows. A flow gives log q(x) exactly.

``log_prob`` returns the ELBO (one sample), so that ``flowlib.training.fit`` trains the VAE like any other model; it
is NOT the exact log-likelihood.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOG_2PI = math.log(2 * math.pi)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, d_out))


def _log_normal(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    return (-0.5 * ((x - mean) * torch.exp(-log_std)).pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


class GaussianVAE(nn.Module):
    """A VAE with Gaussian encoder and decoder, for data of shape (B, dim)."""

    def __init__(self, dim: int = 2, latent: int = 2, hidden: int = 64, min_log_std: float = -4.0):
        super().__init__()
        self.dim, self.latent, self.min_log_std = dim, latent, min_log_std
        self.encoder = _mlp(dim, hidden, 2 * latent)
        self.decoder = _mlp(latent, hidden, 2 * dim)

    def _bounded(self, raw: Tensor) -> Tensor:
        # log-std >= min_log_std: an unbounded decoder variance can shrink to 0 and the ELBO diverge
        return self.min_log_std + F.softplus(raw - self.min_log_std)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m, raw = self.encoder(x).chunk(2, dim=-1)
        return m, self._bounded(raw)

    def decode(self, u: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw = self.decoder(u).chunk(2, dim=-1)
        return mu, self._bounded(raw)

    def _log_weights(self, x: Tensor, k: int) -> Tensor:
        """log p(x | u) + log p(u) - log e(u | x) for k samples u ~ e(u | x): shape (k, B)."""
        m, log_s = self.encode(x)
        u = m + torch.exp(log_s) * torch.randn((k, *m.shape), dtype=m.dtype, device=m.device)
        mu, log_sigma = self.decode(u)
        log_prior = (-0.5 * u.pow(2) - 0.5 * _LOG_2PI).sum(-1)
        return _log_normal(x, mu, log_sigma) + log_prior - _log_normal(u, m, log_s)

    def elbo(self, x: Tensor, k: int = 1) -> Tensor:
        """The ELBO per sample (B,), averaged over k posterior samples: a lower bound on log p(x)."""
        return self._log_weights(x, k).mean(0)

    def log_prob(self, x: Tensor) -> Tensor:
        """The training objective for ``fit``: the one-sample ELBO (a lower bound, not the exact log p(x))."""
        return self.elbo(x, 1)

    @torch.no_grad()
    def importance_log_likelihood(self, x: Tensor, k: int = 256) -> Tensor:
        """log (1/K) sum_k p(x, u_k) / e(u_k | x): the IWAE estimate of log p(x), tighter than the ELBO for K > 1."""
        return torch.logsumexp(self._log_weights(x, k), dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        u = torch.randn(n, self.latent)
        mu, log_sigma = self.decode(u)
        return mu + torch.exp(log_sigma) * torch.randn_like(mu)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoder mean at the encoder mean: the VAE's best single reconstruction (not exact)."""
        return self.decode(self.encode(x)[0])[0]


class PixelHistogram(nn.Module):
    """The baseline an image flow must beat: independent pixels, each with its own grey-level frequencies (one
    histogram per position) or all sharing one histogram (``per_position=False``).

    p[i, k] = (n[i, k] + alpha) / (N + L alpha), where n[i, k] counts the training pixels at position i with level k
    (add-alpha smoothing: a level never seen still gets a little mass). As a density on dequantized pixels
    y = scale (x + w u), u ~ Uniform(0, 1), it is piecewise constant: level k's probability p[i, k] is spread evenly
    over the part [k, k + w) * scale of its cell that such noise fills, q(y_i) = p[i, k] / (w scale) there and 0 in
    the rest of the cell, so ``log_prob`` integrates to 1 for every w. With w = 1 the dequantization bound is tight:
    its bits/dim is exactly the discrete cross-entropy -E[log2 P(x)] / D. With w < 1 and no correction (the published
    mistake lessons 04 and 05 show) it looks -log2 w bits/dim better than it is; ``with_width(w)`` gives that model.
    ``PixelHistogram.fit(train, val, levels)`` picks alpha on the validation images (the test set is never seen).
    """

    ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

    def __init__(self, counts: Tensor, alpha: float = 0.1, scale: float = 1.0, width: float = 1.0):
        super().__init__()
        if counts.dim() != 2:
            raise ValueError(f"counts must have shape (positions, levels) or (1, levels), got {tuple(counts.shape)}.")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (else an unseen level has probability 0), got {alpha}.")
        if not (scale > 0 and 0 < width <= 1):
            raise ValueError(f"need scale > 0 and a noise width in (0, 1], got scale={scale}, width={width}.")
        self.alpha, self.scale, self.width = float(alpha), float(scale), float(width)
        self.levels = counts.shape[1]
        c = counts.double() + alpha
        self.register_buffer("log_p", (c / c.sum(1, keepdim=True)).log())  # (D or 1, L), log P(pixel i = level k)

    @staticmethod
    def counts(x: Tensor, levels: int, per_position: bool = True) -> Tensor:
        """n[i, k]: how many of the integer images ``x`` (N, ...) have level k at position i; shape (D, levels), or
        (1, levels) summed over positions with ``per_position=False``."""
        from flowlib.images import check_pixels

        check_pixels(x, levels)
        flat = x.reshape(len(x), -1).long()
        if not per_position:
            return torch.bincount(flat.reshape(-1), minlength=levels).unsqueeze(0)
        # scatter, not one_hot(...).sum(0): a one-hot of 58,000 Fashion-MNIST images would take 93 GB
        n = torch.zeros(flat.shape[1], levels, dtype=torch.long)
        return n.scatter_add_(1, flat.T.contiguous(), torch.ones_like(flat.T))

    @classmethod
    def fit(cls, train: Tensor, val: Tensor, levels: int, scale: float = 1.0, per_position: bool = True,
            alphas=ALPHAS) -> "PixelHistogram":
        """Counts from ``train``; the smoothing alpha with the lowest validation bits/dim."""
        n = cls.counts(train, levels, per_position)
        return min((cls(n, a, scale) for a in alphas), key=lambda m: m.discrete_bits_per_dim(val))

    def _table(self, d: int) -> Tensor:
        if self.log_p.shape[0] not in (1, d):
            raise ValueError(f"this histogram has {self.log_p.shape[0]} positions, the images have {d}.")
        return self.log_p.expand(d, -1)

    def discrete_log_prob(self, x: Tensor) -> Tensor:
        """log P(x) of integer images (N, ...), in nats; shape (N,)."""
        from flowlib.images import check_pixels

        check_pixels(x, self.levels)
        flat = x.reshape(len(x), -1).long().to(self.log_p.device)
        return self._table(flat.shape[1]).gather(1, flat.T).sum(0)

    def discrete_bits_per_dim(self, x: Tensor) -> float:
        """The exact code length -E[log2 P(x)] / D of integer images, averaged over the images."""
        return float(-self.discrete_log_prob(x).mean()) / (x[0].numel() * math.log(2))

    def with_width(self, width: float) -> "PixelHistogram":
        """The same frequencies as a density on pixels dequantized with noise of width ``width`` in (0, 1]."""
        if not 0 < width <= 1:
            raise ValueError(f"the noise width must lie in (0, 1], got {width}.")
        other = copy.deepcopy(self)
        other.width = float(width)
        return other

    def log_prob(self, y: Tensor) -> Tensor:
        """log q(y) of dequantized pixels y = scale (x + w u), shape (B,): each level's probability spread evenly
        over the part [k, k + w) * scale of its cell, -inf where no pixel's noise reaches (only when w < 1)."""
        v = y.double() / self.scale  # x + w u, in units of grey levels
        if self.width < 1:
            # y is often float32, so x + w u may miss a box edge by ~1e-6 either way; the empty gap [k + w, k + 1)
            # between the boxes leaves room to round toward the right box
            tol = min(1e-4, (1 - self.width) / 2)
            k = torch.floor(v + tol).clamp(0, self.levels - 1)
            inside = (v - k < self.width + tol).reshape(len(v), -1).all(1)
        else:
            k = torch.floor(v).clamp(0, self.levels - 1)
        flat = k.long().to(self.log_p.device).reshape(len(k), -1)
        d = flat.shape[1]
        log_q = self._table(d).gather(1, flat.T).sum(0) - d * math.log(self.width * self.scale)  # float64
        if self.width < 1:
            log_q = torch.where(inside.to(log_q.device), log_q, torch.full_like(log_q, -math.inf))
        return log_q

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n integer images (n, D), each pixel drawn independently from its position's frequencies."""
        return torch.multinomial(self.log_p.exp(), n, replacement=True, generator=generator).T.contiguous()
