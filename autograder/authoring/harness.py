"""Execute notebooks and score their nbgrader grade cells, as nbgrader would.

Used by the tests of the assignments and by the grading command::

    nb = execute_notebook("solutions/batchnorm/batchnorm.ipynb", timeout=120)
    scores = score_notebook(nb)   # {"test_batchnorm_forward": (4.0, 4.0), ...}

A student's notebook has no hidden tests (nbgrader removed them); as nbgrader's
autograde step does, :func:`restore_tests` puts the instructor's version of every
locked cell back before executing. :func:`make_submission` builds a submission
from a source notebook with some cells replaced, for tests of wrong answers.

Kernels run with the repository root on ``PYTHONPATH`` (so hidden tests can
import ``autograder``) and this interpreter's ``bin/`` first on ``PATH``.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[2]
_REPORT_LINE = re.compile(
    r"^(?P<title>.+): (?P<score>[\d.e+-]+) / (?P<max>[\d.e+-]+) points$"
)


def kernel_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a grading kernel: ours, plus the repository on the path."""
    env = dict(os.environ)
    paths = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), env.get("PATH", "")]
    )
    # one thread per kernel: small tensors, and notebooks may run side by side
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def read_notebook(path: str | os.PathLike) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def execute_notebook(
    nb_or_path: NotebookNode | str | os.PathLike,
    timeout: float = 120,
    *,
    cwd: str | os.PathLike | None = None,
    allow_errors: bool = True,
    env: Mapping[str, str] | None = None,
) -> NotebookNode:
    """Run every cell of a notebook in a fresh kernel; return the executed copy.

    Args:
        nb_or_path: a notebook or the path of one (not modified).
        timeout: seconds allowed per cell (default 120).
        cwd: the kernel's working folder; default the notebook's folder, or
            the repository root for an in-memory notebook.
        allow_errors: keep going after a cell raises (default True), as
            nbgrader does; the error is recorded in that cell's outputs.
        env: extra environment variables for the kernel.

    Returns:
        The executed notebook, outputs included.
    """
    if isinstance(nb_or_path, NotebookNode):
        nb = copy.deepcopy(nb_or_path)
        folder = Path(cwd) if cwd else ROOT
    else:
        path = Path(nb_or_path)
        nb = read_notebook(path)
        folder = Path(cwd) if cwd else path.resolve().parent
    client = NotebookClient(
        nb,
        timeout=int(timeout),
        kernel_name="python3",
        allow_errors=allow_errors,
        record_timing=False,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=kernel_env(env), cwd=str(folder))
    return nb


def grade_cells(nb: NotebookNode) -> list[NotebookNode]:
    """The cells nbgrader scores (``grade: true``), in notebook order."""
    return [
        c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]


def score_notebook(nb: NotebookNode) -> dict[str, tuple[float, float]]:
    """Points of every grade cell of an executed notebook, as nbgrader scores them.

    Returns:
        ``{grade_id: (points, max_points)}``. A cell with an error or any stderr
        output scores 0; a cell ending with a number scores that number.
    """
    from nbgrader.utils import determine_grade

    scores = {}
    for cell in grade_cells(nb):
        points, max_points = determine_grade(cell)
        scores[cell.metadata.nbgrader.grade_id] = (float(points or 0.0), max_points)
    return scores


def total(scores: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """``(points, max_points)`` summed over cells."""
    return (
        sum(p for p, _ in scores.values()),
        sum(m for _, m in scores.values()),
    )


def cell_errors(nb: NotebookNode) -> list[tuple[str, str, str]]:
    """``(cell id, exception name, message)`` of every error output."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append((cell.get("id", "?"), out.ename, out.evalue))
    return found


def cell_stdout(cell: NotebookNode) -> str:
    return "".join(
        o.text
        for o in cell.get("outputs", [])
        if o.output_type == "stream" and o.name == "stdout"
    )


def printed_reports(nb: NotebookNode) -> dict[str, tuple[float, float]]:
    """The ``title: score / max points`` line each grade cell printed, parsed."""
    found = {}
    for cell in grade_cells(nb):
        for line in cell_stdout(cell).splitlines():
            m = _REPORT_LINE.match(line.strip())
            if m:
                found[cell.metadata.nbgrader.grade_id] = (
                    float(m["score"]),
                    float(m["max"]),
                )
                break
    return found


def _by_grade_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {
        c.metadata.nbgrader.grade_id: c
        for c in nb.cells
        if "grade_id" in c.get("metadata", {}).get("nbgrader", {})
    }


def restore_tests(student: NotebookNode, source: NotebookNode) -> NotebookNode:
    """A copy of ``student`` whose locked and grade cells are the instructor's.

    As nbgrader's autograde step (``OverwriteCells``): the source, metadata and
    type of every cell that is a grade cell or locked in ``source`` replace the
    student's cell with the same ``grade_id``, so hidden tests run and edits to
    tests are undone. Solution cells stay the student's.
    """
    nb = copy.deepcopy(student)
    reference = _by_grade_id(source)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        ref = reference.get(gid)
        if ref is None:
            continue
        meta = ref.metadata.nbgrader
        if meta.get("solution"):
            continue
        if meta.get("grade") or meta.get("locked"):
            cell.source = ref.source
            cell.cell_type = ref.cell_type
            cell.metadata["nbgrader"] = copy.deepcopy(meta)
    return nb


def make_submission(
    source: NotebookNode | str | os.PathLike,
    replacements: Mapping[str, str],
    out: str | os.PathLike | None = None,
) -> NotebookNode:
    """A submission: the source notebook with some solution cells replaced.

    Args:
        source: the solution notebook (or its path); not modified.
        replacements: ``{grade_id: new cell source}``, e.g. a wrong function.
        out: where to write the submission (optional).

    Returns:
        The submission notebook, outputs cleared.

    Raises:
        KeyError: a ``grade_id`` that is not in the notebook.
    """
    nb = (
        copy.deepcopy(source)
        if isinstance(source, NotebookNode)
        else read_notebook(source)
    )
    cells = _by_grade_id(nb)
    for gid, text in replacements.items():
        if gid not in cells:
            raise KeyError(f"no cell with grade_id {gid!r}; have {sorted(cells)}")
        cells[gid].source = text
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if out is not None:
        nbformat.write(nb, str(out))
    return nb
