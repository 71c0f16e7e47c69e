"""Shared fixtures: the device parametrization used by every numerical test, and
the one headless Chromium of a test process (book, lab and feedback pages)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

CHROMIUM = Path(os.environ.get("TRAINLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

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


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian chromium driven by playwright (no downloaded browsers).

    One per test process: playwright's sync API allows a single instance per
    process, so every browser test shares this one.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}; install it (`make setup` as root, or "
            "apt-get install chromium) or set TRAINLAB_CHROMIUM"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
