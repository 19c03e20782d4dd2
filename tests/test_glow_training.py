"""The scaling paths of image training, exercised on this CPU: DistributedDataParallel over two gloo processes,
bf16 autocast, ActNorm across a reload, the 1x1 convolutions' log-dets, bad launches and bad inputs, and the
release of an unfinished run. (CUDA itself is not available in CI; these are the paths a CPU can run.)"""
from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

import flowlib.training.images as TI
from flowlib.training import checkpoints
from flowlib.training import distributed as scaling
from flowlib.bijections.conv1x1 import InvConv1x1, InvConv1x1LU
from flowlib.bijections.normalization import ActNorm
from flowlib.core import FlowInputError
from flowlib.images import bits_per_dim
from flowlib.training.loop import fit

from .tiny_configs import TINY

# 4 steps of global batches of 32 on 128 images: enough for ActNorm's init, Adam and the warm-up to act
SMALL = TINY["glow-fmnist-tiny"].replace(train_subset=128, test_subset=64, val_size=64)
_SPLITS: dict = {}


@pytest.fixture
def cached_data(monkeypatch):
    real = TI.data_splits

    def data_splits(config, root=None):
        if repr(config) not in _SPLITS:
            _SPLITS[repr(config)] = real(config, root)
        return _SPLITS[repr(config)]

    monkeypatch.setattr(TI, "data_splits", data_splits)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, workdir: str, splits: str) -> None:
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    TI.data_splits = lambda config, root=None: torch.load(splits)  # the parent's copy: no second decompression
    TI.run("glow-small", workdir, device="cpu", progress=False, config=SMALL)


def test_ddp_on_two_gloo_processes_reaches_the_parameters_of_one_process_on_the_global_batch(tmp_path, cached_data):
    """In float64, so that the only difference, the order of the gradient sums, stays far below Adam's epsilon
    (in float32 a gradient at rounding level, e.g. of a zero-initialised layer, can flip the sign of an Adam update)."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    try:
        single = tmp_path / "single"
        TI.run("glow-small", single, device="cpu", progress=False, config=SMALL)
    finally:
        torch.set_default_dtype(torch.float32)
    splits = tmp_path / "splits.pt"
    torch.save(TI.data_splits(SMALL), splits)
    ddp = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(ddp), str(splits)), nprocs=2, join=True)

    a, b = checkpoints.load(single / "last.pt"), checkpoints.load(ddp / "last.pt")
    assert a["step"] == b["step"] == 4 and len(b["history"]["loss"]) == 4
    # the logged loss is the mean over both processes: the loss of the global batch
    assert b["history"]["loss"] == pytest.approx(a["history"]["loss"], rel=1e-10)
    fresh = TI.build(SMALL).state_dict()
    for k, v in a["model"].items():
        assert v.dtype == b["model"][k].dtype
        assert torch.allclose(b["model"][k], v, rtol=1e-9, atol=1e-11), f"{k} differs between DDP and one process"
    # ActNorm's init over the global batch is included: both started from the same data-dependent values
    actnorm = [k for k in a["model"] if k.endswith("log_scale")]
    assert actnorm and all(not torch.equal(a["model"][k], fresh[k].double()) for k in actnorm)


def test_a_world_size_that_does_not_divide_the_batch_is_refused_before_launch(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(scaling.ScalingError, match=r"global batch of 32 .* 3 processes .*32 % 3 = 2"):
        TI.run("glow-fmnist-tiny", tmp_path, device="cpu", config=TINY["glow-fmnist-tiny"])
    assert scaling.shard(torch.arange(8).reshape(8, 1), 1, 2).flatten().tolist() == [4, 5, 6, 7]


def _perturbed_tiny_glow() -> torch.nn.Module:
    torch.manual_seed(0)
    model = TI.build(SMALL)
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8)
    scaling.initialise(model, x.float() + 0.5)
    with torch.no_grad():  # zero-initialised last layers would make any precision look exact
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_bf16_autocast_runs_on_the_cpu_and_its_bits_per_dim_stay_within_0_01_of_float32():
    model = _perturbed_tiny_glow()
    x = torch.randint(0, 256, (64, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731  the same noise for both
    full = bits_per_dim(model, x, generator=g())
    scaling.autocast_networks(model, torch.bfloat16, "cpu")
    try:
        nets = scaling.networks(model)
        assert len(nets) == 2 * 2 + 1, "the coupling networks of 2 x 2 steps and 1 split prior's convolution"
        with torch.no_grad():
            z, logdet = model.flow(x.float() + 0.5)
        assert z.dtype == logdet.dtype == torch.float32, "the log-dets must stay float32 under autocast"
        half = bits_per_dim(model, x, generator=g())
    finally:
        scaling.autocast_networks(model, None, "cpu")
    diff = float((half - full).abs().max())
    assert 0 < diff < 0.01, f"bf16 changed bits/dim by {diff} (0 would mean autocast did nothing)"
    assert torch.equal(bits_per_dim(model, x, generator=g()), full), "undoing autocast restores float32 exactly"


def test_the_training_command_runs_with_bf16_autocast_on_the_cpu(tmp_path, cached_data):
    result = TI.run("glow-small", tmp_path, device="cpu", amp="bf16", progress=False, config=SMALL)
    assert result["steps"] == 4 and 4.0 < result["test_bpd"] < 12.0
    with pytest.raises(scaling.ScalingError, match="fp16 needs a CUDA device"):
        TI.run("glow-small", tmp_path / "fp16", device="cpu", amp="fp16", config=SMALL)


def test_a_reloaded_model_does_not_rerun_actnorm_initialisation(monkeypatch):
    torch.manual_seed(0)
    model = TI.build(SMALL)
    data = torch.rand(64, 1, 28, 28) * 255
    fit(model, data, steps=2, batch_size=32, progress=False)
    fresh = TI.build(SMALL)
    fresh.load_state_dict(model.state_dict())

    def must_not_run(self, x):
        raise AssertionError("ActNorm re-initialised after a reload")

    monkeypatch.setattr(ActNorm, "initialise", must_not_run)
    fresh.train()
    with torch.no_grad():
        assert torch.allclose(fresh.log_prob(data[:8]), model.log_prob(data[:8]))
    scaling.initialise(fresh, data[:8])  # the training command's init pass is a no-op too


@pytest.mark.parametrize("cls", [InvConv1x1, InvConv1x1LU])
@pytest.mark.parametrize("c", [3, 16])
def test_1x1_convolution_log_dets_agree_with_slogdet_in_float64(cls, c):
    torch.manual_seed(c)
    layer = cls(c, (c, 5, 4), seed=c).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    weight = layer.weight() if callable(layer.weight) else layer.weight
    expected = 5 * 4 * torch.linalg.slogdet(weight.double())[1]
    x = torch.randn(3, c, 5, 4, dtype=torch.float64)
    z, logdet = layer(x)
    assert logdet.dtype == torch.float64
    assert torch.allclose(logdet, expected.expand(3), rtol=1e-12, atol=1e-10)
    assert torch.allclose(z, torch.einsum("oc,bchw->bohw", weight, x), atol=1e-12)
    if c == 3:  # and the whole Jacobian of one image (60 x 60), by autograd
        jac = torch.autograd.functional.jacobian(lambda v: layer(v.reshape(1, c, 5, 4))[0].reshape(-1), x[0].reshape(-1))
        assert torch.allclose(torch.linalg.slogdet(jac)[1], logdet[0], atol=1e-10)


# log q(y) of the first four Fashion-MNIST test images, dequantized to the middle of their bins (y = x + 0.5), under the
# shipped glow-fmnist, keyed by the checkpoint's SHA-256; recorded with the layers as they were before the LU layer
# indexed its rows by P and the couplings unfolded their thin convolutions (the same maps: the values must not move).
SHIPPED_GLOW_LOG_PROBS = {
    "e3a44e46dc4de39051b9fd42a9262f062ad7f407ac20a00ffae0a25ae6d66c29":  # the 5.55-epoch snapshot
        [-1060.434326171875, -1882.0469970703125, -882.837646484375, -1006.9278564453125],
    "3e062b1c6e16275d7074ff806e1cc9e8257b3371e7d10bb03304702d85c7d715":  # the complete 24-epoch run
        [-1151.6322021484375, -1802.274169921875, -957.09228515625, -1135.1583251953125],
}


def test_the_shipped_glow_and_its_resume_state_give_the_recorded_log_likelihoods():
    from flowlib.data import paths
    from flowlib.data.fashion_mnist import load as load_fashion_mnist

    model, entry = TI.load_pretrained_model("glow-fmnist")
    assert entry["sha256"] in SHIPPED_GLOW_LOG_PROBS, (
        "data/checkpoints/glow-fmnist.pt was re-released: record its log-likelihoods in SHIPPED_GLOW_LOG_PROBS with "
        "the code of the commit that released it (model.log_prob(test[:4].float() + 0.5)), then check the layers.")
    expected = torch.tensor(SHIPPED_GLOW_LOG_PROBS[entry["sha256"]], dtype=torch.float64)
    x = load_fashion_mnist("test")[0][:4].float() + 0.5
    with torch.no_grad():
        assert torch.allclose(model.log_prob(x).double(), expected, rtol=1e-5, atol=0)
    if entry.get("resume_state"):  # the state a run resumes from holds the same model
        payload = TI.read_run_checkpoint(paths.REPO_ROOT / entry["resume_state"], TI.CONFIGS["glow-fmnist"])
        resumed = TI.build(TI.CONFIGS["glow-fmnist"])
        resumed.load_state_dict(payload["model"])  # strict: every parameter and buffer name and shape as saved
        resumed.eval()
        with torch.no_grad():
            assert torch.allclose(resumed.log_prob(x).double(), expected, rtol=1e-5, atol=0)


def test_images_of_the_wrong_size_or_channels_are_refused_naming_the_mismatch():
    model = TI.build(SMALL)
    # the core names the input's shape first, then the shape the model expects
    with pytest.raises(FlowInputError, match=r"\(2, 1, 32, 32\).*\(B, 1, 28, 28\)"):
        model.log_prob(torch.rand(2, 1, 32, 32) * 255)
    with pytest.raises(FlowInputError, match=r"\(2, 3, 28, 28\).*\(B, 1, 28, 28\)"):
        model.log_prob(torch.rand(2, 3, 28, 28) * 255)
    with pytest.raises(ValueError, match=r"shape \(5, 3, 28, 28\).*built for \(B, 1, 28, 28\).*channels differ"):
        TI.check_image_shape(torch.zeros(5, 3, 28, 28, dtype=torch.uint8), SMALL)
    with pytest.raises(ValueError, match=r"shape \(5, 1, 32, 32\).*size differ"):
        TI.check_image_shape(torch.zeros(5, 1, 32, 32, dtype=torch.uint8), SMALL)


def test_release_now_writes_an_honest_snapshot_of_an_unfinished_run(tmp_path, monkeypatch, cached_data):
    real_fit = TI.fit

    def fit_stopping_at_step_2(*args, callbacks=(), **kwargs):
        def stop(step, loss, model, history):
            if step == 2:
                raise KeyboardInterrupt
        return real_fit(*args, callbacks=[*callbacks, stop], **kwargs)

    monkeypatch.setattr(TI, "fit", fit_stopping_at_step_2)
    monkeypatch.setitem(TI.CONFIGS, "glow-small", SMALL)
    workdir = tmp_path / "run"
    assert TI.run("glow-small", workdir, device="cpu", progress=False) == {"interrupted": True, "step": 2}
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path / "released")
    TI.main(["glow-small", "--workdir", str(workdir), "--release-now", "--device", "cpu"])
    entry = json.loads((tmp_path / "released" / "manifest.json").read_text())["glow-small"]
    assert entry["complete"] is False and entry["steps"] == 2 and entry["epochs_done"] == 0.5
    assert entry["total_steps"] == 4
    assert entry["command"] == f"python -m flowlib.training glow-small --workdir {workdir}"
    # train_seconds is rounded to 0.1 s: two steps of this tiny model can round to 0.0 on a quiet machine
    assert entry["test_images"] == 64 and 4.0 < entry["test_bpd"] < 12.0 and entry["train_seconds"] >= 0.0
    payload, _ = checkpoints.load_pretrained("glow-small", tmp_path / "released" / "manifest.json")
    assert payload["complete"] is False and payload["step"] == 2
