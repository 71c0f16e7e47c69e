"""Helpers for tests: relative error against a reference, in float64."""

from __future__ import annotations

import torch


def max_rel_error(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-30) -> float:
    """max|a - b| / max(eps, max(|a| + |b|)), as a Python float.

    Scale-aware: entries that are near zero by cancellation do not blow it up.
    """
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    assert a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / (a.abs() + b.abs()).max().clamp_min(eps))


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-10, what="") -> None:
    err = max_rel_error(a, b)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e}"
