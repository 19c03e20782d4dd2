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
from flowlib.testing import perturb


@dataclass
class Case:
    name: str
    make: Callable[[], Flow]  # a fresh, seeded flow (called several times: it must build the same flow each time)
    sample: Callable[[int], torch.Tensor]  # n -> example inputs of forward, inside its domain
    structure: str | None = None  # "diagonal", "lower" or "upper" Jacobian, checked when given
    order: Callable[[Flow], torch.Tensor] | None = None  # variable ordering for the triangular check
    atol: float = 1e-8  # log-det tolerance (float64): correct flows are at 1e-10 or better, a 1e-6 bug fails
    f32_rtol: float = 1e-4  # float32 vs float64 tolerance (relative); looser only for ill-conditioned inverses
    n: int = 5  # how many samples the checks use (fewer for large flows: the brute-force Jacobian costs D passes)


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
    return perturb(fl.MonotoneTanh(num_bumps=4), 0.7)


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

# ---- coupling (lesson 04) -----------------------------------------------------------------------------------------
from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling  # noqa: E402
from flowlib.bijections.masks import alternating_mask, checkerboard_mask, channel_mask, half_mask  # noqa: E402
from flowlib.builders import make_realnvp, multiscale_realnvp_flow  # noqa: E402


def _nudged(make: Callable[[], Flow], scale: float = 0.3) -> Callable[[], Flow]:
    # A fresh coupling is the identity (zero last layer); nudge every parameter so the checks see a real coupling.
    return lambda: perturb(make(), scale)


def _passed_through_first(flow: Flow) -> torch.Tensor:
    # Order the variables (passed through, transformed): the coupling's Jacobian is then lower-triangular.
    m = flow.mask.reshape(-1)
    return torch.cat([torch.nonzero(m == 1)[:, 0], torch.nonzero(m == 0)[:, 0]])


case("AdditiveCoupling", seeded(_nudged(lambda: AdditiveCoupling(half_mask(4), hidden=16))), normal(4),
     structure="lower", order=_passed_through_first)
case("AffineCoupling", seeded(_nudged(lambda: AffineCoupling(alternating_mask(5), hidden=16))), normal(5),
     structure="lower", order=_passed_through_first)
case("AffineCoupling-sigmoid", seeded(_nudged(lambda: AffineCoupling(half_mask(4), hidden=16, scale="sigmoid"))),
     normal(4), structure="lower", order=_passed_through_first)
case("AffineCoupling-checkerboard-conv", seeded(_nudged(lambda: AffineCoupling(checkerboard_mask(2, 4, 4), hidden=8))),
     normal(2, 4, 4), structure="lower", order=_passed_through_first)
case("AdditiveCoupling-channel-conv", seeded(_nudged(lambda: AdditiveCoupling(channel_mask(2, 3, 3), hidden=8))),
     normal(2, 3, 3), structure="lower", order=_passed_through_first)
case("RealNVP-vector", seeded(_nudged(lambda: make_realnvp(4, num_couplings=4, hidden=16), 0.2)), normal(4))
case("NICE-vector", seeded(_nudged(lambda: make_realnvp(4, num_couplings=4, hidden=16, coupling="additive"), 0.2)),
     normal(4))

# ---- autoregressive and permutations (lessons 02-03) --------------------------------------------------------------
from flowlib.bijections.autoregressive import IAF, MAF  # noqa: E402
from flowlib.bijections.permutations import Permutation, Reverse  # noqa: E402


def _perturbed(flow: Flow, scale: float = 0.3) -> Flow:
    # A fresh MAF is the identity (zero-initialised output); move it so the checks see a real autoregressive map.
    return perturb(flow, scale)


case("MAF", seeded(lambda: _perturbed(MAF(4, hidden=(16, 16)))), normal(4), structure="lower")
case("MAF-shuffled-order", seeded(lambda: _perturbed(MAF(4, hidden=(16,), order=torch.tensor([2, 0, 3, 1])))),
     normal(4), structure="lower", order=lambda f: f.order)
case("MAF-2d-reverse", seeded(lambda: _perturbed(MAF(2, hidden=(8, 8), order="reverse"))), normal(2),
     structure="lower", order=lambda f: f.order)
case("IAF", seeded(lambda: _perturbed(IAF(3, hidden=(16, 16), order=torch.tensor([1, 2, 0])))), normal(3),
     structure="lower", order=lambda f: f.order)
case("Permutation", seeded(lambda: Permutation([2, 0, 3, 1])), normal(4))
case("Reverse", seeded(lambda: Reverse(3)), normal(3))

# ---- rational-quadratic splines (lesson 03's best 2D flow) ---------------------------------------------------------
from flowlib.bijections.splines import RQSpline, SplineMAF  # noqa: E402

# Inputs at scale 2 with bound 2.5: most points inside the spline, some in the identity tails, so both are checked.
case("RQSpline", seeded(lambda: _perturbed(RQSpline(3, bins=5, bound=2.5), 1.0)), normal(3, scale=2.0),
     structure="diagonal")
case("RQSpline-image-shape", seeded(lambda: _perturbed(RQSpline((2, 2, 2), bins=3, bound=2.0), 1.0)),
     normal(2, 2, 2, scale=1.5), structure="diagonal")
# Strongly contracting (log-det about -13 over 4 values): the sequential float32 inverse multiplies rounding errors
# by the inverse Jacobian, so its float32 round trip is off by up to 8e-3 (the forward direction agrees to 4e-6).
case("SplineMAF", seeded(lambda: _perturbed(SplineMAF(4, hidden=(16, 16), bins=6, bound=2.5), 0.5)),
     normal(4, scale=2.0), structure="lower", f32_rtol=2e-2)
case("SplineMAF-shuffled-order", seeded(lambda: _perturbed(SplineMAF(3, hidden=(16,), bins=4, bound=2.5,
                                                                     order=torch.tensor([2, 0, 1])), 0.5)),
     normal(3, scale=2.0), structure="lower", order=lambda f: f.order)
case("SplineMAF-2d-reverse-stack", seeded(lambda: _perturbed(fl.Compose(SplineMAF(2, hidden=(8, 8)),
                                                                        SplineMAF(2, hidden=(8, 8), order="reverse")),
                                                             0.5)), normal(2, scale=2.0))

# ---- images: squeeze, multi-scale, pre-processing (lesson 05) ------------------------------------------------------
from flowlib.images import logit_preprocessing  # noqa: E402
from flowlib.bijections import MultiScale, Reshape, Squeeze  # noqa: E402


def pixels(*shape: int, seed: int = 4) -> Callable[[int], torch.Tensor]:
    def sample(n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, *shape), generator=g).float() + torch.rand((n, *shape), generator=g)

    return sample


case("Squeeze", seeded(lambda: Squeeze((2, 4, 2))), normal(2, 4, 2))
case("Squeeze-any-shape", seeded(Squeeze), normal(1, 2, 6))
case("MultiScale-realnvp", seeded(_nudged(lambda: multiscale_realnvp_flow((1, 8, 8), levels=2, couplings=4,
                                                                          hidden=4), 0.2)), normal(1, 8, 8), n=2)
case("MultiScale-minimal", seeded(_nudged(lambda: MultiScale((2, 2, 2), [Squeeze((2, 2, 2))]))), normal(2, 2, 2))
case("logit-preprocessing", seeded(lambda: logit_preprocessing(256, 0.05)), pixels(1, 2, 2), structure="diagonal")
case("Reshape", seeded(lambda: Reshape((6,), (1, 2, 3))), normal(6))

# ---- stacks that change shape (shapes derived by Compose and Inverse, never guessed) ---------------------------------
case("Compose-squeeze-then-elementwise", seeded(lambda: fl.Compose(Squeeze((1, 4, 4)), fl.Affine(2.0, 0.5),
                                                                   fl.SinhArcsinh(0.3, 1.2))),
     normal(1, 4, 4), structure=None)
case("Inverse-Reshape", seeded(lambda: fl.Inverse(Reshape((8,), (2, 2, 2)))), normal(2, 2, 2))
case("Compose-Inverse-Squeeze-conv", seeded(_nudged(lambda: fl.Compose(
    fl.Inverse(Squeeze((1, 4, 4))), AffineCoupling(checkerboard_mask(1, 4, 4), hidden=4)), 0.3)), normal(4, 2, 2))
case("Compose-MultiScale-inside", seeded(_nudged(lambda: fl.Compose(
    fl.Affine(1.5, -0.2), multiscale_realnvp_flow((1, 8, 4), levels=2, couplings=2, hidden=4), fl.Affine(0.5)), 0.2)),
     normal(1, 8, 4), n=3)

# ---- Glow (lesson 06) ----------------------------------------------------------------------------------------------
from flowlib.bijections import ActNorm, ChannelPermutation, GlowCoupling, InvConv1x1, InvConv1x1LU, SplitPrior  # noqa: E402
from flowlib.builders import glow_flow  # noqa: E402


def _initialised_actnorm(make: Callable[[], Flow], data: Callable[[int], torch.Tensor]) -> Callable[[], Flow]:
    # ActNorm in its normal mode: initialised on another batch (seeded), then nudged so scales differ per channel.
    def build() -> Flow:
        f = make()
        f(data(16) * 2.0 + 0.5)
        return perturb(f, 0.1)

    return build


case("ActNorm-image", seeded(_initialised_actnorm(lambda: ActNorm(3, (3, 2, 2)), normal(3, 2, 2, seed=7))),
     normal(3, 2, 2), structure="diagonal")
case("ActNorm-vector", seeded(_initialised_actnorm(lambda: ActNorm(4), normal(4, seed=7))), normal(4),
     structure="diagonal")
case("InvConv1x1", seeded(_nudged(lambda: InvConv1x1(3, (3, 2, 2), seed=1), 0.2)), normal(3, 2, 2))
case("InvConv1x1LU", seeded(_nudged(lambda: InvConv1x1LU(4, (4, 2, 2), seed=1), 0.2)), normal(4, 2, 2))
case("ChannelPermutation", seeded(lambda: ChannelPermutation.shuffle(4, seed=3)), normal(4, 2, 2))
case("GlowCoupling-affine", seeded(_nudged(lambda: GlowCoupling((4, 2, 2), hidden=8))), normal(4, 2, 2))
case("GlowCoupling-additive", seeded(_nudged(lambda: GlowCoupling((3, 2, 2), hidden=8, kind="additive"))),
     normal(3, 2, 2))
case("SplitPrior", seeded(_nudged(lambda: SplitPrior((4, 2, 2)))), normal(4, 2, 2))
case("Glow-small", seeded(_initialised_actnorm(_nudged(lambda: glow_flow((1, 4, 4), levels=2, steps=2, hidden=4),
                                                       0.1), normal(1, 4, 4, seed=7))), normal(1, 4, 4), n=3)
