"""The 2D recipe of the course: train a density model on fresh samples of a ``flowlib.data.toy2d`` density, then
measure it on held-out samples against the density's exact log-likelihood. Lessons 02-04, the couplings experiment
and the ``nll_gap`` benchmark use it, so their numbers are made the same way.

    history = train_2d(model, "moons", steps=1000)          # Adam, cosine-annealed lr, fresh samples every step
    result = evaluate_2d(model, "moons", x_test)             # NLL, floor and gap (= KL) on the same samples

The evaluation, on held-out samples x_1..x_n ~ p:

    nll   = -mean log q(x_j)                 (the model)
    floor = -mean log p(x_j)                 (the exact log-density: a Monte Carlo estimate of the entropy H(p))
    gap   = mean [log p(x_j) - log q(x_j)]   (= nll - floor, a Monte Carlo estimate of KL(p || q) >= 0)

Each comes with its standard error; the gap's is a paired difference on the same samples, far smaller than that of
either the NLL or the floor.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor, nn

from flowlib.data import toy2d
from flowlib.training.loop import Callback, History, fit

__all__ = ["train_2d", "evaluate_2d"]


def train_2d(model: nn.Module, data: str | toy2d.Toy2D, steps: int, lr: float = 2e-3, batch_size: int = 512,
             seed: int = 0, final_lr: float | None = None, clip_grad: float | None = 10.0, progress: bool = True,
             callbacks: Iterable[Callback] = ()) -> History:
    """Train ``model`` by maximum likelihood on ``data`` (a toy2d name or density) for ``steps`` steps.

    Every step draws a fresh batch from ``data.sampler(seed)`` (so there is no over-fitting to watch for). Adam with
    learning rate ``lr``, lowered along a cosine to ``final_lr`` (default ``lr / 50``) at the last step; gradient
    norm clipped at ``clip_grad``. The model is left in eval mode. Returns ``fit``'s ``History``.
    """
    ds = toy2d.get(data)
    final_lr = lr / 50 if final_lr is None else final_lr
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=final_lr)
    history = fit(model, ds.sampler(seed=seed), steps, batch_size=batch_size, optimizer=optimizer,
                  scheduler=scheduler, clip_grad=clip_grad, callbacks=callbacks, progress=progress, seed=seed)
    model.eval()
    return history


def evaluate_2d(model, data: str | toy2d.Toy2D, x: Tensor, chunk: int = 10_000) -> dict[str, float]:
    """Held-out NLL of ``model`` on samples ``x`` (n, 2) of ``data``, with the floor and the gap (see above).

    Returns {"nll", "nll_stderr", "floor", "floor_stderr", "gap", "gap_stderr"} in nats (floats); everything in
    float64, the model evaluated without gradients in chunks of ``chunk`` samples.
    """
    ds = toy2d.get(data)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"evaluate_2d needs at least 2 held-out samples (for a standard error), got {n}.")
    with torch.no_grad():
        log_q = torch.cat([model.log_prob(c).double() for c in x.split(chunk)])
    log_p = ds.log_prob(x.double())
    diff = log_p - log_q
    root_n = math.sqrt(n)
    return {"nll": float(-log_q.mean()), "nll_stderr": float(log_q.std() / root_n),
            "floor": float(-log_p.mean()), "floor_stderr": float(log_p.std() / root_n),
            "gap": float(diff.mean()), "gap_stderr": float(diff.std() / root_n)}
