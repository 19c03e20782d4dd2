"""A RealNVP (or NICE) flow for vectors: a stack of coupling layers whose masks alternate.

    f = [scale] o c_K o ... o c_2 o c_1        (data -> latent; c_1 acts first)

Why alternate: a coupling copies its passed-through coordinates unchanged. If every layer passed the same half
through, that half would leave the stack exactly as it came in (z_p = x_p), and the model's density of x_p would be
the base density; the layers must take turns, so that every coordinate is transformed and can depend on every other.

The optional last layer is an element-wise affine map with a learned scale per coordinate. NICE needs it: additive
couplings preserve volume, so without it the model could not even change the data's overall spread (Dinh et al.
2014, section 3.3). It is kept for the affine version too, so the two differ only in their couplings.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .core import Compose, Flow
from .coupling import AdditiveCoupling, AffineCoupling
from .elementwise import Affine
from .masks import alternating_mask, flip, half_mask, random_mask

MASK_KINDS = ("alternating", "half", "random", "same")


def coupling_masks(dim: int, num_couplings: int, kind: str = "alternating",
                   generator: torch.Generator | None = None) -> list[Tensor]:
    """The schedule of masks of a stack: which mask (1 = passed through) each of the ``num_couplings`` layers uses.

    ``kind`` names the schedule, not a single mask (those are in ``flowlib.masks``). Every kind but "same" flips
    the mask from one layer to the next, so the layers take turns:

    - "alternating": ``alternating_mask`` (1 0 1 0 ...), then its flip (0 1 0 1 ...), and so on;
    - "half": ``half_mask`` (1 1 0 0), then its flip (0 0 1 1), and so on;
    - "random": a fresh ``random_mask`` for every pair of layers, then its flip;
    - "same": ``half_mask`` in EVERY layer, never flipped (the mistake lesson 04 demonstrates).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}.")
    if kind == "same":
        return [half_mask(dim) for _ in range(num_couplings)]
    masks = []
    for k in range(num_couplings):
        if k % 2:
            masks.append(flip(masks[-1]))
        elif kind == "alternating":
            masks.append(alternating_mask(dim))
        elif kind == "half":
            masks.append(half_mask(dim))
        else:
            masks.append(random_mask(dim, generator))
    return masks


def make_realnvp(dim: int, num_couplings: int = 8, hidden: int = 64, layers: int = 2,
                 coupling: str = "affine", masks: str | Sequence[Tensor] = "alternating",
                 final_scale: bool = True, activation: str = "relu", bound: float = 2.0,
                 generator: torch.Generator | None = None) -> Compose:
    """A ``Compose`` of ``num_couplings`` coupling layers on vectors of size ``dim`` (event shape ``(dim,)``).

    Args:
        coupling: "affine" (RealNVP) or "additive" (NICE).
        masks: a kind understood by ``coupling_masks`` or an explicit list of ``num_couplings`` masks of shape
            ``(dim,)`` (1 = passed through).
        hidden, layers, activation: each conditioner is an ``MLP`` with zero-initialised last layer.
        final_scale: end with a learned element-wise ``Affine`` (needed by NICE; see the module docstring).
        bound: the soft bound on each affine log-scale.
        generator: seeds the random masks.
    """
    if coupling not in ("affine", "additive"):
        raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"a coupling flow needs vectors of dimension >= 2, got dim={dim!r}.")
    if isinstance(masks, str):
        mask_list = coupling_masks(dim, num_couplings, masks, generator)
    else:
        mask_list = list(masks)
        if len(mask_list) != num_couplings:
            raise ValueError(f"got {len(mask_list)} masks for num_couplings={num_couplings}.")
        for i, m in enumerate(mask_list):
            if tuple(m.shape) != (dim,):
                raise ValueError(f"mask {i} has shape {tuple(m.shape)} but the data has shape ({dim},): a mask "
                                 f"must have the shape of one sample.")
    layers_: list[Flow] = []
    for m in mask_list:
        if coupling == "affine":
            layers_.append(AffineCoupling(m, hidden=hidden, layers=layers, activation=activation, bound=bound))
        else:
            layers_.append(AdditiveCoupling(m, hidden=hidden, layers=layers, activation=activation))
    if final_scale:
        layers_.append(Affine(torch.ones(dim), torch.zeros(dim), learnable=True))
    return Compose(*layers_)


def cosine_lr(optimizer: torch.optim.Optimizer, steps: int):
    """A ``fit`` callback that anneals the learning rate from its start value to 0 over ``steps`` (cosine)."""
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def callback(step, loss, model, history) -> None:
        sched.step()

    return callback


def compare_couplings(data: str = "checkerboard", steps: int = 4000, num_couplings: int = 12, hidden: int = 128,
                      layers: int = 2, lr: float = 2e-3, batch_size: int = 512, n_test: int = 20000,
                      couplings: Sequence[str] = ("additive", "affine"), seed: int = 0,
                      floor_samples: int = 200_000, progress: bool = False) -> list[dict]:
    """Train one RealNVP per coupling kind on the same 2D density with the same budget; held-out NLLs.

    Everything but the coupling is shared: the architecture, the seed of the initial weights, the stream of training
    batches (fresh samples from ``flowlib.toy2d``), Adam with a cosine-annealed learning rate, the number of steps
    and the held-out set. Returns one row per coupling: held-out NLL (nats) with its standard error, the data's
    floor (its entropy, the lowest NLL any model can reach), the gap to it, parameters and seconds.
    """
    from . import toy2d
    from .distributions import StandardNormal
    from .models import FlowModel
    from .train import fit

    ds = toy2d.get(data)
    test = ds.sample(n_test, seed=10_000 + seed)
    floor = ds.entropy(n=floor_samples).value  # exact for the checkerboard (ln 32), else Monte Carlo
    rows = []
    for kind in couplings:
        torch.manual_seed(seed)
        model = FlowModel(make_realnvp(2, num_couplings, hidden, layers, coupling=kind), StandardNormal(2))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        hist = fit(model, ds.sampler(seed=seed), steps, batch_size=batch_size, optimizer=opt,
                   callbacks=[cosine_lr(opt, steps)], progress=progress, seed=seed)
        with torch.no_grad():
            nll = -model.log_prob(test).double()
        rows.append({"coupling": kind, "data": data, "test_nll": float(nll.mean()),
                     "stderr": float(nll.std() / math.sqrt(len(nll))), "floor": floor,
                     "gap": float(nll.mean()) - floor, "steps": steps, "seconds": hist.seconds,
                     "params": sum(p.numel() for p in model.parameters()), "model": model})
    return rows
