"""Grading throughput: `python -m autograder grade` against plain `nbgrader autograde`.

Fifty submissions of the batchnorm assignment are generated from the solution
and release notebooks: half correct, half with assorted mistakes (a forward
that forgets beta or scales its output, a backward with a doubled dbeta or a
halved dx, a spatial forward shifted by one, an unfolded fold, an unfinished
function). The same files are graded twice in the same run, on the same machine:

- ``nbgrader autograde batchnorm`` in a fresh nbgrader course folder, run
  serially as nbgrader does (a new Jupyter kernel per notebook), after an
  untimed ``nbgrader generate_assignment``;
- ``python -m autograder grade`` with one worker per core (sandboxed, verified
  again in a second process, feedback HTML, grades.csv/json, summary), into an
  empty work folder, so nothing is cached.

Each side is timed from the command's start to its exit (process start-up
included). Every student's total must be identical on both sides (asserted).
``per_minute`` is submissions per minute; ``speed-up`` is nbgrader's time over
ours. Set ``BENCH_GRADING_N`` to grade fewer submissions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "batchnorm" / "batchnorm.ipynb"
RELEASE = ROOT / "notebooks" / "batchnorm" / "batchnorm.ipynb"


def _answers(nb) -> dict[str, str]:
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }


def _wrap(src: str, name: str, body: str) -> str:
    """Rename ``def name(`` to ``_name_ok`` and add a wrapper with ``body``."""
    renamed, n = re.subn(rf"\bdef {name}\(", f"def _{name}_ok(", src, count=1)
    if not n:
        raise ValueError(f"no 'def {name}(' in the solution")
    return f"{renamed}\n\n\ndef {name}(*args, **kwargs):\n{body}\n"


MISTAKES = {
    "forgets beta": (
        "batchnorm_forward",
        "    out, cache = _batchnorm_forward_ok(*args, **kwargs)\n"
        "    return out - args[2], cache",
    ),
    "scaled output": (
        "batchnorm_forward",
        "    out, cache = _batchnorm_forward_ok(*args, **kwargs)\n"
        "    return 1.01 * out, cache",
    ),
    "doubled dbeta": (
        "batchnorm_backward",
        "    dx, dgamma, dbeta = _batchnorm_backward_ok(*args, **kwargs)\n"
        "    return dx, dgamma, 2 * dbeta",
    ),
    "halved dx": (
        "batchnorm_backward_alt",
        "    dx, dgamma, dbeta = _batchnorm_backward_alt_ok(*args, **kwargs)\n"
        "    return 0.5 * dx, dgamma, dbeta",
    ),
    "shifted spatial": (
        "spatial_batchnorm_forward",
        "    out, cache = _spatial_batchnorm_forward_ok(*args, **kwargs)\n"
        "    return out + 1.0, cache",
    ),
    "unfolded fold": ("fold_batchnorm", "    return args[0], args[1]"),
    "unfinished": ("batchnorm_backward", "    raise NotImplementedError()"),
}


def make_submissions(dest: Path, n: int) -> dict[str, list[str]]:
    """Write ``n`` student folders; returns each student's mistakes."""
    sol = _answers(nbformat.read(SOLUTION, as_version=4))
    release = nbformat.read(RELEASE, as_version=4)
    kinds = list(MISTAKES)
    made = {}
    for i in range(n):
        answers = dict(sol)
        mistakes = [] if i % 2 == 0 else [kinds[i // 2 % len(kinds)]]
        if i % 6 == 5:  # some have two
            mistakes.append(kinds[(i // 2 + 3) % len(kinds)])
        for m in dict.fromkeys(mistakes):
            name, body = MISTAKES[m]
            answers[name] = _wrap(answers[name], name, body)
        nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                cell.source = answers.get(gid, cell.source)
        student = f"student{i:02d}"
        (dest / student).mkdir(parents=True)
        nbformat.write(nb, dest / student / "batchnorm.ipynb")
        made[student] = mistakes
    return made


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def time_nbgrader(subs: Path, course: Path) -> tuple[float, dict[str, float]]:
    """Plain nbgrader: generate (untimed), then ``nbgrader autograde`` (timed)."""
    (course / "source" / "batchnorm").mkdir(parents=True)
    shutil.copy(SOLUTION, course / "source" / "batchnorm" / "batchnorm.ipynb")
    for student in sorted(p.name for p in subs.iterdir()):
        target = course / "submitted" / student / "batchnorm"
        target.mkdir(parents=True)
        shutil.copy(subs / student / "batchnorm.ipynb", target / "batchnorm.ipynb")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.root = '.'\n"
        "c.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
        "c.ClearSolutions.code_stub = {'python': "
        "'# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
    )
    nbgrader = [sys.executable, "-m", "nbgrader"]
    run = dict(cwd=course, env=_env(), capture_output=True, text=True, check=True)
    subprocess.run([*nbgrader, "generate_assignment", "batchnorm", "--force"], **run)
    start = time.perf_counter()
    subprocess.run([*nbgrader, "autograde", "batchnorm", "--force"], **run)
    seconds = time.perf_counter() - start
    con = sqlite3.connect(course / "gradebook.db")
    rows = con.execute(
        "SELECT s.student_id, SUM(COALESCE(g.manual_score, g.auto_score, 0)) "
        "FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
        "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
    ).fetchall()
    con.close()
    return seconds, {student: float(score) for student, score in rows}


def time_ours(subs: Path, work: Path, jobs: int) -> tuple[float, dict[str, float]]:
    cmd = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        str(subs),
        "--assignment",
        "batchnorm",
        "--work",
        str(work),
        "--jobs",
        str(jobs),
        "--no-progress",
    ]
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    data = json.loads((work / "grades.json").read_text())
    return seconds, {r["student"]: r["score"] for r in data["submissions"]}


def run(n: int | None = None) -> list[dict]:
    n = n or int(os.environ.get("BENCH_GRADING_N", "50"))
    jobs = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        mistakes = make_submissions(tmp / "submissions", n)
        ours_s, ours = time_ours(tmp / "submissions", tmp / "work", jobs)
        theirs_s, theirs = time_nbgrader(tmp / "submissions", tmp / "course")
    assert ours == theirs, {
        s: (ours.get(s), theirs.get(s))
        for s in set(ours) | set(theirs)
        if ours.get(s) != theirs.get(s)
    }
    wrong = sum(1 for m in mistakes.values() if m)
    rows = [
        {
            "grader": "nbgrader autograde (serial)",
            "submissions": n,
            "with mistakes": wrong,
            "seconds": theirs_s,
            "per_minute": 60 * n / theirs_s,
        },
        {
            "grader": f"python -m autograder grade (--jobs {jobs})",
            "submissions": n,
            "with mistakes": wrong,
            "seconds": ours_s,
            "per_minute": 60 * n / ours_s,
        },
    ]
    rows.append(
        {"grader": "speed-up", "seconds": theirs_s / ours_s, "identical scores": "yes"}
    )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import table

    print(table(run()))
