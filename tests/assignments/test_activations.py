"""The activations assignment: its notebooks, as a grader and a student see them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trainlab.activations as ref
from autograder.authoring.harness import read_notebook
from tests.assignments.assignment_runs import (
    ROOT,
    autograded_points,
    nbgrader_meta,
    release_path,
    run_submission,
    run_untouched_student,
    time_filled_student,
)
from tests.autograder.students import build, grade_all, losing
from trainlab._validate import check_compatible, check_shape, check_tensor

pytestmark = [pytest.mark.assignments, pytest.mark.activations]

NAME = "activations"
LAYERS = ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "maxout"]
FUNCTIONS = [getattr(ref, f"{n}_{p}") for n in LAYERS for p in ("forward", "backward")]
HELPERS = {
    "Cache": tuple,
    "check_tensor": check_tensor,
    "check_shape": check_shape,
    "check_compatible": check_compatible,
    "_check_dout": ref._check_dout,
    "_prelu_view": ref._prelu_view,
}

# common mistakes: (function, [(old, new)]) -> the grade cells that must lose
MISTAKES = {
    "sigmoid backward uses x instead of out": (
        (ref.sigmoid_forward, [("return out, (out,)", "return out, (x,)")]),
        (
            ref.sigmoid_backward,
            [
                ("(out,) = cache", "(x,) = cache"),
                ('dout, out, "out"', 'dout, x, "x"'),
                ("dout * out * (1.0 - out)", "dout * x * (1.0 - x)"),
            ],
        ),
        {"test_sigmoid_backward"},
    ),
    "relu'(0) = 1": (
        None,
        (ref.relu_backward, [("torch.where(x > 0", "torch.where(x >= 0")]),
        {"test_relu_backward"},
    ),
    "leaky slope missing from dx": (
        None,
        (ref.leaky_relu_backward, [("negative_slope * dout", "0 * dout")]),
        {"test_leaky_relu_backward"},
    ),
    "PReLU dalpha not summed over the batch": (
        None,
        (ref.prelu_backward, [("dalpha = contrib.sum(dim=dims)", "dalpha = contrib")]),
        {"test_prelu_backward"},
    ),
    "ELU backward takes the wrong branch at 0": (
        None,
        (ref.elu_backward, [("torch.where(x > 0, dout", "torch.where(x >= 0, dout")]),
        {"test_elu_backward"},
    ),
    "maxout sends the gradient to every piece": (
        None,
        (
            ref.maxout_backward,
            [
                (
                    "dscores.scatter_(0, idx.unsqueeze(0), dout.unsqueeze(0))",
                    "dscores[:] = dout",
                ),
            ],
        ),
        {"test_maxout_backward"},
    ),
    "sigmoid forward overflows": (
        None,
        (
            ref.sigmoid_forward,
            [
                (
                    "out = torch.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
                    "out = torch.exp(x) / (1.0 + torch.exp(x))",
                ),
            ],
        ),
        {"test_sigmoid_forward"},
    ),
}


def _namespace(edits=()) -> dict:
    ns = build(FUNCTIONS, HELPERS)
    for edit in edits:
        if edit is None:
            continue
        fn, changes = edit
        ns.update(build([fn], HELPERS, edit=(fn, changes)))
    return ns


def test_points_equal_the_reports_max_score():
    reports = grade_all(NAME, _namespace())
    points = autograded_points(NAME)
    assert set(reports) == set(points)
    for gid, report in reports.items():
        assert report.max_score == points[gid], gid
        assert report.passed, str(report)


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_loses_the_points_of_its_cell_only(mistake):
    forward_edit, backward_edit, cells = MISTAKES[mistake]
    ns = _namespace([forward_edit, backward_edit])
    reports = grade_all(NAME, ns)
    assert losing(reports) == cells, {
        g: str(r) for g, r in reports.items() if g in losing(reports) | cells
    }


def test_release_notebook_hides_solutions_and_tests():
    nb = read_notebook(release_path(NAME))
    text = "\n".join(c.source for c in nb.cells)
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "autograder.checks"):
        assert marker not in text
    solution_cells = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    assert len(solution_cells) == 2 * len(LAYERS)
    for cell in solution_cells:
        assert "raise NotImplementedError()" in cell.source
        assert cell.source.lstrip().startswith("def ")  # the signature is kept


@pytest.mark.slow
def test_generated_files_are_up_to_date():
    result = subprocess.run(
        [sys.executable, "-m", "autograder.authoring.generate", "--check", NAME],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_solution_scores_full_marks():
    scores, errors = run_submission(NAME)
    assert errors == []
    assert scores == {g: (p, p) for g, p in autograded_points(NAME).items()}


@pytest.mark.slow
def test_untouched_student_notebook_scores_zero_with_not_implemented_only():
    scores, errors = run_untouched_student(NAME)
    assert all(points == 0 for points, _ in scores.values()), scores
    assert errors, "the stubs should raise"
    assert {name for _, name, _ in errors} == {"NotImplementedError"}, errors


@pytest.mark.slow
def test_wrong_submission_end_to_end_loses_only_its_cells():
    wrong = {
        "relu_backward": (
            "def relu_backward(dout, cache):\n"
            "    (x,) = cache\n"
            "    return torch.where(x >= 0, dout, torch.zeros_like(dout))\n"
        ),
        "sigmoid_forward": (
            "def sigmoid_forward(x):\n"
            "    out = torch.sigmoid(x)\n"
            "    return out, (out,)\n"
        ),
    }
    scores, _ = run_submission(NAME, wrong)
    points = autograded_points(NAME)
    lost = {g for g, (p, m) in scores.items() if p < m}
    # torch.sigmoid in the forward: its cell earns 0, and so does the backward,
    # which is graded on that forward's cache (it could carry the answer)
    assert lost == {
        "test_relu_backward",
        "test_sigmoid_forward",
        "test_sigmoid_backward",
    }, scores
    assert scores["test_sigmoid_forward"][0] == 0
    assert scores["test_sigmoid_backward"][0] == 0
    assert 0 < scores["test_relu_backward"][0] < points["test_relu_backward"]


@pytest.mark.slow
def test_finished_student_notebook_runs_within_two_minutes():
    seconds, errors = time_filled_student(NAME)
    print(f"{NAME}: the finished student notebook ran in {seconds:.1f} s")
    assert errors == []
    assert seconds < 120, f"{seconds:.0f} s"
