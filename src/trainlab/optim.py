r"""Update rules: one step of SGD, SGD with momentum, and Adam on one tensor.

Every rule has the signature ``next_w, config = rule(w, dw, config)``:

- ``w``: the current value of a parameter, ``dw`` its gradient (same shape);
- ``config``: a dict of hyperparameters (``"learning_rate"``, ...) and of the
  rule's state (velocity, moments); missing entries get their defaults.

The rule returns the new value and a *new* config dict holding the updated
state; the caller keeps that one for the next step, one config per parameter.
Neither ``w`` nor the caller's config is changed in place.

Convention: the same formulas as ``torch.optim.SGD`` and ``torch.optim.Adam``
(without weight decay; ``FullyConnectedNet`` adds L2 to the gradient itself).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Config = dict[str, object]
UpdateRule = Callable[
    [torch.Tensor, torch.Tensor, Config | None], tuple[torch.Tensor, Config]
]


def sgd(
    w: torch.Tensor, dw: torch.Tensor, config: Config | None = None
) -> tuple[torch.Tensor, Config]:
    r"""Vanilla stochastic gradient descent: $w \leftarrow w - \eta\, dw$.

    Args:
        w: parameter. dw: its gradient, same shape.
        config: ``learning_rate`` $\eta$ (default ``1e-2``).

    Returns:
        ``(next_w, config)``.
    """
    config = dict(config or {})
    lr = config.setdefault("learning_rate", 1e-2)
    return w - lr * dw, config


def sgd_momentum(
    w: torch.Tensor, dw: torch.Tensor, config: Config | None = None
) -> tuple[torch.Tensor, Config]:
    r"""SGD with momentum: a velocity that accumulates past gradients.

    $$v \leftarrow \rho\, v + dw, \qquad w \leftarrow w - \eta\, v$$

    Args:
        w: parameter. dw: its gradient, same shape.
        config: ``learning_rate`` $\eta$ (default ``1e-2``), ``momentum``
            $\rho$ (default 0.9), ``velocity`` $v$ (default zeros like ``w``).

    Returns:
        ``(next_w, config)`` with the new ``velocity``.

    Convention: torch's form (``torch.optim.SGD(momentum=rho)``). The lecture
    also writes $v \leftarrow \rho v - \eta\, dw$, $w \leftarrow w + v$: its $v$
    is $-\eta$ times this one, so both take the same steps at a constant
    learning rate.
    """
    config = dict(config or {})
    lr = config.setdefault("learning_rate", 1e-2)
    rho = config.setdefault("momentum", 0.9)
    v = config.get("velocity")
    v = rho * (torch.zeros_like(w) if v is None else v) + dw
    config["velocity"] = v
    return w - lr * v, config


def adam(
    w: torch.Tensor, dw: torch.Tensor, config: Config | None = None
) -> tuple[torch.Tensor, Config]:
    r"""Adam: momentum on the gradient, per-entry scaling by its running RMS.

    $$m \leftarrow \beta_1 m + (1 - \beta_1)\, dw, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2)\, dw^2,$$
    $$\hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t},
    \qquad w \leftarrow w - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}.$$

    The bias corrections make up for $m$ and $v$ starting at zero.

    Args:
        w: parameter. dw: its gradient, same shape.
        config: ``learning_rate`` $\eta$ (default ``1e-3``), ``beta1`` (0.9),
            ``beta2`` (0.999), ``epsilon`` (``1e-8``), and the state ``m``,
            ``v`` (default zeros like ``w``) and ``t`` (steps taken, default 0).

    Returns:
        ``(next_w, config)`` with the new ``m``, ``v`` and ``t``.

    Convention: as ``torch.optim.Adam``: $\epsilon$ is added to $\sqrt{\hat v}$,
    outside the square root.
    """
    config = dict(config or {})
    lr = config.setdefault("learning_rate", 1e-3)
    beta1 = config.setdefault("beta1", 0.9)
    beta2 = config.setdefault("beta2", 0.999)
    eps = config.setdefault("epsilon", 1e-8)
    m = config.get("m")
    v = config.get("v")
    m = torch.zeros_like(w) if m is None else m
    v = torch.zeros_like(w) if v is None else v
    t = int(config.get("t", 0)) + 1
    m = beta1 * m + (1 - beta1) * dw
    v = beta2 * v + (1 - beta2) * dw * dw
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    config.update(m=m, v=v, t=t)
    return w - lr * m_hat / (torch.sqrt(v_hat) + eps), config


UPDATE_RULES: dict[str, UpdateRule] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "adam": adam,
}
