"""The widgets of lesson 05 (flows for images). The maths is flowlib's (``FlowModel.sample``, ``images``,
``multiscale.Squeeze``); a widget wires controls to it and draws, so that a test can set ``controls[name].value``
and read ``state`` and the drawn artists.

    temperature_samples(model)             samples of an image model at temperature T, with their pixel statistics
    dequantization_width(images, model_at) noise of width w: where y = x + w·u falls, and bits/dim with and
                                           without the −log2 w correction
    squeeze_explorer()                     pick a pixel of a numbered image and see where Squeeze sends it

Same contract as ``flowlib_teaching.widgets.widgets2d``: ``controls``, ``figure``, ``state``, ``message``, ``update()``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from flowlib import images as img
from flowlib.core import FlowInputError
from flowlib.bijections.reshape import Squeeze
from flowlib_teaching.plot_images import image_grid
from flowlib_teaching.widgets.widgets2d import _slider, _title, _Widget2D

__all__ = ["TemperatureWidget", "temperature_samples", "DequantizationWidget", "dequantization_width",
           "SqueezeWidget", "squeeze_explorer"]


def _kernel_loop():
    """The event loop of the Jupyter kernel this code runs in, or None (plain Python, a test, a script). Only a
    kernel's loop counts: another library's loop in this thread (Playwright's sync API keeps one) never idles here."""
    import asyncio

    from flowlib_teaching.plotting import _in_kernel

    if not _in_kernel():
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# ---- 1. temperature -----------------------------------------------------------------------------------------------
class TemperatureWidget(_Widget2D):
    """Samples x = f^{-1}(T·ε) of an image model for fixed ε ~ N(0, I): the same latent directions, scaled by T.

    Left: the samples (as integer pixels). Right: the histogram of their pixel values next to that of real images
    (if given). Readout: the samples' mean pixel value, and their diversity (the standard deviation across samples
    of each pixel, averaged over pixels).

    state: T, samples (n, C, H, W) uint8, mean_pixel, diversity, histogram (256,) fraction of pixels per value,
    message.

    Samples are kept per temperature; in a Jupyter kernel those of every slider value are decoded while the kernel
    is idle (``prefetch``), so a move only redraws. ``prefetching`` says whether that started.
    """

    title = "temperature"

    def __init__(self, model, n: int = 24, nrow: int = 6, seed: int = 0, temperature: float = 1.0,
                 reference: Tensor | None = None, dpi: int = 80, prefetch: bool = True):
        self.model, self.n, self.nrow = model, n, nrow
        d = model.base.dim if hasattr(model.base, "dim") else None
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.eps = model.base.sample(n, generator=g)  # T = 1; scaled by T below
        self.dim = d or self.eps[0].numel()
        self.reference = None
        if reference is not None:
            counts = torch.bincount(reference.reshape(-1).long(), minlength=256).double()
            self.reference = (counts / counts.sum()).numpy()
        self._cache: dict[float, dict] = {}
        controls = {"T": _slider(temperature, 0.1, 1.2, 0.05, "temperature T", continuous=False)}
        super().__init__(controls, (9.0, 3.9), dpi)
        self.figure.subplots_adjust(left=0.02, right=0.98, wspace=0.25)
        self.update()
        self.prefetching = prefetch and self.prefetch()

    def slider_values(self) -> list[float]:
        """Every value the slider can take (as the cache keys them)."""
        s = self.controls["T"]
        return [round(s.min + k * s.step, 4) for k in range(round((s.max - s.min) / s.step) + 1)]

    def prefetch(self, delay: float = 0.02, loop=None) -> bool:
        """Decode the samples of every temperature on the slider while the kernel is idle, nearest to the current T
        first, so that a later move only redraws (measured: the decoding is about three quarters of a cold update).

        One temperature per turn of the event loop ``loop`` (default: the running Jupyter kernel's; outside a kernel
        nothing starts), ``delay`` seconds apart, so a slider move that arrives meanwhile waits for one decoding at
        most. Returns whether it started. A decoding that fails stops the prefetch: the same failure then shows as
        the widget's message when the slider reaches that value."""
        loop = loop if loop is not None else _kernel_loop()
        if loop is None:
            return False
        here = self.state.get("T", 1.0)
        pending = sorted(self.slider_values(), key=lambda t: (abs(t - here), t))

        def step() -> None:
            while pending and pending[0] in self._cache:
                pending.pop(0)
            if not pending:
                return
            try:
                self._samples_at(pending.pop(0))
            except Exception:  # noqa: BLE001 (shown on the move that needs it; see the docstring)
                return
            loop.call_later(delay, step)

        loop.call_later(delay, step)
        return True

    def warm(self) -> None:
        """What ``prefetch`` does while the kernel is idle, at once (scripts and benchmarks)."""
        for t in self.slider_values():
            self._samples_at(t)

    def _samples_at(self, t: float) -> dict:
        if t not in self._cache:
            with torch.no_grad():
                y = self.model.flow.inverse(t * self.eps)[0]
            x = img.pixels_from_data(y.reshape(self.n, *self._image_shape(y)))
            xf = x.double()
            counts = torch.bincount(x.reshape(-1).long(), minlength=256).double()
            self._cache[t] = {"T": t, "samples": x, "mean_pixel": float(xf.mean()),
                              "diversity": float(xf.std(dim=0).mean()), "histogram": (counts / counts.sum()).numpy(),
                              "message": ""}
        return self._cache[t]

    def _compute(self, v: dict) -> dict:
        t = round(float(v["T"]), 4)
        if t <= 0:
            return {**self.state, "message": "T must be positive"}
        try:
            return dict(self._samples_at(t))
        except FlowInputError as err:  # e.g. the inverse overflowed at this T: a message, the last picture kept
            return {**self.state, "message": f"T = {t:g}: the model could not decode these samples ({err})"}

    @staticmethod
    def _image_shape(y: Tensor) -> tuple[int, ...]:
        return tuple(y.shape[1:]) if y.dim() == 4 else (1, int(math.isqrt(y[0].numel())), int(math.isqrt(y[0].numel())))

    def _build(self) -> None:
        ax_s, ax_h = self.axes
        self._image = ax_s.imshow(np.zeros((2, 2)), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax_s.set_xticks([]), ax_s.set_yticks([])
        bins = np.arange(256)
        if self.reference is not None:
            ax_h.step(bins, self.reference, where="mid", color="0.5", lw=1, label="real images")
        self._hist = ax_h.step(bins, np.full(256, 1e-7), where="mid", color="tab:blue", lw=1.2, label="samples")[0]
        ax_h.set_yscale("log")
        ax_h.set_ylim(1e-5, 1)
        ax_h.set_xlabel("pixel value (0 = background)")
        ax_h.set_ylabel("fraction of pixels")
        ax_h.legend(fontsize=8, loc="upper center")
        _title(ax_s, " ")
        _title(ax_h, "pixel values of the samples", fontsize=10)

    def _draw(self) -> None:
        s = self.state
        grid = image_grid(s["samples"], nrow=self.nrow, fill=0).numpy()
        self._image.set_data(grid)
        self._image.set_extent((-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
        self.axes[0].set_xlim(-0.5, grid.shape[1] - 0.5)
        self.axes[0].set_ylim(grid.shape[0] - 0.5, -0.5)
        self._hist.set_ydata(np.maximum(s["histogram"], 1e-7))
        self.axes[0].title.set_text(f"samples at T = {s['T']:.2f}")
        self.suptitle.set_text(f"T = {s['T']:.2f}: mean pixel value {s['mean_pixel']:.1f}, diversity (std across "
                               f"samples, per pixel) {s['diversity']:.1f}")
        self.suptitle.set_fontsize(10)


def temperature_samples(model, n: int = 24, nrow: int = 6, seed: int = 0, reference: Tensor | None = None,
                        prefetch: bool = True) -> TemperatureWidget:
    """Lesson 05: move the temperature T of the shipped model's samples (a button-free slider that updates on
    release: the flow's inverse on n images, decoded ahead while the kernel is idle unless ``prefetch=False``)."""
    return TemperatureWidget(model, n, nrow, seed, reference=reference, prefetch=prefetch)


# ---- 2. the dequantization noise width ----------------------------------------------------------------------------
class DequantizationWidget(_Widget2D):
    """Noise of width w: y = x + w·u, u ~ U(0, 1). Left: the pixel values of a few levels and where their
    dequantized copies fall — boxes of width w, leaving 1 − w of each unit cell empty. Right: the bits/dim of the
    model ``model_at(w)`` (a density fitted to width-w noise) on ``images``, uncorrected (−E log q / (D ln 2), the
    published mistake) and corrected by flowlib (``images.bits_per_dim(..., noise_width=w)``), for a range of w,
    with the chosen w marked.

    state: w, y (values of the first levels after dequantization), levels, uncorrected, corrected (bits/dim at w),
    curve_w, curve_uncorrected, curve_corrected, message.
    """

    title = "dequantization noise width"
    WIDTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

    def __init__(self, images: Tensor, model_at: Callable[[float], object], width: float = 1.0, levels: int = 256,
                 seed: int = 0, dpi: int = 80):
        img.check_pixels(images, levels)
        self.images, self.model_at, self.levels, self.seed = images, model_at, levels, seed
        self._cache: dict[float, tuple[float, float]] = {}
        self.curve = [self._bpd(w) for w in self.WIDTHS]
        controls = {"w": _slider(width, 0.1, 1.0, 0.05, "noise width w", continuous=False)}
        super().__init__(controls, (9.0, 3.8), dpi)
        self.update()

    def _bpd(self, w: float) -> tuple[float, float]:
        w = round(float(w), 4)
        if w not in self._cache:
            model = self.model_at(w)
            g = torch.Generator().manual_seed(self.seed)
            y = img.dequantize(self.images, self.levels, g, noise_width=w).double()
            d = self.images[0].numel()
            with torch.no_grad():
                uncorrected = float((-model.log_prob(y) / (d * math.log(2))).mean())
            corrected = float(img.bits_per_dim(model, self.images, self.levels,
                                               generator=torch.Generator().manual_seed(self.seed),
                                               noise_width=w).mean())
            self._cache[w] = (uncorrected, corrected)
        return self._cache[w]

    def _compute(self, v: dict) -> dict:
        w = round(float(v["w"]), 4)
        if not 0 < w <= 1:
            return {**self.state, "message": "the noise width must lie in (0, 1]"}
        g = torch.Generator().manual_seed(self.seed)
        levels = torch.arange(4).repeat_interleave(60)
        # dequantized as a batch of 240 one-pixel images
        y = img.dequantize(levels.reshape(-1, 1), self.levels, g, noise_width=w).reshape(-1).numpy()
        unc, cor = self._bpd(w)
        msg = ""
        if w < 1:
            msg = (f"uncorrected, the same model looks {cor - unc:.2f} bits/dim 'better' (−log2 w = "
                   f"{-math.log2(w):.2f}); the corrected number does not move")
        return {"w": w, "levels": levels.numpy(), "y": y, "uncorrected": unc, "corrected": cor,
                "curve_w": np.array(self.WIDTHS), "curve_uncorrected": np.array([c[0] for c in self.curve]),
                "curve_corrected": np.array([c[1] for c in self.curve]), "message": msg}

    def _build(self) -> None:
        ax_y, ax_b = self.axes
        self._boxes = [ax_y.add_patch(Rectangle((k, -0.5), 1.0, 1.0, fc="tab:blue", alpha=0.25, ec="none"))
                       for k in range(4)]
        for k in range(5):
            ax_y.axvline(k, color="0.6", lw=0.8)
        self._dots = ax_y.scatter(np.zeros(240), np.zeros(240), s=6, color="tab:blue")
        ax_y.set_xlim(-0.2, 4.2)
        ax_y.set_ylim(-0.8, 0.8)
        ax_y.set_yticks([])
        ax_y.set_xlabel("y = x + w·u for pixel values x = 0, 1, 2, 3 (unit cells between grey lines)")
        ws = np.array(self.WIDTHS)
        ax_b.plot(ws, [c[0] for c in self.curve], "o-", color="tab:red", ms=3, label="uncorrected (the mistake)")
        ax_b.plot(ws, [c[1] for c in self.curve], "s-", color="tab:green", ms=3, label="corrected: + (−log2 w)")
        self._mark = ax_b.axvline(1.0, color="k", lw=1, ls="--")
        ax_b.set_xlabel("noise width w")
        ax_b.set_ylabel("bits/dim")
        ax_b.legend(fontsize=8)
        _title(ax_y, " ", fontsize=10)
        _title(ax_b, "the same kind of model, fitted at each w", fontsize=10)

    def _draw(self) -> None:
        s = self.state
        for box in self._boxes:
            box.set_width(s["w"])
        jitter = np.random.default_rng(0).uniform(-0.4, 0.4, len(s["y"]))
        self._dots.set_offsets(np.stack([s["y"], jitter], 1))
        self._mark.set_xdata([s["w"], s["w"]])
        self.axes[0].title.set_text(f"w = {s['w']:.2f}: each value owns a box of width w")
        self.suptitle.set_text(f"w = {s['w']:.2f}: uncorrected {s['uncorrected']:.3f} bits/dim, corrected "
                               f"{s['corrected']:.3f} bits/dim")
        self.suptitle.set_fontsize(10)


def dequantization_width(images: Tensor, model_at: Callable[[float], object], width: float = 1.0,
                         levels: int = 256) -> DequantizationWidget:
    """Lesson 05: move the dequantization noise width w; ``model_at(w)`` returns the model fitted to width-w noise
    (anything with ``log_prob(y)`` on y = x + w·u)."""
    return DequantizationWidget(images, model_at, width, levels)


# ---- 3. where Squeeze sends each pixel ----------------------------------------------------------------------------
class SqueezeWidget(_Widget2D):
    """A numbered image x of shape (C, H, W) (pixel values 0, 1, 2, ... in reading order) and its squeeze z, shape
    (4C, H/2, W/2), computed by ``flowlib.bijections.Squeeze``. Pick a pixel (c, h, w) of x: it is framed in x,
    and its value is looked up in z to frame where it went.

    state: src (c, h, w), dst (c', h', w') found in z, x (C, H, W) and z (4C, H/2, W/2) as arrays, message.
    """

    title = "squeeze"

    def __init__(self, channels: int = 1, height: int = 4, width: int = 4, c: int = 0, h: int = 1, w: int = 2,
                 dpi: int = 80):
        import ipywidgets as W

        if height % 2 or width % 2:
            raise ValueError(f"Squeeze needs an even height and width, got {height}x{width}.")
        self.C, self.H, self.W = channels, height, width
        x = torch.arange(channels * height * width, dtype=torch.float64).reshape(1, channels, height, width)
        self.x = x[0].numpy()
        self.z = Squeeze()(x)[0][0].numpy()
        ints = {"layout": W.Layout(width="200px"), "continuous_update": True}
        controls = {"c": W.IntSlider(value=c, min=0, max=channels - 1, description="channel c", **ints),
                    "h": W.IntSlider(value=h, min=0, max=height - 1, description="row h", **ints),
                    "w": W.IntSlider(value=w, min=0, max=width - 1, description="column w", **ints)}
        super().__init__(controls, (9.0, 3.4), dpi, ncols=2)
        self.update()

    def _layout_x(self) -> np.ndarray:
        """The C channels of x side by side, with one empty column between them (NaN)."""
        return self._side_by_side(self.x)

    @staticmethod
    def _side_by_side(a: np.ndarray) -> np.ndarray:
        c, h, w = a.shape
        out = np.full((h, c * (w + 1) - 1), np.nan)
        for k in range(c):
            out[:, k * (w + 1): k * (w + 1) + w] = a[k]
        return out

    def _compute(self, v: dict) -> dict:
        c, h, w = int(v["c"]), int(v["h"]), int(v["w"])
        value = self.x[c, h, w]
        dst = tuple(int(i) for i in np.argwhere(self.z == value)[0])
        return {"src": (c, h, w), "dst": dst, "value": int(value), "x": self.x, "z": self.z, "message": ""}

    def _build(self) -> None:
        ax_x, ax_z = self.axes
        for ax, a, name in ((ax_x, self.x, "x"), (ax_z, self.z, "z")):
            grid = self._side_by_side(a)
            ax.imshow(grid, cmap="Blues", vmin=-0.3 * grid.size, vmax=1.3 * np.nanmax(grid), interpolation="nearest")
            c, h, w = a.shape
            for k in range(c):
                for i in range(h):
                    for j in range(w):
                        ax.text(k * (w + 1) + j, i, str(int(a[k, i, j])), ha="center", va="center", fontsize=8)
            ax.set_xticks([(w + 1) * k + (w - 1) / 2 for k in range(c)], [f"ch {k}" for k in range(c)], fontsize=8)
            ax.set_yticks([])
        self._frames = [ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, ec="tab:red", lw=2.5)) for ax in self.axes]
        _title(ax_x, f"x: {self.C}×{self.H}×{self.W}, numbered", fontsize=10)
        _title(ax_z, f"Squeeze(x): {4 * self.C}×{self.H // 2}×{self.W // 2}", fontsize=10)

    def _draw(self) -> None:
        s = self.state
        (c, h, w), (c2, h2, w2) = s["src"], s["dst"]
        self._frames[0].set_xy((c * (self.W + 1) + w - 0.5, h - 0.5))
        self._frames[1].set_xy((c2 * (self.W // 2 + 1) + w2 - 0.5, h2 - 0.5))
        i, j = h % 2, w % 2
        self.suptitle.set_text(f"x[{c}, {h}, {w}] = {s['value']}: offset in its 2×2 block (i, j) = ({i}, {j}) → "
                               f"channel 4c + 2i + j = {c2}, position (h // 2, w // 2) = ({h2}, {w2})")
        self.suptitle.set_fontsize(9)


def squeeze_explorer(channels: int = 1, height: int = 4, width: int = 4) -> SqueezeWidget:
    """Lesson 05: choose a pixel of a numbered image and see where Squeeze puts it."""
    return SqueezeWidget(channels, height, width)
