"""No points without the work: degenerate answers score 0 on every graded cell.

For every assignment, every graded function of the solution notebook is
replaced by a *degenerate* version of itself: the solution computes the
answer's structure (shapes, tuples, caches), then every number in it is
thrown away for zeros, ones, a constant, random values, or the input itself
(which makes ``(dout, 0, 0)``-like gradients and identity forwards). Such a
notebook has nothing right but its shapes, and must earn 0 on every
automatically graded cell: a shape, dtype or "inputs unchanged" check counts
only when the answer's values are right somewhere.

The cases are generated for all cells of all assignments, not written one by
one, so a new cell is covered the day it is added.
"""

from __future__ import annotations

import builtins
import functools
import math
from typing import Any

import pytest
import torch

from autograder.authoring import assignment as asg
from tests.autograder.students import grade_all

pytestmark = [pytest.mark.grader, pytest.mark.slow]

KINDS = ("zeros", "ones", "constant", "random", "input")
ASSIGNMENTS = asg.available()


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
    return None


def _degrade(value: Any, kind: str, first: torch.Tensor | None, depth: int = 0):
    """``value`` with every number replaced according to ``kind``."""
    if depth > 4:
        return value
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return value
        if kind == "zeros":
            return torch.zeros_like(value)
        if kind == "ones":
            return torch.ones_like(value)
        if kind == "constant":
            return torch.full_like(value, 0.5)
        if kind == "random":
            return torch.randn_like(value)
        if first is not None and first.shape == value.shape:
            return first.to(value.dtype).clone()
        return torch.zeros_like(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return {"zeros": 0.0, "ones": 1.0, "constant": 0.5}.get(kind, math.pi / 7)
    if isinstance(value, int):
        return {"zeros": 0, "ones": 1}.get(kind, 3)
    if isinstance(value, tuple | list):
        items = [_degrade(v, kind, first, depth + 1) for v in value]
        return type(value)(items) if isinstance(value, tuple) else items
    if type(value) is dict:
        return {k: _degrade(v, kind, first, depth + 1) for k, v in value.items()}
    if hasattr(value, "__dict__") and type(value).__module__.startswith("trainlab"):
        copy = object.__new__(type(value))  # a history, a model: every number
        for k, v in vars(value).items():
            object.__setattr__(copy, k, _degrade(v, kind, first, depth + 1))
        return copy
    return value


def _once(callback, kind: str):
    """A callback the answer calls as often as it likes, that runs only once.

    A degenerate answer does no work through the grader's callbacks either
    (it trains no model, scores no trial): the first call's result, degraded,
    stands for every call.
    """
    memo: list = []

    def stub(*args, **kwargs):
        if not memo:
            memo.append(_degrade(callback(*args, **kwargs), kind, None))
        return memo[0]

    return stub


def _degenerate(fn, kind: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = tuple(_once(a, kind) if _is_callback(a) else a for a in args)
        kwargs = {
            k: _once(v, kind) if _is_callback(v) else v for k, v in kwargs.items()
        }
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        before = [t.clone() for t in tensors]
        out = fn(*args, **kwargs)
        for t, b in zip(tensors, before, strict=True):  # in-place work too
            if not torch.equal(t, b):
                t.copy_(_degrade(t, kind, None))
        if isinstance(out, tuple) and len(out) == 2 and not isinstance(out[1], float):
            # (out, cache): the cache stays usable, the output is degenerate
            head, cache = out
            if isinstance(cache, dict | tuple) and not isinstance(head, tuple):
                return _degrade(head, kind, _first_tensor(args, kwargs)), cache
        return _degrade(out, kind, _first_tensor(args, kwargs))

    return wrapper


def _is_callback(value: Any) -> bool:
    return callable(value) and not isinstance(value, type | torch.Tensor)


def _solution_namespace(name: str) -> tuple[dict, asg.Assignment, dict]:
    """The solution notebook's namespace (setup and every answer cell), and the
    names each answer cell defined."""
    import nbformat

    spec, _ = asg.load(name)
    nb = nbformat.read(str(asg.source_path(name)), as_version=4)
    ns: dict[str, Any] = {"__builtins__": builtins, "__name__": "__main__"}
    for src in spec.setup:
        exec(compile(src, "<setup>", "exec"), ns)  # noqa: S102
    by_id = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c
        for c in nb.cells
        if c.cell_type == "code"
    }
    defined: dict[str, list[str]] = {}
    for gid in spec.solutions:
        if gid not in by_id:  # a written answer is a markdown cell
            continue
        before = {k: id(v) for k, v in ns.items()}
        exec(compile(by_id[gid].source, f"<answer {gid}>", "exec"), ns)  # noqa: S102
        defined[gid] = [k for k, v in ns.items() if before.get(k) != id(v)]
    return ns, spec, defined


def _degenerate_namespace(name: str, kind: str) -> tuple[dict, asg.Assignment]:
    ns, spec, defined = _solution_namespace(name)
    for names in defined.values():
        for fname in names:
            value = ns[fname]
            if callable(value) and not isinstance(value, type):
                ns[fname] = _degenerate(value, kind)
            elif isinstance(value, dict):  # a chosen configuration
                ns[fname] = _degrade(value, kind, None)
    return ns, spec


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_degenerate_answers_score_zero_on_every_cell(name, kind):
    ns, spec = _degenerate_namespace(name, kind)
    reports = grade_all(name, ns)
    auto = {g for g in spec.points if g not in spec.manual}
    assert set(reports) == auto
    scored = {g: (r.score, r.max_score) for g, r in reports.items() if r.score > 0}
    detail = "\n\n".join(str(reports[g]) for g in scored)
    assert scored == {}, f"{kind} answers earned points:\n{detail}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_solution_itself_scores_full_marks(name):
    """The construction above is sound: undegraded, the same namespace passes."""
    ns, _, _ = _solution_namespace(name)
    reports = grade_all(name, ns)
    lost = {g: str(r) for g, r in reports.items() if r.score < r.max_score}
    assert lost == {}
