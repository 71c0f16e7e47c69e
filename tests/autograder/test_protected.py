"""Student functions get copies of their tensor inputs: answer keys never move.

``own_code.Protected`` is the one place where the copies are made, for every
call a check makes through ``Guard.call`` (``common.forward_for_cache`` too).
"""

from __future__ import annotations

import pytest
import torch

from autograder.checks import own_code
from autograder.checks.common import expect_unchanged, forward_for_cache
from autograder.checks.core import Mistake
from trainlab.data import Split

pytestmark = pytest.mark.grader
RULES = own_code.rules()


def _zero_everything(*args, **kwargs):
    for value in (*args, *kwargs.values()):
        items = value if isinstance(value, list | tuple) else [value]
        if isinstance(value, dict):
            items = list(value.values())
        if isinstance(value, Split):
            items = [value.X_train, value.y_train]
        for t in items:
            if isinstance(t, torch.Tensor):
                t.zero_()
    return 0


def test_tensors_everywhere_in_the_arguments_are_copies():
    x, y, z = torch.ones(3), torch.ones(2), torch.ones(4)
    split = Split(*(torch.ones(2, 2) for _ in range(6)))
    guard = own_code.Guard(RULES, "f")
    guard.call(_zero_everything, x, [y], {"z": z}, data=split)
    assert torch.equal(x, torch.ones(3)) and torch.equal(y, torch.ones(2))
    assert torch.equal(z, torch.ones(4)) and torch.equal(
        split.X_train, torch.ones(2, 2)
    )
    assert set(guard.changed) >= {"argument 1", "argument 2", "argument 3['z']"}
    assert "data.X_train" in guard.changed
    with pytest.raises(Mistake, match="changed its input x in place"):
        expect_unchanged(torch.ones(3), x, "x", "f")


def test_documented_in_place_arguments_are_passed_as_they_are():
    running = torch.ones(3)
    guard = own_code.Guard(RULES, "f", inplace=(1, "running"))
    guard.call(_zero_everything, torch.ones(2), running)
    assert torch.equal(running, torch.zeros(3))
    assert guard.changed == ["argument 1"]


def test_forwards_run_for_a_cache_are_protected_too():
    x = torch.ones(3)
    forward_for_cache(own_code.Guard(RULES, "f"), _zero_everything, x)
    assert torch.equal(x, torch.ones(3))


def test_copies_keep_strides_and_meta_tensors_stay_meta():
    seen = {}

    def record(a, m):
        seen["stride"], seen["device"] = a.stride(), m.device
        return a

    base = torch.arange(20.0).reshape(4, 5)
    view = base[:, ::2]  # not contiguous
    own_code.Guard(RULES, "f").call(record, view, torch.empty(3, device="meta"))
    assert seen["stride"] == view.stride()
    assert seen["device"].type == "meta"


def test_an_unchanged_input_with_nans_is_not_reported():
    x = torch.tensor([1.0, float("nan")])
    guard = own_code.Guard(RULES, "f")
    guard.call(lambda t: t * 2, x)
    assert guard.changed == []
    expect_unchanged(x.clone(), x, "x", "f")
