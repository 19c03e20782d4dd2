"""Answer checkers for lesson 05 (flows for images); same behaviour as flowlib_teaching.exercises.lesson01 (placeholders are
"not answered yet", ``strict=True`` raises). Each exercise needs one of the lesson's ideas, not a formula copied
from a bold line: the whole chain of log-dets from the discrete image to the latent, the inverse of a squeeze
written with tensor operations, and the shapes of a multi-scale latent.

    check_pipeline_bits_per_dim(fn)  fn(log_p_z, logdet_flow, y, alpha) -> bits/dim per image, counting the
                                     logit pre-processing's log-det (y in [0, 256), shape (B, C, H, W))
    check_unsqueeze(fn)              fn(z) -> the inverse of flowlib's Squeeze: (B, 4C, H/2, W/2) -> (B, C, H, W)
    check_latent_shapes(fn)          fn(shape, levels) -> the shape of the latent each level of the multi-scale
                                     RealNVP factors out, in order
"""
from __future__ import annotations

import math

import torch

from flowlib_teaching.exercises.framework import call, checker, numbers, short, wrong

__all__ = ["check_pipeline_bits_per_dim", "check_unsqueeze", "check_latent_shapes", "pipeline_bits_per_dim"]


# ---- exercise 1: bits/dim through the whole pipeline ------------------------------------------------------------
def _preprocessing_logdet(y: torch.Tensor, alpha: float, levels: int = 256) -> torch.Tensor:
    s = alpha + (1 - 2 * alpha) * y / levels
    per_value = math.log(1 - 2 * alpha) - math.log(levels) - torch.log(s) - torch.log1p(-s)
    return per_value.reshape(y.shape[0], -1).sum(dim=1)


def pipeline_bits_per_dim(log_p_z: torch.Tensor, logdet_flow: torch.Tensor, y: torch.Tensor,
                          alpha: float) -> torch.Tensor:
    """The right answer: log q(y) = log p(z) + log|det dz/dw| + log|det dw/dy|, w = logit(alpha + (1 - 2 alpha) y/256),
    divided by -D ln 2 with D = C*H*W read from y."""
    d = y[0].numel()
    return -(log_p_z + logdet_flow + _preprocessing_logdet(y, alpha)) / (d * math.log(2))


def _pipeline_case(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (4, *shape), generator=g).double()
    x.view(4, -1)[:, : x[0].numel() // 2] = 0  # half the pixels at 0, as in Fashion-MNIST
    y = x + torch.rand(x.shape, generator=g, dtype=torch.float64)
    d = x[0].numel()
    log_p_z = -0.5 * d * math.log(2 * math.pi) - 0.5 * d * (1 + 0.2 * torch.rand(4, generator=g, dtype=torch.float64))
    logdet_flow = 0.3 * d * torch.randn(4, generator=g, dtype=torch.float64)
    return log_p_z, logdet_flow, y


@checker("Exercise 1 — bits/dim from the flow's output, every log-det counted",
          "write bits_per_dim(log_p_z, logdet_flow, y, alpha): log q(y) is log p(z) plus the flow's log-det plus "
          "the pre-processing's; then divide by −D ln 2.")
def check_pipeline_bits_per_dim(fn) -> str:
    """``fn(log_p_z, logdet_flow, y, alpha)``: the base log-density (B,) of the latent, the image flow's log-det
    (B,) (logit space -> latent), the dequantized images y = x + u (B, C, H, W) in [0, 256) and alpha; return
    bits/dim per image (B,)."""
    alpha = 0.05
    for shape, seed in (((1, 28, 28), 0), ((3, 8, 8), 1)):
        log_p_z, logdet_flow, y = _pipeline_case(shape, seed)
        got = numbers(call(fn, log_p_z.clone(), logdet_flow.clone(), y.clone(), alpha), "your bits/dim",
                      (y.shape[0],))
        truth = pipeline_bits_per_dim(log_p_z, logdet_flow, y, alpha)
        if torch.allclose(got, truth, rtol=1e-6, atol=1e-9):
            continue
        d, c, h, w = y[0].numel(), *shape
        ln2 = math.log(2)
        ld_pre = _preprocessing_logdet(y, alpha)
        log_q = log_p_z + logdet_flow + ld_pre
        variants = {
            "forgot_preprocessing": (-(log_p_z + logdet_flow) / (d * ln2),
                                     "the pre-processing y → y/256 → λ + (1 − 2λ)·y/256 → logit is a flow too: its "
                                     "log-det belongs to log q(y), and leaving it out is the published bug this "
                                     "lesson warns about."),
            "forgot_flow_logdet": (-(log_p_z + ld_pre) / (d * ln2), "the image flow's own log-det is missing: "
                                                                    "log q(y) = log p(z) + Σ of every layer's log-det."),
            "flow_logdet_sign": (-(log_p_z - logdet_flow + ld_pre) / (d * ln2),
                                 "the flow's log-det has the wrong sign: in the data → latent direction it is added."),
            "preprocessing_sign": (-(log_p_z + logdet_flow - ld_pre) / (d * ln2),
                                   "the pre-processing's log-det has the wrong sign: it is a data → latent step, so it "
                                   "is added like every other."),
            "forgot_1_over_256": (-(log_q + d * math.log(256)) / (d * ln2),
                                  "the division by 256 is a step with a log-det too: −log 256 per value."),
            "forgot_one_minus_2alpha": (-(log_q - d * math.log(1 - 2 * alpha)) / (d * ln2),
                                        "the factor (1 − 2λ) of v = λ + (1 − 2λ)·y/256 contributes log(1 − 2λ) per "
                                        "value."),
            "logit_at_y": (-(log_p_z + logdet_flow + (math.log(1 - 2 * alpha) - math.log(256) - torch.log(y / 256)
                                                       - torch.log1p(-y / 256)).reshape(4, -1).sum(1)) / (d * ln2),
                           "the logit's derivative 1/(v(1 − v)) is taken at v = λ + (1 − 2λ)·y/256, not at y/256."),
            "multiplied_by_ln2": (-log_q * ln2 / d, "you MULTIPLIED by ln 2; a nat is 1/ln 2 ≈ 1.44 bits, so nats → "
                                                    "bits DIVIDES by ln 2."),
            "nats": (-log_q / d, "that is nats per dimension; divide by ln 2 as well."),
            "per_image": (-log_q / ln2, "that is bits per IMAGE; divide by D = C·H·W."),
            "hard_coded_784": (-log_q / (784 * ln2), f"for images of shape {shape} you divide by 784, the size of a "
                                                     f"28×28 image (rosinality/glow-pytorch issues #3 and #4 report "
                                                     f"such a hard-coded count): read D from y."),
            "forgot_channels": (-log_q / (h * w * ln2), f"for shape {shape} you divide by H·W = {h * w}; every "
                                                        f"channel value is a dimension too: D = C·H·W = {d}."),
            "sign": (log_q / (d * ln2), "bits/dim is a NEGATIVE log-likelihood: lower is better."),
        }
        for diagnosis, (v, message) in variants.items():
            if torch.allclose(got, v, rtol=1e-6, atol=1e-9):
                raise wrong(diagnosis, f"for images of shape {shape}: {message}",
                             "write the chain y → y/256 → v = λ + (1 − 2λ)·y/256 → w = logit(v) → z and add one "
                             "log-det per arrow; then divide by −D ln 2.")
        i = int((got - truth).abs().argmax())
        raise wrong("value", f"for images of shape {shape}, image {i + 1} (counting from 1): you return "
                              f"{float(got[i]):.4f}, expected {float(truth[i]):.4f}.")
    return ("log q(y) = log p(z) + flow log-det + Σ [log(1 − 2λ) − log 256 − log v − log(1 − v)], divided by −D ln 2 "
            "with D read from y: what flowlib.images.bits_per_dim computes, because every step is a Flow.")


# ---- exercise 2: the inverse of a squeeze -----------------------------------------------------------------------
@checker("Exercise 2 — undo a squeeze",
          "write unsqueeze(z) for z of shape (B, 4C, H/2, W/2) with reshape and permute, returning (B, C, H, W).")
def check_unsqueeze(fn) -> str:
    """``fn(z)``: the inverse of ``flowlib.bijections.Squeeze`` (channel 4c + 2i + j holds pixel (2h + i, 2w + j) of
    channel c), written with tensor operations; compared with ``Squeeze().inverse`` on numbered tensors."""
    from flowlib.bijections import Squeeze

    for b, c, h, w in ((2, 1, 4, 8), (1, 3, 8, 4)):
        x = torch.arange(b * c * h * w, dtype=torch.float64).reshape(b, c, h, w)
        z = Squeeze()(x)[0]
        out = call(fn, z.clone())
        got = numbers(out, f"your output for z of shape {tuple(z.shape)}", (b, c, h, w)) if isinstance(
            out, torch.Tensor) and out.shape == x.shape else None
        if got is None:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            if isinstance(out, torch.Tensor) and tuple(out.shape) == (b, 16 * c, h // 4, w // 4):
                raise wrong("squeezed_again", f"for z of shape {tuple(z.shape)} you return shape {shape}: you "
                                               f"squeezed once more instead of undoing the squeeze.")
            raise wrong("shape", f"for z of shape {tuple(z.shape)} you return {shape}, expected {(b, c, h, w)}.",
                         "(B, 4C, H/2, W/2) → (B, C, H, W): the channels shrink by 4, height and width double.")
        if torch.equal(got, x):
            continue
        if torch.equal(got, z.reshape(b, c, h, w)):
            raise wrong("plain_reshape", "a plain reshape keeps the values in memory order, so the four values of a "
                                          "2×2 block end up in four different places: each output channel became a "
                                          "row block of the image.",
                         "view z as (B, C, 2, 2, H/2, W/2), permute to (B, C, H/2, 2, W/2, 2), then reshape.")
        swapped = z.reshape(b, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 3, 5, 2).reshape(b, c, h, w)
        if torch.equal(got, swapped):
            raise wrong("swapped", "the row offset i and the column offset j are swapped: channel 4c + 2i + j holds "
                                    "pixel (2h + i, 2w + j), so the first of the two 2's is the row offset.")
        blocks = z.reshape(b, 2, 2, c, h // 2, w // 2).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h, w)
        if c > 1 and torch.equal(got, blocks):
            raise wrong("channel_blocks", "you read channel (2i + j)·C + c for pixel (i, j) of channel c; flowlib "
                                           "groups the four channels of one input channel together: 4c + 2i + j.")
        first_bad = torch.nonzero(got != x)[0].tolist()
        raise wrong("wrong", f"for z of shape {tuple(z.shape)} (built by numbering the pixels of x), output "
                              f"[{', '.join(map(str, first_bad))}] is {float(got[tuple(first_bad)]):g}, expected "
                              f"{float(x[tuple(first_bad)]):g}.",
                     "channel 4c + 2i + j of z holds pixel (2h + i, 2w + j) of channel c of x.")
    return ("unsqueeze: view (B, C, 2, 2, H/2, W/2), permute to (B, C, H/2, 2, W/2, 2), reshape to (B, C, H, W) — "
            "exactly Squeeze's inverse on every pixel. It only moves values, so its log-det is 0.")


# ---- exercise 3: the latent of each level -------------------------------------------------------------------------
def _true_latent_shapes(shape, levels) -> list[tuple[int, int, int]]:
    from flowlib.builders import multiscale_realnvp_flow

    with torch.random.fork_rng(devices=[]):
        return [tuple(s) for s in multiscale_realnvp_flow(tuple(shape), levels, couplings=1, hidden=2).latent_shapes]


@checker("Exercise 3 — the latent each level factors out",
          "write latent_shapes(shape, levels) returning a list of (C, H, W) tuples, one per level.")
def check_latent_shapes(fn) -> str:
    """``fn(shape, levels)``: the shapes of the parts of the latent that the multi-scale RealNVP of this lesson
    (``multiscale_realnvp_flow``) factors out at each level, the last level's included; compared with the library."""
    for shape, levels in (((1, 28, 28), 2), ((3, 32, 32), 3), ((1, 8, 8), 2)):
        truth = _true_latent_shapes(shape, levels)
        out = call(fn, shape, levels)
        try:
            got = [tuple(int(v) for v in s) for s in out]
        except (TypeError, ValueError):
            raise wrong("not_shapes", f"expected a list of (C, H, W) tuples, got {short(out)}.") from None
        if got == truth:
            continue
        where = f"for an image of shape {shape} and {levels} levels"
        d = math.prod(shape)
        if len(got) != len(truth):
            raise wrong("count", f"{where} you give {len(got)} shapes; every level contributes one part of the "
                                  f"latent, so there are {levels}.")
        if any(len(s) != 3 for s in got):
            raise wrong("not_shapes", f"{where} every shape needs three numbers (C, H, W), got {got}.")
        if any(s[1:] == tuple(shape[1:]) for s in got):
            raise wrong("forgot_squeeze", f"{where} you give {got}: every level starts with a squeeze, which halves "
                                           f"height and width and multiplies the channels by 4.")
        total = sum(math.prod(s) for s in got)
        if total != d:
            no_factor = []
            c, h, w = shape
            for level in range(levels):
                c, h, w = 4 * c, h // 2, w // 2
                no_factor.append((c // 2, h, w) if level < levels - 1 else (c, h, w))
            if got == no_factor:
                raise wrong("no_factor_out", f"{where} your shapes add up to {total} values, not D = {d}: after "
                                              f"factoring out half the channels, only the KEPT half is squeezed at "
                                              f"the next level.", "a flow never creates or drops values.")
            halved_last = truth[:-1] + [(truth[-1][0] // 2, *truth[-1][1:])]
            if got == halved_last:
                raise wrong("last_level_halved", f"{where} your shapes add up to {total}, not D = {d}: the last level "
                                                  f"factors out everything it has, not half.")
            raise wrong("count_values", f"{where} your shapes add up to {total} values, but the latent of a flow "
                                         f"has exactly D = C·H·W = {d}: nothing is created or dropped.")
        i = next(k for k, (a, b) in enumerate(zip(got, truth)) if a != b)
        raise wrong("wrong", f"{where} level {i + 1} (counting from 1) factors out {truth[i]}, you say {got[i]}.",
                     "level l: squeeze (4C, H/2, W/2), couplings, then half the channels out, half kept.")
    return ("level by level: squeeze (×4 channels, ½ height and width), couplings, half the channels out; the last "
            "level keeps nothing back. The shapes add up to D: a flow's latent is exactly as large as its input.")
