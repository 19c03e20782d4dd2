"""Lesson 07's widgets, headless, on a small random Glow: set a control (or press the button), check that what was
computed and drawn changed as the maths says, and that a choice that cannot work gives a message, not a traceback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flowlib import latents
from flowlib_teaching.widgets import latents as WL
from flowlib.builders import glow


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = glow(levels=2, steps=1, hidden=8)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m.eval()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (60, 1, 28, 28), generator=g).to(torch.uint8)
    labels = torch.arange(60) % 10
    return images, labels


def _shown(img) -> np.ndarray:
    return np.asarray(img.get_array())


def test_temperature_widget_shows_the_samples_of_the_chosen_temperature(model):
    w = WL.temperature_grid(model, n=4, temperatures=(0.0, 0.5, 1.0), reference_bpd=3.3)
    assert w.state["temperature"] == 1.0 and w.png.startswith(b"\x89PNG")
    png = w.png
    w.controls["T"].value = 0.5
    eps = latents.base_noise(model, 4, seed=0)
    want = latents.to_grey(latents.decode(model, 0.5 * eps))
    assert torch.equal(w.state["samples"], want)
    np.testing.assert_array_equal(_shown(w._img)[1:29, 1:29], want[0, 0].float().numpy())
    assert "T = 0.5" in w.axes[0].get_title() and w.png != png
    # the samples' bits/dim is log q(y) of the decoded samples: lowest at T = 0
    assert w.sample_bpd[0] < w.sample_bpd[-1]
    assert w.output.value == w.png
    with pytest.raises(ValueError, match="temperature must lie in"):
        WL.temperature_grid(model, temperatures=(0.5, 5.0))


def test_interpolation_widget(model, data):
    images, labels = data
    w = WL.interpolation(model, images, labels, "Sneaker", 1, "Ankle boot", 2, steps=5)
    a, b = images[17], images[29]  # the 2nd sneaker (label 7) and the 3rd ankle boot (label 9)
    assert torch.equal(w.state["strip_linear"][0], a.float()) and torch.equal(w.state["strip_linear"][-1], b.float())
    assert torch.equal(w.state["strip_spherical"][-1], b.float())
    za, zb = latents.encode(model, torch.stack([a, b]))
    mid = latents.to_grey(latents.decode(model, latents.slerp(za, zb, 0.5)[None]))
    assert torch.equal(w.state["strip_spherical"][2], mid[0])
    assert w.state["norms_linear"][2] < min(w.state["norms_linear"][0], w.state["norms_linear"][-1])
    w.controls["t"].value = 0.75
    assert w.state["step"] == 3 and w._boxes[0].get_xy()[0] == pytest.approx(3 * 29 - 0.5)
    # a new pair takes effect on the button, not before
    before = w.state["strip_linear"].clone()
    w.controls["class_b"].value = 0
    assert torch.equal(w.state["strip_linear"], before)
    w.button.click()
    assert torch.equal(w.state["strip_linear"][-1], images[20].float())
    # the index box is bounded by the class's number of images (6 sneakers here)
    w.controls["index_a"].value = 99
    assert w.controls["index_a"].value == 5


def test_attribute_widget(model, data):
    images, labels = data
    z_bank = latents.encode(model, images)
    w = WL.attribute_vector(model, images, labels, z_bank, labels, "Sneaker", "Ankle boot", index=0,
                            strengths=(0.0, 0.5, 1.0))
    d = latents.attribute_direction(z_bank, labels, 7, 9)
    z = latents.encode(model, images[7:8])[0]
    want = latents.to_grey(latents.decode(model, (z + 0.5 * d)[None]))
    w.controls["strength"].value = 0.5
    assert torch.equal(w.state["current"], want[0])
    np.testing.assert_array_equal(_shown(w._big), want[0, 0].float().numpy())
    assert torch.equal(w.state["strip"][0], images[7].float())  # strength 0 is the exact reconstruction
    w.controls["target"].value = 7  # the same class: a message, the last picture stays
    w.button.click()
    assert "same class" in w.message.value and "same class" in w.state["message"]
    w.controls["target"].value = 0
    w.button.click()
    assert w.message.value == "" and "T-shirt" in w._ax_strip.get_title()


def test_level_swap_widget(model, data):
    images, labels = data
    w = WL.level_swap(model, images, labels, "T-shirt/top", 0, "Trouser", 0, temperature=0.8)
    za, zb = latents.encode(model, images[[0, 1]]).split(1)
    want = latents.to_grey(latents.decode(model, latents.swap_levels(model, za, zb, [2])))
    assert torch.equal(w.state["coarse_b_fine_a"], want)
    assert w.state["reconstruction_error"] < 1e-4
    np.testing.assert_array_equal(_shown(w._imgs[2]), want[0, 0].float().numpy())
    w.controls["index_b"].value = 3
    w.button.click()
    assert torch.equal(w.state["b"][0], images[31]) and "Trouser #3" in w._axes[1].get_title()


def test_overflowing_latents_are_drawn_blank_and_counted(model, data):
    images, labels = data
    w = WL.temperature_grid(model, n=4, temperatures=(0.5, 1.0))
    assert w.state["overflowed"] == 0 and w.message.value == ""
    # a widget whose decoded strip overflowed says so instead of raising
    z_bank = latents.encode(model, images)
    w = WL.attribute_vector(model, images, labels, z_bank, labels, "Sneaker", "Ankle boot", strengths=(0.0, 1e38))
    assert "1 of 2 decoded images overflowed" in w.message.value
    assert bool(torch.isnan(w.state["strip"][1]).all()) and not bool(torch.isnan(w.state["strip"][0]).any())
