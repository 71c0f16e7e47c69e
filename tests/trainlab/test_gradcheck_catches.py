"""The gradient checker against deliberately broken normalization layers.

Each broken layer below is a mistake students make. The checker must fail it
(relative error far above the 1e-2 "wrong" threshold) in both modes, and pass
every correct layer. Two mistakes live in the forward pass; the checker only
compares a backward with its own forward, so those are caught either by pairing
the broken forward with the correct backward or by comparing with torch.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import max_rel_error
from tests.trainlab.norm_inputs import affine, randn, running_stats, shifted
from trainlab.batchnorm import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
)
from trainlab.gradcheck import WRONG_THRESHOLD, check_elementwise, check_layer
from trainlab.groupnorm import groupnorm_backward, groupnorm_forward
from trainlab.instancenorm import instancenorm_backward, instancenorm_forward
from trainlab.layernorm import layernorm_backward, layernorm_forward
from trainlab.spatial_batchnorm import (
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

pytestmark = [pytest.mark.gradcheck, pytest.mark.norm]

MODES = ["elementwise", "directional"]


# ---- deliberately broken layers -------------------------------------------------


def bn_backward_no_mean_path(dout, cache):
    """Forgets that the batch mean depends on x: drops the -dbeta / N term."""
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    n = dout.shape[0]
    dgamma = (dout * x_hat).sum(dim=0)
    dx = gamma * inv_std * (dout - x_hat * dgamma / n)
    return dx, dgamma, dout.sum(dim=0)


def bn_backward_no_gamma(dout, cache):
    """Backpropagates dout instead of dout * gamma into x_hat."""
    x_hat, inv_std = cache["x_hat"], cache["inv_std"]
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(dim=0), (dout * x_hat).sum(dim=0)
    dx = inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def bn_backward_dgamma_keepdim(dout, cache):
    """Right values, but dgamma and dbeta of shape (1, D) instead of (D,)."""
    dx, dgamma, dbeta = batchnorm_backward_alt(dout, cache)
    return dx, dgamma[None], dbeta[None]


def bn_forward_unbiased(x, gamma, beta, running_mean, running_var, **kwargs):
    """Normalizes with the unbiased variance (divide by N - 1): wrong forward.

    The cache has the keys batchnorm_backward(_alt) read, so the correct
    backward can be paired with it.
    """
    n = x.shape[0]
    mu = x.mean(dim=0)
    var = ((x - mu) ** 2).sum(dim=0) / (n - 1)
    std = torch.sqrt(var + kwargs.get("eps", 1e-5))
    x_hat = (x - mu) / std
    cache = {
        "training": True,
        "x": x,
        "mu": mu,
        "std": std,
        "inv_std": 1.0 / std,
        "x_hat": x_hat,
        "gamma": gamma,
    }
    return gamma * x_hat + beta, cache


def spatial_forward_no_permute(x, gamma, beta, running_mean, running_var, **kwargs):
    """x.reshape(-1, C) without moving channels last: rows mix channels."""
    n, c, h, w = x.shape
    out, cache = batchnorm_forward(
        x.reshape(-1, c), gamma, beta, running_mean, running_var, **kwargs
    )
    return out.reshape(n, c, h, w), {**cache, "shape": x.shape}


def spatial_backward_no_permute(dout, cache):
    """The same reshape mistake in the backward pass."""
    n, c, h, w = cache["shape"]
    dx, dgamma, dbeta = batchnorm_backward_alt(dout.reshape(-1, c), cache)
    return dx.reshape(n, c, h, w), dgamma, dbeta


def _interleave(t, num_groups):
    """(N, C, ...) -> (N, G, M) with group g = channels g, g + G, g + 2G, ..."""
    n, c = t.shape[:2]
    return (
        t.reshape(n, c // num_groups, num_groups, -1)
        .transpose(1, 2)
        .reshape(n, num_groups, -1)
    )


def _deinterleave(t, shape, num_groups):
    n, c = shape[:2]
    return t.reshape(n, num_groups, c // num_groups, -1).transpose(1, 2).reshape(shape)


def _per_channel(t, ndim):
    return t.reshape(1, -1, *([1] * (ndim - 2)))


def groupnorm_forward_interleaved(x, gamma, beta, num_groups, eps=1e-5):
    """Groups of interleaved channels instead of contiguous ones: wrong forward."""
    xg = _interleave(x, num_groups)  # (N, G, M)
    mu = xg.mean(dim=-1, keepdim=True)
    inv_std = 1.0 / torch.sqrt(((xg - mu) ** 2).mean(dim=-1, keepdim=True) + eps)
    x_hat = _deinterleave((xg - mu) * inv_std, x.shape, num_groups)
    out = x_hat * _per_channel(gamma, x.dim()) + _per_channel(beta, x.dim())
    cache = {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}
    return out, {**cache, "num_groups": num_groups}


def groupnorm_backward_interleaved(dout, cache):
    """The closed form on interleaved groups, paired with a contiguous forward."""
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    num_groups = cache["num_groups"]
    dims = (0, *range(2, dout.dim()))
    dbeta, dgamma = dout.sum(dim=dims), (dout * x_hat).sum(dim=dims)
    g = _interleave(dout * _per_channel(gamma, dout.dim()), num_groups)
    xh = _interleave(x_hat, num_groups)
    dx = (g - g.mean(-1, keepdim=True) - xh * (g * xh).mean(-1, keepdim=True)) * (
        inv_std
    )
    return _deinterleave(dx, dout.shape, num_groups), dgamma, dbeta


# ---- inputs ---------------------------------------------------------------------


def _bn_case(gen, training=True):
    x = shifted(gen, 4, 5)  # N = 4: unbiased and biased variance differ by 4/3
    gamma, beta = affine(gen, 5)
    rm, rv = running_stats(gen, 5)
    extra = {"running_mean": rm, "running_var": rv, "training": training}
    return {"x": x, "gamma": gamma, "beta": beta}, extra


def _spatial_case(gen, training=True):
    x = shifted(gen, 2, 3, 4, 5)
    gamma, beta = affine(gen, 3)
    rm, rv = running_stats(gen, 3)
    extra = {"running_mean": rm, "running_var": rv, "training": training}
    return {"x": x, "gamma": gamma, "beta": beta}, extra


def _group_case(gen):
    x = shifted(gen, 2, 6, 3, 4)  # channel c offset by 3c
    gamma, beta = affine(gen, 6)
    return {"x": x, "gamma": gamma, "beta": beta}, {"num_groups": 3}


def _plain_case(gen, shape, num_features):
    gamma, beta = affine(gen, num_features)
    return {"x": shifted(gen, *shape), "gamma": gamma, "beta": beta}


def _check(forward, backward, inputs, extra, mode):
    gen = torch.Generator().manual_seed(1)
    return check_layer(
        forward, backward, inputs, mode=mode, extra_kwargs=extra, generator=gen
    )


def _assert_caught(report):
    assert not report.passed, f"the checker missed a broken gradient:\n{report}"
    assert report.rel_error > WRONG_THRESHOLD, str(report)
    assert "FAILED" in str(report)


# ---- the checker passes every correct layer ------------------------------------


def _bn(backward, training):
    return lambda gen: (batchnorm_forward, backward, *_bn_case(gen, training))


CORRECT = {
    "batchnorm graph train": _bn(batchnorm_backward, True),
    "batchnorm closed form train": _bn(batchnorm_backward_alt, True),
    "batchnorm graph eval": _bn(batchnorm_backward, False),
    "batchnorm closed form eval": _bn(batchnorm_backward_alt, False),
    "spatial train": lambda gen: (
        spatial_batchnorm_forward,
        spatial_batchnorm_backward,
        *_spatial_case(gen),
    ),
    "spatial eval": lambda gen: (
        spatial_batchnorm_forward,
        spatial_batchnorm_backward,
        *_spatial_case(gen, training=False),
    ),
    "layernorm": lambda gen: (
        layernorm_forward,
        layernorm_backward,
        _plain_case(gen, (4, 7), 7),
        {},
    ),
    "instancenorm": lambda gen: (
        instancenorm_forward,
        instancenorm_backward,
        _plain_case(gen, (2, 3, 4, 5), 3),
        {},
    ),
    "groupnorm": lambda gen: (groupnorm_forward, groupnorm_backward, *_group_case(gen)),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CORRECT.values(), ids=CORRECT.keys())
def test_correct_layers_pass(gen, case, mode):
    forward, backward, inputs, extra = case(gen)
    reports = _check(forward, backward, inputs, extra, mode)
    assert list(reports) == ["dx", "dgamma", "dbeta"]
    for rep in reports.values():
        assert rep.passed, str(rep)


# ---- and catches every broken one ----------------------------------------------


BROKEN_BACKWARD = {
    "batchnorm dx without the mean path": lambda gen: (
        batchnorm_forward,
        bn_backward_no_mean_path,
        *_bn_case(gen),
    ),
    "batchnorm dx without gamma": lambda gen: (
        batchnorm_forward,
        bn_backward_no_gamma,
        *_bn_case(gen),
    ),
    "batchnorm with unbiased variance in the forward": lambda gen: (
        bn_forward_unbiased,
        batchnorm_backward_alt,
        *_bn_case(gen),
    ),
    "spatial backward reshaped without permuting": lambda gen: (
        spatial_batchnorm_forward,
        spatial_backward_no_permute,
        *_spatial_case(gen),
    ),
    "spatial forward reshaped without permuting": lambda gen: (
        spatial_forward_no_permute,
        spatial_batchnorm_backward,
        *_spatial_case(gen),
    ),
    "groupnorm backward with interleaved groups": lambda gen: (
        groupnorm_forward,
        groupnorm_backward_interleaved,
        *_group_case(gen),
    ),
    "groupnorm forward with interleaved groups": lambda gen: (
        groupnorm_forward_interleaved,
        groupnorm_backward,
        *_group_case(gen),
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", BROKEN_BACKWARD.values(), ids=BROKEN_BACKWARD.keys())
def test_broken_dx_is_caught(gen, case, mode):
    forward, backward, inputs, extra = case(gen)
    reports = _check(forward, backward, inputs, extra, mode)
    _assert_caught(reports["dx"])


@pytest.mark.parametrize("mode", MODES)
def test_unbiased_backward_graph_is_caught(gen, mode):
    inputs, extra = _bn_case(gen)
    reports = _check(bn_forward_unbiased, batchnorm_backward, inputs, extra, mode)
    _assert_caught(reports["dx"])


@pytest.mark.parametrize("mode", MODES)
def test_dgamma_of_shape_1_by_d_is_a_shape_error(gen, mode):
    inputs, extra = _bn_case(gen)
    with pytest.raises(ValueError, match=r"dgamma of shape \(1, 5\); expected \(5,\)"):
        _check(batchnorm_forward, bn_backward_dgamma_keepdim, inputs, extra, mode)


def test_dgamma_of_shape_1_by_d_is_refused_by_the_entry_check(gen):
    inputs, extra = _bn_case(gen)
    x, gamma, beta = inputs.values()
    dout = randn(gen, 4, 5)
    _, cache = batchnorm_forward(x, gamma, beta, **extra)
    _, dgamma, _ = bn_backward_dgamma_keepdim(dout, cache)

    def f(g):
        return batchnorm_forward(x, g, beta, **{**extra, "training": False})[0]

    with pytest.raises(
        ValueError, match=r"dgamma must have shape \(5,\); got \(1, 5\)"
    ):
        check_elementwise(f, gamma, dout, dgamma, name="dgamma")


# ---- forward mistakes: torch is the answer key ---------------------------------


def test_broken_forwards_differ_from_torch(gen):
    inputs, extra = _bn_case(gen)
    x, gamma, beta = inputs.values()
    rm, rv = extra["running_mean"], extra["running_var"]
    out, _ = bn_forward_unbiased(x, gamma, beta, rm.clone(), rv.clone())
    ref = F.batch_norm(x, rm.clone(), rv.clone(), gamma, beta, training=True)
    assert max_rel_error(out, ref) > WRONG_THRESHOLD

    inputs, extra = _spatial_case(gen)
    x, gamma, beta = inputs.values()
    rm, rv = extra["running_mean"], extra["running_var"]
    out, _ = spatial_forward_no_permute(x, gamma, beta, rm.clone(), rv.clone())
    ref = F.batch_norm(x, rm.clone(), rv.clone(), gamma, beta, training=True)
    assert max_rel_error(out, ref) > WRONG_THRESHOLD

    inputs, extra = _group_case(gen)
    x, gamma, beta = inputs.values()
    out, _ = groupnorm_forward_interleaved(x, gamma, beta, 3)
    assert max_rel_error(out, F.group_norm(x, 3, gamma, beta)) > WRONG_THRESHOLD


CONSISTENT_BUT_WRONG = {
    "spatial without permuting": lambda gen: (
        spatial_forward_no_permute,
        spatial_backward_no_permute,
        *_spatial_case(gen),
    ),
    "groupnorm interleaved": lambda gen: (
        groupnorm_forward_interleaved,
        groupnorm_backward_interleaved,
        *_group_case(gen),
    ),
}


@pytest.mark.parametrize(
    "case", CONSISTENT_BUT_WRONG.values(), ids=CONSISTENT_BUT_WRONG.keys()
)
def test_a_consistent_wrong_pair_needs_the_torch_comparison(gen, case):
    """The limit of gradient checking: it tests backward against forward only.

    A forward and a backward that make the same mistake agree with each other,
    so the check passes; the comparison with torch above is what catches them.
    """
    forward, backward, inputs, extra = case(gen)
    for mode in MODES:
        reports = _check(forward, backward, inputs, extra, mode)
        assert reports["dx"].passed, str(reports["dx"])
