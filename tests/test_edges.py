"""Errors name the real cause: a diverging fit, bad data for fit, and the edge inputs of issue 10 (item 7)."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib.data import toy2d
from flowlib.core import FlowInputError
from flowlib.distributions import StandardNormal
from flowlib.builders import multiscale_realnvp
from flowlib.images import bits_per_dim, pixels_from_data
from flowlib.models import FlowModel
from flowlib.builders import make_realnvp
from flowlib.bijections.splines import RQSpline
from flowlib.training.loop import NonFiniteActivationError, NonFiniteLossError, fit


def _realnvp(seed=0):
    torch.manual_seed(seed)
    return FlowModel(make_realnvp(2, 8, 64), StandardNormal(2))


def test_a_diverging_fit_is_a_training_error_naming_the_step_not_a_data_error():
    """RealNVP at lr=10: the weights blow up and a layer deep inside sees inf; the data are fine."""
    data = toy2d.get("moons").sample(2000)
    with pytest.raises(NonFiniteLossError) as info:
        fit(_realnvp(), data, steps=100, lr=10.0, progress=False)
    assert isinstance(info.value, NonFiniteActivationError)  # before the fix: FlowInputError blaming "x"
    message = str(info.value)
    assert "at step 3" in message and "smaller learning rate" in message and "warm-up" in message
    assert "the batch itself is finite" in message


def test_non_finite_data_are_still_the_datas_fault():
    data = toy2d.get("moons").sample(64)
    data[5, 0] = math.nan
    with pytest.raises(FlowInputError, match="non-finite"):
        fit(_realnvp(), [data], steps=1, progress=False)


@pytest.mark.parametrize("data, expected", [
    ([], "empty iterable"),                                 # a bare StopIteration before
    ("moons", "got the string 'moons'.*toy2d.get\\('moons'\\).sample"),  # AttributeError before
    ([1, 2, 3], "yielded a int, not a tensor"),
    (torch.zeros(0, 2), "data tensor is empty"),
    (42, "got a int"),
    (lambda n: "x", "gave a str, not a tensor"),
])
def test_bad_data_for_fit_says_what_fit_accepts(data, expected):
    with pytest.raises((TypeError, ValueError), match=expected) as info:
        fit(_realnvp(), data, steps=2, progress=False)
    assert "a tensor of samples" in str(info.value)


def test_numpy_data_are_accepted_by_fit():
    data = toy2d.get("moons").sample(256).numpy()
    history = fit(_realnvp(), data, steps=2, progress=False)
    assert len(history.loss) == 2


def test_toy_density_of_a_nan_point_is_an_error_not_nan():
    with pytest.raises(ValueError, match="1 non-finite value"):
        toy2d.get("moons").log_prob(torch.tensor([[0.0, 0.0], [math.nan, 1.0]]))
    assert torch.isfinite(toy2d.get("moons").log_prob(torch.zeros(2, 2))).all()


def test_pixels_from_data_refuses_nan_instead_of_making_it_pixel_0():
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        pixels_from_data(torch.tensor([[[[1.5, math.nan]]]]))
    assert pixels_from_data(torch.tensor([[[[1.5, 300.0]]]])).tolist() == [[[[1, 255]]]]


@pytest.fixture(scope="module")
def image_model():
    torch.manual_seed(0)
    return multiscale_realnvp((1, 8, 8), levels=2, couplings=2, hidden=4)


def test_bits_per_dim_of_an_empty_batch_or_an_inf_pixel_says_so(image_model):
    with pytest.raises(ValueError, match="non-empty batch"):
        bits_per_dim(image_model, torch.zeros(0, 1, 8, 8, dtype=torch.uint8))
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="1 NaN or infinite"):  # OverflowError before
        bits_per_dim(image_model, x)


def test_uint8_pixels_given_to_an_image_model_are_pointed_at_dequantization(image_model):
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(FlowInputError, match=r"dequantized pixels.*got torch.uint8.*images.dequantize\(x\)"):
        image_model.log_prob(x)


def test_a_pixel_of_300_is_reported_as_a_pixel_value(image_model):
    x = torch.full((2, 1, 8, 8), 100.0)
    x[1, 0, 3, 3] = 300.0
    with pytest.raises(FlowInputError, match=r"pixel values in \[100, 300\], outside \[0, 256\]"):
        image_model.log_prob(x)  # before: "a logit value of 1.1"
    with pytest.raises(ValueError, match="pixel values must lie in 0..255.*got 100..300"):
        bits_per_dim(image_model, x)


@pytest.mark.parametrize("bins", [2.5, 1, True, "8"])
def test_a_spline_with_a_bad_number_of_bins_is_refused_when_built(bins):
    with pytest.raises(ValueError, match="number of bins must be an integer >= 2"):
        RQSpline(2, bins=bins)
