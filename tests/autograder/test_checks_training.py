"""The training checks: right answers, common mistakes, cheats, the final network."""

from __future__ import annotations

import math

import pytest

import autograder.checks.training as checks
import trainlab.net as ref_net
import trainlab.search as ref_search
import trainlab.training as ref_training
from autograder.checks.core import Report
from tests.autograder.notebook_copy import copy_functions, define, notebook_namespace
from trainlab._validate import check_tensor
from trainlab.data import Split

pytestmark = [pytest.mark.grader, pytest.mark.training]

FUNCTIONS = {
    "softmax_loss": (ref_net.softmax_loss, 6),
    "update_to_weight_ratio": (ref_training.update_to_weight_ratio, 2),
    "initial_loss_check": (ref_training.initial_loss_check, 3),
    "overfit_small_subset": (ref_training.overfit_small_subset, 3),
    "learning_rate_search": (ref_search.learning_rate_search, 3),
    "log_uniform": (ref_search.log_uniform, 3),
    "random_search": (ref_search.random_search, 4),
}
#: hyperparameters that reach the target (the solution notebook's choice)
GOOD_HPARAMS = {
    "hidden_dims": [128, 128],
    "lr": 3e-3,
    "reg": 1e-4,
    "epochs": 20,
    "batch_size": 64,
    "update": "adam",
    "lr_decay": 1.0,
}


def solution() -> dict:
    ns = notebook_namespace(
        math=math,
        check_tensor=check_tensor,
        train=ref_training.train,
        Split=Split,
        _sample=ref_search._sample,
    )
    return copy_functions(ns, *(fn for fn, _ in FUNCTIONS.values()))


def grade(ns: dict, name: str) -> Report:
    return getattr(checks, f"grade_{name}")(ns[name])


def messages(report: Report) -> str:
    return "\n".join(r.message for r in report.results)


def failed(report: Report) -> list[str]:
    return [r.name for r in report.results if not r.passed]


@pytest.fixture(scope="module")
def sol() -> dict:
    return solution()


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_solution_full_marks(sol, name):
    report = grade(sol, name)
    assert report.passed, str(report)
    assert report.max_score == FUNCTIONS[name][1]


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_not_implemented_scores_zero(name):
    ns = solution()
    define(ns, f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n")
    report = grade(ns, name)
    assert report.score == 0
    assert "not implemented" in messages(report)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_reference_objects_score_zero(name):
    report = getattr(checks, f"grade_{name}")(FUNCTIONS[name][0])
    assert report.score == 0, str(report)
    assert "reference implementation trainlab." in messages(report)


WRONG = [
    pytest.param(
        "softmax_loss",
        """
        def softmax_loss(scores, y):
            N = scores.shape[0]
            shifted = scores - scores.max(dim=1, keepdim=True).values
            log_probs = shifted - torch.log(torch.exp(shifted).sum(1, keepdim=True))
            loss = -log_probs[torch.arange(N), y].sum()
            d = torch.exp(log_probs)
            d[torch.arange(N), y] -= 1
            return loss, d
        """,
        "the loss is the batch mean",
        "average it (divide by N)",
        id="softmax-not-averaged",
    ),
    pytest.param(
        "softmax_loss",
        """
        def softmax_loss(scores, y):
            N = scores.shape[0]
            e = torch.exp(scores)
            p = e / e.sum(dim=1, keepdim=True)
            loss = -torch.log(p[torch.arange(N), y]).mean()
            d = p.clone()
            d[torch.arange(N), y] -= 1
            return loss, d / N
        """,
        "scores up to 1e4",
        "shift each row by its maximum",
        id="softmax-no-shift",
    ),
    pytest.param(
        "softmax_loss",
        """
        def softmax_loss(scores, y):
            N = scores.shape[0]
            shifted = scores - scores.max(dim=1, keepdim=True).values
            log_probs = shifted - torch.log(torch.exp(shifted).sum(1, keepdim=True))
            loss = -log_probs[torch.arange(N), y].mean()
            return loss, torch.exp(log_probs) / N
        """,
        "dscores",
        "subtract 1 at the true class",
        id="softmax-grad-without-onehot",
    ),
    pytest.param(
        "update_to_weight_ratio",
        """
        def update_to_weight_ratio(w, update):
            return float(w.norm() / update.norm())
        """,
        "||update|| / ||w||",
        "inverted",
        id="ratio-inverted",
    ),
    pytest.param(
        "initial_loss_check",
        """
        def initial_loss_check(model, X, y):
            X = X.to(dtype=model.dtype, device=model.device)
            loss, _ = model.loss(X, y)
            return float(loss), math.log(model.num_classes)
        """,
        "the loss of the model with regularization off",
        "regularization must be off",
        id="initial-loss-with-reg",
    ),
    pytest.param(
        "initial_loss_check",
        """
        def initial_loss_check(model, X, y):
            reg = model.reg
            model.reg = 0.0
            try:
                loss, _ = model.loss(X.to(model.dtype), y)
            finally:
                model.reg = reg
            return float(loss), math.log(model.num_classes)
        """,
        "leaves the model as it was",
        "running statistics",
        id="initial-loss-changes-bn-stats",
    ),
    pytest.param(
        "initial_loss_check",
        """
        def initial_loss_check(model, X, y):
            reg, saved = model.reg, [(m.clone(), v.clone()) for m, v in model.bn_state]
            model.reg = 0.0
            try:
                loss, _ = model.loss(X.to(model.dtype), y)
            finally:
                model.reg = reg
                for (m, v), (m0, v0) in zip(model.bn_state, saved):
                    m.copy_(m0)
                    v.copy_(v0)
            return float(loss), math.log10(model.num_classes)
        """,
        "expected = ln C",
        "natural log",
        id="initial-loss-log10",
    ),
    pytest.param(
        "overfit_small_subset",
        """
        def overfit_small_subset(model_factory, data, num_samples=20, *, lr=1e-2,
                                 epochs=50, update="adam", generator=None,
                                 verbose=False):
            small = Split(data.X_train[-num_samples:], data.y_train[-num_samples:],
                          data.X_val, data.y_val, data.X_test, data.y_test)
            return train(model_factory(), small, lr=lr, epochs=epochs,
                         batch_size=num_samples, update=update, generator=generator)
        """,
        "trains a fresh model on the first",
        "keep data.X_train[:num_samples]",
        id="overfit-wrong-samples",
    ),
    pytest.param(
        "overfit_small_subset",
        """
        def overfit_small_subset(model_factory, data, num_samples=20, *, lr=1e-2,
                                 epochs=50, update="adam", generator=None,
                                 verbose=False):
            small = Split(data.X_train[:num_samples], data.y_train[:num_samples],
                          data.X_val, data.y_val, data.X_test, data.y_test)
            return train(model_factory(), small, lr=1e-2, epochs=epochs,
                         batch_size=num_samples, update="adam", generator=generator)
        """,
        "passes lr, epochs, update",
        "losses differ",
        id="overfit-ignores-arguments",
    ),
    pytest.param(
        "learning_rate_search",
        """
        def learning_rate_search(model_factory, data, *, low=1e-6, high=1e-1, num=6,
                                 epochs=1, batch_size=100, update="adam", seed=0):
            lrs = torch.linspace(low, high, num, dtype=torch.float64)
            out = []
            for lr in lrs.tolist():
                hist = train(model_factory(), data, lr=lr, epochs=epochs,
                             batch_size=batch_size, update=update,
                             generator=torch.Generator().manual_seed(seed))
                last = hist.loss[-10:]
                final = math.inf if hist.diverged else sum(last) / len(last)
                out.append((lr, final, hist.val_acc[-1]))
            return out
        """,
        "log-spaced learning rates",
        "torch.logspace",
        id="lr-search-linear",
    ),
    pytest.param(
        "learning_rate_search",
        """
        def learning_rate_search(model_factory, data, *, low=1e-6, high=1e-1, num=6,
                                 epochs=1, batch_size=100, update="adam", seed=0):
            lrs = torch.logspace(math.log10(low), math.log10(high), num,
                                 dtype=torch.float64)
            model = model_factory()
            out = []
            for lr in lrs.tolist():
                hist = train(model, data, lr=lr, epochs=epochs,
                             batch_size=batch_size, update=update,
                             generator=torch.Generator().manual_seed(seed))
                last = hist.loss[-10:]
                final = math.inf if hist.diverged else sum(last) / len(last)
                out.append((lr, final, hist.val_acc[-1]))
            return out
        """,
        "a fresh model",
        "fresh model",
        id="lr-search-one-model",
    ),
    pytest.param(
        "log_uniform",
        """
        def log_uniform(low, high, size, *, generator=None, dtype=torch.float64):
            shape = (size,) if isinstance(size, int) else tuple(size)
            u = torch.rand(shape, generator=generator, dtype=torch.float64)
            return (low + (high - low) * u).to(dtype)
        """,
        "spread evenly over the decades",
        "top decade",
        id="log-uniform-is-uniform",
    ),
    pytest.param(
        "random_search",
        """
        def random_search(build_and_train, space, num_trials, generator=None, *,
                          maximize=True):
            results = []
            for _ in range(num_trials):
                h = {}
                for name, (low, high, scale) in space.items():
                    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
                    h[name] = low + (high - low) * u
                results.append((h, float(build_and_train(h))))
            return sorted(results, key=lambda r: -r[1] if maximize else r[1])
        """,
        '"log" ranges sampled log-uniformly',
        "log-uniformly",
        id="random-search-linear-lr",
    ),
    pytest.param(
        "random_search",
        """
        def random_search(build_and_train, space, num_trials, generator=None, *,
                          maximize=True):
            results = []
            for _ in range(num_trials):
                h = {n: _sample(lo, hi, sc, generator)
                     for n, (lo, hi, sc) in space.items()}
                results.append((h, float(build_and_train(h))))
            return sorted(results, key=lambda r: -r[1] if maximize else r[1])
        """,
        "diverged runs",
        "must come last",
        id="random-search-nan-anywhere",
    ),
]


@pytest.mark.parametrize(("name", "source", "check", "text"), WRONG)
def test_wrong_answer_loses_points_of_its_cell_only(sol, name, source, check, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, name)
    assert any(n.startswith(check) for n in failed(report)), str(report)
    assert 0 <= report.score < report.max_score
    assert text in messages(report), str(report)


@pytest.mark.parametrize(
    ("name", "source", "text"),
    [
        (
            "softmax_loss",
            """
            import torch.nn.functional as F

            def softmax_loss(scores, y):
                s = scores.detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(s, y)
                    loss.backward()
                return loss.detach(), s.grad
            """,
            "torch.nn.functional",
        ),
        (
            "softmax_loss",
            """
            def softmax_loss(scores, y):
                N = scores.shape[0]
                lp = torch.log_softmax(scores, dim=1)
                d = torch.exp(lp)
                d[torch.arange(N), y] -= 1
                return -lp[torch.arange(N), y].mean(), d / N
            """,
            "log_softmax",
        ),
        (
            "initial_loss_check",
            """
            from trainlab.training import initial_loss_check as _ilc

            def initial_loss_check(model, X, y):
                return _ilc(model, X, y)
            """,
            "trainlab.training.initial_loss_check",
        ),
        (
            "random_search",
            """
            import trainlab.search

            def random_search(build_and_train, space, num_trials, generator=None, *,
                              maximize=True):
                return trainlab.search.random_search(
                    build_and_train, space, num_trials, generator, maximize=maximize)
            """,
            "trainlab.search.random_search",
        ),
    ],
)
def test_library_calls_score_zero(sol, name, source, text):
    ns = dict(sol)
    define(ns, source)
    report = grade(ns, name)
    assert report.score == 0, str(report)
    assert text in messages(report)


def test_other_correct_implementations_keep_full_marks(sol):
    ns = dict(sol)
    define(
        ns,
        """
        def softmax_loss(scores, y):
            N, C = scores.shape
            m = scores.max(dim=1, keepdim=True).values
            logz = m + torch.logsumexp(scores - m, dim=1, keepdim=True)
            onehot = torch.zeros_like(scores)
            for i in range(N):
                onehot[i, y[i]] = 1.0
            loss = (logz.squeeze(1) - (scores * onehot).sum(1)).sum() / N
            return loss, (torch.exp(scores - logz) - onehot) / N

        def update_to_weight_ratio(w, update):
            return (update.pow(2).sum() / w.pow(2).sum()).sqrt().item()
        """,
    )
    for name in ("softmax_loss", "update_to_weight_ratio"):
        report = grade(ns, name)
        assert report.passed, str(report)


@pytest.mark.parametrize(
    ("hparams", "text"),
    [
        ({**GOOD_HPARAMS, "lr": "3e-3"}, "should be a plain float"),
        ({k: v for k, v in GOOD_HPARAMS.items() if k != "reg"}, "missing ['reg']"),
        ({**GOOD_HPARAMS, "epochs": 10_000}, "1 to 100 epochs"),
        ([("lr", 3e-3)], "should be a dict"),
    ],
)
def test_final_model_rejects_bad_hparams(hparams, text):
    report = checks.grade_final_model(hparams)
    assert report.score == 0
    assert text in messages(report)


def test_final_model_ignores_lying_numbers():
    class Always(float):
        def __ge__(self, other):
            return True

    report = checks.grade_final_model({**GOOD_HPARAMS, "lr": Always(3e-3)})
    assert report.score == 0
    assert "plain float" in messages(report)


@pytest.mark.slow
def test_final_model_full_marks_for_good_hparams():
    report = checks.grade_final_model(dict(GOOD_HPARAMS))
    assert report.passed, str(report)
    assert report.max_score == 5


@pytest.mark.slow
def test_final_model_too_few_epochs_earns_nothing():
    report = checks.grade_final_model({**GOOD_HPARAMS, "epochs": 1, "lr": 1e-4})
    lost = failed(report)
    assert f"validation accuracy >= {checks.TARGET_VAL_ACC:.2f}" in lost
    # below 0.90 nothing counts: a valid dict alone is no work
    assert report.score == 0
    assert any("not counted" in r.message for r in report.results)


def test_a_self_reported_history_earns_nothing():
    """A key check compares with the grader's own run, never with what the
    student's function says it achieved."""
    ns = notebook_namespace(History=ref_training.History)
    define(
        ns,
        """
        def overfit_small_subset(model_factory, data, num_samples=20, *, lr=1e-2,
                                 epochs=50, update="adam", generator=None):
            model_factory()
            return History(train_acc=[1.0])
        """,
    )
    report = checks.grade_overfit_small_subset(ns["overfit_small_subset"])
    assert report.score == 0, str(report)


def test_log_uniform_must_come_from_the_generator():
    ns = notebook_namespace(math=math)
    define(
        ns,
        """
        def log_uniform(low, high, size, *, generator=None, dtype=torch.float64):
            n = size if isinstance(size, int) else math.prod(size)
            u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
            u = u[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
            return (10 ** (math.log10(low) + (math.log10(high) - math.log10(low)) * u)
                    ).reshape(size).to(dtype)
        """,
    )
    report = checks.grade_log_uniform(ns["log_uniform"])
    assert report.score == 0, str(report)
