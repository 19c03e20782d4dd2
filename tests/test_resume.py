"""Interrupted image training resumes exactly: a signal at any point of a step, a SIGKILL, a checkpoint of the first
format, a corrupt checkpoint. The run is the real command on the tiny Glow configuration (ActNorm included)."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import flowlib.training.images as TI
from flowlib.training import checkpoints
from flowlib.training import distributed as scaling

from .tiny_configs import register as register_tiny_configs

register_tiny_configs()
ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "glow-fmnist-tiny"  # 512 training images, batches of 32: 16 steps


_SPLITS: dict = {}


@pytest.fixture
def cached_data(monkeypatch):
    """Load Fashion-MNIST once for all the runs of this module (the runs' own code is unchanged)."""
    real = TI.data_splits

    def data_splits(config, root=None):
        key = repr(config)
        if key not in _SPLITS:
            _SPLITS[key] = real(config, root)
        return _SPLITS[key]

    monkeypatch.setattr(TI, "data_splits", data_splits)


def _weights(path) -> dict:
    return checkpoints.load(path)["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} tensors differ after the resume, e.g. {differ[:3]}"


def _assert_consistent(payload: dict, step: int) -> None:
    """step, history, optimizer and scheduler all say the same number of finished steps."""
    assert payload["step"] == step
    assert payload["history"]["step"] == list(range(1, step + 1))
    adam_steps = {int(s["step"]) for s in payload["optimizer"]["state"].values()}
    assert adam_steps == {step}, f"Adam made {adam_steps} updates, the checkpoint says {step} steps"
    assert payload["scheduler"]["last_epoch"] == step


def _signal_self():
    os.kill(os.getpid(), signal.SIGTERM)


AT_STEP = 3  # the step during which the signal arrives


def _inject_before_forward(monkeypatch, calls):
    real = scaling.Objective.log_prob

    def log_prob(self, x):
        calls.append("forward")
        if len(calls) == AT_STEP:
            _signal_self()
        return real(self, x)

    monkeypatch.setattr(scaling.Objective, "log_prob", log_prob)


def _optimizer_hook(pre: bool):
    def inject(monkeypatch, calls):
        def hook(optimizer, args, kwargs):
            calls.append("step")
            if len(calls) == AT_STEP:
                _signal_self()

        register = register_optimizer_step_pre_hook if pre else register_optimizer_step_post_hook
        handle = register(hook)
        monkeypatch.setattr(TI, "_test_handle", handle, raising=False)
    return inject


def _inject_after_scheduler_step(monkeypatch, calls):
    real = torch.optim.lr_scheduler.LambdaLR.step

    def step(self, *a, **k):
        out = real(self, *a, **k)
        if self.last_epoch > 0:  # not the call from the constructor
            calls.append("scheduler")
            if len(calls) == AT_STEP:
                _signal_self()
        return out

    monkeypatch.setattr(torch.optim.lr_scheduler.LambdaLR, "step", step)


def _inject_inside_callback(monkeypatch, calls):
    real = checkpoints.save

    def save(path, payload, **kw):  # with --save-every-steps 1 the callback saves after every step
        calls.append("save")
        if len(calls) == AT_STEP:
            _signal_self()
            time.sleep(0.05)  # the handler runs at once in the main thread; the save goes on
        return real(path, payload, **kw)

    monkeypatch.setattr(checkpoints, "save", save)


@pytest.mark.parametrize("inject", [_inject_before_forward, _optimizer_hook(pre=True), _optimizer_hook(pre=False),
                                    _inject_after_scheduler_step, _inject_inside_callback],
                         ids=["before-forward", "after-backward", "after-optimizer-step", "after-scheduler-step",
                              "inside-callback"])
def test_a_signal_anywhere_in_a_step_stops_after_that_step_with_a_consistent_checkpoint(
        inject, tmp_path, monkeypatch, cached_data, capsys):
    calls: list[str] = []
    inject(monkeypatch, calls)
    try:
        result = TI.run(NAME, tmp_path, device="cpu", save_every_steps=1, progress=False)
    finally:
        handle = getattr(TI, "_test_handle", None)
        if handle is not None:
            handle.remove()
    assert result == {"interrupted": True, "step": AT_STEP}
    assert "SIGTERM received: finishing the current step" in capsys.readouterr().out
    _assert_consistent(checkpoints.load(tmp_path / "last.pt"), AT_STEP)
    assert signal.getsignal(signal.SIGTERM) is not None  # the handlers were put back


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The weights after an uninterrupted run of the tiny Glow (one thread, CPU)."""
    torch.set_num_threads(1)
    workdir = tmp_path_factory.mktemp("uninterrupted")
    TI.run(NAME, workdir, device="cpu", threads=1, progress=False)
    return _weights(workdir / "last.pt")


SLOW_DRIVER = """
import os, sys, time
from flowlib.training import distributed as scaling
real = scaling.Objective.log_prob
def slow(self, x):  # slow each step of the first run down, so that the test can kill it mid-way
    time.sleep(0.25)
    return real(self, x)
if os.environ.get("SLOW_STEPS"):
    scaling.Objective.log_prob = slow
from tests.tiny_configs import register
register()
from flowlib.training.images import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_with_sigkill_and_started_again_ends_bit_for_bit_as_an_uninterrupted_one(tmp_path, uninterrupted):
    driver = tmp_path / "driver.py"
    driver.write_text(SLOW_DRIVER)
    workdir = tmp_path / "run"
    command = [sys.executable, str(driver), NAME, "--workdir", str(workdir), "--device", "cpu", "--threads", "1",
               "--save-every-steps", "4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env={**env, "SLOW_STEPS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not (workdir / "last.pt").exists():
        assert proc.poll() is None, f"the run ended before its first checkpoint:\n{proc.stdout.read()}"
        assert time.time() < deadline, "no checkpoint after 240 s"
        time.sleep(0.05)
    time.sleep(0.4)  # a step or two past the checkpoint: those steps are lost and must be redone identically
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoints.load(workdir / "last.pt")["step"]
    assert 4 <= killed_at < 16, f"the kill came too late (checkpoint at step {killed_at})"

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming {NAME} from step {killed_at} of 16" in done.stdout
    final = checkpoints.load(workdir / "last.pt")
    assert final["history"]["step"] == list(range(1, 17))
    _assert_same_weights(final["model"], uninterrupted)


def test_a_checkpoint_of_the_first_format_resumes_exactly(tmp_path, uninterrupted, monkeypatch):
    """The long Glow run of this repository writes checkpoints in the first format (commit 4b2297e's save_state:
    format, config as a plain dict without clip_grad, model, optimizer, scheduler, step, rng, history; no checksum).
    The current code resumes from one and ends where an uninterrupted run ends."""
    real_fit = TI.fit

    def fit_stopping_at_step_6(*args, callbacks=(), **kwargs):
        def stop(step, loss, model, history):
            if step == 6:
                raise KeyboardInterrupt
        return real_fit(*args, callbacks=[*callbacks, stop], **kwargs)

    monkeypatch.setattr(TI, "fit", fit_stopping_at_step_6)
    TI.run(NAME, tmp_path, device="cpu", threads=1, progress=False)
    monkeypatch.setattr(TI, "fit", real_fit)
    new = checkpoints.load(tmp_path / "last.pt")
    old_config = dict(builder="glow", model=dict(levels=2, steps=2, hidden=16, coupling="affine", mixing="lu"),
                      batch_size=32, lr=1e-3, warmup=10, epochs=1, val_size=200, seed=0,
                      train_subset=512, test_subset=256)  # CONFIGS["glow-fmnist-tiny"] as commit 4b2297e wrote it
    old = dict(format="flowlib-checkpoint-1", config=old_config, model=new["model"], optimizer=new["optimizer"],
               scheduler=new["scheduler"], step=new["step"], rng=new["rng"], history=new["history"])
    (tmp_path / "previous.pt").unlink(missing_ok=True)
    torch.save(old, tmp_path / "last.pt")
    assert checkpoints.load(tmp_path / "last.pt")["legacy"] is True
    # the long run's own configuration, as the first format wrote it, is today's glow-fmnist
    assert TI.TrainConfig.from_dict(dict(builder="glow", model=dict(levels=2, steps=16, hidden=128, coupling="affine",
                                                                    mixing="lu"), batch_size=64, lr=1e-3, warmup=500,
                                         epochs=24, val_size=2000, seed=0)) == TI.CONFIGS["glow-fmnist"]

    TI.run(NAME, tmp_path, device="cpu", threads=1, progress=False)
    final = checkpoints.load(tmp_path / "last.pt")
    assert "legacy" not in final and final["config"] == TI.CONFIGS[NAME].to_dict()
    _assert_same_weights(final["model"], uninterrupted)


def _flip_bytes_inside_a_tensor(path: pathlib.Path, tensor: torch.Tensor) -> None:
    raw = bytearray(path.read_bytes())
    needle = tensor.contiguous().numpy().tobytes()[:64]
    at = raw.find(needle)
    assert at > 0, "the tensor's bytes were not found in the file"
    for i in range(4):
        raw[at + 8 + i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_corrupt_checkpoint_is_refused_and_the_previous_one_is_kept(tmp_path):
    model = TI.build(TI.CONFIGS[NAME])
    last = tmp_path / "last.pt"
    checkpoints.save(last, {"step": 1, "model": model.state_dict()}, keep_previous=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    checkpoints.save(last, {"step": 2, "model": model.state_dict()}, keep_previous=True)
    assert checkpoints.load(tmp_path / "previous.pt")["step"] == 1 and checkpoints.load(last)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "previous.pt"]

    big = max(model.state_dict().values(), key=lambda t: t.numel())
    _flip_bytes_inside_a_tensor(last, big)
    assert torch.load(last, weights_only=True)["step"] == 2, "torch.load itself does not notice (the point of this)"
    with pytest.raises(checkpoints.CheckpointError, match=r"corrupt.*mv .*previous.pt .*last.pt"):
        checkpoints.load(last)
    last.write_bytes(last.read_bytes()[: 5000])  # truncated
    with pytest.raises(checkpoints.CheckpointError, match="could not be read.*truncated.*previous.pt"):
        checkpoints.load(last)
