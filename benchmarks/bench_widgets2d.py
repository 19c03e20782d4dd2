"""Latency of the lesson 02/03 widget updates (no training involved; target < 200 ms each)."""
from __future__ import annotations

import argparse

from .harness import benchmark, median_time, report, set_threads

TARGET_MS = 200.0


@benchmark("widget2d_latency", "median update time of the lesson 02/03 widgets (target < 200 ms)")
def widget2d_latency(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks widget2d_latency")
    p.add_argument("--repeats", type=int, default=20)
    opts = p.parse_args(args)
    set_threads()
    import matplotlib

    matplotlib.use("Agg")
    import torch

    import flowlib as fl
    from flowlib import widgets2d
    from flowlib.autoregressive import maf

    torch.manual_seed(0)
    model = fl.FlowModel(maf(2, num_layers=8, hidden=(64, 64)), fl.StandardNormal(2))
    cases = [("matrix_deformation", widgets2d.matrix_deformation(), "a", lambda i: -1.5 + 0.1 * (i % 30)),
             ("local_linearization", widgets2d.local_linearization(), "px", lambda i: -2.0 + 0.1 * (i % 40)),
             ("layer_stepper", widgets2d.layer_stepper(model), "k", lambda i: i % 9)]
    for name, w, control, value in cases:
        counter = iter(range(10**6))

        def move() -> None:
            w.controls[control].value = value(next(counter))

        med, times = median_time(move, opts.repeats, warmup=2)
        report("widget2d_latency", f"{name}_update_ms", round(1000 * med, 1), "ms", TARGET_MS, 1000 * med < TARGET_MS,
               repeats=opts.repeats, max_ms=round(1000 * max(times), 1))
