"""What a session sets up once: seeding, threads, the device picker and the course's fast mode (``setup``)."""
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


def setup(seed: int = 0, threads: int | None = 1, device: str | None = None, quiet: bool = False) -> torch.device:
    """The one set-up line of every lesson: ``device = flowlib.setup(seed=0)``.

    Seeds Python, NumPy and PyTorch; limits PyTorch to ``threads`` CPU threads (1 by default: results are then
    reproducible and a shared machine stays responsive; ``None`` leaves PyTorch's choice); picks the device
    (``pick_device``); and prints one line saying what was chosen and whether fast mode (``FLOWS_FAST=1``: fewer
    steps, smaller data) is on. Returns the device.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    seed_everything(seed)
    dev = pick_device(device)
    if not quiet:
        mode = "fast mode (FLOWS_FAST=1: fewer steps, smaller data)" if fast_mode() else "full mode"
        print(f"flowlib {_version()}: seed {seed}, {torch.get_num_threads()} thread(s), device {dev}, {mode}")
    return dev


def _version() -> str:
    from flowlib import __version__

    return __version__
