"""Text drawn once: an Agg canvas that keeps the rasterized glyphs of every string it draws and blits them again.

Why. Measured in the kernel (``python -m benchmarks widget_latency``), about two thirds of a widget update was
matplotlib laying out and rasterizing text: tick labels, axis labels, legends, titles, the numbers of lesson 05's
squeeze grid. Almost all of that text is the same from one update to the next. Agg draws a string glyph by glyph:
FreeType renders each glyph to a coverage bitmap for the string's sub-pixel position, and ``draw_text_image`` blends
that bitmap in the graphics context's colour, alpha and clip. The bitmaps depend only on the string, the font, its
size, the angle, the dpi, antialiasing, the hinting settings and the *fractional* part of the position (moving a
string by whole pixels moves its glyphs' bitmaps by the same whole pixels). So ``TextCachingRenderer`` records the
bitmaps of the first draw under that key and, on the next draw, blends the same bitmaps at the new whole-pixel
offset. The colour, alpha and clipping still come from the graphics context at each draw. The picture is the same,
pixel for pixel (``tests/test_widget_rendering.py`` compares every widget of the course with and without the
cache, and shows a planted wrong key being caught).

Plain text and mathtext (``$...$``) are cached; TeX (``usetex``) and anything the recording cannot reproduce (a
mathtext fraction bar or root, drawn as a path) are drawn as usual every time.
"""
from __future__ import annotations

import inspect
import math
from collections import OrderedDict

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.font_manager import findfont

try:  # matplotlib >= 3.10
    from matplotlib.ft2font import RenderMode
except ImportError:  # pragma: no cover
    RenderMode = None

__all__ = ["TextCache", "TextCachingRenderer", "TextCachingCanvas", "TEXT_CACHE", "GLYPH_CACHE"]


class TextCache:
    """Recorded glyph bitmaps, by text key (least recently used first out beyond ``max_entries``); ``hits`` and
    ``misses`` count lookups."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self.entries: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key):
        calls = self.entries.get(key)
        if calls is None:
            self.misses += 1
        else:
            self.hits += 1
            self.entries.move_to_end(key)
        return calls

    def put(self, key, calls) -> None:
        self.entries[key] = calls
        if len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()
        self.hits = self.misses = 0


_MATHTEXT_RC = sorted(k for k in mpl.rcParams if k.startswith("mathtext."))
TEXT_CACHE = TextCache()  # one for the process: the same tick labels recur in every widget


def text_key(renderer: RendererAgg, gc, x: float, y: float, s: str, prop, angle: float, mtext) -> tuple:
    """Everything the glyph bitmaps of ``s`` drawn at (x, y) depend on, except the whole-pixel part of (x, y)."""
    features = getattr(mtext, "get_fontfeatures", lambda: None)() if mtext is not None else None
    language = getattr(mtext, "get_language", lambda: None)() if mtext is not None else None
    return (s, findfont(prop), tuple(prop.get_family()), prop.get_style(), prop.get_variant(), prop.get_weight(),
            prop.get_stretch(), prop.get_size_in_points(), prop.get_math_fontfamily(), float(angle),
            bool(gc.get_antialiased()), renderer.dpi, x - math.floor(x), y - math.floor(y),
            tuple(features) if features else None, language, mpl.rcParams["text.hinting"],
            mpl.rcParams["text.hinting_factor"], tuple(str(mpl.rcParams[k]) for k in _MATHTEXT_RC))


class _Recorder:
    """Stands in for the C++ Agg renderer while one string is drawn: passes every call on, and keeps a copy of the
    glyph bitmaps with where they went. ``calls`` becomes None if anything else was drawn (not replayable)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def draw_text_image(self, image, x, y, angle, gc):
        if self.calls is not None:
            if isinstance(image, np.ndarray):
                self.calls.append((image.copy(), x, y, angle))
            else:  # an older matplotlib hands over the font object itself
                self.calls = None
        self.inner.draw_text_image(image, x, y, angle, gc)

    def __getattr__(self, name):
        if name.startswith("draw"):
            self.calls = None
        return getattr(self.inner, name)


GLYPH_CACHE = TextCache(max_entries=50_000)  # single glyphs, for strings not seen before (a readout's new numbers)

# matplotlib >= 3.11 draws every glyph in RendererAgg._draw_text_glyphs_and_boxes; older versions draw whole strings
# (the string cache above still applies there)
_GLYPH_METHOD = getattr(RendererAgg, "_draw_text_glyphs_and_boxes", None)
_GLYPH_HOOK = (RenderMode is not None and _GLYPH_METHOD is not None
               and list(inspect.signature(_GLYPH_METHOD).parameters) == ["self", "gc", "x", "y", "angle", "glyphs",
                                                                          "boxes"])


class TextCachingRenderer(RendererAgg):
    """``RendererAgg`` whose ``draw_text`` replays recorded glyph bitmaps (``cache``; None draws as usual).

    A string not seen before still saves most of its cost: its glyphs come from ``glyph_cache``, keyed by font,
    size, glyph, transform and the glyph's sub-pixel offset (FreeType renders at 1/64 pixel; a glyph moved by whole
    pixels has the same bitmap, moved)."""

    cache: TextCache | None = TEXT_CACHE
    glyph_cache: TextCache | None = GLYPH_CACHE

    def _draw_text_glyphs_and_boxes(self, gc, x, y, angle, glyphs, boxes):
        cache = self.glyph_cache
        if cache is None or not _GLYPH_HOOK:
            return super()._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, boxes)
        # the same arithmetic as matplotlib's, with FreeType's rendering looked up first
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        load_flags = get_hinting_flag()
        antialiased = bool(gc.get_antialiased())
        mode = RenderMode.NORMAL if antialiased else RenderMode.MONO
        for font, size, glyph_index, slant, extend, dx, dy in glyphs:  # dy is upwards
            tx = round(0x40 * (x + dx * cos - dy * sin))
            ty = round(0x40 * (self.height - y + dx * sin + dy * cos))  # FreeType's y is upwards
            key = (font.fname, font.face_index, size, self.dpi, glyph_index, slant, extend, float(angle), tx & 63,
                   ty & 63, str(load_flags), antialiased, mpl.rcParams["text.hinting_factor"])
            hit = cache.get(key)
            if hit is None:
                font.set_size(size, self.dpi)
                font._set_transform((0x10000 * np.array([[cos, -sin], [sin, cos]])
                                     @ [[extend, extend * slant], [0, 1]]).round().astype(int), [tx, ty])
                bitmap = font._render_glyph(glyph_index, load_flags, mode)
                buffer = np.array(bitmap.buffer, copy=True)
                if not antialiased:
                    buffer *= 0xff
                hit = (buffer, bitmap.left - (tx >> 6), bitmap.top - (ty >> 6))
                cache.put(key, hit)
            buffer, left, top = hit
            # draw_text_image's y is downwards and at the bitmap's bottom side
            self._renderer.draw_text_image(buffer, (tx >> 6) + left, int(self.height) - ((ty >> 6) + top)
                                           + buffer.shape[0], 0, gc)
        if boxes:  # mathtext's fraction bars and roots: drawn as paths, as matplotlib does
            super()._draw_text_glyphs_and_boxes(gc, x, y, angle, (), boxes)
        return None

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        cache = self.cache
        if cache is None or ismath == "TeX":
            return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
        key = (bool(ismath),) + text_key(self, gc, x, y, s, prop, angle, mtext)
        fx, fy = math.floor(x), math.floor(y)
        calls = cache.get(key)
        if calls is None:
            recorder = _Recorder(self._renderer)
            self._renderer = recorder
            try:
                super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            finally:
                self._renderer = recorder.inner
            if recorder.calls is not None:
                cache.put(key, [(image, px - fx, py - fy, a) for image, px, py, a in recorder.calls])
            return None
        for image, dx, dy, a in calls:
            self._renderer.draw_text_image(image, fx + dx, fy + dy, a, gc)
        return None


class TextCachingCanvas(FigureCanvasAgg):
    """A ``FigureCanvasAgg`` that draws with a ``TextCachingRenderer``. ``text_cache`` and ``glyph_cache`` (default:
    the process-wide ``TEXT_CACHE`` and ``GLYPH_CACHE``) may be set to other ``TextCache`` objects, or to None
    (both None: matplotlib's own drawing of every string)."""

    text_cache: TextCache | None = TEXT_CACHE
    glyph_cache: TextCache | None = GLYPH_CACHE

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key or not isinstance(self.renderer, TextCachingRenderer):
            self.renderer = TextCachingRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        self.renderer.cache, self.renderer.glyph_cache = self.text_cache, self.glyph_cache
        return self.renderer
