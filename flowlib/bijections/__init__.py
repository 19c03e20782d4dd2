"""The invertible layers of flowlib, one idea per file (Glow's layers first; the others join them here)."""
from .conv1x1 import ChannelPermutation, InvConv1x1, InvConv1x1LU
from .glow import GlowCoupling, SplitPrior
from .normalization import ActNorm

__all__ = ["ActNorm", "ChannelPermutation", "GlowCoupling", "InvConv1x1", "InvConv1x1LU", "SplitPrior"]
