"""GELU and SiLU against torch.nn.functional and autograd, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from trainlab.gradcheck import check_layer
from trainlab.smooth_activations import (
    gelu_backward,
    gelu_forward,
    silu_backward,
    silu_forward,
)

pytestmark = pytest.mark.activations

F64 = torch.float64
LAYERS = {
    "gelu": (gelu_forward, gelu_backward, F.gelu),
    "silu": (silu_forward, silu_backward, F.silu),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_and_backward_match_torch(name, device):
    forward, backward, reference = LAYERS[name]
    gen = torch.Generator().manual_seed(0)
    x = (4 * torch.randn(5, 7, generator=gen, dtype=F64)).to(device)
    dout = torch.randn(5, 7, generator=gen, dtype=F64).to(device)
    out, cache = forward(x)
    xt = x.clone().requires_grad_()
    expected = reference(xt)
    expected.backward(dout)
    assert_close(out, expected, what=f"{name} forward")
    assert_close(backward(dout, cache), xt.grad, what=f"{name} backward")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_numerical_gradient_check(name):
    forward, backward, _ = LAYERS[name]
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    for report in check_layer(forward, backward, {"x": x}).values():
        assert report.passed, report


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_large_inputs_stay_finite(name):
    forward, backward, _ = LAYERS[name]
    x = torch.tensor([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=F64)
    out, cache = forward(x)
    dx = backward(torch.ones_like(x), cache)
    assert torch.isfinite(out).all() and torch.isfinite(dx).all()
    assert_close(out[[0, 4]], torch.tensor([0.0, 1000.0], dtype=F64), what=name)
    assert_close(dx[[0, 4]], torch.tensor([0.0, 1.0], dtype=F64), what=name)


def test_backward_refuses_a_wrong_shape():
    _, cache = gelu_forward(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="dout"):
        gelu_backward(torch.zeros(4, dtype=F64), cache)
