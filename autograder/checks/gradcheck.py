"""Checks for the gradcheck assignment: ``rel_error`` and ``numerical_gradient``.

``rel_error`` is compared with the definition
$\\max|a - b| / \\max(\\varepsilon, \\max(|a| + |b|))$ on random tensors, on an
entry that is near zero by cancellation (where an entrywise relative error blows
up), on two zero tensors (the floor $\\varepsilon$), in float32 and on every
device.

``numerical_gradient`` is compared with the exact gradient of functions whose
output shape differs from the input's, with a random upstream gradient (so a
forgotten ``dout`` shows), with $f(x) = x^3$ where the centered difference is
exactly $3x^2 + h^2$ (so a one-sided difference or an ignored ``h`` shows), on
inputs of 1 to 3 dims, non-contiguous, in float32, and on every device.
The functions ``f`` given to the student's code use plain torch operations
only; autograd and the reference ``trainlab.gradcheck`` are off limits.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import partial

import torch

from autograder.checks import placement
from autograder.checks.common import (
    close_with_hints,
    device_pairs,
    randn,
    runs_with_the_answer,
    same_on_cpu_and_device,
    single_threaded,
)
from autograder.checks.core import Grader, Mistake, Report
from autograder.checks.expect import (
    expect_close,
    expect_dtype_device,
    expect_shape,
    plain_tensor,
)
from autograder.checks.own_code import Guard, devices, rules

RULES = rules(
    allow_reference={("gradcheck.py", "_loss")},
    modules=(
        (os.path.join("torch", "autograd", "gradcheck.py"), "torch.autograd.gradcheck"),
        (os.path.join("torch", "testing") + os.sep, "torch.testing"),
        (os.path.join("torch", "nn", "functional.py"), "torch.nn.functional"),
    ),
    hint="Write it with plain tensor operations: no autograd, no trainlab.gradcheck.",
)


# ---------------------------------------------------------------- rel_error


def _definition(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    den = max(eps, float((a.abs() + b.abs()).max()))
    return float((a - b).abs().max()) / den


def _rel_error_hints(a: torch.Tensor, b: torch.Tensor) -> list[tuple[str, float]]:
    a, b = a.double().cpu(), b.double().cpu()
    diff = (a - b).abs()
    total = a.abs() + b.abs()
    return [
        (
            "this is the entrywise relative error max(|a - b| / (|a| + |b|)): an "
            "entry near zero makes it large although the tensors agree; divide "
            "the largest difference by the largest |a| + |b| instead",
            float((diff / total.clamp_min(1e-300)).max()),
        ),
        (
            "the denominator looks like max(|a|, |b|); the course uses the "
            "largest |a| + |b|",
            float(diff.max() / torch.maximum(a.abs(), b.abs()).max()),
        ),
        (
            "this looks like a mean of the differences, not the largest one",
            float(diff.mean() / total.max()),
        ),
        (
            "this looks like norms (||a - b|| / (||a|| + ||b||)), not maxima",
            float((a - b).norm() / (a.norm() + b.norm())),
        ),
        (
            "the absolute error max|a - b|: divide by the largest |a| + |b|",
            float(diff.max()),
        ),
    ]


def _as_float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = type(value).__name__
        extra = ""
        if isinstance(value, torch.Tensor):
            extra = " (a tensor: convert it with float(...) or .item())"
        raise Mistake(f"{what} should return a Python float; got {kind}{extra}")
    return float(value)


def _expect_value(got: float, want: float, label: str, hints=()) -> None:
    if math.isnan(got) or abs(got - want) > 1e-9 * max(abs(want), 1e-300) + 1e-300:
        for text, wrong in hints:
            if math.isfinite(wrong) and abs(got - wrong) <= 1e-9 * abs(wrong) + 1e-300:
                raise Mistake(
                    f"{label}: you returned {got:.6g}, expected {want:.6g}.\n"
                    f"Likely mistake: {text}"
                )
        raise Mistake(f"{label}: you returned {got:.6g}, expected {want:.6g}")


@single_threaded
def grade_rel_error(rel_error: Callable[..., object]) -> Report:
    """Grade ``rel_error(a, b, eps=1e-12) -> float`` (5 points)."""
    what = "rel_error"
    guard = Guard(RULES, what)
    g = Grader(what)

    def call(a: torch.Tensor, b: torch.Tensor, **kw) -> float:
        a0, b0 = a.clone(), b.clone()
        value = _as_float(guard.call(rel_error, a, b, **kw), what)
        if not (torch.equal(a, a0) and torch.equal(b, b0)):
            raise Mistake("rel_error changed its inputs; leave a and b as they were")
        return value

    def returns_float() -> None:
        a, b = randn((4, 5), 1), randn((4, 5), 2)
        call(a, b)

    def random_pairs() -> None:
        for i, shape in enumerate([(4, 5), (7,), (3, 4, 6), (50, 20)]):
            a = randn(shape, 10 + i, scale=3.0)
            b = a + randn(shape, 20 + i, scale=1e-3 * (i + 1))
            want = _definition(a, b)
            _expect_value(
                call(a, b), want, f"a, b of shape {shape}", _rel_error_hints(a, b)
            )
            got_ba = call(b, a)
            if abs(got_ba - want) > 1e-9 * want:
                raise Mistake(
                    f"rel_error(b, a) = {got_ba:.6g} but rel_error(a, b) = {want:.6g}: "
                    "the relative error must be symmetric"
                )
        # values of opposite signs: |a| + |b|, not |a + b|
        a = randn((5, 4), 30, scale=2.0)
        b = -a * (1.0 + 0.1 * randn((5, 4), 31).abs())
        _expect_value(
            call(a, b),
            _definition(a, b),
            "a and b of opposite signs",
            [
                (
                    "the denominator looks like max|a + b|, which is ~0 when a "
                    "and b have opposite signs; use the largest |a| + |b|",
                    float((a - b).abs().max() / (a + b).abs().max()),
                ),
                *_rel_error_hints(a, b),
            ],
        )

    def cancellation() -> None:
        a = torch.tensor([[1.0, 2.0, 1e-12], [0.5, -3.0, 4.0]], dtype=torch.float64)
        b = a.clone()
        b[0, 2] = -1e-12  # both tiny: the entry is zero up to rounding
        b[1, 1] += 1e-9
        want = _definition(a, b)
        _expect_value(
            call(a, b),
            want,
            "a and b that agree except for an entry that is ~0 in both",
            _rel_error_hints(a, b),
        )

    def zeros() -> None:
        z = torch.zeros(3, 4, dtype=torch.float64)
        got = call(z, z.clone())
        if math.isnan(got) or got != 0.0:
            raise Mistake(
                f"rel_error of two zero tensors should be 0; got {got}. Floor the "
                "denominator with eps: max(eps, max(|a| + |b|))"
            )
        tiny = torch.full((2, 2), 1e-14, dtype=torch.float64)
        got = call(tiny, torch.zeros_like(tiny))
        _expect_value(
            got, _definition(tiny, torch.zeros_like(tiny)), "a = 1e-14, b = 0"
        )
        got = call(tiny, torch.zeros_like(tiny), eps=1e-20)
        _expect_value(
            got,
            _definition(tiny, torch.zeros_like(tiny), 1e-20),
            "a = 1e-14, b = 0 with eps=1e-20",
            [("the eps argument is ignored", 1e-14 / 1e-12)],
        )

    def dtypes_devices() -> None:
        for device in devices():
            a64 = randn((6, 7), 40, scale=2.0)
            b64 = a64 + randn((6, 7), 41, scale=1e-2)
            for dtype in (torch.float64, torch.float32):
                a, b = a64.to(device, dtype), b64.to(device, dtype)
                want = _definition(a, b)
                got = call(a, b)
                if not math.isfinite(got) or abs(got - want) > 1e-5 * want:
                    raise Mistake(
                        f"{dtype} tensors on {device}: you returned {got:.6g}, "
                        f"expected {want:.6g}"
                    )

    g.check("returns a Python float, leaves a and b unchanged", 1, returns_float)
    g.check(
        "max|a - b| / max(|a| + |b|) on random tensors (4 shapes; opposite "
        "signs), symmetric",
        1,
        random_pairs,
        requires=["returns a Python float, leaves a and b unchanged"],
        key=True,
    )
    g.check(
        "scale aware: an entry near zero by cancellation", 1, cancellation, key=True
    )
    g.check("two zero tensors give 0 (the eps floor), eps is used", 1, zeros)
    g.check("float32 and float64 tensors, on every available device", 1, dtypes_devices)
    return guard.report(g)


# ------------------------------------------------------- numerical_gradient


def _matrix_f(w: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (N, D) -> tanh(x @ w) * x.sum(1, keepdim)  (N, M): output shape != x's."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ w.to(x.device, x.dtype)) * x.sum(dim=1, keepdim=True)

    return f


def _matrix_grad(x: torch.Tensor, w: torch.Tensor, dout: torch.Tensor) -> torch.Tensor:
    """Exact gradient of sum(f(x) * dout) for :func:`_matrix_f`, by hand."""
    z = x @ w  # (N, M)
    t = torch.tanh(z)
    s = x.sum(dim=1, keepdim=True)  # (N, 1)
    dz = dout * s * (1 - t * t)  # (N, M)
    ds = (dout * t).sum(dim=1, keepdim=True)  # (N, 1)
    return dz @ w.T + ds  # (N, D)


@runs_with_the_answer
def _transpose_view(x: torch.Tensor) -> torch.Tensor:
    """x (N, D) -> x.T (D, N): a *view* of x, which moves when x moves."""
    return x.t()


def _elementwise_f(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * x + torch.exp(0.3 * x)


def _elementwise_grad(x: torch.Tensor, dout: torch.Tensor) -> torch.Tensor:
    return dout * (torch.cos(x) * x + torch.sin(x) + 0.3 * torch.exp(0.3 * x))


def _cube(x: torch.Tensor) -> torch.Tensor:
    return x * x * x


def _numeric_hints(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dout: torch.Tensor,
    h: float,
    exact: torch.Tensor,
) -> list[tuple[str, torch.Tensor]]:
    """Wrong estimates of the gradient, computed entry by entry in float64."""
    x = x.double()
    dout = dout.double()
    f0 = f(x)
    one_sided = torch.zeros(x.shape, dtype=torch.float64)
    no_dout = torch.zeros(x.shape, dtype=torch.float64)
    flat = x.reshape(-1)
    for j in range(flat.numel()):
        xp, xm = flat.clone(), flat.clone()
        xp[j] += h
        xm[j] -= h
        fp, fm = f(xp.reshape(x.shape)), f(xm.reshape(x.shape))
        one_sided.view(-1)[j] = ((fp - f0) * dout).sum() / h
        no_dout.view(-1)[j] = (fp - fm).sum() / (2 * h)
    return [
        (
            "a one-sided difference (f(x + h) - f(x)) / h: its error is O(h); use "
            "the centered (f(x + h) - f(x - h)) / 2h, whose error is O(h^2)",
            one_sided,
        ),
        (
            "the upstream gradient dout is ignored: the gradient of "
            "sum(f(x) * dout) weights each output change by dout",
            no_dout,
        ),
        ("the centered difference is not divided by 2h but by h", 2 * exact),
        ("the centered difference is divided by 4h instead of 2h", exact / 2),
        ("the sign is flipped: (f(x + h) - f(x - h)), not the reverse", -exact),
    ]


@single_threaded
def grade_numerical_gradient(numerical_gradient: Callable[..., object]) -> Report:
    """Grade ``numerical_gradient(f, x, dout, h=1e-5) -> Tensor`` (8 points)."""
    what = "numerical_gradient"
    # x is moved in place and put back by design: checked below, not copied
    guard = Guard(RULES, what, inplace=(1, "x"))
    g = Grader(what)

    def call(f, x: torch.Tensor, dout: torch.Tensor, **kw) -> torch.Tensor:
        x_before, dout_before = x.clone(), dout.clone()
        grad = plain_tensor(guard.call(numerical_gradient, f, x, dout, **kw), "grad")
        if not torch.equal(dout, dout_before):
            raise Mistake("numerical_gradient changed dout; leave it as it was")
        scale = float(x_before.abs().max()) or 1.0
        moved = float((x.double() - x_before.double()).abs().max())
        if moved > 1e-12 * scale:
            raise Mistake(
                f"x is not the same after numerical_gradient returns (an entry moved "
                f"by {moved:.2g}): put each entry back to its saved value after "
                "evaluating f(x + h) and f(x - h)"
            )
        return grad

    def shape_dtype() -> None:
        x, dout = randn((3, 4), 1), randn((3, 4), 2)
        grad = call(_elementwise_f, x, dout)
        expect_shape(grad, x.shape, "the gradient")
        expect_dtype_device(grad, x, "the gradient")

    def matrix_function() -> None:
        for i, (n, d, m) in enumerate([(4, 3, 5), (6, 2, 3)]):
            x = randn((n, d), 10 + i)
            w = randn((d, m), 20 + i, scale=0.7)
            dout = randn((n, m), 30 + i, shift=0.5)
            f = _matrix_f(w)
            exact = _matrix_grad(x, w, dout)
            grad = call(f, x, dout)
            close_with_hints(
                grad,
                exact,
                "grad",
                partial(_numeric_hints, f, x, dout, 1e-5, exact),
                tol=1e-8,
                context=f"f(x) = tanh(x @ w) * x.sum(1), x {tuple(x.shape)}, "
                f"output {(n, m)}",
            )
        # f returns a view of x: f(x + h) changes when x is moved to x - h
        x, dout = randn((3, 5), 35), randn((5, 3), 36, shift=0.5)
        grad = call(_transpose_view, x, dout)
        if not torch.allclose(grad.double(), dout.t(), rtol=1e-6, atol=1e-8):
            raise Mistake(
                "f(x) = x.T, a view of x: your gradient is not dout.T. When f "
                "returns a view of x, f(x + h) changes as soon as x is moved "
                "again: take (f(x + h) * dout).sum() (or a clone) before moving x"
            )

    def uses_h() -> None:
        x = randn((3, 3), 40, shift=0.5)
        dout = randn((3, 3), 41, shift=0.5)
        for h in (1e-2, 1e-3):
            grad = call(_cube, x, dout, h=h)
            # centered differences of x^3 are exact up to rounding: 3x^2 + h^2
            want = dout * (3 * x * x + h * h)
            hints = _numeric_hints(_cube, x, dout, h, want)
            hints.append(
                (
                    "the step h you were given is not used (the result matches "
                    "h = 1e-5)",
                    dout * (3 * x * x + 1e-10),
                )
            )
            close_with_hints(
                grad, want, "grad", hints, tol=1e-10, context=f"f(x) = x**3, h={h:g}"
            )

    def other_shapes() -> None:
        cases = [
            ("1-D x of 7 entries", randn((7,), 60), ""),
            ("3-D x (2, 3, 4)", randn((2, 3, 4), 61), ""),
            (
                "non-contiguous x (a transpose)",
                randn((5, 3), 62).T,
                "index x itself (e.g. over itertools.product of the ranges of "
                "x.shape): a reshaped copy of a non-contiguous x does not change x",
            ),
        ]
        for label, x, hint in cases:
            dout = randn(x.shape, 63, shift=0.3)
            grad = call(_elementwise_f, x, dout)
            exact = _elementwise_grad(x, dout)
            close_with_hints(
                grad,
                exact,
                "grad",
                partial(_numeric_hints, _elementwise_f, x, dout, 1e-5, exact),
                tol=1e-8,
                hint=hint,
                context=label,
            )

    def float32_devices() -> None:
        for device in devices():
            x64 = randn((4, 3), 70, scale=0.8)
            dout64 = randn((4, 3), 71)
            x = x64.float().to(device)
            dout = dout64.float().to(device)
            grad = call(_elementwise_f, x, dout, h=1e-2)
            expect_dtype_device(grad, x, f"the gradient ({device}, float32)")
            close_with_hints(
                grad,
                _elementwise_grad(x64, dout64),
                "grad",
                tol=1e-3,
                context=f"float32 x on {device}, h=1e-2",
            )
        for device in device_pairs():
            x = randn((5, 4), 72)
            dout = randn((5, 4), 73)
            cpu = call(_elementwise_f, x, dout)
            dev = call(_elementwise_f, x.to(device), dout.to(device))
            expect_close(
                dev.cpu(), cpu, f"the gradient on {device} vs on cpu", tol=1e-9
            )
        if placement.on_device():  # grading on a GPU: the same comparison there
            x, dout = randn((5, 4), 72), randn((5, 4), 73)
            same_on_cpu_and_device(
                guard, numerical_gradient, what, (_elementwise_f, x, dout), {}
            )

    def larger() -> None:
        x = randn((20, 25), 80, scale=0.5)
        w = randn((25, 6), 81, scale=0.3)
        dout = randn((20, 6), 82)
        grad = call(_matrix_f(w), x, dout)
        close_with_hints(
            grad, _matrix_grad(x, w, dout), "grad", tol=1e-7, context="x (20, 25)"
        )

    first = "returns a tensor of x's shape, dtype and device; x and dout unchanged"
    g.check(first, 1, shape_dtype)
    g.check(
        "exact gradient of f: (N, D) -> (N, M) with a random dout (N != D)",
        2,
        matrix_function,
        requires=[first],
        key=True,
    )
    g.check(
        "the step h is used; centered differences (x**3)",
        2,
        uses_h,
        requires=[first],
        key=True,
    )
    g.check("1-D, 3-D and non-contiguous x", 1, other_shapes, requires=[first])
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check("a larger input (20 x 25)", 1, larger, requires=[first], key=True)
    return guard.report(g)
