"""Lesson 06's training comparisons: Glow vs RealNVP at the same CPU budget, and Glow's ablation at small scale.

    python -m benchmarks glow_vs_realnvp --minutes 10     # both trained in alternating slices, then both evaluated
    python -m benchmarks glow_ablation                     # {reverse, shuffle, lu} x {additive, affine}, curves

Both write their figures to data/results/ (JSON; the ablation also a log of what it printed) for lesson 06's plots.
Everything runs in ONE process on one thread, so the compared models see the same machine load.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

from .harness import benchmark, command, machine, report, set_threads

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "data" / "results"


def _write_json(name: str, payload: dict) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)  # atomic: a plot never reads half a file
    return path


def _load_average() -> str:
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class _Trainer:
    """One model, its optimiser and its batch stream, trained a slice at a time by flowlib.train.fit.

    The learning rate warms up linearly over ``warmup`` steps, then follows a cosine over the fraction of the
    ``budget`` seconds of ``clock`` used so far (a time budget has no known number of steps): the same shape for every
    model in a comparison.
    """

    def __init__(self, name: str, model, batches, lr: float, warmup: int, budget: float, lr_factor=None,
                 clock=time.perf_counter):
        import torch

        from flowlib.train import History

        self.name, self.model, self.batches = name, model, batches
        self.history, self.step, self.budget, self.warmup = History(), 0, budget, warmup
        self.clock, self.used = clock, 0.0  # seconds of `clock` spent training this model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor or self._lr_factor)

    def _lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup)
        used = min(1.0, self.used / self.budget) if self.budget else 0.0
        return warm * 0.5 * (1 + math.cos(math.pi * used))

    def train_for(self, seconds: float) -> None:
        """Whole steps until ``seconds`` have passed (or the budget is spent)."""
        from flowlib.train import fit

        t_slice = self.clock()
        while self.clock() - t_slice < seconds and self.used < self.budget:
            t0 = self.clock()
            fit(self.model, self.batches, steps=1, optimizer=self.optimizer, scheduler=self.scheduler,
                start_step=self.step, history=self.history, clip_grad=50.0, progress=False)
            self.used += self.clock() - t0
            self.step += 1

    def train_steps(self, steps: int) -> None:
        from flowlib.train import fit

        fit(self.model, self.batches, steps=steps, optimizer=self.optimizer, scheduler=self.scheduler,
            start_step=self.step, history=self.history, clip_grad=50.0, progress=False)
        self.step += steps


@benchmark("glow_vs_realnvp", "Glow vs lesson 05's RealNVP trained for the same CPU minutes in alternating slices, "
                              "both evaluated on the same test images (target: Glow's bits/dim below RealNVP's)")
def glow_vs_realnvp(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks glow_vs_realnvp")
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes for EACH model (default 10)")
    p.add_argument("--slice", type=float, default=30.0, help="seconds per turn; the two models alternate")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="what a minute is: this process's CPU time (default; fair on a machine shared with other "
                        "jobs, where the wall clock mostly measures them) or wall-clock time")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps, the same for both")
    p.add_argument("--test-images", type=int, default=10000, help="how many test images (all 10,000 by default)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="glow_vs_realnvp.json", help="file name in data/results/ ('' for none)")
    opts = p.parse_args(args)
    if opts.minutes <= 0 or opts.slice <= 0:
        p.error("--minutes and --slice must be positive.")
    threads = set_threads(opts.threads)
    from flowlib.train_images import CONFIGS, _batches, build, data_splits, evaluate
    from flowlib.utils import seed_everything

    names = ("realnvp-fmnist", "glow-fmnist")
    for a in ("batch_size", "lr", "seed", "val_size"):
        if CONFIGS[names[0]][a] != CONFIGS[names[1]][a]:
            raise SystemExit(f"the two configurations differ in {a}; this comparison needs them equal.")
    config = CONFIGS[names[0]]
    train, _, test = data_splits(config)
    test = test[: opts.test_images]
    budget = 60.0 * opts.minutes
    clock = time.process_time if opts.clock == "cpu" else time.perf_counter
    load_before = _load_average()
    trainers = []
    for name in names:
        seed_everything(config["seed"])  # same seed; the same batch stream (order and noise) for both
        trainers.append(_Trainer(name, build(CONFIGS[name]), _batches(train, config["batch_size"], config["seed"], 0),
                                 config["lr"], opts.warmup, budget, clock=clock))
    t_wall = time.perf_counter()
    while any(t.used < budget for t in trainers):
        for t in trainers:
            t.train_for(opts.slice)
        print(" | ".join(f"{t.name}: step {t.step}, {t.used / 60:.1f} {opts.clock} min, loss "
                         f"{t.history.loss[-1] if t.history.loss else float('nan'):.1f}" for t in trainers), flush=True)
    wall = time.perf_counter() - t_wall
    results = {}
    for t in trainers:
        t0 = time.perf_counter()
        bpd = evaluate(t.model, test)
        results[t.name] = dict(test_bpd=round(bpd, 4), steps=t.step, train_seconds=round(t.used, 1),
                               minutes=round(t.used / 60, 2),
                               train_wall_seconds=round(t.history.seconds, 1),
                               parameters=sum(q.numel() for q in t.model.parameters()),
                               model=CONFIGS[t.name]["model"], eval_seconds=round(time.perf_counter() - t0, 1))
        print(f"{t.name}: test bits/dim {bpd:.4f} on {test.shape[0]} images after {t.step} steps "
              f"({t.used / 60:.1f} {opts.clock} min)", flush=True)
    glow_bpd, realnvp_bpd = results["glow-fmnist"]["test_bpd"], results["realnvp-fmnist"]["test_bpd"]
    common = dict(minutes_each=opts.minutes, clock=opts.clock, slice_seconds=opts.slice, warmup=opts.warmup,
                  batch_size=config["batch_size"], lr=config["lr"], test_images=int(test.shape[0]),
                  schedule="linear warm-up, then cosine over the fraction of the budget used",
                  load_average_before=load_before, load_average_after=_load_average(), threads=threads)
    line = report("glow_vs_realnvp", "glow_minus_realnvp_test_bpd", round(glow_bpd - realnvp_bpd, 4), "bits/dim",
                  0.0, glow_bpd < realnvp_bpd, glow=results["glow-fmnist"], realnvp=results["realnvp-fmnist"],
                  wall_seconds=round(wall, 1), **common)
    if opts.out:
        _write_json(opts.out, dict(line, date=time.strftime("%Y-%m-%d %H:%M")))


ABLATION = [(mixing, coupling) for coupling in ("additive", "affine") for mixing in ("reverse", "shuffle", "lu")]


@benchmark("glow_ablation", "Glow's ablation at small scale: {reverse, shuffle, lu} x {additive, affine}, same steps, "
                            "seed and data; validation bits/dim curves to data/results/glow_ablation.json")
def glow_ablation(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks glow_ablation")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--depth", type=int, default=4, help="steps of flow K per level")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--val-images", type=int, default=1000, help="held-out training images for the curves")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="a subset, e.g. lu-affine reverse-additive")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="glow_ablation", help="file stem in data/results/ ('' for none)")
    p.add_argument("--merge", nargs="+", default=None, metavar="PART",
                   help="instead of training: merge data/results/PART.json files of --only runs made in parallel")
    opts = p.parse_args(args)
    if opts.merge:
        set_threads(opts.threads)
        return _merge_ablation(opts.merge, opts.out)
    threads = set_threads(opts.threads)
    from flowlib.builders import glow
    from flowlib.train_images import CONFIGS, _batches, data_splits, evaluate
    from flowlib.utils import seed_everything

    runs = ABLATION if opts.only is None else [r for r in ABLATION if f"{r[0]}-{r[1]}" in opts.only]
    if not runs:
        p.error(f"--only must name some of {[f'{m}-{c}' for m, c in ABLATION]}.")
    lines: list[str] = []

    def say(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    split_config = dict(CONFIGS["glow-fmnist"], seed=opts.seed)
    train, val, _ = data_splits(split_config)  # val: held out of the training set, seeded
    val = val[: opts.val_images]
    cosine_steps = max(1, opts.steps - opts.warmup)

    def lr_factor(step: int) -> float:  # the same linear warm-up and cosine decay for every run
        if step < opts.warmup:
            return (step + 1) / opts.warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - opts.warmup) / cosine_steps)))

    say(f"# {command()}  ({time.strftime('%Y-%m-%d %H:%M')}, {machine()}, load average {_load_average()})")
    say(f"# Glow L={opts.levels}, K={opts.depth}, hidden={opts.hidden}; {opts.steps} steps of batch "
        f"{opts.batch_size}, lr {opts.lr} (warm-up {opts.warmup}, cosine); validation: {val.shape[0]} held-out "
        f"training images every {opts.eval_every} steps")
    results = []
    for mixing, coupling in runs:
        seed_everything(opts.seed)  # the same initial weights where the architectures agree, the same data order
        model = glow(levels=opts.levels, steps=opts.depth, hidden=opts.hidden, coupling=coupling, mixing=mixing)
        params = sum(q.numel() for q in model.parameters())
        trainer = _Trainer(f"{mixing}-{coupling}", model, _batches(train, opts.batch_size, opts.seed, 0), opts.lr,
                           opts.warmup, 0.0, lr_factor)
        curve = [(0, round(evaluate(model, val), 4))]
        say(f"{trainer.name}: {params} parameters; step 0 validation {curve[-1][1]:.4f} bits/dim")
        t_train = 0.0
        while trainer.step < opts.steps:
            n = min(opts.eval_every, opts.steps - trainer.step)
            t0 = time.perf_counter()
            trainer.train_steps(n)
            t_train += time.perf_counter() - t0
            curve.append((trainer.step, round(evaluate(model, val), 4)))
            say(f"{trainer.name}: step {trainer.step} loss {trainer.history.loss[-1]:.1f} validation "
                f"{curve[-1][1]:.4f} bits/dim ({t_train:.0f} s training, load average {_load_average()})")
        results.append(dict(name=trainer.name, mixing=mixing, coupling=coupling, parameters=params,
                            train_seconds=round(t_train, 1), final_val_bpd=curve[-1][1],
                            val_bpd=[[s, v] for s, v in curve]))
    config = dict(levels=opts.levels, steps_of_flow=opts.depth, hidden=opts.hidden, train_steps=opts.steps,
                  batch_size=opts.batch_size, lr=opts.lr, warmup=opts.warmup, schedule="linear warm-up, cosine",
                  val_images=int(val.shape[0]), eval_every=opts.eval_every, seed=opts.seed, threads=threads)
    _ablation_summary(results, config, lines, say, opts.out)


def _ablation_summary(results: list[dict], config: dict, lines: list[str], say, out: str) -> None:
    best = min(results, key=lambda r: r["final_val_bpd"])
    say("# final validation bits/dim: " + ", ".join(f"{r['name']} {r['final_val_bpd']:.4f}" for r in results))
    by_name = {r["name"]: r["final_val_bpd"] for r in results}
    paper_order = None
    if all(f"{m}-affine" in by_name for m in ("reverse", "shuffle", "lu")):
        # Glow's figure 3: 1x1 convolution < shuffle < reverse in NLL (affine couplings)
        paper_order = by_name["lu-affine"] < by_name["shuffle-affine"] < by_name["reverse-affine"]
    line = report("glow_ablation", "final_val_bpd_best", best["final_val_bpd"], "bits/dim", None, paper_order,
                  best=best["name"], final_val_bpd=by_name,
                  met_means="lu-affine < shuffle-affine < reverse-affine, the order of Glow's figure 3",
                  train_seconds={r["name"]: r["train_seconds"] for r in results}, config=config)
    if out:
        title = (f"Glow L={config['levels']}, K={config['steps_of_flow']}, hidden {config['hidden']}: "
                 f"{config['train_steps']} steps of batch {config['batch_size']}")
        _write_json(f"{out}.json", dict(command=command(), machine=machine(), date=time.strftime("%Y-%m-%d %H:%M"),
                                        title=title, config=config, runs=results, summary=line, log=f"{out}.log",
                                        val_bpd_means="[step, bits/dim on the held-out training images]"))
        (RESULTS / f"{out}.log").write_text("\n".join(lines) + "\n")


def _merge_ablation(parts: list[str], out: str) -> None:
    """Join the files of runs made in parallel (``--only ... --out PART``) into one result, if they agree on
    everything but the configurations they ran."""
    payloads = [json.loads((RESULTS / f"{part}.json").read_text()) for part in parts]
    config = payloads[0]["config"]
    for part, pl in zip(parts, payloads):
        if pl["config"] != config:
            raise SystemExit(f"{part}.json was run with another configuration ({pl['config']} != {config}); "
                             f"only parts of the same ablation can be merged.")
    order = [f"{m}-{c}" for m, c in ABLATION]
    results = sorted((r for pl in payloads for r in pl["runs"]), key=lambda r: order.index(r["name"]))
    for r in results:  # parts written before the curves were stored as (step, bits/dim) pairs
        if "curve" in r:
            r["val_bpd"] = [[c["step"], c["val_bpd"]] for c in r.pop("curve")]
    lines = [f"# {command()}: merged from parts run in parallel, one process and one thread each: "
             + ", ".join(f"{part} ({pl['command']}, {pl['date']})" for part, pl in zip(parts, payloads))]
    for part in parts:
        lines += [f"## {part}.log"] + (RESULTS / f"{part}.log").read_text().splitlines()

    def say(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    _ablation_summary(results, config, lines, say, out)
