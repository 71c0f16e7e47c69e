"""Late work: the penalty rule, and when a submission was handed in.

The rule (``late_penalty`` in the course file, :mod:`.course`)::

    per: day          # or hour: the period that is counted
    percent: 10       # of the points possible, per period begun after the due date
    cap: 50           # percent at most, in all
    grace: 15 minutes # this late at most: no penalty (the clock starts at the due date)

A submission ``t`` seconds after its due date (the student's extension
included) loses ``min(cap, percent * ceil(t / period))`` percent of the
points possible, unless ``t <= grace``; never more than its raw score (the
final score is never below 0). This is the per-period deduction with a floor
that Canvas's late policy and nbgrader's ``late_submission_penalty`` plugins
describe; the penalty goes into the gradebook as nbgrader's
``late_submission_penalty`` of the notebook.

When it was handed in (:func:`submitted_at`), first found of:

1. nbgrader's ``timestamp.txt`` beside the notebook;
2. the file's modification time (for an LMS zip, the member's time as the
   archive records it, read as the grading machine's local time, as ``unzip``
   does).

Canvas marks a late download ``<name>_LATE_<userid>_...``: where that marker
and the time disagree, the time counts and the report says so.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

UTC = dt.UTC
PERIODS = {"day": 86400.0, "hour": 3600.0}
_CANVAS_LATE = re.compile(r"^[^_/]+?_LATE_\d+_\d+_(?P<file>.+)$")


@dataclass(frozen=True)
class Rule:
    """A late penalty rule (see the module docstring); the default is none."""

    per: str = "day"
    percent: float = 0.0
    cap: float = 100.0
    grace: dt.timedelta = dt.timedelta(0)

    def percent_lost(self, seconds_late: float) -> float:
        """The percent of the points possible lost when ``seconds_late`` late.

        >>> Rule(percent=10, cap=25).percent_lost(3 * 86400 - 60)
        25.0
        """
        if seconds_late <= 0 or seconds_late <= self.grace.total_seconds():
            return 0.0
        periods = math.ceil(seconds_late / PERIODS[self.per])
        return float(min(self.cap, self.percent * periods))


@dataclass(frozen=True)
class Late:
    """How late one submission is, and what it loses.

    Attributes:
        due: the due date that applies (the extension included), UTC.
        submitted: when it was handed in (UTC), or None when unknown.
        source: where ``submitted`` comes from (``timestamp.txt``, ``file time``).
        seconds_late: 0 when on time.
        percent: the percent of the points possible lost.
        penalty: the points lost (at most the raw score).
        notes: what the instructor should know (a LATE marker that disagrees).
    """

    due: dt.datetime | None
    submitted: dt.datetime | None
    source: str
    seconds_late: float
    percent: float
    penalty: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        def iso(x: dt.datetime | None) -> str | None:
            return x.isoformat() if x else None

        return {
            "due": iso(self.due),
            "submitted": iso(self.submitted),
            "source": self.source,
            "seconds_late": self.seconds_late,
            "percent": self.percent,
            "penalty": self.penalty,
        }


def parse_timestamp(text: str) -> dt.datetime | None:
    """nbgrader's ``timestamp.txt`` text as a UTC time (None if unreadable)."""
    try:
        from nbgrader.utils import parse_utc

        return parse_utc(text.strip()).replace(tzinfo=UTC)
    except Exception:  # noqa: BLE001 - unreadable: the next source is used
        return None


def canvas_marked_late(path: Path, shown: str) -> bool:
    """True for a Canvas download named ``<name>_LATE_<userid>_<subid>_<file>``."""
    m = _CANVAS_LATE.match(path.name)
    return bool(m) and m["file"] == shown


def submitted_at(path: Path, timestamp: str | None) -> tuple[dt.datetime | None, str]:
    """When the notebook at ``path`` was handed in, and the source of that time."""
    if timestamp:
        when = parse_timestamp(timestamp)
        if when is not None:
            return when, "timestamp.txt"
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, UTC), "file time"
    except OSError:
        return None, "unknown"


def assess(
    *,
    due: dt.datetime | None,
    submitted: dt.datetime | None,
    source: str,
    rule: Rule,
    max_score: float,
    marked_late: bool = False,
) -> Late:
    """The lateness and penalty of one submission (the penalty in points of
    ``max_score``; :func:`final` caps it at the raw score)."""
    notes: list[str] = []
    late = 0.0
    if due is not None and submitted is not None:
        late = max(0.0, (submitted - due).total_seconds())
    if marked_late and due is not None and late == 0:
        when = submitted.isoformat() if submitted else "unknown"
        notes.append(
            f"Canvas marks this submission late, but its time ({source}: {when}) "
            f"is not after the due date {due.isoformat()}; no penalty was applied: "
            "check the submission time in Canvas"
        )
    percent = rule.percent_lost(late)
    return Late(
        due=due,
        submitted=submitted,
        source=source,
        seconds_late=late,
        percent=percent,
        penalty=round(max_score * percent / 100.0, 6),
        notes=tuple(notes),
    )


def final(raw: float, penalty: float) -> tuple[float, float]:
    """``(penalty applied, final score)``: never below 0, as nbgrader exports."""
    applied = min(max(raw, 0.0), penalty)
    return applied, raw - applied
