"""A model-agnostic maximum-likelihood training loop.

The loss is the negative mean log-likelihood, -1/B sum_i log q(x_i) (minimised; equivalently, maximum likelihood,
or minimising KL(p_data || q) up to the data's own entropy). The loop knows nothing about the model but
``model.log_prob``; everything else (live plots, evaluation, checkpoints) is a callback.

A non-finite loss or gradient stops training with ``NonFiniteLossError`` and a message: a step is never skipped
silently. Ctrl-C (KeyboardInterrupt) stops cleanly: the model keeps the weights of the last finished step and the
history so far is returned, marked ``interrupted``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import torch
from torch import Tensor, nn


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient."""


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


def _batches(data, batch_size: int, generator: torch.Generator) -> Callable[[], Tensor]:
    """A function that returns the next training batch, for a tensor, a sampler function or an iterable."""
    if isinstance(data, Tensor):
        if data.shape[0] == 0:
            raise ValueError("the training data is empty.")
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
                batch = next(state["it"])
            return batch[0] if isinstance(batch, (tuple, list)) else batch

        return from_iterable
    raise TypeError(f"data must be a tensor, a function n -> batch, or an iterable of batches; got {type(data)}.")


def fit(model: nn.Module, data, steps: int, lr: float = 1e-3, batch_size: int = 256,
        optimizer: torch.optim.Optimizer | None = None, clip_grad: float | None = 10.0,
        callbacks: Iterable[Callback] = (), progress: bool = True, seed: int = 0,
        device: torch.device | str | None = None, scheduler=None, start_step: int = 0,
        history: History | None = None) -> History:
    """Train ``model`` by maximum likelihood for ``steps`` steps and return the ``History``.

    Args:
        model: anything with ``log_prob(x) -> (B,)`` and parameters.
        data: a tensor of samples (batches drawn at random), a function ``n -> batch`` (fresh samples each step,
            as for the 2D densities) or an iterable of batches (e.g. a DataLoader).
        clip_grad: the maximum gradient norm (None for no clipping).
        callbacks: functions ``cb(step, loss, model, history)`` called after every step.
        scheduler: an optional learning-rate scheduler, stepped after every optimizer step.
        start_step, history: to resume a run: steps are numbered from ``start_step + 1`` and appended to ``history``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters.")
    device = torch.device(device) if device is not None else params[0].device
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    next_batch = _batches(data, batch_size, torch.Generator().manual_seed(seed))
    history = history if history is not None else History()
    bar = _progress_bar(steps, enabled=progress)
    start = time.perf_counter()
    model.train()
    try:
        for step in range(start_step + 1, start_step + steps + 1):
            x = next_batch().to(device)
            loss = -model.log_prob(x).mean()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the loss is {float(loss)} at step {step} (last finite loss: "
                    f"{history.loss[-1] if history.loss else 'none'}). Training stopped; no step was skipped. "
                    f"Try a smaller learning rate (lr={lr}), gradient clipping, or check the data for values outside "
                    f"the model's domain.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = _grad_norm(params, clip_grad)
            if not math.isfinite(grad_norm):
                raise NonFiniteLossError(
                    f"the gradient norm is {grad_norm} at step {step} (loss {float(loss):.4g}). Training stopped "
                    f"before the update; the model keeps the weights of step {step - 1}. Try a smaller learning "
                    f"rate or gradient clipping (clip_grad).")
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.step.append(step)
            history.loss.append(float(loss.detach()))
            for cb in callbacks:
                cb(step, history.loss[-1], model, history)
            bar.update(1)
            if step % 10 == 0 or step == start_step + steps:
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    except KeyboardInterrupt:
        history.interrupted = True
        done = (history.step[-1] if history.step else start_step) - start_step
        print(f"Interrupted after {done} of {steps} steps; the model keeps its latest weights.")
    finally:
        bar.close()
        history.seconds += time.perf_counter() - start
    return history


def _grad_norm(params: list[Tensor], clip: float | None) -> float:
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    # In fast mode (the test suite) the bar would only add noise to logs.
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
