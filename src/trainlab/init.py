r"""Weight initialization: constant, small random, Xavier (Glorot) and Kaiming (He).

Every initializer takes a ``shape`` and returns a new tensor (nothing is filled in
place). Given the same ``torch.Generator``, each one returns exactly the numbers
``torch.nn.init`` draws on the equivalent torch layout, bit for bit.

Convention (the one that trips people up): fan-in depends on the layout.

* Fully connected weights follow the lecture: ``W`` has shape ``(D_in, D_out)``
  and ``y = x @ W + b``, so ``fan_in = D_in = shape[0]`` and
  ``fan_out = D_out = shape[1]``. torch's ``nn.Linear`` stores the transpose,
  ``(D_out, D_in)``, and computes ``x @ W.T``. To match ``torch.nn.init`` bit for
  bit, a 2-D weight is drawn into a ``(D_out, D_in)`` tensor exactly as torch
  would, and its transpose is returned (made contiguous).
* Convolution weights (3 or more dimensions) use torch's layout
  ``(C_out, C_in, kH, kW)``: ``fan_in = C_in * kH * kW`` and
  ``fan_out = C_out * kH * kW``. They are drawn directly in that layout.

Gains (``calculate_gain``, the same table as ``torch.nn.init.calculate_gain``):

    ==================================  ===========================
    nonlinearity                        gain
    ==================================  ===========================
    linear, conv*, conv_transpose*      $1$
    sigmoid                             $1$
    tanh                                $5/3$
    relu                                $\sqrt{2}$
    leaky_relu (negative slope $a$)     $\sqrt{2 / (1 + a^2)}$
    selu                                $3/4$
    ==================================  ===========================

Standard deviations:

* Kaiming: $\mathrm{std} = \mathrm{gain} / \sqrt{\mathrm{fan}}$, with
  fan = fan_in (default, keeps the forward variance) or fan_out (keeps the
  backward variance).
* Xavier: $\mathrm{std} = \mathrm{gain} \sqrt{2 / (\mathrm{fan\_in} +
  \mathrm{fan\_out})}$.
* Uniform versions draw from $U(-b, b)$ with $b = \sqrt{3}\,\mathrm{std}$, the
  bound whose variance $b^2/3$ equals $\mathrm{std}^2$.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch

__all__ = [
    "INITIALIZERS",
    "calculate_gain",
    "compute_fans",
    "constant",
    "kaiming_normal",
    "kaiming_uniform",
    "small_random",
    "xavier_normal",
    "xavier_uniform",
]

_LINEAR_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
_NONLINEARITIES = (*_LINEAR_NAMES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""Recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    $$\mathrm{gain} = \begin{cases} 1 & \text{linear, conv, sigmoid} \\
    5/3 & \text{tanh} \\ \sqrt{2} & \text{relu} \\
    \sqrt{2 / (1 + a^2)} & \text{leaky\_relu with negative slope } a \\
    3/4 & \text{selu} \end{cases}$$

    The gain makes up for how much the nonlinearity shrinks the variance: relu
    zeroes half of its inputs, so it halves the second moment, and $\sqrt{2}$
    restores it.

    Args:
        nonlinearity: one of ``"linear"``, ``"conv1d"``, ``"conv2d"``,
            ``"conv3d"``, ``"conv_transpose1d/2d/3d"``, ``"sigmoid"``, ``"tanh"``,
            ``"relu"``, ``"leaky_relu"``, ``"selu"``.
        param: the negative slope for ``"leaky_relu"`` (default None, meaning
            0.01, torch's default slope); ignored by the other nonlinearities.

    Returns:
        The gain, a Python float.

    Raises:
        ValueError: unknown nonlinearity, or a leaky_relu slope that is not a
            number (booleans are refused, as in torch).

    Example:
        >>> calculate_gain("leaky_relu", 0.2)  # sqrt(2 / 1.04)
        1.3867504905630728
    """
    if nonlinearity in _LINEAR_NAMES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, int | float):
            raise ValueError(
                f"leaky_relu needs a number as its negative slope; got {param!r} "
                f"({type(param).__name__})"
            )
        else:
            slope = param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"unknown nonlinearity {nonlinearity!r}; expected one of "
        f"{', '.join(_NONLINEARITIES)}"
    )


def _as_shape(shape: Sequence[int], name: str = "shape") -> tuple[int, ...]:
    """Turn ``shape`` into a tuple of non-negative ints, or explain what is wrong."""
    if isinstance(shape, int):
        raise TypeError(
            f"{name} must be a sequence of ints such as (D_in, D_out); got the int "
            f"{shape}. Write ({shape},) for a vector."
        )
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of ints such as (D_in, D_out); "
            f"got {type(shape).__name__}"
        ) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"{name} must contain non-negative ints; got {dims}")
    return dims


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    r"""Fan-in and fan-out of a weight of the given shape.

    Linear (2-D, lecture layout ``(D_in, D_out)``, ``y = x @ W``):
    $\mathrm{fan\_in} = D_{in}$, $\mathrm{fan\_out} = D_{out}$.

    Convolution (torch layout ``(C_out, C_in, k_1, ..., k_d)``):
    $\mathrm{fan\_in} = C_{in} \prod_i k_i$,
    $\mathrm{fan\_out} = C_{out} \prod_i k_i$.

    Args:
        shape: the weight's shape, at least 2 dimensions.

    Returns:
        ``(fan_in, fan_out)`` as Python ints.

    Raises:
        ValueError: fewer than 2 dimensions (a bias or a scalar has no fans).

    Note:
        This is ``torch.nn.init._calculate_fan_in_and_fan_out`` for conv weights,
        but for 2-D weights the roles of the two dimensions are swapped, because
        ``nn.Linear`` stores ``(D_out, D_in)`` while the lecture writes
        ``(D_in, D_out)``.
    """
    dims = _as_shape(shape)
    if len(dims) < 2:
        raise ValueError(
            "fan_in and fan_out need a weight with at least 2 dimensions, "
            "(D_in, D_out) for a linear layer or (C_out, C_in, kH, kW) for a "
            f"convolution; got shape {dims}"
        )
    if len(dims) == 2:
        d_in, d_out = dims
        return d_in, d_out
    receptive_field = math.prod(dims[2:])
    return dims[1] * receptive_field, dims[0] * receptive_field


def _torch_layout(dims: tuple[int, ...]) -> tuple[int, ...]:
    """The shape torch would draw into: (D_out, D_in) for 2-D, unchanged otherwise."""
    if len(dims) == 2:
        return (dims[1], dims[0])
    return dims


def _empty(
    dims: tuple[int, ...],
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """An empty tensor in torch's layout, on a device the generator can fill."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator or None; "
            f"got {type(generator).__name__}"
        )
    if generator is not None:
        if device is None:
            device = generator.device
        target = torch.device(device)
        if target.type != generator.device.type:
            raise ValueError(
                f"the generator is on {generator.device} but the weight is requested "
                f"on {target}; pass a generator on {target.type} "
                f"(torch.Generator(device={target.type!r})), or draw with "
                f"device={generator.device.type!r} and move the result with .to()"
            )
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype; got {dtype}")
    return torch.empty(_torch_layout(dims), dtype=dtype, device=device)


def _from_torch_layout(t: torch.Tensor) -> torch.Tensor:
    """Back to the lecture layout: (D_out, D_in) -> (D_in, D_out), contiguous."""
    if t.dim() == 2:
        return t.t().contiguous()  # (D_in, D_out)
    return t


def _normal(
    dims: tuple[int, ...],
    std: float,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    t = _empty(dims, generator, dtype, device)
    t.normal_(0.0, std, generator=generator)
    return _from_torch_layout(t)


def _uniform(
    dims: tuple[int, ...],
    bound: float,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    t = _empty(dims, generator, dtype, device)
    t.uniform_(-bound, bound, generator=generator)
    return _from_torch_layout(t)


def _nonzero_fan(fan: int, what: str, dims: tuple[int, ...]) -> int:
    if fan == 0:
        raise ValueError(
            f"{what} is 0 for shape {dims}, so the standard deviation is undefined; "
            "every dimension of a weight must be at least 1"
        )
    return fan


def constant(
    shape: Sequence[int],
    value: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A tensor filled with ``value``, as ``torch.nn.init.constant_``.

    ``constant(shape, 0.0)`` is the all-zero initialization the lecture warns
    about: every unit of a layer computes the same output and gets the same
    gradient, so the units never become different (no symmetry breaking).

    Args:
        shape: any shape (a bias ``(D,)`` is fine).
        value: the fill value.
        dtype: default None (torch's default dtype).
        device: default None (CPU).

    Returns:
        A new tensor of shape ``shape``.
    """
    dims = _as_shape(shape)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return torch.full(dims, float(value), dtype=dtype, device=device)


def small_random(
    shape: Sequence[int],
    std: float = 0.01,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Small Gaussian weights: the lecture's ``0.01 * np.random.randn(D_in, D_out)``.

    $$W_{ij} \sim \mathcal{N}(0, \mathrm{std}^2)$$

    The std ignores the layer size, which is why it fails in deep nets: with
    ``std=0.01`` and tanh the activations shrink toward 0 layer after layer; with
    ``std=0.05`` and 4096 units they saturate at $\pm 1$.

    Args:
        shape: any shape; 2-D is the lecture layout ``(D_in, D_out)``.
        std: standard deviation (default 0.01).
        generator: the random generator (default None, torch's global one). It
            must live on the device the weight is made on.
        dtype: default None (torch's default dtype).
        device: default None (the generator's device, else CPU).

    Returns:
        A new tensor of shape ``shape``.

    Note:
        Bitwise equal to ``torch.nn.init.normal_(w, 0.0, std, generator)`` with
        ``w`` of shape ``(D_out, D_in)``, transposed, for 2-D shapes; to
        ``normal_`` on ``shape`` itself otherwise.
    """
    dims = _as_shape(shape)
    return _normal(dims, float(std), generator, dtype, device)


def xavier_normal(
    shape: Sequence[int],
    gain: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Xavier (Glorot) normal initialization, as ``torch.nn.init.xavier_normal_``.

    $$W_{ij} \sim \mathcal{N}(0, \mathrm{std}^2), \qquad
    \mathrm{std} = \mathrm{gain} \sqrt{\frac{2}{\mathrm{fan\_in} +
    \mathrm{fan\_out}}}$$

    For a square layer this is the lecture's ``np.random.randn(D_in, D_out) /
    np.sqrt(D_in)``: the output of ``x @ W`` then has the variance of ``x``.

    Args:
        shape: at least 2-D; ``(D_in, D_out)`` (lecture) or
            ``(C_out, C_in, kH, kW)`` (conv), see ``compute_fans``.
        gain: scale factor (default 1.0), e.g. ``calculate_gain("tanh")``.
        generator: default None (torch's global generator); must be on the
            weight's device.
        dtype: default None (torch's default dtype).
        device: default None (the generator's device, else CPU).

    Returns:
        A new tensor of shape ``shape``.
    """
    dims = _as_shape(shape)
    fan_in, fan_out = compute_fans(dims)
    _nonzero_fan(fan_in + fan_out, "fan_in + fan_out", dims)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _normal(dims, std, generator, dtype, device)


def xavier_uniform(
    shape: Sequence[int],
    gain: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Xavier (Glorot) uniform initialization, as ``torch.nn.init.xavier_uniform_``.

    $$W_{ij} \sim U(-b, b), \qquad b = \sqrt{3}\,\mathrm{std} =
    \mathrm{gain} \sqrt{\frac{6}{\mathrm{fan\_in} + \mathrm{fan\_out}}}$$

    Args:
        shape: at least 2-D; ``(D_in, D_out)`` (lecture) or
            ``(C_out, C_in, kH, kW)`` (conv), see ``compute_fans``.
        gain: scale factor (default 1.0).
        generator: default None (torch's global generator); must be on the
            weight's device.
        dtype: default None (torch's default dtype).
        device: default None (the generator's device, else CPU).

    Returns:
        A new tensor of shape ``shape``.
    """
    dims = _as_shape(shape)
    fan_in, fan_out = compute_fans(dims)
    _nonzero_fan(fan_in + fan_out, "fan_in + fan_out", dims)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return _uniform(dims, bound, generator, dtype, device)


def _kaiming_std(
    dims: tuple[int, ...], a: float, mode: str, nonlinearity: str
) -> float:
    r"""The standard deviation of Kaiming (He) initialization for a weight shape.

    $$\mathrm{std} = \frac{\mathrm{gain}}{\sqrt{\mathrm{fan}}}$$

    with gain ``calculate_gain(nonlinearity, a)`` and fan the fan-in (default)
    or the fan-out of ``compute_fans(dims)``.

    Args:
        dims: the weight's shape: ``(D_in, D_out)`` (lecture layout) or
            ``(C_out, C_in, kH, kW)`` (conv).
        a: negative slope of the leaky relu that follows (0 for relu).
        mode: ``"fan_in"`` (keeps the forward variance) or ``"fan_out"``
            (keeps the backward variance).
        nonlinearity: name for ``calculate_gain``, e.g. ``"relu"``.

    Returns:
        The std as a Python float.

    Raises:
        ValueError: mode other than fan_in / fan_out, or a fan of 0.
    """
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = compute_fans(dims)
    fan = fan_in if mode.lower() == "fan_in" else fan_out
    _nonzero_fan(fan, mode.lower(), dims)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_normal(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Kaiming (He) normal initialization, as ``torch.nn.init.kaiming_normal_``.

    $$W_{ij} \sim \mathcal{N}(0, \mathrm{std}^2), \qquad
    \mathrm{std} = \frac{\mathrm{gain}}{\sqrt{\mathrm{fan}}}$$

    With the defaults (leaky_relu with slope ``a = 0``, that is relu) the gain is
    $\sqrt{2}$: the lecture's ``np.random.randn(D_in, D_out) * np.sqrt(2 / D_in)``.

    Args:
        shape: at least 2-D; ``(D_in, D_out)`` (lecture) or
            ``(C_out, C_in, kH, kW)`` (conv), see ``compute_fans``.
        a: negative slope of the leaky relu that follows (default 0.0); used
            only with ``nonlinearity="leaky_relu"``.
        mode: ``"fan_in"`` (default; keeps the variance of the forward pass) or
            ``"fan_out"`` (keeps the variance of the backward pass).
        nonlinearity: name passed to ``calculate_gain`` (default "leaky_relu").
        generator: default None (torch's global generator); must be on the
            weight's device.
        dtype: default None (torch's default dtype).
        device: default None (the generator's device, else CPU).

    Returns:
        A new tensor of shape ``shape``.

    Raises:
        ValueError: mode other than fan_in / fan_out, unknown nonlinearity,
            fewer than 2 dimensions.
    """
    dims = _as_shape(shape)
    std = _kaiming_std(dims, a, mode, nonlinearity)
    return _normal(dims, std, generator, dtype, device)


def kaiming_uniform(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Kaiming (He) uniform initialization, as ``torch.nn.init.kaiming_uniform_``.

    $$W_{ij} \sim U(-b, b), \qquad b = \sqrt{3}\,\frac{\mathrm{gain}}
    {\sqrt{\mathrm{fan}}}$$

    Args:
        shape: at least 2-D; ``(D_in, D_out)`` (lecture) or
            ``(C_out, C_in, kH, kW)`` (conv), see ``compute_fans``.
        a: negative slope of the leaky relu that follows (default 0.0).
        mode: ``"fan_in"`` (default) or ``"fan_out"``.
        nonlinearity: name passed to ``calculate_gain`` (default "leaky_relu").
        generator: default None (torch's global generator); must be on the
            weight's device.
        dtype: default None (torch's default dtype).
        device: default None (the generator's device, else CPU).

    Returns:
        A new tensor of shape ``shape``.
    """
    dims = _as_shape(shape)
    bound = math.sqrt(3.0) * _kaiming_std(dims, a, mode, nonlinearity)
    return _uniform(dims, bound, generator, dtype, device)


Initializer = Callable[..., torch.Tensor]


def _zeros(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """All zeros; ``generator`` is accepted for a uniform signature and unused."""
    return constant(shape, 0.0, dtype=dtype, device=device)


#: Named initializers, each called as ``init(shape, *, generator, dtype, device)``:
#:
#: * ``"constant0"``: all zeros (no symmetry breaking).
#: * ``"small_0.01"``, ``"small_0.05"``: ``small_random`` with that std.
#: * ``"xavier_normal"``, ``"xavier_uniform"``: gain 1 (the lecture's Xavier,
#:   std $1/\sqrt{D_{in}}$ for a square layer).
#: * ``"kaiming_normal"``, ``"kaiming_uniform"``: relu gain $\sqrt{2}$, fan_in
#:   (the lecture's ``np.sqrt(2 / D_in)``).
INITIALIZERS: dict[str, Initializer] = {
    "constant0": _zeros,
    "small_0.01": partial(small_random, std=0.01),
    "small_0.05": partial(small_random, std=0.05),
    "xavier_normal": partial(xavier_normal, gain=1.0),
    "xavier_uniform": partial(xavier_uniform, gain=1.0),
    "kaiming_normal": partial(kaiming_normal, nonlinearity="relu"),
    "kaiming_uniform": partial(kaiming_uniform, nonlinearity="relu"),
}
