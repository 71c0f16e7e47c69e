r"""Instance normalization: statistics per sample *and* channel, over positions.

For sample $n$ and channel $c$, over the $M$ spatial positions $p$:

$$\mu_{nc} = \frac{1}{M}\sum_p x_{ncp}, \qquad
\sigma_{nc}^2 = \frac{1}{M}\sum_p (x_{ncp} - \mu_{nc})^2, \qquad
y_{ncp} = \gamma_c \frac{x_{ncp} - \mu_{nc}}{\sqrt{\sigma_{nc}^2 + \epsilon}}
+ \beta_c.$$

Used in style transfer: it removes each image's per-channel contrast. No running
statistics here (torch's ``use_input_stats=True``): train and test agree.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = dict[str, Any]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """(C,) -> (1, C, 1, ..., 1), to broadcast against an ``ndim``-dim input."""
    return t.reshape(1, -1, *([1] * (ndim - 2)))  # (1, C, 1, ..., 1)


def instancenorm_forward(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, Cache]:
    r"""Instance normalization forward pass.

    Args:
        x: input with at least one spatial dim, more than one position.
        gamma: scale, one per channel.
        beta: shift, one per channel.
        eps: added to the variance inside the square root (default 1e-5).

    Returns:
        ``(out, cache)`` for ``instancenorm_backward``.

    Shape:
        x, out: (N, C, *spatial), e.g. (N, C, H, W); gamma, beta: (C,).

    Raises:
        ValueError: wrong shapes, or a single spatial position (the variance
            would be 0 and the output just ``beta``; torch refuses it too).

    Note:
        Biased variance (divide by M), as ``torch.nn.functional.instance_norm``.
    """
    check_tensor(x, "x", min_ndim=3)
    c = x.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta)):
        check_tensor(t, name)
        check_shape(t, name, (c,))
    check_compatible(x, "x", gamma=gamma, beta=beta)
    if math.prod(x.shape[2:]) <= 1:
        raise ValueError(
            "instancenorm_forward needs more than 1 spatial position per channel "
            f"to compute a variance; got x of shape {tuple(x.shape)}"
        )

    dims = tuple(range(2, x.dim()))  # the spatial dims
    mu = x.mean(dim=dims, keepdim=True)  # (N, C, 1, ..., 1)
    xc = x - mu  # (N, C, *spatial)
    var = (xc * xc).mean(dim=dims, keepdim=True)  # (N, C, 1, ..., 1)
    inv_std = 1.0 / torch.sqrt(var + eps)  # (N, C, 1, ..., 1)
    x_hat = xc.mul_(inv_std)  # (N, C, *spatial) in place: xc is our temporary
    gamma_b = _per_channel(gamma, x.dim())  # (1, C, 1, ..., 1)
    out = torch.addcmul(_per_channel(beta, x.dim()), x_hat, gamma_b)

    cache = {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "dims": dims}
    return out, cache


def instancenorm_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Instance normalization backward pass (closed form).

    With $g = \gamma_c \, \partial L / \partial y$ and means over the $M$
    positions of each (sample, channel):

    $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma_{nc}^2 + \epsilon}}
    \Big( g - \operatorname{mean}(g) - \hat{x}\,\operatorname{mean}(g\,\hat{x}) \Big).$$

    Args:
        dout: upstream gradient $\partial L / \partial y$.
        cache: from ``instancenorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``; dgamma and dbeta sum over samples and positions.

    Shape:
        dout, dx: (N, C, *spatial); dgamma, dbeta: (C,).
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

    dbeta = dout.sum(dim=(0, *dims))  # (C,)
    dgamma = (dout * x_hat).sum(dim=(0, *dims))  # (C,)

    g = dout * _per_channel(gamma, dout.dim())  # (N, C, *spatial)
    g_mean = g.mean(dim=dims, keepdim=True)  # (N, C, 1, ..., 1)
    gx_mean = (g * x_hat).mean(dim=dims, keepdim=True)  # (N, C, 1, ..., 1)
    # dx = (g - g_mean - x_hat * gx_mean) * inv_std, computed in place on g
    # (our own temporary): fewer passes over memory and fewer allocations
    dx = g.sub_(g_mean).addcmul_(x_hat, gx_mean, value=-1.0).mul_(inv_std)
    return dx, dgamma, dbeta
