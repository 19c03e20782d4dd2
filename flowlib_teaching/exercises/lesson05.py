"""Answer checkers for lesson 05 (flows for images); same behaviour as flowlib_teaching.exercises.lesson01 (placeholders are
"not answered yet", ``strict=True`` raises).

    check_bits_per_dim(fn)            fn(nll_nats, shape) -> bits/dim of one image of that (C, H, W) shape
    check_noise_width_correction(fn)  fn(reported_bpd, width) -> the honest bits/dim when the noise had width w
    check_squeeze_index(fn)           fn(c, h, w) -> (c', h', w'): where Squeeze sends pixel (c, h, w)
"""
from __future__ import annotations

import math

from flowlib_teaching.exercises.framework import call, checker, wrong

__all__ = ["check_bits_per_dim", "check_noise_width_correction", "check_squeeze_index"]


def _number(v, what: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise wrong("not_numeric", f"{what} should be a number, got {type(v).__name__} ({v!r}).") from None


@checker("Exercise 1 — bits per dimension from a negative log-likelihood in nats",
          "bits/dim = NLL / (D · ln 2) with D = C·H·W, the number of values in one image.")
def check_bits_per_dim(fn) -> str:
    cases = [(2000.0, (1, 28, 28)), (6000.0, (3, 32, 32)), (150.0, (1, 8, 8))]
    for nll, shape in cases:
        d = math.prod(shape)
        got = _number(call(fn, nll, shape), "bits/dim")
        want = nll / (d * math.log(2))
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        if math.isclose(got, nll / d, rel_tol=1e-6):
            raise wrong("nats", f"for NLL = {nll:g} nats and shape {shape} you give {got:.4f}: that is nats per "
                                 f"dimension, not bits.", "divide by ln 2 as well (1 nat = 1/ln 2 bits).")
        if math.isclose(got, nll / math.log(2), rel_tol=1e-6):
            raise wrong("per_image", f"you give {got:.1f}: bits per image. Divide by the number of dimensions.",
                         f"for shape {shape}, D = {d}.")
        if math.isclose(got, nll / (784 * math.log(2)), rel_tol=1e-6):
            raise wrong("hard_coded_784", f"for shape {shape} you divide by 784, the pixel count of a 28x28 image "
                                           f"(a bug shipped by real Glow code).", "compute D from the shape.")
        if math.isclose(got, nll / (shape[1] * shape[2] * math.log(2)), rel_tol=1e-6):
            raise wrong("forgot_channels", f"for shape {shape} you divide by H·W = {shape[1] * shape[2]}; every "
                                            f"channel value is a dimension too.", f"D = C·H·W = {d}.")
        if math.isclose(got, nll / (d * math.log(10)), rel_tol=1e-6):
            raise wrong("log10", "you divide by ln 10: that gives 'digits' per dimension.", "bits use ln 2.")
        raise wrong("other", f"for NLL = {nll:g} nats and shape {shape} the answer is {want:.4f}, you give "
                              f"{got:.4f}.")
    return "NLL / (C·H·W · ln 2), for any image shape."


@checker("Exercise 2 — the honest bits/dim when the dequantization noise had width w",
          "a density on y = x + w·u packs each integer's probability into a box of volume w^D; "
          "log P(x) ≥ E log q(y) + D log w.")
def check_noise_width_correction(fn) -> str:
    for reported, width in [(3.0, 0.5), (2.4, 0.25), (5.0, 1.0)]:
        got = _number(call(fn, reported, width), "the corrected bits/dim")
        want = reported - math.log2(width)
        if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
            continue
        if math.isclose(got, reported + math.log2(width), abs_tol=1e-9) and width != 1:
            raise wrong("wrong_sign", f"for {reported} bits/dim with width {width} you give {got:g}: the "
                                       f"correction goes the wrong way. A narrower box makes the density look higher "
                                       f"than it is, so the honest number must be larger.",
                         "honest = reported − log2(w), and log2(0.5) = −1.")
        if math.isclose(got, reported, abs_tol=1e-9) and width != 1:
            raise wrong("no_correction", "you return the reported number unchanged: that is the published mistake "
                                          "this exercise is about.", "add −log2(w) bits per dimension.")
        if math.isclose(got, reported - math.log(width), abs_tol=1e-9):
            raise wrong("natural_log", "you subtract ln(w): the correction must be in bits, log2(w).")
        raise wrong("other", f"for {reported} bits/dim with width {width} the honest figure is {want:g}, "
                              f"you give {got:g}.")
    return "honest bits/dim = reported − log2(w): a width-0.5 noise flatters a model by exactly 1 bit/dim."


@checker("Exercise 3 — where does Squeeze send pixel (c, h, w)?",
          "each 2×2 block of channel c becomes channels 4c, 4c+1, 4c+2, 4c+3 in reading order.")
def check_squeeze_index(fn) -> str:
    import torch

    from flowlib.bijections import Squeeze

    c_, h_, w_ = 2, 4, 6
    x = torch.arange(c_ * h_ * w_, dtype=torch.float64).reshape(1, c_, h_, w_)
    z = Squeeze()(x)[0][0]
    for c in range(c_):
        for h in range(h_):
            for w in range(w_):
                got = call(fn, c, h, w)
                try:
                    cc, hh, ww = (int(v) for v in got)
                except (TypeError, ValueError):
                    raise wrong("not_a_triple", f"expected a triple (c', h', w'), got {got!r}.") from None
                value = c * h_ * w_ + h * w_ + w
                ok = 0 <= cc < 4 * c_ and 0 <= hh < h_ // 2 and 0 <= ww < w_ // 2 and z[cc, hh, ww] == value
                if ok:
                    continue
                if (cc, hh, ww) == (4 * c + 2 * (w % 2) + h % 2, h // 2, w // 2):
                    raise wrong("swapped", f"pixel (c={c}, h={h}, w={w}) goes to channel "
                                            f"{4 * c + 2 * (h % 2) + w % 2}, you say {cc}: the row offset and the "
                                            f"column offset are swapped.", "reading order: row first, so 2·i + j.")
                if hh != h // 2 or ww != w // 2:
                    raise wrong("position", f"pixel (c={c}, h={h}, w={w}) lands at position "
                                             f"({h // 2}, {w // 2}), you say ({hh}, {ww}).",
                                 "the 2×2 block containing (h, w) starts at (2·(h//2), 2·(w//2)).")
                raise wrong("channel", f"pixel (c={c}, h={h}, w={w}) goes to channel {4 * c + 2 * (h % 2) + w % 2}, "
                                        f"you say {cc}.", "the four channels of input channel c are 4c ... 4c+3.")
    return "(4c + 2·(h mod 2) + (w mod 2), h // 2, w // 2), checked against flowlib's Squeeze on every pixel."
