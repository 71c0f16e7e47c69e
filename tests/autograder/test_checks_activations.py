"""The activation checks: full marks for right answers, losses for wrong ones."""

from __future__ import annotations

import pytest

import autograder.checks.activations as checks
import trainlab.activations as ref
from autograder.checks.core import Report
from tests.autograder.notebook_copy import copy_functions, define, notebook_namespace
from trainlab._validate import check_compatible, check_shape, check_tensor

pytestmark = [pytest.mark.grader, pytest.mark.activations]

NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "prelu", "maxout"]


def solution() -> dict:
    """The reference functions, defined the way the solution notebook defines them."""
    ns = notebook_namespace(
        Cache=tuple,
        check_tensor=check_tensor,
        check_shape=check_shape,
        check_compatible=check_compatible,
        _check_dout=ref._check_dout,
        _prelu_view=ref._prelu_view,
    )
    for name in NAMES:
        copy_functions(
            ns, getattr(ref, f"{name}_forward"), getattr(ref, f"{name}_backward")
        )
    return ns


def grade(ns: dict, name: str, part: str) -> Report:
    fn = getattr(checks, f"grade_{name}_{part}")
    if part == "forward":
        return fn(ns[f"{name}_forward"])
    return fn(ns[f"{name}_forward"], ns[f"{name}_backward"])


def failed(report: Report) -> list[str]:
    return [r.name for r in report.results if not r.passed]


def messages(report: Report) -> str:
    return "\n".join(r.message for r in report.results)


@pytest.fixture(scope="module")
def sol() -> dict:
    return solution()


@pytest.mark.parametrize("part", ["forward", "backward"])
@pytest.mark.parametrize("name", NAMES)
def test_solution_full_marks(sol, name, part):
    report = grade(sol, name, part)
    assert report.passed, str(report)
    assert report.score == report.max_score > 0


@pytest.mark.parametrize("part", ["forward", "backward"])
@pytest.mark.parametrize("name", NAMES)
def test_not_implemented_scores_zero(name, part):
    ns = solution()
    define(
        ns,
        f"""
        def {name}_{part}(*args, **kwargs):
            raise NotImplementedError()
        """,
    )
    report = grade(ns, name, part)
    assert report.score == 0
    assert "not implemented" in messages(report)


@pytest.mark.parametrize("name", NAMES)
def test_reference_objects_score_zero(name):
    """Handing in the library's own functions earns nothing, with a reason."""
    fwd, bwd = getattr(ref, f"{name}_forward"), getattr(ref, f"{name}_backward")
    forward = getattr(checks, f"grade_{name}_forward")(fwd)
    backward = getattr(checks, f"grade_{name}_backward")(fwd, bwd)
    for report in (forward, backward):
        assert report.score == 0
        assert "reference implementation trainlab.activations" in messages(report)
        assert "earns 0 points" in messages(report)


# --------------------------------------------------------------- wrong answers

# (name, part, wrong source, check names that must fail, text in the message)
WRONG = [
    pytest.param(
        "sigmoid",
        "backward",
        """
        def sigmoid_forward(x):
            return 1 / (1 + torch.exp(-x)), (x,)

        def sigmoid_backward(dout, cache):
            (x,) = cache
            return dout * x * (1 - x)
        """,
        "dx matches",
        "you computed x * (1 - x) with the input x",
        id="sigmoid-backward-uses-x",
    ),
    pytest.param(
        "sigmoid",
        "forward",
        """
        def sigmoid_forward(x):
            e = torch.exp(x)
            return e / (1 + e), (e / (1 + e),)
        """,
        "very large inputs",
        "inf / inf or 0 * inf is NaN",
        id="sigmoid-overflows",
    ),
    pytest.param(
        "tanh",
        "backward",
        """
        def tanh_backward(dout, cache):
            (out,) = cache
            return 1 - out * out
        """,
        "dx matches",
        "upstream gradient dout",
        id="tanh-forgets-dout",
    ),
    pytest.param(
        "relu",
        "backward",
        """
        def relu_backward(dout, cache):
            (x,) = cache
            return torch.where(x >= 0, dout, torch.zeros_like(dout))
        """,
        "the kink",
        "relu'(0) must be 0",
        id="relu-derivative-1-at-0",
    ),
    pytest.param(
        "relu",
        "forward",
        """
        def relu_forward(x):
            x[x < 0] = 0
            return x, (x,)
        """,
        "returns",
        "changed its input x in place",
        id="relu-in-place",
    ),
    pytest.param(
        "leaky_relu",
        "backward",
        """
        def leaky_relu_backward(dout, cache):
            x, negative_slope = cache
            return torch.where(x > 0, dout, torch.zeros_like(dout))
        """,
        "dx matches",
        "slope is missing from dx",
        id="leaky-slope-missing",
    ),
    pytest.param(
        "leaky_relu",
        "forward",
        """
        def leaky_relu_forward(x, negative_slope=0.01):
            return torch.where(x > 0, x, 0.01 * x), (x, negative_slope)
        """,
        "out matches",
        "not a hard-coded 0.01",
        id="leaky-hard-coded-slope",
    ),
    pytest.param(
        "elu",
        "backward",
        """
        def elu_backward(dout, cache):
            x, alpha = cache
            return torch.where(x >= 0, dout, dout * alpha * torch.exp(x))
        """,
        "x = 0 with alpha",
        "elu'(0) is alpha",
        id="elu-wrong-branch-at-0",
    ),
    pytest.param(
        "elu",
        "backward",
        """
        def elu_backward(dout, cache):
            x, alpha = cache
            return torch.where(x > 0, dout, dout * torch.exp(x))
        """,
        "dx matches",
        "alpha is missing",
        id="elu-alpha-missing",
    ),
    pytest.param(
        "elu",
        "forward",
        """
        def elu_forward(x, alpha=1.0):
            pos = (x > 0).to(x.dtype)
            out = pos * x + (1 - pos) * alpha * (torch.exp(x) - 1)
            return out, (x, alpha)
        """,
        "x = 0 with alpha",
        "0 * inf is NaN",
        id="elu-mask-times-inf",
    ),
    pytest.param(
        "prelu",
        "backward",
        """
        def prelu_backward(dout, cache):
            x, alpha = cache
            a = _prelu_view(alpha, x)
            dx = torch.where(x > 0, dout, a * dout)
            dalpha = torch.where(x > 0, torch.zeros_like(x), dout * x)
            return dx, dalpha
        """,
        "returns (dx, dalpha)",
        "sum over the batch and the spatial positions",
        id="prelu-dalpha-not-summed",
    ),
    pytest.param(
        "prelu",
        "backward",
        """
        def prelu_backward(dout, cache):
            x, alpha = cache
            a = _prelu_view(alpha, x)
            dx = torch.where(x > 0, dout, a * dout)
            contrib = torch.where(x > 0, torch.zeros_like(x), dout * x)
            if alpha.numel() == 1:
                return dx, contrib.sum().reshape(alpha.shape)
            return dx, contrib.sum(dim=0).reshape(contrib.shape[1], -1)[:, 0]
        """,
        "dalpha matches",
        "",
        id="prelu-dalpha-batch-only",
    ),
    pytest.param(
        "prelu",
        "forward",
        """
        def prelu_forward(x, alpha):
            return torch.where(x > 0, x, alpha * x), (x, alpha)
        """,
        "per-channel alpha",
        "reshape it to (1, C, 1, 1)",
        id="prelu-alpha-last-dim",
    ),
    pytest.param(
        "maxout",
        "backward",
        """
        def maxout_backward(dout, cache):
            x, w, idx = cache
            k = w.shape[0]
            dw = torch.stack([x.T @ dout for _ in range(k)])
            db = dout.sum(0).expand(k, -1).clone()
            dx = sum(dout @ w[j].T for j in range(k))
            return dx, dw, db
        """,
        "dw and db",
        "You sent the gradient to every piece",
        id="maxout-all-pieces",
    ),
    pytest.param(
        "maxout",
        "backward",
        """
        def maxout_forward(x, w, b):
            scores = torch.matmul(x, w) + b.unsqueeze(1)
            out = scores.max(dim=0).values
            return out, (x, w, scores, out)

        def maxout_backward(dout, cache):
            x, w, scores, out = cache
            mask = (scores == out).to(dout.dtype)
            ds = mask * dout
            return (ds @ w.transpose(1, 2)).sum(0), x.T @ ds, ds.sum(1)
        """,
        "ties between pieces",
        "only the first maximal piece",
        id="maxout-ties-to-all",
    ),
]


@pytest.mark.parametrize(("name", "part", "source", "check", "text"), WRONG)
def test_wrong_answer_loses_points(sol, name, part, source, check, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, name, part)
    lost = failed(report)
    assert lost, f"expected a failed check:\n{report}"
    assert any(n.startswith(check) for n in lost), str(report)
    assert report.score < report.max_score, str(report)
    # partial credit, unless the values are wrong everywhere (then nothing
    # counts, as for an answer that does no work)
    gated = "not counted: the values are wrong everywhere" in messages(report)
    assert (report.score == 0) if gated else (report.score > 0), str(report)
    assert text in messages(report), str(report)
    # the other part of the same activation keeps full marks
    other = "forward" if part == "backward" else "backward"
    if f"def {name}_forward" not in source or part == "forward":
        assert grade(ns, name, other).passed or part == "forward"


@pytest.mark.parametrize(
    ("name", "part", "source", "text"),
    [
        (
            "sigmoid",
            "forward",
            """
            def sigmoid_forward(x):
                out = torch.sigmoid(x)
                return out, (out,)
            """,
            "torch.sigmoid",
        ),
        (
            "relu",
            "forward",
            """
            import torch.nn.functional as F

            def relu_forward(x):
                return F.relu(x), (x,)
            """,
            "torch.nn.functional",
        ),
        (
            "elu",
            "forward",
            """
            from torch.nn import ELU

            def elu_forward(x, alpha=1.0):
                return ELU(alpha)(x), (x, alpha)
            """,
            "torch.nn module",
        ),
        (
            "tanh",
            "backward",
            """
            def tanh_forward(x):
                return torch.tanh(x), (x,)

            def tanh_backward(dout, cache):
                (x,) = cache
                with torch.enable_grad():
                    xg = x.detach().requires_grad_(True)
                    (dx,) = torch.autograd.grad(torch.tanh(xg), xg, dout)
                return dx
            """,
            "autograd",
        ),
        (
            "sigmoid",
            "backward",
            """
            def sigmoid_backward(dout, cache):
                (out,) = cache
                x = torch.log(out / (1 - out)).requires_grad_(True)
                with torch.enable_grad():
                    torch.sigmoid(x).backward(dout)
                return x.grad
            """,
            "autograd",
        ),
        (
            "prelu",
            "forward",
            """
            from trainlab.activations import prelu_forward as _ref

            def prelu_forward(x, alpha):
                return _ref(x, alpha)
            """,
            "trainlab.activations.prelu_forward",
        ),
        (
            "relu",
            "forward",
            """
            import sys
            import torch.nn.functional as F

            def relu_forward(x):
                sys.setprofile(None)  # hide the next call from the grader
                return F.relu(x), (x,)
            """,
            "touches the profiler",
        ),
        (
            "relu",
            "forward",
            """
            import sys
            import torch.nn.functional as F

            def relu_forward(x):
                grader = sys.getprofile()
                sys.setprofile(None)  # hide the next call, then put it back
                out = F.relu(x)
                sys.setprofile(grader)
                return out, (x,)
            """,
            "touches the profiler",
        ),
        (
            "leaky_relu",
            "forward",
            """
            from torch import _C

            def leaky_relu_forward(x, negative_slope=0.01):
                return _C._nn.leaky_relu(x, negative_slope), (x, negative_slope)
            """,
            "leaky_relu",
        ),
    ],
)
def test_library_layer_or_autograd_scores_zero(sol, name, part, source, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, name, part)
    assert report.score == 0, str(report)
    assert text in messages(report)
    assert "earns 0 points" in messages(report)


@pytest.mark.parametrize(
    ("name", "part", "source"),
    [
        (
            "sigmoid",
            "forward",
            """
            import math

            def sigmoid_forward(x):
                flat = x.reshape(-1).tolist()
                vals = []
                for v in flat:
                    if v >= 0:
                        vals.append(1.0 / (1.0 + math.exp(-v)))
                    else:
                        e = math.exp(v)
                        vals.append(e / (1.0 + e))
                out = torch.tensor(vals, dtype=x.dtype, device=x.device)
                out = out.reshape(x.shape)
                return out, (out,)
            """,
        ),
        (
            "sigmoid",
            "forward",
            """
            def sigmoid_forward(x):
                out = 0.5 * (1 + torch.tanh(0.5 * x))
                return out, (out,)
            """,
        ),
        (
            "relu",
            "forward",
            """
            def relu_forward(x):
                return x.clamp(min=0), (x,)
            """,
        ),
        (
            "relu",
            "backward",
            """
            def relu_backward(dout, cache):
                (x,) = cache
                return dout * (x > 0)
            """,
        ),
        (
            "elu",
            "forward",
            """
            def elu_forward(x, alpha=1.0):
                neg = alpha * (torch.exp(torch.clamp(x, max=0)) - 1)
                return torch.where(x > 0, x, neg), (x, alpha)
            """,
        ),
        (
            "elu",
            "backward",
            """
            def elu_backward(dout, cache):
                x, alpha = cache
                dx = dout.clone()
                for i, v in enumerate(x.reshape(-1)):
                    if v <= 0:
                        dx.view(-1)[i] = dout.reshape(-1)[i] * alpha * torch.exp(v)
                return dx
            """,
        ),
        (
            "maxout",
            "forward",
            """
            def maxout_forward(x, w, b):
                pieces = [x @ w[j] + b[j] for j in range(w.shape[0])]
                scores = torch.stack(pieces)
                idx = scores.argmax(dim=0)
                return scores.max(dim=0).values, (x, w, idx)
            """,
        ),
        (
            "prelu",
            "backward",
            """
            def prelu_backward(dout, cache):
                x, alpha = cache
                if alpha.numel() == 1:
                    a = alpha.reshape(())
                else:
                    a = alpha.reshape([1, -1] + [1] * (x.dim() - 2))
                dx = torch.where(x > 0, dout, a * dout)
                g = torch.where(x > 0, 0.0, dout * x)
                if alpha.numel() == 1:
                    return dx, g.sum().reshape(1)
                g = g.transpose(0, 1).reshape(x.shape[1], -1)
                return dx, g.sum(dim=1)
            """,
        ),
    ],
)
def test_other_correct_implementations_keep_full_marks(sol, name, part, source):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, name, part)
    assert report.passed, str(report)


def test_points_are_constant():
    """max_score does not depend on the machine (CUDA or not): cells declare it."""
    ns = solution()
    expected = {"forward": 4, "backward": 6}
    for name in NAMES:
        for part in ("forward", "backward"):
            want = 7 if (name, part) == ("prelu", "backward") else expected[part]
            assert grade(ns, name, part).max_score == want
