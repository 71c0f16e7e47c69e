"""The affine layer against torch (weight layout (D_in, D_out)), in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from trainlab.gradcheck import check_layer
from trainlab.linear import linear_backward, linear_forward

pytestmark = pytest.mark.linear

F64 = torch.float64


def _randn(gen, *shape, device="cpu"):
    return torch.randn(*shape, generator=gen, dtype=F64).to(device)


def test_matches_torch_autograd(device, gen):
    n, d_in, d_out = 7, 5, 3  # all different: a misplaced transpose cannot hide
    x = _randn(gen, n, d_in, device=device)
    w = _randn(gen, d_in, d_out, device=device)
    b = _randn(gen, d_out, device=device)
    dout = _randn(gen, n, d_out, device=device)

    out, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dout, cache)

    xt, wt, bt = (t.clone().requires_grad_(True) for t in (x, w, b))
    ref = F.linear(xt, wt.t(), bt)  # torch's weight is (D_out, D_in)
    ref.backward(dout)
    assert out.shape == (n, d_out)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert_close(out, ref.detach(), what="linear forward")
    assert_close(dx, xt.grad, what="linear dx")
    assert_close(dw, wt.grad, what="linear dw")
    assert_close(db, bt.grad, what="linear db")


def test_equals_nn_linear_with_transposed_weight(gen):
    layer = torch.nn.Linear(4, 6, dtype=F64)
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    out, _ = linear_forward(x, layer.weight.detach().t(), layer.bias.detach())
    assert_close(out, layer(x).detach(), what="linear vs nn.Linear")


def test_gradient_check_passes(gen):
    x, w, b = _randn(gen, 4, 6), _randn(gen, 6, 5), _randn(gen, 5)
    reports = check_layer(
        linear_forward, linear_backward, {"x": x, "w": w, "b": b}, generator=gen
    )
    assert list(reports) == ["dx", "dw", "db"]
    for rep in reports.values():
        assert rep.passed, str(rep)


def test_rejects_torch_weight_layout():
    x = torch.randn(2, 4, dtype=F64)
    w = torch.randn(3, 4, dtype=F64)  # (D_out, D_in): torch's layout
    with pytest.raises(ValueError, match=r"\(D_in, D_out\).*D_in = x.shape\[1\] = 4"):
        linear_forward(x, w, torch.zeros(3, dtype=F64))


def test_rejects_bad_inputs():
    x = torch.randn(2, 4, dtype=F64)
    w = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\); got \(4,\)"):
        linear_forward(x, w, torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match=r"x must have 2 dimensions; got shape"):
        linear_forward(torch.randn(2, 2, 2, dtype=F64), w, torch.zeros(3, dtype=F64))
    with pytest.raises(TypeError, match="w has dtype torch.float32"):
        linear_forward(x, w.float(), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="w is on meta"):
        linear_forward(x, w.to("meta"), torch.zeros(3, dtype=F64))
    _, cache = linear_forward(x, w, torch.zeros(3, dtype=F64))
    with pytest.raises(
        ValueError, match=r"dout must have shape \(2, 3\); got \(3, 2\)"
    ):
        linear_backward(torch.randn(3, 2, dtype=F64), cache)
