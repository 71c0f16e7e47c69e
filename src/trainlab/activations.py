r"""Activation functions, each forward beside its backward.

Every layer follows the modular convention of the course:
``forward(...) -> (out, cache)`` and ``backward(dout, cache) -> gradients``, the
gradients in the order of the forward's differentiable inputs (a single tensor
when there is one). Backward passes are written by hand; no autograd.

Convention at the kinks (the same as PyTorch): $\mathrm{relu}'(0) = 0$,
$\mathrm{leaky\_relu}'(0) = \text{negative\_slope}$, $\mathrm{elu}'(0) = \alpha$,
$\mathrm{prelu}'(0) = \alpha$: the point $x = 0$ belongs to the left branch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

Cache = tuple


def _check_dout(dout: object, ref: torch.Tensor, ref_name: str) -> torch.Tensor:
    """Check that the upstream gradient looks like the forward output ``ref``."""
    dout = check_tensor(dout, "dout")
    check_shape(dout, "dout", ref.shape)
    check_compatible(ref, ref_name, dout=dout)
    return dout


# --------------------------------------------------------------------- sigmoid


def sigmoid_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Logistic sigmoid, computed without overflow.

    $$\sigma(x) = \frac{1}{1 + e^{-x}}$$

    Written as $1 / (1 + e^{-|x|})$ for $x \ge 0$ and $e^{-|x|} / (1 + e^{-|x|})$
    for $x < 0$, so that $e^{(\cdot)}$ never sees a large positive argument:
    $x = \pm 1000$ gives exactly 1 and 0, not ``inf`` or ``nan``.

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)`` with ``out = sigmoid(x)``; the cache holds ``out``.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    z = torch.exp(-x.abs())  # in (0, 1]: never overflows
    out = torch.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return out, (out,)


def sigmoid_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of the sigmoid: $dx = dout \cdot \sigma(x)(1 - \sigma(x))$.

    Args:
        dout: upstream gradient, the shape of the forward output.
        cache: from :func:`sigmoid_forward`.

    Returns:
        dx, the shape of x.
    """
    (out,) = cache
    dout = _check_dout(dout, out, "out")
    return dout * out * (1.0 - out)


# ------------------------------------------------------------------------ tanh


def tanh_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Hyperbolic tangent, $\tanh(x) = 2\sigma(2x) - 1$, zero-centred in (-1, 1).

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)``; the cache holds ``out``.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    out = torch.tanh(x)
    return out, (out,)


def tanh_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of tanh: $dx = dout \cdot (1 - \tanh^2(x))$.

    Returns:
        dx, the shape of x.
    """
    (out,) = cache
    dout = _check_dout(dout, out, "out")
    return dout * (1.0 - out * out)


# ------------------------------------------------------------------------ relu


def relu_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Rectified linear unit, $\mathrm{relu}(x) = \max(0, x)$.

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)``; the cache holds ``x``.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    out = torch.where(x > 0, x, torch.zeros_like(x))
    return out, (x,)


def relu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of relu: $dx = dout \cdot [x > 0]$.

    Convention: $\mathrm{relu}'(0) = 0$ (as in PyTorch): the gradient is passed
    only where the input was strictly positive.

    Returns:
        dx, the shape of x.
    """
    (x,) = cache
    dout = _check_dout(dout, x, "x")
    return torch.where(x > 0, dout, torch.zeros_like(dout))


# ------------------------------------------------------------------ leaky relu


def leaky_relu_forward(
    x: torch.Tensor, negative_slope: float = 0.01
) -> tuple[torch.Tensor, Cache]:
    r"""Leaky relu: $x$ for $x > 0$, $a x$ otherwise ($a$ = ``negative_slope``).

    Args:
        x: input of any shape.
        negative_slope: slope $a$ for $x \le 0$. Default 0.01 (as in torch).

    Returns:
        ``(out, cache)``; the cache holds ``x`` and the slope.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    out = torch.where(x > 0, x, negative_slope * x)
    return out, (x, negative_slope)


def leaky_relu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of leaky relu: $dx = dout$ where $x > 0$, $a \cdot dout$ elsewhere.

    Convention: the derivative at $x = 0$ is the slope $a$ (as in PyTorch).

    Returns:
        dx, the shape of x.
    """
    x, negative_slope = cache
    dout = _check_dout(dout, x, "x")
    return torch.where(x > 0, dout, negative_slope * dout)


# ----------------------------------------------------------------------- prelu


def _prelu_view(alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape alpha so it broadcasts along the channel dimension 1 of x."""
    if alpha.numel() == 1:
        return alpha.reshape(())  # () broadcasts everywhere
    return alpha.reshape((1, -1) + (1,) * (x.dim() - 2))  # (1, C, 1, ..., 1)


def prelu_forward(x: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    r"""Parametric relu: leaky relu whose slope $\alpha$ is learned.

    $$\mathrm{prelu}(x) = \begin{cases} x & x > 0 \\ \alpha_c x & x \le 0
    \end{cases}$$

    Same semantics as ``torch.nn.functional.prelu``: ``alpha`` has one entry
    shared by all inputs, or one entry per channel, the channel being dimension 1
    of ``x`` (``x`` of shape (N, C) or (N, C, H, W), ...).

    Args:
        x: input, at least 1 dimension (at least 2 for a per-channel alpha).
        alpha: slopes, shape (1,) or (C,) with ``C = x.shape[1]``.

    Returns:
        ``(out, cache)``; the cache holds ``x`` and ``alpha``.

    Shape:
        x: (N, C, *). alpha: (1,) or (C,). out: same as x.
    """
    x = check_tensor(x, "x", min_ndim=1)
    alpha = check_tensor(alpha, "alpha", ndim=1)
    check_compatible(x, "x", alpha=alpha)
    if alpha.numel() != 1:
        channels = x.shape[1] if x.dim() >= 2 else 1
        if alpha.numel() != channels:
            raise ValueError(
                f"alpha must have shape (1,) or (C,) with C = x.shape[1] = "
                f"{channels} (channels are dimension 1 of x, shape "
                f"{tuple(x.shape)}); got alpha of shape {tuple(alpha.shape)}"
            )
    a = _prelu_view(alpha, x)
    out = torch.where(x > 0, x, a * x)
    return out, (x, alpha)


def prelu_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Backward of prelu.

    $$dx = dout \cdot \begin{cases} 1 & x > 0 \\ \alpha_c & x \le 0
    \end{cases}, \qquad
    d\alpha_c = \sum_{\text{entries of channel } c,\ x \le 0} dout \cdot x$$

    (summed over all entries when alpha has a single element).

    Returns:
        ``(dx, dalpha)``, the shapes of x and alpha.
    """
    x, alpha = cache
    dout = _check_dout(dout, x, "x")
    a = _prelu_view(alpha, x)
    negative = x <= 0
    dx = torch.where(negative, a * dout, dout)
    contrib = torch.where(negative, dout * x, torch.zeros_like(x))
    if alpha.numel() == 1:
        dalpha = contrib.sum().reshape(alpha.shape)
    else:
        dims = [d for d in range(x.dim()) if d != 1]  # all but the channel dim
        dalpha = contrib.sum(dim=dims)  # (C,)
    return dx, dalpha


# ------------------------------------------------------------------------- elu


def elu_forward(x: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, Cache]:
    r"""Exponential linear unit.

    $$\mathrm{elu}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0
    \end{cases}$$

    Computed with ``expm1`` on $\min(x, 0)$: accurate near 0, no overflow.

    Args:
        x: input of any shape.
        alpha: saturation value $-\alpha$ for $x \to -\infty$. Default 1.0.

    Returns:
        ``(out, cache)``; the cache holds ``x`` and ``alpha``.

    Shape:
        x: (*) any shape. out: same as x.
    """
    x = check_tensor(x, "x")
    neg = alpha * torch.expm1(x.clamp(max=0))
    out = torch.where(x > 0, x, neg)
    return out, (x, alpha)


def elu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    r"""Backward of elu: $dx = dout$ where $x > 0$, $dout \cdot \alpha e^{x}$ elsewhere.

    Convention: $\mathrm{elu}'(0) = \alpha$ (the $x \le 0$ branch, as in PyTorch);
    the function is smooth at 0 only when $\alpha = 1$.

    Returns:
        dx, the shape of x.
    """
    x, alpha = cache
    dout = _check_dout(dout, x, "x")
    slope = alpha * torch.exp(x.clamp(max=0))
    return torch.where(x > 0, dout, dout * slope)


# ---------------------------------------------------------------------- maxout


def maxout_forward(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, Cache]:
    r"""Maxout unit with k linear pieces.

    $$\mathrm{out}_{nm} = \max_{j = 1..k}\ (x W_j + b_j)_{nm}$$

    A maxout unit generalizes relu ($k = 2$, one piece fixed at 0) and leaky relu;
    it never saturates, at the cost of k times the parameters.

    Ties are broken like ``torch.max(dim=...)``: the first piece with the maximal
    value wins, and only that piece receives gradient.

    Args:
        x: input, shape (N, D).
        w: weights of the k pieces, shape (k, D, M) (lecture layout, per piece
            (D_in, D_out)).
        b: biases, shape (k, M).

    Returns:
        ``(out, cache)``; the cache holds ``x``, ``w`` and the winning piece index
        per output entry.

    Shape:
        x: (N, D). w: (k, D, M). b: (k, M). out: (N, M).
    """
    x = check_tensor(x, "x", ndim=2)
    w = check_tensor(w, "w", ndim=3)
    b = check_tensor(b, "b", ndim=2)
    check_compatible(x, "x", w=w, b=b)
    k, d, m = w.shape
    if d != x.shape[1]:
        raise ValueError(
            f"w must have shape (k, D, M) with D = x.shape[1] = {x.shape[1]}; "
            f"got w of shape {tuple(w.shape)}"
        )
    check_shape(b, "b", (k, m))
    scores = torch.matmul(x, w) + b.unsqueeze(1)  # (k, N, M)
    out, idx = scores.max(dim=0)  # (N, M), (N, M): first maximal piece
    return out, (x, w, idx)


def maxout_backward(
    dout: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Backward of maxout: the gradient flows through the winning piece only.

    With $s_j = x W_j + b_j$ and $j^*$ the winner of each output entry,
    $ds_j = dout \cdot [j = j^*]$, then $dx = \sum_j ds_j W_j^T$,
    $dW_j = x^T ds_j$, $db_j = \sum_n ds_j$.

    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and b.
    """
    x, w, idx = cache
    k = w.shape[0]
    dout = check_tensor(dout, "dout")
    check_shape(dout, "dout", idx.shape)
    check_compatible(x, "x", dout=dout)
    dscores = torch.zeros(
        (k,) + tuple(dout.shape), dtype=dout.dtype, device=dout.device
    )  # (k, N, M)
    dscores.scatter_(0, idx.unsqueeze(0), dout.unsqueeze(0))
    dx = torch.matmul(dscores, w.transpose(1, 2)).sum(dim=0)  # (N, D)
    dw = torch.matmul(x.t(), dscores)  # (k, D, M)
    db = dscores.sum(dim=1)  # (k, M)
    return dx, dw, db


ACTIVATIONS: dict[
    str,
    tuple[
        Callable[[torch.Tensor], tuple[torch.Tensor, Cache]],
        Callable[[torch.Tensor, Cache], torch.Tensor],
    ],
] = {
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "elu": (elu_forward, elu_backward),
}
"""Single-input activations with their default parameters, by name:
``out, cache = ACTIVATIONS[name][0](x)``; ``dx = ACTIVATIONS[name][1](dout, cache)``.
"""
