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
# **Estimated time.** 60–75 minutes (the shipped checkpoint stands in for an hour of training).

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import flowlib as fl
from flowlib import images, testing
from flowlib.data import fashion_mnist
from flowlib_teaching.exercises.lesson05 import check_bits_per_dim, check_noise_width_correction, check_squeeze_index
from flowlib.builders import multiscale_realnvp, multiscale_realnvp_flow
from flowlib.bijections import Squeeze
from flowlib_teaching.plot_images import describe_multiscale, draw_multiscale, show_images
from flowlib_teaching.plotting import LiveLossPlot
from flowlib.training.images import CONFIGS, evaluate, load_pretrained_model

device = fl.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = fl.fast_mode()  # the test suite sets FLOWS_FAST=1: fewer steps and images, same code
RETRAIN = False  # True: train the lesson's model yourself (about an hour on 2 CPU cores) instead of loading it

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
on_integers = [float(-spiky_log_q(x_int, s).mean() / math.log(2)) for s in sigmas]
on_dequantized = [float(-spiky_log_q(y_deq, s).mean() / math.log(2)) for s in sigmas]
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
# y → y/256 → α + (1−2α)·y/256 → logit, and only then applies the flow. **Every one of those steps is itself a
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
hist_freq = torch.bincount(train_images.reshape(-1), minlength=256).double() / train_images.numel()


class PixelHistogram(torch.nn.Module):
    """Independent pixels, each distributed as the training histogram; a density on y with noise width w."""

    def __init__(self, width=1.0):
        super().__init__()
        self.width = width

    def log_prob(self, y):
        k = torch.floor(y).long().clamp(0, 255)
        return (torch.log(hist_freq[k]) - math.log(self.width)).reshape(y.shape[0], -1).sum(1)


honest = float(images.bits_per_dim(PixelHistogram(), test_images[:1000]).mean())
x_half = test_images[:1000].double() + 0.5 * torch.rand(test_images[:1000].shape, dtype=torch.float64)
flattering = float((-PixelHistogram(0.5).log_prob(x_half) / (784 * math.log(2))).mean())
print(f"independent-pixel histogram, honest bound (noise width 1):      {honest:.3f} bits/dim")
print(f"same model, noise width 0.5, no correction (the mistake):        {flattering:.3f} bits/dim")
print(f"... corrected by -log2(0.5) = +1 bit/dim:                         {flattering + 1:.3f} bits/dim")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The logit pre-processing is a `Compose` of two `Affine` maps and a `Logit`. Written out, with
# $s_i = \alpha + (1-2\alpha)\,y_i/256$ for each of the D values,
#
# $$\log\left|\det \frac{\partial\, \mathrm{logit}(s)}{\partial y}\right| = \sum_{i=1}^{D} \Big[\log(1-2\alpha) - \log 256 - \log s_i - \log(1-s_i)\Big].$$
#
# The first two terms come from the two affine maps, the last two from the logit's derivative 1/(s(1−s)).
# The same brute-force check as in every lesson confirms it (autograd Jacobian, float64).

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

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The multi-scale architecture
#
# RealNVP does not push all 784 variables through every layer. After a level of couplings, **half the channels are
# factored out**: they go straight to the latent, and only the other half is processed further, at a coarser scale.
# This saves compute and memory and gives a latent with a hierarchy: early latents hold fine detail, the last ones
# the coarse structure. Each level of our model is: a squeeze; a per-channel learnable affine map (a
# normalisation: Glow's ActNorm without its data-dependent start, lesson 06); then 8 affine couplings (lesson 04,
# tanh-bounded scales, conv networks with a zero last layer) whose masks cycle through checkerboard, the other
# checkerboard, first half of the channels, second half. Its shapes:

# %%
model_shape = multiscale_realnvp_flow(**CONFIGS["realnvp-fmnist"]["model"])
draw_multiscale(model_shape)
plt.show()
for row in describe_multiscale(model_shape):
    print(f"{row['stage']:<24} {'x'.join(map(str, row['shape']))}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# `MultiScale` is still a `Flow`: `forward` returns **one flat latent** (B, 784) that contains every level's
# factored-out part, so `inverse` reconstructs x exactly — nothing is re-sampled (a bug in several public Glow
# implementations). The same brute-force checks as for every flow, on a small 8×8 version with random weights:

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
# the loss in **nats per image**; divide by D·ln 2 = 784 · 0.693 ≈ 543 to read it in bits/dim. An untrained flow
# starts *worse* than the uniform 8 bits/dim: it is the identity, so its density is a standard normal in logit space,
# which puts most of its mass on mid-grey values — while half of all pixels are 0, where that density is about ten
# times lower than uniform's.

# %%
fl.seed_everything(1)
demo = multiscale_realnvp(levels=2, couplings=4, hidden=32)
demo_steps = fl.pick(300, 15)
train_batches = (images.dequantize(train_images[torch.randint(0, 60000, (64,))]) for _ in range(demo_steps))
before = float(images.bits_per_dim(demo, test_images[:200]).mean())
history = fl.training.fit(demo, train_batches, steps=demo_steps, lr=1e-3, callbacks=[LiveLossPlot(every=25)])
after = float(images.bits_per_dim(demo, test_images[:200]).mean())
print(f"small model ({sum(p.numel() for p in demo.parameters()):,} parameters): {before:.2f} -> {after:.2f} "
      f"bits/dim on 200 test images after {demo_steps} steps ({history.seconds:.0f} s)")

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
n_eval = fl.pick(10000, 200)
t0 = time.perf_counter()
test_bpd = evaluate(model, test_images[:n_eval])
print(f"recomputed here on {n_eval} test images: {test_bpd:.4f} bits/dim ({time.perf_counter() - t0:.0f} s)")

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
# Sampling runs the flow backwards from z ~ N(0, T²·I). At T = 1 samples are faithful to the density but noisy; a
# lower **temperature** gives cleaner, less varied samples. (Scaling z by T samples the renormalised q(y)^{1/T²}
# exactly only when the whole flow is volume-preserving; here neither the affine couplings nor the logit
# pre-processing are, so it is a useful heuristic, not that distribution.)

# %%
fl.seed_everything(3)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
with torch.no_grad():
    for ax, t in zip(axes, (1.0, 0.8, 0.6)):
        show_images(images.pixels_from_data(model.sample(24, temperature=t)), nrow=6, ax=ax,
                    title=f"samples at temperature T = {t}")
plt.tight_layout()
plt.show()

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
# **Exercise 1.** Write `bits_per_dim(nll_nats, shape)`: the bits per dimension of one image of shape (C, H, W) whose
# negative log-likelihood is `nll_nats` (in nats). The checker tries several shapes.

# %%
def bits_per_dim(nll_nats, shape):
    ...  # your answer


check_bits_per_dim(bits_per_dim)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
def bits_per_dim(nll_nats, shape):
    return nll_nats / (math.prod(shape) * math.log(2))


check_bits_per_dim(bits_per_dim, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2.** A tutorial dequantized with noise of width w (y = x + w·u) and reported −E log q(y)/(D ln 2)
# without a correction. Write `honest_bpd(reported, width)`, the bound on the discrete data.

# %%
def honest_bpd(reported, width):
    ...  # your answer


check_noise_width_correction(honest_bpd)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
def honest_bpd(reported, width):
    return reported - math.log2(width)


check_noise_width_correction(honest_bpd, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** Where does `Squeeze` send pixel (c, h, w) of its input? Return the triple (c', h', w') of its
# position in the output. The checker compares with flowlib's `Squeeze` on every pixel of a 2×4×6 tensor.

# %%
def squeeze_index(c, h, w):
    ...  # your answer


check_squeeze_index(squeeze_index)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
def squeeze_index(c, h, w):
    return 4 * c + 2 * (h % 2) + (w % 2), h // 2, w // 2


check_squeeze_index(squeeze_index, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A density on discrete data can cheat; **uniform dequantization** y = x + u, u ~ U[0, 1), turns the likelihood of
#   y into a **lower bound** on the discrete likelihood.
# - **bits/dim** = −E log q(x + u) / (D ln 2), with D = C·H·W read from the data; every pre-processing step is a
#   flow, so its log-det is in log q; noise of width w needs −log2 w more bits per dimension.
# - **Squeeze** trades space for channels at no log-det cost; **multi-scale** flows factor out half the channels per
#   level and still return one flat latent, so reconstruction is exact.
# - A multi-scale RealNVP trained for about a CPU hour models Fashion-MNIST much better than independent pixels;
#   its number, its command and its training time are in `data/checkpoints/manifest.json`.
#
# **Next:** lesson 06, Glow — ActNorm, invertible 1×1 convolutions and a model you can train on a GPU.
