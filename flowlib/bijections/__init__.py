"""Every bijection of flowlib, one idea per file: element-wise maps, rational-quadratic splines, autoregressive
(MADE, MAF, IAF), coupling layers with their masks, permutations, reshapes and the multi-scale architecture."""
from flowlib.bijections.autoregressive import IAF, MADE, MAF
from flowlib.bijections.coupling import AdditiveCoupling, AffineCoupling, Coupling
from flowlib.bijections.elementwise import Affine, Exp, Logit, MonotoneTanh, Sigmoid, SinhArcsinh
from flowlib.bijections.multiscale import MultiScale
from flowlib.bijections.permutations import Permutation, Reverse
from flowlib.bijections.reshape import Reshape, Squeeze
from flowlib.bijections.splines import RQSpline, SplineMAF

__all__ = [
    "IAF", "MADE", "MAF", "AdditiveCoupling", "AffineCoupling", "Coupling", "Affine", "Exp", "Logit", "MonotoneTanh",
    "Sigmoid", "SinhArcsinh", "MultiScale", "Permutation", "Reverse", "Reshape", "Squeeze", "RQSpline", "SplineMAF",
]
