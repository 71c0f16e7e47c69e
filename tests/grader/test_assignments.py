"""Every assignment: the solution gets full marks from the verification, and the
untouched release notebook gets none; the kernel never sees a hidden test."""

from __future__ import annotations

import nbformat
import pytest

from autograder.authoring import assignment
from autograder.pipeline import worker
from autograder.sandbox import isolation as sandbox
from tests.grader.conftest import ROOT

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]
NAMES = assignment.available()
LIMITS = sandbox.Limits(cell_timeout=300, call_timeout=120, notebook_timeout=900)


@pytest.mark.parametrize("name", NAMES)
def test_solution_full_release_zero(name, policy):
    spec, _ = assignment.load(name)
    source = str(assignment.source_path(name))
    worker._preload({name: spec}, LIMITS, policy, {})
    for kind, path in (
        ("solution", source),
        ("release", ROOT / "notebooks" / name / f"{name}.ipynb"),
    ):
        job = {"student": kind, "assignment": name, "path": str(path), "source": source}
        res = worker.grade(job, spec, LIMITS, policy)
        assert res["status"] == "graded", res["messages"]
        for gid, cell in res["cells"].items():
            assert "in_kernel" not in cell  # the kernel runs no hidden test
            if kind == "solution" and not cell.get("manual"):
                assert cell["score"] == cell["max_score"], (gid, cell["report"])
        if kind == "solution":
            assert res["score"] == spec.auto_max_score > 0
        else:
            assert res["score"] == 0.0
        assert res["max_score"] == spec.max_score


def test_hidden_tests_never_enter_the_kernel(tmp_path, policy, bn_spec):
    """A cell that prints the kernel's input history and globals, after every
    test cell, finds no line of hidden-test source: the kernel never got it."""
    source = assignment.source_path("batchnorm")
    nb = nbformat.read(str(source), 4)
    spy = nbformat.v4.new_code_cell(
        "print(repr(In))\nprint(sorted(globals()))\n"
        "import sys\nprint(sorted(sys.modules))\n"
    )
    spy.id = "spy"
    nb.cells.append(spy)
    path = tmp_path / "batchnorm.ipynb"
    nbformat.write(nb, str(path))
    worker._preload({"batchnorm": bn_spec}, LIMITS, policy, {})
    job = {
        "student": "s",
        "assignment": "batchnorm",
        "path": str(path),
        "source": str(source),
    }
    res = worker.grade(job, bn_spec, LIMITS, policy)
    ran = nbformat.reads(res["autograded"], 4)
    printed = "".join(o.get("text", "") for o in ran.cells[-1].get("outputs", []))
    assert "print(repr(In))" in printed  # the spy ran
    assert "grade_batchnorm" not in printed
    for line in bn_spec.hidden_lines:
        assert line not in printed, line
    assert res["score"] == bn_spec.auto_max_score


def test_a_wrong_helper_is_named_in_the_cells_that_use_it(tmp_path, policy):
    """compute_fans with the fans swapped: its cell loses, and the initializer
    cells that call it say that compute_fans is the cause."""
    name = "preprocessing_init"
    spec, _ = assignment.load(name)
    source = assignment.source_path(name)
    nb = nbformat.read(str(source), 4)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == (
            "compute_fans"
        ):
            cell.source += (
                "\n\n_right_fans = compute_fans\n\n"
                "def compute_fans(shape):\n"
                "    fan_in, fan_out = _right_fans(shape)\n"
                "    return fan_out, fan_in\n"
            )
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    worker._preload({name: spec}, LIMITS, policy, {})
    job = {"student": "s", "assignment": name, "path": str(path), "source": str(source)}
    res = worker.grade(job, spec, LIMITS, policy)
    cells = res["cells"]
    assert cells["test_compute_fans"]["score"] < cells["test_compute_fans"]["max_score"]
    for gid in ("test_kaiming_normal", "test_xavier_normal"):
        if cells[gid]["score"] < cells[gid]["max_score"]:
            assert "fix compute_fans" in cells[gid]["report"], gid
    assert any("your compute_fans is wrong" in c["report"] for c in cells.values()), {
        g: c["score"] for g, c in cells.items()
    }
