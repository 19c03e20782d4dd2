"""The benchmark harness: registration, thread pinning, timing and the JSON line every figure ends with."""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
from typing import Callable

REGISTRY: dict[str, tuple[Callable[..., None], str]] = {}


def benchmark(name: str, help: str):
    """Register ``fn(args: list[str])`` under ``name``; ``help`` is its one-line description for ``--list``."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        REGISTRY[name] = (fn, help)
        return fn

    return wrap


def command() -> str:
    """The command line that produced this run, as a user would type it."""
    return "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def set_threads(n: int | None = None) -> int:
    """Pin PyTorch's intra-op threads (default: FLOWS_BENCH_THREADS or 1) so that a busy second core does not turn
    OpenMP's two threads into a 10x slowdown."""
    import torch

    n = n or int(os.environ.get("FLOWS_BENCH_THREADS", "1"))
    torch.set_num_threads(n)
    return n


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
            f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls (after ``warmup`` calls), and all times."""
    from flowlib_teaching.experiments import timings

    times = timings(fn, repeats, warmup)
    return statistics.median(times), times


def report(benchmark: str, metric: str, value: float, unit: str, target: float | None, met: bool | None,
           **extra) -> dict:
    """Print (and return) one figure as a JSON line: benchmark, metric, value, unit, target, met, command."""
    line = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, "target": target,
            "met": met, "command": command(), "machine": machine(), **extra}
    print(json.dumps(line), flush=True)
    return line
