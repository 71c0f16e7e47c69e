"""The data-only message format between the verifier and the runner."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from autograder.sandbox import wire

pytestmark = pytest.mark.grader


def test_round_trip_keeps_values_types_and_shapes():
    value = {
        "out": torch.randn(4, 3, dtype=torch.float64),
        "ints": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "flags": torch.tensor([True, False]),
        "half": torch.ones(2, dtype=torch.float16),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 5),
        "nested": [1, 2.5, None, "s", (True, b"raw")],
        3: "int key",
        "__w__": "a key that looks like a tag",
    }
    back = wire.unpack(wire.pack(value))
    assert set(back) == set(value)
    for key in ("out", "ints", "flags", "half", "scalar", "empty"):
        assert back[key].dtype == value[key].dtype
        assert back[key].shape == value[key].shape
        assert torch.equal(back[key], value[key])
    assert back["nested"] == [1, 2.5, None, "s", (True, b"raw")]
    assert back[3] == "int key" and back["__w__"] == value["__w__"]


def test_subclasses_and_views_come_back_as_plain_contiguous_tensors():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    x = torch.arange(12.0).reshape(3, 4).t().as_subclass(Liar)
    back = wire.unpack(wire.pack(x))
    assert type(back) is torch.Tensor
    assert back.is_contiguous()
    assert torch.equal(back, torch.arange(12.0).reshape(3, 4).t())


def test_objects_that_are_not_data_cannot_be_sent():
    with pytest.raises(wire.WireError, match="cannot send"):
        wire.pack({"f": lambda: 1})


def _forge(header: dict, tail: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">Q", len(raw)) + raw + tail


@pytest.mark.parametrize(
    "message, why",
    [
        (
            _forge(
                {"__w__": "x", "dtype": "float64", "shape": [4], "at": 0, "n": 8},
                b"\0" * 8,
            ),
            "do not match",
        ),
        (
            _forge({"__w__": "x", "dtype": "float64", "shape": [1], "at": 0, "n": 8}),
            "do not match",
        ),
        (
            _forge(
                {"__w__": "x", "dtype": "object", "shape": [1], "at": 0, "n": 8},
                b"\0" * 8,
            ),
            "bad tensor",
        ),
        (
            _forge(
                {"__w__": "x", "dtype": "float64", "shape": [-1], "at": 0, "n": 8},
                b"\0" * 8,
            ),
            "shape",
        ),
        (_forge({"__w__": "pickle", "v": "cos\nsystem"}), "unknown tag"),
        (b"\0\0\0\0\0\0\0\x09{not json", "not JSON"),
        (b"\xff" * 4, "too short"),
        (struct.pack(">Q", 10**9) + b"{}", "longer"),
    ],
)
def test_malformed_messages_are_refused(message, why):
    with pytest.raises(wire.WireError, match=why):
        wire.unpack(message)
