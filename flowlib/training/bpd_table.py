"""The Fashion-MNIST bits/dim table of lesson 07: several model families under ONE convention.

    python -m flowlib.training.bpd_table                    # all rows, all 10,000 test images; writes data/results/
    python -m flowlib.training.bpd_table --images 500 --no-write --models histogram-per-position realnvp-fmnist

The convention (``flowlib.images``): 8-bit pixels, uniform dequantization y = x + u with u ~ U[0, 1)^D, and
bits/dim = -E_u[log q(x + u)] / (D ln 2), an upper bound on each model's discrete code length; every model's
pre-processing log-det is inside its log q. The test images are all 10,000 of the Fashion-MNIST test set, the
noise is seeded (``flowlib.training.images.evaluate``, seed 1234), and nothing is tuned on them.

Rows (each a ``ROWS`` key):
  uniform                   q = 256^-D: exactly 8 bits/dim (the raw bytes; a check of the arithmetic)
  histogram-pooled          independent pixels, one level histogram for all positions (lesson 05's baseline)
  histogram-per-position    independent pixels, one level histogram per position (D x 256 counts)
  vae-fmnist-elbo           the small VAE's ELBO (one posterior sample per image), pre-processing log-det included
  vae-fmnist-iwae           the same VAE's importance-weighted bound with K samples (tighter; still a bound)
  realnvp-fmnist            lesson 05's multi-scale RealNVP (exact log-likelihood of y)
  glow-fmnist               lesson 06's Glow (exact log-likelihood of y)
Parameters, training time, hardware and the training command come from ``data/checkpoints/manifest.json``; the
histograms are fitted here, on the 58,000 training images that lesson 05's split keeps for training (smoothing picked
on its 2,000 validation images). A checkpoint that is missing stops the script with the command that recreates it:
a row is never left out silently.

Output: ``data/results/fmnist_bpd_table.json`` (the rows) and ``.log`` (the same as a table, with timings).
``python -m benchmarks fmnist_bpd_table`` recomputes every row from the shipped checkpoints and compares.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import shlex
import sys
import time

import torch

from flowlib.training import checkpoints
from flowlib.data.fashion_mnist import load as load_fashion_mnist
from flowlib.image_baselines import ImportanceWeighted, fit_histogram
from flowlib.training.images import CONFIGS, data_splits, evaluate, load_pretrained_model

RESULTS_DIR = checkpoints.CHECKPOINT_DIR.parent / "results"
TABLE = RESULTS_DIR / "fmnist_bpd_table.json"
IWAE_K = 256
FLOWS = ("realnvp-fmnist", "glow-fmnist")
ROWS = ("uniform", "histogram-pooled", "histogram-per-position", "vae-fmnist-elbo", "vae-fmnist-iwae", *FLOWS)
BOUND = {
    "uniform": "exact (8 bits/dim by construction)",
    "histogram-pooled": "exact discrete cross-entropy (piecewise-constant density: the bound is tight)",
    "histogram-per-position": "exact discrete cross-entropy (piecewise-constant density: the bound is tight)",
    "vae-fmnist-elbo": "ELBO (1 sample) + dequantization bound: looser than the VAE's true likelihood",
    "vae-fmnist-iwae": "importance-weighted bound (K samples) + dequantization bound",
    "realnvp-fmnist": "exact log q(y) + dequantization bound",
    "glow-fmnist": "exact log q(y) + dequantization bound",
}
FAMILY = {"uniform": "none", "histogram-pooled": "independent pixels", "histogram-per-position": "independent pixels",
          "vae-fmnist-elbo": "VAE", "vae-fmnist-iwae": "VAE", "realnvp-fmnist": "flow (RealNVP, lesson 05)",
          "glow-fmnist": "flow (Glow, lesson 06)"}


class _Uniform(torch.nn.Module):
    def log_prob(self, y):
        return torch.full((y.shape[0],), -y[0].numel() * math.log(256.0), dtype=torch.float64)


def _machine() -> str:
    return (f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} thread(s), "
            f"torch {torch.__version__}")


def compute_row(name: str, test: torch.Tensor, iwae_k: int = IWAE_K, log=print, _cache: dict | None = None) -> dict:
    """One row of the table on the integer test images ``test``."""
    if name not in ROWS:
        raise ValueError(f"unknown row {name!r}; choose from {list(ROWS)}.")
    cache = _cache if _cache is not None else {}
    row = {"row": name, "family": FAMILY[name], "bound": BOUND[name], "test_images": int(test.shape[0])}
    t0 = time.perf_counter()
    if name == "uniform":
        model, extra = _Uniform(), {"parameters": 0, "train_seconds": 0.0}
    elif name.startswith("histogram"):
        train, val, _ = data_splits(CONFIGS["realnvp-fmnist"])
        kind = name.split("-", 1)[1].replace("-", "_")
        t_fit = time.perf_counter()
        model = fit_histogram(train, val, kind=kind)
        fit_seconds = time.perf_counter() - t_fit
        extra = {"parameters": int(model.log_p.numel()), "train_seconds": round(fit_seconds, 1),
                 "train_images": int(train.shape[0]), "alpha": model.alpha,
                 "hardware": _machine(), "command": "fitted by python -m flowlib.training.bpd_table (counting)"}
    else:
        ckpt = name.rsplit("-", 1)[0] if name.startswith("vae") else name
        if ckpt not in cache:
            cache[ckpt] = load_pretrained_model(ckpt)  # raises CheckpointError with the command if missing
        vae, entry = cache[ckpt]
        model = ImportanceWeighted(vae, iwae_k) if name.endswith("iwae") else vae
        extra = {k: entry[k] for k in ("parameters", "train_seconds", "hardware", "command", "steps", "date")}
        extra["checkpoint"], extra["checkpoint_sha256"] = entry["file"], entry["sha256"]
        if name.endswith("iwae"):
            extra["iwae_k"] = iwae_k
    torch.manual_seed(0)  # the VAE's posterior samples; the dequantization noise has its own seed in evaluate()
    bpd = evaluate(model, test, batch_size=100 if name.endswith("iwae") else 500, device=torch.device("cpu"))
    row.update(extra)
    row["bpd"] = round(bpd, 4)
    row["eval_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"{name}: {bpd:.4f} bits/dim on {test.shape[0]} test images ({row['eval_seconds']} s)")
    return row


def compute_table(rows=ROWS, n_images: int | None = None, iwae_k: int = IWAE_K, log=print) -> list[dict]:
    test, _ = load_fashion_mnist("test")
    if n_images is not None:
        test = test[:n_images]
    cache: dict = {}
    return [compute_row(r, test, iwae_k, log, cache) for r in rows]


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | family | bits/dim | bound | parameters | training | hardware |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        minutes = r.get("train_seconds", 0.0) / 60
        train = "—" if r["row"] == "uniform" else (f"{minutes:.1f} min" if minutes >= 0.1
                                                    else f"{r.get('train_seconds', 0):.1f} s")
        lines.append(f"| {r['row']} | {r['family']} | {r['bpd']:.4f} | {r['bound']} | {r.get('parameters', 0):,} | "
                     f"{train} | {r.get('hardware', '—')} |")
    return "\n".join(lines)


def load_table(path: str | os.PathLike = TABLE) -> dict:
    """The committed table (``data/results/fmnist_bpd_table.json``); says how to make it if it is missing."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no bits/dim table at {path}; make it with: python -m flowlib.training.bpd_table")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.training.bpd_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(ROWS), choices=ROWS, metavar="ROW",
                   help=f"rows to compute (default: all): {', '.join(ROWS)}")
    p.add_argument("--images", type=int, default=None, help="only the first N test images (default: all 10,000)")
    p.add_argument("--iwae-k", type=int, default=IWAE_K, help=f"importance samples of the VAE bound ({IWAE_K})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=pathlib.Path, default=TABLE, help="the JSON to write (.log next to it)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--update", action="store_true",
                   help="recompute only --models and keep the other rows of the existing table (e.g. after a new "
                        "Glow checkpoint: --models glow-fmnist --update)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    command = "python -m flowlib.training.bpd_table " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                  else sys.argv[1:]))
    log(f"{command.strip()}  ({datetime.datetime.now().isoformat(timespec='seconds')}, {_machine()})")
    t0 = time.perf_counter()
    rows = compute_table(args.models, args.images, args.iwae_k, log)
    if args.update:
        old = load_table(args.out)
        if args.images is not None and args.images != old["test_images"]:
            raise SystemExit(f"--update: the table has {old['test_images']} test images, not {args.images}.")
        new = {r["row"]: r for r in rows}
        rows = [new.pop(r["row"], r) for r in old["rows"]] + list(new.values())
        rows.sort(key=lambda r: ROWS.index(r["row"]))
        command = f"{old['command']}; then {command.strip()}"
    table = format_table(rows)
    log("\n" + table)
    log(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": command.strip(), "date": datetime.date.today().isoformat(), "machine": _machine(),
                   "convention": "flowlib.images.bits_per_dim: 8-bit pixels, uniform dequantization y = x + u, "
                                 "u ~ U[0,1)^D, bits/dim = -E log q(y) / (D ln 2); noise seed 1234",
                   "test_images": rows[0]["test_images"], "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        args.out.with_suffix(".log").write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.log')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
