"""Lesson 01's answer checkers (the framework they share: ``flowlib_teaching.exercises.framework``).

Every ``check_*`` takes the learner's answer (a function) and returns an ``ExerciseResult`` that shows as one
message: ✓ (correct), ✗ with a diagnosis and a hint, or "not answered yet" for an untouched placeholder (a function
that returns ``None`` or ``...``, or raises ``NotImplementedError``). Nothing is raised unless ``strict=True``, which
raises ``ExerciseError`` (an AssertionError) on anything but a correct answer: the solution cells use it, so that
running the notebooks proves the solutions pass. Checks are deterministic: random ones run under a fixed seed and
leave the global random state as it was.

Lesson 01 (change of variables in 1D):
    check_affine_uniform_density(q, a=3, b=1)   q(x) of x = a z + b, z ~ Uniform(0, 1)
    check_lognormal_log_prob(log_q)             log q(x) of x = exp(z), z ~ N(0, 1)
    check_exponential_sampler(sample, rate=2)   sample(n, rate): inverse-CDF sampling of Exponential(rate)
    check_square_density(q, c=0)                q(x) of x = (z - c)^2, z ~ N(0, 1) (not invertible)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from flowlib_teaching.exercises.framework import (CORRECT, MISSING, WRONG, ExerciseError, ExerciseResult, Verdict,
                                                  call, checker, short, wrong)

__all__ = [
    "ExerciseError", "ExerciseResult", "check_affine_uniform_density", "check_exponential_sampler",
    "check_lognormal_log_prob", "check_square_density",
]


def _num(v: float) -> str:
    """A number as a learner would write it: 3, -2, 0.5, 1/3."""
    return f"{v:g}".replace("-", "−")


def _affine_eq(a: float, b: float) -> str:
    """'x = 3z + 1', 'x = −2z + 5', 'x = z − 1'."""
    az = "z" if a == 1 else "−z" if a == -1 else f"{_num(a)}z"
    return f"x = {az}" + ("" if b == 0 else f" + {_num(b)}" if b > 0 else f" − {_num(-b)}")


def _derived(names: dict) -> dict:
    out = {}
    if "a" in names and "b" in names:
        a, b = names["a"], names["b"]
        out["x_eq"] = _affine_eq(a, b)
        out["z_of_x"] = (f"(x − {_num(b)})/{_num(a)}" if b > 0 else f"(x + {_num(-b)})/{_num(a)}" if b < 0
                         else f"x/{_num(a)}")
        if a < 0:
            out["z_of_x"] = out["z_of_x"].replace(f"/{_num(a)}", f"/({_num(a)})")
    if "c" in names:
        c = names["c"]
        out["sq_eq"] = "x = z²" if c == 0 else (f"x = (z − {_num(c)})²" if c > 0 else f"x = (z + {_num(-c)})²")
        out["roots"] = "z = ±√x" if c == 0 else f"z = {_num(c)} ± √x"
    return out


def _values(fn, x: torch.Tensor) -> np.ndarray:
    """fn evaluated at a batch of points, as a float64 array of shape (N,).

    The points are passed as a float64 tensor of shape (N,); if that raises, as (N, 1) (the shape flowlib models
    take), and if that raises too, the first error is reported.
    """
    try:
        out = call(fn, x.clone())
    except Verdict as first:
        if first.diagnosis != "raised":
            raise
        try:
            out = call(fn, x.clone().reshape(-1, 1))
        except Verdict:
            raise first from None
    return _to_array(out, x.numel())


def _to_array(out, n: int) -> np.ndarray:
    try:
        v = out.detach().cpu().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=float)
    except (TypeError, ValueError, RuntimeError):
        raise wrong("not_numeric", f"your function returned {type(out).__name__} ({short(out)}), not numbers.",
                     "return a tensor with one value per input.") from None
    if v.size == 1 and n > 1:
        raise wrong("scalar", f"your function returned one number ({float(v.reshape(-1)[0]):.4g}) where {n} "
                               f"were expected.", "return one value per input, e.g. with torch.where.")
    if v.size != n:
        raise wrong("shape", f"your function returned {v.size} values (shape {v.shape}) where {n} were expected.",
                     "return one value per input, in a tensor of shape (n,).")
    return v.reshape(-1)


def _require_finite(v: np.ndarray, x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raise wrong("not_finite", f"{what} is {v[i]} at x = {x[i]:.4g} ({int(bad.sum())} of {len(v)} points are "
                                   f"NaN or infinite).",
                     "look for a log of 0 or of a negative number, or a division by 0.")


def _reject_log_density(v: np.ndarray, truth: np.ndarray) -> None:
    """A log-density returned where a density was asked for (e.g. a FlowModel's log_prob)."""
    with np.errstate(over="ignore"):
        if np.all(np.isfinite(v) | (v == -np.inf)) and _close(np.exp(v), truth):
            raise wrong("returned_log_density", "you returned log q(x); the exercise asks for the density q(x).",
                         "exponentiate it: torch.exp(model.log_prob(x)).")


def _integral(x: np.ndarray, v: np.ndarray) -> float:
    return float(np.trapezoid(v, x))


def _close(v: np.ndarray, target: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return bool(np.allclose(v, target, rtol=rtol, atol=atol))


# ---- exercise 1: x = a z + b, z ~ Uniform(0, 1) ----------------------------------------------------------------
@checker("Exercise 1 — density of {x_eq} with z ~ Uniform(0, 1)",
          "define q(x) = p(z)·|dz/dx| with z = f(x) = {z_of_x} and p the Uniform(0, 1) density.", derive=_derived)
def check_affine_uniform_density(q, a: float = 3.0, b: float = 1.0) -> str:
    """``q(x)``: the density of x = a z + b with z ~ Uniform(0, 1), for a tensor of x values."""
    if a == 0:
        raise ValueError("a must be non-zero: x = 0·z + b has no density.")
    lo, hi = sorted((b, a + b))  # the image g([0, 1])
    g_lo, g_hi = sorted((-b / a, (1 - b) / a))  # where p(g(x)) = p(a x + b) is non-zero (a common mistake)
    span = hi - lo
    # wide enough to see the right support, the base's [0, 1] and the mistaken one
    x = torch.linspace(min(lo, 0, g_lo) - 0.5 * span - 1, max(hi, 1, g_hi) + 0.5 * span + 1, 12001,
                       dtype=torch.float64)
    v, xs = _values(q, x), x.numpy()
    tol = 0.01 * span + 1e-3
    away = (np.abs(xs - lo) > tol) & (np.abs(xs - hi) > tol)  # the value exactly at a jump is a convention
    height = 1 / abs(a)
    truth = np.where((xs >= lo) & (xs <= hi), height, 0.0)
    eq = _affine_eq(a, b)
    _reject_log_density(v[away], truth[away])
    _require_finite(v, xs, "q(x)")
    mass = _integral(xs, v)
    if _close(v[away], truth[away]):
        return (f"q(x) = 1/{_num(abs(a))} on [{_num(lo)}, {_num(hi)}] and 0 elsewhere: the uniform's unit of mass is "
                f"spread over an interval {_num(abs(a))} long.")
    if (v < -1e-12).any():
        if a < 0 and _close(v[away], -truth[away]):
            raise wrong("missing_absolute_value",
                         f"your q(x) is {_num(1 / a)} on [{_num(lo)}, {_num(hi)}]: negative. dz/dx = 1/({_num(a)}) is "
                         f"negative because the map is decreasing, and the formula takes its absolute value.",
                         "q(x) = p(z)·|dz/dx|: a density is never negative.")
        i = int(np.argmax(v < -1e-12))
        raise wrong("negative", f"q({xs[i]:.3g}) = {v[i]:.3g} is negative; a density is never negative.",
                     "|dz/dx| carries an absolute value.")
    inside = away & (v > 1e-9)
    if not inside.any():
        raise wrong("zero", f"your q(x) is 0 everywhere on [{xs[0]:.3g}, {xs[-1]:.3g}]: it holds no probability.",
                     f"{eq} sends [0, 1] to [{_num(lo)}, {_num(hi)}]; q must be positive there.")
    s_lo, s_hi = float(xs[inside].min()), float(xs[inside].max())
    h = float(np.median(v[inside]))
    near = lambda u, w: abs(u - w) < 2 * tol  # noqa: E731
    right_support = near(s_lo, lo) and near(s_hi, hi)
    if right_support and abs(h - abs(a)) < 1e-3 and abs(a) != 1:
        raise wrong("multiplied_by_jacobian",
                     f"your q(x) is {_num(abs(a))} on [{_num(lo)}, {_num(hi)}], so it integrates to {mass:.2f}, not 1: "
                     f"you multiplied p(z) by |dx/dz| = {_num(abs(a))} instead of dividing by it.",
                     f"mass is conserved, p(z) dz = q(x) dx, so q(x) = p(z)·|dz/dx| = p(z)/{_num(abs(a))}: "
                     f"stretching an interval by {_num(abs(a))} lowers the density by as much.")
    if right_support and abs(h - 1) < 1e-3 and abs(a) != 1:
        raise wrong("missing_jacobian",
                     f"your q(x) is 1 on [{_num(lo)}, {_num(hi)}], so it integrates to {mass:.2f}, not 1: the factor "
                     f"|dz/dx| is missing (you returned p(f(x)) alone).",
                     f"q(x) = p(f(x))·|df/dx|, and |df/dx| = 1/{_num(abs(a))}.")
    if near(s_lo, 0) and near(s_hi, 1) and not right_support:
        raise wrong("base_density",
                     f"your q(x) is non-zero on [0, 1] (height {h:.3g}): that is where z lives, not x. You evaluated "
                     f"the uniform at x instead of at z = f(x).",
                     f"{eq} sends z in [0, 1] to x in [{_num(lo)}, {_num(hi)}]: q must be non-zero exactly there.")
    if near(s_lo, g_lo) and near(s_hi, g_hi) and not right_support:
        raise wrong("used_g_not_f",
                     f"your q(x) is non-zero on [{g_lo:.3g}, {g_hi:.3g}]: you evaluated p at g(x) = {_num(a)}x + "
                     f"{_num(b)} (the generative map) instead of at its inverse z = f(x).",
                     "the density looks up the latent that produced x: z = f(x) = g⁻¹(x).")
    if not right_support:
        raise wrong("wrong_support",
                     f"your q(x) is non-zero on [{s_lo:.2f}, {s_hi:.2f}], but {eq} with z in [0, 1] lies in "
                     f"[{_num(lo)}, {_num(hi)}].",
                     f"the support of q is the image g([0, 1]) = [{_num(lo)}, {_num(hi)}].")
    if np.ptp(v[away & (xs > lo) & (xs < hi)]) > 1e-3:
        raise wrong("not_constant",
                     f"your q(x) is non-zero on [{_num(lo)}, {_num(hi)}] but not constant there; an affine map of a "
                     f"uniform is uniform.",
                     "|dz/dx| of an affine map is the same number everywhere.")
    raise wrong("wrong_height",
                 f"your q(x) is {h:.4g} on [{_num(lo)}, {_num(hi)}], so it integrates to {mass:.3g}, not 1.",
                 f"the height must be p(z)·|dz/dx| = 1 · 1/{_num(abs(a))}.")


# ---- exercise 2: x = exp(z), z ~ N(0, 1) ------------------------------------------------------------------------
_LOG_2PI = math.log(2 * math.pi)


def _log_normal_pdf(v: np.ndarray) -> np.ndarray:
    return -0.5 * v**2 - 0.5 * _LOG_2PI


@checker("Exercise 2 — log q(x) of x = exp(z) with z ~ N(0, 1) (the log-normal)",
          "define log_q(x) = log p(f(x)) + log|df/dx| with f(x) = log x and p the standard normal.", derive=_derived)
def check_lognormal_log_prob(log_q) -> str:
    """``log_q(x)``: log q(x) of x = exp(z), z ~ N(0, 1), for a tensor of x > 0 (or a model's ``log_prob``)."""
    if hasattr(log_q, "log_prob") and not isinstance(log_q, torch.Tensor):
        log_q = log_q.log_prob  # a FlowModel was passed
    x = torch.logspace(-1.5, 1.4, 600, dtype=torch.float64)
    xs = x.numpy()
    v = _values(log_q, x)
    truth = _log_normal_pdf(np.log(xs)) - np.log(xs)
    _require_finite(v, xs, "log q(x)")
    if _close(v, truth):
        return ("log q(x) = log N(log x; 0, 1) − log x: the log-det of f(x) = log x is log|1/x| = −log x.")
    candidates = [
        ("logdet_wrong_sign", _log_normal_pdf(np.log(xs)) + np.log(xs),
         "the log-det has the wrong sign: you added +log x. With z = f(x) = log x, log|df/dx| = log(1/x) = −log x.",
         "in the data → latent direction the log-det is log|dz/dx|; +log x = log|dx/dz| belongs to the other "
         "direction and enters with a minus: log q(x) = log p(z) − log|dg/dz|."),
        ("missing_logdet", _log_normal_pdf(np.log(xs)),
         "the log-det term is missing: you returned log p(log x) alone. That function integrates to e^(1/2) ≈ 1.65, "
         "not 1.",
         "add log|df/dx| for f(x) = log x, which is −log x."),
        ("returned_density", np.exp(truth),
         "you returned q(x), the density itself; the exercise asks for its logarithm.",
         "take the log (or work in logs throughout: log q = log p(z) + log-det)."),
        ("wrong_direction", _log_normal_pdf(np.exp(xs)) + xs,
         "you used x ↦ exp(x) as f (data → latent). For x = exp(z) the flow goes the other way: f(x) = log x.",
         "in flowlib the flow of x = exp(z) is Inverse(Exp()): FlowModel(Inverse(Exp()), StandardNormal())."),
        ("base_at_x", _log_normal_pdf(xs) - np.log(xs),
         "you evaluated the normal density at x instead of at z = f(x) = log x.",
         "log q(x) = log p(log x) − log x."),
    ]
    for diagnosis, planted, message, hint in candidates:
        if np.all(np.isfinite(planted)) and _close(v, planted):
            raise wrong(diagnosis, message, hint)
    offset = v - truth
    if np.ptp(offset) < 1e-4:
        c = float(np.mean(offset))
        missing = " (that is ½ log 2π: the normal's normalising constant)" if abs(abs(c) - 0.5 * _LOG_2PI) < 1e-3 \
            else ""
        raise wrong("constant_offset", f"your log q(x) is off by the constant {c:+.4f}{missing}; the shape is right.",
                     "log N(z; 0, 1) = −z²/2 − ½ log 2π.")
    i = int(np.argmax(np.abs(v - truth)))
    raise wrong("wrong", f"at x = {xs[i]:.3g} your log q(x) is {v[i]:.4g} but it should be {truth[i]:.4g}.",
                 "log q(x) = log p(z) + log|dz/dx| with z = log x.")


# ---- exercise 3: inverse-CDF sampling of Exponential(rate) -------------------------------------------------------
@checker("Exercise 3 — inverse-CDF sampler for Exponential(rate)",
          "define sample(n, rate): draw u ~ Uniform(0, 1) with torch.rand(n) and return F⁻¹(u) for "
          "F(x) = 1 − exp(−rate·x).", derive=_derived)
def check_exponential_sampler(sample, rate: float = 2.0, n: int = 200_000) -> str:
    """``sample(n, rate)`` -> n samples of Exponential(rate) (density rate·exp(−rate·x) on x ≥ 0, mean 1/rate)."""
    with torch.random.fork_rng(devices=[]):
        state = np.random.get_state()
        try:
            torch.manual_seed(0)
            np.random.seed(0)
            first = _to_array(call(sample, n, rate), n)
            torch.manual_seed(1)
            np.random.seed(1)
            second = _to_array(call(sample, n, rate), n)
        finally:
            np.random.set_state(state)
    x = first
    if np.isnan(x).any():
        raise wrong("nan", f"{int(np.isnan(x).sum())} of your {n} samples are NaN: the log of a negative number. "
                            f"Your u is not in (0, 1).",
                     "inverse-CDF sampling needs uniform u: torch.rand (uniform on [0, 1)), not torch.randn (normal).")
    if np.isinf(x).any():
        raise wrong("inf", f"{int(np.isinf(x).sum())} of your samples are infinite: −log(0).",
                     "u from torch.rand can be exactly 0; use 1 − u, which lies in (0, 1].")
    neg = float((x < 0).mean())
    if neg == 0 and x.max() < 1 and abs(float(x.mean()) - (1 - (1 - math.exp(-rate)) / rate)) < 0.01:
        raise wrong("applied_cdf", f"all your samples lie in [0, 1) with mean {x.mean():.3f}: you applied F to "
                                    f"the uniform numbers, u ↦ 1 − exp(−rate·u). Sampling needs the INVERSE: the x "
                                    f"with F(x) = u.",
                     "solve u = 1 − exp(−rate·x) for x: x = −log(1 − u)/rate.")
    if neg > 0.99:
        raise wrong("negative_samples", f"all your samples are negative (mean {x.mean():.3g}), but an exponential "
                                         f"variable is ≥ 0: log(u) < 0 for u in (0, 1).",
                     "solve u = F(x) = 1 − exp(−rate·x): x = −log(1 − u)/rate (or −log(u)/rate, since 1 − u is "
                     "uniform too). Mind the minus sign.")
    if neg > 0:
        raise wrong("non_uniform_input",
                     f"{100 * neg:.0f}% of your samples are negative; an exponential variable is never negative. "
                     f"−log(u) is negative only when u > 1, so your u is not uniform on (0, 1).",
                     "some of your u exceed 1: draw u uniform on (0, 1), with torch.rand(n).")
    if np.array_equal(first, second):
        raise wrong("not_random", "your sampler returns the same numbers every time it is called (even after "
                                   "reseeding), so it is not drawing fresh random numbers.",
                     "draw u = torch.rand(n) inside the function, without creating a seeded generator there.")
    mean, target = float(x.mean()), 1.0 / rate
    ks = _ks_exponential(x, rate)
    # Kolmogorov–Smirnov at the 1e-9 level (critical value sqrt(ln(2/alpha)/2)/sqrt(n)): a correct sampler that
    # draws from its own generator (not reseeded by the checker) is never rejected by chance, while n = 200,000
    # still catches a scale error of a few per cent.
    if ks < 3.27 / math.sqrt(n):
        return (f"your {n} samples have mean {mean:.4f} (1/rate = {target:.4f}) and follow Exponential({rate:g}) "
                f"(Kolmogorov–Smirnov distance {ks:.4f}).")
    if abs(mean - rate) < 6 * rate / math.sqrt(n) and abs(rate - target) > 1e-9:
        raise wrong("rate_confusion",
                     f"your samples have mean {mean:.3f} ≈ rate = {rate:g}, but Exponential(rate) has mean 1/rate = "
                     f"{target:g}: you multiplied by the rate instead of dividing.",
                     "x = −log(1 − u)/rate: a larger rate means events come sooner, so samples get smaller.")
    if abs(mean - 1.0) < 6 / math.sqrt(n) and abs(rate - 1) > 1e-9:
        raise wrong("missing_rate", f"your samples have mean {mean:.3f} ≈ 1: they follow Exponential(1), not "
                                     f"Exponential({rate:g}).",
                     "divide −log(1 − u) by the rate.")
    raise wrong("wrong_distribution",
                 f"your samples are not Exponential({rate:g}): mean {mean:.3f} (should be {target:.3f}), standard "
                 f"deviation {x.std():.3f} (should be {target:.3f}), Kolmogorov–Smirnov distance {ks:.3f}.",
                 "apply the inverse CDF x = −log(1 − u)/rate to uniform u.")


def _ks_exponential(x: np.ndarray, rate: float) -> float:
    """The Kolmogorov–Smirnov distance between the sample's empirical CDF and 1 − exp(−rate·x)."""
    s = np.sort(x)
    cdf = 1 - np.exp(-rate * np.clip(s, 0, None))
    k = np.arange(1, len(s) + 1) / len(s)
    return float(max(np.max(k - cdf), np.max(cdf - (k - 1 / len(s)))))


# ---- exercise 4: x = z^2, z ~ N(0, 1) ---------------------------------------------------------------------------
def _normal_pdf(v: np.ndarray) -> np.ndarray:
    return np.exp(_log_normal_pdf(v))


@checker("Exercise 4 — density of {sq_eq} with z ~ N(0, 1) (a map that is not invertible)",
          "define q(x) for x > 0 as a sum over the two preimages {roots} of p(z)·|dz/dx|.", derive=_derived)
def check_square_density(q, c: float = 0.0) -> str:
    """``q(x)``: the density of x = (z − c)² with z ~ N(0, 1), for a tensor of x > 0."""
    x = torch.cat([torch.logspace(-6, -2, 200, dtype=torch.float64)[:-1],
                   torch.linspace(0.01, 30.0, 6000, dtype=torch.float64)])
    xs = x.numpy()
    v = _values(q, x)
    r = np.sqrt(xs)
    plus, minus = _normal_pdf(c + r), _normal_pdf(c - r)  # p at the two preimages
    jac = 1 / (2 * r)  # |dz/dx| at both
    truth = (plus + minus) * jac
    _reject_log_density(v, truth)
    _require_finite(v, xs, "q(x)")
    mass = _integral(xs, v)
    roots = "z = ±√x" if c == 0 else f"z = {_num(c)} + √x and z = {_num(c)} − √x"
    if _close(v, truth):
        extra = " (the χ² density with one degree of freedom)" if c == 0 else ""
        return (f"q(x) = [p({_num(c)} + √x) + p({_num(c)} − √x)]·1/(2√x): both preimages contribute{extra}."
                if c != 0 else f"q(x) = [p(√x) + p(−√x)]·1/(2√x) = p(√x)/√x: both preimages contribute{extra}.")
    one = (f"your q(x) integrates to {mass:.2f}, not 1: you counted only one preimage. Both {roots} are sent to "
           f"the same x, so their contributions add up.")
    one_hint = "q(x) = Σ over the preimages z of p(z)·|dz/dx|, with |dz/dx| = 1/(2√x) for both."
    candidates = [
        ("one_preimage", plus * jac, one, one_hint),
        ("one_preimage", minus * jac, one, one_hint),
        ("missing_jacobian", plus + minus,
         "the factor |dz/dx| = 1/(2√x) is missing: you added the densities at the two preimages without it.",
         "each preimage contributes p(z)·|dz/dx|, and dz/dx = ±1/(2√x)."),
        ("missing_jacobian", plus, "you returned p at one preimage, without the |dz/dx| factor.", one_hint),
        ("missing_jacobian", minus, "you returned p at one preimage, without the |dz/dx| factor.", one_hint),
        ("multiplied_by_jacobian", (plus + minus) * 2 * r,
         "you multiplied by |dx/dz| = 2√x instead of dividing by it (counting both preimages is right).",
         "mass is conserved, p(z)|dz| = q(x)|dx|, so q = p(z)·|dz/dx| = p(z)/(2√x) for each preimage."),
        ("multiplied_by_jacobian", plus * 2 * r,
         "you multiplied by |dx/dz| = 2√x instead of dividing by it, and counted only one preimage.", one_hint),
        ("multiplied_by_jacobian", minus * 2 * r,
         "you multiplied by |dx/dz| = 2√x instead of dividing by it, and counted only one preimage.", one_hint),
        ("base_at_x", _normal_pdf(xs) / r,
         "you evaluated the normal density at x instead of at the preimages.", one_hint),
    ]
    if c != 0:
        candidates.insert(0, ("ignored_shift", _normal_pdf(r) / r,
                              f"that is the density of z² (c = 0); here x = (z − {_num(c)})², whose preimages "
                              f"{roots} have different densities p.",
                              "evaluate p at both preimages c + √x and c − √x."))
    for diagnosis, planted, message, hint in candidates:
        if _close(v, planted):
            raise wrong(diagnosis, message, hint)
    i = int(np.argmax(np.abs(v - truth)))
    raise wrong("wrong", f"at x = {xs[i]:.3g} your q(x) is {v[i]:.4g} but it should be {truth[i]:.4g}; your q "
                          f"integrates to {mass:.3f} over (0, 30].",
                 f"q(x) = Σ over the preimages {roots} of p(z)·|dz/dx|.")
