"""Checks for the batchnorm assignment.

Graded functions: ``batchnorm_forward``, ``batchnorm_backward`` (through the
graph), ``batchnorm_backward_alt`` (closed form), ``spatial_batchnorm_forward``,
``spatial_batchnorm_backward`` and ``fold_batchnorm``.

The answer key is ``torch.nn.functional.batch_norm`` (with autograd for the
gradients), computed in float64 in the grader; the reference library
(``trainlab``) is the second key for the float32 and device checks. Inputs
follow the course's rules for exposing mistakes: shifted and scaled inputs
($5 z + 12$, a different offset per feature or channel), random ``gamma`` and
``beta`` (never 1 and 0), random upstream gradients (never ones), N != D, a
batch of 4 (where the biased and unbiased variances differ by 33%), a feature
whose variance is comparable to ``eps``, and momenta other than 0.1.

A backward is run on the cache of the student's own forward. If that forward
is wrong on an input, its cell pays for it; the backward keeps its points when
it is right with the reference forward's cache, or when it is the exact
gradient of the student's forward.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

import trainlab.batchnorm as ref
import trainlab.spatial_batchnorm as ref_spatial
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
    unpack,
)
from autograder.checks.own_code import TORCH_LAYERS, Guard, devices, rules

NORM_C_NAMES = (
    "batch_norm",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "_batch_norm_impl_index",
    "cudnn_batch_norm",
    "miopen_batch_norm",
    "batch_norm_elemt",
    "batch_norm_stats",
    "native_batch_norm_backward",
    "instance_norm",
    "layer_norm",
    "native_layer_norm",
    "group_norm",
    "native_group_norm",
    "rms_norm",
)
#: helpers the notebook imports from the reference on purpose
ALLOWED = {
    ("batchnorm.py", "_check_params"),
    ("batchnorm.py", "_check_batch_size"),
    ("batchnorm.py", "_check_dout"),
}
RULES = rules(
    NORM_C_NAMES,
    modules=TORCH_LAYERS,
    allow_reference=ALLOWED,
    hint="Write it with tensor operations (mean, sum, sqrt, ...): "
    "torch.nn.functional.batch_norm and trainlab are what you are building.",
)
EPS = 1e-5
#: the arguments a forward updates in place: the running statistics
RUNNING = (3, 4, "running_mean", "running_var")


# ---------------------------------------------------------------- inputs


def _params(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random gamma and beta (never 1 and 0)."""
    gamma = randn((d,), seed, scale=0.5, shift=1.2)
    beta = randn((d,), seed + 1, scale=0.8, shift=0.3)
    return gamma, beta


def _running(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Running statistics that are not the initial 0 and 1."""
    rm = randn((d,), seed, scale=2.0)
    rv = randn((d,), seed + 1, scale=0.3).abs() + 0.5
    return rm, rv


def _x(n: int, d: int, seed: int) -> torch.Tensor:
    """5 z + 12, plus a different offset per feature: the mean matters."""
    offsets = torch.linspace(-3.0, 4.0, d, dtype=torch.float64)
    return randn((n, d), seed, scale=5.0, shift=12.0) + offsets


def _tiny_variance_x(n: int, d: int, seed: int) -> torch.Tensor:
    """Like :func:`_x`, but feature 0 has variance ~1e-6, comparable to eps."""
    x = _x(n, d, seed)
    x[:, 0] = 3.0 + 1e-3 * randn((n,), seed + 5)
    return x


def _clone(*ts: torch.Tensor) -> list[torch.Tensor]:
    return [t.clone() for t in ts]


def _to(ts, device=None, dtype=None) -> list[torch.Tensor]:
    return [t.to(device=device, dtype=dtype) for t in ts]


# --------------------------------------------------- answer keys and hints


def _torch_forward(x, gamma, beta, rm, rv, *, training=True, momentum=0.1, eps=EPS):
    """torch's output and updated running statistics (copies), float64 CPU."""
    x, gamma, beta, rm, rv = _to((x, gamma, beta, rm, rv), "cpu", torch.float64)
    rm, rv = rm.clone(), rv.clone()
    out = F.batch_norm(x, rm, rv, gamma, beta, training, momentum, eps)
    return out, rm, rv


def _torch_grads(x, gamma, beta, rm, rv, dout, *, training=True, eps=EPS):
    """(dx, dgamma, dbeta) of sum(batch_norm(x) * dout) by autograd, float64 CPU."""
    leaves = [
        t.detach().to("cpu", torch.float64).requires_grad_(True)
        for t in (x, gamma, beta)
    ]
    rm, rv = _to((rm, rv), "cpu", torch.float64)
    with torch.enable_grad():
        out = F.batch_norm(
            leaves[0], rm.clone(), rv.clone(), leaves[1], leaves[2], training, 0.1, eps
        )
        grads = torch.autograd.grad(out, leaves, dout.to("cpu", torch.float64))
    return [g.detach() for g in grads]


def _stats(x: torch.Tensor, dim=0):
    mu = x.mean(dim=dim, keepdim=True)
    var_b = x.var(dim=dim, unbiased=False, keepdim=True)
    var_u = x.var(dim=dim, unbiased=True, keepdim=True)
    return mu, var_b, var_u


def _forward_hints(x, gamma, beta, eps=EPS) -> list[Hint]:
    mu, var_b, var_u = _stats(x)
    xhat = (x - mu) / torch.sqrt(var_b + eps)
    mu1, var1, _ = _stats(x, dim=1)
    return [
        (
            "normalized with the unbiased variance (divide by N - 1); batchnorm "
            "normalizes with the biased one (divide by N), as torch does",
            gamma * (x - mu) / torch.sqrt(var_u + eps) + beta,
        ),
        (
            "eps is added outside the square root; it goes inside: sqrt(var + eps)",
            gamma * (x - mu) / (torch.sqrt(var_b) + eps) + beta,
        ),
        (
            "eps is missing: divide by sqrt(var + eps)",
            gamma * (x - mu) / torch.sqrt(var_b) + beta,
        ),
        ("gamma and beta are swapped: out = gamma * x_hat + beta", beta * xhat + gamma),
        ("gamma and beta are not applied: out = gamma * x_hat + beta", xhat),
        ("beta is not added: out = gamma * x_hat + beta", gamma * xhat),
        (
            "the statistics are taken per sample (over dim 1); batchnorm takes "
            "them per feature, over the batch (dim 0)",
            gamma * (x - mu1) / torch.sqrt(var1 + eps) + beta,
        ),
    ]


def _running_hints(
    x, rm0, rv0, momentum, *, batch: int | None = None
) -> tuple[list[Hint], list[Hint]]:
    """Wrong running_mean and running_var after one step on ``x`` (n, D).

    ``batch``: for spatial batchnorm, N (``x`` is then the (N*H*W, C) view).
    """
    mu, var_b, var_u = (s.reshape(-1) for s in _stats(x))
    m = momentum
    mean_hints = [
        (
            "momentum is written the reverse way: torch uses running = "
            "(1 - momentum) * running + momentum * batch_mean",
            m * rm0 + (1 - m) * mu,
        ),
        (
            "running_mean did not change: update it in place (e.g. "
            "running_mean.mul_(1 - momentum).add_(momentum * mean), or "
            "running_mean[:] = ...); `running_mean = ...` only rebinds a local name",
            rm0,
        ),
        (
            "the momentum argument is ignored (the update uses 0.1)",
            0.9 * rm0 + 0.1 * mu,
        ),
    ]
    var_hints = [
        (
            "running_var looks like the biased variance: PyTorch stores the "
            "unbiased one, var * n / (n - 1)",
            (1 - m) * rv0 + m * var_b,
        ),
        (
            "momentum is written the reverse way: torch uses running = "
            "(1 - momentum) * running + momentum * batch_var",
            m * rv0 + (1 - m) * var_u,
        ),
        (
            "momentum is written the reverse way, and running_var is the biased "
            "variance (PyTorch stores the unbiased one)",
            m * rv0 + (1 - m) * var_b,
        ),
        (
            "running_var did not change: update it in place (e.g. "
            "running_var.mul_(1 - momentum).add_(...)); `running_var = ...` only "
            "rebinds a local name",
            rv0,
        ),
        (
            "running_var averages the standard deviation; it averages the "
            "(unbiased) variance",
            (1 - m) * rv0 + m * var_u.sqrt(),
        ),
        (
            "the momentum argument is ignored (the update uses 0.1)",
            0.9 * rv0 + 0.1 * var_u,
        ),
    ]
    if batch is not None:
        var_hints.insert(
            0,
            (
                f"the unbiased correction uses n = N = {batch} (the batch size); for "
                f"spatial batchnorm n = N * H * W = {x.shape[0]} values per channel",
                (1 - m) * rv0 + m * var_b * batch / (batch - 1),
            ),
        )
    return mean_hints, var_hints


def _backward_hints(x, gamma, dout, eps=EPS, *, var=None, mu=None):
    """Wrong (dx, dgamma, dbeta) for a training-mode batchnorm on (N, D)."""
    n = x.shape[0]
    if mu is None:
        mu, var, _ = _stats(x)
    inv = 1.0 / torch.sqrt(var + eps)
    xhat = (x - mu) * inv
    dbeta = dout.sum(0)
    dgamma = (dout * xhat).sum(0)
    s = gamma * inv
    dx_hints = [
        (
            "dx is off by the mean-path term: the batch mean depends on every "
            "x_i, which adds -(1/N) * sum_k dout_k * gamma / std to each dx_i",
            s * (dout - xhat * dgamma / n),
        ),
        (
            "dx misses the variance-path term: the variance depends on every x_i "
            "too, which adds -(1/N) * x_hat_i * sum_k dout_k * x_hat_k * gamma / std",
            s * (dout - dbeta / n),
        ),
        (
            "dx treats the batch mean and variance as constants (the eval-mode "
            "formula); in training mode they depend on x",
            s * dout,
        ),
        (
            "gamma is missing from dx: dL/dx_hat = gamma * dout",
            inv * (dout - dbeta / n - xhat * dgamma / n),
        ),
        (
            "the variance path is off by a factor: d var / d x_i = 2 (x_i - mu) / N",
            s * (dout - dbeta / n - 2 * xhat * dgamma / n),
        ),
        (
            "the variance path uses N - 1; the forward divides by N",
            s * (dout - dbeta / n - xhat * dgamma / (n - 1)),
        ),
    ]
    dgamma_hints = [
        (
            "dgamma sums dout * x_hat (the normalized input), not dout * x",
            (dout * x).sum(0),
        ),
        ("dgamma is a sum over the batch, not a mean", dgamma / n),
        ("dgamma sums dout * x_hat, not dout", dbeta),
    ]
    dbeta_hints = [
        ("dbeta is a sum over the batch, not a mean", dbeta / n),
        ("dbeta sums dout, not dout * x_hat", dgamma),
    ]
    return dx_hints, dgamma_hints, dbeta_hints


# ------------------------------------------------------ batchnorm_forward


def _call_forward(guard, forward, what, x, gamma, beta, rm, rv, **kw):
    out, cache = guarded_forward(guard, forward, what, x, gamma, beta, rm, rv, **kw)
    return out, cache


@single_threaded
def grade_batchnorm_forward(batchnorm_forward: Callable[..., Any]) -> Report:
    """Grade ``batchnorm_forward`` (8 points)."""
    what = "batchnorm_forward"
    guard = Guard(RULES, what, inplace=RUNNING)
    g = Grader(what)

    def shape_dtype() -> None:
        x = _x(4, 5, 1)
        gamma, beta = _params(5, 2)
        rm, rv = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
        x0, gamma0, beta0 = _clone(x, gamma, beta)
        out, _ = _call_forward(guard, batchnorm_forward, what, x, gamma, beta, rm, rv)
        expect_shape(out, (4, 5), "out")
        expect_dtype_device(out, x, "out")
        for name, before, after in (
            ("x", x0, x),
            ("gamma", gamma0, gamma),
            ("beta", beta0, beta),
        ):
            expect_unchanged(before, after, name, what)

    def training_output() -> None:
        for i, (n, d) in enumerate([(4, 5), (7, 3), (64, 10), (2, 6)]):
            x = _x(n, d, 10 + i)
            gamma, beta = _params(d, 20 + i)
            rm, rv = _running(d, 30 + i)
            out, _ = _call_forward(
                guard, batchnorm_forward, what, x, gamma, beta, rm, rv
            )
            want, _, _ = _torch_forward(x, gamma, beta, rm, rv)
            close_with_hints(
                out,
                want,
                "out",
                partial(_forward_hints, x, gamma, beta),
                context=f"training mode, x ({n}, {d}) = 5 z + 12",
            )
            ref_out, _ = ref.batchnorm_forward(x, gamma, beta, *_clone(rm, rv))
            expect_close(out, ref_out, "out (vs the reference)")

    def tiny_variance() -> None:
        x = _tiny_variance_x(8, 4, 40)
        gamma, beta = _params(4, 41)
        rm, rv = _running(4, 42)
        out, _ = _call_forward(guard, batchnorm_forward, what, x, gamma, beta, rm, rv)
        want, _, _ = _torch_forward(x, gamma, beta, rm, rv)
        close_with_hints(
            out,
            want,
            "out",
            partial(_forward_hints, x, gamma, beta),
            context="a feature with variance ~1e-6, comparable to eps",
            tol=1e-6,
        )

    def running(which: str) -> None:
        for i, (n, d, momentum) in enumerate([(4, 5, 0.1), (6, 3, 0.3)]):
            x = _x(n, d, 50 + i)
            gamma, beta = _params(d, 60 + i)
            rm0, rv0 = _running(d, 70 + i)
            rm, rv = _clone(rm0, rv0)
            _call_forward(
                guard,
                batchnorm_forward,
                what,
                x,
                gamma,
                beta,
                rm,
                rv,
                momentum=momentum,
            )
            _, want_rm, want_rv = _torch_forward(
                x, gamma, beta, rm0, rv0, momentum=momentum
            )
            mean_hints, var_hints = _running_hints(x, rm0, rv0, momentum)
            context = f"one training step, N={n}, momentum={momentum}"
            if which == "mean":
                close_with_hints(
                    rm, want_rm, "running_mean", mean_hints, context=context
                )
            else:
                close_with_hints(rv, want_rv, "running_var", var_hints, context=context)

    def eval_mode() -> None:
        for i, (n, d) in enumerate([(4, 5), (1, 3)]):
            x = _x(n, d, 80 + i)
            gamma, beta = _params(d, 90 + i)
            rm0, rv0 = _running(d, 100 + i)
            rm, rv = _clone(rm0, rv0)
            out, _ = _call_forward(
                guard, batchnorm_forward, what, x, gamma, beta, rm, rv, training=False
            )
            want, _, _ = _torch_forward(x, gamma, beta, rm0, rv0, training=False)
            hints = []
            if n > 1:
                train_out, _, _ = _torch_forward(x, gamma, beta, rm0, rv0)
                hints.append(
                    (
                        "eval mode uses the batch statistics: with training=False, "
                        "normalize with running_mean and running_var",
                        train_out,
                    )
                )
            hints.append(
                (
                    "eval mode divides by sqrt(running_var) without eps",
                    gamma * (x - rm0) / rv0.sqrt() + beta,
                )
            )
            close_with_hints(out, want, "out", hints, context=f"eval mode, N={n}")
            for name, before, after in (
                ("running_mean", rm0, rm),
                ("running_var", rv0, rv),
            ):
                if not torch.equal(before, after):
                    raise Mistake(
                        f"eval mode changed {name}; with training=False the running "
                        "statistics are used, never updated"
                    )

    def dtypes_devices() -> None:
        for device in devices():
            x64 = _x(6, 4, 110)
            gamma64, beta64 = _params(4, 111)
            rm64, rv64 = _running(4, 112)
            ins = _to((x64, gamma64, beta64, rm64, rv64), device, torch.float32)
            out, _ = _call_forward(guard, batchnorm_forward, what, *ins)
            expect_dtype_device(out, ins[0], f"out ({device}, float32)")
            want, want_rm, want_rv = _torch_forward(
                *_to((x64, gamma64, beta64, rm64, rv64), None, None)
            )
            expect_close(out, want, f"out ({device}, float32)")
            expect_close(ins[3], want_rm, f"running_mean ({device}, float32)")
            expect_close(ins[4], want_rv, f"running_var ({device}, float32)")
        for device in device_pairs():
            x = _x(5, 3, 113)
            gamma, beta = _params(3, 114)
            rm, rv = _running(3, 115)
            cpu = _call_forward(
                guard, batchnorm_forward, what, x, gamma, beta, *_clone(rm, rv)
            )[0]
            ins = _to((x, gamma, beta, rm, rv), device)
            dev = _call_forward(guard, batchnorm_forward, what, *ins)[0]
            expect_close(dev.cpu(), cpu, f"out on {device} vs on cpu", tol=1e-10)
        x, (gamma, beta), (rm, rv) = _x(5, 3, 116), _params(3, 117), _running(3, 118)
        on_meta(guard, batchnorm_forward, what, (x, gamma, beta, rm, rv), outputs=1)

    first = "returns (out, cache); out (N, D) like x; x, gamma, beta unchanged"
    g.check(first, 1, shape_dtype)
    g.check(
        "training output vs torch and the reference (N x D = 4x5, 7x3, 64x10, 2x6)",
        2,
        training_output,
        requires=[first],
        key=True,
    )
    g.check(
        "eps inside the square root (a feature with variance ~1e-6)", 1, tiny_variance
    )
    g.check(
        "running_mean updated in place (momentum 0.1 and 0.3)",
        1,
        partial(running, "mean"),
        key=True,
    )
    g.check(
        "running_var updated in place with the unbiased variance",
        1,
        partial(running, "var"),
        key=True,
    )
    g.check(
        "eval mode: running statistics, left unchanged (N=4 and N=1)",
        1,
        eval_mode,
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


# ---------------------------------------------------- batchnorm backward


def _forward_ok(out: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether the student's forward output is right (to rounding) on this input."""
    tol = 1e-9 if out.dtype == torch.float64 else 1e-5
    return (
        out.shape == want.shape
        and bool(torch.isfinite(out).all())
        and rel_error(out, want) < tol
    )


def _backward_case(
    guard,
    forward,
    backward,
    what,
    x,
    gamma,
    beta,
    rm,
    rv,
    dout,
    *,
    training=True,
    context="",
):
    """Run the student's backward on one input and compare with torch autograd."""
    kw = {"training": training}
    value = forward_for_cache(
        guard, forward, x.clone(), gamma.clone(), beta.clone(), *_clone(rm, rv), **kw
    )
    try:
        out = plain_tensor(value[0], "out")
        cache = value[1]
    except Exception as exc:
        raise Mistake(
            f"{what} needs the cache of your forward, but batchnorm_forward did not "
            f"return (out, cache): {exc}"
        ) from None
    x64, g64, b64, rm64, rv64, d64 = _to(
        (x, gamma, beta, rm, rv, dout), "cpu", torch.float64
    )
    want_out, _, _ = _torch_forward(x64, g64, b64, rm64, rv64, training=training)
    expected = _torch_grads(x64, g64, b64, rm64, rv64, d64, training=training)
    _, ref_cache = ref.batchnorm_forward(x, gamma, beta, *_clone(rm, rv), **kw)
    if training:
        dx_h, dg_h, db_h = _backward_hints(x64, g64, d64)
    else:
        train_dx = _torch_grads(x64, g64, b64, rm64, rv64, d64, training=True)[0]
        dx_h = [
            (
                "eval mode: the running statistics are constants, so "
                "dx = gamma * dout / sqrt(running_var + eps); the training-mode "
                "formula does not apply",
                train_dx,
            )
        ]
        dg_h, db_h = [], []
    return grade_gradients(
        guard=guard,
        forward=forward,
        backward=backward,
        what=what,
        args=(x, gamma, beta, rm, rv),
        kwargs=kw,
        diff=(0, 1, 2),
        dout=dout,
        student_cache=cache,
        forward_ok=_forward_ok(out, want_out.to(out.dtype)),
        reference_cache=ref_cache,
        names=["dx", "dgamma", "dbeta"],
        expected=expected,
        hints=[lambda: dx_h, lambda: dg_h, lambda: db_h],
        context=context,
    )


def _grade_backward(
    forward: Callable[..., Any], backward: Callable[..., Any], what: str
) -> Report:
    guard = Guard(RULES, what)
    g = Grader(what)

    def shapes() -> None:
        x, (gamma, beta), (rm, rv) = _x(4, 5, 200), _params(5, 201), _running(5, 202)
        expect_backward_shapes(
            guard=guard,
            forward=forward,
            backward=backward,
            reference=ref.batchnorm_forward,
            what=what,
            args=(x, gamma, beta, rm, rv),
            kwargs={},
            dout=randn((4, 5), 203),
            names=("dx", "dgamma", "dbeta"),
            wrt=(x, gamma, beta),
        )

    def values() -> None:
        def one(case) -> None:
            i, (n, d) = case
            x = _x(n, d, 210 + i)
            gamma, beta = _params(d, 220 + i)
            rm, rv = _running(d, 230 + i)
            dout = randn((n, d), 240 + i, shift=0.3)
            _backward_case(
                guard,
                forward,
                backward,
                what,
                x,
                gamma,
                beta,
                rm,
                rv,
                dout,
                context=f"training mode, x ({n}, {d})",
            )

        over_cases(enumerate([(4, 5), (7, 3)]), one, "batchnorm_forward")

    def gradcheck() -> None:
        x = _x(64, 10, 250)
        gamma, beta = _params(10, 251)
        rm, rv = _running(10, 252)
        dout = randn((64, 10), 253)
        dx, dgamma, dbeta = _backward_case(
            guard,
            forward,
            backward,
            what,
            x,
            gamma,
            beta,
            rm,
            rv,
            dout,
            context="training mode, x (64, 10)",
        )
        expect_layer_gradcheck(
            reference=ref.batchnorm_forward,
            args=(x, gamma, beta, rm, rv),
            kwargs={},
            diff=(0, 1, 2),
            dout=dout,
            grads=(dx, dgamma, dbeta),
            names=("dx", "dgamma", "dbeta"),
        )

    def eval_mode() -> None:
        x = _x(5, 4, 260)
        gamma, beta = _params(4, 261)
        rm, rv = _running(4, 262)
        dout = randn((5, 4), 263)
        _backward_case(
            guard,
            forward,
            backward,
            what,
            x,
            gamma,
            beta,
            rm,
            rv,
            dout,
            training=False,
            context="eval mode",
        )

    def dtypes_devices() -> None:
        for device in devices():
            x = _x(6, 3, 270)
            gamma, beta = _params(3, 271)
            rm, rv = _running(3, 272)
            dout = randn((6, 3), 273)
            ins = _to((x, gamma, beta, rm, rv, dout), device, torch.float32)
            grads = _backward_case(
                guard, forward, backward, what, *ins, context=f"float32 on {device}"
            )
            for grad, name in zip(grads, ("dx", "dgamma", "dbeta"), strict=True):
                expect_dtype_device(grad, ins[0], f"{name} ({device}, float32)")
        for device in device_pairs():
            x = _x(5, 3, 274)
            gamma, beta = _params(3, 275)
            rm, rv = _running(3, 276)
            dout = randn((5, 3), 277)
            cpu = _backward_case(
                guard, forward, backward, what, x, gamma, beta, rm, rv, dout
            )
            dev = _backward_case(
                guard,
                forward,
                backward,
                what,
                *_to((x, gamma, beta, rm, rv, dout), device),
            )
            for a, b, name in zip(dev, cpu, ("dx", "dgamma", "dbeta"), strict=True):
                expect_close(a.cpu(), b, f"{name} on {device} vs on cpu", tol=1e-10)
        x, (gamma, beta), (rm, rv) = _x(5, 3, 278), _params(3, 279), _running(3, 280)
        backward_on_meta(
            guard,
            backward,
            what,
            randn((5, 3), 281),
            forward,
            (x, gamma, beta, rm, rv),
            {},
            ref.batchnorm_forward,
        )

    first = "returns (dx, dgamma, dbeta) shaped like x, gamma, beta"
    g.check(first, 1, shapes)
    g.check(
        "dx, dgamma, dbeta vs torch autograd (N x D = 4x5, 7x3; random gamma, dout)",
        3,
        values,
        requires=[first],
        key=True,
    )
    g.check(
        "gradient checks, elementwise and directional (x 64x10)",
        1,
        gradcheck,
        requires=[first],
    )
    g.check(
        "eval mode: dx = gamma * dout / sqrt(running_var + eps)", 1, eval_mode, key=True
    )
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


def grade_batchnorm_backward(
    batchnorm_forward: Callable[..., Any], batchnorm_backward: Callable[..., Any]
) -> Report:
    """Grade ``batchnorm_backward`` (graph), with the student's forward (7 points)."""
    return single_threaded(_grade_backward)(
        batchnorm_forward, batchnorm_backward, "batchnorm_backward"
    )


def grade_batchnorm_backward_alt(
    batchnorm_forward: Callable[..., Any], batchnorm_backward_alt: Callable[..., Any]
) -> Report:
    """Grade ``batchnorm_backward_alt`` (closed form), with the student's forward."""
    return single_threaded(_grade_backward)(
        batchnorm_forward, batchnorm_backward_alt, "batchnorm_backward_alt"
    )


# ------------------------------------------------------- spatial batchnorm


def _x4(shape: tuple[int, int, int, int], seed: int) -> torch.Tensor:
    """5 z + 12 with a distinct offset per channel: per-channel stats matter."""
    c = shape[1]
    offsets = torch.linspace(-6.0, 6.0, c, dtype=torch.float64).reshape(1, c, 1, 1)
    return randn(shape, seed, scale=5.0, shift=12.0) + offsets


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])  # (N*H*W, C)


def _channels_first(t: torch.Tensor, shape) -> torch.Tensor:
    n, c, h, w = shape
    return t.reshape(n, h, w, c).permute(0, 3, 1, 2)  # (N, C, H, W)


def _spatial_forward_hints(x, gamma, beta, eps=EPS) -> list[Hint]:
    n, c, h, w = x.shape
    flat = x.reshape(-1, c)  # (N*H*W, C) with channels and positions mixed
    mixed_flat = F.batch_norm(flat, None, None, gamma, beta, True, 0.1, eps)
    mixed = mixed_flat.reshape(x.shape)
    cl = F.batch_norm(_channels_last(x), None, None, gamma, beta, True, 0.1, eps)
    mu = x.mean(dim=0, keepdim=True)
    var = x.var(dim=0, unbiased=False, keepdim=True)
    per_position = gamma.reshape(1, c, 1, 1) * (x - mu) / torch.sqrt(var + eps)
    per_position = per_position + beta.reshape(1, c, 1, 1)
    mu_c = x.mean(dim=(0, 2, 3), keepdim=True)
    var_u = x.var(dim=(0, 2, 3), unbiased=True, keepdim=True)
    unbiased = gamma.reshape(1, c, 1, 1) * (x - mu_c) / torch.sqrt(var_u + eps)
    return [
        (
            "x.reshape(-1, C) mixes channels and positions in each row: move the "
            "channels last first, x.permute(0, 2, 3, 1).reshape(-1, C), and back "
            "afterwards",
            mixed,
        ),
        (
            "x.reshape(-1, C) mixes channels and positions in each row: move the "
            "channels last first, x.permute(0, 2, 3, 1).reshape(-1, C)",
            _channels_first(mixed_flat, x.shape),
        ),
        (
            "the output was reshaped to (N, C, H, W) straight from (N*H*W, C): "
            "reshape it to (N, H, W, C), then permute(0, 3, 1, 2)",
            cl.reshape(x.shape),
        ),
        (
            "statistics per (c, h, w): spatial batchnorm takes one mean and one "
            "variance per channel, over N, H and W",
            per_position,
        ),
        (
            "normalized with the unbiased variance; use the biased one (divide by "
            "N * H * W)",
            unbiased + beta.reshape(1, c, 1, 1),
        ),
    ]


@single_threaded
def grade_spatial_batchnorm_forward(
    spatial_batchnorm_forward: Callable[..., Any],
) -> Report:
    """Grade ``spatial_batchnorm_forward`` (6 points)."""
    what = "spatial_batchnorm_forward"
    guard = Guard(RULES, what, inplace=RUNNING)
    g = Grader(what)
    fwd = spatial_batchnorm_forward

    def shape_dtype() -> None:
        x = _x4((2, 3, 4, 5), 300)
        gamma, beta = _params(3, 301)
        rm, rv = _running(3, 302)
        x0 = x.clone()
        out, _ = _call_forward(guard, fwd, what, x, gamma, beta, rm, rv)
        expect_shape(out, x.shape, "out")
        expect_dtype_device(out, x, "out")
        expect_unchanged(x0, x, "x", what)

    def training_output() -> None:
        for i, shape in enumerate([(2, 3, 4, 5), (4, 2, 3, 3), (3, 5, 2, 7)]):
            x = _x4(shape, 310 + i)
            gamma, beta = _params(shape[1], 320 + i)
            rm, rv = _running(shape[1], 330 + i)
            out, _ = _call_forward(guard, fwd, what, x, gamma, beta, rm, rv)
            want, _, _ = _torch_forward(x, gamma, beta, rm, rv)
            close_with_hints(
                out,
                want,
                "out",
                partial(_spatial_forward_hints, x, gamma, beta),
                context=f"training mode, x {shape} with a different offset per channel",
            )

    def running() -> None:
        for i, (shape, momentum) in enumerate(
            [((2, 3, 4, 5), 0.1), ((4, 2, 3, 3), 0.3)]
        ):
            x = _x4(shape, 340 + i)
            gamma, beta = _params(shape[1], 350 + i)
            rm0, rv0 = _running(shape[1], 360 + i)
            rm, rv = _clone(rm0, rv0)
            _call_forward(guard, fwd, what, x, gamma, beta, rm, rv, momentum=momentum)
            _, want_rm, want_rv = _torch_forward(
                x, gamma, beta, rm0, rv0, momentum=momentum
            )
            mean_h, var_h = _running_hints(
                _channels_last(x), rm0, rv0, momentum, batch=shape[0]
            )
            context = f"one training step, x {shape}, momentum={momentum}"
            close_with_hints(rm, want_rm, "running_mean", mean_h, context=context)
            close_with_hints(rv, want_rv, "running_var", var_h, context=context)

    def eval_mode() -> None:
        x = _x4((2, 3, 2, 2), 370)
        gamma, beta = _params(3, 371)
        rm0, rv0 = _running(3, 372)
        rm, rv = _clone(rm0, rv0)
        out, _ = _call_forward(guard, fwd, what, x, gamma, beta, rm, rv, training=False)
        want, _, _ = _torch_forward(x, gamma, beta, rm0, rv0, training=False)
        train_out, _, _ = _torch_forward(x, gamma, beta, rm0, rv0)
        hints = [
            ("eval mode uses the batch statistics; use the running ones", train_out)
        ]
        close_with_hints(out, want, "out", hints, context="eval mode")
        if not (torch.equal(rm, rm0) and torch.equal(rv, rv0)):
            raise Mistake(
                "eval mode changed the running statistics; leave them as they are"
            )

    def dtypes_devices() -> None:
        for device in devices():
            x = _x4((2, 3, 3, 4), 380)
            gamma, beta = _params(3, 381)
            rm, rv = _running(3, 382)
            ins = _to((x, gamma, beta, rm, rv), device, torch.float32)
            out, _ = _call_forward(guard, fwd, what, *ins)
            expect_dtype_device(out, ins[0], f"out ({device}, float32)")
            want, _, want_rv = _torch_forward(x, gamma, beta, rm, rv)
            expect_close(out, want, f"out ({device}, float32)")
            expect_close(ins[4], want_rv, f"running_var ({device}, float32)")
        for device in device_pairs():
            x = _x4((2, 2, 3, 3), 383)
            gamma, beta = _params(2, 384)
            rm, rv = _running(2, 385)
            cpu = _call_forward(guard, fwd, what, x, gamma, beta, *_clone(rm, rv))[0]
            dev = _call_forward(
                guard, fwd, what, *_to((x, gamma, beta, rm, rv), device)
            )[0]
            expect_close(dev.cpu(), cpu, f"out on {device} vs on cpu", tol=1e-10)
        x, (gamma, beta) = _x4((2, 3, 4, 5), 350), _params(3, 351)
        rm, rv = _running(3, 352)
        on_meta(guard, fwd, what, (x, gamma, beta, rm, rv), outputs=1)

    first = "returns (out, cache); out shaped like x (N, C, H, W); x unchanged"
    g.check(first, 1, shape_dtype)
    g.check(
        "training output vs torch (3 shapes, channel-distinct offsets)",
        2,
        training_output,
        requires=[first],
        key=True,
    )
    g.check(
        "running statistics: per channel, unbiased with n = N*H*W", 1, running, key=True
    )
    g.check("eval mode: running statistics, left unchanged", 1, eval_mode)
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


def _spatial_backward_hints(x, gamma, dout, eps=EPS):
    """Wrong dx from a backward that reshapes dout without moving channels."""
    _, cache = ref.batchnorm_forward(
        _channels_last(x),
        gamma,
        torch.zeros_like(gamma),
        torch.zeros_like(gamma),
        torch.ones_like(gamma),
        eps=eps,
    )
    c = x.shape[1]
    wrong_in = ref.batchnorm_backward_alt(dout.reshape(-1, c), cache)
    right_flat = ref.batchnorm_backward_alt(_channels_last(dout), cache)
    dx_hints = [
        (
            "dout.reshape(-1, C) mixes channels and positions: move the channels "
            "last, dout.permute(0, 2, 3, 1).reshape(-1, C), as in the forward",
            _channels_first(wrong_in[0], x.shape),
        ),
        (
            "dx was reshaped to (N, C, H, W) straight from (N*H*W, C): reshape to "
            "(N, H, W, C), then permute(0, 3, 1, 2)",
            right_flat[0].reshape(x.shape),
        ),
    ]
    dg_hints = [
        (
            "dgamma mixes channels and positions: dout.reshape(-1, C) without "
            "moving the channels last",
            wrong_in[1],
        )
    ]
    db_hints = [
        (
            "dbeta mixes channels and positions: dout.reshape(-1, C) without "
            "moving the channels last",
            wrong_in[2],
        )
    ]
    return dx_hints, dg_hints, db_hints


@single_threaded
def grade_spatial_batchnorm_backward(
    spatial_batchnorm_forward: Callable[..., Any],
    spatial_batchnorm_backward: Callable[..., Any],
) -> Report:
    """Grade ``spatial_batchnorm_backward`` with the student's forward (5 points)."""
    what = "spatial_batchnorm_backward"
    guard = Guard(RULES, what)
    g = Grader(what)
    fwd, bwd = spatial_batchnorm_forward, spatial_batchnorm_backward

    def case(x, gamma, beta, rm, rv, dout, context=""):
        value = forward_for_cache(
            guard, fwd, x.clone(), gamma.clone(), beta.clone(), *_clone(rm, rv)
        )
        try:
            out, cache = plain_tensor(value[0], "out"), value[1]
        except Exception as exc:
            raise Mistake(
                f"{what} needs the cache of your spatial_batchnorm_forward, which "
                f"did not return (out, cache): {exc}"
            ) from None
        x64, g64, b64, rm64, rv64, d64 = _to(
            (x, gamma, beta, rm, rv, dout), "cpu", torch.float64
        )
        want_out, _, _ = _torch_forward(x64, g64, b64, rm64, rv64)
        expected = _torch_grads(x64, g64, b64, rm64, rv64, d64)
        _, ref_cache = ref_spatial.spatial_batchnorm_forward(
            x, gamma, beta, *_clone(rm, rv)
        )
        dx_h, dg_h, db_h = _spatial_backward_hints(x64, g64, d64)
        return grade_gradients(
            guard=guard,
            forward=fwd,
            backward=bwd,
            what=what,
            args=(x, gamma, beta, rm, rv),
            kwargs={},
            diff=(0, 1, 2),
            dout=dout,
            student_cache=cache,
            forward_ok=_forward_ok(out, want_out.to(out.dtype)),
            reference_cache=ref_cache,
            names=["dx", "dgamma", "dbeta"],
            expected=expected,
            hints=[lambda: dx_h, lambda: dg_h, lambda: db_h],
            context=context,
        )

    def inputs(shape, seed):
        x = _x4(shape, seed)
        gamma, beta = _params(shape[1], seed + 1)
        rm, rv = _running(shape[1], seed + 2)
        dout = randn(shape, seed + 3, shift=0.2)
        return x, gamma, beta, rm, rv, dout

    def shapes() -> None:
        x, gamma, beta, rm, rv, dout = inputs((2, 3, 4, 5), 400)
        expect_backward_shapes(
            guard=guard,
            forward=fwd,
            backward=bwd,
            reference=ref_spatial.spatial_batchnorm_forward,
            what=what,
            args=(x, gamma, beta, rm, rv),
            kwargs={},
            dout=dout,
            names=("dx", "dgamma", "dbeta"),
            wrt=(x, gamma, beta),
        )

    def values() -> None:
        over_cases(
            enumerate([(2, 3, 4, 5), (4, 2, 3, 3)]),
            lambda c: case(*inputs(c[1], 410 + 10 * c[0]), context=f"x {c[1]}"),
            "spatial_batchnorm_forward",
        )

    def gradcheck() -> None:
        x, gamma, beta, rm, rv, dout = inputs((3, 4, 3, 2), 440)
        dx, dgamma, dbeta = case(x, gamma, beta, rm, rv, dout, context="x (3, 4, 3, 2)")
        expect_layer_gradcheck(
            reference=ref_spatial.spatial_batchnorm_forward,
            args=(x, gamma, beta, rm, rv),
            kwargs={},
            diff=(0, 1, 2),
            dout=dout,
            grads=(dx, dgamma, dbeta),
            names=("dx", "dgamma", "dbeta"),
        )

    def dtypes_devices() -> None:
        for device in devices():
            ins = _to(inputs((2, 3, 2, 3), 450), device, torch.float32)
            grads = case(*ins, context=f"float32 on {device}")
            for grad, name in zip(grads, ("dx", "dgamma", "dbeta"), strict=True):
                expect_dtype_device(grad, ins[0], f"{name} ({device}, float32)")
        for device in device_pairs():
            ins = inputs((2, 2, 3, 3), 460)
            cpu = case(*ins)
            dev = case(*_to(ins, device))
            for a, b, name in zip(dev, cpu, ("dx", "dgamma", "dbeta"), strict=True):
                expect_close(a.cpu(), b, f"{name} on {device} vs on cpu", tol=1e-10)
        x, (gamma, beta) = _x4((2, 3, 4, 5), 460), _params(3, 461)
        rm, rv = _running(3, 462)
        backward_on_meta(
            guard,
            bwd,
            what,
            randn((2, 3, 4, 5), 463),
            fwd,
            (x, gamma, beta, rm, rv),
            {},
            ref_spatial.spatial_batchnorm_forward,
        )

    first = "returns (dx, dgamma, dbeta) shaped like x, gamma, beta"
    g.check(first, 1, shapes)
    g.check(
        "dx, dgamma, dbeta vs torch autograd (2 shapes)",
        2,
        values,
        requires=[first],
        key=True,
    )
    g.check(
        "gradient checks, elementwise and directional", 1, gradcheck, requires=[first]
    )
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)


# ------------------------------------------------------------------ folding


def _fold_hints(w, b, gamma, beta, rm, rv, eps) -> tuple[list[Hint], list[Hint]]:
    s = gamma / torch.sqrt(rv + eps)
    s_no_eps = gamma / torch.sqrt(rv)
    w_hints = [
        (
            "the rows of w were scaled; in the lecture layout w is (D_in, D_out), "
            "so each output unit is a column: scale the columns, w * scale",
            w * s.reshape(-1, 1) if w.shape[0] == w.shape[1] else w,
        ),
        ("eps is missing: scale = gamma / sqrt(running_var + eps)", w * s_no_eps),
        (
            "the square root is missing: scale = gamma / sqrt(running_var + eps)",
            w * gamma / (rv + eps),
        ),
    ]
    b_hints = [
        (
            "beta is missing from the folded bias: "
            "b' = (b - running_mean) * scale + beta",
            (b - rm) * s,
        ),
        (
            "running_mean is missing from the folded bias: "
            "b' = (b - running_mean) * scale + beta",
            b * s + beta,
        ),
        (
            "the bias b is not scaled: b' = (b - running_mean) * scale + beta",
            b - rm * s + beta,
        ),
        (
            "eps is missing: scale = gamma / sqrt(running_var + eps)",
            (b - rm) * s_no_eps + beta,
        ),
    ]
    return w_hints, b_hints


@single_threaded
def grade_fold_batchnorm(fold_batchnorm: Callable[..., Any]) -> Report:
    """Grade ``fold_batchnorm`` (4 points)."""
    what = "fold_batchnorm"
    guard = Guard(RULES, what)
    g = Grader(what)

    def inputs(d_in, d_out, seed):
        w = randn((d_in, d_out), seed, scale=0.5)
        b = randn((d_out,), seed + 1)
        gamma, beta = _params(d_out, seed + 2)
        rm, rv = _running(d_out, seed + 4)
        return w, b, gamma, beta, rm, rv

    def call(*ins, **kw):
        before = _clone(*ins)
        try:
            value = guard.call(fold_batchnorm, *ins, **kw)
        except RuntimeError as exc:
            if "must match the size" not in str(exc):
                raise
            raise Mistake(
                f"your code raised RuntimeError: {exc}\nHint: w is (D_in, D_out), "
                "so each output unit is a column: scale the columns, w * scale "
                "with scale of shape (D_out,)"
            ) from None
        for t0, t, name in zip(
            before,
            ins,
            ("w", "b", "gamma", "beta", "running_mean", "running_var"),
            strict=True,
        ):
            expect_unchanged(t0, t, name, what)
        return unpack(value, ["w_folded", "b_folded"], what)

    def shapes() -> None:
        ins = inputs(6, 4, 500)
        w2, b2 = call(*ins)
        expect_shape(w2, (6, 4), "w_folded")
        expect_shape(b2, (4,), "b_folded")
        expect_dtype_device(w2, ins[0], "w_folded")

    def values() -> None:
        for i, (d_in, d_out, eps) in enumerate(
            [(5, 5, 1e-5), (6, 4, 1e-5), (3, 7, 1e-3)]
        ):
            w, b, gamma, beta, rm, rv = ins = inputs(d_in, d_out, 510 + 10 * i)
            w2, b2 = call(*ins, eps=eps) if eps != EPS else call(*ins)
            x = randn((8, d_in), 515 + 10 * i, scale=2.0)
            want = F.batch_norm(x @ w + b, rm, rv, gamma, beta, False, 0.1, eps)
            scale = gamma / torch.sqrt(rv + eps)
            w_h, b_h = _fold_hints(w, b, gamma, beta, rm, rv, eps)
            context = f"w ({d_in}, {d_out}), eps={eps:g}"
            close_with_hints(w2, w * scale, "w_folded", w_h, context=context)
            close_with_hints(
                b2,
                (b - rm) * scale + beta,
                "b_folded",
                b_h,
                context=context,
            )
            expect_close(
                x @ w2 + b2,
                want,
                "x @ w_folded + b_folded (vs linear then eval batchnorm)",
            )

    def dtypes_devices() -> None:
        for device in devices():
            ins64 = inputs(5, 3, 540)
            ins = _to(ins64, device, torch.float32)
            w2, b2 = call(*ins)
            expect_dtype_device(w2, ins[0], f"w_folded ({device}, float32)")
            expect_dtype_device(b2, ins[0], f"b_folded ({device}, float32)")
            w, b, gamma, beta, rm, rv = ins64
            scale = gamma / torch.sqrt(rv + EPS)
            expect_close(w2, w * scale, f"w_folded ({device}, float32)")
            expect_close(b2, (b - rm) * scale + beta, f"b_folded ({device}, float32)")
        on_meta(guard, fold_batchnorm, what, inputs(5, 3, 541))

    first = "returns (w_folded (D_in, D_out), b_folded (D_out,)); inputs unchanged"
    g.check(first, 1, shapes)
    g.check(
        "folded layer equals linear + eval batchnorm (square, D_in != D_out, eps)",
        2,
        values,
        requires=[first],
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, dtypes_devices)
    return guard.report(g)
