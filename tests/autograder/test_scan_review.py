"""A review list worth reading: the static scan flags what the rules forbid, only.

Calls the reference itself makes (``torch.tanh`` in ``tanh_forward``) and calls
the checks allow (``trainlab.training.train`` in a training function) are not
findings, so on the solutions and on correct alternative implementations the
scan is silent; on each cheat it speaks.
"""

from __future__ import annotations

import textwrap

import nbformat
import pytest

from autograder.authoring import assignment as asg
from autograder.outputs.scan import scan_notebook
from tests.autograder.students import ROOT

pytestmark = pytest.mark.grader


def _filled(name: str, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The release notebook with the solution's answers, some replaced."""
    release = nbformat.read(str(ROOT / "notebooks" / name / f"{name}.ipynb"), 4)
    source = nbformat.read(str(asg.source_path(name)), 4)
    solution = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    for cell in release.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in solution:
            cell.source = textwrap.dedent(
                answers.get(meta["grade_id"], solution[meta["grade_id"]])
            )
    return release


def _findings(name: str, answers: dict[str, str]) -> list[str]:
    nb = _filled(name, answers)
    return [str(f) for f in scan_notebook(nb, asg.source_path(name))]


@pytest.mark.parametrize("name", asg.available())
def test_the_solutions_need_no_review(name):
    assert _findings(name, {}) == []


#: (assignment, answer cell, a correct implementation written differently)
CORRECT = [
    (
        "activations",
        "tanh_forward",
        """
        def tanh_forward(x):
            out = torch.tanh(x)
            return out, (out,)
     """,
    ),
    (
        "activations",
        "tanh_forward",
        """
        def tanh_forward(x):
            e = torch.exp(-2 * x.abs())
            out = torch.sign(x) * (1 - e) / (1 + e)
            return out, (out,)
     """,
    ),
    (
        "activations",
        "relu_forward",
        """
        def relu_forward(x):
            return x.clamp(min=0), (x,)
     """,
    ),
    (
        "activations",
        "relu_forward",
        """
        def relu_forward(x):
            return torch.maximum(x, torch.zeros_like(x)), (x,)
     """,
    ),
    (
        "activations",
        "relu_forward",
        """
        def relu_forward(x):
            return torch.where(x > 0, x, torch.zeros_like(x)), (x,)
     """,
    ),
    (
        "activations",
        "sigmoid_forward",
        """
        def sigmoid_forward(x):
            z = torch.exp(-x.abs())
            out = torch.where(x >= 0, 1 / (1 + z), z / (1 + z))
            return out, (out,)
     """,
    ),
    (
        "activations",
        "leaky_relu_forward",
        """
        def leaky_relu_forward(x, negative_slope=0.01):
            return torch.where(x > 0, x, negative_slope * x), (x, negative_slope)
     """,
    ),
    (
        "activations",
        "elu_forward",
        """
        def elu_forward(x, alpha=1.0):
            return torch.where(x > 0, x, alpha * torch.expm1(x)), (x, alpha)
     """,
    ),
    (
        "batchnorm",
        "batchnorm_forward",
        """
        def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,
                              training=True, momentum=0.1, eps=1e-5):
            if training:
                mu = x.mean(dim=0)
                var = ((x - mu) ** 2).mean(dim=0)
                n = x.shape[0]
                running_mean.mul_(1 - momentum).add_(momentum * mu)
                running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
            else:
                mu, var = running_mean, running_var
            inv = 1.0 / torch.sqrt(var + eps)
            x_hat = (x - mu) * inv
            return gamma * x_hat + beta, {"x": x, "gamma": gamma, "x_hat": x_hat,
                                          "inv_std": inv, "training": training}
     """,
    ),
    (
        "gradcheck",
        "rel_error",
        """
        def rel_error(a, b, eps=1e-12):
            a = torch.as_tensor(a, dtype=torch.float64).cpu()
            b = torch.as_tensor(b, dtype=torch.float64).cpu()
            if a.numel() == 0:
                return 0.0
            den = max(eps, float((a.abs() + b.abs()).max()))
            return float((a - b).abs().max() / den)
     """,
    ),
    (
        "preprocessing_init",
        "compute_fans",
        """
        def compute_fans(shape):
            dims = tuple(shape)
            if len(dims) < 2:
                raise ValueError("need at least 2 dimensions")
            if len(dims) == 2:
                return dims[0], dims[1]
            k = 1
            for s in dims[2:]:
                k *= s
            return dims[1] * k, dims[0] * k
     """,
    ),
    (
        "preprocessing_init",
        "feature_mean_std",
        """
        def feature_mean_std(X):
            mean = X.mean(dim=0)
            std = ((X - mean) ** 2).mean(dim=0).sqrt()
            return mean, std
     """,
    ),
    (
        "training",
        "update_to_weight_ratio",
        """
        def update_to_weight_ratio(w, update):
            return float(update.norm() / w.norm())
     """,
    ),
    (
        "training",
        "overfit_small_subset",
        """
        def overfit_small_subset(model_factory, data, num_samples=20, *, lr=1e-2,
                                 epochs=200, update="adam", generator=None):
            small = Split(data.X_train[:num_samples], data.y_train[:num_samples],
                          data.X_val, data.y_val, data.X_test, data.y_test)
            model = model_factory()
            return train(model, small, lr=lr, epochs=epochs,
                         batch_size=num_samples, update=update, generator=generator)
     """,
    ),
    (
        "activations",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            (out,) = cache
            return dout * out - dout * out * out
     """,
    ),
    (
        "activations",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            (x,) = cache
            return torch.where(x > 0, dout, torch.zeros_like(dout))
     """,
    ),
    (
        "activations",
        "tanh_backward",
        """
        def tanh_backward(dout, cache):
            (out,) = cache
            return dout * (1 - out.pow(2))
     """,
    ),
    (
        "normalization",
        "layernorm_forward",
        """
        def layernorm_forward(x, gamma, beta, eps=1e-5):
            dims = tuple(range(x.dim() - gamma.dim(), x.dim()))
            mu = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            inv_std = torch.rsqrt(var + eps)
            x_hat = (x - mu) * inv_std
            return gamma * x_hat + beta, (x_hat, gamma, inv_std, dims)
     """,
    ),
    (
        "preprocessing_init",
        "calculate_gain",
        """
        def calculate_gain(nonlinearity, param=None):
            if nonlinearity == "relu":
                return math.sqrt(2.0)
            if nonlinearity == "tanh":
                return 5.0 / 3
            if nonlinearity == "selu":
                return 3.0 / 4
            if nonlinearity == "leaky_relu":
                a = 0.01 if param is None else param
                return math.sqrt(2.0 / (1 + a * a))
            if nonlinearity in _NONLINEARITIES:
                return 1.0
            raise ValueError(f"unknown nonlinearity {nonlinearity}")
     """,
    ),
    (
        "training",
        "log_uniform",
        """
        def log_uniform(low, high, size, *, generator=None, dtype=torch.float64):
            u = torch.rand(size, generator=generator, dtype=dtype)
            return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
     """,
    ),
]


@pytest.mark.parametrize(
    ("name", "gid", "source"),
    CORRECT,
    ids=[f"{n}-{g}-{i}" for i, (n, g, _) in enumerate(CORRECT)],
)
def test_correct_alternatives_need_no_review(name, gid, source):
    assert _findings(name, {gid: source}) == []


#: (assignment, answer cell, a cheat, what the finding says)
CHEATS = [
    (
        "activations",
        "sigmoid_forward",
        """
        def sigmoid_forward(x):
            out = torch.sigmoid(x)
            return out, (out,)
     """,
        "sigmoid",
    ),
    (
        "activations",
        "relu_forward",
        """
        def relu_forward(x):
            return torch.nn.functional.relu(x), (x,)
     """,
        "torch.nn.functional.relu",
    ),
    (
        "activations",
        "tanh_backward",
        """
        def tanh_backward(dout, cache):
            (out,) = cache
            return torch.ops.aten.tanh_backward(dout, out)
     """,
        "autograd|tanh_backward|torch.ops",
    ),
    (
        "batchnorm",
        "batchnorm_forward",
        """
        from trainlab.batchnorm import batchnorm_forward
     """,
        "imports batchnorm_forward",
    ),
    (
        "batchnorm",
        "batchnorm_backward",
        """
        def batchnorm_backward(dout, cache):
            x = cache["x"].detach().requires_grad_(True)
            return torch.autograd.grad(x.sum(), x)
     """,
        "autograd",
    ),
    (
        "training",
        "softmax_loss",
        """
        def softmax_loss(scores, y):
            return torch.nn.functional.cross_entropy(scores, y), None
     """,
        "cross_entropy",
    ),
]


@pytest.mark.parametrize(
    ("name", "gid", "source", "text"),
    CHEATS,
    ids=[f"{n}-{g}" for n, g, _, _ in CHEATS],
)
def test_cheats_are_found(name, gid, source, text):
    import re

    found = _findings(name, {gid: source})
    assert any(re.search(text, f) for f in found), found
