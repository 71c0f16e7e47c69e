"""An assignment as the grader needs it, built from the source notebook by nbgrader.

:func:`load` runs the first steps of nbgrader's ``generate_assignment`` on
``solutions/<name>/<name>.ipynb`` (lock cells, clear solutions, clear output,
check metadata, compute checksums) and keeps what ``SaveCells`` would record
in the gradebook: the source of every graded, locked and solution cell
(hidden tests included), the points of each grade cell, the kernelspec.
:func:`register` records the same in a gradebook with nbgrader's ``SaveCells``.

:func:`sanitize` is nbgrader's autograde "sanitize" step on a submission:
``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``, ``OverwriteCells``
(tests and locked cells restored from the source, points and types fixed) and
``CheckCellMetadata``, reading the source cells from the :class:`Assignment`
instead of a database, so a grading worker needs no database connection.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbformat import NotebookNode

from autograder.authoring import nbgrader_config

ROOT = nbgrader_config.ROOT
#: the source notebooks where the course is installed (``pip install``): the
#: wheel carries solutions/ as the package ``autograder.assignments``
PACKAGED = Path(__file__).resolve().parents[1] / "assignments"


def default_source() -> Path:
    """The folder of the source notebooks: ``solutions/`` in a clone, else the
    copy installed with the package."""
    return ROOT / "solutions" if nbgrader_config.is_checkout() else PACKAGED


SOURCE = default_source()
HIDDEN = re.compile(r"BEGIN HIDDEN TESTS.*?END HIDDEN TESTS", re.S)
#: a hidden-test region as nbgrader's ClearHiddenTests removes it (whole lines)
HIDDEN_BLOCK = re.compile(r"[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)


def _config():
    from traitlets.config import Config

    c = Config()
    nbgrader_config.configure(c)
    return c


@dataclass
class Assignment:
    """What grading needs to know about one assignment (one notebook).

    Attributes:
        name: the assignment (= folder = notebook name).
        notebook: the notebook id (file name without ``.ipynb``).
        source_cells: ``grade_id -> {cell_type, locked, source, checksum}``
            as nbgrader's ``SaveCells`` records them (hidden tests included).
        points: ``grade_id -> max points`` of each grade cell, in notebook order.
        solutions: grade_ids of the answer cells, in notebook order.
        answer_names: ``grade_id -> names`` the answer cell defines in the source.
        manual: grade cells that are answers (a written explanation): graded by
            hand; the autograder gives them no score (nbgrader: needs manual
            grading), or 0 when left untouched.
        setup: sources of the locked code cells before the first answer cell
            (imports), in order. Other locked cells (visible checks, demos) are
            not needed to grade: each test cell must stand on the setup and
            the answers alone.
        tests: ``(grade_id, source)`` of the grade cells, in order.
        kernelspec: the source notebook's kernelspec.
        digest: a hash of the source notebook, for caching.
    """

    name: str
    notebook: str
    source_cells: dict[str, dict]
    points: dict[str, float]
    solutions: list[str]
    answer_names: dict[str, list[str]]
    setup: list[str]
    tests: list[tuple[str, str]]
    kernelspec: dict
    digest: str
    hidden_lines: list[str] = field(default_factory=list)
    visible_tests: dict[str, str] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return float(sum(self.points.values()))

    @property
    def auto_max_score(self) -> float:
        """The points the autograder can give (hand-graded answers excluded)."""
        return float(sum(p for g, p in self.points.items() if g not in self.manual))

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> Assignment:
        d = dict(d)
        d["tests"] = [tuple(t) for t in d["tests"]]
        return cls(**d)


def source_path(name: str, root: Path = SOURCE) -> Path:
    return root / name / f"{name}.ipynb"


def available(root: Path = SOURCE) -> list[str]:
    """Names of the assignments that have a source notebook."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if source_path(p.name, root).is_file())


def _meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _defined_names(source: str) -> list[str]:
    import ast

    from autograder.authoring.answers import answer_statements

    try:
        src, _ = answer_statements(source)
        tree = ast.parse(src)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
    return names


def load(name: str, root: Path = SOURCE) -> tuple[Assignment, NotebookNode]:
    """The assignment ``name`` and its source notebook as nbgrader prepares it.

    Returns:
        ``(assignment, prepared)``; ``prepared`` is the source notebook after
        nbgrader's LockCells, ClearSolutions, ClearOutput, CheckCellMetadata
        and ComputeChecksums (what SaveCells stores), for :func:`register`.
    """
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    path = source_path(name, root)
    raw = path.read_bytes()
    original = nbformat.reads(raw.decode(), as_version=4)
    nb = copy.deepcopy(original)
    resources = {"nbgrader": {"assignment": name, "notebook": path.stem}}
    config = _config()
    for pp in (LockCells, ClearSolutions, ClearOutput, CheckCellMetadata):
        nb, resources = pp(config=config).preprocess(nb, resources)
    nb, resources = ComputeChecksums(config=config).preprocess(nb, resources)

    source_cells, points, solutions, answer_names = {}, {}, [], {}
    setup, tests, hidden, visible, manual = [], [], [], {}, []
    for cell, orig in zip(nb.cells, original.cells, strict=True):
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            source_cells[gid] = {
                "cell_type": cell.cell_type,
                "locked": bool(meta.get("locked")) and not meta.get("solution"),
                "source": cell.source,
                "checksum": meta.get("checksum"),
            }
        if meta.get("grade"):
            points[gid] = float(meta["points"])
        if meta.get("grade") and meta.get("solution"):
            manual.append(gid)  # an answer graded by hand (nbgrader: no auto score)
        if meta.get("solution"):
            solutions.append(gid)
            answer_names[gid] = _defined_names(orig.source)
        if cell.cell_type != "code":
            continue
        if meta.get("grade") and not meta.get("solution"):
            tests.append((gid, cell.source))
            visible[gid] = HIDDEN_BLOCK.sub("", cell.source)
            for block in HIDDEN.findall(cell.source):
                hidden += [ln.strip() for ln in block.splitlines()[1:-1] if ln.strip()]
        elif gid == "install":
            continue  # the student's own set-up: not needed where grading runs
        elif meta.get("locked") and not meta.get("solution") and not solutions:
            setup.append(cell.source)
    spec = Assignment(
        name=name,
        notebook=path.stem,
        source_cells=source_cells,
        points=points,
        solutions=solutions,
        answer_names=answer_names,
        setup=setup,
        tests=tests,
        kernelspec=dict(nb.metadata.get("kernelspec", {})),
        digest=hashlib.sha256(raw).hexdigest(),
        hidden_lines=hidden,
        visible_tests=visible,
        manual=manual,
    )
    return spec, nb


def register(gradebook, spec: Assignment, prepared: NotebookNode, db_url: str) -> None:
    """Record the assignment, notebook and cells in the gradebook (nbgrader SaveCells).

    Args:
        gradebook: an open ``nbgrader.api.Gradebook``.
        spec: the assignment.
        prepared: the notebook :func:`load` returned.
        db_url: the gradebook's URL (SaveCells opens its own connection).
    """
    from nbgrader.preprocessors import SaveCells

    gradebook.update_or_create_assignment(spec.name)
    resources = {
        "nbgrader": {
            "assignment": spec.name,
            "notebook": spec.notebook,
            "db_url": db_url,
        }
    }
    SaveCells(config=_config()).preprocess(copy.deepcopy(prepared), resources)


class _SpecGradebook:
    """The few gradebook lookups OverwriteCells makes, answered from the spec."""

    def __init__(self, spec: Assignment) -> None:
        self.spec = spec

    def find_source_cell(self, grade_id, notebook, assignment):
        from nbgrader.api import MissingEntry

        info = self.spec.source_cells.get(grade_id)
        if info is None:
            raise MissingEntry(f"no source cell {grade_id}")
        return SimpleNamespace(name=grade_id, **info)

    def find_graded_cell(self, grade_id, notebook, assignment):
        from nbgrader.api import MissingEntry

        if grade_id not in self.spec.points:
            raise MissingEntry(f"no grade cell {grade_id}")
        return SimpleNamespace(name=grade_id, max_score=self.spec.points[grade_id])


def _overwrite_cells(spec: Assignment):
    from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells

    class Overwrite(OverwriteCells):
        def preprocess(self, nb, resources):
            self.notebook_id = spec.notebook
            self.assignment_id = spec.name
            self.gradebook = _SpecGradebook(spec)
            return NbGraderPreprocessor.preprocess(self, nb, resources)

    return Overwrite


def sanitize(nb: NotebookNode, spec: Assignment) -> tuple[NotebookNode, list[str]]:
    """nbgrader's autograde sanitize step; returns the notebook and warnings.

    Raises:
        nbgrader.nbgraderformat.ValidationError: nbgrader metadata that cannot
            be repaired (nbgrader's autograde stops there too).
    """
    import logging

    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    resources = {"nbgrader": {"assignment": spec.name, "notebook": spec.notebook}}
    handler = Collect()
    config = _config()
    steps = (
        ClearOutput,
        DeduplicateIds,
        None,
        _overwrite_cells(spec),
        CheckCellMetadata,
    )
    for pp in steps:
        if pp is None:  # OverwriteKernelspec, from the spec
            if spec.kernelspec:
                nb.metadata["kernelspec"] = copy.deepcopy(spec.kernelspec)
            continue
        proc = pp(config=config)
        proc.log.addHandler(handler)
        try:
            nb, resources = proc.preprocess(nb, resources)
        finally:
            proc.log.removeHandler(handler)
    return nb, warnings


def grade_ids(nb: NotebookNode) -> set[str]:
    ids = set()
    for cell in nb.get("cells", []):
        gid = _meta(cell).get("grade_id") if isinstance(cell, dict) else None
        if isinstance(gid, str):
            ids.add(gid)
    return ids


def identify(nb: NotebookNode, specs: dict[str, Assignment]) -> str | None:
    """The assignment a notebook belongs to, by the grade_ids it shares with one."""
    ids = grade_ids(nb)
    best, overlap = None, 0
    for name, spec in specs.items():
        n = len(ids & set(spec.source_cells))
        if n > overlap:
            best, overlap = name, n
    return best
