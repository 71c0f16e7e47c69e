"""Hand grades from the gradebook into the results: checks, totals, late penalty."""

from __future__ import annotations

import csv

import pytest

from autograder.pipeline import hand_grades

pytestmark = pytest.mark.grader
KEY = ("preprocessing_init", "alice")


def _entry(score, *, cell="explain", top=4.0, extra=None, student="alice"):
    return {
        "assignment": "preprocessing_init",
        "student": student,
        "cell": cell,
        "kind": "grade",
        "score": score,
        "extra_credit": extra,
        "max_score": top,
    }


def _result(**late) -> dict:
    return {
        "assignment": "preprocessing_init",
        "student": "alice",
        "score": 6.0,
        "raw_score": 6.0,
        "max_score": 10.0,
        "late": {"penalty": late.get("penalty", 0.0)},
        "cells": {
            "test_a": {"score": 6.0, "max_score": 6.0},
            "explain": {"score": None, "max_score": 4.0, "manual": True},
        },
    }


def test_a_hand_score_and_comment_change_the_cell_and_the_totals():
    hand = hand_grades.collect(
        [
            _entry(3.0),
            {**_entry(None), "kind": "comment", "comment": "Good, but say why."},
        ]
    )
    assert hand.problems == [] and hand.rejected == set()
    r = hand_grades.apply(_result(penalty=2.0), hand)
    assert r["cells"]["explain"]["score"] == 3.0
    assert r["cells"]["explain"]["graded_by_hand"] and r["cells"]["explain"]["comment"]
    assert r["raw_score"] == 9.0 and r["late_penalty"] == 2.0 and r["score"] == 7.0
    assert hand.digest(KEY) != "" and hand.digest(("x", "y")) == ""
    untouched = _result()
    assert hand_grades.apply(untouched, hand_grades.collect([])) is untouched


@pytest.mark.parametrize(
    "score, found",
    [(99.0, "99"), (-1.0, "-1"), (4.5, "4.5"), (float("nan"), "nan")],
)
def test_a_hand_score_out_of_range_is_named_and_not_used(score, found):
    hand = hand_grades.collect([_entry(score)])
    (problem,) = hand.problems
    assert f"alice, preprocessing_init, cell 'explain': the hand score {found}" in (
        problem
    )
    assert "outside 0 to 4" in problem and "formgrader" in problem
    assert hand.rejected == {KEY}
    r = hand_grades.apply(_result(), hand)
    assert r["score"] == 6.0 and r["cells"]["explain"]["score"] is None


def test_the_full_points_and_zero_are_in_range():
    assert hand_grades.collect([_entry(4.0)]).problems == []
    assert hand_grades.collect([_entry(0.0)]).scores == {KEY: {"explain": 0.0}}


def test_extra_credit_is_named_and_not_counted():
    hand = hand_grades.collect([_entry(2.0, extra=5.0)])
    assert "extra credit 5" in hand.problems[0] and hand.rejected == {KEY}
    assert hand_grades.apply(_result(), hand)["score"] == 8.0  # 6 + 2, not + 5


def test_grades_csv_rows_with_an_unused_hand_score_get_the_totals(tmp_path):
    path = tmp_path / "grades.csv"
    header = ["assignment", "student_id", "raw_score", "late_submission_penalty"]
    header += ["score", "max_score"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["preprocessing_init", "alice", "105.0", "0.0", "105.0", "10.0"])
        w.writerow(["preprocessing_init", "bob", "5.0", "0.0", "5.0", "10.0"])
    hand = hand_grades.collect([_entry(99.0)])
    results = [hand_grades.apply(_result(), hand), {**_result(), "student": "bob"}]
    hand_grades.fix_csv(path, results, hand.rejected)
    with open(path, newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert float(rows["alice"]["score"]) == 6.0  # not 105
    assert rows["bob"]["score"] == "5.0"  # left as nbgrader wrote it
