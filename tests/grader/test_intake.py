"""Finding submissions: student folders, Canvas downloads, zips, renamed files."""

from __future__ import annotations

import shutil
import stat
import zipfile

import pytest

from autograder.pipeline import intake
from tests.grader.conftest import RELEASE, SOLUTION

pytestmark = pytest.mark.grader


@pytest.fixture
def specs(bn_spec):
    return {"batchnorm": bn_spec}


def _found(subs) -> dict[str, tuple[str, str]]:
    return {s.student: (s.assignment, s.path.name) for s in subs}


def test_one_folder_per_student(tmp_path, specs):
    (tmp_path / "alice").mkdir()
    shutil.copy(SOLUTION, tmp_path / "alice" / "batchnorm.ipynb")
    nested = tmp_path / "bob" / "batchnorm"
    nested.mkdir(parents=True)
    shutil.copy(RELEASE, nested / "batchnorm.ipynb")
    (nested / "timestamp.txt").write_text("2026-03-01 12:00:00 UTC")
    (tmp_path / "carol" / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(RELEASE, tmp_path / "carol" / ".ipynb_checkpoints" / "batchnorm.ipynb")
    shutil.copy(RELEASE, tmp_path / "carol" / "my work (final).ipynb")
    (tmp_path / "dave").mkdir()
    subs, problems = intake.collect(tmp_path, specs, assignment=None, work=tmp_path)
    found = _found(subs)
    assert found["alice"] == ("batchnorm", "batchnorm.ipynb")
    assert found["bob"] == ("batchnorm", "batchnorm.ipynb")
    assert found["carol"] == ("batchnorm", "my work (final).ipynb")
    bob = next(s for s in subs if s.student == "bob")
    assert bob.timestamp == "2026-03-01 12:00:00 UTC"
    carol = next(s for s in subs if s.student == "carol")
    assert any("renamed" in n for n in carol.notes)
    assert problems == ["dave: no notebook found"]


def test_canvas_flat_download(tmp_path, specs):
    shutil.copy(SOLUTION, tmp_path / "smithjane_12345_67890_batchnorm.ipynb")
    shutil.copy(RELEASE, tmp_path / "doejohn_LATE_222_333_batchnorm-1.ipynb")
    (tmp_path / "notes.ipynb").write_text("{}")
    subs, problems = intake.collect(tmp_path, specs, assignment=None, work=tmp_path)
    assert _found(subs) == {
        "smithjane_12345": ("batchnorm", "smithjane_12345_67890_batchnorm.ipynb"),
        "doejohn_222": ("batchnorm", "doejohn_LATE_222_333_batchnorm-1.ipynb"),
    }
    assert len(problems) == 1 and "notes.ipynb" in problems[0]


@pytest.mark.parametrize("layout", ["per-student", "canvas", "wrapped"])
def test_zip_archives(tmp_path, specs, layout):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        if layout == "canvas":
            zf.write(SOLUTION, "smithjane_12345_67890_batchnorm.ipynb")
        else:
            top = "submissions/" if layout == "wrapped" else ""
            zf.write(SOLUTION, f"{top}smithjane/batchnorm.ipynb")
            zf.write(RELEASE, f"{top}doejohn/batchnorm/batchnorm.ipynb")
    subs, _ = intake.collect(archive, specs, assignment="batchnorm", work=tmp_path)
    expected = {"smithjane_12345"} if layout == "canvas" else {"smithjane", "doejohn"}
    assert {s.student for s in subs} == expected
    assert all(s.assignment == "batchnorm" for s in subs)


@pytest.mark.parametrize(
    "member, why",
    [
        ("../escape.ipynb", "leads out of the archive"),
        ("/abs/x.ipynb", "absolute path"),
        ("link", "symbolic link"),
    ],
)
def test_an_unsafe_member_is_skipped_alone(tmp_path, specs, member, why):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo(member)
        if member == "link":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "data")
        zf.write(SOLUTION, "alice/batchnorm.ipynb")
    subs, problems = intake.collect(archive, specs, assignment=None, work=tmp_path)
    assert _found(subs) == {"alice": ("batchnorm", "batchnorm.ipynb")}
    assert len(problems) == 1 and repr(member) in problems[0] and why in problems[0]
    assert not (tmp_path.parent / "escape.ipynb").exists()


def test_an_unreadable_archive_is_refused(tmp_path, specs):
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"PK\x03\x04 but not a zip")
    with pytest.raises(intake.IntakeError, match="not a zip archive"):
        intake.collect(archive, specs, assignment=None, work=tmp_path)


def test_forced_assignment_takes_an_unreadable_notebook(tmp_path, specs):
    (tmp_path / "eve").mkdir()
    (tmp_path / "eve" / "whatever.ipynb").write_text("{not json")
    subs, _ = intake.collect(tmp_path, specs, assignment=None, work=tmp_path)
    assert subs == []
    subs, _ = intake.collect(tmp_path, specs, assignment="batchnorm", work=tmp_path)
    assert _found(subs) == {"eve": ("batchnorm", "whatever.ipynb")}


def test_student_ids_are_made_safe():
    assert intake.safe_id("../../etc") == "~2E.~2F..~2Fetc"
    assert intake.safe_id("Jane Doe (2)") == "Jane+Doe+~282~29"
    assert intake.safe_id("...") == "~2E.~2E"
    for plain in ("alice", "bob_smith", "smithjane", "jane.doe@uni.edu", "o-neil"):
        assert intake.safe_id(plain) == plain  # existing gradebooks keep working


def test_a_timestamp_file_that_is_huge_or_a_link_is_read_safely(tmp_path, specs):
    for student in ("erin", "frank"):
        (tmp_path / student).mkdir()
        shutil.copy(RELEASE, tmp_path / student / "batchnorm.ipynb")
    # 200 MB of timestamp: only its head is read
    with open(tmp_path / "erin" / "timestamp.txt", "wb") as f:
        f.write(b"2026-03-01 12:00:00 UTC" + b" " * 41)
        f.truncate(200 * 2**20)
    secret = tmp_path / "instructor-only.txt"
    secret.write_text("not the student's")
    (tmp_path / "frank" / "timestamp.txt").symlink_to(secret)
    subs, _ = intake.collect(tmp_path, specs, assignment=None, work=tmp_path)
    by = {s.student: s for s in subs}
    assert by["erin"].timestamp == "2026-03-01 12:00:00 UTC"
    assert by["frank"].timestamp is None  # a link is not read
