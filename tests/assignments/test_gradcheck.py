"""The gradcheck assignment's notebooks, as a grader and a student see them."""

from __future__ import annotations

import pytest

from tests.assignments import notebook_checks as nc

pytestmark = [pytest.mark.assignments, pytest.mark.gradcheck, pytest.mark.slow]

NAME = "gradcheck"


def test_solution_scores_full_marks():
    nc.check_solution(NAME)


def test_untouched_student_notebook_scores_zero_with_not_implemented_only():
    nc.check_untouched(NAME)


def test_mistake_and_borrowed_answer_lose_their_cells_only():
    one_sided = nc.edited(
        NAME,
        "numerical_gradient",
        [("x[idx] = old - h", "x[idx] = old"), ("/ (2.0 * h)", "/ h")],
    )
    borrowed = (
        "import trainlab.gradcheck\n"
        "def rel_error(a, b, eps=1e-12):\n"
        "    return trainlab.gradcheck.rel_error(a, b, eps)\n"
    )
    nc.check_mixed_submission(
        NAME,
        {"numerical_gradient": one_sided, "rel_error": borrowed},
        losing={"test_numerical_gradient", "test_rel_error"},
        zero={"test_rel_error"},
        phrases={
            "test_numerical_gradient": "one-sided difference",
            "test_rel_error": "earns 0 points",
        },
    )


def test_finished_student_notebook_runs_within_two_minutes():
    nc.check_finished_student(NAME)
