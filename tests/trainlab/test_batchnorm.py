"""Batch normalization (N, D) against torch.nn.functional.batch_norm and autograd."""

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
from trainlab.batchnorm import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
)

pytestmark = pytest.mark.norm

BACKWARDS = [batchnorm_backward, batchnorm_backward_alt]


def _setup(gen, device, n=4, d=5):
    x = shifted(gen, n, d, device=device)
    gamma, beta = affine(gen, d, device=device)
    rm, rv = running_stats(gen, d, device=device)
    dout = randn(gen, n, d, device=device)
    return x, gamma, beta, rm, rv, dout


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("backward", BACKWARDS, ids=["graph", "closed_form"])
def test_matches_torch_and_autograd(device, gen, backward, training):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    rm_ref, rv_ref = rm.clone(), rv.clone()

    out, cache = batchnorm_forward(
        x, gamma, beta, rm, rv, training=training, momentum=0.3, eps=1e-3
    )
    dx, dgamma, dbeta = backward(dout, cache)

    xt, gt, bt = with_grad(x, gamma, beta)
    ref = F.batch_norm(
        xt, rm_ref, rv_ref, gt, bt, training=training, momentum=0.3, eps=1e-3
    )
    ref.backward(dout)
    assert dx.shape == x.shape and dgamma.shape == (5,) and dbeta.shape == (5,)
    assert_close(out, ref.detach(), what="batchnorm forward")
    assert_close(rm, rm_ref, what="running_mean")
    assert_close(rv, rv_ref, what="running_var")
    assert_close(dx, xt.grad, what="dx")
    assert_close(dgamma, gt.grad, what="dgamma")
    assert_close(dbeta, bt.grad, what="dbeta")


def test_running_stats_follow_torch_over_several_steps(device, gen):
    d = 3
    gamma, beta = affine(gen, d, device=device)
    rm = torch.zeros(d, dtype=F64, device=device)
    rv = torch.ones(d, dtype=F64, device=device)
    rm_ref, rv_ref = rm.clone(), rv.clone()
    for step in range(5):
        x = shifted(gen, 4 + step, d, device=device)  # batch size changes too
        batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.2)
        F.batch_norm(x, rm_ref, rv_ref, gamma, beta, training=True, momentum=0.2)
        assert_close(rm, rm_ref, what=f"running_mean after step {step}")
        assert_close(rv, rv_ref, what=f"running_var after step {step}")
    x = shifted(gen, 6, d, device=device)
    out, _ = batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    ref = F.batch_norm(x, rm_ref, rv_ref, gamma, beta, training=False)
    assert_close(out, ref, what="eval output with the accumulated statistics")


def test_running_var_uses_unbiased_variance(device):
    # column 0: mean 1.5, squared deviations sum to 5; column 1: mean 25, sum 500
    x = torch.tensor(
        [[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0]], dtype=F64, device=device
    )
    gamma = torch.tensor([0.7, 1.3], dtype=F64, device=device)
    beta = torch.tensor([0.2, -0.4], dtype=F64, device=device)
    rm = torch.zeros(2, dtype=F64, device=device)
    rv = torch.ones(2, dtype=F64, device=device)
    batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.1)
    expected_mean = torch.tensor([0.1 * 1.5, 0.1 * 25.0], dtype=F64)
    unbiased = torch.tensor([5.0 / 3.0, 500.0 / 3.0], dtype=F64)  # divide by N-1
    assert_close(rm, expected_mean, what="running_mean")
    assert_close(rv, 0.9 + 0.1 * unbiased, what="running_var")
    biased = torch.tensor([5.0 / 4.0, 500.0 / 4.0], dtype=F64)
    assert max_rel_error(rv, 0.9 + 0.1 * biased) > 1e-2


def test_normalizes_with_biased_variance(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device)
    out, _ = batchnorm_forward(x, gamma, beta, rm, rv)
    x_hat = (out - beta) / gamma
    assert x_hat.mean(dim=0).abs().max() < 1e-12
    # biased variance of x_hat is var / (var + eps), just under 1
    var = x.var(dim=0, correction=0)
    assert_close(x_hat.var(dim=0, correction=0), var / (var + 1e-5))


def test_eval_leaves_running_stats_unchanged(device, gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    rm0, rv0 = rm.clone(), rv.clone()
    out, cache = batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    batchnorm_backward(dout, cache)
    batchnorm_backward_alt(dout, cache)
    assert torch.equal(rm, rm0) and torch.equal(rv, rv0)


def test_training_updates_running_stats_in_place(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device)
    rm_id, rv_id, rm0 = rm.data_ptr(), rv.data_ptr(), rm.clone()
    batchnorm_forward(x, gamma, beta, rm, rv)
    assert rm.data_ptr() == rm_id and rv.data_ptr() == rv_id
    assert not torch.equal(rm, rm0)


def test_forward_does_not_modify_inputs(device, gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    saved = [t.clone() for t in (x, gamma, beta, dout)]
    out, cache = batchnorm_forward(x, gamma, beta, rm, rv)
    batchnorm_backward(dout, cache)
    batchnorm_backward_alt(dout, cache)
    for before, after in zip(saved, (x, gamma, beta, dout), strict=True):
        assert torch.equal(before, after)


def test_eval_output_of_a_sample_ignores_the_rest_of_the_batch(device, gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, device, n=6)
    out, _ = batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    other = torch.cat([x[:1], shifted(gen, 3, 5, device=device)])  # new companions
    out_other, _ = batchnorm_forward(other, gamma, beta, rm, rv, training=False)
    alone, _ = batchnorm_forward(x[:1], gamma, beta, rm, rv, training=False)
    assert_close(out_other[0], out[0], what="sample 0 among other samples")
    assert_close(alone[0], out[0], what="sample 0 alone")
    # the check can fail: in training mode the companions do matter
    train, _ = batchnorm_forward(x, gamma, beta, rm.clone(), rv.clone())
    train_other, _ = batchnorm_forward(other, gamma, beta, rm.clone(), rv.clone())
    assert max_rel_error(train[0], train_other[0]) > 1e-3


@pytest.mark.parametrize("backward", BACKWARDS, ids=["graph", "closed_form"])
def test_dx_sums_to_zero_over_the_batch_in_training(device, gen, backward):
    x, gamma, beta, rm, rv, dout = _setup(gen, device, n=7, d=3)
    _, cache = batchnorm_forward(x, gamma, beta, rm, rv)
    dx, _, _ = backward(dout, cache)
    # shifting every sample of a feature by c leaves the output unchanged
    assert dx.sum(dim=0).abs().max() <= 1e-12 * dx.abs().max()
    _, cache = batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    dx_eval, _, _ = backward(dout, cache)
    assert dx_eval.sum(dim=0).abs().max() > 1e-3 * dx_eval.abs().max()


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_graph_and_closed_form_agree(device, gen, training):
    x, gamma, beta, rm, rv, dout = _setup(gen, device, n=16, d=9)
    _, cache = batchnorm_forward(x, gamma, beta, rm, rv, training=training)
    for a, b in zip(
        batchnorm_backward(dout, cache),
        batchnorm_backward_alt(dout, cache),
        strict=True,
    ):
        assert_close(a, b, what="graph vs closed form")


def test_eval_cache_survives_later_running_stat_updates(device, gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, device)
    _, cache = batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    expected = dout * gamma / torch.sqrt(rv + 1e-5)
    batchnorm_forward(shifted(gen, 4, 5, device=device), gamma, beta, rm, rv)
    for backward in BACKWARDS:
        dx, _, _ = backward(dout, cache)
        assert_close(dx, expected, what=f"{backward.__name__} eval dx")


def test_float32_and_dtype_preserved(device, gen):
    x, gamma, beta, rm, rv, dout = (t.float() for t in _setup(gen, device))
    out, cache = batchnorm_forward(x, gamma, beta, rm, rv)
    grads = batchnorm_backward_alt(dout, cache)
    assert out.dtype == torch.float32 and rm.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads)


def test_batch_of_one_in_training_is_refused(gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, "cpu", n=1)
    with pytest.raises(ValueError, match=r"more than 1 value per feature.*\(1, 5\)"):
        batchnorm_forward(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError):  # torch refuses it too
        F.batch_norm(x, rm, rv, gamma, beta, training=True)
    out, _ = batchnorm_forward(x, gamma, beta, rm, rv, training=False)  # eval: fine
    assert out.shape == (1, 5)


def test_wrong_shapes_are_refused(gen):
    x, gamma, beta, rm, rv, dout = _setup(gen, "cpu")
    with pytest.raises(ValueError, match=r"gamma must have shape \(5,\); got \(1, 5\)"):
        batchnorm_forward(x, gamma.reshape(1, 5), beta, rm, rv)
    with pytest.raises(ValueError, match=r"beta must have shape \(5,\); got \(4,\)"):
        batchnorm_forward(x, gamma, beta[:4], rm, rv)
    with pytest.raises(ValueError, match=r"running_var must have shape"):
        batchnorm_forward(x, gamma, beta, rm, rv[:3])
    with pytest.raises(ValueError, match=r"x must have 2 dimensions"):
        batchnorm_forward(x.reshape(4, 5, 1), gamma, beta, rm, rv)
    _, cache = batchnorm_forward(x, gamma, beta, rm, rv)
    for backward in BACKWARDS:
        with pytest.raises(ValueError, match=r"dout must have shape \(4, 5\)"):
            backward(dout.t(), cache)


def test_mismatched_dtype_or_device_is_refused(gen):
    x, gamma, beta, rm, rv, _ = _setup(gen, "cpu")
    with pytest.raises(TypeError, match=r"gamma has dtype torch.float32"):
        batchnorm_forward(x, gamma.float(), beta, rm, rv)
    with pytest.raises(TypeError, match=r"running_mean has dtype torch.float32"):
        batchnorm_forward(x, gamma, beta, rm.float(), rv)
    meta = torch.empty(5, dtype=F64, device="meta")
    with pytest.raises(ValueError, match=r"beta is on meta but x is on cpu"):
        batchnorm_forward(x, gamma, meta, rm, rv)
    with pytest.raises(TypeError, match=r"floating-point"):
        batchnorm_forward(x.long(), gamma, beta, rm, rv)
