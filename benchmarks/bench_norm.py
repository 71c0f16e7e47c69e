"""Speed of trainlab's normalization layers against torch's native ones, CPU float32.

Each row times one forward and one backward pass. trainlab: ``*_forward`` then
``*_backward`` (no autograd). torch: the ``torch.nn.functional`` op on inputs
that require grad, then ``.backward(dout)``: autograd with torch's fused native
kernels. The "backward only" row times just the backward call, after an untimed
forward. Batchnorm runs in training mode with running statistics on both sides.
Sizes: (N, D) = (1024, 1024) and (N, C, H, W) = (64, 64, 32, 32), group norm with
32 groups. Median of ``repeats`` timings after warm-up, the two sides
alternating in the same process, torch's default thread count (recorded).
``ratio`` = trainlab / torch of the medians: 1 means as fast as torch, 2 twice as
slow; ``ratio_of_minima`` compares the fastest runs, less sensitive to other work
on the machine. On a small shared CPU both vary from run to run by tens of
percent: compare ratios, not milliseconds, across machines.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainlab.batchnorm import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
)
from trainlab.groupnorm import groupnorm_backward, groupnorm_forward
from trainlab.layernorm import layernorm_backward, layernorm_forward
from trainlab.spatial_batchnorm import (
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

DTYPE = torch.float32
FLAT = (1024, 1024)  # (N, D)
SPATIAL = (64, 64, 32, 32)  # (N, C, H, W)
GROUPS = 32
WARMUP = 3


@dataclass
class Case:
    """One comparison: trainlab's forward/backward against a torch op."""

    name: str
    shape: tuple[int, ...]
    forward: Callable  # (x, gamma, beta, state) -> (out, cache)
    backward: Callable  # (dout, cache) -> grads
    torch_name: str
    torch_op: Callable  # (x, gamma, beta, state) -> out
    backward_only: bool = False


def _running(c: int) -> dict[str, torch.Tensor]:
    return {
        "running_mean": torch.zeros(c, dtype=DTYPE),
        "running_var": torch.ones(c, dtype=DTYPE),
    }


CASES = [
    Case(
        "batchnorm, graph backward",
        FLAT,
        lambda x, g, b, s: batchnorm_forward(x, g, b, **s),
        batchnorm_backward,
        "F.batch_norm",
        lambda x, g, b, s: F.batch_norm(x, weight=g, bias=b, training=True, **s),
    ),
    Case(
        "batchnorm, closed-form backward",
        FLAT,
        lambda x, g, b, s: batchnorm_forward(x, g, b, **s),
        batchnorm_backward_alt,
        "F.batch_norm",
        lambda x, g, b, s: F.batch_norm(x, weight=g, bias=b, training=True, **s),
    ),
    Case(
        "batchnorm, closed-form backward",
        FLAT,
        lambda x, g, b, s: batchnorm_forward(x, g, b, **s),
        batchnorm_backward_alt,
        "F.batch_norm",
        lambda x, g, b, s: F.batch_norm(x, weight=g, bias=b, training=True, **s),
        backward_only=True,
    ),
    Case(
        "layernorm",
        FLAT,
        lambda x, g, b, s: layernorm_forward(x, g, b),
        layernorm_backward,
        "F.layer_norm",
        lambda x, g, b, s: F.layer_norm(x, g.shape, g, b),
    ),
    Case(
        "spatial batchnorm",
        SPATIAL,
        lambda x, g, b, s: spatial_batchnorm_forward(x, g, b, **s),
        spatial_batchnorm_backward,
        "F.batch_norm",
        lambda x, g, b, s: F.batch_norm(x, weight=g, bias=b, training=True, **s),
    ),
    Case(
        f"groupnorm, {GROUPS} groups",
        SPATIAL,
        lambda x, g, b, s: groupnorm_forward(x, g, b, GROUPS),
        groupnorm_backward,
        "F.group_norm",
        lambda x, g, b, s: F.group_norm(x, GROUPS, g, b),
    ),
]


def _inputs(shape: tuple[int, ...], seed: int = 0):
    """x = 5 randn + 12, gamma in (0.5, 1.5), beta and dout standard normal."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = 5 * torch.randn(shape, generator=gen, dtype=DTYPE) + 12
    gamma = torch.rand(c, generator=gen, dtype=DTYPE) + 0.5
    beta = torch.randn(c, generator=gen, dtype=DTYPE)
    dout = torch.randn(shape, generator=gen, dtype=DTYPE)
    return x, gamma, beta, dout


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(fn: Callable[[], object]) -> tuple[float, int]:
    """Seconds that fn() took, and the minor page faults it caused."""
    faults = _page_faults()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, _page_faults() - faults


def _settle_allocator() -> None:
    """Put glibc's allocator in the steady state of a long-running process.

    glibc gives large freed blocks back to the OS once more than a threshold is
    free, and every page of the next allocation then faults back in, at a cost
    that can exceed the arithmetic here. The threshold grows the first time a
    large block is freed, so a fresh process and one that has held bigger tensors
    time the same code very differently. Allocating and freeing one 30 MB block
    first raises it for both sides alike; the page-fault columns show the rest.
    """
    block = torch.empty(30 * 2**20, dtype=torch.uint8)
    del block


def _trainlab_timer(case: Case) -> Callable[[], tuple[float, int]]:
    x, gamma, beta, dout = _inputs(case.shape)
    state = _running(case.shape[1])

    def step() -> tuple[float, int]:
        if case.backward_only:
            _, cache = case.forward(x, gamma, beta, state)
            return _timed(lambda: case.backward(dout, cache))
        return _timed(
            lambda: case.backward(dout, case.forward(x, gamma, beta, state)[1])
        )

    return step


def _torch_timer(case: Case) -> Callable[[], tuple[float, int]]:
    x, gamma, beta, dout = (t.requires_grad_(True) for t in _inputs(case.shape))
    dout = dout.detach()
    state = _running(case.shape[1])

    def step() -> tuple[float, int]:
        x.grad = gamma.grad = beta.grad = None
        if case.backward_only:
            out = case.torch_op(x, gamma, beta, state)
            return _timed(lambda: out.backward(dout))
        return _timed(lambda: case.torch_op(x, gamma, beta, state).backward(dout))

    return step


def _alternate(ours: Callable, theirs: Callable, repeats: int):
    """(seconds, page faults) of two timers, run alternately after a warm-up."""
    for _ in range(WARMUP):
        ours()
        theirs()
    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(theirs())
    return a, b


def run(repeats: int = 20) -> list[dict]:
    """Time every case; one row each, times in milliseconds."""
    _settle_allocator()
    rows = []
    for case in CASES:
        ours, theirs = _alternate(_trainlab_timer(case), _torch_timer(case), repeats)
        a, b = [t for t, _ in ours], [t for t, _ in theirs]
        t_ours, t_torch = statistics.median(a), statistics.median(b)
        rows.append(
            {
                "case": case.name,
                "shape": "x".join(map(str, case.shape)),
                "timed": "backward" if case.backward_only else "forward + backward",
                "trainlab_ms": 1e3 * t_ours,
                "torch_ms": 1e3 * t_torch,
                "ratio": t_ours / t_torch,
                "ratio_of_minima": min(a) / min(b),  # less sensitive to other load
                "trainlab_page_faults": statistics.mean(f for _, f in ours),
                "torch_page_faults": statistics.mean(f for _, f in theirs),
                "torch_op": case.torch_name,
                "dtype": str(DTYPE).removeprefix("torch."),
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "repeats": repeats,
            }
        )
    return rows


if __name__ == "__main__":
    columns = ["case", "shape", "timed", "trainlab_ms", "torch_ms", "ratio"]
    columns += ["ratio_of_minima", "trainlab_page_faults", "torch_page_faults"]
    print(" | ".join(columns))
    for row in run():
        print(
            " | ".join(
                f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k])
                for k in columns
            )
        )
