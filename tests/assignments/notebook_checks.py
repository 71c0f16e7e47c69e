"""End-to-end checks shared by the gradcheck, batchnorm and normalization tests.

Each runs real kernels (seconds each): the solution as a submission, the
untouched student notebook, one submission mixing a mistake, a borrowed answer
and a different correct implementation, and the finished student notebook.
"""

from __future__ import annotations

from nbformat import NotebookNode

from autograder.authoring.harness import (
    cell_errors,
    cell_stdout,
    execute_notebook,
    make_submission,
    printed_reports,
    read_notebook,
    score_notebook,
)
from tests.assignments.assignment_runs import (
    autograded_points,
    nbgrader_meta,
    release_path,
    run_untouched_student,
    source_path,
    stderr_cells,
    time_filled_student,
)


def solution_cell(name: str, grade_id: str) -> str:
    for cell in read_notebook(source_path(name)).cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return cell.source
    raise KeyError(grade_id)


def edited(name: str, grade_id: str, edits: list[tuple[str, str]]) -> str:
    """The solution cell ``grade_id`` with each ``old`` replaced by ``new``."""
    text = solution_cell(name, grade_id)
    for old, new in edits:
        assert old in text, f"{old!r} not in the solution cell {grade_id}"
        text = text.replace(old, new)
    return text


def execute_submission(name: str, replacements: dict[str, str]) -> NotebookNode:
    nb = make_submission(source_path(name), replacements)
    return execute_notebook(nb, timeout=300, cwd=source_path(name).parent)


def output_of(nb: NotebookNode, grade_id: str) -> str:
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return cell_stdout(cell)
    raise KeyError(grade_id)


def check_solution(name: str) -> None:
    """Full marks; each printed report's maximum equals the cell's points."""
    done = execute_submission(name, {})
    points = autograded_points(name)
    assert cell_errors(done) == []
    assert stderr_cells(done) == []
    assert score_notebook(done) == {g: (p, p) for g, p in points.items()}
    assert printed_reports(done) == {g: (p, p) for g, p in points.items()}


def check_untouched(name: str) -> None:
    """Zero points, and NotImplementedError is the only error raised."""
    scores, errors = run_untouched_student(name)
    assert scores and all(p == 0 for p, _ in scores.values()), scores
    assert {ename for _, ename, _ in errors} == {"NotImplementedError"}, errors
    plain = execute_notebook(release_path(name), timeout=300)
    assert {e[1] for e in cell_errors(plain)} == {"NotImplementedError"}


def check_mixed_submission(
    name: str, replacements: dict[str, str], losing: set[str], zero: set[str], phrases
) -> None:
    """Exactly ``losing`` lose points, ``zero`` earn none, messages are shown."""
    done = execute_submission(name, replacements)
    scores = score_notebook(done)
    lost = {g for g, (p, m) in scores.items() if p < m}
    assert lost == losing, scores
    for gid in zero:
        assert scores[gid][0] == 0, scores
    for gid, phrase in phrases.items():
        assert phrase in output_of(done, gid), output_of(done, gid)


def check_finished_student(name: str) -> float:
    seconds, errors = time_filled_student(name)
    print(f"{name}: the finished student notebook ran in {seconds:.1f} s")
    assert errors == []
    assert seconds < 120, f"{seconds:.0f} s"
    return seconds
