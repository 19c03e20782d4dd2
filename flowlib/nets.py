"""The small networks inside coupling layers (the conditioners: they compute the shift and the log-scale).

They are ordinary, non-invertible networks: a coupling layer never needs to invert them. Their one special feature
is that the LAST layer starts at exactly zero (weights and bias), so a freshly built coupling outputs shift = 0 and
log-scale = 0 and is the identity map. A deep stack then starts as the identity and training moves it away
gently (Glow, Kingma & Dhariwal 2018, section 3.3, "zero initialization").

    MLP(in_features, out_features)       (B, D_in) -> (B, D_out)          for vectors
    ConvNet(in_channels, out_channels)   (B, C_in, H, W) -> (B, C_out, H, W)   for images (same H, W)
"""
from __future__ import annotations

from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}


def activation_of(name: str) -> nn.Module:
    """A fresh activation module from its name: the one table of activations of every network in flowlib."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}.")
    return _ACTIVATIONS[name]()


def _zero(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Linear -> act -> ... -> Linear with ``layers`` hidden layers of width ``hidden``; the last Linear is zero.

    Shapes: (B, in_features) -> (B, out_features).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, layers: int = 2,
                 activation: str = "relu", zero_last: bool = True):
        super().__init__()
        if layers < 1:
            raise ValueError(f"an MLP needs at least one hidden layer, got layers={layers}.")
        self.in_features, self.out_features = in_features, out_features
        widths = [in_features] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Linear(a, b), activation_of(activation)]
        last = nn.Linear(hidden, out_features)
        self.net = nn.Sequential(*body, _zero(last) if zero_last else last)

    def forward(self, x: Tensor) -> Tensor:  # (B, D_in) -> (B, D_out)
        return self.net(x)


class ConvNet(nn.Module):
    """conv3x3 -> act -> conv1x1 -> act -> conv3x3 (zero), padding kept so H and W are unchanged.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W). The 3x3 kernels let each output pixel see its
    neighbours, which is what a checkerboard coupling needs: a transformed pixel's neighbours are passed through.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, activation: str = "relu",
                 zero_last: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), activation_of(activation),
            nn.Conv2d(hidden, hidden, 1), activation_of(activation),
            _zero(last) if zero_last else last,
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        return self.net(x)
