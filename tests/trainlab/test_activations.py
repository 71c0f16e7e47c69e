"""Activations against torch.nn.functional and autograd, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from trainlab.activations import (
    ACTIVATIONS,
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    maxout_backward,
    maxout_forward,
    prelu_backward,
    prelu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)

pytestmark = pytest.mark.activations

F64 = torch.float64

# name -> (our forward, our backward, torch function), with non-default parameters
ELEMENTWISE = {
    "sigmoid": (sigmoid_forward, sigmoid_backward, torch.sigmoid),
    "tanh": (tanh_forward, tanh_backward, torch.tanh),
    "relu": (relu_forward, relu_backward, F.relu),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward, F.leaky_relu),
    "leaky_relu_0.2": (
        lambda x: leaky_relu_forward(x, negative_slope=0.2),
        leaky_relu_backward,
        lambda x: F.leaky_relu(x, negative_slope=0.2),
    ),
    "elu": (elu_forward, elu_backward, F.elu),
    "elu_0.5": (
        lambda x: elu_forward(x, alpha=0.5),
        elu_backward,
        lambda x: F.elu(x, alpha=0.5),
    ),
    "elu_2": (
        lambda x: elu_forward(x, alpha=2.0),
        elu_backward,
        lambda x: F.elu(x, alpha=2.0),
    ),
}


def _randn(gen, *shape, scale=1.0, shift=0.0, device="cpu"):
    """Draw on the CPU (repeatable), then move."""
    return (scale * torch.randn(*shape, generator=gen, dtype=F64) + shift).to(device)


def _with_zeros(x: torch.Tensor) -> torch.Tensor:
    """Put a few exact zeros in x, so the kink convention is compared as well."""
    x = x.clone()
    x.view(-1)[::7] = 0.0
    return x


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_matches_torch(name, shape, device, gen):
    forward, backward, torch_fn = ELEMENTWISE[name]
    x = _with_zeros(_randn(gen, *shape, scale=3.0, device=device))
    dout = _randn(gen, *shape, device=device)

    out, cache = forward(x)
    dx = backward(dout, cache)

    xt = x.clone().requires_grad_(True)
    ref = torch_fn(xt)
    ref.backward(dout)
    assert out.shape == x.shape and out.dtype == F64 and out.device == x.device
    assert_close(out, ref.detach(), what=f"{name} forward")
    assert_close(dx, xt.grad, what=f"{name} backward")


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_keeps_float32(name, gen):
    forward, backward, _ = ELEMENTWISE[name]
    x = torch.randn(4, 3, generator=gen)
    out, cache = forward(x)
    dx = backward(torch.ones_like(out), cache)
    assert out.dtype == torch.float32 and dx.dtype == torch.float32


def test_kinks_at_zero(device):
    x = torch.zeros(3, dtype=F64, device=device)
    dout = torch.tensor([1.0, -2.0, 3.0], dtype=F64, device=device)

    assert torch.equal(relu_backward(dout, relu_forward(x)[1]), torch.zeros_like(x))
    dx = leaky_relu_backward(dout, leaky_relu_forward(x, 0.1)[1])
    assert torch.equal(dx, 0.1 * dout)
    dx = elu_backward(dout, elu_forward(x, alpha=0.7)[1])
    assert torch.equal(dx, 0.7 * dout)

    alpha = torch.tensor([0.3], dtype=F64, device=device)
    out, cache = prelu_forward(x, alpha)
    dx, dalpha = prelu_backward(dout, cache)
    assert torch.equal(out, x)
    assert torch.equal(dx, 0.3 * dout)
    assert torch.equal(dalpha, torch.zeros_like(alpha))


def test_relu_just_above_and_below_zero():
    x = torch.tensor([-1e-300, 1e-300], dtype=F64)
    dx = relu_backward(torch.ones(2, dtype=F64), relu_forward(x)[1])
    assert dx.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = torch.tensor([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype)
    out, cache = sigmoid_forward(x)
    assert torch.isfinite(out).all()
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == 0.5
    assert_close(out.double(), torch.sigmoid(x).double(), tol=1e-6)
    dx = sigmoid_backward(torch.ones_like(x), cache)
    assert torch.isfinite(dx).all()
    assert dx[0] == 0.0 and dx[-1] == 0.0 and dx[2] == 0.25


def test_sigmoid_tail_keeps_relative_precision():
    # 1 - 1/(1 + e^{-x}) would round to 0; the x < 0 branch keeps e^{x}
    x = torch.tensor([-30.0, -700.0], dtype=F64)
    out, _ = sigmoid_forward(x)
    assert (out / torch.exp(x) - 1).abs().max() < 1e-12


def test_elu_large_negative_is_finite():
    x = torch.tensor([-1000.0, 1000.0], dtype=F64)
    out, cache = elu_forward(x, alpha=1.5)
    assert out.tolist() == [-1.5, 1000.0]
    assert elu_backward(torch.ones_like(x), cache).tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------- prelu


@pytest.mark.parametrize(
    ("shape", "num_alpha"),
    [((5, 4, 3, 2), 4), ((6, 3), 3), ((5, 4, 3, 2), 1), ((7,), 1), ((3, 2, 5), 2)],
)
def test_prelu_matches_torch(shape, num_alpha, device, gen):
    x = _with_zeros(_randn(gen, *shape, scale=2.0, device=device))
    alpha = _randn(gen, num_alpha, scale=0.3, shift=0.2, device=device)
    dout = _randn(gen, *shape, device=device)

    out, cache = prelu_forward(x, alpha)
    dx, dalpha = prelu_backward(dout, cache)

    xt = x.clone().requires_grad_(True)
    at = alpha.clone().requires_grad_(True)
    ref = F.prelu(xt, at)
    ref.backward(dout)
    assert dalpha.shape == alpha.shape
    assert_close(out, ref.detach(), what="prelu forward")
    assert_close(dx, xt.grad, what="prelu dx")
    assert_close(dalpha, at.grad, what="prelu dalpha")


def test_prelu_dalpha_is_per_channel(gen):
    # channel-distinct inputs: summing over the wrong dimension gives other values
    x = -torch.arange(1.0, 4.0, dtype=F64).reshape(1, 3, 1, 1).expand(2, 3, 2, 2)
    dout = torch.ones(2, 3, 2, 2, dtype=F64)
    _, cache = prelu_forward(x, torch.full((3,), 0.25, dtype=F64))
    _, dalpha = prelu_backward(dout, cache)
    assert dalpha.tolist() == [-8.0, -16.0, -24.0]


def test_prelu_rejects_wrong_alpha():
    x = torch.randn(2, 3, 4, dtype=F64)
    with pytest.raises(ValueError, match=r"C = x.shape\[1\] = 3.*\(4,\)"):
        prelu_forward(x, torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="1 dimensions"):
        prelu_forward(x, torch.ones(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="C = x.shape"):
        prelu_forward(torch.randn(3, dtype=F64), torch.ones(3, dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        prelu_forward(x, torch.ones(3, dtype=torch.float32))


# ---------------------------------------------------------------------- maxout


def _maxout_reference(x, w, b):
    """Maxout built from torch ops; autograd's max(dim) routes to the first argmax."""
    pieces = torch.stack([x @ w[j] + b[j] for j in range(w.shape[0])])  # (k, N, M)
    return pieces.max(dim=0).values


@pytest.mark.parametrize("k", [1, 2, 4])
def test_maxout_matches_torch(k, device, gen):
    n, d, m = 6, 5, 3
    x = _randn(gen, n, d, device=device)
    w = _randn(gen, k, d, m, device=device)
    b = _randn(gen, k, m, device=device)
    dout = _randn(gen, n, m, device=device)

    out, cache = maxout_forward(x, w, b)
    dx, dw, db = maxout_backward(dout, cache)

    xt, wt, bt = (t.clone().requires_grad_(True) for t in (x, w, b))
    ref = _maxout_reference(xt, wt, bt)
    ref.backward(dout)
    assert out.shape == (n, m)
    assert_close(out, ref.detach(), what="maxout forward")
    assert_close(dx, xt.grad, what="maxout dx")
    assert_close(dw, wt.grad, what="maxout dw")
    assert_close(db, bt.grad, what="maxout db")


def test_maxout_ties_go_to_first_piece(device, gen):
    # three identical pieces: every entry is a three-way tie
    x = _randn(gen, 4, 3, device=device)
    w = _randn(gen, 1, 3, 2, device=device).expand(3, 3, 2).contiguous()
    b = _randn(gen, 1, 2, device=device).expand(3, 2).contiguous()
    dout = _randn(gen, 4, 2, device=device)

    out, cache = maxout_forward(x, w, b)
    dx, dw, db = maxout_backward(dout, cache)

    xt, wt, bt = (t.clone().requires_grad_(True) for t in (x, w, b))
    _maxout_reference(xt, wt, bt).backward(dout)
    assert_close(dw, wt.grad, what="maxout dw with ties")
    assert_close(db, bt.grad, what="maxout db with ties")
    assert torch.equal(dw[1:], torch.zeros_like(dw[1:]))
    assert torch.equal(db[1:], torch.zeros_like(db[1:]))
    assert_close(dx, dout @ w[0].t(), what="maxout dx with ties")


def test_maxout_rejects_bad_shapes():
    x = torch.randn(4, 3, dtype=F64)
    w = torch.randn(2, 3, 2, dtype=F64)
    b = torch.randn(2, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"D = x.shape\[1\] = 3.*\(2, 5, 2\)"):
        maxout_forward(x, torch.randn(2, 5, 2, dtype=F64), b)
    with pytest.raises(ValueError, match=r"b must have shape \(2, 2\); got \(3, 2\)"):
        maxout_forward(x, w, torch.randn(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="w must have 3 dimensions"):
        maxout_forward(x, w[0], b)
    _, cache = maxout_forward(x, w, b)
    with pytest.raises(
        ValueError, match=r"dout must have shape \(4, 2\); got \(4, 3\)"
    ):
        maxout_backward(torch.randn(4, 3, dtype=F64), cache)


# ----------------------------------------------------- input checks and registry


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_backward_rejects_wrong_dout(name):
    forward, backward, _ = ELEMENTWISE[name]
    x = torch.randn(3, 4, dtype=F64)
    _, cache = forward(x)
    with pytest.raises(
        ValueError, match=r"dout must have shape \(3, 4\); got \(4, 3\)"
    ):
        backward(torch.randn(4, 3, dtype=F64), cache)
    with pytest.raises(TypeError, match="dtype torch.float32"):
        backward(torch.randn(3, 4, dtype=torch.float32), cache)
    with pytest.raises(ValueError, match="is on meta"):
        backward(torch.empty(3, 4, dtype=F64, device="meta"), cache)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_forward_rejects_non_float(name):
    forward = ELEMENTWISE[name][0]
    with pytest.raises(TypeError, match="floating-point dtype; got torch.int64"):
        forward(torch.arange(4))
    with pytest.raises(TypeError, match="must be a torch.Tensor; got list"):
        forward([1.0, 2.0])


def test_registry_uses_default_parameters(gen):
    assert set(ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu"}
    x = _with_zeros(torch.randn(5, 4, generator=gen, dtype=F64))
    dout = torch.randn(5, 4, generator=gen, dtype=F64)
    for name, (forward, backward) in ACTIVATIONS.items():
        torch_fn = ELEMENTWISE[name][2]
        out, cache = forward(x)
        xt = x.clone().requires_grad_(True)
        ref = torch_fn(xt)
        ref.backward(dout)
        assert_close(out, ref.detach(), what=f"ACTIVATIONS[{name!r}] forward")
        assert_close(backward(dout, cache), xt.grad, what=f"{name} backward")
