"""Spatial batch normalization (N, C, H, W) against torch's batch_norm on 4-D input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close, max_rel_error
from tests.trainlab.norm_inputs import (
    F64,
    affine,
    randn,
    running_stats,
    shifted,
    with_grad,
)
from trainlab.spatial_batchnorm import (
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

pytestmark = pytest.mark.norm

SHAPE = (2, 3, 4, 5)  # N, C, H, W all different


def _setup(gen, device, shape=SHAPE):
    c = shape[1]
    x = shifted(gen, *shape, device=device)  # channel c offset by 3c
    gamma, beta = affine(gen, c, device=device)
    rm, rv = running_stats(gen, c, device=device)
    dout = randn(gen, *shape, device=device)
    return x, gamma, beta, rm, rv, dout


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_matches_torch_and_autograd(device, gen, training):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    rm_ref, rv_ref = rm.clone(), rv.clone()

    out, cache = spatial_batchnorm_forward(
        x, gamma, beta, rm, rv, training=training, momentum=0.3
    )
    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)

    xt, gt, bt = with_grad(x, gamma, beta)
    ref = F.batch_norm(xt, rm_ref, rv_ref, gt, bt, training=training, momentum=0.3)
    ref.backward(dout)
    assert out.shape == SHAPE and dx.shape == SHAPE and dgamma.shape == (3,)
    assert out.is_contiguous() and dx.is_contiguous()
    assert_close(out, ref.detach(), what="spatial batchnorm forward")
    assert_close(rm, rm_ref, what="running_mean")
    assert_close(rv, rv_ref, what="running_var")
    assert_close(dx, xt.grad, what="dx")
    assert_close(dgamma, gt.grad, what="dgamma")
    assert_close(dbeta, bt.grad, what="dbeta")


def test_running_var_is_unbiased_over_batch_and_positions(device, gen):
    x, gamma, beta, _, _, _ = _setup(gen, device)
    rm = torch.zeros(3, dtype=F64, device=device)
    rv = torch.ones(3, dtype=F64, device=device)
    spatial_batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.1)
    n = 2 * 4 * 5
    per_channel = x.transpose(0, 1).reshape(3, n)  # (C, N*H*W)
    mean = per_channel.mean(dim=1)
    unbiased = ((per_channel - mean[:, None]) ** 2).sum(dim=1) / (n - 1)
    assert_close(rm, 0.1 * mean, what="running_mean")
    assert_close(rv, 0.9 + 0.1 * unbiased, what="running_var")


def test_statistics_are_per_channel(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device)
    out, _ = spatial_batchnorm_forward(x, gamma, beta, rm, rv)
    x_hat = (out - beta[:, None, None]) / gamma[:, None, None]  # (N, C, H, W)
    assert x_hat.mean(dim=(0, 2, 3)).abs().max() < 1e-12
    var = x_hat.var(dim=(0, 2, 3), correction=0)
    assert_close(var, torch.ones(3, dtype=F64), tol=1e-5)


def test_dx_sums_to_zero_per_channel_in_training(device, gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    _, cache = spatial_batchnorm_forward(x, gamma, beta, rm, rv)
    dx, _, _ = spatial_batchnorm_backward(dout, cache)
    assert dx.sum(dim=(0, 2, 3)).abs().max() <= 1e-12 * dx.abs().max()


def test_eval_is_per_sample_and_leaves_running_stats(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device)
    rm0, rv0 = rm.clone(), rv.clone()
    out, _ = spatial_batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    alone, _ = spatial_batchnorm_forward(x[1:], gamma, beta, rm, rv, training=False)
    assert_close(alone[0], out[1], what="sample 1 alone")
    assert torch.equal(rm, rm0) and torch.equal(rv, rv0)


def test_one_sample_with_several_positions_is_fine_in_training(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device, shape=(1, 3, 2, 2))
    out, _ = spatial_batchnorm_forward(x, gamma, beta, rm, rv)
    ref = F.batch_norm(x, rm.clone(), rv.clone(), gamma, beta, training=True)
    assert max_rel_error(out, ref) < 1e-10


def test_single_value_per_channel_is_refused(gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, "cpu", shape=(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"more than 1 value.*\(1, 3, 1, 1\)"):
        spatial_batchnorm_forward(x, gamma, beta, rm, rv)


def test_wrong_shapes_and_types_are_refused(gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, "cpu")
    with pytest.raises(ValueError, match=r"x must have 4 dimensions"):
        spatial_batchnorm_forward(x[0], gamma, beta, rm, rv)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\); got \(1, 3\)"):
        spatial_batchnorm_forward(x, gamma[None], beta, rm, rv)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\); got \(5,\)"):
        # (C,) taken from the last dim: the channels-first layout was ignored
        spatial_batchnorm_forward(x, randn(gen, 5), beta, rm, rv)
    with pytest.raises(TypeError, match=r"running_var has dtype torch.float32"):
        spatial_batchnorm_forward(x, gamma, beta, rm, rv.float())
    _, cache = spatial_batchnorm_forward(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 4, 5\)"):
        spatial_batchnorm_backward(dout.transpose(2, 3), cache)
