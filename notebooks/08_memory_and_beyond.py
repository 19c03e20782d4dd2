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
# # Lesson 08 — Memory, and beyond: backpropagation without stored activations; where flows went next
#
# A deep network pays for its depth twice: in time, and in **memory**, because ordinary backpropagation keeps every
# layer's activations until the backward pass needs them. A flow is invertible, so it does not have to keep them:
# each layer's input can be *recomputed from its output*. This lesson makes that work on Glow — log-determinants,
# ActNorm and the LU convolution included — and measures what it saves and what it costs. The last part is a short
# map of where flows went after Glow, each stop with a small runnable example.
#
# **Learning goals.** After this lesson you can
# - explain why backpropagation stores activations, and how an invertible stack can rebuild them from its output
#   with the inverse, one step at a time (the log-det's gradient included);
# - read a memory benchmark: peak memory of a training step against depth for ordinary autograd, backprop by the
#   inverse, and gradient checkpointing, and the price of each in time;
# - say where the inverse's float32 rounding matters (reconstruction drift over depth, and its effect on gradients);
# - train a **continuous-time flow by flow matching**, sample it with an ODE solver and compute its likelihood by the
#   instantaneous change of variables; and describe an **autoregressive flow with a transformer conditioner**.
#
# **Prerequisites.** Lessons 03 (composition, maximum likelihood), 05 (multi-scale image flows) and 06 (Glow's
# layers: ActNorm, the 1×1 convolution, the coupling).
#
# **Estimated time.** 60 minutes of reading and exercises. Running all cells in normal mode took 38 s on our
# 2-core CPU when it was otherwise idle and 295 s when it was loaded (load average 2–7; both measured with
# `python -m benchmarks lesson_times` on 2026-12-02), most of it the two trainings of section 5; fast mode
# (`FLOWS_FAST=1`) takes about 17 s of CPU time. The full memory benchmark is not rerun here: its committed figures
# are shown, with the command that reproduces them.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import copy
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import flowlib as fl
from flowlib import testing
from flowlib.data import toy2d
from flowlib.builders import glow, glow_flow
from flowlib.bijections.continuous import ContinuousFlow, LinearVelocity, VelocityMLP, rk4, train_flow_matching
import pathlib
from flowlib_teaching.exercises.lesson08 import check_backward_step, check_conditioner_passes, check_linear_logdet
from flowlib.memory import MemorySavingCompose, leaf_steps, saved_bytes, set_memory_strategy
from flowlib_teaching.plot2d import density_on_grid
from flowlib.bijections.transformer import TransformerAutoregressive, transformer_flow

device = fl.setup(seed=0)  # seed, one thread, the device, and whether fast mode is on
FAST = fl.fast_mode()  # the test suite sets FLOWS_FAST=1: smaller models, fewer steps, same code
T0 = time.perf_counter()

ROOT = pathlib.Path(fl.__file__).resolve().parents[1]  # the course's checkout (benchmark results)


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Why backpropagation stores activations
#
# For a stack $z = f_K \circ \dots \circ f_1(x)$ write $x_0 = x$, $x_k = f_k(x_{k-1})$. The loss is
# $L = -\log p(x_K) - \sum_k \log|\det J_{f_k}(x_{k-1})|$. The chain rule walks back from $x_K$:
#
# $$\frac{\partial L}{\partial x_{k-1}} = \Big(\frac{\partial L}{\partial x_k}\Big)^{\!\top} \frac{\partial f_k}{\partial x_{k-1}}
#  \;+\; \frac{\partial L}{\partial\, \mathrm{logdet}}\,\frac{\partial \log|\det J_{f_k}|}{\partial x_{k-1}},$$
#
# and both Jacobians are evaluated **at $x_{k-1}$** (and at everything the layer's network computed from it). So
# autograd keeps them all, for every k: memory grows linearly in K.
#
# **The idea.** A flow can give them back: $x_{k-1} = f_k^{-1}(x_k)$. Keep only the output $x_K$; in the backward
# pass, for k = K, …, 1: rebuild $x_{k-1}$ by the inverse, run $f_k$ once more *with* a graph from it, backpropagate
# $(\partial L/\partial x_k,\ \partial L/\partial\,\mathrm{logdet})$ through that one step, drop it, move on. Only one
# step's activations are alive at any time. (Gomez et al. 2017, *The reversible residual network*, did this for
# residual blocks; `flowlib.memory.MemorySavingCompose` does it for flows, log-dets included, as a custom
# `torch.autograd.Function`.)
#
# Three strategies, one option of the Glow builder, one `state_dict`:
#
# | `glow(..., memory=...)` | the backward pass | memory in depth K |
# |---|---|---|
# | `None` | ordinary autograd | stores every step's activations: O(K) |
# | `"checkpoint"` | `torch.utils.checkpoint` per step: keeps each step's *input*, recomputes the rest | O(K), smaller slope |
# | `"invertible"` | rebuilds each step's input by its inverse | O(1) |

# %% [markdown] slideshow={"slide_type": "subslide"}
# First, what autograd actually keeps. A saved-tensor hook counts the bytes of every tensor autograd stores for the
# backward pass of one training step (`flowlib.memory.saved_bytes`: the hook adds up `numel × element_size` of each
# tensor autograd saves while the loss is computed), for Glows of growing depth:

# %%
demo_depths = [1, 2, 4] if FAST else [2, 4, 8, 16]
demo_hidden = 16 if FAST else 64
x_demo = torch.randint(0, 256, (16, 1, 28, 28)).float() + torch.rand(16, 1, 28, 28)
stored = {}
for memory in (None, "invertible"):
    for k in demo_depths:
        torch.manual_seed(0)
        m = glow(levels=2, steps=k, hidden=demo_hidden, memory=memory)
        stored[memory, k] = saved_bytes(m, x_demo) / 2**20
for k in demo_depths:
    print(f"K = {k:2d}: ordinary autograd keeps {stored[None, k]:7.1f} MB, "
          f"backprop by the inverse keeps {stored['invertible', k]:5.2f} MB")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The ordinary figure grows with K; the invertible one does not move: it is the pre-processing's few tensors and each
# level's output. (This counts what autograd *stores*; the true peak of a step also has the one step being
# recomputed, gradients and the optimizer's state. The benchmark in section 3 measures the process itself.)
#
# **Is it still the right gradient?** The same Glow (ActNorm with its data-dependent start, the LU 1×1 convolution,
# affine couplings), float64, ordinary autograd against both memory-saving strategies, from a fresh model (so the
# first pass also initialises ActNorm):

# %%
torch.manual_seed(1)
reference = glow((1, 8, 8), levels=2, steps=3, hidden=8).double()
x_small = torch.randint(0, 256, (6, 1, 8, 8)).double() + torch.rand(6, 1, 8, 8, dtype=torch.float64)
grads = {}
for memory in (None, "invertible", "checkpoint"):
    model = glow((1, 8, 8), levels=2, steps=3, hidden=8, memory=memory).double()
    model.load_state_dict(reference.state_dict())  # the same weights; the same state_dict layout for all three
    (-model.log_prob(x_small).mean()).backward()
    grads[memory] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
for memory in ("invertible", "checkpoint"):
    err = float((grads[memory] - grads[None]).abs().max() / grads[None].abs().max())
    print(f"{memory:>10}: max |gradient - ordinary autograd's| / max |gradient| = {err:.1e} "
          f"over {grads[None].numel():,} parameters")


# %% [markdown] slideshow={"slide_type": "subslide"}
# Agreement to float64 rounding. The test suite checks the same thing per parameter (and the input's gradient, and
# each strategy under `flowlib.training.fit`, after a checkpoint reload, and with `DistributedDataParallel` on two
# processes); the flow registry runs every brute-force check of the course through the custom backward.
#
# **ActNorm.** Its data-dependent start needs the real activations of the first batch. `MemorySavingCompose` sees a
# step that has not initialised yet and first sends the batch through an ordinary pass without gradients (which
# initialises every ActNorm in order), then through the memory-saving one.
#
# **One detail that saves time.** A Glow coupling passes $x_a$ through unchanged. Rebuilding its input needs
# $s, t = \mathrm{NN}(x_a)$, and so does re-running its forward: `flowlib.memory` evaluates the network once, with a
# graph, for both — so the backward pass costs one extra network evaluation per coupling, not two.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Try it: one backward step by hand
#
# **Exercise 1.** Write one step of backpropagation by the inverse: given a step `step`, its output `y`, the
# gradient `grad_y` of the loss with respect to `y` and `grad_logdet` with respect to the step's log-det, return
# `(x, grad_x)`: the step's rebuilt input and the loss's gradient with respect to it. The step's parameters must
# receive their gradients too (in `p.grad`), as they would from ordinary autograd. The checker uses an affine Glow
# coupling in float64 and compares with ordinary autograd at the true input.

# %%
def backward_step(step, y, grad_y, grad_logdet):
    ...  # your answer


check_backward_step(backward_step)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def backward_step(step, y, grad_y, grad_logdet):
    with torch.no_grad():
        x, _ = step.inverse(y)  # rebuild the input: no graph needed for that
    x = x.requires_grad_(True)
    y_again, logdet = step(x)  # the step once more, with a graph, from the rebuilt input
    torch.autograd.backward([y_again, logdet], [grad_y, grad_logdet])  # fills x.grad and every p.grad
    return x.detach(), x.grad


check_backward_step(backward_step, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Measured: peak memory and time of a training step against depth
#
# `python -m benchmarks glow_memory` builds the course's Glow for Fashion-MNIST-sized input (two levels, K steps per
# level, couplings of 128 channels, batch 64) and measures one training step (forward, backward, Adam) per
# configuration, **each in a fresh Python process**. CPU memory is the process's peak resident memory: the
# high-water mark after the first step minus the high-water mark after imports, model, gradient buffers and Adam's
# state are allocated — what the step's activations cost. Time per step is a median of the steps after the first.
# The figures below are the committed run (the file the benchmark writes); the command to redo them is printed.

# %%
results = json.loads((ROOT / "benchmarks" / "results" / "glow_memory.json").read_text())
rows = results["rows"]
print("command:", results["command"], "|", results["date"], "|", results["machine"])
strategies = {"none": "ordinary autograd", "invertible": "backprop by the inverse", "checkpoint": "checkpointing"}
depths = sorted({r["depth"] for r in rows})
by = {(r["strategy"], r["depth"]): r for r in rows}
print(f"{'K':>3} " + "".join(f"| {name:>26} " for name in strategies.values()))
for k in depths:
    cells = []
    for s in strategies:
        r = by[s, k]
        cells.append(f"| {r['step_mb']:6.0f} MB ({r['step_mb'] / by[s, depths[0]]['step_mb']:4.2f}x) {r['time_s']:5.1f} s ")
    print(f"{k:>3} " + "".join(cells))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
# CPU time per step comes from a second run of the same benchmark (K = 4 and 32): with one thread it is the step's
# compute, which the busy shared machine of these runs did not inflate the way it inflated wall time.
cpu_run = json.loads((ROOT / "benchmarks" / "results" / "glow_memory_cpu_time.json").read_text())
cpu = {(r["strategy"], r["depth"]): r["cpu_s"] for r in cpu_run["rows"]}
cpu_depths = sorted({k for _, k in cpu})
print("CPU time per step (s), second run:", {f"{s}, K={k}": v for (s, k), v in sorted(cpu.items())})
for i, (s, name) in enumerate(strategies.items()):
    axes[0].plot(depths, [by[s, k]["step_mb"] for k in depths], "o-", label=name)
    axes[1].plot(depths, [by[s, k]["time_s"] / by["none", k]["time_s"] for k in depths], ":", color=f"C{i}",
                 label=f"{name}, wall time (busy machine)")
    axes[1].plot(cpu_depths, [cpu[s, k] / cpu["none", k] for k in cpu_depths], "s-", color=f"C{i}",
                 label=f"{name}, CPU time")
axes[0].set_xlabel("steps of flow per level, K")
axes[0].set_ylabel("peak memory of one training step (MB)")
axes[0].set_title("memory against depth")
axes[1].axhline(1.6, color="gray", ls=":", label="target for the inverse: 1.6x")
axes[1].set_xlabel("steps of flow per level, K")
axes[1].set_ylabel("time per step / ordinary")
axes[1].set_title("the price in time")
for ax in axes:
    ax.set_xticks(depths)
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# How to read it:
# - **Ordinary autograd** grows about linearly: every step adds its coupling network's activations (128 channels at
#   14×14 for each of the 64 images).
# - **Backprop by the inverse** stays flat: at any moment only the step being recomputed is alive.
# - **Checkpointing** is nearly flat *here* too, and it is worth saying why: it keeps each step's input, and in this
#   Glow a step's input (4 channels) is tiny next to the network's hidden activations (128 channels), which are the
#   ones it recomputes. Its memory grows with the inputs it keeps — slowly at this size, more at larger images and
#   depths — and it never rebuilds anything, so it has no rounding drift (section 4).
# - **Time.** Backprop by the inverse runs every step once more (and inverts it) in the backward pass: about 4/3 of an
#   ordinary step's network work, thanks to the coupling's shared network evaluation, plus the inverses. The runs
#   here shared two cores with other jobs, so wall time (dotted) can include waiting; CPU time per step
#   (squares, from a second run at K = 4 and 32) is the step's own compute, and that is the fair ratio.
# - **The allocator.** On the CPU the strategy asks glibc to keep the memory it frees (`keep_freed_memory()` in
#   `flowlib.memory`). Rebuilding one step at a time allocates and frees the same tensors again and again; by default
#   glibc handed them back to the system after each step and the kernel faulted them in again, some 350,000 page
#   faults per training step at K = 32 (about 0.6 s of CPU time there). Ordinary autograd holds its activations, so
#   its memory stays put. The run plotted above was made with the fix (its rows say `freed memory kept`).
#
# The ratios are what matter, not the megabytes: on a GPU (`--device cuda`, measured with
# `torch.cuda.max_memory_allocated`) the same shapes cost the same bytes, and the flat line is what lets a deeper
# Glow fit.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Where the inverse's float32 error matters
#
# The rebuilt inputs are not the stored ones: each inverse rounds, and the next step backward starts from the
# rounded value. Over many steps the error can grow — an ill-conditioned step (a 1×1 convolution far from
# orthogonal, a coupling with large scales) amplifies it. Measure it: one Glow level, initialised on real images,
# its weights moved away from the tame start by a perturbation of growing size (a stand-in for training), the
# activations of a float32 forward pass stored, then rebuilt backward step by step from the output alone:

# %%
from flowlib import images
from flowlib.data import fashion_mnist

drift_steps = 8 if FAST else 32
batch = images.dequantize(fashion_mnist.load("test")[0][:32])
pre = images.logit_preprocessing(256, 0.05)
with torch.no_grad():
    x_logit = pre(batch)[0]


def reconstruction_drift(scale, steps=drift_steps, seed=0):
    torch.manual_seed(seed)
    level = glow_flow((1, 28, 28), levels=1, steps=steps, hidden=16, memory="invertible").levels[0]
    level.train()
    with torch.no_grad():
        level(x_logit)  # ActNorm's start on real images
        for p in level.parameters():
            p.add_(scale * torch.randn_like(p))
    level.eval()
    steps_list = leaf_steps(level)
    with torch.no_grad():
        acts = [x_logit]
        for f in steps_list:
            acts.append(f(acts[-1])[0])  # what ordinary autograd would have stored
        y, errors = acts[-1], []
        for k in range(len(steps_list) - 1, -1, -1):
            try:
                y = steps_list[k].inverse(y)[0]  # rebuilt from the output alone
            except fl.FlowNumericalError:  # the inverse overflowed float32: nothing left to rebuild
                errors.append(math.inf)
                break
            errors.append(float((y - acts[k]).abs().max() / acts[k].abs().max()))
            if not math.isfinite(errors[-1]):
                break
    return errors  # errors[j]: after j + 1 inverse steps


scales = [0.0, 0.05, 0.1]
drifts = {s: reconstruction_drift(s) for s in scales}
plt.figure(figsize=(6.5, 3.6))
for s in scales:
    plt.semilogy(np.arange(1, len(drifts[s]) + 1), drifts[s], label=f"weights perturbed by {s}")
plt.xlabel("inverse steps walked back from the output")
plt.ylabel("max relative error of the rebuilt input")
plt.title(f"float32 reconstruction drift ({drift_steps} Glow steps = {len(drifts[0.0])} layers)")
plt.legend(fontsize=8)
plt.show()
for s in scales:
    if math.isfinite(drifts[s][-1]):
        print(f"perturbation {s}: relative error after the whole walk back {drifts[s][-1]:.1e}")
    else:  # the curve stops where the inverse overflowed
        print(f"perturbation {s}: the inverse overflowed float32 after {len(drifts[s])} of {len(drifts[0.0])} "
              f"steps back: the input cannot be rebuilt at all")


# %% [markdown] slideshow={"slide_type": "subslide"}
# And the gradient: the same perturbed level, float32, with ordinary autograd and with backprop by the inverse, each
# compared with a float64 reference. The extra error the inverse brings is the part above ordinary float32's own:

# %%
def gradient_errors(scale, steps=drift_steps, seed=0):
    torch.manual_seed(seed)
    level = glow_flow((1, 28, 28), levels=1, steps=steps, hidden=16, memory="invertible").levels[0]
    with torch.no_grad():
        level(x_logit)
        for p in level.parameters():
            p.add_(scale * torch.randn_like(p))
    out = {}
    for name, dtype, strategy in (("ref", torch.float64, None), ("ordinary", torch.float32, None),
                                  ("invertible", torch.float32, "invertible")):
        m = copy.deepcopy(level).to(dtype)
        m.strategy = strategy
        z, logdet = m(x_logit.to(dtype))
        try:
            (0.5 * z.pow(2).sum() - logdet.sum()).backward()
        except fl.FlowNumericalError:  # the inverse overflowed on the way back: no gradient at all
            out[name] = None
            continue
        out[name] = torch.cat([p.grad.reshape(-1).double() for p in m.parameters()])
    norm = out["ref"].norm()
    return {k: None if out[k] is None else float((out[k] - out["ref"]).norm() / norm) for k in ("ordinary", "invertible")}


for s in scales:
    e = gradient_errors(s)
    inv = "no gradient: its inverse overflowed" if e["invertible"] is None else f"{e['invertible']:.1e}"
    print(f"perturbation {s}: relative gradient error vs float64 — ordinary float32 {e['ordinary']:.1e}, "
          f"backprop by the inverse {inv}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# What to take from it: while the steps are well conditioned, the rebuilt inputs stay within a few float32 roundings
# of the stored ones and the gradient is as good as ordinary float32's. The error grows with depth and with how far
# the steps are from volume-preserving and orthogonal — the same conditions that make a flow hard to invert at all. In
# our normal-mode run (32 steps, `python -m benchmarks lesson_times 08`), the largest perturbation crossed that line:
# walking back, the inverse overflowed float32 after 34 of the 97 layers, so the input could not be rebuilt at all and
# backprop by the inverse had no gradient to give (`flowlib` stops with an error that names the step), while ordinary
# float32 autograd, which never inverts, stayed near 1e-6 of float64. Practical guards: keep bounded scales (Glow's
# `sigmoid(h + 2)`), watch the 1×1 convolution's log |s|, check `inverse(forward(x))` on a batch now and then during
# training, and fall back to checkpointing (no drift, more memory) for the worst stages.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Where flows went next
#
# Glow (2018) is where this course's architecture stops. Three directions since, each a small module of `flowlib`
# with the same brute-force checks as every other flow:
#
# | direction | the idea | in flowlib |
# |---|---|---|
# | continuous-time flows | a velocity field v(x, t) and an ODE instead of K layers; log-density by the instantaneous change of variables (Chen et al. 2018; FFJORD, Grathwohl et al. 2019) | `flowlib.bijections.continuous.ContinuousFlow` |
# | flow matching | train that velocity field by regression on straight lines between noise and data — no ODE solve while training (Lipman et al. 2023; Liu et al. 2023; Albergo & Vanden-Eijnden 2023) | `flowlib.bijections.continuous.flow_matching_loss` |
# | transformer autoregressive flows | lesson 02's affine autoregressive map, with a causal transformer as the conditioner, stacked with the order reversed (TarFlow, Zhai et al. 2024) | `flowlib.bijections.transformer` |

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 5a. A continuous-time flow, trained by flow matching
#
# The flow is $dx/dt = v(x, t)$ from noise at t = 0 to data at t = 1. Flow matching draws a noise point $x_0$, a data
# point $x_1$ and a time t, and asks $v(x_t, t)$ to match the velocity of the straight line through them,
# $x_1 - x_0$, at $x_t = (1-t)\,x_0 + t\,x_1$. A plain regression; no likelihood, no ODE while training.
# Sampling solves the ODE (fixed-step RK4); the density solves it backward with
#
# $$\log q(x) = \log p(z) - \int_0^1 \nabla\!\cdot v(x_t, t)\,dt,$$
#
# the divergence exact by autograd (two backward passes in 2D).
#
# **A check with a known answer first.** A linear field $v = Ax + b$ carries N(0, I) to the Gaussian
# $N(m, e^A e^{A^\top})$ exactly, with $m = \int_0^1 e^{A(1-s)}\,b\,ds$ (the flow of the constant part). Our ODE solver and divergence against it, with more and more RK4 steps:

# %%
linear = LinearVelocity([[0.3, -0.8], [0.5, -0.2]], [0.5, -1.0]).double()
x_check = 2 * torch.randn(200, 2, dtype=torch.float64)
exact = linear.exact_log_prob(x_check)
for n_steps in (2, 4, 8, 16):
    model = fl.FlowModel(ContinuousFlow(linear, steps=n_steps), fl.StandardNormal(2)).double()
    with torch.no_grad():
        err = float((model.log_prob(x_check) - exact).abs().max())
    print(f"RK4 with {n_steps:2d} steps: max |log q - exact log density| = {err:.1e}")
print(testing.check_logdet(ContinuousFlow(VelocityMLP(2, hidden=16), steps=8), torch.randn(3, 2), atol=1e-6))

# %% [markdown] slideshow={"slide_type": "subslide"}
# Each halving of the step size cuts the error about 16-fold: RK4's fourth order. (The registry's brute-force check
# compares the log-det with the autograd Jacobian of the discrete solver; the two agree to the solver's error.)
# Now a real density:

# %%
fl.seed_everything(2)
target = toy2d.get("8gaussians")
velocity = VelocityMLP(2, hidden=32 if FAST else 128, layers=3)
fm_steps = fl.pick(3000, 60)
t0 = time.perf_counter()
losses = train_flow_matching(velocity, target.sampler(seed=3), steps=fm_steps, batch_size=256, lr=2e-3)
print(f"{fm_steps} flow-matching steps in {time.perf_counter() - t0:.0f} s; loss {np.mean(losses[:20]):.2f} -> "
      f"{np.mean(losses[-20:]):.2f}")
cnf = fl.FlowModel(ContinuousFlow(velocity, steps=fl.pick(24, 6)), fl.StandardNormal(2))
with torch.no_grad():
    z0 = torch.randn(fl.pick(2000, 300), 2)
    x1, _, path = rk4(velocity, z0, 0.0, 1.0, fl.pick(24, 6), with_logdet=False, trajectory=True)
    test_x = target.sample(fl.pick(2000, 200), seed=9)
    nll = -float(cnf.log_prob(test_x).mean())
print(f"held-out NLL {nll:.3f} nats (the density's own entropy, the floor: {toy2d.entropy('8gaussians').value:.3f})")

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
axes[0].scatter(*target.sample(2000, seed=1).T, s=2)
axes[0].set_title("data")
for i in range(0, min(300, len(z0)), 3):
    p = torch.stack([s[i] for s in path])
    axes[1].plot(p[:, 0], p[:, 1], lw=0.5, color="C0", alpha=0.5)
axes[1].scatter(*x1[:300].T, s=3, color="C1", zorder=3)
axes[1].set_title("ODE paths from noise (t = 0) to samples (t = 1)")
X, Y, P = density_on_grid(cnf.log_prob, bounds=((-4, 4), (-4, 4)), n=fl.pick(80, 25))
axes[2].pcolormesh(X, Y, P, shading="auto")
axes[2].set_title("log q by the instantaneous change of variables")
for ax in axes:
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Flow matching is now the usual way to train continuous flows, and the same regression (with other paths between
# noise and data) is behind many image and audio generators. The price moved from training to use: sampling and
# likelihood need an ODE solve, many evaluations of the network per sample, where a Glow needs one pass.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 5b. Autoregressive flows with a transformer conditioner
#
# Lesson 02's affine autoregressive map, $z_i = (x_i - \mu_i(x_{<i}))\,e^{-\alpha_i(x_{<i})}$, has a triangular Jacobian
# and log-det $-\sum_i \alpha_i$. MAF computed $(\mu_i, \alpha_i)$ with a masked MLP. TarFlow (Zhai et al. 2024,
# *Normalizing flows are capable generative models*) uses a **causal transformer** on a sequence of image patches
# instead, stacks several such blocks with the token order reversed between them, and trains the stack by maximum
# likelihood; the paper reports image likelihoods and samples competitive with other generative models of its time
# (see the paper for its figures). The density is one parallel pass per block; sampling inverts token by token.
#
# `flowlib.bijections.transformer.TransformerAutoregressive` is one such block: the sequence shifted right behind a learned
# start token, causal self-attention, a zero-initialised head. Here first on four tokens of one coordinate each, through
# the course's brute-force checks, then as a stack trained on the 2D moons:

# %%
block = TransformerAutoregressive(4, token_dim=1, width=16, heads=2, order="reverse")
with torch.no_grad():
    for p in block.parameters():
        p.add_(0.3 * torch.randn_like(p))  # a fresh block is the identity: move it
x4 = torch.randn(3, 4)
print(testing.check_round_trip(block, x4))
print(testing.check_logdet(block, x4))
print(testing.check_triangular(block, x4, "lower", order=block.order))

fl.seed_everything(4)
moons = toy2d.get("moons")
tar = fl.FlowModel(transformer_flow(2, blocks=4, width=32 if not FAST else 16), fl.StandardNormal(2))
history = fl.training.fit(tar, moons.sampler(seed=5), steps=fl.pick(2000, 30), lr=2e-3, batch_size=256)
with torch.no_grad():
    nll_tar = -float(tar.log_prob(moons.sample(fl.pick(5000, 200), seed=6)).mean())
print(f"held-out NLL on moons {nll_tar:.3f} nats after {history.step[-1]} steps ({history.seconds:.0f} s); "
      f"floor {toy2d.entropy('moons').value:.3f}")
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
X, Y, P = density_on_grid(tar.log_prob, bounds=((-4, 4), (-4, 4)), n=fl.pick(120, 30))
axes[0].pcolormesh(X, Y, P, shading="auto")
axes[0].set_title("transformer-AR flow: density")
with torch.no_grad():
    axes[1].scatter(*tar.sample(2000).T, s=2)
axes[1].set_title("its samples (inverted token by token)")
for ax in axes:
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()


# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# **Exercise 2.** A linear velocity field $v(x) = Ax + b$ runs from t = 0 to t = 1. Write `linear_logdet(A)`, the
# log-det $\log|\det \partial x_1/\partial x_0|$ of the map it defines. (Hint: the instantaneous change of
# variables.)

# %%
def linear_logdet(A):
    ...  # your answer


check_linear_logdet(linear_logdet)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def linear_logdet(A):
    return torch.trace(A)  # d/dt log|det| = div v = trace(A), for one unit of time


check_linear_logdet(linear_logdet, strict=True)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3.** A TarFlow-like stack has K blocks, each an autoregressive flow over T tokens. How many passes of a
# block's transformer does it take to evaluate the density of a batch, and how many to draw a batch of samples?
# Return `(density_passes, sampling_passes)`.

# %%
def conditioner_passes(tokens, blocks):
    ...  # your answer


check_conditioner_passes(conditioner_passes)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "skip"} tags=["solution"]
# %%solution  (reference answer, collapsed: expand it after your own attempt; running it leaves your answer as it is)
def conditioner_passes(tokens, blocks):
    return blocks, tokens * blocks


check_conditioner_passes(conditioner_passes, strict=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Backpropagation stores activations because each step's Jacobian is evaluated at its input. An invertible stack
#   can **rebuild each input from its output** in the backward pass and re-run one step at a time:
#   `glow(..., memory="invertible")` keeps the memory of a training step **flat in depth**, with gradients equal to
#   ordinary autograd's (float64 tests), ActNorm's start, checkpoints and DDP unchanged.
# - Gradient checkpointing (`memory="checkpoint"`) keeps each step's input instead; for Glow's thin step inputs it is
#   almost as frugal, and it has no rounding drift.
# - The price of the inverse is time (each step recomputed, and inverted) and **float32 drift** that grows with depth
#   and with ill-conditioned steps; measure it, as in section 4, before relying on it.
# - Beyond Glow: **continuous-time flows trained by flow matching** (regression on straight lines; sampling and
#   likelihood by an ODE solve, the log-density by the integral of the divergence) and **autoregressive flows with
#   transformer conditioners** (TarFlow: parallel density, sequential sampling).
#
# **Lecture path.** Sections 1 and 3 are the lecture's core (the idea, the plot); run section 2's check live;
# section 4 is one slide of caveats; section 5 closes the course.

# %% slideshow={"slide_type": "skip"}
print(f"this notebook ran in {time.perf_counter() - T0:.0f} s ({'fast' if FAST else 'normal'} mode)")
