"""Feedback pages drawn again when the grades written by hand change.

A grading worker renders each feedback page and hands back the notebook it
rendered (hidden tests removed, the verifier's outputs in, cut to size); it is
kept as ``feedback-source/<student>/<assignment>/<assignment>.ipynb``. When
the hand grades of a submission (:mod:`autograder.pipeline.hand_grades`) are
not those its page shows, :func:`refresh` puts the scores and comments into
that notebook's nbgrader metadata (what nbgrader's feedback template reads:
each cell's ``score`` and a written answer's ``comment``) and renders the page
again with the new total. ``<assignment>.hand`` beside the notebook holds the
hash of the hand grades the page shows ('' or missing: none).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder.outputs.feedback import PENDING

SOURCE_DIR = "feedback-source"


def source_path(work: Path, student: str, assignment: str) -> Path:
    """Where the notebook of a feedback page is kept."""
    return work / SOURCE_DIR / student / assignment / f"{assignment}.ipynb"


def _marker(path: Path) -> Path:
    return path.with_suffix(".hand")


def with_grades(fb: NotebookNode, cells: dict[str, dict], comments: dict[str, str]):
    """``fb`` with each grade cell's ``score`` from ``cells`` and the hand
    ``comments`` of answer cells (in place; returned)."""
    for cell in fb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if meta.get("grade") and gid in cells:
            meta["score"] = float(cells[gid].get("score") or 0.0)
        if (meta.get("solution") or meta.get("task")) and gid in comments:
            meta["comment"] = comments[gid]
        elif (
            meta.get("comment") == PENDING
            and cells.get(gid, {}).get("score") is not None
        ):
            meta["comment"] = None  # graded now
    return fb


def refresh(
    work: Path, results: list[dict], digest: Callable[[tuple[str, str]], str]
) -> list[str]:
    """Render again the pages whose hand grades changed; returns notes.

    ``results`` have the hand grades applied
    (:func:`autograder.pipeline.hand_grades.apply`); ``digest((assignment,
    student))`` is the hash of a submission's hand grades ('' for none).
    """
    from autograder.outputs import bounded

    notes = []
    for r in results:
        student, name = str(r.get("student")), str(r.get("assignment"))
        src = source_path(work, student, name)
        want = digest((name, student))
        if not src.is_file():
            if want:  # a page from before pages were kept: it cannot be redrawn
                notes.append(
                    f"{student}, {name}: the feedback page does not show the hand "
                    f"grades; grade it again to draw it: --student {student}"
                )
            continue
        marker = _marker(src)
        shown = marker.read_text().strip() if marker.is_file() else ""
        if want == shown:
            continue
        fb = nbformat.reads(src.read_text(), as_version=4)
        with_grades(fb, r.get("cells", {}), r.get("hand_comments", {}))
        html, cut = bounded.render(
            fb,
            notebook=str(r.get("notebook") or name),
            student=student,
            assignment=name,
            score=float(r.get("raw_score", r.get("score", 0.0))),
            max_score=float(r.get("max_score", 0.0)),
            late_penalty=float(r.get("late_penalty") or 0.0),
        )
        notes += [f"{student}, {name}: {n}" for n in cut]
        page = work / "feedback" / student / name / f"{name}.html"
        _write(page, html)
        _write(marker, want + "\n")
    return notes


def keep(src: Path, notebook: str | None) -> None:
    """Keep a worker's rendered notebook at ``src`` (:func:`source_path`), or
    forget it (None); the page it was rendered into shows no hand grades."""
    _marker(src).unlink(missing_ok=True)
    if notebook is None:
        src.unlink(missing_ok=True)
        return
    _write(src, notebook)


def _write(path: Path, text: str) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
