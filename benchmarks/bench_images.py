"""Fashion-MNIST: loading time, and the shipped multi-scale RealNVP's test bits/dim recomputed from its checkpoint."""
from __future__ import annotations

import argparse
import time

from .harness import benchmark, median_time, report, set_threads


@benchmark("fmnist_load", "time to load and verify the whole Fashion-MNIST from local files (target < 5 s)")
def fmnist_load(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks fmnist_load")
    p.add_argument("--repeats", type=int, default=3)
    opts = p.parse_args(args)
    set_threads()
    from flowlib.data import fashion_mnist

    fashion_mnist.locate()  # a first download, if any, is not part of the figure

    def load_all() -> None:
        fashion_mnist.load("train")
        fashion_mnist.load("test")

    med, times = median_time(load_all, opts.repeats, warmup=0)
    report("fmnist_load", "load_and_verify_train_and_test_s", round(med, 2), "s", 5.0, med < 5.0,
           repeats=opts.repeats, folder=str(fashion_mnist.locate()))


@benchmark("fmnist_bpd", "test bits/dim of the shipped multi-scale RealNVP, recomputed (target <= 3.5)")
def fmnist_bpd(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks fmnist_bpd")
    p.add_argument("--name", default="realnvp-fmnist")
    p.add_argument("--images", type=int, default=10000, help="how many test images (all 10,000 by default)")
    p.add_argument("--threads", type=int, default=None)
    opts = p.parse_args(args)
    threads = set_threads(opts.threads)
    from flowlib.data import fashion_mnist
    from flowlib.training.images import evaluate, load_pretrained_model

    model, entry = load_pretrained_model(opts.name)
    test, _ = fashion_mnist.load("test")
    t0 = time.perf_counter()
    bpd = evaluate(model, test[: opts.images])
    seconds = time.perf_counter() - t0
    report("fmnist_bpd", f"{opts.name}_test_bpd", round(bpd, 4), "bits/dim", 3.5, bpd <= 3.5,
           test_images=min(opts.images, test.shape[0]), manifest_test_bpd=entry["test_bpd"],
           agrees_with_manifest=abs(bpd - entry["test_bpd"]) < 1e-3 if opts.images >= entry["test_images"] else None,
           train_minutes=round(entry["train_seconds"] / 60, 1), train_hardware=entry["hardware"],
           train_command=entry["command"], eval_seconds=round(seconds, 1), eval_threads=threads)
