"""flowlib: the normalizing-flows library behind the course "Flows from Scratch".

Convention: ``forward`` maps data x to latent z and returns (z, log|det dz/dx|); ``inverse`` maps back. The contract
(shapes, checks once at the outermost call, the dtype policy) is written once, in ``flowlib.core``.

Layout: ``core`` (Flow, Compose, Inverse), ``distributions``, ``models`` (FlowModel), ``bijections/`` (one idea per
file), ``nets``, ``builders`` (every model builder), ``images`` (dequantization, bits/dim), ``baselines``,
``training/`` (fit, checkpoints, the resumable image command), ``data/``, ``testing`` (brute-force checks) and
``runtime`` (seed, threads, device, fast mode). Needs torch, numpy, scipy and tqdm only.
"""
from flowlib.core import Compose, Flow, FlowInputError, FlowNumericalError, Inverse, checks, sum_except_batch
from flowlib.distributions import StandardNormal, StandardUniform
from flowlib.models import FlowModel
from flowlib.bijections import (IAF, MAF, AdditiveCoupling, Affine, AffineCoupling, Exp, Logit, MonotoneTanh,
                                MultiScale, Permutation, Reshape, Reverse, RQSpline, Sigmoid, SinhArcsinh, SplineMAF,
                                Squeeze)
from flowlib import training  # noqa: F401  (flowlib.training.fit)
from flowlib.runtime import fast_mode, pick, pick_device, seed_everything, setup

__version__ = "0.1.0"

__all__ = [
    "AdditiveCoupling", "AffineCoupling", "IAF", "MAF", "MultiScale", "Permutation", "Reshape", "Reverse", "RQSpline",
    "SplineMAF", "Squeeze", "Affine", "Compose", "Exp", "Flow", "FlowInputError", "FlowNumericalError", "FlowModel",
    "Inverse", "Logit", "MonotoneTanh", "Sigmoid", "SinhArcsinh", "StandardNormal", "StandardUniform", "checks",
    "fast_mode", "pick", "pick_device", "seed_everything", "setup", "sum_except_batch",
]
