"""Coupling layers: NICE's additive coupling and RealNVP's affine coupling.

A binary mask m (1 = passed through, see ``flowlib.bijections.masks``) splits x into a part that is copied, x_p = m * x, and a
part that is transformed conditioned on it. With a network NN that sees only x_p:

    additive (NICE):  z = x + (1 - m) * t(x_p)                            log|det dz/dx| = 0
    affine (RealNVP): z = x * exp((1 - m) * s(x_p)) + (1 - m) * t(x_p)    log|det dz/dx| = sum_i (1 - m_i) s_i(x_p)

Why this is cheap: z_p = x_p, and each transformed z_i depends on x_i only through a scale and a shift computed
from x_p. Ordering the variables as (passed through, transformed), the Jacobian is block lower-triangular,

    dz/dx = [[ I,            0                ],
             [ d(z_t)/d(x_p), diag(exp(s(x_p))) ]],

so its determinant is the product of the diagonal: exp(sum s). The lower-left block can be anything.
Why the inverse is cheap: z_p = x_p, so s and t can be recomputed from z_p, and

    x = z_p + (1 - m) * (z - t(z_p)) * exp(-s(z_p)).

The networks s and t are only ever evaluated, never inverted, so they can be any network at all.

The scale (a documented choice). RealNVP writes exp(s) with s unbounded. A conditioner output of 30 then makes
exp(s) ~ 1e13: one unlucky step early in training overflows or sends the loss to NaN (openai/glow #62,
bayesiains/nflows #49). We bound the log-scale softly:

    s = bound * tanh(h / bound)      (default bound = 2, so each scale lies in (e^-2, e^2) ~ (0.14, 7.4))

which equals h near 0 (a zero-initialised network still gives the identity, and small log-scales train as if
unbounded) but can never exceed +-bound; depth supplies larger total scalings. ``scale="sigmoid"`` gives Glow's
choice, exp(s) = sigmoid(h + 2), in (0, 1): also safe, but it can only contract (in the data -> latent direction),
so a model needs another layer (ActNorm, an element-wise affine) to expand, and at h = 0 it is 0.88, not 1.

Shapes: the event shape of the layer is the mask's shape, (D,) for vectors or (C, H, W) for images. The network
maps (B, *event) to (B, D, ...) for the additive layer and to (B, 2D, ...) for the affine one (log-scale, shift),
i.e. twice the size along dimension 1. A network that does not fit the mask is refused at construction, with the
shapes in the message. By default an ``MLP`` (vectors) or ``ConvNet`` (images) with a zero last layer is built.

References: Dinh, Krueger & Bengio 2014 (NICE); Dinh, Sohl-Dickstein & Bengio 2017 (RealNVP);
Kingma & Dhariwal 2018 (Glow, zero initialisation and the sigmoid scale).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowlib.core import Flow, sum_except_batch
from flowlib.bijections.masks import check_mask
from flowlib.nets import MLP, ConvNet


class Coupling(Flow):
    """Shared machinery: the mask buffer, the conditioner network and its construction-time shape check."""

    _abstract = True
    _out_factor = 1  # how many values per coordinate the network outputs

    def __init__(self, mask: Tensor, net: nn.Module | None = None, hidden: int = 64, layers: int = 2,
                 activation: str = "relu"):
        super().__init__()
        mask = check_mask(mask, f"{type(self).__name__} mask")
        self.register_buffer("mask", mask)  # (event shape); 1 = passed through
        self.event_shape = tuple(mask.shape)
        self.net = net if net is not None else self._default_net(hidden, layers, activation)
        self._check_net()

    def _default_net(self, hidden: int, layers: int, activation: str) -> nn.Module:
        shape, k = self.event_shape, self._out_factor
        if len(shape) == 1:
            return MLP(shape[0], k * shape[0], hidden=hidden, layers=layers, activation=activation)
        if len(shape) == 3:
            return ConvNet(shape[0], k * shape[0], hidden=hidden, activation=activation)
        raise ValueError(f"{type(self).__name__} builds a default network for masks of shape (D,) or (C, H, W), "
                         f"got a mask of shape {self.event_shape}; pass net= explicitly.")

    def _check_net(self) -> None:
        name, shape = type(self).__name__, self.event_shape
        if isinstance(self.net, MLP) and (len(shape) != 1 or self.net.in_features != shape[0]):
            raise ValueError(f"{name}: the mask has shape {shape} but the MLP expects inputs of shape "
                             f"({self.net.in_features},). The mask must have the shape of one data sample.")
        if isinstance(self.net, ConvNet) and (len(shape) != 3 or self.net.in_channels != shape[0]):
            raise ValueError(f"{name}: the mask has shape {shape} but the ConvNet expects {self.net.in_channels} "
                             f"input channels, i.e. a mask of shape ({self.net.in_channels}, H, W).")
        p = next(self.net.parameters(), None)
        probe = torch.zeros((1, *shape), device=p.device if p is not None else None,
                            dtype=p.dtype if p is not None else None)
        try:
            with torch.no_grad():
                out = self.net(probe)
        except RuntimeError as e:
            raise ValueError(f"{name}: the mask has shape {shape}, but its network fails on a batch of that shape "
                             f"(1, {', '.join(map(str, shape))}): {e}") from e
        want = (1, self._out_factor * shape[0], *shape[1:])
        if tuple(out.shape) != want:
            raise ValueError(f"{name}: for a mask of shape {shape} the network must output shape {want} "
                             f"({self._out_factor} value(s) per coordinate), but it outputs {tuple(out.shape)}.")

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, passed_through={int(self.mask.sum())}/{self.mask.numel()}"


class AdditiveCoupling(Coupling):
    """NICE: z = x + (1 - m) * t(m * x).   log|det dz/dx| = 0 (volume preserving).

    Inverse: x = z - (1 - m) * t(m * z). The network t is evaluated in both directions, never inverted.
    """

    _abstract = False
    _out_factor = 1

    def _shift(self, v: Tensor) -> Tensor:
        return (1 - self.mask) * self.net(self.mask * v)  # only the passed-through part is seen

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x + self._shift(x), x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z - self._shift(z), z.new_zeros(z.shape[0])  # m * z == m * x: the same shift


class AffineCoupling(Coupling):
    """RealNVP: z = x * exp(s) + t, with (s, t) = NN(m * x) zeroed on the passed-through coordinates.

    log|det dz/dx| = sum_i s_i.   Inverse: x = (z - t) * exp(-s), with (s, t) = NN(m * z), the same values.
    The log-scale is bounded: ``scale="tanh"`` (default) s = bound * tanh(h / bound); ``scale="sigmoid"``
    s = log sigmoid(h + 2) (Glow). The module docstring says why.
    """

    _abstract = False
    _out_factor = 2

    def __init__(self, mask: Tensor, net: nn.Module | None = None, hidden: int = 64, layers: int = 2,
                 activation: str = "relu", scale: str = "tanh", bound: float = 2.0):
        if scale not in ("tanh", "sigmoid"):
            raise ValueError(f"scale must be 'tanh' or 'sigmoid', got {scale!r}.")
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}.")
        super().__init__(mask, net, hidden=hidden, layers=layers, activation=activation)
        self.scale, self.bound = scale, float(bound)

    def log_scale_and_shift(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(s, t) from the passed-through part of v, both zero on the passed-through coordinates."""
        h, t = self.net(self.mask * v).chunk(2, dim=1)
        if self.scale == "tanh":
            s = self.bound * torch.tanh(h / self.bound)
        else:
            s = F.logsigmoid(h + 2.0)
        keep = 1 - self.mask
        return keep * s, keep * t

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.log_scale_and_shift(x)
        return x * torch.exp(s) + t, sum_except_batch(s)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.log_scale_and_shift(z)  # m * z == m * x: the same (s, t) as in forward
        return (z - t) * torch.exp(-s), -sum_except_batch(s)

    def extra_repr(self) -> str:
        bound = f", bound={self.bound}" if self.scale == "tanh" else ""
        return f"{super().extra_repr()}, scale={self.scale!r}{bound}"
