"""The small networks inside coupling layers (the conditioners: they compute the shift and the log-scale).

They are ordinary, non-invertible networks: a coupling layer never needs to invert them. Their one special feature
is that the LAST layer starts at exactly zero (weights and bias), so a freshly built coupling outputs shift = 0 and
log-scale = 0 and is the identity map. A deep stack then starts as the identity and training moves it away
gently (Glow, Kingma & Dhariwal 2018, section 3.3, "zero initialization").

    MLP(in_features, out_features)       (B, D_in) -> (B, D_out)          for vectors
    ConvNet(in_channels, out_channels)   (B, C_in, H, W) -> (B, C_out, H, W)   for images (same H, W)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


def conv3x3_unfolded(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` for a 3x3 convolution with padding 1, computed as a 1x1 convolution of the unfolded neighbourhoods.

    ``F.unfold`` lays out the 3x3 neighbourhood of each pixel as 9 * C_in channels (im2col):
    cols[b, 9c + 3i + j, h, w] = x[b, c, h + i - 1, w + j - 1], and the 1x1 convolution with the kernel read in the
    same order computes the same sums. Worth it on the CPU when C_in is tiny (1 or 2): oneDNN's 3x3 kernels are slow
    there, its 1x1 kernels on 9 * C_in channels are not (benchmarks/README.md, Glow).
    """
    b, c, h, w = x.shape
    cols = F.unfold(x, 3, padding=1).view(b, 9 * c, h, w).contiguous(memory_format=torch.channels_last)
    return F.conv2d(cols, conv.weight.reshape(conv.out_channels, 9 * c, 1, 1), conv.bias)


def conv3x3_folded(h: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(h)`` for a 3x3 convolution with padding 1, computed as a 1x1 convolution followed by ``F.fold``.

    The 1x1 convolution gives, at each pixel p, its contribution to the 9 outputs around it, 9 * C_out channels;
    ``F.fold`` (col2im) adds each contribution into the output pixel where it lands. Column (o, i, j) at p lands at
    p + (i - 1, j - 1), while a convolution takes the input at p + (i - 1, j - 1) into the output at p: hence the
    kernel flipped in both spatial directions. The same sums; worth it on the CPU when C_out is tiny (at most 4).
    """
    b, _, hh, ww = h.shape
    o = conv.out_channels
    w = conv.weight.flip(2, 3).permute(0, 2, 3, 1).reshape(9 * o, -1, 1, 1)  # rows (o, i, j)
    cols = F.conv2d(h, w).reshape(b, 9 * o, hh * ww)
    return F.fold(cols, (hh, ww), 3, padding=1) + conv.bias.view(1, o, 1, 1)


class ConvNet(nn.Module):
    """conv3x3 -> act -> conv1x1 -> act -> conv3x3 (zero), padding kept so H and W are unchanged.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W). The 3x3 kernels let each output pixel see its
    neighbours, which is what a checkerboard coupling needs: a transformed pixel's neighbours are passed through.

    ``unfold_thin=True`` (Glow's couplings) computes, on the CPU, a 3x3 convolution with at most 2 input or at most
    4 output channels by ``conv3x3_unfolded`` / ``conv3x3_folded``: the same map and the same parameters, faster with
    oneDNN (Glow's first level on a 1-channel image: 2 channels in, 4 out).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, activation: str = "relu",
                 zero_last: bool = True, unfold_thin: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.unfold_thin = unfold_thin
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), activation_of(activation),
            nn.Conv2d(hidden, hidden, 1), activation_of(activation),
            _zero(last) if zero_last else last,
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        first, act0, middle, act1, last = self.net
        # the unfolded forms only where they were measured faster: on the CPU, in the model's own precision (under
        # autocast, nn.Conv2d's own casting applies); on a GPU cuDNN handles thin convolutions well
        if not (self.unfold_thin and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")):
            return self.net(x)
        h = _activate(act0, conv3x3_unfolded(x, first) if first.in_channels <= 2 else first(x))
        h = _activate(act1, middle(h))
        return conv3x3_folded(h, last) if last.out_channels <= 4 else last(h)


def _activate(act: nn.Module, h: Tensor) -> Tensor:
    """``act(h)`` for a fresh convolution output ``h`` that nothing else holds: a ReLU then works in place (a
    convolution's backward needs its input, not its output, so autograd allows it), which saves allocating and
    writing one hidden-width tensor per activation."""
    return torch.relu_(h) if type(act) is nn.ReLU else act(h)
