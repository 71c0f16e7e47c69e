"""The class report's data: what a grading run tells an instructor about the class.

From the gradebook's results (the list ``grades.json`` holds) this computes,
per assignment:

- the score distribution (histogram) and its statistics: n, mean, median,
  min, max and std (population std: the class is the whole population);
- per cell, how many submissions lost points on it; per check (the
  ``[PASS]``/``[FAIL]`` lines of a cell's report), how many failed it, out of
  the submissions whose report lists that check;
- the named misconceptions: the ``Likely mistake: ...`` lines under failed
  checks, grouped by their text, ranked by how many students have them;
- the submissions to review, with the reasons ``summary.md`` gives
  (:func:`autograder.outputs.report.needs_review`), and the unreadable ones.

Scores are the gradebook's totals (manual grades included) where known, as in
``grades.csv``; an unreadable submission counts with its score of 0 and is
also listed on its own. The data is plain JSON (``report.json``); student text
in it is kept as it is: escaping is the page's job
(:mod:`autograder.outputs.class_report`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from autograder.outputs.report import needs_review

#: ``  [FAIL]     0/2  training output vs torch ...`` in a cell's report
_CHECK = re.compile(r"^\s*\[(PASS|FAIL)\]\s+(\S+)/(\S+)\s+(.*?)\s*$")
_LIKELY = re.compile(r"^\s*Likely mistake:\s*(.*?)\s*$")
#: the most histogram bins (one more when the top score is on an edge)
MAX_BINS = 20
#: the most misconceptions kept per assignment (a report could hold many)
MAX_MISCONCEPTIONS = 100
#: the longest text kept for a check name or a misconception
TEXT_CHARS = 300


def feedback_link(work: Path | None, student: str, assignment: str) -> str | None:
    """The feedback page's URL relative to ``work`` (None where there is none).

    Each path segment is percent-encoded; an id that is ``.``/``..`` or holds a
    slash gets no link (it could point outside ``feedback/``).
    """
    parts = [student, assignment, f"{assignment}.html"]
    if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts[:2]):
        return None
    if work is not None and not (work / "feedback").joinpath(*parts).is_file():
        return None
    return "feedback/" + "/".join(quote(p, safe="") for p in parts)


def score_of(r: dict) -> float:
    """The submission's total: the gradebook's (manual grades in) where known."""
    value = r.get("gradebook_score")
    if value is None:
        value = r.get("score")
    return float(value or 0.0)


def describe(scores: list[float]) -> dict:
    """n, mean, median, min, max and (population) std of ``scores``."""
    if not scores:
        return dict.fromkeys(("mean", "median", "min", "max", "std"), None) | {"n": 0}
    return {
        "n": len(scores),
        "mean": statistics.fmean(scores),
        "median": statistics.median(scores),
        "min": min(scores),
        "max": max(scores),
        "std": statistics.pstdev(scores),
    }


def _bin_width(top: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten giving <= MAX_BINS bins."""
    step = 10.0 ** math.floor(math.log10(top / MAX_BINS))
    for m in (1, 2, 2.5, 5, 10):
        if top / (m * step) <= MAX_BINS:
            return m * step
    return 10 * step


def histogram(scores: list[float], max_score: float) -> dict:
    """Bins of a round width from 0 past the top score (a score on an edge goes up).

    With 37 points the bins are 2 points wide: [0, 2), [2, 4), ..., [36, 38).
    """
    top = max([max_score, *scores, 1.0])
    width = _bin_width(top)
    if top >= 5:  # points are mostly whole: no half-point bins left empty
        width = max(width, 1.0)
    bins = math.floor(top / width) + 1
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, max(0, math.floor(s / width)))] += 1
    return {"edges": [round(i * width, 10) for i in range(bins + 1)], "counts": counts}


def parse_checks(text: str) -> list[dict]:
    """The checks of one cell's report: name, passed, points, and its mistakes."""
    checks: list[dict] = []
    for line in (text or "").splitlines():
        m = _CHECK.match(line)
        if m:
            checks.append(
                {
                    "check": m.group(4)[:TEXT_CHARS],
                    "passed": m.group(1) == "PASS",
                    "points": m.group(3),
                    "mistakes": [],
                }
            )
            continue
        m = _LIKELY.match(line)
        if m and checks and not checks[-1]["passed"]:
            checks[-1]["mistakes"].append(m.group(1)[:TEXT_CHARS])
    return checks


def _by_hand(r: dict, links: dict) -> dict | None:
    """A submission's grades and comments written by hand (formgrader), or None."""
    cells = {
        gid: {"score": c.get("score"), "max_score": c.get("max_score")}
        for gid, c in r.get("cells", {}).items()
        if c.get("graded_by_hand")
    }
    comments = {g: t[:TEXT_CHARS] for g, t in (r.get("hand_comments") or {}).items()}
    if not cells and not comments:
        return None
    student = str(r.get("student", ""))
    return {
        "student": student,
        "cells": cells,
        "comments": comments,
        "feedback": links.get(student),
    }


def _assignment(name: str, subs: list[dict], work: Path | None) -> dict:
    scores = [score_of(r) for r in subs]
    links = {
        str(r.get("student", "")): feedback_link(work, str(r.get("student", "")), name)
        for r in subs
    }
    max_score = max((float(r.get("max_score") or 0) for r in subs), default=0.0)
    cells: dict[str, dict] = {}
    checks: dict[tuple[str, str], dict] = {}
    mistakes: dict[str, dict] = {}
    for r in subs:
        student = str(r.get("student", ""))
        for gid, c in r.get("cells", {}).items():
            cell = cells.setdefault(
                gid, {"cell": gid, "max_score": c.get("max_score"), "lost": 0, "n": 0}
            )
            cell["n"] += 1
            score = c.get("score")
            if score is not None and score < (c.get("max_score") or 0):
                cell["lost"] += 1
            for chk in parse_checks(c.get("report", "")):
                key = (gid, chk["check"])
                entry = checks.setdefault(
                    key,
                    {
                        "cell": gid,
                        "check": chk["check"],
                        "points": chk["points"],
                        "failed": 0,
                        "n": 0,
                    },
                )
                entry["n"] += 1
                entry["failed"] += not chk["passed"]
                for text in chk["mistakes"]:
                    m = mistakes.setdefault(text, {"students": {}, "where": set()})
                    m["students"][student] = links[student]
                    m["where"].add(gid)
    for row in [*cells.values(), *checks.values()]:
        lost = row.get("lost", row.get("failed", 0))
        row["fraction"] = lost / row["n"] if row["n"] else 0.0
    ranked = sorted(mistakes.items(), key=lambda kv: (-len(kv[1]["students"]), kv[0]))
    return {
        "assignment": name,
        "max_score": max_score,
        "stats": describe(scores),
        "histogram": histogram(scores, max_score),
        "cells": list(cells.values()),
        "checks": list(checks.values()),
        "misconceptions": [
            {
                "text": text,
                "count": len(m["students"]),
                "students": [
                    {"student": s, "feedback": link}
                    for s, link in sorted(m["students"].items())
                ],
                "cells": sorted(m["where"]),
            }
            for text, m in ranked[:MAX_MISCONCEPTIONS]
        ],
        "misconceptions_left_out": max(0, len(ranked) - MAX_MISCONCEPTIONS),
        "review": [
            {
                "student": r.get("student"),
                "reasons": why,
                "feedback": links[str(r.get("student", ""))],
            }
            for r in subs
            if (why := needs_review(r))
        ],
        "by_hand": [h for r in subs if (h := _by_hand(r, links))],
        "unreadable": [
            {
                "student": r.get("student"),
                "message": (r.get("messages") or [""])[0],
                "feedback": links[str(r.get("student", ""))],
            }
            for r in subs
            if r.get("status") == "unreadable"
        ],
    }


def class_data(
    results: list[dict],
    *,
    problems: Sequence[str] = (),
    failed: Sequence[dict] = (),
    work: Path | None = None,
) -> dict:
    """The report's data (``report.json``) for the results of one gradebook.

    Args:
        results: the gradebook's results (``grades.json``'s submissions).
        problems: what intake could not read (files, zip members, ``--student``
            names without a submission): not in the gradebook.
        failed: results of submissions the grader itself failed on this run
            (not recorded; they are graded again on the next run).
        work: the work folder; links to feedback pages are given only for
            pages that exist there (None: every link, unchecked).
    """
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_name[str(r.get("assignment", ""))].append(r)
    return {
        "submissions": len(results),
        "assignments": [_assignment(n, by_name[n], work) for n in sorted(by_name)],
        "problems": [str(p) for p in problems],
        "grader_errors": [
            {
                "student": f.get("student"),
                "assignment": f.get("assignment"),
                "message": (f.get("messages") or [""])[0],
            }
            for f in failed
        ],
    }
