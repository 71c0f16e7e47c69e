"""A data-only message format: JSON for structure, raw bytes for tensors.

Between the verifier and the sandboxed runner nothing is ever unpickled. A
message is::

    8-byte big-endian length of the JSON header | JSON header | tensor bytes

The header holds ``None``, booleans, numbers, strings, lists and dicts, plus
tagged forms: a tuple, a dict whose keys are not plain strings, bytes, a
tensor (dtype, shape and where its bytes lie in the tail), and a tensor of
torch's ``meta`` device (dtype and shape: it has no values). Decoding
builds new, contiguous, plain ``torch.Tensor`` objects from those bytes with
the named dtype; it never imports or calls anything named in the message.

``torch.save`` with ``torch.load(weights_only=True)`` is equally data-only,
but its restricted unpickler takes about 5 ms per message here (a cache holds
a dozen tensors), which dominated verification time; this format takes tens
of microseconds.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import torch

_W = "__w__"
_LEN = struct.Struct(">Q")
#: dtypes that may cross the wire, by name
DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.complex64,
        torch.complex128,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    )
}


class WireError(ValueError):
    """A message that does not follow the format."""


def pack(obj: Any) -> bytes:
    """Encode plain data (and tensors) into one message."""
    chunks: list[bytes] = []
    size = [0]

    def enc(v: Any, depth: int = 0) -> Any:
        if depth > 64:
            raise WireError("nested too deeply")
        if v is None or isinstance(v, bool | int | float | str):
            return v
        if isinstance(v, torch.Tensor) and v.device.type == "meta":
            name = str(v.dtype).removeprefix("torch.")
            if name not in DTYPES:
                raise WireError(f"tensors of dtype {v.dtype} cannot be sent")
            return {_W: "m", "dtype": name, "shape": list(v.shape)}  # no values
        if isinstance(v, torch.Tensor):
            t = v.detach()
            if t.layout != torch.strided:
                t = t.to_dense()
            name = str(t.dtype).removeprefix("torch.")
            if name not in DTYPES:
                raise WireError(f"tensors of dtype {t.dtype} cannot be sent")
            data = t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            head = {
                _W: "x",
                "dtype": name,
                "shape": list(t.shape),
                "at": size[0],
                "n": len(data),
                "device": str(t.device),
            }
            chunks.append(data)
            size[0] += len(data)
            return head
        if isinstance(v, list):
            return [enc(x, depth + 1) for x in v]
        if isinstance(v, tuple):
            return {_W: "t", "v": [enc(x, depth + 1) for x in v]}
        if isinstance(v, bytes):
            return {_W: "b", "v": base64.b64encode(v).decode()}
        if isinstance(v, dict):
            if all(isinstance(k, str) for k in v) and _W not in v:
                return {k: enc(x, depth + 1) for k, x in v.items()}
            return {
                _W: "d",
                "v": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()],
            }
        raise WireError(f"cannot send a {type(v).__name__}")

    header = json.dumps(enc(obj), allow_nan=True).encode()
    return _LEN.pack(len(header)) + header + b"".join(chunks)


def unpack(data: bytes, *, device: str | None = None) -> Any:
    """Decode a message; tensors land on ``device`` (default: as sent, else CPU)."""
    if len(data) < _LEN.size:
        raise WireError("message too short")
    (n,) = _LEN.unpack_from(data)
    if n > len(data) - _LEN.size:
        raise WireError("header longer than the message")
    try:
        head = json.loads(data[_LEN.size : _LEN.size + n])
    except ValueError as exc:
        raise WireError(f"header is not JSON: {exc}") from None
    tail = memoryview(data)[_LEN.size + n :]

    def tensor(d: dict) -> torch.Tensor:
        dtype = DTYPES.get(str(d.get("dtype")))
        shape = d.get("shape")
        at, size = d.get("at"), d.get("n")
        if dtype is None or not isinstance(shape, list):
            raise WireError("bad tensor header")
        if not all(isinstance(s, int) and 0 <= s for s in shape):
            raise WireError("bad tensor shape")
        if not (isinstance(at, int) and isinstance(size, int) and 0 <= at):
            raise WireError("bad tensor position")
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != size or at + size > len(tail):
            raise WireError("tensor bytes do not match its shape")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            raw = bytearray(tail[at : at + size])
            t = torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape)
        target = device or str(d.get("device", "cpu"))
        if target != "cpu":
            try:
                t = t.to(target)
            except (RuntimeError, AssertionError):
                pass  # that device is not here: keep it on the CPU
        return t

    def dec(v: Any, depth: int = 0) -> Any:
        if depth > 64:
            raise WireError("nested too deeply")
        if isinstance(v, list):
            return [dec(x, depth + 1) for x in v]
        if isinstance(v, dict):
            tag = v.get(_W)
            if tag is None:
                return {k: dec(x, depth + 1) for k, x in v.items()}
            if tag == "x":
                return tensor(v)
            if tag == "m":
                dtype = DTYPES.get(str(v.get("dtype")))
                shape = v.get("shape")
                if dtype is None or not isinstance(shape, list):
                    raise WireError("bad meta tensor header")
                if not all(isinstance(s, int) and 0 <= s for s in shape):
                    raise WireError("bad tensor shape")
                return torch.empty(shape, dtype=dtype, device="meta")
            if tag == "t":
                return tuple(dec(x, depth + 1) for x in v["v"])
            if tag == "b":
                return base64.b64decode(str(v["v"]))
            if tag == "d":
                out = {}
                for k, x in v["v"]:
                    key = dec(k, depth + 1)
                    if not isinstance(
                        key, str | int | float | bool | tuple | type(None)
                    ):
                        raise WireError("unhashable dict key")
                    out[key] = dec(x, depth + 1)
                return out
            raise WireError(f"unknown tag {tag!r}")
        return v

    try:
        return dec(head)
    except (KeyError, TypeError) as exc:
        raise WireError(f"malformed message: {exc}") from None
