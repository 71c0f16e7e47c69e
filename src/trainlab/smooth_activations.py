r"""Smooth ReLU-like activations of newer networks: GELU and SiLU (Swish).

Both weigh the input by a smooth gate in $[0, 1]$ instead of ReLU's hard
$[x > 0]$:

$$\mathrm{gelu}(x) = x\,\Phi(x), \qquad \mathrm{silu}(x) = x\,\sigma(x),$$

with $\Phi$ the standard normal CDF and $\sigma$ the logistic sigmoid. Large
positive inputs pass almost unchanged, large negative ones give almost 0, and
near 0 both are smooth, slightly negative for $x < 0$ (minimum about $-0.17$
for GELU, $-0.28$ for SiLU). Same modular convention as
``trainlab.activations``: ``forward(x) -> (out, cache)``,
``backward(dout, cache) -> dx``; no autograd.
"""

from __future__ import annotations

import math

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = tuple


def _check_dout(dout: object, x: torch.Tensor) -> torch.Tensor:
    dout = check_tensor(dout, "dout")
    check_shape(dout, "dout", x.shape)
    check_compatible(x, "x", dout=dout)
    return dout


def gelu_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Gaussian error linear unit, exact form (torch's ``approximate="none"``).

    $$\mathrm{gelu}(x) = x\,\Phi(x), \qquad
    \Phi(x) = \tfrac{1}{2}\big(1 + \operatorname{erf}(x / \sqrt{2})\big).$$

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)``; the cache holds ``x`` and $\Phi(x)$.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))  # Phi(x)
    return x * cdf, (x, cdf)


def gelu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of GELU: $dx = dout \cdot (\Phi(x) + x\,\varphi(x))$.

    $\varphi(x) = e^{-x^2/2} / \sqrt{2\pi}$ is the standard normal density.

    Returns:
        dx, the shape of x.
    """
    x, cdf = cache
    dout = _check_dout(dout, x)
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)  # phi(x)
    return dout * (cdf + x * pdf)


def silu_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Sigmoid linear unit (Swish with $\beta = 1$), $\mathrm{silu}(x) = x\,\sigma(x)$.

    $\sigma$ is computed as ``torch.sigmoid``, which does not overflow.

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)``; the cache holds ``x`` and $\sigma(x)$.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    s = torch.sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of SiLU: $dx = dout \cdot \sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big)$.

    Returns:
        dx, the shape of x.
    """
    x, s = cache
    dout = _check_dout(dout, x)
    return dout * s * (1.0 + x * (1.0 - s))
