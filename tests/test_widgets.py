"""The lesson-01 widget and plots, headless: set a control, then read what was DRAWN (line data from the figure's
axes) and compare it with the maths, computed here independently (scipy or closed forms)."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from flowlib import Affine, Compose, FlowModel, MonotoneTanh, StandardNormal  # noqa: E402
from flowlib_teaching.plotting import LiveLossPlot, plot_1d_density_fit, plot_density_vs_samples  # noqa: E402
from flowlib.training import History  # noqa: E402
from flowlib_teaching.widgets.widgets1d import MAPS, SLIDERS, ChangeOfVariablesWidget, change_of_variables  # noqa: E402


@pytest.fixture(scope="module")
def w():
    """A widget that updates its figure's artists without rendering PNGs (rendering is tested separately)."""
    return ChangeOfVariablesWidget(render=False)


def set_controls(w, **values):
    """Set the map and base first (they reset the sliders to the map's defaults), then the sliders."""
    for name in ("map", "base"):
        if name in values:
            w.controls[name].value = values.pop(name)
    for name, value in values.items():
        w.controls[name].value = value


def drawn(w, label_start):
    """(x, y) of the line on the q(x) panel whose label starts with label_start."""
    ax = w.figure.axes[2]
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(label_start)]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    x, y = (np.asarray(v, dtype=float) for v in lines[0].get_data())
    return x, y


def q_line(w):
    return drawn(w, "q(x)")


def test_affine_normal_peak_height_and_location(w):
    set_controls(w, map="affine", base="normal", a=2.0, b=1.0)
    x, q = q_line(w)
    i = int(np.argmax(q))
    assert abs(x[i] - 1.0) < 0.011
    assert q[i] == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)), rel=1e-4)
    np.testing.assert_allclose(q, stats.norm(loc=1, scale=2).pdf(x), atol=1e-9)
    # moving b moves what is drawn
    w.controls["b"].value = -1.5
    x, q = q_line(w)
    assert abs(x[int(np.argmax(q))] + 1.5) < 0.011


def test_affine_uniform_is_flat_at_one_over_a(w):
    set_controls(w, map="affine", base="uniform", a=2.0, b=1.0)
    x, q = q_line(w)
    inner, outer = (x > 1.001) & (x < 2.999), (x < 0.999) | (x > 3.001)
    np.testing.assert_allclose(q[inner], 0.5, rtol=1e-6)  # (Affine keeps log|a| in float32)
    assert np.all(q[outer] == 0)
    # a negative scale: the same height 1/|a| on [a + b, b]
    w.controls["a"].value = -2.0
    x, q = q_line(w)
    np.testing.assert_allclose(q[(x > -0.999) & (x < 0.999)], 0.5, rtol=1e-6)
    assert np.all(q[(x < -1.001) | (x > 1.001)] == 0)
    # the histogram drawn next to it agrees with it up to sampling noise
    assert w.state["tv"] < 2 * w.state["tv_noise"]


@pytest.mark.parametrize("a,b", [(0.5, 0.0), (-1.0, 1.0), (1.5, -0.5)])
def test_sigmoid_exp_and_logit_maps_against_scipy(w, a, b):
    set_controls(w, map="sigmoid", base="normal", a=a, b=b)
    x, q = q_line(w)
    logit = np.log(x) - np.log1p(-x)
    np.testing.assert_allclose(q, stats.norm.pdf((logit - b) / a) / (abs(a) * x * (1 - x)), rtol=1e-6, atol=1e-12)
    set_controls(w, map="exp", base="normal", a=a, b=b)
    x, q = q_line(w)
    np.testing.assert_allclose(q, stats.lognorm(s=abs(a), scale=math.exp(b)).pdf(x), rtol=1e-6, atol=1e-12)
    set_controls(w, map="logit", base="uniform", a=a, b=b)
    x, q = q_line(w)
    np.testing.assert_allclose(q, stats.logistic(loc=b, scale=abs(a)).pdf(x), rtol=1e-6, atol=1e-12)


def test_sinh_arcsinh_against_numerical_derivative(w):
    set_controls(w, map="sinh_arcsinh", base="normal", skew=0.7, tailweight=1.6)
    x, q = q_line(w)
    S = lambda v: np.sinh(1.6 * np.arcsinh(v) - 0.7)  # noqa: E731  f = g^{-1}, data -> latent
    h = 1e-6
    expected = stats.norm.pdf(S(x)) * (S(x + h) - S(x - h)) / (2 * h)
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-9)


def test_histogram_drawn_is_the_samples_through_the_map(w):
    set_controls(w, map="exp", base="normal", a=0.5, b=0.0)
    x_samples = np.exp(0.5 * w.state["z_samples"])
    np.testing.assert_allclose(w.state["x_samples"], x_samples, rtol=1e-6)
    stairs = [p for p in w.figure.axes[2].patches if type(p).__name__ == "StepPatch"][0]
    values, edges = stairs.get_data().values, stairs.get_data().edges
    counts, _ = np.histogram(x_samples, bins=edges)
    np.testing.assert_allclose(values, counts / (len(x_samples) * np.diff(edges)))
    assert w.state["tv"] < 2 * w.state["tv_noise"]
    assert w.state["mass"] == pytest.approx(w.state["sample_fraction"], abs=0.01)


def test_samples_are_fixed_so_updates_are_repeatable(w):
    set_controls(w, map="affine", base="normal", a=1.0, b=0.0)
    before = w.state["x_samples"].copy()
    w.controls["a"].value = 2.0
    w.controls["a"].value = 1.0
    np.testing.assert_array_equal(w.state["x_samples"], before)


def test_square_map_shows_naive_vs_true(w):
    set_controls(w, map="square", base="normal", c=0.0)
    x, q = q_line(w)
    xn, naive = drawn(w, "naive")
    assert np.isclose(np.trapezoid(naive, xn), 0.5, atol=0.01)  # one preimage: half the mass
    assert np.isclose(np.trapezoid(q, x), stats.chi2(1).cdf(x.max()), atol=0.01)
    np.testing.assert_allclose(q, stats.chi2(1).pdf(x), rtol=1e-6)
    ax = w.figure.axes[2]
    assert [ln for ln in ax.get_lines() if ln.get_label().startswith("naive")][0].get_visible()
    assert "not invertible" in w.state["message"] and "0.50" in w.state["message"]
    assert "not invertible" in w.readout.value
    # two shaded preimages of one x-band carry the band's mass together
    band = w.state["band"]
    assert len(band["preimages"]) == 2
    assert band["z_mass"] == pytest.approx(band["x_mass"], abs=1e-3)
    assert band["x_mass"] == pytest.approx(2 * (stats.norm.cdf(1.0) - stats.norm.cdf(0.5)), abs=1e-3)


def test_square_map_on_the_uniform_base_is_monotone_on_the_support(w):
    set_controls(w, map="square", base="uniform", c=0.0)
    x, q = q_line(w)
    _, naive = drawn(w, "naive")
    np.testing.assert_allclose(naive, q)  # the second preimage -sqrt(x) has no mass under Uniform(0, 1)
    assert "happens to be right" in w.state["message"]
    w.controls["c"].value = 0.5  # now both preimages lie in (0, 1)
    assert w.state["naive_mass"] == pytest.approx(0.5, abs=0.01)
    assert "happens to be right" not in w.state["message"]


def test_invertible_maps_hide_the_naive_line_and_have_no_message(w):
    set_controls(w, map="affine", base="normal", a=1.0, b=0.0)
    naive = [ln for ln in w.figure.axes[2].get_lines() if ln.get_label().startswith("naive")][0]
    assert not naive.get_visible()
    assert "naive" not in " ".join(t.get_text() for t in w.figure.axes[2].get_legend().get_texts())
    assert w.state["message"] == "" and w.state["valid"]


def test_a_equal_zero_shows_a_message_not_a_traceback(w):
    set_controls(w, map="affine", base="normal", a=0.0)
    assert not w.state["valid"]
    assert "a = 0" in w.state["message"] and "inverse" in w.state["message"]
    assert w.state["q_x"].size == 0
    x, q = q_line(w)
    assert x.size == 0  # nothing drawn for q
    texts = " ".join(t.get_text() for t in w.figure.axes[2].texts)
    assert "a = 0" in texts  # the message is in the figure
    assert "Not a valid change of variables" in w.readout.value
    # the map panel shows the constant map it degenerates to
    gx, gy = (np.asarray(v) for v in w.figure.axes[1].get_lines()[0].get_data())
    assert np.ptp(gy) < 1e-6
    w.controls["a"].value = 1.0
    assert w.state["valid"] and w.state["message"] == ""


def test_logit_needs_the_uniform_base(w):
    set_controls(w, map="logit", base="normal")
    assert not w.state["valid"] and "Uniform(0, 1)" in w.state["message"]
    w.controls["base"].value = "uniform"
    assert w.state["valid"]


@pytest.mark.parametrize("map_name", list(MAPS))
@pytest.mark.parametrize("base", ["normal", "uniform"])
def test_no_slider_setting_raises(w, map_name, base):
    """Every corner of every slider: either a valid picture whose numbers agree, or a message."""
    set_controls(w, map=map_name, base=base)
    for name in MAPS[map_name].params:
        _, lo, hi, _ = SLIDERS[name]
        for value in (lo, hi, 0.0 if lo < 0 < hi else MAPS[map_name].defaults[name]):
            w.controls[name].value = value
            s = w.state
            if s["valid"]:
                assert np.all(np.isfinite(s["q_x"])) and np.all(s["q_x"] >= 0)
                assert s["mass"] == pytest.approx(s["sample_fraction"], abs=0.03), (name, value)
                assert s["band"]["z_mass"] == pytest.approx(s["band"]["x_mass"], abs=2e-3), (name, value)
            else:
                assert s["message"]


def test_switching_map_resets_its_sliders_and_shows_only_them(w):
    set_controls(w, map="affine", base="normal", a=-2.0)
    w.controls["map"].value = "sinh_arcsinh"
    assert w.controls["skew"].value == MAPS["sinh_arcsinh"].defaults["skew"]
    assert w.controls["a"].layout.display == "none" and w.controls["skew"].layout.display is None
    w.controls["map"].value = "affine"
    assert w.controls["a"].value == MAPS["affine"].defaults["a"]


def test_figure_is_reused_labelled_and_rendered():
    w = change_of_variables("square", "normal")  # renders by default
    fig = w.figure
    png_before = w.output.value
    assert w.png.startswith(b"\x89PNG")
    w.controls["c"].value = 0.5
    assert w.figure is fig and len(fig.axes) == 3
    assert w.output.value != png_before and w.output.value == w.png  # the picture shown changed
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    w.controls["map"].value = "affine"
    w.controls["a"].value = 0.0  # the message is rendered too
    assert not w.state["valid"] and bytes(w.output.value).startswith(b"\x89PNG")


def test_public_api(w):
    for name in ("map", "base", "a", "b", "skew", "tailweight", "c"):
        assert name in w.controls
    for key in ("x_grid", "q_x", "z_samples", "x_samples", "message"):
        assert key in w.state
    assert w.output in w.widget.children and w.readout in w.widget.children
    assert all(w.controls[n].continuous_update for n in SLIDERS)


def test_each_slider_move_recomputes_and_redraws_once():
    # what a move does, not how fast: the speed target (< 200 ms an update) is a benchmark, run on demand on a quiet
    # machine: `python -m benchmarks widget_latency` (its lesson01_affine case moves this very slider)
    w = change_of_variables()  # affine, x = a z + b, renders
    renders, render = [], w._render
    w._render = lambda: (renders.append(w.png), render())
    a, z = w.controls["a"].value, w.state["z_samples"]
    pngs = []
    for i, b in enumerate(np.linspace(-1, 1, 7), 1):
        w.controls["b"].value = float(b)
        assert len(renders) == i, "one slider move, one redraw"
        assert np.allclose(w.state["x_samples"], a * z + b, atol=1e-5)  # the same noise through the new map
        assert 0 < w.state["seconds"] < 60
        pngs.append(w.png)
    assert len(set(pngs)) == 7  # every move changed the picture shown


def test_unknown_map_is_a_clear_error_and_spellings_are_forgiven():
    with pytest.raises(ValueError, match="unknown map"):
        change_of_variables("cube")
    w = ChangeOfVariablesWidget("sinh-arcsinh", render=False)
    assert w.controls["map"].value == "sinh_arcsinh" and w.state["valid"]


# ---- flowlib_teaching.plotting -----------------------------------------------------------------------------------------------
def test_live_loss_plot_is_a_silent_no_op_outside_ipython_and_draws_on_request():
    live = LiveLossPlot(every=2, steps=10, reference=(1.0, "true density"))
    history = History()
    for step in range(1, 11):
        history.step.append(step)
        history.loss.append(3.0 / step + 1.0)
        live(step, history.loss[-1], None, history)  # outside a kernel: nothing happens, nothing raises
    assert live._handle is None
    history.log("held-out NLL", 10, 1.4)
    fig = live.draw(history)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step" and "log-likelihood" in ax.get_ylabel()
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "loss of each batch" in labels and "held-out NLL" in labels and "true density" in labels
    raw = [ln for ln in ax.get_lines() if ln.get_label() == "loss of each batch"][0]
    np.testing.assert_allclose(raw.get_ydata(), history.loss)
    assert "step 10" in ax.get_title()


def test_plot_1d_density_fit_draws_the_model_density():
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    model = FlowModel(Compose(Affine(0.5, 0.0), MonotoneTanh(2)), StandardNormal())
    data = 2 * torch.randn(500, 1)
    ax = plot_1d_density_fit(model, data, true_log_prob=lambda x: torch.distributions.Normal(0, 2).log_prob(x)
                             .reshape(-1), x_range=(-6, 6))
    line = [ln for ln in ax.get_lines() if ln.get_label() == "flow q(x)"][0]
    x, y = (np.asarray(v) for v in line.get_data())
    with torch.no_grad():
        expected = model.log_prob(torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1)).exp().numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")


def test_plot_density_vs_samples_normalises_by_all_samples():
    import matplotlib.pyplot as plt

    samples = torch.cat([torch.full((50,), 0.5), torch.full((50,), 10.0)])  # half of them outside the range
    x = torch.linspace(0, 1, 11)
    ax = plot_density_vs_samples(samples, x, torch.ones(11), bins=10, xlabel="x", ylabel="density")
    heights = [p.get_height() for p in ax.patches]
    assert max(heights) == pytest.approx(0.5 * 10)  # half the mass in one bin of width 0.1
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "density"
    plt.close("all")


def test_live_loss_plot_scale_converts_the_unit():
    """Lesson 05 shows a loss in nats per image as bits/dim: scale = 1 / (D ln 2)."""
    import math

    d = 784
    live = LiveLossPlot(every=1, scale=1 / (d * math.log(2)), ylabel="bits/dim")
    history = History()
    history.step += [1, 2]
    history.loss += [5000.0, 4000.0]
    ax = live.draw(history).axes[0]
    raw = [ln for ln in ax.get_lines() if ln.get_label() == "loss of each batch"][0]
    np.testing.assert_allclose(raw.get_ydata(), [5000 / (d * math.log(2)), 4000 / (d * math.log(2))])
    assert f"{4000 / (d * math.log(2)):.3f}" in ax.get_title() and ax.get_ylabel() == "bits/dim"
    with pytest.raises(ValueError, match="scale"):
        LiveLossPlot(scale=0)
