r"""Babysitting the learning process: the training loop and its sanity checks.

- ``train``: minibatch training with a chosen update rule, recording the loss
  of every iteration, train/validation accuracy after every epoch, and the
  update-to-weight ratio of every weight matrix at every iteration.
- ``initial_loss_check``: with small weights and no regularization the softmax
  loss starts at $\ln C$.
- ``overfit_small_subset``: a model that works can drive a tiny training set to
  100 % accuracy.

The model and its loss live in ``trainlab.net``, the update rules in
``trainlab.optim`` and hyperparameter search in ``trainlab.search``; the names
most used with training are re-exported here, so
``from trainlab.training import FullyConnectedNet, adam, softmax_loss`` works.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainlab.data import Split
from trainlab.net import FullyConnectedNet, softmax_loss
from trainlab.optim import UPDATE_RULES, adam, sgd, sgd_momentum

__all__ = [
    "FullyConnectedNet",
    "History",
    "UPDATE_RULES",
    "accuracy",
    "adam",
    "initial_loss_check",
    "overfit_small_subset",
    "sgd",
    "sgd_momentum",
    "softmax_loss",
    "train",
    "update_to_weight_ratio",
]


@dataclass
class History:
    """What ``train`` records, for the babysitting plots.

    Attributes:
        loss: the minibatch loss at every iteration.
        train_acc: accuracy on (a sample of) the training set after every epoch.
        val_acc: accuracy on the validation set after every epoch (``nan`` when
            the validation set is empty).
        update_ratio: for each weight matrix name (``"W1"``, ...), the
            update-to-weight ratio at every iteration.
        lr: the learning rate used in every epoch.
        diverged: True when the loss became ``nan`` or ``inf`` and training
            stopped early.
    """

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    update_ratio: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def best_val_acc(self) -> float:
        """The highest validation accuracy reached (``nan`` if none)."""
        finite = [a for a in self.val_acc if not math.isnan(a)]
        return max(finite) if finite else math.nan


def update_to_weight_ratio(w: torch.Tensor, update: torch.Tensor) -> float:
    r"""How big a step is next to the weights it changes: $\|\Delta W\| / \|W\|$.

    Norms are Frobenius norms. A rule of thumb from the lecture: around
    ``1e-3`` is healthy; much smaller means the learning rate is too low, much
    larger (``1e-1``) that it is too high.

    Args:
        w: the weights before the update.
        update: the change applied, ``next_w - w``.

    Returns:
        The ratio as a float (``inf`` when ``w`` is all zeros and the update is
        not, ``nan`` when both are zero).
    """
    return float(torch.linalg.vector_norm(update) / torch.linalg.vector_norm(w))


def accuracy(model: FullyConnectedNet, X: torch.Tensor, y: torch.Tensor) -> float:
    """Share of samples whose predicted class is ``y`` (``nan`` for no samples)."""
    if len(y) == 0:
        return math.nan
    return float((model.predict(X) == y).double().mean())


def train(
    model: FullyConnectedNet,
    data: Split,
    *,
    lr: float,
    epochs: int = 10,
    batch_size: int = 100,
    update: str = "adam",
    lr_decay: float = 1.0,
    generator: torch.Generator | None = None,
    verbose: bool = False,
    num_acc_samples: int = 1000,
) -> History:
    r"""Train ``model`` by minibatch gradient descent; ``model.params`` change.

    Each epoch shuffles the training set and walks through it in minibatches
    of ``batch_size`` (the last, incomplete minibatch is skipped; a new shuffle
    puts those samples elsewhere next epoch). After each epoch the learning rate
    is multiplied by ``lr_decay``. Training stops early if the loss is not finite.

    Args:
        model: a ``FullyConnectedNet`` (anything with ``params``, ``loss`` and
            ``predict`` works).
        data: a ``Split``; its inputs are cast to the model's dtype and device.
        lr: the initial learning rate.
        epochs: passes over the training data (default 10).
        batch_size: samples per minibatch (default 100; capped at the training
            set size).
        update: ``"adam"`` (default), ``"sgd"`` or ``"sgd_momentum"``, with that
            rule's default hyperparameters (see ``trainlab.optim``).
        lr_decay: factor applied to the learning rate after every epoch
            (default 1.0: constant).
        generator: random generator for shuffling and for the training-accuracy
            sample (default: torch's global one).
        verbose: print one line per epoch (default False).
        num_acc_samples: training accuracy is measured on a random sample of at
            most this many training samples (default 1000), to keep it cheap.

    Returns:
        A ``History``.
    """
    if update not in UPDATE_RULES:
        raise ValueError(
            f"update must be one of {sorted(UPDATE_RULES)}; got {update!r}"
        )
    rule = UPDATE_RULES[update]
    data = data.to(dtype=model.dtype, device=model.device)
    N = data.X_train.shape[0]
    batch_size = min(batch_size, N)
    iters_per_epoch = N // batch_size
    configs = {name: {"learning_rate": lr} for name in model.params}
    weights = [n for n, w in model.params.items() if n.startswith("W") and w.dim() == 2]
    hist = History(update_ratio={n: [] for n in weights})

    for epoch in range(epochs):
        hist.lr.append(lr)
        order = torch.randperm(N, generator=generator).to(model.device)
        for it in range(iters_per_epoch):
            idx = order[it * batch_size : (it + 1) * batch_size]
            loss, grads = model.loss(data.X_train[idx], data.y_train[idx])
            hist.loss.append(float(loss))
            if not math.isfinite(hist.loss[-1]):
                hist.diverged = True
                break
            for name, w in model.params.items():
                next_w, configs[name] = rule(w, grads[name], configs[name])
                if name in hist.update_ratio:
                    ratio = update_to_weight_ratio(w, next_w - w)
                    hist.update_ratio[name].append(ratio)
                model.params[name] = next_w
        sample = torch.randperm(N, generator=generator)[:num_acc_samples]
        sample = sample.to(model.device)
        hist.train_acc.append(
            accuracy(model, data.X_train[sample], data.y_train[sample])
        )
        hist.val_acc.append(accuracy(model, data.X_val, data.y_val))
        if verbose:
            print(
                f"epoch {epoch + 1}/{epochs}: loss {hist.loss[-1]:.4f}, "
                f"train acc {hist.train_acc[-1]:.3f}, val acc {hist.val_acc[-1]:.3f}, "
                f"lr {lr:.2e}"
            )
        if hist.diverged:
            break
        lr *= lr_decay
        for config in configs.values():
            config["learning_rate"] = lr
    return hist


def initial_loss_check(
    model: FullyConnectedNet, X: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    r"""The loss of a fresh model with regularization off, and what to expect.

    With small random weights every class gets about the same score, so
    $p_{y_i} \approx 1/C$ and the softmax loss is about $-\ln(1/C) = \ln C$
    ($\ln 10 \approx 2.303$). A loss far from it points at a bug in the loss or
    at weights that are not small. Turning regularization back on must then
    raise the loss.

    The model is left as it was: ``reg`` and the batchnorm running statistics
    are restored.

    Args:
        model: the model to check (``reg`` is set to 0 for the check only).
        X, y: a batch of data.

    Returns:
        ``(loss, expected)``, both floats, ``expected = ln C``.
    """
    reg, saved = model.reg, [(m.clone(), v.clone()) for m, v in model.bn_state]
    model.reg = 0.0
    try:
        X = X.to(dtype=model.dtype, device=model.device)
        loss, _ = model.loss(X, y.to(model.device))
    finally:
        model.reg = reg
        for (m, v), (m0, v0) in zip(model.bn_state, saved, strict=True):
            m.copy_(m0)
            v.copy_(v0)
    return float(loss), math.log(model.num_classes)


def overfit_small_subset(
    model_factory: Callable[[], FullyConnectedNet],
    data: Split,
    num_samples: int = 20,
    *,
    lr: float = 1e-2,
    epochs: int = 50,
    update: str = "adam",
    generator: torch.Generator | None = None,
    verbose: bool = False,
) -> History:
    """Train a fresh model on the first ``num_samples`` training samples only.

    The lecture's sanity check before any real training: with regularization
    off, a model and a loss that work reach 100 % training accuracy (and a loss
    near 0) on a handful of samples, while validation accuracy stays low.

    Args:
        model_factory: builds a fresh model; give it ``reg=0``.
        data: a ``Split``; its validation set is kept to show the gap.
        num_samples: how many training samples to keep (default 20).
        lr: learning rate (default ``1e-2``).
        epochs: full-batch steps, one per epoch (default 50).
        update: the update rule (default ``"adam"``).
        generator, verbose: as in ``train``.

    Returns:
        The ``History``; ``history.train_acc[-1]`` should be 1.0.
    """
    small = Split(
        data.X_train[:num_samples],
        data.y_train[:num_samples],
        data.X_val,
        data.y_val,
        data.X_test,
        data.y_test,
    )
    return train(
        model_factory(),
        small,
        lr=lr,
        epochs=epochs,
        batch_size=num_samples,
        update=update,
        generator=generator,
        verbose=verbose,
    )
