"""Fold an eval-mode batch normalization into the preceding linear layer.

At test time batch normalization is a fixed affine map per output unit, so
``linear -> batchnorm`` collapses into one linear layer with the same output.
"""

from __future__ import annotations

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor


def fold_batchnorm(
    w: torch.Tensor,
    b: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Weights of the linear layer equal to ``linear`` followed by eval batchnorm.

    With $s = \gamma / \sqrt{\text{running\_var} + \epsilon}$ (one per output
    unit):

    $$W' = W \operatorname{diag}(s), \qquad
    b' = (b - \text{running\_mean})\, s + \beta,$$

    so that $x W' + b' = \gamma \frac{x W + b - \text{running\_mean}}
    {\sqrt{\text{running\_var} + \epsilon}} + \beta$.

    Args:
        w: linear weights in the lecture layout, ``out = x @ w + b``.
        b: linear bias.
        gamma, beta: batchnorm scale and shift.
        running_mean, running_var: batchnorm running statistics.
        eps: the batchnorm's eps (default 1e-5).

    Returns:
        ``(w_folded, b_folded)``, new tensors; the inputs are not changed.

    Shape:
        w, w_folded: (D_in, D_out); b, b_folded and the batchnorm tensors:
        (D_out,).

    Note:
        ``w`` is (D_in, D_out), so each output unit is a *column*: the scale
        multiplies columns. torch's ``nn.Linear.weight`` is the transpose
        (D_out, D_in), where it would multiply rows.
    """
    check_tensor(w, "w", ndim=2)
    d_out = w.shape[1]
    if (
        isinstance(gamma, torch.Tensor)
        and gamma.dim() == 1
        and gamma.shape[0] == w.shape[0] != d_out
    ):
        raise ValueError(
            f"w must be in the lecture layout (D_in, D_out), one column per output "
            f"unit; got w of shape {tuple(w.shape)} with {gamma.shape[0]} batchnorm "
            "features, which looks like torch's (D_out, D_in): pass w.t()"
        )
    params = {
        "b": b,
        "gamma": gamma,
        "beta": beta,
        "running_mean": running_mean,
        "running_var": running_var,
    }
    for name, t in params.items():
        check_tensor(t, name)
        check_shape(t, name, (d_out,))
    check_compatible(w, "w", **params)

    scale = gamma / torch.sqrt(running_var + eps)  # (D_out,)
    w_folded = w * scale  # (D_in, D_out): column j scaled by scale[j]
    b_folded = (b - running_mean) * scale + beta  # (D_out,)
    return w_folded, b_folded
