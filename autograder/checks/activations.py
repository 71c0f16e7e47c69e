"""Checks for the activations assignment: forward and backward of each activation.

One ``grade_*`` function per graded cell. A forward is compared with the
reference (``trainlab.activations``) and with torch; a backward with the
reference, with torch autograd, and with centered differences of the reference
forward (``trainlab.gradcheck``, elementwise and directional). Inputs come in
several shapes (N != D, N = 4, a larger one, 4-D), in float64 and float32, on
every available device; the kinks are tested at exactly 0 with non-default
slopes, so that ``relu'(0) = 1`` or a hard-coded slope shows.

A backward needs a cache from a forward: the student's forward is used when its
output is right, otherwise the reference forward's cache (whose layout the
docstring describes), so a wrong forward costs the forward cell only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

import trainlab.activations as ref
from autograder.checks.common import (
    backward_on_meta,
    close_with_hints,
    expect_gradcheck,
    expect_unchanged,
    forward_for_cache,
    forward_pair,
    gen,
    on_meta,
    single_threaded,
)
from autograder.checks.core import Grader, Mistake, Report
from autograder.checks.expect import (
    expect_close,
    expect_dtype_device,
    expect_shape,
    rel_error,
    unpack,
)
from autograder.checks.own_code import Guard, Rules, devices, rules

#: helpers the notebook imports from the reference on purpose
_ALLOWED = {("activations.py", "_check_dout"), ("activations.py", "_prelu_view")}
_BACKWARD_OPS = (
    "sigmoid_backward",
    "tanh_backward",
    "threshold_backward",
    "leaky_relu_backward",
    "elu_backward",
    "_prelu_kernel_backward",
    # the library's other activation layers, whole families: hardtanh(x, 0,
    # inf) is a ReLU, silu(x) / x a sigmoid
    "hardtanh",
    "relu6",
    "silu",
    "gelu",
    "mish",
    "softplus",
    "hardsigmoid",
    "hardswish",
    "celu",
    "selu",
    "rrelu",
    "glu",
    "log_sigmoid",
    "softshrink",
    "hardshrink",
    "threshold",
)

Params = dict[str, Any]
Hint = tuple[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Params], Any]]


def _rules(*names: str, hint: str) -> Rules:
    return rules((*names, *_BACKWARD_OPS), allow_reference=_ALLOWED, hint=hint)


# ----------------------------------------------------------------- inputs


#: N != D, N = 4, a larger one, and a 4-D input
SHAPES = [(4, 7), (7, 4), (64, 257), (2, 3, 4, 5)]


def _away_from_zero(x: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Push entries out of (-margin, margin): finite differences never cross a kink."""
    return torch.where(x >= 0, x + margin, x - margin)


def _random_x(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    x = 2.5 * torch.randn(shape, generator=gen(seed), dtype=torch.float64) + 0.3
    return _away_from_zero(x)


def _random_dout(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    # random upstream gradient, never ones: a missing dout factor shows
    return torch.randn(shape, generator=gen(seed + 1000), dtype=torch.float64) + 0.5


# ---------------------------------------------------------- shared helpers


# ------------------------------------------------- elementwise activations


@dataclass(frozen=True)
class Elementwise:
    """Everything the checks need to know about one elementwise activation."""

    name: str
    ref_forward: Callable[..., tuple[torch.Tensor, Any]]
    ref_backward: Callable[[torch.Tensor, Any], torch.Tensor]
    torch_fn: Callable[[torch.Tensor, Params], torch.Tensor]
    rules: Rules
    params: Params = field(default_factory=dict)
    edge_x: tuple[float, ...] = ()
    edge_name: str = ""
    edge_hint: str = ""
    forward_hints: tuple[Hint, ...] = ()
    backward_hints: tuple[Hint, ...] = ()
    edge_backward_hints: tuple[Hint, ...] = ()


def _hints(hints: tuple[Hint, ...], x, out, dout, params) -> list:
    found = []
    for text, fn in hints:
        try:
            with torch.no_grad():
                found.append((text, fn(x, out, dout, params)))
        except Exception:  # a hint formula that does not apply to this input
            continue
    return found


def _reference(spec: Elementwise, x: torch.Tensor, params: Params):
    """Reference output and cache, computed in float64."""
    return spec.ref_forward(x.double(), **params)


def _grade_forward(spec: Elementwise, forward: Callable) -> Report:
    what = f"{spec.name}_forward"
    guard = Guard(spec.rules, what)
    g = Grader(what)

    def returns_pair() -> None:
        x = _random_x((4, 7), 1)
        x_before = x.clone()
        out, _ = forward_pair(guard.call(forward, x, **spec.params), what)
        expect_shape(out, x.shape, "out")
        expect_dtype_device(out, x, "out")
        expect_unchanged(x_before, x, "x", what)

    def values() -> None:
        for i, shape in enumerate(SHAPES):
            x = _random_x(shape, 10 + i)
            out, _ = forward_pair(guard.call(forward, x, **spec.params), what)
            want, _ = _reference(spec, x, spec.params)
            hints = _hints(spec.forward_hints, x, want, None, spec.params)
            close_with_hints(out, want, f"out for x of shape {shape}", hints)
            expect_close(out, spec.torch_fn(x, spec.params), "out (vs torch)")
        if spec.params:  # the defaults of the signature
            x = _random_x((5, 3), 20)
            out, _ = forward_pair(guard.call(forward, x), what)
            want, _ = spec.ref_forward(x)
            expect_close(
                out,
                want,
                "out with the default parameters",
                hint="keep the default values of the signature "
                + ", ".join(f"{k}" for k in spec.params),
            )

    def float32_devices() -> None:
        for device in devices():
            for shape in ((7, 4), (2, 3, 4, 5)):
                x64 = _random_x(shape, 30)
                x = x64.float().to(device)
                out, _ = forward_pair(guard.call(forward, x, **spec.params), what)
                expect_dtype_device(out, x, f"out ({device}, float32)")
                want, _ = _reference(spec, x, spec.params)
                expect_close(out, want, f"out ({device}, float32)", tol=1e-5)
            if device.type != "cpu":
                x = _random_x((6, 5), 31)
                out_cpu, _ = forward_pair(guard.call(forward, x, **spec.params), what)
                out_dev, _ = forward_pair(
                    guard.call(forward, x.to(device), **spec.params), what
                )
                expect_close(out_dev.cpu(), out_cpu, f"out on {device} vs on cpu")
        on_meta(guard, forward, what, (_random_x((6, 5), 32),), spec.params, outputs=1)

    def edge() -> None:
        for dtype in (torch.float64, torch.float32):
            x = torch.tensor(spec.edge_x, dtype=dtype)
            out, _ = forward_pair(guard.call(forward, x.clone(), **spec.params), what)
            want, _ = _reference(spec, x, spec.params)
            values = ", ".join(f"{v:g}" for v in spec.edge_x)
            try:
                expect_close(out, want, f"out at x = [{values}] ({dtype})", tol=1e-6)
            except Mistake as exc:
                if spec.edge_hint and "NaN" in str(exc):
                    raise Mistake(f"{exc}\nHint: {spec.edge_hint}") from None
                raise

    g.check(
        "returns (out, cache); out has the shape, dtype and device of x; x unchanged",
        1,
        returns_pair,
    )
    g.check(
        "out matches the reference and torch (float64; shapes "
        + ", ".join(str(s) for s in SHAPES)
        + ")",
        1,
        values,
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check(spec.edge_name, 1, edge)
    return guard.report(g)


def _cache_for_backward(
    guard: Guard,
    spec: Elementwise,
    forward: Callable | None,
    x: torch.Tensor,
    params: Params,
) -> tuple[Any, str]:
    """The student's cache when their forward is right, else the reference's.

    The forward runs under the backward's guard (:func:`forward_for_cache`).
    """
    want, ref_cache = spec.ref_forward(x, **params)
    if forward is not None:
        try:
            value = forward_for_cache(guard, forward, x, **params)
            out, cache = forward_pair(value, "forward")
            if out.shape == want.shape and rel_error(out, want) < 1e-6:
                return cache, ""
        except Exception:  # a broken forward: fall back to the reference cache
            pass
    note = (
        f"(your {spec.name}_forward is not right yet, so the backward was checked "
        "with the reference forward's cache, laid out as its docstring says)"
    )
    return ref_cache, note


def _torch_grad(spec: Elementwise, x: torch.Tensor, dout: torch.Tensor, params):
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        spec.torch_fn(xg, params).backward(dout)
    return xg.grad.detach()


def _grade_backward(spec: Elementwise, forward: Callable, backward: Callable) -> Report:
    what = f"{spec.name}_backward"
    guard = Guard(spec.rules, what)
    g = Grader(what)

    def run(x: torch.Tensor, dout: torch.Tensor, params: Params) -> torch.Tensor:
        cache, note = _cache_for_backward(guard, spec, forward, x, params)
        dout_before = dout.clone()
        try:
            dx = guard.call(backward, dout, cache)
        except Mistake:
            raise
        except Exception as exc:
            if note:
                raise Mistake(
                    f"your backward raised {type(exc).__name__}: {exc} {note}"
                ) from None
            raise
        expect_unchanged(dout_before, dout, "dout", what)
        return unpack(dx, ["dx"], what)[0]

    def shape_dtype() -> None:
        x, dout = _random_x((4, 7), 40), _random_dout((4, 7), 40)
        dx = run(x, dout, spec.params)
        expect_shape(dx, x.shape, "dx")
        expect_dtype_device(dx, x, "dx")

    def values() -> None:
        for i, shape in enumerate(SHAPES):
            x, dout = _random_x(shape, 50 + i), _random_dout(shape, 50 + i)
            dx = run(x, dout, spec.params)
            want = spec.ref_backward(dout, spec.ref_forward(x, **spec.params)[1])
            out = spec.ref_forward(x, **spec.params)[0]
            hints = _hints(spec.backward_hints, x, out, dout, spec.params)
            close_with_hints(dx, want, f"dx for x of shape {shape}", hints)
            expect_close(
                dx, _torch_grad(spec, x, dout, spec.params), "dx (vs torch autograd)"
            )

    def float32_devices() -> None:
        for device in devices():
            x64, d64 = _random_x((7, 4), 60), _random_dout((7, 4), 60)
            x, dout = x64.float().to(device), d64.float().to(device)
            dx = run(x, dout, spec.params)
            expect_dtype_device(dx, x, f"dx ({device}, float32)")
            want = spec.ref_backward(
                dout.double(), spec.ref_forward(x.double(), **spec.params)[1]
            )
            expect_close(dx, want, f"dx ({device}, float32)", tol=1e-5)
            if device.type != "cpu":
                dx_cpu = run(x64, d64, spec.params)
                dx_dev = run(x64.to(device), d64.to(device), spec.params)
                expect_close(dx_dev.cpu(), dx_cpu, f"dx on {device} vs on cpu")
        x, dout = _random_x((6, 5), 61), _random_dout((6, 5), 61)
        backward_on_meta(
            guard,
            backward,
            what,
            dout,
            forward or spec.ref_forward,
            (x,),
            spec.params,
            lambda v, **kw: spec.ref_forward(v, **kw),
        )

    def edge() -> None:
        x = torch.tensor(spec.edge_x, dtype=torch.float64)
        dout = torch.linspace(0.5, 1.7, len(spec.edge_x), dtype=torch.float64)
        dx = run(x, dout, spec.params)
        want = spec.ref_backward(dout, spec.ref_forward(x, **spec.params)[1])
        out = spec.ref_forward(x, **spec.params)[0]
        hints = _hints(
            spec.edge_backward_hints + spec.backward_hints, x, out, dout, spec.params
        )
        values = ", ".join(f"{v:g}" for v in spec.edge_x)
        close_with_hints(dx, want, f"dx at x = [{values}]", hints, tol=1e-6)

    def gradcheck() -> None:
        for shape in ((4, 7), (3, 2, 5)):
            x, dout = _random_x(shape, 70), _random_dout(shape, 70)
            dx = run(x, dout, spec.params)
            expect_shape(dx, x.shape, "dx")

            def f(v: torch.Tensor) -> torch.Tensor:
                return spec.ref_forward(v, **spec.params)[0]

            expect_gradcheck(f, x, dout, dx, "dx")

    g.check("returns dx with the shape, dtype and device of x", 1, shape_dtype)
    g.check(
        "dx matches the reference and torch autograd (float64, random dout; "
        "shapes " + ", ".join(str(s) for s in SHAPES) + ")",
        2,
        values,
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check(spec.edge_name, 1, edge)
    g.check("gradient check (elementwise and directional, float64)", 1, gradcheck)
    return guard.report(g)


# the specs: parameters are not the defaults, so hard-coded values show

_SLOPE = 0.2
_ALPHA = 0.7

SIGMOID = Elementwise(
    name="sigmoid",
    ref_forward=ref.sigmoid_forward,
    ref_backward=ref.sigmoid_backward,
    torch_fn=lambda x, p: torch.sigmoid(x),
    rules=_rules(
        "sigmoid",
        "sigmoid_",
        "special_expit",
        "expit",
        "logsigmoid",
        "log_sigmoid",
        "log_sigmoid_forward",
        hint="Write the sigmoid with torch.exp; torch.sigmoid is what you are "
        "building.",
    ),
    edge_x=(-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0),
    edge_name="very large inputs (x = +-1000 and +-50): no NaN, no overflow",
    edge_hint=(
        "exp of a large number overflows to inf, and inf / inf or 0 * inf is "
        "NaN: choose the branch with torch.where (or clamp x) before exp"
    ),
    forward_hints=(
        (
            "sigmoid is 1 / (1 + exp(-x)), not exp(-x) / (1 + exp(-x))",
            lambda x, out, d, p: 1 - out,
        ),
    ),
    backward_hints=(
        (
            "the derivative uses the forward output: sigma'(x) = out * (1 - out); "
            "you computed x * (1 - x) with the input x",
            lambda x, out, d, p: d * x * (1 - x),
        ),
        (
            "dx must be multiplied by the upstream gradient dout (chain rule)",
            lambda x, out, d, p: out * (1 - out),
        ),
        (
            "sigma'(x) = out * (1 - out), not 1 - out",
            lambda x, out, d, p: d * (1 - out),
        ),
    ),
)

TANH = Elementwise(
    name="tanh",
    ref_forward=ref.tanh_forward,
    ref_backward=ref.tanh_backward,
    torch_fn=lambda x, p: torch.tanh(x),
    rules=_rules(
        "tanh_backward",
        "hardtanh",
        hint="torch.tanh is fine in the forward; write the backward by hand.",
    ),
    edge_x=(-1000.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 1000.0),
    edge_name="very large inputs (x = +-1000, +-30) and x near 0: no NaN",
    edge_hint=(
        "exp of a large number overflows to inf, and inf / inf or 0 * inf is "
        "NaN: choose the branch with torch.where (or clamp x) before exp"
    ),
    backward_hints=(
        (
            "tanh'(x) = 1 - out**2 uses the forward output; you computed 1 - x**2",
            lambda x, out, d, p: d * (1 - x * x),
        ),
        ("tanh'(x) = 1 - out**2, not 1 - out", lambda x, out, d, p: d * (1 - out)),
        (
            "dx must be multiplied by the upstream gradient dout (chain rule)",
            lambda x, out, d, p: 1 - out * out,
        ),
    ),
)

RELU = Elementwise(
    name="relu",
    ref_forward=ref.relu_forward,
    ref_backward=ref.relu_backward,
    torch_fn=lambda x, p: F.relu(x),
    rules=_rules(
        "relu",
        "relu_",
        "threshold",
        "threshold_",
        "relu6",
        "hardtanh",
        hint="Write it with torch.where, torch.clamp or a comparison mask.",
    ),
    edge_x=(-2.0, -1e-12, -0.0, 0.0, 1e-12, 3.0),
    edge_name="the kink at exactly x = 0: relu(0) = 0 and relu'(0) = 0",
    backward_hints=(
        (
            "dx must be multiplied by the upstream gradient dout (chain rule)",
            lambda x, out, d, p: (x > 0).to(x.dtype),
        ),
        (
            "the gradient is dout where x > 0 and 0 elsewhere (you passed dout "
            "everywhere)",
            lambda x, out, d, p: d,
        ),
    ),
    edge_backward_hints=(
        (
            "relu'(0) must be 0 (the PyTorch convention): use x > 0, not x >= 0",
            lambda x, out, d, p: torch.where(x >= 0, d, torch.zeros_like(d)),
        ),
    ),
)

LEAKY_RELU = Elementwise(
    name="leaky_relu",
    ref_forward=ref.leaky_relu_forward,
    ref_backward=ref.leaky_relu_backward,
    torch_fn=lambda x, p: F.leaky_relu(x, p["negative_slope"]),
    params={"negative_slope": _SLOPE},
    rules=_rules(
        "leaky_relu",
        "leaky_relu_",
        "rrelu",
        "rrelu_",
        hint="Write it with torch.where.",
    ),
    edge_x=(-2.0, -1e-12, 0.0, 1e-12, 3.0),
    edge_name=(
        "the kink at exactly x = 0 with negative_slope = 0.2: "
        "leaky_relu'(0) = negative_slope"
    ),
    forward_hints=(
        (
            "use the negative_slope argument, not a hard-coded 0.01",
            lambda x, out, d, p: torch.where(x > 0, x, 0.01 * x),
        ),
    ),
    backward_hints=(
        (
            "for x <= 0 the gradient is negative_slope * dout: the slope is missing "
            "from dx",
            lambda x, out, d, p: torch.where(x > 0, d, torch.zeros_like(d)),
        ),
        (
            "use the negative_slope from the cache, not a hard-coded 0.01",
            lambda x, out, d, p: torch.where(x > 0, d, 0.01 * d),
        ),
        (
            "dx must be multiplied by the upstream gradient dout (chain rule)",
            lambda x, out, d, p: torch.where(x > 0, 1.0, p["negative_slope"]) + 0 * x,
        ),
    ),
    edge_backward_hints=(
        (
            "leaky_relu'(0) is negative_slope (the x <= 0 branch, as in PyTorch): "
            "use x > 0, not x >= 0",
            lambda x, out, d, p: torch.where(x >= 0, d, p["negative_slope"] * d),
        ),
    ),
)

ELU = Elementwise(
    name="elu",
    ref_forward=ref.elu_forward,
    ref_backward=ref.elu_backward,
    torch_fn=lambda x, p: F.elu(x, p["alpha"]),
    params={"alpha": _ALPHA},
    rules=_rules(
        "elu",
        "elu_",
        "celu",
        "celu_",
        "selu",
        "selu_",
        hint="Write it with torch.where and torch.exp (or torch.expm1).",
    ),
    edge_x=(-1000.0, -30.0, -1e-9, 0.0, 1e-9, 30.0, 1000.0),
    edge_name=(
        "x = 0 with alpha = 0.7 (elu'(0) = alpha) and very large inputs "
        "(x = +-1000): no NaN"
    ),
    edge_hint=(
        "exp of a large number overflows to inf, and inf / inf or 0 * inf is "
        "NaN: choose the branch with torch.where (or clamp x) before exp"
    ),
    forward_hints=(
        (
            "use the alpha argument, not a hard-coded 1.0",
            lambda x, out, d, p: torch.where(x > 0, x, torch.expm1(x)),
        ),
    ),
    backward_hints=(
        (
            "for x <= 0, elu'(x) = alpha * exp(x) (= out + alpha): alpha is missing",
            lambda x, out, d, p: torch.where(x > 0, d, d * torch.exp(x)),
        ),
        (
            "for x <= 0, elu'(x) = alpha * exp(x) = out + alpha, not out",
            lambda x, out, d, p: torch.where(x > 0, d, d * out),
        ),
        (
            "the branches are swapped: dout where x > 0, dout * alpha * exp(x) "
            "where x <= 0",
            lambda x, out, d, p: torch.where(x <= 0, d, d * p["alpha"] * torch.exp(x)),
        ),
        (
            "dx must be multiplied by the upstream gradient dout (chain rule)",
            lambda x, out, d, p: torch.where(x > 0, 1.0, p["alpha"] * torch.exp(x)),
        ),
    ),
    edge_backward_hints=(
        (
            "elu'(0) is alpha (the x <= 0 branch, as in PyTorch): use x > 0 for "
            "the linear branch, not x >= 0",
            lambda x, out, d, p: torch.where(
                x >= 0, d, d * p["alpha"] * torch.exp(x.clamp(max=0))
            ),
        ),
    ),
)


@single_threaded
def grade_sigmoid_forward(sigmoid_forward: Callable) -> Report:
    """Grade ``sigmoid_forward(x) -> (out, cache)``."""
    return _grade_forward(SIGMOID, sigmoid_forward)


@single_threaded
def grade_sigmoid_backward(sigmoid_forward: Callable, sigmoid_backward: Callable):
    """Grade ``sigmoid_backward(dout, cache) -> dx`` (cache from the forward)."""
    return _grade_backward(SIGMOID, sigmoid_forward, sigmoid_backward)


@single_threaded
def grade_tanh_forward(tanh_forward: Callable) -> Report:
    """Grade ``tanh_forward(x) -> (out, cache)``."""
    return _grade_forward(TANH, tanh_forward)


@single_threaded
def grade_tanh_backward(tanh_forward: Callable, tanh_backward: Callable) -> Report:
    """Grade ``tanh_backward(dout, cache) -> dx``."""
    return _grade_backward(TANH, tanh_forward, tanh_backward)


@single_threaded
def grade_relu_forward(relu_forward: Callable) -> Report:
    """Grade ``relu_forward(x) -> (out, cache)``."""
    return _grade_forward(RELU, relu_forward)


@single_threaded
def grade_relu_backward(relu_forward: Callable, relu_backward: Callable) -> Report:
    """Grade ``relu_backward(dout, cache) -> dx``; relu'(0) = 0."""
    return _grade_backward(RELU, relu_forward, relu_backward)


@single_threaded
def grade_leaky_relu_forward(leaky_relu_forward: Callable) -> Report:
    """Grade ``leaky_relu_forward(x, negative_slope=0.01) -> (out, cache)``."""
    return _grade_forward(LEAKY_RELU, leaky_relu_forward)


@single_threaded
def grade_leaky_relu_backward(
    leaky_relu_forward: Callable, leaky_relu_backward: Callable
) -> Report:
    """Grade ``leaky_relu_backward(dout, cache) -> dx``; slope at 0."""
    return _grade_backward(LEAKY_RELU, leaky_relu_forward, leaky_relu_backward)


@single_threaded
def grade_elu_forward(elu_forward: Callable) -> Report:
    """Grade ``elu_forward(x, alpha=1.0) -> (out, cache)``."""
    return _grade_forward(ELU, elu_forward)


@single_threaded
def grade_elu_backward(elu_forward: Callable, elu_backward: Callable) -> Report:
    """Grade ``elu_backward(dout, cache) -> dx``; elu'(0) = alpha."""
    return _grade_backward(ELU, elu_forward, elu_backward)


# ------------------------------------------------------------------- prelu

PRELU_RULES = _rules(
    "prelu",
    "_prelu_kernel",
    "rrelu",
    "leaky_relu",
    hint="Write it with torch.where and a reshaped alpha.",
)
MAXOUT_RULES = _rules(
    "linear",
    "max_pool1d",
    "max_pool2d",
    hint="Write it with matrix products and torch.max / argmax.",
)

#: (x shape, alpha shape): a shared slope, per-channel on 2-D and 4-D, N != D
PRELU_CASES = [
    ((4, 7), (1,)),
    ((4, 7), (7,)),
    ((7, 4), (4,)),
    ((2, 3, 4, 5), (3,)),
    ((2, 3, 4, 5), (1,)),
    ((64, 257), (257,)),
]


def _random_alpha(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    # distinct slopes per channel in (0.05, 0.55), never torch's default 0.25
    return 0.05 + 0.5 * torch.rand(shape, generator=gen(seed), dtype=torch.float64)


def _cache_or_reference(
    guard: Guard, forward: Callable, ref_forward: Callable, args: tuple, name: str
) -> tuple[Any, str]:
    """Like :func:`_cache_for_backward` for layers with several inputs."""
    want, ref_cache = ref_forward(*args)
    try:
        value = forward_for_cache(guard, forward, *args)
        out, cache = forward_pair(value, "forward")
        if out.shape == want.shape and rel_error(out, want) < 1e-6:
            return cache, ""
    except Exception:  # a broken forward: fall back to the reference cache
        pass
    return ref_cache, (
        f"(your {name}_forward is not right yet, so the backward was checked with "
        "the reference forward's cache, laid out as its docstring says)"
    )


def _run_backward(
    guard: Guard,
    backward: Callable,
    dout: torch.Tensor,
    cache: Any,
    note: str,
    names: list[str],
    what: str,
) -> list[torch.Tensor]:
    dout_before = dout.clone()
    try:
        value = guard.call(backward, dout, cache)
    except Mistake:
        raise
    except Exception as exc:
        if note:
            raise Mistake(
                f"your backward raised {type(exc).__name__}: {exc} {note}"
            ) from None
        raise
    expect_unchanged(dout_before, dout, "dout", what)
    return unpack(value, names, what)


def _torch_prelu_grads(x, alpha, dout):
    xg = x.detach().clone().requires_grad_(True)
    ag = alpha.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        F.prelu(xg, ag).backward(dout)
    return xg.grad.detach(), ag.grad.detach()


def _prelu_inputs(xs, as_, seed):
    x = _random_x(xs, seed)
    return x, _random_alpha(as_, seed), _random_dout(xs, seed)


@single_threaded
def grade_prelu_forward(prelu_forward: Callable) -> Report:
    """Grade ``prelu_forward(x, alpha) -> (out, cache)`` (alpha (1,) or (C,))."""
    what = "prelu_forward"
    guard = Guard(PRELU_RULES, what)
    g = Grader(what)

    def call(x, alpha):
        return forward_pair(guard.call(prelu_forward, x, alpha), what)[0]

    def returns_pair() -> None:
        x, alpha, _ = _prelu_inputs((4, 7), (7,), 1)
        x0, a0 = x.clone(), alpha.clone()
        out = call(x, alpha)
        expect_shape(out, x.shape, "out")
        expect_dtype_device(out, x, "out")
        expect_unchanged(x0, x, "x", what)
        expect_unchanged(a0, alpha, "alpha", what)

    def values() -> None:
        for i, (xs, as_) in enumerate(PRELU_CASES):
            x, alpha, _ = _prelu_inputs(xs, as_, 10 + i)
            out = call(x, alpha)
            name = f"out for x {xs}, alpha {as_}"
            expect_close(out, ref.prelu_forward(x, alpha)[0], name)
            expect_close(out, F.prelu(x, alpha), name + " (vs torch)")

    def float32_devices() -> None:
        for device in devices():
            x, alpha, _ = _prelu_inputs((2, 3, 4, 5), (3,), 20)
            out = call(x.float().to(device), alpha.float().to(device))
            expect_dtype_device(out, x.float().to(device), f"out ({device}, float32)")
            expect_close(
                out,
                ref.prelu_forward(x, alpha)[0],
                f"out ({device}, float32)",
                tol=1e-5,
            )
            if device.type != "cpu":
                out_dev = call(x.to(device), alpha.to(device))
                expect_close(out_dev.cpu(), call(x, alpha), f"out on {device} vs cpu")
        x, alpha, _ = _prelu_inputs((2, 3, 4, 5), (3,), 21)
        on_meta(guard, prelu_forward, what, (x, alpha), outputs=1)

    def channels() -> None:
        # W == C: an alpha broadcast along the last dimension runs but is wrong
        x, alpha, _ = _prelu_inputs((2, 3, 4, 3), (3,), 30)
        x[0, 0, 0] = 0.0
        out = call(x, alpha)
        wrong = torch.where(x > 0, x, alpha * x)  # broadcast along the last dim
        close_with_hints(
            out,
            ref.prelu_forward(x, alpha)[0],
            "out for x (2, 3, 4, 3), alpha (3,) (channels are dimension 1)",
            [
                (
                    "alpha broadcasts along the last dimension; reshape it to "
                    "(1, C, 1, 1) so that it follows the channel dimension 1",
                    wrong,
                )
            ],
        )

    g.check(
        "returns (out, cache); out has the shape, dtype and device of x; x unchanged",
        1,
        returns_pair,
    )
    g.check(
        "out matches the reference and torch (alpha (1,) and (C,); 2-D and "
        "4-D x; float64)",
        1,
        values,
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check(
        "per-channel alpha follows dimension 1 of (N, C, H, W), and x = 0", 1, channels
    )
    return guard.report(g)


@single_threaded
def grade_prelu_backward(prelu_forward: Callable, prelu_backward: Callable) -> Report:
    """Grade ``prelu_backward(dout, cache) -> (dx, dalpha)``."""
    what = "prelu_backward"
    guard = Guard(PRELU_RULES, what)
    g = Grader(what)

    def run(x, alpha, dout):
        cache, note = _cache_or_reference(
            guard, prelu_forward, ref.prelu_forward, (x, alpha), "prelu"
        )
        return _run_backward(
            guard, prelu_backward, dout, cache, note, ["dx", "dalpha"], what
        )

    def dalpha_hints(x, alpha, dout, dalpha):
        hints = [
            (
                "dalpha sums dout * x over the entries where x <= 0 only",
                _sum_like(dout * x, alpha),
            ),
            (
                "dalpha is a sum of dout * x (x, not out or alpha * x)",
                _sum_like(
                    torch.where(x <= 0, dout * alpha_view(alpha, x) * x, 0 * x), alpha
                ),
            ),
        ]
        if tuple(dalpha.shape) != tuple(alpha.shape):
            reason = (
                "sum over the batch and the spatial positions"
                if alpha.numel() > 1
                else "sum over every entry"
            )
            raise Mistake(
                f"dalpha has shape {tuple(dalpha.shape)}; expected "
                f"{tuple(alpha.shape)}, the shape of alpha: each slope is shared, "
                f"so its gradient is the {reason} of dout * x where x <= 0"
            )
        return hints

    def shapes() -> None:
        for xs, as_ in (((4, 7), (7,)), ((2, 3, 4, 5), (3,)), ((2, 3, 4, 5), (1,))):
            x, alpha, dout = _prelu_inputs(xs, as_, 40)
            dx, dalpha = run(x, alpha, dout)
            expect_shape(dx, x.shape, "dx")
            expect_dtype_device(dx, x, "dx")
            dalpha_hints(x, alpha, dout, dalpha)
            expect_dtype_device(dalpha, alpha, "dalpha")

    def dx_values() -> None:
        for i, (xs, as_) in enumerate(PRELU_CASES):
            x, alpha, dout = _prelu_inputs(xs, as_, 50 + i)
            dx, _ = run(x, alpha, dout)
            want = ref.prelu_backward(dout, ref.prelu_forward(x, alpha)[1])[0]
            hints = [
                (
                    "for x <= 0 the gradient is alpha * dout: alpha is missing",
                    torch.where(x > 0, dout, torch.zeros_like(dout)),
                )
            ]
            close_with_hints(dx, want, f"dx for x {xs}, alpha {as_}", hints)
            expect_close(dx, _torch_prelu_grads(x, alpha, dout)[0], "dx (vs torch)")

    def dalpha_values() -> None:
        for i, (xs, as_) in enumerate(PRELU_CASES):
            x, alpha, dout = _prelu_inputs(xs, as_, 60 + i)
            _, dalpha = run(x, alpha, dout)
            hints = dalpha_hints(x, alpha, dout, dalpha)
            want = ref.prelu_backward(dout, ref.prelu_forward(x, alpha)[1])[1]
            close_with_hints(dalpha, want, f"dalpha for x {xs}, alpha {as_}", hints)
            expect_close(
                dalpha, _torch_prelu_grads(x, alpha, dout)[1], "dalpha (vs torch)"
            )

    def kink() -> None:
        x = torch.tensor([[-2.0, 0.0, 3.0], [0.0, -1e-12, 1e-12]], dtype=torch.float64)
        alpha = torch.tensor([0.3, 0.15, 0.45], dtype=torch.float64)
        dout = torch.tensor([[0.5, 1.5, -0.7], [1.2, 0.8, -1.1]], dtype=torch.float64)
        dx, _ = run(x, alpha, dout)
        want = ref.prelu_backward(dout, ref.prelu_forward(x, alpha)[1])[0]
        hints = [
            (
                "prelu'(0) is alpha (the x <= 0 branch, as in PyTorch): use x > 0 "
                "for the identity branch, not x >= 0",
                torch.where(x >= 0, dout, alpha * dout),
            )
        ]
        close_with_hints(dx, want, "dx at x = 0", hints, tol=1e-6)

    def float32_devices() -> None:
        for device in devices():
            x, alpha, dout = _prelu_inputs((2, 3, 4, 5), (3,), 70)
            dx, dalpha = run(*(t.float().to(device) for t in (x, alpha, dout)))
            expect_dtype_device(dx, x.float().to(device), f"dx ({device}, float32)")
            want = ref.prelu_backward(dout, ref.prelu_forward(x, alpha)[1])
            expect_close(dx, want[0], f"dx ({device}, float32)", tol=1e-5)
            expect_close(dalpha, want[1], f"dalpha ({device}, float32)", tol=1e-5)
            if device.type != "cpu":
                on_dev = run(x.to(device), alpha.to(device), dout.to(device))
                on_cpu = run(x, alpha, dout)
                for name, a, b in zip(("dx", "dalpha"), on_dev, on_cpu, strict=True):
                    expect_close(a.cpu(), b, f"{name} on {device} vs on cpu")
        x, alpha, dout = _prelu_inputs((2, 3, 4, 5), (3,), 71)
        backward_on_meta(
            guard,
            prelu_backward,
            what,
            dout,
            prelu_forward,
            (x, alpha),
            {},
            ref.prelu_forward,
        )

    def gradcheck() -> None:
        x, alpha, dout = _prelu_inputs((3, 4, 2), (4,), 80)
        dx, dalpha = run(x, alpha, dout)
        expect_shape(dalpha, alpha.shape, "dalpha")
        expect_gradcheck(lambda v: ref.prelu_forward(v, alpha)[0], x, dout, dx, "dx")
        expect_gradcheck(
            lambda a: ref.prelu_forward(x, a)[0], alpha, dout, dalpha, "dalpha"
        )

    g.check("returns (dx, dalpha) with the shapes of x and alpha", 1, shapes)
    g.check(
        "dx matches the reference and torch autograd (float64)", 1, dx_values, key=True
    )
    g.check(
        "dalpha matches the reference and torch autograd: summed over the "
        "batch and spatial positions",
        2,
        dalpha_values,
        key=True,
    )
    g.check("the kink at exactly x = 0: prelu'(0) = alpha", 1, kink)
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check(
        "gradient check of dx and dalpha (elementwise and directional)", 1, gradcheck
    )
    return guard.report(g)


def alpha_view(alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """alpha shaped to broadcast along dimension 1 of x."""
    if alpha.numel() == 1:
        return alpha.reshape(())
    return alpha.reshape((1, -1) + (1,) * (x.dim() - 2))  # (1, C, 1, ..., 1)


def _sum_like(t: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` down to alpha's shape: everything, or all but dimension 1."""
    if alpha.numel() == 1:
        return t.sum().reshape(alpha.shape)
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


# ------------------------------------------------------------------ maxout

#: (N, D, M, k): N != D != M, N = 4, and a larger one
MAXOUT_CASES = [(4, 7, 5, 3), (7, 4, 3, 2), (64, 100, 50, 4)]


def _maxout_inputs(case: tuple[int, int, int, int], seed: int):
    n, d, m, k = case
    g = gen(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(k, d, m, generator=g, dtype=torch.float64) / d**0.5
    b = 0.3 * torch.randn(k, m, generator=g, dtype=torch.float64)
    dout = torch.randn(n, m, generator=g, dtype=torch.float64)
    return x, w, b, dout


def _torch_maxout(x, w, b):
    scores = torch.einsum("nd,kdm->knm", x, w) + b[:, None, :]  # (k, N, M)
    return scores.max(dim=0).values


@single_threaded
def grade_maxout_forward(maxout_forward: Callable) -> Report:
    """Grade ``maxout_forward(x, w, b) -> (out, cache)``, w (k, D, M), b (k, M)."""
    what = "maxout_forward"
    guard = Guard(MAXOUT_RULES, what)
    g = Grader(what)

    def call(x, w, b):
        return forward_pair(guard.call(maxout_forward, x, w, b), what)[0]

    def returns_pair() -> None:
        x, w, b, _ = _maxout_inputs((4, 7, 5, 3), 1)
        before = [t.clone() for t in (x, w, b)]
        out = call(x, w, b)
        expect_shape(out, (4, 5), "out")
        expect_dtype_device(out, x, "out")
        for name, t0, t in zip("xwb", before, (x, w, b), strict=True):
            expect_unchanged(t0, t, name, what)

    def values() -> None:
        for i, case in enumerate(MAXOUT_CASES):
            x, w, b, _ = _maxout_inputs(case, 10 + i)
            out = call(x, w, b)
            n, d, m, k = case
            label = f"out for N={n}, D={d}, M={m}, k={k}"
            hints = [
                (
                    "the output is the maximum over the k pieces (dimension 0 of the "
                    "scores), not the sum or the mean",
                    (torch.einsum("nd,kdm->knm", x, w) + b[:, None]).sum(0),
                ),
                (
                    "the bias of piece j is b[j], added to x @ w[j] before the max",
                    torch.einsum("nd,kdm->knm", x, w).max(0).values + b.max(0).values,
                ),
            ]
            close_with_hints(out, ref.maxout_forward(x, w, b)[0], label, hints)
            expect_close(out, _torch_maxout(x, w, b), label + " (vs torch)")

    def float32_devices() -> None:
        for device in devices():
            x, w, b, _ = _maxout_inputs((7, 4, 3, 2), 20)
            args = [t.float().to(device) for t in (x, w, b)]
            out = call(*args)
            expect_dtype_device(out, args[0], f"out ({device}, float32)")
            expect_close(
                out,
                ref.maxout_forward(x, w, b)[0],
                f"out ({device}, float32)",
                tol=1e-5,
            )
            if device.type != "cpu":
                out_dev = call(x.to(device), w.to(device), b.to(device))
                expect_close(out_dev.cpu(), call(x, w, b), f"out on {device} vs cpu")
        x, w, b, _ = _maxout_inputs((7, 4, 3, 2), 21)
        on_meta(guard, maxout_forward, what, (x, w, b), outputs=1)

    def small() -> None:
        # one piece (a plain affine layer) and a single sample
        for case in ((5, 3, 2, 1), (1, 6, 4, 3)):
            x, w, b, _ = _maxout_inputs(case, 30)
            out = call(x, w, b)
            expect_close(out, ref.maxout_forward(x, w, b)[0], f"out for {case}")

    g.check(
        "returns (out, cache); out (N, M) like x (dtype, device); x, w, b unchanged",
        1,
        returns_pair,
    )
    g.check("out matches the reference and torch (float64)", 1, values, key=True)
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check("a single piece (k = 1) and a single sample (N = 1)", 1, small)
    return guard.report(g)


@single_threaded
def grade_maxout_backward(
    maxout_forward: Callable, maxout_backward: Callable
) -> Report:
    """Grade ``maxout_backward(dout, cache) -> (dx, dw, db)``."""
    what = "maxout_backward"
    guard = Guard(MAXOUT_RULES, what)
    g = Grader(what)
    names = ["dx", "dw", "db"]

    def run(x, w, b, dout):
        cache, note = _cache_or_reference(
            guard, maxout_forward, ref.maxout_forward, (x, w, b), "maxout"
        )
        return _run_backward(guard, maxout_backward, dout, cache, note, names, what)

    def reference(x, w, b, dout):
        return ref.maxout_backward(dout, ref.maxout_forward(x, w, b)[1])

    def all_pieces(x, w, b, dout):
        """The mistake: every piece gets the full upstream gradient."""
        k = w.shape[0]
        dw = torch.stack([x.T @ dout for _ in range(k)])  # (k, D, M)
        db = dout.sum(0).expand(k, -1)  # (k, M)
        dx = sum(dout @ w[j].T for j in range(k))  # (N, D)
        return dx, dw, db

    def shapes() -> None:
        x, w, b, dout = _maxout_inputs((4, 7, 5, 3), 40)
        grads = run(x, w, b, dout)
        for name, grad, like in zip(names, grads, (x, w, b), strict=True):
            expect_shape(grad, like.shape, name)
            expect_dtype_device(grad, like, name)

    def dx_values() -> None:
        for i, case in enumerate(MAXOUT_CASES):
            x, w, b, dout = _maxout_inputs(case, 50 + i)
            dx = run(x, w, b, dout)[0]
            hints = [
                (
                    "only the winning piece of each output passes the gradient "
                    "back; you sent it through every piece",
                    all_pieces(x, w, b, dout)[0],
                )
            ]
            close_with_hints(dx, reference(x, w, b, dout)[0], f"dx for {case}", hints)

    def dw_db_values() -> None:
        for i, case in enumerate(MAXOUT_CASES):
            x, w, b, dout = _maxout_inputs(case, 60 + i)
            _, dw, db = run(x, w, b, dout)
            want = reference(x, w, b, dout)
            wrong = all_pieces(x, w, b, dout)
            msg = (
                "only the winning piece of each output gets gradient; the "
                "other pieces get 0 for that entry. You sent the gradient to "
                "every piece"
            )
            close_with_hints(dw, want[1], f"dw for {case}", [(msg, wrong[1])])
            close_with_hints(db, want[2], f"db for {case}", [(msg, wrong[2])])

    def ties() -> None:
        x, w, b, dout = _maxout_inputs((5, 4, 3, 3), 70)
        w[1], b[1] = w[0].clone(), b[0].clone()  # pieces 0 and 1 tie everywhere
        b[2] -= 100.0  # piece 2 never wins
        dx, dw, db = run(x, w, b, dout)
        want = reference(x, w, b, dout)
        msg = (
            "when pieces tie, only the first maximal piece (as torch.max and "
            "argmax pick it) gets the gradient; a mask `scores == out` sends it "
            "to every tied piece"
        )
        for name, got, exp in zip(names, (dx, dw, db), want, strict=True):
            try:
                expect_close(got, exp, f"{name} with tied pieces", tol=1e-6)
            except Mistake as exc:
                raise Mistake(f"{exc}\nHint: {msg}") from None

    def float32_devices() -> None:
        for device in devices():
            x, w, b, dout = _maxout_inputs((7, 4, 3, 2), 80)
            grads = run(*(t.float().to(device) for t in (x, w, b, dout)))
            want = reference(x, w, b, dout)
            for name, got, exp in zip(names, grads, want, strict=True):
                expect_dtype_device(
                    got, x.float().to(device), f"{name} ({device}, float32)"
                )
                expect_close(got, exp, f"{name} ({device}, float32)", tol=1e-5)
            if device.type != "cpu":
                on_dev = run(*(t.to(device) for t in (x, w, b, dout)))
                on_cpu = run(x, w, b, dout)
                for name, a, c in zip(names, on_dev, on_cpu, strict=True):
                    expect_close(a.cpu(), c, f"{name} on {device} vs on cpu")
        x, w, b, dout = _maxout_inputs((7, 4, 3, 2), 81)
        backward_on_meta(
            guard,
            maxout_backward,
            what,
            dout,
            maxout_forward,
            (x, w, b),
            {},
            ref.maxout_forward,
        )

    def gradcheck() -> None:
        x, w, b, dout = _maxout_inputs((4, 5, 3, 3), 90)
        dx, dw, db = run(x, w, b, dout)
        expect_gradcheck(lambda v: ref.maxout_forward(v, w, b)[0], x, dout, dx, "dx")
        expect_gradcheck(lambda v: ref.maxout_forward(x, v, b)[0], w, dout, dw, "dw")
        expect_gradcheck(lambda v: ref.maxout_forward(x, w, v)[0], b, dout, db, "db")

    g.check("returns (dx, dw, db) with the shapes of x, w and b", 1, shapes)
    g.check("dx matches the reference (float64)", 1, dx_values, key=True)
    g.check(
        "dw and db: the gradient goes to the winning piece only",
        1,
        dw_db_values,
        key=True,
    )
    g.check("ties between pieces: only the first maximal piece gets gradient", 1, ties)
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check(
        "gradient check of dx, dw and db (elementwise and directional)", 1, gradcheck
    )
    return guard.report(g)
