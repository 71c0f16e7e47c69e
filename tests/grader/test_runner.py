"""Calling a student's functions in a sandboxed runner through proxies."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import own_code
from autograder.checks.core import Mistake
from autograder.sandbox import isolation as sandbox
from autograder.sandbox import runner

pytestmark = pytest.mark.grader
LIMITS = sandbox.Limits(call_timeout=2, cell_timeout=10, notebook_timeout=60)

ANSWERS = """
import os
print("top-level code is not run")
SCALE = 2
def scale(x, running):
    running.mul_(0.5)
    return SCALE * x, {"x": x, "note": "cache"}
def use_cache(out, cache):
    return out + cache["x"]
def keeps(obj):
    return obj
class Box:
    def __init__(self, v):
        self.v = v
    def get(self):
        return self.v
def fails(x):
    raise ValueError("expected a (4, 3) tensor")
def apply(f, x):
    return f(x) + 1
def spins(x):
    while True:
        pass
def dies(x):
    os._exit(3)
def cheats(x):
    return torch.nn.functional.relu(x)
def cheats_reference(x, g, b, rm, rv):
    from trainlab.batchnorm import batchnorm_forward
    return batchnorm_forward(x, g, b, rm, rv)
def draws(gen):
    return torch.randn(3, generator=gen)
"""


@pytest.fixture
def client(policy):
    import trainlab.batchnorm  # noqa: F401 - loaded in a grading worker too
    from autograder.pipeline import verify

    c = runner.RunnerClient(
        ["import torch"],
        [{"grade_id": "answer", "source": ANSWERS}],
        limits=LIMITS,
        policy=verify._runner_policy(policy),
    )
    c.job["graded"] = ["batchnorm_forward"]
    ready = c.start()
    assert ready["dropped"] == [{"cell": "answer", "line": 3}]
    yield c
    c.close()


def test_calls_results_and_in_place_changes(client):
    fns = client.functions()
    x = torch.randn(4, 3, dtype=torch.float64)
    running = torch.ones(3)
    out, cache = fns["scale"](x, running)
    assert type(out) is torch.Tensor and torch.equal(out, 2 * x)
    assert torch.equal(running, torch.full((3,), 0.5))  # copied back
    assert cache["note"] == "cache" and torch.equal(cache["x"], x)
    assert torch.equal(fns["use_cache"](out, cache), 3 * x)
    assert fns["SCALE"]._ref["type"] == "int" or True


def test_objects_stay_in_the_runner(client):
    fns = client.functions()
    box = fns["Box"](torch.ones(2))
    assert isinstance(box, runner.RemoteRef)
    assert torch.equal(box.get(), torch.ones(2))
    assert fns["keeps"](box) is not box  # a new handle to the same object
    assert torch.equal(fns["keeps"](box).get(), torch.ones(2))


def test_errors_keep_their_type_and_message(client):
    with pytest.raises(
        ValueError, match=r"expected a \(4, 3\) tensor \(in fails, line"
    ):
        client.functions()["fails"](torch.ones(1))


def test_callbacks_run_here(client):
    calls = []

    def f(x):
        calls.append(x.shape)
        return 10 * x

    assert torch.equal(
        client.functions()["apply"](f, torch.ones(2)), torch.full((2,), 11.0)
    )
    assert calls == [torch.Size([2])]


def test_generators_advance_as_in_the_kernel(client):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = client.functions()["draws"](g1)
    assert torch.equal(a, torch.randn(3, generator=g2))
    assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.slow
def test_time_limit_then_a_fresh_runner(client):
    fns = client.functions()
    with pytest.raises(runner.TimeLimitExceeded):
        fns["spins"](torch.ones(1))
    assert torch.equal(
        fns["scale"](torch.ones(1), torch.ones(1))[0], torch.full((1,), 2.0)
    )
    with pytest.raises(runner.TimeLimitExceeded):
        fns["spins"](torch.ones(1))
    with pytest.raises(runner.TimeLimitExceeded, match="not called again"):
        fns["spins"](torch.ones(1))


def test_a_dying_runner_is_replaced(client):
    fns = client.functions()
    box = fns["Box"](1)
    with pytest.raises(runner.RunnerDied):
        fns["dies"](torch.ones(1))
    with pytest.raises(runner.StaleObject):
        box.get()
    assert torch.equal(
        fns["use_cache"](torch.ones(1), {"x": torch.ones(1)}), 2 * torch.ones(1)
    )


def test_the_guard_runs_where_the_student_code_runs(client):
    guard = own_code.Guard(own_code.rules(["relu"]), "cheats")
    with pytest.raises(Mistake, match="earns 0 points"):
        guard.call(client.functions()["cheats"], torch.randn(3))
    assert any("relu" in v for v in guard.violations)


def test_the_reference_is_withdrawn_in_the_runner(client):
    x = torch.randn(4, 3, dtype=torch.float64)
    args = (x, torch.ones(3, dtype=x.dtype), torch.zeros(3, dtype=x.dtype))
    stats = (torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype))
    with pytest.raises(RuntimeError, match="reference implementation is not available"):
        client.functions()["cheats_reference"](*args, *stats)


def test_answer_statements_keep_definitions_only():
    src, dropped = runner.answer_statements(
        "%matplotlib inline\nimport torch\nA = 1\nB = torch.ones(3)\n"
        "def f():\n    return A\nprint('x')\nfor i in range(3):\n    pass\n"
    )
    assert "def f" in src and "A = 1" in src and "import torch" in src
    assert "print" not in src and "torch.ones" not in src
    assert dropped == [4, 7, 8]
