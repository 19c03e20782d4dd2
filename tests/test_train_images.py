"""Interrupting a Fashion-MNIST training run loses nothing: the checkpoint written on Ctrl-C resumes it exactly."""
from __future__ import annotations

import pytest
import torch

import flowlib.training.images as TI
from flowlib.training import checkpoints

from .tiny_configs import register as register_tiny_configs

register_tiny_configs()


def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    real_fit = TI.fit

    def fit_interrupted_at_step_5(*args, callbacks=(), **kwargs):
        def stop(step, loss, model, history):
            if step == 5:
                raise KeyboardInterrupt

        return real_fit(*args, callbacks=[*callbacks, stop], **kwargs)

    monkeypatch.setattr(TI, "fit", fit_interrupted_at_step_5)
    result = TI.run("realnvp-fmnist-tiny", tmp_path, device="cpu")
    assert result == {"interrupted": True, "step": 5}
    saved = checkpoints.load(tmp_path / "last.pt")
    assert saved["step"] == 5 and saved["history"]["step"] == [1, 2, 3, 4, 5]

    monkeypatch.setattr(TI, "fit", real_fit)
    result = TI.run("realnvp-fmnist-tiny", tmp_path, device="cpu")
    assert "resuming realnvp-fmnist-tiny from step 5" in capsys.readouterr().out
    final = checkpoints.load(tmp_path / "last.pt")
    assert final["history"]["step"] == list(range(1, 17)), "steps were lost or repeated across the resume"
    assert result["steps"] == 16 and 6.0 < result["test_bpd"] < 12.0


def test_a_checkpoint_from_another_configuration_is_refused(tmp_path):
    other = TI.CONFIGS["realnvp-fmnist-tiny"].replace(lr=3e-4)
    model = TI.build(other)
    opt = torch.optim.Adam(model.parameters())
    checkpoints.save(tmp_path / "last.pt", dict(
        config=other.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(),
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0).state_dict(), step=3,
        rng=torch.get_rng_state(), history=dict(step=[1, 2, 3], loss=[1.0, 1.0, 1.0], extra={}, seconds=1.0)))
    with pytest.raises(checkpoints.CheckpointError, match="another configuration: lr = 0.0003 in the checkpoint, "
                                                          "0.001 now.*another --workdir"):
        TI.run("realnvp-fmnist-tiny", tmp_path, device="cpu")
    checkpoints.save(tmp_path / "last.pt", {"config": {"something": "else"}})
    with pytest.raises(checkpoints.CheckpointError, match="not a training checkpoint"):
        TI.run("realnvp-fmnist-tiny", tmp_path, device="cpu")


def test_shipped_checkpoint_loads_with_weights_only_and_matches_its_manifest():
    model, entry = TI.load_pretrained_model("realnvp-fmnist")
    assert entry["test_bpd"] <= 3.5 and entry["test_images"] == 10000
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
    with torch.no_grad():
        x = model.sample(2)
    assert x.shape == (2, 1, 28, 28) and bool(torch.isfinite(x).all())
