"""Running an assignment's notebooks in a kernel, for the assignment tests.

Shared by ``tests/assignments/test_<name>.py``: execute the source notebook as
a submission, the untouched student notebook with the hidden tests restored
(as nbgrader's autograde does), and the student notebook filled in with the
solutions (what a student who finished would run).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from nbformat import NotebookNode

from autograder.authoring.harness import (
    cell_errors,
    execute_notebook,
    make_submission,
    read_notebook,
    restore_tests,
    score_notebook,
)

ROOT = Path(__file__).resolve().parents[2]


def source_path(name: str) -> Path:
    return ROOT / "solutions" / name / f"{name}.ipynb"


def release_path(name: str) -> Path:
    return ROOT / "notebooks" / name / f"{name}.ipynb"


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def autograded_points(name: str) -> dict[str, float]:
    """``{grade_id: points}`` of the code grade cells (manual answers excluded)."""
    nb = read_notebook(source_path(name))
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
        for c in nb.cells
        if nbgrader_meta(c).get("grade") and c.cell_type == "code"
    }


def manual_points(name: str) -> dict[str, float]:
    """``{grade_id: points}`` of the manually graded answers (markdown cells)."""
    nb = read_notebook(source_path(name))
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
        for c in nb.cells
        if nbgrader_meta(c).get("grade") and c.cell_type == "markdown"
    }


def run_submission(
    name: str, replacements: dict[str, str] | None = None, timeout: float = 300
) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str, str]]]:
    """Execute the source notebook, some solution cells replaced; scores and errors."""
    nb = make_submission(source_path(name), replacements or {})
    done = execute_notebook(nb, timeout=timeout, cwd=source_path(name).parent)
    return score_notebook(done), cell_errors(done)


def run_untouched_student(name: str, timeout: float = 300):
    """The release notebook as handed out, hidden tests restored, executed."""
    student = read_notebook(release_path(name))
    restored = restore_tests(student, read_notebook(source_path(name)))
    done = execute_notebook(restored, timeout=timeout, cwd=release_path(name).parent)
    return score_notebook(done), cell_errors(done)


def filled_student(name: str) -> NotebookNode:
    """The release notebook with each solution cell replaced by the solution's."""
    source = {
        nbgrader_meta(c).get("grade_id"): c.source
        for c in read_notebook(source_path(name)).cells
        if nbgrader_meta(c).get("solution") and c.cell_type == "code"
    }
    nb = copy.deepcopy(read_notebook(release_path(name)))
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in source:
            cell.source = "\n".join(
                line
                for line in source[gid].splitlines()
                if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
            )
    return nb


def time_filled_student(name: str, timeout: float = 300) -> tuple[float, list]:
    """Wall time of a top-to-bottom run of the filled student notebook, and errors."""
    nb = filled_student(name)
    start = time.perf_counter()
    done = execute_notebook(nb, timeout=timeout, cwd=release_path(name).parent)
    return time.perf_counter() - start, cell_errors(done)


def stderr_cells(nb: NotebookNode) -> list[str]:
    return [
        c.get("id", "?")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.output_type == "stream" and o.name == "stderr"
    ]
