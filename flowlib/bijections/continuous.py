"""Continuous-time flows, trained by flow matching (lesson 08's first look beyond discrete layers).

A velocity field v(x, t) defines a flow by an ODE, dx/dt = v(x, t), t from 0 (noise) to 1 (data). Sampling solves
it forward from z ~ N(0, I); the density solves it backward with the instantaneous change of variables
(Chen et al. 2018, "Neural ordinary differential equations"; Grathwohl et al. 2019, FFJORD):

    d/dt log|det dx_t/dx_0| = div v(x_t, t) = sum_i dv_i/dx_i,
    so for x = x_1 and z = x_0:   log|det dz/dx| = - integral_0^1 div v(x_t, t) dt.

Here the ODE is solved by fixed-step fourth-order Runge-Kutta on the augmented state (x, log-det), and the
divergence is exact (one autograd pass per dimension: fine in 2D, the reason FFJORD estimated it in high D). The
log-det is the integral's RK4 estimate, not the log-det of the discrete RK4 map: the two agree to the solver's
error, which the registry's brute-force check bounds (more steps, smaller error).

Training by flow matching (Lipman et al. 2023; Liu et al. 2023, "rectified flow"; Albergo & Vanden-Eijnden 2023)
needs no ODE solve at all: draw x_0 ~ N(0, I), x_1 from the data, t ~ U(0, 1), put x_t = (1 - t) x_0 + t x_1 on the
straight line between them, and regress v(x_t, t) on the line's velocity x_1 - x_0:

    loss = E || v(x_t, t) - (x_1 - x_0) ||^2.

Its minimiser is the velocity whose flow carries N(0, I) to the data distribution (the conditional expectation of
x_1 - x_0 given x_t). One regression step costs one network evaluation, however long the ODE.

A check with a known answer: the linear field v(x) = A x + b carries N(0, I) to N(m, e^A e^{A^T}) with
m = integral_0^1 e^{A s} ds b, exactly (``LinearVelocity.exact_log_prob``).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from flowlib.core import Flow
from flowlib.nets import MLP


class VelocityMLP(nn.Module):
    """v(x, t): an MLP on (x, t) -> (B, D). Time enters as t and (sin, cos)(2 pi t), a small Fourier feature."""

    def __init__(self, dim: int = 2, hidden: int = 64, layers: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim = dim
        self.net = MLP(dim + 3, dim, hidden=hidden, layers=layers, activation=activation, zero_last=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:  # (B, D), (B,) -> (B, D)
        t = t.reshape(-1, 1).to(x.dtype).expand(x.shape[0], 1)
        feats = torch.cat([x, t, torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t)], 1)
        return self.net(feats)


class LinearVelocity(nn.Module):
    """v(x, t) = A x + b, constant in time. div v = trace(A). Its flow of N(0, I) is a Gaussian, known exactly."""

    def __init__(self, A, b):
        super().__init__()
        self.A = nn.Parameter(torch.as_tensor(A, dtype=torch.get_default_dtype()).clone())
        self.b = nn.Parameter(torch.as_tensor(b, dtype=torch.get_default_dtype()).clone())
        if self.A.dim() != 2 or self.A.shape[0] != self.A.shape[1] or self.b.shape != (self.A.shape[0],):
            raise ValueError(f"LinearVelocity needs a square A (D, D) and b (D,), got {tuple(self.A.shape)} and "
                             f"{tuple(self.b.shape)}.")
        self.dim = self.A.shape[0]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x @ self.A.to(x.dtype).T + self.b.to(x.dtype)

    def exact_log_prob(self, x: Tensor) -> Tensor:
        """log q_1(x) of x_1 = flow of x_0 ~ N(0, I) to t = 1: N(m, e^A e^{A^T}), in closed form.

        m = int_0^1 e^{A s} ds b is the last column of exp([[A, b], [0, 0]]) (Van Loan's block trick), exact even for
        a singular A."""
        A, b = self.A.detach().double(), self.b.detach().double()
        d = A.shape[0]
        block = torch.zeros(d + 1, d + 1, dtype=torch.float64)
        block[:d, :d], block[:d, d] = A, b
        E = torch.matrix_exp(block)
        eA, m = E[:d, :d], E[:d, d]
        cov = eA @ eA.T
        dist = torch.distributions.MultivariateNormal(m, covariance_matrix=cov)
        return dist.log_prob(x.double()).to(x.dtype)


def divergence(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(v(x, t), div v(x, t)) with the exact divergence, one autograd pass per dimension.

    Works under ``torch.no_grad`` too. When ``x`` is part of a graph (training by likelihood, a Jacobian check), the
    divergence keeps its graph (create_graph) so that it can itself be differentiated.
    """
    track = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in _params(velocity)))
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        v = velocity(xg, t)
        div = x.new_zeros(x.shape[0])
        for i in range(x.shape[1]):
            div = div + torch.autograd.grad(v[:, i].sum(), xg, create_graph=track, retain_graph=True)[0][:, i]
    if not track:
        v, div = v.detach(), div.detach()
    return v, div


def _params(module) -> list[Tensor]:
    return list(module.parameters()) if isinstance(module, nn.Module) else []


def rk4(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, t0: float, t1: float, steps: int,
        with_logdet: bool = True, trajectory: bool = False):
    """Solve dx/dt = v(x, t) from t0 to t1 by ``steps`` RK4 steps, with l' = div v alongside (if ``with_logdet``).

    Returns (x(t1), l) where l = integral_{t0}^{t1} div v dt (zeros if not asked for), and the list of states if
    ``trajectory``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the ODE solver needs a positive integer number of steps, got {steps!r}.")
    h = (t1 - t0) / steps
    logdet = x.new_zeros(x.shape[0])
    states = [x]

    def f(xv: Tensor, tv: float) -> tuple[Tensor, Tensor]:
        t = torch.full((xv.shape[0],), tv, dtype=xv.dtype, device=xv.device)
        if with_logdet:
            return divergence(velocity, xv, t)
        return velocity(xv, t), xv.new_zeros(xv.shape[0])

    for k in range(steps):
        t = t0 + k * h
        k1, d1 = f(x, t)
        k2, d2 = f(x + 0.5 * h * k1, t + 0.5 * h)
        k3, d3 = f(x + 0.5 * h * k2, t + 0.5 * h)
        k4, d4 = f(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        logdet = logdet + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
        if trajectory:
            states.append(x)
    return (x, logdet, states) if trajectory else (x, logdet)


class ContinuousFlow(Flow):
    """The flow of an ODE dx/dt = v(x, t) on t in [0, 1]: data x = x(1), latent z = x(0) ~ N(0, I).

    forward (data -> latent): solve from t = 1 back to t = 0; log|det dz/dx| = -int_0^1 div v dt.
    inverse (latent -> data): solve from t = 0 to t = 1;  log|det dx/dz| = +int_0^1 div v dt.
    Both by ``steps`` fixed RK4 steps (4 evaluations of v and of its divergence each). Shapes (B, D).
    """

    def __init__(self, velocity: nn.Module, dim: int | None = None, steps: int = 32):
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}.")
        self.velocity, self.steps = velocity, steps
        dim = dim if dim is not None else getattr(velocity, "dim", None)
        if dim is None:
            raise ValueError("ContinuousFlow needs the dimension D: pass dim=... or give the velocity a .dim.")
        self.event_shape = (int(dim),)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, integral = rk4(self.velocity, x, 1.0, 0.0, self.steps)  # the integral from 1 to 0 is minus int_0^1
        return z, integral

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return rk4(self.velocity, z, 0.0, 1.0, self.steps)

    def extra_repr(self) -> str:
        return f"dim={self.event_shape[0]}, steps={self.steps} (RK4)"


def flow_matching_loss(velocity: nn.Module, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The conditional flow-matching loss on a batch of data x1 (B, D): mean || v(x_t, t) - (x_1 - x_0) ||^2."""
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device)
    t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype).to(x1.device)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    return (velocity(xt, t) - (x1 - x0)).pow(2).sum(1).mean()


def train_flow_matching(velocity: nn.Module, sampler: Callable[[int], Tensor], steps: int, batch_size: int = 256,
                        lr: float = 2e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Fit ``velocity`` by flow matching on fresh batches ``sampler(batch_size)``; returns the loss per step."""
    from tqdm.auto import tqdm

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(velocity.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    velocity.train()
    for _ in tqdm(range(steps), desc="flow matching", disable=not progress):
        loss = flow_matching_loss(velocity, sampler(batch_size), g)
        if not torch.isfinite(loss):
            raise RuntimeError(f"the flow-matching loss became {float(loss)} after {len(losses)} steps; "
                               f"try a smaller learning rate (lr={lr}).")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses
