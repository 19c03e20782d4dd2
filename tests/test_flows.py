"""Every flow in flowlib, checked by brute force: round trip and log-det against the autograd Jacobian (float64, tight
tolerances), the same in float32 against float64, batch independence (the Jacobian of a whole batch is
block-diagonal), Jacobian structure, gradients to every parameter, and a state_dict round trip through weights_only
loading."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import flowlib
from flowlib import testing as T
from flowlib.core import Flow

from .flow_registry import CASES



@pytest.fixture(params=sorted(CASES), ids=str)
def case(request):
    return CASES[request.param]


def test_round_trip(case):
    T.check_round_trip(case.make(), case.sample(case.n))


def test_logdet_matches_autograd_jacobian(case):
    T.check_logdet(case.make(), case.sample(case.n), atol=case.atol)


def test_float32_agrees_with_float64(case):
    T.check_float32(case.make(), case.sample(case.n), rtol=case.f32_rtol)


def test_batch_independence(case):
    T.check_batch_independence(case.make(), case.sample(min(case.n, 3)))


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.structure is not None))
def test_jacobian_structure(name):
    # only the flows that declare a structure (a permutation or a stack of couplings has none to check)
    case = CASES[name]
    flow = case.make()
    order = case.order(flow) if case.order else None
    T.check_triangular(flow, case.sample(3), structure=case.structure, order=order)


def test_every_parameter_gets_a_gradient(case):
    T.check_gradients(case.make(), case.sample(case.n))


def test_state_dict_round_trip(case):
    flow = T.perturb(case.make(), 0.1, seed=1)  # make the saved state differ from a fresh build
    T.check_state_dict(flow, case.make, case.sample(case.n))


def test_logdet_shape_device_dtype(case):
    flow, x = case.make(), case.sample(case.n)
    z = flow(x)[0].detach()
    if flow.latent_shape is not None:
        assert tuple(z.shape[1:]) == tuple(flow.latent_shape), "forward's output does not have the latent shape"
    for direction, v in (("forward", x), ("inverse", z)):
        out, logdet = flow(v) if direction == "forward" else flow.inverse(v)
        assert logdet.shape == (case.n,), f"{direction} log-det shape {tuple(logdet.shape)}"
        assert logdet.dtype == v.dtype and logdet.device == v.device
        assert out.shape[0] == case.n
    assert flow.inverse(z)[0].shape == x.shape


def _all_flow_classes() -> set[type]:
    classes = set()
    for mod in pkgutil.walk_packages(flowlib.__path__, "flowlib."):
        if mod.name.endswith(".__main__"):  # a command-line entry point runs when imported; it defines no flows
            continue
        module = importlib.import_module(mod.name)
        if not str(getattr(module, "__file__", "")).startswith(flowlib.__path__[0]):
            continue  # a stale module an editable install of another checkout offers; not part of this tree
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Flow) and obj is not Flow and obj.__module__ == module.__name__ \
                    and not inspect.isabstract(obj) and not getattr(obj, "_abstract", False):
                classes.add(obj)
    return classes


def test_registry_covers_every_flow():
    covered = {type(c.make()) for c in CASES.values()}
    missing = sorted(c.__qualname__ for c in _all_flow_classes() - covered)
    assert not missing, f"these flows have no case in tests/flow_registry.py: {missing}"
