"""The failed checks of a graded cell, compactly, for the student who works on it.

A cell's check report (``cells[gid]["report"]``, as the hidden tests print it)
looks like::

    numerical_gradient: 0 / 8 points
      [FAIL]     0/2  the step h is used; centered differences (x**3)
               f(x) = x**3, h=0.01: grad does not match the reference: ...
               Likely mistake: a one-sided difference (f(x + h) - f(x)) / h: ...
      [PASS]     1/1  a larger input (20 x 25)

:func:`failed_checks` keeps, for each failed check, its name, points and first
message line, and lists each "Likely mistake" once per cell, after the checks
(a mistake usually fails several checks the same way). ``check`` prints these
lines under its table; the GitHub Classroom message of the cell carries them.
"""

from __future__ import annotations

import re

#: one check's line in a report: ``[FAIL]   0/2  name``
_CHECK = re.compile(r"^\s*\[(?P<mark>PASS|FAIL)\]\s+(?P<pts>\S+)\s+(?P<name>.*)$")
LIKELY = "Likely mistake:"
#: the longest message line shown (the full report is in the feedback page)
LINE_CHARS = 240


def _short(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _parse(report: str) -> list[tuple[str, str, list[str]]]:
    """``(points, name, message lines)`` of each failed check of a report."""
    checks: list[tuple[str, str, list[str]]] = []
    current: list[str] | None = None
    for line in report.splitlines():
        m = _CHECK.match(line)
        if m:
            current = None
            if m["mark"] == "FAIL":
                current = []
                checks.append((m["pts"], m["name"].strip(), current))
        elif current is not None and line.strip():
            current.append(line.strip())
    return checks


def failed_checks(cell: dict) -> list[str]:
    """Lines that say what went wrong in one graded cell, compactly.

    Args:
        cell: one entry of a result's ``cells`` (``report`` and ``problems``).

    Returns:
        ``"- name (0/2): first message"`` per failed check, then
        ``"Likely mistake: ..."`` once for each distinct one; the ``problems``
        lines (errors raised by the notebook) when the report has no checks.
    """
    checks = _parse(cell.get("report") or "")
    if not checks:
        return [_short(ln) for ln in (cell.get("problems") or "").splitlines() if ln]
    lines, likely = [], []
    errors = [
        ln for ln in (cell.get("problems") or "").splitlines() if "[FAIL]" not in ln
    ]
    lines += [_short(ln) for ln in errors if ln.strip()]
    for pts, name, messages in checks:
        said = [m for m in messages if not m.startswith(LIKELY)]
        likely += [m for m in messages if m.startswith(LIKELY) and m not in likely]
        first = f": {_short(said[0])}" if said else ""
        lines.append(f"- {name} ({pts}){first}")
    lines += [_short(m) for m in likely]
    return lines


def cell_message(cell: dict) -> str:
    """:func:`failed_checks` as one text (the Classroom message of a cell)."""
    return "\n".join(failed_checks(cell))
