"""Seccomp filters: no new threads or processes for the process that runs answers.

The write-it-yourself guard (:mod:`autograder.checks.own_code`) watches the
thread that makes a graded call: its profiler and its torch dispatch mode are
per thread. Work handed to another thread, or to a forked child, would escape
both. So the runner, which only ever needs one thread, installs this filter
before it loads the student's answer cells: from then on ``clone``,
``clone3``, ``fork`` and ``vfork`` fail (``EAGAIN``; ``ENOSYS`` for
``clone3``, so that the C library falls back to ``clone``), and Python's
``threading``, ``multiprocessing``, ``subprocess`` and ``os.fork`` raise.

On a GPU (``--device cuda``) the CUDA driver needs threads of its own: the
runner initializes CUDA, a context and cuBLAS first
(:func:`autograder.sandbox.runner.start_device`), while threads are still
allowed, and installs the same filter afterwards. The threads CUDA started
keep running; no new thread can start, the student's or a library's.

The filter is a classic BPF program handed to ``prctl(PR_SET_SECCOMP)`` after
``PR_SET_NO_NEW_PRIVS``; it cannot be removed by the process, and every
child of it would inherit it. It needs no privileges (Linux 3.5+).
"""

from __future__ import annotations

import ctypes
import errno
import platform

# <linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

#: machine -> (AUDIT_ARCH value, {syscall number: errno})
_ARCH = {
    "x86_64": (
        0xC000003E,
        {56: errno.EAGAIN, 57: errno.EAGAIN, 58: errno.EAGAIN, 435: errno.ENOSYS},
    ),
    "aarch64": (0xC00000B7, {220: errno.EAGAIN, 435: errno.ENOSYS}),
}
_X32_BIT = 0x40000000


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def _program(arch: int, blocked: dict[int, int]) -> list[tuple[int, int, int, int]]:
    """The BPF instructions: ``(code, jt, jf, k)``."""
    prog = [(_LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    # another architecture (a 32-bit call): refuse the process creation calls
    # too, by killing nothing but answering with an error below
    prog.append((_JEQ_K, 1, 0, arch))
    prog.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))
    prog.append((_LD_W_ABS, 0, 0, 0))  # seccomp_data.nr
    prog.append((_JGE_K, 0, 1, _X32_BIT))  # the x32 ABI: refused
    prog.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))
    for nr, err in blocked.items():
        prog.append((_JEQ_K, 0, 1, nr))
        prog.append((_RET_K, 0, 0, _RET_ERRNO | err))
    prog.append((_RET_K, 0, 0, _RET_ALLOW))
    return prog


#: machine -> syscall number of ``unshare``
_UNSHARE = {"x86_64": 272, "aarch64": 97}


def supported() -> bool:
    """Whether this machine's architecture has a filter here."""
    return platform.machine() in _ARCH


def forbid_threads() -> None:
    """From now on this process cannot create threads or processes.

    Raises:
        OSError: the kernel refused the filter (no seccomp support).
        RuntimeError: an architecture without a filter here.
    """
    machine = platform.machine()
    if machine not in _ARCH:
        raise RuntimeError(f"no thread filter for the {machine} architecture")
    _install(*_ARCH[machine])


def forbid_namespaces() -> None:
    """From now on this process (and what it runs) cannot ``unshare``.

    What a container without user namespaces looks like to the grader; the
    tests use it to check that grading then refuses to run submissions.
    """
    machine = platform.machine()
    if machine not in _ARCH:
        raise RuntimeError(f"no filter for the {machine} architecture")
    _install(_ARCH[machine][0], {_UNSHARE[machine]: errno.EPERM})


def _install(arch: int, blocked: dict[int, int]) -> None:
    prog = _program(arch, blocked)
    filters = (_Filter * len(prog))(*[_Filter(*ins) for ins in prog])
    fprog = _Program(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    address = ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p).value
    if prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, address, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
