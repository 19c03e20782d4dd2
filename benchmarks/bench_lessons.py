"""How long each lesson computes in normal mode (what a learner waits for with Run All), cell by cell.

    python -m benchmarks lesson_times 04 05      # lessons 04 and 05; no argument: every lesson

Each notebook is executed top to bottom in a fresh kernel, normal mode (FLOWS_FAST unset), one PyTorch thread
(OMP_NUM_THREADS=1 and the notebooks' own torch.set_num_threads(1)). Reports the lesson's total compute time and
its slowest cells (by their first line); the lesson headers and docs/lecturer-guide.md quote these figures. Cells
slower than 10 s must show progress (the lessons' rule); the run names any that do not print or draw while running.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .harness import benchmark, report

ROOT = Path(__file__).resolve().parents[1]
TARGET_CELL_S = 10.0  # a cell slower than this shows progress


@benchmark("lesson_times", "normal-mode compute time of each lesson, cell by cell (one thread)")
def lesson_times(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks lesson_times")
    p.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 04 05 (default: all)")
    p.add_argument("--top", type=int, default=5, help="how many of the slowest cells to report")
    opts = p.parse_args(args)
    import nbformat
    from nbclient import NotebookClient

    env_before = {k: os.environ.get(k) for k in ("FLOWS_FAST", "OMP_NUM_THREADS", "MPLBACKEND")}
    os.environ.pop("FLOWS_FAST", None)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    try:
        paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if opts.lessons:
            paths = [q for q in paths if q.name[:2] in set(opts.lessons)]
            if not paths:
                raise SystemExit(f"no lesson matches {opts.lessons}; the lessons are "
                                 f"{[q.name[:2] for q in sorted((ROOT / 'notebooks').glob('[0-9][0-9]_*.ipynb'))]}")
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(
                path.parent)}})
            times: list[tuple[float, str, bool]] = []
            start = time.perf_counter()
            with client.setup_kernel():
                for i, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    t0 = time.perf_counter()
                    client.execute_cell(cell, i)
                    shows = any(o.get("output_type") in ("stream", "display_data", "update_display_data")
                                for o in cell.outputs)
                    first = (cell.source.strip().splitlines() or [""])[0][:60]
                    times.append((time.perf_counter() - t0, f"cell {i}: {first}", shows))
                    # as it goes, on stderr: a run stopped half-way (a busy machine, a timeout) still says something
                    print(f"{path.stem} {times[-1][1]!r}: {times[-1][0]:.1f} s", file=sys.stderr, flush=True)
            total = time.perf_counter() - start
            slow = sorted(times, reverse=True)[: opts.top]
            silent = [name for s, name, shows in times if s > TARGET_CELL_S and not shows]
            report("lesson_times", f"{path.stem}_seconds", round(total, 1), "s", None, None,
                   slowest=[{"seconds": round(s, 1), "cell": name} for s, name, _ in slow])
            report("lesson_times", f"{path.stem}_silent_slow_cells", len(silent), "cells", 0, not silent,
                   cells=silent)
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
