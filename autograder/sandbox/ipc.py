"""Length-prefixed messages over a socket, with a size cap and a deadline.

Every message between the grader and a sandboxed process is a 4-byte
big-endian length followed by that many bytes. The reader never trusts the
length: a message over ``max_bytes`` or one that does not arrive before the
deadline raises :class:`ChannelError`, and so does a closed socket.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time

_HEADER = struct.Struct(">I")
#: default cap on one message from a sandboxed process
MAX_MESSAGE = 64 * 1024 * 1024


class ChannelError(RuntimeError):
    """The other side closed the channel, sent too much, or was too slow."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "closed", "timeout" or "too-large"


def send(sock: socket.socket, payload: bytes) -> None:
    """Send one message."""
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def send_json(sock: socket.socket, obj: object) -> None:
    send(sock, json.dumps(obj).encode())


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise ChannelError("no reply before the time limit", reason="timeout")
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ChannelError("the process closed the channel", reason="closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(
    sock: socket.socket,
    *,
    timeout: float | None = None,
    max_bytes: int = MAX_MESSAGE,
) -> bytes:
    """Receive one message.

    Args:
        sock: a connected stream socket.
        timeout: seconds to wait for the whole message (default: forever).
        max_bytes: the largest message accepted (default 64 MiB).

    Raises:
        ChannelError: closed, too slow, or too large.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if n > max_bytes:
        raise ChannelError(
            f"a message of {n} bytes is over the limit of {max_bytes}",
            reason="too-large",
        )
    return _recv_exact(sock, n, deadline)


def recv_json(
    sock: socket.socket, *, timeout: float | None = None, max_bytes: int = MAX_MESSAGE
) -> object:
    data = recv(sock, timeout=timeout, max_bytes=max_bytes)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ChannelError(f"not JSON: {exc}", reason="garbled") from None
