"""Seeded 2D densities for the lessons and benchmarks, with their exact log-densities where they are known.

The definitions follow the widely used FFJORD toy set (Grathwohl et al. 2019), so that numbers compare with
published figures for it. Each density is the *continuous process* behind those samplers (a curve parameter drawn uniformly
instead of on a ``linspace``):

=============  =========================================================================  =================
name           definition                                                                 log-density
=============  =========================================================================  =================
moons          two half circles of radius 1 (scikit-learn's moons), noise 0.1, x2,        1D quadrature over
               shifted by (-1, -0.2): curves of radius 2 blurred by N(0, 0.2^2 I)         the curve angle
circles        two circles of radius 1 and 0.5, noise 0.08, x3: radii 3 and 1.5,          closed form
               blurred by N(0, 0.24^2 I)                                                  (Bessel I0)
rings          four circles of radius 3, 2.25, 1.5, 0.75 blurred by N(0, 0.08^2 I)        closed form
checkerboard   8 of the 16 unit squares of [-2, 2]^2 (those with floor(x)+floor(y)        closed form
               even), uniform, x2: density 1/32 on 8 squares of side 2                    (1/32 or 0)
8gaussians     8 centres on a circle of radius 4, sigma 0.5, all divided by 1.414         closed form
mixture        a user-defined Gaussian mixture ``GaussianMixture(means, stds, weights)``  closed form
=============  =========================================================================  =================

A blurred circle has a closed form: averaging N(x; R(cos t, sin t), s^2 I) over t ~ Uniform(0, 2 pi) gives

    q(x) = exp(-(r^2 + R^2) / 2 s^2) I0(r R / s^2) / (2 pi s^2),        r = |x|,

and a half circle (the moons) is the same integral over t in (0, pi), done by Gauss-Legendre quadrature.

The *floor* of a density is its differential entropy H(p) = -E_p[log p(x)]: no model can have a lower expected
negative log-likelihood, because E_p[-log q] = H(p) + KL(p || q) >= H(p). ``entropy(name)`` estimates it by Monte
Carlo with the exact log-density.

Usage::

    ds = toy2d.get("moons")
    x = ds.sample(1000, seed=0)          # (1000, 2), reproducible
    batch = ds.sampler(seed=0)           # n -> fresh samples each call (for flowlib.training.fit)
    ds.log_prob(x)                       # (1000,), exact
    toy2d.entropy("moons")               # Floor(value=2.3951..., stderr=0.0017..., n=200000): the defaults
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS", "Toy2D", "GaussianMixture", "EightGaussians", "Checkerboard", "Moons", "Rings", "Floor", "get", "sample", "log_prob", "entropy", "names",
]


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of samples n must be a positive integer, got {n!r}.")
    return int(n)


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


@dataclass(frozen=True)
class Floor:
    """A Monte Carlo estimate of the differential entropy H(p) = -E[log p(x)] in nats, with its standard error."""
    value: float
    stderr: float
    n: int

    def __str__(self) -> str:
        if self.stderr == 0:  # a closed form (the checkerboard: ln 32), not an estimate
            return f"{self.value:.4f} nats (exact)"
        return f"{self.value:.4f} +- {self.stderr:.4f} nats (Monte Carlo, n = {self.n})"


class Toy2D:
    """A 2D density: ``sample(n, seed=...)``, ``log_prob(x)`` (if known), ``bounds`` for plots."""

    name: str = "toy"
    has_log_prob: bool = True
    bounds: tuple[tuple[float, float], tuple[float, float]] = ((-4.0, 4.0), (-4.0, 4.0))

    def sample(self, n: int, seed: int | None = 0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples as a float32 tensor of shape (n, 2); the same ``seed`` gives the same samples."""
        return self._sample(_check_n(n), _generator(seed, generator)).float()

    def sampler(self, seed: int = 0) -> Callable[[int], Tensor]:
        """A function ``n -> (n, 2)`` that draws fresh samples at every call, from one seeded generator."""
        g = torch.Generator().manual_seed(int(seed))
        return lambda n: self.sample(n, generator=g)

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact log-density log p(x), shape (B,), computed in float64 and returned in x's dtype."""
        if not self.has_log_prob:
            raise NotImplementedError(
                f"the {self.name!r} density has no exact log-density in flowlib (its samples come from a non-invertible "
                f"recipe); densities with one: {', '.join(n for n in names() if get(n).has_log_prob)}.")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.name}.log_prob expected x of shape (B, 2), got {shape}.")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.name}.log_prob got {int((~torch.isfinite(x)).sum())} non-finite value(s) (NaN or "
                             f"inf) in x of shape {tuple(x.shape)}; a density is defined at finite points only.")
        return self._log_prob(x.detach().double()).to(x.dtype if x.is_floating_point() else torch.float32)

    def entropy(self, n: int = 200_000, seed: int = 12345) -> Floor:
        """The floor H(p) = -E[log p(x)], by Monte Carlo with the exact log-density."""
        x = self.sample(_check_n(n), seed=seed).double()
        nll = -self._log_prob(x)
        return Floor(float(nll.mean()), float(nll.std() / math.sqrt(n)), n)

    def _sample(self, n: int, g: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class GaussianMixture(Toy2D):
    """p(x) = sum_k w_k N(x; mu_k, s_k^2 I), isotropic components in 2D.

    Args:
        means: (K, 2) centres.  stds: one positive number or K of them.  weights: K non-negative numbers summing to 1
        (default: equal weights).
    """

    name = "mixture"

    def __init__(self, means, stds=0.5, weights=None):
        means_t = torch.as_tensor(np.asarray(means, dtype=np.float64))
        if means_t.dim() != 2 or means_t.shape[1] != 2 or means_t.shape[0] < 1:
            raise ValueError(f"means must have shape (K, 2) with K >= 1, got {tuple(means_t.shape)}.")
        k = means_t.shape[0]
        stds_t = torch.as_tensor(np.asarray(stds, dtype=np.float64)).reshape(-1)
        if stds_t.numel() == 1:
            stds_t = stds_t.expand(k).clone()
        if stds_t.numel() != k or not bool(torch.isfinite(stds_t).all()) or bool((stds_t <= 0).any()):
            raise ValueError(f"stds must be one positive number or {k} positive numbers (one per component), "
                             f"got {np.asarray(stds).tolist()}.")
        if weights is None:
            weights_t = torch.full((k,), 1.0 / k, dtype=torch.float64)
        else:
            weights_t = torch.as_tensor(np.asarray(weights, dtype=np.float64)).reshape(-1)
            if weights_t.numel() != k:
                raise ValueError(f"weights must have one entry per component: {k} means but {weights_t.numel()} "
                                 f"weights.")
            if not bool(torch.isfinite(weights_t).all()) or bool((weights_t < 0).any()):
                raise ValueError(f"mixture weights must be finite and non-negative, got {weights_t.tolist()}.")
            total = float(weights_t.sum())
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"mixture weights must sum to 1, but they sum to {total:.6g}; "
                                 f"divide them by their sum if they are relative weights.")
        if not bool(torch.isfinite(means_t).all()):
            raise ValueError("means must be finite.")
        self.means, self.stds, self.weights = means_t, stds_t, weights_t
        r = float((means_t.abs().max(0).values + 3 * stds_t.max()).max())
        self.bounds = ((-r, r), (-r, r))

    def _sample(self, n: int, g: torch.Generator) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * eps

    def _log_prob(self, x: Tensor) -> Tensor:
        d2 = (x[:, None, :] - self.means[None]).pow(2).sum(-1)  # (B, K)
        s2 = self.stds.pow(2)
        log_comp = -0.5 * d2 / s2 - torch.log(2 * math.pi * s2) + torch.log(self.weights)
        return torch.logsumexp(log_comp, dim=1)


class EightGaussians(GaussianMixture):
    """FFJORD's 8 Gaussians: centres at radius 4 (angles k pi / 4), sigma 0.5, everything divided by 1.414."""

    name = "8gaussians"

    def __init__(self):
        angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
        means = 4.0 * torch.stack([torch.cos(angles), torch.sin(angles)], 1) / 1.414
        super().__init__(means.numpy(), 0.5 / 1.414)
        self.bounds = ((-4.0, 4.0), (-4.0, 4.0))


class Checkerboard(Toy2D):
    """Uniform on the 8 unit squares [i, i+1) x [j, j+1) of [-2, 2)^2 with i + j even, then scaled by 2.

    p(x) = 1/32 on those squares (8 squares of area 4), 0 elsewhere, so H(p) = ln 32 exactly.
    """

    name = "checkerboard"
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def _sample(self, n: int, g: torch.Generator) -> Tensor:
        u = torch.rand(n, 2, generator=g, dtype=torch.float64)
        x1 = 4 * u[:, 0] - 2
        row = torch.randint(0, 2, (n,), generator=g).double()  # lower or upper of the two cells in the column
        x2 = u[:, 1] - 2 * row + torch.floor(x1).remainder(2)
        return 2 * torch.stack([x1, x2], 1)

    def _log_prob(self, x: Tensor) -> Tensor:
        cell = torch.floor(x / 2)
        inside = ((x >= -4) & (x < 4)).all(1) & ((cell[:, 0] + cell[:, 1]).remainder(2) == 0)
        return torch.where(inside, x.new_full((x.shape[0],), -math.log(32.0)), x.new_full((x.shape[0],), -math.inf))

    def entropy(self, n: int = 200_000, seed: int = 12345) -> Floor:
        _check_n(n)
        return Floor(math.log(32.0), 0.0, n)  # exact: uniform on an area of 32


def _log_gauss_on_curve(x: Tensor, points: Tensor, log_w: Tensor, s: float) -> Tensor:
    """log sum_j w_j N(x; points_j, s^2 I), the quadrature of a blurred curve: x (B, 2), points (M, 2)."""
    d2 = (x[:, None, :] - points[None]).pow(2).sum(-1)  # (B, M)
    return torch.logsumexp(log_w - 0.5 * d2 / s**2, dim=1) - math.log(2 * math.pi * s**2)


class Moons(Toy2D):
    """scikit-learn's two moons (noise 0.1) scaled by 2 and shifted by (-1, -0.2), as in FFJORD.

    Upper moon: c(t) = (cos t, sin t); lower moon: c(t) = (1 - cos t, 0.5 - sin t), t ~ Uniform(0, pi), each with
    probability 1/2; x = 2 (c(t) + 0.1 eps) + (-1, -0.2), eps ~ N(0, I). So

        p(x) = 1/2 sum_moons  int_0^pi (1/pi) N(x; 2 c(t) + shift, 0.2^2 I) dt,

    computed by Gauss-Legendre quadrature in t with ``nodes`` nodes per moon (the integrand is smooth: with the
    default 128 nodes it agrees with a 4000-node midpoint rule to 1e-4 nats wherever log p > -25).
    """

    name = "moons"
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def __init__(self, noise: float = 0.1, nodes: int = 128):
        if not noise > 0:
            raise ValueError(f"noise must be > 0, got {noise}.")
        self.noise, self.scale = float(noise), 2.0
        self.shift = torch.tensor([-1.0, -0.2], dtype=torch.float64)
        t, w = np.polynomial.legendre.leggauss(int(nodes))
        t = torch.as_tensor((t + 1) * math.pi / 2)  # nodes on (0, pi)
        w = torch.as_tensor(w / 2)  # weights of the average over t (sum to 1)
        self._points = torch.cat([self._curve(t, 0), self._curve(t, 1)])
        self._log_w = torch.log(torch.cat([w, w]) / 2)

    def _curve(self, t: Tensor, moon: int) -> Tensor:
        c = torch.stack([torch.cos(t), torch.sin(t)], 1) if moon == 0 else \
            torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
        return self.scale * c + self.shift

    def _sample(self, n: int, g: torch.Generator) -> Tensor:
        t = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        moon = torch.randint(0, 2, (n,), generator=g)
        c = torch.where((moon == 0)[:, None], self._curve(t, 0), self._curve(t, 1))
        return c + self.scale * self.noise * torch.randn(n, 2, generator=g, dtype=torch.float64)

    def _log_prob(self, x: Tensor) -> Tensor:
        return _log_gauss_on_curve(x, self._points, self._log_w, self.scale * self.noise)


class Rings(Toy2D):
    """Concentric circles of radii R_k (chosen with weights w_k, angle uniform) blurred by N(0, s^2 I):

        p(x) = sum_k w_k exp(-(r - R_k)^2 / 2 s^2) i0e(r R_k / s^2) / (2 pi s^2),     r = |x|,

    where i0e(a) = e^{-a} I0(a) is the exponentially scaled Bessel function (finite for large a).
    ``circles`` (FFJORD, scikit-learn's circles x3) is radii (3, 1.5), s = 0.24; ``rings`` is radii
    (3, 2.25, 1.5, 0.75), s = 0.08.
    """

    def __init__(self, radii: Sequence[float], noise: float, weights=None, name: str = "rings"):
        self.radii = torch.as_tensor(np.asarray(radii, dtype=np.float64)).reshape(-1)
        if self.radii.numel() < 1 or bool((self.radii <= 0).any()):
            raise ValueError(f"radii must be positive, got {list(radii)}.")
        if not noise > 0:
            raise ValueError(f"noise must be > 0, got {noise}.")
        k = self.radii.numel()
        self.weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else \
            GaussianMixture(np.zeros((k, 2)), 1.0, weights).weights
        self.noise, self.name = float(noise), name
        r = float(self.radii.max()) + 4 * self.noise
        self.bounds = ((-r, r), (-r, r))

    def _sample(self, n: int, g: torch.Generator) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        t = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        c = self.radii[k, None] * torch.stack([torch.cos(t), torch.sin(t)], 1)
        return c + self.noise * torch.randn(n, 2, generator=g, dtype=torch.float64)

    def _log_prob(self, x: Tensor) -> Tensor:
        r = x.norm(dim=1, keepdim=True)  # (B, 1)
        s2 = self.noise**2
        R = self.radii[None]
        log_ring = -(r - R).pow(2) / (2 * s2) + torch.log(torch.special.i0e(r * R / s2)) - math.log(2 * math.pi * s2)
        return torch.logsumexp(log_ring + torch.log(self.weights), dim=1)


DATASETS: dict[str, Callable[[], Toy2D]] = {
    "moons": Moons,
    "circles": lambda: Rings((3.0, 1.5), 0.24, name="circles"),
    "rings": lambda: Rings((3.0, 2.25, 1.5, 0.75), 0.08, name="rings"),
    "checkerboard": Checkerboard,
    "8gaussians": EightGaussians,
}


def names() -> list[str]:
    """The names ``get`` knows (a user-defined mixture is built with ``GaussianMixture`` directly)."""
    return list(DATASETS)


def get(name: str | Toy2D) -> Toy2D:
    """The density called ``name`` (a ``Toy2D`` is passed through)."""
    if isinstance(name, Toy2D):
        return name
    if name not in DATASETS:
        raise ValueError(f"unknown 2D dataset {name!r}; known: {', '.join(names())} "
                         f"(or build your own with toy2d.GaussianMixture(means, stds, weights)).")
    return DATASETS[name]()


def sample(name: str | Toy2D, n: int, seed: int = 0) -> Tensor:
    """``n`` seeded samples of the named density, shape (n, 2)."""
    return get(name).sample(n, seed=seed)


def log_prob(name: str | Toy2D, x: Tensor) -> Tensor:
    """The exact log-density of the named density at ``x`` (B, 2)."""
    return get(name).log_prob(x)


def entropy(name: str | Toy2D, n: int = 200_000, seed: int = 12345) -> Floor:
    """The floor (differential entropy, nats) of the named density, by Monte Carlo with its exact log-density."""
    return get(name).entropy(n=n, seed=seed)
