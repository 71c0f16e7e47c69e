"""Checks for the preprocessing_init assignment: data preprocessing and initializers.

Preprocessing (``trainlab.preprocessing``): ``feature_mean_std``,
``standardize``, ``pca_fit`` and ``whiten`` are compared with the reference and
with NumPy on offset, scaled, correlated data (N != D, N = 4 where the biased
and unbiased std differ visibly), with statistics fitted on training data and
applied to other data, in float64 and float32, on every device. Principal axes
are compared up to their sign.

Initializers (``trainlab.init``): ``calculate_gain``, ``compute_fans``,
``_kaiming_std`` and the four Xavier/Kaiming initializers. Each initializer is
compared with ``torch.nn.init`` on the equivalent layout given the same seeded
generator (the same numbers, up to the rounding of the std), and statistically
on large draws (std, or the uniform bound), with messages naming the likely
misconception ("std matches fan_out, not fan_in").

Cells build on each other (``kaiming_normal`` calls ``_kaiming_std``, which
calls ``compute_fans``): while a cell is graded, the helpers it calls by those
names are replaced by the reference's, so a wrong ``compute_fans`` costs the
``compute_fans`` cell only.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import operator
import os
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

import trainlab.init as ref_init
import trainlab.preprocessing as ref_pre
from autograder.checks import seeds
from autograder.checks.common import (
    close_with_hints,
    expect_unchanged,
    gen,
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
from autograder.checks.own_code import (
    SKLEARN,
    TORCH_INIT,
    TORCH_LAYERS,
    Guard,
    devices,
    rules,
)

# ------------------------------------------------------------------ rules

PRE_RULES = rules(
    modules=(
        *SKLEARN,
        *TORCH_LAYERS,
        (os.path.join("torch", "_lowrank.py"), "torch.pca_lowrank"),
    ),
    hint="Write it with tensor operations (mean, matrix products, "
    "torch.linalg.eigh); scikit-learn and torch.pca_lowrank are off limits.",
)

#: the plumbing of trainlab.init the notebook imports on purpose (functions,
#: then constants)
INIT_HELPERS = ("_as_shape", "_nonzero_fan", "_normal", "_uniform", "_empty")
INIT_CONSTANTS = ("_LINEAR_NAMES", "_NONLINEARITIES")
_INIT_ALLOWED = {
    ("init.py", name) for name in (*INIT_HELPERS, "_from_torch_layout", "_torch_layout")
}
INIT_RULES = rules(
    modules=(*TORCH_INIT, *TORCH_LAYERS),
    allow_reference=_INIT_ALLOWED,
    hint="Write it yourself: torch.nn.init is the answer key the grader uses.",
)

# ----------------------------------------------------------- small helpers


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Mistake(f"{name} should be a Python float; got {type(value).__name__}")
    return float(value)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise Mistake(f"{name} should be an int; got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise Mistake(f"{name} should be an int; got {type(value).__name__}") from None


def _expect_raises(
    guard: Guard, fn: Callable, args: tuple, error: type, what: str, why: str
) -> None:
    try:
        guard.call(fn, *args)
    except Mistake:
        raise
    except error:
        return
    except Exception as exc:
        raise Mistake(
            f"{what} raised {type(exc).__name__} ({exc}); expected {error.__name__} "
            f"{why}"
        ) from None
    raise Mistake(
        f"{what} returned normally; expected it to raise {error.__name__} {why}"
    )


# ====================================================================
# preprocessing


def _data(n: int, d: int, seed: int) -> torch.Tensor:
    """Correlated features with distinct variances and large offsets (float64)."""
    g = gen(seed)
    scales = torch.linspace(4.0, 0.5, d, dtype=torch.float64)  # (D,)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * scales  # (N, D)
    offset = 12.0 + 5.0 * torch.randn(d, generator=g, dtype=torch.float64)
    return z @ q.T + offset  # (N, D)


#: (N, D): N != D, N = 4 (biased and unbiased std differ by sqrt(4/3)), larger
PRE_SHAPES = [(50, 7), (4, 6), (500, 30)]
#: for PCA, N > D so that every axis is determined (no zero-variance subspace)
PCA_SHAPES = [(50, 7), (4, 3), (500, 30)]


@single_threaded
def grade_feature_mean_std(feature_mean_std: Callable) -> Report:
    """Grade ``feature_mean_std(X) -> (mean, std)``, the biased std."""
    what = "feature_mean_std"
    guard = Guard(PRE_RULES, what)
    g = Grader(what)

    def run(X: torch.Tensor) -> list[torch.Tensor]:
        before = X.clone()
        value = guard.call(feature_mean_std, X)
        expect_unchanged(before, X, "X", what)
        return unpack(value, ["mean", "std"], what)

    def shapes() -> None:
        X = _data(50, 7, 1)
        mean, std = run(X)
        for name, t in (("mean", mean), ("std", std)):
            if tuple(t.shape) == (50,):
                raise Mistake(
                    f"{name} has shape (50,), one value per sample; expected (7,), "
                    "one per feature: reduce over dimension 0 (the samples)"
                )
            expect_shape(t, (7,), name)
            expect_dtype_device(t, X, name)

    def values() -> None:
        for i, (n, d) in enumerate(PRE_SHAPES):
            X = _data(n, d, 10 + i)
            mean, std = run(X)
            a = X.numpy()
            expect_close(mean, torch.from_numpy(a.mean(axis=0)), f"mean (N={n}, D={d})")
            hints = [
                (
                    "this is the unbiased std (dividing by N - 1, torch.std's "
                    "default); "
                    "normalization uses the biased one, dividing by N like np.std: "
                    "pass correction=0",
                    X.std(dim=0),
                ),
                (
                    "this is the variance; take its square root",
                    X.var(dim=0, correction=0),
                ),
            ]
            close_with_hints(
                std, torch.from_numpy(a.std(axis=0)), f"std (N={n}, D={d})", hints
            )
            expect_close(std, ref_pre.feature_mean_std(X)[1], "std (vs reference)")

    def float32_devices() -> None:
        X64 = _data(40, 5, 20)
        want = ref_pre.feature_mean_std(X64)
        for device in devices():
            X = X64.float().to(device)
            mean, std = run(X)
            for name, got, exp in zip(("mean", "std"), (mean, std), want, strict=True):
                expect_dtype_device(got, X, f"{name} ({device}, float32)")
                expect_close(got, exp, f"{name} ({device}, float32)", tol=1e-5)

    g.check("returns (mean, std), each of shape (D,)", 1, shapes)
    g.check(
        "mean and the biased std match NumPy (offset, scaled data; N = 4 included)",
        1,
        values,
        key=True,
    )
    g.check("float32 inputs, on every available device", 1, float32_devices)
    return guard.report(g)


@single_threaded
def grade_standardize(standardize: Callable) -> Report:
    """Grade ``standardize(X, mean, std, eps=1e-8)``."""
    what = "standardize"
    guard = Guard(PRE_RULES, what)
    g = Grader(what)

    def run(X, mean, std, *rest):
        before = [t.clone() for t in (X, mean, std)]
        out = plain_tensor(guard.call(standardize, X, mean, std, *rest), "out")
        for name, t0, t in zip(
            ("X", "mean", "std"), before, (X, mean, std), strict=True
        ):
            expect_unchanged(t0, t, name, what)
        return out

    def train_stats_on_test() -> None:
        X_train, X_test = _data(60, 6, 30), _data(25, 6, 31) * 1.5 - 4.0
        mean, std = ref_pre.feature_mean_std(X_train)
        out = run(X_test, mean, std)
        expect_shape(out, X_test.shape, "out")
        expect_dtype_device(out, X_test, "out")
        m, s = ref_pre.feature_mean_std(X_test)
        hints = [
            (
                "you used the statistics of the data being transformed; use the "
                "training mean and std passed in as arguments",
                (X_test - m) / s,
            ),
            ("only zero-centered: divide by std as well", X_test - mean),
        ]
        close_with_hints(
            out,
            ref_pre.standardize(X_test, mean, std),
            "out for test data with the training statistics",
            hints,
        )

    def constant_feature() -> None:
        X_train = _data(30, 4, 40)
        X_train[:, 2] = 0.0  # a pixel that is always 0
        mean, std = ref_pre.feature_mean_std(X_train)
        X_test = _data(10, 4, 41)
        X_test[:, 2] = 0.0
        out = run(X_test, mean, std)
        if not torch.isfinite(out).all():
            raise Mistake(
                "a constant feature (std 0) gives NaN or inf: divide by "
                "max(std, eps) (std.clamp_min(eps)) so that it maps to 0"
            )
        expect_close(
            out, ref_pre.standardize(X_test, mean, std), "out with a constant feature"
        )
        out = run(X_test, mean, std, 0.5)  # eps is an argument, not a constant
        expect_close(
            out,
            ref_pre.standardize(X_test, mean, std, 0.5),
            "out with eps=0.5",
            hint="use the eps argument",
        )

    def float32_devices() -> None:
        X64, T64 = _data(40, 5, 50), _data(9, 5, 51)
        mean, std = ref_pre.feature_mean_std(X64)
        want = ref_pre.standardize(T64, mean, std)
        for device in devices():
            args = [t.float().to(device) for t in (T64, mean, std)]
            out = run(*args)
            expect_dtype_device(out, args[0], f"out ({device}, float32)")
            expect_close(out, want, f"out ({device}, float32)", tol=1e-5)

    g.check(
        "uses the training mean and std on new data", 1, train_stats_on_test, key=True
    )
    g.check(
        "a constant feature maps to 0, not NaN (the eps floor)", 1, constant_feature
    )
    g.check("float32 inputs, on every available device", 1, float32_devices)
    return guard.report(g)


def _align_signs(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Flip columns of ``got`` to best match ``want`` (axes are defined up to sign)."""
    dots = (got.double().cpu() * want.double().cpu()).sum(dim=0)  # (k,)
    signs = torch.where(dots < 0, -1.0, 1.0).to(got.dtype).to(got.device)
    return got * signs


@single_threaded
def grade_pca_fit(pca_fit: Callable) -> Report:
    """Grade ``pca_fit(X, num_components=None) -> (mean, components, variances)``."""
    what = "pca_fit"
    guard = Guard(PRE_RULES, what)
    g = Grader(what)
    names = ["mean", "components", "variances"]

    def run(X, *rest):
        before = X.clone()
        value = guard.call(pca_fit, X, *rest)
        expect_unchanged(before, X, "X", what)
        return unpack(value, names, what)

    def uncentered(X, k):
        cov = X.T @ X / X.shape[0]
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)[:k]
        return evals[order], evecs[:, order]

    def shapes() -> None:
        X = _data(50, 7, 60)
        mean, comps, var = run(X)
        expect_shape(mean, (7,), "mean")
        expect_shape(comps, (7, 7), "components")
        expect_shape(var, (7,), "variances")
        for name, t in zip(names, (mean, comps, var), strict=True):
            expect_dtype_device(t, X, name)

    def variances() -> None:
        for i, (n, d) in enumerate(PCA_SHAPES):
            X = _data(n, d, 70 + i)
            mean, _, var = run(X)
            want = ref_pre.pca_fit(X)
            expect_close(mean, want[0], f"mean (N={n}, D={d})")
            hints = [
                (
                    "PCA without centering: subtract the mean before the covariance, "
                    "otherwise the first axis points at the mean",
                    uncentered(X, d)[0],
                ),
                (
                    "the covariance divides by N (X.T @ X / N, as in the lecture), "
                    "not N - 1",
                    want[2] * n / (n - 1),
                ),
                (
                    "sort the eigenvalues in descending order (torch.linalg.eigh "
                    "returns them ascending)",
                    want[2].flip(0),
                ),
            ]
            close_with_hints(var, want[2], f"variances (N={n}, D={d})", hints)

    def components() -> None:
        for i, (n, d) in enumerate(PCA_SHAPES):
            X = _data(n, d, 80 + i)
            _, comps, _ = run(X)
            expect_shape(comps, (d, d), "components")
            want = ref_pre.pca_fit(X)[1]
            eye = torch.eye(d, dtype=torch.float64)
            gram = comps.double().cpu().T @ comps.double().cpu()
            if rel_error(gram, eye) > 1e-6:
                raise Mistake(
                    "the components are not orthonormal columns (components.T @ "
                    "components should be the identity)"
                )
            hints = [
                (
                    "PCA without centering: subtract the mean before the covariance",
                    _align_signs(uncentered(X, d)[1], want),
                ),
                (
                    "the axes must be the columns of components (D, k); yours look "
                    "like rows",
                    _align_signs(want.T.contiguous(), want),
                ),
                (
                    "sort the axes by decreasing variance (eigh returns ascending)",
                    _align_signs(want.flip(1), want),
                ),
            ]
            close_with_hints(
                _align_signs(comps, want),
                want,
                f"components (N={n}, D={d}, up to the sign of each column)",
                hints,
                tol=1e-6,
            )

    def top_k() -> None:
        X = _data(80, 9, 90)
        mean, comps, var = run(X, 3)
        want = ref_pre.pca_fit(X, 3)
        expect_shape(comps, (9, 3), "components with num_components=3")
        expect_shape(var, (3,), "variances with num_components=3")
        expect_close(
            var, want[2], "variances with num_components=3", hint="keep the 3 largest"
        )
        expect_close(
            _align_signs(comps, want[1]),
            want[1],
            "components with num_components=3 (up to sign)",
            tol=1e-6,
        )

    def float32_devices() -> None:
        X64 = _data(200, 6, 95)
        want = ref_pre.pca_fit(X64)
        for device in devices():
            X = X64.float().to(device)
            mean, comps, var = run(X)
            for name, t in zip(names, (mean, comps, var), strict=True):
                expect_dtype_device(t, X, f"{name} ({device}, float32)")
            expect_close(mean, want[0], f"mean ({device}, float32)", tol=1e-5)
            expect_close(var, want[2], f"variances ({device}, float32)", tol=1e-4)
            expect_close(
                _align_signs(comps, want[1]),
                want[1],
                f"components ({device}, float32, up to sign)",
                tol=1e-3,
            )

    g.check("returns (mean (D,), components (D, k), variances (k,))", 1, shapes)
    g.check(
        "mean and variances (descending) match the reference", 1, variances, key=True
    )
    g.check(
        "components: orthonormal principal axes, up to sign", 1, components, key=True
    )
    g.check("num_components keeps the top k axes", 1, top_k)
    g.check("float32 inputs, on every available device", 1, float32_devices)
    return guard.report(g)


@single_threaded
def grade_whiten(whiten: Callable) -> Report:
    """Grade ``whiten(X, mean, components, variances, eps=1e-5)``."""
    what = "whiten"
    guard = Guard(PRE_RULES, what)
    g = Grader(what)

    def run(X, mean, comps, var, *rest):
        before = [t.clone() for t in (X, mean, comps, var)]
        out = plain_tensor(guard.call(whiten, X, mean, comps, var, *rest), "out")
        for name, t0, t in zip(
            ("X", "mean", "components", "variances"),
            before,
            (X, mean, comps, var),
            strict=True,
        ):
            expect_unchanged(t0, t, name, what)
        return out

    def values() -> None:
        X_train, X_test = _data(100, 6, 100), _data(20, 6, 101)
        mean, comps, var = ref_pre.pca_fit(X_train)
        out = run(X_test, mean, comps, var)
        expect_shape(out, (20, 6), "out")
        expect_dtype_device(out, X_test, "out")
        rot = (X_test - mean) @ comps
        hints = [
            ("eps is missing: divide by sqrt(variances + eps)", rot / var.sqrt()),
            (
                "divide by the standard deviation sqrt(variances + eps), not by the "
                "variance",
                rot / (var + 1e-5),
            ),
            (
                "subtract the training mean before projecting",
                (X_test @ comps) / torch.sqrt(var + 1e-5),
            ),
            (
                "project on the components first: (X - mean) @ components",
                (X_test - mean) / torch.sqrt(var + 1e-5),
            ),
        ]
        close_with_hints(
            out,
            ref_pre.whiten(X_test, mean, comps, var),
            "out for test data with the training statistics",
            hints,
        )
        out = run(X_test, mean, comps, var, 0.3)
        expect_close(
            out,
            ref_pre.whiten(X_test, mean, comps, var, 0.3),
            "out with eps=0.3",
            hint="use the eps argument",
        )

    def zero_variance() -> None:
        # rank-deficient training data: the last direction has variance 0
        X_train = _data(60, 5, 110)
        X_train[:, 4] = 2.0 * X_train[:, 0] - X_train[:, 1]
        mean, comps, var = ref_pre.pca_fit(X_train)
        var = var.clone()
        var[-1] = 0.0  # exactly, as eigh may leave 1e-15
        X_test = _data(10, 5, 111)  # not on the training subspace
        out = run(X_test, mean, comps, var)
        if not torch.isfinite(out).all():
            raise Mistake(
                "a direction of zero variance gives inf or NaN: whitening divides "
                "by sqrt(variances + eps); the eps keeps noise directions finite"
            )
        expect_close(
            out,
            ref_pre.whiten(X_test, mean, comps, var),
            "out with a zero-variance direction",
            hint="divide by sqrt(variances + eps)",
        )

    def identity_cov_devices() -> None:
        X64 = _data(300, 6, 120)
        mean, comps, var = ref_pre.pca_fit(X64)
        for device in devices():
            args = [t.float().to(device) for t in (X64, mean, comps, var)]
            out = run(*args)
            expect_dtype_device(out, args[0], f"out ({device}, float32)")
            cov = out.double().cpu().T @ out.double().cpu() / out.shape[0]
            want = torch.diag(var / (var + 1e-5))
            expect_close(
                cov,
                want,
                f"covariance of whitened training data ({device}, float32)",
                tol=1e-3,
                hint="whitened training data has (almost) the identity covariance",
            )

    g.check("test data whitened with the training statistics", 1, values, key=True)
    g.check("a zero-variance direction stays finite (eps)", 1, zero_variance)
    g.check(
        "identity covariance on the training data; float32 on every device",
        1,
        identity_cov_devices,
        key=True,
    )
    return guard.report(g)


# ====================================================================
# initializers


def _reference_copies() -> dict[str, Callable]:
    """calculate_gain, compute_fans, _kaiming_std compiled outside trainlab's files.

    They stand in for the student's helpers while a dependent cell is graded;
    the guard does not count them as calls into the reference.
    """
    ns = dict(vars(ref_init))
    for name in ("calculate_gain", "compute_fans", "_kaiming_std"):
        src = textwrap.dedent(inspect.getsource(getattr(ref_init, name)))
        code = compile(
            "from __future__ import annotations\n" + src,
            "<grader copy of trainlab.init>",
            "exec",
        )
        exec(code, ns)  # noqa: S102
    return {n: ns[n] for n in ("calculate_gain", "compute_fans", "_kaiming_std")}


_COPIES = _reference_copies()


@contextlib.contextmanager
def reference_helpers(fn: Callable, names: Sequence[str]) -> Iterator[None]:
    """Temporarily point ``fn``'s global ``names`` at the reference helpers."""
    space = getattr(fn, "__globals__", None)
    saved: dict[str, Any] = {}
    if isinstance(space, dict):
        for name in names:
            if name in space:
                saved[name] = space[name]
                space[name] = _COPIES[name]
    try:
        yield
    finally:
        for name, value in saved.items():
            space[name] = value


def _probe_fans(f: Callable) -> bool:
    return all(
        tuple(f(shape)) == tuple(ref_init.compute_fans(shape))
        for shape in ((300, 70), (8, 3, 5, 5), (4, 6, 3))
    )


def _probe_gain(f: Callable) -> bool:
    cases = (("relu", None), ("tanh", None), ("leaky_relu", 0.2), ("linear", None))
    return all(
        math.isclose(float(f(n, p)), torch.nn.init.calculate_gain(n, p), rel_tol=1e-9)
        for n, p in cases
    )


def _probe_std(f: Callable) -> bool:
    cases = (
        ((300, 70), 0.0, "fan_in", "relu"),
        ((8, 3, 5, 5), 0.2, "fan_out", "leaky_relu"),
    )
    return all(
        math.isclose(float(f(*c)), ref_init._kaiming_std(*c), rel_tol=1e-9)
        for c in cases
    )


#: the helpers an initializer is built on, and how to tell that one is right
HELPER_PROBES = {
    "compute_fans": _probe_fans,
    "calculate_gain": _probe_gain,
    "_kaiming_std": _probe_std,
}


def blame_helpers(
    report: Report, what: str, names: Sequence[str], helpers: dict | None
) -> Report:
    """Say which wrong helper of the student's explains a cell's lost points.

    ``helpers`` is the notebook's namespace (the hidden test passes
    ``globals()``); each named helper the student defined is tried against the
    reference on a few inputs. A cell that lost points and uses a wrong helper
    says so in every failed check, so that one slip in ``compute_fans`` does not
    read as several unexplained mistakes.
    """
    if not helpers or report.passed:
        return report
    wrong = []
    for name in names:
        fn = helpers.get(name)
        if fn is None or not callable(fn):
            continue
        try:
            with torch.no_grad():
                right = HELPER_PROBES[name](fn)
        except Exception:  # noqa: BLE001 - a helper that raises is not right
            right = False
        if not right:
            wrong.append(name)
    if not wrong:
        return report
    listed = " and ".join(wrong)
    note = (
        f"Note: your {listed} {'is' if len(wrong) == 1 else 'are'} wrong (see "
        f"{'its' if len(wrong) == 1 else 'their'} own cell), and {what} uses "
        f"{'it' if len(wrong) == 1 else 'them'}: fix {listed} first; this cell "
        "may then pass as it is."
    )
    from autograder.checks.core import CheckResult

    results = [
        r
        if r.passed
        else CheckResult(r.name, r.points, r.max_points, f"{r.message}\n{note}")
        for r in report.results
    ]
    return Report(report.title, results)


# ------------------------------------------------------------ calculate_gain


@single_threaded
def grade_calculate_gain(calculate_gain: Callable) -> Report:
    """Grade ``calculate_gain(nonlinearity, param=None) -> float``."""
    what = "calculate_gain"
    guard = Guard(INIT_RULES, what)
    g = Grader(what)

    def expect_gain(args: tuple, message: str) -> None:
        got = _number(guard.call(calculate_gain, *args), f"calculate_gain{args}")
        want = torch.nn.init.calculate_gain(*args)
        if not math.isclose(got, want, rel_tol=1e-12):
            raise Mistake(
                f"calculate_gain{args!r} returned {got:.6g}; expected {want:.6g}. "
                f"{message}"
            )

    def ones() -> None:
        for name in (
            "linear",
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
            "sigmoid",
        ):
            expect_gain(
                (name,), "Linear layers, convolutions and the sigmoid have gain 1."
            )

    def tanh_relu() -> None:
        expect_gain(
            ("relu",),
            "The gain for relu is sqrt(2): relu zeroes half of "
            "its inputs, which halves the second moment.",
        )
        expect_gain(("tanh",), "The gain for tanh is 5/3.")
        expect_gain(("selu",), "The gain for selu is 3/4.")

    def leaky() -> None:
        msg = (
            "The gain for leaky_relu is sqrt(2 / (1 + a**2)) with a = param, the "
            "negative slope; param None means torch's default slope 0.01."
        )
        for args in (
            ("leaky_relu", 0.2),
            ("leaky_relu", 0.0),
            ("leaky_relu",),
            ("leaky_relu", None),
            ("leaky_relu", 3),
        ):
            expect_gain(args, msg)

    def unknown() -> None:
        _expect_raises(
            guard,
            calculate_gain,
            ("softmax",),
            ValueError,
            "calculate_gain('softmax')",
            "for an unknown nonlinearity, with a message naming it",
        )

    g.check("gain 1 for linear, convolutions and sigmoid", 1, ones)
    g.check("gain sqrt(2) for relu, 5/3 for tanh, 3/4 for selu", 1, tanh_relu, key=True)
    g.check(
        "leaky_relu: sqrt(2 / (1 + a^2)), a = 0.01 when param is None",
        1,
        leaky,
        key=True,
    )
    g.check("an unknown nonlinearity raises ValueError", 1, unknown)
    return guard.report(g)


# -------------------------------------------------------------- compute_fans


@single_threaded
def grade_compute_fans(compute_fans: Callable) -> Report:
    """Grade ``compute_fans(shape) -> (fan_in, fan_out)``."""
    what = "compute_fans"
    guard = Guard(INIT_RULES, what)
    g = Grader(what)

    def fans(shape: tuple[int, ...]) -> tuple[int, int]:
        value = guard.call(compute_fans, shape)
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise Mistake(
                f"compute_fans{shape} should return a pair (fan_in, "
                f"fan_out); got {value!r}"
            )
        return _int(value[0], "fan_in"), _int(value[1], "fan_out")

    def expect(shape: tuple[int, ...], hints: dict[tuple[int, int], str]) -> None:
        got = fans(shape)
        want = ref_init.compute_fans(shape)
        if got != want:
            msg = (
                f"compute_fans({shape}) returned {got}; expected {want} "
                "(fan_in, fan_out)"
            )
            if got in hints:
                msg += f"\nLikely mistake: {hints[got]}"
            raise Mistake(msg)

    def linear() -> None:
        for d_in, d_out in ((300, 100), (7, 4), (4, 7)):
            expect(
                (d_in, d_out),
                {
                    (d_out, d_in): (
                        "for the lecture layout W (D_in, D_out), y = x @ W, fan_in is "
                        "shape[0]; you used shape[1], torch's nn.Linear convention "
                        "(it stores (D_out, D_in)); a Kaiming std from this matches "
                        "fan_out, not fan_in"
                    ),
                },
            )

    def conv2d() -> None:
        for shape in ((64, 16, 3, 5), (8, 3, 7, 7)):
            c_out, c_in, kh, kw = shape
            expect(
                shape,
                {
                    (c_in, c_out): "conv fan-in must include the kernel size: "
                    "fan_in = C_in * kH * kW, fan_out = C_out * kH * kW",
                    (c_in * kh, c_out * kh): "multiply by every kernel dimension: "
                    "C_in * kH * kW",
                    (c_out * kh * kw, c_in * kh * kw): "for (C_out, C_in, kH, kW) the "
                    "fan-in uses C_in (dimension 1); you swapped fan_in and fan_out",
                },
            )

    def other_convs() -> None:
        for shape in ((6, 4, 5), (5, 2, 3, 3, 3), (10, 20, 1, 1)):
            expect(
                shape,
                {
                    (shape[1], shape[0]): "conv fan-in must include the kernel size: "
                    "C_in times the product of the kernel dimensions",
                },
            )

    def error() -> None:
        _expect_raises(
            guard,
            compute_fans,
            ((5,),),
            ValueError,
            "compute_fans((5,))",
            "(a bias has no fan-in and fan-out)",
        )

    g.check("linear weights in the lecture layout (D_in, D_out)", 2, linear, key=True)
    g.check(
        "conv weights (C_out, C_in, kH, kW): the kernel size counts",
        2,
        conv2d,
        key=True,
    )
    g.check("1-D and 3-D convolutions, 1x1 kernels", 1, other_convs)
    g.check("fewer than 2 dimensions raises ValueError", 1, error)
    return guard.report(g)


# -------------------------------------------------------------- _kaiming_std


@single_threaded
def grade_kaiming_std(_kaiming_std: Callable, helpers: dict | None = None) -> Report:
    """Grade ``_kaiming_std(dims, a, mode, nonlinearity) -> float``.

    ``helpers``: the notebook's namespace, to name a wrong helper as the cause.
    """
    return blame_helpers(
        _grade_kaiming_std(_kaiming_std),
        "_kaiming_std",
        ("compute_fans", "calculate_gain"),
        helpers,
    )


def _grade_kaiming_std(_kaiming_std: Callable) -> Report:
    what = "_kaiming_std"
    guard = Guard(INIT_RULES, what)
    g = Grader(what)

    def std(dims, a, mode, nonlinearity) -> float:
        with reference_helpers(_kaiming_std, ("compute_fans", "calculate_gain")):
            value = guard.call(_kaiming_std, dims, a, mode, nonlinearity)
        return _number(value, "the std")

    def expect(dims, a, mode, nonlinearity) -> None:
        got = std(dims, a, mode, nonlinearity)
        want = ref_init._kaiming_std(dims, a, mode, nonlinearity)
        if math.isclose(got, want, rel_tol=1e-12):
            return
        fan_in, fan_out = ref_init.compute_fans(dims)
        fan = fan_in if mode == "fan_in" else fan_out
        other = fan_out if mode == "fan_in" else fan_in
        gain = ref_init.calculate_gain(nonlinearity, a)
        candidates = [
            (
                gain / math.sqrt(other),
                f"the std matches {'fan_out' if mode == 'fan_in' else 'fan_in'}, "
                f"not {mode}",
            ),
            (
                1.0 / math.sqrt(fan),
                f"the gain is missing (the gain for {nonlinearity} "
                f"is {gain:.6g}; for relu it is sqrt(2))",
            ),
            (gain / fan, "std = gain / sqrt(fan): the square root is missing"),
            (
                gain**2 / fan,
                "this is the variance gain**2 / fan; the std is its square root",
            ),
            (
                gain * math.sqrt(2.0 / (fan_in + fan_out)),
                "that is the Xavier formula; Kaiming uses gain / sqrt(fan)",
            ),
        ]
        msg = (
            f"_kaiming_std{(dims, a, mode, nonlinearity)!r} returned {got:.6g}; "
            f"expected {want:.6g} = gain / sqrt({mode}) = {gain:.6g} / "
            f"sqrt({fan})"
        )
        for value, text in candidates:
            if math.isclose(got, value, rel_tol=1e-9):
                msg += f"\nLikely mistake: {text}"
                break
        raise Mistake(msg)

    g.check(
        "relu, fan_in, linear (D_in, D_out): sqrt(2 / D_in)",
        1,
        lambda: [
            expect((800, 200), 0.0, "fan_in", "relu"),
            expect((30, 70), 0.0, "fan_in", "relu"),
        ],
        key=True,
    )
    g.check("mode='fan_out'", 1, lambda: expect((800, 200), 0.0, "fan_out", "relu"))
    g.check(
        "leaky_relu with slope a, tanh, and the default leaky_relu(0)",
        1,
        lambda: [
            expect((50, 20), 0.2, "fan_in", "leaky_relu"),
            expect((50, 20), 0.0, "fan_in", "tanh"),
            expect((50, 20), 0.0, "fan_in", "leaky_relu"),
        ],
        key=True,
    )
    g.check(
        "conv weights (C_out, C_in, kH, kW)",
        1,
        lambda: [
            expect((64, 16, 3, 3), 0.0, "fan_in", "relu"),
            expect((64, 16, 3, 3), 0.0, "fan_out", "relu"),
        ],
        key=True,
    )
    g.check(
        "a mode other than fan_in / fan_out raises ValueError",
        1,
        lambda: _expect_raises(
            guard,
            _kaiming_std,
            ((5, 3), 0.0, "fan_avg", "relu"),
            ValueError,
            "_kaiming_std(..., mode='fan_avg', ...)",
            "naming the allowed modes",
        ),
    )
    return guard.report(g)


# --------------------------------------------------------------- initializers

#: large draws for statistics: linear (D_in != D_out) and conv
STAT_SHAPES = [(800, 200), (128, 32, 3, 3)]
#: shapes for the comparison with torch.nn.init
TORCH_SHAPES = [(7, 4), (4, 7), (300, 100), (8, 3, 5, 5), (6, 4, 3)]


def _torch_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[0]) if len(shape) == 2 else shape


def _from_torch(t: torch.Tensor) -> torch.Tensor:
    return t.T.contiguous() if t.dim() == 2 else t


class _Init:
    """How to call, compare and describe one initializer."""

    def __init__(
        self,
        name: str,
        torch_fn: Callable[..., torch.Tensor],
        uniform: bool,
        options: list[dict[str, Any]],
        std: Callable[[tuple[int, ...], dict[str, Any]], float],
        wrong: Callable[[tuple[int, ...], dict[str, Any]], list[tuple[float, str]]],
    ) -> None:
        self.name = name
        self.torch_fn = torch_fn
        self.uniform = uniform
        self.options = options
        self.std = std
        self.wrong = wrong

    def torch_draw(self, shape, kwargs, seed, dtype, device) -> torch.Tensor:
        w = torch.empty(_torch_layout(shape), dtype=dtype, device=device)
        g = seeds.gen(seed, device)
        self.torch_fn(w, **kwargs, generator=g)
        return _from_torch(w)


def _xavier_wrong(shape, kw) -> list[tuple[float, str]]:
    fan_in, fan_out = ref_init.compute_fans(shape)
    gain = kw.get("gain", 1.0)
    c_in = shape[1]
    return [
        (
            gain / math.sqrt(fan_in),
            "that is the lecture's shortcut 1/sqrt(fan_in); "
            "Xavier (Glorot) uses std = gain * sqrt(2 / (fan_in + fan_out))",
        ),
        (
            gain * math.sqrt(1.0 / (fan_in + fan_out)),
            "Xavier's std is gain * "
            "sqrt(2 / (fan_in + fan_out)): the factor 2 is missing",
        ),
        (
            gain * math.sqrt(6.0 / (fan_in + fan_out)),
            "gain * sqrt(6 / (fan_in + fan_out)) is the uniform bound, not the std",
        ),
        (math.sqrt(2.0 / (fan_in + fan_out)), "the gain is missing"),
        (
            gain * math.sqrt(2.0 / (c_in + shape[0])),
            "conv fans must include the "
            "kernel size: C_in * kH * kW and C_out * kH * kW",
        ),
    ]


def _kaiming_wrong(shape, kw) -> list[tuple[float, str]]:
    fan_in, fan_out = ref_init.compute_fans(shape)
    mode = kw.get("mode", "fan_in")
    fan, other = (fan_in, fan_out) if mode == "fan_in" else (fan_out, fan_in)
    gain = ref_init.calculate_gain(
        kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0.0)
    )
    kernel = math.prod(shape[2:]) if len(shape) > 2 else 1
    return [
        (
            gain / math.sqrt(other),
            f"the std matches "
            f"{'fan_out' if mode == 'fan_in' else 'fan_in'}, not {mode}",
        ),
        (
            gain / math.sqrt(fan / kernel) if kernel > 1 else -1.0,
            "conv fan-in must include the kernel size C_in*kH*kW",
        ),
        (1.0 / math.sqrt(fan), "the gain is missing: the gain for relu is sqrt(2)"),
        (
            gain * math.sqrt(2.0 / (fan_in + fan_out)),
            "that is the Xavier formula; Kaiming uses gain / sqrt(fan)",
        ),
    ]


XAVIER_OPTIONS = [{"gain": 1.0}, {"gain": 5.0 / 3.0}]
KAIMING_OPTIONS = [
    {"nonlinearity": "relu"},
    {"a": 0.2, "nonlinearity": "leaky_relu"},
    {"mode": "fan_out", "nonlinearity": "relu"},
    {"nonlinearity": "tanh"},
]


def _xavier_std(shape, kw) -> float:
    fan_in, fan_out = ref_init.compute_fans(shape)
    return kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))


def _kaiming_std_of(shape, kw) -> float:
    return ref_init._kaiming_std(
        tuple(shape),
        kw.get("a", 0.0),
        kw.get("mode", "fan_in"),
        kw.get("nonlinearity", "leaky_relu"),
    )


XAVIER_NORMAL = _Init(
    "xavier_normal",
    torch.nn.init.xavier_normal_,
    False,
    XAVIER_OPTIONS,
    _xavier_std,
    _xavier_wrong,
)
XAVIER_UNIFORM = _Init(
    "xavier_uniform",
    torch.nn.init.xavier_uniform_,
    True,
    XAVIER_OPTIONS,
    _xavier_std,
    _xavier_wrong,
)
KAIMING_NORMAL = _Init(
    "kaiming_normal",
    torch.nn.init.kaiming_normal_,
    False,
    KAIMING_OPTIONS,
    _kaiming_std_of,
    _kaiming_wrong,
)
KAIMING_UNIFORM = _Init(
    "kaiming_uniform",
    torch.nn.init.kaiming_uniform_,
    True,
    KAIMING_OPTIONS,
    _kaiming_std_of,
    _kaiming_wrong,
)


def _grade_init(spec: _Init, fn: Callable) -> Report:
    what = spec.name
    guard = Guard(INIT_RULES, what)
    g = Grader(what)
    helpers = ("compute_fans", "calculate_gain", "_kaiming_std")

    def draw(shape, **kwargs) -> torch.Tensor:
        with reference_helpers(fn, helpers):
            value = guard.call(fn, shape, **kwargs)
        return plain_tensor(value, "the weight")

    def seeded(shape, kw, seed, dtype=None, device="cpu") -> torch.Tensor:
        g_ = seeds.gen(seed, device)
        extra = {} if dtype is None else {"dtype": dtype}
        return draw(shape, **kw, generator=g_, **extra)

    def describe_stats(w: torch.Tensor, shape, kw) -> str:
        """A sentence on what the statistics of ``w`` look like, if wrong."""
        w = w.double().cpu()
        want = spec.std(shape, kw)
        got = (w.abs().max() / math.sqrt(3.0)) if spec.uniform else w.std()
        got = float(got)
        kind = "bound / sqrt(3)" if spec.uniform else "std"
        if abs(got / want - 1.0) < 0.03:
            return ""
        text = (
            f"the {kind} of a large draw of shape {shape} with {kw} is "
            f"{got:.4g}; expected {want:.4g}"
        )
        if spec.uniform and abs(got / (want / math.sqrt(3.0)) - 1.0) < 0.03:
            return text + (
                "\nLikely mistake: the uniform bound is sqrt(3) * std "
                "(U(-b, b) has variance b**2 / 3)"
            )
        for value, hint in spec.wrong(shape, kw):
            if value > 0 and abs(got / value - 1.0) < 0.03:
                return text + f"\nLikely mistake: {hint}"
        return text

    def basics() -> None:
        for shape in ((7, 4), (8, 3, 5, 5)):
            w = seeded(shape, spec.options[0], 1)
            expect_shape(w, shape, f"{what}({shape})")
            if w.dtype != torch.get_default_dtype():
                raise Mistake(
                    f"{what}({shape}) has dtype {w.dtype}; expected "
                    f"{torch.get_default_dtype()} (the default dtype) "
                    "when dtype is None"
                )
            w64 = seeded(shape, spec.options[0], 1, dtype=torch.float64)
            if w64.dtype != torch.float64:
                raise Mistake(
                    f"{what}(..., dtype=torch.float64) has dtype "
                    f"{w64.dtype}; pass dtype on to the draw"
                )
        w = draw((5, 3), **spec.options[0])  # generator None: torch's global one
        expect_shape(w, (5, 3), f"{what}((5, 3)) without a generator")

    def same_as_torch() -> None:
        for device in devices():
            for i, shape in enumerate(TORCH_SHAPES):
                kw = spec.options[0]
                for dtype in (torch.float32, torch.float64):
                    w = seeded(shape, kw, 10 + i, dtype=dtype, device=device)
                    if w.device.type != device.type:
                        raise Mistake(
                            f"{what} with a generator on {device} returned "
                            f"a tensor on {w.device}; draw on the "
                            "generator's device"
                        )
                    want = spec.torch_draw(shape, kw, 10 + i, dtype, device)
                    expect_shape(w, shape, f"{what}({shape})")
                    tol = 1e-14 if dtype == torch.float64 else 1e-6
                    if torch.equal(w, want) or rel_error(w, want) <= tol:
                        continue
                    msg = (
                        f"{what}({shape}, generator=...) on {device} in {dtype} "
                        f"does not draw the numbers torch.nn.init.{what}_ draws "
                        f"with the same generator on the {_torch_layout(shape)} "
                        "layout"
                    )
                    stats = describe_stats(
                        seeded(STAT_SHAPES[0], kw, 3), STAT_SHAPES[0], kw
                    )
                    if stats:
                        msg += f"; {stats}"
                    elif len(shape) == 2:
                        msg += (
                            ". The std looks right: draw into a (D_out, D_in) "
                            "tensor as torch does and return its transpose "
                            "(the _normal / _uniform helpers do that)"
                        )
                    raise Mistake(msg)

    def statistics() -> None:
        for shape in STAT_SHAPES:
            for kw in spec.options[:1]:
                w = seeded(shape, kw, 20)
                text = describe_stats(w, shape, kw)
                if text:
                    raise Mistake(text)
                mean = float(w.double().mean())
                if abs(mean) > 6 * spec.std(shape, kw) / math.sqrt(w.numel()):
                    raise Mistake(
                        f"the mean of a large draw is {mean:.3g}; expected about 0"
                    )
                if spec.uniform:
                    bound = math.sqrt(3.0) * spec.std(shape, kw)
                    if float(w.abs().max()) > bound * (1 + 1e-6):
                        raise Mistake(
                            f"entries reach {float(w.abs().max()):.4g}, "
                            f"beyond the bound {bound:.4g}"
                        )

    def options() -> None:
        for i, kw in enumerate(spec.options[1:]):
            for shape in ((30, 70), (8, 3, 5, 5)):
                w = seeded(shape, kw, 30 + i, dtype=torch.float64)
                want = spec.torch_draw(shape, kw, 30 + i, torch.float64, "cpu")
                if rel_error(w, want) <= 1e-14:
                    continue
                args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
                msg = f"{what}({shape}, {args}) differs from torch.nn.init.{what}_"
                stats = describe_stats(
                    seeded(STAT_SHAPES[0], kw, 4), STAT_SHAPES[0], kw
                )
                raise Mistake(msg + (f"; {stats}" if stats else ""))

    g.check(
        "returns a new tensor of the given shape; dtype and generator honored",
        1,
        basics,
    )
    g.check(
        f"the same numbers as torch.nn.init.{what}_ with the same generator "
        "(linear and conv layouts, float32 and float64, every device)",
        2,
        same_as_torch,
        key=True,
    )
    g.check("statistics of large draws (linear and conv)", 1, statistics, key=True)
    g.check(
        "the other arguments: "
        + ", ".join(
            ", ".join(f"{k}={v!r}" for k, v in kw.items()) for kw in spec.options[1:]
        ),
        1,
        options,
    )
    return guard.report(g)


@single_threaded
def grade_xavier_normal(xavier_normal: Callable, helpers: dict | None = None) -> Report:
    """Grade ``xavier_normal(shape, gain=1.0, *, generator, dtype, device)``."""
    return blame_helpers(
        _grade_init(XAVIER_NORMAL, xavier_normal),
        "xavier_normal",
        ("compute_fans",),
        helpers,
    )


@single_threaded
def grade_xavier_uniform(
    xavier_uniform: Callable, helpers: dict | None = None
) -> Report:
    """Grade ``xavier_uniform(shape, gain=1.0, *, generator, dtype, device)``."""
    return blame_helpers(
        _grade_init(XAVIER_UNIFORM, xavier_uniform),
        "xavier_uniform",
        ("compute_fans",),
        helpers,
    )


@single_threaded
def grade_kaiming_normal(
    kaiming_normal: Callable, helpers: dict | None = None
) -> Report:
    """Grade ``kaiming_normal(shape, a, mode, nonlinearity, *, generator, ...)``."""
    helpers_used = ("compute_fans", "calculate_gain", "_kaiming_std")
    return blame_helpers(
        _grade_init(KAIMING_NORMAL, kaiming_normal),
        "kaiming_normal",
        helpers_used,
        helpers,
    )


@single_threaded
def grade_kaiming_uniform(
    kaiming_uniform: Callable, helpers: dict | None = None
) -> Report:
    """Grade ``kaiming_uniform(shape, a, mode, nonlinearity, *, generator, ...)``."""
    helpers_used = ("compute_fans", "calculate_gain", "_kaiming_std")
    return blame_helpers(
        _grade_init(KAIMING_UNIFORM, kaiming_uniform),
        "kaiming_uniform",
        helpers_used,
        helpers,
    )
