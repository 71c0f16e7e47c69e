r"""Group normalization: channels split into contiguous groups, stats per group.

The C channels are split into ``num_groups`` groups of $C/G$ consecutive
channels (channels ``0..C/G-1`` form group 0, and so on). For sample $n$ and
group $g$, over its $M = (C/G) \cdot \prod \text{spatial}$ values:

$$\mu_{ng} = \frac{1}{M}\sum x, \qquad
\sigma_{ng}^2 = \frac{1}{M}\sum (x - \mu_{ng})^2, \qquad
y_{nc\ldots} = \gamma_c \frac{x_{nc\ldots} - \mu_{ng}}{\sqrt{\sigma_{ng}^2 + \epsilon}}
+ \beta_c.$$

One group gives layer normalization over (C, *spatial); C groups give instance
normalization. The affine parameters stay per channel. No running statistics.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = dict[str, Any]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """(C,) -> (1, C, 1, ..., 1), to broadcast against an ``ndim``-dim input."""
    return t.reshape(1, -1, *([1] * (ndim - 2)))  # (1, C, 1, ..., 1)


def _check_groups(num_groups: int, num_channels: int) -> None:
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise TypeError(f"num_groups must be an int; got {type(num_groups).__name__}")
    if num_groups < 1 or num_channels % num_groups != 0:
        raise ValueError(
            f"num_groups must be a positive divisor of the number of channels "
            f"C={num_channels}; got num_groups={num_groups}"
        )


def groupnorm_forward(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    num_groups: int,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, Cache]:
    r"""Group normalization forward pass.

    Args:
        x: input.
        gamma: scale, one per channel.
        beta: shift, one per channel.
        num_groups: G, must divide C.
        eps: added to the variance inside the square root (default 1e-5).

    Returns:
        ``(out, cache)`` for ``groupnorm_backward``.

    Shape:
        x, out: (N, C, *spatial), e.g. (N, C, H, W); gamma, beta: (C,).

    Raises:
        ValueError: wrong shapes, or ``num_groups`` not dividing C.
        TypeError: ``num_groups`` not an int, or mismatched dtypes.

    Note:
        Groups are *contiguous* channels, as ``torch.nn.functional.group_norm``;
        biased variance (divide by M).
    """
    check_tensor(x, "x", min_ndim=2)
    n, c = x.shape[:2]
    _check_groups(num_groups, c)
    for name, t in (("gamma", gamma), ("beta", beta)):
        check_tensor(t, name)
        check_shape(t, name, (c,))
    check_compatible(x, "x", gamma=gamma, beta=beta)

    # consecutive channels are adjacent in memory, so each row is one group
    xg = x.reshape(n, num_groups, -1)  # (N, G, M)
    mu = xg.mean(dim=-1, keepdim=True)  # (N, G, 1)
    xc = xg - mu  # (N, G, M)
    var = (xc * xc).mean(dim=-1, keepdim=True)  # (N, G, 1)
    inv_std = 1.0 / torch.sqrt(var + eps)  # (N, G, 1)
    x_hat = xc.mul_(inv_std).reshape(x.shape)  # (N, C, *spatial)
    gamma_b = _per_channel(gamma, x.dim())  # (1, C, 1, ..., 1)
    out = torch.addcmul(_per_channel(beta, x.dim()), x_hat, gamma_b)

    cache = {
        "x_hat": x_hat,
        "inv_std": inv_std,
        "gamma": gamma,
        "num_groups": num_groups,
    }
    return out, cache


def groupnorm_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Group normalization backward pass (closed form).

    With $g = \gamma_c \, \partial L / \partial y$ and means over the $M$ values
    of each (sample, group):

    $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma_{ng}^2 + \epsilon}}
    \Big( g - \operatorname{mean}(g) - \hat{x}\,\operatorname{mean}(g\,\hat{x}) \Big).$$

    Args:
        dout: upstream gradient $\partial L / \partial y$.
        cache: from ``groupnorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``; dgamma and dbeta sum over samples and positions.

    Shape:
        dout, dx: (N, C, *spatial); dgamma, dbeta: (C,).
    """
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    check_tensor(dout, "dout")
    check_shape(dout, "dout", x_hat.shape)
    check_compatible(x_hat, "x", dout=dout)
    n = dout.shape[0]
    sum_dims = (0, *range(2, dout.dim()))  # all but the channel dim

    dbeta = dout.sum(dim=sum_dims)  # (C,)
    dgamma = (dout * x_hat).sum(dim=sum_dims)  # (C,)

    g = dout * _per_channel(gamma, dout.dim())  # (N, C, *spatial) wrt x_hat
    g = g.reshape(n, cache["num_groups"], -1)  # (N, G, M)
    xg_hat = x_hat.reshape(g.shape)  # (N, G, M)
    g_mean = g.mean(dim=-1, keepdim=True)  # (N, G, 1)
    gx_mean = (g * xg_hat).mean(dim=-1, keepdim=True)  # (N, G, 1)
    # dx = (g - g_mean - xg_hat * gx_mean) * inv_std, computed in place on g
    # (our own temporary): fewer passes over memory and fewer allocations
    dx = g.sub_(g_mean).addcmul_(xg_hat, gx_mean, value=-1.0).mul_(inv_std)
    return dx.reshape(dout.shape), dgamma, dbeta  # (N, C, *spatial)
