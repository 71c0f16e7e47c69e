"""requirements-grading.txt: the CI templates' pinned set, in step with its sources."""

from __future__ import annotations

import shutil

import pytest

from autograder.authoring import lockfile
from tests.grader.conftest import ROOT

pytestmark = pytest.mark.grader


def test_the_committed_lock_file_is_in_step():
    assert lockfile.main(["--check"]) == 0, (
        f"run `{lockfile.COMMAND}` and commit {lockfile.LOCK}"
    )


def test_the_lock_holds_what_grading_needs_and_no_developer_tool():
    names = {
        line.split("==")[0]
        for line in (ROOT / lockfile.LOCK).read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"torch", "nbgrader", "nbclient", "sqlalchemy", "pyyaml"} <= names
    assert not names & {"jupyter-book", "sphinx", "pytest", "playwright", "ruff"}
    assert "torch==2.13.0" in (ROOT / lockfile.LOCK).read_text()


def test_a_grading_requirement_without_a_pin_is_named(tmp_path):
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    req = tmp_path / "requirements.txt"
    req.write_text(
        "\n".join(ln for ln in req.read_text().splitlines() if "tqdm" not in ln)
    )
    with pytest.raises(ValueError, match="pins no version of tqdm"):
        lockfile.render(tmp_path)


def test_a_stale_lock_fails_the_check(tmp_path, monkeypatch, capsys):
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / lockfile.LOCK).write_text("torch==2.12.0\n")
    monkeypatch.setattr(lockfile, "ROOT", tmp_path)
    assert lockfile.main(["--check"]) == 1
    assert "not in step" in capsys.readouterr().err
