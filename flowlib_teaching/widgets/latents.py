"""The widgets of lesson 07: a trained image flow's exact latent, by hand. The maths is in ``flowlib.latents``;
a widget wires controls to it and draws, so a test can set ``controls[name].value`` (or ``click()`` a button) and
read ``state`` and the figure.

    temperature_grid(model)                   a grid of samples as the temperature T moves, and the samples' bits/dim
    interpolation(model, images, labels)      two test images (class and index), the linear and spherical paths
    attribute_vector(model, images, labels,   a class-to-class direction added to a chosen image with a strength
                     z_bank, bank_labels)
    level_swap(model, images, labels)         the coarse level of one image with the fine level of another

Speed: decoding one batch through a trained Glow takes a noticeable fraction of a second on a CPU, so a slider never
decodes. Whatever a slider can show is decoded in one batch when the images are chosen (at construction, and when
the "encode" button is pressed); moving the slider then only redraws (measured by ``python -m benchmarks
widget_latency``). Choices that need the model (classes, indices) take effect on the button, so the kernel never
queues work while a learner clicks through them. Indices are bounded by the widgets themselves; a choice that
cannot work (the same class twice) is shown as a message, never as a traceback.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from matplotlib.patches import Rectangle

from flowlib import latents
from flowlib.data.fashion_mnist import CLASSES
from flowlib_teaching.widgets.base import FigureWidget

__all__ = ["temperature_grid", "interpolation", "attribute_vector", "level_swap", "show_grey", "tile"]

DEFAULT_TEMPERATURES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
DEFAULT_STRENGTHS = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def tile(images: torch.Tensor, nrow: int, pad: int = 1) -> np.ndarray:
    """(B, 1, H, W) pixel values -> one 2D array with NaN borders (drawn blank), ``nrow`` images per row."""
    b, _, h, w = images.shape
    rows = math.ceil(b / nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), np.nan, dtype=np.float32)
    arr = images[:, 0].detach().cpu().float().numpy()
    for i in range(b):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    return out


def show_grey(images: torch.Tensor, nrow: int = 8, ax=None, title: str | None = None):
    """Decoded grey levels (B, 1, H, W) (``latents.to_grey``: NaN = overflowed, drawn blank) or uint8 pixels, in a
    grid, dark ink on white like ``plot_images.show_images``; returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        size = min(12, 1.1 * nrow)
        _, ax = plt.subplots(figsize=(size, size * math.ceil(len(images) / nrow) / nrow + 0.4))
    ax.imshow(tile(images.float(), nrow), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    _image_axes(ax)
    if title:
        ax.set_title(title)
    return ax


class _ImageWidget(FigureWidget):
    """A ``FigureWidget`` whose heavy part (the model) runs on a button, and whose ``live`` controls only redraw.

    Subclasses prepare what the controls can show (``_prepare``, with the model), build their artists once
    (``_build``), compute what the controls ask for (``_compute``, returns the new ``state``) and move the artists
    (``_draw``). Controls listed in ``live`` redraw on every change; the others wait for the button (if any).
    """

    def __init__(self, controls: dict, live: tuple[str, ...], figsize, button: str | None = None, dpi: int = 72):
        import ipywidgets as W

        super().__init__(controls, figsize, dpi)
        self.button = None
        if button:
            self.button = W.Button(description=button, button_style="primary", layout=W.Layout(width="220px"))
            self.button.on_click(lambda _: self.recompute())
        for name in live:
            controls[name].observe(lambda change: self.update(), names="value")
        self._build()
        self._layout([self.button] if self.button else [])

    def recompute(self) -> None:
        """The heavy part (encode/decode with the model), then a redraw. The button calls it."""
        start = time.perf_counter()
        try:
            self._prepare(self.values())
            self._problem = ""
        except ValueError as e:  # a choice that cannot work: say so, keep the last picture
            if not hasattr(self, "prepared"):
                raise  # nothing to show yet: the factory's arguments are wrong, and the error says how
            self._problem = str(e)
        self.update()
        self.state["recompute_seconds"] = time.perf_counter() - start

    def _state(self, v: dict) -> dict:
        """``update()`` redraws from what was prepared (no model call); the live controls call it."""
        state = self._compute(v)  # a problem with the last choice (kept from recompute) is the message
        return {**state, "message": getattr(self, "_problem", "") or state.get("note", "")}

    def _prepare(self, v: dict) -> None:
        raise NotImplementedError


def _overflow_note(images: torch.Tensor) -> str:
    bad = int(torch.isnan(images).reshape(images.shape[0], -1).any(1).sum())
    return (f"{bad} of {images.shape[0]} decoded images overflowed (drawn blank): their latents lie where the "
            f"model's inverse is unbounded." if bad else "")


def _image_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _imshow(ax, shape) -> object:
    return ax.imshow(np.zeros(shape), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")


def _class_picker(W, prefix: str, labels: torch.Tensor, klass: int, index: int) -> tuple:
    """A class dropdown and an index box bounded by that class's number of images (kept in step)."""
    counts = torch.bincount(labels.long(), minlength=len(CLASSES))
    dd = W.Dropdown(options=[(c, k) for k, c in enumerate(CLASSES)], value=latents.class_index(klass),
                    description=f"{prefix} class", layout=W.Layout(width="230px"))
    box = W.BoundedIntText(value=index, min=0, max=max(int(counts[dd.value]) - 1, 0), description=f"{prefix} index",
                           layout=W.Layout(width="170px"))

    def on_class(change):
        box.max = max(int(counts[change["new"]]) - 1, 0)  # BoundedIntText clamps its value into the new range

    dd.observe(on_class, names="value")
    return dd, box


def _pick(images: torch.Tensor, labels: torch.Tensor, klass: int, index: int) -> torch.Tensor:
    """The ``index``-th image of class ``klass`` (1, C, H, W); the index is checked with what is allowed."""
    idx = (labels.long() == klass).nonzero()[:, 0]
    if not 0 <= index < idx.numel():
        raise ValueError(f"class {CLASSES[klass]!r} has {idx.numel()} images here: the index must be 0..{idx.numel() - 1}, "
                         f"got {index}.")
    x = images[idx[index]]
    return x[None] if x.dim() == 3 else x[None, None]


# ---- 1. temperature ---------------------------------------------------------------------------------------------------
class TemperatureWidget(_ImageWidget):
    """Samples f^{-1}(T eps) for fixed eps, and their bits/dim (log q of the decoded samples) against T.

    All temperatures are decoded once, in one batch, at construction; the slider picks one (a redraw).
    state: temperature, samples (n, 1, H, W) grey levels (NaN: a sample whose decoding overflowed), bpd (the
    samples' mean bits/dim, over those that decoded), overflowed (how many did not), and the reference (e.g. the
    test set's bits/dim) if one was given. Images in every widget's state are float grey levels 0..255 (floor of
    the decoded values), NaN where the decoding overflowed; the message line counts those.
    """

    title = "temperature"

    def __init__(self, model, n: int = 16, temperatures=DEFAULT_TEMPERATURES, seed: int = 0,
                 reference_bpd: float | None = None, start: float = 1.0, dpi: int = 72):
        import ipywidgets as W

        temps = [latents.check_temperature(t) for t in temperatures]
        if start not in temps:
            raise ValueError(f"start must be one of the temperatures {temps}, got {start}.")
        self.model, self.temperatures, self.reference = model, temps, reference_bpd
        self.nrow = int(math.ceil(math.sqrt(n)))
        eps = latents.base_noise(model, n, seed)
        z = torch.cat([t * eps for t in temps])
        # log q(y) = log p(z) - log|det dy/dz|, from the same inverse pass as the samples; a sample whose decoding
        # overflows (possible at high T: Glow's inverse coupling is unbounded) is NaN, drawn blank and counted
        y, logdet = latents.decode_with_logdet(model, z, nonfinite="nan")
        with torch.no_grad():
            log_q = model.base.log_prob(z) - logdet
        d = y[0].numel()
        self.samples = latents.to_grey(y).reshape(len(temps), n, *y.shape[1:])
        bpd = (-log_q / (d * math.log(2))).reshape(len(temps), n)
        self.overflowed = torch.isnan(bpd).sum(1).numpy()
        self.sample_bpd = torch.nanmean(bpd, 1).numpy()
        controls = {"T": W.SelectionSlider(options=temps, value=start, description="temperature T",
                                           continuous_update=False, layout=W.Layout(width="420px"))}
        super().__init__(controls, live=("T",), figsize=(9.5, 4.2), dpi=dpi)
        self.update()

    def _build(self) -> None:
        self.figure.subplots_adjust(left=0.02, right=0.97, bottom=0.13, top=0.88, wspace=0.25)
        ax_img, ax_bpd = self.figure.subplots(1, 2, gridspec_kw=dict(width_ratios=[1, 1.15]))
        self.axes = (ax_img, ax_bpd)
        n = self.samples.shape[1]
        self._img = _imshow(ax_img, tile(self.samples[0].float(), self.nrow).shape)
        _image_axes(ax_img)
        ax_img.set_title(" ", y=1.0)
        ax_bpd.plot(self.temperatures, self.sample_bpd, "o-", color="tab:blue", ms=4,
                    label=f"the {n} samples' log q(y), in bits/dim")
        if self.reference is not None:
            ax_bpd.axhline(self.reference, color="tab:orange", ls="--", label=f"test images: {self.reference:.2f}")
        (self._marker,) = ax_bpd.plot([], [], "o", color="tab:red", ms=10)
        ax_bpd.set_xlabel("temperature T")
        ax_bpd.set_ylabel("bits/dim (lower = more likely)")
        ax_bpd.set_title("colder samples are MORE likely than real images", y=1.0, fontsize=10)
        ax_bpd.grid(alpha=0.3)
        ax_bpd.locator_params(nbins=5)  # fewer tick labels: text is most of the drawing time
        ax_bpd.legend(fontsize=8, loc="upper left")

    def _compute(self, v: dict) -> dict:
        k = self.temperatures.index(v["T"])
        bad = int(self.overflowed[k])
        note = (f"{bad} of {self.samples.shape[1]} samples at T = {v['T']:g} overflowed when decoded (drawn blank): "
                f"their latents are where the model's inverse is unbounded." if bad else "")
        return {"temperature": v["T"], "samples": self.samples[k], "bpd": float(self.sample_bpd[k]),
                "reference_bpd": self.reference, "overflowed": bad, "note": note}

    def _draw(self) -> None:
        s = self.state
        self._img.set_data(tile(s["samples"].float(), self.nrow))
        self.axes[0].title.set_text(f"samples at T = {s['temperature']:g}: {s['bpd']:.2f} bits/dim")
        self._marker.set_data([s["temperature"]], [s["bpd"]])


def temperature_grid(model, n: int = 16, temperatures=DEFAULT_TEMPERATURES, seed: int = 0,
                     reference_bpd: float | None = None) -> TemperatureWidget:
    """Lesson 07: slide T and watch the samples f^{-1}(T eps) sharpen, and their likelihood rise above the data's."""
    return TemperatureWidget(model, n, temperatures, seed, reference_bpd)


# ---- 2. interpolation -------------------------------------------------------------------------------------------------
class InterpolationWidget(_ImageWidget):
    """Two images (class and index), their latents, and the linear and spherical paths between them.

    The button encodes the two images and decodes both paths (``steps`` images each, one batch); the slider moves
    along them (a redraw). state: t, step, norms_linear / norms_spherical (|z| along each path), shell (E|z| of the
    base), strip_linear / strip_spherical (steps, 1, H, W) uint8, a / b (the two images).
    """

    title = "interpolation"

    def __init__(self, model, images, labels, class_a="Sneaker", index_a=0, class_b="Ankle boot", index_b=0,
                 steps: int = 9, dpi: int = 72):
        import ipywidgets as W

        self.model, self.images, self.labels, self.steps = model, images, labels.long(), int(steps)
        dd_a, box_a = _class_picker(W, "A", self.labels, class_a, index_a)
        dd_b, box_b = _class_picker(W, "B", self.labels, class_b, index_b)
        controls = {"class_a": dd_a, "index_a": box_a, "class_b": dd_b, "index_b": box_b,
                    "t": W.SelectionSlider(options=[round(i / (self.steps - 1), 3) for i in range(self.steps)],
                                           value=0.5 if self.steps % 2 else 0.0, description="position t",
                                           continuous_update=False, layout=W.Layout(width="380px"))}
        super().__init__(controls, live=("t",), figsize=(11, 4.4), button="encode A and B, interpolate", dpi=dpi)
        self.recompute()

    def _prepare(self, v: dict) -> None:
        xa, xb = (_pick(self.images, self.labels, v[f"class_{k}"], v[f"index_{k}"]) for k in "ab")
        za, zb = latents.encode(self.model, torch.cat([xa, xb]))
        lin = latents.interpolate(za, zb, self.steps, "linear")
        sph = latents.interpolate(za, zb, self.steps, "spherical")
        y = latents.decode(self.model, torch.cat([lin[1:-1], sph[1:-1]]), nonfinite="nan")
        ends = latents.to_grey(latents.decode(self.model, torch.stack([za, zb]), nonfinite="nan"))
        mid = latents.to_grey(y)
        k = self.steps - 2
        self.prepared = {
            "a": xa, "b": xb,
            "strip_linear": torch.cat([ends[:1], mid[:k], ends[1:]]),
            "strip_spherical": torch.cat([ends[:1], mid[k:], ends[1:]]),
            "norms_linear": lin.norm(dim=1).numpy(), "norms_spherical": sph.norm(dim=1).numpy(),
            "shell": latents.shell_radius(za.numel()),
            "names": (f"{CLASSES[v['class_a']]} #{v['index_a']}", f"{CLASSES[v['class_b']]} #{v['index_b']}"),
            "note": _overflow_note(torch.cat([mid, ends])),
        }

    def _build(self) -> None:
        self.figure.subplots_adjust(left=0.02, right=0.98, bottom=0.12, top=0.9, hspace=0.35, wspace=0.12)
        grid = self.figure.add_gridspec(2, 2, width_ratios=[2.6, 1])
        self._ax_lin, self._ax_sph = self.figure.add_subplot(grid[0, 0]), self.figure.add_subplot(grid[1, 0])
        self._ax_norm = self.figure.add_subplot(grid[:, 1])
        shape = tile(torch.zeros(self.steps, 1, 28, 28), self.steps).shape
        self._img_lin, self._img_sph = _imshow(self._ax_lin, shape), _imshow(self._ax_sph, shape)
        self._boxes = []
        for ax in (self._ax_lin, self._ax_sph):
            _image_axes(ax)
            ax.set_title(" ", y=1.0, fontsize=10)
            box = Rectangle((0, 0), 29, 29, fill=False, ec="tab:red", lw=2.5)
            ax.add_patch(box)
            self._boxes.append(box)
        ts = np.linspace(0, 1, self.steps)
        (self._n_lin,) = self._ax_norm.plot(ts, np.zeros(self.steps), "o-", ms=3, label="linear")
        (self._n_sph,) = self._ax_norm.plot(ts, np.zeros(self.steps), "s-", ms=3, label="spherical")
        self._shell = self._ax_norm.axhline(0, color="gray", ls=":", label="E|z| of N(0, I)")
        self._vline = self._ax_norm.axvline(0, color="tab:red", lw=1)
        self._ax_norm.set_xlabel("position t")
        self._ax_norm.set_title("|z| along the path", y=1.0, fontsize=10)
        self._ax_norm.legend(fontsize=8, loc="lower center")
        self._ax_norm.grid(alpha=0.3)
        self._ax_norm.locator_params(nbins=5)

    def _compute(self, v: dict) -> dict:
        p = self.prepared
        step = int(round(v["t"] * (self.steps - 1)))
        return {**p, "t": v["t"], "step": step}

    def _draw(self) -> None:
        s = self.state
        self._img_lin.set_data(tile(s["strip_linear"].float(), self.steps))
        self._img_sph.set_data(tile(s["strip_spherical"].float(), self.steps))
        for box in self._boxes:
            box.set_xy((s["step"] * 29 - 0.5, -0.5))
        a, b = s["names"]
        self._ax_lin.title.set_text(f"linear: {a}  ->  {b}")
        self._ax_sph.title.set_text("spherical (slerp)")
        self._n_lin.set_ydata(s["norms_linear"])
        self._n_sph.set_ydata(s["norms_spherical"])
        self._shell.set_ydata([s["shell"], s["shell"]])
        self._vline.set_xdata([s["t"], s["t"]])
        lo = min(s["norms_linear"].min(), s["shell"]) * 0.9
        self._ax_norm.set_ylim(lo, max(s["norms_spherical"].max(), s["shell"]) * 1.05)


def interpolation(model, images, labels, class_a="Sneaker", index_a: int = 0, class_b="Ankle boot",
                  index_b: int = 0, steps: int = 9) -> InterpolationWidget:
    """Lesson 07: encode two test images, walk between their latents (linear and spherical), decode the way."""
    return InterpolationWidget(model, images, labels, class_a, index_a, class_b, index_b, steps)


# ---- 3. attribute vectors ---------------------------------------------------------------------------------------------
class AttributeWidget(_ImageWidget):
    """direction = mean latent of ``target`` - mean latent of ``source`` (from ``z_bank``, ``bank_labels``), added
    with a strength to the latent of a chosen image of class ``source``.

    The button computes the direction and decodes the image at every strength (one batch); the strength slider picks
    one. state: strength, strip (len(strengths), 1, H, W) uint8, image, direction_norm, cosine (between the
    moved latent and the target's mean latent, per strength).
    """

    title = "attribute vector"

    def __init__(self, model, images, labels, z_bank, bank_labels, source="Sneaker", target="Ankle boot",
                 index: int = 0, strengths=DEFAULT_STRENGTHS, dpi: int = 72):
        import ipywidgets as W

        self.model, self.images, self.labels = model, images, labels.long()
        self.means = latents.class_means(z_bank, bank_labels)
        self.strengths = [float(s) for s in strengths]
        dd_s, box = _class_picker(W, "image of", self.labels, source, index)
        dd_s.description = "from"
        box.description = "image #"
        dd_t = W.Dropdown(options=[(c, k) for k, c in enumerate(CLASSES)], value=latents.class_index(target),
                          description="towards", layout=W.Layout(width="230px"))
        controls = {"source": dd_s, "index": box, "target": dd_t,
                    "strength": W.SelectionSlider(options=self.strengths, value=1.0 if 1.0 in self.strengths
                                                  else self.strengths[-1], description="strength",
                                                  continuous_update=False, layout=W.Layout(width="380px"))}
        super().__init__(controls, live=("strength",), figsize=(11, 3.3), button="encode and apply", dpi=dpi)
        self.recompute()

    def _prepare(self, v: dict) -> None:
        s, t = v["source"], v["target"]
        if s == t:
            raise ValueError(f"'from' and 'towards' are the same class ({CLASSES[s]}): the direction would be zero. "
                             f"Pick two different classes.")
        for k in (s, t):
            if bool(torch.isnan(self.means[k]).any()):
                raise ValueError(f"no encoded example of class {CLASSES[k]!r} to average; encode some first.")
        x = _pick(self.images, self.labels, s, v["index"])
        direction = self.means[t] - self.means[s]
        z = latents.encode(self.model, x)[0]
        zs = latents.apply_direction(z, direction, self.strengths)
        target = self.means[t]
        cos = (zs @ target / (zs.norm(dim=1) * target.norm())).numpy()
        strip = latents.to_grey(latents.decode(self.model, zs, nonfinite="nan"))
        self.prepared = {"image": x, "strip": strip, "note": _overflow_note(strip),
                         "direction_norm": float(direction.norm()), "cosine": cos,
                         "names": (CLASSES[s], CLASSES[t], v["index"])}

    def _build(self) -> None:
        self.figure.subplots_adjust(left=0.02, right=0.98, bottom=0.05, top=0.82, wspace=0.05)
        grid = self.figure.add_gridspec(1, 2, width_ratios=[len(self.strengths), 2.2])
        self._ax_strip, self._ax_big = self.figure.add_subplot(grid[0]), self.figure.add_subplot(grid[1])
        self._strip = _imshow(self._ax_strip, tile(torch.zeros(len(self.strengths), 1, 28, 28),
                                                  len(self.strengths)).shape)
        self._big = _imshow(self._ax_big, (28, 28))
        self._box = Rectangle((0, 0), 29, 29, fill=False, ec="tab:red", lw=2.5)
        self._ax_strip.add_patch(self._box)
        self._labels = [self._ax_strip.text((i + 0.5) * 29, 31.5, f"{s:+g}", ha="center", va="top", fontsize=9)
                        for i, s in enumerate(self.strengths)]
        self._ax_strip.set_ylim(36, -0.5)
        for ax in (self._ax_strip, self._ax_big):
            _image_axes(ax)
            ax.set_title(" ", y=1.0, fontsize=10)
            for sp in ax.spines.values():
                sp.set_visible(False)

    def _compute(self, v: dict) -> dict:
        k = self.strengths.index(v["strength"])
        return {**self.prepared, "strength": v["strength"], "step": k, "current": self.prepared["strip"][k]}

    def _draw(self) -> None:
        s = self.state
        src, tgt, idx = s["names"]
        self._strip.set_data(tile(s["strip"].float(), len(self.strengths)))
        self._big.set_data(s["current"][0].float().numpy())
        self._box.set_xy((s["step"] * 29 - 0.5, -0.5))
        self._ax_strip.set_title(f"{src} #{idx} + strength x (mean z of {tgt} - mean z of {src})")
        self._ax_big.set_title(f"strength {s['strength']:+g}")


def attribute_vector(model, images, labels, z_bank, bank_labels, source="Sneaker", target="Ankle boot",
                     index: int = 0, strengths=DEFAULT_STRENGTHS) -> AttributeWidget:
    """Lesson 07: add a class-to-class direction (Glow's "smile vector", from labels) to a chosen image."""
    return AttributeWidget(model, images, labels, z_bank, bank_labels, source, target, index, strengths)


# ---- 4. coarse / fine swap --------------------------------------------------------------------------------------------
class LevelSwapWidget(_ImageWidget):
    """Images A and B; the latent of A with its coarse level from B and the reverse; and A with its fine level
    re-drawn at temperature ``temperature`` (what a decoder that drops the factored-out latents would do).

    state: a, b, coarse_b_fine_a, coarse_a_fine_b, a_fine_resampled (each (1, 1, H, W) uint8), and
    reconstruction_error (max |decode(encode(A)) - (A + 1/2)|, pixel units).
    """

    title = "level swap"
    PANELS = ("A", "B", "fine A + coarse B", "fine B + coarse A", "A, fine level re-drawn")

    def __init__(self, model, images, labels, class_a="T-shirt/top", index_a=0, class_b="Trouser", index_b=0,
                 temperature: float = 0.8, dpi: int = 72):
        import ipywidgets as W

        self.model, self.images, self.labels = model, images, labels.long()
        self.temperature = latents.check_temperature(temperature)
        self.n_levels = latents.level_count(model)
        dd_a, box_a = _class_picker(W, "A", self.labels, class_a, index_a)
        dd_b, box_b = _class_picker(W, "B", self.labels, class_b, index_b)
        controls = {"class_a": dd_a, "index_a": box_a, "class_b": dd_b, "index_b": box_b}
        super().__init__(controls, live=(), figsize=(10, 2.6), button="encode and swap", dpi=dpi)
        self.recompute()

    def _prepare(self, v: dict) -> None:
        xa, xb = (_pick(self.images, self.labels, v[f"class_{k}"], v[f"index_{k}"]) for k in "ab")
        za, zb = latents.encode(self.model, torch.cat([xa, xb])).split(1)
        coarse = list(range(2, self.n_levels + 1))  # every level but the finest
        zs = torch.cat([za, latents.swap_levels(self.model, za, zb, coarse),
                        latents.swap_levels(self.model, zb, za, coarse),
                        latents.resample_levels(self.model, za, [1], self.temperature)])
        y = latents.decode(self.model, zs, nonfinite="nan")
        px = latents.to_grey(y)
        self.prepared = {"a": xa, "b": xb, "coarse_b_fine_a": px[1:2], "coarse_a_fine_b": px[2:3],
                         "a_fine_resampled": px[3:4], "note": _overflow_note(px),
                         "reconstruction_error": float((y[0] - xa[0].float() - 0.5).abs().max()),
                         "names": (f"{CLASSES[v['class_a']]} #{v['index_a']}",
                                   f"{CLASSES[v['class_b']]} #{v['index_b']}")}

    def _build(self) -> None:
        self.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
        self._axes = self.figure.subplots(1, len(self.PANELS))
        self._imgs = [_imshow(ax, (28, 28)) for ax in self._axes]
        for ax in self._axes:
            _image_axes(ax)
            ax.set_title(" ", y=1.0, fontsize=9)

    def _compute(self, v: dict) -> dict:
        return dict(self.prepared)

    def _draw(self) -> None:
        s = self.state
        pics = (s["a"], s["b"], s["coarse_b_fine_a"], s["coarse_a_fine_b"], s["a_fine_resampled"])
        a, b = s["names"]
        titles = (f"A: {a}", f"B: {b}", "fine A + coarse B", "fine B + coarse A",
                  f"A, fine re-drawn (T={self.temperature:g})")
        for img, ax, p, t in zip(self._imgs, self._axes, pics, titles):
            img.set_data(p[0, 0].float().numpy())
            ax.title.set_text(t)


def level_swap(model, images, labels, class_a="T-shirt/top", index_a: int = 0, class_b="Trouser",
               index_b: int = 0, temperature: float = 0.8) -> LevelSwapWidget:
    """Lesson 07: swap the coarse and fine latents of two images; re-draw the fine one instead of keeping it."""
    return LevelSwapWidget(model, images, labels, class_a, index_a, class_b, index_b, temperature)
