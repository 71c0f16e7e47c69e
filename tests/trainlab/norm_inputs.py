"""Inputs for the normalization tests, chosen to expose the usual mistakes.

- x = 5 * randn + 12: shifted and scaled, so a missing centering or scaling shows;
- gamma in (0.5, 1.5) and beta ~ N(0, 1): never the default 1 and 0;
- dout ~ N(0, 1): never ones (a plain sum hides errors that cancel);
- N = 4 by default and N != D: biased and unbiased variance differ by 4/3, and a
  misplaced transpose or sum axis changes a shape;
- per-channel offsets for (N, C, ...) inputs: statistics pooled over the wrong
  axis give visibly wrong means.
Everything is drawn on the CPU from the given generator, in float64, then moved.
"""

from __future__ import annotations

import torch

F64 = torch.float64


def randn(gen: torch.Generator, *shape: int, device="cpu") -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=F64).to(device)


def shifted(gen: torch.Generator, *shape: int, device="cpu") -> torch.Tensor:
    """5 * randn + 12, plus 3 * c on channel c when there is a channel dim."""
    x = 5 * torch.randn(*shape, generator=gen, dtype=F64) + 12
    if len(shape) >= 3:
        offsets = 3.0 * torch.arange(shape[1], dtype=F64)  # (C,)
        x = x + offsets.reshape(1, -1, *([1] * (len(shape) - 2)))
    return x.to(device)


def affine(gen: torch.Generator, *shape: int, device="cpu"):
    """Random (gamma, beta): gamma in (0.5, 1.5), beta ~ N(0, 1)."""
    gamma = (torch.rand(*shape, generator=gen, dtype=F64) + 0.5).to(device)
    beta = randn(gen, *shape, device=device)
    return gamma, beta


def running_stats(gen: torch.Generator, d: int, device="cpu"):
    """Random (running_mean, running_var), running_var in (0.5, 1.5)."""
    mean = randn(gen, d, device=device)
    var = (torch.rand(d, generator=gen, dtype=F64) + 0.5).to(device)
    return mean, var


def with_grad(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Leaf copies that require grad, for the autograd reference."""
    return [t.detach().clone().requires_grad_(True) for t in tensors]
