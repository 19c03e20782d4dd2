"""Element-wise bijections: y_i = h(x_i) for every coordinate, so the Jacobian is diagonal and

    log|det dy/dx| = sum_i log|h'(x_i)|.

These are the maps of lesson 01 (change of variables in 1D); they also serve as building blocks later (a logit as
image pre-processing, an affine map as a normalisation). Each class gives its map, inverse and log-det in its
docstring. Every map here is strictly monotone on its domain, which is what makes it invertible.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.core import Flow, FlowInputError, sum_except_batch


def _as_tensor(v, name: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.get_default_dtype())
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {v!r}.")
    return t


class Affine(Flow):
    """y = scale * x + shift, element-wise.   log|det| = sum_i log|scale_i|.   Inverse: x = (y - shift) / scale.

    ``scale`` and ``shift`` are numbers or tensors that broadcast against one sample. The scale is stored as
    ``sign * exp(log_abs_scale)``, so it can never become zero, even while it is learned (``learnable=True``;
    the sign stays fixed). A zero scale is refused: it would collapse everything onto one point.
    """

    def __init__(self, scale=1.0, shift=0.0, learnable: bool = False):
        super().__init__()
        scale_t, shift_t = _as_tensor(scale, "scale"), _as_tensor(shift, "shift")
        if bool((scale_t == 0).any()):
            raise ValueError(
                "Affine needs a non-zero scale: y = 0 * x + shift maps every x to the same point, which cannot be "
                "inverted (its log|det| would be -inf)."
            )
        log_abs_scale, sign = scale_t.abs().log(), scale_t.sign()
        if learnable:
            self.log_abs_scale = nn.Parameter(log_abs_scale)
            self.shift = nn.Parameter(shift_t)
        else:
            self.register_buffer("log_abs_scale", log_abs_scale)
            self.register_buffer("shift", shift_t)
        self.register_buffer("sign", sign)

    @property
    def scale(self) -> Tensor:
        return self.sign * self.log_abs_scale.exp()

    def _logdet(self, x: Tensor) -> Tensor:
        return sum_except_batch(self.log_abs_scale.to(x.dtype).expand_as(x))

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.scale * x + self.shift, self._logdet(x)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return (z - self.shift) / self.scale, -self._logdet(z)


class Sigmoid(Flow):
    """y = sigmoid(x) = 1 / (1 + e^-x), from the real line onto (0, 1).

    log|dy/dx| = log sigmoid(x) + log sigmoid(-x) = -softplus(-x) - softplus(x)  (written this way to stay finite
    for large |x|). Inverse: x = logit(y) = log y - log(1 - y). Sigmoid is the CDF of the standard logistic
    distribution, so ``Inverse(Sigmoid())`` applied to Uniform(0, 1) samples is inverse-CDF sampling.
    """

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if direction == "inverse":
            _require_open_unit_interval(v, "Sigmoid.inverse (the logit)")

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(x), sum_except_batch(-F.softplus(-x) - F.softplus(x))

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.log(z) - torch.log1p(-z)
        return x, sum_except_batch(-torch.log(z) - torch.log1p(-z))


class Logit(Flow):
    """y = logit(x) = log(x / (1 - x)), from (0, 1) onto the real line; the inverse of ``Sigmoid``.

    log|dy/dx| = -log x - log(1 - x). Used on images after scaling pixels into (0, 1) (lesson 05), where its
    log-det must be part of the likelihood.
    """

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if direction == "forward":
            _require_open_unit_interval(v, "Logit.forward")

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.log(x) - torch.log1p(-x), sum_except_batch(-torch.log(x) - torch.log1p(-x))

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(z), sum_except_batch(-F.softplus(-z) - F.softplus(z))


class Exp(Flow):
    """y = e^x, from the real line onto (0, inf).   log|dy/dx| = x.   Inverse: x = log y, log|dx/dy| = -log y.

    ``Inverse(Exp())`` applied to a standard normal gives a log-normal distribution.
    """

    def _check_domain(self, v: Tensor, direction: str) -> None:
        if direction == "inverse" and bool((v <= 0).any()):
            raise FlowInputError(
                f"Exp.inverse (the log) needs positive values; got {int((v <= 0).sum())} value(s) <= 0 "
                f"(min {float(v.min()):.3g})."
            )

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.exp(x), sum_except_batch(x)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        log_z = torch.log(z)
        return log_z, sum_except_batch(-log_z)


class SinhArcsinh(Flow):
    """y = sinh(tailweight * asinh(x) - skew)   (Jones & Pewsey 2009).

    dy/dx = tailweight * cosh(tailweight * asinh(x) - skew) / sqrt(1 + x^2) > 0 for tailweight > 0.
    Inverse: x = sinh((asinh(y) + skew) / tailweight). With skew = 0 and tailweight = 1 it is the identity.
    Used as a flow (data -> latent) in a model with a Gaussian base, a tailweight above 1 gives the *model's samples*
    lighter tails than a Gaussian (and below 1 heavier ones); pushing a random variable forward through the map does
    the opposite. The skew shifts mass to one side. ``learnable=True`` makes both parameters trainable (tailweight kept positive via a log).
    """

    def __init__(self, skew: float = 0.0, tailweight: float = 1.0, learnable: bool = False):
        super().__init__()
        if not tailweight > 0:
            raise ValueError(f"SinhArcsinh needs tailweight > 0 to be increasing (invertible), got {tailweight}.")
        skew_t, log_tw = _as_tensor(skew, "skew"), _as_tensor(math.log(tailweight), "tailweight")
        if learnable:
            self.skew, self.log_tailweight = nn.Parameter(skew_t), nn.Parameter(log_tw)
        else:
            self.register_buffer("skew", skew_t)
            self.register_buffer("log_tailweight", log_tw)

    @property
    def tailweight(self) -> Tensor:
        return self.log_tailweight.exp()

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tw = self.tailweight
        inner = tw * torch.asinh(x) - self.skew
        log_dydx = torch.log(tw) + _log_cosh(inner) - 0.5 * torch.log1p(x * x)
        return torch.sinh(inner), sum_except_batch(log_dydx)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.sinh((torch.asinh(z) + self.skew) / self.tailweight)
        _, logdet = self._forward(x)
        return x, -logdet


class MonotoneTanh(Flow):
    """A learnable increasing 1D map, applied element-wise (one shared map for every coordinate):

        y = a * x + b + sum_k w_k * tanh(s_k * x + c_k),      a, w_k, s_k > 0 (softplus of free parameters)

        dy/dx = a + sum_k w_k * s_k * (1 - tanh^2(s_k * x + c_k)) > 0,

    so it is strictly increasing and maps the real line onto the real line. With K bumps it can move mass into up to
    K + 1 modes, which is enough to fit a multi-modal 1D density by maximum likelihood (lesson 01).

    The inverse has no closed form: it is found by bisection, which is exact to the dtype's precision because the map
    is monotone and y - (a x + b) is bounded by W = sum_k w_k, so x lies in [(y - b - W)/a, (y - b + W)/a].
    That is a lesson in itself: density evaluation (forward) is cheap, sampling (inverse) here costs ~60 passes.
    """

    def __init__(self, num_bumps: int = 8, bisection_steps: int = 64):
        super().__init__()
        if num_bumps < 1:
            raise ValueError(f"MonotoneTanh needs num_bumps >= 1, got {num_bumps}.")
        self.bisection_steps = bisection_steps
        g = torch.Generator().manual_seed(0)
        self.raw_a = nn.Parameter(torch.tensor(0.5413))  # softplus(0.5413) = 1
        self.b = nn.Parameter(torch.tensor(0.0))
        self.raw_w = nn.Parameter(torch.full((num_bumps,), -3.0))  # small bumps: starts close to the identity
        self.raw_s = nn.Parameter(torch.full((num_bumps,), 0.5413))
        self.c = nn.Parameter(torch.linspace(-2.0, 2.0, num_bumps) + 0.01 * torch.randn(num_bumps, generator=g))

    def _params(self, dtype):
        a = F.softplus(self.raw_a).to(dtype) + 1e-3  # bounded away from 0: the map's slope never vanishes
        w, s = F.softplus(self.raw_w).to(dtype), F.softplus(self.raw_s).to(dtype)
        return a, self.b.to(dtype), w, s, self.c.to(dtype)

    def _map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b, w, s, c = self._params(x.dtype)
        t = torch.tanh(x.unsqueeze(-1) * s + c)  # (..., K)
        y = a * x + b + (w * t).sum(-1)
        dydx = a + (w * s * (1 - t * t)).sum(-1)
        return y, dydx

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, dydx = self._map(x)
        return y, sum_except_batch(torch.log(dydx))

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            a, b, w, _, _ = self._params(z.dtype)
            total = w.sum()
            lo, hi = (z - b - total) / a, (z - b + total) / a
            for _ in range(self.bisection_steps):
                mid = 0.5 * (lo + hi)
                below = self._map(mid)[0] < z
                lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
            x = 0.5 * (lo + hi)
        # One Newton step with autograd on: exact to rounding, and gradients flow to z and the parameters
        # (implicit-function style), so the inverse is differentiable too.
        y, dydx = self._map(x)
        x = x - (y - z) / dydx
        _, dydx = self._map(x)
        return x, -sum_except_batch(torch.log(dydx))


def _log_cosh(v: Tensor) -> Tensor:
    # log cosh v = |v| + log1p(e^{-2|v|}) - log 2, finite for large |v|
    av = v.abs()
    return av + torch.log1p(torch.exp(-2 * av)) - math.log(2.0)


def _require_open_unit_interval(v: Tensor, who: str) -> None:
    bad = (v <= 0) | (v >= 1)
    if bool(bad.any()):
        raise FlowInputError(
            f"{who} needs values strictly inside (0, 1); got {int(bad.sum())} value(s) outside "
            f"(min {float(v.min()):.3g}, max {float(v.max()):.3g})."
        )
