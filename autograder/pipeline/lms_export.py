"""The end of a run: missing submissions marked, and the files for the LMSs.

Every person of the class (:mod:`.classlist`) without a result for an
assignment of the run gets a ``missing`` entry (score None, never 0) in
grades.json and summary.md, and an empty cell in the LMS files (which leaves
the LMS's grade as it is). ``canvas-grades.csv`` and ``moodle-grades.csv``
are written as :mod:`autograder.outputs.lms` describes; whoever cannot be
put in one (no id that LMS matches on) is named in the summary.
"""

from __future__ import annotations

from pathlib import Path

from autograder.outputs import lms
from autograder.pipeline import identity
from autograder.pipeline.classlist import ClassList

CANVAS_FILE = "canvas-grades.csv"
MOODLE_FILE = "moodle-grades.csv"


def missing(
    results: list[dict], classes: ClassList, max_scores: dict[str, float]
) -> list[dict]:
    """A ``missing`` result for each person and assignment with no submission."""
    have = {(r["assignment"], r["student"]) for r in results}
    everyone = [(sid, p) for sid, p in classes.person_of.items()]
    everyone += [(identity.student_id(p.name, p.canvas_id), p) for p in classes.absent]
    out = []
    for name, top in sorted(max_scores.items()):
        for sid, p in everyone:
            if (name, sid) in have:
                continue
            out.append(
                {
                    "student": sid,
                    "display_name": p.name,
                    "assignment": name,
                    "status": "missing",
                    "score": None,
                    "raw_score": None,
                    "late_penalty": None,
                    "max_score": top,
                    "messages": ["no submission found"],
                    "cells": {},
                }
            )
    return out


def write(
    work: Path,
    results: list[dict],
    classes: ClassList,
    max_scores: dict[str, float],
    canvas_ids: dict[str, str],
) -> list[str]:
    """Write both LMS files; returns a line for each person left out of one."""
    rows: dict[str, lms.Row] = {}
    for r in results:
        sid = r["student"]
        person = classes.person_of.get(sid)
        if person is None:
            matched = [
                p
                for p in classes.absent
                if identity.student_id(p.name, p.canvas_id) == sid
            ]
            person = matched[0] if matched else lms.Person(name=identity.decode_id(sid))
        row = rows.setdefault(sid, lms.Row(person, {}))
        if r["assignment"] in max_scores:
            row.scores[r["assignment"]] = r.get("score")
    ordered = sorted(
        rows.values(), key=lambda r: (r.person.name.casefold(), r.person.canvas_id)
    )
    notes = []
    left = lms.write_canvas(work / CANVAS_FILE, ordered, max_scores, canvas_ids)
    if left:
        notes.append(
            f"{CANVAS_FILE}: left out (no Canvas user id, SIS User ID or SIS Login "
            f"ID; give --roster a Canvas gradebook export): {_names(left)}"
        )
    left = lms.write_moodle(work / MOODLE_FILE, ordered, max_scores)
    if left:
        notes.append(
            f"{MOODLE_FILE}: left out (no email address or ID number; give --roster "
            f"a Moodle participants export): {_names(left)}"
        )
    return notes


def _names(people: list[lms.Person], limit: int = 20) -> str:
    shown = ", ".join(p.name for p in people[:limit])
    more = len(people) - limit
    return shown + (f" and {more} more" if more > 0 else "")
