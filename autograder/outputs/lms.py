"""Grades in the files Canvas and Moodle import, and the rosters they export.

Canvas gradebook import (``canvas-grades.csv``; Grades > Import), the header
of Canvas's own gradebook export::

    Student,ID,SIS User ID,SIS Login ID,Section,<assignment> (<canvas id>)
    Points Possible,,,,,<max score>
    "Doe, Jane",1001,S123,jdoe,Section A,7.5

Canvas finds the student by ``ID`` (its user id), else ``SIS User ID``, else
``SIS Login ID``; ``Student`` is only shown. A column is matched to an
assignment by its id in parentheses (from ``--roster`` or the course file's
``canvas_id``); a column without one makes Canvas offer a new assignment. An
empty cell leaves the grade in Canvas as it is (a missing submission).
A student without any of the three ids cannot be imported: not in the file,
listed in the summary.

Moodle grade import (``moodle-grades.csv``; Grades > Import > CSV file)::

    First name,Last name,ID number,Email address,<assignment>
    Jane,Doe,S123,jdoe@example.edu,7.5

In the import, map from ``Email address`` (to "Email address") or ``ID
number`` (to "ID number") and map the assignment column to its grade item.
A student with neither is not in the file, and listed in the summary; an
empty cell leaves the grade as it is.

Rosters read (``grade --roster FILE``): Canvas's gradebook export (the
header above; the ``Points Possible`` row and rows without an ID are
skipped) and Moodle's participants or grade export (``First name``,
``Last name`` or ``Surname``, ``Email address``, optionally ``ID number``).
Scores are the final ones (after the late penalty); every text cell goes
through :func:`autograder.outputs.sanitize.csv_cell`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.outputs.sanitize import csv_cell

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS = "Points Possible"
MOODLE_COLUMNS = ("First name", "Last name", "ID number", "Email address")
_CANVAS_ASSIGNMENT = re.compile(r"^(?P<name>.*\S)\s*\((?P<id>\d+)\)$")


class RosterError(ValueError):
    """An LMS roster export that cannot be used; the message says why."""


@dataclass
class Person:
    """A student as the LMS knows them.

    Attributes:
        name: the name to show (``"Doe, Jane"`` as Canvas writes it).
        first, last: the name's parts, where the LMS gives them.
        canvas_id: Canvas's user id (the ``ID`` column; in download names).
        sis_id: the SIS User ID (Canvas) or ID number (Moodle).
        login: Canvas's SIS Login ID.
        email: the email address (Moodle).
        section: Canvas's section.
    """

    name: str
    first: str = ""
    last: str = ""
    canvas_id: str = ""
    sis_id: str = ""
    login: str = ""
    email: str = ""
    section: str = ""

    def names(self) -> list[str]:
        """Every name this person may be given by (ids first)."""
        full = f"{self.first} {self.last}".strip()
        return [
            n
            for n in (
                self.canvas_id,
                self.sis_id,
                self.login,
                self.email,
                self.name,
                full,
            )
            if n
        ]


@dataclass
class Roster:
    """An LMS roster export: who, and Canvas's assignment columns."""

    kind: str
    people: list[Person]
    #: Canvas's assignment columns: name -> id (``batchnorm (12345)``)
    assignments: dict[str, str]


def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise RosterError(f"the roster {path} cannot be read ({exc})") from None
    except UnicodeDecodeError:
        raise RosterError(
            f"the roster {path} is not UTF-8 text; expected the CSV file that "
            "Canvas (Grades > Export) or Moodle (Participants > Download) writes"
        ) from None
    try:
        return [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise RosterError(f"the roster {path} is not a CSV file ({exc})") from None


def read_roster(path: Path) -> Roster:
    """The people of a Canvas or Moodle roster export (see the module docstring).

    Raises:
        RosterError: unreadable, or not a layout this module knows.
    """
    rows = _read_rows(path)
    header = [c.strip() for c in rows[0]] if rows else []
    if header[:4] == list(CANVAS_COLUMNS[:4]):
        return _canvas(header, rows[1:])
    lower = {c.lower(): i for i, c in enumerate(header)}
    if "first name" in lower and "email address" in lower:
        return _moodle(lower, rows[1:])
    found = ", ".join(header[:8]) if header else "an empty file"
    raise RosterError(
        f"the roster {path} is in a layout the grader does not know; expected a "
        f"Canvas gradebook export (columns {', '.join(CANVAS_COLUMNS)}) or a Moodle "
        f"participants export (columns First name, Last name, Email address); "
        f"found: {found}"
    )


def _canvas(header: list[str], rows: list[list[str]]) -> Roster:
    col = {c: i for i, c in enumerate(header)}
    assignments = {}
    for c in header[len(CANVAS_COLUMNS) :]:
        m = _CANVAS_ASSIGNMENT.match(c)
        if m:
            assignments[m["name"]] = m["id"]
    people = []
    for r in rows:
        cell = {c: (r[i].strip() if i < len(r) else "") for c, i in col.items()}
        if cell["Student"] == CANVAS_POINTS or not cell["ID"].isdigit():
            continue
        people.append(
            Person(
                name=cell["Student"],
                canvas_id=cell["ID"],
                sis_id=cell["SIS User ID"],
                login=cell["SIS Login ID"],
                section=cell.get("Section", ""),
            )
        )
    return Roster("canvas", people, assignments)


def _moodle(col: dict[str, int], rows: list[list[str]]) -> Roster:
    def get(r: list[str], *names: str) -> str:
        for n in names:
            i = col.get(n)
            if i is not None and i < len(r):
                return r[i].strip()
        return ""

    people = []
    for r in rows:
        first, last = get(r, "first name"), get(r, "last name", "surname")
        email = get(r, "email address")
        if not (first or last or email):
            continue
        people.append(
            Person(
                name=f"{first} {last}".strip(),
                first=first,
                last=last,
                sis_id=get(r, "id number"),
                email=email,
            )
        )
    return Roster("moodle", people, {})


@dataclass
class Row:
    """One student's line: who, and the final score of each assignment.

    ``scores[assignment]`` is None for a missing submission.
    """

    person: Person
    scores: dict[str, float | None]


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _write(path: Path, rows: list[list[object]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, path)


def canvas_header(assignment: str, canvas_id: str | None) -> str:
    """The Canvas column of ``assignment``: ``name (id)``, or ``name``."""
    return f"{assignment} ({canvas_id})" if canvas_id else assignment


def canvas_keyed(p: Person) -> bool:
    return bool(p.canvas_id or p.sis_id or p.login)


def moodle_keyed(p: Person) -> bool:
    return bool(p.email or p.sis_id)


def write_canvas(
    path: Path, rows: list[Row], max_scores: dict[str, float], ids: dict[str, str]
) -> list[Person]:
    """Write Canvas's gradebook import; returns the people left out (no id)."""
    names = sorted(max_scores)
    out: list[list[object]] = [
        [*CANVAS_COLUMNS, *(canvas_header(a, ids.get(a)) for a in names)],
        [CANVAS_POINTS, "", "", "", "", *(_num(max_scores[a]) for a in names)],
    ]
    left = []
    for r in rows:
        p = r.person
        if not canvas_keyed(p):
            left.append(p)
            continue
        cells = [p.name, p.canvas_id, p.sis_id, p.login, p.section]
        out.append(
            [csv_cell(c) for c in cells] + [_num(r.scores.get(a)) for a in names]
        )
    _write(path, out)
    return left


def write_moodle(
    path: Path, rows: list[Row], max_scores: dict[str, float]
) -> list[Person]:
    """Write Moodle's grade import; returns the people left out (no email or ID)."""
    names = sorted(max_scores)
    out: list[list[object]] = [[*MOODLE_COLUMNS, *names]]
    left = []
    for r in rows:
        p = r.person
        if not moodle_keyed(p):
            left.append(p)
            continue
        first, last = (p.first, p.last) if p.first or p.last else (p.name, "")
        cells = [first, last, p.sis_id, p.email]
        out.append(
            [csv_cell(c) for c in cells] + [_num(r.scores.get(a)) for a in names]
        )
    _write(path, out)
    return left
