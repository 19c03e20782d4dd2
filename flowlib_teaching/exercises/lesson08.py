"""Answer checkers for lesson 08 (memory, and beyond); same behaviour as flowlib_teaching.exercises.lesson01 (placeholders are
"not answered yet", ``strict=True`` raises).

    check_backward_step(fn)        fn(step, y, grad_y, grad_logdet) -> (x, grad_x): one step of backprop by the inverse,
                                   parameter gradients accumulated into step's .grad
    check_linear_logdet(fn)        fn(A) -> log|det dx_1/dx_0| for the flow of dx/dt = A x + b over t in [0, 1]
    check_conditioner_passes(fn)   fn(tokens, blocks) -> (density passes, sampling passes) of a TarFlow-like stack
"""
from __future__ import annotations

import torch

from flowlib_teaching.exercises.framework import call as _call, checker as _checker, wrong as _wrong

__all__ = ["check_backward_step", "check_conditioner_passes", "check_linear_logdet"]


def _tensor(v, what: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise _wrong("not_a_tensor", f"{what} should be a tensor, got {type(v).__name__}.")
    return v


@_checker("Exercise 1 — one step of backpropagation by the inverse",
          "rebuild x = step.inverse(y), run step(x) again with gradients on, and backpropagate (grad_y, grad_logdet).")
def check_backward_step(fn) -> str:
    from flowlib.bijections.glow import GlowCoupling

    g = torch.Generator().manual_seed(8)
    torch_state = torch.get_rng_state()
    try:
        torch.manual_seed(8)
        step = GlowCoupling((4, 2, 2), hidden=8).double()
    finally:
        torch.set_rng_state(torch_state)
    with torch.no_grad():
        for p in step.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x_true = torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y, _ = step(x_true)
    grad_y = torch.randn(y.shape, generator=g, dtype=torch.float64)
    grad_ld = torch.randn(3, generator=g, dtype=torch.float64)
    # the reference: ordinary autograd at the true input
    xr = x_true.clone().requires_grad_(True)
    yr, ldr = step(xr)
    ref = torch.autograd.grad([yr, ldr], [xr, *step.parameters()], [grad_y, grad_ld])
    no_ld = torch.autograd.grad([step(xr)[0]], [xr], [grad_y])[0]
    step.zero_grad(set_to_none=True)
    out = _call(fn, step, y.clone(), grad_y.clone(), grad_ld.clone())
    try:
        x, grad_x = out
    except (TypeError, ValueError):
        raise _wrong("not_a_pair", f"return the pair (x, grad_x), got {type(out).__name__}.") from None
    x, grad_x = _tensor(x, "x"), _tensor(grad_x, "grad_x")
    if x.shape != x_true.shape or grad_x.shape != x_true.shape:
        raise _wrong("shape", f"x and grad_x should have the input's shape {tuple(x_true.shape)}, got "
                              f"{tuple(x.shape)} and {tuple(grad_x.shape)}.")
    if not torch.allclose(x.detach(), x_true, atol=1e-9):
        if torch.allclose(x.detach(), y, atol=1e-9):
            raise _wrong("no_reconstruction", "your x is the step's OUTPUT y: the input was never rebuilt.",
                         "x = step.inverse(y)[0], computed without a graph.")
        raise _wrong("wrong_input", "your x is not the step's input (inverse(forward(x)) should give it back).")
    if torch.allclose(grad_x, no_ld, atol=1e-9) and not torch.allclose(no_ld, ref[0], atol=1e-9):
        raise _wrong("forgot_logdet", "your grad_x leaves out the log-det's gradient: the loss depends on the "
                                      "log-det too, and an affine coupling's log-det depends on x_a.",
                     "backpropagate both outputs: torch.autograd.backward([y_again, logdet], [grad_y, grad_logdet]).")
    if not torch.allclose(grad_x, ref[0], atol=1e-9):
        raise _wrong("wrong_grad_x", f"grad_x differs from ordinary autograd by up to "
                                     f"{float((grad_x - ref[0]).abs().max()):.3g}.")
    grads = [p.grad for p in step.parameters()]
    if any(gp is None for gp in grads):
        raise _wrong("no_param_grads", "grad_x is right, but the step's parameters received no gradient: the "
                                       "optimizer would not learn anything.",
                     "use torch.autograd.backward (it fills p.grad), not only torch.autograd.grad on x.")
    err = max(float((gp - r).abs().max()) for gp, r in zip(grads, ref[1:]))
    if err > 1e-9:
        raise _wrong("wrong_param_grads", f"the parameters' gradients differ from ordinary autograd by up to {err:.3g}.")
    return "x rebuilt exactly, and grad_x and every parameter's gradient equal ordinary autograd's."


@_checker("Exercise 2 — the log-det of a linear velocity field's flow",
          "d/dt log|det dx_t/dx_0| = div v = trace(A), constant in time.")
def check_linear_logdet(fn) -> str:
    cases = [torch.tensor([[0.3, -0.8], [0.5, -0.2]]), torch.tensor([[1.0, 2.0], [0.0, -0.5]]),
             torch.tensor([[0.2, 0.1, 0.0], [0.0, 0.7, 0.3], [0.4, 0.0, -1.1]])]
    for A in cases:
        A = A.double()
        try:
            got = float(_call(fn, A.clone()))
        except (TypeError, ValueError):
            raise _wrong("not_numeric", "return one number (a float or a 0-d tensor).") from None
        want = float(torch.trace(A))
        if abs(got - want) < 1e-6:
            continue
        if abs(got + want) < 1e-6:
            raise _wrong("sign", f"for A = {A.tolist()} you give {got:.4g}: the sign is flipped. That is the log-det "
                                 f"of the backward map x_1 -> x_0.", "volume grows where div v > 0.")
        if abs(got - float(torch.linalg.slogdet(A)[1])) < 1e-6:
            raise _wrong("det_of_A", f"you give log|det A| = {got:.4g}: A is the velocity's Jacobian, not the map's. "
                                     f"The map after time 1 is e^A.", "log|det e^A| = trace(A).")
        raise _wrong("other", f"for A = {A.tolist()} the answer is {want:.4g}, you give {got:.4g}.")
    return "trace(A): the map after time 1 is x -> e^A x + m, and log|det e^A| = trace(A) (Jacobi's formula)."


@_checker("Exercise 3 — passes of the conditioner: density versus sampling",
          "the density needs each block once (all tokens in parallel); sampling rebuilds the tokens one at a time.",
          answer="function")
def check_conditioner_passes(fn) -> str:
    for tokens, blocks in [(2, 4), (256, 8), (16, 1)]:
        out = _call(fn, tokens, blocks)
        try:
            density, sampling = (int(v) for v in out)
        except (TypeError, ValueError):
            raise _wrong("not_a_pair", f"return a pair (density_passes, sampling_passes), got {out!r}.") from None
        if (density, sampling) == (blocks, tokens * blocks):
            continue
        if (density, sampling) == (tokens * blocks, blocks):
            raise _wrong("swapped", "the two are swapped: the density direction is the parallel one (teacher "
                                    "forcing), sampling is sequential.")
        if sampling == tokens and tokens != tokens * blocks:
            raise _wrong("forgot_blocks", f"for {tokens} tokens and {blocks} blocks you give {sampling} sampling passes: "
                                          f"every block must be inverted, token by token.",
                         "blocks x tokens.")
        if density == 1 and blocks != 1:
            raise _wrong("one_pass", "the density needs one pass of EACH block, not one pass in all.")
        raise _wrong("other", f"for T = {tokens}, K = {blocks} the answer is ({blocks}, {tokens * blocks}), you give "
                              f"({density}, {sampling}).")
    return "(K, K·T): the density is K parallel passes, sampling K·T sequential ones — TarFlow's price for sampling."
