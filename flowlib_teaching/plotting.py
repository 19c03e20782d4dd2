"""Plots shared by the notebooks: a live loss curve for ``flowlib.training.fit`` and 1D density pictures.

Figures that update in place (``LiveLossPlot``) are plain ``matplotlib.figure.Figure`` objects rendered with Agg to a
PNG and shown through an IPython display handle, so they work in JupyterLab without ipympl, in nbconvert and nbval,
and do nothing outside IPython. Every plot labels its axes.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["LiveLossPlot", "plot_density_vs_samples", "plot_1d_density_fit"]


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where display handles can be updated in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _as_numpy(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=float).reshape(-1)


class LiveLossPlot:
    """A ``fit`` callback that redraws the training loss every ``every`` steps, in place, in the notebook.

        live = LiveLossPlot(every=25, steps=1000, reference=(1.23, "true density"))
        fit(model, data, steps=1000, callbacks=[live])

    Draws the loss of every step (light), its running mean (dark), any series logged with ``history.log(name, step,
    value)`` (e.g. a held-out NLL) as markers, and an optional horizontal ``reference`` line ``(value, label)``.
    ``steps`` (optional) makes sure the last step is drawn too. Outside a Jupyter kernel it does nothing (training
    from a script stays quiet); ``draw(history)`` works anywhere and returns the figure.
    """

    def __init__(self, every: int = 25, title: str = "training loss", steps: int | None = None,
                 reference: tuple[float, str] | None = None, ylabel: str = "negative log-likelihood (nats)",
                 window: int = 25, dpi: int = 80, scale: float = 1.0):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}.")
        # scale: the plotted value is loss * scale, e.g. 1 / (D ln 2) to show a loss in nats per image as bits/dim
        # (the reference line is given in the plotted unit)
        self.every, self.title, self.steps, self.reference, self.scale = every, title, steps, reference, scale
        self.window, self.ylabel = window, ylabel
        self.figure = Figure(figsize=(6.5, 3.0), dpi=dpi)
        from flowlib_teaching.widgets.textcache import TextCachingCanvas

        TextCachingCanvas(self.figure)  # its labels and ticks are drawn from cached glyphs at each redraw
        self.ax = self.figure.add_subplot()
        self.figure.subplots_adjust(left=0.13, right=0.97, bottom=0.17, top=0.88)
        self._handle = None

    def __call__(self, step: int, loss: float, model, history) -> None:
        if not (step % self.every == 0 or step == self.steps or step == 1):
            return
        if not _in_kernel():
            return
        from IPython.display import Image, display

        self.draw(history)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
        image = Image(data=buf.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def draw(self, history) -> Figure:
        """Redraw the figure from a ``History`` and return it."""
        ax = self.ax
        ax.clear()
        steps, loss = np.asarray(history.step), np.asarray(history.loss, dtype=float) * self.scale
        if len(loss):
            ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="loss of each batch")
            k = min(self.window, len(loss))
            mean = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], mean, color="tab:blue", lw=2, label=f"running mean ({k} steps)")
            lo = min(float(loss.min()), self.reference[0] if self.reference else np.inf)
            hi = float(np.percentile(loss, 98)) if len(loss) > 20 else float(loss.max())
            pad = 0.08 * max(hi - lo, 1e-3)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_xlim(0, max(self.steps or 0, int(steps[-1])))
        for name, series in history.extra.items():
            s, v = zip(*series)
            ax.plot(s, v, "o-", ms=4, lw=1, label=name)
        if self.reference is not None:
            ax.axhline(self.reference[0], color="black", ls="--", lw=1, label=self.reference[1])
        ax.set_xlabel("training step")
        ax.set_ylabel(self.ylabel)
        last = f" — step {history.step[-1]}: {history.loss[-1] * self.scale:.3f}" if history.loss else ""
        ax.set_title(f"{self.title}{last}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        return self.figure


def plot_density_vs_samples(samples, x, density, ax=None, bins: int = 60, label: str = "q(x)",
                            sample_label: str = "histogram of samples", xlabel: str = "x",
                            ylabel: str = "density", title: str | None = None, color: str = "tab:orange"):
    """A density curve over a histogram of samples (normalised as a density), on the curve's x-range.

    ``samples``, ``x`` and ``density`` may be tensors or arrays (any shape; they are flattened). Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.2))
    x, q, s = _as_numpy(x), _as_numpy(density), _as_numpy(samples)
    ax.hist(s, bins=np.linspace(x.min(), x.max(), bins + 1), density=False,
            weights=np.full(len(s), 1.0 / (len(s) * (x.max() - x.min()) / bins)), color=color, alpha=0.3,
            label=sample_label)
    ax.plot(x, q, color=color, lw=2, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_1d_density_fit(model, data, ax=None, true_log_prob=None, x_range: tuple[float, float] | None = None,
                        bins: int = 80, title: str = "fitted density vs data"):
    """The fitted density exp(model.log_prob(x)) against a histogram of the data and, optionally, the true density.

    ``data`` has shape (N,) or (N, 1); ``true_log_prob`` is a function from a (B, 1) tensor to (B,) log-densities.
    Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.5, 3.4))
    d = _as_numpy(data)
    if x_range is None:
        lo, hi = np.percentile(d, [0.1, 99.9])
        pad = 0.15 * (hi - lo)
        x_range = (lo - pad, hi + pad)
    x = torch.linspace(*x_range, 600, dtype=torch.float64).reshape(-1, 1)
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    was_training = getattr(model, "training", False)
    model.eval()
    with torch.no_grad():
        q = torch.exp(model.log_prob(x.to(dtype))).double()
    model.train(was_training)
    ax.hist(d, bins=np.linspace(*x_range, bins + 1), density=True, color="tab:gray", alpha=0.35,
            label=f"data ({len(d)} points)")
    if true_log_prob is not None:
        with torch.no_grad():
            ax.plot(x.reshape(-1), torch.exp(true_log_prob(x)).reshape(-1), color="black", ls="--", lw=1.5,
                    label="true density")
    ax.plot(x.reshape(-1), q.reshape(-1), color="tab:blue", lw=2, label="flow q(x)")
    ax.set(xlabel="x (data)", ylabel="density", title=title, xlim=x_range)
    ax.legend(fontsize=8)
    return ax
