r"""The affine (fully connected) layer, forward beside backward.

Weight layout: the lecture's. ``w`` has shape (D_in, D_out) and
$y = x W + b$, so a row of ``x`` is one sample and a column of ``w`` is one output
unit. Watch out: ``torch.nn.Linear`` stores its weight the other way round, as
(D_out, D_in), and computes $x W^T + b$; to compare, pass ``linear.weight.T``.
"""

from __future__ import annotations

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor


def linear_forward(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, tuple]:
    r"""Affine layer: $\mathrm{out} = x W + b$.

    Args:
        x: inputs, one sample per row, shape (N, D_in). Flatten images first:
            ``x.reshape(x.shape[0], -1)``.
        w: weights in the lecture layout (D_in, D_out), not torch's
            (D_out, D_in).
        b: biases, shape (D_out,).

    Returns:
        ``(out, cache)``; the cache holds ``x`` and ``w``.

    Shape:
        x: (N, D_in). w: (D_in, D_out). b: (D_out,). out: (N, D_out).

    Example:
        >>> out, cache = linear_forward(torch.ones(2, 3), torch.ones(3, 4),
        ...                             torch.zeros(4))
        >>> out.shape
        torch.Size([2, 4])
    """
    x = check_tensor(x, "x", ndim=2)
    w = check_tensor(w, "w", ndim=2)
    b = check_tensor(b, "b", ndim=1)
    check_compatible(x, "x", w=w, b=b)
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"w must have shape (D_in, D_out) with D_in = x.shape[1] = {x.shape[1]}"
            f" (lecture layout); got w of shape {tuple(w.shape)}. A torch.nn.Linear"
            " weight is (D_out, D_in): pass its transpose."
        )
    check_shape(b, "b", (w.shape[1],))
    out = x @ w + b  # (N, D_out)
    return out, (x, w)


def linear_backward(
    dout: torch.Tensor, cache: tuple
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Backward of the affine layer.

    $$dx = dout\, W^T, \qquad dW = x^T dout, \qquad db = \sum_n dout_n$$

    Each gradient has the shape of the value it belongs to: a quick check that
    the transposes are in the right place.

    Args:
        dout: upstream gradient, shape (N, D_out).
        cache: from :func:`linear_forward`.

    Returns:
        ``(dx, dw, db)``.

    Shape:
        dx: (N, D_in). dw: (D_in, D_out). db: (D_out,).
    """
    x, w = cache
    dout = check_tensor(dout, "dout", ndim=2)
    check_shape(dout, "dout", (x.shape[0], w.shape[1]))
    check_compatible(x, "x", dout=dout)
    dx = dout @ w.t()  # (N, D_in)
    dw = x.t() @ dout  # (D_in, D_out)
    db = dout.sum(dim=0)  # (D_out,)
    return dx, dw, db
