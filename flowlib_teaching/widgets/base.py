"""What every widget of the course shares: one figure shown in an ``ipywidgets.Image`` and redrawn in place.

``FigureOutput`` is the renderer. Its ``figure`` is a plain ``matplotlib.figure.Figure`` (not pyplot, so
``%matplotlib inline`` never shows a stray copy); ``show()`` draws it with Agg into a PNG that becomes the value of
an ``ipywidgets.Image``. That works in plain JupyterLab without ipympl, headless in the tests, and in a static export
of the executed notebook (nbclient keeps the Image's bytes in the notebook's widget state, and
``coursetools.static_widgets`` draws them). An Image was chosen over an ``ipywidgets.Output`` holding a
``display_data`` after measuring both end to end in the browser (``python -m benchmarks widget_latency_browser``):
the Image's bytes travel as a binary buffer and the browser only swaps the picture's source, while an Output's new
content is base64 inside JSON and JupyterLab rebuilds an output area for it, about 50 ms more per update here.

``FigureWidget`` is the base class of the widgets: controls, the figure, a message line, and ``update()``, which
computes from the controls (``_compute``, returns the new ``state``), shows the state's message, moves the artists
(``_draw``) and renders, timing itself in ``state["seconds"]``. Subclasses create their artists once (``_build``) and
only move them on an update: rebuilding axes, ticks and titles is most of the drawing time.
"""
from __future__ import annotations

import io
import math
import time

from matplotlib.figure import Figure

from flowlib_teaching.widgets.textcache import TextCachingCanvas

__all__ = ["FigureOutput", "FigureWidget", "sticky_top"]


NICE_STEPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)


def sticky_top(current: float, wanted: float) -> float:
    """An axis' upper limit that moves only when it must: ``current`` while ``wanted`` lies between half of it and
    it, otherwise the next round number above ``wanted``. As a slider moves, the density then visibly grows and
    shrinks against a fixed axis (with a limit refitted at every step it would always look the same height), and
    the widget's background (ticks, labels) stays cached between updates (``FigureOutput``)."""
    if not wanted > 0:  # nothing to show (or NaN): keep the axis as it is
        return current if current > 0 else 1.0
    if 0.5 * current <= wanted <= current:
        return current
    exponent = math.floor(math.log10(wanted))
    nice = (float(f"{step:g}e{exponent}") for step in NICE_STEPS + (10.0,))  # e.g. 0.3, not 3 * 0.1 = 0.30000000000000004
    return next(v for v in nice if v >= wanted)


class FigureOutput:
    """A matplotlib Figure and the ``ipywidgets.Image`` (``output``) that shows it; ``show()`` renders it there.

    ``label`` names the picture (``repr``); ``layout`` (an ``ipywidgets.Layout``) sizes the Image. After ``show()``,
    ``png`` holds the bytes shown, and the Image's ``value`` is the same bytes.

    Rendering in two layers. Most of a full Agg draw is text (tick labels, whose glyphs are laid out and rasterized
    again on every draw although a slider rarely changes them). So the figure is drawn as a cached **background**
    (figure and axes faces, ticks, tick labels, grid) and, on top of it, the **content** that an update moves (each
    axes' lines, patches, collections, images and texts, its titles, axis labels, legend and spines, in their
    z-order; the figure's suptitle, texts and legends). ``show()`` redraws the background only when something it
    holds has changed, which ``_background_key`` captures (figure size and dpi; per axes: position after its aspect
    is applied, limits of the axes that have ticks, scales, tick positions and fixed tick labels, faces, visibility), and otherwise restores it and draws the content alone
    (``last_render`` says which: "full" or "content"). Both paths produce the same layering, so a content-only
    picture equals a full one of the same state; ``tests/test_widget_rendering.py`` checks that, pixel for pixel,
    for every widget of the course. The layering differs from a plain ``savefig`` in one respect: grid lines lie
    under all of an axes' content (matplotlib puts them above patches). ``layered=False`` (or a figure with inset
    axes) falls back to ``savefig`` every time. A widget keeps its background by moving its axes' limits only when
    it must (``sticky_top``).

    Text. The canvas is a ``textcache.TextCachingCanvas``: a string it has drawn before (a tick label, an axis label,
    a legend entry) is blitted from the glyph bitmaps FreeType rendered the first time, and a new string (a readout's
    new numbers) from cached glyphs; the picture is the same as matplotlib's, pixel for pixel (tested on every
    widget). Together the two layers and the text cache make a widget update 0.27–0.46 of a plain ``savefig``
    (``python -m benchmarks widget_latency --compare-rendering``).
    """

    def __init__(self, figsize: tuple[float, float], dpi: int = 80, label: str = "<figure>", layout=None,
                 layered: bool = True):
        import ipywidgets as W

        self.dpi, self.label, self.layered = dpi, label, layered
        self.figure = Figure(figsize=figsize, dpi=dpi)
        TextCachingCanvas(self.figure)  # text is blitted from bitmaps drawn once (textcache)
        self.output = W.Image(format="png", layout=layout if layout is not None else W.Layout())
        self.output.add_class("flows-figure")
        self.png = b""
        self.last_render = ""
        self._background = None
        self._key = None

    # ---- the two layers -------------------------------------------------------------------------------------------
    def _content(self) -> list:
        """The artists an update may move, in drawing order (each axes' own order: z-order, then insertion)."""
        fig, out = self.figure, []
        for ax in fig.axes:
            arts = list(ax._children) + [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
            if ax.legend_ is not None:
                arts.append(ax.legend_)
            if ax.axison and ax.get_frame_on():
                arts += list(ax.spines.values())
            out += sorted(arts, key=lambda a: a.get_zorder())
        top = [t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t is not None]
        out += sorted(top + list(fig.texts) + list(fig.legends), key=lambda a: a.get_zorder())
        return out

    def _background_key(self) -> tuple:
        """Everything the background shows: if this is unchanged, the cached background is still right."""
        from matplotlib.ticker import FixedFormatter

        def labels(axis, lim):  # an axis without ticks draws nothing that depends on its limits
            fmt, major, minor = axis.get_major_formatter(), axis.get_majorticklocs(), axis.get_minorticklocs()
            return (type(fmt).__name__, tuple(fmt.seq) if isinstance(fmt, FixedFormatter) else (), tuple(major),
                    tuple(minor), axis.get_visible(), lim if len(major) or len(minor) else None)

        fig = self.figure
        key = [tuple(fig.get_size_inches()), fig.dpi, tuple(fig.get_facecolor()), len(fig.patches), len(fig.lines),
               len(fig.images), len(fig.artists)]
        for ax in fig.axes:
            ax.apply_aspect()  # as a draw would: an axes with a fixed aspect resizes its box to its new limits
            key.append((id(ax), ax.get_visible(), ax.axison, ax.get_frame_on(), tuple(ax.get_position().bounds),
                        ax.get_xscale(), ax.get_yscale(), tuple(ax.get_facecolor()), labels(ax.xaxis, ax.get_xlim()),
                        labels(ax.yaxis, ax.get_ylim()), ax.xaxis._major_tick_kw.get("gridOn"),
                        ax.yaxis._major_tick_kw.get("gridOn")))
        return tuple(key)

    def _render_layered(self, full: bool) -> bytes:
        from PIL import Image

        canvas = self.figure.canvas
        key = self._background_key()
        content = self._content()
        if full or self._background is None or key != self._key:
            # an axis label is drawn by its axis, which ignores "animated": hide it instead (its position is still
            # updated from the tick labels during the draw, so the content layer draws it in the right place)
            labels = [(t, t.get_visible()) for ax in self.figure.axes for t in (ax.xaxis.label, ax.yaxis.label)]
            for a in content:
                a.set_animated(True)
            for t, _ in labels:
                t.set_visible(False)
            try:
                canvas.draw()  # everything but the content
            finally:
                for a in content:
                    a.set_animated(False)
                for t, visible in labels:
                    t.set_visible(visible)
            self._background, self._key = canvas.copy_from_bbox(self.figure.bbox), self._background_key()
            self.last_render = "full"
        else:
            canvas.restore_region(self._background)
            self.last_render = "content"
        renderer = canvas.get_renderer()
        for a in content:
            a.draw(renderer)
        w, h = canvas.get_width_height()
        image = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        image.save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def show(self, full: bool = False) -> bytes:
        """Draw the figure to a PNG and show it in the Image (one message to the browser); returns the PNG.
        ``full=True`` redraws the background too (the pictures are the same; the tests compare them)."""
        if self.layered and not any(ax.child_axes for ax in self.figure.axes):
            self.png = self._render_layered(full)
        else:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=self.dpi, pil_kwargs={"compress_level": 1})
            self.png, self.last_render = buf.getvalue(), "savefig"
        self.output.value = self.png
        return self.png

    def __repr__(self) -> str:
        return f"FigureOutput({self.label}, {len(self.png)} PNG bytes shown)"


class FigureWidget:
    """Controls + one ``FigureOutput`` + a message line (an ``ipywidgets.HTML``; a problem is shown there, never as
    a traceback).

    Public: ``controls`` (dict of ipywidgets, by name), ``figure``, ``output``, ``message``, ``png`` (the picture
    shown), ``state`` (what the last update computed and drew), ``widget`` (the box to display; the object displays as
    it too), ``update()``. A subclass sets ``title``, defines ``_build``, ``_compute`` and ``_draw``, calls
    ``super().__init__`` then lays out ``self.widget`` (``_layout`` does the usual: controls, message, figure).
    """

    title = "widget"

    def __init__(self, controls: dict, figsize: tuple[float, float], dpi: int = 80):
        import ipywidgets as W

        self.controls, self.dpi = controls, dpi
        self.view = FigureOutput(figsize, dpi, label=f"<{self.title} figure>")
        self.figure, self.output = self.view.figure, self.view.output
        self.message = W.HTML()
        self.state: dict = {}

    @property
    def png(self) -> bytes:
        return self.view.png

    def _layout(self, extra: list | None = None) -> None:
        """``self.widget``: the controls in one wrapping row (then ``extra`` widgets), the message, the figure."""
        import ipywidgets as W

        row = W.HBox(list(self.controls.values()) + list(extra or []), layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([row, self.message, self.output])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def update(self) -> None:
        """Recompute from the controls, show the message, move the artists, and show the new picture."""
        start = time.perf_counter()
        self.state = self._state(self.values())
        msg = self.state.get("message", "")
        self.message.value = f"<span style='color:#b00020'><b>{msg}</b></span>" if msg else ""
        self._draw()
        self.view.show()
        self.state["seconds"] = time.perf_counter() - start

    def _state(self, v: dict) -> dict:
        """The new ``state`` from the controls' values (``_compute``; a subclass may add to it)."""
        return self._compute(v)

    def _build(self) -> None:
        raise NotImplementedError

    def _compute(self, v: dict) -> dict:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError
