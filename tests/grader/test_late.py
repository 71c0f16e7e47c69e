"""Late work: the penalty rule, the course file, and its mistakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from autograder.pipeline import course as course_file
from autograder.pipeline import late

pytestmark = pytest.mark.grader

DUE = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.UTC)
RULE = late.Rule(per="day", percent=10, cap=50, grace=dt.timedelta(minutes=15))
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def _penalty(submitted: dt.datetime, due: dt.datetime = DUE) -> late.Late:
    return late.assess(
        due=due, submitted=submitted, source="test", rule=RULE, max_score=40.0
    )


@pytest.mark.parametrize(
    ("after", "percent"),
    [
        (-HOUR, 0.0),  # on time
        (dt.timedelta(0), 0.0),  # at the due date itself
        (dt.timedelta(minutes=10), 0.0),  # inside the grace period
        (dt.timedelta(minutes=16), 10.0),  # past it: the clock started at the due date
        (20 * HOUR, 10.0),  # one day late
        (DAY, 10.0),
        (2 * DAY + 5 * HOUR, 30.0),  # three days late
        (9 * DAY, 50.0),  # capped
    ],
)
def test_the_penalty_rule(after, percent):
    got = _penalty(DUE + after)
    assert got.percent == percent
    assert got.penalty == pytest.approx(40.0 * percent / 100)
    assert got.seconds_late == max(0.0, after.total_seconds())


def test_per_hour():
    rule = late.Rule(per="hour", percent=2, cap=100)
    assert rule.percent_lost(3600 * 3 - 1) == 6.0
    assert rule.percent_lost(3600 * 3 + 1) == 8.0


def test_the_penalty_never_takes_more_than_the_raw_score():
    assert late.final(3.0, 20.0) == (3.0, 0.0)
    assert late.final(30.0, 4.0) == (4.0, 26.0)
    assert late.final(0.0, 4.0) == (0.0, 0.0)


def test_an_extension_moves_the_due_date(tmp_path):
    path = tmp_path / "course.yml"
    path.write_text(
        "late_penalty: {per: day, percent: 10, cap: 50, grace: 15 minutes}\n"
        "assignments:\n  batchnorm: {due: '2025-03-01 23:59'}\n"
        "extensions:\n  batchnorm:\n    fox_1006: 3 days\n"
        "    alice: 2025-03-10 12:00\n"
    )
    course, problems = course_file.load(path)
    assert problems == []
    assert course.due_for("batchnorm", ["bob"]) == DUE
    fox = course.due_for("batchnorm", ["fox_1006"])
    assert fox == DUE + 3 * DAY
    assert _penalty(DUE + 2 * DAY, due=fox).penalty == 0.0
    alice = course.due_for("batchnorm", ["alice"])
    assert alice == dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
    assert course.rule_for("batchnorm") == RULE


def test_due_dates_in_the_course_time_zone(tmp_path):
    path = tmp_path / "course.yml"
    path.write_text(
        "timezone: Europe/Berlin\nassignments:\n"
        "  a: {due: '2025-03-01 23:59'}\n  b: {due: 2025-03-01}\n"
        "  c: {due: '2025-03-01T23:59:00+00:00'}\n"
    )
    course, problems = course_file.load(path)
    assert problems == []
    assert course.due["a"] == DUE - HOUR  # Berlin is UTC+1 in March
    assert course.due["b"] == dt.datetime(2025, 3, 1, 22, 59, 59, tzinfo=dt.UTC)
    assert course.due["c"] == DUE


def test_canvas_late_marker_and_file_times(tmp_path):
    nb = tmp_path / "clark_LATE_1003_5003_batchnorm.ipynb"
    nb.write_text("{}")
    assert late.canvas_marked_late(nb, "batchnorm.ipynb")
    assert not late.canvas_marked_late(tmp_path / "clark_1003_5003_b.ipynb", "b.ipynb")
    stamp = (DUE + HOUR).timestamp()
    import os

    os.utime(nb, (stamp, stamp))
    when, source = late.submitted_at(nb, None)
    assert (when, source) == (DUE + HOUR, "file time")
    when, source = late.submitted_at(nb, "2025-03-01 20:00:00.000000 UTC")
    assert source == "timestamp.txt" and when == DUE - dt.timedelta(minutes=239)
    marked = late.assess(
        due=DUE,
        submitted=DUE - HOUR,
        source="file time",
        rule=RULE,
        max_score=40.0,
        marked_late=True,
    )
    assert (
        marked.penalty == 0.0
        and "Canvas marks this submission late" in (marked.notes[0])
    )


# -- mistakes in the course file: each says what was expected and what was found

BAD = {
    "unknown top key": (
        "extentions: {}\n",
        "course.yml: unknown key 'extentions'; expected one of timezone, "
        "late_penalty, assignments, extensions, students (the key was ignored)",
    ),
    "unknown assignment key": (
        "assignments:\n  batchnorm: {due: 2025-03-01, deadline: 2025-03-02}\n",
        "course.yml: assignments.batchnorm: unknown key 'deadline'; expected one "
        "of due, late_penalty, canvas_id (the key was ignored)",
    ),
    "malformed date": (
        "assignments:\n  batchnorm: {due: '2025-13-01 23:59'}\n",
        "course.yml: assignments.batchnorm.due: '2025-13-01 23:59' is not a date; "
        "expected e.g. 2025-03-01 23:59 or 2025-03-01T23:59:00+01:00; batchnorm "
        "has no due date",
    ),
    "malformed grace": (
        "late_penalty: {grace: soon}\n",
        "course.yml: late_penalty.grace: 'soon' is not a duration; expected a "
        "number and a unit, e.g. 15 minutes, 2 hours, 3 days, 1 week",
    ),
    "unknown period": (
        "late_penalty: {per: week}\n",
        "course.yml: late_penalty.per: expected day or hour; found 'week'",
    ),
    "malformed extension": (
        "extensions:\n  batchnorm:\n    alice: next tuesday\n",
        "course.yml: extensions.batchnorm.alice: 'next tuesday' is neither a "
        "duration (e.g. 2 days) nor a date (e.g. 2025-03-01 23:59 or "
        "2025-03-01T23:59:00+01:00); no extension",
    ),
    "bad time zone": (
        "timezone: Mars/Olympus\n",
        "course.yml: timezone: 'Mars/Olympus' is not a time zone; expected a "
        "name such as UTC or Europe/Berlin; UTC is used",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_mistake_in_the_course_file_is_named(tmp_path, case):
    text, message = BAD[case]
    path = tmp_path / "course.yml"
    path.write_text(text)
    course, problems = course_file.load(path)
    assert problems == [message]


def test_the_rest_of_the_course_file_still_counts(tmp_path):
    path = tmp_path / "course.yml"
    path.write_text(
        "assignments:\n  a: {due: 'never'}\n  b: {due: '2025-03-01 23:59'}\n"
    )
    course, problems = course_file.load(path)
    assert len(problems) == 1 and "assignments.a.due" in problems[0]
    assert course.due == {"b": DUE}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1,\n", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of timezone, late_penalty"),
        (b"\xff\xfe\x00", "cannot be read"),
    ],
)
def test_an_unreadable_course_file_is_refused(tmp_path, text, message):
    path = tmp_path / "course.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(course_file.CourseError, match=message):
        course_file.load(path)


def test_no_course_file_means_no_penalty():
    course = course_file.Course()
    assert course.due_for("batchnorm", ["alice"]) is None
    got = late.assess(
        due=None,
        submitted=DUE,
        source="file time",
        rule=course.rule_for("batchnorm"),
        max_score=10.0,
    )
    assert got.penalty == 0.0 and got.seconds_late == 0.0


def test_readme_documents_the_course_file():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for word in ("course.yml", "late_penalty", "grace", "extensions", "--roster"):
        assert word in readme, word
