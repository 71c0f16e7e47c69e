"""Grading the written answer by hand, end to end, through nbgrader's formgrader.

One class of preprocessing_init: alice (the solution: a written answer to
grade), bob (the release notebook: the answer untouched), carol (the
solution), broken (not JSON). ``grade`` runs; the formgrader is started as
the README says (``python -m autograder.authoring.lab --instructor``) on the
same work folder, and the hand scores and a comment are written through its
own HTTP API, as its page does. ``grade`` again (same arguments) must put
them into the feedback page, grades.csv, grades.json, the LMS file and the
class report; the hand scores out of range (carol 99 of 4, bob -1) must be
named and used nowhere.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import assignment
from autograder.outputs.feedback import PENDING, visible_text
from autograder.outputs.postgres import free_port
from tests.grader.conftest import FAST, ROOT, run_grader
from tests.grader.corpus.build import _answers, _fill

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]
NAME = "preprocessing_init"
WRITTEN = "explain_activation_statistics"
ALICE, BOB, CAROL, BROKEN = "alice_1001", "bob_1002", "carol_1003", "broken_1004"
COMMENT = "Right: the variance grows by fan_in * Var(W) per layer. <b>bold</b>"


def _grade(subs: Path, work: Path) -> subprocess.CompletedProcess:
    return run_grader(
        "grade",
        str(subs),
        "--assignment",
        NAME,
        "--work",
        str(work),
        "--jobs",
        "2",
        *FAST,
        env={**os.environ, "TRAINLAB_COURSE_SECRET": "hand-grading-test"},
    )


class Formgrader:
    """The instructor lab's server, spoken to as the formgrader page does."""

    def __init__(self, work: Path) -> None:
        self.token = "t" + os.urandom(12).hex()
        self.port = free_port()
        # the documented command (README, "Grading written answers")
        cmd = [
            sys.executable,
            "-m",
            "autograder.authoring.lab",
            "--instructor",
            "--work",
            str(work),
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--no-browser",
            "--skip-checks",
        ]
        self.log = open(work.parent / "formgrader.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the lab and its server: one group to stop
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.call("GET", "status")["status"]:
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def call(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/formgrader/api/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def grade(self, student: str, score: float | None, comment: str | None = None):
        """Write ``score`` (and ``comment``) on the student's written answer."""
        subs = self.call("GET", f"submitted_notebooks/{NAME}/{NAME}")
        (sub,) = [s for s in subs if s["student"] == student]
        grades = self.call("GET", f"grades?submission_id={sub['id']}")
        (grade,) = [g for g in grades if g["name"] == WRITTEN]
        assert grade["needs_manual_grade"] == (student != BOB)
        self.call("PUT", f"grade/{grade['id']}", {"manual_score": score})
        if comment is not None:
            comments = self.call("GET", f"comments?submission_id={sub['id']}")
            (c,) = [c for c in comments if c["name"] == WRITTEN]
            self.call("PUT", f"comment/{c['id']}", {"manual_comment": comment})

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def _class(subs: Path) -> None:
    """Canvas's flat download (so that the LMS file has rows): the release
    notebook filled with the solution's answers, the release as it is, and
    a file that is not JSON."""
    release = ROOT / "notebooks" / NAME / f"{NAME}.ipynb"
    if not release.is_file():
        pytest.skip(f"the {NAME} assignment is missing")
    stubs = nbformat.read(str(release), 4)
    filled = _fill(stubs, _answers(nbformat.read(str(assignment.source_path(NAME)), 4)))
    subs.mkdir()
    for login, uid, nb in (
        ("alice", ALICE, filled),
        ("bob", BOB, stubs),
        ("carol", CAROL, filled),
    ):
        nbformat.write(nb, str(subs / f"{login}_{uid[-4:]}_{uid[-4:]}0_{NAME}.ipynb"))
    (subs / f"broken_{BROKEN[-4:]}_{BROKEN[-4:]}0_{NAME}.ipynb").write_text(
        '{"cells": [ oops'
    )


def test_hand_grades_reach_the_feedback_page_the_csvs_and_the_report(tmp_path):
    subs, work = tmp_path / "subs", tmp_path / "work"
    _class(subs)
    first = _grade(subs, work)
    assert first.returncode == 0, first.stdout + first.stderr
    before = {
        r["student"]: r
        for r in json.loads((work / "grades.json").read_text())["submissions"]
    }
    alice = before[ALICE]
    assert alice["cells"][WRITTEN]["score"] is None  # awaits the formgrader
    auto = alice["score"]
    assert auto == alice["auto_max_score"] == alice["max_score"] - 4
    alice_page = work / "feedback" / ALICE / NAME / f"{NAME}.html"
    assert PENDING in visible_text(alice_page.read_text())  # not graded yet
    # a markdown answer is not an answer cell that went missing
    assert not any("missing" in m for m in alice["messages"]), alice["messages"]
    # an unreadable notebook's page gives the JSON error, not a cell's
    broken = before[BROKEN]
    assert broken["status"] == "unreadable"
    page = (work / "feedback" / BROKEN / NAME / f"{NAME}.html").read_text()
    assert "not a valid notebook" in visible_text(page)
    assert "does not appear to be JSON" in visible_text(page)  # the parse error
    assert "answer cell" not in visible_text(page)
    assert not any("answer cell" in m for m in broken["messages"])

    server = Formgrader(work)
    try:
        server.grade(ALICE, 3, COMMENT)
        server.grade(CAROL, 99)  # the formgrader's API takes it: grading must not
        server.grade(BOB, -1)
    finally:
        server.close()

    again = _grade(subs, work)
    assert again.returncode == 1, again.stdout + again.stderr  # two bad scores
    assert "0 graded, 4 unchanged" in again.stdout  # nothing graded again
    err = again.stderr
    assert (
        f"{CAROL}, {NAME}, cell '{WRITTEN}': the hand score 99 is outside 0 to 4" in err
    )
    assert (
        f"{BOB}, {NAME}, cell '{WRITTEN}': the hand score -1 is outside 0 to 4" in err
    )

    after = {
        r["student"]: r
        for r in json.loads((work / "grades.json").read_text())["submissions"]
    }
    assert after[ALICE]["score"] == auto + 3
    assert after[ALICE]["cells"][WRITTEN]["score"] == 3
    assert after[ALICE]["cells"][WRITTEN]["comment"] == COMMENT
    assert after[CAROL]["score"] == auto  # 99 used nowhere
    assert after[BOB]["score"] == before[BOB]["score"]

    page = (work / "feedback" / ALICE / NAME / f"{NAME}.html").read_text()
    seen = visible_text(page)
    assert f"Score: {auto + 3:.1f} / {alice['max_score']:.1f}" in seen
    assert "Written response (Score: 3.0 / 4.0)" in seen
    assert "Right: the variance grows by fan_in" in seen
    assert PENDING not in seen
    carol_page = (work / "feedback" / CAROL / NAME / f"{NAME}.html").read_text()
    assert "99" not in visible_text(carol_page).split("Written response")[1][:40]
    assert PENDING in visible_text(carol_page)  # still to be graded

    with open(work / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert float(rows[ALICE]["score"]) == auto + 3
    assert float(rows[CAROL]["score"]) == auto
    assert float(rows[BOB]["score"]) == before[BOB]["score"]
    with open(work / "canvas-grades.csv", newline="") as f:
        canvas = {r["ID"]: r for r in csv.DictReader(f)}
    assert float(canvas["1001"][NAME]) == auto + 3
    assert float(canvas["1003"][NAME]) == auto

    report = json.loads((work / "report.json").read_text())
    (a,) = report["assignments"]
    (hand,) = a["by_hand"]
    assert hand["student"] == ALICE
    assert hand["cells"][WRITTEN]["score"] == 3 and COMMENT in hand["comments"].values()
    assert a["stats"]["max"] == auto + 3
    html = (work / "report.html").read_text()
    assert "Graded by hand" in html and f"{WRITTEN}: 3/4" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # the comment, inert
    assert any("outside 0 to 4" in p for p in report["problems"])

    # the feedback page's notebook never holds the hidden tests
    kept = work / "feedback-source" / ALICE / NAME / f"{NAME}.ipynb"
    text = kept.read_text()
    nbformat.reads(text, 4)
    spec, _ = assignment.load(NAME)
    assert not [ln for ln in spec.hidden_lines if ln in text]


def test_a_written_answer_is_never_a_missing_answer_cell():
    """Only code answers are looked for; a code answer that is gone still is."""
    from autograder.pipeline.verify import answer_cells

    spec, _ = assignment.load(NAME)
    nb = nbformat.read(str(assignment.source_path(NAME)), 4)
    found, notes = answer_cells(nb, spec)
    assert notes == []
    assert WRITTEN not in {a["grade_id"] for a in found}
    code = [a["grade_id"] for a in found]
    nb.cells = [
        c
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        not in (WRITTEN, code[0])
    ]
    _, notes = answer_cells(nb, spec)
    assert notes == [f"answer cell '{code[0]}' is missing from the notebook"]
    assert answer_cells(None, spec) == ([], [])  # unreadable: the reader says why
