"""Instance normalization against torch.nn.functional.instance_norm and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from tests.trainlab.norm_inputs import affine, randn, shifted, with_grad
from trainlab.instancenorm import instancenorm_backward, instancenorm_forward

pytestmark = pytest.mark.norm

SHAPES = [(2, 3, 4, 5), (3, 4, 6), (2, 3, 2, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "1d", "3d"])
def test_matches_torch_and_autograd(device, gen, shape):
    c = shape[1]
    x = shifted(gen, *shape, device=device)
    gamma, beta = affine(gen, c, device=device)
    dout = randn(gen, *shape, device=device)

    out, cache = instancenorm_forward(x, gamma, beta, eps=1e-3)
    dx, dgamma, dbeta = instancenorm_backward(dout, cache)

    xt, gt, bt = with_grad(x, gamma, beta)
    ref = F.instance_norm(xt, weight=gt, bias=bt, eps=1e-3)
    ref.backward(dout)
    assert dgamma.shape == (c,) and dbeta.shape == (c,)
    assert_close(out, ref.detach(), what="instancenorm forward")
    assert_close(dx, xt.grad, what="dx")
    assert_close(dgamma, gt.grad, what="dgamma")
    assert_close(dbeta, bt.grad, what="dbeta")


def test_statistics_per_sample_and_channel(device, gen):
    x = shifted(gen, 2, 3, 4, 5, device=device)
    gamma, beta = affine(gen, 3, device=device)
    out, _ = instancenorm_forward(x, gamma, beta)
    x_hat = (out - beta[:, None, None]) / gamma[:, None, None]
    assert x_hat.mean(dim=(2, 3)).abs().max() < 1e-12
    alone, _ = instancenorm_forward(x[1:], gamma, beta)
    assert_close(alone[0], out[1], what="sample 1 alone")


def test_dx_sums_to_zero_over_positions(device, gen):
    x = shifted(gen, 2, 3, 4, 5, device=device)
    _, cache = instancenorm_forward(x, *affine(gen, 3, device=device))
    dx, _, _ = instancenorm_backward(randn(gen, 2, 3, 4, 5, device=device), cache)
    assert dx.sum(dim=(2, 3)).abs().max() <= 1e-12 * dx.abs().max()


def test_forward_does_not_modify_x(gen):
    x = shifted(gen, 2, 3, 4)
    saved = x.clone()
    instancenorm_forward(x, *affine(gen, 3))
    assert torch.equal(x, saved)


def test_wrong_inputs_are_refused(gen):
    x = shifted(gen, 2, 3, 4, 5)
    gamma, beta = affine(gen, 3)
    with pytest.raises(ValueError, match=r"more than 1 spatial position.*\(2, 3, 1\)"):
        instancenorm_forward(x[..., 0, :1], gamma, beta)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\); got \(1, 3\)"):
        instancenorm_forward(x, gamma[None], beta)
    with pytest.raises(ValueError, match=r"x must have at least 3 dimensions"):
        instancenorm_forward(x[:, :, 0, 0], gamma, beta)
    with pytest.raises(TypeError, match=r"beta has dtype torch.float32"):
        instancenorm_forward(x, gamma, beta.float())
    _, cache = instancenorm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 4, 5\)"):
        instancenorm_backward(randn(gen, 2, 3, 5, 4), cache)
