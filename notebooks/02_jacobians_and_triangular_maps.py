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
# # Lesson 02 — Jacobians and triangular maps
#
# In lesson 01 a 1D map stretched the line, and the density changed by the stretch factor: divided by |dg/dz| in the
# sampling direction x = g(z), equivalently multiplied by |df/dx| in the density direction z = f(x). In two or more
# dimensions a map stretches, shears and rotates space at once; the factor that tells how much **volume** changes is
# the absolute value of the **determinant of the Jacobian**. This lesson makes that factor visible, measures what
# it costs to compute, and shows the trick that makes it cheap: **triangular (autoregressive) maps**.
#
# **Learning goals.** After this lesson you can
# 1. explain det A as the (signed) area scaling of a linear map, and why det A = 0 means "not invertible";
# 2. see that a smooth non-linear map is locally linear, with its Jacobian as the local matrix;
# 3. compute a Jacobian with autograd and check a hand-derived one against it;
# 4. count the O(D³) work of a general determinant, measure its time (and see why time and work grow at different
#    rates), and measure that a triangular one costs O(D);
# 5. build and check an affine autoregressive flow in 2D (MAF).
#
# **Prerequisites.** Lesson 01 (change of variables in 1D: q(x) = p(f(x))·|df/dx|); matrices and determinants
# of 2x2 matrices; basic PyTorch.
#
# **Estimated time.** 60–75 minutes (lecture path: about 45 minutes).
#
# **Notation (the whole course).** x is data, z is latent, the flow is f: x → z, and
# log q(x) = log p(f(x)) + log|det ∂f/∂x|.

# %% [markdown] slideshow={"slide_type": "skip"}
# **Setup.** One cell: imports, seeding, inline figures. `FLOWS_FAST=1` (as in the tests) runs a shorter version.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch

import flowlib
from flowlib_teaching import plot2d
from flowlib.data import toy2d
from flowlib_teaching import maps2d, widgets
from flowlib_teaching.exercises import lesson02 as ex
from flowlib import testing as T
from flowlib.bijections.autoregressive import MAF

device = flowlib.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = flowlib.fast_mode()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The determinant is an area scale factor
#
# A 2x2 matrix A = [[a, b], [c, d]] sends the unit square to the parallelogram spanned by its columns A e₁ = (a, c)
# and A e₂ = (b, d). That parallelogram has area **|det A| = |ad − bc|**. Every small square anywhere is scaled the
# same way, so *every* area is multiplied by |det A|.
#
# For densities this is the whole story of a linear flow: if x = A z with z ∼ p(z), probability mass is conserved,
# the area is multiplied by |det A|, so the density is divided by it: q(x) = p(A⁻¹x) / |det A|.
#
# Drag the sliders. Watch for: a negative determinant (the square is mirrored), and det A = 0 (the square collapses —
# try a = b = c = d = 1).

# %% slideshow={"slide_type": "subslide"}
square = widgets.matrix_deformation()
square


# %% [markdown] slideshow={"slide_type": "fragment"}
# The widget's numbers are in `square.state`. A brute-force check, not trusting the formula: throw random points into
# a box around the image and count the fraction that lands inside it (a point y is inside if A⁻¹ y is in the unit
# square).

# %% slideshow={"slide_type": "subslide"}
def area_by_monte_carlo(A, n=200_000, seed=0):
    A = torch.as_tensor(A, dtype=torch.float64)
    corners = torch.tensor([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.float64) @ A.T
    lo, hi = corners.min(0).values, corners.max(0).values
    g = torch.Generator().manual_seed(seed)
    y = lo + (hi - lo) * torch.rand(n, 2, generator=g, dtype=torch.float64)
    u = torch.linalg.solve(A, y.T).T  # A^{-1} y
    inside = ((u >= 0) & (u <= 1)).all(1).double()
    return float(inside.mean() * (hi - lo).prod())


for A in ([[2.0, 0.0], [0.0, 0.5]], [[1.5, 0.5], [0.25, 1.0]], [[0.0, 1.0], [1.0, 0.0]]):
    det = float(torch.linalg.det(torch.tensor(A)))
    print(f"A = {A}: det A = {det:+.3f}, Monte Carlo area = {area_by_monte_carlo(A):.3f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Exercise 1 — an area
#
# What is the area of the image of the unit square under A = [[1, 2], [1.5, 0.5]]? Write a number (you may use
# Python to compute it).

# %%
area_answer = ...  # your answer
ex.check_area(area_answer)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
# Solution: det A = 1·0.5 − 2·1.5 = −2.5; an area is |det A| = 2.5 (the minus sign: the square is mirrored).
area_answer = abs(1 * 0.5 - 2 * 1.5)
ex.check_area(area_answer, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. A non-linear map is locally linear
#
# A non-linear map T bends a grid. (We call it T here, a generic map of the plane: p is the base density and g the
# generator elsewhere in the course.) But zoom in far enough around a point a and it looks linear:
#
# T(x) ≈ T(a) + J(a)·(x − a),  where J(a)ᵢⱼ = ∂Tᵢ/∂xⱼ at a is the **Jacobian**.
#
# So a tiny square of side r at a is sent to (almost) a parallelogram of area |det J(a)|·r². That is why the
# change-of-variables formula has |det J| in it: each point's neighbourhood has its own area scale.
#
# Move the point, and shrink the square side r: the orange image and the red linear approximation merge, and
# "area / r²" approaches |det J(a)|. Compare the two maps: the *sine shear* changes areas; the *swirl* twists shapes
# but keeps every area (det J = 1 everywhere: a **volume-preserving** map).

# %% slideshow={"slide_type": "subslide"} tags=["slide-output-only"]
local = widgets.local_linearization()
local

# %% [markdown] slideshow={"slide_type": "fragment"}
# The same check in code: the area ratio of the image of a small square tends to |det J(a)| as r shrinks, and the
# largest gap between the curved image and its linear approximation shrinks like r² (the first neglected term of the
# Taylor expansion is quadratic), so the printed gap / r shrinks like r: divide r by 3 and gap / r drops about 3x. (The rows use r = 0.9, 0.3 and
# 0.1, each a third of the one before; the slider's smallest value is 0.05, and each row prints the r the widget
# really used.)

# %%
for r in (0.9, 0.3, 0.1):  # each a third of the one before (the slider: minimum 0.05, step 0.05)
    local.controls["r"].value = r
    s = local.state
    r_used = local.controls["r"].value  # what the widget computed with
    print(f"r = {r_used:5.2f}: area/r² = {s['area_ratio']:.4f}   det J(a) = {s['det']:.4f}   "
          f"gap/r = {s['error']:.4f}")
local.controls["r"].value = 0.8

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The Jacobian by autograd
#
# We never need to derive a Jacobian by hand: autograd computes ∂Tᵢ/∂xⱼ exactly (to rounding).
# `flowlib.testing.jacobian(fn, x)` returns the (B, D, D) Jacobian of a batch map at each sample. Below we check it
# against finite differences, which only use evaluations of T.
#
# Autograd builds J one row at a time: one backward pass per output, so **D backward passes** for a D x D Jacobian,
# before any determinant is computed. Fine for checking a flow in 2D (or a few hundred dimensions in a test); far too
# slow inside a training loop on images. Flows are designed so that log|det J| comes out of the forward pass instead.

# %%
from flowlib.testing import jacobian

T_map = lambda x: maps2d.sine_shear(x, 0.6)  # noqa: E731  (shear strength c = 0.6)
a = torch.tensor([[0.8, 0.4]], dtype=torch.float64)
J_auto = jacobian(T_map, a)[0]
eps = 1e-6
J_fd = torch.stack([(T_map(a + eps * e) - T_map(a - eps * e))[0] / (2 * eps)
                    for e in torch.eye(2, dtype=torch.float64)], 1)
print("autograd:\n", J_auto.numpy().round(6))
print("finite differences:\n", J_fd.numpy().round(6))
print("max difference:", float((J_auto - J_fd).abs().max()))


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 2 — a Jacobian by hand
#
# The sine shear with strength c is y = (x₁ + c·sin x₂, x₂ + c·sin x₁). Write its Jacobian as a 2x2 nested list
# [[∂y₁/∂x₁, ∂y₁/∂x₂], [∂y₂/∂x₁, ∂y₂/∂x₂]]. The checker compares it with autograd at three points.

# %%
def sine_shear_jacobian(x1, x2, c):
    raise NotImplementedError  # return [[..., ...], [..., ...]]


ex.check_sine_shear_jacobian(sine_shear_jacobian)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def sine_shear_jacobian(x1, x2, c):
    return [[1.0, c * math.cos(x2)], [c * math.cos(x1), 1.0]]


ex.check_sine_shear_jacobian(sine_shear_jacobian, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. What a determinant costs
#
# A flow on D-dimensional data needs log|det J| for every sample at every training step. For a general D x D
# matrix that means an LU factorisation: about (2/3)·D³ operations. For images, D is in the thousands. Let us
# measure it on this machine, against the cost of a **triangular** matrix, whose determinant is just the product
# of its diagonal (so log|det| is a sum of D logs).

# %% slideshow={"slide_type": "subslide"}
from flowlib_teaching.experiments import determinant_costs

dims = flowlib.pick([16, 32, 64, 128, 256, 512, 1024, 2048], [16, 64, 256])
costs = determinant_costs(dims, repeats=flowlib.pick(5, 2))
for d, tg, tt in zip(costs["dim"], costs["general"], costs["triangular"]):
    print(f"D = {d:5d}: general slogdet {1e3 * tg:9.3f} ms   triangular diagonal {1e3 * tt:7.3f} ms")

fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.loglog(costs["dim"], costs["general"], "o-", label="general: torch.linalg.slogdet")
ax.loglog(costs["dim"], costs["triangular"], "s-", label="triangular: sum of log|diagonal|")
ref = costs["general"][-1] * (torch.tensor(costs["dim"], dtype=torch.float64) / costs["dim"][-1]) ** 3
ax.loglog(costs["dim"], ref, "k:", label="slope 3 (∝ D³)")
ax.set(xlabel="dimension D", ylabel="median seconds", title="cost of log|det J|")
ax.legend()
plt.show()


# %% [markdown] slideshow={"slide_type": "subslide"}
# For small D both are dominated by fixed overheads (calling into PyTorch). Two different things grow with D:
#
# - the **work**: an LU factorisation of a general D x D matrix takes about (2/3)·D³ floating-point operations
#   (flops). That is counted, not measured, and it is exactly ∝ D³;
# - the **time**, which is what the clock measures: time = flops / speed, where the speed (GFLOP/s, flops per
#   second) is whatever the CPU achieves on that size.
#
# If the speed were the same at every size, the time would grow like D³ too. It is not: a small matrix keeps the
# CPU's vector units and caches half idle, and the blocked LU of a larger one runs closer to the machine's peak
# (a 2048 x 2048 float32 matrix, the largest here, is 16 MB). So the time grows *more slowly* than D³ while
# the speed rises. The cell below prints the measured time, the counted flops and the achieved speed for each D,
# and fits the log-log slope of both over the largest sizes: the two slopes add up to 3, because flops ∝ D³.
# Other programs sharing the CPU during the run add noise. In fast mode (`FLOWS_FAST=1`, D ≤ 256) the sizes are
# too small to see the trend: the slopes printed then mean little.

# %% slideshow={"slide_type": "subslide"}
def loglog_slope(d, y):
    """Least-squares slope of log y against log d."""
    ld, ly = d.log() - d.log().mean(), y.log() - y.log().mean()
    return float((ld * ly).sum() / (ld ** 2).sum())


dim_t = torch.tensor(costs["dim"], dtype=torch.float64)
seconds = torch.tensor(costs["general"], dtype=torch.float64)
flops = 2 / 3 * dim_t ** 3  # the LU's work, counted
gflops = flops / seconds / 1e9  # the speed achieved, measured
for d, f, t, g in zip(costs["dim"], flops, seconds, gflops):
    print(f"D = {d:5d}: {float(f):9.3g} flops in {1e3 * float(t):9.3f} ms = {float(g):6.2f} GFLOP/s")
last = slice(-3, None)
slope_time, slope_speed = loglog_slope(dim_t[last], seconds[last]), loglog_slope(dim_t[last], gflops[last])
print(f"log-log slopes over D = {costs['dim'][-3:]}: time {slope_time:.2f}, speed {slope_speed:.2f}; "
      f"time + speed = {slope_time + slope_speed:.2f} (flops ∝ D³)")

fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.semilogx(costs["dim"], gflops, "o-")
ax.set(xlabel="dimension D", ylabel="GFLOP/s achieved", title="general determinant: speed rises with D")
plt.show()


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Triangular maps
#
# A map is **triangular** (autoregressive) when output i depends only on inputs 1..i:
#
# z₁ = f₁(x₁),  z₂ = f₂(x₁, x₂),  …,  z_D = f_D(x₁, …, x_D).
#
# Then ∂zᵢ/∂xⱼ = 0 for j > i: the Jacobian is lower triangular, and
#
# log|det ∂f/∂x| = Σᵢ log|∂zᵢ/∂xᵢ|  — D numbers, no determinant.
#
# It is invertible if each zᵢ is strictly monotone in xᵢ: solve z₁ for x₁, then z₂ for x₂ given x₁, and so on.
#
# ### Exercise 3 — a log-determinant from the diagonal
#
# Write `triangular_logdet(J)` for a batch of lower-triangular matrices J of shape (B, D, D), returning
# log|det J| of shape (B,). Use only the diagonal. (Some diagonal entries are negative.)

# %%
def triangular_logdet(J):
    raise NotImplementedError  # hint: torch.diagonal(J, dim1=-2, dim2=-1)


ex.check_triangular_logdet(triangular_logdet)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def triangular_logdet(J):
    return torch.diagonal(J, dim1=-2, dim2=-1).abs().log().sum(-1)


ex.check_triangular_logdet(triangular_logdet, strict=True)


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. An affine autoregressive flow in 2D, written out
#
# The simplest useful triangular flow is **affine in each coordinate**, with shift and log-scale that depend on the
# earlier coordinates (data → latent):
#
# z₁ = (x₁ − μ₁)·exp(−α₁),    z₂ = (x₂ − μ₂(x₁))·exp(−α₂(x₁)),
#
# log|det ∂z/∂x| = −α₁ − α₂(x₁).
#
# Its inverse is sequential: first x₁ = z₁·exp(α₁) + μ₁, then x₂ = z₂·exp(α₂(x₁)) + μ₂(x₁). Here it is with
# hand-picked functions μ₂(x₁) = sin(2x₁) and α₂(x₁) = 0.5·tanh(x₁), and for the first coordinate, which has no
# earlier coordinates to depend on, plain numbers μ₁ = 0.5 and α₁ = 0.3 (in the code: `- 0.5`, `math.exp(-0.3)`,
# and the constant −0.3 in the log-det), as a `flowlib.Flow`:

# %% slideshow={"slide_type": "subslide"}
class Affine2DAutoregressive(flowlib.Flow):
    event_shape = (2,)

    def _forward(self, x):
        mu2, alpha2 = torch.sin(2 * x[:, 0]), 0.5 * torch.tanh(x[:, 0])
        z = torch.stack([(x[:, 0] - 0.5) * math.exp(-0.3), (x[:, 1] - mu2) * torch.exp(-alpha2)], 1)
        return z, -0.3 - alpha2

    def _inverse(self, z):
        x1 = z[:, 0] * math.exp(0.3) + 0.5  # first x1 ...
        mu2, alpha2 = torch.sin(2 * x1), 0.5 * torch.tanh(x1)  # ... then what x2 needs
        x2 = z[:, 1] * torch.exp(alpha2) + mu2
        return torch.stack([x1, x2], 1), 0.3 + alpha2


ar = Affine2DAutoregressive()
x = torch.randn(5, 2)
print(T.check_round_trip(ar, x))
print(T.check_logdet(ar, x))
print(T.check_triangular(ar, x, "lower"))
print("Jacobian at one point (autograd):\n", T.jacobian(lambda v: ar(v)[0], x[:1].double())[0].numpy().round(3))

# %% [markdown] slideshow={"slide_type": "subslide"}
# What does it do to a standard normal? Sampling runs the inverse on z ~ N(0, I); the density is
# q(x) = p(f(x))·|det ∂f/∂x|. The left panel shows a grid of latent space mapped to data space, the others the
# model's density and samples: x₂ given x₁ is a Gaussian whose mean and width follow x₁. All three panels show the
# same window of data space, x ∈ (−4, 4)²; the grid covers z ∈ (−3, 3)², where almost all of p(z)'s mass lies, so its
# image does not fill the window.

# %%
model = flowlib.FlowModel(ar, flowlib.StandardNormal(2))
fig, axes = plot2d.new_figure(3, size=3.3)
plot2d.plot_grid_deformation(axes[0, 0], plot2d.flow_fn(ar, "inverse"), ((-3, 3), (-3, 3)), lines=13,
                             names=("x_1", "x_2"), title="latent grid, mapped to x", limits=((-4, 4), (-4, 4)))
plot2d.plot_density(axes[0, 1], model.log_prob, ((-4, 4), (-4, 4)), title="q(x) from the formula")
fig.colorbar(axes[0, 1].images[-1], ax=axes[0, 1], shrink=0.8, label="q(x)")
with torch.no_grad():
    plot2d.plot_samples(axes[0, 2], model.sample(3000), ((-4, 4), (-4, 4)), title="samples x = f⁻¹(z)")
fig

# %% [markdown] slideshow={"slide_type": "subslide"}
# Check the formula against the samples: the density should integrate to 1, and log q at each sample, computed from
# the data side (log p(f(x)) + log|det ∂f/∂x|), should match the same number computed a second way, from the latent
# side while sampling (log p(z) − log|det ∂x/∂z|). We print the largest per-sample difference (so the means agree
# too), and the two means.

# %%
X, Y, P = plot2d.density_on_grid(model.log_prob, ((-8, 8), (-8, 8)), n=400)
cell = (16 / 399) ** 2
with torch.no_grad():
    xs, lq_latent = model.sample_with_log_prob(20_000)
    lq_data = model.log_prob(xs)
print(f"∫ q(x) dx on the grid = {P.sum() * cell:.4f}")
print(f"max over samples |log q(x) from the data side − from the latent side| = "
      f"{float((lq_data - lq_latent).abs().max()):.2e}")
print(f"mean log q: data side {float(lq_data.mean()):.4f}, latent side {float(lq_latent.mean()):.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. MAF: the same idea with a neural network
#
# In a **masked autoregressive flow** (MAF, Papamakarios et al. 2017) μᵢ and αᵢ come from one neural network, a
# MADE, whose weight matrices are multiplied by 0/1 masks so that output i cannot see xᵢ, xᵢ₊₁, …. Then all D shifts
# and scales come from **one pass**: the density is cheap. Sampling is sequential (xᵢ needs x₍<ᵢ₎): D passes.
# `flowlib.bijections.autoregressive.MAF` bounds αᵢ softly (|αᵢ| < 6 by default) and starts as the identity (zero-initialised
# last layer). The library's brute-force checks, on a MAF moved away from the identity:

# %% slideshow={"slide_type": "subslide"}
torch.manual_seed(0)
maf_layer = MAF(4, hidden=(32, 32), order=torch.tensor([2, 0, 3, 1]))
with torch.no_grad():
    for prm in maf_layer.parameters():
        prm.add_(0.3 * torch.randn(prm.shape))
x = torch.randn(6, 4)
print(T.check_round_trip(maf_layer, x))
print(T.check_logdet(maf_layer, x))
print(T.check_triangular(maf_layer, x, "lower", order=maf_layer.order))
J = T.jacobian(lambda v: maf_layer(v)[0], x[:1])[0]
print("Jacobian, rows/columns in the variable order", maf_layer.order.tolist(), "(zeros above the diagonal):")
print(J[maf_layer.order][:, maf_layer.order].numpy().round(3))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### How the masks enforce the order
#
# `order=[2, 0, 3, 1]` lists coordinates by their Python index (from 0): x₃ comes first (it sees nothing),
# then x₁ (sees x₃), then x₄ (sees x₃ and x₁), then x₂ (sees the other three). The MADE gives each input its
# position in the order, 1 to D, as a *degree*, and each hidden unit a degree between 1 and D − 1. A weight
# from unit a to unit b is kept (mask 1) only if deg(a) ≤ deg(b); an output of variable i only reads hidden
# units of degree *strictly below* deg(i). Follow any path from input j to output i: the degrees never
# decrease and the last step is strict, so deg(j) < deg(i): output i sees only coordinates earlier in the
# order. The cell below multiplies the 0/1 masks of all layers: entry (i, j) counts the paths from x_j to
# the shift of x_i, and 0 means the network cannot see x_j there, whatever its weights.
#
# `J[order][:, order]` reorders the rows and the columns of the Jacobian by the order, so that the first
# row and column are x₃'s, then x₁'s, and so on: in that ordering the Jacobian is lower triangular, which
# is what `check_triangular(..., order=...)` checks.

# %% slideshow={"slide_type": "-"}
made = maf_layer.made
paths = made.out.mask[:4]  # (4, hidden): the shift outputs of x_1..x_4 and the last hidden layer
for layer in reversed([m for m in made.body if hasattr(m, "mask")]):
    paths = paths @ layer.mask  # ... back through every masked layer to the inputs: (4, 4)
print("paths from x_j (columns) to the shift of x_i (rows), variables numbered from 1:")
print((paths > 0).int().numpy())
o = maf_layer.order
print("the same, rows and columns in the order", (o + 1).tolist(), "(strictly lower triangular):")
print((paths > 0).int()[o][:, o].numpy())

# %% [markdown] slideshow={"slide_type": "subslide"}
# One MAF layer in 2D, trained on the two moons for a few hundred steps: its x₂ given x₁ is still a single
# Gaussian, so it cannot separate the moons (and x₁ alone is only shifted and scaled). Stacking layers, with the
# order reversed between them, is lesson 03.

# %%
from flowlib.training.toy2d import evaluate_2d, train_2d

moons = toy2d.get("moons")
flowlib.seed_everything(0)
one_layer = flowlib.FlowModel(MAF(2, hidden=(64, 64)), flowlib.StandardNormal(2))
hist = train_2d(one_layer, moons, steps=flowlib.pick(600, 60), lr=3e-3, batch_size=256)  # Adam, cosine-lowered lr
test = moons.sample(20_000, seed=1)
r = evaluate_2d(one_layer, moons, test)  # -mean log q on the held-out samples, and -mean log p (the floor)
print(f"one MAF layer: held-out NLL {r['nll']:.3f} nats; the floor (entropy of the moons) is "
      f"{r['floor']:.3f} ± {r['floor_stderr']:.3f} nats")
fig, axes = plot2d.new_figure(3, size=3.3)
plot2d.plot_samples(axes[0, 0], test, moons.bounds, title="data: two moons", color="0.4")
P_data = plot2d.plot_density(axes[0, 2], moons.log_prob, moons.bounds, title="true density p_data(x)")
# the same bounds on every panel, and the same colour scale on both density panels, so they can be compared
plot2d.plot_density(axes[0, 1], one_layer.log_prob, moons.bounds, title="one MAF layer: q(x)", vmax=float(P_data.max()))
for ax in axes[0, 1:]:
    fig.colorbar(ax.images[-1], ax=ax, shrink=0.8, label="density")
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - |det A| is the factor by which a linear map scales areas (volumes); det A = 0 means the map collapses space and
#   has no inverse, so it cannot be a flow.
# - A smooth map is locally linear: near a point a it acts like its Jacobian J(a), and it scales small areas by
#   |det J(a)|. That is the factor in log q(x) = log p(f(x)) + log|det ∂f/∂x|.
# - Autograd gives exact Jacobians, at the price of D backward passes; `flowlib.testing` uses them to check every flow's log-det by brute force.
# - A general determinant costs O(D³) flops (counted); its measured time grew more slowly here because the speed
#   achieved rose with D (both printed above); a triangular Jacobian's determinant costs O(D): the sum of the logs of
#   its diagonal.
# - Autoregressive maps are triangular. An affine autoregressive flow (MAF) evaluates the density in one pass, but
#   samples one coordinate at a time.
#
# **Next:** lesson 03 stacks such layers, trains them by maximum likelihood, and compares the two directions'
# costs with other generative models.
