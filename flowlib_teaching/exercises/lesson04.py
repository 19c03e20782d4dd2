"""Answer checkers for lesson 04 (coupling layers), in the style of ``flowlib_teaching.exercises.lesson01``: a checker says WHAT is
wrong; a placeholder answer gets "not answered yet" and no exception; ``strict=True`` raises ``ExerciseError`` on
anything but a correct answer (the hidden solution cells use it).

    check_coupling_inverse(inverse)        inverse(z, mask, log_scale_and_shift) -> (x, logdet) of an affine coupling
    check_guaranteed_zeros(zeros)          zeros(mask) -> (D, D) booleans: which dz_i/dx_j are 0 for ANY network
    check_logit_bits_per_dim(bpd)          bpd(log_q_w, y) for digits seen through w = logit(a + (1 - 2a) y)
"""
from __future__ import annotations

import math

import torch

from flowlib.bijections.coupling import AffineCoupling
from flowlib_teaching.exercises.framework import ExerciseError, ExerciseResult, call, checker, numbers, wrong
from flowlib.bijections.masks import alternating_mask, half_mask, random_mask

__all__ = ["ExerciseError", "ExerciseResult", "check_coupling_inverse", "check_guaranteed_zeros",
           "check_logit_bits_per_dim", "logit_bits_per_dim"]


_BATCH_HINT = "work on whole batches: every operation in a coupling is element-wise or a sum over dim 1."


def _tensor(out, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    return numbers(out, what, shape, _BATCH_HINT)


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
    # dividing by the log-scale s divides by 0 where s = 0 (the passed-through half): judge it on the other half
    by_s = (z - t)[:, ~keep] / s[:, ~keep]
    if torch.allclose(x_hat[:, ~keep], by_s, atol=1e-6) and not torch.allclose(x_hat[:, ~keep], x[:, ~keep]):
        raise wrong("scale_not_log", "you divided by s; s is a LOG-scale, the scale is exp(s) (and s = 0 on the "
                                      "passed-through half, where your division gives inf or NaN).",
                     "write the forward map, z = x * exp(s) + t, and solve it for x.")
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
            # the transpose of the pattern is exactly the pattern of the flipped mask 1 - m, so the two mistakes give
            # the same answer: name both
            raise wrong("transposed", f"for mask {name} your pattern is the transpose of the right one, which is the "
                         f"same as the right pattern for the FLIPPED mask. Either rows and columns are swapped, or "
                         f"you read mask = 1 as 'transformed'; in the course mask = 1 means PASSED THROUGH unchanged.",
                         "rows are outputs z_i and columns inputs x_j: J[i, j] = dz_i/dx_j; passed = mask.bool().")
        # indices in the messages count from 1, as the lesson does (x_1 ... x_D); tensors count from 0
        diag = torch.nonzero(torch.diagonal(got)).reshape(-1)
        if len(diag):
            i = int(diag[0]) + 1
            raise wrong("diagonal", f"for mask {name} you marked dz_{i}/dx_{i} (row {i}, column {i}, counting from "
                         f"1) as zero; a diagonal entry is 1 (passed through) or exp(s_{i}) > 0 (transformed), never "
                         f"0.", "if a diagonal entry could be 0 the layer would not be invertible.")
        wrong_zero = torch.nonzero(got & ~truth)
        if len(wrong_zero):
            i, j = (int(v) + 1 for v in wrong_zero[0])
            raise wrong("not_guaranteed", f"for mask {name} you marked dz_{i}/dx_{j} (row {i}, column {j}, counting "
                         f"from 1) as always zero, but x_{j} is passed through and z_{i} is transformed: "
                         f"z_{i} = x_{i} exp(s_{i}) + t_{i}, and s, t are computed from x_{j}, so this entry is "
                         f"generally non-zero.",
                         "the lower-left block (transformed rows, passed-through columns) is where the networks act.")
        i0, j0 = (int(v) for v in torch.nonzero(truth & ~got)[0])
        i, j = i0 + 1, j0 + 1
        why = (f"z_{i} = x_{i} is passed through" if bool(mask[i0]) else
               f"x_{j} is transformed, and the networks only see the passed-through coordinates")
        raise wrong("missed_zero", f"for mask {name} dz_{i}/dx_{j} (row {i}, column {j}, counting from 1) is always "
                     f"zero ({why}), but you did not mark it.",
                     "Z[i, j] is True for i != j when z_i is passed through or x_j is transformed.")
    return ("every off-diagonal entry is zero except 'transformed output, passed-through input': ordered as "
            "(passed through, transformed), the Jacobian is block lower-triangular with a diagonal lower-right block.")


# ---- exercise 3: honest bits per dimension through the logit pre-processing ------------------------------------------
_D, _LEVELS, _ALPHA = 64, 17, 0.01


def _logit_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_q_w (B,), y (B, 64)): dequantized digits-like pixels y = (x + u)/17 and log-densities in logit space."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, _LEVELS, (5, _D), generator=g).double()
    x[:, :20] = 0  # many pixels at level 0, as in the digits: where the logit's log-det is largest
    y = (x + torch.rand(x.shape, generator=g, dtype=torch.float64)) / _LEVELS
    log_q_w = -100.0 + 20.0 * torch.randn(5, generator=g, dtype=torch.float64)
    return log_q_w, y


def logit_bits_per_dim(log_q_w: torch.Tensor, y: torch.Tensor, alpha: float = _ALPHA) -> torch.Tensor:
    """The right answer: log q(y) = log q_W(w) + sum_i log|dw_i/dy_i|, w_i = logit(s_i), v_i = alpha + (1-2alpha) y_i,
    dw/dy = (1 - 2 alpha) / (s (1 - s)); then the scaling's -64 ln 17 and the conversion to bits per dimension."""
    s = alpha + (1 - 2 * alpha) * y
    log_q_y = log_q_w + (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).sum(dim=1)
    d = y.shape[1]
    return -(log_q_y - d * math.log(_LEVELS)) / (d * math.log(2))


@checker("honest bits per dimension through the logit pre-processing",
          "write my_bpd(log_q_w, y): add the logit step's log-det to log q_W(w), subtract 64 ln 17, convert to bits "
          "per dimension.")
def check_logit_bits_per_dim(bpd) -> str:
    """``bpd(log_q_w, y)``: ``log_q_w`` (B,) is the flow's log-density of w = logit(alpha + (1 - 2 alpha) y) with
    alpha = 0.01, ``y`` (B, 64) the dequantized digits (x + u)/17; return the honest bits/dim per image, shape (B,)."""
    log_q_w, y = _logit_case()
    out = call(bpd, log_q_w.clone(), y.clone())
    got = _tensor(out, "your bits/dim", (y.shape[0],))
    truth = logit_bits_per_dim(log_q_w, y)
    if torch.allclose(got, truth, rtol=1e-6, atol=1e-8):
        return ("log q(y) = log q_W(w) + Σ [log(1 − 2λ) − log v − log(1 − v)], then −(log q(y) − 64 ln 17)/(64 ln 2): "
                "every step between the discrete image and the flow's latent counted once.")
    s = _ALPHA + (1 - 2 * _ALPHA) * y
    ld = (math.log(1 - 2 * _ALPHA) - torch.log(s) - torch.log1p(-s)).sum(dim=1)
    ln17, ln2, d = math.log(_LEVELS), math.log(2), _D
    variants = {
        "forgot_logit_logdet": (-(log_q_w - d * ln17) / (d * ln2),
                                "you used log q_W(w) as if it were log q(y): the logit step stretches space, and its "
                                "log-det Σ log|dw_i/dy_i| belongs to log q(y)."),
        "logit_logdet_sign": (-(log_q_w - ld - d * ln17) / (d * ln2),
                              "the logit step's log-det has the wrong sign: in the data → latent direction it is "
                              "ADDED, log q(y) = log q_W(w) + Σ log|dw_i/dy_i| (lesson 01's change of variables)."),
        "forgot_one_minus_2alpha": (-(log_q_w + ld - d * math.log(1 - 2 * _ALPHA) - d * ln17) / (d * ln2),
                                    "the derivative of the affine step v = λ + (1 − 2λ) y is missing: dw/dy = "
                                    "(1 − 2λ) / (v (1 − v)), so each pixel adds log(1 − 2λ) too."),
        "logit_of_y": (-(log_q_w + (math.log(1 - 2 * _ALPHA) - torch.log(y) - torch.log1p(-y)).sum(1) - d * ln17)
                       / (d * ln2), "you evaluated the logit's derivative at y; it is evaluated at v = λ + (1 − 2λ) y, "
                                    "the value the logit actually receives."),
        "forgot_scaling": (-(log_q_w + ld) / (d * ln2), "the scaling y = (x + u)/17 has a log-det too: subtract "
                                                        "64 ln 17 (section 6)."),
        "scaling_sign": (-(log_q_w + ld + d * ln17) / (d * ln2), "the scaling term has the wrong sign: log p(x + u) "
                                                                 "= log q(y) − 64 ln 17."),
        "nats": (-(log_q_w + ld - d * ln17) / d, "that is nats per dimension; divide by ln 2 as well."),
        "not_per_dim": (-(log_q_w + ld - d * ln17) / ln2, "that is bits per IMAGE; divide by the 64 dimensions."),
        "sign": ((log_q_w + ld - d * ln17) / (d * ln2), "bits/dim is a NEGATIVE log-likelihood (lower is better)."),
    }
    for diagnosis, (v, message) in variants.items():
        if torch.allclose(got, v, rtol=1e-6, atol=1e-8):
            raise wrong(diagnosis, message, "write the chain x → y = (x + u)/17 → v = λ + (1 − 2λ) y → w = logit(v) "
                                             "and add one log-det per arrow.")
    i = int((got - truth).abs().argmax())
    raise wrong("value", f"for image {i + 1} (counting from 1) you return {float(got[i]):.4f}, expected "
                          f"{float(truth[i]):.4f}.",
                 "log q(y) = log q_W(w) + Σ_i [log(1 − 2λ) − log v_i − log(1 − v_i)], v_i = λ + (1 − 2λ) y_i.")
