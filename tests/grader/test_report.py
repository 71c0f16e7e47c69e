"""Reports: the Classroom payload, the check table, the summary, feedback scrubbing."""

from __future__ import annotations

import base64
import json

import nbformat
import pytest

from autograder.outputs import feedback, report

pytestmark = pytest.mark.grader

RESULT = {
    "student": "alice",
    "assignment": "batchnorm",
    "status": "graded",
    "score": 9.0,
    "max_score": 15.0,
    "cells": {
        "test_forward": {"score": 8.0, "max_score": 8.0, "in_kernel": 8.0},
        "test_backward": {
            "score": 1.0,
            "max_score": 7.0,
            "in_kernel": 7.0,
            "disagree": True,
            "problems": "[FAIL]     0/3  dx vs torch autograd",
        },
    },
    "messages": ["test_backward: ... the verification counts"],
    "scan": ["cell 3, line 2: [monkeypatch] assignment to torch.allclose"],
}


def test_classroom_payload_adds_up_to_the_points(tmp_path):
    out = tmp_path / "github_output"
    report.write_classroom_output(RESULT, out)
    key, _, value = out.read_text().strip().partition("=")
    payload = json.loads(base64.b64decode(value))
    assert key == "result" and payload["version"] == 1
    assert payload["max_score"] == 15.0 and payload["status"] == "fail"
    assert sum(t["score"] for t in payload["tests"]) == 9.0
    assert [t["status"] for t in payload["tests"]] == ["pass", "fail"]
    assert report.classroom_line(RESULT) == "Points 9/15"


def test_check_table_lists_every_cell_and_what_failed():
    text = report.check_table(RESULT)
    assert "test_forward" in text and "points lost" in text
    assert "dx vs torch autograd" in text and text.count("\n") > 5


def test_summary_flags_what_needs_review():
    text = report.summary_markdown(
        [RESULT], run={"graded": 1, "jobs": 2}, problems=["x"]
    )
    assert "| alice | batchnorm | 9 | 0 | 9 | 15 | yes |" in text  # raw, penalty, score
    assert "verified 1 (verified counts)" in text
    assert "monkeypatch" in text and "intake: x" in text


def test_feedback_hides_hidden_tests(bn_spec):
    nb = nbformat.v4.new_notebook()
    gid, points = next(iter(bn_spec.points.items()))
    test_src = dict(bn_spec.tests)[gid]
    leak = "\n".join(bn_spec.hidden_lines)
    cell = nbformat.v4.new_code_cell(
        test_src,
        metadata={"nbgrader": {"grade": True, "grade_id": gid, "points": points}},
    )
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=leak)]
    spy = nbformat.v4.new_code_cell("print(In)")
    spy.outputs = [nbformat.v4.new_output("stream", name="stdout", text=leak)]
    nb.cells = [cell, spy]
    verified = [{"output_type": "error", "ename": "NameError", "evalue": leak}]
    fb = feedback.feedback_notebook(nb, bn_spec, {gid: 0.0}, {gid: verified}, {}, {})
    html = feedback.render_html(
        fb,
        notebook="batchnorm",
        student="s",
        assignment="batchnorm",
        score=0,
        max_score=points,
    )
    text = feedback.visible_text(html)
    assert bn_spec.hidden_lines
    for line in bn_spec.hidden_lines:
        assert line not in text, f"hidden test line in the feedback: {line!r}"
    assert "BEGIN HIDDEN TESTS" not in text


def test_check_table_names_each_failed_check_and_the_likely_mistake_once():
    cell = {
        "score": 0.0,
        "max_score": 4.0,
        "report": "f: 0 / 4 points\n"
        "  [FAIL]     0/2  centered differences\n"
        "           grad does not match: yours 6.9, expected 6.8\n"
        "           Likely mistake: a one-sided difference\n"
        "  [FAIL]     0/2  a larger input\n"
        "           grad does not match: yours 1.1, expected 1.0\n"
        "           Likely mistake: a one-sided difference\n"
        "  [PASS]     0/0  shapes\n",
        "problems": "[FAIL]  0/2  centered differences\n[FAIL]  0/2  a larger input",
    }
    result = {"score": 0.0, "max_score": 4.0, "cells": {"test_f": cell}}
    text = report.check_table(result)
    assert "- centered differences (0/2): grad does not match: yours 6.9" in text
    assert "- a larger input (0/2)" in text and "shapes" not in text
    assert text.count("Likely mistake: a one-sided difference") == 1
    (test,) = report.classroom_payload(result)["tests"]
    assert "Likely mistake" in test["message"] and "yours 6.9" in test["message"]
