"""With a grading device, each layer's device check also compares the same call
on the CPU and on the device (:func:`autograder.checks.common.same_on_cpu_and_device`).

Here the calls are local (no runner), so both legs run on the CPU: the
solutions must keep full marks through the comparison, and a function whose
answer changes from one call to the next (as one that differs on a GPU would)
must lose the device check with a message naming the two devices.
"""

from __future__ import annotations

import textwrap

import pytest

from autograder.checks import placement
from tests.autograder.notebook_copy import define
from tests.autograder.students import grade_all
from tests.autograder.test_degenerate import _solution_namespace
from tests.autograder.test_device_mistakes import DEVICE_CHECK

pytestmark = pytest.mark.grader


@pytest.fixture
def grading_device():
    placement.configure("meta")
    yield
    placement.configure(None)


@pytest.mark.parametrize(
    "name", ["activations", "batchnorm", "gradcheck", "normalization"]
)
def test_the_solutions_pass_the_comparison(name, grading_device):
    ns, _, _ = _solution_namespace(name)
    reports = grade_all(name, ns)
    assert all(r.passed for r in reports.values()), [
        str(r) for r in reports.values() if not r.passed
    ]


def test_a_function_that_differs_between_devices_loses_the_device_check(
    grading_device,
):
    ns, _, _ = _solution_namespace("activations")
    define(
        ns,
        textwrap.dedent(
            """
            _right = relu_forward
            _calls = [0]
            def relu_forward(x):
                out, cache = _right(x)
                if x.dtype != torch.float64:  # float32 stays right
                    return out, cache
                _calls[0] += 1
                return out + 1e-3 * (_calls[0] % 2), cache
            """
        ),
    )
    report = grade_all("activations", ns)["test_relu_forward"]
    lost = {r.name: r.message for r in report.results if not r.passed}
    assert DEVICE_CHECK in lost, str(report)
    assert "on meta vs on cpu" in lost[DEVICE_CHECK]
