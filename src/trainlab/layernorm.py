r"""Layer normalization: statistics per sample, over its trailing feature dims.

For one sample with features $x_1, \dots, x_M$ (the trailing ``gamma.dim()``
dims of ``x``, flattened):

$$\mu = \frac{1}{M}\sum_k x_k, \qquad
\sigma^2 = \frac{1}{M}\sum_k (x_k - \mu)^2, \qquad
y_k = \gamma_k \frac{x_k - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_k.$$

Unlike batch normalization there are no running statistics: training and test
time compute the same thing, and each sample is normalized on its own.
Convention: ``gamma.shape`` plays the role of torch's ``normalized_shape``.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = dict[str, Any]


def layernorm_forward(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, Cache]:
    r"""Layer normalization forward pass.

    Args:
        x: input; its trailing dims must equal ``gamma.shape``.
        gamma: elementwise scale, the normalized shape.
        beta: elementwise shift, same shape as ``gamma``.
        eps: added to the variance inside the square root (default 1e-5).

    Returns:
        ``(out, cache)`` for ``layernorm_backward``.

    Shape:
        x, out: (*, *S) with S = gamma.shape, e.g. (N, D) with gamma (D,);
        gamma, beta: S.

    Note:
        Biased variance (divide by M), as ``torch.nn.functional.layer_norm``.
        Statistics are per sample, so a batch of one is fine.
    """
    check_tensor(gamma, "gamma", min_ndim=1)
    check_tensor(x, "x", min_ndim=gamma.dim())
    check_tensor(beta, "beta")
    k = gamma.dim()
    if tuple(x.shape[x.dim() - k :]) != tuple(gamma.shape):
        raise ValueError(
            f"the trailing {k} dims of x must equal gamma.shape "
            f"{tuple(gamma.shape)} (the normalized shape); got x of shape "
            f"{tuple(x.shape)}"
        )
    check_shape(beta, "beta", gamma.shape)
    check_compatible(x, "x", gamma=gamma, beta=beta)

    dims = tuple(range(-k, 0))  # the normalized (trailing) dims
    mu = x.mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    xc = x - mu  # (*, *S)
    var = (xc * xc).mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    inv_std = 1.0 / torch.sqrt(var + eps)  # (*, 1, ..., 1)
    x_hat = xc.mul_(inv_std)  # (*, *S) in place: xc is our own temporary
    out = torch.addcmul(beta, x_hat, gamma)  # gamma * x_hat + beta

    cache = {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "dims": dims}
    return out, cache


def layernorm_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Layer normalization backward pass (closed form).

    With $g = \partial L / \partial \hat{x} = \gamma \, \partial L / \partial y$
    and means taken over the $M$ normalized features of each sample:

    $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
    \Big( g - \operatorname{mean}(g) - \hat{x}\,\operatorname{mean}(g\,\hat{x}) \Big),$$

    the batchnorm formula with the roles of samples and features swapped.
    $\partial L / \partial \gamma$ and $\partial L / \partial \beta$ sum over
    every leading (sample) position.

    Args:
        dout: upstream gradient $\partial L / \partial y$.
        cache: from ``layernorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        dout, dx: (*, *S); dgamma, dbeta: S.
    """
    x_hat, inv_std, gamma, dims = (
        cache["x_hat"],
        cache["inv_std"],
        cache["gamma"],
        cache["dims"],
    )
    check_tensor(dout, "dout")
    check_shape(dout, "dout", x_hat.shape)
    check_compatible(x_hat, "x", dout=dout)

    # sum over the leading dims; reshape also covers x with no leading dims
    dbeta = dout.reshape(-1, *gamma.shape).sum(dim=0)  # S
    dgamma = (dout * x_hat).reshape(-1, *gamma.shape).sum(dim=0)  # S

    g = dout * gamma  # (*, *S) gradient wrt x_hat
    g_mean = g.mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    gx_mean = (g * x_hat).mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    # dx = (g - g_mean - x_hat * gx_mean) * inv_std, computed in place on g
    # (our own temporary): fewer passes over memory and fewer allocations
    dx = g.sub_(g_mean).addcmul_(x_hat, gx_mean, value=-1.0).mul_(inv_std)
    return dx, dgamma, dbeta
