"""Training: loss, network gradients vs autograd, update rules vs torch.optim,
the training loop, its sanity checks and hyperparameter search."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from trainlab.data import Split, load_digit_images, load_digits
from trainlab.net import FullyConnectedNet, softmax_loss
from trainlab.optim import adam, sgd, sgd_momentum
from trainlab.search import learning_rate_search, log_uniform, random_search
from trainlab.training import (
    History,
    initial_loss_check,
    overfit_small_subset,
    train,
    update_to_weight_ratio,
)

pytestmark = pytest.mark.training

f64 = torch.float64


@pytest.fixture(scope="module")
def digits() -> Split:
    return load_digits()


# ---------------------------------------------------------------- softmax loss


def test_softmax_loss_matches_cross_entropy_and_autograd(device, gen):
    scores = (3 * torch.randn(7, 5, generator=gen, dtype=f64)).to(device)
    y = torch.randint(0, 5, (7,), generator=gen).to(device)
    loss, dscores = softmax_loss(scores, y)
    s = scores.clone().requires_grad_(True)
    ref = F.cross_entropy(s, y)
    ref.backward()
    assert loss.dim() == 0
    assert_close(loss, ref, what="loss")
    assert_close(dscores, s.grad, what="dscores")


def test_softmax_loss_is_stable_for_large_scores():
    scores = torch.tensor([[1000.0, 0.0, -1000.0], [5e3, 5e3, 0.0]], dtype=f64)
    y = torch.tensor([1, 0])
    loss, dscores = softmax_loss(scores, y)
    assert torch.isfinite(loss) and torch.isfinite(dscores).all()
    assert_close(loss, F.cross_entropy(scores, y))


def test_softmax_loss_label_errors():
    scores = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"labels must lie in 0..3"):
        softmax_loss(scores, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match=r"int64 class indices of shape \(3,\)"):
        softmax_loss(scores, torch.tensor([0, 1]))


# ---------------------------------------------------------------- network vs autograd


def torch_reference(net: FullyConnectedNet, X, y, running):
    """The same network as a torch graph; returns loss and leaf parameters."""
    params = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    h = X
    for layer in range(1, net.num_layers):
        h = h @ params[f"W{layer}"] + params[f"b{layer}"]
        if net.batchnorm:
            rm, rv = running[layer - 1]
            h = F.batch_norm(
                h, rm, rv, params[f"gamma{layer}"], params[f"beta{layer}"],
                training=True, momentum=0.1, eps=1e-5,
            )  # fmt: skip
        h = F.relu(h)
    L = net.num_layers
    scores = h @ params[f"W{L}"] + params[f"b{L}"]
    loss = F.cross_entropy(scores, y)
    loss = loss + 0.5 * net.reg * sum(
        (params[f"W{i}"] ** 2).sum() for i in range(1, L + 1)
    )
    loss.backward()
    return loss, params


@pytest.mark.parametrize("batchnorm", [False, True])
def test_network_gradients_match_autograd(device, gen, batchnorm):
    net = FullyConnectedNet(
        6, [9, 7], 4, batchnorm=batchnorm, reg=0.3, generator=gen, device=device
    )
    # random gamma and beta, not 1 and 0, so their gradients matter
    for k in net.params:
        if k.startswith(("gamma", "beta", "b")):
            shape = net.params[k].shape
            net.params[k] = torch.randn(shape, generator=gen, dtype=f64).to(device)
    X = (5 * torch.randn(8, 6, generator=gen, dtype=f64) + 2).to(device)
    y = torch.randint(0, 4, (8,), generator=gen).to(device)
    running = [(m.clone(), v.clone()) for m, v in net.bn_state]
    loss, grads = net.loss(X, y)
    ref_loss, ref_params = torch_reference(net, X, y, running)
    assert_close(loss, ref_loss, what="loss")
    assert set(grads) == set(net.params)
    for name, p in ref_params.items():
        assert grads[name].shape == p.shape
        is_bias = name[0] == "b" and name[1:].isdigit()
        if batchnorm and is_bias and name != f"b{net.num_layers}":
            # a bias right before batchnorm is subtracted out again: zero gradient
            assert grads[name].abs().max() < 1e-12 and p.grad.abs().max() < 1e-12
            continue
        assert_close(grads[name], p.grad, what=f"d{name}")
    # running statistics updated like F.batch_norm, and kept out of params
    assert len(net.bn_state) == (2 if batchnorm else 0)
    for (m, v), (rm, rv) in zip(net.bn_state, running, strict=True):
        assert_close(m, rm, what="running_mean")
        assert_close(v, rv, what="running_var")
    assert not any("running" in k for k in net.params)


def test_eval_mode_uses_running_statistics(gen):
    net = FullyConnectedNet(5, [6], 3, batchnorm=True, generator=gen)
    X = torch.randn(10, 5, generator=gen, dtype=f64) * 3 + 1
    net.loss(X, torch.zeros(10, dtype=torch.int64))  # one training pass
    state = [(m.clone(), v.clone()) for m, v in net.bn_state]
    scores = net.loss(X)
    p = net.params
    rm, rv = state[0]
    h = F.batch_norm(X @ p["W1"] + p["b1"], rm, rv, p["gamma1"], p["beta1"])
    ref = F.relu(h) @ p["W2"] + p["b2"]
    assert_close(scores, ref, what="eval scores")
    for (m, v), (m0, v0) in zip(net.bn_state, state, strict=True):
        assert torch.equal(m, m0) and torch.equal(v, v0), "eval changed bn_state"
    assert torch.equal(net.predict(X), ref.argmax(1))


def test_network_init_and_images(gen):
    net = FullyConnectedNet(64, [200], 10, generator=gen)
    assert net.params["W1"].shape == (64, 200) and net.params["W1"].dtype == f64
    assert abs(float(net.params["W1"].std()) - math.sqrt(2 / 64)) < 0.01
    assert abs(float(net.params["W2"].std()) - math.sqrt(1 / 200)) < 0.01
    assert (net.params["b1"] == 0).all()
    small = FullyConnectedNet(64, [200], 10, weight_scale=1e-2, generator=gen)
    assert abs(float(small.params["W1"].std()) - 1e-2) < 1e-3
    # images are flattened: (N, 1, 8, 8) works like (N, 64)
    X = load_digit_images().X_train[:5].double()
    assert torch.equal(net.predict(X), net.predict(X.reshape(5, 64)))
    with pytest.raises(ValueError, match="64 features per sample"):
        net.loss(torch.zeros(2, 10, dtype=f64))


# ---------------------------------------------------------------- update rules


def quadratic(gen):
    A = torch.randn(4, 4, generator=gen, dtype=f64)
    A = A @ A.T + torch.eye(4, dtype=f64)  # positive definite
    b = torch.randn(4, generator=gen, dtype=f64)
    w0 = torch.randn(4, generator=gen, dtype=f64)
    return A, b, w0


@pytest.mark.parametrize(
    "rule, make_opt, config",
    [
        (sgd, lambda p: torch.optim.SGD([p], lr=0.05), {"learning_rate": 0.05}),
        (
            sgd_momentum,
            lambda p: torch.optim.SGD([p], lr=0.03, momentum=0.8),
            {"learning_rate": 0.03, "momentum": 0.8},
        ),
        (
            adam,
            lambda p: torch.optim.Adam([p], lr=0.1, betas=(0.8, 0.95), eps=1e-6),
            {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6},
        ),
    ],
)
def test_update_rules_match_torch_optim(gen, rule, make_opt, config):
    A, b, w0 = quadratic(gen)
    p = w0.clone().requires_grad_(True)
    opt = make_opt(p)
    w = w0.clone()
    for step in range(6):
        opt.zero_grad()
        (0.5 * p @ A @ p - b @ p).backward()
        opt.step()
        dw = A @ w - b
        w_in, w_copy = w, w.clone()
        w, config = rule(w_in, dw, config)
        assert torch.equal(w_in, w_copy), "w must not change in place"
        assert_close(w, p.detach(), what=f"{rule.__name__} step {step}")


def test_update_rule_defaults_and_no_in_place_change():
    w, dw = torch.ones(3, dtype=f64), torch.full((3,), 2.0, dtype=f64)
    config = {"learning_rate": 0.1}
    w1, c1 = adam(w, dw, config)
    assert config == {"learning_rate": 0.1}, "caller's config must not change"
    assert torch.equal(w, torch.ones(3, dtype=f64))
    assert c1["t"] == 1 and c1["beta1"] == 0.9 and c1["beta2"] == 0.999
    # Adam's first step has size lr in every coordinate, whatever the gradient
    assert_close(w - w1, torch.full((3,), 0.1, dtype=f64), tol=1e-7)
    assert sgd(w, dw)[1]["learning_rate"] == 1e-2
    assert sgd_momentum(w, dw)[1]["momentum"] == 0.9


# ---------------------------------------------------------------- training loop


def test_initial_loss_is_ln_c_and_check_has_no_side_effects(digits):
    net = FullyConnectedNet(
        64, [50], 10, batchnorm=True, weight_scale=1e-3, reg=10.0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    state = [(m.clone(), v.clone()) for m, v in net.bn_state]
    loss, expected = initial_loss_check(net, digits.X_train, digits.y_train)
    assert expected == pytest.approx(math.log(10))
    assert abs(loss - expected) < 1e-2
    assert net.reg == 10.0
    for (m, v), (m0, v0) in zip(net.bn_state, state, strict=True):
        assert torch.equal(m, m0) and torch.equal(v, v0)
    # regularization on raises the loss
    X = digits.X_train.double()
    assert float(net.loss(X, digits.y_train)[0]) > loss


def test_overfit_twenty_samples(digits):
    def factory():
        return FullyConnectedNet(
            64, [100, 100], 10, generator=torch.Generator().manual_seed(0)
        )

    hist = overfit_small_subset(
        factory,
        digits,
        num_samples=20,
        epochs=30,
        generator=torch.Generator().manual_seed(0),
    )
    assert hist.train_acc[-1] == 1.0
    assert hist.loss[-1] < 0.01
    assert hist.val_acc[-1] < 0.9  # 20 samples do not generalize


@pytest.mark.parametrize("batchnorm", [False, True])
def test_train_on_digits_reaches_90_percent(digits, batchnorm):
    net = FullyConnectedNet(
        64, [100], 10, batchnorm=batchnorm, dtype=torch.float32,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    hist = train(
        net, digits, lr=3e-3, epochs=4, batch_size=50, lr_decay=0.9,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert isinstance(hist, History)
    iters = len(digits.X_train) // 50
    assert len(hist.loss) == 4 * iters
    assert len(hist.train_acc) == len(hist.val_acc) == 4
    assert hist.lr == pytest.approx([3e-3 * 0.9**e for e in range(4)])
    assert set(hist.update_ratio) == {"W1", "W2"}
    assert all(len(r) == 4 * iters for r in hist.update_ratio.values())
    assert hist.val_acc[-1] > 0.9, hist.val_acc
    assert sum(hist.loss[-10:]) < sum(hist.loss[:10])
    assert 1e-5 < hist.update_ratio["W1"][-1] < 1e-1
    acc_test = float((net.predict(digits.X_test) == digits.y_test).float().mean())
    assert acc_test > 0.85


def test_update_ratio_is_recorded_per_step(digits):
    net = FullyConnectedNet(64, [10], 10, generator=torch.Generator().manual_seed(1))
    W1 = net.params["W1"].clone()
    small = Split(digits.X_train[:40], digits.y_train[:40], *(digits.X_val,
                  digits.y_val, digits.X_test, digits.y_test))  # fmt: skip
    X = small.X_train.double()
    _, grads = net.loss(X, small.y_train)
    hist = train(net, small, lr=0.5, epochs=1, batch_size=40, update="sgd")
    expected = 0.5 * grads["W1"].norm() / W1.norm()
    assert hist.update_ratio["W1"][0] == pytest.approx(float(expected), rel=1e-10)
    assert update_to_weight_ratio(W1, net.params["W1"] - W1) == pytest.approx(
        float(expected), rel=1e-10
    )
    assert update_to_weight_ratio(torch.ones(4), torch.full((4,), 1e-3)) == (
        pytest.approx(1e-3)
    )


def test_train_stops_when_loss_diverges(digits):
    net = FullyConnectedNet(
        64, [50], 10, dtype=torch.float32, generator=torch.Generator().manual_seed(0)
    )
    hist = train(net, digits, lr=1e38, epochs=3, update="sgd")
    assert hist.diverged
    assert len(hist.loss) < 3 * (len(digits.X_train) // 100)
    assert not math.isfinite(hist.loss[-1])
    with pytest.raises(ValueError, match="update must be one of"):
        train(net, digits, lr=1e-3, update="rmsprop")


# ---------------------------------------------------------------- search


def test_log_uniform_bounds_and_log_uniformity():
    x = log_uniform(1e-6, 1e-1, 20000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000,) and x.dtype == f64
    assert x.min() >= 1e-6 and x.max() <= 1e-1
    # median at the geometric mean, 10 ** -3.5 (a plain uniform draw gives ~0.05)
    assert abs(math.log10(float(x.median())) + 3.5) < 0.05
    # every decade gets the same share
    counts = torch.histc(torch.log10(x), bins=5, min=-6, max=-1)
    assert (counts / 20000 - 0.2).abs().max() < 0.02
    assert log_uniform(1e-3, 1.0, (2, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match="0 < low < high"):
        log_uniform(0.0, 1.0, 3)


def test_random_search_sorted_and_respects_space():
    space = {"lr": (1e-5, 1e-1, "log"), "momentum": (0.5, 0.99, "linear")}
    seen = []

    def score(h):
        seen.append(h)
        return -((math.log10(h["lr"]) + 3) ** 2) - (h["momentum"] - 0.9) ** 2

    results = random_search(score, space, 40, torch.Generator().manual_seed(0))
    assert len(results) == 40 and len(seen) == 40
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)
    for h, s in results:
        assert set(h) == {"lr", "momentum"}
        assert 1e-5 <= h["lr"] <= 1e-1 and 0.5 <= h["momentum"] <= 0.99
        assert s == score(h)
    # lr sampled on a log scale: several trials below 1e-3 (uniform: ~1 %)
    assert sum(h["lr"] < 1e-3 for h in seen) >= 15
    assert abs(math.log10(results[0][0]["lr"]) + 3) < 0.5
    again = random_search(score, space, 40, torch.Generator().manual_seed(0))
    assert [h for h, _ in again] == [h for h, _ in results]


def test_random_search_minimize_nan_last_and_errors():
    values = iter([3.0, math.nan, 1.0, 2.0])
    res = random_search(lambda h: next(values), {"x": (0.0, 1.0, "linear")}, 4,
                        maximize=False)  # fmt: skip
    assert [s for _, s in res][:3] == [1.0, 2.0, 3.0] and math.isnan(res[-1][1])
    with pytest.raises(ValueError, match="low > 0 on a log scale"):
        random_search(lambda h: 0.0, {"lr": (0.0, 1.0, "log")}, 1)
    with pytest.raises(ValueError, match='"log" | "linear"'):
        random_search(lambda h: 0.0, {"lr": (1e-3, 1.0, "exp")}, 1)


def test_learning_rate_search(digits):
    def factory():
        return FullyConnectedNet(
            64, [50], 10, generator=torch.Generator().manual_seed(0)
        )

    res = learning_rate_search(factory, digits, low=1e-6, high=1e-2, num=3)
    lrs = [lr for lr, _, _ in res]
    assert lrs == pytest.approx([1e-6, 1e-4, 1e-2])
    losses = [loss for _, loss, _ in res]
    assert losses[2] < losses[0] - 0.3  # 1e-2 learns, 1e-6 barely moves
    assert res[2][2] > 0.5
