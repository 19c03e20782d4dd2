"""Latency of the lesson widgets' updates (what a learner feels when dragging a slider; no training involved)."""
from __future__ import annotations

import argparse

from .harness import benchmark, median_time, report, set_threads

TARGET_MS = 200.0


def _cases():
    """(name, widget, control, value of the i-th move) for every slider-driven widget of the lessons."""
    import torch

    import flowlib as fl
    from flowlib.builders import make_realnvp, maf
    from flowlib.data import fashion_mnist
    from flowlib.training.images import load_pretrained_model
    from flowlib_teaching import widgets
    from flowlib_teaching.widgets import change_of_variables, widgets_coupling, widgets_images

    torch.manual_seed(0)
    model = fl.FlowModel(maf(2, num_layers=8, hidden=(64, 64)), fl.StandardNormal(2))
    realnvp = fl.FlowModel(make_realnvp(2, 8, hidden=64), fl.StandardNormal(2))
    shipped, _ = load_pretrained_model("realnvp-fmnist")
    test = fashion_mnist.load("test")[0][:200]

    class Histogram(torch.nn.Module):  # lesson 05's independent-pixel model, for the noise-width widget
        def __init__(self, w):
            super().__init__()
            counts = torch.bincount(test.reshape(-1), minlength=256).double() + 1e-3
            self.log_freq, self.w = torch.log(counts / counts.sum()), w

        def log_prob(self, y):
            k = torch.floor(y).long().clamp(0, 255)
            return (self.log_freq[k] - torch.log(torch.tensor(self.w))).reshape(len(y), -1).sum(1)

    return [
        ("lesson01_affine", change_of_variables(map_name="affine"), "b", lambda i: -2.0 + 0.4 * (i % 10)),
        ("lesson01_sinh-arcsinh", change_of_variables(map_name="sinh-arcsinh"), "skew", lambda i: -1.0 + 0.2 * (i % 10)),
        ("lesson02_matrix_deformation", widgets.matrix_deformation(), "a", lambda i: -1.5 + 0.1 * (i % 30)),
        ("lesson02_local_linearization", widgets.local_linearization(), "px", lambda i: -2.0 + 0.1 * (i % 40)),
        ("lesson03_layer_stepper", widgets.layer_stepper(model), "k", lambda i: i % 9),
        ("lesson04_coupling_layer", widgets_coupling.coupling_layer(), "s0", lambda i: -1.0 + 0.1 * (i % 20)),
        ("lesson04_realnvp_stepper", widgets_coupling.realnvp_stepper(realnvp), "k", lambda i: i % 10),
        ("lesson05_temperature", widgets_images.temperature_samples(shipped), "T", lambda i: 0.3 + 0.05 * (i % 15)),
        ("lesson05_noise_width", widgets_images.dequantization_width(test, Histogram), "w",
         lambda i: 0.1 + 0.05 * (i % 18)),
        ("lesson05_squeeze", widgets_images.squeeze_explorer(), "h", lambda i: i % 4),
    ]


@benchmark("widget_latency", "median update time of every lesson widget (target < 200 ms each)")
def widget_latency(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks widget_latency")
    p.add_argument("--repeats", type=int, default=20)
    opts = p.parse_args(args)
    set_threads()
    import matplotlib

    matplotlib.use("Agg")
    for name, w, control, value in _cases():
        counter = iter(range(10**6))

        def move() -> None:  # the observer recomputes and redraws, as in JupyterLab
            w.controls[control].value = value(next(counter))

        med, times = median_time(move, opts.repeats, warmup=2)
        report("widget_latency", f"{name}_update_ms", round(1000 * med, 1), "ms", TARGET_MS, 1000 * med < TARGET_MS,
               repeats=opts.repeats, max_ms=round(1000 * max(times), 1))
