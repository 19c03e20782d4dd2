"""A flow model pairs a flow f (data -> latent) with a base distribution p(z):

    log q(x) = log p(f(x)) + log|det df/dx|          (density direction: one forward pass)
    x = f^{-1}(z),  z ~ p                            (sampling direction: one inverse pass)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .core import Flow


class FlowModel(nn.Module):
    """``log_prob(x)`` and ``sample(n, temperature)`` for a flow and a base distribution.

    A note on temperature: sampling z ~ N(0, T^2 I) and mapping it through f^{-1} samples the density proportional to
    q(x)^(1/T^2) exactly when log|det df/dx| is the same constant for every x (e.g. additive couplings, even followed
    by a fixed element-wise scale); when the log-det varies with x (affine couplings, a logit pre-processing) it is a
    heuristic, not that distribution.
    """

    def __init__(self, flow: Flow, base: nn.Module):
        super().__init__()
        if not isinstance(flow, Flow):
            raise TypeError(f"FlowModel expects a Flow, got {type(flow).__name__}.")
        self.flow, self.base = flow, base

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x), shape (B,)."""
        z, logdet = self.flow(x)
        return self.base.log_prob(z) + logdet

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """n samples x = f^{-1}(z), z from the base (at the given temperature)."""
        z = self.base.sample(n, temperature=temperature, generator=generator)
        x, _ = self.flow.inverse(z)
        return x

    def sample_with_log_prob(self, n: int, temperature: float = 1.0,
                             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples and their log q(x) from the same inverse pass: log q(x) = log p(z) - log|det dx/dz|."""
        z = self.base.sample(n, temperature=temperature, generator=generator)
        x, logdet = self.flow.inverse(z)
        return x, self.base.log_prob(z) - logdet
