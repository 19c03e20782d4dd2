"""Latency of the lesson widgets' updates (what a learner feels when dragging a slider; no training involved)."""
from __future__ import annotations

import argparse

from .harness import benchmark, median_time, report, set_threads

TARGET_MS = 200.0  # lessons 01-03
TARGET_MS_07 = 300.0  # lesson 07: a redraw of decoded images (the decoding happens on the button, timed apart)
TARGET_BUTTON_MS = 1500.0  # lesson 07: encode two images and decode a strip with the shipped model, on the button


def _cases(lesson07_model: str | None):
    """(name, widget, control, value of the i-th move, target) for every slider-driven widget of the lessons."""
    import torch

    import flowlib as fl
    from flowlib.baselines import PixelHistogram
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

    warm, cold = widgets_images.temperature_samples(shipped), widgets_images.temperature_samples(shipped)
    warm.warm()
    # lesson 05's independent-pixel model (one histogram for every pixel), for the noise-width widget
    histogram = PixelHistogram(PixelHistogram.counts(test, 256, per_position=False), alpha=1e-3)

    cases = [
        ("lesson01_affine", change_of_variables(map_name="affine"), "b", lambda i: -2.0 + 0.4 * (i % 10), TARGET_MS),
        ("lesson01_sinh-arcsinh", change_of_variables(map_name="sinh-arcsinh"), "skew", lambda i: -1.0 + 0.2 * (i % 10), TARGET_MS),
        ("lesson02_matrix_deformation", widgets.matrix_deformation(), "a", lambda i: -1.5 + 0.1 * (i % 30), TARGET_MS),
        ("lesson02_local_linearization", widgets.local_linearization(), "px", lambda i: -2.0 + 0.1 * (i % 40), TARGET_MS),
        ("lesson03_layer_stepper", widgets.layer_stepper(model), "k", lambda i: i % 9, TARGET_MS),
        ("lesson04_coupling_layer", widgets_coupling.coupling_layer(), "s0", lambda i: -1.0 + 0.1 * (i % 20), TARGET_MS),
        ("lesson04_realnvp_stepper", widgets_coupling.realnvp_stepper(realnvp), "k", lambda i: i % 10, TARGET_MS),
        # in JupyterLab the widget decodes every slider value while the kernel is idle (prefetch), so a move only
        # redraws; warm() does the same at once. Cold: every move decodes (what the first seconds can meet)
        ("lesson05_temperature", warm, "T", lambda i: 0.3 + 0.05 * (i % 15), TARGET_MS),
        ("lesson05_temperature_cold", cold, "T", lambda i: (cold._cache.clear(), 0.3 + 0.05 * (i % 15))[1], None),
        ("lesson05_noise_width", widgets_images.dequantization_width(test, histogram.with_width), "w",
         lambda i: 0.1 + 0.05 * (i % 18), TARGET_MS),
        ("lesson05_squeeze", widgets_images.squeeze_explorer(), "h", lambda i: i % 4, TARGET_MS),
    ]
    if lesson07_model:
        cases += _lesson07_cases(lesson07_model)
    return cases


def lesson07_widgets(model_name: str):
    """Lesson 07's four widgets on the shipped model ``model_name``, as the lesson builds them (normal mode)."""
    from flowlib import latents
    from flowlib.data import fashion_mnist
    from flowlib.training.images import load_pretrained_model
    from flowlib_teaching.widgets import latents as WL

    model, entry = load_pretrained_model(model_name)
    test, test_labels = fashion_mnist.load("test")
    bank = test[:200]  # enough for the class means; the latency does not depend on it
    z_bank = latents.encode(model, bank)
    return {
        "temperature": WL.temperature_grid(model, reference_bpd=entry["test_bpd"]),
        "interpolation": WL.interpolation(model, test, test_labels),
        "attribute": WL.attribute_vector(model, test, test_labels, z_bank, test_labels[:200]),
        "level_swap": WL.level_swap(model, test, test_labels),
    }


def _lesson07_cases(model_name: str):
    w = lesson07_widgets(model_name)
    temps, ts, strengths = (w["temperature"].controls["T"].options, w["interpolation"].controls["t"].options,
                            w["attribute"].controls["strength"].options)
    return [
        ("lesson07_temperature", w["temperature"], "T", lambda i: temps[i % len(temps)], TARGET_MS_07),
        ("lesson07_interpolation", w["interpolation"], "t", lambda i: ts[i % len(ts)], TARGET_MS_07),
        ("lesson07_attribute", w["attribute"], "strength", lambda i: strengths[i % len(strengths)], TARGET_MS_07),
        # the button-driven choices: a new pair of images (index i % 20) is encoded and decoded
        ("lesson07_interpolation_button", w["interpolation"], "index_a", lambda i: i % 20, TARGET_BUTTON_MS),
        ("lesson07_attribute_button", w["attribute"], "index", lambda i: i % 20, TARGET_BUTTON_MS),
        ("lesson07_level_swap_button", w["level_swap"], "index_b", lambda i: i % 20, TARGET_BUTTON_MS),
    ]


@benchmark("widget_latency", "median update time of every lesson widget (target < 200 ms each; lesson 07 < 300 ms, "
                             "its button recomputes < 1.5 s)")
def widget_latency(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks widget_latency")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--lesson07-model", default="glow-fmnist",
                   help="the shipped model lesson 07's widgets use (manifest name; 'none' skips lesson 07)")
    p.add_argument("--compare-rendering", action="store_true",
                   help="instead, time every slider widget with three renderers alternating move by move (the "
                        "widgets' own; two layers without the text cache; plain savefig) and print the ratios")
    opts = p.parse_args(args)
    set_threads()
    import matplotlib

    matplotlib.use("Agg")
    model = None if opts.lesson07_model == "none" else opts.lesson07_model
    for name, w, control, value, target in _cases(model):
        counter = iter(range(10**6))
        button = name.endswith("_button")

        def move() -> None:  # the observer recomputes and redraws, as in JupyterLab
            w.controls[control].value = value(next(counter))
            if button:
                w.button.click()

        view = w.view if hasattr(w, "view") else w._view
        if opts.compare_rendering and not button:
            _compare_rendering(name, view, move, opts.repeats)
            continue
        med, times = median_time(move, opts.repeats, warmup=2)
        extra = {"model": model} if name.startswith("lesson07") else {}
        report("widget_latency", f"{name}_update_ms", round(1000 * med, 1), "ms", target,
               None if target is None else 1000 * med < target,
               repeats=opts.repeats, max_ms=round(1000 * max(times), 1), **extra)


def _compare_rendering(name: str, view, move, repeats: int) -> None:
    """Median update time with three renderers, alternating move by move on the same sequence of values (so a
    change of load hits all three): the widgets' own (two layers, text from the glyph cache), two layers with
    matplotlib drawing every string afresh, and a plain savefig with matplotlib's text (the renderer before both
    changes); and the ratios to the last."""
    import statistics
    import time

    from flowlib_teaching.widgets import textcache

    canvas = view.figure.canvas
    modes = {"cached": (True, True), "two_layers": (True, False), "savefig": (False, False)}
    times = {m: [] for m in modes}
    for i in range(len(modes) * (repeats + 2)):
        mode = list(modes)[i % len(modes)]
        view.layered, cached = modes[mode]
        canvas.text_cache, canvas.glyph_cache = ((textcache.TEXT_CACHE, textcache.GLYPH_CACHE) if cached
                                                 else (None, None))
        t0 = time.perf_counter()
        move()
        if i >= 2 * len(modes):  # two warm-up moves each
            times[mode].append(time.perf_counter() - t0)
    view.layered = True
    canvas.text_cache, canvas.glyph_cache = textcache.TEXT_CACHE, textcache.GLYPH_CACHE
    med = {m: statistics.median(t) for m, t in times.items()}
    report("widget_latency", f"{name}_update_ms_vs_savefig", round(med["cached"] / med["savefig"], 3), "x", None,
           None, two_layers_text_cache_ms=round(1000 * med["cached"], 1),
           two_layers_ms=round(1000 * med["two_layers"], 1), savefig_ms=round(1000 * med["savefig"], 1),
           repeats=repeats)
    print(f"  {name}: two layers + text cache {1000 * med['cached']:.0f} ms, two layers {1000 * med['two_layers']:.0f}"
          f" ms, savefig {1000 * med['savefig']:.0f} ms; ratio to savefig "
          f"{med['cached'] / med['savefig']:.2f}", flush=True)
