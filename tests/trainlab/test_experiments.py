r"""The activation-statistics experiment: the lecture's findings, gradients, plots.

The qualitative tests run a narrow net (256 units, batch 16) so they are fast.
What matters for the forward statistics is $\sigma_w \sqrt{D}$, so the lecture's
std 0.01 and 0.05 at 4096 units correspond to std 0.04 and 0.2 at 256 units
($\sqrt{4096 / 256} = 4$). The bounds below were set from 60 seeds with a wide
margin; the mean-field prediction (an independent computation) pins the numbers.
"""

from __future__ import annotations

import math
import subprocess
import sys
from functools import cache

import pytest
import torch

from tests.helpers import assert_close
from trainlab import init as I
from trainlab.experiments import (
    LayerStats,
    activation_statistics,
    plot_activation_histograms,
)

pytestmark = pytest.mark.experiments

WIDTH = 256
SEEDS = [0, 1, 2]


@cache
def run(init: str, nonlinearity: str, seed: int, std: float | None = None):
    g = torch.Generator().manual_seed(seed)
    return activation_statistics(
        init, nonlinearity, width=WIDTH, std=std, generator=g, with_grads=True
    )


def stds(stats: list[LayerStats]) -> list[float]:
    return [s.std for s in stats]


def saturated(s: LayerStats, level: float = 0.9) -> float:
    return float((s.activations.abs() > level).float().mean())


def mean_field_stds(f, sigma_w: float, width: int, num_layers: int) -> list[float]:
    r"""Infinite-width prediction of each layer's activation std.

    $z_l \sim \mathcal{N}(0, q_l)$ with $q_1 = D \sigma_w^2$ (inputs N(0, 1)) and
    $q_{l+1} = D \sigma_w^2 \, E[f(z_l)^2]$; the std of $h_l = f(z_l)$ is
    $\sqrt{E[f(z_l)^2] - E[f(z_l)]^2}$. Expectations by quadrature.
    """
    xi = torch.linspace(-12, 12, 48001, dtype=torch.float64)
    weight = torch.exp(-(xi**2) / 2) / math.sqrt(2 * math.pi) * (xi[1] - xi[0])
    q = width * sigma_w**2
    out = []
    for _ in range(num_layers):
        h = f(math.sqrt(q) * xi)
        m1, m2 = float((h * weight).sum()), float((h * h * weight).sum())
        out.append(math.sqrt(m2 - m1 * m1))
        q = width * sigma_w**2 * m2
    return out


# ------------------------------------------------------ the lecture's findings


@pytest.mark.parametrize("seed", SEEDS)
def test_small_001_tanh_collapses(seed):
    st = run("small_0.01", "tanh", seed)
    # each layer multiplies the std by about 0.01 * sqrt(256) = 0.16
    assert st[-1].std < 1e-4, stds(st)
    assert all(b.std < 0.25 * a.std for a, b in zip(st, st[1:], strict=False))
    # the weight gradients collapse too, by orders of magnitude against Xavier
    xavier = run("xavier_normal", "tanh", seed)
    assert max(s.grad_w_std for s in st) < 1e-2 * min(s.grad_w_std for s in xavier)


@pytest.mark.parametrize("seed", SEEDS)
def test_lecture_equivalent_small_std_shrinks_toward_zero(seed):
    st = run("small", "tanh", seed, 0.04)  # 0.01 at 4096 units
    assert all(b.std < 0.7 * a.std for a, b in zip(st, st[1:], strict=False))
    assert st[-1].std < 0.1 and abs(st[-1].mean) < 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_large_std_tanh_saturates(seed):
    st = run("small", "tanh", seed, 0.2)  # 0.05 at 4096 units
    for s in st:
        assert s.std > 0.8, stds(st)
        assert saturated(s) > 0.5, f"layer {s.layer}: {saturated(s):.2f} near +-1"
        # local gradients 1 - tanh^2 mostly vanish
        assert s.local_grad_mean < 0.35


@pytest.mark.parametrize("seed", SEEDS)
def test_xavier_tanh_stays_healthy(seed):
    st = run("xavier_normal", "tanh", seed)
    for s in st:
        assert 0.2 < s.std < 0.75, stds(st)
        assert s.local_grad_mean > 0.5
    assert all(saturated(s) < 0.05 for s in st[2:])
    assert all(0.7 < b.std / a.std < 1.0 for a, b in zip(st, st[1:], strict=False))


@pytest.mark.parametrize("seed", SEEDS)
def test_xavier_relu_shrinks_by_sqrt2_per_layer(seed):
    st = run("xavier_normal", "relu", seed)
    ratios = [b.std / a.std for a, b in zip(st, st[1:], strict=False)]
    assert all(0.5 < r < 0.9 for r in ratios), ratios
    geometric = math.prod(ratios) ** (1 / len(ratios))
    assert abs(geometric - 1 / math.sqrt(2)) < 0.06, geometric
    assert all(abs(s.local_grad_mean - 0.5) < 0.1 for s in st)  # half the units on


@pytest.mark.parametrize("seed", SEEDS)
def test_kaiming_relu_keeps_the_std(seed):
    st = run("kaiming_normal", "relu", seed)
    assert all(0.5 < s.std < 1.2 for s in st), stds(st)
    assert 0.6 < st[-1].std / st[0].std < 1.5
    # relu is positively homogeneous: Kaiming is Xavier times sqrt(2), same draws
    xavier = run("xavier_normal", "relu", seed)
    for k, x in zip(st, xavier, strict=True):
        assert math.isclose(k.std, x.std * math.sqrt(2) ** k.layer, rel_tol=1e-4)


TANH_CASES = [("small_0.01", 0.01), ("small", 0.04), ("small", 0.2)]


@pytest.mark.parametrize("init,sigma", TANH_CASES + [("xavier_normal", None)])
def test_tanh_matches_mean_field_theory(init, sigma):
    std_arg = sigma if init == "small" else None
    sigma = sigma if sigma is not None else 1 / math.sqrt(WIDTH)
    st = run(init, "tanh", 0, std_arg)
    pred = mean_field_stds(torch.tanh, sigma, WIDTH, len(st))
    for s, p in zip(st, pred, strict=True):
        assert abs(s.std / p - 1) < 0.15, (s.layer, s.std, p)


@pytest.mark.slow
def test_lecture_setting_4096_units_matches_theory():
    cases = [
        ("small_0.01", "tanh", torch.tanh, 0.01),
        ("small_0.05", "tanh", torch.tanh, 0.05),
        ("xavier_normal", "tanh", torch.tanh, 1 / 64),
        ("kaiming_normal", "relu", torch.relu, math.sqrt(2) / 64),
    ]
    for init, name, f, sigma in cases:
        st = activation_statistics(init, name, with_grads=False)
        pred = mean_field_stds(f, sigma, 4096, 6)
        for s, p in zip(st, pred, strict=True):
            assert abs(s.std / p - 1) < 0.06, (init, s.layer, s.std, p)


# ------------------------------------------------- gradients, sampling, devices


def _reference(init, nonlinearity, *, layers, width, batch, seed):
    """The same experiment written with autograd, drawing in the same order."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, width, generator=g, dtype=torch.float64)
    ws = [
        I.INITIALIZERS[init](
            (width, width), generator=g, dtype=torch.float64
        ).requires_grad_()
        for _ in range(layers)
    ]
    upstream = torch.randn(batch, width, generator=g, dtype=torch.float64)
    f = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
    h, hs = x, []
    for w in ws:
        h = f[nonlinearity](h @ w)
        hs.append(h)
    (h * upstream).sum().backward()
    return hs, [w.grad for w in ws]


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_statistics_and_grads_match_autograd(nonlinearity):
    layers, width, batch = 3, 24, 5
    st = activation_statistics(
        "xavier_normal",
        nonlinearity,
        num_layers=layers,
        width=width,
        batch_size=batch,
        generator=torch.Generator().manual_seed(4),
        dtype=torch.float64,
    )
    hs, grads = _reference(
        "xavier_normal", nonlinearity, layers=layers, width=width, batch=batch, seed=4
    )
    assert [s.layer for s in st] == [1, 2, 3]
    for s, h, dw in zip(st, hs, grads, strict=True):
        h = h.detach()
        assert math.isclose(s.mean, h.mean().item(), rel_tol=1e-10, abs_tol=1e-12)
        assert math.isclose(s.std, h.std(correction=0).item(), rel_tol=1e-10)
        assert_close(s.activations.double(), h.reshape(-1), 1e-6, "activations")
        assert s.grad_w.shape == (width * width,)
        assert_close(s.grad_w.double(), dw.reshape(-1), 1e-6, f"dW{s.layer}")
        assert math.isclose(s.grad_w_std, dw.std(correction=0).item(), rel_tol=1e-10)
        assert math.isclose(
            s.grad_w_mean, dw.mean().item(), rel_tol=1e-9, abs_tol=1e-15
        )


def test_samples_are_capped_and_on_cpu():
    st = activation_statistics(
        "kaiming_normal", "relu", num_layers=2, width=64, batch_size=16, max_samples=300
    )
    for s in st:
        assert s.activations.shape == (300,) and s.grad_w.shape == (300,)
        assert s.activations.device.type == "cpu"
        assert s.activations.dtype == torch.float32


def test_without_grads():
    st = activation_statistics("xavier_normal", width=32, with_grads=False)
    assert len(st) == 6
    assert all(s.grad_w is None and s.grad_w_std is None for s in st)


def test_default_generator_is_seeded():
    a = activation_statistics("xavier_normal", width=32, num_layers=2)
    b = activation_statistics("xavier_normal", width=32, num_layers=2)
    assert [s.std for s in a] == [s.std for s in b]


def test_callable_and_small_with_std_match_the_names():
    kw = dict(width=32, num_layers=3)
    by_name = activation_statistics("small_0.05", **kw)
    by_std = activation_statistics("small", std=0.05, **kw)

    def my_init(shape, *, generator, dtype, device):
        return I.small_random(
            shape, 0.05, generator=generator, dtype=dtype, device=device
        )

    by_callable = activation_statistics(my_init, **kw)
    assert stds(by_name) == stds(by_std) == stds(by_callable)
    other = activation_statistics("small_0.07", **kw)
    assert stds(other) != stds(by_name)


def test_zero_init_kills_everything():
    st = activation_statistics("constant0", "tanh", width=16)
    assert all(s.std == 0.0 and s.grad_w_std == 0.0 for s in st)


def test_runs_on_device_with_cpu_generator(device):
    st = activation_statistics(
        "xavier_normal",
        "tanh",
        width=64,
        generator=torch.Generator().manual_seed(0),
        device=device,
        dtype=torch.float64,
    )
    cpu = activation_statistics(
        "xavier_normal",
        "tanh",
        width=64,
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    for a, b in zip(st, cpu, strict=True):
        assert a.activations.device.type == "cpu"
        assert math.isclose(a.std, b.std, rel_tol=1e-9)
        assert math.isclose(a.grad_w_std, b.grad_w_std, rel_tol=1e-9)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(init="gaussian"), ValueError, "unknown init 'gaussian'.*xavier_normal"),
        (dict(init="small"), ValueError, "needs std"),
        (dict(init="small_abc"), ValueError, "small_<std>"),
        (dict(init="small_0.01", std=0.02), ValueError, "already sets the std"),
        (
            dict(init="xavier_normal", std=0.1),
            ValueError,
            "only used with init='small'",
        ),
        (dict(init=3), TypeError, "name or a callable"),
        (dict(init="xavier_normal", nonlinearity="gelu"), ValueError, "'gelu'.*tanh"),
        (dict(init="xavier_normal", width=0), ValueError, "width must be a positive"),
        (dict(init="xavier_normal", dtype=torch.int32), TypeError, "floating-point"),
        (
            dict(init=lambda shape, **kw: torch.zeros(3, 3)),
            ValueError,
            r"init returned \(3, 3\) for layer 1; expected .*\(8, 8\)",
        ),
    ],
)
def test_errors(kwargs, error, match):
    kwargs.setdefault("width", 8)
    with pytest.raises(error, match=match):
        activation_statistics(**kwargs)


def test_linear_nonlinearity_is_identity():
    st = activation_statistics("xavier_normal", "linear", width=128, num_layers=3)
    assert all(0.8 < s.std < 1.2 for s in st)
    assert all(s.local_grad_mean == 1.0 for s in st)


def test_import_does_not_load_matplotlib():
    code = "import sys, trainlab.experiments; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------ plots


@pytest.fixture
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_one_axes_per_layer(plt):
    st = run("xavier_normal", "tanh", 0)
    fig = plot_activation_histograms(st, title="Xavier, tanh")
    assert len(fig.axes) == len(st)
    for ax, s in zip(fig.axes, st, strict=True):
        title = ax.get_title()
        assert f"Layer {s.layer}" in title
        assert f"mean {s.mean:.2f}" in title and f"std {s.std:.2f}" in title
        assert len(ax.patches) == 50  # the histogram bars
        assert ax.get_xlim() == fig.axes[0].get_xlim()  # shared range
    assert fig._suptitle.get_text() == "Xavier, tanh"


def test_plot_tiny_values_and_grads(plt):
    st = run("small_0.01", "tanh", 0)
    fig = plot_activation_histograms(st, which="grad_w", bins=20)
    assert len(fig.axes) == 6 and len(fig.axes[0].patches) == 20
    assert "e-" in plot_activation_histograms(st).axes[-1].get_title()


def test_plot_into_given_axes(plt):
    fig, axes = plt.subplots(2, 6)
    out = plot_activation_histograms(run("small", "tanh", 0, 0.2), ax_row=axes[0])
    plot_activation_histograms(run("kaiming_normal", "relu", 0), ax_row=axes[1])
    assert out is fig and len(fig.axes) == 12
    assert all(ax.get_title().startswith("Layer") for ax in fig.axes)


def test_plot_errors(plt):
    st = run("xavier_normal", "tanh", 0)
    fig, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match=r"one axes per layer \(6\); got 3"):
        plot_activation_histograms(st, ax_row=axes)
    with pytest.raises(ValueError, match="'activations' or 'grad_w'"):
        plot_activation_histograms(st, which="dw")
    with pytest.raises(ValueError, match="with_grads=True"):
        plot_activation_histograms(
            activation_statistics("xavier_normal", width=8, with_grads=False),
            which="grad_w",
        )
    with pytest.raises(ValueError, match="empty"):
        plot_activation_histograms([])
    zero = activation_statistics("constant0", width=8)
    assert len(plot_activation_histograms(zero).axes) == 6  # constant values plot
