"""The gradebook: one transaction per submission, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv

import pytest

from autograder.authoring import assignment
from autograder.outputs.gradebook import RESULTS, Book

pytestmark = pytest.mark.grader
COURSE = "test-course"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gradebook.db'}"
    url = request.getfixturevalue("postgres_url")
    _reset(url)
    return url


def _reset(url: str) -> None:
    """Start each test on an empty PostgreSQL database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as con:
        con.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _result(spec, student: str, scores: dict[str, float]) -> dict:
    cells = {
        gid: {"score": scores.get(gid, 0.0), "max_score": p}
        for gid, p in spec.points.items()
    }
    return {
        "student": student,
        "assignment": spec.name,
        "score": sum(c["score"] for c in cells.values()),
        "max_score": spec.max_score,
        "cells": cells,
        "comments": {gid: None for gid in spec.solutions},
        "messages": [],
    }


def test_record_export_and_regrade(db_url, bn_spec, tmp_path):
    spec, prepared = assignment.load("batchnorm")
    first_test = next(iter(spec.points))
    with Book(db_url, COURSE) as book:
        book.register(spec, prepared)
        book.register(spec, prepared)  # unchanged: nothing to do
        book.record(_result(spec, "alice", dict(spec.points)), "d1")
        book.record(_result(spec, "bob", {first_test: 1.0}), "d2")
        assert book.digest("batchnorm", "alice") == "d1"
        assert book.digest("batchnorm", "carol") is None
        assert book.scores() == {
            ("batchnorm", "alice"): spec.max_score,
            ("batchnorm", "bob"): 1.0,
        }
        # an instructor's manual grade survives a regrade, and asks for review
        grade = book.gb.find_grade(first_test, spec.notebook, "batchnorm", "bob")
        grade.manual_score = 0.5
        book.gb.db.commit()
        book.record(_result(spec, "bob", {first_test: 2.0}), "d3")
        grade = book.gb.find_grade(first_test, spec.notebook, "batchnorm", "bob")
        assert grade.auto_score == 2.0 and grade.manual_score == 0.5
        assert grade.needs_manual_grade
        assert book.digest("batchnorm", "bob") == "d3"
        assert [r["student"] for r in book.results()] == ["alice", "bob"]
        book.export_csv(tmp_path / "grades.csv")
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert float(rows["alice"]["score"]) == spec.max_score
    assert float(rows["bob"]["score"]) == 0.5  # the manual score counts
    assert float(rows["bob"]["max_score"]) == spec.max_score


def test_a_failed_transaction_leaves_nothing_behind(db_url, bn_spec, monkeypatch):
    spec, prepared = assignment.load("batchnorm")
    with Book(db_url, COURSE) as book:
        book.register(spec, prepared)
        original = RESULTS.insert

        def broken():
            raise RuntimeError("the connection dropped")

        monkeypatch.setattr(RESULTS, "insert", broken)
        with pytest.raises(RuntimeError, match="dropped"):
            book.record(_result(spec, "alice", dict(spec.points)), "d1")
        monkeypatch.setattr(RESULTS, "insert", original)
        assert book.scores() == {}
        assert book.digest("batchnorm", "alice") is None
        with pytest.raises(Exception, match="No such submission"):
            book.gb.find_submission("batchnorm", "alice")
