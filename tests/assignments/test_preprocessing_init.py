"""The preprocessing_init assignment: its notebooks, for graders and students."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import trainlab.init as ref_init
import trainlab.preprocessing as ref_pre
from autograder.authoring.harness import read_notebook
from tests.assignments.assignment_runs import (
    ROOT,
    autograded_points,
    manual_points,
    nbgrader_meta,
    release_path,
    run_submission,
    run_untouched_student,
    source_path,
    time_filled_student,
)
from tests.autograder.students import build, losing
from trainlab._validate import check_tensor

pytestmark = [pytest.mark.assignments, pytest.mark.preprocessing, pytest.mark.init]

NAME = "preprocessing_init"
FUNCTIONS = [
    ref_pre.feature_mean_std,
    ref_pre.standardize,
    ref_pre.pca_fit,
    ref_pre.whiten,
    ref_init.calculate_gain,
    ref_init.compute_fans,
    ref_init._kaiming_std,
    ref_init.xavier_normal,
    ref_init.xavier_uniform,
    ref_init.kaiming_normal,
    ref_init.kaiming_uniform,
]
HELPERS = {
    "math": math,
    "check_tensor": check_tensor,
    **{
        n: getattr(ref_init, n)
        for n in (
            "_LINEAR_NAMES",
            "_NONLINEARITIES",
            "_as_shape",
            "_empty",
            "_nonzero_fan",
            "_normal",
            "_uniform",
        )
    },
}

# common mistakes: (function, [(old, new)]) -> the grade cells that must lose
MISTAKES = {
    "std divides by N - 1": (
        ref_pre.feature_mean_std,
        [("X.std(dim=0, correction=0)", "X.std(dim=0)")],
        {"test_feature_mean_std"},
    ),
    "PCA without centering": (
        ref_pre.pca_fit,
        [("cov = Xc.T @ Xc / N", "cov = X.T @ X / N")],
        {"test_pca_fit"},
    ),
    "whitening without eps": (
        ref_pre.whiten,
        [("torch.sqrt(variances + eps)", "torch.sqrt(variances)")],
        {"test_whiten"},
    ),
    "gain 1 for relu": (
        ref_init.calculate_gain,
        [
            (
                'if nonlinearity == "relu":\n        return math.sqrt(2.0)',
                'if nonlinearity == "relu":\n        return 1.0',
            )
        ],
        {"test_calculate_gain"},
    ),
    "conv fan-in without the kernel size": (
        ref_init.compute_fans,
        [
            (
                "return dims[1] * receptive_field, dims[0] * receptive_field",
                "return dims[1], dims[0]",
            )
        ],
        {"test_compute_fans"},
    ),
    "Kaiming with fan_out": (
        ref_init._kaiming_std,
        [('fan = fan_in if mode.lower() == "fan_in" else fan_out', "fan = fan_out")],
        {"test_kaiming_std"},
    ),
    "Xavier with the lecture's 1/sqrt(fan_in)": (
        ref_init.xavier_normal,
        [
            (
                "std = gain * math.sqrt(2.0 / float(fan_in + fan_out))",
                "std = gain / math.sqrt(fan_in)",
            )
        ],
        {"test_xavier_normal"},
    ),
    "uniform bound equal to the std": (
        ref_init.kaiming_uniform,
        [("bound = math.sqrt(3.0) * _kaiming_std", "bound = _kaiming_std")],
        {"test_kaiming_uniform"},
    ),
}


def grade_all(ns: dict) -> dict:
    """Run the hidden tests of the code grade cells in ``ns``."""
    reports = {}
    for cell in read_notebook(source_path(NAME)).cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and cell.cell_type == "code":
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
            lines = hidden.strip().splitlines()
            scope = dict(ns)
            exec(lines[0], scope)  # the import  # noqa: S102
            reports[meta["grade_id"]] = eval(  # noqa: S307
                lines[1].removeprefix("_report = "), scope
            )
    return reports


def test_points_equal_the_reports_max_score():
    reports = grade_all(build(FUNCTIONS, HELPERS))
    points = autograded_points(NAME)
    assert set(reports) == set(points)
    for gid, report in reports.items():
        assert report.max_score == points[gid], gid
        assert report.passed, str(report)


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_loses_the_points_of_its_cell_only(mistake):
    fn, changes, cells = MISTAKES[mistake]
    reports = grade_all(build(FUNCTIONS, HELPERS, edit=(fn, changes)))
    assert losing(reports) == cells, {
        g: str(r) for g, r in reports.items() if g in losing(reports) | cells
    }


def test_the_explanation_is_graded_by_hand():
    assert manual_points(NAME) == {"explain_activation_statistics": 4.0}
    release = read_notebook(release_path(NAME))
    (answer,) = [
        c
        for c in release.cells
        if nbgrader_meta(c).get("grade_id") == "explain_activation_statistics"
    ]
    assert answer.cell_type == "markdown"
    assert nbgrader_meta(answer)["solution"] and nbgrader_meta(answer)["grade"]
    assert answer.source.strip() == "YOUR ANSWER HERE"


def test_release_notebook_hides_solutions_and_tests():
    nb = read_notebook(release_path(NAME))
    text = "\n".join(c.source for c in nb.cells)
    for marker in (
        "BEGIN SOLUTION",
        "BEGIN HIDDEN TESTS",
        "autograder.checks",
        "Each output of a layer sums",
    ):
        assert marker not in text
    code = [
        c
        for c in nb.cells
        if nbgrader_meta(c).get("solution") and c.cell_type == "code"
    ]
    assert len(code) == len(FUNCTIONS)
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
    points = autograded_points(NAME)
    assert {g: s for g, s in scores.items() if g in points} == {
        g: (p, p) for g, p in points.items()
    }


@pytest.mark.slow
def test_untouched_student_notebook_scores_zero_with_not_implemented_only():
    scores, errors = run_untouched_student(NAME)
    assert all(points == 0 for points, _ in scores.values()), scores
    assert errors
    assert {name for _, name, _ in errors} == {"NotImplementedError"}, errors


@pytest.mark.slow
def test_wrong_submission_end_to_end_loses_only_its_cells():
    wrong = {
        "compute_fans": (
            "def compute_fans(shape):\n"
            "    dims = tuple(shape)\n"
            "    if len(dims) < 2:\n"
            "        raise ValueError('a weight has at least 2 dimensions')\n"
            "    return dims[1], dims[0]\n"
        ),
        "kaiming_normal": (
            "def kaiming_normal(shape, a=0.0, mode='fan_in', nonlinearity='leaky_relu',"
            " *, generator=None, dtype=None, device=None):\n"
            "    w = torch.empty(tuple(reversed(shape)), dtype=dtype)\n"
            "    torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity,"
            " generator=generator)\n"
            "    return w.T.contiguous()\n"
        ),
    }
    scores, _ = run_submission(NAME, wrong)
    points = autograded_points(NAME)
    lost = {g for g, (p, m) in scores.items() if g in points and p < m}
    assert lost == {"test_compute_fans", "test_kaiming_normal"}, scores
    assert scores["test_kaiming_normal"][0] == 0  # torch.nn.init: the cell earns 0


@pytest.mark.slow
def test_finished_student_notebook_runs_within_two_minutes():
    seconds, errors = time_filled_student(NAME)
    print(f"{NAME}: the finished student notebook ran in {seconds:.1f} s")
    assert errors == []
    assert seconds < 120, f"{seconds:.0f} s"
