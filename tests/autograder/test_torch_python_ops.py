"""torch's own layer reached through its Python versions earns nothing.

torch keeps Python implementations of its operators (``torch._decomp``,
``torch._refs``) and helpers that fold batchnorm (``torch.nn.utils.fusion``).
Called directly they run below the dispatcher as plain arithmetic, so the
operator rule alone does not see them; ``own_code.Guard`` names a function
there that is named like a forbidden operator (and the fusion module) as the
library's own layer. Each cheat below scored full marks on its cell before.
"""

from __future__ import annotations

import pytest
import torch._decomp.decompositions as D
import torch._refs as R
import torch._refs.nn.functional as RF
from torch.nn.utils.fusion import fuse_linear_bn_weights

from autograder.checks import activations as act
from autograder.checks import batchnorm as bn
from autograder.checks import normalization as norm

pytestmark = pytest.mark.grader


def _own_bn_forward(x, gamma, beta, running_mean, running_var, *, training=True,
                    momentum=0.1, eps=1e-5):  # fmt: skip
    out, mean, rstd = D.native_batch_norm(
        x, gamma, beta, running_mean, running_var, training, momentum, eps
    )
    return out, {"x": x, "gamma": gamma, "mean": mean, "rstd": rstd, "eps": eps}


def _bn_backward(dout, cache):
    dx, dgamma, dbeta = D.native_batch_norm_backward(
        dout, cache["x"], cache["gamma"], None, None, cache["mean"], cache["rstd"],
        True, cache["eps"], [True, True, True],
    )  # fmt: skip
    return dx, dgamma, dbeta


def _fold(w, b, gamma, beta, running_mean, running_var, eps=1e-5):
    fw, fb = fuse_linear_bn_weights(w.T, b, running_mean, running_var, eps, gamma, beta)
    return fw.detach().T.contiguous(), fb.detach()


def _layernorm(x, gamma, beta, eps=1e-5):
    out, mean, rstd = R.native_layer_norm(x, [x.shape[-1]], gamma, beta, eps)
    return out, {"x": x}


def _sigmoid(x):
    out = R.sigmoid(x)
    return out, out


def _leaky_relu(x, negative_slope=0.01):
    return RF.leaky_relu(x, negative_slope), x


def _elu(x, alpha=1.0):
    return RF.elu(x, alpha), x


CHEATS = {
    "batchnorm forward, torch._decomp": (
        bn.grade_batchnorm_forward,
        (_own_bn_forward,),
    ),
    "batchnorm backward, torch._decomp": (
        bn.grade_batchnorm_backward,
        (_own_bn_forward, _bn_backward),
    ),
    "fold, torch.nn.utils.fusion": (bn.grade_fold_batchnorm, (_fold,)),
    "layernorm forward, torch._refs": (norm.grade_layernorm_forward, (_layernorm,)),
    "sigmoid forward, torch._refs": (act.grade_sigmoid_forward, (_sigmoid,)),
    "leaky relu forward, torch._refs": (act.grade_leaky_relu_forward, (_leaky_relu,)),
    "elu forward, torch._refs": (act.grade_elu_forward, (_elu,)),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_torch_python_version_of_the_layer_earns_nothing(name):
    grade, functions = CHEATS[name]
    report = grade(*functions)
    text = " ".join(r.message for r in report.results)
    assert report.score == 0, (
        name,
        [(r.name, r.points, r.message) for r in report.results],
    )
    assert "library's own" in text or "fusion" in text, text
