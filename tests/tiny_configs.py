"""Tiny versions of the shipped image-training recipes, for the tests only: the same code paths as
``python -m flowlib.training NAME`` (data splits, warm-up, checkpoints, resume, release) in seconds, on a few hundred
images and a couple of layers. They live here, not in ``flowlib.training.images.CONFIGS``: the library ships the
recipes it trains. ``register()`` adds them to ``CONFIGS`` for the tests that run one by name (the command line
included: a test's subprocess calls it before ``main``)."""
from __future__ import annotations

from flowlib.training.images import CONFIGS, TrainConfig

TINY: dict[str, TrainConfig] = {
    # lesson 05's recipe, tiny
    "realnvp-fmnist-tiny": TrainConfig("multiscale_realnvp", dict(levels=2, couplings=2, hidden=16),
                                       batch_size=32, lr=1e-3, warmup=10, epochs=1, val_size=200, seed=0,
                                       train_subset=512, test_subset=256),
    # the shipped Glow's recipe, tiny (512 training images, batches of 32: 16 steps)
    "glow-fmnist-tiny": TrainConfig("glow", dict(levels=2, steps=2, hidden=16, coupling="affine", mixing="lu"),
                                    batch_size=32, lr=1e-3, warmup=10, epochs=1, val_size=200, seed=0,
                                    train_subset=512, test_subset=256),
}


def register() -> None:
    """Make the tiny configurations runnable by name (idempotent)."""
    CONFIGS.update(TINY)
