"""Lesson 07: the exact encode/decode round trip over the whole test set, and the bits/dim table recomputed."""
from __future__ import annotations

import argparse
import time

from .harness import benchmark, report, set_threads

ROUND_TRIP_TARGET = 1e-4  # max |decode(encode(x)) - (x + 1/2)|, float32 latents, on both scales below


@benchmark("latent_round_trip", "max encode/decode error of a shipped image model over all 10,000 test images "
                                "(target < 1e-4, float32 latents, pixel units and [0, 1] scale), computed in float64 "
                                "(the default) and in float32, and the time each takes")
def latent_round_trip(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks latent_round_trip")
    p.add_argument("--model", default="glow-fmnist", help="manifest name of the shipped model")
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--precision", choices=["both", "float64", "model"], default="both",
                   help="encode/decode's precision: float64 (their default: computed in float64, float32 latents in "
                        "and out), model (computed in the model's own float32: the fast path that shows the "
                        "rounding), or both, batch by batch one after the other, so that their times compare")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float64: the same checkpoint moved to float64 (model.double()), float64 latents")
    opts = p.parse_args(args)
    threads = set_threads()
    import torch

    from flowlib import latents
    from flowlib.data import fashion_mnist
    from flowlib.training.images import load_pretrained_model

    model, entry = load_pretrained_model(opts.model)
    if opts.dtype == "float64":
        model = model.double()
    test, _ = fashion_mnist.load("test")
    test = test[: opts.images]
    precisions = ["float64", "model"] if opts.precision == "both" else [opts.precision]
    runs = {q: dict(net=latents._computing_model(model, q), worst=0.0, exact=0, worst_z=0.0, within=0, wall=0.0,
                    cpu=0.0) for q in precisions}  # net: the model (or its float64 copy) that encode/decode run
    for i in range(0, test.shape[0], 500):
        x = test[i: i + 500]
        for q, r in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            z = latents.encode(model, x, precision=q)
            y = latents.decode(model, z, precision=q)
            r["wall"] += time.perf_counter() - t0  # encode + decode only
            r["cpu"] += time.process_time() - c0
            assert z.dtype == y.dtype == latents._dtype(model)  # latents and images in the model's dtype
            err = (y.double() - x.double() - latents.DEQUANTIZATION_OFFSET).abs().reshape(x.shape[0], -1).max(1).values
            r["worst"] = max(r["worst"], float(err.max()))
            r["within"] += int((err < ROUND_TRIP_TARGET).sum())
            r["exact"] += int((latents.to_pixels(y) == x).reshape(x.shape[0], -1).all(1).sum())
            with torch.no_grad():  # the other way round, z -> y -> z, in the same precision
                z_again = r["net"].flow(y.to(latents._dtype(r["net"])))[0].to(z.dtype)
            r["worst_z"] = max(r["worst_z"], float((z_again - z).abs().max()))
    for q, r in runs.items():
        common = dict(test_images=int(test.shape[0]), images_recovered_exactly=r["exact"],
                      images_within_target_pixel_units=r["within"], latent_max_abs_error=float(f"{r['worst_z']:.3g}"),
                      dtype=opts.dtype, precision=q, encode_decode_seconds=round(r["wall"], 1),
                      encode_decode_cpu_seconds=round(r["cpu"], 1), threads=threads,
                      checkpoint_sha256=entry["sha256"])
        # The same error on two scales: the course's pixel units (y in [0, 256)), and the [0, 1] scale that the
        # flow's first pre-processing step maps them to (and that most papers' images use).
        suffix = "_float64" if opts.dtype == "float64" else ("" if q == "float64" else "_model_precision")
        worst = r["worst"]
        for metric, value, unit in ((f"{opts.model}_max_abs_error_pixel_units{suffix}", worst, "pixel units (0-256)"),
                                    (f"{opts.model}_max_abs_error_01_scale{suffix}", worst / 256, "[0, 1] image scale")):
            report("latent_round_trip", metric, float(f"{value:.3g}"), unit, ROUND_TRIP_TARGET,
                   value < ROUND_TRIP_TARGET, **common)
    if len(runs) == 2 and opts.dtype == "float32":  # what the accurate default costs, measured side by side
        a, b = runs["float64"], runs["model"]
        report("latent_round_trip", f"{opts.model}_encode_decode_time_float64_over_float32", round(a["cpu"] / b["cpu"], 2),
               "ratio of CPU seconds", None, None, cpu_seconds_float64=round(a["cpu"], 1),
               cpu_seconds_float32=round(b["cpu"], 1), wall_seconds_float64=round(a["wall"], 1),
               wall_seconds_float32=round(b["wall"], 1), test_images=int(test.shape[0]), threads=threads)


@benchmark("fmnist_bpd_table", "lesson 07's Fashion-MNIST bits/dim table recomputed from the shipped checkpoints and "
                               "compared with data/results/fmnist_bpd_table.json (target |difference| < 1e-3)")
def fmnist_bpd_table(args: list[str]) -> None:
    from flowlib.training import bpd_table

    p = argparse.ArgumentParser(prog="python -m benchmarks fmnist_bpd_table")
    p.add_argument("--rows", nargs="+", default=None, choices=bpd_table.ROWS, help="default: every row of the file")
    opts = p.parse_args(args)
    set_threads()
    from flowlib.data import fashion_mnist

    table = bpd_table.load_table()
    committed = {r["row"]: r for r in table["rows"]}
    test, _ = fashion_mnist.load("test")
    test = test[: table["test_images"]]
    cache: dict = {}
    for name in opts.rows or list(committed):
        if name not in committed:
            raise SystemExit(f"the table has no row {name!r}; it has {list(committed)}.")
        row = bpd_table.compute_row(name, test, committed[name].get("iwae_k", bpd_table.IWAE_K), log=lambda m: None,
                                    _cache=cache)
        old = committed[name]
        same_checkpoint = old.get("checkpoint_sha256") == row.get("checkpoint_sha256")
        diff = abs(row["bpd"] - old["bpd"])
        report("fmnist_bpd_table", f"{name}_bpd_abs_difference", round(diff, 5), "bits/dim", 1e-3,
               diff < 1e-3 and same_checkpoint, bpd=row["bpd"], committed_bpd=old["bpd"], same_checkpoint=same_checkpoint,
               test_images=row["test_images"], eval_seconds=row["eval_seconds"],
               note=None if same_checkpoint else "the checkpoint changed since the table was written: rerun "
                                                 f"python -m flowlib.training.bpd_table --models {name} --update")


# The shipped Glow's 20 test images with the largest float32 round-trip error (precision="model", batches of 500,
# all 10,000 images sorted by their largest pixel error; 2026-12-02): the worst cases for the layer-by-layer look.
WORST_FLOAT32_ROUND_TRIP = [4114, 6573, 1278, 3129, 8742, 2590, 5952, 6792, 3662, 2144, 6528, 1830, 5959, 697, 532,
                            7006, 870, 6982, 5112, 8827]


@benchmark("latent_round_trip_layers", "where the float32 round-trip error comes from: encode vs decode, and each kind "
                                       "of layer computed in float32 inside an otherwise float64 computation")
def latent_round_trip_layers(args: list[str]) -> None:
    """Diagnosis of the float32 round trip, against a float64 copy of the same model (copy.deepcopy(model).double()).

    Direction: decode64(encode32) is encode's error alone, decode32(float32(encode64)) decode's, and
    decode64(float32(encode64)) the floor that float32 latents set. Layers: one kind of layer at a time computed in
    float32 (its input rounded to float32, its output back to float64), everything else in float64, in the encoding
    direction only (then decoded in float64) or the decoding direction only (from the float64 latent). For the
    couplings, the network (h, t) = NN(x_a) and the affine map x_b * exp(s) + t are also taken apart. Last, the
    cheapest mixed scheme: the coupling networks in float32 in both directions, everything else in float64.
    """
    import copy

    p = argparse.ArgumentParser(prog="python -m benchmarks latent_round_trip_layers")
    p.add_argument("--model", default="glow-fmnist")
    p.add_argument("--images", type=int, default=200, help="the first N test images, besides the 20 worst")
    opts = p.parse_args(args)
    threads = set_threads()
    import torch

    from flowlib.bijections.conv1x1 import InvConv1x1LU
    from flowlib.bijections.elementwise import Affine, Logit
    from flowlib.bijections.glow import GlowCoupling, SplitPrior
    from flowlib.bijections.normalization import ActNorm
    from flowlib.data import fashion_mnist
    from flowlib.training.images import load_pretrained_model

    m32, entry = load_pretrained_model(opts.model)
    m64 = copy.deepcopy(m32).double()
    test, _ = fashion_mnist.load("test")
    worst = WORST_FLOAT32_ROUND_TRIP if opts.model == "glow-fmnist" else []
    idx = worst + [i for i in range(opts.images) if i not in worst]
    y0 = test[idx].double() + 0.5
    t_start = time.perf_counter()
    layers32 = dict(m32.named_modules())

    def fwd(m, y):
        with torch.no_grad():
            return m.flow(y)[0]

    def inv(m, z):
        with torch.no_grad():
            return m.flow.inverse(z)[0]

    def line(what: str, y) -> None:
        err = (y.double() - y0).abs().reshape(len(idx), -1).max(1).values
        report("latent_round_trip_layers", what, float(f"{float(err.max()):.3g}"), "pixel units (0-256)", None, None,
               worst_20=float(f"{float(err[:len(worst)].max()):.3g}") if worst else None,
               others=float(f"{float(err[len(worst):].max()):.3g}"), median=float(f"{float(err.median()):.3g}"),
               images=len(idx), threads=threads, checkpoint_sha256=entry["sha256"])

    z32, z64 = fwd(m32, y0.float()), fwd(m64, y0)
    line("float32_encode_and_decode", inv(m32, z32))
    line("encode_error_alone_decode64_of_encode32", inv(m64, z32.double()))
    line("decode_error_alone_decode32_of_float32_encode64", inv(m32, z64.float()))
    line("floor_decode64_of_float32_encode64", inv(m64, z64.float().double()))

    def whole_layer(name, layer, direction):  # this layer's own computation in float32
        run32 = getattr(layers32[name], "_" + direction)
        setattr(layer, "_" + direction, lambda v: tuple(t.double() for t in run32(v.float())))

    def network(name, layer, direction):  # the coupling's network in float32, its affine map in float64
        net32 = layers32[name].net
        layer.net.forward = lambda v: net32(v.float()).double()

    def affine_map(name, layer, direction):  # the network in float64, the coupling's affine map in float32
        def run(v):
            a, b = v[:, : layer.c_a], v[:, layer.c_a:]
            s, t = (u.float() for u in layer._params(a))
            out = b.float() * s.exp() + t if direction == "forward" else (b.float() - t) * (-s).exp()
            return torch.cat([a, out.double()], 1), (s if direction == "forward" else -s).double().sum((1, 2, 3))
        setattr(layer, "_" + direction, run)

    kinds = [("preprocessing", (Affine, Logit), whole_layer), ("actnorm", (ActNorm,), whole_layer),
             ("lu_1x1_convolution", (InvConv1x1LU,), whole_layer), ("coupling", (GlowCoupling,), whole_layer),
             ("coupling_network", (GlowCoupling,), network), ("coupling_affine_map", (GlowCoupling,), affine_map),
             ("split_prior", (SplitPrior,), whole_layer)]
    for label, types, how in kinds:
        for direction in ("forward", "inverse"):
            m = copy.deepcopy(m64)
            for name, layer in m.named_modules():
                if isinstance(layer, types):
                    how(name, layer, direction)
            y = inv(m64, fwd(m, y0)) if direction == "forward" else inv(m, z64)
            line(f"float32_only_in_{label}_{'encoding' if direction == 'forward' else 'decoding'}", y)
    # the cheapest mixed scheme: every coupling network in float32 both ways (they are most of the cost), the rest in
    # float64, float32 latents in between; the networks' rounding no longer cancels once the latent is rounded
    m = copy.deepcopy(m64)
    for name, layer in m.named_modules():
        if isinstance(layer, GlowCoupling):
            network(name, layer, None)
    line("float32_coupling_networks_both_ways_rest_float64", inv(m, fwd(m, y0).float().double()))
    print(f"# {time.perf_counter() - t_start:.0f} s", flush=True)
