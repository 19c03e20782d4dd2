"""Train an image flow on Fashion-MNIST with checkpoints, exact resume, evaluation, and a manifest entry at the end.

    python -m flowlib.training realnvp-fmnist            # trains (or resumes) in runs/realnvp-fmnist/
    python -m flowlib.training realnvp-fmnist --release  # + writes data/checkpoints/ and the manifest
    python -m flowlib.training glow-fmnist --device cuda --amp bf16           # one GPU, mixed precision
    torchrun --standalone --nproc-per-node 4 -m flowlib.training glow-fmnist  # four GPUs (DDP)
    python -m flowlib.training glow-fmnist --release-now # a snapshot of an unfinished run, marked as such

What a run is, is one ``TrainConfig`` (the ``CONFIGS`` below): the model and every number of the training maths.
How it runs (device, threads, precision, compile, checkpoint interval, evaluation interval) are options that do not
change what is learned, and are not part of it.

Resume. A checkpoint (model, optimizer, scheduler, step, history, RNG state; checksummed) is written atomically
every ``--save-every-minutes`` (and/or ``--save-every-steps``), at every epoch's end, and when the run is stopped by
Ctrl-C or SIGTERM; the checkpoint it replaces is kept as ``previous.pt``. A signal only sets a flag: the step under
way completes (update, schedule, history) before the run stops, so step, history, optimizer and scheduler always
agree. Everything random is a function of (seed, step), so the same command started again continues exactly where
the run stopped, even after a SIGKILL (from the last checkpoint): on the CPU the final weights are bit for bit those
of an uninterrupted run (tests/test_resume.py). Checkpoints of the previous format (no checksum) still resume.

Scale. ``--device`` (default: CUDA, then MPS, then CPU); ``--amp bf16|fp16`` runs the networks inside the flow under
autocast while every log-det and the prior stay float32 (flowlib.training.distributed); ``--compile`` wraps the model in
torch.compile; under ``torchrun`` each process trains on its share of the same global batch with
DistributedDataParallel (the world size must divide the batch size), and ActNorm is initialised over the whole
global batch so that every process starts from the same parameters.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import math
import os
import pathlib
import platform
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from flowlib.builders import glow, multiscale_realnvp
from flowlib.data.fashion_mnist import load as load_fashion_mnist
from flowlib.image_baselines import image_vae
from flowlib.images import bits_per_dim, dequantize
from flowlib.runtime import pick_device, seed_everything
from flowlib.training import checkpoints
from flowlib.training import distributed
from flowlib.training.loop import History, fit


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run learns. Saved (as a plain dict) in every checkpoint and manifest entry;
    a checkpoint only resumes under the same configuration.

    builder: "multiscale_realnvp" or "glow", called with ``model`` as keyword arguments.
    batch_size: the global batch (split over the processes of a torchrun launch).
    warmup: steps of linear learning-rate warm-up, then cosine decay to 0 at the last step.
    val_size: training images held out for validation (seeded). train_subset / test_subset: use only the first N.
    clip_grad: maximum gradient norm.
    """

    builder: str
    model: dict = field(default_factory=dict)
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    epochs: int = 8
    val_size: int = 2000
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    clip_grad: float = 50.0

    def __post_init__(self):
        if self.builder not in BUILDERS:
            raise ValueError(f"builder must be one of {sorted(BUILDERS)}, got {self.builder!r}.")
        for name in ("batch_size", "epochs", "val_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {v!r}.")

    def to_dict(self) -> dict:
        """A plain dict (what checkpoints and the manifest hold); subsets left out when unused, as in the first
        checkpoint format."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in ("train_subset", "test_subset") and v is None)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From a checkpoint's or manifest's dict; keys that older checkpoints lack take their defaults."""
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise checkpoints.CheckpointError(f"a checkpoint's configuration must be a dict, got {type(d).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown or "builder" not in d:
            raise checkpoints.CheckpointError(
                f"the configuration {d} is not an image-training configuration (unknown keys {unknown}"
                f"{', no builder' if 'builder' not in d else ''}).")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def __getitem__(self, key: str):  # dict-style reading, as for the configuration dicts of earlier versions
        return getattr(self, key)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.get("shape", (1, 28, 28)))


def _builders():
    return {"multiscale_realnvp": multiscale_realnvp, "glow": glow, "image_vae": image_vae}


BUILDERS = _builders()

CONFIGS: dict[str, TrainConfig] = {
    # the shipped model of lesson 05
    "realnvp-fmnist": TrainConfig("multiscale_realnvp", dict(levels=2, couplings=8, hidden=128),
                                  batch_size=64, lr=1e-3, warmup=200, epochs=8, val_size=2000, seed=0),
    # the shipped Glow of lessons 06-07 (0.87M parameters; trained over several sittings through resume)
    "glow-fmnist": TrainConfig("glow", dict(levels=2, steps=16, hidden=128, coupling="affine", mixing="lu"),
                               batch_size=64, lr=1e-3, warmup=500, epochs=24, val_size=2000, seed=0),
    # the small VAE of lesson 07's bits/dim table (an MLP on logit-space pixels; log_prob is its one-sample ELBO, so
    # the test_bpd this trainer reports is the ELBO's bound; lesson 07's table adds the importance-weighted bound)
    "vae-fmnist": TrainConfig("image_vae", dict(latent=32, hidden=256), batch_size=64, lr=1e-3, warmup=200,
                              epochs=4, val_size=2000, seed=0),
}


def build(config: TrainConfig | dict) -> torch.nn.Module:
    config = TrainConfig.from_dict(config)
    return BUILDERS[config.builder](**config.model)


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    """Rebuild the model a checkpoint was trained with and load its weights (ActNorm's "initialised" included)."""
    model = build(payload["config"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise checkpoints.CheckpointError(f"the checkpoint's weights do not fit the model its configuration builds "
                                          f"({e}); the file is from another version of the model.") from None
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


def data_splits(config: TrainConfig | dict, root=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, validation, test) uint8 images: the validation images are held out of the training set, seeded.

    Raises ValueError when the images do not have the shape (channels, height, width) the configuration's model is
    built for.
    """
    config = TrainConfig.from_dict(config)
    train, _ = load_fashion_mnist("train", root=root)
    test, _ = load_fashion_mnist("test", root=root)
    check_image_shape(train, config)
    perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(config.seed))
    val = train[perm[: config.val_size]]
    train = train[perm[config.val_size:]]
    if config.train_subset is not None:
        train = train[: config.train_subset]
    if config.test_subset is not None:
        test = test[: config.test_subset]
    if train.shape[0] < config.batch_size:
        raise ValueError(f"{train.shape[0]} training images are fewer than one batch of {config.batch_size}.")
    return train, val, test


def check_image_shape(images: torch.Tensor, config: TrainConfig) -> None:
    expected = config.image_shape
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"the images have shape {tuple(images.shape)} (B, C, H, W), but the model of this "
                         f"configuration is built for (B, {', '.join(map(str, expected))}): "
                         f"{'channels' if images.dim() == 4 and images.shape[1] != expected[0] else 'size'} "
                         f"differ. Give the builder shape={tuple(images.shape[1:])} in TrainConfig.model, or "
                         f"convert the images.")


@torch.no_grad()
def evaluate(model, images: torch.Tensor, batch_size: int = 500, seed: int = 1234, device=None,
             progress: bool = False) -> float:
    """Mean bits/dim over ``images`` with a fixed noise seed (so reruns agree); ``progress=True`` shows a bar
    over the batches (a lesson's evaluation of thousands of images takes minutes on a CPU)."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in tqdm(range(0, images.shape[0], batch_size), desc=f"bits/dim of {images.shape[0]} images",
                  unit="batch", disable=not progress, leave=False):
        total += float(bits_per_dim(model, images[i: i + batch_size].to(device), generator=g).sum())
    model.train(was_training)
    return total / images.shape[0]


def _batches(train: torch.Tensor, batch_size: int, seed: int, start_step: int, rank: int = 0, world_size: int = 1):
    """An endless stream of dequantized batches (this process's share of each global batch), reshuffled every epoch.

    Everything random is a function of (seed, step): the order of an epoch from (seed, epoch), the noise of a batch
    from (seed, step). A resumed run therefore sees exactly the batches, noise included, that an uninterrupted run
    would have seen from ``start_step`` on; and the processes of a torchrun launch see disjoint shares of the same
    global batch that one process would have seen whole.
    """
    steps_per_epoch = train.shape[0] // batch_size
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        for b in range(offset, steps_per_epoch):
            step = epoch * steps_per_epoch + b + 1  # the step this batch is for (steps count from 1)
            x = train[perm[b * batch_size: (b + 1) * batch_size]]
            y = dequantize(x, generator=torch.Generator().manual_seed(seed * 1_000_003 + step))
            yield distributed.shard(y, rank, world_size) if world_size > 1 else y
        epoch, offset = epoch + 1, 0


def schedule(config: TrainConfig, total_steps: int):
    """Linear warm-up (some seeds diverge to NaN without it), then cosine decay: step -> factor of the lr."""
    warmup = config.warmup

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    return lr_factor


def _history_from(payload: dict) -> History:
    h = payload["history"]
    return History(step=list(h["step"]), loss=list(h["loss"]), seconds=float(h["seconds"]),
                   extra={k: [tuple(v) for v in vs] for k, vs in h.get("extra", {}).items()})


def read_run_checkpoint(path: pathlib.Path, config: TrainConfig) -> dict:
    """A run's checkpoint, verified (checksum; configuration), converted from older formats; CheckpointError
    naming the mismatch and what to do otherwise."""
    payload = checkpoints.load(path)
    missing = [k for k in ("config", "model", "optimizer", "scheduler", "step", "rng", "history") if k not in payload]
    if missing:
        raise checkpoints.CheckpointError(f"{path} is not a training checkpoint (it lacks {missing}); a released "
                                          f"model cannot be resumed. Use another --workdir or delete {path}.")
    saved = TrainConfig.from_dict(payload["config"])
    if saved != config:
        diff = {f.name: (getattr(saved, f.name), getattr(config, f.name)) for f in dataclasses.fields(TrainConfig)
                if getattr(saved, f.name) != getattr(config, f.name)}
        raise checkpoints.CheckpointError(
            f"{path} was trained with another configuration: " + "; ".join(
                f"{k} = {a!r} in the checkpoint, {b!r} now" for k, (a, b) in diff.items())
            + ". Use another --workdir for the new configuration, or delete the checkpoint to start again.")
    return payload


def run(name: str | TrainConfig, workdir: pathlib.Path, release: bool = False, threads: int | None = None,
        save_every_minutes: float = 5.0, data_root=None, device=None, save_every_steps: int | None = None,
        eval_every: int | None = None, amp: str | None = None, compile: bool = False, progress: bool = True,
        config: TrainConfig | None = None) -> dict:
    """Train (or resume) the configuration ``name`` in ``workdir``; see the module docstring. ``config`` overrides
    the named configuration (tests use smaller ones). Returns the test result, or {"interrupted": True, "step"}."""
    config = config or (name if isinstance(name, TrainConfig) else CONFIGS[name])
    name = name if isinstance(name, str) else "custom"
    workdir = pathlib.Path(workdir)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device) if device else pick_device()
    own_group = distributed.launched_by_torchrun() and not dist.is_initialized()
    if distributed.launched_by_torchrun():
        distributed.check_batch_split(config.batch_size, int(os.environ["WORLD_SIZE"]))  # before waiting for the others
        device = distributed.init_distributed(device)
    rank, world_size = distributed.world()
    try:
        distributed.check_batch_split(config.batch_size, world_size)
        return _run(name, config, workdir, release, save_every_minutes, data_root, device, save_every_steps,
                    eval_every, amp, compile, progress and rank == 0, rank, world_size)
    finally:
        if own_group:
            dist.destroy_process_group()


def _run(name, config, workdir, release, save_every_minutes, data_root, device, save_every_steps, eval_every, amp,
         compile, progress, rank, world_size) -> dict:
    lead = rank == 0  # the process that evaluates, saves and prints
    seed_everything(config.seed)
    amp_dtype = distributed.amp_dtype(amp, device)
    train, val, test = data_splits(config, data_root)
    steps_per_epoch = train.shape[0] // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    eval_every = eval_every or steps_per_epoch
    d = math.prod(config.image_shape)

    model = build(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(config, total_steps))
    last = workdir / "last.pt"
    history, start_step = History(), 0
    if last.is_file():
        payload = read_run_checkpoint(last, config)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        start_step, history = int(payload["step"]), _history_from(payload)
        torch.set_rng_state(payload["rng"])
        if lead:
            print(f"resuming {name} from step {start_step} of {total_steps} ({history.seconds / 60:.1f} min so far"
                  f"{'; checkpoint of the first format, converted' if payload.get('legacy') else ''})", flush=True)

    t_start, last_save = time.perf_counter(), time.perf_counter()

    def save_state(step: int) -> None:
        if not lead:
            return
        checkpoints.save(last, dict(config=config.to_dict(), model=model.state_dict(), optimizer=optimizer.state_dict(),
                                    scheduler=scheduler.state_dict(), step=step, rng=torch.get_rng_state(),
                                    history=dict(step=history.step, loss=history.loss, extra=history.extra,
                                                 seconds=history.seconds + time.perf_counter() - t_start)),
                         keep_previous=True)

    def callback(step, loss, _objective, hist):
        nonlocal last_save
        if lead and (step % eval_every == 0 or step == total_steps):
            val_bpd = evaluate(model, val, device=device)
            hist.log("val_bpd", step, val_bpd)
            print(f"step {step}/{total_steps} (epoch {step / steps_per_epoch:.2f}): validation {val_bpd:.4f} "
                  f"bits/dim", flush=True)
        due = (step % steps_per_epoch == 0 or time.perf_counter() - last_save > 60 * save_every_minutes
               or (save_every_steps and step % save_every_steps == 0))
        if due:
            save_state(step)
            last_save = time.perf_counter()

    stop = {"signal": None}

    def on_signal(signum, frame):
        # Ctrl-C or a killed session: only note it here. The step under way completes (update, schedule, history),
        # then stop_at_step_boundary ends training, so the checkpoint below is always consistent.
        stop["signal"] = signal.Signals(signum).name
        print(f"\n{stop['signal']} received: finishing the current step, then saving a checkpoint.", flush=True)

    def stop_at_step_boundary(step, loss, _objective, hist):
        flag = bool(stop["signal"])
        if world_size > 1:  # every process stops after the same step
            t = torch.tensor([float(flag)], device=device if device.type == "cuda" else "cpu")
            dist.all_reduce(t)
            flag = bool(t.item() > 0)
        if flag:
            raise KeyboardInterrupt

    batches = _batches(train, config.batch_size, config.seed, start_step, rank, world_size)
    if start_step < total_steps:
        first = next(batches)
        distributed.initialise(model, first.to(device))  # ActNorm, over the global batch, before DDP copies anything
        batches = itertools.chain([first], batches)
    distributed.autocast_networks(model, amp_dtype, device.type)
    trained = distributed.objective(model, ddp=world_size > 1, compile=compile, device=device)

    in_main_thread = __import__("threading").current_thread() is __import__("threading").main_thread()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main_thread else {}
    try:
        if start_step < total_steps:
            history = fit(trained, batches, steps=total_steps - start_step, optimizer=optimizer, scheduler=scheduler,
                          start_step=start_step, history=history, callbacks=[callback, stop_at_step_boundary],
                          clip_grad=config.clip_grad, device=device, progress=progress,
                          postfix=lambda loss: {"bits/dim": f"{loss / (d * math.log(2)):.3f}"})
            t_start = time.perf_counter()  # fit() has added its own time to history.seconds
            save_state(history.step[-1] if history.step else start_step)
            if history.interrupted:
                if lead:
                    print(f"checkpoint saved in {last}; run the same command again to resume.")
                return {"interrupted": True, "step": history.step[-1] if history.step else start_step}
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        distributed.autocast_networks(model, None, device.type)

    if not lead:
        return {"rank": rank, "steps": total_steps}
    test_bpd = evaluate(model, test, device=device, progress=progress)
    result = dict(test_bpd=round(test_bpd, 4), train_seconds=round(history.seconds, 1), steps=total_steps,
                  test_images=int(test.shape[0]))
    print(f"{name}: test bits/dim {test_bpd:.4f} on {test.shape[0]} images after {total_steps} steps "
          f"({history.seconds / 60:.1f} min of training)")
    if release:
        _release(name, config, model, test_bpd, int(test.shape[0]), history, total_steps, steps_per_epoch, device,
                 complete=True, world_size=world_size)
    return result


def _hardware(device: torch.device, world_size: int) -> str:
    if device.type == "cpu":
        return (f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
                f"torch {torch.__version__}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return f"{world_size} x {name}, torch {torch.__version__}"


def _release(name, config, model, test_bpd, test_images, history, step, steps_per_epoch, device, complete,
             world_size=1, command=None) -> dict:
    release_path = checkpoints.CHECKPOINT_DIR / f"{name}.pt"
    checkpoints.save(release_path, dict(config=config.to_dict(),
                                        model={k: v.cpu() for k, v in model.state_dict().items()},
                                        step=step, test_bpd=test_bpd, complete=complete))
    entry = dict(file=release_path.name, sha256=checkpoints.sha256(release_path),
                 command=command or "python -m flowlib.training " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                 config=config.to_dict(), test_bpd=round(test_bpd, 4), test_images=test_images,
                 train_seconds=round(history.seconds, 1), steps=step, total_steps=steps_per_epoch * config.epochs,
                 epochs_done=round(step / steps_per_epoch, 3),
                 complete=complete, parameters=sum(p.numel() for p in model.parameters()),
                 hardware=_hardware(device, world_size), date=datetime.date.today().isoformat(),
                 val_bpd=history.extra.get("val_bpd", []))
    checkpoints.write_manifest_entry(name, entry, release_path.parent / checkpoints.MANIFEST.name)
    print(f"released {release_path} and its manifest entry ({'complete' if complete else 'UNFINISHED'} run)")
    return entry


def release_now(name: str, workdir: pathlib.Path, data_root=None, device=None, threads: int | None = None,
                progress: bool = True, continue_command: str | None = None) -> dict:
    """Release a snapshot of an unfinished run honestly: evaluate ``workdir/last.pt`` on the configuration's whole
    test set and write data/checkpoints/NAME.pt with a manifest entry that says ``"complete": false``, the step
    reached, the epochs done, the training time so far and the command that continues the run."""
    config = CONFIGS[name]
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device) if device else pick_device()
    last = pathlib.Path(workdir) / "last.pt"
    payload = read_run_checkpoint(last, config)
    model = model_from_checkpoint(payload).to(device)
    train, _, test = data_splits(config, data_root)
    steps_per_epoch = train.shape[0] // config.batch_size
    step, total = int(payload["step"]), steps_per_epoch * config.epochs
    history = _history_from(payload)
    test_bpd = evaluate(model, test, device=device, progress=progress)
    default = pathlib.Path("runs") / name
    command = continue_command or (f"python -m flowlib.training {name}"
                                   + ("" if pathlib.Path(workdir) == default else
                                      f" --workdir {shlex.quote(str(workdir))}")
                                   + (f" --threads {threads}" if threads else ""))
    print(f"{name} at step {step} of {total} ({step / steps_per_epoch:.2f} of {config.epochs} epochs, "
          f"{history.seconds / 60:.1f} min of training): test bits/dim {test_bpd:.4f} on {test.shape[0]} images")
    return _release(name, config, model, test_bpd, int(test.shape[0]), history, step, steps_per_epoch, device,
                    complete=step >= total, command=command)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(CONFIGS))
    p.add_argument("--workdir", type=pathlib.Path, help="where checkpoints go (default: runs/NAME)")
    p.add_argument("--release", action="store_true", help="at the end, write data/checkpoints/NAME.pt and its "
                                                          "manifest entry")
    p.add_argument("--release-now", action="store_true",
                   help="do not train: evaluate WORKDIR/last.pt on the test set and release it, marked unfinished")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA, then MPS, then the CPU)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision for the networks inside the flow "
                                                           "(fp16: CUDA only); log-dets and prior stay float32")
    p.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    p.add_argument("--save-every-minutes", type=float, default=5.0, help="checkpoint interval in minutes (default 5)")
    p.add_argument("--save-every-steps", type=int, help="also checkpoint every N steps")
    p.add_argument("--eval-every", type=int, help="validation bits/dim every N steps (default: every epoch)")
    p.add_argument("--data", type=pathlib.Path, help="folder with the Fashion-MNIST .gz files (default: searched)")
    p.add_argument("--continue-command", help="with --release-now: the command recorded as the one that continues "
                                              "the run (default: this command without --release-now)")
    args = p.parse_args(argv)
    workdir = args.workdir or pathlib.Path("runs") / args.name
    if args.release_now:
        release_now(args.name, workdir, data_root=args.data, device=args.device, threads=args.threads,
                    continue_command=args.continue_command)
        return 0
    result = run(args.name, workdir, release=args.release, threads=args.threads, device=args.device,
                 save_every_minutes=args.save_every_minutes, save_every_steps=args.save_every_steps,
                 eval_every=args.eval_every, amp=args.amp, compile=args.compile, data_root=args.data)
    return 3 if result.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
