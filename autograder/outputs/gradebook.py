"""The nbgrader gradebook, written one submission per transaction.

nbgrader's ``Gradebook`` (SQLite by default, any SQLAlchemy URL such as
``postgresql://...``) holds students, submissions and the score of every grade
cell. nbgrader's own methods commit after each step; :meth:`Book.record`
instead builds a whole submission (student, submitted assignment and notebook,
every ``Grade`` and ``Comment``, as ``Gradebook.add_submission`` and
``SaveAutoGrades`` would) and the grader's own result row in one session and
commits once. A grading run killed at any moment (even with SIGKILL) leaves
each submission either fully recorded or not at all; the next run grades what
is missing.

The table ``autograder_results`` (one row per student and assignment) keeps
the full result as JSON and the content hash of what was graded, so a rerun
skips unchanged submissions.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, select

_META = MetaData()
RESULTS = Table(
    "autograder_results",
    _META,
    Column("assignment", String(128), primary_key=True),
    Column("student", String(128), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("max_score", Float, nullable=False),
    Column("result", Text, nullable=False),
    Column("graded_at", DateTime, nullable=False),
)


def _alembic_head() -> str:
    """nbgrader's current schema revision, read in-process (no subprocess)."""
    import nbgrader
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option(
        "script_location", os.path.join(os.path.dirname(nbgrader.__file__), "alembic")
    )
    return ScriptDirectory.from_config(config).get_current_head()


def _create_schema(url: str) -> None:
    """Create nbgrader's tables and stamp their revision, as ``Gradebook`` does
    for a new database, without its ``alembic heads`` subprocess (a second)."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url, future=True)
    try:
        if inspect(engine).get_table_names():
            return
        try:
            head = _alembic_head()
        except Exception:  # noqa: BLE001 - let nbgrader do it its own way
            return
        with engine.begin() as con:
            Base.metadata.create_all(bind=con)
            con.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            )
            con.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                {"v": head},
            )
    finally:
        engine.dispose()


class Book:
    """The gradebook at ``url`` (created if missing).

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:///grading/gradebook.db``.
        course_id: nbgrader's course id.
    """

    def __init__(self, url: str, course_id: str) -> None:
        from nbgrader.api import Gradebook

        # nbgrader runs the `alembic` command for a new database: find ours
        bin_dir = os.path.dirname(sys.executable)
        path = os.environ.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([bin_dir, path])
        _create_schema(url)
        self.url = url
        self.gb = Gradebook(url, course_id)
        _META.create_all(self.gb.engine)

    def close(self) -> None:
        self.gb.close()

    def __enter__(self) -> Book:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- assignments

    def register(self, spec, prepared) -> None:
        """Record the assignment's cells (nbgrader SaveCells), if they changed."""
        from nbgrader.api import MissingEntry

        from autograder.authoring.assignment import register

        try:
            nb = self.gb.find_notebook(spec.notebook, spec.name)
            known = {c.name: c for c in nb.source_cells}
            same = (
                len(known) == len(spec.source_cells)
                and all(
                    n in known
                    and known[n].source == info["source"]
                    and known[n].checksum == info["checksum"]
                    for n, info in spec.source_cells.items()
                )
                and {c.name: c.max_score for c in nb.grade_cells} == spec.points
            )
        except MissingEntry:
            same = False
        if not same:
            register(self.gb, spec, prepared, self.url)
        self.gb.db.expire_all()

    def set_duedate(self, name: str, due: datetime.datetime | None) -> None:
        """nbgrader's due date of the assignment (naive UTC), from the course file."""
        assignment = self.gb.find_assignment(name)
        if assignment.duedate != due:
            assignment.duedate = due
            self.gb.db.commit()

    # -- cache

    def digest(self, assignment: str, student: str) -> str | None:
        row = self.gb.db.execute(
            select(RESULTS.c.digest).where(
                RESULTS.c.assignment == assignment, RESULTS.c.student == student
            )
        ).first()
        return row[0] if row else None

    def results(self) -> list[dict]:
        """Every stored result, sorted by assignment and student."""
        rows = self.gb.db.execute(
            select(RESULTS.c.result).order_by(RESULTS.c.assignment, RESULTS.c.student)
        ).all()
        return [json.loads(r[0]) for r in rows]

    # -- one submission, one transaction

    def record(self, result: dict, digest: str, timestamp=None, due=None) -> None:
        """Write one graded submission and its result row; commit once.

        ``due`` (naive UTC) is the student's due date: what is past the
        assignment's goes in as nbgrader's extension; ``result["late_penalty"]``
        is the notebook's ``late_submission_penalty``.
        """
        from nbgrader import api

        db = self.gb.db
        try:
            student = db.get(api.Student, result["student"])
            if student is None:
                student = api.Student(id=result["student"])
                db.add(student)
            assignment = self.gb.find_assignment(result["assignment"])
            try:
                sub = self.gb.find_submission(result["assignment"], result["student"])
            except api.MissingEntry:
                sub = api.SubmittedAssignment(assignment=assignment, student=student)
                db.add(sub)
            if timestamp is not None:
                sub.timestamp = timestamp
            base = assignment.duedate
            sub.extension = due - base if due and base and due != base else None
            cells = result.get("cells", {})
            comments = result.get("comments", {})
            for notebook in assignment.notebooks:
                snb = next((n for n in sub.notebooks if n.notebook == notebook), None)
                if snb is None:
                    snb = api.SubmittedNotebook(notebook=notebook, assignment=sub)
                    db.add(snb)
                grades = {g.cell_id: g for g in snb.grades}
                for cell in notebook.grade_cells:
                    grade = grades.get(cell.id) or api.Grade(
                        cell_id=cell.id, notebook=snb
                    )
                    score = cells.get(cell.name, {}).get("score", 0.0)
                    grade.auto_score = None if score is None else float(score)
                    grade.needs_manual_grade = (
                        grade.manual_score is not None or grade.auto_score is None
                    )
                    db.add(grade)
                first = notebook == assignment.notebooks[0]
                snb.late_submission_penalty = (
                    float(result.get("late_penalty") or 0.0) if first else 0.0
                )
                known = {c.cell_id: c for c in snb.comments}
                for cell in list(notebook.solution_cells) + list(notebook.task_cells):
                    comment = known.get(cell.id) or api.Comment(
                        cell_id=cell.id, notebook=snb
                    )
                    comment.auto_comment = comments.get(cell.name)
                    db.add(comment)
            db.execute(
                RESULTS.delete().where(
                    RESULTS.c.assignment == result["assignment"],
                    RESULTS.c.student == result["student"],
                )
            )
            db.execute(
                RESULTS.insert().values(
                    assignment=result["assignment"],
                    student=result["student"],
                    digest=digest,
                    score=float(result.get("score", 0.0)),
                    max_score=float(result.get("max_score", 0.0)),
                    result=json.dumps(result),
                    graded_at=datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
                )
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise

    # -- export

    def export_csv(self, path: Path) -> None:
        """nbgrader's CSV export (``nbgrader export``) of every grade.

        Every text cell then goes through
        :func:`autograder.outputs.sanitize.csv_cell` (a student id such as
        ``=HYPERLINK(...)`` or ``-1`` shows as text in a spreadsheet); the
        score columns are left as numbers.
        """
        from nbgrader.plugins import CsvExportPlugin

        self.gb.db.expire_all()
        CsvExportPlugin(to=str(path)).export(self.gb)
        neutralize_csv(path, numeric=NUMERIC_COLUMNS)

    def hand_entries(self) -> list[dict]:
        """What the formgrader wrote by hand: each grade with a manual score or
        extra credit, and each comment with a manual comment.

        Returns:
            ``[{"assignment", "student", "cell", "kind": "grade" | "comment",
            "score", "extra_credit", "max_score", "comment"}]``, sorted.
        """
        from nbgrader import api

        db = self.gb.db
        db.expire_all()
        rows = []
        grades = db.query(api.Grade).filter(
            (api.Grade.manual_score.isnot(None)) | (api.Grade.extra_credit.isnot(None))
        )
        for g in grades:
            sub = g.notebook.assignment
            rows.append(
                {
                    "assignment": sub.assignment.name,
                    "student": sub.student.id,
                    "cell": g.cell.name,
                    "kind": "grade",
                    "score": g.manual_score,
                    "extra_credit": g.extra_credit,
                    "max_score": float(g.cell.max_score),
                }
            )
        for c in db.query(api.Comment).filter(api.Comment.manual_comment.isnot(None)):
            sub = c.notebook.assignment
            rows.append(
                {
                    "assignment": sub.assignment.name,
                    "student": sub.student.id,
                    "cell": c.cell.name,
                    "kind": "comment",
                    "comment": c.manual_comment,
                }
            )
        rows.sort(key=lambda r: (r["assignment"], r["student"], r["cell"], r["kind"]))
        return rows

    def scores(self) -> dict[tuple[str, str], float]:
        """``(assignment, student) -> score`` as nbgrader computes it."""
        self.gb.db.expire_all()
        found = {}
        for assignment in self.gb.assignments:
            for sub in assignment.submissions:
                found[(assignment.name, sub.student.id)] = float(sub.score)
        return found


#: the columns of nbgrader's CSV export that hold numbers the grader wrote
NUMERIC_COLUMNS = frozenset(
    {"raw_score", "late_submission_penalty", "score", "max_score"}
)


def neutralize_csv(path: Path, numeric: frozenset[str] = frozenset()) -> None:
    """Rewrite the CSV at ``path`` with every cell made safe for a spreadsheet.

    A cell of a ``numeric`` column that is a plain number (``-1.5``) stays as
    it is; every other cell goes through
    :func:`autograder.outputs.sanitize.csv_cell`.
    """
    import csv

    from autograder.outputs.sanitize import csv_cell, is_number

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header = rows[0]
    keep = {i for i, name in enumerate(header) if name in numeric}
    out = [[str(csv_cell(c)) for c in header]]
    for row in rows[1:]:
        out.append(
            [
                c if i in keep and is_number(c) else str(csv_cell(c))
                for i, c in enumerate(row)
            ]
        )
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(out)
    os.replace(tmp, path)
