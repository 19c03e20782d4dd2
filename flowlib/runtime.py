"""Seeding, the device picker and the course's fast mode."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

FAST_ENV = "FLOWS_FAST"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); returns a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU. ``prefer`` (or the FLOWS_DEVICE variable) overrides it."""
    prefer = prefer or os.environ.get("FLOWS_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but this PyTorch sees no CUDA GPU.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fast_mode() -> bool:
    """True when the FLOWS_FAST environment variable is set to 1/true/yes (the test suite sets it)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def pick(normal, fast):
    """``normal`` in a normal run, ``fast`` in fast mode: ``steps = pick(2000, 50)``."""
    return fast if fast_mode() else normal
