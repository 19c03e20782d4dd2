"""Checkers for the exercises of lesson 03 (composition and maximum likelihood), in the framework of
``flowlib_teaching.exercises.framework``: a checker says WHAT is wrong, a placeholder answer is "not answered yet",
and ``strict=True`` raises ``ExerciseError`` on anything but a correct answer.

    check_composition_log_prob(fn)          fn(flows, base, x) -> log q(x) of a stack of flows
    check_kl_gap(number)                    KL(p_data || q) from a held-out NLL and the floor
    check_pass_counts(dict)                 network passes of MAF / IAF, density and sampling, D = 10
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from flowlib_teaching.exercises.framework import ExerciseError, ExerciseResult, MISSING, Verdict, call, checker, number, numbers, wrong

__all__ = ["ExerciseError", "ExerciseResult", "check_composition_log_prob", "check_kl_gap", "check_pass_counts",
           "KL_NUMBERS"]


# ---- lesson 03 -------------------------------------------------------------------------------------------------------


def _small_stack():
    from flowlib.builders import maf
    from flowlib.distributions import StandardNormal
    from flowlib.testing import perturb

    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(3)
        flow = maf(2, num_layers=3, hidden=(16,))
        perturb(flow, 0.3)
    return list(flow.flows), StandardNormal(2)


@checker("Exercise 1 — log q(x) of a stack of flows",
          "write composition_log_prob(flows, base, x) and run the cell again.")
def check_composition_log_prob(fn: Callable) -> str:
    """Exercise 03.1: ``fn(flows, base, x)`` returns log q(x) for the composition of ``flows`` (data -> latent,
    applied in list order) and the base distribution, shape (B,)."""
    from flowlib.core import Compose
    from flowlib.models import FlowModel

    flows, base = _small_stack()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 1.5
    with torch.no_grad():
        out = numbers(call(fn, flows, base, x.clone()), "your result")
        truth = FlowModel(Compose(*flows), base).log_prob(x).double()
        if out.shape != truth.shape:
            raise wrong("shape", f"expected one log-density per sample, shape {tuple(truth.shape)}, got "
                                  f"{tuple(out.shape)}.")
        if torch.allclose(out, truth, atol=1e-4):
            return "log q(x) = log p(z) + Σ_k log|det ∂h_k/∂h_{k-1}|, one pass through the stack."
        z, lds = x, []
        for f in flows:
            z, ld = f(z)
            lds.append(ld)
        total = torch.stack(lds).sum(0)
        lp = base.log_prob(z)
        zr, total_r = x, torch.zeros(x.shape[0])
        for f in reversed(flows):
            zr, ld = f(zr)
            total_r = total_r + ld
        diagnoses = [
            ("reversed_order", base.log_prob(zr) + total_r, "you applied the flows in reverse list order; the list "
                                                             "goes from the data to the latent: h₁ = flows[0](x), "
                                                             "h₂ = flows[1](h₁), ..."),
            ("logdet_sign", lp - total, "the log-dets have the wrong sign: in the data -> latent direction they are "
                                        "ADDED, log q(x) = log p(z) + Σ log|det ∂f_k/∂h|."),
            ("missing_logdet", lp, "you left out the log-determinants: each layer stretches or squeezes volume, and "
                                   "that changes the density."),
            ("missing_base", total, "you left out log p(z), the base density at the final latent."),
            ("last_logdet_only", lp + lds[-1], "only the last layer's log-det is included; every layer contributes "
                                               "one."),
            ("base_at_x", base.log_prob(x) + total, "the base density must be evaluated at z = f(x), the end of the "
                                                    "stack, not at x."),
        ]
        for diagnosis, candidate, why in diagnoses:
            if torch.allclose(out, candidate.double(), atol=1e-4):
                raise wrong(diagnosis, why)
    raise wrong("wrong", "the values differ from FlowModel(Compose(*flows), base).log_prob(x); apply the flows in "
                          "list order, sum their log-dets, and add log p(z).")


KL_NUMBERS = {"nll": 2.61, "floor": 2.39}  # nats


@checker("Exercise 2 — reading a gap as a KL divergence",
          "replace the ... with a number, using E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q).", answer="value")
def check_kl_gap(answer) -> str:
    """Exercise 03.2: with held-out NLL 2.61 nats and floor (entropy of p_data) 2.39 nats, estimate KL(p_data || q)."""
    a = number(answer, diagnosis="not_a_number")
    nll, floor = KL_NUMBERS["nll"], KL_NUMBERS["floor"]
    if math.isclose(a, nll - floor, abs_tol=1e-3):
        return (f"KL(p_data ‖ q) = E[−log q] − H(p_data) = {nll} − {floor} = {nll - floor:.2f} nats. Minimising the "
                f"NLL minimises exactly this, because H(p_data) does not depend on q.")
    if math.isclose(a, floor - nll, abs_tol=1e-3):
        raise wrong("negative_kl", "a KL divergence is never negative: the model's NLL (cross-entropy) is at least "
                                    "the data's entropy. Subtract the other way round.")
    if math.isclose(a, nll, abs_tol=1e-3):
        raise wrong("cross_entropy", "that is the cross-entropy E[−log q(x)] itself; the KL is what is left after "
                                      "subtracting the data's own entropy.")
    if math.isclose(a, -nll, abs_tol=1e-3) or math.isclose(a, nll + floor, abs_tol=1e-3):
        raise wrong("decomposition", "write the cross-entropy as E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q) "
                                      "and solve for the KL.")
    if math.isclose(a, (nll - floor) / math.log(2), abs_tol=1e-3) or math.isclose(a, (nll - floor) * math.log(2),
                                                                                   abs_tol=1e-3):
        raise wrong("units", f"{a} is the gap converted between nats and bits; both numbers are given in nats, and "
                              "the question asks for nats.")
    raise wrong("wrong", f"{a:g} is not it. Use " + "E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q) with the "
                          "numbers above.")


PASS_KEYS = ("maf_density", "maf_sampling", "iaf_density", "iaf_sampling")


@checker("Exercise 3 — network passes of one autoregressive layer in D = {dim} dimensions",
          "fill in all four numbers and run the cell again.", answer="value")
def check_pass_counts(answer, dim: int = 10) -> str:
    """Exercise 03.3: network passes needed by ONE autoregressive layer in D = 10 dimensions, as a dict with keys
    maf_density, maf_sampling, iaf_density (of arbitrary data x), iaf_sampling.

    Counting convention: flowlib's sequential direction runs one pass per coordinate, D in all
    (``MAF._inverse``). D − 1 is accepted too: the first coordinate's shift and scale depend on no input (they are
    constants of the network), so a careful implementation can skip that pass."""
    if not isinstance(answer, dict) or set(answer) != set(PASS_KEYS):
        raise wrong("keys", f"expected a dict with exactly the keys {list(PASS_KEYS)}.")
    if any(answer[k] is None or answer[k] is Ellipsis for k in PASS_KEYS):
        raise Verdict(MISSING, "some of the four numbers are still `...`.",
                       "fill in all four numbers and run the cell again.", "missing")
    accepted = {"maf_density": (1,), "maf_sampling": (dim, dim - 1), "iaf_density": (dim, dim - 1),
                "iaf_sampling": (1,)}
    why = {"maf_density": "MAF's density needs z_i = (x_i − μ_i(x_<i))·exp(−α_i(x_<i)): every x is known, so one "
                          "masked pass gives all μ_i, α_i.",
           "maf_sampling": "MAF's sampling computes x_i from x_<i, which must exist first: one pass per coordinate.",
           "iaf_density": "IAF's density of a given x needs z_<i before z_i: one pass per coordinate.",
           "iaf_sampling": "IAF samples from z, all known at once: one pass."}
    mistaken = [k for k in PASS_KEYS if answer[k] not in accepted[k]]
    if not mistaken:
        note = ""
        if dim - 1 in (answer["maf_sampling"], answer["iaf_density"]):
            note = (f" (You counted {dim - 1} for a sequential direction: right if the first coordinate's pass is "
                    f"skipped, since its shift and scale depend on no input; flowlib runs all {dim}.)")
        return "MAF: density 1 pass, sampling D passes; IAF: the reverse. Same maths, opposite directions." + note
    swapped = {"maf_density": (dim, dim - 1), "maf_sampling": (1,), "iaf_density": (1,), "iaf_sampling": (dim, dim - 1)}
    if all(answer[k] in swapped[k] for k in PASS_KEYS):
        raise wrong("maf_iaf_swapped", "your four numbers are right for the other model: you swapped MAF and IAF.",
                    "MAF computes its shift and scale from x (the data), so its DENSITY direction is one pass; IAF "
                    "computes them from z, so its SAMPLING direction is one pass.")
    k = mistaken[0]
    raise wrong(f"wrong_{k}", f"{k} = {answer[k]!r} is mistaken ({len(mistaken)} of 4 mistaken).", why[k])
