"""The batchnorm assignment's checks: full marks for right answers, the points
of the affected cells (and only those) lost for each common mistake, a message
that names it, and zero for a borrowed answer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trainlab.batchnorm as bn
import trainlab.fold as fold
import trainlab.spatial_batchnorm as sbn
from autograder.checks.batchnorm import grade_batchnorm_forward
from tests.autograder.students import build, grade_all, losing, messages, points
from trainlab._validate import check_compatible, check_shape, check_tensor

pytestmark = [pytest.mark.grader, pytest.mark.norm]

HELPERS = {
    "F": F,
    "check_tensor": check_tensor,
    "check_shape": check_shape,
    "check_compatible": check_compatible,
    "Cache": bn.Cache,
    "_check_batch_size": bn._check_batch_size,
    "_check_dout": bn._check_dout,
    "_check_params": bn._check_params,
}
FUNCTIONS = (
    bn.batchnorm_forward,
    bn.batchnorm_backward,
    bn.batchnorm_backward_alt,
    sbn._channels_last,
    sbn._channels_first,
    sbn.spatial_batchnorm_forward,
    sbn.spatial_batchnorm_backward,
    fold.fold_batchnorm,
)
FWD, BWD, ALT = (
    "test_batchnorm_forward",
    "test_batchnorm_backward",
    "test_batchnorm_backward_alt",
)
SFWD, SBWD = "test_spatial_batchnorm_forward", "test_spatial_batchnorm_backward"
FOLD = "test_fold_batchnorm"


def submission(edit=None, extra: str = "") -> dict:
    return build(FUNCTIONS, HELPERS, edit=edit, extra=extra)


def _table(reports) -> dict:
    return {g: str(r) for g, r in reports.items()}


def test_reference_copies_score_full_marks():
    reports = grade_all("batchnorm", submission())
    assert losing(reports) == set(), _table(reports)
    for grade_id, report in reports.items():
        assert report.max_score == points("batchnorm")[grade_id]


# (function, edits, cells that must lose points, a phrase in the first one's
# messages; a set when the order does not matter)
MISTAKES = {
    "unbiased variance in the forward": (
        bn.batchnorm_forward,
        [("var = (xc * xc).mean(dim=0)", "var = (xc * xc).sum(dim=0) / (n - 1)")],
        {FWD, SFWD},
        "normalized with the unbiased variance",
    ),
    "running_var biased": (
        bn.batchnorm_forward,
        [("alpha=momentum * n / (n - 1)", "alpha=momentum")],
        {FWD, SFWD},
        "running_var looks like the biased variance: PyTorch stores the unbiased one",
    ),
    "momentum the reverse way": (
        bn.batchnorm_forward,
        [
            (
                "running_mean.mul_(1 - momentum).add_(mu, alpha=momentum)",
                "running_mean.mul_(momentum).add_(mu, alpha=1 - momentum)",
            )
        ],
        {FWD, SFWD},
        "momentum is written the reverse way",
    ),
    "running stats rebound, not updated in place": (
        bn.batchnorm_forward,
        [
            (
                "running_mean.mul_(1 - momentum).add_(mu, alpha=momentum)",
                "running_mean = (1 - momentum) * running_mean + momentum * mu",
            )
        ],
        {FWD, SFWD},
        "update it in place",
    ),
    "eval mode uses batch statistics": (
        bn.batchnorm_forward,
        [
            (
                "    if training:\n        _check_batch_size",
                "    if True:\n        _check_batch_size",
            )
        ],
        {FWD, SFWD},
        "eval mode uses the batch statistics",
    ),
    "eps outside the square root": (
        bn.batchnorm_forward,
        [("std = torch.sqrt(var + eps)", "std = torch.sqrt(var) + eps")],
        {FWD, SFWD},
        "eps is added outside the square root",
    ),
    "dropped mean-path term": (
        bn.batchnorm_backward,
        [("dx = dxc + dmu / n", "dx = dxc")],
        {BWD},
        "dx is off by the mean-path term",
    ),
    "gamma missing from dx": (
        bn.batchnorm_backward,
        [("dx_hat = dout * gamma  # (N, D)", "dx_hat = dout  # (N, D)")],
        {BWD},
        "gamma is missing from dx",
    ),
    "dgamma of shape (1, D)": (
        bn.batchnorm_backward,
        [
            (
                "dgamma = (dout * x_hat).sum(dim=0)",
                "dgamma = (dout * x_hat).sum(dim=0, keepdim=True)",
            )
        ],
        {BWD},
        "dgamma has shape (1, 5), expected (5,)",
    ),
    "dgamma from x instead of x_hat": (
        bn.batchnorm_backward,
        [
            (
                "dgamma = (dout * x_hat).sum(dim=0)",
                "dgamma = (dout * cache['x']).sum(dim=0)",
            )
        ],
        {BWD},
        "dgamma",
    ),
    "closed form without the variance path": (
        bn.batchnorm_backward_alt,
        [
            (
                "dx.addcmul_(x_hat, scale * dgamma / n, value=-1.0)",
                "dx.addcmul_(x_hat, scale * dgamma / n, value=0.0)",
            )
        ],
        {ALT, SBWD},
        "dx misses the variance-path term",
    ),
    "closed form treating statistics as constants": (
        bn.batchnorm_backward_alt,
        [('    if not cache["training"]:', "    if True:")],
        {ALT, SBWD},
        "treats the batch mean and variance as constants",
    ),
    "spatial reshape without moving channels last": (
        sbn._channels_last,
        [("return t.permute(0, 2, 3, 1).reshape(-1, c)", "return t.reshape(-1, c)")],
        (SFWD, SBWD),
        "mixes channels and positions",
    ),
    "spatial backward reshape without moving channels last": (
        sbn.spatial_batchnorm_backward,
        [("_channels_last(dout)", "dout.reshape(-1, dout.shape[1])")],
        {SBWD},
        "dout.reshape(-1, C) mixes channels and positions",
    ),
    "fold scales rows": (
        fold.fold_batchnorm,
        [("w_folded = w * scale", "w_folded = w * scale.reshape(-1, 1)")],
        {FOLD},
        "each output unit is a column",
    ),
    "fold forgets beta": (
        fold.fold_batchnorm,
        [
            (
                "b_folded = (b - running_mean) * scale + beta",
                "b_folded = (b - running_mean) * scale",
            )
        ],
        {FOLD},
        "beta is missing",
    ),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistake_loses_the_affected_cells_only(name):
    fn, edits, affected, phrase = MISTAKES[name]
    reports = grade_all("batchnorm", submission(edit=(fn, edits)))
    assert losing(reports) == set(affected), _table(reports)
    first = affected[0] if isinstance(affected, tuple) else sorted(affected)[0]
    assert phrase in messages(reports[first]), str(reports[first])


def test_spatial_mistake_in_both_helpers_costs_both_and_names_the_forward():
    # a backward consistent with a wrong forward is not the true gradient: it
    # earns nothing, and its message says that the forward comes first
    edits = [("return t.permute(0, 2, 3, 1).reshape(-1, c)", "return t.reshape(-1, c)")]
    extra = "def _channels_first(t, shape):\n    return t.reshape(shape)\n"
    ns = submission(edit=(sbn._channels_last, edits), extra=extra)
    reports = grade_all("batchnorm", ns)
    assert losing(reports) == {SFWD, SBWD}, _table(reports)
    assert "x.reshape(-1, C) mixes channels" in messages(reports[SFWD])
    assert "fix the forward first" in messages(reports[SBWD])


CHEATS = {
    "forward with F.batch_norm": (
        "def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,"
        " training=True, momentum=0.1, eps=1e-5):\n"
        "    out = F.batch_norm(x, running_mean, running_var, gamma, beta,"
        " training, momentum, eps)\n"
        "    return out, {}\n",
        FWD,
        "torch.nn.functional",
    ),
    "forward with torch.nn.BatchNorm1d": (
        "def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,"
        " training=True, momentum=0.1, eps=1e-5):\n"
        "    layer = torch.nn.BatchNorm1d(x.shape[1], eps=eps, momentum=momentum)\n"
        "    return layer(x), {}\n",
        FWD,
        "earns 0 points",
    ),
    "backward imported from the reference": (
        "from trainlab.batchnorm import batchnorm_backward as _bb\n"
        "def batchnorm_backward(dout, cache):\n"
        "    return _bb(dout, cache)\n",
        BWD,
        "reference implementation trainlab.batchnorm.batchnorm_backward",
    ),
    "autograd in the backward": (
        "def batchnorm_backward(dout, cache):\n"
        "    x = cache['x'].detach().clone().requires_grad_(True)\n"
        "    g = cache['gamma'].detach().clone().requires_grad_(True)\n"
        "    b = torch.zeros_like(g, requires_grad=True)\n"
        "    with torch.enable_grad():\n"
        "        var = x.var(0, unbiased=False)\n"
        "        x_hat = (x - x.mean(0)) / torch.sqrt(var + 1e-5)\n"
        "        out = g * x_hat + b\n"
        "        return torch.autograd.grad(out, (x, g, b), dout)\n",
        BWD,
        "autograd",
    ),
    "forward-mode autograd (dual numbers) in the backward": (
        "import torch.autograd.forward_ad as fwAD\n"
        "def _bn(x, g, eps=1e-5):\n"
        "    return g * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)\n"
        "def batchnorm_backward(dout, cache):\n"
        "    x, g = cache['x'], cache['gamma']\n"
        "    dx = torch.zeros_like(x)\n"
        "    with fwAD.dual_level():\n"
        "        for i in range(x.shape[0]):\n"
        "            for j in range(x.shape[1]):\n"
        "                t = torch.zeros_like(x)\n"
        "                t[i, j] = 1\n"
        "                y = _bn(fwAD.make_dual(x, t), g)\n"
        "                dx[i, j] = (fwAD.unpack_dual(y).tangent * dout).sum()\n"
        "    x_hat = _bn(x, torch.ones_like(g))\n"
        "    return dx, (dout * x_hat).sum(0), dout.sum(0)\n",
        BWD,
        "autograd (forward mode",
    ),
    "fold via the reference module": (
        "import trainlab.fold\n"
        "def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5):\n"
        "    return trainlab.fold.fold_batchnorm(w, b, gamma, beta, running_mean,"
        " running_var, eps)\n",
        FOLD,
        "reference implementation trainlab.fold.fold_batchnorm",
    ),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_borrowed_answer_earns_zero_for_that_cell(name):
    source, grade_id, phrase = CHEATS[name]
    reports = grade_all("batchnorm", submission(extra=source))
    assert reports[grade_id].score == 0, str(reports[grade_id])
    assert phrase in messages(reports[grade_id]), str(reports[grade_id])


def test_borrowed_backward_leaves_the_other_cells_alone():
    source = CHEATS["backward imported from the reference"][0]
    reports = grade_all("batchnorm", submission(extra=source))
    assert losing(reports) == {BWD}, _table(reports)


ALTERNATIVES = {
    "closed form cell holding the graph backward": (
        "def batchnorm_backward_alt(dout, cache):\n"
        "    return batchnorm_backward(dout, cache)\n"
    ),
    "per-feature loops, own cache layout, closed-form backward": """
def batchnorm_forward(x, gamma, beta, running_mean, running_var, *, training=True,
                      momentum=0.1, eps=1e-5):
    n, d = x.shape
    out = torch.empty_like(x)
    means, variances = torch.empty_like(gamma), torch.empty_like(gamma)
    for j in range(d):
        col = x[:, j]
        if training:
            m = sum(col[i] for i in range(n)) / n
            v = sum((col[i] - m) ** 2 for i in range(n)) / n
            running_mean[j] = (1 - momentum) * running_mean[j] + momentum * m
            unbiased = v * n / (n - 1)
            running_var[j] = (1 - momentum) * running_var[j] + momentum * unbiased
        else:
            m, v = running_mean[j].clone(), running_var[j].clone()
        means[j], variances[j] = m, v
        out[:, j] = gamma[j] * (col - m) / torch.sqrt(v + eps) + beta[j]
    return out, {"x": x.clone(), "mu": means, "var": variances, "gamma": gamma,
                 "eps": eps, "train": training}


def batchnorm_backward_alt(dout, cache):
    x, mu, var, gamma = cache["x"], cache["mu"], cache["var"], cache["gamma"]
    n = x.shape[0]
    inv = 1 / torch.sqrt(var + cache["eps"])
    x_hat = (x - mu) * inv
    dbeta = dout.sum(0)
    dgamma = (dout * x_hat).sum(0)
    if not cache["train"]:
        return gamma * inv * dout, dgamma, dbeta
    dx = gamma * inv / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


batchnorm_backward = batchnorm_backward_alt
""",
}


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_different_correct_implementation_keeps_full_marks(name):
    reports = grade_all("batchnorm", submission(extra=ALTERNATIVES[name]))
    assert losing(reports) == set(), _table(reports)


def test_float32_and_messages_for_a_wrong_dtype():
    source = (
        "def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,"
        " training=True, momentum=0.1, eps=1e-5):\n"
        "    mu = x.mean(0)\n"
        "    var = x.var(0, unbiased=False)\n"
        "    if training:\n"
        "        n = x.shape[0]\n"
        "        running_mean.mul_(1 - momentum).add_(momentum * mu)\n"
        "        running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))\n"
        "    else:\n"
        "        mu, var = running_mean, running_var\n"
        "    out = gamma * (x - mu) / torch.sqrt(var + eps) + beta\n"
        "    return out.to(torch.float64), {}\n"
    )
    report = grade_batchnorm_forward(submission(extra=source)["batchnorm_forward"])
    failed = [r for r in report.results if not r.passed]
    assert [r.name for r in failed] == ["float32 inputs, on every available device"]
    assert "expected torch.float32" in failed[0].message


def test_student_exceptions_are_reported_not_raised():
    source = (
        "def batchnorm_forward(x, gamma, beta, running_mean, running_var, **kw):\n"
        "    return x.undefined_method(), {}\n"
    )
    report = grade_batchnorm_forward(submission(extra=source)["batchnorm_forward"])
    assert report.score == 0
    assert "AttributeError" in messages(report)
    assert torch.get_num_threads() >= 1
