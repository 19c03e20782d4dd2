"""The lesson 02/03 widgets, headless: set a control, check that what is computed and drawn changed as the maths
says, and that a singular matrix gives a message, not a traceback."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowlib as fl
from flowlib_teaching import plot2d
from flowlib_teaching import maps2d, widgets
from flowlib.builders import maf


def _polygons(ax):
    return [p.get_xy() for p in ax.patches if hasattr(p, "get_xy")]


def test_matrix_widget_tracks_the_determinant_and_redraws():
    w = widgets.matrix_deformation(a=1.0, b=0.0, c=0.0, d=1.0)
    assert w.state["det"] == pytest.approx(1.0) and w.state["area"] == pytest.approx(1.0)
    png = w.png
    w.controls["a"].value = 2.0
    w.controls["b"].value = 0.5
    w.controls["d"].value = 1.5
    assert w.state["det"] == pytest.approx(2.0 * 1.5 - 0.5 * 0.0)
    A = np.array([[2.0, 0.5], [0.0, 1.5]])
    np.testing.assert_allclose(w.state["corners"], np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) @ A.T)
    # the drawn parallelogram (filled polygon in the right panel) has the image corners as vertices
    drawn = _polygons(w.axes[1])[0]
    for corner in w.state["corners"]:
        assert np.min(np.linalg.norm(drawn - corner, axis=1)) < 1e-9
    assert "3.000" in w.figure._suptitle.get_text()
    assert w.png != png and w.png.startswith(b"\x89PNG")
    assert w.output.value == w.png


def test_matrix_widget_mirror_has_negative_det():
    w = widgets.matrix_deformation(a=0.0, b=1.0, c=1.0, d=0.0)
    assert w.state["det"] == pytest.approx(-1.0) and w.state["area"] == pytest.approx(1.0)
    assert "flipped" in w.state["orientation"]


def test_singular_matrix_shows_a_message_not_a_traceback():
    w = widgets.matrix_deformation()
    for k in "abcd":
        w.controls[k].value = 1.0  # det = 1 - 1 = 0
    assert w.state["singular"] and w.state["area"] == 0.0
    assert "singular" in w.message.value and "not invertible" in w.message.value.replace("no inverse", "not invertible")
    texts = [t.get_text() for t in w.axes[1].texts]
    assert any("singular" in t for t in texts)
    w.controls["d"].value = 1.5  # leaving the singular setting clears the message
    assert not w.state["singular"] and w.message.value == "" and w.state["det"] == pytest.approx(0.5)


def test_local_linearization_jacobian_and_area_ratio():
    w = widgets.local_linearization("sine shear", strength=0.6, px=0.8, py=0.4, r=0.8)
    x1, x2, s = 0.8, 0.4, 0.6
    J = np.array([[1, s * math.cos(x2)], [s * math.cos(x1), 1]])
    np.testing.assert_allclose(w.state["jacobian"], J, atol=1e-10)
    big = (w.state["area_ratio"], w.state["error"])
    w.controls["r"].value = 0.05
    assert w.state["area_ratio"] == pytest.approx(abs(np.linalg.det(J)), rel=2e-3)
    assert w.state["error"] < big[1] / 5  # the linear approximation gets better as the square shrinks
    # moving the point moves the drawn image of the square
    before = w.state["curved"].copy()
    w.controls["px"].value = -1.0
    assert not np.allclose(before, w.state["curved"])
    assert w.state["point"][0] == pytest.approx(-1.0)


def test_swirl_preserves_area():
    w = widgets.local_linearization("swirl", strength=0.8, px=0.5, py=-0.7, r=0.3)
    assert w.state["det"] == pytest.approx(1.0, abs=1e-10)
    assert w.state["area_ratio"] == pytest.approx(1.0, abs=1e-3)
    w.controls["map"].value = "sine shear"
    assert w.state["det"] != pytest.approx(1.0, abs=1e-3)


def test_local_linearization_unknown_map():
    with pytest.raises(ValueError, match="sine shear"):
        widgets.local_linearization("spiral")


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    flow = maf(2, num_layers=3, hidden=(16, 16))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    return fl.FlowModel(flow, fl.StandardNormal(2))


def test_layer_stepper_follows_the_trace(small_model):
    w = widgets.layer_stepper(small_model, n_samples=300, grid=40)
    assert w.state["k"] == 3
    w.controls["k"].value = 0
    z = w.state["samples"]
    # k = 0: the base samples and the standard normal density
    X, Y, _ = plot2d.grid_points(w.bounds, 40)
    np.testing.assert_allclose(w.state["density"], np.exp(-(X**2 + Y**2) / 2) / (2 * np.pi), rtol=1e-5, atol=1e-9)
    png0 = w.png
    w.controls["k"].value = 2
    with torch.no_grad():
        expected = small_model.flow.trace(torch.as_tensor(z), "inverse")[2][0].numpy()
    np.testing.assert_allclose(w.state["samples"], expected, atol=1e-5)
    assert w.png != png0
    w.controls["k"].value = 3
    with torch.no_grad():
        model_density = small_model.log_prob(plot2d.grid_points(w.bounds, 40)[2]).exp().reshape(40, 40).numpy()
    np.testing.assert_allclose(w.state["density"], model_density, rtol=1e-4, atol=1e-9)


def test_stage_log_prob_is_normalised(small_model):
    for k in range(4):
        X, Y, P = plot2d.density_on_grid(plot2d.stage_log_prob(small_model.flow, small_model.base, k),
                                         ((-8, 8), (-8, 8)), n=300)
        assert P.sum() * (16 / 299) ** 2 == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError):
        plot2d.stage_log_prob(small_model.flow, small_model.base, 4)


def test_plot_helpers_label_axes(small_model):
    fig, axes = plot2d.new_figure(2)
    plot2d.plot_density(axes[0, 0], small_model.log_prob, n=30, title="q")
    lines = plot2d.plot_grid_deformation(axes[0, 1], lambda v: 2 * v, ((-1, 1), (-1, 1)), lines=3)
    assert axes[0, 0].get_xlabel() == "$x_1$" and axes[0, 1].get_ylabel() == "$y_2$"
    assert len(lines) == 6 and np.allclose(np.abs(lines[0]).max(), 2.0)
    fig2 = plot2d.plot_layers(small_model.flow, torch.randn(100, 2))
    assert len([a for a in fig2.axes if a.get_visible()]) == 4


def test_updates_move_artists_instead_of_adding_them(small_model):
    """An update changes the data of the existing artists (what keeps a redraw fast): nothing accumulates."""
    cases = [(widgets.matrix_deformation(), "a", [0.3, -1.0, 1.2]),
             (widgets.local_linearization(), "px", [-1.0, 0.5, 2.0]),
             (widgets.layer_stepper(small_model, n_samples=200, grid=30), "k", [0, 1, 3])]
    for w, name, values in cases:
        counts = [(len(ax.lines), len(ax.patches), len(ax.texts), len(ax.collections), len(ax.images))
                  for ax in w.axes]
        for value in values:
            w.controls[name].value = value
        assert counts == [(len(ax.lines), len(ax.patches), len(ax.texts), len(ax.collections), len(ax.images))
                          for ax in w.axes]
        assert w.state["seconds"] < 5.0


def test_figure_widget_base_redraws_one_picture_in_place_and_shows_the_message():
    import base64

    import ipywidgets as W

    from flowlib_teaching.widgets import latents, widgets2d, widgets_coupling, widgets_images
    from flowlib_teaching.widgets.base import FigureOutput, FigureWidget

    class Dot(FigureWidget):
        title = "dot"

        def __init__(self):
            super().__init__({"x": W.FloatSlider(value=0.0, min=-1, max=1)}, (2.0, 2.0), dpi=40)
            self._build()
            self.controls["x"].observe(lambda change: self.update(), names="value")
            self._layout()
            self.update()

        def _build(self):
            self.ax = self.figure.add_subplot()
            self.ax.set(xlim=(-1, 1), ylim=(-1, 1))
            (self.dot,) = self.ax.plot([0.0], [0.0], "o")

        def _compute(self, v):
            return {"x": v["x"], "message": "on the right" if v["x"] > 0.5 else ""}

        def _draw(self):
            self.dot.set_data([self.state["x"]], [0.0])

    w = Dot()
    first = w.png
    assert first.startswith(b"\x89PNG") and w.state["seconds"] >= 0 and w.message.value == ""
    w.controls["x"].value = 0.9
    assert w.output.value == w.png != first and w.output.format == "png", "the picture shown is replaced"
    assert w.view.label == "<dot figure>"
    assert "on the right" in w.message.value
    assert w.output in w.widget.children and w.message in w.widget.children

    view = FigureOutput((1.0, 1.0), dpi=30, label="<x>")
    assert view.png == b"" and view.output.value == b""
    assert view.show() == view.png == view.output.value and "<x>" in repr(view)

    # every widget of the course draws through this one renderer
    for cls in (widgets2d._Widget2D, latents._ImageWidget, widgets_coupling.CouplingWidget, widgets_images.SqueezeWidget):
        assert issubclass(cls, FigureWidget), cls
    assert isinstance(widgets.change_of_variables()._view, FigureOutput)
