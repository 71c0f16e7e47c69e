"""Grades back into the LMS: Canvas's and Moodle's import files, their roster
exports, bad input, and one graded class with late work."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from autograder.outputs import lms
from autograder.pipeline import classlist, identity
from tests.grader.conftest import FAST, RELEASE, SOLUTION, need_batchnorm, run_grader

pytestmark = pytest.mark.grader

CANVAS_EXPORT = (
    "Student,ID,SIS User ID,SIS Login ID,Section,batchnorm (777),Current Score\n"
    "    Points Possible,,,,,37.00,(read only)\n"
    '"Adams, Amy",1001,S1001,aadams,Sec 1,,\n'
    '"Hill, Ann",1008,S1008,ahill,Sec 2,,\n'
)
MOODLE_EXPORT = (
    "\ufeffFirst name,Last name,ID number,Email address,Roles,Groups\n"
    "Jane,Doe,M-1,jdoe@example.edu,Student,\n"
    "Ann,Hill,,ahill@example.edu,Student,\n"
)


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_roster_export(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(CANVAS_EXPORT)
    roster = lms.read_roster(path)
    assert roster.kind == "canvas" and roster.assignments == {"batchnorm": "777"}
    assert [
        (p.name, p.canvas_id, p.sis_id, p.login, p.section) for p in roster.people
    ] == [
        ("Adams, Amy", "1001", "S1001", "aadams", "Sec 1"),
        ("Hill, Ann", "1008", "S1008", "ahill", "Sec 2"),
    ]


def test_moodle_roster_export(tmp_path):
    path = tmp_path / "participants.csv"
    path.write_text(MOODLE_EXPORT, encoding="utf-8")
    roster = lms.read_roster(path)
    assert roster.kind == "moodle"
    assert [(p.first, p.last, p.sis_id, p.email) for p in roster.people] == [
        ("Jane", "Doe", "M-1", "jdoe@example.edu"),
        ("Ann", "Hill", "", "ahill@example.edu"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"Name,Score\nalice,3\n",
            "is in a layout the grader does not know; expected a Canvas gradebook "
            "export (columns Student, ID, SIS User ID, SIS Login ID, Section) or a "
            "Moodle participants export (columns First name, Last name, Email "
            "address); found: Name, Score",
        ),
        (b"", "found: an empty file"),
        (b"\xff\xfeS\x00t\x00", "is not UTF-8 text; expected the CSV file"),
    ],
)
def test_an_unusable_roster_says_what_was_expected(tmp_path, data, message):
    path = tmp_path / "roster.csv"
    path.write_bytes(data)
    with pytest.raises(lms.RosterError) as err:
        lms.read_roster(path)
    assert message in str(err.value)
    with pytest.raises(lms.RosterError, match="cannot be read"):
        lms.read_roster(tmp_path / "nowhere.csv")


def _student(name: str, kind: str = "folder", lms_id: str = "") -> identity.Student:
    return identity.Student(
        (kind, name, lms_id), identity.student_id(name, lms_id), name, lms_id
    )


def test_students_are_matched_to_the_roster_and_the_rest_are_absent(tmp_path):
    path = tmp_path / "participants.csv"
    path.write_text(MOODLE_EXPORT, encoding="utf-8")
    roster = lms.read_roster(path)
    jane = _student("Jane Doe", "moodle", "4321")  # Moodle's participant id
    zoe = _student("zoe")
    classes = classlist.build([jane, zoe], roster, ["zoe", "Carl Ito"])
    assert classes.person_of[jane.id].email == "jdoe@example.edu"
    assert classes.person_of[zoe.id].email == ""
    assert [p.name for p in classes.absent] == ["Ann Hill", "Carl Ito"]


def test_canvas_and_moodle_files_field_by_field(tmp_path):
    amy = lms.Person("Adams, Amy", canvas_id="1001", sis_id="S1001", login="aadams")
    jane = lms.Person("Jane Doe", "Jane", "Doe", sis_id="M-1", email="j@x.edu")
    evil = lms.Person("=HYPERLINK(1)", canvas_id="1002")
    zoe = lms.Person("zoe")
    rows = [
        lms.Row(amy, {"batchnorm": 33.3, "init": 10.0}),
        lms.Row(jane, {"batchnorm": None}),
        lms.Row(evil, {"init": 0.0}),
        lms.Row(zoe, {"batchnorm": 37.0}),
    ]
    tops = {"batchnorm": 37.0, "init": 10.0}
    left = lms.write_canvas(tmp_path / "c.csv", rows, tops, {"batchnorm": "777"})
    assert _rows(tmp_path / "c.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
        + ["batchnorm (777)", "init"],
        ["Points Possible", "", "", "", "", "37", "10"],
        ["Adams, Amy", "1001", "S1001", "aadams", "", "33.3", "10"],
        ["Jane Doe", "", "M-1", "", "", "", ""],
        ["'=HYPERLINK(1)", "1002", "", "", "", "", "0"],
    ]
    assert left == [zoe]
    left = lms.write_moodle(tmp_path / "m.csv", rows, tops)
    assert _rows(tmp_path / "m.csv") == [
        ["First name", "Last name", "ID number", "Email address", "batchnorm", "init"],
        ["Adams, Amy", "", "S1001", "", "33.3", "10"],
        ["Jane", "Doe", "M-1", "j@x.edu", "", ""],
    ]
    assert left == [evil, zoe]


# -- one class, graded end to end

DUE = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.UTC)
H, D = 3600, 86400
#: Canvas download name -> (notebook, seconds after the due date)
CLASS = {
    "adams_1001_5001_batchnorm.ipynb": (SOLUTION, -H),  # on time
    "brown_LATE_1002_5002_batchnorm.ipynb": (SOLUTION, 600),  # in the grace period
    "clark_LATE_1003_5003_batchnorm.ipynb": (SOLUTION, 20 * H),  # one day
    "davis_LATE_1004_5004_batchnorm.ipynb": (SOLUTION, 2 * D + 5 * H),  # three days
    "evans_LATE_1005_5005_batchnorm.ipynb": (SOLUTION, 9 * D),  # capped
    "fox_LATE_1006_5006_batchnorm.ipynb": (SOLUTION, 2 * D),  # with an extension
    "green_LATE_1007_5007_batchnorm.ipynb": (RELEASE, D),  # late, and 0 points
}
#: student id -> percent lost
PERCENT = {
    "adams_1001": 0,
    "brown_1002": 0,
    "clark_1003": 10,
    "davis_1004": 30,
    "evans_1005": 50,
    "fox_1006": 0,
    "green_1007": 0,
    "zoe": 0,
}
COURSE = """\
timezone: UTC
late_penalty: {per: day, percent: 10, cap: 50, grace: 15 minutes}
assignments:
  batchnorm: {due: '2025-03-01 23:59'}
extensions:
  batchnorm:
    fox_1006: 3 days
students: [zoe, Ian Jones]
"""
ROSTER = "Student,ID,SIS User ID,SIS Login ID,Section,batchnorm (777)\n" + "".join(
    f"{name},{1000 + i},S{1000 + i},{name.lower()},Sec 1,\n"
    for i, name in enumerate(
        ["Adams", "Brown", "Clark", "Davis", "Evans", "Fox", "Green", "Hill"], 1
    )
)


def _write_class(root: Path) -> Path:
    src = root / "submissions"
    src.mkdir()
    for name, (notebook, after) in CLASS.items():
        shutil.copy(notebook, src / name)
        when = DUE.timestamp() + after
        os.utime(src / name, (when, when))
    (src / "zoe").mkdir()  # a folder, with nbgrader's timestamp.txt
    shutil.copy(SOLUTION, src / "zoe" / "batchnorm.ipynb")
    (src / "zoe" / "timestamp.txt").write_text("2025-03-01 12:00:00.000000 UTC\n")
    return src


@pytest.mark.slow
@pytest.mark.xdist_group("grader-e2e")
def test_a_class_with_late_work_goes_back_into_the_lms(tmp_path, bn_spec):
    need_batchnorm()
    src, work = _write_class(tmp_path), tmp_path / "work"
    work.mkdir()
    (work / "course.yml").write_text(COURSE)
    (tmp_path / "canvas.csv").write_text(ROSTER)
    proc = run_grader(
        "grade", str(src), "-a", "batchnorm", "--work", str(work),
        "--roster", str(tmp_path / "canvas.csv"), "--jobs", "2", *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    top = float(bn_spec.max_score)
    final = {sid: (top if sid != "green_1007" else 0.0) for sid in PERCENT}
    penalty = {sid: round(top * p / 100, 6) for sid, p in PERCENT.items()}
    final = {sid: final[sid] - penalty[sid] for sid in PERCENT}

    data = json.loads((work / "grades.json").read_text())["submissions"]
    by = {r["student"]: r for r in data}
    for sid in PERCENT:
        r = by[sid]
        raw = 0.0 if sid == "green_1007" else top
        assert (r["raw_score"], r["late_penalty"], r["score"]) == pytest.approx(
            (raw, penalty[sid], final[sid])
        ), sid
    assert by["zoe"]["late"]["source"] == "timestamp.txt"
    assert by["clark_1003"]["late"]["seconds_late"] == 20 * H
    missing = {r["display_name"] for r in data if r["status"] == "missing"}
    assert missing == {"Hill", "Ian Jones"}
    assert all(r["score"] is None for r in data if r["status"] == "missing")

    grades = {r["student_id"]: r for r in csv.DictReader(open(work / "grades.csv"))}
    clark = grades["clark_1003"]
    assert float(clark["late_submission_penalty"]) == pytest.approx(
        penalty["clark_1003"]
    )
    assert float(clark["score"]) == pytest.approx(final["clark_1003"])
    assert clark["duedate"].startswith("2025-03-01 23:59")

    canvas = _rows(work / "canvas-grades.csv")
    assert canvas[0] == [*lms.CANVAS_COLUMNS, "batchnorm (777)"]
    assert canvas[1] == ["Points Possible", "", "", "", "", f"{top:g}"]
    want = [
        [name, str(1000 + i), f"S{1000 + i}", name.lower(), "Sec 1", f"{score:g}"]
        for i, (name, score) in enumerate(
            [(n.split("_")[0].title(), final[n]) for n in list(PERCENT)[:7]], 1
        )
    ] + [["Hill", "1008", "S1008", "hill", "Sec 1", ""]]
    assert sorted(canvas[2:]) == sorted(want)
    moodle = _rows(work / "moodle-grades.csv")
    assert moodle[0] == [*lms.MOODLE_COLUMNS, "batchnorm"]
    assert sorted(moodle[1:]) == sorted([r[0], "", r[2], "", r[5]] for r in want)

    summary = (work / "summary.md").read_text()
    assert "| raw | late penalty | score |" in summary
    assert "Ian Jones / batchnorm" in summary and "missing" in summary
    assert "canvas-grades.csv: left out" in summary and "zoe" in summary
    html = (
        work / "feedback" / "clark_1003" / "batchnorm" / "batchnorm.html"
    ).read_text()
    assert "Late submission penalty" in html


def test_an_export_in_an_unknown_layout_says_what_was_expected(tmp_path, bn_spec):
    from autograder.pipeline import intake

    src = tmp_path / "export"
    src.mkdir()
    (src / "grades.xlsx").write_text("not a notebook")
    (src / "readme.txt").write_text("hello")
    found = intake.gather(src, {"batchnorm": bn_spec}, assignment=None, work=tmp_path)
    assert found.submissions == []
    assert found.problems == [
        "export: no notebook in a layout the grader knows; expected one folder "
        "per student (alice/batchnorm.ipynb), Canvas downloads "
        "(<name>_<userid>_<submissionid>_<file>.ipynb) or Moodle folders "
        "(<Full Name>_<id>_assignsubmission_file_/); found: grades.xlsx, readme.txt"
    ]
