"""Latency of the lesson widgets' updates (what a learner feels when dragging a slider)."""
from __future__ import annotations

import argparse

from .harness import benchmark, median_time, report, set_threads

TARGET_MS = 200.0


@benchmark("widget_latency", "median time of a lesson-01 widget update (target < 200 ms)")
def widget_latency(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks widget_latency")
    p.add_argument("--repeats", type=int, default=30)
    opts = p.parse_args(args)
    set_threads()
    import matplotlib

    matplotlib.use("Agg")
    from flowlib.widgets import change_of_variables

    for map_name in ("affine", "sinh-arcsinh"):
        w = change_of_variables(map_name=map_name)
        slider = w.controls["b"] if map_name == "affine" else w.controls["skew"]
        values = [slider.min + (slider.max - slider.min) * (i % 10) / 10 for i in range(opts.repeats + 2)]
        it = iter(values)

        def move() -> None:
            slider.value = next(it)  # the observer recomputes and redraws, as in JupyterLab

        med, times = median_time(move, opts.repeats, warmup=2)
        report("widget_latency", f"lesson01_{map_name}_update_ms", round(1000 * med, 1), "ms", TARGET_MS,
               1000 * med < TARGET_MS, repeats=opts.repeats, max_ms=round(1000 * max(times), 1))
