"""Weight initializers: bitwise against torch.nn.init, statistics, and errors."""

from __future__ import annotations

import math

import pytest
import torch

from trainlab import init as I

pytestmark = pytest.mark.init

LINEAR_SHAPES = [(30, 20), (20, 30), (1, 7), (64, 64)]  # lecture (D_in, D_out)
CONV_SHAPES = [(8, 3, 5, 5), (4, 6, 5), (2, 3, 2, 3, 2)]  # torch (C_out, C_in, *k)
SHAPES = LINEAR_SHAPES + CONV_SHAPES


def torch_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """nn.Linear stores (D_out, D_in): the transpose of the lecture layout."""
    return (shape[1], shape[0]) if len(shape) == 2 else shape


def torch_draw(fill, shape, seed, dtype, device, **kwargs) -> torch.Tensor:
    """What torch.nn.init draws on the equivalent layout, back in our layout."""
    g = torch.Generator(device=device).manual_seed(seed)
    t = torch.empty(torch_layout(shape), dtype=dtype, device=device)
    fill(t, generator=g, **kwargs)
    return t.T if len(shape) == 2 else t


def ours(fn, shape, seed, dtype, device, **kwargs) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    return fn(shape, generator=g, dtype=dtype, device=device, **kwargs)


def assert_bitwise(mine: torch.Tensor, ref: torch.Tensor, shape) -> None:
    assert tuple(mine.shape) == tuple(shape), f"shape {tuple(mine.shape)} != {shape}"
    assert mine.dtype == ref.dtype and mine.device == ref.device
    assert mine.is_contiguous(), "initializers return contiguous tensors"
    assert torch.equal(mine, ref), (
        f"not bitwise equal to torch.nn.init: max difference "
        f"{(mine.double() - ref.double()).abs().max().item():.3e}"
    )


# ---------------------------------------------------------------- gains and fans

GAIN_CASES = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("conv3d", None),
    ("conv_transpose1d", None),
    ("conv_transpose2d", None),
    ("conv_transpose3d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("selu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0),
    ("leaky_relu", 0.2),
    ("leaky_relu", 1),
    ("leaky_relu", 3.5),
    ("tanh", 0.3),  # param ignored
]


@pytest.mark.parametrize("name,param", GAIN_CASES)
def test_calculate_gain_matches_torch(name, param):
    gain = I.calculate_gain(name, param)
    assert isinstance(gain, float)
    assert gain == float(torch.nn.init.calculate_gain(name, param))


def test_gain_values_from_the_table():
    assert I.calculate_gain("tanh") == 5 / 3
    assert I.calculate_gain("relu") == math.sqrt(2)
    assert I.calculate_gain("leaky_relu", 0) == math.sqrt(2)
    assert I.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert I.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)


@pytest.mark.parametrize("param", [True, "0.2", [0.2]])
def test_calculate_gain_rejects_bad_slope(param):
    with pytest.raises(ValueError, match="negative slope"):
        I.calculate_gain("leaky_relu", param)


def test_calculate_gain_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'.*tanh"):
        I.calculate_gain("gelu")


def test_compute_fans_linear_uses_lecture_layout():
    # W (D_in, D_out), y = x @ W: fan_in is the first dimension
    assert I.compute_fans((30, 20)) == (30, 20)
    assert I.compute_fans([20, 30]) == (20, 30)
    assert I.compute_fans(torch.Size([5, 2])) == (5, 2)


def test_compute_fans_conv_counts_the_kernel():
    assert I.compute_fans((8, 3, 5, 5)) == (3 * 25, 8 * 25)
    assert I.compute_fans((4, 6, 5)) == (30, 20)


@pytest.mark.parametrize("shape", SHAPES)
def test_compute_fans_matches_torch_on_equivalent_layout(shape):
    t = torch.empty(torch_layout(shape))
    assert I.compute_fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_compute_fans_needs_two_dimensions(shape):
    with pytest.raises(ValueError, match="at least 2 dimensions.*got shape"):
        I.compute_fans(shape)


# ---------------------------------------------------------- bitwise against torch

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_normal_bitwise(device, shape, dtype, gain):
    mine = ours(I.xavier_normal, shape, 3, dtype, device, gain=gain)
    ref = torch_draw(torch.nn.init.xavier_normal_, shape, 3, dtype, device, gain=gain)
    assert_bitwise(mine, ref, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_xavier_uniform_bitwise(device, shape, dtype, gain):
    mine = ours(I.xavier_uniform, shape, 4, dtype, device, gain=gain)
    ref = torch_draw(torch.nn.init.xavier_uniform_, shape, 4, dtype, device, gain=gain)
    assert_bitwise(mine, ref, shape)


KAIMING_CASES = [
    dict(),  # torch defaults: leaky_relu with a = 0, fan_in
    dict(mode="fan_out"),
    dict(nonlinearity="relu"),
    dict(nonlinearity="relu", mode="fan_out"),
    dict(a=0.2),
    dict(a=0.2, mode="fan_out"),
    dict(a=1, nonlinearity="leaky_relu"),
    dict(nonlinearity="tanh"),
    dict(nonlinearity="linear", mode="fan_out"),
    dict(mode="FAN_OUT"),  # torch lower-cases the mode
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kwargs", KAIMING_CASES, ids=str)
def test_kaiming_normal_bitwise(device, shape, dtype, kwargs):
    mine = ours(I.kaiming_normal, shape, 5, dtype, device, **kwargs)
    ref = torch_draw(torch.nn.init.kaiming_normal_, shape, 5, dtype, device, **kwargs)
    assert_bitwise(mine, ref, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kwargs", KAIMING_CASES, ids=str)
def test_kaiming_uniform_bitwise(device, shape, dtype, kwargs):
    mine = ours(I.kaiming_uniform, shape, 6, dtype, device, **kwargs)
    ref = torch_draw(torch.nn.init.kaiming_uniform_, shape, 6, dtype, device, **kwargs)
    assert_bitwise(mine, ref, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,), (2, 3, 4, 5, 6, 7)])
@pytest.mark.parametrize("std", [0.01, 0.05, 1.0])
def test_small_random_bitwise(device, shape, dtype, std):
    mine = ours(I.small_random, shape, 7, dtype, device, std=std)
    ref = torch_draw(torch.nn.init.normal_, shape, 7, dtype, device, mean=0.0, std=std)
    assert_bitwise(mine, ref, shape)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 3, 3)])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_constant_matches_torch(device, shape, value):
    mine = I.constant(shape, value, dtype=torch.float64, device=device)
    ref = torch.empty(shape, dtype=torch.float64, device=device)
    torch.nn.init.constant_(ref, value)
    assert_bitwise(mine, ref, shape)


def test_linear_draw_is_the_transpose_not_a_reshape():
    # a plain draw into (D_in, D_out) has the same numbers in another order
    shape = (30, 20)
    mine = I.kaiming_normal(shape, generator=torch.Generator().manual_seed(0))
    plain = torch.empty(shape)
    torch.nn.init.normal_(
        plain, std=math.sqrt(2 / 30), generator=torch.Generator().manual_seed(0)
    )
    assert not torch.equal(mine, plain)
    assert torch.equal(mine.T.reshape(-1), plain.reshape(-1))


def test_same_seed_same_numbers_and_generator_advances():
    g = torch.Generator().manual_seed(11)
    a = I.xavier_normal((40, 30), generator=g)
    b = I.xavier_normal((40, 30), generator=g)
    c = I.xavier_normal((40, 30), generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_default_dtype_and_device():
    w = I.kaiming_uniform((6, 4), generator=torch.Generator().manual_seed(0))
    assert w.dtype == torch.get_default_dtype() and w.device.type == "cpu"
    assert I.constant((2,), 1.0).dtype == torch.get_default_dtype()


# ----------------------------------------------------------------- named table


def test_initializers_table(device):
    shape = (50, 40)
    expected = {
        "constant0": lambda g: torch.zeros(shape, device=device),
        "small_0.01": lambda g: I.small_random(shape, 0.01, generator=g, device=device),
        "small_0.05": lambda g: I.small_random(shape, 0.05, generator=g, device=device),
        "xavier_normal": lambda g: I.xavier_normal(shape, generator=g, device=device),
        "xavier_uniform": lambda g: I.xavier_uniform(shape, generator=g, device=device),
        "kaiming_normal": lambda g: I.kaiming_normal(
            shape, nonlinearity="relu", generator=g, device=device
        ),
        "kaiming_uniform": lambda g: I.kaiming_uniform(
            shape, nonlinearity="relu", generator=g, device=device
        ),
    }
    assert set(I.INITIALIZERS) == set(expected)
    for name, init in I.INITIALIZERS.items():
        g1 = torch.Generator(device=device).manual_seed(2)
        g2 = torch.Generator(device=device).manual_seed(2)
        w = init(shape, generator=g1, dtype=torch.float32, device=device)
        assert torch.equal(w, expected[name](g2)), name


# ------------------------------------------------------------------ statistics


def std_matches(w: torch.Tensor, expected_std: float, rtol: float = 0.03) -> bool:
    """The sample std of a large draw is within rtol of the theoretical std.

    With n draws the relative error of the sample std is about 1/sqrt(2n), so for
    n >= 100k a 3 % band is over 13 standard errors wide: no flaky failures, yet a
    factor sqrt(2) or more (the usual mistakes) is far outside.
    """
    std = w.double().std().item()
    return abs(std - expected_std) <= rtol * expected_std


# independent statement of the theory: (function, kwargs, shape, expected std)
STAT_CASES = [
    (I.small_random, dict(std=0.01), (500, 400), 0.01),
    (I.xavier_normal, dict(), (1000, 250), math.sqrt(2 / 1250)),
    (I.xavier_uniform, dict(gain=5 / 3), (1000, 250), 5 / 3 * math.sqrt(2 / 1250)),
    (I.kaiming_normal, dict(nonlinearity="relu"), (1000, 250), math.sqrt(2 / 1000)),
    (I.kaiming_normal, dict(mode="fan_out"), (1000, 250), math.sqrt(2 / 250)),
    (
        I.kaiming_uniform,
        dict(a=0.2),
        (1000, 250),
        math.sqrt(2 / 1.04) / math.sqrt(1000),
    ),
    (I.kaiming_normal, dict(), (256, 128, 3, 3), math.sqrt(2 / (128 * 9))),
    (I.kaiming_uniform, dict(nonlinearity="tanh"), (64, 32, 7, 7), 5 / 3 / 1568**0.5),
    (I.xavier_normal, dict(), (256, 128, 3, 3), math.sqrt(2 / (384 * 9))),
]


@pytest.mark.parametrize("fn,kwargs,shape,expected", STAT_CASES)
def test_std_matches_theory(fn, kwargs, shape, expected):
    w = fn(shape, generator=torch.Generator().manual_seed(0), **kwargs)
    assert w.numel() >= 100_000
    assert std_matches(w, expected), f"std {w.std().item():.5f}, theory {expected:.5f}"
    assert abs(w.double().mean().item()) < 0.02 * expected


@pytest.mark.parametrize(
    "fn,kwargs,shape,std",
    [
        (I.xavier_uniform, dict(), (1000, 250), math.sqrt(2 / 1250)),
        (I.kaiming_uniform, dict(), (64, 32, 3, 3), math.sqrt(2 / 288)),
        (I.kaiming_uniform, dict(mode="fan_out"), (1000, 250), math.sqrt(2 / 250)),
    ],
)
def test_uniform_bounds_are_sqrt3_std(fn, kwargs, shape, std):
    w = fn(shape, generator=torch.Generator().manual_seed(1), **kwargs).double()
    bound = math.sqrt(3) * std
    assert w.abs().max().item() <= bound
    assert w.max().item() > 0.999 * bound and w.min().item() < -0.999 * bound


# the mistakes the statistical check must catch: written here on purpose


def kaiming_normal_fan_out_bug(shape, generator):
    """Uses the second dimension of (D_in, D_out) as fan_in: that is D_out.

    The same thing happens when torch.nn.init.kaiming_normal_ is applied to a
    lecture-layout weight without transposing it.
    """
    return torch.randn(shape, generator=generator) * math.sqrt(2 / shape[1])


def kaiming_normal_no_kernel_bug(shape, generator):
    """Forgets the kernel: fan_in = C_in instead of C_in * kH * kW."""
    return torch.randn(shape, generator=generator) * math.sqrt(2 / shape[1])


def kaiming_normal_lecture_bug(shape, generator):
    """Divides by fan_in instead of its square root."""
    return torch.randn(shape, generator=generator) * (2 / shape[0])


@pytest.mark.parametrize(
    "bug,shape",
    [
        (kaiming_normal_fan_out_bug, (1000, 250)),
        (kaiming_normal_fan_out_bug, (250, 1000)),
        (kaiming_normal_no_kernel_bug, (256, 128, 3, 3)),
        (kaiming_normal_lecture_bug, (1000, 250)),
    ],
)
def test_std_check_rejects_common_mistakes(bug, shape):
    fan_in = I.compute_fans(shape)[0]
    theory = math.sqrt(2 / fan_in)
    real = I.kaiming_normal(shape, generator=torch.Generator().manual_seed(0))
    broken = bug(shape, torch.Generator().manual_seed(0))
    assert std_matches(real, theory)
    assert not std_matches(broken, theory)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [I.kaiming_normal, I.kaiming_uniform])
def test_kaiming_rejects_bad_mode(fn):
    with pytest.raises(ValueError, match="'fan_in' or 'fan_out'; got 'fan_avg'"):
        fn((4, 3), mode="fan_avg")


@pytest.mark.parametrize("fn", [I.kaiming_normal, I.kaiming_uniform])
def test_kaiming_rejects_unknown_nonlinearity(fn):
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        fn((4, 3), nonlinearity="swish")


@pytest.mark.parametrize(
    "fn", [I.xavier_normal, I.xavier_uniform, I.kaiming_normal, I.kaiming_uniform]
)
@pytest.mark.parametrize("shape", [(), (7,)])
def test_fan_based_need_two_dimensions(fn, shape):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fn(shape)


@pytest.mark.parametrize("fn", [I.kaiming_normal, I.xavier_uniform])
def test_zero_fan_is_explained(fn):
    with pytest.raises(ValueError, match="is 0 for shape"):
        fn((0, 0))


@pytest.mark.parametrize(
    "fn", [I.small_random, I.xavier_normal, I.kaiming_normal, I.kaiming_uniform]
)
def test_generator_on_another_device(fn):
    # the check runs before anything is allocated, so it needs no GPU
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="generator is on cpu.*requested on cuda"):
        fn((4, 3), generator=g, device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_on_cpu_weight():
    g = torch.Generator(device="cuda").manual_seed(0)
    with pytest.raises(ValueError, match="generator is on cuda"):
        I.xavier_normal((4, 3), generator=g, device="cpu")


def test_generator_device_is_the_default_device():
    g = torch.Generator().manual_seed(0)
    assert I.xavier_normal((4, 3), generator=g).device.type == "cpu"


def test_bad_shapes_and_types():
    with pytest.raises(TypeError, match=r"Write \(5,\) for a vector"):
        I.small_random(5)
    with pytest.raises(ValueError, match="non-negative ints"):
        I.small_random((3, -1))
    with pytest.raises(ValueError, match="non-negative ints"):
        I.xavier_normal((3.0, 2))
    with pytest.raises(TypeError, match="floating-point dtype"):
        I.kaiming_normal((3, 2), dtype=torch.int64)
    with pytest.raises(TypeError, match="torch.Generator or None"):
        I.kaiming_normal((3, 2), generator=0)
