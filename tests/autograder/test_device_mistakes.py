"""Code that works only on the CPU loses the device check, on a machine without a GPU.

The graded functions must be device-agnostic. The layer checks also run each
function on torch's ``meta`` device (shapes, no values): a tensor created on
the CPU (``torch.zeros(D)`` without ``device=``), a mask built on the host, or
``.numpy()`` in the middle of a layer shows there as it would on a GPU. Each
mistake below loses the "every available device" check of its own cell, with a
message that names it, and keeps every other check; a correct function keeps
full marks.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.autograder.notebook_copy import define
from tests.autograder.students import grade_all
from tests.autograder.test_degenerate import _solution_namespace

pytestmark = pytest.mark.grader

DEVICE_CHECK = "float32 inputs, on every available device"

#: (assignment, grade cell, a CPU-only version of the function)
CPU_ONLY = [
    (
        "batchnorm",
        "test_batchnorm_forward",
        """
        _right_forward = batchnorm_forward
        def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,
                              training=True, momentum=0.1, eps=1e-5):
            out, cache = _right_forward(x, gamma, beta, running_mean, running_var,
                                        training=training, momentum=momentum,
                                        eps=eps)
            shift = torch.zeros(x.shape[1], dtype=x.dtype)  # on the CPU
            return out + shift, cache
        """,
    ),
    (
        "activations",
        "test_relu_forward",
        """
        def relu_forward(x):
            mask = torch.zeros(x.shape, dtype=torch.bool)  # built on the host
            mask[x > 0] = True
            return x * mask.to(x.dtype), (x,)
        """,
    ),
    (
        "activations",
        "test_sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            (out,) = cache
            return dout * out * (torch.ones(out.shape, dtype=out.dtype) - out)
        """,
    ),
    (
        "normalization",
        "test_layernorm_forward",
        """
        _right_ln = layernorm_forward
        def layernorm_forward(x, gamma, beta, eps=1e-5):
            out, cache = _right_ln(x, gamma, beta, eps)
            return out + torch.zeros(out.shape, dtype=out.dtype), cache
        """,
    ),
]


@pytest.mark.parametrize(
    ("name", "cell", "source"), CPU_ONLY, ids=[c for _, c, _ in CPU_ONLY]
)
def test_cpu_only_code_loses_the_device_check(name, cell, source):
    ns, _, _ = _solution_namespace(name)
    define(ns, textwrap.dedent(source))
    reports = grade_all(name, ns)
    report = reports[cell]
    lost = [r for r in report.results if not r.passed]
    assert [r.name for r in lost] == [DEVICE_CHECK], str(report)
    assert "works only on the CPU" in lost[0].message
    assert "device=x.device" in lost[0].message
    # a cell whose function calls this one (spatial batchnorm calls
    # batchnorm_forward) may lose its device check too, and nothing else
    for gid, other in reports.items():
        if gid != cell:
            assert {r.name for r in other.results if not r.passed} <= {DEVICE_CHECK}


@pytest.mark.parametrize("name", ["activations", "batchnorm", "normalization"])
def test_the_solutions_pass_on_meta(name):
    ns, _, _ = _solution_namespace(name)
    reports = grade_all(name, ns)
    assert all(r.passed for r in reports.values())
