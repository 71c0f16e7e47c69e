"""The gradcheck assignment's checks: full marks for right answers, the points
of the affected cell (and only those) lost for each common mistake, and a
message that names it."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch

import trainlab.gradcheck as ref
from autograder.checks.gradcheck import grade_numerical_gradient, grade_rel_error
from tests.autograder.students import build, grade_all, losing, messages, points
from trainlab._validate import check_tensor

pytestmark = [pytest.mark.grader, pytest.mark.gradcheck]

HELPERS = {
    "check_tensor": check_tensor,
    "_loss": ref._loss,
    "itertools": itertools,
    "Callable": Callable,
}
FUNCTIONS = (ref.rel_error, ref.numerical_gradient)


def submission(edit=None, extra: str = "") -> dict:
    return build(FUNCTIONS, HELPERS, edit=edit, extra=extra)


def test_reference_copies_score_full_marks():
    reports = grade_all("gradcheck", submission())
    assert losing(reports) == set(), {g: str(r) for g, r in reports.items()}
    for grade_id, report in reports.items():
        assert report.max_score == points("gradcheck")[grade_id]


MISTAKES = {
    "one-sided difference": (
        ref.numerical_gradient,
        [
            ("x[idx] = old - h", "x[idx] = old"),
            ("/ (2.0 * h)", "/ h"),
        ],
        {"test_numerical_gradient"},
        "one-sided",
    ),
    "upstream gradient ignored": (
        ref.numerical_gradient,
        [("((f_plus - f_minus) * dout).sum()", "(f_plus - f_minus).sum()")],
        {"test_numerical_gradient"},
        "dout is ignored",
    ),
    "divides by h": (
        ref.numerical_gradient,
        [("/ (2.0 * h)", "/ h")],
        {"test_numerical_gradient"},
        "not divided by 2h but by h",
    ),
    "x not restored": (
        ref.numerical_gradient,
        [("finally:\n                x[idx] = old", "finally:\n                pass")],
        {"test_numerical_gradient"},
        "x is not the same",
    ),
    "h ignored": (
        ref.numerical_gradient,
        [("grad = torch.zeros_like(x)", "grad = torch.zeros_like(x)\n    h = 1e-5")],
        {"test_numerical_gradient"},
        "step h you were given is not used",
    ),
    "entrywise relative error": (
        ref.rel_error,
        [
            (
                "num = (a - b).abs().max()",
                "num = ((a - b).abs() / (a.abs() + b.abs()).clamp_min(eps)).max()",
            ),
            ("den = (a.abs() + b.abs()).max().clamp_min(eps)", "den = 1.0"),
        ],
        {"test_rel_error"},
        "entrywise relative error",
    ),
    "no eps floor": (
        ref.rel_error,
        [(".max().clamp_min(eps)", ".max()")],
        {"test_rel_error"},
        "Floor the denominator with eps",
    ),
    "returns a tensor": (
        ref.rel_error,
        [("return float(num / den)", "return num / den")],
        {"test_rel_error"},
        "Python float",
    ),
    # what the docstrings promise: values of opposite signs, f returning a view
    "|a + b| denominator": (
        ref.rel_error,
        [("(a.abs() + b.abs()).max()", "(a + b).abs().max()")],
        {"test_rel_error"},
        "opposite signs",
    ),
    "f's view of x not cloned": (
        ref.numerical_gradient,
        [
            ("f_plus = _loss(f, x).clone()", "f_plus = _loss(f, x)"),
            ("f_minus = _loss(f, x).clone()", "f_minus = _loss(f, x)"),
        ],
        {"test_numerical_gradient"},
        "a view of x",
    ),
    "max(|a|, |b|) denominator": (
        ref.rel_error,
        [("(a.abs() + b.abs()).max()", "torch.maximum(a.abs(), b.abs()).max()")],
        {"test_rel_error"},
        "max(|a|, |b|)",
    ),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistake_loses_the_affected_cell_only(name):
    fn, edits, affected, phrase = MISTAKES[name]
    reports = grade_all("gradcheck", submission(edit=(fn, edits)))
    assert losing(reports) == affected, {g: str(r) for g, r in reports.items()}
    for grade_id in affected:
        assert phrase in messages(reports[grade_id]), str(reports[grade_id])


CHEATS = {
    "imports the reference": (
        "from trainlab.gradcheck import numerical_gradient as _ng\n"
        "def numerical_gradient(f, x, dout, h=1e-5):\n"
        "    return _ng(f, x, dout, h)\n",
        "test_numerical_gradient",
        "reference implementation trainlab.gradcheck.numerical_gradient",
    ),
    "uses autograd": (
        "def numerical_gradient(f, x, dout, h=1e-5):\n"
        "    xg = x.detach().clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        f(xg).backward(dout)\n"
        "    return xg.grad.detach()\n",
        "test_numerical_gradient",
        "autograd",
    ),
    "reference rel_error": (
        "import trainlab.gradcheck as _tg\n"
        "def rel_error(a, b, eps=1e-12):\n"
        "    return _tg.rel_error(a, b, eps)\n",
        "test_rel_error",
        "reference implementation trainlab.gradcheck.rel_error",
    ),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_borrowed_answer_earns_zero_with_a_reason(name):
    source, grade_id, phrase = CHEATS[name]
    reports = grade_all("gradcheck", submission(extra=source))
    assert reports[grade_id].score == 0
    assert phrase in messages(reports[grade_id])
    assert "earns 0 points" in messages(reports[grade_id])
    others = set(reports) - {grade_id}
    assert not losing({g: reports[g] for g in others})


ALTERNATIVES = {
    "copies instead of in-place moves": (
        "def numerical_gradient(f, x, dout, h=1e-5):\n"
        "    grad = torch.zeros_like(x)\n"
        "    for idx in itertools.product(*(range(n) for n in x.shape)):\n"
        "        xp, xm = x.clone(), x.clone()\n"
        "        xp[idx] += h\n"
        "        xm[idx] -= h\n"
        "        grad[idx] = ((f(xp) - f(xm)) * dout).sum() / (2 * h)\n"
        "    return grad\n"
    ),
    "flat index with unravel": (
        "def numerical_gradient(f, x, dout, h=1e-5):\n"
        "    grad = torch.empty_like(x)\n"
        "    for k in range(x.numel()):\n"
        "        where = torch.unravel_index(torch.tensor(k), x.shape)\n"
        "        idx = tuple(int(i) for i in where)\n"
        "        saved = x[idx].item()\n"
        "        x[idx] = saved + h\n"
        "        up = f(x).clone()\n"
        "        x[idx] = saved - h\n"
        "        down = f(x).clone()\n"
        "        x[idx] = saved\n"
        "        grad[idx] = torch.sum((up - down) * dout) / (2 * h)\n"
        "    return grad\n"
    ),
    "rel_error with Python max": (
        "def rel_error(a, b, eps=1e-12):\n"
        "    a, b = a.double(), b.double()\n"
        "    top = torch.max(torch.abs(a - b)).item()\n"
        "    return top / max(eps, torch.max(torch.abs(a) + torch.abs(b)).item())\n"
    ),
}


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_different_correct_implementation_keeps_full_marks(name):
    reports = grade_all("gradcheck", submission(extra=ALTERNATIVES[name]))
    assert losing(reports) == set(), {g: str(r) for g, r in reports.items()}


def test_not_implemented_scores_zero_with_a_message():
    stub = "def {}(*args, **kwargs):\n    raise NotImplementedError()\n"
    extra = stub.format("rel_error") + stub.format("numerical_gradient")
    reports = grade_all("gradcheck", submission(extra=extra))
    for report in reports.values():
        assert report.score == 0
        assert "not implemented yet" in messages(report)


def test_float32_inputs_of_the_reference_pass():
    report = grade_numerical_gradient(submission()["numerical_gradient"])
    result = {r.name: r for r in report.results}
    assert result["float32 inputs, on every available device"].passed


def test_a_non_function_is_a_clear_failure():
    report = grade_rel_error(42)
    assert report.score == 0
    assert "should be a function" in messages(report)


def test_the_checks_run_single_threaded_and_restore_threads():
    before = torch.get_num_threads()
    grade_rel_error(submission()["rel_error"])
    assert torch.get_num_threads() == before
