"""Helpers shared by the layer checks (gradient checking and normalization).

Inputs are drawn on the CPU in float64 from generators keyed by
:mod:`autograder.checks.seeds` (the course secret and the student when grading,
fresh random numbers otherwise), then converted, so every device sees the same
numbers. Comparisons go through
:mod:`autograder.checks.expect` (plain tensors only); a failed comparison is
matched against known wrong formulas so that the message can name the
misconception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch

from autograder.checks import placement, seeds
from autograder.checks.core import Mistake
from autograder.checks.expect import (
    expect_close,
    expect_dtype_device,
    plain_tensor,
    rel_error,
    unpack,
)
from autograder.checks.own_code import Guard, same_values, was_changed
from autograder.checks.placement import device_mistake
from trainlab.gradcheck import check_directional, check_elementwise

#: a wrong formula: (message naming the misconception, the value it gives)
Hint = tuple[str, torch.Tensor]
F = TypeVar("F", bound=Callable[..., Any])


def single_threaded(fn: F) -> F:
    """Run a grade function with one CPU thread, then restore the setting.

    The checks use small tensors, for which torch's thread pool only adds
    contention (tens of times slower on a busy machine).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]


def gen(label: int | str) -> torch.Generator:
    """A CPU generator for the inputs named ``label`` (:mod:`seeds`: keyed)."""
    return seeds.gen(label)


def randn(
    shape: Sequence[int],
    seed: int | str,
    *,
    scale: float = 1.0,
    shift: float | torch.Tensor = 0.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``scale * N(0, 1) + shift`` drawn in float64 on the CPU, then converted.

    ``seed`` is a label: the numbers come from :func:`gen` (the course key).
    """
    x = torch.randn(tuple(shape), generator=gen(seed), dtype=torch.float64)
    return (scale * x + shift).to(device=device, dtype=dtype)


def runs_with_the_answer(fn: F) -> F:
    """Mark a module-level function of the checks to run beside the answer.

    A callable a check passes to a student's function normally stays in the
    grader and is called back over the wire, so what it returns arrives as a
    fresh tensor. A function marked here travels by name instead and runs in
    the process of the student's code, for checks that depend on it (``f``
    returning a view of ``x`` for a numerical gradient).
    """
    fn.runs_with_the_answer = True  # type: ignore[attr-defined]
    return fn


def forward_pair(value: object, what: str) -> tuple[torch.Tensor, Any]:
    """Split a forward's ``(out, cache)``; the output as a plain tensor."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        extra = f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""
        raise Mistake(
            f"{what} should return a pair (out, cache); got "
            f"{type(value).__name__}{extra}"
        )
    return plain_tensor(value[0], "out"), value[1]


def matching_hint(actual: torch.Tensor, hints: Iterable[Hint]) -> str:
    """The message of the first wrong formula that reproduces ``actual``, or ''."""
    for text, wrong in hints:
        if not isinstance(wrong, torch.Tensor) or wrong.shape != actual.shape:
            continue
        wrong = wrong.detach().to(actual.device, torch.float64)
        if torch.isfinite(wrong).all() and rel_error(actual.double(), wrong) < 1e-6:
            return text
    return ""


def close_with_hints(
    actual: torch.Tensor,
    expected: torch.Tensor,
    name: str,
    hints: Iterable[Hint] | Callable[[], Iterable[Hint]] = (),
    *,
    tol: float | None = None,
    hint: str = "",
    context: str = "",
) -> None:
    """:func:`expect_close`, naming the mistake when a known wrong formula matches.

    ``hints`` may be a function returning them, computed only on a mismatch.
    ``context`` (e.g. ``"x of shape (4, 5), float64"``) starts the message.
    """
    try:
        expect_close(actual, expected, name, tol=tol)
    except Mistake as exc:
        text = f"{context}: {exc}" if context else str(exc)
        try:
            found = list(hints() if callable(hints) else hints)
        except Exception:  # a wrong formula that does not apply to this input
            found = []
        likely = matching_hint(actual, found)
        if likely:
            raise Mistake(f"{text}\nLikely mistake: {likely}") from None
        if hint:
            text += f"\nHint: {hint}"
        raise Mistake(text) from None


def expect_unchanged(before: torch.Tensor, after: torch.Tensor, name: str, what: str):
    """The caller's tensor ``after`` was not changed in place by a student's call.

    Student functions get copies of their inputs (:class:`own_code.Protected`),
    so ``after`` itself never changes; a change the call made to its copy is
    remembered (:func:`own_code.was_changed`) and fails here.
    """
    if was_changed(after) or not same_values(before, after):
        raise Mistake(
            f"{what} changed its input {name} in place; leave it as it was "
            "(compute new tensors instead)"
        )


def expect_gradcheck(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dout: torch.Tensor,
    analytic: torch.Tensor,
    name: str,
    *,
    seed: int = 7,
    threshold: float = 1e-7,
    what: str = "the reference forward",
) -> None:
    """Elementwise and directional gradient checks of ``analytic`` (float64)."""
    for check in (check_elementwise, check_directional):
        result = check(
            f, x, dout, analytic, generator=gen(seed), name=name, threshold=threshold
        )
        if not result.passed:
            raise Mistake(
                f"finite differences of {what} disagree with your {name}:\n{result}"
            )


def forward_for_cache(
    guard: Guard, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """The student's forward, run for the cache a backward check needs.

    Under the backward cell's guard: a forward that reaches torch's layer or
    records an autograd graph while the backward is graded costs the backward
    too, since its cache could carry the backward's answer. It gets copies of
    its tensor inputs (:class:`Protected`), and runs under ``torch.no_grad``
    so that no graph reaches the cache.
    """
    return guard.call(fn, *args, **kwargs)


META = torch.device("meta")


def _to_meta(value: Any, depth: int = 0) -> Any:
    """``value`` with every floating or integer tensor on the ``meta`` device."""
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device=META)
    if depth < 3 and type(value) in (list, tuple):
        return type(value)(_to_meta(v, depth + 1) for v in value)
    if depth < 3 and type(value) is dict:
        return {k: _to_meta(v, depth + 1) for k, v in value.items()}
    return value


def _tensors_of(value: Any, depth: int = 0) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if depth < 3 and isinstance(value, list | tuple):
        return [t for v in value for t in _tensors_of(v, depth + 1)]
    if depth < 3 and isinstance(value, dict):
        return [t for v in value.values() for t in _tensors_of(v, depth + 1)]
    return []


def _device_message(what: str, detail: str) -> str:
    return (
        f"{what} works only on the CPU: {detail}. Your functions must work for "
        "inputs on any device (a GPU included): create tensors with "
        "device=x.device (or x.new_zeros, torch.zeros_like), and keep the "
        "computation in torch (no .numpy(), no masks built on the host). "
        "(Checked with torch's 'meta' device, which has shapes but no values, so "
        "a machine without a GPU finds what a GPU would.)"
    )


def on_meta(
    guard: Guard,
    fn: Callable[..., Any],
    what: str,
    args: Sequence[Any],
    kwargs: dict[str, Any] | None = None,
    *,
    outputs: int | None = None,
    compare: bool = True,
) -> Any:
    """Call ``fn`` on ``meta`` copies of its inputs; a device mistake is a Mistake.

    With a grading device (``--device cuda``) and ``compare``, the same call
    then runs on the CPU and on the device (:func:`same_on_cpu_and_device`).

    Every tensor the function returns (the first ``outputs`` items of a tuple,
    when given: a forward's cache may hold anything) must be on the inputs'
    device. An error that names a device (a CPU tensor mixed in, ``.numpy()``)
    is a device mistake; any other error on ``meta`` (``.item()``, data that
    decides the shape) says nothing about devices and is not counted.

    Returns:
        What ``fn`` returned, or None when the run said nothing.
    """
    try:
        value = guard.call(fn, *_to_meta(tuple(args)), **_to_meta(kwargs or {}))
    except Mistake:
        raise
    except Exception as exc:  # student code may raise anything
        text = f"{type(exc).__name__}: {exc}"
        if device_mistake(text):
            raise Mistake(_device_message(what, text.splitlines()[0])) from None
        return None
    head = (
        value[:outputs] if outputs is not None and isinstance(value, tuple) else value
    )
    for t in _tensors_of(head):
        if t.device != META:
            raise Mistake(
                _device_message(
                    what,
                    f"it returned a tensor on {t.device} for inputs on another device",
                )
            )
    if compare and placement.on_device():
        same_on_cpu_and_device(guard, fn, what, args, kwargs or {}, outputs=outputs)
    return value


def _fresh(value: Any, depth: int = 0) -> Any:
    """``value`` with its tensors cloned (lists, tuples, dicts), for one call."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if depth < 3 and type(value) in (list, tuple):
        return type(value)(_fresh(v, depth + 1) for v in value)
    if depth < 3 and type(value) is dict:
        return {k: _fresh(v, depth + 1) for k, v in value.items()}
    return value


def same_on_cpu_and_device(
    guard: Guard,
    fn: Callable[..., Any],
    what: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    outputs: int | None = None,
) -> None:
    """With a grading device (:mod:`placement`): the same call on the CPU and
    on the device must agree (float64: relative error at most 1e-9; other
    dtypes: their usual tolerance).

    A device mistake any call of this cell made on the device (remembered by
    the guard) fails here too. A function that raises on the CPU is not
    compared: its other checks report that.
    """
    device = str(placement.current())
    try:
        with placement.pinned("cpu"):
            cpu = guard.call(fn, *_fresh(tuple(args)), **_fresh(kwargs))
    except Mistake:
        raise
    except Exception:  # noqa: BLE001 - not a device question
        cpu = None
    if cpu is not None:
        try:
            dev = guard.call(fn, *_fresh(tuple(args)), **_fresh(kwargs))
        except Mistake:
            raise
        except Exception as exc:  # noqa: BLE001 - it ran on the CPU
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            raise Mistake(
                placement.failed_on_device_message(what, device, detail)
            ) from None
    if guard.device_notes:
        raise Mistake(guard.device_notes[0])
    if cpu is None:
        return
    pick = (lambda v: v[:outputs]) if outputs is not None else (lambda v: v)
    ours = _tensors_of(pick(dev) if isinstance(dev, tuple) else dev)
    theirs = _tensors_of(pick(cpu) if isinstance(cpu, tuple) else cpu)
    if len(ours) != len(theirs):
        raise Mistake(
            f"{what} returned {len(ours)} tensors on {device} and {len(theirs)} "
            "on the CPU for the same inputs"
        )
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a.is_floating_point() and b.is_floating_point():
            tol = 1e-9 if a.dtype == torch.float64 else None  # else the dtype's
            expect_close(a, b, f"output {i + 1} on {device} vs on cpu", tol=tol)
        elif not torch.equal(a, b):
            raise Mistake(f"output {i + 1} of {what} differs on {device} and on cpu")


def backward_on_meta(
    guard: Guard,
    backward: Callable[..., Any],
    what: str,
    dout: torch.Tensor,
    forward: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    reference: Callable[..., Any],
) -> None:
    """:func:`on_meta` for a backward, on the cache of a forward run on ``meta``.

    The student's forward gives the cache when it runs there; otherwise (or if
    its cache is on another device: the forward's own check pays for that) the
    reference forward's, so the backward answers only for itself.
    """
    margs, mkw = _to_meta(tuple(args)), _to_meta(dict(kwargs))
    cache = None
    try:
        cache = forward_for_cache(guard, forward, *margs, **mkw)[1]
    except Mistake as exc:
        if "earns 0 points" in str(exc):
            raise
        cache = None
    except Exception:  # noqa: BLE001 - the forward's own check reports it
        cache = None
    if cache is None or any(t.device != META for t in _tensors_of(cache)):
        cache = reference(*margs, **mkw)[1]
    on_meta(guard, backward, what, (_to_meta(dout), cache), compare=False)
    if placement.on_device():  # on the reference's cache, computed on the CPU
        ref_cache = reference(*_fresh(tuple(args)), **_fresh(dict(kwargs)))[1]
        same_on_cpu_and_device(guard, backward, what, (dout, ref_cache), {})


def device_pairs() -> list[torch.device]:
    """Devices other than the CPU present here (CUDA), to compare with the CPU."""
    from autograder.checks.own_code import devices

    return [d for d in devices() if d.type != "cpu"]


def guarded_forward(
    guard: Guard, forward: Callable[..., Any], what: str, *args: Any, **kwargs: Any
) -> tuple[torch.Tensor, Any]:
    """``forward(*args, **kwargs)`` under the guard, split into (out, cache)."""
    return forward_pair(guard.call(forward, *args, **kwargs), what)


def expect_grad_shape(grad: torch.Tensor, shape: Sequence[int], name: str) -> None:
    """Shape check that explains the usual ``keepdim=True`` slip."""
    shape = tuple(shape)
    got = tuple(grad.shape)
    if got == shape:
        return
    if grad.numel() == torch.Size(shape).numel() and len(got) > len(shape):
        raise Mistake(
            f"{name} has shape {got}, expected {shape}: sum over the batch "
            "(and positions) without keepdim=True"
        )
    raise Mistake(f"{name} has shape {got}; expected {shape}")


def _clone_args(args: Sequence[Any], dtype: torch.dtype | None = None) -> list[Any]:
    """Fresh copies of tensor arguments (a forward may update some in place)."""
    return [
        (a.to(dtype) if dtype is not None else a).clone()
        if isinstance(a, torch.Tensor)
        else a
        for a in args
    ]


def own_forward_function(
    forward: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    i: int,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> forward(*args with args[i] = v, **kwargs)[0]``, on fresh copies."""

    def f(v: torch.Tensor) -> torch.Tensor:
        call = _clone_args(args)
        call[i] = v
        return forward(*call, **kwargs)[0]

    return f


class Unchecked(Mistake):
    """A backward that could not be checked on an input: the forward is wrong there.

    A backward earns points only against the true gradient. On an input where
    the student's forward is wrong, its cache describes another function, so
    the backward is run on the reference forward's cache instead; when it
    cannot use that one either, the input is *unchecked*. :func:`over_cases`
    counts only the checked inputs, and fails when none was.
    """


def over_cases(cases: Iterable[Any], run: Callable[[Any], Any], forward: str) -> None:
    """``run(case)`` for each case; unchecked cases are skipped, not failed.

    Raises:
        Mistake: a checked case failed, or ``forward`` was wrong on every case
            (so there is nothing the backward could be checked against).
    """
    unchecked: list[Unchecked] = []
    checked = 0
    for case in cases:
        try:
            run(case)
        except Unchecked as exc:
            unchecked.append(exc)
            continue
        checked += 1
    if checked == 0 and unchecked:
        raise Mistake(
            f"{forward} is wrong on every input of this check, so the backward "
            "could not be checked: fix the forward first.\n" + str(unchecked[0])
        )


def _with_reference_cache(
    guard: Guard,
    backward: Callable[..., Any],
    what: str,
    dout: torch.Tensor,
    reference_cache: Any,
    names: Sequence[str],
    expected: Sequence[torch.Tensor],
    tol: float | None,
) -> list[torch.Tensor] | None:
    """The student's gradients from the reference forward's cache, if right."""
    try:
        grads = unpack(
            guard.call(backward, dout.clone(), reference_cache), list(names), what
        )
        for grad, want, name in zip(grads, expected, names, strict=True):
            expect_close(grad, want, name, tol=tol)
    except Mistake as exc:
        if "earns 0 points" in str(exc):
            raise
        return None
    except Exception:  # the student's backward does not read the reference cache
        return None
    return grads


def grade_gradients(
    *,
    guard: Guard,
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    what: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    diff: Sequence[int],
    dout: torch.Tensor,
    student_cache: Any,
    forward_ok: bool,
    reference_cache: Any,
    names: Sequence[str],
    expected: Sequence[torch.Tensor],
    hints: Sequence[Callable[[], Iterable[Hint]]] | None = None,
    context: str = "",
    tol: float | None = None,
) -> list[torch.Tensor]:
    """Run the student's backward and compare its gradients with the true ones.

    The one rule of backward credit: gradients are compared with ``expected``
    (the gradient of the true layer: torch autograd in float64), never with
    the gradient of whatever the student's forward computes. When the
    student's forward is right on this input (``forward_ok``), the backward
    runs on its cache and a mismatch is explained with ``hints``. When it is
    wrong, its own cell loses those points and the backward runs on the
    reference forward's cache instead; if it is not right there either, the
    input is :class:`Unchecked` (see :func:`over_cases`).

    Returns:
        The student's gradients, plain tensors, in the order of ``names``.
    """
    dout_before = dout.clone()
    try:
        value = guard.call(backward, dout, student_cache)
    except Mistake:
        raise
    except Exception:
        # the cache of a wrong (or borrowed) forward may be unusable: a
        # backward that is right with the reference forward's cache passes
        with_ref = _with_reference_cache(
            guard, backward, what, dout, reference_cache, names, expected, tol
        )
        if with_ref is not None:
            return with_ref
        raise
    expect_unchanged(dout_before, dout, "dout", what)
    grads = unpack(value, list(names), what)
    for grad, want, name in zip(grads, expected, names, strict=True):
        expect_grad_shape(grad, want.shape, name)
    if forward_ok:
        for i, (grad, want, name) in enumerate(
            zip(grads, expected, names, strict=True)
        ):
            close_with_hints(
                grad,
                want,
                name,
                hints[i] if hints else (),
                tol=tol,
                context=context,
            )
        return grads
    with_ref = _with_reference_cache(
        guard, backward, what, dout, reference_cache, names, expected, tol
    )
    if with_ref is not None:
        return with_ref
    raise Unchecked(
        f"{context + ': ' if context else ''}your forward is wrong on this input, "
        f"so {what} was run on the reference forward's cache (laid out as the "
        "docstring says), and its gradients there are not the true ones"
    )


def expect_layer_gradcheck(
    *,
    reference: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    diff: Sequence[int],
    dout: torch.Tensor,
    grads: Sequence[torch.Tensor],
    names: Sequence[str],
) -> None:
    """Gradient checks of ``grads`` (float64), elementwise and directional.

    Always against the ``reference`` forward: finite differences of the true
    layer, since a gradient is right only as the gradient of the true layer.
    """
    for i, grad, name in zip(diff, grads, names, strict=True):
        f = own_forward_function(reference, args, kwargs, i)
        expect_gradcheck(f, args[i], dout, grad, name, what="the reference forward")


def expect_backward_shapes(
    *,
    guard: Guard,
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    reference: Callable[..., Any],
    what: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    dout: torch.Tensor,
    names: Sequence[str],
    wrt: Sequence[torch.Tensor],
) -> None:
    """A backward returns one gradient per input in ``wrt``, shaped like it.

    Run on the cache of the student's forward of ``args``, else on the
    reference forward's (:func:`backward_outputs`); each gradient must have the
    shape, dtype and device of its input.
    """
    grads = backward_outputs(
        guard,
        backward,
        what,
        dout,
        lambda: forward_for_cache(guard, forward, *_clone_args(args), **kwargs)[1],
        reference(*_clone_args(args), **kwargs)[1],
        names,
    )
    for grad, t, name in zip(grads, wrt, names, strict=True):
        expect_grad_shape(grad, t.shape, name)
        expect_dtype_device(grad, t, name)


def backward_outputs(
    guard: Guard,
    backward: Callable[..., Any],
    what: str,
    dout: torch.Tensor,
    student_cache: Callable[[], Any],
    reference_cache: Any,
    names: Sequence[str],
) -> list[torch.Tensor]:
    """The student's gradients from their own forward's cache.

    If that forward fails, or its cache makes the backward fail, the
    reference forward's cache is tried (its layout is the one the notebook's
    docstrings describe); the first error is raised when both fail.
    """
    try:
        cache = student_cache()
        return unpack(guard.call(backward, dout, cache), list(names), what)
    except Mistake as exc:
        if "earns 0 points" in str(exc):
            raise
        first: Exception = exc
    except Exception as exc:  # the student's forward or backward failed
        first = exc
    try:
        return unpack(guard.call(backward, dout, reference_cache), list(names), what)
    except Mistake as exc:
        if "earns 0 points" in str(exc):
            raise
    except Exception:  # report the error of the student's own pair
        pass
    raise first
