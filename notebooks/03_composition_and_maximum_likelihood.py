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
# # Lesson 03 — Flows: composition and maximum likelihood
#
# One affine autoregressive layer (lesson 02) can only make x₂ given x₁ Gaussian. Stack several, reversing the order
# between them, and the result can model two moons, two concentric rings (the `"circles"` density) and
# checkerboards. This lesson derives the
# log-likelihood of a stack, shows that maximising it is the same as minimising KL(p_data ‖ q), trains flows on 2D
# densities against their known entropy (the best any model can do), replaces the affine map by a monotone spline
# to close most of the remaining gap, and measures what flows offer next to autoregressive models and VAEs.
#
# **Learning goals.** After this lesson you can
# 1. write the log-likelihood of a composition of flows and compute it in one pass;
# 2. explain why maximum likelihood minimises KL(p_data ‖ q), and read a model's gap to the floor as that KL;
# 3. train a flow with `flowlib.training.fit` and judge it against the true density;
# 4. say what an affine layer cannot do, and how a monotone spline layer (a neural spline flow) does it;
# 5. follow a trained flow layer by layer;
# 6. say which direction is cheap for MAF and for IAF, and measure it;
# 7. compare a flow's exact likelihood with a VAE's ELBO, and flow sampling with autoregressive sampling, by
#    measurement.
#
# **Prerequisites.** Lesson 02 (Jacobians, triangular maps, MAF); the notion of KL divergence helps but is
# recalled here.
#
# **Estimated time.** 75–90 minutes (lecture path: about 50 minutes; training runs take under 2 minutes each).

# %% [markdown] slideshow={"slide_type": "skip"}
# **Setup.** One cell. `FLOWS_FAST=1` (as in the tests) trains for a few steps only, so the pictures are rough.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import torch

import flowlib
from flowlib_teaching import plot2d
from flowlib.data import toy2d
from flowlib_teaching import maps2d, widgets
from flowlib_teaching.exercises import lesson03 as ex
from flowlib import testing as T
from flowlib.builders import maf
from flowlib.builders import spline_maf
from flowlib.training import fit
from flowlib.training.toy2d import evaluate_2d, train_2d

device = flowlib.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = flowlib.fast_mode()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The log-likelihood of a composition
#
# A flow is a stack f = f_K ∘ … ∘ f₁ (data → latent), passing through intermediate states
#
# x = h₀ → h₁ = f₁(h₀) → h₂ = f₂(h₁) → … → h_K = z.
#
# The Jacobian of a composition is the product of the Jacobians (chain rule), and the determinant of a product is
# the product of the determinants, so the log-dets **add**:
#
# log q(x) = log p(z) + Σₖ log|det ∂hₖ/∂hₖ₋₁|.
#
# In the sampling direction (z → x, through the inverses) the same quantity reads
# log q(x) = log p(z) − Σₖ log|det ∂hₖ₋₁/∂hₖ|: a plus in the density direction becomes a minus in the generative
# one. (Mixing the two directions is the most common sign error in flow code and notes.)
#
# `flowlib.Compose` does this sum; `Compose.trace` returns every hₖ with the running log-det.

# %% slideshow={"slide_type": "subslide"}
torch.manual_seed(0)
stack = maf(2, num_layers=4, hidden=(32, 32))
with torch.no_grad():  # move the fresh (identity) layers so the check sees a real map
    for prm in stack.parameters():
        prm.add_(0.2 * torch.randn(prm.shape))
base = flowlib.StandardNormal(2)
x = torch.randn(5, 2)
with torch.no_grad():
    states = stack.trace(x)
    print("running log-det after each layer, sample 0:", [round(float(ld[0]), 4) for _, ld in states])
    z, logdet = stack(x)
    print("log q(x) =", (base.log_prob(z) + logdet).numpy().round(4))
print(T.check_logdet(stack, x))  # the summed log-det against the autograd Jacobian of the whole stack
print(T.check_round_trip(stack, x))


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 1 — log q(x) of a stack
#
# Write `composition_log_prob(flows, base, x)`: apply the flows in list order (each returns `(h, logdet)`), and
# return log q(x), shape (B,). Do not use `Compose` or `FlowModel`.

# %%
def composition_log_prob(flows, base, x):
    raise NotImplementedError


ex.check_composition_log_prob(composition_log_prob)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def composition_log_prob(flows, base, x):
    h, total = x, torch.zeros(x.shape[0])
    for f in flows:
        h, logdet = f(h)
        total = total + logdet
    return base.log_prob(h) + total


ex.check_composition_log_prob(composition_log_prob, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Maximum likelihood = minimum KL(p_data ‖ q)
#
# Training minimises the **negative** log-likelihood of the data (equivalently, it *maximises* the
# log-likelihood):
#
# L(q) = E_{x∼p_data}[−log q(x)] ≈ −(1/N) Σᵢ log q(xᵢ).
#
# Split it with log q = log p_data − log(p_data / q):
#
# E_{p_data}[−log q(x)] = E_{p_data}[−log p_data(x)] + E_{p_data}[log p_data(x)/q(x)] = H(p_data) + KL(p_data ‖ q).
#
# H(p_data), the entropy of the data, does not depend on the model. So minimising the NLL minimises
# KL(p_data ‖ q) ≥ 0, and **H(p_data) is the floor**: no model has a lower expected NLL. For our 2D densities the
# floor is known (`toy2d.entropy`, by Monte Carlo with the exact density), so the **gap NLL − floor is the KL** of
# the trained model, in nats. (The floor is itself a Monte Carlo estimate, so it is printed with its standard error;
# the checkerboard's is exact: a uniform density on an area of 32 has entropy log 32.)
#
# (A note on signs: it is E[−log q] that is minimised. Maximising it would push q *away* from the data.)

# %%
for name in ("moons", "circles", "8gaussians", "checkerboard"):
    print(f"{name:13s} floor H(p_data) = {toy2d.entropy(name, n=flowlib.pick(200_000, 20_000))}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 2 — reading a gap
#
# A flow has a held-out NLL of 2.61 nats on a dataset whose entropy (floor) is 2.39 nats. What is (an estimate of)
# KL(p_data ‖ q), in nats?

# %%
kl_answer = ...  # your answer
ex.check_kl_gap(kl_answer)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
kl_answer = 2.61 - 2.39  # E_{p_data}[-log q] = H(p_data) + KL(p_data || q)
ex.check_kl_gap(kl_answer, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Training flows on 2D densities
#
# The model: 8 MAF layers (hidden 64, 64) whose variable order alternates, on a standard normal base. The builder
# `maf(2, num_layers=8, hidden=(64, 64))` (in `flowlib.builders`) returns a `Compose` of 8 of lesson 02's
# `MAF` layers, every second one (the 2nd, 4th, …) with `order="reverse"`; the cell after the training prints each layer's order. The
# densities are `toy2d`'s `"moons"`, `"circles"` (two concentric rings; `toy2d` also has a different
# `"rings"` density, not used here), `"8gaussians"` and `"checkerboard"`. Data: fresh
# samples every step from the seeded samplers (so there is no overfitting to watch for, and held-out samples are
# fresh too). `train_2d` (the course's 2D recipe in `flowlib.training.toy2d`, used again in lesson 04) minimises the NLL
# with `fit` and Adam, and lowers the learning rate along a cosine. Each run takes well under a minute in normal mode.

# %% slideshow={"slide_type": "subslide"} tags=["slide-output-only"]
STEPS = flowlib.pick(1000, 40)
N_TEST = flowlib.pick(50_000, 5_000)
DENSITIES = ("moons", "circles", "8gaussians", "checkerboard")


def make_model(kind="maf"):
    if kind == "maf":  # 8 affine layers
        flow = maf(2, num_layers=8, hidden=(64, 64))
    else:  # 4 spline layers (section 3b)
        flow = spline_maf(2, num_layers=4, hidden=(64, 64), bins=8, bound=4.0)
    return flowlib.FlowModel(flow, flowlib.StandardNormal(2))


def train(name, kind="maf", steps=STEPS, seed=0):
    flowlib.seed_everything(seed)
    model = make_model(kind)
    # Adam at lr 2e-3 lowered along a cosine to 4e-5, batches of 512 fresh samples (flowlib.training.toy2d)
    return model, train_2d(model, name, steps, lr=2e-3, batch_size=512, seed=seed)


def evaluate(model, name, n=N_TEST):
    # on n fresh held-out samples: NLL = -mean log q, floor = -mean log p, gap = mean (log p - log q) = KL
    return evaluate_2d(model, name, toy2d.get(name).sample(n, seed=123))


models, results, hists = {}, {}, {}
for name in DENSITIES:
    models[name], hists[name] = train(name)
    results[name] = evaluate(models[name], name)
    r = results[name]
    print(f"{name:13s} {hists[name].seconds:5.1f} s  held-out NLL {r['nll']:.3f}  floor {r['floor']:.3f} ± "
          f"{r['floor_stderr']:.3f}  gap = KL {r['gap']:.3f} ± {r['gap_stderr']:.3f} nats")

# %% slideshow={"slide_type": "-"}
print("each layer's variable order (Python indices; the first listed is conditioned on nothing):",
      [layer.order.tolist() for layer in models["moons"].flow.flows])

# %% [markdown] slideshow={"slide_type": "subslide"}
# Rows: the data, the trained flow's density q(x), the true density p_data(x), and samples from the flow. Each
# flow panel is drawn on the same colour scale as the true density below it (colour bars on the right); gaps are
# in nats. (The gap ± its standard error is the difference on the same held-out samples, so it is known much more
# precisely than either the NLL or the floor alone.)

# %%
names = list(models)
fig, axes = plot2d.new_figure(4, 4, size=2.5)
for j, name in enumerate(names):
    ds, model = toy2d.get(name), models[name]
    plot2d.plot_samples(axes[0, j], ds.sample(3000, seed=5), ds.bounds, title=f"{name}: data", color="0.35")
    P_true = plot2d.plot_density(axes[2, j], ds.log_prob, ds.bounds, n=150, title="true density p_data(x)")
    plot2d.plot_density(axes[1, j], model.log_prob, ds.bounds, n=150, vmax=float(P_true.max()),
                        title=f"flow q(x), gap {results[name]['gap']:.3f} nats")
    for i in (1, 2):
        fig.colorbar(axes[i, j].images[-1], ax=axes[i, j], shrink=0.8)
    with torch.no_grad():
        plot2d.plot_samples(axes[3, j], model.sample(3000), ds.bounds, title="flow samples", color="tab:orange")
fig

# %% [markdown] slideshow={"slide_type": "subslide"}
# The gaps are the KL divergences left after training. Where is the model worst? Compare the density panels: an
# affine autoregressive stack cannot cut space; it has to stretch thin bridges between modes (8 Gaussians) and
# round the square corners (checkerboard). Section 3b removes most of these gaps with a different layer.
#
# Below, the training curve of the moons run above: the per-batch NLL falls towards the floor. A single batch of 512
# can dip below it (batch noise: some batches happen to hold likely points); the *expected* NLL cannot.

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6, 3.5))
hist = hists["moons"]
window = 25
loss = torch.tensor(hist.loss)
smooth = loss.unfold(0, window, 1).mean(1) if len(loss) > window else loss
ax.plot(hist.step, hist.loss, alpha=0.3, label="training NLL (per batch)")
ax.plot(hist.step[len(hist.step) - len(smooth):], smooth, label=f"moving average ({window})")
ax.axhline(results["moons"]["floor"], color="k", ls="--",
           label=f"floor H(p_data) = {results['moons']['floor']:.3f} ± {results['moons']['floor_stderr']:.3f}")
ax.set(xlabel="step", ylabel="NLL (nats)",
       title="moons: per-batch NLL can dip below the floor; the expected NLL cannot",
       ylim=(results["moons"]["floor"] - 0.2, results["moons"]["floor"] + 1.5))
ax.legend()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3b. Bending instead of stretching: a spline layer
#
# Why does an affine stack struggle? Each layer maps x_i to (x_i − μ_i) e^(−α_i) given the coordinates before it:
# a conditional that is Gaussian stays Gaussian, a single bump stays a single bump. Where the data's conditional
# p(x₂ | x₁) has several separate bumps (a vertical line through the 8 Gaussians or the circles), the stack can only
# approximate them over many layers and leaves mass on the bridges between them.
#
# A **neural spline flow** (Durkan et al. 2019) keeps everything that makes MAF work — a MADE computes the
# parameters of coordinate i from x_<i, so the Jacobian is triangular and log|det| is a sum of D terms — but
# replaces the affine map by a flexible **increasing** function τ(x_i; θ_i(x_<i)): a *monotone rational-quadratic
# spline*. On [−B, B] it passes through K + 1 knots with positive slopes, each piece a ratio of two quadratics;
# outside it is the identity. Increasing means invertible; its derivative is a closed formula, so
#
# log|det ∂z/∂x| = Σᵢ log τ′(xᵢ; θᵢ(x_<ᵢ)),
#
# and the inverse is exact: inside a bin, finding x from z means solving a quadratic equation. (The formulas are in
# the docstring of `flowlib.bijections.splines`.) One layer can now move mass into several bumps at once. Below, a single
# spline layer (`RQSpline`, 8 bins) is fitted by maximum likelihood to a 1D density with two bumps. The best a
# single affine layer can do is the Gaussian with the data's mean and standard deviation. In the density direction
# z = τ(x) and q(x) = p(τ(x))·τ′(x) (τ, not lesson 01's g: this map goes from data to latent): the fitted spline
# is steep where the data are (a large τ′ makes q high there) and flat in between.

# %% slideshow={"slide_type": "subslide"}
import math

from flowlib.bijections.splines import RQSpline


def two_bumps(n):  # 1D data: an equal mixture of N(-1.5, 0.45²) and N(1.5, 0.45²)
    return torch.where(torch.rand(n, 1) < 0.5, -1.5, 1.5) + 0.45 * torch.randn(n, 1)


def two_bumps_density(x):
    bump = lambda c: torch.exp(-0.5 * ((x - c) / 0.45) ** 2) / (0.45 * math.sqrt(2 * math.pi))  # noqa: E731
    return 0.5 * (bump(-1.5) + bump(1.5))


flowlib.seed_everything(0)
one_layer = flowlib.FlowModel(RQSpline(1, bins=8, bound=4.0), flowlib.StandardNormal(1))
fit(one_layer, two_bumps, steps=flowlib.pick(400, 50), lr=0.05, batch_size=1024)
u = torch.linspace(-4, 4, 801).reshape(-1, 1)
mean, std = 0.0, math.sqrt(1.5**2 + 0.45**2)  # the best single affine layer: z = (x − mean) / std
with torch.no_grad():
    g, _ = one_layer.flow(u)
    q_spline = one_layer.log_prob(u).exp()
q_affine = torch.exp(-0.5 * ((u - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
fig, axes = plot2d.new_figure(2, size=3.3)
axes[0, 0].plot(u[:, 0], g[:, 0], label="spline τ(x)")
axes[0, 0].plot(u[:, 0], (u[:, 0] - mean) / std, ls="--", label="best affine map")
axes[0, 0].set(xlabel="x (data)", ylabel="z (latent)", title="one layer, data → latent")
axes[0, 0].legend(fontsize=8)
axes[0, 1].plot(u[:, 0], two_bumps_density(u[:, 0]), "k:", label="data")
axes[0, 1].plot(u[:, 0], q_spline, label="one spline layer")
axes[0, 1].plot(u[:, 0], q_affine[:, 0], ls="--", label="one affine layer")
axes[0, 1].set(xlabel="x", ylabel="density", title="q(x) = p(τ(x)) · τ′(x)", ylim=(0, 0.65))
axes[0, 1].legend(loc="upper center", fontsize=8)
torch.manual_seed(0)
check_stack = spline_maf(2, num_layers=2, hidden=(16, 16), bound=2.0)
with torch.no_grad():  # move the fresh (identity) layers so the checks see real splines
    for prm in check_stack.parameters():
        prm.add_(0.5 * torch.randn(prm.shape))
print(T.check_logdet(check_stack, 1.5 * torch.randn(5, 2)))  # the spline log-det against autograd
print(T.check_round_trip(check_stack, 1.5 * torch.randn(5, 2)))  # the exact inverse
fig

# %% [markdown] slideshow={"slide_type": "subslide"}
# Same densities, same steps, batch, learning-rate schedule and held-out samples as in section 3; 4 spline layers
# (8 bins each) instead of 8 affine ones. Both rows share the colour scale of the true density (peak of p_data).

# %% slideshow={"slide_type": "subslide"}
spline_models, spline_results = {}, {}
for name in DENSITIES:
    spline_models[name], hist = train(name, kind="spline")
    spline_results[name] = evaluate(spline_models[name], name)
    print(f"{name:13s} {hist.seconds:5.1f} s  gap: affine MAF {results[name]['gap']:.3f}, "
          f"spline {spline_results[name]['gap']:.3f} ± {spline_results[name]['gap_stderr']:.3f} nats")

fig, axes = plot2d.new_figure(4, 2, size=2.5)
for j, name in enumerate(DENSITIES):
    ds = toy2d.get(name)
    vmax = float(ds.log_prob(plot2d.grid_points(ds.bounds, 150)[2]).exp().max())  # the true density's peak
    plot2d.plot_density(axes[0, j], models[name].log_prob, ds.bounds, n=150, vmax=vmax,
                        title=f"MAF: {results[name]['gap']:.3f} nats")
    plot2d.plot_density(axes[1, j], spline_models[name].log_prob, ds.bounds, n=150, vmax=vmax,
                        title=f"spline: {spline_results[name]['gap']:.3f} nats")
    for i in (0, 1):
        fig.colorbar(axes[i, j].images[-1], ax=axes[i, j], shrink=0.8)
fig.suptitle(f"same data, same {STEPS} steps: each title is the held-out gap to the floor (KL, nats)")
fig

# %% [markdown] slideshow={"slide_type": "fragment"}
# With the same training budget the spline flow's gaps are much smaller where the affine stack struggled (circles,
# 8 Gaussians, checkerboard); on the moons, the circles and the 8 Gaussians they come within a few hundredths of a nat
# of the floor (the course's target is 0.05), and the checkerboard's corners are much sharper. (In fast mode, with a few dozen steps, neither model has learned much.)
# `python -m benchmarks nll_gap` trains both families longer, next to another library's MAF and spline flow (zuko)
# with the same number of steps.
#
# Splines are not free: a training step costs somewhat more than an affine one, and sampling still needs D passes
# per layer (it is a MAF-type layer). Lesson 04's coupling layers do not close gaps: an affine coupling layer is a
# restricted affine autoregressive layer (half the coordinates pass through unchanged, the other half get a shift
# and scale from the first half), so per layer it is *less* expressive than a MAF layer. What it buys is speed:
# density and sampling both take one pass. A coupling layer can use a spline too.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Layer by layer
#
# Sampling runs the stack backwards: z ∼ N(0, I) → f_K⁻¹ → … → f₁⁻¹ → x. Slide k from 0 (the base) to K (the
# model): the left panel shows the same base samples after k inverse layers, the right panel the density of those
# intermediate samples (the base pushed through k layers, by the change of variables, `plot2d.stage_log_prob`).
# Each layer shifts and scales each coordinate given the ones before it in its order (the first by learned
# constants); the shape emerges from the stack. The states
# keep section 1's numbering, h₀ = x, …, h_K = z (density direction): sampling visits them backwards, so after k
# inverse layers the samples are h_{K−k}; the widget and the static figure below label their axes that way.

# %% slideshow={"slide_type": "subslide"}
stepper = widgets.layer_stepper(models["moons"], bounds=((-4, 4), (-4, 4)))
stepper

# %% [markdown] slideshow={"slide_type": "subslide"}
# A static version for slides and printouts, and a check: the density after all K layers is the model's.

# %%
with torch.no_grad():
    grid = plot2d.grid_points(((-3, 3), (-3, 3)), 30)[2]
    full = plot2d.stage_log_prob(models["moons"].flow, models["moons"].base, len(models["moons"].flow))(grid)
    print("max |stage K density − model.log_prob| =", float((full - models["moons"].log_prob(grid)).abs().max()))
layers_fig = plot2d.plot_layers(models["moons"].flow, models["moons"].base.sample(2000), "inverse", max_cols=5)
for k, ax in enumerate(layers_fig.axes):
    if 0 < k < len(models["moons"].flow) and ax.get_visible():  # intermediate states: coordinates of h_k
        K = len(models["moons"].flow)  # after k inverse layers: h_{K-k}, in section 1's numbering
        ax.set(xlabel=f"$h_{{{K - k},1}}$", ylabel=f"$h_{{{K - k},2}}$")
layers_fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Two directions, two costs
#
# A MAF layer computes z from x in one masked pass (density: cheap) but x from z one coordinate at a time
# (sampling: D passes). Its twin, the **inverse autoregressive flow** (IAF, `Inverse(MAF)`), conditions on z
# instead of x: sampling takes one pass, density of a given x takes D. Which you pick depends on which direction
# you need often: MAF for density estimation, IAF for fast sampling (e.g. a VAE's posterior, or distilling a
# teacher as in Parallel WaveNet). Measured here, one layer, a batch of 256:

# %% slideshow={"slide_type": "subslide"}
from flowlib_teaching.experiments import direction_costs, median_seconds

dims = flowlib.pick([2, 8, 32, 128], [2, 8])
dc = direction_costs(dims, repeats=flowlib.pick(5, 1))
for i, d in enumerate(dc["dim"]):
    print(f"D = {d:4d}: MAF density {1e3 * dc['maf_density'][i]:7.2f} ms, sampling {1e3 * dc['maf_sampling'][i]:8.2f}"
          f" ms | IAF density {1e3 * dc['iaf_density'][i]:8.2f} ms, sampling {1e3 * dc['iaf_sampling'][i]:7.2f} ms")
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for key, style in (("maf_density", "o-"), ("maf_sampling", "o--"), ("iaf_density", "s--"), ("iaf_sampling", "s-")):
    ax.loglog(dc["dim"], dc[key], style, label=key.replace("_", " "))
ax.set(xlabel="dimension D", ylabel="median seconds (batch of 256)", title="one layer: density vs sampling")
ax.legend()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 3 — counting passes
#
# For ONE autoregressive layer on D = 10 dimensions, how many network passes does each operation take? (flowlib
# counts one pass per coordinate for a sequential direction, D in all. D − 1 is also accepted: the first
# coordinate's shift and scale do not depend on any input, so its pass could be skipped.)

# %%
passes = {"maf_density": ..., "maf_sampling": ..., "iaf_density": ..., "iaf_sampling": ...}
ex.check_pass_counts(passes)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
passes = {"maf_density": 1, "maf_sampling": 10, "iaf_density": 10, "iaf_sampling": 1}
ex.check_pass_counts(passes, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Where flows sit: measured against a VAE and an autoregressive sampler
#
# Flows are usually said to offer **exact likelihood**, **exact latents** and **parallel sampling**. Each claim is
# measured here on the moons.
#
# **A VAE in five lines** (enough for this section; skip to "Exact latents" if you know VAEs). A variational
# autoencoder is a latent-variable model: draw u ~ p(u) = N(0, I), then x from a **decoder** p_θ(x | u), here a
# Gaussian whose mean and width a network computes from u. Its likelihood p_θ(x) = ∫ p_θ(x | u) p(u) du has no
# closed form. An **encoder** e_φ(u | x) (a second network; a Gaussian over u for each x) guesses which u could
# have produced x, and gives the **ELBO** (evidence lower bound),
# ELBO(x) = E_{e_φ(u|x)}[log p_θ(x | u)] − KL(e_φ(u | x) ‖ p(u)) ≤ log p_θ(x),
# which training maximises: a reconstruction term minus a KL term that charges for every nat of information the
# latent carries about x. Averaging K samples from the encoder inside the log gives the tighter **IWAE** bound
# (importance weighting), which approaches log p_θ(x) as K grows. (Notation: q stays the flow's density, so the
# encoder is e_φ.)
#
# **Exact likelihood vs a VAE's bound.** We train a small VAE (2D latent, hidden 64) with the same steps, batch
# and optimiser as the flow, and compare on the same held-out samples.

# %% slideshow={"slide_type": "subslide"} tags=["slide-output-only"]
from flowlib.baselines import GaussianVAE

flowlib.seed_everything(0)
vae = GaussianVAE(dim=2, latent=2, hidden=64)
vae_hist = train_2d(vae, "moons", STEPS, lr=2e-3, batch_size=512, seed=0)  # the flows' recipe (section 3)
x_test = toy2d.get("moons").sample(flowlib.pick(10_000, 2_000), seed=123)
with torch.no_grad():
    flow_ll = float(models["moons"].log_prob(x_test).mean())
    vae_elbo = float(vae.elbo(x_test, k=8).mean())
    vae_iw = float(vae.importance_log_likelihood(x_test, k=flowlib.pick(512, 32)).mean())
true_ll = float(toy2d.get("moons").log_prob(x_test).mean())
print(f"training time ({STEPS} steps each): flow (8 MAF layers, section 3) {hists['moons'].seconds:.1f} s, "
      f"VAE {vae_hist.seconds:.1f} s")
print(f"mean held-out log-likelihood (nats, higher is better; the data's own is {true_ll:.3f}):")
print(f"  flow, exact                     {flow_ll:.3f}")
print(f"  VAE, ELBO (a lower bound)       {vae_elbo:.3f}")
print(f"  VAE, importance-sampled (K={flowlib.pick(512, 32)}) {vae_iw:.3f}  (closer to its log p_θ(x), still a bound)")
with torch.no_grad():  # the ELBO's KL term, KL(e(u | x) ‖ N(0, I)), in closed form, per latent dimension
    m, log_s = vae.encode(x_test)
    kl_per_dim = (0.5 * (m**2 + torch.exp(2 * log_s) - 1) - log_s).mean(0)
print("the ELBO's KL term per latent dimension (nats; ≈ 0 means that dimension is unused):",
      [round(float(k), 4) for k in kl_per_dim])
# how much a latent could usefully carry: the moons are a curve plus isotropic Gaussian noise of std sigma, so
# x given its position on the curve has entropy ln(2 pi e sigma^2), and the information x holds about the position
# is I = H(x) - H(x | position), with H(x) the floor of section 2
moons_data = toy2d.get("moons")
sigma = moons_data.scale * moons_data.noise
info = toy2d.entropy("moons", n=flowlib.pick(200_000, 20_000)).value - math.log(2 * math.pi * math.e * sigma**2)
print(f"information x holds about its position on the curve: H(x) − ln(2πe·{sigma:.1f}²) = {info:.2f} nats; "
      f"the used latent dimension carries {float(kl_per_dim.max()):.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Read the numbers (normal mode; fast mode trains too briefly to say anything). The flow's exact held-out
# log-likelihood is close to the data's own; the VAE's ELBO is lower, and its importance-sampled estimate sits a
# little above its ELBO (the ELBO is the looser bound). Where does the VAE lose? The KL term per latent
# dimension shows one dimension in use and the other almost unused. **The unused one is not the problem**: the
# moons are a one-dimensional curve plus isotropic Gaussian noise, so a Gaussian decoder needs exactly one latent
# coordinate (the position on the curve) and can explain the rest with its own noise; a second coordinate would
# only add KL cost. The shortfall is in the *used* dimension: its average KL bounds the information the latent
# holds about x, and it is well below the information x holds about its position on the curve (both printed
# above). The encoder is too vague about where on the curve a point lies, and the ELBO's KL term is what makes
# sharper guesses expensive. The reconstruction error below shows the same thing. A flow has no such trade-off:
# z = f(x) is a bijection, and the number it trains on is its exact likelihood, so what you monitor is what you
# get. (It has failure modes of its own, such as the bridges between modes in section 3.)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exact latents.** A flow's z = f(x) is a function, and f⁻¹(f(x)) = x to rounding. A VAE's encoder gives a
# *distribution* over latents, and decoding its mean gives an approximate reconstruction.

# %%
with torch.no_grad():
    z_flow, _ = models["moons"].flow(x_test)
    x_back, _ = models["moons"].flow.inverse(z_flow)
    flow_err = float((x_back - x_test).norm(dim=1).mean())
    vae_err = float((vae.reconstruct(x_test) - x_test).norm(dim=1).mean())
print(f"mean reconstruction error |x' − x|: flow {flow_err:.2e}, VAE {vae_err:.3f} (data scale ~2)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Parallel sampling vs sequential autoregressive sampling.** An autoregressive model generates x₁, then x₂ given
# x₁, and so on: D network passes per sample, whatever the hardware. A MAF *is* such a model (a Gaussian
# autoregressive one), so its sampling is sequential. A flow built to sample in one pass per layer (IAF, or the
# coupling layers of lesson 04) generates all coordinates at once. Timed at D = 64, one layer each, batch 256:

# %%
D = flowlib.pick(64, 16)
side = direction_costs([D], repeats=flowlib.pick(5, 1))
ar_sample, flow_sample = side["maf_sampling"][0], side["iaf_sampling"][0]
print(f"D = {D}: autoregressive (MAF) sampling {1e3 * ar_sample:.2f} ms, one-pass flow (IAF) sampling "
      f"{1e3 * flow_sample:.2f} ms: {ar_sample / flow_sample:.0f}x")
with torch.no_grad():
    t_density = median_seconds(lambda: models["moons"].log_prob(x_test), repeats=3)
    t_sample = median_seconds(lambda: models["moons"].sample(len(x_test)), repeats=3)
print(f"the trained 2D MAF stack on {len(x_test)} points: density {1e3 * t_density:.1f} ms, sampling "
      f"{1e3 * t_sample:.1f} ms (D = 2, so only 2 passes per layer)")

# %% [markdown] slideshow={"slide_type": "fragment"}
# | family | likelihood of a given x (cost) | latent of a given x | sampling (cost) | measured here |
# |---|---|---|---|---|
# | discrete autoregressive model (e.g. PixelCNN) | exact (one pass, masked) | none (no latent space) | sequential: D passes | — |
# | Gaussian autoregressive model (a MAF: a flow, see the rows below) | exact (one pass, masked) | exact, z = f(x) | sequential: D passes | MAF sampling |
# | VAE | lower bound (ELBO); estimate by IWAE (K passes) | approximate (a distribution) | one decoder pass | ELBO vs IWAE vs flow |
# | GAN | none (no density at all) | none (no encoder) | one generator pass | — |
# | flow of MAF layers | exact: one pass per layer | exact, z = f(x) | D passes per layer | section 5, above |
# | flow of IAF layers | exact: D passes per layer | exact, D passes per layer | one pass per layer | section 5, above |
# | flow of coupling layers | exact: one pass per layer | exact, one pass per layer | one pass per layer | lesson 04 |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A flow's log-likelihood adds the layers' log-dets in the data → latent direction:
#   log q(x) = log p(z) + Σₖ log|det ∂hₖ/∂hₖ₋₁|.
# - Maximum likelihood minimises E_{p_data}[−log q] = H(p_data) + KL(p_data ‖ q): the entropy is the floor, the gap above it
#   is the KL, and both are measurable for the toy densities.
# - A stack of affine autoregressive layers, trained with `fit`, models moons, circles, mixtures and checkerboards;
#   the remaining gaps show where affine layers struggle: an affine map keeps a one-bump conditional one bump.
# - A monotone rational-quadratic spline in place of the affine map (a neural spline flow) keeps the triangular
#   Jacobian and the exact inverse, bends each coordinate into several bumps, and closes most of the gap.
# - MAF: fast density, sequential sampling. IAF: the reverse. Measured, not only said.
# - Against a VAE, a flow's likelihood is exact (the VAE's ELBO is a bound), its latents are exact, and, with the
#   right layers, sampling is parallel; autoregressive sampling is sequential.
#
# **Next:** lesson 04, coupling layers (NICE, RealNVP): fast in *both* directions.
