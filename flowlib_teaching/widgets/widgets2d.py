"""The 2D widgets of lessons 02 and 03. The maths is in flowlib (``flowlib.testing.jacobian``, ``flowlib_teaching.plot2d``);
a widget wires controls to it and draws, so a test can set ``controls[name].value`` and read ``state``.

    matrix_deformation()     a 2x2 matrix A deforms the unit square; det A is the signed area of the image
    local_linearization()    a non-linear map deforms a grid; near a picked point it is its Jacobian (linear)
    layer_stepper(model)     samples and density of a trained flow after k of its K layers

Every widget exposes ``controls`` (dict of ipywidgets), ``figure`` (a plain matplotlib Figure), ``state`` (dict of
what was computed and drawn), ``message`` (an ipywidgets.HTML: warnings are shown there and in the figure, never as a
traceback) and ``update()``. The figure is rendered with Agg into a PNG that becomes the content of an
``ipywidgets.Output`` (no ipympl needed; works headless): ``flowlib_teaching.widgets.base``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from flowlib_teaching import plot2d
from flowlib.testing import jacobian
from flowlib_teaching.maps2d import MAPS_2D
from flowlib_teaching.widgets.base import FigureWidget, sticky_top

__all__ = ["matrix_deformation", "local_linearization", "layer_stepper",
           "SINGULAR_TOL"]

SINGULAR_TOL = 1e-6  # |det A| below this counts as singular


class _Widget2D(FigureWidget):
    """A ``FigureWidget`` with ``ncols`` axes side by side, a suptitle, and every control live.

    Subclasses define ``_build`` (create every artist once), ``_compute`` (the maths, from the controls' values) and
    ``_draw`` (move the existing artists: ``set_data``, ``set_xy``, ``set_offsets``, ``set_text``). Nothing is
    cleared and re-created on an update: rebuilding axes, ticks and titles was most of the drawing time, so an
    update only changes data and renders one PNG.
    """

    def __init__(self, controls: dict, figsize: tuple[float, float], dpi: int = 80, ncols: int = 2):
        super().__init__(controls, figsize, dpi)
        # a fixed layout (constrained layout would double the drawing time of every update)
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.83, wspace=0.3)
        self.axes = list(self.figure.subplots(1, ncols))
        for ax in self.axes:
            ax.locator_params(nbins=5)  # fewer tick labels: text is most of the drawing time
        self.suptitle = self.figure.suptitle(" ")
        self._build()
        for c in controls.values():
            c.observe(lambda change: self.update(), names="value")
        self._layout()


def _title(ax, text: str, **kw) -> None:
    """A title at a fixed height (y given): matplotlib then skips re-measuring the tick labels at every draw."""
    ax.set_title(text, y=1.0, **kw)


_SUBSCRIPT = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")


def _unicode_math(name: str) -> str:
    """A coordinate's name as plain text with subscripts: "z_1" -> "z₁", "h_{6,1}" -> "h₆,₁". Plain text, not
    mathtext: the layer steppers relabel their axes at every step, and parsing mathtext was a quarter of such an
    update (``python -m benchmarks widget_latency``)."""
    base, _, sub = name.partition("_")
    return base + sub.strip("{}").translate(_SUBSCRIPT)


def _labels(ax, names: tuple[str, str]) -> None:
    ax.set_xlabel(_unicode_math(names[0]), fontstyle="italic")
    ax.set_ylabel(_unicode_math(names[1]), fontstyle="italic")


def _slider(value, lo, hi, step, description, continuous=True):
    import ipywidgets as W

    return W.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                         continuous_update=continuous, readout_format=".2f", layout=W.Layout(width="260px"))


# ---- 1. a matrix deforms the unit square ------------------------------------------------------------------------------
class MatrixWidget(_Widget2D):
    """A = [[a, b], [c, d]] maps the unit square onto the parallelogram spanned by A e1 = (a, c) and A e2 = (b, d),
    whose area is |det A| = |ad - bc|. A negative det means the square is also mirrored (orientation flips); det = 0
    flattens it onto a line or a point: A is not invertible.

    state: matrix (2, 2), det, area, corners (4, 2) image of (0,0), (1,0), (1,1), (0,1), singular, orientation,
    message.
    """

    title = "matrix deformation"

    def __init__(self, a=1.5, b=0.5, c=0.25, d=1.0, dpi=80):
        controls = {k: _slider(v, -2.0, 2.0, 0.05, k) for k, v in dict(a=a, b=b, c=c, d=d).items()}
        super().__init__(controls, (7.5, 3.8), dpi)
        self.update()

    def _compute(self, v: dict) -> dict:
        A = np.array([[v["a"], v["b"]], [v["c"], v["d"]]], dtype=float)
        det = float(A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0])
        square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
        singular = abs(det) < SINGULAR_TOL
        msg = ""
        if singular:
            msg = ("det A = 0: A is singular. The unit square is flattened onto a line (or a point), its area is 0, "
                   "and A has no inverse, so it cannot be a flow: a density pushed through it would be infinite on "
                   "the line. Move a slider to make ad ≠ bc.")
        orientation = "singular" if singular else ("kept" if det > 0 else "flipped (a mirror image)")
        return {"matrix": A, "det": 0.0 if singular else det, "area": 0.0 if singular else abs(det),
                "corners": square @ A.T, "singular": singular, "orientation": orientation, "message": msg}

    SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    GRID = np.linspace(0, 1, 6)  # a 5 x 5 grid inside the square, drawn with its image

    def _build(self) -> None:
        ax_in, ax_out = self.axes
        self._grid_out = []
        for t in self.GRID:
            for seg in (np.array([[t, 0], [t, 1]]), np.array([[0, t], [1, t]])):
                ax_in.plot(*seg.T, color="0.55", lw=0.6)
                self._grid_out.append((seg, ax_out.plot(*seg.T, color="0.55", lw=0.6)[0]))
        pts = self.SQUARE
        (self._image,) = ax_out.fill(pts[:, 0], pts[:, 1], color="tab:orange", alpha=0.35)
        (self._outline,) = ax_out.plot(*np.vstack([pts, pts[:1]]).T, color="black", lw=1.2)
        ax_in.fill(pts[:, 0], pts[:, 1], color="tab:blue", alpha=0.35)
        ax_in.plot(*np.vstack([pts, pts[:1]]).T, color="black", lw=1.2)
        for ax, title, names in ((ax_in, "unit square (area 1)", ("x_1", "x_2")),
                                 (ax_out, "its image under A", ("y_1", "y_2"))):
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_aspect("equal")
            _title(ax, title)
            _labels(ax, names)
        self._arrows = []
        for name, color in (("A e₁", "tab:red"), ("A e₂", "tab:green")):
            arrow = ax_out.annotate("", xy=(1, 0), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=2))
            self._arrows.append((arrow, ax_out.text(1, 0, name, color=color)))
        self._warning = ax_out.text(0.5, 0.08, "", transform=ax_out.transAxes, ha="center", color="#b00020",
                                    fontsize=11, fontweight="bold")

    def _draw(self) -> None:
        s = self.state
        ax_in, ax_out = self.axes
        r = sticky_top(ax_in.get_xlim()[1], max(1.6, float(np.abs(s["corners"]).max()) + 0.4))
        for ax in (ax_in, ax_out):
            ax.set_xlim(-r, r)
            ax.set_ylim(-r, r)
        A = s["matrix"]
        for seg, line in self._grid_out:
            line.set_data(*(seg @ A.T).T)
        self._image.set_xy(s["corners"])
        self._outline.set_data(*np.vstack([s["corners"], s["corners"][:1]]).T)
        for col, (arrow, label) in enumerate(self._arrows):
            arrow.xy = tuple(A[:, col])
            label.set_position(tuple(A[:, col] * 1.08))
        if s["singular"]:
            self._warning.set_text("det A = 0: singular,\nnot invertible")
            self.suptitle.set_text("det A = 0  →  area 0")
            self.suptitle.set_color("#b00020")
        else:
            self._warning.set_text("")
            self.suptitle.set_text(f"det A = ad − bc = {s['det']:.3f}   →   area |det A| = {s['area']:.3f}, "
                                   f"orientation {s['orientation']}")
            self.suptitle.set_color("black")


def matrix_deformation(a: float = 1.5, b: float = 0.5, c: float = 0.25, d: float = 1.0) -> MatrixWidget:
    """Lesson 02: drag a, b, c, d of A = [[a, b], [c, d]] and watch the unit square, its image and det A."""
    return MatrixWidget(a, b, c, d)


# ---- 2. a non-linear map is locally linear ----------------------------------------------------------------------------
class LocalLinearWidget(_Widget2D):
    """A non-linear map T deforms a grid. Around a picked point a, T(u) ≈ T(a) + J(a)(u - a): a small square of
    side r is sent to (almost) the parallelogram J(a) sends it to, and its area is multiplied by |det J(a)|.

    state: point (2,), jacobian (2, 2) by autograd, det, curved (the image of the small square's outline under T),
    linear (its image under the linear approximation), error (max distance between the two, divided by r),
    area_ratio (area of the curved image / r^2, by the shoelace formula), message.
    """

    title = "local linearization"
    BOUNDS = ((-3.0, 3.0), (-3.0, 3.0))

    def __init__(self, map_name="sine shear", strength=0.6, px=0.8, py=0.4, r=0.8, dpi=80):
        import ipywidgets as W

        if map_name not in MAPS_2D:
            raise ValueError(f"unknown map {map_name!r}; choose one of {list(MAPS_2D)}.")
        controls = {"map": W.Dropdown(options=list(MAPS_2D), value=map_name, description="map",
                                      layout=W.Layout(width="220px")),
                    "strength": _slider(strength, 0.0, 0.9, 0.05, "strength"),
                    "px": _slider(px, -2.5, 2.5, 0.05, "point a₁"),
                    "py": _slider(py, -2.5, 2.5, 0.05, "point a₂"),
                    "r": _slider(r, 0.05, 1.5, 0.05, "square side r")}
        super().__init__(controls, (11.5, 4.2), dpi, ncols=3)
        self.update()

    def map_fn(self, v: dict | None = None) -> Callable[[Tensor], Tensor]:
        v = v or self.values()
        g, s = MAPS_2D[v["map"]], float(v["strength"])
        return lambda x: g(x, s)

    def _compute(self, v: dict) -> dict:
        g = self.map_fn(v)
        p = torch.tensor([[v["px"], v["py"]]], dtype=torch.float64)
        J = jacobian(g, p)[0]  # (2, 2), autograd
        r = float(v["r"])
        t = torch.linspace(0, 1, 41, dtype=torch.float64)[:-1]
        zero, one = torch.zeros_like(t), torch.ones_like(t)
        # outline of the square of side r centred on p (counter-clockwise), as offsets from p
        outline = r * (torch.cat([torch.stack([t, zero], 1), torch.stack([one, t], 1),
                                  torch.stack([1 - t, one], 1), torch.stack([zero, 1 - t], 1)]) - 0.5)
        with torch.no_grad():
            gp = g(p)
            curved = g(p + outline)
            linear = gp + outline @ J.T
        err = float((curved - linear).norm(dim=1).max()) / r
        xy = curved.numpy()
        area = 0.5 * abs(float(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1))))
        return {"point": p[0].numpy(), "jacobian": J.numpy(), "det": float(torch.linalg.det(J)),
                "image_point": gp[0].numpy(), "curved": xy, "linear": linear.numpy(), "error": err,
                "area_ratio": area / r**2, "message": ""}

    GRID_LINES = 13

    def _build(self) -> None:
        ax_in, ax_out, ax_zoom = self.axes
        plot2d.plot_grid_deformation(ax_in, None, self.BOUNDS, lines=self.GRID_LINES, color="0.6",
                                     names=("x_1", "x_2"))
        (x0, x1), (y0, y1) = self.BOUNDS
        ax_in.set(xlim=(x0 - 0.3, x1 + 0.3), ylim=(y0 - 0.3, y1 + 0.3))
        _title(ax_in, "input x: a grid and a small square")
        self._square = ax_in.add_patch(Rectangle((0, 0), 1, 1, fill=True, color="tab:orange", alpha=0.5))
        (self._point,) = ax_in.plot([0], [0], "ko", ms=4)
        # the image of the grid: one line per grid line, moved only when the map or its strength changes
        self._grid_lines = plot2d.grid_lines(self.BOUNDS, self.GRID_LINES)
        self._grid_out = [ax_out.plot([], [], color="0.6", lw=1.0, ls="-" if i < self.GRID_LINES else "--",
                                      alpha=0.8)[0] for i in range(len(self._grid_lines))]
        self._grid_key = None
        _title(ax_out, " ")
        self._images = []
        for ax in (ax_out, ax_zoom):
            (curved,) = ax.fill([0, 1, 1], [0, 0, 1], color="tab:orange", alpha=0.5, label="T(square)")
            (linear,) = ax.plot([], [], color="tab:red", ls="--", lw=1.6, label="T(a) + J(a)(x − a)")
            (point,) = ax.plot([0], [0], "ko", ms=4)
            self._images.append((curved, linear, point))
            ax.set_aspect("equal")
            _labels(ax, ("y_1", "y_2"))
        _title(ax_zoom, "zoom near T(a)")
        ax_zoom.set(xticks=[], yticks=[])  # it follows T(a): its width is in the title, so no ticks to redraw
        ax_zoom.legend(loc="upper left", fontsize=8)
        self.suptitle.set_fontsize(10)

    def _draw_grid(self, v: dict) -> None:
        key = (v["map"], float(v["strength"]))
        if key == self._grid_key:
            return
        g = self.map_fn(v)
        with torch.no_grad():
            mapped = [g(line.double()).numpy() for line in self._grid_lines]
        for line, y in zip(self._grid_out, mapped):
            line.set_data(y[:, 0], y[:, 1])
        lo, hi = np.min([y.min(0) for y in mapped], 0), np.max([y.max(0) for y in mapped], 0)
        pad = 0.05 * float((hi - lo).max())
        lo, hi = np.floor((lo - pad) * 2) / 2, np.ceil((hi + pad) * 2) / 2  # on half units: the limits (and the
        ax_out = self.axes[1]                                              # cached ticks) move less often
        ax_out.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax_out.title.set_text(f"output y = T(x) ({v['map']})")
        self._grid_key = key

    def _draw(self) -> None:
        s, v = self.state, self.values()
        self._draw_grid(v)
        p, r = s["point"], float(v["r"])
        self._square.set_xy(tuple(p - r / 2))
        self._square.set_width(r)
        self._square.set_height(r)
        self._point.set_data([p[0]], [p[1]])
        cur, lin, gp = s["curved"], s["linear"], s["image_point"]
        for curved, linear, point in self._images:
            curved.set_xy(cur)
            linear.set_data(*np.vstack([lin, lin[:1]]).T)
            point.set_data([gp[0]], [gp[1]])
        half = 0.5 * max(np.ptp(np.vstack([cur, lin]), axis=0).max(), 1e-3) * 1.25
        self.axes[2].set(xlim=(gp[0] - half, gp[0] + half), ylim=(gp[1] - half, gp[1] + half))
        self.axes[2].title.set_text(f"zoom near T(a): {2 * half:.2g} wide")
        J = s["jacobian"]
        self.suptitle.set_text(f"J(a) = [[{J[0, 0]:.2f}, {J[0, 1]:.2f}], [{J[1, 0]:.2f}, {J[1, 1]:.2f}]]    "
                               f"det J(a) = {s['det']:.3f}    area of T(square) / r² = {s['area_ratio']:.3f}    "
                               f"largest gap / r = {s['error']:.3f}")


def local_linearization(map_name: str = "sine shear", strength: float = 0.6, px: float = 0.8, py: float = 0.4,
                        r: float = 0.8) -> LocalLinearWidget:
    """Lesson 02: a non-linear map deforms a grid; shrink the square (r) and the curved image becomes the
    parallelogram of the Jacobian, with area ratio -> |det J(a)|."""
    return LocalLinearWidget(map_name, strength, px, py, r)


# ---- 3. step through the layers of a trained flow ---------------------------------------------------------------------
class LayerStepperWidget(_Widget2D):
    """Samples and density of a trained 2D flow model after k of its K layers in the sampling direction.

    k = 0 shows the base (z ~ N(0, I)); k = K the model. The samples are ``flow.trace(z, "inverse")[k]`` for fixed
    base samples z, and the density is ``plot2d.stage_log_prob(flow, base, k)``.

    state: k, samples (n, 2) after k layers, density (grid, grid), mass (the density's integral on the plotted
    window, a check), message.
    """

    title = "layer stepper"

    def __init__(self, model, bounds=plot2d.DEFAULT_BOUNDS, n_samples=2000, grid=100, data: Tensor | None = None,
                 seed=0, dpi=80):
        import ipywidgets as W

        self.model, self.bounds, self.grid, self.data = model, bounds, grid, data
        flow = model.flow
        self.K = len(flow)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = model.base.sample(n_samples, generator=g)
            self.trace = [s[0].numpy() for s in flow.trace(z, direction="inverse")]
        self._density_cache: dict[int, np.ndarray] = {}
        controls = {"k": W.IntSlider(value=self.K, min=0, max=self.K, step=1, description="layers k",
                                     continuous_update=True, layout=W.Layout(width="420px"))}
        super().__init__(controls, (8.0, 4.0), dpi)
        self.update()

    def _density(self, k: int) -> np.ndarray:
        if k not in self._density_cache:
            lp = plot2d.stage_log_prob(self.model.flow, self.model.base, k)
            self._density_cache[k] = plot2d.density_on_grid(lp, self.bounds, self.grid)[2]
        return self._density_cache[k]

    def _compute(self, v: dict) -> dict:
        k = int(v["k"])
        P = self._density(k)
        (x0, x1), (y0, y1) = self.bounds
        cell = (x1 - x0) / (self.grid - 1) * (y1 - y0) / (self.grid - 1)
        return {"k": k, "samples": self.trace[k], "density": P, "mass": float(P.sum() * cell), "message": ""}

    def _build(self) -> None:
        ax_s, ax_d = self.axes
        (x0, x1), (y0, y1) = self.bounds
        self._data = None
        if self.data is not None:
            self._data = plot2d.plot_samples(ax_s, self.data, self.bounds, color="0.7")
        self._samples = plot2d.plot_samples(ax_s, self.trace[self.K], self.bounds)
        self._image = ax_d.imshow(np.zeros((self.grid, self.grid)), origin="lower", extent=(x0, x1, y0, y1),
                                  cmap="viridis", aspect="equal", interpolation="nearest")
        _title(ax_s, " ")
        _title(ax_d, " ")

    def _draw(self) -> None:
        s = self.state
        k = s["k"]
        ax_s, ax_d = self.axes
        # the states are numbered as in lesson 03's density direction, h_0 = x, ..., h_K = z: after k inverse layers
        # the samples are h_{K-k}
        j = self.K - k
        stage = "base z ~ N(0, I)" if k == 0 else ("model q(x)" if k == self.K else f"h_{j} (after {k} inverse layers)")
        names = ("z_1", "z_2") if k == 0 else (("x_1", "x_2") if k == self.K else (f"h_{{{j},1}}", f"h_{{{j},2}}"))
        if self._data is not None:
            self._data.set_visible(k == self.K)
        self._samples.set_offsets(s["samples"][:5000])
        self._image.set_data(s["density"])
        self._image.set_clim(0.0, max(float(s["density"].max()), 1e-12))
        for ax in (ax_s, ax_d):
            _labels(ax, names)
        ax_s.title.set_text(f"samples: {stage}")
        ax_d.title.set_text(f"density after {k} of {self.K} layers")


def layer_stepper(model, bounds=plot2d.DEFAULT_BOUNDS, n_samples: int = 2000, grid: int = 100,
                  data: Tensor | None = None) -> LayerStepperWidget:
    """Lesson 03: slide k from 0 (the base) to K (the trained model) and watch samples and density morph."""
    return LayerStepperWidget(model, bounds, n_samples, grid, data)
