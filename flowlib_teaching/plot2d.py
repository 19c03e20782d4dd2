"""Pictures of 2D densities and maps: heat maps of a log-density, sample scatters, the deformation of a grid under a
map, and per-layer snapshots of a flow (from ``Compose.trace``).

Every function draws into a matplotlib ``Axes`` it is given (or a new ``Figure`` it returns), labels the axes, and
returns what it computed, so a lesson can both look and check. Nothing here uses pyplot's global state except
``new_figure``, which builds a plain ``Figure`` (no stray copies under ``%matplotlib inline``).

The one piece of maths here is ``stage_log_prob``: the density after k of the K layers of a trained flow in the
sampling direction, used to watch a density morph layer by layer.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from flowlib.core import Compose, Flow

Bounds = tuple[tuple[float, float], tuple[float, float]]
DEFAULT_BOUNDS: Bounds = ((-4.0, 4.0), (-4.0, 4.0))


def new_figure(ncols: int = 1, nrows: int = 1, size: float = 3.2, dpi: int = 90) -> tuple[Figure, np.ndarray]:
    """A plain (non-pyplot) Figure with an array of square axes; it shows when it is a cell's last value."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(size * ncols, size * nrows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def grid_points(bounds: Bounds = DEFAULT_BOUNDS, n: int = 200) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """An n x n grid over ``bounds``: (X, Y) as (n, n) arrays and the points as a float32 tensor (n*n, 2)."""
    (x0, x1), (y0, y1) = bounds
    X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1), dtype=torch.float32)
    return X, Y, pts


def density_on_grid(log_prob: Callable[[Tensor], Tensor], bounds: Bounds = DEFAULT_BOUNDS, n: int = 200,
                    chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, P): the density exp(log_prob) on an n x n grid (no gradients, in chunks)."""
    X, Y, pts = grid_points(bounds, n)
    with torch.no_grad():
        lp = torch.cat([log_prob(c).detach().double() for c in pts.split(chunk)])
    return X, Y, lp.exp().reshape(n, n).numpy()


def _label(ax, names: Sequence[str], title: str | None) -> None:
    ax.set_xlabel(f"${names[0]}$")
    ax.set_ylabel(f"${names[1]}$")
    if title:
        ax.set_title(title)


def plot_density(ax, log_prob: Callable[[Tensor], Tensor], bounds: Bounds = DEFAULT_BOUNDS, n: int = 200,
                 title: str | None = None, names: Sequence[str] = ("x_1", "x_2"), cmap: str = "viridis",
                 vmax: float | None = None) -> np.ndarray:
    """Heat map of exp(log_prob) on a grid; returns the density array P (n, n) (rows are x_2, columns x_1)."""
    X, Y, P = density_on_grid(log_prob, bounds, n)
    (x0, x1), (y0, y1) = bounds
    ax.imshow(P, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, aspect="equal", vmin=0.0, vmax=vmax,
              interpolation="nearest")
    _label(ax, names, title)
    return P


def plot_samples(ax, x: Tensor | np.ndarray, bounds: Bounds | None = DEFAULT_BOUNDS, title: str | None = None,
                 names: Sequence[str] = ("x_1", "x_2"), color: str = "tab:blue", s: float = 2.0,
                 alpha: float = 0.4, max_points: int = 5000):
    """Scatter of samples (B, 2) (at most ``max_points``); returns the PathCollection."""
    x = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    x = x[:max_points]
    sc = ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0, rasterized=True)
    if bounds is not None:
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
    ax.set_aspect("equal")
    _label(ax, names, title)
    return sc


def grid_lines(bounds: Bounds = DEFAULT_BOUNDS, lines: int = 11, resolution: int = 101) -> list[Tensor]:
    """The lines of a ``lines`` x ``lines`` grid over ``bounds``, each as a (resolution, 2) tensor of points."""
    (x0, x1), (y0, y1) = bounds
    t_x, t_y = torch.linspace(x0, x1, resolution), torch.linspace(y0, y1, resolution)
    out = []
    for c in torch.linspace(y0, y1, lines):  # horizontal lines
        out.append(torch.stack([t_x, torch.full_like(t_x, float(c))], 1))
    for c in torch.linspace(x0, x1, lines):  # vertical lines
        out.append(torch.stack([torch.full_like(t_y, float(c)), t_y], 1))
    return out


def plot_grid_deformation(ax, fn: Callable[[Tensor], Tensor] | None, bounds: Bounds = DEFAULT_BOUNDS,
                          lines: int = 11, resolution: int = 101, title: str | None = None,
                          names: Sequence[str] = ("y_1", "y_2"), color: str = "tab:blue", lw: float = 1.0,
                          limits: Bounds | None = None) -> list[np.ndarray]:
    """Draw the image under ``fn`` ((N, 2) -> (N, 2); None for the identity) of a grid over ``bounds``.

    Horizontal grid lines are drawn solid and vertical ones dashed, so a shear or a swap of axes is visible.
    Returns the mapped lines as arrays (resolution, 2).
    """
    mapped = []
    with torch.no_grad():
        for i, line in enumerate(grid_lines(bounds, lines, resolution)):
            y = line if fn is None else fn(line)
            y = y.detach().cpu().numpy()
            mapped.append(y)
            ax.plot(y[:, 0], y[:, 1], color=color, lw=lw, ls="-" if i < lines else "--", alpha=0.8)
    if limits is not None:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    _label(ax, names, title)
    return mapped


def flow_fn(flow: Flow, direction: str = "forward") -> Callable[[Tensor], Tensor]:
    """The point map of a flow (forward: data -> latent; inverse: latent -> data), dropping the log-det."""
    if direction == "forward":
        return lambda v: flow(v)[0]
    if direction == "inverse":
        return lambda v: flow.inverse(v)[0]
    raise ValueError(f"direction must be 'forward' or 'inverse', got {direction!r}.")


def stage_log_prob(flow: Compose, base, k: int) -> Callable[[Tensor], Tensor]:
    """The log-density of the samples after k of the K layers in the sampling direction.

    Sampling runs z = h_0 -> h_1 = f_K^{-1}(h_0) -> ... -> h_K = x. The density of h_k is the base pushed
    through the last k inverses, and by the change of variables

        log q_k(h) = log p(f_K o ... o f_{K-k+1}(h)) + log|det d(f_K o ... o f_{K-k+1})/dh|,

    i.e. ``FlowModel(Compose(*flows[K-k:]), base).log_prob``. k = 0 is the base, k = K the model.
    """
    K = len(flow)
    if not 0 <= k <= K:
        raise ValueError(f"k must be between 0 and the number of layers {K}, got {k}.")
    tail = list(flow.flows)[K - k:]

    def log_prob(h: Tensor) -> Tensor:
        logdet = h.new_zeros(h.shape[0])
        for f in tail:
            h, ld = f(h)
            logdet = logdet + ld
        return base.log_prob(h) + logdet

    return log_prob


def plot_layers(flow: Compose, x: Tensor, direction: str = "inverse", bounds: Bounds = DEFAULT_BOUNDS,
                size: float = 2.4, color: str = "tab:blue", max_cols: int = 6) -> Figure:
    """Samples after every layer, from ``flow.trace(x, direction)``: with ``direction="inverse"`` x are base
    samples z and the panels show z turning into data; with ``"forward"`` data turning into z."""
    with torch.no_grad():
        states = flow.trace(x, direction=direction)
    n = len(states)
    cols = min(n, max_cols)
    rows = (n + cols - 1) // cols
    fig, axes = new_figure(cols, rows, size=size)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_visible(False)
            continue
        names = (f"h_{{{i},1}}", f"h_{{{i},2}}")  # coordinates 1 and 2 of the state after i layers
        if i == 0:
            names = ("z_1", "z_2") if direction == "inverse" else ("x_1", "x_2")
        elif i == n - 1:
            names = ("x_1", "x_2") if direction == "inverse" else ("z_1", "z_2")
        plot_samples(ax, states[i][0], bounds, title=f"after {i} of {n - 1} layers", names=names, color=color)
    return fig
