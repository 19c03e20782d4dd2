"""The one place that resolves the folders flowlib reads and writes: the checkout's ``data/`` (Fashion-MNIST files,
shipped checkpoints and their manifest), Debian's Fashion-MNIST package, and the variable that names a folder of
your own."""
from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]  # flowlib/data/paths.py -> the checkout
DATA_DIR = REPO_ROOT / "data"
CHECKPOINT_DIR = DATA_DIR / "checkpoints"  # shipped checkpoints and manifest.json
MANIFEST = CHECKPOINT_DIR / "manifest.json"
FASHION_MNIST_DIR = DATA_DIR / "fashion-mnist"
DEBIAN_FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
DATA_ENV = "FLOWS_DATA"  # a folder of your own that holds the Fashion-MNIST files
