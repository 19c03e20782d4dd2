# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 01 — Change of variables in 1D
#
# *Flows from Scratch.* A normalizing flow models data by pushing a simple density through an invertible map.
# Everything it does rests on one formula, which this lesson builds in one dimension, where every step can be
# drawn and checked by hand.
#
# **Learning goals.** After this lesson you can
# 1. derive $q(x) = p(f(x))\,\lvert f'(x)\rvert$ from the conservation of probability mass, and say why
#    $\lvert dg/dz\rvert$ divides (equivalently, $\lvert df/dx\rvert$ multiplies) and why it carries an absolute
#    value;
# 2. compute a density by hand and with `flowlib` (`FlowModel(flow, base).log_prob`), and check it against a
#    Monte-Carlo histogram;
# 3. explain why the map must be invertible, and repair the formula for a map that is not ($x = z^2$);
# 4. sample by the inverse CDF, and recognise that as a flow with a uniform base;
# 5. test a log-determinant against brute force (autograd);
# 6. fit a 1D monotone flow by maximum likelihood and judge the fit by its held-out negative log-likelihood.
#
# **Prerequisites.** Calculus (the chain rule, substitution in integrals), probability densities and CDFs,
# PyTorch tensors. No earlier lesson.
#
# **Estimated time.** About 75 minutes to work through, exercises included; the lecture path (slides) takes 45.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Notation (used in every lesson)
#
# | symbol | meaning | in `flowlib` |
# |---|---|---|
# | $x$ | a data point | |
# | $z$ | its latent | |
# | $p(z)$ | the base density, fixed and simple | `StandardNormal()`, `StandardUniform()` |
# | $q(x)$ | the model's density of the data | `FlowModel(flow, base).log_prob(x)` (its log) |
# | $f: x \mapsto z$ | the flow, data → latent (the *density direction*) | `z, logdet = flow.forward(x)`, `logdet` $= \log\lvert \partial f/\partial x\rvert$ |
# | $g = f^{-1}: z \mapsto x$ | the generative map (the *sampling direction*) | `x, logdet = flow.inverse(z)` |
#
# A map we think of generatively, $x = g(z)$, is written as the flow `Inverse(g)`: for example
# $x = 3z + 1$ is `Inverse(Affine(3, 1))`, whose forward direction is $f(x) = (x - 1)/3$.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

import flowlib
from flowlib import (Affine, Compose, Exp, FlowModel, Inverse, MonotoneTanh, Sigmoid, SinhArcsinh, StandardNormal,
                     StandardUniform)
from flowlib_teaching.exercises.lesson01 import (check_affine_uniform_density, check_exponential_sampler, check_lognormal_log_prob,
                               check_square_density)
from flowlib_teaching.plotting import LiveLossPlot, plot_1d_density_fit, plot_density_vs_samples
from flowlib.testing import check_logdet, check_round_trip
from flowlib.training import fit
from flowlib_teaching.widgets import change_of_variables, map_branches

device = flowlib.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = flowlib.fast_mode()  # FLOWS_FAST=1: fewer samples and steps (the test suite); otherwise identical
N = flowlib.pick(20_000, 4_000)  # Monte-Carlo samples per picture
gen = torch.Generator().manual_seed(0)  # the lesson's own stream of random numbers
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Probability mass is conserved
#
# Let $z \sim p$ and $x = g(z)$ with $g$ **increasing**, and write $f = g^{-1}$. The event $\{X \le x\}$ is the
# event $\{Z \le f(x)\}$, so the two CDFs agree:
#
# $$ F_X(x) = P(g(Z) \le x) = P(Z \le f(x)) = F_Z(f(x)). $$
#
# Differentiate with the chain rule: $q(x) = p(f(x))\, f'(x)$. If $g$ is **decreasing**, the inequality flips,
# $F_X(x) = 1 - F_Z(f(x))$, and $q(x) = -p(f(x))\, f'(x)$, where now $f' < 0$. Both cases in one line:
#
# $$ \boxed{\; q(x) = p\big(f(x)\big)\,\left\lvert \frac{df}{dx} \right\rvert
#            = \frac{p(z)}{\lvert g'(z) \rvert}\Big|_{z = f(x)} \;} $$

# %% [markdown] slideshow={"slide_type": "fragment"}
# **The picture behind it.** The mass $p(z)\,\lvert dz\rvert$ of a small interval around $z$ lands in an interval of
# width $\lvert dx\rvert = \lvert g'(z)\rvert\,\lvert dz\rvert$ around $x$. Mass is neither created nor destroyed,
# so $q(x)\,\lvert dx\rvert = p(z)\,\lvert dz\rvert$: where the map **stretches** ($\lvert g'\rvert > 1$) the
# density goes **down**, where it squeezes the density goes up. Multiplying by $\lvert dx/dz\rvert$ instead of
# dividing by it is the classic mistake: the result does not integrate to 1.
#
# **In logs**, which is how flows compute it (products of many factors become sums, and nothing under- or
# overflows):
#
# $$ \log q(x) = \log p(f(x)) + \log\left\lvert \frac{df}{dx} \right\rvert . $$
#
# That is exactly `FlowModel.log_prob`: `z, logdet = flow.forward(x)` then `base.log_prob(z) + logdet`.
# In the sampling direction the same quantity reads $\log q(x) = \log p(z) - \log\lvert dg/dz\rvert$: the two
# log-dets are negatives of each other (`flow.inverse` returns the second).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Uniform(0, 1) through $x = 3z + 1$
#
# By hand: $f(x) = (x - 1)/3$, so $\lvert df/dx\rvert = 1/3$, and $p(f(x)) = 1$ exactly when
# $0 \le (x-1)/3 \le 1$, that is $1 \le x \le 4$. Hence
#
# $$ q(x) = \begin{cases} 1/3 & 1 \le x \le 4 \\ 0 & \text{otherwise,} \end{cases} $$
#
# an interval three times longer, a density three times lower, total mass $3 \times 1/3 = 1$.
# First check it the brute way: sample $z$, map it, and histogram.

# %% slideshow={"slide_type": "subslide"}
z = torch.rand(N, generator=gen)  # z ~ Uniform(0, 1)
x = 3 * z + 1  # x = g(z)

x_grid = torch.linspace(0, 5, 1001)
q_by_hand = torch.where((x_grid >= 1) & (x_grid <= 4), 1 / 3, 0.0)

fig, ax = plt.subplots(figsize=(6, 3))
plot_density_vs_samples(x, x_grid, q_by_hand, ax=ax, bins=50, label="q(x) by hand",
                        sample_label=f"histogram of x = 3z + 1 ({N} samples)", xlabel="x (data)",
                        ylabel="density", title="Uniform(0, 1) through x = 3z + 1")
plt.show()
# integrate q with the midpoint rule on cells of width 0.005: a cell edge falls on 1 and on 4, so the midpoint
# sum is exact for this block. (The trapezoid rule would draw a ramp across each jump and read 1.0017.)
x_mid = torch.arange(0.0025, 5, 0.005, dtype=torch.float64)
mass = (torch.where((x_mid >= 1) & (x_mid <= 4), 1 / 3, 0.0) * 0.005).sum()
print(f"fraction of samples in [1, 4]: {((x >= 1) & (x <= 4)).float().mean():.4f}; ∫ q dx = {mass:.4f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The same with `flowlib`.** The generative map $x = 3z + 1$ is `Affine(3, 1)` run backwards, so the flow (data
# → latent) is `Inverse(Affine(3, 1))`. Its forward pass returns $z = (x - 1)/3$ and the log-det
# $\log\lvert df/dx \rvert = \log(1/3)$; the model adds the base's log-density.

# %% slideshow={"slide_type": "fragment"}
flow = Inverse(Affine(3.0, 1.0))
model = FlowModel(flow, StandardUniform())

x_points = torch.tensor([[0.5], [1.5], [2.5], [3.9], [4.5]])  # shape (B, 1): a batch of 1D points
z_points, logdet = flow.forward(x_points)
q_points = model.log_prob(x_points).exp()
print("   x      z = f(x)   log|df/dx|   q(x)")
for xi, zi, li, qi in zip(x_points.flatten(), z_points.flatten(), logdet, q_points):
    print(f"{xi:5.2f}   {zi:8.4f}   {li:10.4f}   {qi:.4f}")
print(f"log(1/3) = {math.log(1 / 3):.4f}")

# %% slideshow={"slide_type": "subslide"}
x_model = model.sample(N, generator=gen)  # z ~ Uniform(0, 1), then x = flow.inverse(z) = 3z + 1
q_model = model.log_prob(x_grid.reshape(-1, 1)).exp()
fig, ax = plt.subplots(figsize=(6, 3))
plot_density_vs_samples(x_model, x_grid, q_model, ax=ax, bins=50, label="exp(model.log_prob(x))",
                        sample_label="model.sample(N)", xlabel="x (data)", ylabel="density",
                        title="FlowModel(Inverse(Affine(3, 1)), StandardUniform())")
plt.show()
print(f"max |q_model - q_by_hand| = {(q_model - q_by_hand).abs().max():.2e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. A Gaussian through monotone non-linear maps
#
# With a non-linear $g$ the factor $1/\lvert g'(z)\rvert$ changes from point to point, so the shape changes, not
# only the scale. Three maps from `flowlib.bijections.elementwise`, each applied to a standard normal:
#
# | generative map $x = g(z)$ | flow $f$ (data → latent) | $q(x)$ is called |
# |---|---|---|
# | $x = e^{z}$ | `Inverse(Exp())`: $f(x) = \log x$, $\log\lvert f'\rvert = -\log x$ | log-normal |
# | $x = \sigma(z) = 1/(1 + e^{-z})$ | `Inverse(Sigmoid())`: $f(x) = \operatorname{logit} x$ | logit-normal |
# | $x = \sinh\big((\operatorname{asinh} z + \text{skew})/\text{tailweight}\big)$ | `SinhArcsinh(skew, tailweight)` | sinh-arcsinh |
#
# The first two rows are generative maps, so the flow wraps them in `Inverse`. `SinhArcsinh` is written in the
# data → latent direction already, $f(x) = \sinh(\text{tailweight}\cdot\operatorname{asinh} x - \text{skew})$, so it
# is used as it is; the third column's $g$ is its inverse.
#
# Watch where the map is flat (small $\lvert g'\rvert$): mass piles up there. Where it is steep, mass thins out.
# The printed numbers compare $\int q\,dx$ over the plotted range with the fraction of samples that land in it:
# two independent routes to the same mass.

# %% slideshow={"slide_type": "subslide"}
maps = {
    "x = exp(z): log-normal": (Inverse(Exp()), torch.linspace(1e-3, 6, 800)),
    "x = sigmoid(z): logit-normal": (Inverse(Sigmoid()), torch.linspace(1e-3, 1 - 1e-3, 800)),
    "sinh-arcsinh, skew 1, tailweight 0.8": (SinhArcsinh(skew=1.0, tailweight=0.8), torch.linspace(-3, 8, 800)),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, (title, (flow, grid)) in zip(axes, maps.items()):
    model = FlowModel(flow, StandardNormal())
    samples = model.sample(N, generator=gen)
    q = model.log_prob(grid.reshape(-1, 1)).exp()
    plot_density_vs_samples(samples, grid, q, ax=ax, bins=60, label="q(x) = exp(log_prob)",
                            sample_label="samples x = g(z)", xlabel="x (data)", ylabel="density", title=title)
    inside = ((samples >= grid[0]) & (samples <= grid[-1])).float().mean()
    print(f"{title:38s} ∫ q dx over the plot = {torch.trapezoid(q, grid):.4f}   "
          f"fraction of samples there = {inside:.4f}")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Composing maps.** A log-normal with parameters $\mu, \sigma$ is $x = e^{\sigma z + \mu}$: first an affine map,
# then the exponential. The flow runs the inverses in the opposite order, data → latent: $\log$, then
# standardise. `Compose` applies its flows in the order given and adds their log-dets, so
# $\log\lvert df/dx\rvert = -\log x - \log \sigma$. Compare with SciPy's log-normal, an implementation we did not
# write:

# %% slideshow={"slide_type": "fragment"}
mu, sigma = 1.0, 0.5
lognormal = FlowModel(Compose(Inverse(Exp()), Inverse(Affine(sigma, mu))), StandardNormal())
x_check = torch.linspace(0.05, 15, 300, dtype=torch.float64).reshape(-1, 1)
ours = lognormal.double().log_prob(x_check)
scipy_ = stats.lognorm(s=sigma, scale=math.exp(mu)).logpdf(x_check.numpy().ravel())
print(f"max |flowlib - scipy| of log q over x in [0.05, 15]: {np.abs(ours.numpy() - scipy_).max():.2e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Try it: the change-of-variables widget
#
# Pick a map and a base, move the sliders. The three panels show the base $p(z)$ with a histogram of $z$ samples,
# the map $z \mapsto x$, and $q(x)$ from the flow's forward log-det (the line) against a histogram of
# $x = g(z)$ for the same samples (fixed, so a change you see comes from the map, not from new noise). The green
# band follows one piece of mass through the map: its area is the same in $z$ and in $x$.
# Below the figure: $\int q$ over the plotted range, and how far the histogram is from $q$ compared with what
# sampling noise alone would give.
#
# **Things to try.**
# - *affine*: halve $a$ (from 3 to 1.5) — the histogram narrows and $q$ doubles. Make $a$ negative: the map decreases, and $q$ uses
#   $\lvert a\rvert$. Slide $a$ to 0.
# - *affine* with the *Uniform(0, 1)* base: a block of height $1/\lvert a\rvert$ between $b$ and $a + b$ (which
#   end is the left one depends on the sign of $a$).
# - *exp*: the log-normal; how do $a$ and $b$ change its skew?
# - *logit* with the uniform base: the logistic density (that is §6's inverse-CDF sampling). With the normal base?
# - *square*: the map of §5, with a dashed "naive" curve.

# %% slideshow={"slide_type": "subslide"}
w = change_of_variables("affine", base="normal")
w

# %% [markdown] slideshow={"slide_type": "fragment"}
# The widget has no maths of its own: the line it draws is `exp(base.log_prob(z) + logdet)` from the same
# `flowlib` flows as above. Its controls can be set from code too, which is how its tests work:

# %% slideshow={"slide_type": "fragment"}
w.controls["a"].value, w.controls["b"].value = 2.0, 1.0
peak = w.state["x_grid"][w.state["q_x"].argmax()]
print(f"x = 2z + 1, z ~ N(0, 1): q peaks at x = {peak:.2f} with height {w.state['q_x'].max():.4f} "
      f"(theory: 1 and 1/(2·√(2π)) = {1 / (2 * math.sqrt(2 * math.pi)):.4f})")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. A map that is not invertible: $x = z^2$
#
# Take $z \sim \mathcal N(0, 1)$ and $x = z^2$. The tempting "inverse" is $f(x) = \sqrt{x}$, with
# $\lvert df/dx\rvert = 1/(2\sqrt{x})$, giving the **naive** density
# $q_{\text{naive}}(x) = p(\sqrt{x}) / (2\sqrt{x})$. Integrate it numerically:

# %% slideshow={"slide_type": "subslide"}
def normal_pdf(v):
    return torch.exp(-0.5 * v**2) / math.sqrt(2 * math.pi)


# q has an integrable 1/sqrt(x) singularity at 0: a grid that is geometric near 0 integrates it accurately
x_sq = torch.cat([torch.logspace(-8, -2, 400, dtype=torch.float64), torch.linspace(0.0101, 40, 20_000,
                                                                                    dtype=torch.float64)])
q_naive = normal_pdf(x_sq.sqrt()) / (2 * x_sq.sqrt())
print(f"∫ q_naive dx = {torch.trapezoid(q_naive, x_sq):.4f}   <- half the mass is missing")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Half the mass is missing because $z$ and $-z$ land on the **same** $x$: the interval $dx$ at $x$ receives mass
# from two intervals, one at $+\sqrt x$ and one at $-\sqrt x$. The correct density sums over every preimage:
#
# $$ q(x) = \sum_{z:\, g(z) = x} \frac{p(z)}{\lvert g'(z)\rvert}
#         = \frac{p(\sqrt x) + p(-\sqrt x)}{2\sqrt x} = \frac{p(\sqrt x)}{\sqrt x}, $$
#
# the $\chi^2$ density with one degree of freedom.

# %% slideshow={"slide_type": "subslide"}
q_true = (normal_pdf(x_sq.sqrt()) + normal_pdf(-x_sq.sqrt())) / (2 * x_sq.sqrt())
print(f"∫ q dx (both preimages) = {torch.trapezoid(q_true, x_sq):.4f};  "
      f"max |q - scipy's chi2(1)| on x ≥ 0.01: "
      f"{np.abs(q_true.numpy() - stats.chi2(1).pdf(x_sq.numpy()))[x_sq.numpy() >= 0.01].max():.1e}")

# each preimage branch is itself an invertible map, z = +sqrt(x) or z = -sqrt(x): one flowlib flow per branch
branch_plus, branch_minus = map_branches("square", c=0.0)
with torch.no_grad():
    q_branches = sum(torch.exp(StandardNormal().double().log_prob(zb) + ld)
                     for zb, ld in (b.double()(x_sq.reshape(-1, 1)) for b in (branch_plus, branch_minus)))
print(f"the same from two flowlib flows, one per preimage: max relative difference "
      f"{((q_branches - q_true).abs() / q_true).max():.1e}")

z = torch.randn(N, generator=gen, dtype=torch.float64)
show = x_sq <= 6
fig, ax = plt.subplots(figsize=(6.5, 3.2))
plot_density_vs_samples(z**2, x_sq[show], q_true[show], ax=ax, bins=60, label="q(x), both preimages",
                        sample_label="histogram of x = z²", xlabel="x (data)", ylabel="density",
                        title="x = z², z ~ N(0, 1)")
ax.plot(x_sq[show], q_naive[show], "r--", lw=2, label="naive: one preimage")
ax.set_ylim(0, 2)
ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why flows insist on invertibility.**
# - *Density:* in 1D we could list the two preimages by hand. For a general non-injective map in many dimensions
#   nobody can, and missing one is exactly the error above.
# - *Encoding:* a flow gives every $x$ one exact latent $z = f(x)$; with $x = z^2$ the sign of $z$ is lost.
# - *Sampling and density must agree:* the model samples with $g$ and scores with $f$; that is only consistent
#   when $f = g^{-1}$.
#
# Invertibility matters only **where the base has mass**: with a Uniform(0, 1) base, $z \mapsto z^2$ is
# increasing on $(0, 1)$ and the naive formula is right. See both cases in the widget:

# %% slideshow={"slide_type": "subslide"}
w_square = change_of_variables("square", base="normal")
w_square

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Inverse-CDF sampling is a flow with a uniform base
#
# Let $F$ be a continuous, increasing CDF and $U \sim \text{Uniform}(0, 1)$. Then $X = F^{-1}(U)$ has CDF $F$:
#
# $$ P(X \le x) = P(F^{-1}(U) \le x) = P(U \le F(x)) = F(x). $$
#
# In flow language: take $f = F$ (data → latent) and a uniform base. The change-of-variables formula gives
# $q(x) = p_U(F(x))\, F'(x) = F'(x)$ — the density whose CDF is $F$. **Every 1D distribution with an invertible
# CDF is a flow with a uniform base**, and sampling from it ($x = f^{-1}(u)$) is inverse-CDF sampling.
#
# The logistic sigmoid $\sigma(x) = 1/(1 + e^{-x})$ is the CDF of the standard logistic distribution, so
# `FlowModel(Sigmoid(), StandardUniform())` **is** the logistic density, and its sampler applies
# $\sigma^{-1} = \operatorname{logit}$ to uniforms.

# %% slideshow={"slide_type": "subslide"}
logistic = FlowModel(Sigmoid(), StandardUniform())
x_grid = torch.linspace(-8, 8, 801).reshape(-1, 1)
ours = logistic.log_prob(x_grid)
print(f"max |log q - scipy.stats.logistic.logpdf| = "
      f"{np.abs(ours.numpy() - stats.logistic.logpdf(x_grid.numpy().ravel())).max():.1e}")

u = torch.rand(N, 1, generator=gen).clamp(1e-7, 1 - 1e-7)  # logit is infinite at 0 and 1
x_inverse_cdf, _ = Inverse(Sigmoid()).forward(u)  # x = logit(u) = F^{-1}(u)
x_sampled = logistic.sample(N, generator=gen)  # the same thing, done by the model: flow.inverse(u)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
plot_density_vs_samples(x_inverse_cdf, x_grid, ours.exp(), ax=axes[0], bins=60, label="logistic density",
                        sample_label="logit(u), u ~ Uniform(0, 1)", xlabel="x (data)", ylabel="density",
                        title="inverse-CDF samples")
axes[1].plot(u[:400].flatten(), x_inverse_cdf[:400].flatten(), ".", ms=3)
axes[1].set(xlabel="u (latent, uniform)", ylabel="x = logit(u)", title="the inverse CDF F⁻¹ = logit")
fig.tight_layout()
plt.show()
print(f"mean and std of model.sample: {x_sampled.mean():.3f}, {x_sampled.std():.3f} "
      f"(logistic: 0 and π/√3 = {math.pi / math.sqrt(3):.3f})")

# %% [markdown] slideshow={"slide_type": "fragment"}
# With a **normal** base instead of a uniform one, the flow becomes $f = \Phi^{-1} \circ F$ ($\Phi$ the normal CDF):
# it maps the data to a standard normal, "Gaussianizing" it. That is what §8 learns from data.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Trust a log-det only after testing it
#
# A wrong log-det does not crash anything: training runs, the loss goes down, and the model is silently not a
# density. So every flow in `flowlib` is checked against things it cannot fake: its own inverse
# (`check_round_trip`), and the Jacobian that autograd computes from the map itself, in float64
# (`check_logdet`; in 1D the Jacobian is $1\times1$ and its determinant is the derivative). Here are the lesson's
# flows:

# %% slideshow={"slide_type": "subslide"} tags=["slide-output-only"]
lesson_flows = {
    "Inverse(Affine(3, 1))": (Inverse(Affine(3.0, 1.0)), torch.randn(16, 1)),
    "Inverse(Exp())": (Inverse(Exp()), torch.rand(16, 1) * 5 + 0.01),
    "Inverse(Sigmoid())": (Inverse(Sigmoid()), torch.rand(16, 1) * 0.98 + 0.01),
    "Sigmoid()": (Sigmoid(), torch.randn(16, 1) * 3),
    "SinhArcsinh(1, 0.8)": (SinhArcsinh(1.0, 0.8), torch.randn(16, 1) * 3),
    "MonotoneTanh(8)": (MonotoneTanh(8), torch.randn(16, 1) * 3),
}
print(f"{'flow':22s}  round trip (max error)  log-det vs autograd (max error)")
for name, (flow, x_test_points) in lesson_flows.items():
    round_trip = check_round_trip(flow, x_test_points)  # raises FlowCheckError if the flow fails
    logdet_check = check_logdet(flow, x_test_points)
    print(f"{name:22s}  passed ({round_trip.max_error:.1e})       passed ({logdet_check.max_error:.1e})")


# %% [markdown] slideshow={"slide_type": "fragment"}
# And a broken flow to see the check catch it: an `Exp` whose log-det has the wrong sign.

# %% slideshow={"slide_type": "fragment"}
class BrokenExp(Exp):
    def _forward(self, x):
        z, logdet = super()._forward(x)
        return z, -logdet  # the bug: log|d(e^x)/dx| = +x, not -x


try:
    check_logdet(BrokenExp(), torch.randn(8, 1))
except AssertionError as err:
    print("caught:", err)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Fitting a 1D flow by maximum likelihood
#
# Now the map is learned. Data: a bimodal mixture $0.4\,\mathcal N(-2, 0.5^2) + 0.6\,\mathcal N(1.5, 0.8^2)$,
# whose true density we know, so we can tell how good the fit is. The flow is
# $f = \texttt{MonotoneTanh} \circ \texttt{Affine}$: an affine map that standardises the data, then a learnable
# increasing map $y = a x + b + \sum_k w_k \tanh(s_k x + c_k)$ with $a, w_k, s_k > 0$, so it is invertible by
# construction. The base is $\mathcal N(0, 1)$.
#
# **The objective.** Maximum likelihood **minimises** the negative log-likelihood
#
# $$ \mathcal L = -\frac{1}{n} \sum_{i=1}^n \log q(x_i)
#    = -\frac{1}{n} \sum_{i=1}^n \Big[\log p(f(x_i)) + \log\lvert f'(x_i)\rvert\Big], $$
#
# an estimate of $\mathbb E_{x \sim p_{\text{data}}}[-\log q(x)] = \mathrm{KL}(p_{\text{data}} \,\|\, q) +
# H(p_{\text{data}})$. Two quantities appear here for the first time (lesson 03 derives the split): the
# **entropy** of the data, $H(p_{\text{data}}) = \mathbb E_{p_{\text{data}}}[-\log p_{\text{data}}(x)]$, the NLL of
# the true density itself; and the **KL divergence**
# $\mathrm{KL}(p_{\text{data}}\,\|\,q) = \mathbb E_{p_{\text{data}}}\big[\log \tfrac{p_{\text{data}}(x)}{q(x)}\big]$,
# which is 0 when $q = p_{\text{data}}$ and positive otherwise (Gibbs' inequality). Adding the two gives
# $\mathbb E_{p_{\text{data}}}[-\log q(x)]$. The entropy $H(p_{\text{data}})$ does not depend on the model and the KL divergence is
# never negative, so **in expectation** no model beats the true density's NLL, and the gap to it is (an estimate
# of) the KL divergence. On a finite held-out set both NLLs are sample means: a model can come out a hair below
# the true density by chance, by about the size of the sampling noise.

# %% slideshow={"slide_type": "subslide"}
weights, means, stds = torch.tensor([0.4, 0.6]), torch.tensor([-2.0, 1.5]), torch.tensor([0.5, 0.8])


def sample_mixture(n, generator):
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    return (means[k] + stds[k] * torch.randn(n, generator=generator)).reshape(-1, 1)  # (n, 1)


def true_log_prob(x):
    x = x.reshape(-1, 1)
    log_components = -0.5 * ((x - means) / stds) ** 2 - torch.log(stds) - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(torch.log(weights) + log_components, dim=1)


x_train = sample_mixture(flowlib.pick(3000, 800), gen)
x_test = sample_mixture(2000, gen)
true_nll = -true_log_prob(x_test).mean().item()
print(f"{len(x_train)} training points, {len(x_test)} held-out; true density's held-out NLL: {true_nll:.4f} nats")

# %% slideshow={"slide_type": "subslide"}
m, s = x_train.mean().item(), x_train.std().item()
flow = Compose(Affine(1 / s, -m / s, learnable=True), MonotoneTanh(num_bumps=8))  # data -> latent
model = FlowModel(flow, StandardNormal())
STEPS = flowlib.pick(1000, 100)


def held_out_nll(step, loss, model, history):
    """A fit callback: log the held-out NLL every 100 steps (the live plot shows it)."""
    if step % 100 == 0 or step == STEPS:
        with torch.no_grad():
            history.log("held-out NLL", step, -model.log_prob(x_test).mean().item())


live = LiveLossPlot(every=100, steps=STEPS, title="MonotoneTanh flow, maximum likelihood",
                    reference=(true_nll, "true density, held-out NLL"))
history = fit(model, x_train, steps=STEPS, lr=0.02, batch_size=512, callbacks=[held_out_nll, live])
print(f"{STEPS} steps in {history.seconds:.1f} s; training loss at the last step: {history.loss[-1]:.4f} nats "
      f"(the mean NLL of one minibatch of 512 training points)")

# %% slideshow={"slide_type": "subslide"}
gaussian = FlowModel(Affine(1 / s, -m / s), StandardNormal())  # N(m, s²): a one-layer flow, for comparison
with torch.no_grad():
    model_nll = -model.log_prob(x_test).mean().item()
    gaussian_nll = -gaussian.log_prob(x_test).mean().item()
print(f"held-out NLL (nats):  flow {model_nll:.4f}   true density {true_nll:.4f}   gap {model_nll - true_nll:+.4f}")
print(f"                      one Gaussian with the data's mean and std: {gaussian_nll:.4f}")

fig, ax = plt.subplots(figsize=(7, 3.4))
plot_1d_density_fit(model, x_train, ax=ax, true_log_prob=true_log_prob, x_range=(-4.5, 5),
                    title="the fitted flow vs the data and the true density")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What the flow learned.** $f$ is increasing and sends the data to (nearly) a standard normal: steep where the
# data is dense (a large $f'$ makes $q(x) = p(f(x))\,f'(x)$ high there; seen from the latent side, it spreads
# the dense data out over $z$), flat in the gap between the modes. Sampling runs $f^{-1}$; for this
# flow the inverse has no closed form and `MonotoneTanh` finds it by bisection, so sampling costs dozens of
# passes where evaluating the density costs one — a trade-off later lessons remove with coupling layers.

# %% slideshow={"slide_type": "fragment"}
with torch.no_grad():
    grid = torch.linspace(-4.5, 5, 400).reshape(-1, 1)
    f_grid, _ = model.flow(grid)
    z_test, _ = model.flow(x_test)
    start = time.perf_counter()
    model.log_prob(x_test)
    t_density = time.perf_counter() - start
    start = time.perf_counter()
    x_new = model.sample(len(x_test), generator=gen)
    t_sample = time.perf_counter() - start

fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(grid.flatten(), f_grid.flatten(), color="black")
axes[0].set(xlabel="x (data)", ylabel="z = f(x) (latent)", title="the learned map f")
z_line = torch.linspace(-4, 4, 300)
plot_density_vs_samples(z_test, z_line, StandardNormal().log_prob(z_line.reshape(-1, 1)).exp(), ax=axes[1],
                        bins=50, label="N(0, 1)", sample_label="f(x) of held-out data", xlabel="z (latent)",
                        ylabel="density", title="the data in latent space", color="tab:blue")
axes[2].hist(x_test.flatten(), bins=60, range=(-4.5, 5), density=True, alpha=0.4, color="gray", label="held-out data")
axes[2].hist(x_new.flatten(), bins=60, range=(-4.5, 5), density=True, histtype="step", lw=2, color="tab:blue",
             label="model.sample")
axes[2].set(xlabel="x (data)", ylabel="density", title="samples from the flow")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()
print(f"density of {len(x_test)} points: {1000 * t_density:.1f} ms;  {len(x_test)} samples (bisection): "
      f"{1000 * t_sample:.1f} ms")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Exercises
#
# Each exercise has a cell to fill in and a check that tells you what is wrong, if anything. The solutions are in
# hidden cells below each exercise (click the "…" to reveal one); try first.
#
# **Exercise 1.** Let $z \sim \text{Uniform}(0, 1)$ and $x = 5 - 2z$. Write its density `q_ex1(x)` for a tensor of
# $x$ values. (Which interval does $x$ live in? Is the map increasing?)

# %% slideshow={"slide_type": "fragment"}
def q_ex1(x):
    """The density of x = 5 − 2z, z ~ Uniform(0, 1), at each value of the tensor x."""
    ...  # your answer: use torch.where(condition, value_if_true, value_if_false)


check_affine_uniform_density(q_ex1, a=-2.0, b=5.0)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
# Solution. f(x) = (x − 5)/(−2) = (5 − x)/2 and |df/dx| = 1/2; p(f(x)) = 1 when 0 ≤ (5 − x)/2 ≤ 1, i.e. 3 ≤ x ≤ 5.
def q_ex1(x):
    z = (5 - x) / 2
    return torch.where((z >= 0) & (z <= 1), 0.5, 0.0)


check_affine_uniform_density(q_ex1, a=-2.0, b=5.0, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2.** Let $z \sim \mathcal N(0, 1)$ and $x = e^z$. Write `log_q_ex2(x)`, the log-density
# $\log q(x)$ for a tensor of $x > 0$, with torch operations only (no `flowlib`). Mind the sign of the log-det.

# %% slideshow={"slide_type": "fragment"}
def log_q_ex2(x):
    """log q(x) of x = exp(z), z ~ N(0, 1), at each value of the tensor x > 0."""
    ...  # your answer


check_lognormal_log_prob(log_q_ex2)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
# Solution. f(x) = log x, so log|df/dx| = log(1/x) = −log x, and log p(z) = −z²/2 − ½ log 2π.
def log_q_ex2(x):
    z = torch.log(x)
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - torch.log(x)


check_lognormal_log_prob(log_q_ex2, strict=True)
# the flowlib model of §3 agrees: FlowModel(Inverse(Exp()), StandardNormal())
check_lognormal_log_prob(FlowModel(Inverse(Exp()), StandardNormal()), strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** The exponential distribution with rate $\lambda$ has density $\lambda e^{-\lambda x}$ on
# $x \ge 0$, CDF $F(x) = 1 - e^{-\lambda x}$ and mean $1/\lambda$. Write `sample_exponential(n, rate)` that returns
# `n` samples by inverse-CDF sampling: draw uniforms, apply $F^{-1}$.

# %% slideshow={"slide_type": "fragment"}
def sample_exponential(n, rate):
    """n samples of Exponential(rate), by inverse-CDF sampling; a tensor of shape (n,)."""
    ...  # your answer


check_exponential_sampler(sample_exponential, rate=2.0)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
# Solution. u = F(x) = 1 − exp(−rate·x)  <=>  x = −log(1 − u)/rate. (1 − u is uniform too, so −log(u)/rate works.)
def sample_exponential(n, rate):
    u = torch.rand(n)
    return -torch.log1p(-u) / rate


check_exponential_sampler(sample_exponential, rate=2.0, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 4.** Let $z \sim \mathcal N(0, 1)$ and $x = (z - 1)^2$. The map is not invertible. Write the density
# `q_ex4(x)` for a tensor of $x > 0$. (Where are the preimages of $x$? Do they have the same density $p$?)

# %% slideshow={"slide_type": "fragment"}
def q_ex4(x):
    """The density of x = (z − 1)², z ~ N(0, 1), at each value of the tensor x > 0."""
    ...  # your answer


check_square_density(q_ex4, c=1.0)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
# Solution. The preimages are z = 1 + √x and z = 1 − √x, both with |dz/dx| = 1/(2√x); their contributions add up.
def q_ex4(x):
    r = torch.sqrt(x)
    p = lambda v: torch.exp(-0.5 * v**2) / math.sqrt(2 * math.pi)  # noqa: E731
    return (p(1 + r) + p(1 - r)) / (2 * r)


check_square_density(q_ex4, c=1.0, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Change of variables.** For an invertible $x = g(z)$ with $f = g^{-1}$:
#   $q(x) = p(f(x))\,\lvert df/dx\rvert$, or in logs $\log q(x) = \log p(f(x)) + \log\lvert df/dx\rvert$. It
#   follows from conserving mass, $q(x)\lvert dx\rvert = p(z)\lvert dz\rvert$: stretching lowers the density.
# - **In flowlib** the flow is the data → latent map: `z, logdet = flow.forward(x)` and
#   `FlowModel(flow, base).log_prob(x) = base.log_prob(z) + logdet`. A generative map $g$ is written `Inverse(g)`.
# - **Invertibility** is what makes the formula one term. For a non-injective map every preimage contributes; for
#   $x = z^2$ the one-preimage formula loses half the mass.
# - **Inverse-CDF sampling** is a flow with a uniform base and $f = F$, the CDF.
# - **Test log-dets** against the autograd Jacobian; a wrong one fails silently otherwise.
# - **Maximum likelihood** minimises the training NLL $-\frac1n\sum\log q(x_i)$ over the training points; the NLL on
#   held-out points judges the fit. The true density's held-out NLL is the floor (in expectation), and the gap
#   to it estimates $\mathrm{KL}(p_{\text{data}}\,\|\,q)$.
#
# **Next: lesson 02**, Jacobians and triangular maps: in $D$ dimensions $\lvert f'\rvert$ becomes
# $\lvert\det \partial f/\partial x\rvert$, which costs $O(D^3)$ in general — unless the map is triangular.
