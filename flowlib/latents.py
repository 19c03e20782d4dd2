"""What an exact latent buys (lesson 07): encode an image, move its latent, decode it back.

A shipped image model (lesson 05's RealNVP, lesson 06's Glow) is a ``FlowModel`` whose flow is

    y --logit pre-processing--> v --MultiScale--> z (B, D),   z ~ N(0, I),   D = C*H*W,

and z is ONE flat vector that holds every level's factored-out part (``flowlib.multiscale``). Everything here is
exact arithmetic on that vector:

encode / decode
    ``encode(model, x)`` maps integer images x to z = f(x + 1/2): the dequantization is FIXED at the centre of each
    pixel's bin (training used random u ~ U[0, 1); for an encoding we want one deterministic latent per image, and the
    centre is the point every u averages to). ``decode(model, z)`` returns y = f^{-1}(z), continuous values in
    [0, 256); ``to_pixels(y) = floor(y)`` gives integers back, and decode(encode(x)) = x + 1/2 up to float rounding,
    so to_pixels(decode(encode(x))) == x exactly.
temperature
    ``sample(model, n, temperature=T)`` decodes z ~ N(0, T^2 I). T < 1 draws from the high-density core of the
    base; T = 0 decodes z = 0, the base's mode.
interpolation
    ``interpolate(z0, z1, steps, "linear" | "spherical")``. Why spherical: a D-dimensional standard normal puts almost
    all its mass on a thin shell of radius ~ sqrt(D) (|z|^2 is chi-squared with mean D and sd sqrt(2D)). The straight
    line between two typical latents cuts inside that shell (its midpoint has norm ~ sqrt(D / 2)), i.e. through
    latents the model never sees; the spherical path (slerp) keeps the norm on the shell.
attribute vectors
    ``attribute_direction(z, labels, source, target)`` = mean latent of class ``target`` minus mean latent of class
    ``source`` (the Glow paper's "smile vector", here from Fashion-MNIST labels); ``apply_direction`` adds it with a
    strength.
levels
    ``split_levels`` / ``merge_levels`` expose the per-level latents; ``swap_levels(model, z_a, z_b, ...)`` takes the
    coarse levels of one image and the fine ones of another; ``resample_levels`` replaces levels by fresh noise (what
    a decoder that does not keep the factored-out latents does: the image is no longer reconstructed).

precision
    ``encode`` and ``decode`` (and ``decode_with_logdet``, ``sample``) compute in float64 by default while taking and
    returning the model's own dtype (float32 for the shipped models): ``precision="float64"`` runs a float64 copy of
    the model (its float32 weights are exactly representable in float64, so it is the same map, computed with 16
    digits instead of 7), made once and cached until the model's weights change. Why: float32 keeps about 7
    significant digits, every one of Glow's ~100 layers rounds, and the inverse amplifies what was rounded before it:
    a coupling's inverse divides by its scale sigmoid(h + 2) after subtracting a shift computed by a float32 network,
    the 1x1 convolutions' triangular solves and the ActNorms rescale, and the logit pre-processing's inverse multiplies
    an error in logit space by up to 256 * p (1 - p) / (1 - 2 alpha) ~ 71 on the way back to pixel units. Measured
    on the shipped Glow (``python -m benchmarks latent_round_trip_layers``), no kind of layer dominates: each of them
    but the logit, computed alone in float32, costs 1.8e-3 to 2.9e-2 grey levels on the worst test images, and the
    decoding direction's error is the larger (0.039 against 0.0066); so a float64 computation is what fixes it. Over all 10,000 test images (``python -m
    benchmarks latent_round_trip``) the largest error of decode(encode(x)) falls from 0.030 grey levels (1.2e-4 on
    the [0, 1] scale) to 1.1e-3 (4.2e-6), the floor that float32 latents set: rounding the exact latent to float32
    and decoding it exactly already moves the worst image that far. It costs 2.8 times the CPU time (68 ms per image
    for encode + decode on one CPU thread instead of 24). ``precision="model"`` computes in the model's own dtype:
    the fast path, and the one that shows the float32 rounding. A model moved to float64 (``model.double()``)
    computes in float64 either way. A decoding counts as overflowed (``nonfinite=``) when its image or log-det is not
    finite once returned in the model's dtype: a latent that overflows float32 somewhere in the inverse drives the
    logit-space values (and with them the log-det) beyond float32's range, so the same latents overflow as in the
    model's own computation (tests/test_latents.py checks a case where float64 alone would not overflow).

Bad input (a wrong image shape, non-integer pixels, an unknown class name, a temperature outside
``TEMPERATURE_RANGE``, a level that does not exist) raises ValueError with what is allowed.
"""
from __future__ import annotations

import copy
import math
import weakref
from typing import Sequence

import torch
from torch import Tensor

from .core import Compose, FlowInputError
from .data.fashion_mnist import CLASSES
from .images import check_pixels, pixels_from_data
from .bijections.multiscale import MultiScale

TEMPERATURE_RANGE = (0.0, 2.0)
METHODS = ("linear", "spherical")
DEQUANTIZATION_OFFSET = 0.5  # encode() places every pixel at the centre of its bin [x, x + 1)
PRECISIONS = ("float64", "model")  # encode/decode compute in float64 (default) or in the model's own dtype


# ---- the model's parts ----------------------------------------------------------------------------------------------
def multiscale_of(model) -> MultiScale:
    """The ``MultiScale`` part of a shipped image model (its flow is Compose(pre-processing, MultiScale))."""
    flow = getattr(model, "flow", None)
    parts = list(flow.flows) if isinstance(flow, Compose) else [flow]
    for p in parts:
        if isinstance(p, MultiScale):
            return p
    raise ValueError(f"expected an image FlowModel whose flow contains a MultiScale (lesson 05's RealNVP, lesson "
                     f"06's Glow), got a {type(model).__name__} with flow {type(flow).__name__}.")


def event_shape(model) -> tuple[int, int, int]:
    return tuple(multiscale_of(model).event_shape)  # type: ignore[return-value]


def level_count(model) -> int:
    return len(multiscale_of(model).latent_shapes)


def check_images(model, x: Tensor) -> Tensor:
    """Integer images as (B, C, H, W) for ``model``; (C, H, W) and (H, W) single images are accepted."""
    shape = event_shape(model)
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor of integer images, got {type(x).__name__}.")
    if x.dim() == 2 and shape[0] == 1:
        x = x[None, None]
    elif x.dim() == 3 and tuple(x.shape) == shape:
        x = x[None]
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"this model encodes images of shape (B, {', '.join(map(str, shape))}) (or one image of "
                         f"shape {shape}); got {tuple(x.shape)}.")
    check_pixels(x)
    return x


# ---- encode, decode, sample -----------------------------------------------------------------------------------------
@torch.no_grad()
def encode(model, x: Tensor, batch_size: int = 256, precision: str = "float64") -> Tensor:
    """z = f(x + 1/2) (B, D) in the model's dtype: the full flat latent of integer images x, every level included.

    ``precision="float64"`` (default) computes f in float64 and rounds z once, at the end; ``"model"`` computes in
    the model's own dtype (see the module docstring)."""
    x = check_images(model, x)
    net, dtype = _computing_model(model, precision), _dtype(model)
    dev = _device(net)
    work = _dtype(net)
    out = [net.flow(x[i: i + batch_size].to(dev, work) + DEQUANTIZATION_OFFSET)[0].to("cpu", dtype)
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0, math.prod(event_shape(model)), dtype=dtype)


@torch.no_grad()
def decode(model, z: Tensor, batch_size: int = 256, nonfinite: str = "raise", precision: str = "float64") -> Tensor:
    """y = f^{-1}(z) (B, C, H, W) in the model's dtype: continuous pixel values (in [0, 256) for latents the model
    knows). ``precision`` as for ``encode``: float64 (default) or the model's own dtype.

    A latent far from where the model was trained (high temperature, a large attribute strength, a mix of levels)
    can make the inverse overflow: Glow's coupling inverse multiplies by 1 / sigmoid(h + 2), which has no upper
    bound. ``nonfinite="raise"`` (default) stops with OverflowError saying so; ``nonfinite="nan"`` returns such
    images as NaN (the widgets draw them blank and count them). ``to_pixels`` rounds finite values down.
    """
    return decode_with_logdet(model, z, batch_size, nonfinite, precision)[0]


@torch.no_grad()
def decode_with_logdet(model, z: Tensor, batch_size: int = 256, nonfinite: str = "raise",
                       precision: str = "float64") -> tuple[Tensor, Tensor]:
    """(y, log|det dy/dz|) of ``decode``; log q(y) = log p(z) - log|det dy/dz|. Rows that overflow are NaN in both
    (with ``nonfinite="nan"``)."""
    if nonfinite not in ("raise", "nan"):
        raise ValueError(f"nonfinite must be 'raise' or 'nan', got {nonfinite!r}.")
    d = math.prod(event_shape(model))
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != d:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"expected flat latents of shape (B, {d}), got {got}.")
    net, dtype = _computing_model(model, precision), _dtype(model)
    dev = _device(net)
    parts = [_inverse(net, z[i: i + batch_size].to(dev, _dtype(net)), nonfinite, dtype)
             for i in range(0, z.shape[0], batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _inverse(model, z: Tensor, nonfinite: str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """model.flow.inverse(z), returned on the CPU in ``dtype``; non-finite rows raise or become NaN."""
    problem = ""
    try:
        y, logdet = (t.to("cpu", dtype) for t in model.flow.inverse(z))
        ok = torch.isfinite(y).reshape(y.shape[0], -1).all(1) & torch.isfinite(logdet)
        if bool(ok.all()):
            return y, logdet
        problem = f"{int((~ok).sum())} of {z.shape[0]} decoded images are not finite"
    except FlowInputError as e:  # a layer met an inf produced by an overflow upstream
        problem = str(e)
    if nonfinite == "raise":
        raise OverflowError(f"decoding overflowed ({problem}). These latents lie far from where the model was "
                            f"trained (|z| up to {float(z.norm(dim=1).max()):.0f}; typical: "
                            f"{shell_radius(z.shape[1]):.0f}): lower the temperature or strength, or decode with "
                            f"nonfinite='nan' to get NaN images for the ones that overflow.")
    ys, lds = [], []
    for row in z:  # one by one: keep every image that decodes, NaN for the others
        try:
            y, ld = (t.to("cpu", dtype) for t in model.flow.inverse(row[None]))
        except FlowInputError:
            y, ld = None, None
        if y is None or not (bool(torch.isfinite(y).all()) and bool(torch.isfinite(ld).all())):
            y = torch.full((1, *event_shape(model)), float("nan"), dtype=dtype)
            ld = torch.full((1,), float("nan"), dtype=dtype)
        ys.append(y)
        lds.append(ld)
    return torch.cat(ys), torch.cat(lds)


def to_pixels(y: Tensor) -> Tensor:
    """Decoded values y in [0, 256) -> uint8 pixels floor(y) (clamped to 0..255). NaN (an overflowed image) is
    refused: use ``to_grey`` to draw it."""
    if bool(torch.isnan(y).any()):
        raise ValueError("some decoded images are NaN (their decoding overflowed); to_pixels cannot round them. "
                         "Use to_grey(y) to draw them blank, or lower the temperature or strength.")
    return pixels_from_data(y)


def to_grey(y: Tensor) -> Tensor:
    """Decoded values -> float grey levels floor(y) clamped to 0..255, NaN kept (drawn blank by imshow)."""
    return torch.floor(y).clamp(0, 255)


def check_temperature(temperature: float) -> float:
    lo, hi = TEMPERATURE_RANGE
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a number in [{lo}, {hi}], got {temperature!r}.") from None
    if not lo <= t <= hi:
        raise ValueError(f"temperature must lie in [{lo}, {hi}] (T = 1 is the trained model, T < 1 sharper, T = 0 "
                         f"the single image at z = 0); got {t}.")
    return t


def base_noise(model, n: int, seed: int = 0) -> Tensor:
    """n fixed standard-normal latents (n, D) from ``seed``: scale them by T to sample at temperature T."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, math.prod(event_shape(model)), generator=g)


@torch.no_grad()
def sample(model, n: int, temperature: float = 1.0, seed: int | None = 0, noise: Tensor | None = None,
           precision: str = "float64") -> Tensor:
    """n decoded samples y = f^{-1}(T * eps), eps ~ N(0, I) (from ``seed``, or the given ``noise``)."""
    t = check_temperature(temperature)
    eps = noise if noise is not None else base_noise(model, n, seed if seed is not None else 0)
    return decode(model, t * eps, precision=precision)


# ---- interpolation --------------------------------------------------------------------------------------------------
def slerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Spherical linear interpolation (Shoemake 1985; White 2016 for generative models) at t in [0, 1]:

        slerp(z0, z1; t) = sin((1 - t) w) / sin(w) * z0 + sin(t w) / sin(w) * z1,   cos w = <z0, z1> / (|z0| |z1|),

    over the last dimension. Between two latents of equal norm it stays at that norm (a great circle), so a path
    between two latents on the sqrt(D) shell stays on it. Falls back to linear interpolation where z0 and z1 are
    (nearly) parallel, where sin w -> 0.
    """
    t = torch.as_tensor(t, dtype=z0.dtype)
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    cos = ((z0 * z1).sum(-1, keepdim=True) / (n0 * n1).clamp_min(1e-30)).clamp(-1.0, 1.0)
    w = torch.arccos(cos)
    sin = torch.sin(w)
    safe = sin.abs() > 1e-6
    sin = torch.where(safe, sin, torch.ones_like(sin))
    a = torch.where(safe, torch.sin((1 - t) * w) / sin, 1 - t)
    b = torch.where(safe, torch.sin(t * w) / sin, t)
    return a * z0 + b * z1


def interpolate(z0: Tensor, z1: Tensor, steps: int = 8, method: str = "spherical") -> Tensor:
    """``steps`` latents (steps, D) from z0 to z1 (both (D,) or (1, D)), endpoints included."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the two endpoints), got {steps!r}.")
    z0, z1 = z0.reshape(-1), z1.reshape(-1)
    if z0.shape != z1.shape:
        raise ValueError(f"the two latents differ in size: {tuple(z0.shape)} and {tuple(z1.shape)}.")
    ts = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    if method == "linear":
        return (1 - ts) * z0 + ts * z1
    return slerp(z0.expand(steps, -1), z1.expand(steps, -1), ts)


def shell_radius(d: int, temperature: float = 1.0) -> float:
    """E|z| for z ~ N(0, T^2 I_d): T sqrt(2) Gamma((d + 1)/2) / Gamma(d/2), which is ~ T sqrt(d - 1/2)."""
    return temperature * math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


# ---- attribute vectors ----------------------------------------------------------------------------------------------
def class_index(name_or_index) -> int:
    """A Fashion-MNIST class by name ("Sneaker", "ankle boot", "T-shirt") or index 0-9."""
    if isinstance(name_or_index, bool):
        raise ValueError(f"expected a class name or index, got {name_or_index!r}.")
    if isinstance(name_or_index, int):
        if 0 <= name_or_index < len(CLASSES):
            return name_or_index
        raise ValueError(f"class index must be 0..{len(CLASSES) - 1}, got {name_or_index}.")
    key = _norm(str(name_or_index))
    for i, c in enumerate(CLASSES):
        if key in (_norm(c), *(_norm(p) for p in c.split("/"))):
            return i
    raise ValueError(f"unknown Fashion-MNIST class {name_or_index!r}; choose one of {list(CLASSES)} (or 0-9).")


def class_means(z: Tensor, labels: Tensor) -> Tensor:
    """(10, D): the mean latent of each class (NaN for a class with no example)."""
    labels = labels.long().reshape(-1)
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"{z.shape[0]} latents but {labels.shape[0]} labels.")
    out = torch.full((len(CLASSES), z.shape[1]), float("nan"), dtype=z.dtype)
    for k in range(len(CLASSES)):
        sel = labels == k
        if bool(sel.any()):
            out[k] = z[sel].mean(0)
    return out


def attribute_direction(z: Tensor, labels: Tensor, source, target) -> Tensor:
    """mean latent of class ``target`` minus mean latent of class ``source``: (D,).

    Adding it to the latent of a ``source`` image moves it towards ``target``."""
    s, t = class_index(source), class_index(target)
    if s == t:
        raise ValueError(f"source and target are the same class ({CLASSES[s]!r}); the direction would be zero.")
    labels = labels.long().reshape(-1)
    for k in (s, t):
        if not bool((labels == k).any()):
            raise ValueError(f"no example of class {CLASSES[k]!r} among the {labels.shape[0]} labelled latents.")
    return z[labels == t].mean(0) - z[labels == s].mean(0)


def apply_direction(z: Tensor, direction: Tensor, strength: float | Sequence[float]) -> Tensor:
    """z + strength * direction; a sequence of strengths gives one row per strength (z must then be one latent)."""
    if isinstance(strength, (int, float)):
        return z + float(strength) * direction
    s = torch.as_tensor(list(strength), dtype=z.dtype)[:, None]
    return z.reshape(1, -1) + s * direction.reshape(1, -1)


# ---- levels ---------------------------------------------------------------------------------------------------------
def split_levels(model, z: Tensor) -> list[Tensor]:
    """The flat latents (B, D) as per-level tensors [z_1 (finest, factored out first), ..., z_L (coarsest)]."""
    return multiscale_of(model).split_latents(z)


def merge_levels(model, zs: Sequence[Tensor]) -> Tensor:
    return multiscale_of(model).merge_latents(zs)


def _check_levels(model, levels: Sequence[int]) -> list[int]:
    n = level_count(model)
    levels = [int(k) for k in levels]
    bad = [k for k in levels if not 1 <= k <= n]
    if bad:
        raise ValueError(f"this model has levels 1..{n} (1 = finest, {n} = coarsest); got {bad}.")
    return levels


def swap_levels(model, z_a: Tensor, z_b: Tensor, from_b: Sequence[int]) -> Tensor:
    """The latent of image a with the levels ``from_b`` (1-based, 1 = finest) taken from image b."""
    from_b = _check_levels(model, from_b)
    za, zb = split_levels(model, z_a), split_levels(model, z_b)
    return merge_levels(model, [zb[i] if i + 1 in from_b else za[i] for i in range(len(za))])


def resample_levels(model, z: Tensor, levels: Sequence[int], temperature: float = 1.0, seed: int = 0) -> Tensor:
    """z with the given levels (1-based) replaced by fresh N(0, T^2 I) noise: the decoder that throws the
    factored-out latents away and draws new ones."""
    levels = _check_levels(model, levels)
    t = check_temperature(temperature)
    g = torch.Generator().manual_seed(seed)
    zs = split_levels(model, z)
    return merge_levels(model, [t * torch.randn(p.shape, generator=g, dtype=p.dtype) if i + 1 in levels else p
                                for i, p in enumerate(zs)])


# ---- precision: the float64 copy --------------------------------------------------------------------------------------
_FLOAT64_COPIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> (its weights' version, copy)


def _computing_model(model, precision: str):
    """The model that encode/decode run: ``model`` itself (precision "model", or a model already in float64), or a
    cached float64 copy of it, made again whenever a parameter or buffer of ``model`` changed (training steps and
    load_state_dict modify them in place, which bumps their version counters) or it was moved."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} ('float64': compute in float64, return the model's "
                         f"dtype; 'model': compute in the model's own dtype), got {precision!r}.")
    dtype = _dtype(model)
    if precision == "model" or torch.finfo(dtype).bits >= 64:
        return model
    tensors = [*model.parameters(), *model.buffers()]
    version = (model.training, tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors))
    cached = _FLOAT64_COPIES.get(model)
    if cached is not None and cached[0] == version:
        return cached[1]
    twin = copy.deepcopy(model)
    if _device(model).type == "mps":  # no float64 on Apple GPUs: the copy computes on the CPU
        twin = twin.to("cpu")
    twin = twin.double()
    _FLOAT64_COPIES[model] = (version, twin)
    return twin


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def _dtype(model) -> torch.dtype:
    """The model's floating-point dtype (its first parameter's; float32 for a model without parameters)."""
    p = next((t for t in model.parameters() if t.is_floating_point()), None)
    return torch.float32 if p is None else p.dtype


def _device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
