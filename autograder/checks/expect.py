"""Assertions for checks: each raises :class:`Mistake` with a message for a student.

Values from student code are first turned into plain tensors with
:func:`plain_tensor`: exactly ``torch.Tensor`` (not a subclass whose ``__eq__``
or ``__torch_function__`` could lie), detached and copied, so the comparison
runs on data only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from autograder.checks.core import Mistake

# relative-error tolerances by dtype; float32 checks compare with a float64
# reference, so they need room for rounding
TOLERANCE = {torch.float64: 1e-7, torch.float32: 1e-4}


def plain_tensor(x: object, name: str) -> torch.Tensor:
    """Return ``x`` as a detached plain tensor, or raise a Mistake naming its type."""
    if isinstance(x, (tuple, list)):
        raise Mistake(
            f"{name} should be a single tensor, but your function returned a "
            f"{type(x).__name__} of length {len(x)}"
        )
    if not isinstance(x, torch.Tensor):
        raise Mistake(f"{name} should be a torch.Tensor; got {type(x).__name__}")
    # strip subclasses: compare raw data only
    return torch.Tensor._make_subclass(torch.Tensor, x.detach(), False).clone()


def unpack(value: object, names: Sequence[str], what: str) -> list[torch.Tensor]:
    """Split a returned tuple into named plain tensors, checking its length."""
    if len(names) == 1:
        return [plain_tensor(value, names[0])]
    if not isinstance(value, (tuple, list)):
        raise Mistake(
            f"{what} should return a tuple ({', '.join(names)}); "
            f"got {type(value).__name__}"
        )
    if len(value) != len(names):
        raise Mistake(
            f"{what} should return {len(names)} values ({', '.join(names)}); "
            f"got {len(value)}"
        )
    return [plain_tensor(v, n) for v, n in zip(value, names, strict=True)]


def expect_shape(x: torch.Tensor, shape: Sequence[int], name: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise Mistake(f"{name} has shape {tuple(x.shape)}; expected {tuple(shape)}")


def expect_dtype_device(x: torch.Tensor, like: torch.Tensor, name: str) -> None:
    if x.dtype != like.dtype:
        raise Mistake(
            f"{name} has dtype {x.dtype}; expected {like.dtype} (the input's dtype). "
            "Avoid hard-coding a dtype such as torch.float32."
        )
    if x.device != like.device:
        raise Mistake(
            f"{name} is on {x.device}; expected {like.device} (the input's device). "
            "Create new tensors with device=x.device, or with torch.zeros_like(x)."
        )


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max(|a| + |b|), computed in float64 on the CPU."""
    a = a.double().cpu()
    b = b.double().cpu()
    if a.numel() == 0:
        return 0.0
    den = float((a.abs() + b.abs()).max())
    return float((a - b).abs().max()) / max(den, 1e-300)


def expect_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    name: str,
    *,
    tol: float | None = None,
    hint: str = "",
) -> None:
    """Shape, then NaN/inf, then relative error; the message shows the worst entry."""
    expect_shape(actual, expected.shape, name)
    if not torch.isfinite(actual).all():
        bad = int((~torch.isfinite(actual)).sum())
        raise Mistake(f"{name} has {bad} NaN or infinite entries")
    tol = TOLERANCE.get(actual.dtype, 1e-4) if tol is None else tol
    err = rel_error(actual, expected)
    if err > tol:
        diff = (actual.double().cpu() - expected.double().cpu()).abs()
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        yours = float(actual.double().cpu()[idx]) if idx else float(actual)
        want = float(expected.double().cpu()[idx]) if idx else float(expected)
        msg = (
            f"{name} does not match the reference: relative error {err:.1e} "
            f"(allowed {tol:.0e}); worst entry {where}: yours {yours:.6g}, "
            f"expected {want:.6g}"
        )
        if hint:
            msg += f"\nHint: {hint}"
        raise Mistake(msg)
