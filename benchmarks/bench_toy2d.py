"""Held-out NLL of flows trained on the 2D densities, against the density's own entropy (the floor).

For each density, four models are trained with the same number of steps, batch size, learning-rate schedule and
seed, one after the other, then evaluated on the same fresh held-out samples x ~ p:

    ours_spline   flowlib.builders.spline_maf: autoregressive rational-quadratic spline layers (the course's best
                  2D flow; the one the target is about)
    ours_maf      flowlib.builders.maf: affine MAF layers (the model of lessons 02-03)
    zuko_maf      zuko.flows.MAF, the same shape as ours_maf (a peer; benchmark-only dependency)
    zuko_nsf      zuko.flows.NSF, the same shape as ours_spline (its spline bound is zuko's default, 5)

    NLL  = -mean log q(x)                     (model)
    floor = -mean log p(x)                    (exact log-density, same samples: the Monte Carlo entropy H(p))
    gap  = NLL - floor = mean [log p(x) - log q(x)]  ~  KL(p || q) >= 0

The gap is a paired difference, so its standard error is far smaller than that of either NLL. Training and
evaluation are the course's 2D recipe, ``flowlib.training.toy2d`` (the lessons' own).
Target: gap <= 0.05 nats on moons, circles and 8gaussians for ours_spline; every row prints the same target and
whether it meets it, for comparison. The checkerboard's gap is reported (no target).
"""
from __future__ import annotations

import argparse
import time

from .harness import benchmark, report, set_threads

TARGET_GAP = 0.05
DEFAULT_DATASETS = ("moons", "circles", "8gaussians", "checkerboard")
MODELS = ("ours_spline", "ours_maf", "zuko_maf", "zuko_nsf")


def _zuko_model(kind: str, layers: int, hidden: int, bins: int):
    """A zuko flow wrapped as something with ``log_prob`` and ``parameters`` (what ``flowlib.training.fit`` needs)."""
    import torch

    try:
        import zuko
    except ImportError as e:  # a benchmark-only dependency
        raise SystemExit("the nll_gap benchmark compares against zuko's MAF and NSF: `pip install zuko` "
                         "(or pass --models ours_spline ours_maf)") from e

    class ZukoModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "maf":
                self.flow = zuko.flows.MAF(features=2, transforms=layers, hidden_features=(hidden, hidden))
            else:
                self.flow = zuko.flows.NSF(features=2, bins=bins, transforms=layers,
                                           hidden_features=(hidden, hidden))

        def log_prob(self, x):
            return self.flow().log_prob(x)

    return ZukoModel()


@benchmark("nll_gap", "held-out NLL vs the entropy floor on 2D densities: our spline flow and MAF, zuko's MAF and NSF")
def nll_gap(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks nll_gap")
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--layers", type=int, default=8, help="MAF layers (ours_maf, zuko_maf)")
    p.add_argument("--spline-layers", type=int, default=4, help="spline layers (ours_spline, zuko_nsf)")
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--bound", type=float, default=4.0, help="ours_spline's interval [-B, B]")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test-n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args(args)
    threads = set_threads()
    import torch

    import flowlib as fl
    from flowlib.data import toy2d
    from flowlib.builders import maf
    from flowlib.builders import spline_maf
    from flowlib.training.toy2d import evaluate_2d, train_2d

    hidden = (opts.hidden, opts.hidden)
    builders = {
        "ours_spline": lambda: fl.FlowModel(spline_maf(2, opts.spline_layers, hidden, opts.bins, opts.bound),
                                            fl.StandardNormal(2)),
        "ours_maf": lambda: fl.FlowModel(maf(2, opts.layers, hidden), fl.StandardNormal(2)),
        "zuko_maf": lambda: _zuko_model("maf", opts.layers, opts.hidden, opts.bins),
        "zuko_nsf": lambda: _zuko_model("nsf", opts.spline_layers, opts.hidden, opts.bins),
    }
    config = dict(steps=opts.steps, batch=opts.batch, lr=opts.lr, test_n=opts.test_n, seed=opts.seed,
                  threads=threads)
    for i, name in enumerate(opts.datasets):
        ds = toy2d.get(name)
        target = None if name == "checkerboard" else TARGET_GAP
        for label in opts.models:
            build = builders[label]
            spline = label in ("ours_spline", "zuko_nsf")
            shape = dict(layers=opts.spline_layers if spline else opts.layers, hidden=opts.hidden,
                         **(dict(bins=opts.bins) if spline else {}))
            torch.manual_seed(opts.seed)
            model = build()
            t0 = time.perf_counter()
            seconds = train_2d(model, ds, opts.steps, lr=opts.lr, batch_size=opts.batch, seed=opts.seed + i,
                               progress=False).seconds
            ev = evaluate_2d(model, ds, ds.sample(opts.test_n, seed=10_000 + i))
            n_params = sum(q.numel() for q in model.parameters())
            common = dict(dataset=name, model=label, train_seconds=round(seconds, 1), params=n_params, **shape,
                          **config)
            report("nll_gap", f"{name}_{label}_heldout_nll", round(ev["nll"], 4), "nats", None, None,
                   stderr=round(ev["nll_stderr"], 4), floor=round(ev["floor"], 4), **common)
            met = None if target is None else ev["gap"] <= target
            report("nll_gap", f"{name}_{label}_gap", round(ev["gap"], 4), "nats", target, met,
                   stderr=round(ev["gap_stderr"], 4), floor=round(ev["floor"], 4), nll=round(ev["nll"], 4),
                   **common)
            print(f"# {name:12s} {label:9s} NLL {ev['nll']:.4f}  floor {ev['floor']:.4f}  gap {ev['gap']:.4f} "
                  f"+- {ev['gap_stderr']:.4f}  ({seconds:.0f} s, total {time.perf_counter() - t0:.0f} s)",
                  flush=True)
