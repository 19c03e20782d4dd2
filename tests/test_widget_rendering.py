"""The widgets' two-layer rendering (``flowlib_teaching.widgets.base.FigureOutput``): a picture drawn from the cached
background plus the moved content must equal a full redraw of the same state, for every widget of the course, and
the background must actually be reused where the lessons' sliders move (that reuse is what makes an update cheap).

A check that could not see a stale background would be worthless, so ``test_the_check_sees_a_stale_background``
plants one (a background key that never changes) and shows the comparison failing.

The widgets' canvas also draws text from glyph bitmaps it recorded the first time (``textcache``): every widget's
picture must equal, pixel for pixel, the one matplotlib draws without that cache, and a planted key that forgets the
sub-pixel position of a string must be caught."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from flowlib_teaching import widgets
from flowlib_teaching.widgets import latents as WL
from flowlib_teaching.widgets import widgets_coupling as wc
from flowlib_teaching.widgets import widgets_images as wi
from flowlib_teaching.widgets import textcache
from flowlib_teaching.widgets.base import FigureOutput

from .test_widgets2d import small_model  # noqa: F401  (fixtures shared with the widgets' own tests)
from .test_widgets_latents import data, model  # noqa: F401
from .test_widgets_lessons45 import image_model, realnvp_2d  # noqa: F401


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(int)


def _view(w) -> FigureOutput:
    return w.view if hasattr(w, "view") else w._view


def layered_renders(w, control: str, values) -> list[str]:
    """Move ``control`` through ``values``; after each, the picture shown must equal a full redraw. Returns how each
    picture was drawn ("full" or "content")."""
    view, kinds = _view(w), []
    for v in values:
        w.controls[control].value = v
        kinds.append(view.last_render)
        shown = _pixels(view.png)
        full = _pixels(view.show(full=True))
        assert shown.shape == full.shape
        worst = int(np.abs(shown - full).max())
        assert worst == 0, f"{w.title if hasattr(w, 'title') else type(w).__name__}: {control} = {v}: the picture " \
                           f"drawn from the cached background differs from a full redraw (max pixel difference {worst})"
    return kinds


def _cases(small_model, realnvp_2d, image_model, model, data):  # noqa: F811
    images, labels = data
    x = torch.randint(0, 4, (20, 1, 4, 4))
    freq = torch.bincount(x.reshape(-1), minlength=256).double() + 1e-9
    freq = freq / freq.sum()

    class Histogram:  # a per-pixel histogram model with a box width, as lesson 05's
        def __init__(self, width):
            self.w = width

        def log_prob(self, y):
            k = torch.floor(y).long().clamp(0, 255)
            return (torch.log(freq[k]) - np.log(self.w)).reshape(len(y), -1).sum(1)

    z_bank = torch.randn(60, 784)
    return [  # (widget, control, values, the lessons move it without changing the axes: the background is reused)
        (widgets.change_of_variables("affine", "normal"), "a", [1.05, 1.1, 1.15, 1.1, 1.05, 1.0, 0.5, 3.0], True),
        (widgets.change_of_variables("square", "normal"), "c", [0.1, 0.2, 0.3, 0.2], True),
        (widgets.matrix_deformation(), "a", [1.1, 1.2, 1.3, -0.5], True),
        # its zoom panel follows g(p) (no ticks), its output panel fits the mapped grid on half units
        (widgets.local_linearization("swirl"), "strength", [0.6, 0.62, 0.64, 0.66, 0.9], True),
        (widgets.local_linearization("sine shear"), "px", [0.7, 0.6, -0.5], True),
        (widgets.layer_stepper(small_model, n_samples=200, grid=20), "k", [0, 1, 2, 3, 2], True),
        (wc.coupling_layer(), "s0", [0.1, 0.2, 0.3, -0.4], True),
        (wc.realnvp_stepper(realnvp_2d, n_samples=200, grid=20), "k", [0, 1, 2, 3, 4], True),
        (wi.temperature_samples(image_model, n=4, nrow=2), "T", [0.7, 0.4, 0.9], True),
        (wi.dequantization_width(x, Histogram, width=1.0), "w", [0.9, 0.8, 0.5], True),
        (wi.squeeze_explorer(), "h", [0, 1, 3], True),
        (WL.temperature_grid(model, n=4, temperatures=(0.0, 0.5, 1.0), reference_bpd=3.3), "T", [0.0, 1.0],
         True),
        (WL.interpolation(model, images, labels, "Sneaker", 1, "Ankle boot", 2, steps=5), "t", [0.25, 0.5, 1.0], True),
        (WL.attribute_vector(model, images, labels, z_bank, labels, "Sneaker", "Ankle boot", index=0), "strength",
         [0.5, 1.0], True),
    ]


def test_every_widget_draws_the_same_picture_from_its_cached_background(small_model, realnvp_2d, image_model,  # noqa: F811
                                                                        model, data):  # noqa: F811
    for w, control, values, reused in _cases(small_model, realnvp_2d, image_model, model, data):
        assert control in w.controls, (type(w).__name__, list(w.controls))
        kinds = layered_renders(w, control, values)
        if reused:
            assert "content" in kinds, f"{type(w).__name__}: every move of {control} redrew the background: {kinds}"


def cached_text_matches(w, control: str, values) -> int:
    """Move ``control`` through ``values``; after each, a full redraw with the text cache must equal one without it
    (matplotlib's own text drawing). Returns how many strings were drawn from the cache."""
    view, hits = _view(w), 0
    canvas = view.figure.canvas
    assert isinstance(canvas, textcache.TextCachingCanvas)
    for v in values:
        w.controls[control].value = v
        before = textcache.TEXT_CACHE.hits
        cached = _pixels(view.show(full=True))
        hits += textcache.TEXT_CACHE.hits - before
        canvas.text_cache = canvas.glyph_cache = None
        try:
            plain = _pixels(view.show(full=True))
        finally:
            canvas.text_cache, canvas.glyph_cache = textcache.TEXT_CACHE, textcache.GLYPH_CACHE
        worst = int(np.abs(cached - plain).max())
        assert worst == 0, f"{type(w).__name__}: {control} = {v}: text drawn from the cache differs from " \
                           f"matplotlib's (max pixel difference {worst})"
    return hits


def test_text_from_the_cache_equals_matplotlibs_own(small_model, realnvp_2d, image_model, model, data):  # noqa: F811
    for w, control, values, _ in _cases(small_model, realnvp_2d, image_model, model, data):
        hits = cached_text_matches(w, control, values)
        assert hits > 0, f"{type(w).__name__}: no text was drawn from the cache"


def test_the_text_check_sees_a_key_without_the_subpixel_position(monkeypatch):
    textcache.TEXT_CACHE.clear()
    right = textcache.text_key
    # the planted bug: a string's bitmaps are reused wherever it is drawn, whatever its fractional position
    monkeypatch.setattr(textcache, "text_key", lambda r, gc, x, y, *rest: right(r, gc, round(x), round(y), *rest))
    w = widgets.matrix_deformation()
    try:
        with pytest.raises(AssertionError, match="differs from matplotlib's"):
            cached_text_matches(w, "a", [1.1, 1.2, -0.5])
    finally:
        textcache.TEXT_CACHE.clear()  # no wrong bitmaps for the tests that follow


def test_the_text_check_sees_a_glyph_key_without_the_subpixel_offset(monkeypatch):
    """New strings (a readout's numbers) are drawn from cached glyphs; forget the glyph's 1/64-pixel offset in the
    key (the planted bug) and the comparison must fail."""
    textcache.TEXT_CACHE.clear(), textcache.GLYPH_CACHE.clear()

    class Forgetful(textcache.TextCache):
        def _k(self, key):
            return key[:8] + key[10:]  # without tx & 63 and ty & 63

        def get(self, key):
            return super().get(self._k(key))

        def put(self, key, value):
            super().put(self._k(key), value)

    w = widgets.matrix_deformation()
    canvas = _view(w).figure.canvas
    monkeypatch.setattr(textcache, "TEXT_CACHE", textcache.TextCache(max_entries=0))  # strings: never reused
    monkeypatch.setattr(textcache, "GLYPH_CACHE", Forgetful())
    canvas.text_cache, canvas.glyph_cache = textcache.TEXT_CACHE, textcache.GLYPH_CACHE
    with pytest.raises(AssertionError, match="differs from matplotlib's"):
        cached_text_matches(w, "a", [1.1, 1.2, -0.5])


def test_the_check_sees_a_stale_background(monkeypatch):
    w = widgets.change_of_variables("affine", "normal")
    monkeypatch.setattr(FigureOutput, "_background_key", lambda self: "never changes")  # the planted bug
    w.controls["a"].value = 1.1
    with pytest.raises(AssertionError, match="differs from a full redraw"):
        layered_renders(w, "a", [0.3])  # q(x) grows taller than its axis: the ticks must change


def test_sticky_top_moves_only_when_the_data_leaves_the_upper_half():
    from flowlib_teaching.widgets.base import sticky_top

    assert sticky_top(1.0, 0.7) == 1.0 and sticky_top(1.0, 1.0) == 1.0 and sticky_top(1.0, 0.5) == 1.0
    assert sticky_top(1.0, 1.1) == 1.25 and sticky_top(1.0, 0.3) == 0.3 and sticky_top(1.0, 0.31) == 0.4
    assert sticky_top(2.0, 0.0) == 2.0 and sticky_top(0.0, float("nan")) == 1.0
    assert sticky_top(0.0, 7.2) == 8.0 and sticky_top(8.0, 9.0) == 10.0 and sticky_top(1e-3, 0.02) == 0.02
