"""A run killed with SIGKILL leaves a consistent gradebook; a rerun finishes it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.grader.conftest import FAST, ROOT, grade_cmd, need_batchnorm, run_grader
from tests.grader.corpus import build

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]


def _rows(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM autograder_results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _scores(work) -> dict[str, float]:
    data = json.loads((work / "grades.json").read_text())
    return {r["student"]: r["score"] for r in data["submissions"]}


def test_sigkill_then_rerun_equals_a_clean_run(tmp_path):
    need_batchnorm()
    build(tmp_path / "corpus")
    subs = tmp_path / "submissions"
    for i, name in enumerate(["correct", "wrong", "release"] * 2):
        shutil.copytree(tmp_path / "corpus" / name, subs / f"{name}{i}")
    args = ["--assignment", "batchnorm", "--jobs", "1", *FAST]

    clean = tmp_path / "clean"
    proc = run_grader("grade", str(subs), "--work", str(clean), *args[:2], *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / "killed"
    db = killed / "gradebook.db"
    run = subprocess.Popen(
        grade_cmd("grade", str(subs), "--work", str(killed), *args),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while _rows(db) < 1 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    landed = _rows(db)
    assert 1 <= landed < 6, f"{landed} results landed before the kill"

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # every submission in nbgrader's tables has its result row, and the reverse
    subs_db = {r[0] for r in con.execute("SELECT student_id FROM submitted_assignment")}
    results_db = {r[0] for r in con.execute("SELECT student FROM autograder_results")}
    assert subs_db == results_db
    con.close()

    proc = run_grader("grade", str(subs), "--work", str(killed), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{6 - landed} graded, {landed} unchanged" in proc.stdout
    assert _scores(killed) == _scores(clean)
