"""The one abstraction of flowlib: an invertible map with a log-determinant.

Convention (used everywhere in the course):

    forward(x) -> (z, logdet)   data -> latent,  logdet = log|det dz/dx|   shape (B,)
    inverse(z) -> (x, logdet)   latent -> data,  logdet = log|det dx/dz|   shape (B,)

so that, for the same pair of points, the two log-dets sum to zero. The first dimension of every tensor is the batch.

Shapes. Every flow says what it does to the shape of one sample: ``forward_shape(shape)`` and
``inverse_shape(shape)`` return the output shape or raise a ``FlowInputError`` naming the shape expected. A leaf
declares ``event_shape`` (its input) and, if it changes the shape, ``latent_shape`` (its output), or overrides the
two methods (a squeeze of any image); ``Compose`` and ``Inverse`` derive theirs from their children.

Checks, once. A subclass implements ``_forward`` and ``_inverse``; the public ``forward``/``inverse`` check the input
and the output contract at the OUTERMOST call only: a flow called inside another flow runs unchecked. Checked are the
input's type, dtype and shape, the map's domain, and the finiteness of the input and of everything the call returns
(so an overflow such as ``Exp()`` of 100 in float32, or a layer deep inside a stack that meets values outside its
domain, is an error, not a silent inf or NaN). The finiteness test of input and outputs together costs one device
synchronisation per call, whatever the depth of the stack; a map with a domain (``Logit``, ``Exp.inverse``, ...)
adds one when it is the outermost flow. Only when that test fails is the call run again layer by layer, with every
layer checked, to name the layer at fault. ``checks(False)`` turns all of this off for a hot GPU loop.

Dtypes (the policy, stated once). A flow computes in the dtype of its own parameters and buffers. At the outermost
call a floating input of another dtype is cast to it: float64 data (what NumPy gives) into a float32 model just works,
with one warning per model that precision is lost (``model.double()`` keeps it); float16/bfloat16 data, or float32
data into a model moved to ``.double()``, is cast up silently. Outputs and log-dets come in the model's dtype.
Integer and bool inputs are refused with a ``FlowInputError`` that names the dtype and the fix (``x.float()``; for
integer pixels ``flowlib.images.dequantize``, which adds the noise the likelihood needs).

References: Dinh et al. 2014 (NICE), Rezende & Mohamed 2015, Papamakarios et al. 2021 (review, sections 2-3).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

_CHECKS_ENABLED = True
_STATE = threading.local()  # depth: how many flow calls are running; diagnosing: check every layer


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


class FlowNumericalError(FlowInputError):
    """Finite inputs gave non-finite outputs: an overflow, or a layer inside a stack met values outside its domain.

    A subclass of ``FlowInputError`` (every bad-input error is one); during training it usually means the parameters
    diverged, and the message says so."""


def _all_finite(*tensors: Tensor) -> bool:
    """One device synchronisation for all of ``tensors`` (tests count the calls of this function)."""
    ok = torch.isfinite(tensors[0]).all()
    for t in tensors[1:]:
        ok = ok & torch.isfinite(t).all()
    return bool(ok)


def _depth() -> int:
    return getattr(_STATE, "depth", 0)


def _diagnosing() -> bool:
    return getattr(_STATE, "diagnosing", False)


@contextlib.contextmanager
def _inside() -> Iterator[None]:
    _STATE.depth = _depth() + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


def _caller_level() -> int:
    """The stack level of the first frame outside flowlib and torch.nn, so a warning points at the user's line."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(here) or "torch" + os.sep + "nn" in
                                 frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def _fmt(shape: Sequence[int]) -> str:
    return "(B, " + ", ".join(map(str, shape)) + ")" if len(shape) else "(B,)"


class Flow(nn.Module):
    """Base class of every invertible map in flowlib.

    Attributes a subclass may set:
        event_shape: the shape of one data sample (without the batch dimension), or ``None`` for "any shape"
            (element-wise maps).
        latent_shape: the shape of one latent sample when it differs from ``event_shape`` (a reshape, a multi-scale
            flow with a flat latent). A flow whose output shape depends on its input shape overrides
            ``forward_shape`` and ``inverse_shape`` instead.
    """

    event_shape: tuple[int, ...] | None = None
    latent_shape: tuple[int, ...] | None = None

    # ---- shapes -----------------------------------------------------------------------------------------------------
    def forward_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of ``forward``'s output for one sample of ``shape``; ``FlowInputError`` if it does not fit."""
        shape = _shape(shape)
        if self.event_shape is not None and shape != _shape(self.event_shape):
            raise FlowInputError(f"{self._name()}.forward expected x of shape {_fmt(self.event_shape)} (a batch of "
                                 f"samples of shape {_shape(self.event_shape)}), got {_fmt(shape)}.")
        return _shape(self.latent_shape) if self.latent_shape is not None else shape

    def inverse_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of ``inverse``'s output for one latent sample of ``shape``; ``FlowInputError`` if it does not fit."""
        shape = _shape(shape)
        out = self.latent_shape if self.latent_shape is not None else self.event_shape
        if out is not None and shape != _shape(out):
            raise FlowInputError(f"{self._name()}.inverse expected z of shape {_fmt(out)} (a batch of samples of "
                                 f"shape {_shape(out)}), got {_fmt(shape)}.")
        return _shape(self.event_shape) if self.event_shape is not None else shape

    def mixes_batch(self) -> bool:
        """True while this layer deliberately couples the samples of a batch (e.g. an ActNorm in its data-dependent
        initialisation pass: ``return not bool(self.initialized)``). The brute-force batch-independence check then
        runs one forward pass first and checks the layer in its normal mode. Ordinary layers: False."""
        return False

    # ---- the public, checked API ------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent. Returns ``(z, logdet)`` with ``logdet = log|det dz/dx|`` of shape (B,)."""
        return self._call(x, "forward")

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent -> data. Returns ``(x, logdet)`` with ``logdet = log|det dx/dz|`` of shape (B,)."""
        return self._call(z, "inverse")

    def _call(self, v: Tensor, direction: str) -> tuple[Tensor, Tensor]:
        run = self._forward if direction == "forward" else self._inverse
        outermost = _depth() == 0
        check = _CHECKS_ENABLED and (outermost or _diagnosing())
        what = "x" if direction == "forward" else "z"
        if outermost:
            v = self._cast(v, direction, what)
        if check:
            self._check_input(v, direction, what)
            self._check_domain(v, direction)
        with _inside():
            try:
                out, logdet = run(v)
            except FlowInputError:
                raise
            except Exception:
                if check and not _all_finite(v):
                    self._check_finite(v, direction, what)  # a non-finite input is the better explanation
                raise
        if check:
            self._check_output(v, out, logdet, direction)
            if not _all_finite(v, out, logdet):
                self._explain_non_finite(v, out, logdet, direction, what)
        return out, logdet

    # ---- what a subclass writes -------------------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _check_domain(self, v: Tensor, direction: str) -> None:
        """Override to reject values outside the map's domain (e.g. a logit needs values in (0, 1))."""

    # ---- dtype policy -----------------------------------------------------------------------------------------------
    def _own_dtype(self) -> torch.dtype | None:
        for t in self.parameters():
            if t.is_floating_point():
                return t.dtype
        for t in self.buffers():
            if t.is_floating_point():
                return t.dtype
        return None

    def _cast(self, v, direction: str, what: str):
        if not isinstance(v, Tensor) or not v.is_floating_point():
            return v  # refused with the right message by _check_input
        dtype = self._own_dtype()
        if dtype is None or v.dtype == dtype:
            return v
        if torch.finfo(v.dtype).bits > torch.finfo(dtype).bits and not getattr(self, "_warned_dtype", False):
            object.__setattr__(self, "_warned_dtype", True)  # once per model; not part of its state
            warnings.warn(f"{self._name()}.{direction} got {what} in {v.dtype} but computes in {dtype}: the input "
                          f"is cast to {dtype} and loses precision. Pass {what}.to({dtype}) to silence this, or "
                          f"call model.to({v.dtype}) to compute in {v.dtype}.", stacklevel=_caller_level())
        return v.to(dtype)

    # ---- checks -----------------------------------------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    def _check_input(self, v: Tensor, direction: str, what: str) -> None:
        name = self._name()
        if not isinstance(v, Tensor):
            raise FlowInputError(f"{name}.{direction} expected a torch.Tensor {what}, got {type(v).__name__}.")
        if not v.is_floating_point():
            fix = (f"convert it with {what}.float()" if v.dtype == torch.bool else
                   f"for integer pixels use flowlib.images.dequantize({what}) (it adds the uniform noise that makes "
                   f"the likelihood a bound); for other integer data, {what}.float()")
            raise FlowInputError(f"{name}.{direction} expected a floating-point {what} (float32 or float64), got "
                                 f"{v.dtype}; {fix}.")
        if v.dim() < 1:
            raise FlowInputError(
                f"{name}.{direction} expected {what} with a batch dimension, shape (B, ...), got a scalar; "
                f"use {what}.reshape(-1, 1) for a batch of 1D values."
            )
        shape_of = self.forward_shape if direction == "forward" else self.inverse_shape
        try:
            shape_of(tuple(v.shape[1:]))
        except FlowInputError as e:
            if type(self).forward_shape is Flow.forward_shape and type(self).inverse_shape is Flow.inverse_shape:
                expected = self.event_shape if direction == "forward" or self.latent_shape is None else \
                    self.latent_shape
                raise FlowInputError(f"{name}.{direction} expected {what} of shape {_fmt(expected)} (a batch of "
                                     f"samples of shape {_shape(expected)}), got {tuple(v.shape)}.") from None
            raise FlowInputError(f"{name}.{direction} cannot take {what} of shape {tuple(v.shape)}: {e}") from None
        if v.shape[0] == 0:
            raise FlowInputError(f"{name}.{direction} got an empty batch ({what}.shape = {tuple(v.shape)}).")

    def _check_finite(self, v: Tensor, direction: str, what: str) -> None:
        if not _all_finite(v):
            bad = int((~torch.isfinite(v)).sum())
            raise FlowInputError(
                f"{self._name()}.{direction} got {bad} non-finite value(s) (NaN or inf) in {what} of shape "
                f"{tuple(v.shape)}; every value must be finite."
            )

    def _explain_non_finite(self, v: Tensor, out: Tensor, logdet: Tensor, direction: str, what: str) -> None:
        self._check_finite(v, direction, what)
        if not _diagnosing():  # run again with every layer checked, to name the one at fault
            _STATE.diagnosing = True
            try:
                with torch.no_grad():
                    getattr(self, direction)(v)  # nested call: checked at every layer, raises inside
            finally:
                _STATE.diagnosing = False
        bad = "the output" if not _all_finite(out) else "the log-det"
        kind = "inf" if bool(torch.isinf(out).any() | torch.isinf(logdet).any()) else "NaN"
        raise FlowNumericalError(
            f"{self._name()}.{direction} turned finite {what} of shape {tuple(v.shape)} into {kind} in {bad} "
            f"(largest |{what}| = {float(v.abs().max()):.3g}, dtype {v.dtype}): the values overflow this map in "
            f"{v.dtype} or leave its domain. Rescale the data, or compute in float64 (model.double()); during "
            f"training this means the parameters diverged: lower the learning rate or add warm-up."
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

    def forward_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = _shape(shape)
        for i, f in enumerate(self.flows):
            try:
                shape = f.forward_shape(shape)
            except FlowInputError as e:
                raise FlowInputError(f"layer {i + 1} of {len(self.flows)} ({f._name()}) does not fit: {e}") from None
        return shape

    def inverse_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = _shape(shape)
        for i in reversed(range(len(self.flows))):
            f = self.flows[i]
            try:
                shape = f.inverse_shape(shape)
            except FlowInputError as e:
                raise FlowInputError(f"layer {i + 1} of {len(self.flows)} ({f._name()}) does not fit: {e}") from None
        return shape

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        """The input shape the stack fixes: the first declared one, carried back through the layers before it."""
        for i, f in enumerate(self.flows):
            if f.event_shape is not None:
                shape = _shape(f.event_shape)
                for g in reversed(self.flows[:i]):
                    shape = g.inverse_shape(shape)
                return shape
        return None

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """The output shape when the stack fixes one and it differs from ``event_shape``."""
        event = self.event_shape
        if event is None:
            return None
        out = self.forward_shape(event)
        return None if out == event else out

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

    def forward_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return self.flow.inverse_shape(shape)

    def inverse_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return self.flow.forward_shape(shape)

    def mixes_batch(self) -> bool:
        return self.flow.mixes_batch()

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        f = self.flow
        return f.latent_shape if f.latent_shape is not None else f.event_shape

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        return self.flow.event_shape if self.flow.latent_shape is not None else None

    def _name(self) -> str:
        return f"Inverse({self.flow._name()})"

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow.inverse(x)

    def _inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(z)
