r"""The lecture's activation-statistics experiment: initialization in a deep net.

A stack of ``num_layers`` fully connected layers of ``width`` units, no biases,
is fed a batch of standard normal inputs:

$$h_0 = x \sim \mathcal{N}(0, 1)^{N \times D}, \qquad
h_l = f(h_{l-1} W_l), \quad W_l \in \mathbb{R}^{D \times D}$$

(lecture layout: ``W`` is ``(D_in, D_out)`` and the layer computes ``h @ W``).
For each layer we record the mean and standard deviation of $h_l$ and a sample
of its values for histograms. A manual backward pass (``trainlab.linear`` and
``trainlab.activations``, no autograd) from a random upstream gradient
$G \sim \mathcal{N}(0, 1)$, i.e. the loss $L = \sum h_L \odot G$, gives
$\partial L / \partial W_l$ for every layer.

What the lecture shows with 6 layers of 4096 units and a batch of 16:

* ``small_0.01`` + tanh: the std shrinks layer after layer toward 0, and so do
  the weight gradients (each is $h_{l-1}^T \delta_l$): no learning.
* ``small_0.05`` + tanh: the pre-activations are large, tanh saturates at
  $\pm 1$, local gradients $1 - \tanh^2$ vanish: no learning.
* ``xavier_normal`` + tanh: std $1/\sqrt{D_{in}}$ keeps the activations in a
  healthy range in every layer.
* ``xavier_normal`` + relu: relu halves the second moment, so the std shrinks by
  about $1/\sqrt{2}$ per layer.
* ``kaiming_normal`` + relu: std $\sqrt{2/D_{in}}$ makes up for it; the std stays
  about constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainlab.activations import ACTIVATIONS
from trainlab.init import INITIALIZERS, small_random
from trainlab.linear import linear_backward, linear_forward

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LayerStats", "activation_statistics", "plot_activation_histograms"]

Initializer = Callable[..., torch.Tensor]


@dataclass
class LayerStats:
    r"""Statistics of one layer of the experiment.

    Attributes:
        layer: layer index, starting at 1 (``h_1`` is the first hidden layer).
        mean: mean of all ``N * D`` activations of the layer.
        std: their standard deviation, population form (divides by the count,
            like ``np.std``).
        activations: at most ``max_samples`` activation values, flattened,
            float32, on CPU: for histograms.
        local_grad_mean: mean of the local gradient $f'(z_l)$ over the layer
            (the activation's backward applied to ones): near 0 when tanh
            saturates, so nothing flows back through the layer.
        grad_w_mean: mean of $\partial L / \partial W_l$ (None without grads).
        grad_w_std: its population standard deviation (None without grads).
        grad_w: a sample of its entries, flattened, float32, on CPU (None
            without grads).
    """

    layer: int
    mean: float
    std: float
    activations: torch.Tensor
    local_grad_mean: float
    grad_w_mean: float | None = None
    grad_w_std: float | None = None
    grad_w: torch.Tensor | None = None


def _identity_forward(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    return x, ()


def _identity_backward(dout: torch.Tensor, cache: tuple) -> torch.Tensor:
    return dout


def _activation(name: str) -> tuple[Callable, Callable]:
    if name == "linear":
        return _identity_forward, _identity_backward
    if name not in ACTIVATIONS:
        known = ", ".join(["linear", *ACTIVATIONS])
        raise ValueError(f"unknown nonlinearity {name!r}; expected one of {known}")
    return ACTIVATIONS[name]


def _initializer(init: str | Initializer, std: float | None) -> Initializer:
    """Resolve ``init`` (a name or a callable) and ``std`` into one callable."""
    if callable(init):
        if std is not None:
            raise ValueError("std is only used with init='small'; got a callable init")
        return init
    if not isinstance(init, str):
        raise TypeError(
            f"init must be a name or a callable(shape, *, generator, dtype, device); "
            f"got {type(init).__name__}"
        )
    if init == "small" or init.startswith("small_"):
        if init != "small":
            if std is not None:
                raise ValueError(f"init={init!r} already sets the std; drop std={std}")
            try:
                std = float(init.removeprefix("small_"))
            except ValueError:
                raise ValueError(
                    f"init={init!r} should read small_<std>, e.g. 'small_0.01'"
                ) from None
        if std is None:
            raise ValueError("init='small' needs std, e.g. std=0.01")
        return lambda shape, **kw: small_random(shape, std, **kw)
    if std is not None:
        raise ValueError(f"std is only used with init='small'; got init={init!r}")
    if init not in INITIALIZERS:
        known = ", ".join([*INITIALIZERS, "small (with std)", "small_<std>"])
        raise ValueError(f"unknown init {init!r}; expected one of {known}")
    return INITIALIZERS[init]


def _sample(t: torch.Tensor, max_samples: int) -> torch.Tensor:
    """Evenly spaced entries of ``t`` (all of them if few), float32 on CPU."""
    flat = t.reshape(-1)  # (numel,)
    if flat.numel() > max_samples:
        idx = torch.linspace(0, flat.numel() - 1, max_samples, device=flat.device)
        flat = flat[idx.long()]  # (max_samples,)
    return flat.detach().to(device="cpu", dtype=torch.float32)


def activation_statistics(
    init: str | Initializer,
    nonlinearity: str = "tanh",
    *,
    num_layers: int = 6,
    width: int = 4096,
    batch_size: int = 16,
    std: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    with_grads: bool = True,
    max_samples: int = 100_000,
) -> list[LayerStats]:
    r"""Run the lecture's deep-net experiment and return per-layer statistics.

    Forward: $h_0 = x$, $h_l = f(h_{l-1} W_l)$ for $l = 1..L$, no biases.
    Backward (when ``with_grads``): $g_L = G$, then for $l = L..1$:
    $\delta_l = g_l \odot f'(\cdot)$, $\partial L / \partial W_l =
    h_{l-1}^T \delta_l$, $g_{l-1} = \delta_l W_l^T$.

    Args:
        init: a name from ``trainlab.init.INITIALIZERS`` (``"small_0.01"``,
            ``"small_0.05"``, ``"xavier_normal"``, ``"kaiming_normal"``, ...),
            ``"small_<std>"`` for any std, ``"small"`` together with ``std``, or
            a callable ``init(shape, *, generator, dtype, device) -> Tensor``
            returning a ``(width, width)`` weight in the lecture layout.
        nonlinearity: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``,
            ``"leaky_relu"``, ``"elu"`` (``trainlab.activations.ACTIVATIONS``)
            or ``"linear"`` (identity).
        num_layers: number of layers (default 6).
        width: units per layer, also the input dimension (default 4096).
        batch_size: rows of the input batch (default 16).
        std: weight std for ``init="small"`` (default None).
        generator: source of all randomness (default None: a new CPU generator
            seeded with 0, so the book's figures are the same at every build).
            Draws happen on the generator's device, in this order: the input
            $x$, then $W_1, \dots, W_L$, then the upstream gradient $G$.
        device: where the network runs (default None: the generator's device).
            Draws made on another device are moved there, so a CPU generator
            gives the same numbers on CPU and GPU (up to float arithmetic).
        dtype: floating dtype of inputs, weights and activations (default
            torch.float32).
        with_grads: also run the backward pass (default True).
        max_samples: at most this many values are kept per layer for the
            histograms (default 100_000); mean and std use all values.

    Returns:
        One ``LayerStats`` per layer, first layer first.

    Shape:
        x: (batch_size, width). W_l: (width, width), lecture layout
        (D_in, D_out). h_l: (batch_size, width).
    """
    for name, value in (
        ("num_layers", num_layers),
        ("width", width),
        ("batch_size", batch_size),
        ("max_samples", max_samples),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype; got {dtype}")
    act_forward, act_backward = _activation(nonlinearity)
    make_weight = _initializer(init, std)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    draw_device = generator.device
    device = draw_device if device is None else torch.device(device)

    shape = (width, width)
    x = torch.randn(
        batch_size, width, generator=generator, dtype=dtype, device=draw_device
    )
    weights = []
    for l in range(1, num_layers + 1):
        w = make_weight(shape, generator=generator, dtype=dtype, device=draw_device)
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(
                f"init returned {got} for layer {l}; expected a tensor of shape "
                f"{shape} (lecture layout (D_in, D_out))"
            )
        weights.append(w.to(device=device, dtype=dtype))
    bias = torch.zeros(width, dtype=dtype, device=device)  # the experiment has none

    h = x.to(device)  # (N, D)
    stats, caches = [], []
    for l, w in enumerate(weights, start=1):
        z, lin_cache = linear_forward(h, w, bias)  # (N, D)
        h, act_cache = act_forward(z)  # (N, D)
        caches.append((lin_cache, act_cache))
        stats.append(
            LayerStats(
                layer=l,
                mean=float(h.mean()),
                std=float(h.std(correction=0)),
                activations=_sample(h, max_samples),
                local_grad_mean=float(
                    act_backward(torch.ones_like(h), act_cache).mean()
                ),
            )
        )
    if not with_grads:
        return stats

    upstream = torch.randn(
        batch_size, width, generator=generator, dtype=dtype, device=draw_device
    )
    dh = upstream.to(device)  # (N, D)
    for layer_stats, (lin_cache, act_cache) in zip(
        reversed(stats), reversed(caches), strict=True
    ):
        dz = act_backward(dh, act_cache)  # (N, D)
        dh, dw, _ = linear_backward(dz, lin_cache)  # (N, D), (D, D)
        layer_stats.grad_w_mean = float(dw.mean())
        layer_stats.grad_w_std = float(dw.std(correction=0))
        layer_stats.grad_w = _sample(dw, max_samples)
    return stats


def _fmt(v: float) -> str:
    """Two decimals like the lecture; scientific notation for a collapsed std."""
    return f"{v:.2f}" if v == 0 or abs(v) >= 0.01 else f"{v:.1e}"


def plot_activation_histograms(
    stats: Sequence[LayerStats],
    *,
    ax_row: Sequence[Axes] | None = None,
    title: str | None = None,
    which: str = "activations",
    bins: int = 50,
) -> Figure:
    """One histogram per layer, mean and std in each title, as in the lecture.

    All panels share one x range (the smallest and largest sampled value over
    all layers), so activations that shrink or saturate are seen as such.

    Args:
        stats: the list returned by ``activation_statistics``.
        ax_row: axes to draw into, one per layer (default None: a new figure
            with one row of ``len(stats)`` axes). Pass a row of a larger grid to
            compare initializations.
        title: figure title (default None: no title).
        which: ``"activations"`` (default) or ``"grad_w"`` (the weight
            gradients; needs stats computed with ``with_grads=True``).
        bins: histogram bins (default 50).

    Returns:
        The matplotlib Figure holding the axes.
    """
    if which not in ("activations", "grad_w"):
        raise ValueError(f"which must be 'activations' or 'grad_w'; got {which!r}")
    if len(stats) == 0:
        raise ValueError("stats is empty; run activation_statistics first")
    if which == "grad_w" and any(s.grad_w is None for s in stats):
        raise ValueError(
            "these stats have no weight gradients; compute them with "
            "activation_statistics(..., with_grads=True)"
        )
    import matplotlib.pyplot as plt  # lazily: importing trainlab stays fast

    own_figure = ax_row is None
    if ax_row is None:
        fig, axes = plt.subplots(
            1, len(stats), figsize=(2.2 * len(stats), 2.6), squeeze=False
        )
        ax_row = list(axes[0])
    elif len(ax_row) != len(stats):
        raise ValueError(
            f"ax_row must have one axes per layer ({len(stats)}); got {len(ax_row)}"
        )
    fig = ax_row[0].figure

    samples = [s.activations if which == "activations" else s.grad_w for s in stats]
    lo = min(float(v.min()) for v in samples)
    hi = max(float(v.max()) for v in samples)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        lo, hi = lo - 1.0, hi + 1.0  # all values equal (e.g. zero init)
    for ax, s, values in zip(ax_row, stats, samples, strict=True):
        ax.hist(values.numpy(), bins=bins, range=(lo, hi), color="C0")
        ax.set_xlim(lo, hi)
        ax.set_yticks([])
        if which == "activations":
            mean, std = s.mean, s.std
        else:
            mean, std = s.grad_w_mean, s.grad_w_std
        ax.set_title(f"Layer {s.layer}\nmean {mean:.2f}\nstd {_fmt(std)}", fontsize=9)
    if title is not None:
        fig.suptitle(title)
    if own_figure:
        fig.tight_layout()
    return fig
