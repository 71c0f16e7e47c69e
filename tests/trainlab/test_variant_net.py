"""VariantNet: gradients against autograd on the same net built from torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from trainlab.data import load_digits
from trainlab.net import FullyConnectedNet
from trainlab.training import train
from trainlab.variant_net import VariantNet

pytestmark = pytest.mark.training

F64 = torch.float64
TORCH_ACT = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
}


def torch_loss(net: VariantNet, X: torch.Tensor, y: torch.Tensor) -> dict:
    """The same forward pass with torch's layers; autograd gives the gradients."""
    p = {k: v.clone().requires_grad_() for k, v in net.params.items()}
    h = X
    for layer in range(1, net.num_layers):
        h = h @ p[f"W{layer}"] + p[f"b{layer}"]  # (N, H)
        g, b = p.get(f"gamma{layer}"), p.get(f"beta{layer}")
        if net.norm == "batch":
            h = F.batch_norm(h, None, None, g, b, training=True, eps=1e-5)
        elif net.norm == "layer":
            h = F.layer_norm(h, h.shape[1:], g, b, eps=1e-5)
        elif net.norm == "group":
            h = F.group_norm(h, net.num_groups, g, b, eps=1e-5)
        h = TORCH_ACT[net.activation](h)
    L = net.num_layers
    scores = h @ p[f"W{L}"] + p[f"b{L}"]
    loss = F.cross_entropy(scores, y)
    loss = loss + 0.5 * net.reg * sum((p[f"W{i}"] ** 2).sum() for i in range(1, L + 1))
    loss.backward()
    return {"loss": loss.detach(), **{k: v.grad for k, v in p.items()}}


@pytest.mark.parametrize("norm", [None, "batch", "layer", "group"])
@pytest.mark.parametrize("activation", sorted(TORCH_ACT))
def test_gradients_match_autograd(activation, norm, device):
    gen = torch.Generator().manual_seed(0)
    net = VariantNet(6, [8, 8], 4, activation=activation, norm=norm, num_groups=2,
                     reg=0.1, generator=gen, device=device)  # fmt: skip
    X = torch.randn(5, 6, generator=gen, dtype=F64).to(device) * 2
    y = torch.tensor([0, 1, 2, 3, 1], device=device)
    expected = torch_loss(net, X, y)
    loss, grads = net.loss(X, y)
    assert_close(loss, expected["loss"], what="loss")
    assert set(grads) == set(net.params)
    L = net.num_layers
    for name, grad in grads.items():
        what = f"{activation}, {norm}: d{name}"
        hidden_bias = name[0] == "b" and name[1:].isdigit() and name != f"b{L}"
        if norm == "batch" and hidden_bias:
            # a bias before batch norm is subtracted again: its gradient is 0
            assert float(grad.abs().max()) < 1e-12, what
            assert float(expected[name].abs().max()) < 1e-12, what
        else:
            assert_close(grad, expected[name], what=what)


def test_scales_rescale_fully_connected_net_weights():
    kw = {"generator": torch.Generator().manual_seed(3)}
    base = FullyConnectedNet(5, [7], 3, **kw)
    kw = {"generator": torch.Generator().manual_seed(3)}
    net = VariantNet(5, [7], 3, activation="tanh", output_scale=0.01, **kw)
    assert_close(net.params["W1"], base.params["W1"] * (5 / 3) / math.sqrt(2))
    assert_close(net.params["W2"], base.params["W2"] * 0.01)


def test_refuses_unknown_choices_with_a_message():
    with pytest.raises(ValueError, match="activation must be one of"):
        VariantNet(4, [4], 2, activation="swish")
    with pytest.raises(ValueError, match="norm must be one of"):
        VariantNet(4, [4], 2, norm="instance")
    with pytest.raises(ValueError, match="must divide every hidden width"):
        VariantNet(4, [6], 2, norm="group", num_groups=4)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_trains_on_digits_and_eval_needs_no_batch(norm):
    digits = load_digits()
    net = VariantNet(64, [32], 10, norm=norm, dtype=torch.float32,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    hist = train(net, digits, lr=0.1, epochs=2, batch_size=32,
                 update="sgd_momentum", generator=gen)  # fmt: skip
    assert hist.val_acc[-1] > 0.8
    one = net.loss(digits.X_val[:1])
    assert_close(one, net.loss(digits.X_val[:5])[:1], tol=1e-5)
