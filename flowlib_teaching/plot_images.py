"""Pictures for image flows: a grid of images, and the multi-scale architecture drawn with its shapes."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch

from flowlib.core import Compose
from flowlib.bijections import MultiScale, Squeeze


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 1, fill: float | None = None) -> torch.Tensor:
    """(B, C, H, W) -> one (H', W') or (H', W', C) image with a ``pad``-pixel border between tiles.

    ``fill`` is the border's value (default: the largest pixel value; NaN leaves it blank in ``imshow``)."""
    b, c, h, w = images.shape
    ncol = nrow
    nrows = math.ceil(b / ncol)
    if fill is None:
        fill = float(images.max()) if b else 0.0
    grid = torch.full((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), fill)
    for i in range(b):
        r, col = divmod(i, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = \
            images[i].float()
    return grid[0] if c == 1 else grid.permute(1, 2, 0)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, labels=None):
    """Show integer (0..255) or float images in a grid, grey, without axes ticks."""
    if ax is None:
        size = min(12, 1.1 * nrow)
        _, ax = plt.subplots(figsize=(size, size * math.ceil(len(images) / nrow) / nrow + 0.4))
    ax.imshow(image_grid(images.detach().cpu(), nrow), cmap="gray_r" if images.dtype == torch.uint8 else "gray",
              interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    if labels is not None:
        ax.set_xlabel(labels)
    return ax


def describe_multiscale(flow: MultiScale) -> list[dict]:
    """One row per stage: what it is and the shape it outputs (for the drawing and for a printed table)."""
    rows, shape = [{"stage": "input x", "shape": flow.event_shape}], flow.event_shape
    for i, level in enumerate(flow.levels):
        parts = list(level.flows) if isinstance(level, Compose) else [level]
        couplings = 0
        for p in parts:
            new = p.forward_shape(shape)
            if isinstance(p, Squeeze):
                rows.append({"stage": f"level {i + 1}: squeeze", "shape": new})
            elif "Coupling" in type(p).__name__:
                couplings += 1
            shape = new
        rows.append({"stage": f"level {i + 1}: {couplings} couplings", "shape": shape})
        if i < len(flow.levels) - 1:
            rows.append({"stage": f"z_{i + 1} factored out", "shape": flow.latent_shapes[i], "out": True})
            shape = (shape[0] - flow.latent_shapes[i][0], *shape[1:])
            rows.append({"stage": "continues", "shape": shape})
        else:
            rows.append({"stage": f"z_{i + 1}", "shape": shape, "out": True})
    return rows


def draw_multiscale(flow: MultiScale, ax=None):
    """The architecture as boxes, one per stage, with the shape each stage outputs; factored-out latents in orange,
    below the level they leave."""
    rows = [r for r in describe_multiscale(flow) if r["stage"] != "continues"]
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 2.8))

    def box(x, y, r, color):
        ax.add_patch(FancyBboxPatch((x, y), 1.6, 0.9, boxstyle="round,pad=0.05", fc=color, ec="k"))
        ax.text(x + 0.8, y + 0.6, r["stage"], ha="center", va="center", fontsize=8)
        ax.text(x + 0.8, y + 0.25, "×".join(map(str, r["shape"])), ha="center", va="center", fontsize=9,
                family="monospace")

    x = 0.0
    for k, r in enumerate(rows):
        side_exit = r.get("out", False) and k < len(rows) - 1
        if side_exit:  # below the previous box
            box(x - 2.0, -1.3, r, "#f4a259")
            ax.annotate("", xy=(x - 1.2, -0.35), xytext=(x - 1.2, -0.05), arrowprops=dict(arrowstyle="->"))
            continue
        box(x, 0.0, r, "#f4a259" if r.get("out") else "#8cb4d9")
        if x > 0:
            ax.annotate("", xy=(x - 0.05, 0.45), xytext=(x - 0.35, 0.45), arrowprops=dict(arrowstyle="->"))
        x += 2.0
    ax.set_xlim(-0.2, x), ax.set_ylim(-1.6, 1.1), ax.axis("off")
    ax.set_title(f"multi-scale flow: every orange latent is part of the one flat z of "
                 f"{math.prod(flow.event_shape)} values")
    return ax


def digit_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Integer or float images (N, 64) of the 8x8 digits as one 2D array for ``plt.imshow(..., cmap="gray_r")``, ``nrow`` per row,
    with blank (NaN) borders."""
    return image_grid(x.detach().float().reshape(-1, 1, 8, 8).cpu(), nrow, pad, fill=float("nan")).numpy()
