"""Lesson 04's figures: a RealNVP on scikit-learn's 8x8 digits (honest held-out bits/dim), and additive vs affine
couplings trained side by side on the same 2D density with the same budget."""
from __future__ import annotations

import argparse
import time

from .harness import benchmark, report, set_threads

DIGITS_TARGET_BPD = 2.9
CHECKERBOARD_TARGET_GAP = 0.08  # nats above the floor ln 32


@benchmark("digits_realnvp", "conv multi-scale RealNVP on sklearn digits 8x8: held-out bits/dim, honest bound "
                             "(target <= 2.9), next to the per-position grey-level histogram baseline")
def digits_realnvp(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks digits_realnvp")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--couplings", type=int, default=8, help="conv affine couplings per level (2 levels)")
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args(args)
    threads = set_threads()
    from flowlib.data import digits as D

    split = D.load_digits_split()
    # the baseline: independent pixels, each position with its own grey-level frequencies (smoothing picked on val)
    t0 = time.perf_counter()
    hist = PixelHistogram.fit(split.train, split.val, levels=D.LEVELS, scale=1 / D.LEVELS)
    hist_seconds = time.perf_counter() - t0
    hist_bpd = D.bits_per_dim(hist, split.test, repeats=8)  # == its exact discrete cross-entropy (tight bound)
    t0 = time.perf_counter()
    model, keeper, history = train_conv_realnvp(split, steps=opts.steps, couplings=opts.couplings,
                                                  hidden=opts.hidden, seed=opts.seed)
    train_seconds = time.perf_counter() - t0  # includes the validation evaluations used for early stopping
    test_bpd = D.bits_per_dim(model, split.test, repeats=8)
    params = sum(q.numel() for q in model.parameters())
    convention = "x in 0..16, y=(x+u)/17, u~U(0,1); bpd=-(E log q(y) - 64 ln 17)/(64 ln 2)"
    common = dict(test_images=len(split.test), model="conv multi-scale RealNVP (L=2, logit alpha=0.01)",
                  couplings_per_level=opts.couplings, hidden=opts.hidden, params=params, steps=opts.steps,
                  best_step=keeper.best_step, val_bpd=round(keeper.best, 4), threads=threads, convention=convention)
    report("digits_realnvp", "test_bits_per_dim", round(test_bpd, 4), "bits/dim", DIGITS_TARGET_BPD,
           test_bpd <= DIGITS_TARGET_BPD and len(split.test) >= 400, uniform_bpd=round(D.uniform_bits_per_dim(), 4),
           histogram_bpd=round(hist_bpd, 4), beats_histogram=test_bpd < hist_bpd, **common)
    report("digits_realnvp", "histogram_baseline_test_bits_per_dim", round(hist_bpd, 4), "bits/dim", None, None,
           test_images=len(split.test), model="per-position grey-level histogram (independent pixels)",
           alpha=hist.alpha, val_bpd=round(hist.discrete_bits_per_dim(split.val), 4),
           exact_discrete_bpd=round(hist.discrete_bits_per_dim(split.test), 4), fit_seconds=round(hist_seconds, 3),
           convention=convention)
    report("digits_realnvp", "training_time", round(train_seconds, 1), "s", None, None, **common)


@benchmark("coupling_compare", "additive vs affine RealNVP on the same 2D data and budget (affine: checkerboard "
                               "within 0.08 nats of ln 32)")
def coupling_compare(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks coupling_compare")
    p.add_argument("--data", default="checkerboard")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--couplings", type=int, default=12)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args(args)
    threads = set_threads()
    from flowlib_teaching.experiments import compare_couplings

    rows = compare_couplings(opts.data, steps=opts.steps, num_couplings=opts.couplings, hidden=opts.hidden,
                             seed=opts.seed)
    for r in rows:
        target = CHECKERBOARD_TARGET_GAP if (r["coupling"] == "affine" and opts.data == "checkerboard") else None
        report("coupling_compare", f"{r['coupling']}_{opts.data}_test_nll_gap", round(r["gap"], 4), "nats", target,
               (r["gap"] <= target) if target is not None else None, test_nll=round(r["test_nll"], 4),
               stderr=round(r["stderr"], 4), floor=round(r["floor"], 4), steps=r["steps"],
               train_seconds=round(r["seconds"], 1), params=r["params"], couplings=opts.couplings,
               hidden=opts.hidden, threads=threads, same_run=True)
