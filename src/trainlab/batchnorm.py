r"""Batch normalization for fully connected layers: forward and two backward passes.

Forward, for a minibatch ``x`` of shape (N, D), per feature $j$:

$$\mu_j = \frac{1}{N}\sum_i x_{ij}, \qquad
\sigma_j^2 = \frac{1}{N}\sum_i (x_{ij} - \mu_j)^2, \qquad
\hat{x}_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}, \qquad
y_{ij} = \gamma_j \hat{x}_{ij} + \beta_j.$$

``batchnorm_backward`` walks the computational graph node by node;
``batchnorm_backward_alt`` uses the simplified closed form. Both take the same
cache and return the same gradients.

Convention (as in ``torch.nn.functional.batch_norm``): the batch is normalized
with the *biased* variance (divide by N), but ``running_var`` is updated with the
*unbiased* one (divide by N - 1). Running averages follow torch's momentum:
``running = (1 - momentum) * running + momentum * batch_statistic``.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = dict[str, Any]


def _check_params(x: torch.Tensor, num_features: int, **params: torch.Tensor) -> None:
    """Check that every per-feature parameter has shape (num_features,)."""
    for name, t in params.items():
        check_tensor(t, name)
        check_shape(t, name, (num_features,))
    check_compatible(x, "x", **params)


def _check_batch_size(count: int, x: torch.Tensor, fn: str) -> None:
    r"""Refuse a training-mode batch with a single value per feature.

    With one value the batch variance is 0 (so $\hat{x} = 0$) and the unbiased
    variance for the running average divides by $N - 1 = 0$; torch refuses it too.
    """
    if count <= 1:
        raise ValueError(
            f"{fn} in training mode needs more than 1 value per feature to "
            f"compute a batch variance; got x of shape {tuple(x.shape)}. "
            "Use a batch of at least 2 samples, or training=False to normalize "
            "with the running statistics."
        )


def batchnorm_forward(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    *,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, Cache]:
    r"""Batch normalization forward pass.

    Training mode normalizes with the batch statistics and updates the running
    statistics in place:

    $$\text{running\_mean} \leftarrow (1 - m)\,\text{running\_mean} + m\,\mu,
    \qquad
    \text{running\_var} \leftarrow (1 - m)\,\text{running\_var}
    + m\,\frac{N}{N - 1}\sigma^2.$$

    Eval mode normalizes with ``running_mean`` and ``running_var`` and never
    changes them, so each sample's output depends on that sample alone.

    Args:
        x: input minibatch.
        gamma: scale, one per feature.
        beta: shift, one per feature.
        running_mean: running average of the batch means; updated in place
            when ``training`` (start it at zeros).
        running_var: running average of the unbiased batch variances; updated
            in place when ``training`` (start it at ones).
        training: use batch statistics (True, default) or running ones (False).
        momentum: weight of the new batch statistic in the running average
            (default 0.1, torch's convention).
        eps: added to the variance inside the square root (default 1e-5).

    Returns:
        ``(out, cache)``: the normalized, scaled and shifted output, and what
        ``batchnorm_backward`` and ``batchnorm_backward_alt`` need.

    Shape:
        x: (N, D); gamma, beta, running_mean, running_var: (D,); out: (N, D).

    Raises:
        ValueError: wrong shapes, or N == 1 in training mode.
        TypeError: tensors of different dtypes (or not floating point).

    Note:
        Biased variance (divide by N) to normalize, unbiased (divide by N - 1)
        for ``running_var``: the same convention as torch.
    """
    check_tensor(x, "x", ndim=2)
    n, d = x.shape
    _check_params(
        x, d, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var
    )

    if training:
        _check_batch_size(n, x, "batchnorm_forward")
        # the nodes of the computational graph, numbered as in batchnorm_backward
        mu = x.mean(dim=0)  # (D,) node 1
        xc = x - mu  # (N, D) node 2
        var = (xc * xc).mean(dim=0)  # (D,) nodes 3 and 4, biased
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mu, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var, alpha=momentum * n / (n - 1))
    else:
        # constants: the running statistics, left as they are
        mu = running_mean  # (D,)
        xc = x - mu  # (N, D)
        var = running_var  # (D,)
    std = torch.sqrt(var + eps)  # (D,) node 5
    inv_std = 1.0 / std  # (D,) node 6
    # in place: xc is our own temporary, and the backward pass recomputes it
    # from x and mu, which saves holding one more (N, D) tensor
    x_hat = xc.mul_(inv_std)  # (N, D) node 7
    out = torch.addcmul(beta, x_hat, gamma)  # (N, D) node 8: gamma * x_hat + beta

    cache = {
        "training": training,
        "x": x,
        "mu": mu,
        "std": std,
        "inv_std": inv_std,
        "x_hat": x_hat,
        "gamma": gamma,
    }
    return out, cache


def _check_dout(dout: torch.Tensor, cache: Cache) -> None:
    check_tensor(dout, "dout")
    check_shape(dout, "dout", cache["x_hat"].shape)
    check_compatible(cache["x_hat"], "x", dout=dout)


def batchnorm_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Batch normalization backward pass through the computational graph.

    The forward pass is split into elementary nodes; this walks them in
    reverse, applying the chain rule at each one:

    1. $\mu = \frac{1}{N}\sum_i x_i$
    2. $x_c = x - \mu$
    3. $s = x_c^2$
    4. $\sigma^2 = \frac{1}{N}\sum_i s_i$
    5. $\text{std} = \sqrt{\sigma^2 + \epsilon}$
    6. $r = 1 / \text{std}$
    7. $\hat{x} = x_c \, r$
    8. $y = \gamma \hat{x} + \beta$

    In eval mode $\mu$ and $\sigma^2$ are the running statistics, constants
    with respect to ``x``, so nodes 1 to 6 carry no gradient back to ``x``.

    Args:
        dout: upstream gradient $\partial L / \partial y$.
        cache: from ``batchnorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        dout, dx: (N, D); dgamma, dbeta: (D,).
    """
    _check_dout(dout, cache)
    std, inv_std = cache["std"], cache["inv_std"]
    x_hat, gamma = cache["x_hat"], cache["gamma"]
    n = dout.shape[0]

    # 8. y = gamma * x_hat + beta: gamma and beta are broadcast over the batch
    dbeta = dout.sum(dim=0)  # (D,)
    dgamma = (dout * x_hat).sum(dim=0)  # (D,)
    dx_hat = dout * gamma  # (N, D)

    # 7. x_hat = xc * r: xc feeds both this node and node 3
    dxc = dx_hat * inv_std  # (N, D)
    if not cache["training"]:
        # 2. xc = x - running_mean, a constant shift
        return dxc, dgamma, dbeta
    xc = cache["x"] - cache["mu"]  # (N, D) node 2, recomputed
    dr = (dx_hat * xc).sum(dim=0)  # (D,) r was broadcast over the batch

    # 6. r = 1 / std
    dstd = -dr / (std * std)  # (D,)

    # 5. std = sqrt(var + eps)
    dvar = dstd * 0.5 / std  # (D,)

    # 4. var = mean_i s: each s_ij receives dvar_j / N
    ds = dvar / n  # (D,) broadcast over the batch below

    # 3. s = xc ** 2: the second path into xc
    dxc = dxc + 2.0 * xc * ds  # (N, D)

    # 2. xc = x - mu: x gets dxc directly, mu the batch sum with a minus sign
    dmu = -dxc.sum(dim=0)  # (D,)

    # 1. mu = mean_i x: each x_ij receives dmu_j / N
    dx = dxc + dmu / n  # (N, D)
    return dx, dgamma, dbeta


def batchnorm_backward_alt(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Batch normalization backward pass in closed form.

    Write $g_i = \partial L / \partial y_i$ for the upstream gradient of sample
    $i$ (one feature; every feature is independent). Simplifying the graph's
    chain rule in training mode gives

    $$\frac{\partial L}{\partial \beta} = \sum_k g_k, \qquad
    \frac{\partial L}{\partial \gamma} = \sum_k g_k \hat{x}_k,$$

    $$\frac{\partial L}{\partial x_i}
    = \frac{\gamma}{N \sqrt{\sigma^2 + \epsilon}}
    \Big( N g_i - \sum_k g_k - \hat{x}_i \sum_k g_k \hat{x}_k \Big)
    = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}
    \Big( g_i - \frac{1}{N}\frac{\partial L}{\partial \beta}
    - \frac{\hat{x}_i}{N}\frac{\partial L}{\partial \gamma} \Big).$$

    The two subtracted terms are the paths through the mean and through the
    variance, which depend on every $x_k$. In eval mode both are constants and
    $\partial L / \partial x_i = \gamma g_i / \sqrt{\text{running\_var} + \epsilon}$.

    Args:
        dout: upstream gradient $\partial L / \partial y$.
        cache: from ``batchnorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``, equal to ``batchnorm_backward``'s.

    Shape:
        dout, dx: (N, D); dgamma, dbeta: (D,).
    """
    _check_dout(dout, cache)
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    n = dout.shape[0]

    dbeta = dout.sum(dim=0)  # (D,)
    dx = dout * x_hat  # (N, D) scratch for dgamma, then overwritten by dx
    dgamma = dx.sum(dim=0)  # (D,)
    scale = gamma * inv_std  # (D,)
    if not cache["training"]:
        return torch.mul(dout, scale, out=dx), dgamma, dbeta
    # dx = scale * dout - scale * dbeta / N - x_hat * (scale * dgamma / N),
    # written as two fused passes into the scratch buffer
    torch.addcmul(-scale * dbeta / n, dout, scale, out=dx)
    dx.addcmul_(x_hat, scale * dgamma / n, value=-1.0)
    return dx, dgamma, dbeta
