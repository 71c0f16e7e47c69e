"""Student-like submissions for testing the checks, without a kernel.

A notebook's cells share one namespace; these helpers build such a namespace
from copies of the reference functions (never the reference objects, which the
checks flag), optionally with one function edited the way a student might get
it wrong, then run every hidden test of an assignment in it, as the notebook's
grade cells would.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat

from autograder.checks.core import Report
from tests.autograder.notebook_copy import define, notebook_namespace

ROOT = Path(__file__).resolve().parents[2]
_CALL = re.compile(r"^_report = (?P<call>.+)$", re.M)
_IMPORT = re.compile(r"^from autograder\.checks\.\w+ import \w+$", re.M)


def build(
    functions: Iterable[Callable[..., Any]],
    helpers: Mapping[str, Any],
    *,
    edit: tuple[Callable[..., Any], list[tuple[str, str]]] | None = None,
    extra: str = "",
) -> dict[str, Any]:
    """A namespace with copies of ``functions``, one of them edited.

    Args:
        functions: reference functions, defined from their source in order.
        helpers: names the notebook's setup cell imports.
        edit: ``(function, [(old, new), ...])``: that function's source with
            each ``old`` replaced by ``new``; every ``old`` must occur, so a
            change in the reference makes the test fail instead of passing
            for the wrong reason.
        extra: source run last (a cheat, or a different correct version).
    """
    ns = notebook_namespace(**helpers)
    for fn in functions:
        source = inspect.getsource(fn)
        if edit is not None and fn is edit[0]:
            for old, new in edit[1]:
                assert old in source, f"{old!r} not found in {fn.__name__}"
                source = source.replace(old, new)
        define(ns, source)
    if extra:
        define(ns, extra)
    return ns


def hidden_calls(assignment: str) -> dict[str, tuple[str, str]]:
    """``{grade_id: (import line, call)}`` of the source notebook's grade cells."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    calls = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):  # (not a written answer)
            imp = _IMPORT.search(cell.source)
            call = _CALL.search(cell.source)
            assert imp and call, f"grade cell {meta['grade_id']} has no hidden test"
            calls[meta["grade_id"]] = (imp.group(0), call["call"])
    return calls


def points(assignment: str) -> dict[str, float]:
    """``{grade_id: points}`` of the source notebook's grade cells."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    return {
        c.metadata.nbgrader.grade_id: float(c.metadata.nbgrader.points)
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    }


def grade_all(assignment: str, ns: dict[str, Any]) -> dict[str, Report]:
    """Run every hidden test of ``assignment`` in ``ns``; the reports by grade_id."""
    reports = {}
    for grade_id, (imp, call) in hidden_calls(assignment).items():
        scope = dict(ns)
        exec(imp, scope)  # noqa: S102
        reports[grade_id] = eval(call, scope)  # noqa: S307
    return reports


def losing(reports: Mapping[str, Report]) -> set[str]:
    """The grade_ids whose report lost points."""
    return {gid for gid, r in reports.items() if r.score < r.max_score}


def messages(report: Report) -> str:
    """All failure messages of a report, one string."""
    return "\n".join(r.message for r in report.results if r.message)
