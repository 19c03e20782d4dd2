"""Answer checkers for lesson 04 (coupling layers), in the style of ``flowlib_teaching.exercises.lesson01``: a checker says WHAT is
wrong; a placeholder answer gets "not answered yet" and no exception; ``strict=True`` raises ``ExerciseError`` on
anything but a correct answer (the hidden solution cells use it).

    check_coupling_inverse(inverse)        inverse(z, mask, log_scale_and_shift) -> (x, logdet) of an affine coupling
    check_guaranteed_zeros(zeros)          zeros(mask) -> (D, D) booleans: which dz_i/dx_j are 0 for ANY network
    check_honest_bits_per_dim(bpd)         bpd(mean_log_q) for digits: y = (x + u) / 17, 64 pixels
"""
from __future__ import annotations

import math

import numpy as np
import torch

from flowlib.bijections.coupling import AffineCoupling
from flowlib_teaching.exercises.framework import ExerciseError, ExerciseResult, call, checker, short, wrong
from flowlib.bijections.masks import alternating_mask, half_mask, random_mask

__all__ = ["ExerciseError", "ExerciseResult", "check_coupling_inverse", "check_guaranteed_zeros",
           "check_honest_bits_per_dim"]


def _tensor(out, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    try:
        t = out.detach().double() if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out, dtype=float))
    except (TypeError, ValueError, RuntimeError):
        raise wrong("not_numeric", f"{what} is a {type(out).__name__} ({short(out)}), not numbers.") from None
    if tuple(t.shape) != shape:
        raise wrong("shape", f"{what} has shape {tuple(t.shape)}, expected {shape}.",
                     "work on whole batches: every operation in a coupling is element-wise or a sum over dim 1.")
    return t


# ---- exercise 1: invert an affine coupling --------------------------------------------------------------------
def _layer(seed: int = 0) -> tuple[AffineCoupling, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layer = AffineCoupling(alternating_mask(6), hidden=16).double()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.4 * torch.randn_like(p))
        x = torch.randn(64, 6, dtype=torch.float64)
    return layer, x


@checker("invert an affine coupling", "write x = (z - t) * exp(-s), with (s, t) = log_scale_and_shift(z), and "
                                       "return (x, logdet).")
def check_coupling_inverse(inverse) -> str:
    """``inverse(z, mask, log_scale_and_shift)`` must return ``(x, logdet)`` with x the input of the forward map
    z = x * exp(s) + t and logdet = log|det dx/dz|, shape (B,)."""
    layer, x = _layer()
    with torch.no_grad():
        z, ld_forward = layer(x)
        s, t = layer.log_scale_and_shift(x)
        out = call(inverse, z.clone(), layer.mask.clone(), layer.log_scale_and_shift)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise wrong("not_a_pair", f"your function returned a {type(out).__name__}, not the pair (x, logdet).",
                     "every flowlib map returns its output and its log-det: `return x, logdet`.")
    x_hat = _tensor(out[0], "your x", tuple(x.shape))
    logdet = _tensor(out[1], "your logdet", (x.shape[0],))
    keep = layer.mask.bool()
    if not torch.allclose(x_hat[:, keep], x[:, keep], atol=1e-8):
        raise wrong("changed_passed_through", "your x differs from the true x on the PASSED-THROUGH coordinates "
                     "(mask == 1); those were copied by the forward map, so the inverse must copy them back.",
                     "s and t are zero there, so the same formula copies them if you use (s, t) as given.")
    if not torch.allclose(x_hat, x, atol=1e-6):
        variants = {
            "wrong_sign_scale": ((z - t) * torch.exp(s), "you multiplied by exp(+s); the forward map multiplied by "
                                 "exp(s), so the inverse divides: exp(-s)."),
            "wrong_order": (z * torch.exp(-s) - t, "you divided first and subtracted t afterwards; the forward map "
                            "scaled first and then shifted, so the inverse undoes the shift first: (z - t) * exp(-s)."),
            "scale_not_log": ((z - t) / torch.where(s == 0, torch.ones_like(s), s), "you divided by s; s is a LOG-"
                              "scale, the scale is exp(s)."),
            "forgot_shift": (z * torch.exp(-s), "you forgot to subtract the shift t."),
        }
        for diagnosis, (v, message) in variants.items():
            if torch.allclose(x_hat, v, atol=1e-6):
                raise wrong(diagnosis, message, "write the forward map, z = x * exp(s) + t, and solve it for x.")
        err = float((x_hat - x).abs().max())
        raise wrong("round_trip", f"inverse(forward(x)) differs from x by up to {err:.3g} on the transformed "
                     f"coordinates.", "compute (s, t) = log_scale_and_shift(z) — z agrees with x where the mask is "
                     "1 — then x = (z - t) * exp(-s).")
    if torch.allclose(logdet, ld_forward, atol=1e-6) and not torch.allclose(ld_forward, 0 * ld_forward):
        raise wrong("logdet_sign", "x is right, but your logdet is the FORWARD log-det (+sum s); the inverse map "
                     "divides by exp(s), so its log-det is -sum s.", "forward and inverse log-dets sum to zero.")
    if torch.allclose(logdet, torch.zeros_like(logdet)):
        raise wrong("logdet_zero", "x is right, but your logdet is 0: that is the ADDITIVE coupling's; an affine "
                     "coupling changes volume by exp(-sum s) in this direction.", "logdet = -s.sum(dim=1).")
    if not torch.allclose(logdet, -ld_forward, atol=1e-6):
        err = float((logdet + ld_forward).abs().max())
        raise wrong("logdet", f"x is right, but your logdet is off by up to {err:.3g}.",
                     "the Jacobian dx/dz is triangular with diagonal exp(-s) (and 1 where the mask is 1): "
                     "logdet = -s.sum(dim=1).")
    return ("x = (z - t) * exp(-s) with (s, t) recomputed from the passed-through half, and log-det -sum s. The "
            "network was only evaluated, never inverted.")


# ---- exercise 2: the zero pattern of a coupling's Jacobian ------------------------------------------------------
def _true_zeros(mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    d = len(m)
    off_diagonal = ~torch.eye(d, dtype=torch.bool)
    # row i passed through: z_i = x_i; row i transformed: depends on x_i and on the passed-through x_j only
    return off_diagonal & (m[:, None] | ~m[None, :])


@checker("the zero pattern of a coupling's Jacobian", "return a (D, D) boolean tensor Z with Z[i, j] True when "
                                                        "dz_i/dx_j = 0 whatever the networks are.")
def check_guaranteed_zeros(zeros) -> str:
    """``zeros(mask)`` for a mask of shape (D,) returns (D, D) booleans: True where dz_i/dx_j is zero for every
    choice of the networks s and t (rows: outputs z_i, columns: inputs x_j)."""
    masks = [half_mask(4), alternating_mask(5), random_mask(6, torch.Generator().manual_seed(3))]
    for mask in masks:
        d = len(mask)
        out = call(zeros, mask.clone())
        got = _tensor(out, f"your answer for mask {mask.int().tolist()}", (d, d)) != 0
        truth = _true_zeros(mask)
        if torch.equal(got, truth):
            continue
        name = mask.int().tolist()
        if torch.equal(got, truth.T):
            raise wrong("transposed", f"for mask {name} your pattern is the transpose of the right one.",
                         "rows are outputs z_i and columns inputs x_j: J[i, j] = dz_i/dx_j.")
        diag = torch.nonzero(torch.diagonal(got)).reshape(-1)
        if len(diag):
            i = int(diag[0])
            raise wrong("diagonal", f"for mask {name} you marked dz_{i}/dx_{i} as zero; a diagonal entry is 1 "
                         f"(passed through) or exp(s_{i}) > 0 (transformed), never 0.",
                         "if a diagonal entry could be 0 the layer would not be invertible.")
        wrong_zero = torch.nonzero(got & ~truth)
        if len(wrong_zero):
            i, j = (int(v) for v in wrong_zero[0])
            raise wrong("not_guaranteed", f"for mask {name} you marked dz_{i}/dx_{j} as always zero, but x_{j} is "
                         f"passed through and z_{i} is transformed: z_{i} = x_{i} exp(s_{i}) + t_{i}, and s, t are "
                         f"computed from x_{j}, so this entry is generally non-zero.",
                         "the lower-left block (transformed rows, passed-through columns) is where the networks act.")
        i, j = (int(v) for v in torch.nonzero(truth & ~got)[0])
        why = (f"z_{i} = x_{i} is passed through" if bool(mask[i]) else
               f"x_{j} is transformed, and the networks only see the passed-through coordinates")
        raise wrong("missed_zero", f"for mask {name} dz_{i}/dx_{j} is always zero ({why}), but you did not "
                     f"mark it.", "Z[i, j] is True for i != j when z_i is passed through or x_j is transformed.")
    return ("every off-diagonal entry is zero except 'transformed output, passed-through input': ordered as "
            "(passed through, transformed), the Jacobian is block lower-triangular with a diagonal lower-right block.")


# ---- exercise 3: honest bits per dimension ------------------------------------------------------------------------
_D, _LEVELS = 64, 17


def _bpd(mean_log_q: float) -> float:
    return -(mean_log_q - _D * math.log(_LEVELS)) / (_D * math.log(2))


@checker("honest bits per dimension", "return -(mean_log_q - 64 log 17) / (64 log 2).")
def check_honest_bits_per_dim(bpd) -> str:
    """``bpd(mean_log_q)``: a model's average log q(y) in nats per image, with y = (x + u) / 17, u ~ U(0, 1) and
    64 pixels; return the honest bits per dimension on the discrete images."""
    for L in (-81.8, 12.5, 60.0):
        got = call(bpd, L)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise wrong("not_a_number", f"your function returned {short(got)}, not a number.") from None
        truth = _bpd(L)
        if math.isclose(got, truth, rel_tol=1e-6, abs_tol=1e-9):
            continue
        ln17, ln2 = math.log(_LEVELS), math.log(2)
        variants = {
            "forgot_scaling": (-L / (_D * ln2), "the log-det of the scaling y = (x + u) / 17 is missing: the density "
                               "of v = x + u is q(v / 17) / 17^64, so subtract 64 log 17 from log q."),
            "scaling_sign": (-(L + _D * ln17) / (_D * ln2), "the scaling term has the wrong sign: log p(v) = "
                             "log q(y) - 64 log 17 (dividing by 17 makes the density of v SMALLER)."),
            "nats": (-(L - _D * ln17) / _D, "that is nats per dimension; bits need a division by log 2."),
            "not_per_dim": (-(L - _D * ln17) / ln2, "that is bits per IMAGE; divide by the 64 dimensions."),
            "sign": ((L - _D * ln17) / (_D * ln2), "bits/dim is a NEGATIVE log-likelihood: lower is better, and a "
                     "uniform model scores +4.09."),
            "log2_17_in_nats": (-(L - _D * math.log2(_LEVELS)) / (_D * ln2), "you mixed units: log q is in nats, "
                                "so the scaling term is 64 ln 17, not 64 log2 17."),
        }
        for diagnosis, (v, message) in variants.items():
            if math.isclose(got, v, rel_tol=1e-6, abs_tol=1e-9):
                raise wrong(diagnosis, f"for mean_log_q = {L} you returned {got:.4f}: {message}",
                             "check: a uniform model (mean_log_q = 0) must score log2 17 = 4.087.")
        raise wrong("value", f"for mean_log_q = {L} you returned {got:.4f}, expected {truth:.4f}.",
                     "bpd = -(E[log q(y)] - 64 ln 17) / (64 ln 2); a uniform model (log q = 0) scores 4.087.")
    return ("bpd = -(E[log q(y)] - 64 ln 17) / (64 ln 2): the scaling's log-det is counted, so the number bounds the "
            "model's NLL on the discrete images (a uniform model scores exactly log2 17 = 4.087).")
