"""A small Gaussian VAE for vector data: the baseline lesson 03 measures a flow against.

    encoder  e(u | x) = N(u; m(x), diag s(x)^2)        decoder  p(x | u) = N(x; mu(u), diag sigma(u)^2)
    prior    p(u) = N(0, I)

(u is the VAE's latent, to keep z for the flow's.) The VAE's likelihood p(x) = ∫ p(x | u) p(u) du has no closed
form; training maximises the evidence lower bound

    ELBO(x) = E_{e(u|x)}[log p(x | u) + log p(u) - log e(u | x)]  <=  log p(x),

and the true log p(x) can only be estimated, e.g. by importance sampling with K samples from e(u | x) (IWAE,
Burda et al. 2016), a tighter bound that approaches log p(x) as K grows. A flow gives log q(x) exactly.

``log_prob`` returns the ELBO (one sample), so that ``flowlib.train.fit`` trains the VAE like any other model; it
is NOT the exact log-likelihood.
"""
from __future__ import annotations

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
