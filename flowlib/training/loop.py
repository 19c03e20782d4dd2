"""A model-agnostic maximum-likelihood training loop.

The loss is the negative mean log-likelihood, -1/B sum_i log q(x_i) (minimised; equivalently, maximum likelihood,
or minimising KL(p_data || q) up to the data's own entropy). The loop knows nothing about the model but
``model.log_prob``; everything else (live plots, evaluation, checkpoints) is a callback.

A non-finite loss or gradient stops training with ``NonFiniteLossError`` and a message: a step is never skipped
silently. When the data are finite but a parameter or an activation deep inside the model is not (weights blown up by
too large a step), the error is ``NonFiniteActivationError``, a ``NonFiniteLossError`` that names the step and
suggests a lower learning rate or a warm-up, instead of a layer's input error that would blame the data. Ctrl-C (KeyboardInterrupt) stops cleanly: the model keeps the weights of the last finished step and the
history so far is returned, marked ``interrupted``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from flowlib.core import FlowInputError, FlowNumericalError


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient."""


class NonFiniteActivationError(NonFiniteLossError):
    """A parameter or an activation inside the model became NaN or infinite during training (the data were finite)."""


@dataclass
class History:
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    extra: dict[str, list] = field(default_factory=dict)

    def log(self, name: str, step: int, value: float) -> None:
        """Record an extra series (e.g. a validation NLL) as ``extra[name] = [(step, value), ...]``."""
        self.extra.setdefault(name, []).append((step, value))


class Callback(Protocol):
    def __call__(self, step: int, loss: float, model: nn.Module, history: History) -> None: ...


ACCEPTS = ("a tensor of samples (B, ...), a function n -> batch of n samples (e.g. toy2d.get('moons').sample), "
           "or a non-empty iterable of tensor batches (e.g. a DataLoader)")


def _batches(data, batch_size: int, generator: torch.Generator) -> Callable[[], Tensor]:
    """A function that returns the next training batch, for a tensor, a sampler function or an iterable."""
    if isinstance(data, (str, bytes)):
        raise TypeError(f"fit's data must be {ACCEPTS}; got the string {data!r}. For a named 2D density use "
                        f"flowlib.data.toy2d.get({data!r}).sample.")
    if isinstance(data, np.ndarray):  # NumPy data (a dtype the model cannot take is refused by the model, by name)
        data = torch.from_numpy(data)
    if isinstance(data, Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError(f"fit's data tensor is empty (shape {tuple(data.shape)}); it must be {ACCEPTS}.")
        n = data.shape[0]

        def from_tensor() -> Tensor:
            idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
            return data[idx]

        return from_tensor
    if callable(data):
        return lambda: data(batch_size)
    if isinstance(data, Iterable):
        state = {"it": iter(data)}

        def from_iterable() -> Tensor:
            try:
                batch = next(state["it"])
            except StopIteration:  # a new epoch
                state["it"] = iter(data)
                try:
                    batch = next(state["it"])
                except StopIteration:
                    raise ValueError(f"fit's data is an empty iterable (no batch in a whole pass); it must be "
                                     f"{ACCEPTS}.") from None
            batch = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
            if not isinstance(batch, Tensor):
                raise TypeError(f"fit's data yielded a {type(batch).__name__}, not a tensor batch; it must be "
                                f"{ACCEPTS}.")
            return batch

        return from_iterable
    raise TypeError(f"fit's data must be {ACCEPTS}; got a {type(data).__name__}.")


def fit(model: nn.Module, data, steps: int, lr: float = 1e-3, batch_size: int = 256,
        optimizer: torch.optim.Optimizer | None = None, clip_grad: float | None = 10.0,
        callbacks: Iterable[Callback] = (), progress: bool = True, seed: int = 0,
        device: torch.device | str | None = None, scheduler=None, start_step: int = 0,
        history: History | None = None, postfix: Callable[[float], dict] | None = None) -> History:
    """Train ``model`` by maximum likelihood for ``steps`` steps and return the ``History``.

    Args:
        model: anything with ``log_prob(x) -> (B,)`` and parameters.
        data: a tensor of samples (batches drawn at random), a function ``n -> batch`` (fresh samples each step,
            as for the 2D densities) or an iterable of batches (e.g. a DataLoader).
        clip_grad: the maximum gradient norm (None for no clipping).
        callbacks: functions ``cb(step, loss, model, history)`` called after every step.
        scheduler: an optional learning-rate scheduler, stepped after every optimizer step.
        start_step, history: to resume a run: steps are numbered from ``start_step + 1`` and appended to ``history``.
        postfix: ``loss -> {name: text}``, more figures for the progress bar (e.g. bits/dim).

    Under ``torch.distributed`` the loss that is logged and checked is the mean over every process (each process's
    batch being its share of the global batch), so every process sees the same number and stops at the same step.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if not hasattr(model, "log_prob") or not isinstance(model, nn.Module):
        raise TypeError(f"fit's model must be a torch module with log_prob(x) -> (B,), got {type(model).__name__}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters.")
    if optimizer is None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if optimizer is None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    device = torch.device(device) if device is not None else params[0].device
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    next_batch = _batches(data, batch_size, torch.Generator().manual_seed(seed))
    history = history if history is not None else History()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    bar = _progress_bar(steps, enabled=progress and (not distributed or torch.distributed.get_rank() == 0))
    start = time.perf_counter()
    model.train()
    try:
        for step in range(start_step + 1, start_step + steps + 1):
            x = next_batch()
            if not isinstance(x, Tensor):
                raise TypeError(f"fit's data gave a {type(x).__name__}, not a tensor batch; it must be {ACCEPTS}.")
            x = x.to(device)
            try:
                loss = -model.log_prob(x).mean()
            except FlowInputError as e:
                raise _activation_error(e, x, params, step, history) from e
            checked = loss.detach().clone()
            if distributed:
                torch.distributed.all_reduce(checked)
                checked /= torch.distributed.get_world_size()
            if not torch.isfinite(checked):
                raise NonFiniteLossError(
                    f"the loss is {float(checked)} at step {step} (last finite loss: "
                    f"{history.loss[-1] if history.loss else 'none'}). Training stopped; no step was skipped. "
                    f"Try a smaller learning rate (lr={_lr(optimizer)}), a longer warm-up, gradient clipping, or "
                    f"check the data for values outside the model's domain.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = _grad_norm(params, clip_grad)
            if not math.isfinite(grad_norm):
                raise NonFiniteLossError(
                    f"the gradient norm is {grad_norm} at step {step} (loss {float(checked):.4g}). Training stopped "
                    f"before the update; the model keeps the weights of step {step - 1}. Try a smaller learning "
                    f"rate, a longer warm-up or gradient clipping (clip_grad).")
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.step.append(step)
            history.loss.append(float(checked))
            for cb in callbacks:
                cb(step, history.loss[-1], model, history)
            bar.update(1)
            if step % 10 == 0 or step == start_step + steps:
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}", **(postfix(history.loss[-1]) if postfix else {}))
    except KeyboardInterrupt:
        history.interrupted = True
        done = (history.step[-1] if history.step else start_step) - start_step
        print(f"Interrupted after {done} of {steps} steps; the model keeps its latest weights.")
    finally:
        bar.close()
        history.seconds += time.perf_counter() - start
    return history


def _lr(optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def _activation_error(e: Exception, x: Tensor, params: list[Tensor], step: int, history: History) -> Exception:
    """A FlowInputError raised inside the model during training: the data's fault only if the batch itself is bad.

    When the batch is finite but a layer deep inside the model got a NaN or inf, the cause is the training (weights
    blown up by too large a step), not the data: say so, with the step and what to try.
    """
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        return e  # the data really are non-finite: the layer's own message says so
    bad = [i for i, p in enumerate(params) if not bool(torch.isfinite(p).all())]
    if bad:
        what = f"{len(bad)} parameter tensor(s) became NaN or infinite"
    elif isinstance(e, FlowNumericalError) or "non-finite" in str(e):
        what = "an activation inside the model became NaN or infinite (the batch itself is finite)"
    else:
        return e  # an input the model cannot take (shape, dtype, domain): the layer's message names it
    last = history.loss[-1] if history.loss else "none"
    return NonFiniteActivationError(
        f"{what} at step {step} (last finite loss: {last}); the layer reported: {e}. Training diverged: try a "
        f"smaller learning rate, a learning-rate warm-up, or gradient clipping (clip_grad).")


def _grad_norm(params: list[Tensor], clip: float | None) -> float:
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    # enabled=False: no bar at all (fit(progress=False), and every process but the first under torch.distributed)
    return tqdm(total=total, disable=not enabled, desc="training", leave=True)


class KeepBest:
    """A ``fit`` callback: every ``every`` steps, a validation score (lower is better, e.g. bits/dim) recorded in the
    history as ``name``; it keeps a copy of the best weights.

    Small data overfits quickly, so the model to report is the one with the best validation score, not the last
    one: ``keeper.restore(model)`` after training. ``score(model)`` must never look at the test set.
    """

    def __init__(self, score: Callable[[nn.Module], float], every: int = 50, name: str = "val_bpd"):
        if not callable(score):
            raise TypeError(f"KeepBest needs a function model -> validation score, got {type(score).__name__}.")
        self.score, self.every, self.name = score, every, name
        self.best, self.best_step, self.state = math.inf, 0, None

    def __call__(self, step: int, loss: float, model, history) -> None:
        if step % self.every:
            return
        v = float(self.score(model))
        history.log(self.name, step, v)
        if v < self.best:
            self.best, self.best_step = v, step
            self.state = {k: t.detach().clone() for k, t in model.state_dict().items()}

    def restore(self, model) -> None:
        if self.state is None:
            raise RuntimeError(f"no validation score was recorded: train for at least every={self.every} steps.")
        model.load_state_dict(self.state)
