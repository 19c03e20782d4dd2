"""Peak memory and time of one Glow training step against depth, for three ways of paying for the backward pass:
ordinary autograd, backprop by the inverse (flowlib.memory, "invertible") and gradient checkpointing.

Each configuration runs in a fresh Python process, so that one configuration's memory cannot hide in another's
high-water mark. In that process (CPU):

    baseline = peak resident memory (getrusage ru_maxrss) after the imports, the model, its gradient buffers and
               Adam's state are allocated (one optimizer step on zero gradients, which leaves the weights unchanged),
               before any forward pass;
    peak     = the same high-water mark after the first training step (forward with ActNorm's start, backward,
               Adam step);
    step memory = peak - baseline: what the step's activations cost. Parameters, gradients and Adam's state also
               grow with depth (a few MB at these sizes); they are in the baseline and reported separately.

On a CUDA device (``--device cuda``) the figure is ``torch.cuda.max_memory_allocated`` minus the allocated memory
before the step. Time per step: the median of ``--repeats`` steps after the first, as wall time and as the process's
CPU time (``time.process_time``; with one thread it is the step's compute, which a busy shared machine does not
inflate the way it inflates wall time — both are reported, the target is checked on both), with the minor page faults
per step beside it. The input is a batch of synthetic 28x28 integer images dequantized like Fashion-MNIST (memory and
time do not depend on the pixel values).

Allocator. Every configuration's process first calls ``flowlib.memory.keep_freed_memory()`` (on the CPU, with glibc),
which the invertible strategy would call itself: glibc then keeps the memory a step frees instead of handing it back
to the system and faulting it in again at the next step. Backprop by the inverse frees and reallocates each step's
tensors in turn and, with glibc's default, took about half a million page faults per training step at K = 32; ordinary
autograd and checkpointing run on the same allocator settings, so the comparison is between the algorithms.

Targets (issue 15): with the invertible strategy, step memory at the largest depth <= 1.3 x that at the smallest;
its time per step <= 1.6 x the ordinary one.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from .harness import benchmark, machine, report, set_threads

STRATEGIES = ("none", "invertible", "checkpoint")
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "glow_memory.json"


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def dev_is_cpu(device: str) -> bool:
    return device.split(":")[0] == "cpu"


def worker(strategy: str, depth: int, batch: int, hidden: int, levels: int, repeats: int, device: str) -> dict:
    """One configuration, measured in this process; returns the figures as a dict."""
    import gc
    import statistics

    import torch

    from flowlib.builders import glow

    from flowlib.memory import keep_freed_memory

    threads = set_threads()
    # the same allocator for every strategy: the invertible one would set this itself (flowlib.memory), and ordinary
    # autograd must not pay glibc's default of handing freed memory back to the system where the other does not
    kept = keep_freed_memory() if dev_is_cpu(device) else False
    torch.manual_seed(0)
    dev = torch.device(device)
    model = glow((1, 28, 28), levels=levels, steps=depth, hidden=hidden,
                 memory=None if strategy == "none" else strategy).to(dev)
    g = torch.Generator().manual_seed(1)
    x = (torch.randint(0, 256, (batch, 1, 28, 28), generator=g).float()
         + torch.rand(batch, 1, 28, 28, generator=g)).to(dev)
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()  # allocates Adam's state; zero gradients leave the weights unchanged
    param_mb = sum(p.numel() * p.element_size() for p in params) / 2**20

    def step() -> float:
        loss = -model.log_prob(x).mean()
        opt.zero_grad(set_to_none=False)  # keep the gradient buffers (they are in the baseline)
        loss.backward()
        opt.step()
        return float(loss.detach())

    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
        first_loss = step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        how = "torch.cuda.max_memory_allocated - memory_allocated before the step"
    else:
        base = _rss_peak_mb()
        first_loss = step()
        peak = _rss_peak_mb()
        how = "ru_maxrss after the first step - ru_maxrss after imports, model, grads and Adam state"
    times, cpu, faults = [], [], []
    for _ in range(repeats):
        f0 = _minor_faults()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(_minor_faults() - f0)
    return {"strategy": strategy, "depth": depth, "batch": batch, "hidden": hidden, "levels": levels,
            "device": str(dev), "threads": threads, "baseline_mb": round(base, 1), "peak_mb": round(peak, 1),
            "step_mb": round(peak - base, 1), "params_mb": round(param_mb, 2), "how": how,
            "time_s": round(statistics.median(times), 3), "times_s": [round(t, 3) for t in times],
            "cpu_s": round(statistics.median(cpu), 3),
            "page_faults_per_step": int(statistics.median(faults)),
            "allocator": ("glibc, freed memory kept (flowlib.memory.keep_freed_memory)" if kept else "default"),
            "first_loss": first_loss}


def _run_one(strategy: str, depth: int, opts) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--worker", strategy, str(depth), str(opts.batch),
           str(opts.hidden), str(opts.levels), str(opts.repeats), opts.device]
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"the worker for {strategy}, K={depth} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """The results as a text table with the ratios the targets are about."""
    by = {(r["strategy"], r["depth"]): r for r in rows}
    depths = sorted({r["depth"] for r in rows})
    k0 = depths[0]
    lines = [f"{'K':>3} | " + " | ".join(f"{s:>22}" for s in STRATEGIES) + " | time invertible/none, checkpoint/none",
             f"{'':>3} | " + " | ".join(f"{'step MB (x K=' + str(k0) + ')  s/step':>22}" for _ in STRATEGIES) + " |"]
    for k in depths:
        cells = []
        for s in STRATEGIES:
            r = by.get((s, k))
            cells.append(f"{r['step_mb']:7.1f} ({r['step_mb'] / by[(s, k0)]['step_mb']:4.2f}x) {r['time_s']:6.2f}"
                         if r else f"{'—':>22}")
        t_none = by[("none", k)]["time_s"]
        ratios = f"{by[('invertible', k)]['time_s'] / t_none:.2f}x, {by[('checkpoint', k)]['time_s'] / t_none:.2f}x"
        lines.append(f"{k:>3} | " + " | ".join(f"{c:>22}" for c in cells) + " | " + ratios)
    return "\n".join(lines)


@benchmark("glow_memory", "peak memory and time of a Glow training step vs depth K: ordinary, invertible backprop, "
                          "checkpointing (targets: invertible memory(K=32) <= 1.3x K=4; time <= 1.6x ordinary)")
def glow_memory(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks glow_memory")
    p.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32], help="steps of flow per level (K)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128, help="channels of the couplings' networks")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed steps after the first (median)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(RESULTS), help="where to write the rows as JSON (the lesson reads it)")
    opts = p.parse_args(args)
    threads = set_threads()
    rows = []
    for k in opts.depths:  # alternate the strategies at each depth, so that a change of load hits all three
        for s in STRATEGIES:
            row = _run_one(s, k, opts)
            print(f"  K={k:>2} {s:>10}: step memory {row['step_mb']:7.1f} MB, {row['time_s']:.2f} s/step "
                  f"(CPU {row['cpu_s']:.2f} s, {row['page_faults_per_step']} page faults)", flush=True)
            rows.append(row)
    print(table(rows))
    by = {(r["strategy"], r["depth"]): r for r in rows}
    k0, k1 = min(opts.depths), max(opts.depths)
    for s in STRATEGIES:
        ratio = by[(s, k1)]["step_mb"] / by[(s, k0)]["step_mb"]
        report("glow_memory", f"step_memory_ratio_K{k1}_over_K{k0}_{s}", round(ratio, 3), "x",
               1.3 if s == "invertible" else None, ratio <= 1.3 if s == "invertible" else None,
               step_mb={k: by[(s, k)]["step_mb"] for k in opts.depths}, threads=threads)
    for s in ("invertible", "checkpoint"):
        for key, what in (("time_s", "wall"), ("cpu_s", "cpu")):
            if key not in by[(s, k1)]:
                continue
            ratio = by[(s, k1)][key] / by[("none", k1)][key]
            report("glow_memory", f"{what}_time_per_step_ratio_{s}_over_none_K{k1}", round(ratio, 3), "x",
                   1.6 if s == "invertible" else None, ratio <= 1.6 if s == "invertible" else None,
                   seconds={k: by[(s, k)][key] for k in opts.depths},
                   seconds_none={k: by[("none", k)][key] for k in opts.depths}, threads=threads)
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python -m benchmarks glow_memory " + " ".join(args), "machine": machine(),
                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")
    print(f"rows written to {out}")


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "--worker":
        _, _, strategy, depth, batch, hidden, levels, repeats, device = sys.argv
        print(json.dumps(worker(strategy, int(depth), int(batch), int(hidden), int(levels), int(repeats), device)))
    else:
        sys.exit("run it as: python -m benchmarks glow_memory [--help]")
