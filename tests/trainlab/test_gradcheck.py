"""Gradient checking: it must pass correct backward passes and fail broken ones."""

from __future__ import annotations

import warnings

import pytest
import torch

from trainlab.activations import (
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
)
from trainlab.gradcheck import (
    GradCheckReport,
    check_directional,
    check_elementwise,
    check_layer,
    numerical_gradient,
    rel_error,
)
from trainlab.linear import linear_backward, linear_forward

pytestmark = pytest.mark.gradcheck

F64 = torch.float64
CHECKS = [check_elementwise, check_directional]


def _randn(gen, *shape, device="cpu"):
    return torch.randn(*shape, generator=gen, dtype=F64).to(device)


def _nonlinear(x: torch.Tensor) -> torch.Tensor:
    """A function that mixes entries: every output depends on a whole row."""
    return torch.sin(x) * x.sum(dim=1, keepdim=True) + x**3  # (N, D)


# ------------------------------------------------------------------- rel_error


def test_rel_error_values():
    a = torch.tensor([1.0, 2.0], dtype=F64)
    assert rel_error(a, a) == 0.0
    assert rel_error(torch.zeros(3), torch.zeros(3)) == 0.0
    # max|a-b| = 0.5, max(|a|+|b|) = 2 + 2.5
    assert rel_error(a, torch.tensor([1.0, 2.5])) == pytest.approx(0.5 / 4.5)
    assert rel_error(1.0, -1.0) == 1.0


def test_rel_error_is_scale_aware():
    # an entry zero by cancellation does not dominate: 1e-12 off on a scale of 1
    a = torch.tensor([1.0, 0.0], dtype=F64)
    b = torch.tensor([1.0, 1e-12], dtype=F64)
    assert rel_error(a, b) < 1e-11


def test_rel_error_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"same shape; got \(2,\) and \(3,\)"):
        rel_error(torch.zeros(2), torch.zeros(3))


# ---------------------------------------------------------- numerical_gradient


def test_numerical_gradient_matches_autograd(device, gen):
    x = _randn(gen, 4, 3, device=device)
    dout = _randn(gen, 4, 3, device=device)
    x_before = x.clone()

    num = numerical_gradient(_nonlinear, x, dout)

    xt = x.clone().requires_grad_(True)
    _nonlinear(xt).backward(dout)
    assert num.device == x.device and num.dtype == F64
    assert rel_error(num, xt.grad) < 1e-8
    assert torch.equal(x, x_before), "numerical_gradient must restore x exactly"


def test_numerical_gradient_non_contiguous_input(gen):
    base = _randn(gen, 3, 5)
    x = base.t()  # (5, 3), a non-contiguous view
    dout = _randn(gen, 5, 3)
    before = base.clone()
    num = numerical_gradient(_nonlinear, x, dout)
    xt = x.clone().requires_grad_(True)
    _nonlinear(xt).backward(dout)
    assert rel_error(num, xt.grad) < 1e-8
    assert torch.equal(base, before)


def test_numerical_gradient_restores_x_when_f_raises(gen):
    x = _randn(gen, 2, 2)
    before = x.clone()
    calls = []

    def flaky(v):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return v * 2

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(flaky, x, torch.ones(2, 2, dtype=F64))
    assert torch.equal(x, before)


def test_numerical_gradient_clear_errors(gen):
    x = _randn(gen, 3, 2)
    with pytest.raises(ValueError, match=r"shape of f\(x\), \(3, 2\); got \(2, 3\)"):
        numerical_gradient(torch.sin, x, torch.ones(2, 3, dtype=F64))
    with pytest.raises(TypeError, match=r"lambda x: forward\(x\)\[0\]"):
        numerical_gradient(relu_forward, x, torch.ones(3, 2, dtype=F64))


# ------------------------------------------ check_elementwise / check_directional


def _sigmoid_f(v):
    return sigmoid_forward(v)[0]


def _sigmoid_missing_factor(dout, cache):
    (out,) = cache
    return dout * out  # forgot (1 - out)


def _relu_backward_ge(dout, cache):
    (x,) = cache
    return torch.where(x >= 0, dout, torch.zeros_like(dout))  # kink on the wrong side


@pytest.mark.parametrize("check", CHECKS)
def test_passes_correct_backward(check, device, gen):
    x = _randn(gen, 8, 6, device=device)
    dout = _randn(gen, 8, 6, device=device)
    _, cache = sigmoid_forward(x)
    rep = check(_sigmoid_f, x, dout, sigmoid_backward(dout, cache), generator=gen)
    assert isinstance(rep, GradCheckReport)
    assert rep.passed, str(rep)
    assert rep.rel_error < 1e-8
    assert rep.note == ""


@pytest.mark.parametrize("check", CHECKS)
def test_fails_sigmoid_missing_factor(check, device, gen):
    x = _randn(gen, 8, 6, device=device)
    dout = _randn(gen, 8, 6, device=device)
    _, cache = sigmoid_forward(x)
    rep = check(
        _sigmoid_f, x, dout, _sigmoid_missing_factor(dout, cache), generator=gen
    )
    assert not rep.passed
    assert rep.rel_error > 1e-2
    assert "FAILED" in str(rep) and "wrong" in str(rep)


@pytest.mark.parametrize("check", CHECKS)
def test_relu_kink_bug_is_not_caught_at_random_points(check, gen):
    # a documented limitation: random points never hit x == 0 exactly
    x = _randn(gen, 10, 10)
    dout = _randn(gen, 10, 10)
    out, cache = relu_forward(x)
    rep = check(lambda v: relu_forward(v)[0], x, dout, _relu_backward_ge(dout, cache))
    assert rep.passed, str(rep)
    # ... whereas comparing the value at the kink catches it
    _, cache0 = relu_forward(torch.zeros(1, dtype=F64))
    assert _relu_backward_ge(torch.ones(1, dtype=F64), cache0).item() == 1.0


def test_directional_catches_a_single_wrong_entry(gen):
    x = _randn(gen, 30, 20)
    dout = _randn(gen, 30, 20)
    _, cache = sigmoid_forward(x)
    dx = sigmoid_backward(dout, cache)
    dx[17, 3] += 0.05
    rep = check_directional(_sigmoid_f, x, dout, dx, generator=gen)
    assert not rep.passed, str(rep)


def test_directional_is_accurate_on_large_offset_inputs(gen):
    # x of magnitude 12 with 262144 entries: a unit-norm direction would move each
    # entry by ~2e-8, and rounding x + h u alone would cost a relative error ~1e-7
    x = 5 * _randn(gen, 256, 1024) + 12
    dout = _randn(gen, 256, 1024)

    def f(v):
        return v * v.mean(dim=0, keepdim=True)  # (N, D): couples each column

    xt = x.clone().requires_grad_(True)
    f(xt).backward(dout)
    rep = check_directional(f, x, dout, xt.grad, generator=gen)
    assert rep.passed and rep.rel_error < 1e-8, str(rep)


def test_directional_calls_f_a_bounded_number_of_times(gen):
    for n in (4, 200_000):
        x = _randn(gen, n)
        dout = _randn(gen, n)
        calls = []

        def f(v, calls=calls):
            calls.append(1)
            return torch.tanh(v)

        analytic = dout * (1 - torch.tanh(x) ** 2)
        rep = check_directional(f, x, dout, analytic, num_directions=3, generator=gen)
        assert rep.passed, str(rep)
        assert len(calls) == 6, f"{len(calls)} calls of f for {n} inputs; expected 6"
        assert rep.checked == 3


def test_elementwise_calls_f_twice_per_sample(gen):
    calls = []

    def f(v):
        calls.append(1)
        return torch.tanh(v)

    x = _randn(gen, 50)
    dout = _randn(gen, 50)
    rep = check_elementwise(f, x, dout, dout * (1 - torch.tanh(x) ** 2), num_samples=7)
    assert len(calls) == 14 and rep.checked == 7
    rep = check_elementwise(f, x[:3], dout[:3], dout[:3], num_samples=7)
    assert rep.checked == 3  # never more than the number of entries


@pytest.mark.parametrize("check", CHECKS)
def test_checks_are_reproducible_and_leave_x_alone(check):
    x = torch.randn(7, 9, dtype=F64, generator=torch.Generator().manual_seed(1))
    dout = torch.randn(7, 9, dtype=F64, generator=torch.Generator().manual_seed(2))
    before = x.clone()
    wrong = _sigmoid_missing_factor(dout, sigmoid_forward(x)[1])
    rep1 = check(_sigmoid_f, x, dout, wrong, generator=torch.Generator().manual_seed(3))
    rep2 = check(_sigmoid_f, x, dout, wrong, generator=torch.Generator().manual_seed(3))
    assert rep1 == rep2
    assert torch.equal(x, before)


def test_elementwise_report_names_worst_entry(gen):
    x = _randn(gen, 3, 4)
    dout = _randn(gen, 3, 4)
    dx = sigmoid_backward(dout, sigmoid_forward(x)[1])
    dx[2, 1] += 5.0  # the one bad entry
    rep = check_elementwise(_sigmoid_f, x, dout, dx, num_samples=12, name="dx")
    assert rep.worst_index == (2, 1)
    assert rep.analytic == pytest.approx(float(dx[2, 1]))
    assert rep.numeric == pytest.approx(float(dx[2, 1]) - 5.0, abs=1e-8)
    text = str(rep)
    assert "worst entry dx[2, 1]" in text
    assert f"analytic {rep.analytic:.6g}" in text
    assert f"numeric {rep.numeric:.6g}" in text
    assert f"relative error {rep.rel_error:.1e} > 1e-07" in text


def test_directional_report_names_worst_direction(gen):
    x = _randn(gen, 5, 5)
    dout = _randn(gen, 5, 5)
    rep = check_directional(_sigmoid_f, x, dout, torch.zeros_like(x), generator=gen)
    assert rep.mode == "directional" and rep.worst_index[0] in (0, 1)
    assert "worst direction" in str(rep) and "<dx, u>" in str(rep)
    assert rep.analytic == 0.0 and rep.numeric != 0.0


@pytest.mark.parametrize("check", CHECKS)
def test_warns_when_not_float64(check, gen):
    x = torch.randn(4, 4, generator=gen)
    dout = torch.randn(4, 4, generator=gen)
    dx = sigmoid_backward(dout, sigmoid_forward(x)[1])
    with pytest.warns(UserWarning, match="not torch.float64"):
        rep = check(_sigmoid_f, x, dout, dx, generator=gen)
    assert "float64" in rep.note and "float64" in str(rep)


def test_no_warning_in_float64(gen):
    x = _randn(gen, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_directional(_sigmoid_f, x, x, sigmoid_backward(x, sigmoid_forward(x)[1]))


def test_check_rejects_mismatched_analytic(gen):
    x = _randn(gen, 3, 4)
    with pytest.raises(ValueError, match=r"dx must have shape \(3, 4\); got \(4, 3\)"):
        check_elementwise(_sigmoid_f, x, x, torch.zeros(4, 3, dtype=F64))
    with pytest.raises(TypeError, match="dx has dtype torch.float32"):
        check_directional(_sigmoid_f, x, x, torch.zeros(3, 4))


# ------------------------------------------------------------------ check_layer


def _linear_dw_transposed(dout, cache):
    dx, dw, db = linear_backward(dout, cache)
    return dx, dw.t(), db


def _linear_db_mean(dout, cache):
    dx, dw, _ = linear_backward(dout, cache)
    return dx, dw, dout.mean(dim=0)  # should be a sum over the batch


def _linear_inputs(gen, n, d_in, d_out, device="cpu"):
    return {
        "x": _randn(gen, n, d_in, device=device),
        "w": _randn(gen, d_in, d_out, device=device),
        "b": _randn(gen, d_out, device=device),
    }


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_check_layer_passes_linear(mode, device, gen):
    inputs = _linear_inputs(gen, 5, 4, 3, device)
    reports = check_layer(
        linear_forward, linear_backward, inputs, mode=mode, generator=gen
    )
    assert list(reports) == ["dx", "dw", "db"]
    for rep in reports.values():
        assert rep.passed and rep.mode == mode, str(rep)


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_check_layer_fails_dw_transposed(mode, gen):
    inputs = _linear_inputs(gen, 5, 4, 4)  # square w: the bug keeps the shape
    reports = check_layer(
        linear_forward, _linear_dw_transposed, inputs, mode=mode, generator=gen
    )
    assert reports["dx"].passed and reports["db"].passed
    assert not reports["dw"].passed, str(reports["dw"])
    assert "dw" in str(reports["dw"])


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_check_layer_fails_db_mean(mode, gen):
    inputs = _linear_inputs(gen, 6, 4, 3)
    reports = check_layer(
        linear_forward, _linear_db_mean, inputs, mode=mode, generator=gen
    )
    assert not reports["db"].passed and reports["db"].rel_error > 1e-2


def test_check_layer_reports_wrong_gradient_shape(gen):
    inputs = _linear_inputs(gen, 5, 4, 3)
    with pytest.raises(ValueError, match=r"dw of shape \(3, 4\); expected \(4, 3\)"):
        check_layer(linear_forward, _linear_dw_transposed, inputs)


def test_check_layer_reports_wrong_gradient_count(gen):
    inputs = {"x": _randn(gen, 3, 3)}
    with pytest.raises(ValueError, match="returned 3 gradient.*1 differentiable"):
        check_layer(lambda x: linear_forward(x, x, x[0]), linear_backward, inputs)


def test_check_layer_extra_kwargs_are_not_mutated(gen):
    running = torch.zeros(3, dtype=F64)

    def forward(x, scale, running, momentum):
        running.add_(momentum * x.mean(dim=0))  # an in-place update, like batchnorm
        return scale * torch.tanh(x), (x, scale)

    def backward(dout, cache):
        x, scale = cache
        t = torch.tanh(x)
        return dout * scale * (1 - t**2), (dout * t).sum().reshape(1)

    inputs = {"x": _randn(gen, 4, 3), "scale": _randn(gen, 1)}
    reports = check_layer(
        forward,
        backward,
        inputs,
        extra_kwargs={"running": running, "momentum": 0.1},
        generator=gen,
    )
    assert set(reports) == {"dx", "dscale"}
    assert all(r.passed for r in reports.values())
    assert torch.equal(running, torch.zeros(3, dtype=F64))


def test_check_layer_dout_is_not_ones(gen):
    seen = []

    def backward(dout, cache):
        seen.append(dout)
        return linear_backward(dout, cache)

    check_layer(linear_forward, backward, _linear_inputs(gen, 3, 2, 2), generator=gen)
    assert not torch.equal(seen[0], torch.ones_like(seen[0]))


def test_check_layer_rejects_bad_mode(gen):
    with pytest.raises(ValueError, match="mode must be"):
        check_layer(
            linear_forward, linear_backward, _linear_inputs(gen, 2, 2, 2), mode="full"
        )


def test_numerical_gradient_of_a_function_returning_a_view_of_x():
    # f(x) = x (a view): the gradient of sum(x * dout) is dout itself
    x = torch.randn(3, 4, dtype=torch.float64)
    dout = torch.randn(3, 4, dtype=torch.float64)
    grad = numerical_gradient(lambda t: t, x, dout)
    assert rel_error(grad, dout) < 1e-8
    grad = numerical_gradient(lambda t: t[:, 1:], x, dout[:, 1:])
    assert grad[:, 0].abs().max() == 0
    assert rel_error(grad[:, 1:], dout[:, 1:]) < 1e-8
