"""Input checks shared by every layer: clear errors for wrong shapes, dtypes, devices.

Every message says what was expected and what was found, so that a student who
passes the wrong thing learns what to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    floating: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with an allowed number of dimensions.

    Args:
        x: the value to check.
        name: how the value is called in the message, e.g. ``"x"``.
        ndim: the allowed number of dimensions (an int or a sequence of ints).
        min_ndim: the least number of dimensions, when any larger one is fine.
        floating: require a floating-point dtype (float16/32/64, bfloat16).

    Returns:
        ``x`` itself, so that ``x = check_tensor(x, "x", ndim=2)`` reads well.

    Raises:
        TypeError: ``x`` is not a tensor, or not floating point when required.
        ValueError: ``x`` has the wrong number of dimensions.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(
            f"{name} must have a floating-point dtype; got {x.dtype}. "
            f"Convert it with {name}.double() or {name}.float()."
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {want} dimensions; got shape {tuple(x.shape)} "
                f"({x.dim()} dimensions)"
            )
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions; "
            f"got shape {tuple(x.shape)}"
        )
    return x


def check_shape(x: torch.Tensor, name: str, shape: Sequence[int]) -> torch.Tensor:
    """Check that ``x.shape == shape``; the message shows both shapes."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(x.shape)}")
    return x


def check_compatible(ref: torch.Tensor, ref_name: str, **others: object) -> None:
    """Check that tensors share the device and dtype of ``ref``.

    ``None`` values are skipped, so optional arguments can be passed as they are.

    Example:
        >>> check_compatible(x, "x", gamma=gamma, beta=beta)
    """
    for name, t in others.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if t.device != ref.device:
            raise ValueError(
                f"{name} is on {t.device} but {ref_name} is on {ref.device}; "
                f"move them to the same device, e.g. {name}.to({ref_name}.device)"
            )
        if t.dtype != ref.dtype:
            raise TypeError(
                f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}; "
                f"use the same dtype, e.g. {name}.to({ref_name}.dtype)"
            )
