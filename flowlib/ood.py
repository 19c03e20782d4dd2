"""Inputs a Fashion-MNIST model never saw, as 8-bit 28x28 images (lesson 07: what likelihood does not tell).

    digits_28x28()            scikit-learn's 8x8 digits (17 grey levels) brought to Fashion-MNIST's format: scaled
                              to 0..255, resized to 20x20 (bilinear) and centred in a 28x28 frame, like MNIST
    ood_sets(test, n, seed)   {name: (n, 1, 28, 28) uint8}: the Fashion-MNIST test images themselves, the digits,
                              uniform noise, constant images, clothes flipped upside down, clothes inverted (255 - x)

Everything is seeded, so a lesson, a test and a benchmark see the same images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.digits import load_digits_arrays
from .images import check_pixels

SETS = ("Fashion-MNIST test", "digits 28x28", "uniform noise", "constant", "flipped upside down", "inverted")


def digits_28x28() -> Tensor:
    """All 1,797 scikit-learn digits as (1797, 1, 28, 28) uint8 images, ink bright on a dark background."""
    x = torch.as_tensor(load_digits_arrays()[0], dtype=torch.float32).reshape(-1, 1, 8, 8) * (255.0 / 16.0)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))
    return x.round().clamp(0, 255).to(torch.uint8)


def ood_sets(test_images: Tensor, n: int = 500, seed: int = 0) -> dict[str, Tensor]:
    """n images (uint8, (n, 1, 28, 28)) of each set in ``SETS``; the Fashion-MNIST ones are the first n test images
    (or n drawn from ``test_images`` if fewer are wanted than given, always the same for a seed)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    check_pixels(test_images)
    if test_images.dim() == 3:
        test_images = test_images[:, None]
    if tuple(test_images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected Fashion-MNIST images (N, 1, 28, 28) or (N, 28, 28), got {tuple(test_images.shape)}.")
    if n > test_images.shape[0]:
        raise ValueError(f"asked for {n} images per set, but only {test_images.shape[0]} test images were given.")
    g = torch.Generator().manual_seed(seed)
    clothes = test_images[:n].to(torch.uint8)
    digits = digits_28x28()
    digits = digits[torch.randperm(digits.shape[0], generator=g)[: min(n, digits.shape[0])]]
    noise = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.int64).to(torch.uint8)
    constant = torch.randint(0, 256, (n, 1, 1, 1), generator=g, dtype=torch.int64).expand(n, 1, 28, 28)
    return {
        "Fashion-MNIST test": clothes,
        "digits 28x28": digits,
        "uniform noise": noise,
        "constant": constant.to(torch.uint8).contiguous(),
        "flipped upside down": clothes.flip(2).contiguous(),
        "inverted": (255 - clothes.to(torch.int64)).to(torch.uint8),
    }
