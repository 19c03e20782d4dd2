"""Measured costs for the lessons: a general determinant vs a triangular one, and the density vs sampling
directions of autoregressive flows. Each function returns plain numbers (median seconds), so a lesson can plot them
and a test can check their trend; nothing here is a claim that is not measured on the learner's own machine.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

__all__ = ["timings", "median_seconds", "determinant_costs", "direction_costs"]


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
    from .autoregressive import IAF, MAF

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
