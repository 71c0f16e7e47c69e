"""Cost of gradient checking batch normalization's dx, float64.

Rows: ``trainlab.gradcheck.check_directional`` (2 random directions) and
``check_elementwise`` (20 sampled entries) on ``trainlab.batchnorm``
(``batchnorm_forward`` / ``batchnorm_backward_alt``, training mode), against
``torch.autograd.gradcheck`` on ``torch.nn.functional.batch_norm``
(``training=True``), checking the gradient with respect to ``x`` only. Inputs
``x = 5 * randn + 12`` with random gamma and beta. Times include the forward and
backward pass that produce the analytic gradient; median of a few repeats with
``time.perf_counter`` (CUDA synchronized).

Full mode builds the whole Jacobian: one pair of forward passes per input entry
and one vector-Jacobian product per output entry, stored as two dense
(numel x numel) matrices. At N=256, D=1024 that is 2 x 262144^2 float64 values
(about 550 GB each), so it cannot run: it is measured at N=32, D=32 instead,
and its full-size time is extrapolated (clearly labelled) from timing a batch of
Jacobian columns and rows at full size, a lower bound that ignores memory.
``ratio`` is time / the first row's time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainlab.gradcheck import check_directional, check_elementwise

N, D = 256, 1024
FULL_N, FULL_D = 32, 32  # full mode, measured (seconds; 64x64 takes minutes)
COLUMNS = 32  # full-size column batch for the extrapolation


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and dispatch caches
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _inputs(n: int, d: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device)

    return 5 * randn(n, d) + 12, randn(d), randn(d), randn(n, d)


def _trainlab_check(n: int, d: int, device: torch.device, mode: str):
    """A closure running forward, backward and one check of dx; and its report."""
    from trainlab.batchnorm import batchnorm_backward_alt, batchnorm_forward

    x, gamma, beta, dout = _inputs(n, d, device)
    running_mean = torch.zeros(d, dtype=torch.float64, device=device)
    running_var = torch.ones(d, dtype=torch.float64, device=device)

    def f(v: torch.Tensor) -> torch.Tensor:
        return batchnorm_forward(v, gamma, beta, running_mean, running_var)[0]

    def once():
        _, cache = batchnorm_forward(x, gamma, beta, running_mean, running_var)
        dx, _, _ = batchnorm_backward_alt(dout, cache)
        gen = torch.Generator().manual_seed(1)
        if mode == "directional":
            return check_directional(f, x, dout, dx, num_directions=2, generator=gen)
        return check_elementwise(f, x, dout, dx, num_samples=20, generator=gen)

    return once


def _torch_batch_norm(n: int, d: int, device: torch.device):
    x, gamma, beta, _ = _inputs(n, d, device)
    x.requires_grad_(True)

    def f(v: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(v, None, None, gamma, beta, training=True, eps=1e-5)

    return f, x


def _extrapolated_full_mode_ms(device: torch.device, repeats: int) -> float:
    """Full mode's work at (N, D), timed on COLUMNS columns and rows, scaled up.

    Per input entry: two forward passes and a column of the numerical Jacobian;
    per output entry: one vector-Jacobian product (a backward pass). Only a
    lower bound: the two (numel x numel) Jacobians themselves are never stored.
    """
    f, x = _torch_batch_norm(N, D, device)
    numel = x.numel()
    h = 1e-6  # gradcheck's default eps
    out = f(x)
    cols = torch.empty(numel, COLUMNS, dtype=torch.float64, device=device)

    def numerical_columns():
        with torch.no_grad():
            xp = x.detach().clone()
            flat = xp.view(-1)
            for j in range(COLUMNS):
                old = flat[j].item()
                flat[j] = old + h
                f_plus = f(xp)
                flat[j] = old - h
                f_minus = f(xp)
                flat[j] = old
                cols[:, j] = ((f_plus - f_minus) / (2 * h)).view(-1)

    def analytic_rows():
        grad_out = torch.zeros_like(out)
        flat = grad_out.view(-1)
        for j in range(COLUMNS):
            flat.zero_()
            flat[j] = 1.0
            (row,) = torch.autograd.grad(out, x, grad_out, retain_graph=True)
            cols[:, j] = row.view(-1)

    per_batch = _median_ms(numerical_columns, device, repeats)
    per_batch += _median_ms(analytic_rows, device, repeats)
    return per_batch * numel / COLUMNS


def run(device: str | torch.device | None = None, repeats: int = 5) -> list[dict]:
    """Time each check; rows of name, time_ms, ratio (to the first row), rel_error."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    size = f"{N}x{D}"
    rows: list[dict] = []

    def add(name: str, ms: float, rel: float | None = None) -> None:
        base = rows[0]["time_ms"] if rows else ms
        rows.append(
            {
                "name": f"{name} [{device.type}]",
                "time_ms": ms,
                "ratio": ms / base,
                "rel_error": rel,
            }
        )

    for mode, what in [
        ("directional", "trainlab check_directional (2 directions)"),
        ("elementwise", "trainlab check_elementwise (20 entries)"),
    ]:
        once = _trainlab_check(N, D, device, mode)
        add(f"{what}, {size}", _median_ms(once, device, repeats), once().rel_error)

    f, x = _torch_batch_norm(N, D, device)
    ms = _median_ms(
        lambda: torch.autograd.gradcheck(f, (x,), fast_mode=True), device, repeats
    )
    add(f"torch gradcheck fast_mode=True, {size}", ms)

    small = f"{FULL_N}x{FULL_D}"
    once = _trainlab_check(FULL_N, FULL_D, device, "directional")
    add(
        f"trainlab check_directional (2 directions), {small}",
        _median_ms(once, device, repeats),
        once().rel_error,
    )
    f, x = _torch_batch_norm(FULL_N, FULL_D, device)
    ms = _median_ms(lambda: torch.autograd.gradcheck(f, (x,)), device, 1)
    add(f"torch gradcheck full mode, {small} (smaller: full size cannot run)", ms)

    ms = _extrapolated_full_mode_ms(device, max(1, repeats // 2))
    add(
        f"torch gradcheck full mode, {size}: EXTRAPOLATED lower bound from "
        f"{COLUMNS} Jacobian columns + rows (needs 2 x 550 GB, not run)",
        ms,
    )
    return rows


if __name__ == "__main__":
    results = run()
    width = max(len(r["name"]) for r in results)
    print(f"{'name':<{width}}  {'time_ms':>12}  {'ratio':>10}  rel_error")
    for r in results:
        rel = "" if r["rel_error"] is None else f"{r['rel_error']:.1e}"
        print(
            f"{r['name']:<{width}}  {r['time_ms']:>12.2f}  {r['ratio']:>10.3g}  {rel}"
        )
