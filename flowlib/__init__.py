"""flowlib: the normalizing-flows library behind the course "Flows from Scratch".

Convention: ``forward`` maps data x to latent z and returns (z, log|det dz/dx|); ``inverse`` maps back.
"""
from .core import Compose, Flow, FlowInputError, Inverse, checks, sum_except_batch
from .distributions import StandardNormal, StandardUniform
from .elementwise import Affine, Exp, Logit, MonotoneTanh, Sigmoid, SinhArcsinh
from .models import FlowModel
from .autoregressive import IAF, MAF  # noqa: E402  (lessons 02-03)
from .coupling import AdditiveCoupling, AffineCoupling  # (lesson 04)
from .multiscale import MultiScale, Reshape, Squeeze  # (lesson 05)
from .permutations import Permutation, Reverse
from . import train  # noqa: F401  (flowlib.train.fit)
from .utils import fast_mode, pick, pick_device, seed_everything

__version__ = "0.1.0"

__all__ = [
    "AdditiveCoupling", "AffineCoupling", "IAF", "MAF", "MultiScale", "Permutation", "Reshape", "Reverse", "Squeeze",
    "Affine", "Compose", "Exp", "Flow", "FlowInputError", "FlowModel", "Inverse", "Logit", "MonotoneTanh",
    "Sigmoid", "SinhArcsinh", "StandardNormal", "StandardUniform", "checks", "fast_mode", "pick", "pick_device",
    "seed_everything", "sum_except_batch",
]
