"""The core contract as the user meets it: shapes that compose, checks once at the outermost call (one device
synchronisation, whatever the depth), overflow caught, and the dtype policy over every flow and every builder."""
from __future__ import annotations

import warnings

import pytest
import torch

import flowlib as fl
from flowlib import builders, core
from flowlib.testing import perturb

from .flow_registry import CASES


# ---- shapes ---------------------------------------------------------------------------------------------------------
def test_compose_derives_its_shapes_instead_of_guessing_from_the_last_layer():
    flow = fl.Compose(fl.Squeeze((1, 4, 4)), fl.Affine(2.0))
    assert flow.forward_shape((1, 4, 4)) == (4, 2, 2) and flow.inverse_shape((4, 2, 2)) == (1, 4, 4)
    assert flow.event_shape == (1, 4, 4) and flow.latent_shape == (4, 2, 2)
    z = torch.randn(3, 4, 2, 2)
    assert flow.inverse(z)[0].shape == (3, 1, 4, 4)  # refused before: the latent shape came from Affine
    with pytest.raises(fl.FlowInputError, match=r"layer 1 of 2 \(Squeeze\)"):
        flow.inverse(torch.randn(3, 1, 4, 4))


def test_inverse_of_a_reshape_and_a_squeeze_of_any_image():
    inv = fl.Inverse(fl.Reshape((8,), (2, 2, 2)))
    assert inv.forward_shape((2, 2, 2)) == (8,) and inv.inverse_shape((8,)) == (2, 2, 2)
    assert fl.Squeeze().forward_shape((3, 6, 4)) == (12, 3, 2)
    assert fl.Inverse(fl.Squeeze()).forward_shape((12, 3, 2)) == (3, 6, 4)


def test_every_input_error_is_a_flow_input_error():
    with pytest.raises(fl.FlowInputError, match="even height and width"):
        fl.Squeeze()(torch.randn(2, 1, 3, 3))
    with pytest.raises(fl.FlowInputError, match="divisible by 4"):
        fl.Squeeze().inverse(torch.randn(2, 3, 2, 2))
    with pytest.raises(fl.FlowInputError, match=r"image shape \(C, H, W\)"):
        fl.Squeeze()(torch.randn(2, 4))


# ---- checks once --------------------------------------------------------------------------------------------------
def test_a_deep_stack_checks_finiteness_once_per_call(monkeypatch):
    calls = []
    real = core._all_finite
    monkeypatch.setattr(core, "_all_finite", lambda *t: calls.append(len(t)) or real(*t))
    flow = builders.maf(3, num_layers=8, hidden=(8,))
    x = torch.randn(5, 3)
    z, _ = flow(x)
    assert len(calls) == 1, f"{len(calls)} finiteness checks for one forward pass of a 9-deep stack"
    calls.clear()
    flow.inverse(z)
    assert len(calls) == 1
    calls.clear()
    fl.FlowModel(flow, fl.StandardNormal(3)).log_prob(x)
    assert len(calls) == 1


def test_overflow_of_an_elementwise_map_is_an_error_that_names_the_layer():
    with pytest.raises(fl.FlowNumericalError, match=r"Exp\.forward .*inf"):
        fl.Exp()(torch.full((2, 1), 100.0))  # float32 overflows at 88.7
    assert torch.isfinite(fl.Exp()(torch.full((2, 1), 100.0, dtype=torch.float64))[0]).all()  # no cast: no params
    deep = fl.Compose(fl.Affine(3.0), fl.Exp(), fl.Affine(2.0))
    with pytest.raises(fl.FlowNumericalError, match=r"Exp\.forward"):
        deep(torch.full((2, 1), 40.0))
    with pytest.raises(fl.FlowInputError, match=r"Logit\.forward needs values strictly inside \(0, 1\)"):
        fl.Compose(fl.Affine(3.0), fl.Logit())(torch.full((2, 1), 0.5))  # a child's domain, found on failure
    with fl.checks(False):
        assert torch.isinf(fl.Exp()(torch.full((2, 1), 100.0))[0]).all()


# ---- dtypes ---------------------------------------------------------------------------------------------------------
def _builders():
    torch.manual_seed(0)
    return {
        "maf": fl.FlowModel(builders.maf(2, 2, hidden=(8,)), fl.StandardNormal(2)),
        "spline_maf": fl.FlowModel(builders.spline_maf(2, 2, hidden=(8,)), fl.StandardNormal(2)),
        "realnvp": fl.FlowModel(builders.make_realnvp(2, 4, hidden=8), fl.StandardNormal(2)),
        "image": builders.multiscale_realnvp((1, 4, 4), levels=1, couplings=2, hidden=4),
        "digits_conv": builders.conv_realnvp(couplings=2, hidden=4),
    }


def _input(name):
    return {"maf": torch.randn(3, 2), "spline_maf": torch.randn(3, 2), "realnvp": torch.randn(3, 2),
            "image": torch.rand(3, 1, 4, 4) * 255, "digits_conv": torch.rand(3, 64)}[name]


@pytest.mark.parametrize("name", ["maf", "spline_maf", "realnvp", "image", "digits_conv"])
def test_every_builder_takes_numpy_born_float64_with_one_warning(name):
    model = _builders()[name]
    x = _input(name)
    expected = model.log_prob(x)
    with pytest.warns(UserWarning, match="float64 but computes in torch.float32.*model.to") as record:
        got = model.log_prob(x.double())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per model
        model.log_prob(x.double())
    assert len([w for w in record if "loses precision" in str(w.message)]) == 1
    assert got.dtype == torch.float32 and torch.allclose(got, expected)
    for low in (torch.float16, torch.bfloat16):  # cast up silently
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert torch.isfinite(model.log_prob(x.to(low))).all()
    model.double()  # float32 data into a float64 model: cast up, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.log_prob(x).dtype == torch.float64
    with pytest.raises(fl.FlowInputError, match=r"torch\.int64.*flowlib\.images\.dequantize"):
        model.log_prob(x.long())
    with pytest.raises(fl.FlowInputError, match=r"torch\.bool.*\.float\(\)"):
        model.log_prob(x > 0)


@pytest.mark.parametrize("name", sorted(CASES), ids=str)
def test_every_flow_follows_the_dtype_policy(name):
    case = CASES[name]
    flow, x = case.make(), case.sample(case.n).float()
    own = flow._own_dtype()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in (torch.float64, torch.float16, torch.bfloat16):
            z, logdet = flow(x.to(dtype))
            assert z.dtype == (own or dtype) and logdet.dtype == (own or dtype)
            back, _ = flow.inverse(z.to(dtype))
            assert back.dtype == (own or dtype)
    with pytest.raises(fl.FlowInputError, match="floating-point"):
        flow(x.long())


# ---- layout ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES), ids=str)
def test_every_flow_hands_back_plain_contiguous_tensors(name):
    """A user reshapes a latent with .view, clones it and writes into it: outputs in an internal layout (a permuted
    einsum or matmul result, channels-last) would break that far from the flow that made them."""
    case = CASES[name]
    flow, x = perturb(case.make()), case.sample(case.n).float()
    with torch.no_grad():
        z, logdet = flow(x)
        back, logdet_inv = flow.inverse(z)
    for what, t in (("forward's z", z), ("forward's log-det", logdet), ("inverse's x", back),
                    ("inverse's log-det", logdet_inv)):
        assert t.is_contiguous(), f"{name}: {what} is not contiguous (strides {t.stride()} for shape {tuple(t.shape)})"
