"""Checkpoints: atomic saves that a run resumes from, and the shipped, manifest-checked pretrained models.

Everything is saved as plain tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)`` (no pickled classes: a checkpoint survives refactors of the code).
The manifest, ``data/checkpoints/manifest.json``, records for each shipped checkpoint the command that trained it,
its configuration, its held-out bits/dim, its training time and hardware, and its SHA-256.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile

import torch

from flowlib.data import paths

CHECKPOINT_DIR = paths.CHECKPOINT_DIR
MANIFEST = paths.MANIFEST
FORMAT = "flowlib-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match its manifest; the message says what to do."""


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then a rename, so an
    interruption (Ctrl-C, a killed session) leaves the previous checkpoint intact."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save`` with ``weights_only=True``."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CheckpointError(f"{path} could not be read as a checkpoint ({type(e).__name__}: {e}). It may be "
                              f"truncated; delete it and train again.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a flowlib checkpoint (format {payload.get('format')!r}).")
    return payload


def read_manifest(manifest: str | os.PathLike = MANIFEST) -> dict:
    manifest = pathlib.Path(manifest)
    return json.loads(manifest.read_text()) if manifest.is_file() else {}


def write_manifest_entry(name: str, entry: dict, manifest: str | os.PathLike = MANIFEST) -> None:
    manifest = pathlib.Path(manifest)
    data = read_manifest(manifest)
    data[name] = entry
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, manifest)


def load_pretrained(name: str, manifest: str | os.PathLike = MANIFEST, map_location="cpu") -> tuple[dict, dict]:
    """The checkpoint ``name`` from the manifest, verified: returns (payload, manifest entry).

    Raises CheckpointError when the manifest has no such entry, the file is missing, or its SHA-256 differs from the
    manifest's, each time with the command that recreates it.
    """
    manifest = pathlib.Path(manifest)
    entries = read_manifest(manifest)
    if name not in entries:
        raise CheckpointError(f"the manifest {manifest} has no checkpoint named {name!r}; it lists "
                              f"{sorted(entries) or 'none'}.")
    entry = entries[name]
    path = manifest.parent / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"the checkpoint file {path} is missing. Restore it from git (git checkout -- {path}) "
                              f"or train it again with: {entry['command']}")
    got = sha256(path)
    if got != entry["sha256"]:
        raise CheckpointError(f"{path} has SHA-256 {got[:16]}..., but the manifest expects "
                              f"{entry['sha256'][:16]}...: the file is corrupt or from another run. Restore it from "
                              f"git, or retrain with: {entry['command']}")
    return load(path, map_location), entry
