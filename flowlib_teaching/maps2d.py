"""The 2D maps the lessons deform grids with (lesson 02's local-linearisation widget and its Jacobian exercise):
smooth, invertible for small strengths, and written with torch so that autograd gives their Jacobians."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def sine_shear(x: Tensor, strength: float) -> Tensor:
    """y = (x1 + s sin x2, x2 + s sin x1). det J = 1 - s^2 cos x1 cos x2 > 0 for |s| < 1: invertible."""
    return torch.stack([x[:, 0] + strength * torch.sin(x[:, 1]), x[:, 1] + strength * torch.sin(x[:, 0])], 1)


def swirl(x: Tensor, strength: float) -> Tensor:
    """Rotate each point by the angle 2 s exp(-|x|^2 / 4) about the origin. Radii are kept and det J = 1: shapes
    are twisted but every area is preserved (a volume-preserving map)."""
    r2 = (x * x).sum(1)
    theta = 2 * strength * torch.exp(-r2 / 4)
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], 1)


MAPS_2D: dict[str, Callable[[Tensor, float], Tensor]] = {"sine shear": sine_shear, "swirl": swirl}
