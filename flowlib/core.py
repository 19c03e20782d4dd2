"""The one abstraction of flowlib: an invertible map with a log-determinant.

Convention (used everywhere in the course):

    forward(x) -> (z, logdet)   data -> latent,  logdet = log|det dz/dx|   shape (B,)
    inverse(z) -> (x, logdet)   latent -> data,  logdet = log|det dx/dz|   shape (B,)

so that, for the same pair of points, the two log-dets sum to zero. The first dimension of every tensor is the batch.

A subclass implements ``_forward`` and ``_inverse``; the public ``forward``/``inverse`` check the input (a floating
tensor of the expected event shape, finite values, inside the map's domain) and the output contract (a log-det of
shape (B,) on the input's device), so a bug in a new layer is caught where it happens, with a message that names
what was expected. The checks are cheap except for the finiteness test, which needs one device synchronisation;
``checks(False)`` turns them off for a hot GPU loop.

References: Dinh et al. 2014 (NICE), Rezende & Mohamed 2015, Papamakarios et al. 2021 (review, sections 2-3).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

_CHECKS_ENABLED = True


@contextlib.contextmanager
def checks(enabled: bool) -> Iterator[None]:
    """Temporarily turn the input/output contract checks on or off (they are on by default)."""
    global _CHECKS_ENABLED
    previous, _CHECKS_ENABLED = _CHECKS_ENABLED, bool(enabled)
    try:
        yield
    finally:
        _CHECKS_ENABLED = previous


class FlowInputError(ValueError):
    """A flow was given an input it cannot transform (wrong type, dtype, shape, or non-finite values)."""


class Flow(nn.Module):
    """Base class of every invertible map in flowlib.

    Attributes a subclass may set:
        event_shape: the shape of one data sample (without the batch dimension), or ``None`` for "any shape"
            (element-wise maps). Inputs of ``forward`` are checked against it.
        latent_shape: the shape of one latent sample when it differs from ``event_shape`` (a squeeze, a multi-scale
            flow with a flat latent); inputs of ``inverse`` are checked against it.
    """

    event_shape: tuple[int, ...] | None = None
    latent_shape: tuple[int, ...] | None = None

    def _expected_shape(self, direction: str) -> tuple[int, ...] | None:
        if direction == "inverse" and self.latent_shape is not None:
            return self.latent_shape
        return self.event_shape

    # ---- the public, checked API ------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent. Returns ``(z, logdet)`` with ``logdet = log|det dz/dx|`` of shape (B,)."""
        if _CHECKS_ENABLED:
            self._check_input(x, "forward", "x")
            self._check_domain(x, "forward")
        z, logdet = self._forward(x)
        if _CHECKS_ENABLED:
            self._check_output(x, z, logdet, "forward")
        return z, logdet

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent -> data. Returns ``(x, logdet)`` with ``logdet = log|det dx/dz|`` of shape (B,)."""
        if _CHECKS_ENABLED:
            self._check_input(z, "inverse", "z")
            self._check_domain(z, "inverse")
        x, logdet = self._inverse(z)
        if _CHECKS_ENABLED:
            self._check_output(z, x, logdet, "inverse")
        return x, logdet

    # ---- what a subclass writes -------------------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _check_domain(self, v: Tensor, direction: str) -> None:
        """Override to reject values outside the map's domain (e.g. a logit needs values in (0, 1))."""

    # ---- checks -----------------------------------------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    def _check_input(self, v: Tensor, direction: str, what: str) -> None:
        name = self._name()
        if not isinstance(v, Tensor):
            raise FlowInputError(f"{name}.{direction} expected a torch.Tensor {what}, got {type(v).__name__}.")
        if not v.is_floating_point():
            raise FlowInputError(
                f"{name}.{direction} expected a floating-point {what} (float32 or float64), got {v.dtype}; "
                f"convert it with {what}.float()."
            )
        expected = self._expected_shape(direction)
        if expected is not None:
            expected = tuple(expected)
            if v.dim() != len(expected) + 1 or tuple(v.shape[1:]) != expected:
                raise FlowInputError(
                    f"{name}.{direction} expected {what} of shape (B, {', '.join(map(str, expected))}) "
                    f"(a batch of samples of shape {expected}), got {tuple(v.shape)}."
                )
        elif v.dim() < 1:
            raise FlowInputError(
                f"{name}.{direction} expected {what} with a batch dimension, shape (B, ...), got a scalar; "
                f"use {what}.reshape(-1, 1) for a batch of 1D values."
            )
        if v.shape[0] == 0:
            raise FlowInputError(f"{name}.{direction} got an empty batch ({what}.shape = {tuple(v.shape)}).")
        if not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise FlowInputError(
                f"{name}.{direction} got {bad} non-finite value(s) (NaN or inf) in {what} of shape {tuple(v.shape)}; "
                f"every value must be finite."
            )

    def _check_output(self, v_in: Tensor, v_out: Tensor, logdet: Tensor, direction: str) -> None:
        name = self._name()
        if not isinstance(logdet, Tensor) or logdet.shape != (v_in.shape[0],):
            shape = tuple(logdet.shape) if isinstance(logdet, Tensor) else type(logdet).__name__
            raise RuntimeError(
                f"{name}.{direction} broke the Flow contract: the log-det must have shape (B,) = "
                f"({v_in.shape[0]},), got {shape}."
            )
        if logdet.device != v_in.device:
            raise RuntimeError(
                f"{name}.{direction} returned a log-det on {logdet.device} for an input on {v_in.device}."
            )


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: (B, ...) -> (B,)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


class Compose(Flow):
    """A stack of flows applied in order: f = f_K o ... o f_1, so log|det J_f| = sum_k log|det J_{f_k}|.

    ``forward`` runs f_1 first; ``inverse`` runs the inverses in the opposite order. ``trace(x)`` returns every
    intermediate state, which is what the layer-by-layer pictures of the course draw.
    """

    def __init__(self, *flows: Flow):
        super().__init__()
        if len(flows) == 1 and isinstance(flows[0], (list, tuple)):
            flows = tuple(flows[0])
        for i, f in enumerate(flows):
            if not isinstance(f, Flow):
                raise TypeError(f"Compose expects Flow instances; argument {i} is a {type(f).__name__}.")
        self.flows = nn.ModuleList(flows)
        if flows:
            self.event_shape = flows[0].event_shape
            last = flows[-1]
            self.latent_shape = last.latent_shape if last.latent_shape is not None else last.event_shape
            if self.latent_shape == self.event_shape:
                self.latent_shape = None

    def __len__(self) -> int:
        return len(self.flows)

    def __getitem__(self, i: int) -> Flow:
        return self.flows[i]

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])  # on the input's device and dtype
        for f in self.flows:
            x, ld = f(x)
            logdet = logdet + ld
        return x, logdet

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for f in reversed(self.flows):
            z, ld = f.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def trace(self, x: Tensor, direction: str = "forward") -> list[tuple[Tensor, Tensor]]:
        """Every state along the stack: ``[(x_0, 0), (x_1, logdet_1), ..., (x_K, logdet_K)]``.

        ``logdet_k`` is the cumulative log-det of the first k maps. With ``direction="inverse"`` the walk starts
        from a latent and runs the inverses (the sampling direction).
        """
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction must be 'forward' or 'inverse', got {direction!r}.")
        logdet = x.new_zeros(x.shape[0])
        states = [(x, logdet)]
        flows: Sequence[Flow] = list(self.flows) if direction == "forward" else list(reversed(self.flows))
        for f in flows:
            x, ld = f(x) if direction == "forward" else f.inverse(x)
            logdet = logdet + ld
            states.append((x, logdet))
        return states


class Inverse(Flow):
    """The inverse of a flow: ``Inverse(f).forward`` is ``f.inverse`` and vice versa.

    Useful when a map is naturally written in the generative direction (x = g(z)): the flow is ``Inverse(g)``.
    It is also how an inverse autoregressive flow is built from an autoregressive one.
    """

    def __init__(self, flow: Flow):
        super().__init__()
        if not isinstance(flow, Flow):
            raise TypeError(f"Inverse expects a Flow, got {type(flow).__name__}.")
        self.flow = flow
        if flow.latent_shape is not None:
            self.event_shape, self.latent_shape = flow.latent_shape, flow.event_shape
        else:
            self.event_shape = flow.event_shape

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow.inverse(x)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(z)
