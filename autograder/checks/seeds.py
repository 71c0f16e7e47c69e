"""Where every check's random inputs come from: a key no student can predict.

A check names its inputs by a label (``gen(12)``, ``seed("final network")``);
the numbers are drawn from a generator seeded with a hash of the label and a
*key*. The key decides everything, so a table of answers precomputed for the
public labels is worth nothing:

* when ``grade`` verifies a submission, the key is derived from the course
  secret and the student's id (:func:`student_key`), set with
  :func:`configure`: a regrade gives the same inputs and the same grade, two
  students get different inputs, and another course secret gives other inputs;
* anywhere else (``check``, the lab, a student's CI, the kernel that runs a
  notebook), no key is configured and a fresh random one is drawn for each
  process, so every self-check sees new numbers.

The course secret never reaches a process that runs student code: only the
derived per-student key travels to the grading worker, and it tells a student
nothing they are not shown anyway (their own inputs).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a generator is made, not before:
    import torch  # the grading command derives keys without loading torch

#: the key in use, in a mutable buffer so that :func:`forget` can wipe it
_key: list[bytearray] = []


def student_key(secret: bytes, student: str) -> bytes:
    """The per-student key: ``HMAC-SHA256(secret, student id)``."""
    return hmac.new(secret, student.encode("utf-8"), hashlib.sha256).digest()


def configure(key: bytes | bytearray | None) -> None:
    """Use ``key`` from now on; ``None`` draws a fresh random key.

    The previous key's buffer is wiped first.
    """
    for old in _key:
        old[:] = bytes(len(old))
    _key[:] = [bytearray(key if key is not None else os.urandom(32))]


#: buffers holding keys not yet in use (a grading worker's next student)
_held: list[bytearray] = []


def hold(key: bytearray) -> bytearray:
    """Register a key buffer, so that :func:`forget` wipes it too."""
    _held.append(key)
    return key


def forget() -> None:
    """Wipe every key from this process's memory and draw a random one.

    A process that runs student code and was forked from one that holds a key
    (the grader's runner and kernel) calls this before any student code runs.
    """
    for buf in _held:
        buf[:] = bytes(len(buf))
    _held.clear()
    configure(None)


def current() -> bytearray:
    """The key in use (a random one, drawn once, if none was configured)."""
    if not _key:
        configure(None)
    return _key[0]


def seed(label: int | str) -> int:
    """A 63-bit seed for the inputs named ``label``, under the current key."""
    digest = hmac.new(current(), repr(label).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def gen(label: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded for ``label`` under the current key."""
    import torch

    return torch.Generator(device=device).manual_seed(seed(label))
