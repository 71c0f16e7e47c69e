"""Grades and comments written by hand in nbgrader's formgrader, in every output.

The formgrader stores a hand score (``Grade.manual_score``) and a comment
(``Comment.manual_comment``) in the gradebook; grading never overwrites them,
a regrade included. Every ``grade`` run reads them back
(:meth:`autograder.outputs.gradebook.Book.hand_entries`) and applies them to
the results that the feedback pages, ``grades.json``, the LMS files, the
summary and the class report are made of:

- the cell's score becomes the hand score (``cells[gid]["score"]``; what the
  autograder gave stays as ``auto_score``), and the cell says
  ``"graded_by_hand": True``;
- the raw total is the sum of the cells, and the late penalty is taken again
  from it: ``score = raw - min(raw, penalty)``;
- the comment goes with its cell (``cells[gid]["comment"]`` and
  ``hand_comments``).

A hand score outside ``[0, points]`` of its cell, or extra credit, is not
used: it is named (student, assignment, cell, what was expected and found)
and the cell keeps what the autograder gave it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field

Key = tuple[str, str]  # (assignment, student)


@dataclass
class HandGrades:
    """The usable hand entries of a gradebook, and what was wrong with the rest.

    Attributes:
        scores: ``(assignment, student) -> {cell: hand score}``.
        comments: ``(assignment, student) -> {cell: comment}``.
        problems: one message per entry that is not used.
        rejected: the submissions with an entry that is not used.
    """

    scores: dict[Key, dict[str, float]] = field(default_factory=dict)
    comments: dict[Key, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rejected: set[Key] = field(default_factory=set)

    def digest(self, key: Key) -> str:
        """A hash of the entries of one submission ('' when it has none)."""
        scores, comments = self.scores.get(key, {}), self.comments.get(key, {})
        if not scores and not comments:
            return ""
        text = json.dumps([scores, comments], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _fmt(x: float) -> str:
    return f"{x:g}"


def collect(entries: list[dict]) -> HandGrades:
    """Check and sort the gradebook's hand entries (``Book.hand_entries()``)."""
    out = HandGrades()
    for e in entries:
        key = (e["assignment"], e["student"])
        where = f"{e['student']}, {e['assignment']}, cell '{e['cell']}'"
        if e["kind"] == "comment":
            if str(e.get("comment") or "").strip():
                out.comments.setdefault(key, {})[e["cell"]] = str(e["comment"])
            continue
        if e.get("extra_credit"):
            out.problems.append(
                f"hand grading: {where} has extra credit {_fmt(e['extra_credit'])}; "
                "this course does not count extra credit: remove it in the "
                "formgrader (the cell keeps its other points)"
            )
            out.rejected.add(key)
        score, top = e.get("score"), float(e["max_score"])
        if score is None:
            continue
        score = float(score)
        if not math.isfinite(score) or not 0.0 <= score <= top:
            out.problems.append(
                f"hand grading: {where}: the hand score {_fmt(score)} is outside "
                f"0 to {_fmt(top)} (the cell's points); it is not used: correct it "
                "in the formgrader and run `grade` again"
            )
            out.rejected.add(key)
            continue
        out.scores.setdefault(key, {})[e["cell"]] = score
    return out


def apply(result: dict, hand: HandGrades) -> dict:
    """``result`` with its hand scores and comments (a copy; see the module)."""
    from autograder.pipeline import late

    key = (str(result.get("assignment")), str(result.get("student")))
    scores, comments = hand.scores.get(key, {}), hand.comments.get(key, {})
    if not scores and not comments:
        return result
    r = copy.deepcopy(result)
    cells = r.setdefault("cells", {})
    for gid, value in scores.items():
        cell = cells.get(gid)
        if cell is None:  # no longer a grade cell of the assignment
            continue
        cell["auto_score"] = cell.get("score")
        cell["score"] = value
        cell["graded_by_hand"] = True
        cell["problems"] = "graded by hand"
    r["hand_comments"] = dict(comments)
    for gid, text in comments.items():
        if gid in cells:
            cells[gid]["comment"] = text
    raw = float(sum(float(c.get("score") or 0.0) for c in cells.values()))
    penalty = float((r.get("late") or {}).get("penalty") or 0.0)
    applied, final = late.final(raw, penalty)
    r.update(raw_score=raw, late_penalty=applied, score=final)
    return r


def fix_csv(path, results: list[dict], keys: set[Key]) -> None:
    """Put the totals of ``results`` into nbgrader's ``grades.csv`` rows of
    ``keys`` (where the gradebook holds a hand score that is not used)."""
    import csv
    import os

    if not keys or not path.is_file():
        return
    from autograder.outputs.sanitize import csv_cell

    # the CSV's text cells went through csv_cell (gradebook.neutralize_csv)
    by_key = {
        (str(csv_cell(r["assignment"])), str(csv_cell(r["student"]))): r
        for r in results
    }
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    for row in rows:
        r = by_key.get((row.get("assignment"), row.get("student_id")))
        if r is None or (r["assignment"], r["student"]) not in keys:
            continue
        row["raw_score"] = _fmt(float(r.get("raw_score", r.get("score", 0.0))))
        row["late_submission_penalty"] = _fmt(float(r.get("late_penalty") or 0.0))
        row["score"] = _fmt(float(r.get("score", 0.0)))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
