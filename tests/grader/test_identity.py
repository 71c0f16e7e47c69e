"""Student ids: every submission its own id, stable, reversible; a bad zip member
is one skipped file, not a refused batch."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import unicodedata
import zipfile
from pathlib import Path

import pytest

from autograder.pipeline import identity, intake
from tests.grader.conftest import FAST, RELEASE, SOLUTION, need_batchnorm, run_grader

pytestmark = pytest.mark.grader

LONG = "Maria-Fernanda " + "de la Cruz y Gonzalez " * 5  # 125 characters
#: student folders whose names collided before (folder name -> notebook)
FOLDERS = {
    "张三": SOLUTION,
    "李四": RELEASE,
    "a b": SOLUTION,
    "a_b": RELEASE,
    LONG + "Primera": SOLUTION,
    LONG + "Segunda": RELEASE,
    "Full Name_12345_assignsubmission_file_": SOLUTION,
    "alice": RELEASE,
    # shell metacharacters, and what a spreadsheet or a command line would read
    "$(whoami); ls `id` | x": SOLUTION,
    "-rf": RELEASE,
    "=SUM(A1)": SOLUTION,
    "@bob": RELEASE,
}
#: Canvas downloads: two users named smithjane, and the names above
CANVAS = {
    "smithjane_1001_5001_batchnorm.ipynb": SOLUTION,
    "smithjane_1002_5002_batchnorm.ipynb": RELEASE,
    "张三_1003_5003_batchnorm.ipynb": RELEASE,
    "李四_1004_5004_batchnorm.ipynb": SOLUTION,
    "a b_1005_5005_batchnorm.ipynb": RELEASE,
    LONG + "Primera_1006_5006_batchnorm.ipynb": SOLUTION,
    LONG + "Segunda_1007_5007_batchnorm.ipynb": RELEASE,
}
#: what each student is in the roster: (display name, LMS id)
EXPECTED = {
    "folders": {(n, "") for n in FOLDERS if "assignsubmission" not in n}
    | {("Full Name", "12345")},
    "canvas": {(f.split("_")[0], f.split("_")[1]) for f in CANVAS},
}
SAFE_ID = re.compile(r"[A-Za-z0-9_.@+~-]{1,128}")


@pytest.fixture
def specs(bn_spec):
    return {"batchnorm": bn_spec}


def _write(root: Path, layout: str) -> Path:
    """The submissions of ``layout`` under ``root``; returns what to collect."""
    folder = root / "submissions"
    folder.mkdir()
    if layout.endswith("folders"):
        for name, src in FOLDERS.items():
            (folder / name).mkdir()
            shutil.copy(src, folder / name / "batchnorm.ipynb")
    else:
        for name, src in CANVAS.items():
            shutil.copy(src, folder / name)
    if not layout.startswith("zip"):
        return folder
    archive = root / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*.ipynb")):
            zf.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize("layout", ["folders", "canvas", "zip-folders", "zip-canvas"])
def test_every_student_keeps_an_id_of_their_own(tmp_path, specs, layout):
    src = _write(tmp_path, layout)
    work = tmp_path / "work"
    first = intake.gather(src, specs, assignment=None, work=work)
    ids = [s.student for s in first.submissions]
    kind = layout.removeprefix("zip-")
    assert len(ids) == len(set(ids)) == len(EXPECTED[kind]), ids
    assert all(SAFE_ID.fullmatch(i) and not i.startswith(".") for i in ids), ids
    assert not any("not graded" in n for s in first.submissions for n in s.notes)
    assert first.problems == []
    again = intake.gather(src, specs, assignment=None, work=work)
    assert [(s.student, s.path) for s in again.submissions] == [
        (s.student, s.path) for s in first.submissions
    ]
    roster = work / "roster.csv"
    identity.write_roster(first.students, roster)
    rows = identity.read_roster(roster)
    assert {(r["display_name"], r["lms_id"]) for r in rows} == EXPECTED[kind]
    assert {r["id"] for r in rows} == set(ids)
    for r in rows:
        assert r["graded_as"] == "batchnorm" and r["source"].endswith(".ipynb")
        name = r["display_name"] + (f"_{r['lms_id']}" if r["lms_id"] else "")
        if len(name) < 60:  # short ids decode to the name; long ones are hashed
            assert identity.decode_id(r["id"]) == name
        else:
            assert identity.decode_id(r["id"]).startswith(name[:40])


def test_known_ids_stay_as_they_were(tmp_path, specs):
    src = _write(tmp_path, "folders")
    subs, _ = intake.collect(src, specs, assignment=None, work=tmp_path / "w")
    ids = {s.display_name: s.student for s in subs}
    assert ids["alice"] == "alice" and ids["a_b"] == "a_b"
    assert ids["a b"] == "a+b" and ids["张三"] == "~E5~BC~A0~E4~B8~89"
    assert ids["Full Name"] == "Full+Name_12345"
    primera, segunda = ids[LONG + "Primera"], ids[LONG + "Segunda"]
    assert primera[:60] == segunda[:60] and primera != segunda
    assert len(primera) <= identity.MAX_ID


def test_names_a_disk_cannot_tell_apart_get_a_suffix(tmp_path, specs):
    nfc = unicodedata.normalize("NFC", "José")
    nfd = unicodedata.normalize("NFD", "José")
    names = ["Alice", "alice", nfc, nfd]
    made = []
    for name in names:
        try:
            (tmp_path / "subs" / name).mkdir(parents=True)
        except FileExistsError:  # this file system folds them: nothing to test
            pytest.skip("the file system does not keep these names apart")
        shutil.copy(SOLUTION, tmp_path / "subs" / name / "batchnorm.ipynb")
        made.append(name)
    if len(os.listdir(tmp_path / "subs")) < len(names):
        pytest.skip("the file system normalizes file names")
    found = intake.gather(tmp_path / "subs", specs, assignment=None, work=tmp_path)
    ids = sorted(s.student for s in found.submissions)
    assert ids == ["Alice", "Jos~C3~A9", "Jos~C3~A9~-2", "alice~-2"]
    assert len({i.lower() for i in ids}) == 4
    renamed = [p for p in found.problems if "would share the student id" in p]
    assert len(renamed) == 2 and any("'alice~-2'" in p for p in renamed)
    assert identity.decode_id("alice~-2") == "alice"


def test_ids_round_trip_and_never_collide():
    names = [
        "alice",
        "a b",
        "a_b",
        "a+b",
        "a~2Bb",
        "张三",
        "李四",
        "José",
        ".hidden",
        "..",
        "x~-2",
        "trailing.",
        "tab\there",
        "\udcff raw byte",
        "",
    ]
    ids = [identity.student_id(n) for n in names]
    assert len(set(ids)) == len(names)
    for name, sid in zip(names, ids, strict=True):
        assert SAFE_ID.fullmatch(sid) and sid not in (".", "..")
        assert not sid.startswith(".") and not sid.endswith(".")
        assert identity.decode_id(sid) == name
    long = ["y" * 150 + str(i) for i in range(50)]
    assert len({identity.student_id(n) for n in long}) == 50
    assert identity.student_id(long[0]) == identity.student_id(long[0])


def test_roster_cells_are_never_formulas(tmp_path):
    st = identity.Student(("folder", "=cmd"), "~3Dcmd", "=cmd", "", [("=cmd/x", "")])
    quote = identity.Student(("folder", "'=x"), "q", "'=x", "", [("a", "")])
    identity.write_roster([st, quote], tmp_path / "roster.csv")
    raw = list(csv.reader(open(tmp_path / "roster.csv")))
    assert all(not c.startswith("=") for row in raw for c in row)
    back = {r["id"]: r for r in identity.read_roster(tmp_path / "roster.csv")}
    assert back["~3Dcmd"]["display_name"] == "=cmd"
    assert back["q"]["display_name"] == "'=x"


def _biggest() -> int:
    return max(SOLUTION.stat().st_size, RELEASE.stat().st_size)


def _bad_zip(path: Path, big: bool = False) -> Path:
    """Good submissions and one member of every unsafe kind."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(SOLUTION, "export/alice/batchnorm.ipynb")
        zf.write(RELEASE, "export/bob/batchnorm.ipynb")
        # ZipFile.write would clean these names: writestr keeps them as given
        zf.writestr(zipfile.ZipInfo("export/../evil.ipynb"), SOLUTION.read_bytes())
        zf.writestr(zipfile.ZipInfo("/tmp/absolute-evil.ipynb"), SOLUTION.read_bytes())
        link = zipfile.ZipInfo("export/mallory/batchnorm.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        device = zipfile.ZipInfo("export/eve/batchnorm.ipynb")
        device.external_attr = (stat.S_IFCHR | 0o666) << 16
        zf.writestr(device, "")
        if big:
            zf.writestr("export/trent/batchnorm.ipynb", b" " * (_biggest() + 1))
    return path


BAD = {
    "export/../evil.ipynb": "leads out of the archive",
    "/tmp/absolute-evil.ipynb": "absolute path",
    "export/mallory/batchnorm.ipynb": "symbolic link",
    "export/eve/batchnorm.ipynb": "device or other special file",
}


def test_each_unsafe_member_is_one_skipped_file(tmp_path, specs, monkeypatch):
    monkeypatch.setattr(intake, "MAX_MEMBER_BYTES", _biggest())
    archive = _bad_zip(tmp_path / "export.zip", big=True)
    work = tmp_path / "work"
    for _ in range(2):  # the second run reads the extraction it made
        found = intake.gather(archive, specs, assignment=None, work=work)
        assert sorted(s.student for s in found.submissions) == ["alice", "bob"]
        bad = {**BAD, "export/trent/batchnorm.ipynb": "over the limit"}
        assert len(found.problems) == len(bad), found.problems
        for member, why in bad.items():
            assert any(repr(member) in p and why in p for p in found.problems), member
    assert not (tmp_path / "evil.ipynb").exists()
    assert not list(work.rglob("evil.ipynb")) and not list(work.rglob("*absolute*"))
    assert not [p for p in work.rglob("*") if p.is_symlink()]


def test_an_archive_over_the_limits_is_refused(tmp_path, specs, monkeypatch):
    monkeypatch.setattr(intake, "MAX_ARCHIVE_FILES", 3)
    archive = _bad_zip(tmp_path / "export.zip")
    with pytest.raises(intake.IntakeError, match="holds 6 files; the limit is 3"):
        intake.collect(archive, specs, assignment=None, work=tmp_path)


def _grade(src: Path, work: Path) -> tuple[dict, str]:
    proc = run_grader(
        "grade", str(src), "--assignment", "batchnorm", "--work", str(work), *FAST
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads((work / "grades.json").read_text())
    scores = {}
    for r in data["submissions"]:
        assert r["student"] not in scores, f"two entries for {r['student']}"
        scores[r["student"]] = r["score"]
    return scores, proc.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("grader-e2e")
def test_colliding_names_are_graded_apart(tmp_path, bn_spec):
    need_batchnorm()
    src = _write(tmp_path, "folders")
    for name, notebook in CANVAS.items():
        if name.startswith("smithjane"):
            shutil.copy(notebook, src / name)
    work = tmp_path / "work"
    scores, _ = _grade(src, work)
    rows = identity.read_roster(work / "roster.csv")
    by_name = {(r["display_name"], r["lms_id"]): r for r in rows}
    wanted = {(n, ""): nb for n, nb in FOLDERS.items()}
    wanted[("Full Name", "12345")] = wanted.pop(
        ("Full Name_12345_assignsubmission_file_", "")
    )
    wanted |= {("smithjane", "1001"): SOLUTION, ("smithjane", "1002"): RELEASE}
    assert set(by_name) == set(wanted) and len(scores) == len(wanted)
    full = float(bn_spec.max_score)
    for who, notebook in wanted.items():
        expect = full if notebook == SOLUTION else 0.0
        assert scores[by_name[who]["id"]] == expect, who
    grades_csv = {r["student_id"] for r in csv.DictReader(open(work / "grades.csv"))}
    # a cell that a spreadsheet would read as a formula carries a leading quote
    # (an id never starts with one: identity escapes it)
    assert {c.removeprefix("'") for c in grades_csv} == set(scores)
    assert all(not c.startswith(("=", "+", "-", "@")) for c in grades_csv)
    for sid in scores:
        assert (work / "feedback" / sid / "batchnorm" / "batchnorm.html").is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("grader-e2e")
def test_a_zip_with_unsafe_members_is_still_graded(tmp_path, bn_spec):
    need_batchnorm()
    work = tmp_path / "work"
    scores, stdout = _grade(_bad_zip(tmp_path / "export.zip"), work)
    assert scores == {"alice": float(bn_spec.max_score), "bob": 0.0}
    summary = (work / "summary.md").read_text()
    for member in BAD:
        escaped = member.replace("_", "\\_")  # as summary.md writes it
        assert escaped in summary, member
    assert not (tmp_path / "evil.ipynb").exists()
