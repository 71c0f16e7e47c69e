"""Every visible test that fails says in words what is wrong.

For each assignment, the source notebook's setup and answer cells run in this
process; then, for each answer function in turn, a wrong version of it (the
right result, perturbed) replaces it and the visible test cells that use it
run again. A failure must come with a sentence: never a bare AssertionError,
never an assertion message of a word or two.
"""

from __future__ import annotations

import ast
import dataclasses
import os

import pytest
import torch

from autograder.authoring import generate
from autograder.authoring.harness import read_notebook
from tests.assignments.assignment_runs import nbgrader_meta, source_path

pytestmark = [pytest.mark.assignments, pytest.mark.slow]

#: an assertion message shorter than this many words is not a sentence
MIN_WORDS = 5


def perturb(value: object) -> object:
    """A wrong version of a right result: numbers moved, structure kept."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value * 1.5 + 0.25
    if isinstance(value, float):
        return value * 1.5 + 0.25
    if type(value) is tuple and value:
        return (perturb(value[0]), *value[1:])
    if isinstance(value, list):
        return [perturb(v) for v in value]
    if isinstance(value, dict):
        return {k: perturb(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: perturb(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **fields)
    return value


def wrong(func):
    def wrapper(*args, **kwargs):
        return perturb(func(*args, **kwargs))

    return wrapper


def _cells(name: str):
    nb = read_notebook(source_path(name))
    setup, answers, checks = [], [], []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id", "")
        if cell.cell_type != "code" or not gid:
            continue
        if meta.get("solution"):
            answers.append(cell.source)
        elif meta.get("locked") and not meta.get("grade"):
            (checks if gid.startswith("check") else setup).append((gid, cell.source))
    return setup, answers, checks


def _functions(sources: list[str]) -> dict[str, set[str]]:
    """Answer functions -> the names each one refers to."""
    found = {}
    for src in sources:
        for node in ast.parse(src).body:
            if isinstance(node, ast.FunctionDef):
                found[node.name] = {
                    n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                }
    return found


def _names(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def _failure(source: str, ns: dict) -> BaseException | None:
    try:
        exec(compile(source, "<visible test>", "exec"), ns)  # noqa: S102
    except Exception as exc:  # noqa: BLE001 - any failure is what we look at
        return exc
    return None


@pytest.mark.parametrize("name", generate.discover())
def test_visible_tests_fail_with_a_sentence(name, monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(source_path(name).parent)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup, answers, checks = _cells(name)
    base: dict = {"__name__": "__main__"}
    for _, src in setup:
        exec(compile(src, "<setup>", "exec"), base)  # noqa: S102
    for src in answers:
        exec(compile(src, "<answer>", "exec"), base)  # noqa: S102
    for gid, src in checks:  # the solution passes every visible test
        assert _failure(src, dict(base)) is None, f"{name}/{gid} fails on the solution"
    functions = _functions(answers)
    bare = []
    for func in functions:
        callers = {func} | {g for g, refs in functions.items() if func in refs}
        ns = dict(base)
        for src in answers:  # rebound here, so that callers see the wrong func
            exec(compile(src, "<answer>", "exec"), ns)  # noqa: S102
        ns[func] = wrong(ns[func])
        for gid, src in checks:
            if not _names(src) & callers:
                continue
            exc = _failure(src, dict(ns))
            if exc is not None and len(str(exc).split()) < MIN_WORDS:
                bare.append(f"{gid} with a wrong {func}: {type(exc).__name__}({exc})")
    capsys.readouterr()
    assert not bare, "visible tests failing without a sentence:\n" + "\n".join(bare)
