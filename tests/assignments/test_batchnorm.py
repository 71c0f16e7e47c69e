"""The batchnorm assignment's notebooks, as a grader and a student see them."""

from __future__ import annotations

import pytest

from tests.assignments import notebook_checks as nc

pytestmark = [pytest.mark.assignments, pytest.mark.norm, pytest.mark.slow]

NAME = "batchnorm"


def test_solution_scores_full_marks():
    nc.check_solution(NAME)


def test_untouched_student_notebook_scores_zero_with_not_implemented_only():
    nc.check_untouched(NAME)


def test_mistake_borrowed_answer_and_other_correct_code_end_to_end():
    biased = nc.edited(
        NAME,
        "batchnorm_forward",
        [("alpha=momentum * n / (n - 1)", "alpha=momentum")],
    )
    borrowed = (
        "from trainlab.batchnorm import batchnorm_backward as _bb\n"
        "def batchnorm_backward(dout, cache):\n"
        "    return _bb(dout, cache)\n"
    )
    graph_in_closed_form_cell = (
        "def batchnorm_backward_alt(dout, cache):\n"
        "    dx, dgamma, dbeta = (t.clone() for t in _graph_backward(dout, cache))\n"
        "    return dx, dgamma, dbeta\n"
    )
    graph_copy = nc.solution_cell(NAME, "batchnorm_backward").replace(
        "def batchnorm_backward(", "def _graph_backward(", 1
    )
    nc.check_mixed_submission(
        NAME,
        {
            "batchnorm_forward": biased,
            "batchnorm_backward": borrowed,
            "batchnorm_backward_alt": graph_copy + "\n\n" + graph_in_closed_form_cell,
        },
        # spatial batchnorm reuses batchnorm_forward: its running_var is wrong too
        losing={
            "test_batchnorm_forward",
            "test_spatial_batchnorm_forward",
            "test_batchnorm_backward",
        },
        zero={"test_batchnorm_backward"},
        phrases={
            "test_batchnorm_forward": "PyTorch stores the unbiased one",
            "test_batchnorm_backward": "trainlab.batchnorm.batchnorm_backward",
        },
    )


def test_finished_student_notebook_runs_within_two_minutes():
    nc.check_finished_student(NAME)
