"""What the lessons run: measured costs (a general determinant vs a triangular one, the density vs sampling
directions of autoregressive flows; lessons 02-03), couplings compared on 2D data (with the 2D train-and-evaluate
recipe of ``flowlib.training.toy2d``) and the digits recipes (lesson 04). Each function returns plain numbers (median seconds), so a lesson can plot them
and a test can check their trend; nothing here is a claim that is not measured on the learner's own machine.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

from flowlib.builders import conv_realnvp, make_realnvp
from flowlib.data import digits, toy2d
from flowlib.distributions import StandardNormal
from flowlib.models import FlowModel
from flowlib.training import KeepBest, fit
from flowlib.training.toy2d import evaluate_2d, train_2d

__all__ = ["timings", "median_seconds", "determinant_costs", "direction_costs", "compare_couplings",
           "train_realnvp", "train_conv_realnvp"]


def timings(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    return statistics.median(timings(fn, repeats, warmup))


def determinant_costs(dims: Sequence[int], repeats: int = 5, seed: int = 0) -> dict[str, list[float]]:
    """For each D: the median time of log|det J| of a general D x D matrix (``torch.linalg.slogdet``, an LU
    factorisation, O(D^3)) and of a triangular one from its diagonal (sum of log|J_ii|, O(D)).

    Returns {"dim": [...], "general": [...seconds], "triangular": [...seconds]}.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"dim": [], "general": [], "triangular": []}
    for d in dims:
        J = torch.randn(d, d, generator=g) + d**0.5 * torch.eye(d)
        L = torch.tril(J)
        out["dim"].append(int(d))
        out["general"].append(median_seconds(lambda: torch.linalg.slogdet(J), repeats))
        out["triangular"].append(median_seconds(lambda: torch.diagonal(L).abs().log().sum(), repeats))
    return out


def direction_costs(dims: Sequence[int], n: int = 256, hidden: int = 64, repeats: int = 3,
                    seed: int = 0) -> dict[str, list[float]]:
    """For each D: the median time of density evaluation (data -> latent) and of sampling (latent -> data) through
    one MAF layer and one IAF layer with D inputs (untrained weights, perturbed so they are not the identity).

    Returns {"dim", "maf_density", "maf_sampling", "iaf_density", "iaf_sampling"} (seconds for a batch of n).
    """
    from flowlib.bijections.autoregressive import IAF, MAF

    out: dict[str, list[float]] = {k: [] for k in ("dim", "maf_density", "maf_sampling", "iaf_density",
                                                     "iaf_sampling")}
    for d in dims:
        torch.manual_seed(seed)
        maf, iaf = MAF(d, (hidden, hidden)), IAF(d, (hidden, hidden))
        with torch.no_grad():
            for p in list(maf.parameters()) + list(iaf.parameters()):
                p.add_(0.05 * torch.randn(p.shape))
            x = torch.randn(n, d)
            out["dim"].append(int(d))
            out["maf_density"].append(median_seconds(lambda: maf(x), repeats))
            out["maf_sampling"].append(median_seconds(lambda: maf.inverse(x), repeats))
            out["iaf_density"].append(median_seconds(lambda: iaf(x), repeats))
            out["iaf_sampling"].append(median_seconds(lambda: iaf.inverse(x), repeats))
    return out


# ---- lesson 04: couplings compared on 2D data, and the digits recipes ------------------------------------------------
def compare_couplings(data: str = "checkerboard", steps: int = 4000, num_couplings: int = 12, hidden: int = 128,
                      layers: int = 2, lr: float = 2e-3, batch_size: int = 512, n_test: int = 20000,
                      couplings: Sequence[str] = ("additive", "affine"), seed: int = 0,
                      floor_samples: int = 200_000, progress: bool = False) -> list[dict]:
    """Train one RealNVP per coupling kind on the same 2D density with the same budget; held-out NLLs.

    Everything but the coupling is shared: the architecture, the seed of the initial weights, the stream of training
    batches (fresh samples from ``flowlib.data.toy2d``), Adam with a learning rate annealed to 0 along a cosine, the
    number of steps and the held-out set (``flowlib.training.toy2d``). Returns one row per coupling: held-out NLL (nats) with its standard error, the data's
    floor (its entropy, the lowest NLL any model can reach), the gap to it, parameters and seconds.
    """
    ds = toy2d.get(data)
    test = ds.sample(n_test, seed=10_000 + seed)
    floor = ds.entropy(n=floor_samples).value  # exact for the checkerboard (ln 32), else Monte Carlo
    rows = []
    for kind in couplings:
        torch.manual_seed(seed)
        model = FlowModel(make_realnvp(2, num_couplings, hidden, layers, coupling=kind), StandardNormal(2))
        hist = train_2d(model, ds, steps, lr=lr, batch_size=batch_size, seed=seed, final_lr=0.0, progress=progress)
        ev = evaluate_2d(model, ds, test)
        rows.append({"coupling": kind, "data": data, "test_nll": ev["nll"], "stderr": ev["nll_stderr"], "floor": floor,
                     "gap": ev["nll"] - floor, "steps": steps, "seconds": hist.seconds,
                     "params": sum(p.numel() for p in model.parameters()), "model": model})
    return rows


def train_realnvp(split: digits.DigitsSplit, steps: int = 600, num_couplings: int = 8, hidden: int = 256,
                  layers: int = 2, lr: float = 1e-3, batch_size: int = 128, every: int = 50, seed: int = 0,
                  noise_width: float = 1.0, progress: bool = False):
    """Lesson 04's recipe: a RealNVP (affine couplings, random half masks, ``flowlib.builders.make_realnvp``) with a
    standard normal base, trained on freshly dequantized training images and early-stopped on the validation
    bits/dim. Returns ``(model, keeper, history)``; the model holds the best validation weights."""
    torch.manual_seed(seed)
    flow = make_realnvp(digits.DIM, num_couplings, hidden, layers, masks="random",
                        generator=torch.Generator().manual_seed(seed))
    model = FlowModel(flow, StandardNormal(digits.DIM))
    keeper = KeepBest(lambda m: digits.bits_per_dim(m, split.val, repeats=1, noise_width=noise_width), every=every)
    history = fit(model, digits.sampler(split.train, seed=seed, noise_width=noise_width), steps, lr=lr,
                  batch_size=batch_size, callbacks=[keeper], progress=progress, seed=seed)
    keeper.restore(model)
    return model, keeper, history


def train_conv_realnvp(split: digits.DigitsSplit, steps: int = 600, levels: int = 2, couplings: int = 8, hidden: int = 64,
                       alpha: float = 0.01, lr: float = 2e-3, weight_decay: float = 0.1, batch_size: int = 64,
                       every: int = 50, seed: int = 0, noise_width: float = 1.0, progress: bool = False):
    """Lesson 04's digits model: ``conv_realnvp`` trained on freshly dequantized training images with AdamW (decoupled
    weight decay), a cosine learning-rate schedule over ``steps``, and early stopping on the validation bits/dim.
    Returns ``(model, keeper, history)``; the model holds the best validation weights."""
    torch.manual_seed(seed)
    model = conv_realnvp(levels, couplings, hidden, alpha)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    keeper = KeepBest(lambda m: digits.bits_per_dim(m, split.val, repeats=1, noise_width=noise_width), every=every)
    history = fit(model, digits.sampler(split.train, seed=seed, noise_width=noise_width), steps, lr=lr,
                  batch_size=batch_size, optimizer=opt, scheduler=sched, callbacks=[keeper], progress=progress,
                  seed=seed)
    keeper.restore(model)
    return model, keeper, history
