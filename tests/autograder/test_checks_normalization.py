"""The normalization assignment's checks: layer, instance and group norm."""

from __future__ import annotations

import math

import pytest
import torch.nn.functional as F

import trainlab.groupnorm as gn
import trainlab.instancenorm as inorm
import trainlab.layernorm as ln
from tests.autograder.students import build, grade_all, losing, messages, points
from trainlab._validate import check_compatible, check_shape, check_tensor

pytestmark = [pytest.mark.grader, pytest.mark.norm]

HELPERS = {
    "F": F,
    "math": math,
    "check_tensor": check_tensor,
    "check_shape": check_shape,
    "check_compatible": check_compatible,
    "Cache": ln.Cache,
    "_check_groups": gn._check_groups,
    "_per_channel": gn._per_channel,
}
FUNCTIONS = (
    ln.layernorm_forward,
    ln.layernorm_backward,
    inorm.instancenorm_forward,
    inorm.instancenorm_backward,
    gn.groupnorm_forward,
    gn.groupnorm_backward,
)
LNF, LNB = "test_layernorm_forward", "test_layernorm_backward"
INF, INB = "test_instancenorm_forward", "test_instancenorm_backward"
GNF, GNB = "test_groupnorm_forward", "test_groupnorm_backward"


def submission(edit=None, extra: str = "") -> dict:
    return build(FUNCTIONS, HELPERS, edit=edit, extra=extra)


def _table(reports) -> dict:
    return {g: str(r) for g, r in reports.items()}


def test_reference_copies_score_full_marks():
    reports = grade_all("normalization", submission())
    assert losing(reports) == set(), _table(reports)
    for grade_id, report in reports.items():
        assert report.max_score == points("normalization")[grade_id]


# (function, edits, cells that lose points (message checked in the first), phrase)
MISTAKES = {
    "layer norm over the batch axis": (
        ln.layernorm_forward,
        [("dims = tuple(range(-k, 0))", "dims = (0,)")],
        (LNF,),
        "taken over the batch (dim 0)",
    ),
    "layer norm over the last dim only": (
        ln.layernorm_forward,
        [("dims = tuple(range(-k, 0))", "dims = (-1,)")],
        (LNF,),
        "over the last dim only",
    ),
    "layer norm backward without the mean path": (
        ln.layernorm_backward,
        [
            (
                "dx = g.sub_(g_mean).addcmul_(x_hat, gx_mean, value=-1.0)",
                "dx = g.addcmul_(x_hat, gx_mean, value=-1.0)",
            )
        ],
        (LNB,),
        "dx is off by the mean-path term",
    ),
    "layer norm dgamma as a mean": (
        ln.layernorm_backward,
        [
            (
                "dgamma = (dout * x_hat).reshape(-1, *gamma.shape).sum(dim=0)",
                "dgamma = (dout * x_hat).reshape(-1, *gamma.shape).mean(dim=0)",
            )
        ],
        (LNB,),
        "dgamma is a sum, not a mean",
    ),
    "instance norm statistics include the batch": (
        inorm.instancenorm_forward,
        [("dims = tuple(range(2, x.dim()))", "dims = (0, *range(2, x.dim()))")],
        (INF,),
        "the statistics include the batch",
    ),
    "instance norm backward without gamma": (
        inorm.instancenorm_backward,
        [("g = dout * _per_channel(gamma, dout.dim())", "g = dout.clone()")],
        (INB,),
        "gamma is missing from dx",
    ),
    "group norm with interleaved groups": (
        gn.groupnorm_forward,
        [
            (
                "xg = x.reshape(n, num_groups, -1)",
                "xg = x.reshape(n, c // num_groups, num_groups, -1).transpose(1, 2)"
                ".reshape(n, num_groups, -1)",
            ),
            (
                "x_hat = xc.mul_(inv_std).reshape(x.shape)",
                "x_hat = xc.mul_(inv_std).reshape(n, num_groups, c // num_groups, -1)"
                ".transpose(1, 2).reshape(x.shape)",
            ),
        ],
        (GNF,),
        "the groups look interleaved",
    ),
    "group norm dgamma with keepdim": (
        gn.groupnorm_backward,
        [
            (
                "dgamma = (dout * x_hat).sum(dim=sum_dims)",
                "dgamma = (dout * x_hat).sum(dim=sum_dims, keepdim=True)",
            )
        ],
        (GNB,),
        "without keepdim=True",
    ),
    "group norm backward without the variance path": (
        gn.groupnorm_backward,
        [
            (
                "dx = g.sub_(g_mean).addcmul_(xg_hat, gx_mean, value=-1.0)",
                "dx = g.sub_(g_mean)",
            )
        ],
        (GNB,),
        "dx misses the variance-path term",
    ),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistake_loses_the_affected_cells_only(name):
    fn, edits, affected, phrase = MISTAKES[name]
    reports = grade_all("normalization", submission(edit=(fn, edits)))
    assert losing(reports) == set(affected), _table(reports)
    assert phrase in messages(reports[affected[0]]), str(reports[affected[0]])


CHEATS = {
    "layer norm with F.layer_norm": (
        "def layernorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    out = F.layer_norm(x, tuple(gamma.shape), gamma, beta, eps)\n"
        "    return out, {}\n",
        LNF,
        "torch.nn.functional",
    ),
    "instance norm from the reference": (
        "from trainlab.instancenorm import instancenorm_forward as _inf\n"
        "def instancenorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    return _inf(x, gamma, beta, eps)\n",
        INF,
        "reference implementation trainlab.instancenorm.instancenorm_forward",
    ),
    "group norm backward by autograd": (
        "def groupnorm_backward(dout, cache):\n"
        "    x_hat = cache['x_hat'].detach().clone().requires_grad_(True)\n"
        "    gamma = cache['gamma'].detach().clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        y = x_hat * _per_channel(gamma, x_hat.dim())\n"
        "        y.backward(dout)\n"
        "    return x_hat.grad, gamma.grad, dout.sum(dim=(0, 2, 3))\n",
        GNB,
        "autograd",
    ),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_borrowed_answer_earns_zero_for_that_cell(name):
    source, grade_id, phrase = CHEATS[name]
    reports = grade_all("normalization", submission(extra=source))
    assert reports[grade_id].score == 0, str(reports[grade_id])
    assert phrase in messages(reports[grade_id]), str(reports[grade_id])
    # a borrowed forward costs its backward too: the backward is graded on the
    # forward's cache, which could carry the answer
    backward = grade_id.replace("forward", "backward")
    assert grade_id in losing(reports) <= {grade_id, backward}, _table(reports)


ALTERNATIVES = {
    "group norm with a loop over groups": """
def groupnorm_forward(x, gamma, beta, num_groups, eps=1e-5):
    n, c = x.shape[:2]
    size = c // num_groups
    out = torch.empty_like(x)
    for g in range(num_groups):
        part = x[:, g * size:(g + 1) * size]
        dims = tuple(range(1, x.dim()))
        mu = part.mean(dim=dims, keepdim=True)
        var = ((part - mu) ** 2).mean(dim=dims, keepdim=True)
        out[:, g * size:(g + 1) * size] = (part - mu) / torch.sqrt(var + eps)
    x_hat = out.clone()
    shape = (1, c) + (1,) * (x.dim() - 2)
    out = x_hat * gamma.reshape(shape) + beta.reshape(shape)
    inv_std = 1 / torch.sqrt(x.reshape(n, num_groups, -1).var(-1, unbiased=False,
                                                               keepdim=True) + eps)
    return out, {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma,
                 "num_groups": num_groups}
""",
    "layer norm backward through the graph": """
def layernorm_forward(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - gamma.dim(), x.dim()))
    mu = x.mean(dim=dims, keepdim=True)
    xc = x - mu
    var = (xc ** 2).mean(dim=dims, keepdim=True)
    std = torch.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (xc, std, x_hat, gamma, dims)


def layernorm_backward(dout, cache):
    xc, std, x_hat, gamma, dims = cache
    m = 1
    for d in dims:
        m *= xc.shape[d]
    lead = tuple(range(xc.dim() - gamma.dim()))
    dbeta = dout.sum(dim=lead) if lead else dout.clone()
    dgamma = (dout * x_hat).sum(dim=lead) if lead else dout * x_hat
    dx_hat = dout * gamma
    dxc = dx_hat / std
    dstd = -(dx_hat * xc).sum(dim=dims, keepdim=True) / std ** 2
    dvar = dstd / (2 * std)
    dxc = dxc + 2 * xc * dvar / m
    dmu = -dxc.sum(dim=dims, keepdim=True)
    return dxc + dmu / m, dgamma, dbeta
""",
}


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_different_correct_implementation_keeps_full_marks(name):
    reports = grade_all("normalization", submission(extra=ALTERNATIVES[name]))
    assert losing(reports) == set(), _table(reports)
