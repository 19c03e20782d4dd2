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
# # Lesson 07 — What an exact latent and an exact likelihood buy
#
# A flow is a bijection with a tractable Jacobian. Lessons 05 and 06 used that to *train* image models by maximum
# likelihood. This lesson uses it for what people actually want flows for:
#
# - **an exact latent**: every image has exactly one latent z = f(x), and f⁻¹(z) gives the image back — so we can
#   encode a real image, move its latent, and decode the result: temperature, interpolation, attribute vectors,
#   swapping coarse and fine levels;
# - **an exact likelihood**: every image gets a number, log q(x), that can be compared across model families — a
#   Fashion-MNIST bits/dim table under one stated convention — and that, surprisingly, does **not** tell whether an
#   input looks like the training data.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Learning goals.** After this lesson you can
# - encode an image into the full multi-scale latent, decode it back to float precision, and explain why re-drawing
#   the factored-out levels breaks reconstruction;
# - explain why a Gaussian latent lives on a shell of radius ≈ √D, what temperature does, and why spherical
#   interpolation stays on the shell while linear interpolation cuts inside it;
# - build an attribute vector from labels and apply it with a strength;
# - read a bits/dim table across model families (independent pixels, a VAE's bounds, RealNVP, Glow) and say what
#   each number is a bound on;
# - reproduce the out-of-distribution paradox (digits and constant images score *better* than the clothes the model
#   was trained on) and explain it with local pixel statistics.
#
# **Prerequisites.** Lesson 05 (dequantization, bits/dim, multi-scale latents) and lesson 06 (Glow). Lesson 03's
# comparison with a VAE helps for section 6.
#
# **Estimated time.** 60–80 minutes. Every model is a shipped checkpoint: nothing is trained here, and running all
# cells in normal mode takes about 3 minutes (188 s, measured with `python -m benchmarks lesson_times 07` on 2026-12-02 on our shared 2-core CPU, one thread, load average 2–3; fast mode, `FLOWS_FAST=1`, uses fewer images).

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time
import zlib

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from sklearn.metrics import roc_auc_score

import flowlib as fl
from flowlib import images, latents, ood, testing
from flowlib.data import fashion_mnist
from flowlib.training import bpd_table
from flowlib.training.images import load_pretrained_model
from flowlib_teaching.exercises.lesson07 import check_attribute_direction, check_shell_radius, check_slerp
from flowlib_teaching.plot_images import show_images
from flowlib_teaching.widgets import latents as WL

device = fl.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
MODEL = "glow-fmnist"  # the shipped model this lesson explores (manifest name); lesson 05's "realnvp-fmnist" works too
FAST = fl.fast_mode()  # the test suite sets FLOWS_FAST=1: fewer images, same code
print("model", MODEL)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The model and its one flat latent
#
# `load_pretrained_model` reads the checkpoint named in `data/checkpoints/manifest.json`, checks its SHA-256 and
# rebuilds the model. (If it is missing, the error says which command trains it; nothing falls back silently.)
# Its flow is the pre-processing of lesson 05 followed by a `MultiScale` flow, so f maps a dequantized image
# y ∈ [0, 256)^784 to **one flat latent** z ∈ ℝ^784 that holds every level's factored-out part.

# %%
model, entry = load_pretrained_model(MODEL)
print(f"{MODEL}: {entry['parameters']:,} parameters; test bits/dim {entry['test_bpd']} on {entry['test_images']:,} "
      f"images; trained {entry['steps']:,} steps in {entry['train_seconds'] / 60:.0f} min on {entry['hardware']}")
print("trained with:", entry["command"])
train_images, train_labels = fashion_mnist.load("train")
test_images, test_labels = fashion_mnist.load("test")
for k, shape in enumerate(latents.multiscale_of(model).latent_shapes, 1):
    print(f"level {k} ({'finest, factored out first' if k == 1 else 'coarsest'}): {shape} = {math.prod(shape)} numbers")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Encoding uses a fixed dequantization.** Training fed the model y = x + u with fresh noise u ~ U[0, 1). To give
# each image *one* latent, `latents.encode` puts every pixel at the centre of its bin, y = x + ½, and returns
# z = f(y). `latents.decode(z)` runs f⁻¹ and `latents.to_pixels` rounds down: ⌊x + ½ + error⌋ = x as long as the
# error stays below ½. How far below? That depends on the arithmetic. float32 keeps about 7 significant digits, so
# each of the flow's ~100 layers rounds what it computes, and the inverse **amplifies** what was rounded before it:
# a coupling's inverse divides by its scale σ(h + 2) < 1 after subtracting a shift that a float32 network computed,
# the 1×1 convolutions and ActNorms rescale, and the pre-processing's inverse multiplies an error in logit space by up
# to 256 · p(1 − p) / (1 − 2λ) ≈ 71 on the way back to grey levels. No single layer is to blame: computed in float32
# throughout (`precision="model"`), the round trip is off by about 1e-3 grey levels on a typical image and by 0.04 on
# the worst of the 10,000 test images. So `encode` and `decode` compute **in float64 by default** (a float64 copy of
# the same weights: the same map, with 16 digits instead of 7) and hand back float32 latents and images; what is left
# is the rounding of z itself to float32. Both ways, measured on test images, and then the library's float64
# round-trip check on the whole flow:

# %%
n_round = fl.pick(500, 64)
x_round = test_images[:n_round]
for precision in ("model", "float64"):  # float32 throughout; float64 inside (the default), float32 in and out
    t0 = time.perf_counter()
    z_test = latents.encode(model, x_round, precision=precision)
    y_back = latents.decode(model, z_test, precision=precision)
    err = float((y_back.double() - x_round.double() - 0.5).abs().max())
    exact = bool((latents.to_pixels(y_back) == x_round).all())
    print(f"{n_round} test images, precision={precision!r:9}: max |f^-1(f(x + 1/2)) - (x + 1/2)| = {err:.2e} pixel "
          f"units ({err / 256:.1e} on the [0, 1] scale); every pixel recovered exactly: {exact} "
          f"({time.perf_counter() - t0:.1f} s)")
print(testing.check_round_trip(model.flow, test_images[:2].double() + 0.5))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The mistake: re-drawing the factored-out levels.** A multi-scale flow factors out half of its variables after
# each level. Public Glow code has decoded by *drawing* the factored-out parts from the prior again: by default
# unless a `reconstruct` flag is set (rosinality/glow-pytorch #45, "Flow not perfectly invertible"), or by keeping
# only the last level's latent (chaiyujin/glow-pytorch #9). Here is what that does: keep the coarse level z⁽²⁾ of
# each test image, re-draw the fine level z⁽¹⁾.

# %%
x8 = test_images[:8]
z8 = latents.encode(model, x8)
rows, titles = [x8, latents.to_pixels(latents.decode(model, z8))], ["test images", "decode(encode(x)): exact"]
for t in (1.0, 0.6):
    # nonfinite="nan": a re-drawn latent can make the inverse overflow (section 2); such an image is drawn blank
    y_redrawn = latents.decode(model, latents.resample_levels(model, z8, [1], temperature=t, seed=1), nonfinite="nan")
    ok = ~torch.isnan(y_redrawn).reshape(8, -1).any(1)
    rows.append(latents.to_grey(y_redrawn))
    err = float((rows[-1][ok] - x8[ok].float()).abs().max()) if ok.any() else float("nan")
    titles.append(f"level 1 re-drawn at T = {t}: max error {err:.0f} grey levels"
                  + (f" ({int((~ok).sum())} overflowed: blank)" if not ok.all() else ""))
fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.35 * len(rows)))
for ax, r, t in zip(axes, rows, titles):
    WL.show_grey(r, nrow=8, ax=ax, title=t)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# The coarse level alone keeps the outline; the texture, the print on a T-shirt, the exact grey levels live in the
# fine level. Keeping the whole flat latent — which `MultiScale` does by construction — is what makes a flow's
# reconstruction exact.
#
# ## 2. Temperature, and why the most likely image is not a typical one
#
# Sampling decodes z ~ N(0, T²·I). Why would T < 1 help? Look at the base in D = 784 dimensions. Its density is
# highest at z = 0, but |z|² is a sum of 784 squares: it is concentrated around D with standard deviation √(2D),
# so **almost every sample lies on a thin shell of radius ≈ √D ≈ 28**, and essentially none near the peak. The
# density at the peak is e^{D/2} = e^{392} times the density on the shell — there is just vastly more volume on the
# shell. The set where samples actually fall is the *typical set*, and it is not where the density is highest.

# %%
d = z_test.shape[1]
eps = torch.randn(5000, d, generator=torch.Generator().manual_seed(0))
with torch.no_grad():  # encodings with random dequantization noise, as in training
    g = torch.Generator().manual_seed(1)
    z_noisy = torch.cat([model.flow(images.dequantize(test_images[i: i + 250], generator=g))[0]
                         for i in range(0, n_round, 250)])
plt.figure(figsize=(7.5, 3.2))
bins = np.linspace(10, 36, 80)
plt.hist(eps.norm(dim=1).numpy(), bins, density=True, alpha=0.5, label="samples z ~ N(0, I)")
plt.hist(z_noisy.norm(dim=1).numpy(), bins, density=True, alpha=0.5, label="f(x + u): test images, random u")
plt.hist(z_test.norm(dim=1).numpy(), bins, density=True, alpha=0.5, label="f(x + 1/2): test images, bin centres")
plt.axvline(latents.shell_radius(d), color="k", ls="--", label=f"E|z| = {latents.shell_radius(d):.2f} ≈ √D")
plt.xlabel("|z|")
plt.legend(fontsize=8)
plt.title("the latent lives on a shell, not at the peak z = 0")
plt.show()
print(f"log p(0) - log p(z) for a typical |z|^2 = D: D/2 = {d / 2:.0f} nats")
print(f"mean |z|: N(0, I) samples {float(eps.norm(dim=1).mean()):.2f}; test images with random u "
      f"{float(z_noisy.norm(dim=1).mean()):.2f}, at bin centres {float(z_test.norm(dim=1).mean()):.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Two things to read off. With the training noise u, test images land near the shell, as a well-fitted model
# should. At the bin centres they land *inside* it: removing the dequantization noise removes variation the model
# spends latent norm on, and moves z towards the mode. Lowering T does the same to samples. The Glow paper
# (Kingma & Dhariwal 2018) reports that samples look best at T ≈ 0.7. The widget decodes the same 16 noise vectors
# ε as f⁻¹(T·ε) for every T, and plots the samples' own log-density in bits/dim against the test set's. Colder
# samples are *more likely* than a typical test image — high density, but not typical. (Scaling z by T is exactly
# sampling from q^{1/T²} only when the flow's log-det is the same constant for every input (lesson 05); with
# affine couplings it is a heuristic.) A sample
# can also fail outright: Glow's coupling contracts by sigmoid(h + 2) ∈ (0, 1) in the density direction, so its
# inverse expands by 1/sigmoid(h + 2), without bound; a latent the model has not learned to handle can overflow
# to infinity. The widget draws such samples blank and counts them — another reason to sample at T < 1.

# %% slideshow={"slide_type": "subslide"}
temp_widget = WL.temperature_grid(model, n=fl.pick(16, 9), reference_bpd=entry["test_bpd"],
                                  temperatures=fl.pick(WL.DEFAULT_TEMPERATURES, (0.0, 0.5, 0.7, 1.0)))
temp_widget

# %% slideshow={"slide_type": "subslide"}
for t, b, bad in zip(temp_widget.temperatures, temp_widget.sample_bpd, temp_widget.overflowed):
    print(f"T = {t:.1f}: the samples' bits/dim, −log q(y) / (D ln 2) = {b:.2f}" + (f" ({bad} overflowed)" if bad else ""))
print(f"test images (manifest): {entry['test_bpd']:.2f} bits/dim")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Interpolating between two real images
#
# Encode two test images, walk from one latent to the other, decode every step. Along the straight line
# (1 − t)·z₀ + t·z₁ the norm dips: halfway between two independent latents of norm r it is about r/√2. That is
# *inside* the shell, in a region the model rarely decodes from, and the middle of a linear path often looks washed
# out. **Spherical interpolation** (slerp) walks along the great circle between the two directions instead, so its
# norm stays with the endpoints':
#
# $$\mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\,\omega)}{\sin\omega}\,z_0 + \frac{\sin(t\,\omega)}{\sin\omega}\,z_1,
# \qquad \cos\omega = \frac{\langle z_0, z_1\rangle}{|z_0|\,|z_1|}.$$
#
# Pick two images by class and index, press the button (it encodes both and decodes both paths in one batch),
# then move t: the red box follows, the right panel shows |z| along each path.

# %% slideshow={"slide_type": "subslide"}
interp_widget = WL.interpolation(model, test_images, test_labels, "Sneaker", 0, "Ankle boot", 0)
interp_widget

# %%
s = interp_widget.state
print(f"|z| along the linear path:    {np.round(s['norms_linear'], 1)}")
print(f"|z| along the spherical path: {np.round(s['norms_spherical'], 1)}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Attribute vectors from labels
#
# The Glow paper found a "smile" direction in the latent space of faces: the mean latent of smiling faces minus the
# mean latent of the others; adding it to a face's latent adds a smile. Fashion-MNIST has labels too. The direction
# from *sneaker* to *ankle boot* is the mean latent of the ankle boots minus the mean latent of the sneakers, both
# computed from training images (encoded once, below). The widget adds strength × direction to the latent of a
# test image of the first class. Strength 0 is the exact reconstruction; negative strengths push the other way.

# %%
per_class = fl.pick(100, 20)
bank_idx = torch.cat([(train_labels == k).nonzero()[:per_class, 0] for k in range(10)])
t0 = time.perf_counter()
z_bank, bank_labels = latents.encode(model, train_images[bank_idx]), train_labels[bank_idx]
print(f"encoded {len(bank_idx)} training images ({per_class} per class) in {time.perf_counter() - t0:.1f} s")
attr_widget = WL.attribute_vector(model, test_images, test_labels, z_bank, bank_labels, "Sneaker", "Ankle boot")
attr_widget

# %% slideshow={"slide_type": "subslide"}
direction = latents.attribute_direction(z_bank, bank_labels, "T-shirt/top", "Shirt")
shirts_idx = (test_labels == 0).nonzero()[:6, 0]
z_t = latents.encode(model, test_images[shirts_idx])
rows = [latents.to_grey(latents.decode(model, latents.apply_direction(z_t, direction, s), nonfinite="nan"))
        for s in (0.0, 0.5, 1.0)]
WL.show_grey(torch.cat(rows), nrow=6, title="T-shirts + strength × (mean z of Shirt − mean z of T-shirt/top): "
                                           "rows 0, 0.5, 1")
plt.show()
print(f"|direction| = {float(direction.norm()):.1f}, against |z| ≈ {float(z_t.norm(dim=1).mean()):.1f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# The direction mixes everything that differs on average between the two classes — sleeves, collars, and the
# typical brightness — so it changes more than one "attribute". With 10 coarse labels this is as good as it gets;
# the faces of the Glow paper had 40 binary attributes.
#
# ## 5. Coarse and fine: swapping levels
#
# The last level z⁽²⁾ (8×7×7, channels × height × width) is computed after two squeezes: it holds the coarse
# structure. The first level z⁽¹⁾ (2×14×14) was factored out early: fine detail. Take the fine level from one image and the coarse level from
# another (press the button after choosing): the result follows the **coarse** one. The last panel re-draws A's
# fine level instead of keeping it — section 1's mistake again.

# %%
swap_widget = WL.level_swap(model, test_images, test_labels, "T-shirt/top", 0, "Trouser", 0)
swap_widget

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. A Fashion-MNIST bits/dim table under one convention
#
# Likelihoods are comparable across model families only under one convention. Ours (`flowlib.images`, lesson 05):
# 8-bit pixels, uniform dequantization y = x + u with u ~ U[0, 1)^784, bits/dim = −E log q(x + u) / (784 ln 2),
# every pre-processing log-det included, all 10,000 test images. Each number is an upper bound on the model's
# discrete code length; for the VAE it is looser still, because log q itself is only bounded (its ELBO, and the
# tighter importance-weighted bound with K = 256 samples; lesson 03). The table was produced by `python -m flowlib.training.bpd_table`
# (the cell prints the exact commands, recorded in the file; `flowlib.bpd_table` is its old name), whose output and
# log are in `data/results/`; `python -m benchmarks fmnist_bpd_table`
# recomputes every row from the shipped checkpoints and compares.

# %% slideshow={"slide_type": "subslide"}
table = bpd_table.load_table()
print(f"{table['command']}\n{table['date']}, {table['machine']}, {table['test_images']:,} test images")
display(Markdown(bpd_table.format_table(table["rows"])))
rows = [r for r in table["rows"] if r["row"] != "uniform"]
plt.figure(figsize=(7.5, 2.8))
plt.barh([r["row"] for r in rows], [r["bpd"] for r in rows], color=["C0" if "fmnist" in r["row"] and "vae" not in
                                                                   r["row"] else "C7" for r in rows])
for i, r in enumerate(rows):
    plt.text(r["bpd"] + 0.03, i, f"{r['bpd']:.3f}", va="center", fontsize=8)
plt.gca().invert_yaxis()
plt.xlim(0, 6)
plt.xlabel("test bits/dim (lower is better; 8 = raw bytes)")
plt.title("Fashion-MNIST, one convention, all 10,000 test images")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Reading the table. Independent pixels already beat the raw 8 bits by a wide margin (most pixels are background).
# The small VAE, an MLP with a Gaussian decoder in the same logit space, does *worse* than independent pixels here,
# even with the tighter importance-weighted bound: a Gaussian decoder has to cover each pixel's whole
# dequantization bin with a bell curve, and its 15 minutes of CPU training stopped while its validation bound was
# still falling (the curve is in its manifest entry). The flows, which model the pixels' joint density exactly, are
# the only models here well below independent pixels.

# %% [markdown] slideshow={"slide_type": "-"}
# Live check: the same code on the first test images (fewer in fast mode, so the numbers differ a little from the
# table's 10,000-image means; the benchmark above recomputes the table exactly).

# %%
n_live = fl.pick(1000, 100)
live = bpd_table.compute_table(["uniform", "histogram-pooled", MODEL], n_images=n_live)
committed = {r["row"]: r["bpd"] for r in table["rows"]}
for r in live:
    print(f"{r['row']:<18} first {n_live} test images: {r['bpd']:.4f}   table ({table['test_images']:,} images): "
          f"{committed.get(r['row'], float('nan')):.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. What likelihood does not tell
#
# A density model that assigns high likelihood to the data should assign low likelihood to things unlike the data
# — that is the hope behind using it to flag unusual inputs. Test it: inputs the model never saw, each brought to
# 28×28 8-bit images — scikit-learn's handwritten digits, uniform noise, constant images, the test clothes flipped
# upside down and inverted (255 − x) — scored with the same bits/dim as the test set.

# %%
n_ood = fl.pick(1000, 48)
sets = ood.ood_sets(test_images, n_ood)
gen = torch.Generator().manual_seed(0)


def per_image_bpd(x):
    return torch.cat([images.bits_per_dim(model, x[i: i + 250], generator=gen) for i in range(0, len(x), 250)]).numpy()


t0 = time.perf_counter()
scores = {name: per_image_bpd(x) for name, x in sets.items()}
print(f"{n_ood} images per set, scored in {time.perf_counter() - t0:.1f} s")
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw=dict(width_ratios=[1.7, 1]))
bins = np.linspace(0, 10, 80)
for name, b in scores.items():
    axes[0].hist(b, bins, alpha=0.45, density=True, label=f"{name}: mean {b.mean():.2f}")
axes[0].set_xlabel("bits/dim under the model (lower = 'more likely')")
axes[0].legend(fontsize=8)
axes[0].set_title("the model's verdict on inputs it never saw")
show_images(torch.cat([x[:4] for x in sets.values()]), nrow=4, ax=axes[1], title="4 of each set, same order")
plt.tight_layout()
plt.show()
for name, b in sorted(scores.items(), key=lambda kv: kv[1].mean()):
    print(f"{name:<22} mean {b.mean():.3f} bits/dim   "
          f"{(b < np.median(scores['Fashion-MNIST test'])).mean():5.0%} score better than the median test image")


# %% [markdown] slideshow={"slide_type": "subslide"}
# The model was trained on clothes, yet **handwritten digits get a better (lower) bits/dim than the clothes
# themselves** — the cell above prints what share of each set scores better than the median test image (with the
# shipped Glow in our fast-mode run: 85 % of the digits). Constant images score better too, most of them (62 % in that
# run; how much depends on the grey level); flipped clothes score about like upright ones; only noise and inverted
# images are clearly flagged. The same was found for flows (Glow), VAEs and PixelCNNs, on Fashion-MNIST vs MNIST among
# other pairs (Nalisnick et al. 2019, "Do deep generative models know what they don't know?"), and
# explained by Kirichenko, Izmailov & Wilson (2020): a flow's likelihood is dominated by **local pixel statistics** —
# how predictable a pixel is from its neighbours — which it learns from any natural-looking image, not by what the
# image shows. A digit is mostly black background with smooth strokes: very predictable. Look at that directly:
# the bits a general-purpose compressor (zlib) needs per pixel, which knows nothing about clothes, against the
# model's bits/dim.

# %%
def zlib_bpd(x):
    return np.array([len(zlib.compress(img.numpy().tobytes(), 9)) * 8 / img.numel() for img in x])


complexity = {name: zlib_bpd(x) for name, x in sets.items()}
all_c, all_b = np.concatenate(list(complexity.values())), np.concatenate(list(scores.values()))
plt.figure(figsize=(6.5, 4))
for name in sets:
    plt.scatter(complexity[name], scores[name], s=8, alpha=0.6, label=name)
plt.xlabel("zlib: compressed bits per pixel (knows nothing about clothes)")
plt.ylabel("model bits/dim")
plt.title(f"correlation over all inputs: {np.corrcoef(all_c, all_b)[0, 1]:.2f}")
plt.legend(fontsize=7, markerscale=2)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What this means for flagging unusual inputs.** A threshold on the likelihood would let the digits and the
# constant images through and flag plenty of real clothes. One known remedy is to compare the likelihood with what a
# generic compressor already explains (Serrà et al. 2020, "Input complexity and out-of-distribution detection"):
# score S = model bits/dim − zlib bits/dim, i.e. how many *more* bits the model needs than a generic compressor
# (a high S flags an input: the model explains it worse than its plain complexity would predict). The area
# under the ROC curve (1 = always separates, 0.5 = chance, below 0.5 = ranks the wrong way) for telling each set
# apart from the test clothes:

# %%
print(f"{'set':<22} AUROC by bits/dim   AUROC by bits/dim − zlib")
base_b = scores["Fashion-MNIST test"]
base_s = base_b - complexity["Fashion-MNIST test"]
for name in list(sets)[1:]:
    y = np.r_[np.zeros(len(base_b)), np.ones(len(scores[name]))]  # 1 = out of distribution, flagged by a HIGH score
    raw = roc_auc_score(y, np.r_[base_b, scores[name]])
    corrected = roc_auc_score(y, np.r_[base_s, scores[name] - complexity[name]])
    print(f"{name:<22} {raw:8.3f}              {corrected:8.3f}")


# %% [markdown]
# Read the left column first: below 0.5 means the likelihood ranks the foreign inputs as *more* typical than real
# test images. The complexity-corrected score repairs much of that — though not everything, and by a fix that
# knows nothing about clothes either. The honest conclusion: an exact likelihood is a fine training objective and a
# fine way to compare models on the same data (section 6); on its own it is not a detector of unusual inputs.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# **Exercise 1.** Write `shell_radius(d, temperature)`: the typical norm |z| of z ~ N(0, T²·I_d) for large d
# (an approximation within 1 % is accepted). The checker tries d = 100 to 3072.

# %%
def shell_radius(d, temperature):
    ...  # your answer


check_shell_radius(shell_radius)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def shell_radius(d, temperature):
    return temperature * math.sqrt(d)


check_shell_radius(shell_radius, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2.** Write `slerp(z0, z1, t)` for two latents of shape (D,) and a number t in [0, 1]. The checker
# compares with flowlib's on two latents of different lengths.

# %%
def slerp(z0, z1, t):
    ...  # your answer


check_slerp(slerp)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def slerp(z0, z1, t):
    omega = torch.arccos(torch.dot(z0, z1) / (z0.norm() * z1.norm()))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


check_slerp(slerp, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** Write `attribute_direction(z, labels, source, target)`: given latents z (N, D), integer labels
# (N,) and two class indices, return the direction (D,) that moves a `source` latent towards `target`.

# %%
def attribute_direction(z, labels, source, target):
    ...  # your answer


check_attribute_direction(attribute_direction)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def attribute_direction(z, labels, source, target):
    return z[labels == target].mean(0) - z[labels == source].mean(0)


check_attribute_direction(attribute_direction, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A flow's latent is **exact**: `encode` (at the bin centres x + ½) and `decode` agree to float precision, and
#   every pixel comes back — as long as the **whole** flat latent is kept; re-drawing the factored-out levels keeps
#   only the coarse outline.
# - A D-dimensional Gaussian lives on a **shell of radius ≈ √D**, far from its peak. Temperature T < 1 moves samples
#   inwards: they get more likely (*more likely than a typical real image*) and less varied — high density is not typicality.
# - **Spherical interpolation** keeps the latent's norm; linear interpolation cuts inside the shell.
# - **Attribute vectors** (difference of class-mean latents) move an image towards another class, changing whatever
#   differs on average between the classes.
# - Under one convention a **bits/dim table** compares families: independent pixels, a VAE (only a bound), RealNVP
#   and Glow (exact likelihoods of dequantized data), each with its size, training time and hardware.
# - **Likelihood is not an out-of-distribution detector**: digits and constant images score better than the training
#   clothes, because local pixel statistics dominate the likelihood; subtracting a generic complexity helps.
#
# **Next:** lesson 08 — memory, and what lies beyond coupling flows.
