"""Checkpoints: atomic, checksummed saves that a run resumes from, and the shipped, manifest-checked pretrained models.

Everything is saved as plain tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)`` (no pickled classes: a checkpoint survives refactors of the code).

Integrity. ``torch.load`` does not verify the zip's CRCs, so a few flipped bytes inside a tensor would load silently.
Every checkpoint written by ``save`` therefore carries ``checksum``: a SHA-256 over every tensor (dtype, shape, bytes)
and every other value of the payload, in a fixed order. ``load`` recomputes it and raises ``CheckpointError`` on a
mismatch. ``save`` writes a temporary file, reads it back and verifies it, and only then renames it into place; with
``keep_previous=True`` the checkpoint it replaces is kept as ``previous.pt`` beside it, so one good checkpoint
always survives. Checkpoints of the first format (``flowlib-checkpoint-1``, written before checksums existed, e.g.
the shipped RealNVP, which the manifest's SHA-256 protects) still load; ``load`` marks them ``legacy``.

The manifest, ``data/checkpoints/manifest.json``, records for each shipped checkpoint the command that trained it,
its configuration, its held-out bits/dim, its training time and hardware, and its SHA-256; ``load_pretrained`` checks
the file against all of it.
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
FORMAT = "flowlib-checkpoint-2"
LEGACY_FORMATS = ("flowlib-checkpoint-1",)  # no checksum; still loaded
MANIFEST_KEYS = ("file", "sha256", "command", "config")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match its manifest; the message says what to do."""


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _update(h, value) -> None:
    """Feed ``value`` to the hash in a canonical order: dict keys sorted by their repr, tensors as dtype, shape and
    raw bytes (any dtype, bfloat16 included, viewed as bytes)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _update(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _update(h, v)
    else:  # numbers, strings, None, booleans
        h.update(f"V{type(value).__name__}:{value!r}".encode())


def payload_checksum(payload: dict) -> str:
    """The SHA-256 of every value of ``payload`` except its ``checksum`` and ``format`` entries."""
    h = hashlib.sha256()
    _update(h, {k: v for k, v in payload.items() if k not in ("checksum", "format")})
    return h.hexdigest()


def save(path: str | os.PathLike, payload: dict, keep_previous: bool = False) -> None:
    """Write ``payload`` (plain values and tensors) to ``path`` atomically, with a checksum, and verify it.

    A temporary file in the same folder is written, read back and checked, then renamed to ``path``: an interruption
    (Ctrl-C, a killed session, a full disk) leaves the previous checkpoint intact. With ``keep_previous`` the file it
    replaces is kept as ``previous<suffix>`` (e.g. runs/NAME/previous.pt) until the next save.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in payload.items() if k not in ("format", "checksum")}
    full = {"format": FORMAT, **payload, "checksum": payload_checksum(payload)}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(full, f)
            f.flush()
            os.fsync(f.fileno())
        load(tmp)  # read back and verify before it replaces anything
        if keep_previous and path.is_file():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def previous_path(path: str | os.PathLike) -> pathlib.Path:
    """Where ``save(..., keep_previous=True)`` keeps the checkpoint it replaced: runs/NAME/previous.pt."""
    path = pathlib.Path(path)
    return path.with_name("previous" + path.suffix)


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save`` with ``weights_only=True`` and verify its checksum.

    Raises CheckpointError, saying what to do, when the file is missing, unreadable (truncated, not a checkpoint) or
    its contents do not match their checksum. A first-format checkpoint (no checksum) loads with ``legacy=True``.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}.")
    advice = _advice(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CheckpointError(f"{path} could not be read as a checkpoint ({type(e).__name__}: {e}). It may be "
                              f"truncated. {advice}") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt in LEGACY_FORMATS:
        return {**payload, "format": FORMAT, "legacy": True}
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not a flowlib checkpoint (format {fmt!r}; expected {FORMAT!r}). {advice}")
    if "checksum" not in payload:
        raise CheckpointError(f"{path} has no checksum, so its contents cannot be verified. {advice}")
    got = payload_checksum(payload)
    if got != payload["checksum"]:
        raise CheckpointError(f"{path} is corrupt: its contents have checksum {got[:16]}..., but it was saved with "
                              f"{payload['checksum'][:16]}... (bytes changed on disk or in transfer). {advice}")
    return payload


def _advice(path: pathlib.Path) -> str:
    previous = previous_path(path)
    if path.name != previous.name and previous.is_file():
        return (f"The previous checkpoint {previous} is kept for this case: resume from it with "
                f"`mv {previous} {path}` and run the same command again, or delete both to start again.")
    return f"Delete {path} and start again (or restore it from where you got it)."


def read_manifest(manifest: str | os.PathLike = MANIFEST) -> dict:
    """The manifest as a dict {name: entry}; {} when there is none. A malformed manifest raises CheckpointError."""
    manifest = pathlib.Path(manifest)
    if not manifest.is_file():
        return {}
    try:
        data = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"the manifest {manifest} is not valid JSON ({e}); it is truncated or was edited by "
                              f"hand. Restore it from git: git checkout -- {manifest}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CheckpointError(f"the manifest {manifest} must map checkpoint names to entries (JSON objects); restore "
                              f"it from git: git checkout -- {manifest}")
    return data


def write_manifest_entry(name: str, entry: dict, manifest: str | os.PathLike = MANIFEST) -> None:
    manifest = pathlib.Path(manifest)
    data = read_manifest(manifest)
    data[name] = entry
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, manifest)


def _plain(value):
    """A configuration as JSON would give it back (tuples -> lists), so a file's and a manifest's can be compared."""
    return json.loads(json.dumps(value))


def load_pretrained(name: str, manifest: str | os.PathLike = MANIFEST, map_location="cpu") -> tuple[dict, dict]:
    """The checkpoint ``name`` from the manifest, verified: returns (payload, manifest entry).

    Raises CheckpointError when the manifest is malformed or has no such entry, the file is missing, its SHA-256
    differs from the manifest's, or its configuration differs from the manifest's, each time with what to do.
    """
    manifest = pathlib.Path(manifest)
    entries = read_manifest(manifest)
    if name not in entries:
        raise CheckpointError(f"the manifest {manifest} has no checkpoint named {name!r}; it lists "
                              f"{sorted(entries) or 'none'}.")
    entry = entries[name]
    missing = [k for k in MANIFEST_KEYS if k not in entry]
    if missing:
        raise CheckpointError(f"the manifest entry {name!r} in {manifest} lacks {missing}, so the file cannot be "
                              f"verified. Restore the manifest from git (git checkout -- {manifest}) or re-release "
                              f"the checkpoint with its training command.")
    path = manifest.parent / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"the checkpoint file {path} is missing. Restore it from git (git checkout -- {path}) "
                              f"or train it again with: {entry['command']}")
    got = sha256(path)
    if got != entry["sha256"]:
        raise CheckpointError(f"{path} has SHA-256 {got[:16]}..., but the manifest expects "
                              f"{entry['sha256'][:16]}...: the file is corrupt or from another run. Restore it from "
                              f"git, or retrain with: {entry['command']}")
    payload = load(path, map_location)
    if _plain(payload.get("config")) != _plain(entry["config"]):
        raise CheckpointError(f"{path} was trained with the configuration {payload.get('config')}, but the manifest "
                              f"entry {name!r} describes {entry['config']}: the file and the manifest do not belong "
                              f"together. Restore both from git, or retrain with: {entry['command']}")
    return payload, entry
