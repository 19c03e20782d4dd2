"""The lesson 04 and 05 widgets, headless: set a control, check that what is computed and drawn is what the maths
says (flowlib's own layers, or an independent formula), and that an update moves artists instead of adding them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowlib as fl
from flowlib import images
from flowlib.builders import make_realnvp, multiscale_realnvp
from flowlib_teaching import plot2d
from flowlib_teaching.plot_images import image_grid
from flowlib_teaching.widgets import widgets_coupling as wc, widgets_images as wi


def _normal(v):
    return np.exp(-v ** 2 / 2) / math.sqrt(2 * math.pi)


# ---- lesson 04: one coupling layer ---------------------------------------------------------------------------------
def test_coupling_logdet_readout_is_the_formula_and_autograd():
    w = wc.coupling_layer(s0=0.5, s1=0.4, t0=0.0, t1=0.3)
    x1 = wc.CouplingWidget.PROBE[0]  # mask (1, 0): x_1 passed through, so s depends on x_1
    s = 2 * math.tanh((0.5 + 0.4 * x1) / 2)  # AffineCoupling bounds the raw log-scale: s = 2 tanh(h / 2)
    assert w.state["logdet_probe"] == pytest.approx(s, abs=1e-9)
    assert w.state["logdet_autograd"] == pytest.approx(s, abs=1e-9)
    assert f"{s:+.3f}" in w.figure._suptitle.get_text()
    assert w.state["mass"] == pytest.approx(1.0, abs=0.02)
    png = w.png
    w.controls["s0"].value = -1.0
    s = 2 * math.tanh((-1.0 + 0.4 * x1) / 2)
    assert w.state["logdet_probe"] == pytest.approx(s, abs=1e-9) and w.png != png


def test_additive_coupling_preserves_volume_and_its_density_is_a_shifted_gaussian():
    w = wc.coupling_layer(kind="additive", t0=1.0, t1=0.0)
    assert w.state["logdet_range"] == (0.0, 0.0) and w.state["logdet_probe"] == 0.0
    # mask (1, 0): z = (x1, x2 + 1), so q(x) = N(x1) N(x2 + 1), compared on the drawn grid
    X, Y, _ = plot2d.grid_points(w.bounds, w.grid)
    np.testing.assert_allclose(w.state["density"], _normal(X) * _normal(Y + 1.0), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(w._image.get_array(), w.state["density"])


def test_the_passed_through_coordinate_keeps_its_grid_lines_straight():
    w = wc.coupling_layer(s0=0.8, s1=0.5, t1=0.4)
    # mask (1, 0): the lines z_1 = c (even artists) map to x_1 = c, straight and vertical
    for artist, pts in zip(w._lines[::2], w.state["lines"][::2]):
        xs, ys = artist.get_data()
        np.testing.assert_allclose(xs, pts[:, 0])
        assert np.ptp(xs) < 1e-12
    w.controls["mask"].value = "(0, 1): x₂ passed through"
    for artist in w._lines[1::2]:  # now the lines z_2 = c map to x_2 = c
        assert np.ptp(artist.get_data()[1]) < 1e-12
    assert not all(np.ptp(a.get_data()[1]) < 1e-9 for a in w._lines[::2])


def test_coupling_widget_refuses_bad_arguments():
    with pytest.raises(ValueError, match="mask must be one of"):
        wc.coupling_layer(mask="(1, 1)")
    with pytest.raises(ValueError, match="kind"):
        wc.coupling_layer(kind="spline")


# ---- lesson 04: the RealNVP stepper ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def realnvp_2d():
    torch.manual_seed(0)
    flow = make_realnvp(2, 4, hidden=8, masks="half")
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    return fl.FlowModel(flow, fl.StandardNormal(2))


def test_realnvp_stepper_names_each_layer_and_its_logdet(realnvp_2d):
    w = wc.realnvp_stepper(realnvp_2d, n_samples=300, grid=30)
    K = w.K
    w.controls["k"].value = 0
    z = torch.as_tensor(w.state["samples"])
    assert w.state["layer"] == "base" and "k = 0" in w.figure._suptitle.get_text()
    for k in range(1, K + 1):
        w.controls["k"].value = k
        f = realnvp_2d.flow.flows[K - k]
        with torch.no_grad():
            before = realnvp_2d.flow.trace(z, "inverse")[k - 1][0]
            after, ld = f.inverse(before)
        np.testing.assert_allclose(w.state["samples"], after.numpy(), atol=1e-5)
        assert w.state["layer"] == type(f).__name__
        assert w.state["layer_logdet"] == pytest.approx(float(ld.mean()), abs=1e-5)
        if hasattr(f, "mask"):
            assert w.state["passed"] == tuple(int(i) + 1 for i in torch.nonzero(f.mask).reshape(-1))
            assert f"passes x{w.state['passed'][0]} through" in w.figure._suptitle.get_text()


# ---- lesson 05: temperature -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_model():
    torch.manual_seed(0)
    m = multiscale_realnvp((1, 8, 8), levels=1, couplings=2, hidden=4)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return m


def test_temperature_widget_draws_the_inverse_of_scaled_latents(image_model):
    w = wi.temperature_samples(image_model, n=6, nrow=3, reference=torch.randint(0, 256, (10, 1, 8, 8)))
    for T in (1.0, 0.5):
        w.controls["T"].value = T
        with torch.no_grad():
            want = images.pixels_from_data(image_model.flow.inverse(T * w.eps)[0])
        assert torch.equal(w.state["samples"], want)
        np.testing.assert_allclose(w._image.get_array(), image_grid(want, nrow=3, fill=0).numpy())
        assert w.state["mean_pixel"] == pytest.approx(float(want.double().mean()))
        assert w.state["histogram"].sum() == pytest.approx(1.0)
        assert f"T = {T:.2f}" in w.figure._suptitle.get_text()


def test_temperature_widget_prefetches_every_slider_value_while_the_loop_is_idle(image_model):
    """On an event loop (a kernel's, in JupyterLab) the widget decodes every slider value ahead, nearest to the
    current T first, one per turn of the loop; a move meanwhile is served at once; the prefetched samples are the
    ones a move would compute. Outside a Jupyter kernel nothing starts by itself, even where another library runs
    a loop (this test may share its process with Playwright's)."""
    import asyncio
    import threading

    w = wi.temperature_samples(image_model, n=4, nrow=2)
    assert w.prefetching is False and list(w._cache) == [1.0]  # no kernel here: only the first picture
    values = w.slider_values()
    assert len(values) == 23 and values[0] == 0.1 and values[-1] == 1.2 and 0.35 in values

    async def in_a_kernel():
        v = wi.TemperatureWidget(image_model, n=4, nrow=2, prefetch=False)
        assert v.prefetching is False and v.prefetch(loop=asyncio.get_running_loop()) is True
        await asyncio.sleep(0.05)  # a few turns of the loop: the nearest values come first
        early = list(v._cache)
        v.controls["T"].value = 0.1  # a move while it prefetches
        assert v.state["T"] == 0.1
        for _ in range(200):
            if len(v._cache) == len(values):
                break
            await asyncio.sleep(0.02)
        return v, early

    # a thread of its own: this worker's main thread may already hold Playwright's loop
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=asyncio.run(in_a_kernel())))
    thread.start()
    thread.join(timeout=120)
    v, early = result["out"]
    assert sorted(v._cache) == values
    assert early[0] == 1.0 and set(early[1:3]) <= {0.95, 1.15, 1.1, 1.05}, early
    for t in (0.35, 1.2):
        with torch.no_grad():
            want = images.pixels_from_data(image_model.flow.inverse(t * v.eps)[0])
        assert torch.equal(v._cache[t]["samples"], want)
    w.warm()
    assert sorted(w._cache) == values


def test_temperature_widget_survives_a_model_that_fails_to_decode(image_model):
    """A model whose inverse fails at some temperatures (a student's own model can overflow): the move shows a
    message and keeps the last picture; the idle-time prefetch stops at the failure instead of raising in the
    kernel's event loop."""
    import asyncio
    import threading

    from flowlib.core import FlowNumericalError

    class Fragile(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.base = model, model.base
            self.flow = self

        def inverse(self, z):
            if float(z.abs().max()) > 1.1 * limit:  # T > 1.1
                raise FlowNumericalError("the inverse overflowed (planted)")
            return self.model.flow.inverse(z)

    with torch.no_grad():  # the widget's own ε (seed 0): its largest entry, at T = 1
        limit = float(image_model.base.sample(4, generator=torch.Generator().manual_seed(0)).abs().max())
    w = wi.TemperatureWidget(Fragile(image_model), n=4, nrow=2, prefetch=False)
    shown = w.png
    w.controls["T"].value = 1.2
    assert "could not decode" in w.message.value and "overflowed" in w.message.value
    assert w.state["T"] == 1.0 and w.png == shown  # the last good picture stays
    w.controls["T"].value = 0.5
    assert w.message.value == "" and w.state["T"] == 0.5

    async def prefetch_all():
        v = wi.TemperatureWidget(Fragile(image_model), n=4, nrow=2, prefetch=False)
        v.prefetch(delay=0.0, loop=asyncio.get_running_loop())
        await asyncio.sleep(0.5)
        return v

    result = {}
    thread = threading.Thread(target=lambda: result.update(v=asyncio.run(prefetch_all())))
    thread.start()
    thread.join(timeout=60)
    assert 1.2 not in result["v"]._cache and 1.0 in result["v"]._cache  # stopped at the failure, no exception


# ---- lesson 05: dequantization noise width ----------------------------------------------------------------------------
class _Histogram(torch.nn.Module):
    """Independent pixels with frequencies freq, spread over boxes of width w: log q(y) = Σ log(freq[⌊y⌋] / w)."""

    def __init__(self, freq, w):
        super().__init__()
        self.freq, self.w = freq, w

    def log_prob(self, y):
        k = torch.floor(y).long().clamp(0, 255)
        return (torch.log(self.freq[k]) - math.log(self.w)).reshape(len(y), -1).sum(1)


def test_dequantization_widget_corrected_figure_does_not_move():
    x = torch.randint(0, 4, (20, 1, 4, 4))
    freq = torch.bincount(x.reshape(-1), minlength=256).double() + 1e-9
    freq = freq / freq.sum()
    w = wi.dequantization_width(x, lambda width: _Histogram(freq, width), width=1.0)
    exact = float(-(torch.log2(freq[x.reshape(-1)])).mean())  # the cross-entropy, computed directly
    assert w.state["corrected"] == pytest.approx(exact, abs=1e-9)
    assert w.state["uncorrected"] == pytest.approx(exact, abs=1e-9) and w.message.value == ""
    w.controls["w"].value = 0.5
    assert w.state["corrected"] == pytest.approx(exact, abs=1e-9)
    assert w.state["uncorrected"] - w.state["corrected"] == pytest.approx(math.log2(0.5), abs=1e-9)
    assert all(b.get_width() == 0.5 for b in w._boxes) and list(w._mark.get_xdata()) == [0.5, 0.5]
    y, lv = w.state["y"], w.state["levels"]
    assert ((y >= lv) & (y < lv + 0.5)).all()  # every value stays inside its width-w box
    assert "looks 1.00 bits/dim 'better'" in w.message.value and "−log2 w = 1.00" in w.message.value


# ---- lesson 05: squeeze -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 2])
def test_squeeze_widget_frames_where_each_pixel_goes(channels):
    w = wi.squeeze_explorer(channels, 4, 6)
    for c in range(channels):  # every pixel through the widget's computation ...
        for h in range(4):
            for col in range(6):
                want = (4 * c + 2 * (h % 2) + col % 2, h // 2, col // 2)  # the lesson's convention, independently
                state = w._compute({"c": c, "h": h, "w": col})
                assert state["dst"] == want and state["z"][want] == state["x"][c, h, col]
    for c, h, col in ((channels - 1, 3, 5), (0, 2, 1)):  # ... and a few through the sliders, down to the frames
        w.controls["c"].value, w.controls["h"].value, w.controls["w"].value = c, h, col
        c2, h2, w2 = (4 * c + 2 * (h % 2) + col % 2, h // 2, col // 2)
        assert w.state["dst"] == (c2, h2, w2)
        assert w._frames[1].get_xy() == (c2 * (3 + 1) + w2 - 0.5, h2 - 0.5)
        assert w._frames[0].get_xy() == (c * (6 + 1) + col - 0.5, h - 0.5)
    assert "channel 4c + 2i + j" in w.figure._suptitle.get_text()
    with pytest.raises(ValueError, match="even"):
        wi.squeeze_explorer(1, 3, 4)


def test_updates_move_artists_instead_of_adding_them(realnvp_2d, image_model):
    cases = [(wc.coupling_layer(), "t0", [0.5, -1.0]), (wc.realnvp_stepper(realnvp_2d, n_samples=200, grid=20), "k", [0, 2]),
             (wi.temperature_samples(image_model, n=4, nrow=2), "T", [0.7, 0.4]), (wi.squeeze_explorer(), "h", [0, 3])]
    for w, name, values in cases:
        counts = [len(ax.get_children()) for ax in w.axes]
        for v in values:
            w.controls[name].value = v
        assert [len(ax.get_children()) for ax in w.axes] == counts, w.title


def test_multiscale_drawing_shows_the_kept_half_that_the_next_squeeze_receives():
    import matplotlib

    matplotlib.use("Agg")
    from flowlib.builders import multiscale_realnvp_flow
    from flowlib_teaching.plot_images import describe_multiscale, draw_multiscale

    rows = describe_multiscale(multiscale_realnvp_flow((1, 28, 28), levels=2, couplings=2, hidden=4))
    stages = [r["stage"] for r in rows]
    kept = rows[stages.index("kept half")]["shape"]
    squeeze2 = rows[stages.index("level 2: squeeze")]["shape"]
    assert kept == (2, 14, 14) and squeeze2 == (4 * kept[0], kept[1] // 2, kept[2] // 2)  # 2x14x14 -> 8x7x7
    assert "level 1: affine per channel" in stages and "level 2: affine per channel" in stages
    out = [r["shape"] for r in rows if r.get("out")]
    assert sum(math.prod(s) for s in out) == 784  # the factored-out parts are the whole latent
    ax = draw_multiscale(multiscale_realnvp_flow((1, 28, 28), levels=2, couplings=2, hidden=4))
    texts = [t.get_text() for t in ax.texts]
    assert "2×14×14" in texts and texts.count("8×7×7") == 4  # squeeze, affine, couplings, z_2
