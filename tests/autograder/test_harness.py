"""Scoring as nbgrader does, restoring hidden tests, building submissions."""

from __future__ import annotations

import nbformat
import pytest

from autograder.authoring.harness import (
    cell_errors,
    execute_notebook,
    make_submission,
    printed_reports,
    restore_tests,
    score_notebook,
    total,
)

pytestmark = pytest.mark.grader


def _grade_cell(
    gid: str, points: float, source: str = "", outputs=()
) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "grade_id": gid,
        "points": points,
        "schema_version": 3,
    }
    cell.outputs = list(outputs)
    return cell


def _solution_cell(gid: str, source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": False,
        "solution": True,
        "locked": False,
        "grade_id": gid,
        "schema_version": 3,
    }
    return cell


def _result(text: str):
    return nbformat.v4.new_output(
        "execute_result", data={"text/plain": text}, execution_count=1
    )


def test_scores_follow_nbgrader():
    nb = nbformat.v4.new_notebook(
        cells=[
            _grade_cell("partial", 4, outputs=[_result("2.5")]),
            _grade_cell("silent", 3),
            _grade_cell(
                "error",
                2,
                outputs=[
                    nbformat.v4.new_output("error", ename="E", evalue="", traceback=[])
                ],
            ),
            _grade_cell(
                "stderr",
                2,
                outputs=[
                    nbformat.v4.new_output("stream", name="stderr", text="warn"),
                    _result("2"),
                ],
            ),
            _solution_cell("answer", "x = 1"),
        ]
    )
    scores = score_notebook(nb)
    assert scores == {
        "partial": (2.5, 4.0),
        "silent": (3.0, 3.0),
        "error": (0.0, 2.0),
        "stderr": (0.0, 2.0),
    }
    assert total(scores) == (5.5, 11.0)
    assert cell_errors(nb)[0][1] == "E"


def test_printed_report_lines_are_parsed():
    out = nbformat.v4.new_output(
        "stream", name="stdout", text="fn: 3 / 8 points\n  [PASS] ...\n"
    )
    nb = nbformat.v4.new_notebook(
        cells=[_grade_cell("t", 8, outputs=[out, _result("3.0")])]
    )
    assert printed_reports(nb) == {"t": (3.0, 8.0)}


def test_restore_tests_undoes_edits_to_locked_cells_only():
    source = nbformat.v4.new_notebook(
        cells=[
            _solution_cell("answer", "ANSWER"),
            _grade_cell("test", 2, "HIDDEN TESTS"),
        ]
    )
    student = nbformat.v4.new_notebook(
        cells=[
            _solution_cell("answer", "mine"),
            _grade_cell("test", 99, "print('pass')"),
        ]
    )
    restored = restore_tests(student, source)
    assert restored.cells[0].source == "mine"
    assert restored.cells[1].source == "HIDDEN TESTS"
    assert restored.cells[1].metadata.nbgrader.points == 2
    assert student.cells[1].source == "print('pass')"  # the input is not changed


def test_make_submission_replaces_cells_by_grade_id(tmp_path):
    source = nbformat.v4.new_notebook(cells=[_solution_cell("answer", "x = 1")])
    out = tmp_path / "sub.ipynb"
    sub = make_submission(source, {"answer": "x = 2"}, out)
    assert sub.cells[0].source == "x = 2"
    assert nbformat.read(str(out), as_version=4).cells[0].source == "x = 2"
    assert source.cells[0].source == "x = 1"
    with pytest.raises(KeyError, match="no cell with grade_id"):
        make_submission(source, {"nope": ""})


@pytest.mark.slow
def test_execute_runs_every_cell_and_keeps_going_after_errors(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import autograder\nraise NotImplementedError()"),
            _grade_cell("after", 2, "1 + 1"),
        ]
    )
    done = execute_notebook(nb, timeout=60, cwd=tmp_path)
    assert [e[1] for e in cell_errors(done)] == ["NotImplementedError"]
    assert score_notebook(done) == {"after": (2.0, 2.0)}
