"""The training loop: it learns, it stops loudly on a non-finite loss, and Ctrl-C keeps what was learned."""
from __future__ import annotations

import math

import pytest
import torch

import flowlib as fl
from flowlib.training import NonFiniteLossError, fit


def _gaussian_model():
    return fl.FlowModel(fl.Inverse(fl.Affine(1.0, 0.0, learnable=True)), fl.StandardNormal(1))


def test_fit_recovers_a_gaussian():
    data = 3.0 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(0)) + 2.0
    model = _gaussian_model()
    hist = fit(model, data, steps=600, lr=0.05, progress=False)
    g = model.flow.flow
    assert abs(float(g.scale) - 3.0) < 0.15 and abs(float(g.shift) - 2.0) < 0.15
    assert hist.loss[-1] < hist.loss[0] and len(hist.step) == 600 and hist.seconds > 0
    # the NLL of N(2, 3^2) is 0.5 log(2 pi e 9) = 2.52 nats
    assert abs(hist.loss[-1] - 0.5 * math.log(2 * math.pi * math.e * 9)) < 0.15


def test_fit_accepts_a_sampler_function_and_calls_callbacks():
    seen = []
    fit(_gaussian_model(), lambda n: torch.randn(n, 1), steps=5, progress=False,
        callbacks=[lambda step, loss, model, h: seen.append(step)])
    assert seen == [1, 2, 3, 4, 5]


def test_non_finite_loss_stops_with_a_message():
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def log_prob(self, x):
            return self.w * torch.full((x.shape[0],), float("nan"))

    with pytest.raises(NonFiniteLossError, match="step 1.*no step was skipped"):
        fit(Exploding(), torch.randn(10, 1), steps=3, progress=False)


def test_keyboard_interrupt_keeps_history():
    def stop_at_3(step, loss, model, history):
        if step == 3:
            raise KeyboardInterrupt

    hist = fit(_gaussian_model(), torch.randn(10, 1), steps=10, progress=False, callbacks=[stop_at_3])
    assert hist.interrupted and hist.step == [1, 2, 3]


@pytest.mark.parametrize("steps", [0, -1, 2.5])
def test_bad_step_counts(steps):
    with pytest.raises(ValueError, match="positive integer"):
        fit(_gaussian_model(), torch.randn(10, 1), steps=steps, progress=False)
