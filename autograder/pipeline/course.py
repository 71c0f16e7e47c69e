"""The course file: due dates, extensions, the late penalty, who should submit.

``course.yml`` in the work folder, or ``grade --course FILE``::

    timezone: Europe/Berlin       # due dates without an offset (default UTC)
    late_penalty:                 # every assignment's rule (see .late)
      per: day                    # day or hour
      percent: 10                 # of the points possible, per period begun
      cap: 50                     # percent at most
      grace: 15 minutes           # minutes, hours, days or weeks
    assignments:
      batchnorm:
        due: 2025-03-01 23:59     # a date alone is the end of that day
        late_penalty: {percent: 5}  # optional: this assignment's own rule
        canvas_id: 12345          # optional: the Canvas column "batchnorm (12345)"
    extensions:                   # per assignment, per student: extra time or a date
      batchnorm:
        smithjane_1001: 2 days    # a student id, name, LMS id, SIS id or email
        alice: 2025-03-05 12:00
    students: [alice, bob]        # who should submit (also read from --roster)

A mistake in the file (an unknown key, a date or duration that cannot be
read) is a problem for the instructor, named with its place in the file and
what was expected; the entry is left out and grading goes on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autograder.pipeline.late import PERIODS, UTC, Rule

FILE_NAME = "course.yml"
TOP_KEYS = ("timezone", "late_penalty", "assignments", "extensions", "students")
ASSIGNMENT_KEYS = ("due", "late_penalty", "canvas_id")
RULE_KEYS = ("per", "percent", "cap", "grace")
DATE_EXAMPLE = "2025-03-01 23:59 or 2025-03-01T23:59:00+01:00"
_DURATION = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>m|min|minutes?|h|hours?|d|days?|w|weeks?)\s*$"
)
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class CourseError(ValueError):
    """The course file cannot be read at all; the message says why."""


@dataclass
class Course:
    """What the course file says (empty: no due dates, no penalty)."""

    timezone: dt.tzinfo = UTC
    rule: Rule = field(default_factory=Rule)
    due: dict[str, dt.datetime] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    canvas_ids: dict[str, str] = field(default_factory=dict)
    #: assignment -> student (any name of theirs) -> a new due date or extra time
    extensions: dict[str, dict[str, dt.datetime | dt.timedelta]] = field(
        default_factory=dict
    )
    students: list[str] = field(default_factory=list)
    path: Path | None = None

    def rule_for(self, assignment: str) -> Rule:
        return self.rules.get(assignment, self.rule)

    def due_for(self, assignment: str, names: list[str]) -> dt.datetime | None:
        """The due date of ``assignment`` for the student known by ``names``."""
        due = self.due.get(assignment)
        given = self.extensions.get(assignment, {})
        ext = next((given[n] for n in names if n and n in given), None)
        if isinstance(ext, dt.datetime):
            return ext
        if isinstance(ext, dt.timedelta) and due is not None:
            return due + ext
        return due


def parse_duration(value: object) -> dt.timedelta:
    """``15 minutes``, ``2h``, ``3 days``, ``1 week`` (or ``0``) as a timedelta.

    Raises:
        ValueError: anything else.
    """
    if value == 0:
        return dt.timedelta(0)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError(
            f"{value!r} is not a duration; expected a number and a unit, "
            "e.g. 15 minutes, 2 hours, 3 days, 1 week"
        )
    return dt.timedelta(**{_UNIT[m["unit"][0]]: float(m["n"])})


def parse_date(value: object, tz: dt.tzinfo) -> dt.datetime:
    """A due date as a UTC time; without an offset it is in ``tz``; a date alone
    is the end of that day.

    Raises:
        ValueError: not a date.
    """
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime.combine(value, dt.time(23, 59, 59))
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is not a date; expected e.g. {DATE_EXAMPLE}"
            ) from None
        if len(value.strip()) == 10:  # a date alone
            when = when.replace(hour=23, minute=59, second=59)
    else:
        raise ValueError(f"{value!r} is not a date; expected e.g. {DATE_EXAMPLE}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


def _unknown(where: str, data: dict, known: tuple[str, ...]) -> list[str]:
    return [
        f"{where}: unknown key '{k}'; expected one of {', '.join(known)} "
        "(the key was ignored)"
        for k in data
        if k not in known
    ]


def _rule(where: str, data: object, base: Rule, problems: list[str]) -> Rule:
    if not isinstance(data, dict):
        problems.append(
            f"{where}: expected a mapping of {', '.join(RULE_KEYS)}; found "
            f"{data!r}; no late penalty"
        )
        return base
    problems += _unknown(where, data, RULE_KEYS)
    values = dict(base.__dict__)
    for key in ("percent", "cap"):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                problems.append(
                    f"{where}.{key}: expected a number of percent >= 0; found {v!r}"
                )
            else:
                values[key] = float(v)
    if "per" in data:
        if data["per"] in PERIODS:
            values["per"] = data["per"]
        else:
            problems.append(
                f"{where}.per: expected {' or '.join(PERIODS)}; found {data['per']!r}"
            )
    if "grace" in data:
        try:
            values["grace"] = parse_duration(data["grace"])
        except ValueError as exc:
            problems.append(f"{where}.grace: {exc}")
    return Rule(**values)


def _mapping(where: str, value: object, problems: list[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping; found {value!r}")
        return {}
    return value


def load(path: Path) -> tuple[Course, list[str]]:
    """The course file at ``path``, and its problems (see the module docstring).

    Raises:
        CourseError: the file cannot be read, or is not YAML, or not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"the course file {path} cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise CourseError(
            f"the course file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CourseError(
            f"the course file {path}: expected a mapping of {', '.join(TOP_KEYS)}; "
            f"found a {type(data).__name__}"
        )
    name = path.name
    problems = _unknown(name, data, TOP_KEYS)
    course = Course(path=path)
    if "timezone" in data:
        try:
            course.timezone = ZoneInfo(str(data["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"{name}: timezone: {data['timezone']!r} is not a time zone; "
                "expected a name such as UTC or Europe/Berlin; UTC is used"
            )
    if "late_penalty" in data:
        course.rule = _rule(
            f"{name}: late_penalty", data["late_penalty"], Rule(), problems
        )
    for a, spec in _mapping(
        f"{name}: assignments", data.get("assignments"), problems
    ).items():
        where = f"{name}: assignments.{a}"
        spec = _mapping(where, spec, problems)
        problems += _unknown(where, spec, ASSIGNMENT_KEYS)
        if "due" in spec:
            try:
                course.due[a] = parse_date(spec["due"], course.timezone)
            except ValueError as exc:
                problems.append(f"{where}.due: {exc}; {a} has no due date")
        if "late_penalty" in spec:
            course.rules[a] = _rule(
                f"{where}.late_penalty", spec["late_penalty"], course.rule, problems
            )
        if "canvas_id" in spec:
            course.canvas_ids[a] = str(spec["canvas_id"])
    for a, given in _mapping(
        f"{name}: extensions", data.get("extensions"), problems
    ).items():
        for who, value in _mapping(f"{name}: extensions.{a}", given, problems).items():
            where = f"{name}: extensions.{a}.{who}"
            try:
                if isinstance(value, str) and _DURATION.match(value):
                    ext: dt.datetime | dt.timedelta = parse_duration(value)
                else:
                    ext = parse_date(value, course.timezone)
            except ValueError:
                problems.append(
                    f"{where}: {value!r} is neither a duration (e.g. 2 days) nor a "
                    f"date (e.g. {DATE_EXAMPLE}); no extension"
                )
                continue
            course.extensions.setdefault(a, {})[str(who)] = ext
    students = data.get("students") or []
    if isinstance(students, list):
        course.students = [str(s) for s in students]
    else:
        problems.append(
            f"{name}: students: expected a list of names; found {students!r}"
        )
    return course, problems
