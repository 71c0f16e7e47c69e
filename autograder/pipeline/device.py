"""Which device grades: ``--device cpu | cuda | auto``, decided without CUDA here.

``grade`` and ``check`` fork (the sandboxes, the workers of the zygote), and a
process that has initialized CUDA cannot hand a working CUDA to a child it
forks. So the command never calls ``torch.cuda``: it looks for the NVIDIA
device files (``/dev/nvidiactl`` and ``/dev/nvidia0`` ...; microseconds), and
only where they exist asks a short-lived interpreter of its own
(:func:`probe`: ``python -c``, about 2 s, the time to import torch), which may
initialize CUDA and then exits. On a machine without those files ``auto`` is
the CPU at once, and ``cuda`` is refused with what was found.

CUDA is then initialized only in the sandboxed children that run student
code (the runner, and the notebook's kernel if the notebook uses it), after
the fork; the workers and the zygote never touch it (they run with
``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that even a stray
``torch.cuda.is_available()`` asks NVML and initializes nothing, and a sandbox
refuses to start from a process that has loaded the CUDA driver).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from autograder.sandbox import gpu

CHOICES = ("auto", "cpu", "cuda")

#: where the grading ran on the CPU; said in the summary and the feedback
DEVICE_NOTE = (
    "the CPU; each layer also ran on torch's meta device (shapes, no values), "
    "which finds code that works only on the CPU as a GPU would"
)


def device_note(device: str = "cpu", name: str = "") -> str:
    """Where the grading ran, for the summary and the feedback."""
    if device == "cpu":
        return DEVICE_NOTE
    return (
        f"the GPU, {name or device}: your functions ran there, the answer keys "
        "were computed in float64 on the CPU, and each layer also ran on the CPU "
        "and on torch's meta device to compare"
    )


#: what the probe runs, in its own interpreter: CUDA may be initialized there
_PROBE = """\
import json
try:
    import torch
    out = {"torch": torch.__version__, "cuda": torch.version.cuda}
    out["available"] = bool(torch.cuda.is_available())
    if out["available"]:
        out["count"] = torch.cuda.device_count()
        out["name"] = torch.cuda.get_device_name(0)
        out["works"] = float((torch.ones(2, device="cuda") * 2).sum().item()) == 4.0
except Exception as exc:
    out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
print(json.dumps(out))
"""


class DeviceUnavailable(ValueError):
    """``--device cuda`` where CUDA cannot be had; the message says why."""


@dataclass(frozen=True)
class Device:
    """The device a grading run uses.

    Attributes:
        kind: ``"cpu"`` or ``"cuda"``: where student functions run.
        name: for the summary and feedback, e.g. ``"cuda:0 (NVIDIA H200)"``.
        note: why ``auto`` chose the CPU, or ``""``.
    """

    kind: str
    name: str
    note: str = ""


def probe(timeout: float = 120.0) -> dict:
    """Ask a fresh interpreter about CUDA (it may initialize CUDA; we do not).

    Returns:
        ``{"torch", "cuda", "available", "count", "name", "works"}``, or
        ``{"error": ...}``.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", **_cuda_env()},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"the CUDA probe did not finish: {exc}"}
    lines = done.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip()[-300:]
        return {"error": f"the CUDA probe failed (exit {done.returncode}): {tail}"}


def _cuda_env() -> dict[str, str]:
    """What the probe keeps of this environment: where CUDA and torch are."""
    keep = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LD_LIBRARY_PATH", "HOME")
    keep += ("PYTHONPATH",)  # where torch may come from
    return {k: os.environ[k] for k in keep if k in os.environ}


def _why_not(found: dict) -> str:
    if "error" in found:
        return str(found["error"])
    if not found.get("cuda"):
        return (
            f"torch {found.get('torch')} is a CPU-only build (install the CUDA "
            "build of the pinned torch to grade on the GPU; tools/gpu-check.sh "
            "shows how)"
        )
    if not found.get("available"):
        return (
            f"torch {found.get('torch')} (CUDA {found.get('cuda')}) sees no usable "
            "GPU: torch.cuda.is_available() is False (driver too old for this "
            "CUDA, or CUDA_VISIBLE_DEVICES hides the GPUs)"
        )
    return "a small computation on the GPU gave a wrong result"


def resolve(requested: str = "auto", *, dev: str = "/dev") -> Device:
    """The device for ``--device requested``.

    Raises:
        DeviceUnavailable: ``cuda`` requested where it cannot be used.
        ValueError: ``requested`` is not one of :data:`CHOICES`.
    """
    if requested not in CHOICES:
        raise ValueError(
            f"--device must be one of {', '.join(CHOICES)}; got {requested!r}"
        )
    if requested == "cpu":
        return Device("cpu", "cpu")
    if not gpu.has_gpu_files(dev):
        nodes = [p.rsplit("/", 1)[-1] for p in gpu.device_nodes(dev)]
        what = f"only {', '.join(nodes)}" if nodes else "no NVIDIA device files at all"
        why = (
            f"no CUDA GPU on this machine: {dev} has {what} (a GPU needs "
            f"{dev}/nvidiactl and {dev}/nvidia0)"
        )
        if requested == "cuda":
            raise DeviceUnavailable(f"--device cuda: {why}; use --device cpu or auto")
        return Device("cpu", "cpu", why)
    found = probe()
    if found.get("available") and found.get("works"):
        name = f"cuda:0 ({found.get('name', 'GPU')})"
        return Device("cuda", name)
    why = _why_not(found)
    if requested == "cuda":
        raise DeviceUnavailable(f"--device cuda: {why}; use --device cpu or auto")
    return Device("cpu", "cpu", why)


def _sandbox_probe(sock, device: str = "cuda") -> None:
    """In a sandbox with the GPU's files: initialize CUDA as the runner does."""
    from autograder.sandbox import ipc

    try:
        import torch

        from autograder.sandbox.runner import start_device

        start_device(device)
        reply = {"ok": True, "name": torch.cuda.get_device_name(0)}
    except Exception as exc:  # noqa: BLE001 - reported to the grader
        reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    ipc.send_json(sock, reply)


def require_in_sandbox(policy, limits, device: str = "cuda") -> str:
    """Check once, before grading, that a sandbox can use the GPU.

    Forks one sandbox with ``policy`` (its GPU files) whose code initializes
    CUDA as the runner will; this process never touches CUDA.

    Returns:
        The GPU's name.

    Raises:
        DeviceUnavailable: CUDA did not initialize in the sandbox; the message
            names the error and the device files the sandbox had.
    """
    from autograder.sandbox import ipc
    from autograder.sandbox import isolation as sandbox

    target = functools.partial(_sandbox_probe, device=device)
    try:
        with sandbox.start(target, limits=limits, policy=policy) as box:
            reply = ipc.recv_json(box.sock, timeout=limits.cell_timeout * 2)
    except (sandbox.SandboxError, ipc.ChannelError) as exc:
        reply = {"ok": False, "error": str(exc)}
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else repr(reply)
        files = ", ".join(policy.devices) or "none"
        raise DeviceUnavailable(
            f"--device {device}: CUDA works here but not in the sandbox ({error}); "
            f"the sandbox had the device files {files}. Check that they can be "
            "opened by the sandbox's user (mode 0666, as the driver makes them), "
            "or grade with --device cpu"
        )
    return str(reply.get("name", ""))
