"""A submission the grader fails on is reported as not graded, never as missing."""

from __future__ import annotations

import json
import shutil

import pytest

from autograder.pipeline import cli, pool
from tests.grader.conftest import FAST, RELEASE, need_batchnorm

pytestmark = [pytest.mark.grader, pytest.mark.xdist_group("grader-e2e")]


def test_a_submission_the_grader_failed_on_is_not_graded_and_not_missing(
    tmp_path, monkeypatch, capsys
):
    need_batchnorm()
    subs = tmp_path / "subs"
    for student in ("alice", "bob"):
        (subs / student).mkdir(parents=True)
        shutil.copy(RELEASE, subs / student / "batchnorm.ipynb")
    work = tmp_path / "work"
    # every worker's result is over the channel's cap: the grader fails on each
    monkeypatch.setattr(pool, "RESULT_BYTES", 64)
    code = cli.main(["grade", str(subs), "-a", "batchnorm", "--work", str(work), *FAST])
    capsys.readouterr()
    assert code != 0
    summary = (work / "summary.md").read_text()
    assert "2 grader errors" in summary
    assert "### Missing" not in summary, summary
    part = summary.split("### Not graded (a grader error: run grade again)", 1)[1]
    assert "alice / batchnorm: grading worker" in part and "bob / batchnorm" in part
    # neither counts as a 0 nor as missing in what goes to the LMS
    data = json.loads((work / "grades.json").read_text())
    assert [r for r in data["submissions"] if r.get("status") == "missing"] == []
