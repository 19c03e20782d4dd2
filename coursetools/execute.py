"""Execute lessons top to bottom with nbclient, keeping the widgets' last state, and cache the executed copies.

Slides and site are built from the same executed copies in ``build/executed/``. A copy is reused while its lesson,
flowlib's source and the mode (normal or fast) are unchanged, so ``./course slides`` after ``./course site`` does
not execute anything again.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import time

import nbformat

from . import ROOT

DEFAULT_TIMEOUT = 3600  # seconds per cell: a lesson in normal mode may train for a while


def execute(nb: nbformat.NotebookNode, cwd: pathlib.Path, fast: bool, timeout: int = DEFAULT_TIMEOUT,
            allow_errors: bool = False) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh python3 kernel started in ``cwd``; ``fast`` sets FLOWS_FAST=1.

    The widgets' state at the end is stored in ``nb.metadata.widgets`` (what static_widgets.py draws). A cell that
    raises stops the run with nbclient's CellExecutionError unless ``allow_errors``.
    """
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the lessons choose %matplotlib inline
    env["FLOWS_FAST"] = "1" if fast else "0"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            store_widget_state=True, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env, cwd=str(cwd))
    return nb


def _source_digest() -> str:
    """A hash of flowlib's Python source (not of these teaching tools): executed outputs depend on it."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "flowlib").rglob("*.py")):
        if "course" in path.relative_to(ROOT / "flowlib").parts[:1]:
            continue
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def executed_lessons(lessons: list[pathlib.Path], cache: pathlib.Path, fast: bool, force: bool = False,
                     log=print) -> list[pathlib.Path]:
    """Executed copies of ``lessons`` in ``cache`` (reusing up-to-date ones); returns their paths in order."""
    cache.mkdir(parents=True, exist_ok=True)
    digest = _source_digest()
    out = []
    for path in lessons:
        raw = path.read_bytes()
        key = hashlib.sha256(raw + digest.encode() + (b"fast" if fast else b"normal")).hexdigest()
        target = cache / path.name
        if not force and target.exists():
            old = nbformat.read(target, as_version=4)
            if old.metadata.get("flows_executed", {}).get("key") == key:
                log(f"  {path.name}: up to date (executed {old.metadata['flows_executed']['seconds']:.0f} s)")
                out.append(target)
                continue
        log(f"  {path.name}: executing ({'fast' if fast else 'normal'} mode) ...")
        nb = nbformat.reads(raw.decode(), as_version=4)
        t0 = time.perf_counter()
        execute(nb, path.parent, fast)
        seconds = time.perf_counter() - t0
        nb.metadata["flows_executed"] = {"key": key, "fast": fast, "seconds": round(seconds, 1)}
        tmp = target.with_suffix(".tmp")
        nbformat.write(nb, tmp)
        os.replace(tmp, target)
        log(f"  {path.name}: executed in {seconds:.0f} s")
        out.append(target)
    return out
