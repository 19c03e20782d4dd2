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
import time

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FigureOutput", "FigureWidget"]


class FigureOutput:
    """A matplotlib Figure and the ``ipywidgets.Image`` (``output``) that shows it; ``show()`` renders it there.

    ``label`` names the picture (``repr``); ``layout`` (an ``ipywidgets.Layout``) sizes the Image. After ``show()``,
    ``png`` holds the bytes shown, and the Image's ``value`` is the same bytes.
    """

    def __init__(self, figsize: tuple[float, float], dpi: int = 80, label: str = "<figure>", layout=None):
        import ipywidgets as W

        self.dpi, self.label = dpi, label
        self.figure = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.output = W.Image(format="png", layout=layout if layout is not None else W.Layout())
        self.output.add_class("flows-figure")
        self.png = b""

    def show(self) -> bytes:
        """Draw the figure to a PNG and show it in the Image (one message to the browser); returns the PNG."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi, pil_kwargs={"compress_level": 1})
        self.png = buf.getvalue()
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
