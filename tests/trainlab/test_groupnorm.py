"""Group normalization against torch.nn.functional.group_norm and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close, max_rel_error
from tests.trainlab.norm_inputs import affine, randn, shifted, with_grad
from trainlab.groupnorm import groupnorm_backward, groupnorm_forward

pytestmark = pytest.mark.norm

SHAPE = (2, 6, 4, 5)  # channel c offset by 3c: pooling the wrong channels shows


@pytest.mark.parametrize("num_groups", [1, 2, 3, 6])
def test_matches_torch_and_autograd(device, gen, num_groups):
    x = shifted(gen, *SHAPE, device=device)
    gamma, beta = affine(gen, 6, device=device)
    dout = randn(gen, *SHAPE, device=device)

    out, cache = groupnorm_forward(x, gamma, beta, num_groups, eps=1e-3)
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)

    xt, gt, bt = with_grad(x, gamma, beta)
    ref = F.group_norm(xt, num_groups, gt, bt, eps=1e-3)
    ref.backward(dout)
    assert dx.shape == SHAPE and dgamma.shape == (6,) and dbeta.shape == (6,)
    assert_close(out, ref.detach(), what="groupnorm forward")
    assert_close(dx, xt.grad, what="dx")
    assert_close(dgamma, gt.grad, what="dgamma")
    assert_close(dbeta, bt.grad, what="dbeta")


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 6), (2, 4, 2, 3, 2)])
def test_other_ranks_match_torch(device, gen, shape):
    x = shifted(gen, *shape, device=device)
    gamma, beta = affine(gen, 4, device=device)
    dout = randn(gen, *shape, device=device)
    out, cache = groupnorm_forward(x, gamma, beta, 2)
    dx, _, _ = groupnorm_backward(dout, cache)
    (xt,) = with_grad(x)
    ref = F.group_norm(xt, 2, gamma, beta)
    ref.backward(dout)
    assert_close(out, ref.detach(), what="forward")
    assert_close(dx, xt.grad, what="dx")


def test_groups_are_contiguous_channels(device, gen):
    x = shifted(gen, *SHAPE, device=device)
    gamma, beta = affine(gen, 6, device=device)
    out, _ = groupnorm_forward(x, gamma, beta, 3)
    x_hat = (out - beta[:, None, None]) / gamma[:, None, None]
    grouped = x_hat.reshape(2, 3, 2, 4, 5)  # channels (0, 1), (2, 3), (4, 5)
    assert grouped.mean(dim=(2, 3, 4)).abs().max() < 1e-12
    interleaved = x_hat.reshape(2, 2, 3, 4, 5)  # channels (0, 3), (1, 4), (2, 5)
    assert interleaved.mean(dim=(1, 3, 4)).abs().max() > 1e-3


def test_extreme_group_counts_are_instance_and_layer_norm(device, gen):
    x = shifted(gen, *SHAPE, device=device)
    gamma, beta = affine(gen, 6, device=device)
    out_c, _ = groupnorm_forward(x, gamma, beta, 6)
    assert_close(out_c, F.instance_norm(x, weight=gamma, bias=beta), what="G = C")
    out_1, _ = groupnorm_forward(x, gamma, beta, 1)
    g_full = gamma[:, None, None].expand(6, 4, 5)  # (C, H, W)
    b_full = beta[:, None, None].expand(6, 4, 5)
    ref = F.layer_norm(x, (6, 4, 5), g_full, b_full)
    assert_close(out_1, ref, what="G = 1")


def test_each_sample_is_normalized_on_its_own(device, gen):
    x = shifted(gen, *SHAPE, device=device)
    gamma, beta = affine(gen, 6, device=device)
    out, _ = groupnorm_forward(x, gamma, beta, 2)
    alone, _ = groupnorm_forward(x[1:], gamma, beta, 2)
    assert_close(alone[0], out[1], what="sample 1 alone")


def test_dx_sums_to_zero_over_each_group(device, gen):
    x = shifted(gen, *SHAPE, device=device)
    _, cache = groupnorm_forward(x, *affine(gen, 6, device=device), 3)
    dx, _, _ = groupnorm_backward(randn(gen, *SHAPE, device=device), cache)
    sums = dx.reshape(2, 3, -1).sum(dim=-1)  # (N, G)
    assert sums.abs().max() <= 1e-12 * dx.abs().max()
    per_channel = dx.sum(dim=(2, 3))  # (N, C): not zero channel by channel
    assert per_channel.abs().max() > 1e-3 * dx.abs().max()


def test_forward_does_not_modify_x(gen):
    x = shifted(gen, *SHAPE)
    saved = x.clone()
    groupnorm_forward(x, *affine(gen, 6), 3)
    assert torch.equal(x, saved)


def test_non_contiguous_input(gen):
    x = shifted(gen, 2, 6, 5, 4).transpose(2, 3)  # (2, 6, 4, 5), a strided view
    gamma, beta = affine(gen, 6)
    out, _ = groupnorm_forward(x, gamma, beta, 3)
    assert max_rel_error(out, F.group_norm(x, 3, gamma, beta)) < 1e-10


def test_wrong_inputs_are_refused(gen):
    x = shifted(gen, *SHAPE)
    gamma, beta = affine(gen, 6)
    with pytest.raises(ValueError, match=r"divisor of the number of channels C=6; "):
        groupnorm_forward(x, gamma, beta, 4)
    with pytest.raises(ValueError, match=r"got num_groups=0"):
        groupnorm_forward(x, gamma, beta, 0)
    with pytest.raises(TypeError, match=r"num_groups must be an int; got float"):
        groupnorm_forward(x, gamma, beta, 2.0)
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\); got \(1, 6\)"):
        groupnorm_forward(x, gamma[None], beta, 3)
    with pytest.raises(TypeError, match=r"gamma has dtype torch.float32"):
        groupnorm_forward(x, gamma.float(), beta, 3)
    _, cache = groupnorm_forward(x, gamma, beta, 3)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 6, 4, 5\)"):
        groupnorm_backward(randn(gen, 2, 6, 5, 4), cache)
