r"""Hyperparameter search: random search on log scales, a coarse learning-rate sweep.

The lecture's advice: search in stages, coarse then fine; sample learning rates
and regularization strengths **log-uniformly** (a step from ``1e-4`` to ``1e-3``
matters as much as one from ``1e-3`` to ``1e-2``); prefer **random search** to
grid search, because when only a few hyperparameters matter, random trials try
many more distinct values of each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from trainlab.data import Split
from trainlab.net import FullyConnectedNet
from trainlab.training import train


def log_uniform(
    low: float,
    high: float,
    size: int | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Samples spread evenly over orders of magnitude between ``low`` and ``high``.

    $$x = 10^{u}, \qquad u \sim U(\log_{10} \text{low}, \log_{10} \text{high})$$

    so $\log x$ is uniform: each decade gets the same share of samples, and the
    median is the geometric mean $\sqrt{\text{low} \cdot \text{high}}$.

    Args:
        low, high: bounds, ``0 < low < high``.
        size: number of samples, or a shape.
        generator: random generator (default: torch's global one).
        dtype: floating dtype of the result (default ``torch.float64``).

    Returns:
        A tensor of samples in ``[low, high]`` (on the CPU).
    """
    if not 0 < low < high:
        raise ValueError(
            f"log_uniform needs 0 < low < high; got low={low}, high={high}"
        )
    shape = (size,) if isinstance(size, int) else tuple(size)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    exponent = math.log10(low) + (math.log10(high) - math.log10(low)) * u
    return (10.0**exponent).clamp(low, high).to(dtype)


def _sample(
    low: float, high: float, scale: str, generator: torch.Generator | None
) -> float:
    if scale == "log":
        return float(log_uniform(low, high, 1, generator=generator)[0])
    u = float(torch.rand(1, generator=generator, dtype=torch.float64)[0])
    return low + (high - low) * u


def random_search(
    build_and_train: Callable[[dict[str, float]], float],
    space: Mapping[str, tuple[float, float, str]],
    num_trials: int,
    generator: torch.Generator | None = None,
    *,
    maximize: bool = True,
) -> list[tuple[dict[str, float], float]]:
    r"""Try ``num_trials`` random settings and rank them by score.

    Each trial draws every hyperparameter independently from its range, calls
    ``build_and_train(hparams)`` and records the score it returns (typically
    the validation accuracy after a few epochs).

    Args:
        build_and_train: takes a dict ``name -> value``, trains a model and
            returns a score.
        space: ``name -> (low, high, scale)``; ``scale`` is ``"log"`` (sampled
            with ``log_uniform``, for learning rates and regularization) or
            ``"linear"`` (uniform, for e.g. dropout or momentum).
        num_trials: how many settings to try.
        generator: random generator (default: torch's global one).
        maximize: higher scores are better (default True); False for losses.

    Returns:
        ``[(hparams, score), ...]`` sorted best first; a ``nan`` score (a run
        that diverged) comes last.
    """
    for name, spec in space.items():
        if len(spec) != 3 or spec[2] not in ("log", "linear"):
            raise ValueError(
                f'space[{name!r}] must be (low, high, "log" | "linear"); got {spec!r}'
            )
        low, high, scale = spec
        if not low < high or (scale == "log" and low <= 0):
            raise ValueError(
                f"space[{name!r}] needs low < high (and low > 0 on a log scale); "
                f"got {spec!r}"
            )
    results = []
    for _ in range(num_trials):
        hparams = {
            n: _sample(lo, hi, sc, generator) for n, (lo, hi, sc) in space.items()
        }
        results.append((hparams, float(build_and_train(hparams))))

    def key(item: tuple[dict[str, float], float]) -> tuple[bool, float]:
        score = item[1]
        return (math.isnan(score), -score if maximize else score)

    return sorted(results, key=key)


def learning_rate_search(
    model_factory: Callable[[], FullyConnectedNet],
    data: Split,
    *,
    low: float = 1e-6,
    high: float = 1e-1,
    num: int = 6,
    epochs: int = 1,
    batch_size: int = 100,
    update: str = "adam",
    seed: int = 0,
) -> list[tuple[float, float, float]]:
    r"""A coarse sweep of log-spaced learning rates, a short run for each.

    The lecture's first step of hyperparameter search: find a learning rate that
    makes the loss go down within a few iterations. Too small: the loss barely
    moves; too large: it explodes to ``nan`` or ``inf``.

    Args:
        model_factory: builds a fresh model for every learning rate.
        data: a ``Split``.
        low, high: the range (default ``1e-6`` .. ``1e-1``).
        num: how many learning rates, evenly spaced in $\log_{10}$ (default 6:
            one per decade with the default range).
        epochs, batch_size, update: passed to ``train`` (defaults 1, 100,
            ``"adam"``).
        seed: seeds the shuffling, the same for every learning rate (default 0).

    Returns:
        ``[(lr, final_loss, val_acc), ...]`` in increasing ``lr``;
        ``final_loss`` is the mean loss of the last 10 iterations (``inf`` if
        the run diverged) and ``val_acc`` the last validation accuracy.
    """
    if not 0 < low < high or num < 2:
        raise ValueError(
            f"need 0 < low < high and num >= 2; got low={low}, high={high}, num={num}"
        )
    lrs = torch.logspace(math.log10(low), math.log10(high), num, dtype=torch.float64)
    results = []
    for lr in lrs.tolist():
        hist = train(
            model_factory(),
            data,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            update=update,
            generator=torch.Generator().manual_seed(seed),
        )
        last = hist.loss[-10:]
        final = math.inf if hist.diverged else sum(last) / len(last)
        results.append((lr, final, hist.val_acc[-1]))
    return results
