"""Score a submission again, in a process that never runs student code.

The verifier executes the instructor's own test cells (from the source
notebook: visible part and hidden tests) in a fresh namespace of the grading
worker, where every name the student's answer cells define is a
:class:`~autograder.sandbox.runner.RemoteFunction` proxy to a sandboxed runner. The
check functions therefore run here, on their own inputs, and see only plain
tensors coming back: a student cannot reach them to patch ``torch``, the
assert helpers, the check functions or builtins, print a fake report, or
return an object whose ``__eq__`` lies.

Each test cell is scored with nbgrader's own ``determine_grade`` on the outputs
produced here (an error or anything on stderr: 0; a final number: partial
credit), so a correct notebook gets exactly what nbgrader would give it.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import time
from dataclasses import dataclass, field

import nbformat
import torch
from nbformat import NotebookNode

from autograder.authoring.assignment import Assignment
from autograder.sandbox import isolation as sandbox
from autograder.sandbox import runner

_MAGIC_PREFIXES = ("%", "!")


@dataclass
class CellResult:
    """The verifier's outcome for one grade cell."""

    grade_id: str
    score: float
    max_score: float
    outputs: list[dict]
    seconds: float


@dataclass
class Verification:
    cells: dict[str, CellResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    applied: dict = field(default_factory=dict)
    seconds: float = 0.0


def _strip_magics(source: str) -> str:
    return "\n".join(
        "" if line.lstrip().startswith(_MAGIC_PREFIXES) else line
        for line in source.split("\n")
    )


def run_cell(source: str, ns: dict, name: str) -> list[dict]:
    """Run trusted cell source like a kernel; return nbformat outputs.

    The value of a final expression becomes an ``execute_result`` (unless the
    line ends with ``;``); output on ``sys.stdout``/``sys.stderr`` becomes
    ``stream`` outputs; an exception becomes an ``error`` output (no traceback:
    the cell's source is not shown to the student).
    """
    out, err = io.StringIO(), io.StringIO()
    outputs: list[dict] = []
    value = None
    try:
        tree = ast.parse(_strip_magics(source), filename=name)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            if not source.rstrip().endswith(";"):
                last = ast.Expression(tree.body.pop().value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(tree, name, "exec"), ns)
            if last is not None:
                value = eval(compile(last, name, "eval"), ns)
    except BaseException as exc:  # noqa: BLE001 - record, as a kernel would
        error = {
            "output_type": "error",
            "ename": type(exc).__name__,
            "evalue": str(exc)[:4000],
            "traceback": [f"{type(exc).__name__}: {str(exc)[:4000]}"],
        }
    else:
        error = None
    if out.getvalue():
        outputs.append(
            {"output_type": "stream", "name": "stdout", "text": out.getvalue()}
        )
    if err.getvalue():
        outputs.append(
            {"output_type": "stream", "name": "stderr", "text": err.getvalue()}
        )
    if error is not None:
        outputs.append(error)
    elif value is not None:
        outputs.append(
            {
                "output_type": "execute_result",
                "data": {"text/plain": repr(value)},
                "metadata": {},
                "execution_count": None,
            }
        )
    return outputs


def score_outputs(grade_id: str, points: float, outputs: list[dict]) -> float:
    """nbgrader's determine_grade on a grade cell with these outputs."""
    from nbgrader.utils import determine_grade

    cell = nbformat.v4.new_code_cell(
        source="",
        metadata={"nbgrader": {"grade": True, "grade_id": grade_id, "points": points}},
    )
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    try:
        score, _ = determine_grade(cell)
    except ValueError:  # a number above the cell's points
        return 0.0
    return float(score or 0.0)


def _meta(cell: NotebookNode) -> dict:
    return (
        cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    )


def _defines(source: str, names: list[str]) -> bool:
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return False
    found = {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    return bool(found & set(names))


def code_answers(spec: Assignment) -> list[str]:
    """The answer cells that define functions (written answers are markdown,
    graded by hand, and never run)."""
    return [
        gid
        for gid in spec.solutions
        if spec.source_cells.get(gid, {}).get("cell_type", "code") == "code"
    ]


def answer_cells(
    nb: NotebookNode | None, spec: Assignment
) -> tuple[list[dict], list[str]]:
    """The student's answer cells, by nbgrader id, else by the names they define.

    Returns:
        ``([{"grade_id", "source"}], notes)``.
    """
    notes: list[str] = []
    if nb is None:  # unreadable: the reader's message says why, not each cell
        return [], notes
    cells = [c for c in nb.cells if c.get("cell_type") == "code"]
    by_id = {}
    for cell in cells:
        meta = _meta(cell)
        if meta.get("solution") and meta.get("grade_id") in spec.solutions:
            by_id[meta["grade_id"]] = cell  # the last one wins, as in the kernel
    found = []
    for gid in code_answers(spec):
        cell = by_id.get(gid)
        if cell is None:
            names = spec.answer_names.get(gid, [])
            plain = [
                c
                for c in cells
                if not (_meta(c).get("grade") or _meta(c).get("locked"))
            ]
            candidates = [c for c in plain if names and _defines(c.source, names)]
            if candidates:
                cell = candidates[-1]
                notes.append(
                    f"answer cell '{gid}' has lost its nbgrader metadata; graded the "
                    f"cell that defines {', '.join(names)}"
                )
            else:
                notes.append(f"answer cell '{gid}' is missing from the notebook")
                continue
        found.append({"grade_id": gid, "source": str(cell.source)})
    return found, notes


def _runner_policy(policy: sandbox.Policy) -> sandbox.Policy:
    """The runner also loses sight of the reference library's source."""
    import dataclasses

    import trainlab

    package = os.path.dirname(os.path.realpath(trainlab.__file__))
    return dataclasses.replace(policy, hide=(*policy.hide, package))


def verify(
    nb: NotebookNode | None,
    spec: Assignment,
    *,
    limits: sandbox.Limits,
    policy: sandbox.Policy,
    seed_key: bytes | None = None,
    device: str = "cpu",
) -> Verification:
    """Score every grade cell of ``spec`` against the student's functions in ``nb``.

    Args:
        nb: the submission (sanitized when possible); None if unreadable.
        spec: the assignment.
        limits: ``cell_timeout`` per call of a student function, and
            ``notebook_timeout`` for the whole verification.
        policy: the sandbox policy of the runner.
        seed_key: the student's key for the check inputs
            (:func:`autograder.checks.seeds.student_key`); None draws fresh
            random inputs (``check``). Reset to a random key afterwards, so
            that a kernel forked later for another student never holds it.
        device: where the student's functions run (``"cpu"`` or ``"cuda"``):
            the runner moves each call's tensors there; the checks here stay
            on the CPU (:mod:`autograder.checks.placement`).
    """
    from autograder.checks import placement, seeds

    start = time.monotonic()
    seeds.configure(seed_key)
    device = "cuda:0" if device == "cuda" else device  # named so in messages
    placement.configure(device)
    try:
        return _verify(
            nb, spec, limits=limits, policy=policy, start=start, device=device
        )
    finally:
        seeds.configure(None)
        placement.configure(None)


def _verify(
    nb, spec: Assignment, *, limits, policy, start: float, device: str = "cpu"
) -> Verification:
    from autograder.checks import seeds

    result = Verification()
    answers, notes = answer_cells(nb, spec)
    result.notes += notes
    result.answers = {a["grade_id"]: a["source"] for a in answers}
    client = runner.RunnerClient(
        spec.setup, answers, limits=limits, policy=_runner_policy(policy), device=device
    )
    client.job["graded"] = sorted({n for v in spec.answer_names.values() for n in v})
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    try:
        try:
            ready = client.start()
            result.applied = client.applied
            for e in ready.get("errors", []):
                result.notes.append(
                    f"cell '{e['cell']}' raised {e['types'][0]} when its functions "
                    f"were defined: {e['message']}"
                )
            lost = sorted({d["cell"] for d in ready.get("dropped", [])})
            if lost:
                result.notes.append(
                    "statements outside functions in answer cells were not run by "
                    f"the verifier ({', '.join(lost)}); keep answers inside functions"
                )
            proxies = client.functions()
        except (runner.RemoteError, sandbox.SandboxError) as exc:
            result.notes.append(f"the verifier could not load the answers: {exc}")
            proxies = {}
        torch.manual_seed(seeds.seed("torch default generator"))
        for i, src in enumerate(spec.setup):
            outputs = run_cell(src, ns, f"<setup {i}>")
            if any(o["output_type"] == "error" for o in outputs):
                result.notes.append(f"setup cell {i} failed in the verifier: {outputs}")
        for name, proxy in proxies.items():
            # the student's names never replace the setup's or the builtins
            if name not in ns and not hasattr(builtins, name):
                ns[name] = proxy
        for gid, src in spec.tests:
            t0 = time.monotonic()
            outputs = run_cell(src, ns, f"<test {gid}>")
            points = spec.points[gid]
            result.cells[gid] = CellResult(
                gid,
                score_outputs(gid, points, outputs),
                points,
                outputs,
                time.monotonic() - t0,
            )
        if client.events:
            result.notes.append(
                "during verification: " + ", ".join(sorted(set(client.events)))
            )
        from autograder.checks import placement

        if placement.failures:
            result.notes.append(
                f"the GPU failed in {len(placement.failures)} calls, which ran on "
                f"the CPU instead (the grader's problem, not yours): "
                f"{placement.failures[0][:300]}"
            )
    finally:
        client.close()
    result.seconds = time.monotonic() - start
    return result
