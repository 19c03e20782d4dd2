"""Every bijection of flowlib, one idea per file: element-wise maps, rational-quadratic splines, autoregressive
(MADE, MAF, IAF), coupling layers with their masks, permutations, reshapes, the multi-scale architecture, and Glow's
layers (ActNorm, 1x1 convolutions, Glow's coupling and split prior)."""
from flowlib.bijections.autoregressive import IAF, MADE, MAF
from flowlib.bijections.conv1x1 import ChannelPermutation, InvConv1x1, InvConv1x1LU
from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling, Coupling
from flowlib.bijections.elementwise import Affine, Exp, Logit, MonotoneTanh, Sigmoid, SinhArcsinh
from flowlib.bijections.glow import GlowCoupling, SplitPrior
from flowlib.bijections.multiscale import MultiScale
from flowlib.bijections.normalization import ActNorm
from flowlib.bijections.permutations import Permutation, Reverse
from flowlib.bijections.reshape import Reshape, Squeeze
from flowlib.bijections.splines import RQSpline, SplineMAF

__all__ = [
    "IAF", "MADE", "MAF", "AdditiveCoupling", "AffineCoupling", "Coupling", "Affine", "Exp", "Logit", "MonotoneTanh",
    "Sigmoid", "SinhArcsinh", "MultiScale", "Permutation", "Reverse", "Reshape", "Squeeze", "RQSpline", "SplineMAF",
    "ActNorm", "ChannelPermutation", "GlowCoupling", "InvConv1x1", "InvConv1x1LU", "SplitPrior",
]
