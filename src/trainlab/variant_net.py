r"""``FullyConnectedNet`` with a choice of activation, normalization and scales.

The book's side-by-side experiments train one architecture many ways:

``{affine - [norm] - f} x (L - 1) - affine - softmax``

with $f$ any activation of the course (sigmoid, tanh, ReLU, Leaky ReLU, ELU,
GELU, SiLU), the normalization batch, layer or group norm (or none), the hidden
weights $\sim N(0, \text{gain}^2 / D_{in})$ and the output layer
$\sim N(0, \text{output\_scale}^2 / D_{in})$. Every pass uses the course's
layers and their manual backward passes, no autograd; ``train`` from
``trainlab.training`` trains it like ``FullyConnectedNet``.

Convention: weights use the lecture layout ``W`` of shape ``(D_in, D_out)``.
Group norm on an ``(N, D)`` activation treats the ``D`` features as channels:
``num_groups`` groups of ``D / num_groups`` consecutive features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainlab.activations import ACTIVATIONS
from trainlab.batchnorm import batchnorm_backward_alt, batchnorm_forward
from trainlab.groupnorm import groupnorm_backward, groupnorm_forward
from trainlab.init import calculate_gain
from trainlab.layernorm import layernorm_backward, layernorm_forward
from trainlab.linear import linear_backward, linear_forward
from trainlab.net import FullyConnectedNet, softmax_loss
from trainlab.smooth_activations import (
    gelu_backward,
    gelu_forward,
    silu_backward,
    silu_forward,
)

Layer = tuple[Callable[..., Any], Callable[..., Any]]

VARIANT_ACTIVATIONS: dict[str, Layer] = {
    **ACTIVATIONS,
    "gelu": (gelu_forward, gelu_backward),
    "silu": (silu_forward, silu_backward),
}
"""Activations by name: ``trainlab.activations.ACTIVATIONS``, GELU and SiLU."""

NORMS = (None, "batch", "layer", "group")


def default_gain(activation: str) -> float:
    r"""The hidden layers' default gain: ``calculate_gain`` where torch has one.

    sigmoid 1, tanh 5/3, relu $\sqrt{2}$, leaky_relu $\sqrt{2 / (1 + 0.01^2)}$;
    ELU, GELU and SiLU have no gain in ``torch.nn.init``: they behave like ReLU
    for large inputs, so they get ReLU's $\sqrt{2}$.
    """
    if activation in ("sigmoid", "tanh", "relu", "leaky_relu"):
        return calculate_gain(activation)
    return math.sqrt(2.0)


class VariantNet(FullyConnectedNet):
    r"""A fully connected network with any activation and normalization.

    Args:
        input_dim: $D$, features per sample.
        hidden_dims: widths of the hidden layers.
        num_classes: $C$.
        activation: a key of ``VARIANT_ACTIVATIONS`` (default ``"relu"``).
        norm: ``None`` (default), ``"batch"``, ``"layer"`` or ``"group"``,
            after every hidden affine layer.
        num_groups: groups of group norm (default 4); must divide every hidden
            width.
        gain: hidden weights $\sim N(0, \text{gain}^2 / D_{in})$ (default None:
            ``default_gain(activation)``).
        output_scale: last-layer weights $\sim N(0, \text{output\_scale}^2 /
            D_{in})$ (default 1.0, as ``FullyConnectedNet``).
        reg, generator, dtype, device: as ``FullyConnectedNet``. With the same
            generator, the weights are ``FullyConnectedNet``'s rescaled.

    Attributes:
        params: ``"W1", "b1", ["gamma1", "beta1",] ..., "WL", "bL"``; layer and
            group norm add ``gamma``/``beta`` like batch norm.
        bn_state: running statistics, for ``norm="batch"`` only.

    Shape:
        X: ``(N, D)`` or ``(N, *)``; y: ``(N,)`` int64.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        num_classes: int,
        *,
        activation: str = "relu",
        norm: str | None = None,
        num_groups: int = 4,
        gain: float | None = None,
        output_scale: float = 1.0,
        reg: float = 0.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if activation not in VARIANT_ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(VARIANT_ACTIVATIONS)}; "
                f"got {activation!r}"
            )
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        if norm == "group" and any(h % num_groups for h in hidden_dims):
            raise ValueError(
                f"num_groups={num_groups} must divide every hidden width; "
                f"got hidden_dims={list(hidden_dims)}"
            )
        super().__init__(
            input_dim, hidden_dims, num_classes, batchnorm=norm == "batch",
            weight_scale="kaiming", reg=reg, generator=generator, dtype=dtype,
            device=device,
        )  # fmt: skip
        self.activation = activation
        self.norm = norm
        self.num_groups = num_groups
        gain = default_gain(activation) if gain is None else float(gain)
        L = self.num_layers
        for layer in range(1, L):  # kaiming drew std sqrt(2 / D_in)
            self.params[f"W{layer}"] *= gain / math.sqrt(2.0)
            if norm in ("layer", "group"):
                d_out = self.params[f"W{layer}"].shape[1]
                kw = {"dtype": dtype, "device": self.device}
                self.params[f"gamma{layer}"] = torch.ones(d_out, **kw)
                self.params[f"beta{layer}"] = torch.zeros(d_out, **kw)
        self.params[f"W{L}"] *= float(output_scale)  # kaiming drew sqrt(1 / D_in)

    def _norm_forward(
        self, h: torch.Tensor, layer: int, training: bool
    ) -> tuple[torch.Tensor, Any]:
        gamma, beta = self.params[f"gamma{layer}"], self.params[f"beta{layer}"]
        if self.norm == "batch":
            running_mean, running_var = self.bn_state[layer - 1]
            return batchnorm_forward(
                h, gamma, beta, running_mean, running_var, training=training,
                momentum=self.bn_momentum, eps=self.bn_eps,
            )  # fmt: skip
        if self.norm == "layer":
            return layernorm_forward(h, gamma, beta, eps=self.bn_eps)
        return groupnorm_forward(h, gamma, beta, self.num_groups, eps=self.bn_eps)

    def _norm_backward(self, dh: torch.Tensor, cache: Any) -> tuple[torch.Tensor, ...]:
        backward = {
            "batch": batchnorm_backward_alt,
            "layer": layernorm_backward,
            "group": groupnorm_backward,
        }[self.norm]
        return backward(dh, cache)

    def loss(
        self, X: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scores (``y is None``, eval mode) or ``(loss, grads)``, as the parent."""
        if X[0].numel() != self.input_dim:
            raise ValueError(
                f"X must have {self.input_dim} features per sample; got X of shape "
                f"{tuple(X.shape)} ({X[0].numel()} per sample)"
            )
        act_forward, act_backward = VARIANT_ACTIVATIONS[self.activation]
        training = y is not None
        p, L = self.params, self.num_layers
        h = X.reshape(len(X), -1)  # (N, D)
        caches = []
        for layer in range(1, L):
            h, c_lin = linear_forward(h, p[f"W{layer}"], p[f"b{layer}"])  # (N, H)
            c_norm = None
            if self.norm is not None:
                h, c_norm = self._norm_forward(h, layer, training)
            h, c_act = act_forward(h)
            caches.append((c_lin, c_norm, c_act))
        scores, c_last = linear_forward(h, p[f"W{L}"], p[f"b{L}"])  # (N, C)
        if not training:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = [p[f"W{layer}"] for layer in range(1, L + 1)]
        loss = data_loss + 0.5 * self.reg * sum((w * w).sum() for w in weights)
        grads: dict[str, torch.Tensor] = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = linear_backward(dscores, c_last)
        for layer in range(L - 1, 0, -1):
            c_lin, c_norm, c_act = caches[layer - 1]
            dh = act_backward(dh, c_act)
            if self.norm is not None:
                dh, dgamma, dbeta = self._norm_backward(dh, c_norm)
                grads[f"gamma{layer}"], grads[f"beta{layer}"] = dgamma, dbeta
            dh, grads[f"W{layer}"], grads[f"b{layer}"] = linear_backward(dh, c_lin)
        for layer in range(1, L + 1):
            grads[f"W{layer}"] = grads[f"W{layer}"] + self.reg * p[f"W{layer}"]
        return loss, grads

    def __repr__(self) -> str:
        dims = [self.params[f"W{i}"].shape[0] for i in range(1, self.num_layers + 1)]
        dims.append(self.num_classes)
        norm = f", {self.norm} norm" if self.norm else ""
        return (
            f"VariantNet({' -> '.join(map(str, dims))}, {self.activation}{norm}, "
            f"reg={self.reg})"
        )
