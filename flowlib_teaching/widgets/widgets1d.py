"""Interactive widgets of the course. The maths lives in flowlib's flows; a widget only wires controls to them and
draws, so that a test can set ``slider.value`` and read what was drawn.

``change_of_variables()`` (lesson 01): push a base density p(z) through a 1D map x = g(z) and compare the density
that the change-of-variables formula gives,

    q(x) = p(f(x)) |df/dx|,      f = g^{-1} (data -> latent, a flowlib ``Flow``),

with a Monte-Carlo histogram of x = g(z), z ~ p. For a map that is not invertible (x = (z - c)^2) the widget draws
the naive one-preimage formula next to the correct sum over both preimages.

Rendering: the figure is a plain ``matplotlib.figure.Figure`` (not pyplot, so ``%matplotlib inline`` never shows a
stray copy) drawn with Agg into a PNG that replaces the content of an ``ipywidgets.Output``. That works in plain
JupyterLab without ipympl, in a static export of the executed notebook, and headless in the tests
(``flowlib_teaching.widgets.base.FigureOutput``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from flowlib.core import Compose, Flow, FlowInputError, Inverse
from flowlib.distributions import StandardNormal, StandardUniform
from flowlib.bijections.elementwise import Affine, Exp, Sigmoid, SinhArcsinh
from flowlib_teaching.widgets.base import FigureOutput, sticky_top

__all__ = ["ChangeOfVariablesWidget", "MAPS", "canonical_map_name", "change_of_variables", "map_branches"]

NUM_SAMPLES = 4000  # Monte-Carlo samples of z (fixed seed: moving a slider changes the map, not the noise)
NUM_BINS = 60
GRID_POINTS = 2001
MIN_ABS_SCALE = 0.025  # |a| below this (half a slider step) counts as a = 0
BASE_LABELS = {"normal": "N(0, 1)", "uniform": "Uniform(0, 1)"}
# A band of base mass that the figure follows through the map: p(z) dz over it equals q(x) dx over its image.
Z_BAND = {"normal": (0.5, 1.0), "uniform": (0.4, 0.6)}
Z_RANGE = {"normal": (-4.0, 4.0), "uniform": (-0.25, 1.25)}


# ---- the maps -------------------------------------------------------------------------------------------------------
def _sqrt_flow() -> Flow:
    """x -> sqrt(x) on x > 0 as a flow: log, halve, exp (each step has an exact log-det)."""
    return Compose(Inverse(Exp()), Affine(0.5), Exp())


@dataclass(frozen=True)
class MapSpec:
    """One entry of the widget's map menu.

    ``branches(params)`` returns one flow f_b (data x -> latent z) per preimage of x: an invertible map has exactly
    one, and then q(x) = p(f(x)) |df/dx|. A non-invertible map has several, and q(x) = sum_b p(f_b(x)) |df_b/dx|.
    ``generate(z, params)`` is x = g(z) for the Monte-Carlo samples (by default the first branch's inverse).
    """

    label: str
    formula: str
    params: tuple[str, ...]
    defaults: dict[str, float]
    branches: Callable[[dict], list[Flow]]
    x_range: dict[str, tuple[float, float]]
    x_domain: tuple[float, float] = (-math.inf, math.inf)  # where q(x) can be evaluated
    z_domain: tuple[float, float] = (-math.inf, math.inf)  # where g(z) is defined
    generate: Callable[[torch.Tensor, dict], torch.Tensor] | None = None
    invertible: bool = True


MAPS: dict[str, MapSpec] = {
    "affine": MapSpec(
        "affine: x = a·z + b", "x = a·z + b", ("a", "b"), {"a": 3.0, "b": 1.0},
        lambda p: [Inverse(Affine(p["a"], p["b"]))],
        {"normal": (-10.0, 10.0), "uniform": (-6.5, 6.5)}),
    "sigmoid": MapSpec(
        "logistic sigmoid: x = σ(a·z + b)", "x = σ(a·z + b)", ("a", "b"),
        {"a": 1.0, "b": 0.0},
        lambda p: [Compose(Inverse(Sigmoid()), Inverse(Affine(p["a"], p["b"])))],  # x -> logit x -> (. - b) / a
        {"normal": (0.0, 1.0), "uniform": (0.0, 1.0)}, x_domain=(0.0, 1.0)),
    "exp": MapSpec(
        "exp (log-normal): x = exp(a·z + b)", "x = exp(a·z + b)", ("a", "b"), {"a": 0.5, "b": 0.0},
        lambda p: [Compose(Inverse(Exp()), Inverse(Affine(p["a"], p["b"])))],  # x -> log x -> (. - b) / a
        {"normal": (0.0, 8.0), "uniform": (0.0, 8.0)}, x_domain=(0.0, math.inf)),
    "sinh_arcsinh": MapSpec(
        "sinh-arcsinh: x = sinh((asinh z + skew) / tailweight)",
        "x = sinh((asinh z + skew) / tw)", ("skew", "tailweight"), {"skew": 0.5, "tailweight": 1.0},
        lambda p: [SinhArcsinh(p["skew"], p["tailweight"])],  # its forward is f = g^{-1}
        {"normal": (-6.0, 6.0), "uniform": (-6.0, 6.0)}),
    "logit": MapSpec(
        "logit (inverse CDF of the logistic): x = a·logit(z) + b", "x = a·logit(z) + b",
        ("a", "b"), {"a": 1.0, "b": 0.0},
        lambda p: [Compose(Inverse(Affine(p["a"], p["b"])), Sigmoid())],  # x -> (x - b) / a -> σ(.)
        {"normal": (-8.0, 8.0), "uniform": (-8.0, 8.0)}, z_domain=(0.0, 1.0)),
    "square": MapSpec(
        "square (NOT invertible): x = (z − c)²", "x = (z − c)²", ("c",), {"c": 0.0},
        # the two preimages of x > 0: z = c + sqrt(x) and z = c - sqrt(x)
        lambda p: [Compose(_sqrt_flow(), Affine(1.0, p["c"])), Compose(_sqrt_flow(), Affine(-1.0, p["c"]))],
        {"normal": (0.0, 9.0), "uniform": (0.0, 4.0)}, x_domain=(0.0, math.inf),
        generate=lambda z, p: (z - p["c"]) ** 2, invertible=False),
}

# name -> (description, min, max, step); the ranges keep every map valid except a = 0, which gets a message.
SLIDERS = {
    "a": ("a", -3.0, 3.0, 0.05),
    "b": ("b", -3.0, 3.0, 0.05),
    "skew": ("skew", -2.0, 2.0, 0.05),
    "tailweight": ("tailweight", 0.3, 3.0, 0.05),
    "c": ("c", -1.0, 1.0, 0.05),
}


def canonical_map_name(map_name: str) -> str:
    """"sinh-arcsinh", "Sinh_Arcsinh" and "sinh arcsinh" all name the same map; unknown names are an error."""
    key = str(map_name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in MAPS:
        raise ValueError(f"unknown map {map_name!r}; choose one of {list(MAPS)}.")
    return key


def map_branches(map_name: str, **params: float) -> list[Flow]:
    """The flows f_b (data -> latent) of a menu map, one per preimage; e.g. ``map_branches("affine", a=3, b=1)``."""
    spec = MAPS[canonical_map_name(map_name)]
    full = {**spec.defaults, **params}
    return spec.branches(full)


def _problem(spec: MapSpec, base: str, params: dict) -> str:
    """A teaching message when the setting is not a valid change of variables, else ''."""
    if "a" in spec.params and abs(params["a"]) < MIN_ABS_SCALE:
        return ("a = 0 is not allowed: then every z is sent to the same x, so g has no inverse and there is no "
                "density q(x) (|dz/dx| = 1/|a| would be infinite; all the mass sits on one point). "
                "Move a away from 0; a negative a is fine (the map is then decreasing, hence the |·|).")
    if spec.z_domain != (-math.inf, math.inf) and base == "normal":
        lo, hi = spec.z_domain
        return (f"g is only defined for {lo:g} < z < {hi:g}, but a standard normal puts most of its mass "
                f"outside that interval, so x = g(z) does not exist for most samples. "
                f"Pick the Uniform(0, 1) base: pushing uniforms through an inverse CDF is inverse-CDF sampling.")
    return ""


# ---- numerics shared by the widget and its tests --------------------------------------------------------------------
def _x_grid(spec: MapSpec, base: str, edges: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation grid of q(x) and a mask of its evenly spaced part (used for the y-limits).

    Inside the map's domain; refined geometrically towards a domain edge (where q may be singular, as for x = z^2
    at 0) and with points either side of the image of the base's support edges (where q jumps), so both are drawn
    and integrated accurately.
    """
    lo, hi = spec.x_range[base]
    dlo, dhi = spec.x_domain
    even = np.linspace(lo, hi, GRID_POINTS)
    span = hi - lo
    parts = [even]
    eps = 1e-9 * span
    if lo <= dlo:
        parts.append(dlo + np.geomspace(1e-9, 0.01, 150) * span)
    if hi >= dhi:
        parts.append(dhi - np.geomspace(1e-9, 0.01, 150) * span)
    for e in edges:
        if lo < e < hi:
            parts.append(np.array([e - eps, e + eps]))
    x = np.unique(np.concatenate(parts))
    x = x[(x > dlo) & (x < dhi)]
    # the evenly spaced points, away from a domain edge where q may blow up
    mask = np.isin(x, even)
    if lo <= dlo:
        mask &= x > lo + 0.02 * span
    if hi >= dhi:
        mask &= x < hi - 0.02 * span
    return x, mask


def _density(branches: list[Flow], base, x: np.ndarray) -> list[np.ndarray]:
    """q_b(x) = p(f_b(x)) |df_b/dx| for each branch, from the flows' forward log-dets."""
    xt = torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1)
    out = []
    with torch.no_grad():
        for f in branches:
            z, logdet = f(xt)
            out.append(torch.exp(base.log_prob(z) + logdet).numpy())
    return out


def _integrate(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.trapezoid(y, x)) if len(x) > 1 else 0.0


def _bin_masses(x: np.ndarray, q: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """∫ q over each bin, from the cumulative trapezoid rule on the (fine) grid."""
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (q[1:] + q[:-1]) * np.diff(x))])
    return np.diff(np.interp(edges, x, cum))


# ---- the widget -----------------------------------------------------------------------------------------------------
@dataclass
class _Artists:
    p_line: object = None
    z_hist: object = None
    g_line: object = None
    q_line: object = None
    naive_line: object = None
    x_hist: object = None
    spans: list = field(default_factory=list)
    note: object = None


class ChangeOfVariablesWidget:
    """p(z), the map z -> x, and q(x) against a Monte-Carlo histogram, with controls.

    Public API:
        controls: dict of the ipywidgets, by name:
            "map"  (Dropdown: "affine", "sigmoid", "exp", "sinh_arcsinh", "logit", "square"),
            "base" (ToggleButtons: "normal", "uniform"),
            "a", "b" (FloatSliders for the affine, sigmoid, exp and logit maps), "skew", "tailweight"
            (sinh-arcsinh), "c" (square). Only the sliders of the current map are shown.
        figure: the matplotlib Figure (one, reused; panels: p(z), the map, q(x)).
        readout: an ipywidgets.HTML with the numbers (mass on the plotted range, histogram vs q).
        output: the ipywidgets.Output that shows the rendered figure (``render=False`` skips the rendering: the
            figure's artists are still updated, which is what headless tests read).
        widget: the VBox to display (the object itself displays as it too).
        state: the arrays of the last update: "x_grid", "q_x" (the correct density), "q_naive" (one-preimage
            formula; equals q_x for an invertible map), "z_samples", "x_samples", "z_grid", "p_z", "hist", "edges",
            "mass", "naive_mass", "sample_fraction", "tv", "tv_noise", "band", "message", "valid", "seconds".
        update(): recompute and redraw (the controls call it).
    """

    def __init__(self, map_name: str = "affine", base: str = "normal", dpi: int = 80, seed: int = 0,
                 render: bool = True):
        import ipywidgets as W

        map_name = canonical_map_name(map_name)
        if base not in BASE_LABELS:
            raise ValueError(f"unknown base {base!r}; choose 'normal' or 'uniform'.")
        self.dpi = dpi
        self.render = render  # False: update the figure's artists but skip the PNG (headless tests)
        self._bases = {"normal": StandardNormal().double(), "uniform": StandardUniform().double()}
        g = torch.Generator().manual_seed(seed)
        self._z = {  # fixed samples per base
            "normal": torch.randn(NUM_SAMPLES, 1, generator=g, dtype=torch.float64),
            # kept strictly inside (0, 1): the logit map is undefined at 0 and 1
            "uniform": torch.rand(NUM_SAMPLES, 1, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12),
        }
        self._updating = False
        self.state: dict = {}
        self.controls: dict = {
            "map": W.Dropdown(options=[(s.label, k) for k, s in MAPS.items()], value=map_name, description="map",
                              layout=W.Layout(width="420px")),
            "base": W.ToggleButtons(options=[(v, k) for k, v in BASE_LABELS.items()], value=base,
                                    description="base p(z)", style={"button_width": "110px"}),
        }
        for name, (desc, lo, hi, step) in SLIDERS.items():
            self.controls[name] = W.FloatSlider(
                value=MAPS[map_name].defaults.get(name, 1.0 if name == "tailweight" else 0.0), min=lo, max=hi,
                step=step, description=desc, continuous_update=True, readout_format=".2f",
                layout=W.Layout(width="320px"))
        self.readout = W.HTML()
        self._view = FigureOutput((11, 3.4), dpi, label="<change-of-variables figure>",
                                  layout=W.Layout(min_height=f"{int(3.4 * dpi) + 10}px"))
        self.figure, self.output = self._view.figure, self._view.output
        self.controls["map"].observe(self._on_map, names="value")
        for name, control in self.controls.items():
            if name != "map":
                control.observe(lambda change: self._on_change(), names="value")
        self._sliders_box = W.HBox([self.controls[n] for n in SLIDERS], layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([W.HBox([self.controls["map"], self.controls["base"]]), self._sliders_box,
                              self.output, self.readout])
        self._build_figure()
        self._show_sliders()
        self.update()

    # ---- controls -------------------------------------------------------------------------------------------------
    def _on_change(self) -> None:
        if not self._updating:
            self.update()

    def _on_map(self, change) -> None:
        """A new map: reset its sliders to the map's defaults (one redraw, not one per slider)."""
        self._updating = True
        try:
            for name, value in MAPS[change["new"]].defaults.items():
                self.controls[name].value = value
        finally:
            self._updating = False
        self._show_sliders()
        self.update()

    def _show_sliders(self) -> None:
        used = MAPS[self.controls["map"].value].params
        for name in SLIDERS:
            self.controls[name].layout.display = None if name in used else "none"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ---- drawing --------------------------------------------------------------------------------------------------
    def _build_figure(self) -> None:
        self.figure.subplots_adjust(left=0.055, right=0.99, bottom=0.16, top=0.9, wspace=0.27)
        ax_z, ax_g, ax_x = self.figure.subplots(1, 3)
        self._axes = (ax_z, ax_g, ax_x)
        a = self._artists = _Artists()
        a.z_hist = ax_z.stairs([0.0], [0.0, 1.0], fill=True, color="tab:blue", alpha=0.25, label="samples of z")
        (a.p_line,) = ax_z.plot([], [], color="tab:blue", lw=2, label="p(z)")
        (a.g_line,) = ax_g.plot([], [], color="black", lw=2, label="x = g(z)")
        a.x_hist = ax_x.stairs([0.0], [0.0, 1.0], fill=True, color="tab:orange", alpha=0.3,
                               label="histogram of x = g(z)")
        (a.naive_line,) = ax_x.plot([], [], color="tab:red", lw=2, ls="--", label="naive: one preimage")
        (a.q_line,) = ax_x.plot([], [], color="tab:orange", lw=2, label="q(x) from flow.forward")
        a.note = ax_x.text(0.5, 0.5, "", transform=ax_x.transAxes, ha="center", va="center", wrap=True,
                           fontsize=10, color="tab:red")
        ax_z.set(xlabel="z (latent)", ylabel="density p(z)", title="base p(z)")
        ax_g.set(xlabel="z (latent)", ylabel="x (data)", title="the map x = g(z)")
        ax_x.set(xlabel="x (data)", ylabel="density q(x)", title="q(x): formula vs samples")
        for ax in self._axes:
            ax.grid(alpha=0.3)
            ax.locator_params(nbins=5)  # fewer tick labels: text is most of the drawing time

    def update(self) -> None:
        """Recompute from the controls' values and redraw."""
        start = time.perf_counter()
        name, base_name = self.controls["map"].value, self.controls["base"].value
        spec = MAPS[name]
        params = {p: float(self.controls[p].value) for p in spec.params}
        try:
            self._compute(spec, base_name, params)
        except (FlowInputError, ValueError) as err:  # whatever slips past _problem: a message, never a traceback
            self._invalid(spec, base_name, params, f"flowlib refused this setting: {err}")
        self._draw(spec, base_name, params)
        if self.render:
            self._render()
        self.state["seconds"] = time.perf_counter() - start

    def _compute(self, spec: MapSpec, base_name: str, params: dict) -> None:
        message = _problem(spec, base_name, params)
        if message:
            self._invalid(spec, base_name, params, message)
            return
        base, z = self._bases[base_name], self._z[base_name]
        branches = [f.double() for f in spec.branches(params)]  # float64 maths throughout
        generate = spec.generate or (lambda v, p: branches[0].inverse(v)[0])
        with torch.no_grad():
            x_samples = generate(z, params).reshape(-1).numpy()
            support = []  # images of the uniform's support edges, where q jumps
            if base_name == "uniform":
                for end in (0.0, 1.0):
                    if spec.z_domain[0] < end < spec.z_domain[1]:  # (the logit is infinite at 0 and 1)
                        support.append(float(generate(torch.tensor([[end]], dtype=torch.float64), params)))
        x, mask = _x_grid(spec, base_name, support)
        q_branches = _density(branches, base, x)
        q, q_naive = np.sum(q_branches, axis=0), q_branches[0]
        lo, hi = spec.x_range[base_name]
        edges = np.linspace(lo, hi, NUM_BINS + 1)
        counts, _ = np.histogram(x_samples, bins=edges)
        frac = counts / len(x_samples)
        m = _bin_masses(x, q, edges)
        mass, naive_mass = _integrate(x, q), _integrate(x, q_naive)
        self.state = {
            "map": spec.formula, "base": base_name, "params": params,
            "x_grid": x, "q_x": q, "q_naive": q_naive, "z_samples": z.reshape(-1).numpy(), "x_samples": x_samples,
            "hist": frac / np.diff(edges), "edges": edges, "mass": mass, "naive_mass": naive_mass,
            "sample_fraction": float(frac.sum()),
            # total-variation distance between the histogram and q's bin masses, and what sampling noise alone gives
            "tv": 0.5 * float(np.abs(frac - m).sum()),
            "tv_noise": 0.5 * float(np.sqrt(2 * np.clip(m, 0, 1) * (1 - np.clip(m, 0, 1)) / (math.pi * len(z)))
                                    .sum()),
            "ylim_q": float(np.max(q[mask])) if mask.any() else 1.0,
            "message": "", "valid": True,
        }
        self.state.update(self._z_panel(base_name))
        self.state["band"] = self._band(spec, branches, base, base_name, params, generate)
        if not spec.invertible:
            self.state["message"] = self._square_message(base_name, params, mass, naive_mass)

    def _invalid(self, spec: MapSpec, base_name: str, params: dict, message: str) -> None:
        empty = np.zeros(0)
        self.state = {"map": spec.formula, "base": base_name, "params": params, "x_grid": empty, "q_x": empty,
                      "q_naive": empty, "z_samples": self._z[base_name].reshape(-1).numpy(), "x_samples": empty,
                      "hist": empty, "edges": empty, "mass": float("nan"), "naive_mass": float("nan"),
                      "sample_fraction": float("nan"), "tv": float("nan"), "tv_noise": float("nan"),
                      "band": None, "message": message, "valid": False}
        self.state.update(self._z_panel(base_name))

    def _z_panel(self, base_name: str) -> dict:
        lo, hi = Z_RANGE[base_name]
        zg = np.linspace(lo, hi, 801)
        if base_name == "uniform":
            zg = np.unique(np.concatenate([zg, [-1e-9, 1e-9, 1 - 1e-9, 1 + 1e-9]]))
        with torch.no_grad():
            p = torch.exp(self._bases[base_name].log_prob(torch.as_tensor(zg).reshape(-1, 1))).numpy()
        return {"z_grid": zg, "p_z": p}

    @staticmethod
    def _band(spec: MapSpec, branches, base, base_name: str, params: dict, generate) -> dict:
        """A z-interval, its image [x0, x1] and every preimage of that image, with their masses."""
        z0, z1 = Z_BAND[base_name]
        d_lo, d_hi = spec.x_domain
        with torch.no_grad():
            # the image of [z0, z1] (min and max over the interval: a non-monotone map may turn inside it)
            xs = generate(torch.linspace(z0, z1, 401, dtype=torch.float64).reshape(-1, 1), params).reshape(-1)
            x0, x1 = max(float(xs.min()), d_lo + 1e-12), min(float(xs.max()), d_hi - 1e-12)
            # refined towards x0, where q may be singular (x = z^2 at 0)
            t = np.unique(np.concatenate([[0.0], np.geomspace(1e-9, 1e-2, 60), np.linspace(0, 1, 400)]))
            xb = x0 + (x1 - x0) * t
            qb = np.sum(_density(branches, base, xb), axis=0)
            preimages, z_mass = [], 0.0
            for f in branches:
                ends = f(torch.tensor([[x0], [x1]], dtype=torch.float64))[0].reshape(-1).tolist()
                za, zb = sorted(ends)
                preimages.append((za, zb))
                zz = np.linspace(za, zb, 401)
                z_mass += _integrate(zz, np.exp(base.log_prob(torch.as_tensor(zz).reshape(-1, 1)).numpy()))
        return {"z": (z0, z1), "x": (x0, x1), "preimages": preimages, "z_mass": z_mass,
                "x_mass": _integrate(xb, qb), "x_grid": xb, "q": qb}

    @staticmethod
    def _square_message(base_name: str, params: dict, mass: float, naive_mass: float) -> str:
        c = params["c"]
        text = (f"x = (z − c)² is not invertible: each x > 0 has two preimages, z = c + √x and z = c − √x. "
                f"The naive formula p(c + √x)·|dz/dx| (dashed) counts only the first: its integral over the plotted "
                f"range is {naive_mass:.2f}; summing over both preimages (solid) gives {mass:.2f} and matches the "
                f"histogram.")
        if base_name == "uniform" and c <= 0:
            text += (" Here the base lives on (0, 1), where z ↦ (z − c)² is increasing: only one preimage has "
                     "mass, so the naive formula happens to be right. Invertibility is needed where p(z) > 0.")
        return text

    def _draw(self, spec: MapSpec, base_name: str, params: dict) -> None:
        a, s = self._artists, self.state
        ax_z, ax_g, ax_x = self._axes
        for span in a.spans:
            span.remove()
        a.spans = []
        # panel 1: p(z) and the z samples
        z_lo, z_hi = Z_RANGE[base_name]
        z_edges = np.linspace(z_lo, z_hi, 49)
        z_counts, _ = np.histogram(s["z_samples"], bins=z_edges)
        a.z_hist.set_data(z_counts / (len(s["z_samples"]) * np.diff(z_edges)), z_edges)
        a.p_line.set_data(s["z_grid"], s["p_z"])
        ax_z.set_xlim(z_lo, z_hi)
        ax_z.set_ylim(0, 1.25 * max(float(s["p_z"].max()), 1e-3))
        # panel 2: the map, where it is defined (a = 0 is drawn as the constant map it degenerates to)
        x_lo, x_hi = spec.x_range[base_name]
        d_lo, d_hi = spec.z_domain
        zg = np.linspace(max(z_lo, d_lo + 1e-4), min(z_hi, d_hi - 1e-4), 400)
        a.g_line.set_data(zg, self._map_curve(spec, params, zg))
        ax_g.set_xlim(z_lo, z_hi)
        ax_g.set_ylim(x_lo, x_hi)
        ax_g.set_title(f"the map {spec.formula}", fontsize=10)
        # panel 3: q(x), the naive formula, the histogram
        ax_x.set_xlim(x_lo, x_hi)
        if s["valid"]:
            a.q_line.set_label("q(x) from flow.forward" if spec.invertible else "q(x): sum over both preimages")
            a.q_line.set_data(s["x_grid"], s["q_x"])
            a.x_hist.set_data(s["hist"], s["edges"])
            a.naive_line.set_data(s["x_grid"], s["q_naive"])
            a.naive_line.set_visible(not spec.invertible)
            top = max(float(s["hist"].max()), s["ylim_q"])
            ax_x.set_ylim(0, sticky_top(ax_x.get_ylim()[1], 1.15 * top if top > 0 else 1.0))
            a.note.set_text("")
            band = s["band"]
            a.spans.append(ax_x.fill_between(band["x_grid"], band["q"], color="tab:green", alpha=0.35, lw=0))
            for z0, z1 in band["preimages"]:
                zz = np.linspace(z0, z1, 200)
                with torch.no_grad():
                    pz = torch.exp(self._bases[base_name].log_prob(torch.as_tensor(zz).reshape(-1, 1))).numpy()
                a.spans.append(ax_z.fill_between(zz, pz, color="tab:green", alpha=0.35, lw=0))
                a.spans.append(ax_g.axvspan(z0, z1, color="tab:green", alpha=0.15, lw=0))
            a.spans.append(ax_g.axhspan(*band["x"], color="tab:green", alpha=0.15, lw=0))
        else:
            for artist in (a.q_line, a.naive_line):
                artist.set_data([], [])
            a.x_hist.set_data([0.0], [x_lo, x_hi])
            ax_x.set_ylim(0, 1)
            a.note.set_text(_wrap(s["message"], 40))
            if spec.z_domain != (-math.inf, math.inf):  # show where g is defined
                for ax in (ax_z, ax_g):
                    a.spans.append(ax.axvspan(*spec.z_domain, color="tab:green", alpha=0.15, lw=0))
        if ax_x.get_legend() is not None:
            ax_x.get_legend().remove()
        if s["valid"]:
            handles = [a.q_line, a.x_hist] + ([a.naive_line] if not spec.invertible else [])
            ax_x.legend(handles=handles, loc="upper right", fontsize=8)
        self.readout.value = self._readout_html(spec, base_name)

    @staticmethod
    def _map_curve(spec: MapSpec, params: dict, z: np.ndarray) -> np.ndarray:
        p = dict(params)
        if "a" in p and abs(p["a"]) < MIN_ABS_SCALE:
            p["a"] = 1e-9  # invertible in name only: the curve is flat, which is the point
        zt = torch.as_tensor(z, dtype=torch.float64).reshape(-1, 1)
        try:
            with torch.no_grad():
                x = spec.generate(zt, p) if spec.generate is not None else spec.branches(p)[0].double().inverse(zt)[0]
            return x.reshape(-1).numpy()
        except (FlowInputError, ValueError):
            return np.full_like(z, np.nan)

    def _readout_html(self, spec: MapSpec, base_name: str) -> str:
        s = self.state
        box = ("<div style='border-left:4px solid {c}; padding:2px 8px; margin:4px 0'>{t}</div>")
        if not s["valid"]:
            return box.format(c="#d62728", t=f"<b>Not a valid change of variables.</b> {s['message']}")
        lo, hi = spec.x_range[base_name]
        band = s["band"]
        rows = [
            f"<b>{spec.formula}</b> with {', '.join(f'{k} = {v:g}' for k, v in s['params'].items())}, "
            f"z ~ {BASE_LABELS[base_name]}",
            f"∫ q(x) dx over the plotted range [{lo:g}, {hi:g}] = <b>{s['mass']:.3f}</b> "
            f"(fraction of the {len(s['x_samples'])} samples that land there: {s['sample_fraction']:.3f})",
            f"histogram vs q: total-variation distance <b>{s['tv']:.3f}</b> "
            f"(sampling noise alone gives about {s['tv_noise']:.3f})",
            f"green band: ∫ p(z) dz over its preimage{'s' if len(band['preimages']) > 1 else ''} = "
            f"{band['z_mass']:.3f}, ∫ q(x) dx over [{band['x'][0]:.3g}, {band['x'][1]:.3g}] = {band['x_mass']:.3f}"
            f" — p(z) dz = q(x) dx",
        ]
        html = "<br>".join(rows)
        if s["message"]:
            html += box.format(c="#ff7f0e", t=s["message"])
        return html

    def _render(self) -> None:
        """Agg-render the figure to a PNG and make it the Output's only content (no flicker, no pyplot)."""
        self.png = self._view.show()


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def change_of_variables(map_name: str = "affine", base: str = "normal") -> ChangeOfVariablesWidget:
    """The lesson-01 widget: pick a map x = g(z) and a base p(z), move the sliders, and compare q(x) from the
    change-of-variables formula with a histogram of x = g(z). ``map_name`` is one of ``MAPS`` ("affine",
    "sigmoid", "exp", "sinh_arcsinh" (or "sinh-arcsinh"), "logit", "square"); ``base`` is "normal" or "uniform"."""
    return ChangeOfVariablesWidget(map_name, base)
