"""Spatial batch normalization for convolutional feature maps (N, C, H, W).

Each channel is one feature: its statistics are taken over the batch *and* the
spatial positions, $n = N H W$ values per channel. The implementation moves the
channels last and reuses the fully connected ``batchnorm_forward`` /
``batchnorm_backward_alt`` on a (N*H*W, C) matrix.

Convention (as ``torch.nn.functional.batch_norm`` on 4-D input): biased variance
to normalize, unbiased ($n / (n - 1)$ with $n = N H W$) for ``running_var``.
"""

from __future__ import annotations

import torch

from trainlab._validate import check_shape, check_tensor
from trainlab.batchnorm import (
    Cache,
    _check_batch_size,
    batchnorm_backward_alt,
    batchnorm_forward,
)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C): one row per (sample, position)."""
    c = t.shape[1]
    # a plain t.reshape(-1, C) would mix channels and positions in each row
    return t.permute(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)


def _channels_first(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(N*H*W, C) -> (N, C, H, W), the inverse of ``_channels_last``."""
    n, c, h, w = shape
    return t.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def spatial_batchnorm_forward(
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
    r"""Spatial batch normalization forward pass.

    Per channel $c$, over all $n = N H W$ values $x_{b,c,h,w}$:

    $$\mu_c = \frac{1}{n}\sum_{b,h,w} x_{b,c,h,w}, \qquad
    \sigma_c^2 = \frac{1}{n}\sum_{b,h,w} (x_{b,c,h,w} - \mu_c)^2, \qquad
    y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c.$$

    Args:
        x: input feature maps.
        gamma: scale, one per channel.
        beta: shift, one per channel.
        running_mean: running average of the channel means; updated in place
            when ``training``.
        running_var: running average of the unbiased channel variances
            ($n = N H W$); updated in place when ``training``.
        training: batch statistics (True, default) or running ones (False).
        momentum: weight of the new statistic in the running average (default
            0.1, torch's convention).
        eps: added to the variance inside the square root (default 1e-5).

    Returns:
        ``(out, cache)`` for ``spatial_batchnorm_backward``.

    Shape:
        x, out: (N, C, H, W); gamma, beta, running_mean, running_var: (C,).

    Note:
        Statistics per *channel*, over batch and positions; not per (c, h, w).
    """
    check_tensor(x, "x", ndim=4)
    c = x.shape[1]
    check_shape(gamma, "gamma", (c,))
    if training:
        _check_batch_size(x.numel() // c, x, "spatial_batchnorm_forward")
    out_flat, cache = batchnorm_forward(
        _channels_last(x),  # (N*H*W, C)
        gamma,
        beta,
        running_mean,
        running_var,
        training=training,
        momentum=momentum,
        eps=eps,
    )
    cache = {**cache, "shape": x.shape}
    return _channels_first(out_flat, x.shape), cache


def spatial_batchnorm_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spatial batch normalization backward pass.

    The closed form of ``batchnorm_backward_alt`` with $N$ replaced by
    $n = N H W$, applied to the channels-last view.

    Args:
        dout: upstream gradient.
        cache: from ``spatial_batchnorm_forward``.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        dout, dx: (N, C, H, W); dgamma, dbeta: (C,).
    """
    check_tensor(dout, "dout", ndim=4)
    check_shape(dout, "dout", cache["shape"])
    dx_flat, dgamma, dbeta = batchnorm_backward_alt(_channels_last(dout), cache)
    return _channels_first(dx_flat, cache["shape"]), dgamma, dbeta
