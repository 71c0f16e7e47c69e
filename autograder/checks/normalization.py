"""Checks for the normalization assignment: layer, instance and group norm.

Graded functions: ``layernorm_forward`` / ``layernorm_backward``,
``instancenorm_forward`` / ``instancenorm_backward`` and ``groupnorm_forward`` /
``groupnorm_backward``. The answer keys are ``torch.nn.functional.layer_norm``,
``instance_norm`` and ``group_norm`` (autograd for the gradients) in float64;
the reference library (``trainlab``) is the second key.

Inputs expose the usual mistakes: a different offset per sample *and* per
channel or feature (so statistics over the wrong axis show), random ``gamma``,
``beta`` and upstream gradients, N != D, a batch of one for layer norm,
multi-dimensional ``normalized_shape`` (gamma of shape (C, H, W)), 3-D and 4-D
inputs, and for group norm every grouping from 1 group (layer norm) to C groups
(instance norm), so interleaved groups show.

A backward runs on the cache of the student's own forward; see
:func:`autograder.checks.common.grade_gradients` for how a wrong forward is
kept out of the backward's score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

import trainlab.groupnorm as ref_gn
import trainlab.instancenorm as ref_in
import trainlab.layernorm as ref_ln
from autograder.checks.batchnorm import NORM_C_NAMES
from autograder.checks.common import (
    Hint,
    backward_on_meta,
    close_with_hints,
    device_pairs,
    expect_backward_shapes,
    expect_layer_gradcheck,
    expect_unchanged,
    forward_for_cache,
    grade_gradients,
    guarded_forward,
    on_meta,
    over_cases,
    randn,
    single_threaded,
)
from autograder.checks.core import Grader, Mistake, Report
from autograder.checks.expect import (
    expect_close,
    expect_dtype_device,
    expect_shape,
    plain_tensor,
    rel_error,
)
from autograder.checks.own_code import TORCH_LAYERS, Guard, devices, rules

EPS = 1e-5
ALLOWED = {
    ("instancenorm.py", "_per_channel"),
    ("groupnorm.py", "_per_channel"),
    ("groupnorm.py", "_check_groups"),
}
RULES = rules(
    NORM_C_NAMES,
    modules=TORCH_LAYERS,
    allow_reference=ALLOWED,
    hint="Write it with tensor operations (mean, sum, sqrt, reshape, ...): "
    "torch.nn.functional's norm layers and trainlab are what you are building.",
)
NAMES = ("dx", "dgamma", "dbeta")


# ---------------------------------------------------------------- inputs


def _x(shape: Sequence[int], seed: int) -> torch.Tensor:
    """5 z + 12, plus an offset per sample and one per channel (dim 1)."""
    shape = tuple(shape)
    x = randn(shape, seed, scale=5.0, shift=12.0)
    per_sample = torch.linspace(-8.0, 8.0, shape[0], dtype=torch.float64)
    x = x + per_sample.reshape(-1, *([1] * (len(shape) - 1)))
    if len(shape) > 1:
        per_channel = torch.linspace(-4.0, 5.0, shape[1], dtype=torch.float64)
        x = x + per_channel.reshape(1, -1, *([1] * (len(shape) - 2)))
    return x


def _affine(shape: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gamma = randn(tuple(shape), seed, scale=0.5, shift=1.2)
    beta = randn(tuple(shape), seed + 1, scale=0.8, shift=0.3)
    return gamma, beta


def _to(ts, device=None, dtype=None) -> list[torch.Tensor]:
    return [t.to(device=device, dtype=dtype) for t in ts]


# ------------------------------------------------------------- the layers


@dataclass(frozen=True)
class Layer:
    """What the checks need to know about one normalization layer.

    Attributes:
        name: e.g. ``"layernorm"``.
        cases: (x shape, gamma shape, extra kwargs) for the value checks.
        edge: (label, x shape, gamma shape, extra kwargs) for the edge check.
        torch_fn: the answer key, ``torch_fn(x, gamma, beta, **extra)``.
        ref_forward, ref_backward: the reference pair.
    """

    name: str
    cases: tuple[tuple[tuple[int, ...], tuple[int, ...], dict], ...]
    edge: tuple[str, tuple[int, ...], tuple[int, ...], dict]
    torch_fn: Callable[..., torch.Tensor]
    ref_forward: Callable[..., tuple[torch.Tensor, Any]]
    ref_backward: Callable[..., tuple[torch.Tensor, ...]]


def _ln_torch(x, gamma, beta, eps=EPS):
    return F.layer_norm(x, tuple(gamma.shape), gamma, beta, eps)


def _in_torch(x, gamma, beta, eps=EPS):
    return F.instance_norm(x, weight=gamma, bias=beta, eps=eps)


def _gn_torch(x, gamma, beta, num_groups, eps=EPS):
    return F.group_norm(x, num_groups, gamma, beta, eps)


LAYERNORM = Layer(
    name="layernorm",
    cases=(
        ((4, 5), (5,), {}),
        ((7, 3), (3,), {}),
        ((2, 3, 6), (6,), {}),
        ((2, 3, 2, 4), (3, 2, 4), {}),
        ((32, 64), (64,), {}),
    ),
    edge=("a batch of one sample, x (1, 6)", (1, 6), (6,), {}),
    torch_fn=_ln_torch,
    ref_forward=ref_ln.layernorm_forward,
    ref_backward=ref_ln.layernorm_backward,
)
INSTANCENORM = Layer(
    name="instancenorm",
    cases=(
        ((2, 3, 4, 5), (3,), {}),
        ((3, 2, 3, 3), (2,), {}),
        ((2, 4, 7), (4,), {}),
        ((8, 16, 8, 8), (16,), {}),
    ),
    edge=("a batch of one image, x (1, 3, 5, 2)", (1, 3, 5, 2), (3,), {}),
    torch_fn=_in_torch,
    ref_forward=ref_in.instancenorm_forward,
    ref_backward=ref_in.instancenorm_backward,
)
GROUPNORM = Layer(
    name="groupnorm",
    cases=(
        ((2, 6, 3, 4), (6,), {"num_groups": 2}),
        ((3, 6, 2, 2), (6,), {"num_groups": 3}),
        ((2, 4, 5), (4,), {"num_groups": 2}),
        ((8, 16, 8, 8), (16,), {"num_groups": 4}),
    ),
    edge=(
        "1 group (layer norm) and C groups (instance norm), x (2, 6, 3, 2)",
        (2, 6, 3, 2),
        (6,),
        {"num_groups": 1},
    ),
    torch_fn=_gn_torch,
    ref_forward=ref_gn.groupnorm_forward,
    ref_backward=ref_gn.groupnorm_backward,
)


def _normalize(x, dims, eps=EPS, unbiased=False):
    mu = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def _channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(1, -1, *([1] * (ndim - 2)))  # (1, C, 1, ..., 1)


def _forward_hints(layer: Layer, x, gamma, beta, kw) -> list[Hint]:
    """Outputs of common wrong forwards."""
    nd = x.dim()
    hints: list[Hint] = []
    if layer.name == "layernorm":
        k = gamma.dim()
        dims = tuple(range(nd - k, nd))
        hints += [
            (
                "the statistics are taken over the batch (dim 0), as in batchnorm; "
                "layer norm takes them per sample, over its features",
                gamma * _normalize(x, 0) + beta,
            ),
            (
                "the statistics are taken over the last dim only; layer norm "
                "normalizes over all the trailing dims of gamma's shape",
                gamma * _normalize(x, -1) + beta,
            ),
            (
                "normalized with the unbiased variance; layer norm divides by the "
                "number of features (biased)",
                gamma * _normalize(x, dims, unbiased=True) + beta,
            ),
            ("gamma and beta are swapped", beta * _normalize(x, dims) + gamma),
        ]
    else:
        g_b, b_b = _channel(gamma, nd), _channel(beta, nd)
        spatial = tuple(range(2, nd))
        if layer.name == "instancenorm":
            dims: tuple[int, ...] = spatial
            hints += [
                (
                    "the statistics include the batch (dims 0, 2, ...), as in "
                    "batchnorm; instance norm takes them per sample and channel",
                    g_b * _normalize(x, (0, *spatial)) + b_b,
                ),
                (
                    "the statistics include the channels (dims 1, 2, ...), as in "
                    "layer norm; instance norm takes them per sample and channel",
                    g_b * _normalize(x, (1, *spatial)) + b_b,
                ),
            ]
        else:
            n, c = x.shape[:2]
            grp = kw["num_groups"]
            interleaved = x.reshape(n, c // grp, grp, -1).transpose(1, 2)
            wrong = _normalize(interleaved.reshape(n, grp, -1), -1)
            wrong = wrong.reshape(n, grp, c // grp, -1).transpose(1, 2).reshape(x.shape)
            hints += [
                (
                    "the groups look interleaved (channel c in group c % G); group "
                    "norm uses contiguous groups: channels 0 .. C/G - 1 form group 0 "
                    "(x.reshape(N, G, -1))",
                    g_b * wrong + b_b,
                ),
                (
                    "the statistics are per channel (instance norm); group norm "
                    "takes them over each group of C/G channels",
                    g_b * _normalize(x, spatial) + b_b,
                ),
                (
                    "the statistics are over all channels (layer norm); group norm "
                    "takes them over each group of C/G channels",
                    g_b * _normalize(x, (1, *spatial)) + b_b,
                ),
            ]
            dims = (-1,)
        norm = (
            _normalize(x.reshape(x.shape[0], kw["num_groups"], -1), -1).reshape(x.shape)
            if layer.name == "groupnorm"
            else _normalize(x, dims)
        )
        unb = (
            _normalize(
                x.reshape(x.shape[0], kw["num_groups"], -1), -1, unbiased=True
            ).reshape(x.shape)
            if layer.name == "groupnorm"
            else _normalize(x, dims, unbiased=True)
        )
        hints += [
            (
                "normalized with the unbiased variance; use the biased one",
                g_b * unb + b_b,
            ),
            (
                "gamma and beta are applied along the wrong dim; they are per "
                "channel (dim 1): reshape them to (1, C, 1, ...)",
                gamma.reshape(-1) * norm + beta.reshape(-1)
                if norm.shape[-1] == gamma.numel()
                else norm,
            ),
            ("gamma and beta are swapped", b_b * norm + g_b),
        ]
    return hints


def _call_forward(guard, forward, what, x, gamma, beta, kw):
    return guarded_forward(guard, forward, what, x, gamma, beta, **kw)


def _grade_forward(layer: Layer, forward: Callable[..., Any]) -> Report:
    what = f"{layer.name}_forward"
    guard = Guard(RULES, what)
    g = Grader(what)

    def shape_dtype() -> None:
        xs, gs, kw = layer.cases[0]
        x = _x(xs, 1)
        gamma, beta = _affine(gs, 2)
        before = [t.clone() for t in (x, gamma, beta)]
        out, _ = _call_forward(guard, forward, what, x, gamma, beta, kw)
        expect_shape(out, x.shape, "out")
        expect_dtype_device(out, x, "out")
        for b, t, name in zip(
            before, (x, gamma, beta), ("x", "gamma", "beta"), strict=True
        ):
            expect_unchanged(b, t, name, what)

    def values() -> None:
        for i, (xs, gs, kw) in enumerate(layer.cases):
            x = _x(xs, 10 + i)
            gamma, beta = _affine(gs, 20 + i)
            out, _ = _call_forward(guard, forward, what, x, gamma, beta, kw)
            want = layer.torch_fn(x, gamma, beta, **kw)
            extra = f", {kw}" if kw else ""
            close_with_hints(
                out,
                want,
                "out",
                partial(_forward_hints, layer, x, gamma, beta, kw),
                context=f"x {xs}, gamma {gs}{extra}",
            )
            ref_out, _ = layer.ref_forward(x, gamma, beta, **kw)
            expect_close(out, ref_out, "out (vs the reference)")

    def edge() -> None:
        label, xs, gs, kw = layer.edge
        variants = [kw]
        if layer.name == "groupnorm":
            variants = [{"num_groups": 1}, {"num_groups": xs[1]}]
        for j, kwj in enumerate(variants):
            x = _x(xs, 30 + j)
            gamma, beta = _affine(gs, 40 + j)
            out, _ = _call_forward(guard, forward, what, x, gamma, beta, kwj)
            want = layer.torch_fn(x, gamma, beta, **kwj)
            close_with_hints(
                out,
                want,
                "out",
                partial(_forward_hints, layer, x, gamma, beta, kwj),
                context=f"{label} {kwj if kwj else ''}".strip(),
            )
        # eps is used: a tiny eps changes the output of a near-constant input
        x = _x(xs, 50) * 1e-3
        gamma, beta = _affine(gs, 51)
        out, _ = _call_forward(
            guard, forward, what, x, gamma, beta, {**kw, "eps": 1e-2}
        )
        want = layer.torch_fn(x, gamma, beta, **kw, eps=1e-2)
        close_with_hints(
            out,
            want,
            "out",
            context="eps=1e-2 on a small input",
            hint="use the eps argument",
        )

    def dtypes_devices() -> None:
        xs, gs, kw = layer.cases[0]
        for device in devices():
            x64 = _x(xs, 60)
            g64, b64 = _affine(gs, 61)
            ins = _to((x64, g64, b64), device, torch.float32)
            out, _ = _call_forward(guard, forward, what, *ins, kw)
            expect_dtype_device(out, ins[0], f"out ({device}, float32)")
            expect_close(
                out, layer.torch_fn(x64, g64, b64, **kw), f"out ({device}, float32)"
            )
        for device in device_pairs():
            x = _x(xs, 62)
            gamma, beta = _affine(gs, 63)
            cpu = _call_forward(guard, forward, what, x, gamma, beta, kw)[0]
            dev = _call_forward(
                guard, forward, what, *_to((x, gamma, beta), device), kw
            )[0]
            expect_close(dev.cpu(), cpu, f"out on {device} vs on cpu", tol=1e-10)
        x, (gamma, beta) = _x(xs, 64), _affine(gs, 65)
        on_meta(guard, forward, what, (x, gamma, beta), kw, outputs=1)

    shapes = ", ".join(str(c[0]) for c in layer.cases)
    first = "returns (out, cache); out shaped like x; inputs unchanged"
    g.check(first, 1, shape_dtype)
    g.check(
        f"output vs torch and the reference (x {shapes})",
        2,
        values,
        requires=[first],
        key=True,
    )
    g.check(layer.edge[0] + "; the eps argument", 1, edge, requires=[first])
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


# ---------------------------------------------------------------- backward


def _torch_grads(layer: Layer, x, gamma, beta, dout, kw):
    leaves = [
        t.detach().to("cpu", torch.float64).requires_grad_(True)
        for t in (x, gamma, beta)
    ]
    with torch.enable_grad():
        out = layer.torch_fn(*leaves, **kw)
        grads = torch.autograd.grad(out, leaves, dout.to("cpu", torch.float64))
    return [t.detach() for t in grads]


def _stat_view(
    layer: Layer, t: torch.Tensor, gamma: torch.Tensor, kw
) -> tuple[torch.Tensor, tuple]:
    """``t`` viewed so that each sample's statistics run over the returned dims."""
    nd = t.dim()
    if layer.name == "layernorm":
        return t, tuple(range(nd - gamma.dim(), nd))
    if layer.name == "instancenorm":
        return t, tuple(range(2, nd))
    return t.reshape(t.shape[0], kw["num_groups"], -1), (-1,)


def _backward_hints(layer: Layer, x, gamma, dout, kw) -> list[list[Hint]]:
    nd = x.dim()
    gamma_b = gamma if layer.name == "layernorm" else _channel(gamma, nd)
    g = dout * gamma_b
    xv, dims = _stat_view(layer, x, gamma, kw)
    mu = xv.mean(dim=dims, keepdim=True)
    inv = 1.0 / torch.sqrt(xv.var(dim=dims, unbiased=False, keepdim=True) + EPS)
    xhat = (xv - mu) * inv
    gv, _ = _stat_view(layer, g, gamma, kw)
    dv, _ = _stat_view(layer, dout, gamma, kw)

    def m(t):
        return t.mean(dim=dims, keepdim=True)

    def back(t):
        return t.reshape(x.shape)

    dx = [
        (
            "dx is off by the mean-path term: the mean depends on every value it "
            "averages, which subtracts mean(g) (g = gamma * dout) from each entry",
            back(inv * (gv - xhat * m(gv * xhat))),
        ),
        (
            "dx misses the variance-path term: subtract x_hat * mean(g * x_hat) too",
            back(inv * (gv - m(gv))),
        ),
        (
            "dx treats the mean and variance as constants; they depend on x",
            back(inv * gv),
        ),
        (
            "gamma is missing from dx: dL/dx_hat = gamma * dout",
            back(inv * (dv - m(dv) - xhat * m(dv * xhat))),
        ),
    ]
    sum_dims = (
        tuple(range(nd - gamma.dim()))
        if layer.name == "layernorm"
        else (0, *range(2, nd))
    )
    xhat_full = back(xhat)
    dgamma = [
        (
            "dgamma sums dout * x_hat (the normalized input), not dout * x",
            (dout * x).sum(dim=sum_dims),
        ),
        ("dgamma is a sum, not a mean", (dout * xhat_full).mean(dim=sum_dims)),
    ]
    dbeta = [("dbeta is a sum, not a mean", dout.mean(dim=sum_dims))]
    return [dx, dgamma, dbeta]


def _forward_ok(out: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether the student's forward output is right (to rounding) on this input."""
    tol = 1e-9 if out.dtype == torch.float64 else 1e-5
    return (
        out.shape == want.shape
        and bool(torch.isfinite(out).all())
        and rel_error(out, want) < tol
    )


def _case(
    layer: Layer, guard, forward, backward, what, x, gamma, beta, dout, kw, context=""
):
    value = forward_for_cache(
        guard, forward, x.clone(), gamma.clone(), beta.clone(), **kw
    )
    try:
        out, cache = plain_tensor(value[0], "out"), value[1]
    except Exception as exc:
        raise Mistake(
            f"{what} needs the cache of your {layer.name}_forward, which did not "
            f"return (out, cache): {exc}"
        ) from None
    x64, g64, b64, d64 = _to((x, gamma, beta, dout), "cpu", torch.float64)
    want_out = layer.torch_fn(x64, g64, b64, **kw)
    expected = _torch_grads(layer, x64, g64, b64, d64, kw)
    _, ref_cache = layer.ref_forward(x, gamma, beta, **kw)
    hints = _backward_hints(layer, x64, g64, d64, kw)

    return grade_gradients(
        guard=guard,
        forward=forward,
        backward=backward,
        args=(x, gamma, beta),
        kwargs=kw,
        diff=(0, 1, 2),
        what=what,
        dout=dout,
        student_cache=cache,
        forward_ok=_forward_ok(out, want_out.to(out.dtype)),
        reference_cache=ref_cache,
        names=NAMES,
        expected=expected,
        hints=[lambda: hints[0], lambda: hints[1], lambda: hints[2]],
        context=context,
    )


def _grade_backward(
    layer: Layer, forward: Callable[..., Any], backward: Callable[..., Any]
) -> Report:
    what = f"{layer.name}_backward"
    guard = Guard(RULES, what)
    g = Grader(what)

    def inputs(xs, gs, seed):
        x = _x(xs, seed)
        gamma, beta = _affine(gs, seed + 1)
        dout = randn(xs, seed + 3, shift=0.2)
        return x, gamma, beta, dout

    def shapes() -> None:
        xs, gs, kw = layer.cases[-1]
        x, gamma, beta, dout = inputs(xs, gs, 100)
        expect_backward_shapes(
            guard=guard,
            forward=forward,
            backward=backward,
            reference=layer.ref_forward,
            what=what,
            args=(x, gamma, beta),
            kwargs=kw,
            dout=dout,
            names=NAMES,
            wrt=(x, gamma, beta),
        )

    def values() -> None:
        def one(case) -> None:
            i, (xs, gs, kw) = case
            x, gamma, beta, dout = inputs(xs, gs, 110 + 10 * i)
            extra = f", {kw}" if kw else ""
            _case(
                layer,
                guard,
                forward,
                backward,
                what,
                x,
                gamma,
                beta,
                dout,
                kw,
                context=f"x {xs}, gamma {gs}{extra}",
            )

        over_cases(enumerate(layer.cases), one, f"{layer.name}_forward")

    def gradcheck() -> None:
        label, xs, gs, kw = layer.edge
        x, gamma, beta, dout = inputs(xs, gs, 150)
        dx, dgamma, dbeta = _case(
            layer,
            guard,
            forward,
            backward,
            what,
            x,
            gamma,
            beta,
            dout,
            kw,
            context=label,
        )

        expect_layer_gradcheck(
            reference=layer.ref_forward,
            args=(x, gamma, beta),
            kwargs=kw,
            diff=(0, 1, 2),
            dout=dout,
            grads=(dx, dgamma, dbeta),
            names=NAMES,
        )

    def dtypes_devices() -> None:
        xs, gs, kw = layer.cases[0]
        for device in devices():
            ins = _to(inputs(xs, gs, 160), device, torch.float32)
            grads = _case(
                layer,
                guard,
                forward,
                backward,
                what,
                *ins,
                kw,
                context=f"float32 on {device}",
            )
            for grad, name in zip(grads, NAMES, strict=True):
                expect_dtype_device(grad, ins[0], f"{name} ({device}, float32)")
        for device in device_pairs():
            ins = inputs(xs, gs, 170)
            cpu = _case(layer, guard, forward, backward, what, *ins, kw)
            dev = _case(layer, guard, forward, backward, what, *_to(ins, device), kw)
            for a, b, name in zip(dev, cpu, NAMES, strict=True):
                expect_close(a.cpu(), b, f"{name} on {device} vs on cpu", tol=1e-10)
        x, gamma, beta, dout = inputs(xs, gs, 175)
        backward_on_meta(
            guard,
            backward,
            what,
            dout,
            forward,
            (x, gamma, beta),
            kw,
            layer.ref_forward,
        )

    shapes_txt = ", ".join(str(c[0]) for c in layer.cases)
    first = "returns (dx, dgamma, dbeta) shaped like x, gamma, beta"
    g.check(first, 1, shapes)
    g.check(
        f"dx, dgamma, dbeta vs torch autograd (x {shapes_txt})",
        2,
        values,
        requires=[first],
        key=True,
    )
    g.check(
        f"gradient checks, elementwise and directional ({layer.edge[0]})",
        1,
        gradcheck,
        requires=[first],
    )
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


# ------------------------------------------------------------ entry points


@single_threaded
def grade_layernorm_forward(layernorm_forward: Callable[..., Any]) -> Report:
    """Grade ``layernorm_forward`` (5 points)."""
    return _grade_forward(LAYERNORM, layernorm_forward)


@single_threaded
def grade_layernorm_backward(
    layernorm_forward: Callable[..., Any], layernorm_backward: Callable[..., Any]
) -> Report:
    """Grade ``layernorm_backward`` with the student's forward (5 points)."""
    return _grade_backward(LAYERNORM, layernorm_forward, layernorm_backward)


@single_threaded
def grade_instancenorm_forward(instancenorm_forward: Callable[..., Any]) -> Report:
    """Grade ``instancenorm_forward`` (5 points)."""
    return _grade_forward(INSTANCENORM, instancenorm_forward)


@single_threaded
def grade_instancenorm_backward(
    instancenorm_forward: Callable[..., Any], instancenorm_backward: Callable[..., Any]
) -> Report:
    """Grade ``instancenorm_backward`` with the student's forward (5 points)."""
    return _grade_backward(INSTANCENORM, instancenorm_forward, instancenorm_backward)


@single_threaded
def grade_groupnorm_forward(groupnorm_forward: Callable[..., Any]) -> Report:
    """Grade ``groupnorm_forward`` (5 points)."""
    return _grade_forward(GROUPNORM, groupnorm_forward)


@single_threaded
def grade_groupnorm_backward(
    groupnorm_forward: Callable[..., Any], groupnorm_backward: Callable[..., Any]
) -> Report:
    """Grade ``groupnorm_backward`` with the student's forward (5 points)."""
    return _grade_backward(GROUPNORM, groupnorm_forward, groupnorm_backward)
