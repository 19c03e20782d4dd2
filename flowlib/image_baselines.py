"""Baselines for the Fashion-MNIST bits/dim table (lesson 07), under the one convention of ``flowlib.images``.

Every model here is a density on dequantized pixels y = x + u in [0, 256)^D, so ``flowlib.images.bits_per_dim``
scores it exactly as it scores a flow:

``PixelHistogram``  (``flowlib.baselines``, re-exported here) independent pixels. Each pixel's level is drawn from
    a histogram of the training images, either one histogram per position ("per_position", D x 256 counts) or one
    pooled over all positions ("pooled", ``per_position=False``, lesson 05's baseline). As a density on y it is piecewise constant, q(y) = prod_i p_i(floor(y_i)), so the
    dequantization bound is tight: its bits/dim is exactly the discrete cross-entropy -E log2 P(x) / D. Add-alpha
    smoothing (an unseen level still gets mass) with alpha picked on validation images, never on the test set.

``ImageVAE``  a small Gaussian VAE (``flowlib.baselines.GaussianVAE``, MLP encoder and decoder) on the same
    logit-space values v = logit(alpha + (1 - 2 alpha) y / 256) as the flows. The pre-processing is a flow, so

        log q(y) = log p_VAE(v) + log|det dv/dy|,

    and both VAE bounds carry the log-det: ``log_prob`` is the one-sample ELBO + log-det (a lower bound on log q(y),
    hence an upper bound in bits/dim), ``importance_log_prob`` the K-sample importance-weighted bound (IWAE, Burda
    et al. 2016), tighter, approaching log q(y) as K grows. Neither is the VAE's exact likelihood: only a bound can
    be put in the table, and the table says so.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .images import check_pixels, logit_preprocessing
from .baselines import GaussianVAE, PixelHistogram

HISTOGRAM_KINDS = ("per_position", "pooled")
ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # the smoothing grid of lesson 07's table (fitted on validation images)


def fit_histogram(train: Tensor, val: Tensor, kind: str = "per_position", levels: int = 256,
                  alphas=ALPHAS) -> PixelHistogram:
    """The table's histogram rows: ``PixelHistogram.fit`` on [0, levels) pixels, per position or pooled."""
    if kind not in HISTOGRAM_KINDS:
        raise ValueError(f"kind must be one of {HISTOGRAM_KINDS}, got {kind!r}.")
    return PixelHistogram.fit(train, val, levels, per_position=kind == "per_position", alphas=alphas)


class ImageVAE(nn.Module):
    """A Gaussian MLP VAE on logit-space images, with the pre-processing's log-det in its bounds (see module doc).

    Args:
        shape: (C, H, W) of one image.
        latent, hidden: the VAE's latent size and MLP width.
        min_log_std: lower bound of the encoder's and decoder's log standard deviations.
        pixel_levels, alpha: the logit pre-processing of ``flowlib.images`` (the flows use 256 and 0.05).
    """

    def __init__(self, shape=(1, 28, 28), latent: int = 32, hidden: int = 256, min_log_std: float = -6.0,
                 pixel_levels: int = 256, alpha: float = 0.05):
        super().__init__()
        self.event_shape = tuple(int(s) for s in shape)
        self.dim = math.prod(self.event_shape)
        self.pre = logit_preprocessing(pixel_levels, alpha)
        self.vae = GaussianVAE(self.dim, latent, hidden, min_log_std)

    def _logit_space(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(y.shape[1:]) != self.event_shape:
            raise ValueError(f"ImageVAE expects images of shape (B, {', '.join(map(str, self.event_shape))}), got "
                             f"{tuple(y.shape)}.")
        v, logdet = self.pre(y)
        return v.reshape(v.shape[0], -1), logdet

    def elbo(self, y: Tensor, k: int = 1) -> Tensor:
        """ELBO on log q(y), averaged over k posterior samples, log-det included: shape (B,)."""
        v, logdet = self._logit_space(y)
        return self.vae.elbo(v, k) + logdet

    def log_prob(self, y: Tensor) -> Tensor:
        """The one-sample ELBO (training objective; a lower bound on log q(y), not the exact log-likelihood)."""
        return self.elbo(y, 1)

    @torch.no_grad()
    def importance_log_prob(self, y: Tensor, k: int = 256, chunk: int = 64) -> Tensor:
        """The K-sample importance-weighted bound on log q(y) (log-det included), computed ``chunk`` samples at a
        time (so K = 1000 fits in memory): log (1/K) sum_k p(v, u_k) / q(u_k | v) + log|det dv/dy|."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        v, logdet = self._logit_space(y)
        parts = [self.vae._log_weights(v, min(chunk, k - i)) for i in range(0, k, chunk)]
        return torch.logsumexp(torch.cat(parts, 0), dim=0) - math.log(k) + logdet

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples y (decoder mean + noise), mapped back through the pre-processing to [0, 256)."""
        v = self.vae.sample(n).reshape(n, *self.event_shape)
        return self.pre.inverse(v.clamp(-12, 12))[0]


class ImportanceWeighted(nn.Module):
    """A view of an ``ImageVAE`` whose ``log_prob`` is its K-sample importance-weighted bound, so that
    ``flowlib.images.bits_per_dim`` scores it like any model."""

    def __init__(self, vae: ImageVAE, k: int = 256):
        super().__init__()
        self.model, self.k = vae, int(k)

    def log_prob(self, y: Tensor) -> Tensor:
        return self.model.importance_log_prob(y, self.k)


def image_vae(shape=(1, 28, 28), latent: int = 32, hidden: int = 256, min_log_std: float = -6.0) -> ImageVAE:
    """The builder ``python -m flowlib.training`` trains the table's VAE with (config "vae-fmnist")."""
    return ImageVAE(tuple(shape), latent, hidden, min_log_std)
