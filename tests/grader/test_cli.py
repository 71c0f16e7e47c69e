"""``python -m autograder``: the help an instructor reads, and ``check``."""

from __future__ import annotations

import json

import pytest

from tests.grader.conftest import FAST, SOLUTION, need_batchnorm, run_grader

pytestmark = pytest.mark.grader


def test_help_explains_the_commands():
    from autograder.pipeline.cli import build_parser

    parser = build_parser()
    text = parser.format_help()
    assert "grade SUBMISSIONS" in text and "check NOTEBOOK" in text
    grade = parser._subparsers._group_actions[0].choices["grade"].format_help()
    for flag in ("--assignment", "--jobs", "--db", "--student", "--work", "--force"):
        assert flag in grade
    assert (
        "Canvas" in grade and "grades.csv" in grade and "GITHUB_STEP_SUMMARY" in grade
    )


@pytest.mark.slow
@pytest.mark.xdist_group("grader-e2e")
def test_check_exit_codes_and_table(tmp_path):
    need_batchnorm()
    out = tmp_path / "result.json"
    proc = run_grader("check", str(SOLUTION), "--json", str(out), *FAST[:-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["score"] == result["max_score"] > 0
    assert f"Points {result['max_score']:g}/{result['max_score']:g}" in proc.stdout
    assert "test_batchnorm_forward" in proc.stdout
    broken = tmp_path / "batchnorm.ipynb"
    broken.write_text("{not json")
    proc = run_grader("check", str(broken), *FAST[:-1])
    assert proc.returncode == 2 and "not a valid notebook" in proc.stdout
