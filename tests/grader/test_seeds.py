"""Check inputs from the course secret: unpredictable, reproducible, never leaked.

The inputs are asserted on directly (two secrets give different inputs, two
students too), regrades on the grades (the same secret gives the same grades),
and the processes that run student code on what they hold (no key).
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from autograder.checks import seeds
from autograder.checks.batchnorm import _params, _x
from tests.grader.conftest import FAST, need_batchnorm, run_grader
from tests.grader.corpus import build

pytestmark = pytest.mark.grader


@pytest.fixture(autouse=True)
def _fresh_key():
    yield
    seeds.configure(None)


def _inputs(key: bytes) -> list[torch.Tensor]:
    seeds.configure(key)
    return [_x(4, 5, 10), *_params(5, 20)]


def test_two_secrets_give_different_inputs_and_one_secret_the_same():
    a = _inputs(seeds.student_key(b"secret A", "alice"))
    a_again = _inputs(seeds.student_key(b"secret A", "alice"))
    b = _inputs(seeds.student_key(b"secret B", "alice"))
    bob = _inputs(seeds.student_key(b"secret A", "bob"))
    assert all(torch.equal(x, y) for x, y in zip(a, a_again, strict=True))
    for other in (b, bob):
        assert not any(torch.equal(x, y) for x, y in zip(a, other, strict=True))


def test_without_a_key_every_process_draws_fresh_inputs():
    seeds.configure(None)
    first = _x(4, 5, 10)
    seeds.configure(None)
    assert not torch.equal(first, _x(4, 5, 10))


def test_forget_wipes_every_held_key():
    held = seeds.hold(bytearray(b"k" * 32))
    seeds.configure(bytes(held))
    buffer = seeds.current()
    seeds.forget()
    assert held == bytearray(32) and buffer == bytearray(32)
    assert seeds.current() != bytearray(b"k" * 32)


def test_the_runner_does_not_hold_the_key(policy):
    """A student function in the runner reads the seeds module: a random key."""
    from autograder.pipeline import verify
    from autograder.sandbox import isolation as sandbox
    from autograder.sandbox import runner

    key = seeds.student_key(b"course secret", "alice")
    seeds.configure(key)
    client = runner.RunnerClient(
        ["import torch"],
        [
            {
                "grade_id": "a",
                "source": "def peek():\n"
                "    from autograder.checks import seeds\n"
                "    return bytes(seeds.current())\n",
            }
        ],
        limits=sandbox.Limits(call_timeout=20, cell_timeout=20, notebook_timeout=60),
        policy=verify._runner_policy(policy),
    )
    try:
        client.start()
        seen = client.functions()["peek"]()
    finally:
        client.close()
    assert isinstance(seen, bytes) and len(seen) == 32
    assert seen != key


@pytest.mark.slow
def test_regrades_with_one_secret_agree_and_the_secret_file_is_private(tmp_path):
    need_batchnorm()
    build(tmp_path / "all")
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("correct", "wrong", "mutates_inputs"):
        (tmp_path / "all" / name).rename(subs / name)
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k != "TRAINLAB_COURSE_SECRET"}
    args = ["grade", str(subs), "-a", "batchnorm", "--work", str(work), *FAST]
    first = run_grader(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    secret = work / "course-secret"
    assert secret.is_file() and "course secret" in first.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    def scores() -> dict:
        data = json.loads((work / "grades.json").read_text())
        return {
            r["student"]: {g: c["score"] for g, c in r["cells"].items()}
            for r in data["submissions"]
        }

    before = scores()
    again = run_grader(*args, "--force", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 graded" in again.stdout
    assert scores() == before
