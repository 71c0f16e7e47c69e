"""The student install: packaging, the generated install cell, the landing page."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from autograder.authoring import generate, student_cells
from autograder.authoring.harness import read_notebook
from autograder.pipeline import grading

pytestmark = pytest.mark.assignments

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COURSE = student_cells.course(ROOT)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*/*.ipynb"))
#: what a student never needs: grading a class, the book, the developer tools
NOT_FOR_STUDENTS = (
    "psycopg2",
    "jupyter-book",
    "sphinx",
    "pytest",
    "ruff",
    "playwright",
)


def test_packages_list_every_folder_and_the_assignments():
    found = find_packages("src") + find_packages(".", include=["autograder*"])
    listed = PROJECT["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted([*found, "autograder.assignments"])
    assert PROJECT["tool"]["setuptools"]["package-dir"]["autograder.assignments"] == (
        "solutions"
    )


def test_student_extra_has_no_grading_or_developer_tools_and_no_hard_torch():
    student = PROJECT["project"]["optional-dependencies"]["student"]
    assert not [r for r in student if r.startswith(NOT_FOR_STUDENTS)], student
    hard = PROJECT["project"]["dependencies"] + student
    assert not [r for r in hard if r.startswith("torch")], hard
    assert PROJECT["project"]["optional-dependencies"]["torch"] == ["torch==2.13.0"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_first_cell_is_the_generated_install_cell(path):
    first = read_notebook(path).cells[0]
    assert first.cell_type == "code" and first.id == student_cells.INSTALL_CELL_ID
    assert first.source == student_cells.install_source(COURSE)
    assert f"@v{PROJECT['project']['version']}" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_book_links_work_outside_the_repository(path):
    text = "".join(c.source for c in read_notebook(path).cells)
    assert "../book/" not in text
    assert COURSE.page_url("").rsplit("/", 1)[0] in text


def _run_install_cell(monkeypatch, *, present: bool, pip_rc: int = 0):
    import importlib.util

    calls = []
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "trainlab" and not present else real(name, *args)

    def run(cmd, *args, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, pip_rc)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", run)
    ns: dict = {}
    exec(student_cells.install_source(COURSE), ns)  # noqa: S102
    return calls, ns


def test_install_cell_is_a_no_op_when_the_package_is_present(monkeypatch, capsys):
    calls, ns = _run_install_cell(monkeypatch, present=True)
    assert calls == [] and capsys.readouterr().out == ""
    assert not [k for k in ns if not k.startswith("__")]  # leaves no names behind


def test_install_cell_installs_the_pinned_package_when_missing(monkeypatch, capsys):
    calls, _ = _run_install_cell(monkeypatch, present=False)
    (cmd,) = calls
    assert cmd[-1] == COURSE.package and "pip" in cmd
    assert "installed" in capsys.readouterr().out


def test_install_cell_says_what_to_do_offline(monkeypatch):
    with pytest.raises(RuntimeError, match="offline.*pip install"):
        _run_install_cell(monkeypatch, present=False, pip_rc=1)


def test_landing_page_is_generated_and_starts_with_gradcheck():
    text = (ROOT / "notebooks" / generate.LANDING).read_text()
    assert text == student_cells.landing_page(generate.discover(), COURSE)
    assert text.index("gradcheck/") < min(
        text.index(f"{n}/") for n in generate.discover() if n != "gradcheck"
    )


def test_check_on_an_unknown_notebook_lists_the_assignments(tmp_path):
    path = tmp_path / "mine.ipynb"
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(ValueError) as info:
        grading.check_notebook(path)
    assert all(n in str(info.value) for n in generate.discover())
    with pytest.raises(ValueError, match="the assignments are: activations"):
        grading.check_notebook(path, assignment_name="nope")
