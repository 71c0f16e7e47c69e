"""Checks for the training assignment: loss, sanity checks, searches, a trained net.

The functions the student writes drive the reference model
(``trainlab.net.FullyConnectedNet``) and training loop (``trainlab.training.
train``): calling those is allowed. Calling the reference version of the graded
function itself (``trainlab.training.initial_loss_check``, ``trainlab.search.
random_search``, ...) or torch's cross-entropy earns 0 for that cell.

The last cell is graded on its result: the hyperparameters the student chose
are used to retrain a batchnorm network on the digits data with a fixed seed,
and the validation accuracy must reach :data:`TARGET_VAL_ACC` within
:data:`CPU_BUDGET_S` seconds of CPU time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import trainlab.net as ref_net
import trainlab.search as ref_search
import trainlab.training as ref_training
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
from autograder.checks.own_code import Guard, devices, rules
from trainlab.data import Split, load_digits
from trainlab.gradcheck import check_directional, check_elementwise

#: the goal of the last cell: validation accuracy on digits, within a CPU budget
TARGET_VAL_ACC = 0.95
CPU_BUDGET_S = 60.0
#: the label of the final network's seeds (weights, then shuffling)
FINAL_SEED = "final network"

SOFTMAX_RULES = rules(
    (
        "cross_entropy",
        "cross_entropy_loss",
        "log_softmax",
        "_log_softmax",
        "softmax",
        "_softmax",
        "special_softmax",
        "special_log_softmax",
        "nll_loss",
        "nll_loss_nd",
        "nll_loss2d",
    ),
    hint="Write the softmax and its log with torch.exp, torch.log and a max shift.",
)

#: the reference pieces a training function may drive
_TRAIN_ALLOWED = {
    ("net.py", "*"),
    ("data.py", "*"),
    ("optim.py", "*"),
    ("linear.py", "*"),
    ("activations.py", "*"),
    ("batchnorm.py", "*"),
    ("training.py", "train"),
    ("training.py", "accuracy"),
    ("training.py", "best_val_acc"),
    ("search.py", "_sample"),
}
TRAIN_RULES = rules(
    allow_reference=_TRAIN_ALLOWED,
    hint="Use the model and trainlab.training.train; write this function yourself.",
)


def _float(value: object, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(plain_tensor(value, name))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Mistake(f"{name} should be a float; got {type(value).__name__}")
    return float(value)


# ------------------------------------------------------------- softmax_loss


def _scores(n: int, c: int, seed: int, scale: float = 5.0) -> tuple:
    g = gen(seed)
    scores = scale * torch.randn(n, c, generator=g, dtype=torch.float64) + 12.0
    y = torch.randint(0, c, (n,), generator=g)
    return scores, y


#: (N, C): N != C, N = 4, a larger batch, one sample
SOFTMAX_SHAPES = [(7, 4), (4, 10), (200, 10), (1, 3)]


@single_threaded
def grade_softmax_loss(softmax_loss: Callable) -> Report:
    """Grade ``softmax_loss(scores, y) -> (loss, dscores)``, averaged over N."""
    what = "softmax_loss"
    guard = Guard(SOFTMAX_RULES, what)
    g = Grader(what)

    def run(scores, y):
        before = scores.clone()
        value = guard.call(softmax_loss, scores, y)
        expect_unchanged(before, scores, "scores", what)
        loss, dscores = unpack(value, ["loss", "dscores"], what)
        if loss.numel() != 1:
            raise Mistake(
                f"loss has shape {tuple(loss.shape)}; expected a single number "
                "(the mean over the batch)"
            )
        return loss.reshape(()), dscores

    def autograd(scores, y):
        s = scores.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(s, y)
            loss.backward()
        return loss.detach(), s.grad.detach()

    def shapes() -> None:
        scores, y = _scores(7, 4, 1)
        loss, dscores = run(scores, y)
        expect_shape(dscores, (7, 4), "dscores")
        expect_dtype_device(dscores, scores, "dscores")
        expect_dtype_device(loss, scores, "loss")

    def loss_values() -> None:
        for i, (n, c) in enumerate(SOFTMAX_SHAPES):
            scores, y = _scores(n, c, 10 + i)
            loss, _ = run(scores, y)
            want, _ = autograd(scores, y)
            hints = [
                (
                    "the loss is summed over the batch; average it (divide by N), "
                    "as cross_entropy's default reduction does",
                    want * n,
                ),
            ]
            close_with_hints(loss, want, f"loss (N={n}, C={c})", hints)
            expect_close(loss, ref_net.softmax_loss(scores, y)[0], "loss (vs ref)")

    def grad_values() -> None:
        for i, (n, c) in enumerate(SOFTMAX_SHAPES):
            scores, y = _scores(n, c, 20 + i)
            _, dscores = run(scores, y)
            _, want = autograd(scores, y)
            probs = torch.softmax(scores, dim=1)
            hints = [
                ("dscores is not divided by N: the loss is a mean", want * n),
                (
                    "subtract 1 at the true class: dscores = (p - onehot(y)) / N",
                    probs / n,
                ),
            ]
            close_with_hints(dscores, want, f"dscores (N={n}, C={c})", hints)

    def large_scores() -> None:
        scores = torch.tensor(
            [[1000.0, -1000.0, 0.0], [1e4, 1e4 - 1.0, -5.0], [-800.0, -790.0, -805.0]],
            dtype=torch.float64,
        )
        y = torch.tensor([1, 0, 2])
        loss, dscores = run(scores, y)
        want_loss, want_d = autograd(scores, y)
        hint = (
            "exp of a large score overflows to inf: shift each row by its maximum "
            "before exp (the softmax does not change)"
        )
        try:
            expect_close(loss, want_loss, "loss for scores up to 1e4")
            expect_close(dscores, want_d, "dscores for scores up to 1e4")
        except Mistake as exc:
            raise Mistake(f"{exc}\nHint: {hint}") from None

    def float32_devices() -> None:
        scores64, y = _scores(30, 10, 40)
        want_loss, want_d = autograd(scores64, y)
        for device in devices():
            scores = scores64.float().to(device)
            loss, dscores = run(scores, y.to(device))
            expect_dtype_device(dscores, scores, f"dscores ({device}, float32)")
            expect_close(loss, want_loss, f"loss ({device}, float32)", tol=1e-5)
            expect_close(dscores, want_d, f"dscores ({device}, float32)", tol=1e-5)

    def gradcheck() -> None:
        scores, y = _scores(5, 4, 50, scale=2.0)
        _, dscores = run(scores, y)
        dout = torch.tensor(1.3, dtype=torch.float64)
        analytic = dscores * 1.3

        def f(s: torch.Tensor) -> torch.Tensor:
            return ref_net.softmax_loss(s, y)[0]

        for check in (check_elementwise, check_directional):
            result = check(f, scores, dout, analytic, generator=gen(7), name="dscores")
            if not result.passed:
                raise Mistake(
                    "finite differences of the reference loss disagree with your "
                    f"dscores:\n{result}"
                )

    g.check("returns (loss, dscores): a number and an (N, C) tensor", 1, shapes)
    g.check(
        "the loss is the batch mean of -log p[y] (vs torch cross_entropy)",
        1,
        loss_values,
        key=True,
    )
    g.check(
        "dscores = (p - onehot(y)) / N (vs torch autograd)", 1, grad_values, key=True
    )
    g.check("scores up to 1e4: no overflow (shift by the row maximum)", 1, large_scores)
    g.check("float32 inputs, on every available device", 1, float32_devices)
    g.check("gradient check of dscores (elementwise and directional)", 1, gradcheck)
    return guard.report(g)


# --------------------------------------------------- update_to_weight_ratio


@single_threaded
def grade_update_to_weight_ratio(update_to_weight_ratio: Callable) -> Report:
    """Grade ``update_to_weight_ratio(w, update) -> float``."""
    what = "update_to_weight_ratio"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)

    def ratio(w, u) -> float:
        before = (w.clone(), u.clone())
        value = guard.call(update_to_weight_ratio, w, u)
        expect_unchanged(before[0], w, "w", what)
        expect_unchanged(before[1], u, "update", what)
        return _float(value, "the ratio")

    def expect(w, u, label) -> None:
        got = ratio(w, u)
        want = ref_training.update_to_weight_ratio(w, u)
        if math.isclose(got, want, rel_tol=1e-6):
            return
        candidates = [
            (float(u.norm() ** 2 / w.norm() ** 2), "use the norms, not their squares"),
            (float(w.norm() / u.norm()), "the ratio is inverted: ||update|| / ||w||"),
            (
                float((u.abs() / w.abs()).mean()),
                "an elementwise ratio is dominated by weights near 0: divide the norms",
            ),
            (
                float(u.abs().mean() / w.abs().mean()),
                "use the (Frobenius) norms, not mean absolute values",
            ),
        ]
        msg = f"{label}: returned {got:.6g}; expected ||update|| / ||w|| = {want:.6g}"
        for value, text in candidates:
            if math.isclose(got, value, rel_tol=1e-6):
                msg += f"\nLikely mistake: {text}"
                break
        raise Mistake(msg)

    def values() -> None:
        w = torch.randn(50, 20, generator=gen(1), dtype=torch.float64)
        u = 1e-3 * torch.randn(50, 20, generator=gen(2), dtype=torch.float64)
        expect(w, u, "a (50, 20) weight and a small update")
        w = torch.randn(8, 3, 3, 3, generator=gen(3), dtype=torch.float64) + 0.5
        u = 0.1 * torch.randn(8, 3, 3, 3, generator=gen(4), dtype=torch.float64)
        expect(w, u, "a (8, 3, 3, 3) conv weight")

    def float32_devices() -> None:
        w64 = torch.randn(30, 10, generator=gen(5), dtype=torch.float64)
        u64 = 1e-2 * torch.randn(30, 10, generator=gen(6), dtype=torch.float64)
        want = ref_training.update_to_weight_ratio(w64, u64)
        for device in devices():
            got = ratio(w64.float().to(device), u64.float().to(device))
            if not math.isclose(got, want, rel_tol=1e-5):
                raise Mistake(
                    f"float32 on {device}: returned {got:.6g}; expected {want:.6g}"
                )

    g.check(
        "||update|| / ||w|| with Frobenius norms (linear and conv weights)",
        1,
        values,
        key=True,
    )
    g.check(
        "float32 inputs, on every available device; returns a float", 1, float32_devices
    )
    return guard.report(g)


# ---------------------------------------------------- model-driving helpers


def _small_data(n_train: int = 200, seed: int = 0) -> Split:
    """The digits split, cut down so that a check trains in a fraction of a second."""
    d = load_digits(seed=seeds.seed(("digits", seed)), dtype=torch.float64)
    return Split(
        d.X_train[:n_train],
        d.y_train[:n_train],
        d.X_val[:100],
        d.y_val[:100],
        d.X_test[:100],
        d.y_test[:100],
    )


def _model(
    batchnorm: bool = True,
    reg: float = 0.0,
    seed: int = 0,
    hidden: tuple[int, ...] = (20, 16),
    weight_scale: Any = "kaiming",
):
    return ref_net.FullyConnectedNet(
        64,
        list(hidden),
        10,
        batchnorm=batchnorm,
        reg=reg,
        weight_scale=weight_scale,
        generator=gen(seed),
    )


def _snapshot(model) -> tuple[dict, list, float]:
    return (
        {k: v.clone() for k, v in model.params.items()},
        [(m.clone(), v.clone()) for m, v in model.bn_state],
        model.reg,
    )


# ------------------------------------------------------ initial_loss_check


@single_threaded
def grade_initial_loss_check(initial_loss_check: Callable) -> Report:
    """Grade ``initial_loss_check(model, X, y) -> (loss, expected)``."""
    what = "initial_loss_check"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)
    data = _small_data()

    def run(model, X, y) -> tuple[float, float]:
        value = guard.call(initial_loss_check, model, X, y)
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise Mistake(f"{what} should return (loss, expected); got {value!r}")
        return _float(value[0], "loss"), _float(value[1], "expected")

    def loss_without_reg() -> None:
        model = _model(reg=0.5, seed=1)
        loss, _ = run(model, data.X_train[:64], data.y_train[:64])
        fresh = _model(reg=0.5, seed=1)
        want, _ = ref_training.initial_loss_check(
            fresh, data.X_train[:64], data.y_train[:64]
        )
        if math.isclose(loss, want, rel_tol=1e-9):
            return
        msg = f"loss {loss:.6g}; expected {want:.6g}"
        fresh.reg = 0.5
        with_reg = float(fresh.loss(data.X_train[:64], data.y_train[:64])[0])
        if math.isclose(loss, with_reg, rel_tol=1e-9):
            msg += (
                "\nLikely mistake: regularization must be off for this check "
                "(set model.reg = 0 while computing the loss)"
            )
        raise Mistake(msg)

    def expected() -> None:
        for c in (10, 3):
            model = ref_net.FullyConnectedNet(64, [12], c, generator=gen(2))
            y = data.y_train[:40] % c
            _, exp = run(model, data.X_train[:40], y)
            want = math.log(c)
            if not math.isclose(exp, want, rel_tol=1e-12):
                candidates = [
                    (math.log10(c), "use the natural log: ln C"),
                    (1.0 / c, "the expected loss is ln C, not 1/C"),
                    (math.log2(c), "use the natural log: ln C"),
                ]
                msg = (
                    f"expected {exp:.6g} for {c} classes; should be ln {c} = {want:.6g}"
                )
                for value, text in candidates:
                    if math.isclose(exp, value, rel_tol=1e-9):
                        msg += f"\nLikely mistake: {text}"
                raise Mistake(msg)

    def restores() -> None:
        model = _model(reg=0.25, seed=3)
        params, state, reg = _snapshot(model)
        run(model, data.X_train[:50], data.y_train[:50])
        if model.reg != reg:
            raise Mistake(
                f"model.reg is {model.reg} after the check; it was {reg}. "
                "Restore it (try/finally)"
            )
        for name, t in params.items():
            if not torch.equal(model.params[name], t):
                raise Mistake(f"the check changed model.params[{name!r}]")
        for i, ((m, v), (m0, v0)) in enumerate(zip(model.bn_state, state, strict=True)):
            if not (torch.equal(m, m0) and torch.equal(v, v0)):
                raise Mistake(
                    f"the batchnorm running statistics of layer {i + 1} changed: "
                    "a training-mode loss updates them in place; save and restore "
                    "them (copy_ the saved values back)"
                )

    g.check(
        "the loss of the model with regularization off", 1, loss_without_reg, key=True
    )
    g.check("expected = ln C", 1, expected)
    g.check(
        "leaves the model as it was (reg, parameters, running statistics)", 1, restores
    )
    return guard.report(g)


# ---------------------------------------------------- overfit_small_subset


@single_threaded
def grade_overfit_small_subset(overfit_small_subset: Callable) -> Report:
    """Grade ``overfit_small_subset(model_factory, data, num_samples=20, ...)``."""
    what = "overfit_small_subset"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)
    data = _small_data()

    def run(num_samples: int, **kwargs):
        calls = []

        def factory():
            calls.append(1)
            return _model(seed=4)

        hist = guard.call(overfit_small_subset, factory, data, num_samples, **kwargs)
        if not isinstance(hist, ref_training.History):
            raise Mistake(
                f"{what} should return the History of train(); got "
                f"{type(hist).__name__}"
            )
        return hist, len(calls)

    def reference(num_samples: int, **kwargs):
        return ref_training.overfit_small_subset(
            lambda: _model(seed=4), data, num_samples, **kwargs
        )

    def compare(hist, want, label) -> None:
        got = torch.tensor(hist.loss, dtype=torch.float64)
        exp = torch.tensor(want.loss, dtype=torch.float64)
        if got.shape != exp.shape:
            raise Mistake(
                f"{label}: {len(hist.loss)} iterations; expected {len(want.loss)}, "
                "one full-batch step (batch_size = num_samples) per epoch"
            )
        if rel_error(got, exp) > 1e-9:
            raise Mistake(
                f"{label}: the losses differ from a run on the first num_samples "
                f"training samples (yours start {got[:3].tolist()}, expected "
                f"{exp[:3].tolist()}); keep data.X_train[:num_samples] and "
                "data.y_train[:num_samples] and the validation set"
            )

    def first_samples() -> None:
        hist, calls = run(12, epochs=8, generator=gen(9))
        if calls != 1:
            raise Mistake(
                f"model_factory was called {calls} times; call it once "
                "for a fresh model"
            )
        compare(
            hist, reference(12, epochs=8, generator=gen(9)), "num_samples=12, epochs=8"
        )

    def arguments() -> None:
        kw = dict(lr=3e-3, epochs=5, update="sgd_momentum", generator=gen(10))
        hist, _ = run(15, **kw)
        kw["generator"] = gen(10)
        compare(hist, reference(15, **kw), "lr=3e-3, epochs=5, sgd_momentum")

    def reaches_full_accuracy() -> None:
        hist, _ = run(20, generator=gen(11))
        # the grader's own run with the defaults: not the student's word for it
        compare(hist, reference(20, generator=gen(11)), "the defaults")
        if not hist.train_acc or hist.train_acc[-1] < 1.0:
            raise Mistake(
                "with the defaults (lr 1e-2, 50 epochs, adam) training accuracy "
                f"on 20 samples should reach 1.0; got {hist.train_acc[-1:]}"
            )

    g.check(
        "trains a fresh model on the first num_samples samples, full batch",
        1,
        first_samples,
        key=True,
    )
    g.check("passes lr, epochs, update and generator on to train", 1, arguments)
    g.check(
        "the defaults overfit 20 samples: training accuracy 1.0",
        1,
        reaches_full_accuracy,
        key=True,
    )
    return guard.report(g)


# --------------------------------------------------- learning_rate_search


@single_threaded
def grade_learning_rate_search(learning_rate_search: Callable) -> Report:
    """Grade ``learning_rate_search(model_factory, data, *, low, high, num, ...)``."""
    what = "learning_rate_search"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)
    data = _small_data(n_train=120)
    # 12 iterations per run (the final loss averages the last 10); absurd rates
    # at the top make plain SGD overflow, so that diverged runs show up as inf
    kw = dict(
        low=1e-4,
        high=1e300,
        num=4,
        epochs=1,
        batch_size=10,
        update="sgd",
        seed=seeds.seed("learning rate search"),
    )

    def factory():
        return _model(batchnorm=False, seed=6, hidden=(16,))

    def run():
        calls = []

        def counted():
            calls.append(1)
            return factory()

        value = guard.call(learning_rate_search, counted, data, **kw)
        if not isinstance(value, list) or len(value) != kw["num"]:
            raise Mistake(
                f"{what} should return a list of {kw['num']} tuples "
                f"(lr, final_loss, val_acc); got {value!r}"
            )
        rows = []
        for row in value:
            if not isinstance(row, tuple | list) or len(row) != 3:
                raise Mistake(
                    f"each entry should be (lr, final_loss, val_acc); got {row!r}"
                )
            rows.append(tuple(_float(v, "an entry") for v in row))
        return rows, len(calls)

    want = ref_search.learning_rate_search(factory, data, **kw)

    def rates() -> None:
        rows, _ = run()
        got = [r[0] for r in rows]
        exp = [r[0] for r in want]
        if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got, exp, strict=True)):
            return
        msg = f"learning rates {got}; expected {exp}"
        lin = torch.linspace(kw["low"], kw["high"], kw["num"], dtype=torch.float64)
        lin = lin.tolist()
        if all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, lin, strict=True)):
            msg += (
                "\nLikely mistake: space them evenly in log10 (torch.logspace), "
                "not linearly"
            )
        raise Mistake(msg)

    def results() -> None:
        rows, _ = run()
        for (lr, loss, acc), (_, w_loss, w_acc) in zip(rows, want, strict=True):
            same_loss = (math.isinf(loss) and math.isinf(w_loss)) or math.isclose(
                loss, w_loss, rel_tol=1e-9
            )
            if not same_loss:
                hint = ""
                if math.isinf(w_loss):
                    hint = " (a diverged run, history.diverged, counts as inf)"
                raise Mistake(
                    f"lr={lr:.3g}: final loss {loss:.6g}; expected "
                    f"{w_loss:.6g}, the mean of the last 10 iteration "
                    f"losses{hint}"
                )
            if not math.isclose(acc, w_acc, rel_tol=1e-9, abs_tol=1e-12):
                raise Mistake(
                    f"lr={lr:.3g}: val acc {acc:.4g}; expected {w_acc:.4g}"
                    ", the last validation accuracy of the run"
                )

    def fresh_models() -> None:
        _, calls = run()
        if calls != kw["num"]:
            raise Mistake(
                f"model_factory was called {calls} times for {kw['num']} "
                "learning rates; every rate needs a fresh model"
            )

    g.check("log-spaced learning rates from low to high", 1, rates, key=True)
    g.check(
        "final loss (mean of the last 10) and val acc per rate, seeded",
        1,
        results,
        key=True,
    )
    g.check("a fresh model for every learning rate", 1, fresh_models)
    return guard.report(g)


# ------------------------------------------------------------- log_uniform


@single_threaded
def grade_log_uniform(log_uniform: Callable) -> Report:
    """Grade ``log_uniform(low, high, size, *, generator=None, dtype=float64)``."""
    what = "log_uniform"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)

    def draw(low, high, size, **kw) -> torch.Tensor:
        return plain_tensor(guard.call(log_uniform, low, high, size, **kw), "samples")

    def basics() -> None:
        x = draw(1e-4, 1e-1, 50, generator=gen(1))
        expect_shape(x, (50,), "log_uniform(1e-4, 1e-1, 50)")
        if x.dtype != torch.float64:
            raise Mistake(f"the default dtype should be torch.float64; got {x.dtype}")
        x = draw(1e-4, 1e-1, (3, 4), generator=gen(1), dtype=torch.float32)
        expect_shape(x, (3, 4), "log_uniform(..., size=(3, 4))")
        if x.dtype != torch.float32:
            raise Mistake(f"dtype=torch.float32 gave {x.dtype}")
        x = draw(1e-6, 1e2, 2000, generator=gen(2))
        if float(x.min()) < 1e-6 or float(x.max()) > 1e2:
            raise Mistake(
                f"samples range from {float(x.min()):.3g} to "
                f"{float(x.max()):.3g}, outside [1e-6, 1e2]"
            )

    def spread() -> None:
        x = draw(1e-5, 1e-1, 40000, generator=gen(3))
        other = draw(1e-5, 1e-1, 40000, generator=gen((3, "other")))
        if torch.equal(x, other):
            raise Mistake(
                "two different generators gave the same samples: draw them at "
                "random, from the generator you are given"
            )
        decades = torch.log10(x).floor()
        shares = [float((decades == d).double().mean()) for d in range(-5, -1)]
        median = float(x.median())
        if (
            all(abs(s - 0.25) < 0.02 for s in shares)
            and abs(math.log10(median) + 3) < 0.05
        ):
            return
        msg = (
            f"shares of the samples in the decades 1e-5..1e-1: "
            f"{', '.join(f'{s:.2f}' for s in shares)}; expected 0.25 each, and "
            f"a median near the geometric mean 1e-3 (got {median:.3g})"
        )
        if shares[-1] > 0.8:
            msg += (
                "\nLikely mistake: uniform samples between low and high put "
                "almost all of them in the top decade; sample the exponent "
                "uniformly and return 10**u"
            )
        raise Mistake(msg)

    def reproducible() -> None:
        x = draw(1e-4, 1.0, 100, generator=gen(4))
        want = ref_search.log_uniform(1e-4, 1.0, 100, generator=gen(4))
        expect_close(
            x,
            want,
            "samples with a seeded generator",
            tol=1e-10,
            hint="draw u = torch.rand(size, generator=generator, "
            "dtype=torch.float64) and return 10**(log10(low) + "
            "(log10(high) - log10(low)) * u)",
        )

    g.check("shape, dtype and range", 1, basics)
    g.check("spread evenly over the decades (log10 is uniform)", 1, spread, key=True)
    g.check("reproducible from the generator, as the docstring draws", 1, reproducible)
    return guard.report(g)


# ----------------------------------------------------------- random_search


@single_threaded
def grade_random_search(random_search: Callable) -> Report:
    """Grade ``random_search(build_and_train, space, num_trials, generator, ...)``."""
    what = "random_search"
    guard = Guard(TRAIN_RULES, what)
    g = Grader(what)
    space = {
        "lr": (1e-5, 1e-1, "log"),
        "reg": (1e-6, 1e-2, "log"),
        "momentum": (0.5, 0.99, "linear"),
    }

    def score_of(h: dict) -> float:
        return -((math.log10(h["lr"]) + 3.0) ** 2) - 10.0 * (h["momentum"] - 0.9) ** 2

    def run(num_trials: int, seed: int, fn=score_of, **kw):
        seen: list[dict] = []

        def build_and_train(hparams):
            if not isinstance(hparams, dict):
                raise Mistake(
                    f"build_and_train got {type(hparams).__name__}; "
                    "expected a dict name -> value"
                )
            seen.append(dict(hparams))
            return fn(hparams)

        value = guard.call(
            random_search, build_and_train, space, num_trials, gen(seed), **kw
        )
        if not isinstance(value, list):
            raise Mistake(f"{what} should return a list; got {type(value).__name__}")
        return value, seen

    def trials() -> None:
        value, seen = run(30, 1)
        if len(seen) != 30:
            raise Mistake(
                f"build_and_train was called {len(seen)} times for num_trials=30"
            )
        for h in seen:
            if set(h) != set(space):
                raise Mistake(
                    f"a trial's hyperparameters are {sorted(h)}; expected "
                    f"exactly {sorted(space)}"
                )
            for name, (low, high, _) in space.items():
                v = _float(h[name], name)
                if not low <= v <= high:
                    raise Mistake(f"{name} = {v:.4g} lies outside [{low}, {high}]")
        if len(value) != 30:
            raise Mistake(f"{what} returned {len(value)} results for 30 trials")

    def scales() -> None:
        _, seen = run(600, 2, fn=lambda h: 0.0)
        lr = torch.tensor([h["lr"] for h in seen], dtype=torch.float64)
        share = float((lr < 1e-3).double().mean())  # half of the log range
        if abs(share - 0.5) > 0.08:
            msg = (
                f"{share:.0%} of the learning rates fall below 1e-3, the middle "
                "of [1e-5, 1e-1] on a log scale; expected about 50%"
            )
            if share < 0.1:
                msg += (
                    '\nLikely mistake: a "log" range must be sampled '
                    "log-uniformly (log_uniform), not uniformly"
                )
            raise Mistake(msg)
        mom = torch.tensor([h["momentum"] for h in seen], dtype=torch.float64)
        if abs(float(mom.mean()) - 0.745) > 0.03:
            raise Mistake(
                f"the linear-scale momentum has mean {float(mom.mean()):.3f};"
                " expected about 0.745 (uniform on [0.5, 0.99])"
            )

    def ranking() -> None:
        value, seen = run(25, 3)
        pairs = []
        for item in value:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise Mistake(f"each result should be (hparams, score); got {item!r}")
            pairs.append((dict(item[0]), _float(item[1], "score")))
        scores = [s for _, s in pairs]
        if scores != sorted(scores, reverse=True):
            raise Mistake(
                "results must be sorted best first (highest score first "
                "when maximize=True)"
            )
        want = sorted(score_of(h) for h in seen)[::-1]
        if not all(math.isclose(a, b) for a, b in zip(scores, want, strict=True)):
            raise Mistake(
                "the scores returned are not those build_and_train "
                "returned for the trials"
            )
        for h, s in pairs:
            if not math.isclose(score_of(h), s):
                raise Mistake(
                    "a result pairs hyperparameters with another trial's score"
                )
        value, _ = run(10, 4, maximize=False)
        scores = [_float(item[1], "score") for item in value]
        if scores != sorted(scores):
            raise Mistake("with maximize=False the lowest score comes first")

    def nan_last() -> None:
        def sometimes_nan(h):
            return math.nan if h["lr"] > 1e-2 else score_of(h)

        value, seen = run(40, 5, fn=sometimes_nan)
        scores = [_float(item[1], "score") for item in value]
        n_nan = sum(math.isnan(s) for s in scores)
        if n_nan == 0 or not all(math.isnan(s) for s in scores[-n_nan:]):
            raise Mistake(
                "runs that diverged (score nan) must come last; sorting "
                "with nan in the list leaves them anywhere"
            )
        finite = scores[: len(scores) - n_nan]
        if finite != sorted(finite, reverse=True):
            raise Mistake("the finite scores must be sorted best first")

    g.check("num_trials calls, every hyperparameter within its range", 1, trials)
    g.check(
        '"log" ranges sampled log-uniformly, "linear" ones uniformly',
        1,
        scales,
        key=True,
    )
    g.check(
        "(hparams, score) pairs sorted best first; maximize=False", 1, ranking, key=True
    )
    g.check("diverged runs (nan) come last", 1, nan_last)
    return guard.report(g)


# ------------------------------------------------------- the trained network

_HPARAM_TYPES = {
    "hidden_dims": list,
    "lr": float,
    "reg": float,
    "epochs": int,
    "batch_size": int,
    "update": str,
    "lr_decay": float,
}


def _as_dict(hparams: object) -> dict:
    """A plain dict of the chosen hyperparameters, or a Mistake.

    In the kernel the value is the student's dict itself; under the grader's
    verifier it is a handle to the dict in the sandbox, read key by key (keys
    and values arrive as plain data).
    """
    if type(hparams) is dict:
        return hparams
    # a runner's handle (autograder.sandbox.runner.RemoteRef), recognised by its
    # class's module so that the checks never import the sandbox
    remote = type(hparams).__module__ == "autograder.sandbox.runner"
    if remote and dict(getattr(hparams, "_ref", {})).get("type") == "dict":
        return {k: hparams[k] for k in list(hparams) if type(k) is str}
    if hparams is None:
        raise Mistake("best_hparams is not set: define it in the cell of part 5")
    raise Mistake(f"best_hparams should be a dict; got {type(hparams).__name__}")


def _plain_hparams(hparams: object) -> dict[str, Any]:
    """Copy the chosen hyperparameters as plain Python values, or explain."""
    hparams = _as_dict(hparams)
    missing = [k for k in _HPARAM_TYPES if k not in hparams]
    extra = [k for k in hparams if k not in _HPARAM_TYPES]
    if missing or extra:
        raise Mistake(
            f"best_hparams needs exactly the keys {sorted(_HPARAM_TYPES)}; "
            f"missing {missing}, unexpected {extra}"
        )
    out: dict[str, Any] = {}
    for key, kind in _HPARAM_TYPES.items():
        value = hparams[key]
        if kind is float and type(value) in (int, float):
            out[key] = float(value)
        elif kind is int and type(value) is int:
            out[key] = int(value)
        elif kind is str and type(value) is str:
            out[key] = str(value)
        elif (
            kind is list
            and type(value) in (list, tuple)
            and all(type(v) is int for v in value)
        ):
            out[key] = [int(v) for v in value]
        else:
            raise Mistake(
                f"best_hparams[{key!r}] should be a plain {kind.__name__}; "
                f"got {type(value).__name__}"
            )
    limits = [
        (1 <= len(out["hidden_dims"]) <= 4, "1 to 4 hidden layers"),
        (all(1 <= h <= 512 for h in out["hidden_dims"]), "hidden widths 1..512"),
        (0 < out["lr"] <= 1.0, "0 < lr <= 1"),
        (0 <= out["reg"] <= 1.0, "0 <= reg <= 1"),
        (1 <= out["epochs"] <= 100, "1 to 100 epochs"),
        (8 <= out["batch_size"] <= 1024, "batch_size 8..1024"),
        (
            out["update"] in ref_training.UPDATE_RULES,
            f"update one of {sorted(ref_training.UPDATE_RULES)}",
        ),
        (0 < out["lr_decay"] <= 1.0, "0 < lr_decay <= 1"),
    ]
    for ok, text in limits:
        if not ok:
            raise Mistake(f"best_hparams out of range: need {text}; got {out}")
    return out


def train_final(hparams: dict[str, Any], seed: int | str = FINAL_SEED):
    """Retrain the batchnorm network with ``hparams`` (plain values), seeded.

    Returns:
        ``(history, cpu_seconds)``.
    """
    data = load_digits(dtype=torch.float64)
    model = ref_net.FullyConnectedNet(
        data.X_train.shape[1],
        hparams["hidden_dims"],
        10,
        batchnorm=True,
        reg=hparams["reg"],
        generator=gen(seed),
    )
    start = time.process_time()
    hist = ref_training.train(
        model,
        data,
        lr=hparams["lr"],
        epochs=hparams["epochs"],
        batch_size=hparams["batch_size"],
        update=hparams["update"],
        lr_decay=hparams["lr_decay"],
        generator=gen((seed, "shuffle")),
    )
    return hist, time.process_time() - start


@single_threaded
def grade_final_model(best_hparams: object) -> Report:
    """Retrain with the chosen hyperparameters; grade the validation accuracy.

    The network is ``FullyConnectedNet(64, hidden_dims, 10, batchnorm=True,
    reg=reg)`` with Kaiming weights from a generator seeded with
    :data:`FINAL_SEED` under the course key, trained by
    ``trainlab.training.train`` on ``load_digits()`` (float64), shuffled by a
    generator of its own. No student code runs here: only the values are used.
    """
    g = Grader("final model")
    state: dict[str, Any] = {}

    def valid() -> None:
        state["hparams"] = _plain_hparams(best_hparams)

    def trained() -> None:
        hist, cpu = train_final(state["hparams"])
        state["hist"], state["cpu"] = hist, cpu
        if hist.diverged:
            raise Mistake(
                "training diverged (the loss became nan or inf): lower "
                "the learning rate"
            )

    def acc(threshold: float) -> Callable[[], None]:
        def check() -> None:
            val = state["hist"].val_acc[-1]
            if not val >= threshold:
                raise Mistake(
                    f"validation accuracy after the last epoch is {val:.4f}; "
                    f"needs {threshold:.2f}"
                )

        return check

    def budget() -> None:
        if state["cpu"] > CPU_BUDGET_S:
            raise Mistake(
                f"training took {state['cpu']:.1f} s of CPU time; the "
                f"budget is {CPU_BUDGET_S:.0f} s: fewer epochs or a "
                "smaller network"
            )

    g.check("best_hparams: a dict of plain values within the allowed ranges", 1, valid)
    g.check(
        "the network trains without diverging (seeded retraining)",
        1,
        trained,
        requires=["best_hparams: a dict of plain values within the allowed ranges"],
    )
    need = ["the network trains without diverging (seeded retraining)"]
    g.check("validation accuracy >= 0.90", 1, acc(0.90), requires=need, key=True)
    g.check(
        f"validation accuracy >= {TARGET_VAL_ACC:.2f}",
        1,
        acc(TARGET_VAL_ACC),
        requires=need,
    )
    g.check(f"within {CPU_BUDGET_S:.0f} s of CPU time", 1, budget, requires=need)
    report = g.report()
    if "hist" in state:
        print(
            f"retrained: val acc {state['hist'].val_acc[-1]:.4f}, "
            f"{state['cpu']:.1f} s CPU"
        )
    return report
