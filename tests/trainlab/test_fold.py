"""Folding an eval-mode batchnorm into the preceding linear layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import assert_close
from tests.trainlab.norm_inputs import affine, randn, running_stats, shifted
from trainlab.batchnorm import batchnorm_forward
from trainlab.fold import fold_batchnorm

pytestmark = pytest.mark.norm

N, D_IN, D_OUT = 6, 5, 3  # all different: scaling rows instead of columns fails


def _setup(gen, device):
    w = randn(gen, D_IN, D_OUT, device=device)  # lecture layout
    b = randn(gen, D_OUT, device=device)
    gamma, beta = affine(gen, D_OUT, device=device)
    rm, rv = running_stats(gen, D_OUT, device=device)
    return w, b, gamma, beta, rm, rv


def test_folded_linear_equals_linear_then_batchnorm(device, gen):
    w, b, gamma, beta, rm, rv = _setup(gen, device)
    x = shifted(gen, N, D_IN, device=device)
    w_f, b_f = fold_batchnorm(w, b, gamma, beta, rm, rv, eps=1e-3)

    ours, _ = batchnorm_forward(
        x @ w + b, gamma, beta, rm, rv, training=False, eps=1e-3
    )
    ref = F.batch_norm(F.linear(x, w.t(), b), rm, rv, gamma, beta, eps=1e-3)
    assert w_f.shape == (D_IN, D_OUT) and b_f.shape == (D_OUT,)
    assert_close(x @ w_f + b_f, ref, what="folded vs torch linear + batch_norm")
    assert_close(x @ w_f + b_f, ours, what="folded vs trainlab linear + batchnorm")


def test_formula_per_output_unit(device, gen):
    w, b, gamma, beta, rm, rv = _setup(gen, device)
    w_f, b_f = fold_batchnorm(w, b, gamma, beta, rm, rv)
    scale = gamma / torch.sqrt(rv + 1e-5)
    for j in range(D_OUT):
        assert_close(w_f[:, j], w[:, j] * scale[j], what=f"column {j}")
    assert_close(b_f, (b - rm) * scale + beta, what="folded bias")


def test_inputs_are_not_modified(gen):
    tensors = _setup(gen, "cpu")
    saved = [t.clone() for t in tensors]
    fold_batchnorm(*tensors)
    assert all(torch.equal(a, b) for a, b in zip(saved, tensors, strict=True))


def test_wrong_layout_and_types_are_refused(gen):
    w, b, gamma, beta, rm, rv = _setup(gen, "cpu")
    with pytest.raises(ValueError, match=r"lecture layout \(D_in, D_out\).*\(3, 5\)"):
        fold_batchnorm(w.t(), b, gamma, beta, rm, rv)  # torch's (D_out, D_in)
    with pytest.raises(ValueError, match=r"w must have 2 dimensions"):
        fold_batchnorm(w[0], b, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\); got \(1, 3\)"):
        fold_batchnorm(w, b[None], gamma, beta, rm, rv)
    with pytest.raises(TypeError, match=r"running_var has dtype torch.float32"):
        fold_batchnorm(w, b, gamma, beta, rm, rv.float())
