# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 06 — Glow: ActNorm, invertible 1×1 convolutions, and training that scales
#
# Lesson 05 built a multi-scale RealNVP. Glow (Kingma & Dhariwal 2018) keeps its skeleton — squeeze, couplings,
# factor out half the channels, one flat latent — and changes what happens inside a level. One **step of flow** is
#
# $$\text{ActNorm} \;\to\; \text{invertible } 1{\times}1 \text{ convolution} \;\to\; \text{affine coupling},$$
#
# and the half that a level factors out gets a **learned prior** instead of a fixed N(0, I). Each change fixes
# something a practitioner meets: badly scaled activations at the start, a fixed channel order, a deep stack that
# starts far from the identity. This lesson builds each layer, checks it by brute force like every flow in the
# course, trains the whole model, and reproduces the bugs that real Glow code shipped.
#
# **Learning goals.** After this lesson you can
# - explain ActNorm's data-dependent initialisation, compute it by hand, and say why its "initialised" flag must be
#   saved with the weights;
# - derive the log-determinant of a 1×1 convolution over an H×W image, and explain why the LU parameterisation
#   makes it O(C) instead of O(C³) — and measure it;
# - explain zero initialisation and the learned prior, and check every layer with `flowlib.testing`;
# - train Glow on a CPU or on one or several GPUs with one command, and read the ablation that motivated the 1×1
#   convolution;
# - recognise four failure modes of public Glow code and the test that guards against each.
#
# **Prerequisites.** Lessons 04 (coupling layers) and 05 (dequantization, bits/dim, squeeze, multi-scale).
#
# **Estimated time.** 60–75 minutes; running all cells takes 1.5 minutes (the checkpoint stands in for hours of training).

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import copy
import json
import math
import pathlib
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import flowlib as fl
from flowlib import images, testing
from flowlib.data import fashion_mnist
from flowlib.bijections import ActNorm, GlowCoupling, InvConv1x1, InvConv1x1LU, SplitPrior
from flowlib.builders import glow, glow_flow
from flowlib_teaching.exercises.lesson06 import check_actnorm_init, check_conv1x1_logdet, check_glow_latent_shapes
from flowlib_teaching.plot_images import show_images
from flowlib.training import NonFiniteLossError, fit

device = fl.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = fl.fast_mode()  # the test suite sets FLOWS_FAST=1: fewer steps and images, same code
RETRAIN = False  # True: train the shipped Glow yourself (hours on a CPU; see section 6 for GPU commands)
RESULTS = pathlib.Path(fl.__file__).resolve().parents[1] / "data" / "results"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The data, in the space where Glow's layers work
#
# Glow's layers see what lesson 05's pre-processing makes of a dequantized image: y = x + u, scaled to (λ, 1 − λ)
# and sent through a logit, then squeezed to 4 channels of 14×14. Here is a batch of that, with its statistics per
# channel: every channel has a mean far from 0 and a spread far from 1 — a deep stack of freshly built layers would
# start on badly scaled inputs.

# %%
train_images, _ = fashion_mnist.load("train")
test_images, test_labels = fashion_mnist.load("test")
pre = images.logit_preprocessing(256, 0.05)
batch = images.dequantize(train_images[torch.randperm(60000)[:256]])
with torch.no_grad():
    h, _ = fl.Squeeze((1, 28, 28))(pre(batch)[0])  # (256, 4, 14, 14)
print("squeezed, logit-space batch:", tuple(h.shape))
print("per-channel mean:", h.mean((0, 2, 3)).numpy().round(3), "| per-channel std:", h.std((0, 2, 3)).numpy().round(3))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. ActNorm: a per-channel affine map that starts from the data
#
# For x of shape (B, C, H, W), with one log-scale $s_c$ and one shift $b_c$ per channel:
#
# $$z_{:,c,h,w} = x_{:,c,h,w}\, e^{s_c} + b_c, \qquad \log\left|\det \frac{\partial z}{\partial x}\right| = H\cdot W \sum_c s_c .$$
#
# The **H·W** is there because every one of the H·W pixels of channel c is scaled by $e^{s_c}$ (the Jacobian is
# diagonal with each $e^{s_c}$ repeated H·W times); public code has shipped without it.
#
# **Data-dependent initialisation.** On the *first* training batch, ActNorm sets $s_c = -\log \sigma_c$ and
# $b_c = -\mu_c/\sigma_c$ (mean and standard deviation of channel c over the batch and all pixels), so that batch
# comes out with mean 0 and variance 1 per channel. From then on $s$ and $b$ are ordinary parameters. Unlike
# BatchNorm there are no batch statistics at training or test time: each image's density depends on that image
# alone. Here is ActNorm written from the formula, then compared with `flowlib`'s:

# %% slideshow={"slide_type": "subslide"}
class MyActNorm(fl.Flow):
    """z = x * exp(s) + b per channel; the first forward call sets s, b from the batch."""

    def __init__(self, channels):
        super().__init__()
        self.s = torch.nn.Parameter(torch.zeros(channels))
        self.b = torch.nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialised", torch.tensor(False))  # a buffer: saved with the weights

    def _forward(self, x):
        if not self.initialised:
            with torch.no_grad():
                mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3), unbiased=False)
                self.s.copy_(-std.log())
                self.b.copy_(-mean / std)
                self.initialised.fill_(True)
        z = x * self.s.exp().view(1, -1, 1, 1) + self.b.view(1, -1, 1, 1)
        return z, (x.shape[2] * x.shape[3] * self.s.sum()).expand(x.shape[0])

    def _inverse(self, z):
        x = (z - self.b.view(1, -1, 1, 1)) * (-self.s).exp().view(1, -1, 1, 1)
        return x, (-z.shape[2] * z.shape[3] * self.s.sum()).expand(z.shape[0])


mine, theirs = MyActNorm(4), ActNorm(4, (4, 14, 14))
z_mine, ld_mine = mine(h)
z_lib, ld_lib = theirs(h)
print("after initialisation: per-channel mean", z_lib.mean((0, 2, 3)).detach().numpy().round(4),
      "| std", z_lib.std((0, 2, 3), unbiased=False).detach().numpy().round(4))
print(f"mine vs flowlib: max |z difference| = {float((z_mine - z_lib).detach().abs().max()):.1e}, "
      f"log-det {float(ld_mine[0].detach()):.2f} vs {float(ld_lib[0].detach()):.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same brute-force checks as for every flow of the course (the log-det against the autograd Jacobian in
# float64), on a small image so the Jacobian is cheap. A channel that is *constant* over the first batch has
# σ = 0; `flowlib`'s ActNorm then leaves its scale at 1 instead of dividing by zero (a NaN reported against a
# public flows library).

# %%
small = ActNorm(3, (3, 2, 2))
small(torch.randn(16, 3, 2, 2) * 3 + 1)  # initialise on one batch ...
x_small = torch.randn(4, 3, 2, 2, dtype=torch.float64)  # ... check on another
print(testing.check_round_trip(small, x_small))
print(testing.check_logdet(small, x_small))
constant = torch.randn(8, 2, 3, 3)
constant[:, 1] = 4.0  # channel 1 is constant in the first batch
z_c, ld_c = ActNorm(2)(constant)
print("constant channel: output finite:", bool(torch.isfinite(z_c).all()), "| log-det finite:",
      bool(torch.isfinite(ld_c).all()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The invertible 1×1 convolution
#
# A coupling transforms one half of the channels given the other, so between couplings something must move
# information across the halves. RealNVP reversed the channel order; Glow *learns* the mixing: a C×C matrix W
# applied at every pixel, $z_{:,:,h,w} = W\, x_{:,:,h,w}$ — a 1×1 convolution. Ordering the variables pixel by pixel,
# its Jacobian is block-diagonal with H·W copies of W, so
#
# $$\log\left|\det \frac{\partial z}{\partial x}\right| = H\cdot W \cdot \log|\det W| .$$
#
# Below, the autograd Jacobian of a 1×1 convolution on a 3-channel 2×3 image, with rows and columns ordered pixel by
# pixel: six copies of the same 3×3 block.

# %%
conv = InvConv1x1(3, (3, 2, 3), seed=0)
with torch.no_grad():
    conv.weight.add_(0.3 * torch.randn(3, 3))  # a general W (it starts orthogonal: |det| = 1, log|det| = 0)
x_img = torch.randn(1, 3, 2, 3, dtype=torch.float64)
conv64 = copy.deepcopy(conv).double()
J = testing.jacobian(lambda v: conv64(v)[0], x_img)[0]  # (18, 18), channel-major order (c, h, w)
pixel_major = torch.arange(18).reshape(3, 6).T.reshape(-1)  # reorder to (h, w, c)
J_pix = J[pixel_major][:, pixel_major]
fig, ax = plt.subplots(figsize=(3.6, 3.6))
lim = float(J_pix.abs().max())
ax.imshow(J_pix.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
ax.set_title("Jacobian, pixel-major order:\nH·W = 6 copies of W", fontsize=10)
ax.set_xticks([]), ax.set_yticks([])
plt.show()
print(f"log|det J| by slogdet of the 18x18 Jacobian: {float(torch.linalg.slogdet(J)[1]):.10f}")
print(f"H*W*log|det W| (what the layer returns):      {float(conv64(x_img)[1][0].detach()):.10f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The cost, and the LU trick.** A general `slogdet` of a C×C matrix factorises it: O(C³) work at every training
# step. Glow parameterises W by its LU decomposition, $W = P\,L\,(U + \mathrm{diag}(\mathrm{sign}\cdot e^{\log s}))$:
# P a fixed permutation and the signs fixed (buffers); L unit lower-triangular, U strictly upper-triangular and
# log s (parameters). Then $\det W = \det P \cdot \prod_c \mathrm{sign}_c\, e^{\log s_c}$ and
# $\log|\det W| = \sum_c \log s_c$: O(C). The inverse needs no matrix inverse either — two triangular solves.
# (The forward pass still builds W from its factors to convolve with it: one C×C product L·U′, O(C³). P costs no
# product: multiplying by a permutation matrix only reorders rows, so the layer indexes the rows of L·U′ instead.
# LU saves the determinant, not every O(C³) operation of the layer; `benchmarks/README.md` measures both.) Measured
# here, for growing C (median of repeated calls, one thread):

# %%
def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


channels = [8, 32, 128, 512] if not FAST else [8, 32, 128]
plain_t, lu_t = [], []
for c in channels:
    plain, lu = InvConv1x1(c, seed=0), InvConv1x1LU(c, seed=0)
    reps = 20 if c < 512 else 5
    plain_t.append(median_seconds(plain.log_abs_det_weight, reps))
    lu_t.append(median_seconds(lambda: lu.log_s.sum(), reps))
    print(f"C = {c:4d}: slogdet (float64) {plain_t[-1] * 1e6:9.1f} µs | LU sum(log s) {lu_t[-1] * 1e6:6.1f} µs | "
          f"ratio {plain_t[-1] / lu_t[-1]:7.1f}x")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(channels, np.array(plain_t) * 1e6, "o-", label="general slogdet, O(C³)")
ax.loglog(channels, np.array(lu_t) * 1e6, "s-", label="LU: sum(log s), O(C)")
ax.set_xlabel("channels C"), ax.set_ylabel("µs per log-det"), ax.legend(fontsize=8)
ax.set_title("cost of log|det W| per training step")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Both parameterisations pass the same checks; the LU layer starts from the LU factors of the same random orthogonal
# matrix (a rotation, or a rotation and a reflection: |det W| = 1 either way), so the two start as the same map.

# %%
lu_small = InvConv1x1LU(4, (4, 2, 2), seed=1)
with torch.no_grad():
    for p in lu_small.parameters():
        p.add_(0.2 * torch.randn(p.shape))  # move away from the start so the check sees a general W
x4 = torch.randn(3, 4, 2, 2, dtype=torch.float64)
print(testing.check_round_trip(lu_small, x4))
print(testing.check_logdet(lu_small, x4))
print("LU and plain start as the same W:", torch.allclose(InvConv1x1(6, seed=3).weight, InvConv1x1LU(6, seed=3).weight(),
                                                          atol=1e-6))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Glow's coupling, zero initialisation, and a learned prior
#
# Glow's coupling splits the channels (not a checkerboard): $x_a$ = the first C/2 channels pass through, and
#
# $$z_b = x_b \odot \sigma(h + 2) + t, \qquad (h, t) = \mathrm{NN}(x_a), \qquad
# \log|\det| = \sum \log \sigma(h + 2).$$
#
# The scale $\sigma(h+2) \in (0, 1)$ can never blow up (an unbounded $e^{h}$ is the classic source of NaNs), and
# the network's **last convolution starts at zero**: at the start h = 0 and t = 0, so every coupling is the same
# gentle contraction by σ(2) ≈ 0.88 (the additive variant, $z_b = x_b + t$, starts as the identity). A stack of 32
# such steps starts tame, and training moves it away gradually.
#
# **The learned prior.** After a level, half the channels $z_{out}$ leave. Glow gives them a Gaussian whose mean and
# scale depend on the kept half: $z_{out} \sim \mathcal N(\mu(z_{keep}), \sigma(z_{keep})^2)$, with μ and log σ from
# a zero-initialised convolution. We write it as one more flow, `SplitPrior`,
# $u_{out} = (z_{out} - \mu(z_{keep}))\, e^{-\log\sigma(z_{keep})}$, followed by N(0, I) on u — the same density,
# and the latent stays the one flat vector of lesson 05, so reconstruction stays exact. Fresh, both are what they
# should be:

# %% slideshow={"slide_type": "subslide"}
x4f = torch.randn(3, 4, 2, 2)
for name, layer in [("additive GlowCoupling", GlowCoupling((4, 2, 2), hidden=8, kind="additive")),
                    ("SplitPrior", SplitPrior((4, 2, 2)))]:
    z, ld = layer(x4f)
    print(f"fresh {name}: identity? {torch.equal(z, x4f)} | log-det {ld.tolist()}")
z, ld = GlowCoupling((4, 2, 2), hidden=8)(x4f)
print(f"fresh affine GlowCoupling: z_b / x_b = {float((z[:, 2:] / x4f[:, 2:]).mean()):.4f} "
      f"(sigmoid(2) = {float(torch.sigmoid(torch.tensor(2.0))):.4f}), z_a unchanged: {torch.equal(z[:, :2], x4f[:, :2])}")
for layer in (GlowCoupling((4, 2, 2), hidden=8), SplitPrior((4, 2, 2))):
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape))  # zero-initialised layers are the identity: perturb to test
    print(testing.check_logdet(layer, x4.clone()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The whole model
#
# `flowlib.builders.glow` assembles it: lesson 05's pre-processing, then for each of L levels a squeeze and K steps
# (ActNorm → 1×1 convolution → coupling), and at every level but the last a split prior and half the channels
# factored out (the last level keeps all its channels and has the standard normal as its prior). For Fashion-MNIST,
# L = 2 (28 → 14 → 7; a third squeeze would need an even 7). The shipped model has K = 16 and 128 hidden channels:

# %%
model_shape = glow((1, 28, 28), levels=2, steps=16, hidden=128)
n_params = sum(p.numel() for p in model_shape.parameters())
ms = model_shape.flow[1]
print(f"Glow L=2, K=16, hidden 128: {n_params:,} parameters")
print("latent of each level:", ms.latent_shapes, "-> one flat latent of", ms.latent_shape[0], "values")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The whole Glow is a `Flow` like any other, so the brute-force check applies to it as a whole — here on a 1×4×4
# image (a 16×16 Jacobian), after ActNorm's initialisation pass and with perturbed weights. And a real image goes
# to its latent and back exactly:

# %%
torch.manual_seed(0)
tiny = glow_flow((1, 4, 4), levels=2, steps=2, hidden=4)
tiny(torch.randn(32, 1, 4, 4))  # ActNorm's data-dependent initialisation
with torch.no_grad():
    for p in tiny.parameters():
        p.add_(0.1 * torch.randn(p.shape))
x16 = torch.randn(3, 1, 4, 4, dtype=torch.float64)
print(testing.check_round_trip(tiny, x16))
print(testing.check_logdet(tiny, x16))

full = glow((1, 28, 28), levels=2, steps=4, hidden=32)
y = images.dequantize(test_images[:16])
with torch.no_grad():
    full.log_prob(y)  # initialise ActNorm
    full.eval()
    z, _ = full.flow(y)
    y_back, _ = full.flow.inverse(z)
print(f"Fashion-MNIST through a fresh Glow and back: max |y - f⁻¹(f(y))| = {float((y_back - y).abs().max()):.2e} "
      f"(pixel units, 0-256), latent {tuple(z.shape)}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Training: one command, from a laptop to several GPUs
#
# The same command trains every image model of the course; it writes a checkpoint every few minutes, when you
# press Ctrl-C and when the session is killed, and resumes from it when run again (the batches and their noise are
# a function of the seed and the step, so a resumed run continues exactly as an uninterrupted one would):
#
# ```bash
# python -m flowlib.training glow-fmnist --threads 1                 # CPU: trains or resumes in runs/glow-fmnist/
# python -m flowlib.training glow-fmnist --device cuda --amp bf16    # one GPU, bf16 mixed precision
# torchrun --standalone --nproc-per-node 4 -m flowlib.training glow-fmnist --amp bf16   # four GPUs (DDP)
# ```
#
# Under `torchrun` each process trains on its share of the same global batch and the gradients are averaged;
# ActNorm's first pass all-reduces its statistics so every process starts from the same parameters (section 8 (d)).
# With `--amp` only the networks inside the couplings run in low precision; every log-determinant and the prior stay
# in float32 (section 8 (c) shows why). CUDA is not available in the course's CI: the tests run every path a CPU can
# run (two processes on the gloo backend, bf16 autocast on the CPU) in `tests/test_glow_training.py`.
#
# Learning-rate warm-up, gradient clipping, a held-out evaluation every epoch, and a stop with the step named if the
# loss is ever NaN (never a skipped step). First the training loop live, on a small Glow for a few steps:

# %%
fl.seed_everything(1)
demo = glow((1, 28, 28), levels=2, steps=fl.pick(4, 2), hidden=fl.pick(32, 16))
demo_steps = fl.pick(200, 10)
batches = (images.dequantize(train_images[torch.randint(0, 60000, (32,))]) for _ in range(demo_steps))
before = float(images.bits_per_dim(demo, test_images[:100]).mean())  # also ActNorm's initialisation pass
history = fit(demo, batches, steps=demo_steps, lr=1e-3)
after = float(images.bits_per_dim(demo, test_images[:100]).mean())
print(f"small Glow ({sum(p.numel() for p in demo.parameters()):,} parameters): {before:.2f} -> {after:.2f} bits/dim "
      f"on 100 test images after {demo_steps} steps ({history.seconds:.0f} s)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The shipped Glow was trained with the command above on one thread of this course's 2-core CPU, over several
# sittings (resuming each time). Its manifest entry says how far it got, how long it took, and its bits/dim on the
# test set; loading it checks its SHA-256.

# %%
from flowlib.training.images import evaluate, load_pretrained_model

if RETRAIN:
    from flowlib.training.images import run

    run("glow-fmnist", workdir=pathlib.Path("runs/glow-fmnist"), release=True)
model, entry = load_pretrained_model("glow-fmnist")
print(f"{entry['file']}: {entry['parameters']:,} parameters, {entry['steps']} steps, "
      f"{entry['train_seconds'] / 3600:.1f} h of training on {entry['hardware']}")
print("command:", entry["command"])
print(f"manifest: test bits/dim {entry['test_bpd']} on {entry['test_images']} test images")
n_eval = fl.pick(1000, 100)
t0 = time.perf_counter()
print(f"recomputed here on the first {n_eval} test images: {evaluate(model, test_images[:n_eval]):.4f} bits/dim "
      f"({time.perf_counter() - t0:.0f} s; the whole test set takes a few minutes)")

# %% slideshow={"slide_type": "subslide"}
val = entry.get("val_bpd", [])
fig, (ax_curve, ax_samples) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 1.4]})
if val:
    steps, bpd = zip(*val)
    ax_curve.plot(steps, bpd, "o-", label="validation (2,000 held-out training images)")
ax_curve.axhline(entry["test_bpd"], color="C1", ls="--", label=f"test: {entry['test_bpd']:.3f}")
ax_curve.set_xlabel("training step"), ax_curve.set_ylabel("bits per dimension"), ax_curve.legend(fontsize=8)
ax_curve.set_title("the shipped Glow's training curve (its manifest)")
fl.seed_everything(3)
with torch.no_grad():
    show_images(images.pixels_from_data(model.sample(24, temperature=0.8)), nrow=8, ax=ax_samples,
                title="samples at temperature 0.8")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. What the 1×1 convolution buys: the paper's ablation, small
#
# Glow's paper compared three ways to mix channels between couplings — reverse the order (RealNVP), a fixed random
# shuffle, a learned 1×1 convolution — each with additive and affine couplings. The same experiment, at a size this
# CPU can afford (a small Glow, the same data order, steps and seed for all six), was run by a committed script;
# the curves below are read from the log it wrote. Read the end of each curve (the legend gives it): for both kinds of
# coupling the order is the paper's, **learned 1×1 convolution < fixed shuffle < reversal**, and the gap is largest with
# affine couplings. Two hundred steps and one seed: a small experiment, which shows the direction, not the size, of
# the paper's effect.

# %%
ablation = json.loads((RESULTS / "glow_ablation.json").read_text())
fig, ax = plt.subplots(figsize=(7, 3.8))
for run_ in ablation["runs"]:
    steps, bpd = zip(*run_["val_bpd"])
    style = "-" if run_["coupling"] == "affine" else "--"
    ax.plot(steps, bpd, style, marker=".", label=f"{run_['mixing']}, {run_['coupling']}: {bpd[-1]:.3f}")
ax.set_xlabel("training step"), ax.set_ylabel("validation bits/dim"), ax.legend(fontsize=8)
ax.set_title(ablation.get("title", "Glow ablation"), fontsize=10)
plt.show()
print("made by:", ablation["command"])

# %% [markdown] slideshow={"slide_type": "subslide"}
# And the paper's headline comparison, RealNVP against Glow **at the same CPU budget** on this machine: lesson 05's
# RealNVP and this lesson's Glow, trained in alternating slices for the same CPU minutes and evaluated on the same
# test images by a committed benchmark (read from the file it wrote):

# %%
for file in ("glow_vs_realnvp.json", "glow_vs_realnvp_10min.json"):  # 2.5 and 10 CPU minutes each
    budget = json.loads((RESULTS / file).read_text())
    for name in ("realnvp", "glow"):
        r = budget[name]
        print(f"{name:8s}: {r['test_bpd']:.4f} bits/dim on {budget['test_images']} test images after {r['steps']} "
              f"steps in {r['minutes']:.1f} CPU min ({r['parameters']:,} parameters, "
              f"{r['train_seconds'] / r['steps']:.2f} s/step)")
    print("made by:", budget["command"], "\n")

# %% [markdown] slideshow={"slide_type": "subslide"}
# (The 2.5-minute run shared the machine with other jobs, load average 6–12 in its file: its CPU seconds per step are
# about 2.5 times the 10-minute run's, so both models got fewer steps for their minutes. Compare the two models
# within a run, not the runs' step counts.) At 2.5 minutes **more steps win**: a Glow step costs more (16 steps of flow per level, each with a 1×1 convolution
# and a coupling network), and in the first minutes every step counts. At 10 minutes each the order has turned: Glow,
# with about two thirds of RealNVP's steps, is ahead by about 0.1 bits/dim. The paper's comparison is at
# convergence. The two shipped runs show the other end, per epoch of the same data (their manifests; the two runs
# had different lengths and machine loads, so compare epochs, not minutes):

# %%
_, realnvp_entry = load_pretrained_model("realnvp-fmnist")
fig, ax = plt.subplots(figsize=(6, 3.2))
for e, label in ((realnvp_entry, "RealNVP (lesson 05)"), (entry, "Glow (this lesson)")):
    steps, bpd = zip(*e["val_bpd"])
    steps_per_epoch = (60000 - e["config"]["val_size"]) // e["config"]["batch_size"]
    epochs = np.array(steps) / steps_per_epoch
    ax.plot(epochs, bpd, "o-", label=f"{label}: test {e['test_bpd']:.4f} after {len(bpd)} epoch(s)")
ax.set_xlabel("epoch"), ax.set_ylabel("validation bits/dim"), ax.legend(fontsize=8)
ax.set_title("the shipped runs, per epoch")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. What goes wrong in real Glow code
#
# Four problems that users of public Glow implementations filed again and again, each reproduced in a few lines,
# next to what `flowlib` does and the test that guards it.
#
# **(a) NaNs and blow-ups at the start of training.** Adam's first steps are large; without a learning-rate
# warm-up a fresh Glow can be thrown far off, and with an unbounded scale that ends in NaN. With `flowlib`'s bounded
# scales it ends in a loss that goes *up* and stays there; if a loss is ever NaN, `fit` stops and names the step
# (`tests/test_train.py`) — a NaN step is never skipped. The cure is a warm-up: the same learning rate, reached
# linearly over the first steps. Below, a small one-level Glow on 14×14 images at a learning rate of 0.1:

# %%
small_train = train_images[:2048, :, ::2, ::2]  # 14x14 images keep this demonstration quick


def train_small(warmup_steps, lr=0.1, steps=fl.pick(60, 30), seed=0):
    fl.seed_everything(seed)
    m = glow((1, 14, 14), levels=1, steps=2, hidden=32)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    g = torch.Generator().manual_seed(seed)
    data = (images.dequantize(small_train[torch.randint(0, 2048, (32,), generator=g)], generator=g)
            for _ in range(steps))
    try:
        hist = fit(m, data, steps=steps, optimizer=opt, scheduler=sched, clip_grad=None, progress=False)
        return np.array(hist.loss) / (196 * math.log(2)), None
    except NonFiniteLossError as err:
        return None, err


fig, ax = plt.subplots(figsize=(6, 3.2))
for warm in (1, 20):
    curve, err = train_small(warm)
    if err is not None:
        print(f"warm-up {warm}: stopped — {err}")
    else:
        ax.plot(curve, label=f"warm-up over {warm} step(s)")
ax.set_xlabel("step"), ax.set_ylabel("training bits/dim"), ax.legend(fontsize=8)
ax.set_title("learning rate 0.1, with and without warm-up")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **(b) ActNorm re-initialising after a reload.** If "initialised" is a plain Python attribute, it is not in the
# `state_dict`: a model loaded from a checkpoint thinks it is fresh and overwrites its trained scales with the
# statistics of its first batch. Planted here, next to `flowlib`'s buffer:

# %%
class PythonFlagActNorm(ActNorm):
    def __init__(self, c):
        super().__init__(c)
        del self.initialised
        self.initialised = torch.tensor(False)  # a plain attribute: not saved


for cls in (PythonFlagActNorm, ActNorm):
    trained = cls(3)
    trained(torch.randn(64, 3, 4, 4) * 5 + 2)
    with torch.no_grad():
        trained.log_scale.add_(0.5)  # what training did
    reloaded = cls(3)
    reloaded.load_state_dict(trained.state_dict())
    reloaded(torch.randn(8, 3, 4, 4))  # the first batch after loading
    same = torch.equal(reloaded.log_scale, trained.log_scale)
    print(f"{cls.__name__:18s}: 'initialised' saved: {'initialised' in trained.state_dict()} | "
          f"trained scales kept after reload: {same}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **(c) The 1×1 convolution's log-det in too low a precision.** The layer multiplies log|det W| by H·W, so any
# error in the determinant is multiplied too. Measured against float64, for a trained-like W (an orthogonal matrix plus a
# small perturbation, entries of standard deviation 0.1/√C, so that W stays equally well conditioned at every C) and H·W = 14·14, in nats per image: the determinant of W computed in float32, and of W rounded to
# bfloat16 or float16 (what happens when mixed-precision training lets the weights or the determinant run in half
# precision):

# %%
for c in ([16, 128, 512] if not FAST else [16, 128]):
    w = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))[0] + 0.1 / c ** 0.5 * torch.randn(c, c, dtype=torch.float64)
    exact = 196 * float(torch.linalg.slogdet(w)[1])
    errors = {"float32": abs(196 * float(torch.linalg.slogdet(w.float())[1]) - exact),  # computed in float32
              "bfloat16": abs(196 * float(torch.linalg.slogdet(w.bfloat16().double())[1]) - exact),  # W rounded
              "float16": abs(196 * float(torch.linalg.slogdet(w.half().double())[1]) - exact)}
    print(f"C = {c:4d}: log-det error per image — " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
          + f" nats (log-det {exact:.0f})")

# %% [markdown]
# float32 is good enough here (its error is far below a thousandth of a bit per dimension); half precision is not.
# `flowlib`'s `InvConv1x1` computes `slogdet` in float64 whatever the model's dtype (`log_abs_det_weight`), the LU
# form needs no determinant at all, and mixed-precision training keeps the log-dets out of half precision;
# `tests/test_glow.py` compares both layers with `slogdet` in float64.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **(d) ActNorm initialised differently on each GPU.** Under data parallelism each process sees its own share of the
# batch; if each initialises ActNorm from its share, the replicas start with different parameters. Two "processes"
# simulated by two halves of one batch:

# %%
batch_global = torch.randn(32, 3, 4, 4) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
shard_0, shard_1 = ActNorm(3), ActNorm(3)
shard_0.initialise(batch_global[:16])
shard_1.initialise(batch_global[16:])
print("per-shard initialisation, log-scales differ by", float((shard_0.log_scale - shard_1.log_scale).abs().max()))
whole = ActNorm(3)
whole.initialise(batch_global)
print("flowlib under torch.distributed all-reduces the sums over every process's share, which gives exactly the "
      "statistics of the whole batch:", whole.log_scale.detach().numpy().round(4))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# **Exercise 1.** Write `conv1x1_logdet(W, H, Wd)`: log|det ∂z/∂x| of a 1×1 convolution with the C×C matrix `W`
# (a float64 tensor) over an image of height H and width Wd. The checker tries several W, one with a negative
# determinant.

# %%
def conv1x1_logdet(W, H, Wd):
    ...  # your answer


check_conv1x1_logdet(conv1x1_logdet)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def conv1x1_logdet(W, H, Wd):
    return H * Wd * torch.linalg.slogdet(W)[1]


check_conv1x1_logdet(conv1x1_logdet, strict=True)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2.** Write `actnorm_init(x)` for a batch x of shape (B, C, H, W): return `(log_scale, shift)`, one
# value per channel each, such that `x * exp(log_scale) + shift` has mean 0 and variance 1 in every channel.

# %%
def actnorm_init(x):
    ...  # your answer


check_actnorm_init(actnorm_init)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def actnorm_init(x):
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
    return -std.log(), -mean / std


check_actnorm_init(actnorm_init, strict=True)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** Write `latent_shapes(shape, levels)`: for an image of shape (C, H, W) and a Glow with `levels`
# levels, the shape of each level's latent (what leaves at that level; the last level keeps everything), as a list
# of (C, H, W) tuples. For Fashion-MNIST with L = 2 the model above printed them.

# %%
def latent_shapes(shape, levels):
    ...  # your answer


check_glow_latent_shapes(latent_shapes)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def latent_shapes(shape, levels):
    c, h, w = shape
    out = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        if level < levels - 1:
            out.append((c // 2, h, w))
            c -= c // 2
        else:
            out.append((c, h, w))
    return out


check_glow_latent_shapes(latent_shapes, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A Glow step is **ActNorm → invertible 1×1 convolution → coupling**; every level ends with a **learned prior**
#   for the half it factors out, written here as a flow so that the latent stays one flat, exactly invertible vector.
# - **ActNorm** starts from the data (mean 0, variance 1 per channel on the first batch); its log-det carries the
#   H·W factor; its "initialised" flag is a buffer, so a reloaded model keeps its trained scales.
# - The **1×1 convolution** has log-det H·W·log|det W|; a general determinant costs O(C³), the **LU**
#   parameterisation O(C), measured above; a determinant in half precision is off by nats per image, so `flowlib`
#   computes it in float64 and keeps log-dets out of mixed precision.
# - **Zero-initialised** couplings and split priors make a deep stack start tame; bounded scales and a learning-rate
#   **warm-up** keep the first steps from blowing up.
# - One command trains every model on a CPU, a GPU or several GPUs, checkpoints and resumes exactly.
#
# **Next:** lesson 07 — what an exact latent and an exact likelihood buy: temperature, interpolation, attribute
# vectors, and what likelihood does not tell.
