"""The preprocessing and initializer checks: right answers, wrong answers, cheats."""

from __future__ import annotations

import math

import pytest

import autograder.checks.preprocessing_init as checks
import trainlab.init as ref_init
import trainlab.preprocessing as ref_pre
from autograder.checks.core import Report
from tests.autograder.notebook_copy import copy_functions, define, notebook_namespace
from trainlab._validate import check_tensor

pytestmark = [pytest.mark.grader, pytest.mark.preprocessing, pytest.mark.init]

# grade function name -> the notebook function it grades
CELLS = {
    "feature_mean_std": "feature_mean_std",
    "standardize": "standardize",
    "pca_fit": "pca_fit",
    "whiten": "whiten",
    "calculate_gain": "calculate_gain",
    "compute_fans": "compute_fans",
    "kaiming_std": "_kaiming_std",
    "xavier_normal": "xavier_normal",
    "xavier_uniform": "xavier_uniform",
    "kaiming_normal": "kaiming_normal",
    "kaiming_uniform": "kaiming_uniform",
}
POINTS = {
    "feature_mean_std": 3,
    "standardize": 3,
    "pca_fit": 5,
    "whiten": 3,
    "calculate_gain": 4,
    "compute_fans": 6,
    "kaiming_std": 5,
    "xavier_normal": 5,
    "xavier_uniform": 5,
    "kaiming_normal": 5,
    "kaiming_uniform": 5,
}


def solution() -> dict:
    """The reference functions, defined as the solution notebook defines them."""
    names = checks.INIT_HELPERS + checks.INIT_CONSTANTS
    ns = notebook_namespace(
        math=math,
        check_tensor=check_tensor,
        **{n: getattr(ref_init, n) for n in names},
    )
    return copy_functions(
        ns,
        ref_pre.feature_mean_std,
        ref_pre.standardize,
        ref_pre.pca_fit,
        ref_pre.whiten,
        ref_init.calculate_gain,
        ref_init.compute_fans,
        ref_init._kaiming_std,
        ref_init.xavier_normal,
        ref_init.xavier_uniform,
        ref_init.kaiming_normal,
        ref_init.kaiming_uniform,
    )


def grade(ns: dict, cell: str) -> Report:
    return getattr(checks, f"grade_{cell}")(ns[CELLS[cell]])


def messages(report: Report) -> str:
    return "\n".join(r.message for r in report.results)


def failed(report: Report) -> list[str]:
    return [r.name for r in report.results if not r.passed]


@pytest.fixture(scope="module")
def sol() -> dict:
    return solution()


@pytest.mark.parametrize("cell", list(CELLS))
def test_solution_full_marks(sol, cell):
    report = grade(sol, cell)
    assert report.passed, str(report)
    assert report.max_score == POINTS[cell]


@pytest.mark.parametrize("cell", list(CELLS))
def test_not_implemented_scores_zero(cell):
    ns = solution()
    define(
        ns,
        f"""
        def {CELLS[cell]}(*args, **kwargs):
            raise NotImplementedError()
        """,
    )
    report = grade(ns, cell)
    assert report.score == 0
    assert "not implemented" in messages(report)


@pytest.mark.parametrize("cell", list(CELLS))
def test_reference_objects_score_zero(cell):
    module = (
        ref_pre
        if cell in ("feature_mean_std", "standardize", "pca_fit", "whiten")
        else ref_init
    )
    report = getattr(checks, f"grade_{cell}")(getattr(module, CELLS[cell]))
    assert report.score == 0, str(report)
    assert "reference implementation trainlab." in messages(report)


# (cell, wrong source, failing check prefix, text in the message)
WRONG = [
    pytest.param(
        "feature_mean_std",
        """
        def feature_mean_std(X):
            return X.mean(dim=0), X.std(dim=0)
        """,
        "mean and the biased std",
        "unbiased std",
        id="unbiased-std",
    ),
    pytest.param(
        "feature_mean_std",
        """
        def feature_mean_std(X):
            return X.mean(dim=1), X.std(dim=1, correction=0)
        """,
        "returns (mean, std)",
        "reduce over dimension 0",
        id="wrong-axis",
    ),
    pytest.param(
        "standardize",
        """
        def standardize(X, mean, std, eps=1e-8):
            return (X - X.mean(0)) / X.std(0, correction=0)
        """,
        "uses the training mean",
        "training mean and std passed in",
        id="standardize-own-statistics",
    ),
    pytest.param(
        "standardize",
        """
        def standardize(X, mean, std, eps=1e-8):
            return (X - mean) / std
        """,
        "a constant feature",
        "max(std, eps)",
        id="standardize-no-eps",
    ),
    pytest.param(
        "pca_fit",
        """
        def pca_fit(X, num_components=None):
            N, D = X.shape
            k = D if num_components is None else num_components
            mean = X.mean(dim=0)
            cov = X.T @ X / N
            evals, evecs = torch.linalg.eigh(cov)
            order = torch.argsort(evals, descending=True)[:k]
            return mean, evecs[:, order], evals[order]
        """,
        "mean and variances",
        "PCA without centering",
        id="pca-without-centering",
    ),
    pytest.param(
        "pca_fit",
        """
        def pca_fit(X, num_components=None):
            N, D = X.shape
            k = D if num_components is None else num_components
            mean = X.mean(dim=0)
            Xc = X - mean
            evals, evecs = torch.linalg.eigh(Xc.T @ Xc / N)
            return mean, evecs[:, :k], evals[:k]
        """,
        "mean and variances",
        "descending order",
        id="pca-ascending",
    ),
    pytest.param(
        "whiten",
        """
        def whiten(X, mean, components, variances, eps=1e-5):
            return (X - mean) @ components / torch.sqrt(variances)
        """,
        "a zero-variance direction",
        "eps keeps noise directions finite",
        id="whiten-without-eps",
    ),
    pytest.param(
        "calculate_gain",
        """
        def calculate_gain(nonlinearity, param=None):
            if nonlinearity == "tanh":
                return 5.0 / 3
            if nonlinearity == "selu":
                return 0.75
            if nonlinearity == "leaky_relu":
                slope = 0.01 if param is None else param
                return math.sqrt(2.0 / (1 + slope**2))
            if nonlinearity in _NONLINEARITIES:
                return 1.0
            raise ValueError(nonlinearity)
        """,
        "gain sqrt(2) for relu",
        "gain for relu is sqrt(2)",
        id="relu-gain-1",
    ),
    pytest.param(
        "compute_fans",
        """
        def compute_fans(shape):
            dims = tuple(shape)
            if len(dims) < 2:
                raise ValueError("need 2 dims")
            if len(dims) == 2:
                return dims[1], dims[0]
            k = math.prod(dims[2:])
            return dims[1] * k, dims[0] * k
        """,
        "linear weights in the lecture layout",
        "matches fan_out, not fan_in",
        id="fans-torch-linear-layout",
    ),
    pytest.param(
        "compute_fans",
        """
        def compute_fans(shape):
            dims = tuple(shape)
            if len(dims) < 2:
                raise ValueError("need 2 dims")
            if len(dims) == 2:
                return dims[0], dims[1]
            return dims[1], dims[0]
        """,
        "conv weights",
        "conv fan-in must include the kernel size",
        id="fans-without-kernel",
    ),
    pytest.param(
        "kaiming_std",
        """
        def _kaiming_std(dims, a, mode, nonlinearity):
            if mode not in ("fan_in", "fan_out"):
                raise ValueError(mode)
            fan_in, fan_out = compute_fans(dims)
            return calculate_gain(nonlinearity, a) / math.sqrt(fan_out)
        """,
        "relu, fan_in",
        "the std matches fan_out, not fan_in",
        id="kaiming-with-fan-out",
    ),
    pytest.param(
        "kaiming_normal",
        """
        def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                           *, generator=None, dtype=None, device=None):
            dims = _as_shape(shape)
            fan = dims[1] if len(dims) > 2 else (dims[0] if mode == "fan_in"
                                                 else dims[1])
            std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
            return _normal(dims, std, generator, dtype, device)
        """,
        "the same numbers as torch",
        "conv fan-in must include the kernel size C_in*kH*kW",
        id="kaiming-without-kernel-inline",
    ),
    pytest.param(
        "xavier_normal",
        """
        def xavier_normal(shape, gain=1.0, *, generator=None, dtype=None,
                          device=None):
            dims = _as_shape(shape)
            fan_in, fan_out = compute_fans(dims)
            return _normal(dims, gain / math.sqrt(fan_in), generator, dtype, device)
        """,
        "the same numbers as torch",
        "Xavier (Glorot) uses std = gain * sqrt(2 / (fan_in + fan_out))",
        id="xavier-wrong-formula",
    ),
    pytest.param(
        "xavier_uniform",
        """
        def xavier_uniform(shape, gain=1.0, *, generator=None, dtype=None,
                           device=None):
            dims = _as_shape(shape)
            fan_in, fan_out = compute_fans(dims)
            std = gain * math.sqrt(2.0 / (fan_in + fan_out))
            return _uniform(dims, std, generator, dtype, device)
        """,
        "the same numbers as torch",
        "the uniform bound is sqrt(3) * std",
        id="uniform-bound-is-std",
    ),
    pytest.param(
        "kaiming_normal",
        """
        def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                           *, generator=None, dtype=None, device=None):
            dims = _as_shape(shape)
            std = _kaiming_std(dims, a, mode, nonlinearity)
            if dtype is None:
                dtype = torch.get_default_dtype()
            if device is None and generator is not None:
                device = generator.device
            w = torch.empty(dims, dtype=dtype, device=device)
            return w.normal_(0.0, std, generator=generator)
        """,
        "the same numbers as torch",
        "draw into a (D_out, D_in) tensor",
        id="kaiming-lecture-layout-draw",
    ),
]


@pytest.mark.parametrize(("cell", "source", "check", "text"), WRONG)
def test_wrong_answer_loses_points_of_its_cell_only(sol, cell, source, check, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, cell)
    lost = failed(report)
    assert any(n.startswith(check) for n in lost), str(report)
    assert report.score < report.max_score
    assert text in messages(report), str(report)
    for other in CELLS:
        if other != cell:
            assert grade(ns, other).passed, f"{other} lost points:\n{grade(ns, other)}"


@pytest.mark.parametrize(
    ("cell", "source", "text"),
    [
        (
            "kaiming_normal",
            """
            def kaiming_normal(shape, a=0.0, mode="fan_in",
                               nonlinearity="leaky_relu", *, generator=None,
                               dtype=None, device=None):
                w = torch.empty(tuple(reversed(shape)), dtype=dtype)
                torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity,
                                              generator=generator)
                return w.T.contiguous()
            """,
            "torch.nn.init",
        ),
        (
            "kaiming_uniform",
            """
            def kaiming_uniform(shape, a=0.0, mode="fan_in",
                                nonlinearity="leaky_relu", *, generator=None,
                                dtype=None, device=None):
                layer = torch.nn.Linear(shape[0], shape[1])
                return layer.weight.detach().T.contiguous()
            """,
            "torch.nn module",
        ),
        (
            "pca_fit",
            """
            from sklearn.decomposition import PCA

            def pca_fit(X, num_components=None):
                p = PCA(num_components).fit(X.numpy())
                comps = torch.from_numpy(p.components_.T.copy())
                var = torch.from_numpy(p.explained_variance_)
                return X.mean(0), comps, var
            """,
            "scikit-learn",
        ),
        (
            "compute_fans",
            """
            from trainlab.init import compute_fans as _cf

            def compute_fans(shape):
                return _cf(shape)
            """,
            "trainlab.init.compute_fans",
        ),
        (
            "kaiming_std",
            """
            def _kaiming_std(dims, a, mode, nonlinearity):
                fan = torch.nn.init._calculate_correct_fan(
                    torch.empty(tuple(reversed(dims))), mode)
                return torch.nn.init.calculate_gain(nonlinearity, a) / fan**0.5
            """,
            "torch.nn.init",
        ),
    ],
)
def test_library_calls_score_zero(sol, cell, source, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, cell)
    assert report.score == 0, str(report)
    assert text in messages(report)


@pytest.mark.parametrize(
    ("cell", "source"),
    [
        (
            "feature_mean_std",
            """
            def feature_mean_std(X):
                mean = X.sum(0) / X.shape[0]
                std = ((X - mean) ** 2).mean(0).sqrt()
                return mean, std
            """,
        ),
        (
            "pca_fit",
            """
            def pca_fit(X, num_components=None):
                N, D = X.shape
                k = D if num_components is None else num_components
                mean = X.mean(0)
                U, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)
                return mean, Vh[:k].T, (S[:k] ** 2) / N
            """,
        ),
        (
            "compute_fans",
            """
            def compute_fans(shape):
                if len(shape) < 2:
                    raise ValueError("a weight has at least 2 dimensions")
                if len(shape) == 2:
                    return shape[0], shape[1]
                k = 1
                for s in shape[2:]:
                    k *= s
                return shape[1] * k, shape[0] * k
            """,
        ),
        (
            "xavier_normal",
            """
            def xavier_normal(shape, gain=1.0, *, generator=None, dtype=None,
                              device=None):
                fan_in, fan_out = compute_fans(shape)
                std = gain / math.sqrt((fan_in + fan_out) / 2)
                return _normal(tuple(shape), std, generator, dtype, device)
            """,
        ),
    ],
)
def test_other_correct_implementations_keep_full_marks(sol, cell, source):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, cell)
    assert report.passed, str(report)
