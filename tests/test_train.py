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


# ---- the 2D recipe (flowlib.training.toy2d) -------------------------------------------------------------------------
def _small_maf(seed=0):
    from flowlib.builders import maf

    torch.manual_seed(seed)
    return fl.FlowModel(maf(2, num_layers=2, hidden=(16,)), fl.StandardNormal(2))


def test_train_2d_is_adam_with_a_cosine_schedule_on_fresh_samples():
    from flowlib.data import toy2d
    from flowlib.training.toy2d import train_2d

    model = _small_maf()
    hist = train_2d(model, "moons", steps=30, lr=3e-3, batch_size=64, seed=4, progress=False)
    assert len(hist.loss) == 30 and not model.training
    # the same recipe written out by hand gives the same weights, bit for bit
    by_hand = _small_maf()
    opt = torch.optim.Adam(by_hand.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=3e-3 / 50)
    fit(by_hand, toy2d.get("moons").sampler(seed=4), 30, batch_size=64, optimizer=opt, progress=False,
        callbacks=[lambda *a: sched.step()])
    for p, q in zip(model.parameters(), by_hand.parameters()):
        assert torch.equal(p, q)
    assert sched.get_last_lr()[0] == pytest.approx(3e-3 / 50)
    other = _small_maf()
    train_2d(other, toy2d.get("moons"), steps=30, lr=3e-3, batch_size=64, seed=5, progress=False)
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))


def test_evaluate_2d_measures_nll_floor_and_gap_on_the_same_samples():
    from flowlib.data import toy2d
    from flowlib.training.toy2d import evaluate_2d

    ds = toy2d.get("8gaussians")
    x = ds.sample(3000, seed=7)

    class Exact(torch.nn.Module):  # the true density: the gap is exactly 0
        def log_prob(self, v):
            return ds.log_prob(v.double())

    r = evaluate_2d(Exact(), ds, x)
    assert r["gap"] == 0 and r["gap_stderr"] == 0 and r["nll"] == r["floor"]
    log_p = ds.log_prob(x.double())
    assert r["floor"] == pytest.approx(float(-log_p.mean()), abs=1e-12)
    assert r["floor_stderr"] == pytest.approx(float(log_p.std() / math.sqrt(3000)), abs=1e-12)

    normal = fl.FlowModel(fl.Affine(1.0, 0.0), fl.StandardNormal(2))  # a wrong model: a positive gap (KL)
    r = evaluate_2d(normal, "8gaussians", x)
    log_q = normal.log_prob(x).double()
    assert r["nll"] == pytest.approx(float(-log_q.mean()), abs=1e-9)
    assert r["gap"] == pytest.approx(r["nll"] - r["floor"], abs=1e-9) and r["gap"] > 10 * r["gap_stderr"] > 0
    assert evaluate_2d(normal, ds, x, chunk=7) == pytest.approx(r, abs=1e-9)  # chunks change nothing
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_2d(normal, ds, x[:1])
