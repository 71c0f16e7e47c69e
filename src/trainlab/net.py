r"""A fully connected classifier built from the course's layers, and its loss.

``FullyConnectedNet`` stacks ``{affine - [batchnorm] - relu} x (L - 1)``, then
``affine - softmax``, with every forward and backward pass taken from
``trainlab.linear``, ``trainlab.activations`` and ``trainlab.batchnorm``: no
autograd. It is the model the babysitting and hyperparameter-search sections
train.

Convention: weights use the lecture layout ``W`` of shape ``(D_in, D_out)``,
$y = x W + b$. Learnable tensors live in ``net.params``; batchnorm's running
statistics are *state*, not parameters, and live in ``net.bn_state`` so that an
update rule never touches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from trainlab._validate import check_tensor
from trainlab.activations import relu_backward, relu_forward
from trainlab.batchnorm import batchnorm_backward_alt, batchnorm_forward
from trainlab.linear import linear_backward, linear_forward


def softmax_loss(
    scores: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Softmax cross-entropy loss, averaged over the batch, and its gradient.

    $$p_{ij} = \frac{e^{s_{ij}}}{\sum_k e^{s_{ik}}}, \qquad
    L = -\frac{1}{N} \sum_i \log p_{i, y_i}, \qquad
    \frac{\partial L}{\partial s_{ij}} = \frac{p_{ij} - [j = y_i]}{N}.$$

    Each row is shifted by its maximum before exponentiating: the softmax does
    not change, and ``exp`` cannot overflow.

    Args:
        scores: class scores (logits), one row per sample.
        y: class indices, ``0 <= y[i] < C``.

    Returns:
        ``(loss, dscores)``: the loss as a 0-dim tensor and its gradient with
        respect to ``scores``.

    Shape:
        scores: ``(N, C)``; y: ``(N,)`` int64; dscores: ``(N, C)``.

    Convention: the mean over the batch, like ``torch.nn.functional.cross_entropy``
    with its default ``reduction="mean"``; with small random weights the loss
    starts near $\ln C$.
    """
    scores = check_tensor(scores, "scores", ndim=2)
    y = check_tensor(y, "y", ndim=1, floating=False)
    N, C = scores.shape
    if y.dtype != torch.int64 or y.shape != (N,):
        raise ValueError(
            f"y must be int64 class indices of shape ({N},); got {y.dtype} of "
            f"shape {tuple(y.shape)}"
        )
    if y.device != scores.device:
        raise ValueError(f"y is on {y.device} but scores is on {scores.device}")
    if N and (int(y.min()) < 0 or int(y.max()) >= C):
        raise ValueError(
            f"labels must lie in 0..{C - 1} for {C} classes; got labels from "
            f"{int(y.min())} to {int(y.max())}"
        )
    rows = torch.arange(N, device=scores.device)
    shifted = scores - scores.max(dim=1, keepdim=True).values  # (N, C)
    log_norm = torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))  # (N, 1)
    log_probs = shifted - log_norm  # (N, C)
    loss = -log_probs[rows, y].mean()
    dscores = torch.exp(log_probs)  # (N, C) probabilities
    dscores[rows, y] -= 1.0
    dscores /= N
    return loss, dscores


class FullyConnectedNet:
    r"""Fully connected ReLU network with optional batchnorm and softmax loss.

    Architecture, for ``hidden_dims = [H_1, ..., H_{L-1}]``:

    ``{affine - [batchnorm] - relu} x (L - 1) - affine - softmax``

    Args:
        input_dim: $D$, features per sample (an image is flattened).
        hidden_dims: widths of the hidden layers.
        num_classes: $C$.
        batchnorm: insert batchnorm after every hidden affine layer (default
            False).
        weight_scale: ``"kaiming"`` (default): hidden weights
            $\sim N(0, 2 / D_{in})$, which keeps ReLU activations at a steady
            scale, and the last layer $\sim N(0, 1 / D_{in})$; or a float: every
            weight $\sim N(0, \text{weight\_scale}^2)$ (e.g. ``1e-2``, the
            "small random numbers" of the lecture). Biases start at 0,
            $\gamma$ at 1 and $\beta$ at 0.
        reg: L2 strength; the loss adds $\frac{\text{reg}}{2} \sum_l \|W_l\|^2$
            (default 0.0). Biases, $\gamma$ and $\beta$ are not regularized.
        generator: random generator of the initial weights (default: torch's
            global one).
        dtype: of every parameter (default ``torch.float64``, for gradient checks).
        device: where the parameters live (default: CPU).

    Attributes:
        params: ``"W1", "b1", ["gamma1", "beta1",] ..., "WL", "bL"``.
        bn_state: per hidden layer ``(running_mean, running_var)``, updated in
            place by training-mode forward passes; empty without batchnorm.
        bn_momentum, bn_eps: batchnorm's momentum (0.1) and eps (1e-5).

    Shape:
        X: ``(N, D)`` or ``(N, *)`` with ``D`` entries per sample; y: ``(N,)``.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        num_classes: int,
        *,
        batchnorm: bool = False,
        weight_scale: float | str = "kaiming",
        reg: float = 0.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(weight_scale, str) and weight_scale != "kaiming":
            raise ValueError(
                f'weight_scale must be "kaiming" or a float; got {weight_scale!r}'
            )
        dims = [input_dim, *hidden_dims, num_classes]
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.num_layers = len(dims) - 1
        self.batchnorm = batchnorm
        self.reg = reg
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.bn_momentum = 0.1
        self.bn_eps = 1e-5
        self.params: dict[str, torch.Tensor] = {}
        self.bn_state: list[tuple[torch.Tensor, torch.Tensor]] = []

        kw = {"dtype": dtype, "device": self.device}
        for layer in range(1, self.num_layers + 1):
            d_in, d_out = dims[layer - 1], dims[layer]
            if weight_scale == "kaiming":
                gain = 2.0 if layer < self.num_layers else 1.0  # relu follows or not
                std = math.sqrt(gain / d_in)
            else:
                std = float(weight_scale)
            # draw on CPU with the generator, then move: same weights on any device
            w = torch.randn(d_in, d_out, generator=generator, dtype=dtype)
            self.params[f"W{layer}"] = (std * w).to(self.device)  # (D_in, D_out)
            self.params[f"b{layer}"] = torch.zeros(d_out, **kw)
            if batchnorm and layer < self.num_layers:
                self.params[f"gamma{layer}"] = torch.ones(d_out, **kw)
                self.params[f"beta{layer}"] = torch.zeros(d_out, **kw)
                self.bn_state.append(
                    (torch.zeros(d_out, **kw), torch.ones(d_out, **kw))
                )

    def loss(
        self, X: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        r"""Scores, or loss and gradients.

        Args:
            X: inputs.
            y: labels, or ``None``.

        Returns:
            With ``y is None``: the class scores ``(N, C)``, computed in eval mode
            (batchnorm uses and keeps its running statistics).
            Otherwise: ``(loss, grads)`` from a training-mode pass (batchnorm uses
            batch statistics and updates ``bn_state``): the softmax loss plus
            $\frac{\text{reg}}{2}\sum_l \|W_l\|^2$, and ``grads[name]`` with the
            shape of ``params[name]``.
        """
        X = check_tensor(X, "X", min_ndim=2)
        N = X.shape[0]
        if X[0].numel() != self.input_dim:
            raise ValueError(
                f"X must have {self.input_dim} features per sample; got X of shape "
                f"{tuple(X.shape)} ({X[0].numel()} per sample)"
            )
        training = y is not None
        p = self.params
        h = X.reshape(N, -1)  # (N, D)
        caches = []
        for layer in range(1, self.num_layers):
            h, c_lin = linear_forward(h, p[f"W{layer}"], p[f"b{layer}"])
            c_bn = None
            if self.batchnorm:
                running_mean, running_var = self.bn_state[layer - 1]
                h, c_bn = batchnorm_forward(
                    h, p[f"gamma{layer}"], p[f"beta{layer}"], running_mean,
                    running_var, training=training, momentum=self.bn_momentum,
                    eps=self.bn_eps,
                )  # fmt: skip
            h, c_relu = relu_forward(h)
            caches.append((c_lin, c_bn, c_relu))
        L = self.num_layers
        scores, c_last = linear_forward(h, p[f"W{L}"], p[f"b{L}"])  # (N, C)
        if not training:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = [p[f"W{layer}"] for layer in range(1, L + 1)]
        loss = data_loss + 0.5 * self.reg * sum((w * w).sum() for w in weights)

        grads: dict[str, torch.Tensor] = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = linear_backward(dscores, c_last)
        for layer in range(L - 1, 0, -1):
            c_lin, c_bn, c_relu = caches[layer - 1]
            dh = relu_backward(dh, c_relu)
            if self.batchnorm:
                dh, grads[f"gamma{layer}"], grads[f"beta{layer}"] = (
                    batchnorm_backward_alt(dh, c_bn)
                )
            dh, grads[f"W{layer}"], grads[f"b{layer}"] = linear_backward(dh, c_lin)
        for layer in range(1, L + 1):
            grads[f"W{layer}"] = grads[f"W{layer}"] + self.reg * p[f"W{layer}"]
        return loss, grads

    def predict(self, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted class of each sample (eval mode), in chunks of ``batch_size``.

        Shape:
            X: ``(N, D)`` or ``(N, *)``; returns ``(N,)`` int64.
        """
        chunks = [self.loss(X[i : i + batch_size]).argmax(dim=1)
                  for i in range(0, X.shape[0], batch_size)]  # fmt: skip
        if not chunks:
            return torch.zeros(0, dtype=torch.int64, device=X.device)
        return torch.cat(chunks)

    def __repr__(self) -> str:
        dims = [self.params[f"W{i}"].shape[0] for i in range(1, self.num_layers + 1)]
        dims.append(self.num_classes)
        bn = ", batchnorm" if self.batchnorm else ""
        return f"FullyConnectedNet({' -> '.join(map(str, dims))}{bn}, reg={self.reg})"
