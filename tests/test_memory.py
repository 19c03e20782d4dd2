"""flowlib.memory: backprop by the inverse (and by checkpointing) gives ordinary autograd's gradients, keeps ActNorm's
data-dependent start, saves what it promises, and trains with fit, checkpoints and DistributedDataParallel."""
from __future__ import annotations

import copy
import io
import math
import os
import socket

import pytest
import torch

from flowlib.builders import glow, glow_flow
from flowlib.memory import MemorySavingCompose, leaf_steps, needs_initialisation, saved_bytes, set_memory_strategy
from flowlib.training import fit


def _glow(memory, steps=3, seed=0, **kw):
    torch.manual_seed(seed)
    return glow((1, 8, 8), levels=2, steps=steps, hidden=8, memory=memory, **kw).double()


def _pixels(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 8, 8), generator=g).double() + torch.rand(n, 1, 8, 8, generator=g,
                                                                                   dtype=torch.float64)


def _nudge(model, scale=0.05, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _grads(model, x, w_z, w_ld):
    """Gradients of a loss that weighs z and the log-det separately, so both paths of the backward are tested."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    z, logdet = model.flow(x)
    ((z * w_z).sum() + (logdet * w_ld).sum()).backward()
    return x.grad, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("strategy", ["invertible", "checkpoint"])
@pytest.mark.parametrize("mixing", ["lu", "conv"])
def test_gradients_match_ordinary_autograd_in_float64(strategy, mixing):
    ordinary, saving = _glow(None, mixing=mixing), _glow(strategy, mixing=mixing)
    saving.load_state_dict(ordinary.state_dict())
    x = _pixels()
    for m in (ordinary, saving):  # initialise ActNorm the same way, then move away from the tame start
        with torch.no_grad():
            m.flow(x)
        _nudge(m)
    z_shape = ordinary.flow(x)[0].shape
    g = torch.Generator().manual_seed(5)
    w_z, w_ld = torch.randn(z_shape, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    gx_ref, ref = _grads(ordinary, x, w_z, w_ld)
    gx, got = _grads(saving, x, w_z, w_ld)
    assert torch.allclose(gx, gx_ref, rtol=1e-10, atol=1e-12), float((gx - gx_ref).abs().max())
    assert ref.keys() == got.keys()
    for name in ref:
        assert got[name] is not None, f"{name} got no gradient with strategy {strategy}"
        err = float((got[name] - ref[name]).abs().max())
        assert err <= 1e-10 * (1 + float(ref[name].abs().max())), f"{name}: gradient differs by {err:.3g}"


def _nudged_pair(**kw):
    ordinary, saving = _glow(None, **kw), _glow("invertible", **kw)
    saving.load_state_dict(ordinary.state_dict())
    x = _pixels()
    for m in (ordinary, saving):
        with torch.no_grad():
            m.flow(x)
        _nudge(m)
    return ordinary, saving, x


def _largest_gradient_gap(ordinary, saving, x):
    g = torch.Generator().manual_seed(5)
    w_z = torch.randn(6, 64, generator=g, dtype=torch.float64)
    w_ld = torch.randn(6, generator=g, dtype=torch.float64)
    _, ref = _grads(ordinary, x, w_z, w_ld)
    _, got = _grads(saving, x, w_z, w_ld)
    return max(float((got[n] - ref[n]).abs().max()) for n in ref)


def test_a_wrong_backward_would_be_caught():
    # the comparison above can fail: dropping the log-det's path through a step changes the gradients, whether the
    # step's backward goes through the generic recompute (SplitPrior here) or through a registered backward step
    import flowlib.memory as mem
    from flowlib.bijections.normalization import ActNorm

    ordinary, saving, x = _nudged_pair()
    assert _largest_gradient_gap(ordinary, saving, x) < 1e-10
    original = mem._generic_recompute

    def forget_logdet(step, y):
        x_leaf, y_again, logdet = original(step, y)
        return x_leaf, y_again, None  # planted bug: the log-det's gradient is dropped

    mem._generic_recompute = forget_logdet
    try:
        assert _largest_gradient_gap(ordinary, saving, x) > 1e-3
    finally:
        mem._generic_recompute = original
    right = mem._VJP[ActNorm]
    mem._VJP[ActNorm] = lambda step, y, g, g_ld: right(step, y, g, torch.zeros_like(g_ld))  # the same bug
    try:
        assert _largest_gradient_gap(ordinary, saving, x) > 1e-3
    finally:
        mem._VJP[ActNorm] = right


# ---- the registered backward steps, one layer at a time, against autograd through the layer's forward ------------
def _vjp_error(step, vjp, x, seed=7):
    """The largest error of ``vjp`` against ordinary autograd through ``step``'s forward, in float64: the rebuilt
    input, dL/dx and dL/dtheta for a loss that weighs the output and the log-det with random weights."""
    from flowlib.core import _inside

    g = torch.Generator().manual_seed(seed)
    x = x.clone().requires_grad_(True)
    y, logdet = step(x)
    w_y = torch.randn(y.shape, generator=g, dtype=torch.float64)
    w_ld = torch.randn(logdet.shape, generator=g, dtype=torch.float64)
    params = [p for p in step.parameters() if p.requires_grad]
    ref = torch.autograd.grad((y * w_y).sum() + (logdet * w_ld).sum(), [x] + params)
    with torch.no_grad(), _inside():  # as in the backward pass
        x_got, gx_got, param_grads = vjp(step, y.detach(), w_y, w_ld)
    got = dict((id(p), gr) for p, gr in param_grads)
    assert set(got) >= {id(p) for p in params}, "a parameter got no gradient"
    errors = [float((x_got - x.detach()).abs().max()), float((gx_got - ref[0]).abs().max())]
    errors += [float((got[id(p)] - r).abs().max()) / (1 + float(r.abs().max())) for p, r in zip(params, ref[1:])]
    return max(errors)


def _vjp_cases():
    from flowlib.bijections.conv1x1 import InvConv1x1LU
    from flowlib.bijections.glow import GlowCoupling
    from flowlib.bijections.normalization import ActNorm

    return {
        "actnorm_image": (lambda: ActNorm(4, (4, 3, 5)), (6, 4, 3, 5)),
        "actnorm_vector": (lambda: ActNorm(5), (6, 5)),
        "lu_conv_4": (lambda: InvConv1x1LU(4, (4, 3, 5), seed=1), (6, 4, 3, 5)),
        "lu_conv_8": (lambda: InvConv1x1LU(8, (8, 2, 2), seed=2), (6, 8, 2, 2)),
        "coupling_affine": (lambda: GlowCoupling((4, 3, 5), hidden=8), (6, 4, 3, 5)),
        "coupling_additive": (lambda: GlowCoupling((4, 3, 5), hidden=8, kind="additive"), (6, 4, 3, 5)),
    }


def _vjp_case(name):
    import flowlib.memory as mem

    make, shape = _vjp_cases()[name]
    torch.manual_seed(0)
    step = make().double()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        step(x)  # ActNorm's data-dependent start
    _nudge(step, scale=0.3)  # away from the tame start (a zero last layer would hide the network's gradients)
    vjp = next(mem._VJP[c] for c in type(step).__mro__ if c in mem._VJP)
    return step, vjp, x


@pytest.mark.parametrize("name", list(_vjp_cases()))
def test_registered_backward_steps_match_autograd_in_float64(name):
    step, vjp, x = _vjp_case(name)
    assert _vjp_error(step, vjp, x) < 1e-10


@pytest.mark.parametrize("name", ["actnorm_image", "actnorm_vector", "lu_conv_4", "coupling_affine"])
def test_the_backward_step_check_catches_planted_bugs(name):
    step, vjp, x = _vjp_case(name)

    def forgets_logdet(step, y, g, g_ld):  # the log-det's gradient never reaches the parameters
        return vjp(step, y, g, torch.zeros_like(g_ld))

    def mixes_batch_rows(step, y, g, g_ld):  # each sample's input gradient taken from another sample
        x_, gx, param_grads = vjp(step, y, g, g_ld)
        return x_, gx.roll(1, 0), param_grads

    def drops_a_parameter(step, y, g, g_ld):
        x_, gx, param_grads = vjp(step, y, g, g_ld)
        return x_, gx, [(p, torch.zeros_like(gr)) if i == 0 else (p, gr) for i, (p, gr) in enumerate(param_grads)]

    for broken in (forgets_logdet, mixes_batch_rows, drops_a_parameter):
        assert _vjp_error(step, broken, x) > 1e-3, broken.__name__


def test_a_subclass_that_redefines_the_map_gets_the_generic_backward():
    from flowlib.bijections.normalization import ActNorm
    from flowlib.memory import _registered

    class Shifted(ActNorm):  # a different map: the written-out ActNorm backward would be wrong for it
        def _forward(self, x):
            z, logdet = super()._forward(x)
            return z + 1.0, logdet

        def _inverse(self, z):
            return super()._inverse(z - 1.0)

    class Flagged(ActNorm):  # the same map
        pass

    assert _registered(Shifted(3)) == (None, None)
    assert _registered(Flagged(3))[0] is _registered(ActNorm(3))[0] is not None
    torch.manual_seed(0)
    steps = [Shifted(3), Flagged(3)]
    x = torch.randn(5, 3, dtype=torch.float64)
    grads = {}
    for strategy in (None, "invertible"):
        stack = MemorySavingCompose(*copy.deepcopy(steps), strategy=strategy).double()
        z, logdet = stack(x)  # the first call initialises the ActNorms (the same way for both)
        z, logdet = stack(x)
        (z.pow(3).sum() + logdet.sum()).backward()
        grads[strategy] = [p.grad for p in stack.parameters()]
    for a, b in zip(grads[None], grads["invertible"]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_glow_steps_use_their_registered_backward_steps(monkeypatch):
    import flowlib.memory as mem

    seen = []
    def spy(fn):
        def wrapped(step, *args):
            seen.append(type(step).__name__)
            return fn(step, *args)
        return wrapped

    for cls, fn in list(mem._VJP.items()):
        monkeypatch.setitem(mem._VJP, cls, spy(fn))
    _, saving, x = _nudged_pair()
    (-saving.log_prob(x).mean()).backward()
    assert {"ActNorm", "InvConv1x1LU", "GlowCoupling"} <= set(seen)
    assert len(seen) == 2 * 3 * 3  # 2 levels x 3 steps x (ActNorm, 1x1 conv, coupling)


@pytest.mark.parametrize("strategy", ["invertible", "checkpoint"])
def test_actnorm_data_dependent_start_still_happens(strategy):
    ordinary, saving = _glow(None), _glow(strategy)
    assert needs_initialisation(saving)
    x = _pixels(8)
    for m in (ordinary, saving):
        m.train()
        (-m.log_prob(x).mean()).backward()
    assert not needs_initialisation(saving)
    for (n, a), b in zip(ordinary.state_dict().items(), saving.state_dict().values()):
        assert torch.equal(a, b), f"{n} differs after the first training step"
    for (n, p), q in zip(ordinary.named_parameters(), saving.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12), n


def test_saved_bytes_counts_what_autograd_keeps():
    class ExpModel(torch.nn.Module):  # log q(x) = sum_i exp(x_i + w_i): exp saves its output, nothing else is saved
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

        def log_prob(self, x):
            return (x + self.w).exp().sum(1)

    m = ExpModel()
    assert saved_bytes(m, torch.ones(5, 3, dtype=torch.float64)) == 5 * 3 * 8
    assert torch.allclose(m.w.grad, torch.full((3,), -math.e, dtype=torch.float64))  # the loss was backpropagated
    assert saved_bytes(m, torch.ones(5, 3, dtype=torch.float32)) == 5 * 3 * 8  # x + w is promoted to float64
    assert saved_bytes(ExpModel().float(), torch.ones(10, 3)) == 10 * 3 * 4


def test_invertible_strategy_stores_nothing_per_step():
    x = _pixels(4)
    saved = {}
    for memory in (None, "invertible"):
        for k in (2, 8):
            m = _glow(memory, steps=k)
            with torch.no_grad():
                m.flow(x)
            saved[memory, k] = saved_bytes(m, x)
    # ordinary autograd keeps every step's tensors: 4x the depth, more than 3x the bytes
    assert saved[None, 8] > 3 * saved[None, 2]
    # the memory-saving Glow keeps the same tensors whatever the depth (the pre-processing, each level's output)
    assert saved["invertible", 8] == saved["invertible", 2]
    assert saved["invertible", 8] < saved[None, 2]


def test_state_dict_has_the_same_layout_and_loads_across_strategies():
    ordinary, saving = _glow(None), _glow("invertible", seed=9)
    assert list(ordinary.state_dict()) == list(saving.state_dict())
    x = _pixels(4)
    ordinary.train()
    ordinary.log_prob(x)  # initialise
    buf = io.BytesIO()
    torch.save(ordinary.state_dict(), buf)
    buf.seek(0)
    saving.load_state_dict(torch.load(buf, weights_only=True))
    assert not needs_initialisation(saving), "the reloaded ActNorm must not initialise again"
    assert torch.equal(ordinary.log_prob(x), saving.log_prob(x))


def test_set_memory_strategy_and_bad_arguments():
    m = _glow("checkpoint")
    assert set_memory_strategy(m, "invertible") == 2  # one MemorySavingCompose per level
    assert all(s.strategy == "invertible" for s in m.modules() if isinstance(s, MemorySavingCompose))
    with pytest.raises(ValueError, match="memory strategy must be one of"):
        glow((1, 8, 8), levels=1, steps=1, hidden=4, memory="reversible")
    with pytest.raises(ValueError, match="contains no MemorySavingCompose"):
        set_memory_strategy(_glow(None), "invertible")
    with pytest.raises(ValueError, match="memory strategy"):
        MemorySavingCompose(glow_flow((1, 4, 4), levels=1, steps=1, hidden=4), strategy="yes")


def test_leaf_steps_flatten_nested_composes():
    flow = glow_flow((1, 4, 4), levels=1, steps=2, hidden=4, memory="invertible")
    names = [type(f).__name__ for f in leaf_steps(flow.levels[0])]
    assert names == ["Squeeze", "ActNorm", "InvConv1x1LU", "GlowCoupling", "ActNorm", "InvConv1x1LU", "GlowCoupling"]


def test_frozen_parameters_get_no_gradient_and_the_rest_match():
    ordinary, saving = _glow(None), _glow("invertible")
    saving.load_state_dict(ordinary.state_dict())
    x = _pixels()
    for m in (ordinary, saving):
        with torch.no_grad():
            m.flow(x)
        _nudge(m)
        for n, p in m.named_parameters():
            if "log_s" in n:
                p.requires_grad_(False)
        (-m.log_prob(x).mean()).backward()
    for (n, p), q in zip(ordinary.named_parameters(), saving.parameters()):
        if "log_s" in n:
            assert q.grad is None
        else:
            assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12), n


@pytest.mark.parametrize("strategy", ["invertible", "checkpoint"])
def test_training_with_fit_follows_the_ordinary_trajectory(strategy):
    data = _pixels(64, seed=11)
    runs = {}
    for memory in (None, strategy):
        m = _glow(memory)
        h = fit(m, data, steps=5, lr=1e-3, batch_size=16, progress=False, seed=4)
        runs[memory] = (h.loss, m.state_dict())
    assert runs[None][0][-1] < runs[None][0][0]  # it trains
    assert max(abs(a - b) for a, b in zip(runs[None][0], runs[strategy][0])) < 1e-9
    for n, v in runs[None][1].items():
        assert torch.allclose(v.double(), runs[strategy][1][n].double(), atol=1e-9), n


# ---- DistributedDataParallel: two CPU processes (gloo) against one process on the whole batch ---------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _glow("invertible")
        x = _pixels(8)[rank * 4:(rank + 1) * 4]  # this process's half of the batch

        class LogProb(torch.nn.Module):  # DDP wraps forward(): make forward compute the log-likelihood
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, v):
                return self.m.log_prob(v)

        ddp = DDP(LogProb(model))
        (-ddp(x).mean()).backward()  # ActNorm initialises on the global batch (all-reduced statistics)
        if rank == 0:
            torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_with_invertible_backprop_matches_one_process(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "grads.pt"
    # spawn, not fork: a forked child of the test process (which by then holds threads of torch, Playwright and
    # JupyterLab clients) deadlocked in a fresh-clone run; spawn re-imports, slower but safe
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    ddp_grads = torch.load(out, weights_only=True)
    single = _glow(None)
    (-single.log_prob(_pixels(8)).mean()).backward()
    for n, p in single.named_parameters():
        assert torch.allclose(ddp_grads[n], p.grad, rtol=1e-8, atol=1e-10), n


def test_an_inverse_that_overflows_in_backward_is_named_with_a_way_out():
    """Backprop by the inverse rebuilds each step's input from its output. Where that overflows (an ill-conditioned
    step in float32), the backward pass stops naming the step and the alternatives, instead of failing in a later
    layer on values it never made."""
    from flowlib import Affine, FlowNumericalError

    class OverflowingInverse(Affine):  # a planted bug: the inverse loses everything to inf
        def _inverse(self, z):
            x, logdet = super()._inverse(z)
            return x * float("inf"), logdet

    steps = [Affine(2.0, 0.5, learnable=True), OverflowingInverse(3.0, learnable=True), Affine(0.5, learnable=True)]
    stack = MemorySavingCompose(*steps, strategy="invertible")
    x = torch.randn(4, 3)
    z, logdet = stack(x)
    with pytest.raises(FlowNumericalError, match=r"step 2 of 3 \(OverflowingInverse\).*memory='checkpoint'"):
        (z.pow(2).sum() - logdet.sum()).backward()
    ordinary = MemorySavingCompose(*steps, strategy=None)  # storing the activations needs no inverse: it works
    z, logdet = ordinary(x)
    (z.pow(2).sum() - logdet.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in ordinary.parameters())


def test_keep_freed_memory_is_asked_once_by_invertible_training_on_the_cpu(monkeypatch):
    import platform

    import flowlib.memory as mem

    assert mem.keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    calls = []

    def spy():
        calls.append(1)
        mem._kept_freed_memory = True
        return True

    monkeypatch.setattr(mem, "keep_freed_memory", spy)
    for auto, expected in ((False, 0), (True, 1)):
        monkeypatch.setattr(mem, "_kept_freed_memory", None)
        monkeypatch.setattr(mem, "AUTO_KEEP_FREED_MEMORY", auto)
        calls.clear()
        m = _glow("invertible")
        for _ in range(2):
            (-m.log_prob(_pixels(4)).mean()).backward()
        with torch.no_grad():
            m.log_prob(_pixels(4))
        assert len(calls) == expected
    calls.clear()
    monkeypatch.setattr(mem, "_kept_freed_memory", None)
    (-_glow(None).log_prob(_pixels(4)).mean()).backward()  # ordinary autograd leaves the allocator alone
    assert calls == []
