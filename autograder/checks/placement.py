"""Where graded calls run: the grading device, set in one place.

The checks draw their inputs and compute their answer keys in float64 on the
CPU. When ``grade`` or ``check`` runs with ``--device cuda``, the verifier
sets the grading device here (:func:`configure`), and every call of a
student's function through :meth:`autograder.checks.own_code.Guard.call`
runs on it: the sandboxed runner moves the call's CPU tensors to the device,
calls the function, checks that what it returned is on that device, and
sends the results back, which arrive on the CPU to be compared with the key.

The verifier itself never creates a CUDA tensor: it forks the sandboxes, and
a process that has initialized CUDA cannot hand a working CUDA to its forked
children. So while a device is configured, :func:`autograder.checks.own_code.devices`
answers ``[cpu]`` without asking torch, and the comparison of the same
function on the CPU and on the device happens in the device check
(:func:`autograder.checks.common.on_meta`), through :func:`pinned`.

Outside grading (the tests, a notebook) nothing is configured and calls run
where their tensors are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: the grading device, or None outside grading (calls run where their tensors are)
_device: list[str | None] = [None]

#: what torch says when a function mixes devices or leaves the tensor's device
DEVICE_ERRORS = (
    "not on the expected device",
    "on the same device",
    "to numpy",
    "numpy()",
    "Use Tensor.cpu()",
)


class OffDevice(Exception):
    """A call on a device returned a tensor on another one."""

    def __init__(self, found: str, device: str) -> None:
        super().__init__(f"a tensor on {found} for an input on {device}")
        self.found = found
        self.device = device


#: what torch says when the GPU itself failed (the driver, cuBLAS, cuSOLVER),
#: which is the grader's problem, not the student's
DEVICE_FAILURES = (
    "CUDA error",
    "CUBLAS_STATUS",
    "CUSOLVER_STATUS",
    "CUDNN_STATUS",
    "cuDNN error",
)

#: calls that failed on the device for the grader's reasons, and ran on the CPU
failures: list[str] = []


def configure(device: str | None) -> None:
    """Grade on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None: not grading.

    Also forgets the :data:`failures` of the previous run.
    """
    _device[0] = None if device is None else str(device)
    failures.clear()


def device_failure(text: str) -> bool:
    """Whether an error message says that the GPU itself failed."""
    return any(k in text for k in DEVICE_FAILURES)


def current() -> str | None:
    """The device graded calls run on, or None outside grading."""
    return _device[0]


def grading() -> bool:
    """Whether a grading device is configured (the verifier of grade / check)."""
    return _device[0] is not None


def on_device() -> bool:
    """Whether graded calls run on a device other than the CPU."""
    return _device[0] not in (None, "cpu")


@contextlib.contextmanager
def pinned(device: str) -> Iterator[None]:
    """Graded calls inside run on ``device`` (the CPU leg of a comparison)."""
    before = _device[0]
    _device[0] = device
    try:
        yield
    finally:
        _device[0] = before


def device_mistake(text: str) -> bool:
    """Whether an error message says that a function mixed devices."""
    return any(k in text for k in DEVICE_ERRORS)


def off_device_message(what: str, found: str, device: str) -> str:
    """The message for a function that left the device of its inputs."""
    return (
        f"your function returned a tensor on {found} for an input on {device}: "
        "create tensors with device=x.device or x.new_zeros (torch.zeros_like), "
        f"and keep the computation in torch ({what} must work on any device, "
        "a GPU included: no .numpy(), no masks built on the host)"
    )


def failed_on_device_message(what: str, device: str, detail: str) -> str:
    """The message for a function that raised on the device and not on the CPU."""
    return (
        f"{what} works only on the CPU: on {device} it raised {detail}. Create "
        "tensors with device=x.device or x.new_zeros (torch.zeros_like), and "
        "keep the computation in torch (no .numpy(), no masks built on the host)"
    )
