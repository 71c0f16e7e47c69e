"""Shared fixtures: the device parametrization used by every numerical test."""

from __future__ import annotations

import pytest
import torch

CUDA_REASON = "no CUDA device on this machine; the same test runs on CPU"


def _devices() -> list:
    return [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON),
            ],
        ),
    ]


@pytest.fixture(params=_devices())
def device(request) -> torch.device:
    """Each test using this fixture runs on CPU, and on CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator: draw on CPU, then move, so runs are repeatable."""
    return torch.Generator().manual_seed(0)
