"""The training assignment: its notebooks, for graders and students."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import trainlab.net as ref_net
import trainlab.search as ref_search
import trainlab.training as ref_training
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
from trainlab._validate import check_tensor
from trainlab.data import Split

pytestmark = [pytest.mark.assignments, pytest.mark.training]

NAME = "training"
FUNCTIONS = [
    ref_net.softmax_loss,
    ref_training.initial_loss_check,
    ref_training.update_to_weight_ratio,
    ref_training.overfit_small_subset,
    ref_search.learning_rate_search,
    ref_search.log_uniform,
    ref_search.random_search,
]
HELPERS = {
    "math": math,
    "check_tensor": check_tensor,
    "Split": Split,
    "train": ref_training.train,
    "_sample": ref_search._sample,
}
#: the final cell's answer in the solution notebook
GOOD = (
    '{"hidden_dims": [128, 128], "lr": 3e-3, "reg": 1e-4, "epochs": 20, '
    '"batch_size": 64, "update": "adam", "lr_decay": 1.0}'
)

MISTAKES = {
    "softmax loss not averaged": (
        ref_net.softmax_loss,
        [("loss = -log_probs[rows, y].mean()", "loss = -log_probs[rows, y].sum()")],
        {"test_softmax_loss"},
    ),
    "softmax without the max shift": (
        ref_net.softmax_loss,
        [
            (
                "shifted = scores - scores.max(dim=1, keepdim=True).values",
                "shifted = scores",
            )
        ],
        {"test_softmax_loss"},
    ),
    "initial loss with regularization on": (
        ref_training.initial_loss_check,
        [("    model.reg = 0.0\n    try:", "    try:")],
        {"test_initial_loss_check"},
    ),
    "overfitting a random subset": (
        ref_training.overfit_small_subset,
        [
            (
                "data.X_train[:num_samples],\n        data.y_train[:num_samples],",
                "data.X_train[-num_samples:],\n        data.y_train[-num_samples:],",
            )
        ],
        {"test_overfit_small_subset"},
    ),
    "learning rates spaced linearly": (
        ref_search.learning_rate_search,
        [
            (
                "torch.logspace(math.log10(low), math.log10(high), num,",
                "torch.linspace(low, high, num,",
            )
        ],
        {"test_learning_rate_search"},
    ),
    "log_uniform samples uniformly": (
        ref_search.log_uniform,
        [
            (
                "return (10.0**exponent).clamp(low, high).to(dtype)",
                "return (low + (high - low) * u).to(dtype)",
            )
        ],
        {"test_log_uniform"},
    ),
    "random search sorts nan anywhere": (
        ref_search.random_search,
        [
            (
                "return (math.isnan(score), -score if maximize else score)",
                "return -score if maximize else score",
            )
        ],
        {"test_random_search"},
    ),
}


def _grade(ns: dict, hparams: str = GOOD) -> dict:
    ns = dict(ns)
    ns["best_hparams"] = eval(hparams)  # noqa: S307
    return grade_all(NAME, ns)


@pytest.mark.slow
def test_points_equal_the_reports_max_score():
    reports = _grade(build(FUNCTIONS, HELPERS))
    points = autograded_points(NAME)
    assert set(reports) == set(points)
    for gid, report in reports.items():
        assert report.max_score == points[gid], gid
        assert report.passed, str(report)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_loses_the_points_of_its_cell_only(mistake, monkeypatch):
    import autograder.checks.training as checks

    # the final network is graded on its own elsewhere; keep this test fast
    monkeypatch.setattr(checks, "grade_final_model", _no_retraining)
    fn, changes, cells = MISTAKES[mistake]
    reports = _grade(build(FUNCTIONS, HELPERS, edit=(fn, changes)))
    assert losing(reports) == cells, {
        g: str(r) for g, r in reports.items() if g in losing(reports) | cells
    }


def _no_retraining(best_hparams):
    from autograder.checks.core import Grader

    g = Grader("final model")
    g.check("not retrained in this test", 5, lambda: None, key=True)
    return g.report()


def test_release_notebook_hides_solutions_and_tests():
    nb = read_notebook(release_path(NAME))
    text = "\n".join(c.source for c in nb.cells)
    for marker in (
        "BEGIN SOLUTION",
        "BEGIN HIDDEN TESTS",
        "autograder.checks",
        '"hidden_dims": [128',
    ):
        assert marker not in text
    code = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    assert len(code) == len(FUNCTIONS) + 1  # and best_hparams
    for cell in code:
        assert "raise NotImplementedError()" in cell.source


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
    assert errors
    assert {name for _, name, _ in errors} == {"NotImplementedError"}, errors


@pytest.mark.slow
def test_weak_hyperparameters_end_to_end_lose_only_the_final_cell():
    weak = GOOD.replace('"epochs": 20', '"epochs": 1').replace(
        '"lr": 3e-3', '"lr": 1e-5'
    )
    scores, _ = run_submission(NAME, {"best_hparams": f"best_hparams = {weak}\n"})
    lost = {g for g, (p, m) in scores.items() if p < m}
    assert lost == {"test_final_model"}, scores
    assert scores["test_final_model"][0] == 0  # below 0.90: nothing counts


@pytest.mark.slow
def test_finished_student_notebook_runs_within_two_minutes():
    seconds, errors = time_filled_student(NAME)
    print(f"{NAME}: the finished student notebook ran in {seconds:.1f} s")
    assert errors == []
    assert seconds < 120, f"{seconds:.0f} s"
