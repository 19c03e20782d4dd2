"""Held-out NLL of flows trained on the 2D densities, against the density's own entropy (the floor).

For each density, our MAF stack and zuko's MAF (a peer, benchmark-only dependency) are trained with the same number
of steps, batch size, learning-rate schedule and seed, then evaluated on the same fresh held-out samples x ~ p:

    NLL  = -mean log q(x)                     (model)
    floor = -mean log p(x)                    (exact log-density, same samples: the Monte Carlo entropy H(p))
    gap  = NLL - floor = mean [log p(x) - log q(x)]  ~  KL(p || q) >= 0

The gap is a paired difference, so its standard error is far smaller than that of either NLL.
Target: gap <= 0.05 nats on moons, circles and 8gaussians; the checkerboard's gap is reported.
"""
from __future__ import annotations

import argparse
import math
import time

from .harness import benchmark, report, set_threads

TARGET_GAP = 0.05
DEFAULT_DATASETS = ("moons", "circles", "8gaussians", "checkerboard")


def _train(model, params, sampler, steps: int, lr: float, batch: int, seed: int) -> float:
    import torch

    from flowlib.train import fit

    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 50)
    hist = fit(model, sampler, steps=steps, optimizer=opt, batch_size=batch, progress=False, seed=seed,
               clip_grad=10.0, callbacks=[lambda *a: sched.step()])
    return hist.seconds


def _evaluate(model, ds, n: int, seed: int) -> dict:
    import torch

    x = ds.sample(n, seed=seed)
    with torch.no_grad():
        lq = torch.cat([model.log_prob(c).double() for c in x.split(10_000)])
    lp = ds.log_prob(x.double())
    diff = lp - lq
    return {"nll": float(-lq.mean()), "nll_stderr": float(lq.std() / math.sqrt(n)), "floor": float(-lp.mean()),
            "gap": float(diff.mean()), "gap_stderr": float(diff.std() / math.sqrt(n))}


class _ZukoModel:
    """Wrap a zuko flow as something with ``log_prob`` and ``parameters`` (what ``flowlib.train.fit`` needs)."""

    def __new__(cls, layers: int, hidden: int):
        import torch

        try:
            import zuko
        except ImportError as e:  # a benchmark-only dependency
            raise SystemExit("the nll_gap benchmark compares against zuko's MAF: `pip install zuko` "
                             "(or pass --skip-zuko)") from e

        class ZukoModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.flow = zuko.flows.MAF(features=2, transforms=layers, hidden_features=(hidden, hidden))

            def log_prob(self, x):
                return self.flow().log_prob(x)

        return ZukoModel()


@benchmark("nll_gap", "held-out NLL vs the entropy floor on 2D densities, ours (MAF) and zuko's MAF side by side")
def nll_gap(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks nll_gap")
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test-n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-zuko", action="store_true")
    opts = p.parse_args(args)
    threads = set_threads()
    import torch

    import flowlib as fl
    from flowlib import toy2d
    from flowlib.autoregressive import maf

    config = dict(steps=opts.steps, layers=opts.layers, hidden=opts.hidden, batch=opts.batch, lr=opts.lr,
                  test_n=opts.test_n, seed=opts.seed, threads=threads)
    for i, name in enumerate(opts.datasets):
        ds = toy2d.get(name)
        target = None if name == "checkerboard" else TARGET_GAP
        runs = [("ours_maf", lambda: fl.FlowModel(maf(2, opts.layers, (opts.hidden, opts.hidden)),
                                                  fl.StandardNormal(2)))]
        if not opts.skip_zuko:
            runs.append(("zuko_maf", lambda: _ZukoModel(opts.layers, opts.hidden)))
        for label, build in runs:
            torch.manual_seed(opts.seed)
            model = build()
            t0 = time.perf_counter()
            seconds = _train(model, list(model.parameters()), ds.sampler(seed=opts.seed + i), opts.steps, opts.lr,
                             opts.batch, opts.seed)
            model.eval()
            ev = _evaluate(model, ds, opts.test_n, seed=10_000 + i)
            n_params = sum(q.numel() for q in model.parameters())
            common = dict(dataset=name, model=label, train_seconds=round(seconds, 1), params=n_params, **config)
            report("nll_gap", f"{name}_{label}_heldout_nll", round(ev["nll"], 4), "nats", None, None,
                   stderr=round(ev["nll_stderr"], 4), floor=round(ev["floor"], 4), **common)
            met = None if target is None else ev["gap"] <= target
            report("nll_gap", f"{name}_{label}_gap", round(ev["gap"], 4), "nats", target, met,
                   stderr=round(ev["gap_stderr"], 4), floor=round(ev["floor"], 4), nll=round(ev["nll"], 4),
                   **common)
            print(f"# {name:12s} {label:9s} NLL {ev['nll']:.4f}  floor {ev['floor']:.4f}  gap {ev['gap']:.4f} "
                  f"+- {ev['gap_stderr']:.4f}  ({seconds:.0f} s, total {time.perf_counter() - t0:.0f} s)",
                  flush=True)
