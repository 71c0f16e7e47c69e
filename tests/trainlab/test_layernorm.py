"""Layer normalization against torch.nn.functional.layer_norm and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from tests.trainlab.norm_inputs import affine, randn, shifted, with_grad
from trainlab.layernorm import layernorm_backward, layernorm_forward

pytestmark = pytest.mark.norm

CASES = {
    "(N, D)": ((4, 7), (7,)),
    "(N, T, D)": ((4, 3, 6), (6,)),
    "(N, C, H, W) over (C, H, W)": ((2, 3, 4, 5), (3, 4, 5)),
    "(N, C, H, W) over (H, W)": ((2, 3, 4, 5), (4, 5)),
    "no batch dim": ((3, 5), (3, 5)),
}


@pytest.mark.parametrize("x_shape, norm_shape", CASES.values(), ids=CASES.keys())
def test_matches_torch_and_autograd(device, gen, x_shape, norm_shape):
    x = shifted(gen, *x_shape, device=device)
    gamma, beta = affine(gen, *norm_shape, device=device)
    dout = randn(gen, *x_shape, device=device)

    out, cache = layernorm_forward(x, gamma, beta, eps=1e-3)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)

    xt, gt, bt = with_grad(x, gamma, beta)
    ref = F.layer_norm(xt, norm_shape, gt, bt, eps=1e-3)
    ref.backward(dout)
    assert dgamma.shape == norm_shape and dbeta.shape == norm_shape
    assert_close(out, ref.detach(), what="layernorm forward")
    assert_close(dx, xt.grad, what="dx")
    assert_close(dgamma, gt.grad, what="dgamma")
    assert_close(dbeta, bt.grad, what="dbeta")


def test_each_sample_is_normalized_on_its_own(device, gen):
    x = shifted(gen, 4, 7, device=device)
    gamma, beta = affine(gen, 7, device=device)
    out, _ = layernorm_forward(x, gamma, beta)
    alone, _ = layernorm_forward(x[2:3], gamma, beta)  # a batch of one is fine
    assert_close(alone[0], out[2], what="sample 2 alone")
    x_hat = (out - beta) / gamma
    assert x_hat.mean(dim=1).abs().max() < 1e-12  # zero mean per sample
    var = x.var(dim=1, correction=0, keepdim=True)  # biased
    assert_close(x_hat.var(dim=1, correction=0, keepdim=True), var / (var + 1e-5))


def test_dx_sums_to_zero_over_features(device, gen):
    x = shifted(gen, 4, 7, device=device)
    gamma, beta = affine(gen, 7, device=device)
    _, cache = layernorm_forward(x, gamma, beta)
    dx, _, _ = layernorm_backward(randn(gen, 4, 7, device=device), cache)
    assert dx.sum(dim=1).abs().max() <= 1e-12 * dx.abs().max()


def test_forward_does_not_modify_x(gen):
    x = shifted(gen, 4, 7)
    saved = x.clone()
    layernorm_forward(x, *affine(gen, 7))
    assert torch.equal(x, saved)


def test_wrong_shapes_and_types_are_refused(gen):
    x = shifted(gen, 4, 7)
    gamma, beta = affine(gen, 7)
    with pytest.raises(ValueError, match=r"trailing 2 dims of x must equal .*\(1, 7\)"):
        layernorm_forward(x.reshape(2, 2, 7), gamma[None], beta[None])
    with pytest.raises(ValueError, match=r"trailing 1 dims.*\(4,\).*got x of shape"):
        layernorm_forward(x, randn(gen, 4), randn(gen, 4))  # gamma sized like N
    with pytest.raises(ValueError, match=r"beta must have shape \(7,\); got \(1, 7\)"):
        layernorm_forward(x, gamma, beta[None])
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions"):
        layernorm_forward(x[0], gamma.reshape(1, 7), beta.reshape(1, 7))
    with pytest.raises(TypeError, match=r"gamma has dtype torch.float32"):
        layernorm_forward(x, gamma.float(), beta)
    _, cache = layernorm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 7\)"):
        layernorm_backward(randn(gen, 7, 4), cache)
