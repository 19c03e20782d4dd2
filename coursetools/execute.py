"""Execute lessons top to bottom with nbclient, keeping the widgets' last state, and cache the executed copies.

Slides and site are built from the same executed copies, kept per mode: ``build/executed/normal/`` and
``build/executed/fast/``, so a fast run never replaces the normal copies. A copy is reused while its lesson's code and
flowlib's source are unchanged (edits of the text or the slide metadata are carried over without executing), so ``./course slides`` after ``./course site`` does not execute anything again.
Each copy records its mode in ``metadata.flows_executed.fast``; the builders put a banner on every page of a build
that contains a fast-mode copy (``is_fast``).
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import time

import nbformat

from . import ROOT

FAST_BANNER = ("Fast-mode build: these outputs come from shortened runs (FLOWS_FAST=1) and may contradict the "
               "text. Build without --fast for teaching or publishing.")
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


def mode_dir(cache: pathlib.Path, fast: bool) -> pathlib.Path:
    """The cache slot of one mode: ``<cache>/fast`` or ``<cache>/normal``."""
    return pathlib.Path(cache) / ("fast" if fast else "normal")


def is_fast(nb: nbformat.NotebookNode) -> bool:
    """True if ``nb`` is an executed copy made in fast mode (its outputs come from shortened runs)."""
    return bool(nb.metadata.get("flows_executed", {}).get("fast"))


def code_key(nb: nbformat.NotebookNode, digest: str, fast: bool) -> str:
    """What a lesson's outputs depend on: its code cells' sources, flowlib's source and the mode. Text and slide
    metadata are not in it: editing them reuses the outputs (``_with_outputs``) instead of executing again."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode() + b"\x00")
    h.update(digest.encode() + (b"fast" if fast else b"normal"))
    return h.hexdigest()


def _with_outputs(nb: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` (the current text and metadata) with the outputs of ``executed`` (the same code cells, in order)."""
    ran = [c for c in executed.cells if c.cell_type == "code"]
    for cell, old in zip([c for c in nb.cells if c.cell_type == "code"], ran, strict=True):
        cell.outputs, cell.execution_count = old.outputs, old.execution_count
        if "execution" in old.metadata:
            cell.metadata["execution"] = old.metadata["execution"]
    for key in ("widgets", "flows_executed"):
        if key in executed.metadata:
            nb.metadata[key] = executed.metadata[key]
    return nb


def _write(nb: nbformat.NotebookNode, target: pathlib.Path) -> None:
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)


def executed_lessons(lessons: list[pathlib.Path], cache: pathlib.Path, fast: bool, force: bool = False,
                     log=print) -> list[pathlib.Path]:
    """Executed copies of ``lessons`` in ``cache``'s slot for the mode (reusing up-to-date ones); returns their paths
    in order. A copy whose code is unchanged is reused with the lesson's current text and metadata."""
    cache = mode_dir(cache, fast)
    cache.mkdir(parents=True, exist_ok=True)
    digest = _source_digest()
    out = []
    for path in lessons:
        nb = nbformat.read(path, as_version=4)
        key = code_key(nb, digest, fast)
        target = cache / path.name
        if not force and target.exists():
            old = nbformat.read(target, as_version=4)
            if old.metadata.get("flows_executed", {}).get("key") == key:
                log(f"  {path.name}: up to date (executed {old.metadata['flows_executed']['seconds']:.0f} s)")
                if nbformat.writes(_with_outputs(nbformat.read(path, as_version=4), old)) != nbformat.writes(old):
                    _write(_with_outputs(nb, old), target)  # new text or slide metadata, same outputs
                out.append(target)
                continue
        log(f"  {path.name}: executing ({'fast' if fast else 'normal'} mode) ...")
        t0 = time.perf_counter()
        execute(nb, path.parent, fast)
        seconds = time.perf_counter() - t0
        out.append(store_executed(path, nb, cache.parent, fast, seconds))
        log(f"  {path.name}: executed in {seconds:.0f} s")
    return out


def store_executed(lesson: pathlib.Path, executed: nbformat.NotebookNode, cache: pathlib.Path, fast: bool,
                   seconds: float) -> pathlib.Path:
    """Keep ``executed`` (``lesson`` run top to bottom: its cells in order, with outputs) as the cached copy of
    ``lesson`` in ``cache``'s slot for the mode, where ``executed_lessons`` finds it; returns its path.

    The lesson tests (tests/test_lessons.py) run each lesson once and store it here, so that the slide checks and
    ``./course slides --fast`` reuse that run instead of executing the lesson again."""
    nb = nbformat.read(lesson, as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in nb.cells if c.cell_type == "code"]:
        raise ValueError(f"{lesson.name}: the executed notebook does not hold the lesson's code cells in order")
    nb = _with_outputs(nb, executed)
    nb.metadata["flows_executed"] = {"key": code_key(nb, _source_digest(), fast), "fast": fast,
                                     "seconds": round(seconds, 1)}
    slot = mode_dir(cache, fast)
    slot.mkdir(parents=True, exist_ok=True)
    target = slot / lesson.name
    _write(nb, target)
    return target


def cell_seconds(cell) -> float | None:
    """Wall time of an executed code cell (nbclient's timestamps), or None if it carries none."""
    from datetime import datetime

    t = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in t or "shell.execute_reply" not in t:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(t["shell.execute_reply"]) - parse(t["iopub.execute_input"])).total_seconds()


def section_times(nb: nbformat.NotebookNode, slow: float = 2.0) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """[(section heading, seconds, [(first line of a cell slower than ``slow`` s, seconds)])] of an executed lesson;
    a section starts at each markdown heading of level 1 or 2."""
    sections = [["(start)", 0.0, []]]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith(("# ", "## ")):
                    sections.append([line.lstrip("# ").strip(), 0.0, []])
                    break
        elif cell.cell_type == "code":
            seconds = cell_seconds(cell) or 0.0
            sections[-1][1] += seconds
            if seconds >= slow:
                first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
                sections[-1][2].append((first[:70], seconds))
    return [tuple(s) for s in sections if s[1] > 0 or s[0] != "(start)"]
