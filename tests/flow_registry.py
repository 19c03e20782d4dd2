"""The registry of every flow in flowlib: each case builds a fresh flow and example inputs in its domain.

tests/test_flows.py runs every brute-force check of flowlib.testing over every case, and fails if a Flow subclass
defined anywhere in flowlib has no case whose top-level flow is of that class. Adding a flow means adding a case.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import flowlib as fl
from flowlib.core import Flow


@dataclass
class Case:
    name: str
    make: Callable[[], Flow]  # a fresh, seeded flow (called several times: it must build the same flow each time)
    sample: Callable[[int], torch.Tensor]  # n -> example inputs of forward, inside its domain
    structure: str | None = None  # "diagonal", "lower" or "upper" Jacobian, checked when given
    order: Callable[[Flow], torch.Tensor] | None = None  # variable ordering for the triangular check
    atol: float = 1e-6  # log-det tolerance (float64)


CASES: dict[str, Case] = {}


def case(name: str, make: Callable[[], Flow], sample: Callable[[int], torch.Tensor], **kw) -> None:
    if name in CASES:
        raise ValueError(f"duplicate registry case {name!r}")
    CASES[name] = Case(name, make, sample, **kw)


def seeded(make: Callable[[], Flow], seed: int = 0) -> Callable[[], Flow]:
    def build() -> Flow:
        torch.manual_seed(seed)
        return make()

    return build


def normal(*shape: int, scale: float = 1.0, seed: int = 1) -> Callable[[int], torch.Tensor]:
    def sample(n: int) -> torch.Tensor:
        return scale * torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))

    return sample


def unit_interval(*shape: int, seed: int = 2) -> Callable[[int], torch.Tensor]:
    def sample(n: int) -> torch.Tensor:
        return 0.02 + 0.96 * torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))

    return sample


def positive(*shape: int, seed: int = 3) -> Callable[[int], torch.Tensor]:
    def sample(n: int) -> torch.Tensor:
        return torch.exp(torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)))

    return sample


def _trained_monotone() -> Flow:
    # Move the parameters away from their initial values so the check sees real bumps, not a near-identity.
    f = fl.MonotoneTanh(num_bumps=4)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.7 * torch.randn(p.shape))
    return f


# ---- core ---------------------------------------------------------------------------------------------------------
case("Compose", seeded(lambda: fl.Compose(fl.Affine(2.0, 1.0), fl.SinhArcsinh(0.3, 1.5), fl.Affine(-0.5, 0.2))),
     normal(3), structure="diagonal")
case("Inverse", seeded(lambda: fl.Inverse(fl.SinhArcsinh(0.5, 0.7))), normal(3), structure="diagonal")

# ---- elementwise --------------------------------------------------------------------------------------------------
case("Affine", seeded(lambda: fl.Affine(torch.tensor([2.0, -0.5, 3.0]), torch.tensor([1.0, 0.0, -2.0]))),
     normal(3), structure="diagonal")
case("Affine-learnable", seeded(lambda: fl.Affine(-1.5, 0.3, learnable=True)), normal(2, 2), structure="diagonal")
case("Sigmoid", seeded(fl.Sigmoid), normal(3, scale=2.0), structure="diagonal")
case("Logit", seeded(fl.Logit), unit_interval(3), structure="diagonal")
case("Exp", seeded(fl.Exp), normal(3), structure="diagonal")
case("SinhArcsinh", seeded(lambda: fl.SinhArcsinh(skew=0.4, tailweight=1.7, learnable=True)), normal(3),
     structure="diagonal")
case("MonotoneTanh", seeded(_trained_monotone), normal(3, scale=2.0), structure="diagonal")
