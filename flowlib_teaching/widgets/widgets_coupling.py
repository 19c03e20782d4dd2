"""The widgets of lesson 04 (coupling layers). The maths is flowlib's (``AffineCoupling``, ``AdditiveCoupling``,
``FlowModel``, ``testing.jacobian``); a widget wires controls to it and draws, so that a test can set
``controls[name].value`` and read ``state`` and the drawn artists.

    coupling_layer()          one coupling on a 2D Gaussian: choose the mask and the kind, move its log-scale and
                              shift, watch a grid and the density move, read the log-det (checked by autograd)
    realnvp_stepper(model)    a trained 2D RealNVP layer by layer: samples and density after k of its K layers, with
                              the mask and the log-det of the layer just applied

Same contract as ``flowlib_teaching.widgets.widgets2d``: ``controls``, ``figure``, ``state``, ``message``, ``update()``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling
from flowlib.distributions import StandardNormal
from flowlib.models import FlowModel
from flowlib.testing import jacobian
from flowlib_teaching import plot2d
from flowlib_teaching.widgets.widgets2d import LayerStepperWidget, _labels, _slider, _title, _Widget2D

__all__ = ["HandConditioner", "CouplingWidget", "coupling_layer", "RealNVPStepperWidget", "realnvp_stepper",
           "MASKS_2D"]

MASKS_2D = {"(1, 0): x₁ passed through": (1.0, 0.0), "(0, 1): x₂ passed through": (0.0, 1.0)}


class HandConditioner(nn.Module):
    """A conditioner with four numbers instead of a network, so that a slider can set it:

        h(x_p) = s0 + s1 * x_p   (the raw log-scale; AffineCoupling bounds it to s = 2 tanh(h / 2))
        t(x_p) = t0 + t1 * x_p^2 (the shift; a curved shift makes the banana shapes a trained layer makes)

    x_p is the one passed-through coordinate of a 2D input (the coupling hands over ``mask * x``, so the sum over
    the coordinates is x_p). ``affine=False`` outputs the shift only (for ``AdditiveCoupling``)."""

    def __init__(self, s0=0.0, s1=0.0, t0=0.0, t1=0.0, affine: bool = True):
        super().__init__()
        self.affine = affine
        self.register_buffer("params", torch.tensor([s0, s1, t0, t1], dtype=torch.float64))

    def forward(self, v: Tensor) -> Tensor:  # (B, 2) -> (B, 4) affine [h, h, t, t] or (B, 2) additive [t, t]
        p = self.params.to(v.dtype)
        xp = v.sum(dim=1, keepdim=True)
        t = (p[2] + p[3] * xp ** 2).expand(-1, 2)
        if not self.affine:
            return t
        return torch.cat([(p[0] + p[1] * xp).expand(-1, 2), t], dim=1)


def _layer(mask: tuple[float, float], kind: str, s0: float, s1: float, t0: float, t1: float):
    m = torch.tensor(mask)
    net = HandConditioner(s0, s1, t0, t1, affine=kind == "affine")
    return (AffineCoupling(m, net=net) if kind == "affine" else AdditiveCoupling(m, net=net)).double()


class CouplingWidget(_Widget2D):
    """One coupling layer f (data x -> latent z) on a standard normal base, so q(x) = N(f(x)) |det ∂f/∂x|.

    Left: a regular grid of the latent space mapped to data space by f^{-1} (where the layer moves each line; the
    lines of the passed-through coordinate stay straight). Right: the density q(x), with a probe point x*.
    Readout: log|det ∂z/∂x| at x* from the layer (= s(x_p), 0 for additive) and from the autograd Jacobian, its
    range over the window, and the density's mass on the window (≈ 1: a check).

    state: mask, kind, lines (list of (n, 2) arrays, the drawn grid), density (grid, grid), logdet_probe,
    logdet_autograd, logdet_range (min, max over the window), mass, message.
    """

    title = "coupling layer"
    PROBE = (1.0, -0.5)

    def __init__(self, mask="(1, 0): x₁ passed through", kind="affine", s0=0.5, s1=0.4, t0=0.0, t1=0.3,
                 bounds=((-4.0, 4.0), (-4.0, 4.0)), grid=70, dpi=80):
        import ipywidgets as W

        if mask not in MASKS_2D:
            raise ValueError(f"mask must be one of {list(MASKS_2D)}, got {mask!r}.")
        if kind not in ("affine", "additive"):
            raise ValueError(f"kind must be 'affine' or 'additive', got {kind!r}.")
        self.bounds, self.grid = bounds, grid
        controls = {
            "mask": W.Dropdown(options=list(MASKS_2D), value=mask, description="mask",
                               layout=W.Layout(width="260px")),
            "kind": W.ToggleButtons(options=["affine", "additive"], value=kind, description="coupling",
                                    style={"button_width": "80px"}),
            "s0": _slider(s0, -1.5, 1.5, 0.05, "log-scale s₀"),
            "s1": _slider(s1, -1.0, 1.0, 0.05, "s slope s₁"),
            "t0": _slider(t0, -2.0, 2.0, 0.05, "shift t₀"),
            "t1": _slider(t1, -0.6, 0.6, 0.02, "shift bend t₁"),
        }
        super().__init__(controls, (8.4, 4.2), dpi)
        self.update()

    def layer(self, v: dict | None = None):
        v = self.values() if v is None else v
        return _layer(MASKS_2D[v["mask"]], v["kind"], v["s0"], v["s1"], v["t0"], v["t1"])

    def _compute(self, v: dict) -> dict:
        layer = self.layer(v)
        model = FlowModel(layer, StandardNormal(2))
        (x0, x1), (y0, y1) = self.bounds
        ticks = np.linspace(-3, 3, 13)
        line = np.linspace(-3.5, 3.5, 120)
        lines = []
        with torch.no_grad():
            for c in ticks:  # a regular grid in z, mapped to x = f^{-1}(z)
                for pts in (np.stack([np.full_like(line, c), line], 1), np.stack([line, np.full_like(line, c)], 1)):
                    lines.append(layer.inverse(torch.as_tensor(pts))[0].numpy())
            X, Y, pts = plot2d.grid_points(self.bounds, self.grid)
            pts = pts.double()
            lp = model.log_prob(pts)
            density = lp.exp().reshape(self.grid, self.grid).numpy()
            lds = layer(pts)[1]
            probe = torch.tensor([self.PROBE], dtype=torch.float64)
            ld_probe = float(layer(probe)[1])
        ld_auto = float(torch.linalg.slogdet(jacobian(lambda u: layer(u)[0], probe)[0])[1])
        cell = (x1 - x0) / (self.grid - 1) * (y1 - y0) / (self.grid - 1)
        mass = float(density.sum() * cell)
        msg = ""
        if mass < 0.9:
            msg = (f"only {mass:.2f} of the mass lies in the window: the layer moved part of the density off the "
                   f"picture (shift it back)")
        return {"mask": MASKS_2D[v["mask"]], "kind": v["kind"], "lines": lines, "density": density,
                "logdet_probe": ld_probe, "logdet_autograd": ld_auto,
                "logdet_range": (float(lds.min()), float(lds.max())), "mass": mass, "message": msg}

    def _build(self) -> None:
        ax_g, ax_d = self.axes
        (x0, x1), (y0, y1) = self.bounds
        self._lines = [ax_g.plot([], [], lw=0.8, color="tab:blue" if i % 2 == 0 else "tab:orange")[0]
                       for i in range(26)]
        ax_g.set_xlim(x0, x1)
        ax_g.set_ylim(y0, y1)
        ax_g.set_aspect("equal")
        self._image = ax_d.imshow(np.zeros((self.grid, self.grid)), origin="lower", extent=(x0, x1, y0, y1),
                                  cmap="viridis", aspect="equal", interpolation="nearest")
        self._probe = ax_d.plot([self.PROBE[0]], [self.PROBE[1]], "x", color="white", ms=8, mew=2)[0]
        for ax in (ax_g, ax_d):
            _labels(ax, ("x_1", "x_2"))
        _title(ax_g, "grid of z mapped to x = f⁻¹(z)", fontsize=10)
        _title(ax_d, "density q(x) (x: the probe x*)", fontsize=10)

    def _draw(self) -> None:
        s = self.state
        for artist, pts in zip(self._lines, s["lines"]):
            artist.set_data(pts[:, 0], pts[:, 1])
        self._image.set_data(s["density"])
        self._image.set_clim(0.0, max(float(s["density"].max()), 1e-12))
        lo, hi = s["logdet_range"]
        self.suptitle.set_text(
            f"{s['kind']} coupling, mask {tuple(int(m) for m in s['mask'])}:  log|det ∂z/∂x| at x* = "
            f"{s['logdet_probe']:+.3f} (autograd {s['logdet_autograd']:+.3f}); over the window "
            f"{lo:+.2f} … {hi:+.2f};  mass {s['mass']:.3f}")
        self.suptitle.set_fontsize(9)


def coupling_layer(mask: str = "(1, 0): x₁ passed through", kind: str = "affine", s0: float = 0.5, s1: float = 0.4,
                   t0: float = 0.0, t1: float = 0.3) -> CouplingWidget:
    """Lesson 04: one coupling layer on a 2D Gaussian, with its mask, kind, log-scale and shift on sliders."""
    return CouplingWidget(mask, kind, s0, s1, t0, t1)


class RealNVPStepperWidget(LayerStepperWidget):
    """``widgets2d.LayerStepperWidget`` for a 2D RealNVP: the title also names the layer just applied (its kind and
    which coordinate its mask passes through) and the mean of its log-det over the samples.

    state (in addition): layer (the name of layer k's class, or "base"), passed (the 1-based coordinates the layer
    passes through, () for a layer without a mask), layer_logdet (mean log|det ∂h_k/∂h_{k-1}| of the sampling step,
    over the samples; 0 for k = 0).
    """

    title = "RealNVP layer stepper"

    def __init__(self, model, bounds=plot2d.DEFAULT_BOUNDS, n_samples=2000, grid=100, data: Tensor | None = None,
                 seed=0, dpi=80):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = model.base.sample(n_samples, generator=g)
            self._running = [float(ld.mean()) for _, ld in model.flow.trace(z, direction="inverse")]
        super().__init__(model, bounds, n_samples, grid, data, seed, dpi)

    def _compute(self, v: dict) -> dict:
        out = super()._compute(v)
        k = out["k"]
        if k == 0:
            out.update(layer="base", passed=(), layer_logdet=0.0)
            return out
        f = self.model.flow.flows[self.K - k]  # sampling applies the inverses from the last layer back
        mask = getattr(f, "mask", None)
        passed = tuple(int(i) + 1 for i in torch.nonzero(mask).reshape(-1)) if mask is not None else ()
        out.update(layer=type(f).__name__, passed=passed, layer_logdet=self._running[k] - self._running[k - 1])
        return out

    def _draw(self) -> None:
        super()._draw()
        s = self.state
        if s["k"] == 0:
            text = "k = 0: the base, before any layer"
        else:
            which = (" passes x" + ", x".join(map(str, s["passed"])) + " through") if s["passed"] else ""
            text = (f"layer {s['k']} of {self.K} (sampling direction): {s['layer']}{which}; mean log|det| of this "
                    f"step {s['layer_logdet']:+.3f}")
        self.suptitle.set_text(text)
        self.suptitle.set_fontsize(9)


def realnvp_stepper(model, bounds=plot2d.DEFAULT_BOUNDS, n_samples: int = 2000, grid: int = 100,
                    data: Tensor | None = None) -> RealNVPStepperWidget:
    """Lesson 04: step through a trained 2D RealNVP, layer by layer in the sampling direction."""
    return RealNVPStepperWidget(model, bounds, n_samples, grid, data)

