"""Train an image flow on Fashion-MNIST with checkpoints, resume, and a manifest entry at the end.

    python -m flowlib.training realnvp-fmnist            # trains (or resumes) in runs/realnvp-fmnist/
    python -m flowlib.training realnvp-fmnist --release # + writes data/checkpoints/ and the manifest

A checkpoint (model, optimizer, scheduler, step, history, RNG state) is written atomically every few minutes, at
every epoch's end, and when the run is interrupted (Ctrl-C or SIGTERM); starting the same command again resumes
from it. At the end the model is evaluated on the full test set (bits/dim, the bound of flowlib.images).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import platform
import shlex
import signal
import sys
import time

import torch

from flowlib.builders import glow, multiscale_realnvp
from flowlib.data.fashion_mnist import load as load_fashion_mnist
from flowlib.image_baselines import image_vae
from flowlib.images import bits_per_dim, dequantize
from flowlib.runtime import pick_device, seed_everything
from flowlib.training import checkpoints
from flowlib.training.loop import History, fit

CONFIGS: dict[str, dict] = {
    # the shipped model of lesson 05
    "realnvp-fmnist": dict(builder="multiscale_realnvp", model=dict(levels=2, couplings=8, hidden=128),
                           batch_size=64, lr=1e-3, warmup=200, epochs=8, val_size=2000, seed=0),
    # the same recipe, tiny, for tests and fast mode
    "realnvp-fmnist-tiny": dict(builder="multiscale_realnvp", model=dict(levels=2, couplings=2, hidden=16),
                                batch_size=32, lr=1e-3, warmup=10, epochs=1, val_size=200, seed=0,
                                train_subset=512, test_subset=256),
    # the shipped Glow of lessons 06-07 (0.87M parameters; trained over several sittings through resume)
    "glow-fmnist": dict(builder="glow", model=dict(levels=2, steps=16, hidden=128, coupling="affine", mixing="lu"),
                        batch_size=64, lr=1e-3, warmup=500, epochs=24, val_size=2000, seed=0),
    # the same recipe, tiny, for tests and fast mode
    "glow-fmnist-tiny": dict(builder="glow", model=dict(levels=2, steps=2, hidden=16, coupling="affine", mixing="lu"),
                             batch_size=32, lr=1e-3, warmup=10, epochs=1, val_size=200, seed=0,
                             train_subset=512, test_subset=256),
    # the small VAE of lesson 07's bits/dim table (an MLP on logit-space pixels; log_prob is its one-sample ELBO, so
    # the test_bpd this trainer reports is the ELBO's bound; lesson 07's table adds the importance-weighted bound)
    "vae-fmnist": dict(builder="image_vae", model=dict(latent=32, hidden=256), batch_size=64, lr=1e-3, warmup=200,
                       epochs=4, val_size=2000, seed=0),
    "vae-fmnist-tiny": dict(builder="image_vae", model=dict(latent=4, hidden=16), batch_size=32, lr=1e-3, warmup=10,
                            epochs=1, val_size=200, seed=0, train_subset=512, test_subset=256),
}
BUILDERS = {"multiscale_realnvp": multiscale_realnvp, "glow": glow, "image_vae": image_vae}


def build(config: dict) -> torch.nn.Module:
    return BUILDERS[config["builder"]](**config["model"])


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    """Rebuild the model a checkpoint was trained with and load its weights."""
    model = build(payload["config"])
    model.load_state_dict(payload["model"])
    return model.eval()


def load_pretrained_model(name: str = "realnvp-fmnist") -> tuple[torch.nn.Module, dict]:
    """The shipped model ``name``, verified against the manifest: (model in eval mode, manifest entry)."""
    try:
        payload, entry = checkpoints.load_pretrained(name)
    except checkpoints.CheckpointError as e:
        if name in CONFIGS and name not in checkpoints.read_manifest():
            raise checkpoints.CheckpointError(
                f"{e} Train and release {name!r} with: python -m flowlib.training {name} --release --threads 1 "
                f"(or pull a version of the repository that ships it).") from None
        raise
    return model_from_checkpoint(payload), entry


def data_splits(config: dict, root=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, validation, test) uint8 images: the validation images are held out of the training set, seeded."""
    train, _ = load_fashion_mnist("train", root=root)
    test, _ = load_fashion_mnist("test", root=root)
    perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(config["seed"]))
    val = train[perm[: config["val_size"]]]
    train = train[perm[config["val_size"]:]]
    if "train_subset" in config:
        train = train[: config["train_subset"]]
    if "test_subset" in config:
        test = test[: config["test_subset"]]
    return train, val, test


@torch.no_grad()
def evaluate(model, images: torch.Tensor, batch_size: int = 500, seed: int = 1234, device=None) -> float:
    """Mean test bits/dim over ``images`` with a fixed noise seed (so reruns agree)."""
    model.eval()
    device = device or next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, images.shape[0], batch_size):
        total += float(bits_per_dim(model, images[i: i + batch_size].to(device), generator=g).sum())
    model.train()
    return total / images.shape[0]


def _batches(train: torch.Tensor, batch_size: int, seed: int, start_step: int):
    """An endless stream of dequantized batches, reshuffled every epoch.

    Everything random is a function of (seed, step): the order of an epoch from (seed, epoch), the noise of a batch
    from (seed, step). A resumed run therefore sees exactly the batches, noise included, that an uninterrupted run
    would have seen from ``start_step`` on.
    """
    steps_per_epoch = train.shape[0] // batch_size
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        for b in range(offset, steps_per_epoch):
            step = epoch * steps_per_epoch + b + 1  # the step this batch is for (steps count from 1)
            x = train[perm[b * batch_size: (b + 1) * batch_size]]
            yield dequantize(x, generator=torch.Generator().manual_seed(seed * 1_000_003 + step))
        epoch, offset = epoch + 1, 0


def run(name: str, workdir: pathlib.Path, release: bool = False, threads: int | None = None,
        save_every_minutes: float = 5.0, data_root=None, device=None) -> dict:
    config = CONFIGS[name]
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device) if device else pick_device()
    seed_everything(config["seed"])
    train, val, test = data_splits(config, data_root)
    steps_per_epoch = train.shape[0] // config["batch_size"]
    total_steps = steps_per_epoch * config["epochs"]

    model = build(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    warmup = config["warmup"]

    def lr_factor(step: int) -> float:  # linear warm-up (some seeds diverge to NaN without it), then cosine decay
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    last = workdir / "last.pt"
    history, start_step = History(), 0
    if last.is_file():
        payload = checkpoints.load(last)
        if payload["config"] != config:
            raise checkpoints.CheckpointError(f"{last} was trained with another configuration; use another "
                                              f"--workdir or delete it.")
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        start_step = payload["step"]
        history = History(step=payload["history"]["step"], loss=payload["history"]["loss"],
                          seconds=payload["history"]["seconds"], extra=payload["history"]["extra"])
        torch.set_rng_state(payload["rng"])
        print(f"resuming {name} from step {start_step} of {total_steps} ({history.seconds / 60:.1f} min so far)")

    def save_state(step: int) -> None:
        checkpoints.save(last, dict(config=config, model=model.state_dict(), optimizer=optimizer.state_dict(),
                                    scheduler=scheduler.state_dict(), step=step, rng=torch.get_rng_state(),
                                    history=dict(step=history.step, loss=history.loss, extra=history.extra,
                                                 seconds=history.seconds + time.perf_counter() - t_start)))

    t_start, last_save = time.perf_counter(), time.perf_counter()

    def callback(step, loss, model, hist):
        nonlocal last_save
        if step % steps_per_epoch == 0 or step == total_steps:
            val_bpd = evaluate(model, val, device=device)
            hist.log("val_bpd", step, val_bpd)
            print(f"step {step}/{total_steps} (epoch {step / steps_per_epoch:.1f}): validation {val_bpd:.4f} "
                  f"bits/dim", flush=True)
        if step % steps_per_epoch == 0 or time.perf_counter() - last_save > 60 * save_every_minutes:
            save_state(step)
            last_save = time.perf_counter()

    stop = {"signal": None}

    def on_signal(signum, frame):
        # Ctrl-C or a killed session: only note it here. The step under way completes (update, schedule, history),
        # then stop_at_step_boundary ends training, so the checkpoint below is always consistent.
        stop["signal"] = signal.Signals(signum).name
        print(f"\n{stop['signal']} received: finishing the current step, then saving a checkpoint.", flush=True)

    def stop_at_step_boundary(step, loss, model, hist):
        if stop["signal"]:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if start_step < total_steps:
            history = fit(model, _batches(train, config["batch_size"], config["seed"], start_step),
                          steps=total_steps - start_step, optimizer=optimizer, scheduler=scheduler,
                          start_step=start_step, history=history, callbacks=[callback, stop_at_step_boundary],
                          clip_grad=50.0, device=device)
            t_start = time.perf_counter()  # fit() has added its own time to history.seconds
            save_state(history.step[-1] if history.step else start_step)
            if history.interrupted:
                print(f"checkpoint saved in {last}; run the same command again to resume.")
                return {"interrupted": True, "step": history.step[-1] if history.step else start_step}
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

    test_bpd = evaluate(model, test, device=device)
    result = dict(test_bpd=round(test_bpd, 4), train_seconds=round(history.seconds, 1), steps=total_steps,
                  test_images=int(test.shape[0]))
    print(f"{name}: test bits/dim {test_bpd:.4f} on {test.shape[0]} images after {total_steps} steps "
          f"({history.seconds / 60:.1f} min of training)")
    if release:
        release_path = checkpoints.CHECKPOINT_DIR / f"{name}.pt"
        checkpoints.save(release_path, dict(config=config, model={k: v.cpu() for k, v in model.state_dict().items()},
                                            step=total_steps, test_bpd=test_bpd))
        entry = dict(file=release_path.name, sha256=checkpoints.sha256(release_path),
                     command="python -m flowlib.training " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                     config=config, test_bpd=round(test_bpd, 4), test_images=int(test.shape[0]),
                     train_seconds=round(history.seconds, 1), steps=total_steps,
                     parameters=sum(p.numel() for p in model.parameters()),
                     hardware=f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} "
                              f"threads, torch {torch.__version__}" if device.type == "cpu" else str(device),
                     date=datetime.date.today().isoformat(),
                     val_bpd=history.extra.get("val_bpd", []))
        checkpoints.write_manifest_entry(name, entry)
        print(f"released {release_path} and its manifest entry")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(CONFIGS))
    p.add_argument("--workdir", type=pathlib.Path, help="where checkpoints go (default: runs/NAME)")
    p.add_argument("--release", action="store_true", help="write data/checkpoints/NAME.pt and its manifest entry")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    args = p.parse_args(argv)
    workdir = args.workdir or pathlib.Path("runs") / args.name
    run(args.name, workdir, release=args.release, threads=args.threads, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
