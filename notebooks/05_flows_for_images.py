# ---
# jupyter:
#   jupytext:
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
# # Lesson 05 — Flows for images: dequantization, bits per dimension, multi-scale RealNVP
#
# So far our flows modelled a handful of continuous numbers. Images are different in three ways, and each is a place
# where published code has had bugs:
#
# 1. **They are discrete.** A pixel is one of 256 integers; a density on the real line can cheat on such data.
# 2. **They have many dimensions** (784 for a 28×28 image), so the architecture must be cheap and must mix
#    information across the image: *squeeze* and *multi-scale factor-out*.
# 3. **They come from a real dataset** that must be found, checked and loaded the same way on every machine.
#
# **Learning goals.** After this lesson you can
# - explain why a continuous density needs *dequantized* data, and why the result is a bound on the discrete likelihood;
# - compute **bits per dimension** correctly (noise width, scaling, every pre-processing log-det, the real D);
# - check a **squeeze** by hand on a numbered tensor and draw a **multi-scale** flow with its shapes;
# - train a multi-scale RealNVP on Fashion-MNIST, sample from it, reconstruct exactly, and report an honest held-out bits/dim.
#
# **Prerequisites.** Lessons 01–04 (change of variables, composing flows, coupling layers).
#
# **Estimated time.** 60–75 minutes (the shipped checkpoint stands in for an hour of training). Running all cells in
# normal mode takes about 3 minutes (188 s, measured with `python -m benchmarks lesson_times` on 2026-12-02 on our shared 2-core CPU, one thread, load average 2–7).

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

import flowlib as fl
from flowlib import images, testing
from flowlib.data import fashion_mnist
from flowlib_teaching.exercises.lesson05 import check_latent_shapes, check_pipeline_bits_per_dim, check_unsqueeze
from flowlib.builders import multiscale_realnvp, multiscale_realnvp_flow
from flowlib.bijections import Squeeze
from flowlib_teaching.plot_images import describe_multiscale, draw_multiscale, show_images
from flowlib_teaching.plotting import LiveLossPlot
from flowlib.training.images import CONFIGS, evaluate, load_pretrained_model
from flowlib_teaching.widgets.widgets_images import dequantization_width, squeeze_explorer, temperature_samples

device = fl.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = fl.fast_mode()  # the test suite sets FLOWS_FAST=1: fewer steps and images, same code
RETRAIN = False  # True: train the lesson's model yourself (about 80 minutes on one thread) instead of loading it
FULL_EVAL = False  # True: evaluate the shipped model on all 10,000 test images (minutes) instead of a subset

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The data: Fashion-MNIST
#
# 70,000 grey-scale 28×28 images of clothes in 10 classes (60,000 for training, 10,000 for testing), stored as the
# original IDX files. `flowlib.data.fashion_mnist.load` looks for them in a folder you name (`FLOWS_DATA`), in `data/`,
# and where Debian's `dataset-fashion-mnist` package puts them; otherwise it downloads them from their origin.
# Either way it **verifies every file's SHA-256** before using it.

# %%
t0 = time.perf_counter()
train_images, train_labels = fashion_mnist.load("train")
test_images, test_labels = fashion_mnist.load("test")
print(f"loaded and verified in {time.perf_counter() - t0:.1f} s from {fashion_mnist.locate()}")
print("train:", tuple(train_images.shape), train_images.dtype, "| test:", tuple(test_images.shape),
      "| pixel values", int(train_images.min()), "to", int(train_images.max()))

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw=dict(width_ratios=[1.6, 1]))
first = torch.stack([train_images[(train_labels == k).nonzero()[i, 0]] for i in range(2) for k in range(10)])
show_images(first, nrow=10, ax=axes[0], title="two of each class, in label order 0-9")
axes[0].set_xlabel(" · ".join(fashion_mnist.CLASSES), fontsize=8)
counts = torch.bincount(train_images[:5000].reshape(-1), minlength=256).numpy()
axes[1].bar(np.arange(256), counts / counts.sum(), width=1.0)
axes[1].set_yscale("log")
axes[1].set_xlabel("pixel value x (an integer, 0-255)")
axes[1].set_ylabel("fraction of pixels (log scale)")
axes[1].set_title("discrete data: 256 levels, half of all pixels are 0")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Why dequantize
#
# A flow defines a **density** q(x) on continuous space. Our data only takes integer values. Nothing stops a density
# from piling up on those integers: put a Gaussian of width σ on every integer level, with the level's frequency as
# its weight. As σ → 0 the density *at the data points* grows like 1/σ, and the "log-likelihood" goes to +∞.
# The model has learned nothing; it has exploited the fact that the data sit on a grid of measure zero.
#
# **The fix (uniform dequantization).** Add noise u ~ Uniform[0, 1) to every value, y = x + u, and fit the density
# to y. Each integer x now owns the unit box [x, x+1)^D, and the probability the model gives to x is the mass of its
# box, P(x) = ∫ q(x + u) du. By Jensen's inequality
#
# $$\log P(x) \;\ge\; \mathbb{E}_u\big[\log q(x + u)\big],$$
#
# so the likelihood of dequantized data is a **lower bound** on the likelihood of the discrete data: it can no longer
# be cheated. Let us watch both, with the narrow-Gaussian "model" of the pixel values (all pixels pooled).
#
# A word on notation for lessons 05–07: x is now the **discrete** image, y = x + u its dequantized version, and the
# flow is f: y → z. Everything else is as before: log q(y) = log p(f(y)) + log|det ∂f/∂y|.

# %% slideshow={"slide_type": "subslide"}
levels = torch.arange(256.0, dtype=torch.float64)
freq = torch.bincount(train_images[:2000].reshape(-1), minlength=256).double()
freq = (freq + 1e-3) / (freq + 1e-3).sum()
n_demo = fl.pick(200, 20)  # test images whose pixels are pooled
x_int = test_images[:n_demo].reshape(-1).double()
y_deq = images.dequantize(test_images[:n_demo]).reshape(-1).double()


def spiky_log_q(v, sigma):
    """log of sum_k freq_k N(v; k, sigma^2): narrow Gaussians on the integer levels."""
    logs = torch.log(freq) - 0.5 * ((v[:, None] - levels) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
    return torch.logsumexp(logs, dim=1)


sigmas = [0.5, 0.3, 0.1, 0.03, 0.01, 0.003]
on_integers, on_dequantized = [], []
for s in tqdm(sigmas, desc="spike widths"):  # each width: every pooled pixel against 256 spikes
    on_integers.append(float(-spiky_log_q(x_int, s).mean() / math.log(2)))
    on_dequantized.append(float(-spiky_log_q(y_deq, s).mean() / math.log(2)))
for s, a, b in zip(sigmas, on_integers, on_dequantized):
    print(f"sigma = {s:<6} bits/dim on raw integers: {a:8.2f}   on dequantized data: {b:10.2f}")

plt.figure(figsize=(6.5, 3.4))
plt.semilogx(sigmas, on_integers, "o-", label="raw integers: falls without limit (cheating)")
plt.semilogx(sigmas, on_dequantized, "s-", label="dequantized y = x + u: honest, gets worse")
plt.axhline(0, color="k", lw=0.5)
plt.ylim(-4, 16)  # the dequantized curve leaves the plot: see the numbers above
plt.gca().invert_xaxis()
plt.xlabel("width σ of the spikes (narrower to the right)")
plt.ylabel("bits per dimension (lower = 'better')")
plt.legend(fontsize=8)
plt.title("a density on discrete data can cheat; on dequantized data it cannot")
plt.show()


# %% [markdown]
# Read the left column from the top: as σ shrinks, the "bits/dim" on raw integers falls below zero — impossible
# for a discrete distribution, whose probabilities are at most 1 (so −log₂ P ≥ 0). That is the giveaway of a
# density cheating on a grid. On dequantized data the same spikes are punished, because most y = x + u fall
# between them.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Bits per dimension, derived and computed once
#
# The number every image-flow paper reports is the negative log-likelihood of the **discrete** data, in **bits**, per
# **dimension** (D = C·H·W values per image):
#
# $$\text{bits/dim} \;=\; \frac{-\,\mathbb{E}_u\big[\log q(x+u)\big]}{D \,\ln 2} \;\;\ge\;\; \frac{-\log P(x)}{D\ln 2}.$$
#
# Because it is an upper bound on a code length, it can be compared across models: 8 bits/dim is what you pay for
# storing the raw bytes; a good model pays much less. Our model does not see y directly: it first maps
# y → y/256 → λ + (1−2λ)·y/256 → logit, and only then applies the flow. **Every one of those steps is itself a
# `Flow`, so its log-det is part of log q(y)** — nothing to add by hand, nothing to forget
# (a forgotten pre-processing log-det is one of the most common bugs in published notebooks).
# The whole convention lives in one place, `flowlib.images`; here is its first check: a density that is uniform on
# [0, 256)^D must score exactly 8 bits/dim.

# %%
class UniformOnPixels(torch.nn.Module):
    def log_prob(self, y):  # q(y) = 256^-D on [0, 256)^D
        return torch.full((y.shape[0],), -y[0].numel() * math.log(256.0))


print(f"uniform model: {float(images.bits_per_dim(UniformOnPixels(), test_images[:100]).mean()):.4f} bits/dim")

# %% [markdown] slideshow={"slide_type": "subslide"}
# A better baseline that still ignores all structure: treat every pixel as independent with the training set's pixel
# histogram as its distribution. As a density on y it is a step function (the frequency of ⌊y⌋), so its bits/dim on
# the test images is the cross-entropy between their pixels and the training histogram. A flow that models whole
# images must beat this.
#
# And here is the published mistake the bound protects against: **noise of width w = 0.5 without a correction.**
# The same histogram model, fitted to y = x + 0.5·u, has density 2·freq inside each half-width box — it looks 1 bit/dim
# better, while it models the data exactly as well as before. The honest figure adds −log2(w) per dimension.

# %%
from flowlib.baselines import PixelHistogram

# independent pixels, all distributed as the training histogram (one histogram for every position; the add-alpha
# smoothing is negligible with 47 million training pixels). A density on y = x + w·u: freq(⌊y⌋) / w in each box.
histogram = PixelHistogram(PixelHistogram.counts(train_images, 256, per_position=False), alpha=0.01)

honest = float(images.bits_per_dim(histogram, test_images[:1000]).mean())
x_half = test_images[:1000].double() + 0.5 * torch.rand(test_images[:1000].shape, dtype=torch.float64)
flattering = float((-histogram.with_width(0.5).log_prob(x_half) / (784 * math.log(2))).mean())
print(f"independent-pixel histogram, honest bound (noise width 1):      {honest:.3f} bits/dim")
print(f"same model, noise width 0.5, no correction (the mistake):        {flattering:.3f} bits/dim")
print(f"... corrected by -log2(0.5) = +1 bit/dim:                         {flattering + 1:.3f} bits/dim")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Move the noise width yourself
#
# Left: the values y = x + w·u of pixels at levels 0 to 3 — each level owns a box of width w, and 1 − w of
# every unit cell stays empty. Right: the histogram model fitted to width-w noise (`histogram.with_width(w)`,
# density freq/w inside each box), evaluated on test images both ways for w from 0.1 to 1: the uncorrected
# number falls by −log₂ w per dimension as w shrinks, the corrected one (flowlib's `bits_per_dim` with
# `noise_width=w`) does not move, because the model is as good as before.

# %% slideshow={"slide_type": "-"}
noise_widget = dequantization_width(test_images[:fl.pick(200, 50)], histogram.with_width)
noise_widget

# %% [markdown] slideshow={"slide_type": "subslide"}
# The logit pre-processing is a `Compose` of two `Affine` maps and a `Logit`. Written out, with
# $v_i = \lambda + (1-2\lambda)\,y_i/256$ for each of the D values,
#
# $$\log\left|\det \frac{\partial\, \mathrm{logit}(v)}{\partial y}\right| = \sum_{i=1}^{D} \Big[\log(1-2\lambda) - \log 256 - \log v_i - \log(1-v_i)\Big].$$
#
# The first two terms come from the two affine maps, the last two from the logit's derivative 1/(v(1−v)).
# **Why the margin λ?** y/256 lies in [0, 1), and the logit of 0 is −∞: a background pixel with a small noise
# draw would land arbitrarily far out. The affine step maps [0, 1) into [λ, 1 − λ), where |logit| is at most
# ln((1 − λ)/λ) ≈ 2.94 for λ = 0.05. That is RealNVP's value (Dinh et al. 2017, where it is called α; flowlib's
# argument is `alpha`; we write λ because α is a MAF's log-scale in lessons 02–03). A smaller λ stretches the
# edge cells further; this course uses the paper's value and has not tuned it. The same brute-force check as in
# every lesson confirms the log-det (autograd Jacobian, float64).

# %%
pre = images.logit_preprocessing(levels=256, alpha=0.05)
print(pre)
y_small = images.dequantize(test_images[:3, :, :2, :2]).double()  # 3 tiny 2x2 crops: the Jacobian is 4x4
print(testing.check_logdet(pre, y_small))
print(testing.check_round_trip(pre, y_small))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Squeeze, checked on a numbered tensor
#
# Coupling layers split the variables into two halves. On an image, a checkerboard mask splits pixels, and a channel
# mask splits channels — but a 1-channel image has no channels to split. **Squeeze** trades space for channels:
# every 2×2 block of a channel becomes 4 channels, so (C, H, W) → (4C, H/2, W/2). It only moves values, so its
# log-det is 0. Our convention: channel 4c + 2i + j holds pixel (2h + i, 2w + j) of channel c. Check it by eye:

# %%
x_num = torch.arange(16.0).reshape(1, 1, 4, 4)
z_num, logdet_num = Squeeze()(x_num)
print("input (1 channel, 4x4):\n", x_num[0, 0].int())
for c in range(4):
    print(f"output channel {c} (i={c // 2}, j={c % 2}):\n", z_num[0, c].int())
print("log-det:", logdet_num.tolist(), "| inverse gives back the input:", torch.equal(Squeeze().inverse(z_num)[0], x_num))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where does each pixel go?
#
# Pick a pixel (channel c, row h, column w) of a numbered image: the widget frames it, looks its number up
# in `Squeeze()`'s output, and frames where it landed. Try two channels (`squeeze_explorer(2)`) to see
# that the four output channels of one input channel stay together.

# %% slideshow={"slide_type": "-"}
squeeze_widget = squeeze_explorer()
squeeze_widget

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The multi-scale architecture
#
# RealNVP does not push all 784 variables through every layer. After a level of couplings, **half the channels are
# factored out**: they go straight to the latent, and only the other half is processed further, at a coarser
# scale. What distribution do the factored-out values get? The same as every other latent value: the base is a
# standard normal on the whole flat latent of 784 values, and a factored-out part is simply a piece of it.
# Factoring out only *routes* values — nothing is computed on them — so **its log-det is 0**; the values it
# routes keep the log-dets of the layers they went through. This saves compute and memory and gives a latent with
# a hierarchy: early latents hold fine detail, the last ones the coarse structure. Each level of our model is: a
# squeeze; a per-channel learnable affine map (a normalisation, like Glow's ActNorm without its data-dependent
# start); then 8 affine couplings (lesson 04, tanh-bounded scales, conv networks with a zero last layer) whose
# masks cycle through checkerboard, the other checkerboard, first half of the channels, second half. Its shapes
# (the kept half, 2×14×14, is what level 2 squeezes into 8×7×7):

# %% slideshow={"slide_type": "subslide"}
model_shape = multiscale_realnvp_flow(**CONFIGS["realnvp-fmnist"]["model"])
draw_multiscale(model_shape)
plt.show()
for row in describe_multiscale(model_shape):
    print(f"{row['stage']:<24} {'x'.join(map(str, row['shape']))}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# `MultiScale` is still a `Flow`: `forward` returns **one flat latent** (B, 784) that contains every level's
# factored-out part, so `inverse` reconstructs x exactly — nothing is re-sampled (decoders that re-sample the
# factored-out parts were reported in rosinality/glow-pytorch issue #45 and chaiyujin/glow-pytorch issue #9). The same brute-force checks as for every flow, on a small 8×8 version with random weights:

# %%
torch.manual_seed(0)
small = multiscale_realnvp_flow((1, 8, 8), levels=2, couplings=2, hidden=8)
with torch.no_grad():
    for p in small.parameters():
        p.add_(0.1 * torch.randn(p.shape))  # a fresh coupling is the identity: perturb it to test something real
x_small = torch.randn(2, 1, 8, 8, dtype=torch.float64)
print(testing.check_round_trip(small, x_small))
print(testing.check_logdet(small, x_small))
print("per-level latent shapes:", [tuple(z.shape[1:]) for z in small.split_latents(small(x_small.float())[0])])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Training a multi-scale RealNVP
#
# The loss is the one from lesson 03, the negative log-likelihood, now of dequantized images (fresh noise every
# batch). First a **small** version, trained live so you can watch the loss; then the full model. The live plot shows
# the training loss converted to **bits/dim** (the NLL in nats per image divided by D·ln 2), the unit of every
# other number in this lesson. An untrained flow
# starts *worse* than the uniform 8 bits/dim: it is the identity, so its density is a standard normal in logit space,
# which puts most of its mass on mid-grey values — while half of all pixels are 0, where that density is about ten
# times lower than uniform's.

# %%
fl.seed_everything(1)
demo = multiscale_realnvp(levels=2, couplings=4, hidden=32)
demo_steps = fl.pick(300, 15)
train_batches = (images.dequantize(train_images[torch.randint(0, 60000, (64,))]) for _ in range(demo_steps))
before = float(images.bits_per_dim(demo, test_images[:200]).mean())
live = LiveLossPlot(every=25, scale=1 / (784 * math.log(2)), ylabel="training loss (bits/dim)")
history = fl.training.fit(demo, train_batches, steps=demo_steps, lr=1e-3, callbacks=[live])
after = float(images.bits_per_dim(demo, test_images[:200]).mean())
print(f"small model ({sum(p.numel() for p in demo.parameters()):,} parameters): {before:.2f} -> {after:.2f} "
      f"bits/dim on 200 test images after {demo_steps} steps ({history.seconds:.0f} s)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Does multi-scale help? Measured
#
# Same budget, with and without: two small models with the same 8 couplings of the same width, trained for
# the same steps on the same batches and evaluated on the same test images. One is multi-scale (2 levels of 4
# couplings; half the values leave after level 1), the other single-scale (1 level of 8 couplings, all on
# 4×14×14). The table prints what each costs and what it reaches.

# %% slideshow={"slide_type": "-"}
scale_steps, n_scale_eval = fl.pick(300, 10), fl.pick(500, 50)
scale_rows = []
for name, levels, couplings in (("multi-scale, 2 levels x 4 couplings", 2, 4),
                                ("single scale, 1 level x 8 couplings", 1, 8)):
    fl.seed_everything(1)  # the same initial seed and the same stream of batches for both
    m = multiscale_realnvp(levels=levels, couplings=couplings, hidden=32)
    batches = (images.dequantize(train_images[torch.randint(0, 60000, (64,))]) for _ in range(scale_steps))
    h = fl.training.fit(m, batches, steps=scale_steps, lr=1e-3)
    bpd = float(images.bits_per_dim(m, test_images[:n_scale_eval],
                                    generator=torch.Generator().manual_seed(0)).mean())
    scale_rows.append((name, sum(p.numel() for p in m.parameters()), h.seconds, bpd))
print(f"{'':38} {'parameters':>10} {'seconds':>8} {'bits/dim':>9}  ({scale_steps} steps, "
      f"{n_scale_eval} test images)")
for name, n_params, seconds, bpd in scale_rows:
    print(f"{name:38} {n_params:10,} {seconds:8.1f} {bpd:9.3f}")
(_, _, t_multi, b_multi), (_, _, t_single, b_single) = scale_rows
print(f"multi-scale: {t_single / t_multi:.2f}x faster per step, {abs(b_single - b_multi):.3f} bits/dim "
      f"{'better' if b_multi < b_single else 'worse'} than single scale" + (" (fast mode: too few steps to mean much)" if FAST else ""))

# %% [markdown] slideshow={"slide_type": "subslide"}
# The full model of this lesson (2 levels, 8 couplings per level, 128 hidden channels) trains in about an hour on
# one thread of a 2-core CPU (the manifest printed below has the exact time) with one command, which checkpoints
# every few minutes, on Ctrl-C and when it is killed, and resumes where it stopped:
#
# ```bash
# python -m flowlib.training realnvp-fmnist --release --threads 1
# ```
#
# Its result ships in `data/checkpoints/`, with a manifest that records the command, the configuration, the test
# bits/dim, the training time and the hardware, and the file's SHA-256. Loading checks the SHA-256 and uses
# `torch.load(..., weights_only=True)`. Set `RETRAIN = True` at the top to train it yourself instead.

# %%
if RETRAIN:
    from flowlib.training.images import run

    run("realnvp-fmnist", workdir=__import__("pathlib").Path("runs/realnvp-fmnist"), release=True)
model, entry = load_pretrained_model("realnvp-fmnist")
print(f"{entry['file']}: {entry['parameters']:,} parameters, trained for {entry['steps']} steps in "
      f"{entry['train_seconds'] / 60:.0f} min on {entry['hardware']}")
print("trained with:", entry["command"])
print(f"manifest: test bits/dim {entry['test_bpd']} on {entry['test_images']} test images")
n_eval = len(test_images) if FULL_EVAL else fl.pick(1000, 200)  # a subset by default: all 10,000 take minutes
t0 = time.perf_counter()
test_bpd = evaluate(model, test_images[:n_eval], progress=True)
print(f"recomputed here on {n_eval} of the {len(test_images)} test images: {test_bpd:.4f} bits/dim "
      f"({time.perf_counter() - t0:.0f} s); on all of them the manifest says {entry['test_bpd']}"
      + ("" if FULL_EVAL else " (set FULL_EVAL = True at the top to recompute that here)"))

# %% slideshow={"slide_type": "subslide"}
val = entry.get("val_bpd", [])
if val:
    steps, bpd = zip(*val)
    plt.figure(figsize=(6, 3.2))
    plt.plot(np.array(steps) / (steps[0] if steps else 1), bpd, "o-", label="validation (2,000 held-out train images)")
    plt.axhline(entry["test_bpd"], color="C1", ls="--", label=f"final test: {entry['test_bpd']:.3f}")
    plt.axhline(honest, color="gray", ls=":", label=f"independent pixels: {honest:.2f}")
    plt.xlabel("epoch")
    plt.ylabel("bits per dimension")
    plt.title("the shipped model's training curve (from its manifest)")
    plt.legend(fontsize=8)
    plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# For scale: a 69-million-parameter Glow reaches 3.14 bits/dim on the Fashion-MNIST test set (Kirichenko, Izmailov &
# Wilson 2020, "Why normalizing flows fail to detect out-of-distribution data"); our model has well under a million
# parameters and a CPU hour of training. The independent-pixel histogram above is the baseline of "no structure at
# all" that any image model must beat.
#
# ## 7. Samples, temperature, exact reconstruction
#
# Sampling runs the flow backwards from z ~ N(0, T²·I). Look at the three panels below and the numbers printed
# with them: at T = 1 the samples are varied and noisy; at lower T they are **paler and more washed out** — the
# mean pixel value falls, and so does the variety between samples — rather than crisper. (Scaling z by T samples
# the renormalised q(y)^{1/T²} exactly only when the flow's log-det is the same constant for every y; here the
# affine couplings and the logit pre-processing make it vary, so T is a knob to look at, not that distribution.)
# The widget after the panels moves T freely on the same latent draws.

# %%
fl.seed_everything(3)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
with torch.no_grad():
    for ax, t in zip(axes, (1.0, 0.8, 0.6)):
        samples_t = images.pixels_from_data(model.sample(24, temperature=t))
        show_images(samples_t, nrow=6, ax=ax, title=f"samples at temperature T = {t}")
        print(f"T = {t}: mean pixel value {samples_t.double().mean():.1f} (test images: "
              f"{test_images[:1000].double().mean():.1f}), spread across samples {samples_t.double().std(0).mean():.1f}")
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
temperature_widget = temperature_samples(model, reference=test_images[:1000])  # updates when you let go
temperature_widget

# %% [markdown] slideshow={"slide_type": "subslide"}
# A flow is **exactly invertible**: encoding a test image and decoding its latent gives the image back (up to
# float rounding). And the latent is hierarchical: keep the *coarse* latent z⁽²⁾ (level 2) of a test image and
# re-draw the fine latent z⁽¹⁾ (level 1) — the global shape stays, the details change.

# %%
with torch.no_grad():
    y = images.dequantize(test_images[:8])
    z, _ = model.flow(y)
    y_back, _ = model.flow.inverse(z)
    print(f"reconstruction: max |y - f^-1(f(y))| = {float((y_back - y).abs().max()):.2e} (pixel units, 0-256)")
    ms = model.flow[1]  # the MultiScale part, after the pre-processing
    z1, z2 = ms.split_latents(z)
    rows = [test_images[:8]]
    for t in (0.5, 0.8):
        z_new = ms.merge_latents([t * torch.randn_like(z1), z2])
        rows.append(images.pixels_from_data(model.flow.inverse(z_new)[0]))
show_images(torch.cat(rows), nrow=8, title="top: test images; below: same coarse z⁽²⁾, fine z⁽¹⁾ re-drawn at T = 0.5, 0.8")
plt.show()


# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# **Exercise 1.** The flow of this lesson reports two numbers per image: the base log-density `log_p_z` of its
# latent and the log-det `logdet_flow` of the image flow alone (logit space → latent). Write
# `bits_per_dim(log_p_z, logdet_flow, y, alpha)` returning the bits/dim of each image, shape (B,), for
# dequantized images `y` = x + u of shape (B, C, H, W) in [0, 256), pre-processed as in section 3 with margin
# λ = `alpha`. Every step from y to z counts; D comes from the data. The checker tries two image shapes.

# %%
def bits_per_dim(log_p_z, logdet_flow, y, alpha):
    ...  # your answer: shape (B,)


check_pipeline_bits_per_dim(bits_per_dim)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def bits_per_dim(log_p_z, logdet_flow, y, alpha):
    v = alpha + (1 - 2 * alpha) * y / 256  # the two affine steps; then w = logit(v)
    per_value = math.log(1 - 2 * alpha) - math.log(256) - torch.log(v) - torch.log1p(-v)
    log_q = log_p_z + logdet_flow + per_value.flatten(1).sum(1)  # log q(y): every log-det added
    return -log_q / (y[0].numel() * math.log(2))


check_pipeline_bits_per_dim(bits_per_dim, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2.** Undo a squeeze. Write `unsqueeze(z)` that takes z of shape (B, 4C, H/2, W/2) and returns the
# x of shape (B, C, H, W) with `Squeeze()(x)[0] == z`, using `reshape` and `permute` (no loops). Section 4's
# convention: channel 4c + 2i + j holds pixel (2h + i, 2w + j) of channel c. The checker compares with
# `Squeeze().inverse` on numbered tensors.

# %%
def unsqueeze(z):
    ...  # your answer: (B, C, H, W)


check_unsqueeze(unsqueeze)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def unsqueeze(z):
    b, c4, h, w = z.shape
    x = z.reshape(b, c4 // 4, 2, 2, h, w)  # (B, C, i, j, H/2, W/2)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)  # (B, C, H/2, i, W/2, j)


check_unsqueeze(unsqueeze, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** The latent of each level. `multiscale_realnvp_flow(shape, levels)` factors out part of the
# latent at every level (section 5). Write `latent_shapes(shape, levels)` returning the list of the (C, H, W)
# shapes of those parts, level 1 first, the last level's included — for any image shape and number of levels,
# without building the model. (Check: they add up to C·H·W values.)

# %%
def latent_shapes(shape, levels):
    ...  # your answer: a list of (C, H, W) tuples


check_latent_shapes(latent_shapes)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def latent_shapes(shape, levels):
    c, h, w = shape
    out = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2  # the squeeze
        if level < levels - 1:
            out.append((c // 2, h, w))  # half the channels leave ...
            c = c // 2  # ... and half go on
        else:
            out.append((c, h, w))  # the last level keeps nothing back
    return out


check_latent_shapes(latent_shapes, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A density on discrete data can cheat; **uniform dequantization** y = x + u, u ~ U[0, 1), turns the likelihood of
#   y into a **lower bound** on the discrete likelihood.
# - **bits/dim** = −E log q(x + u) / (D ln 2), with D = C·H·W read from the data; every pre-processing step is a
#   flow, so its log-det is in log q (exercise 1); noise of width w needs −log2 w more bits per dimension.
# - **Squeeze** trades space for channels at no log-det cost; **multi-scale** flows factor out half the channels per
#   level (log-det 0; the base models them) and still return one flat latent, so reconstruction is exact; the
#   measurement of section 6 compares it with a single-scale stack on the same budget.
# - Sampling at T < 1 makes these samples paler and less varied; with a log-det that varies with y it is a knob,
#   not the distribution q^{1/T²}.
# - A multi-scale RealNVP trained for about a CPU hour models Fashion-MNIST much better than independent pixels;
#   its number, its command and its training time are in `data/checkpoints/manifest.json`.
#
# **Next:** the next lesson, Glow, builds on this multi-scale architecture.
