"""The files a sandbox needs to reach an NVIDIA GPU, and nothing more.

With ``--device cuda`` the sandboxes (the notebook's kernel and the runner of
the student's functions) get, beside the allow-list of
:mod:`autograder.sandbox.isolation`:

* **device files**, bound at the same place: ``/dev/nvidiactl``,
  ``/dev/nvidia0`` ... ``/dev/nvidiaN``, ``/dev/nvidia-uvm``,
  ``/dev/nvidia-uvm-tools``, ``/dev/nvidia-modeset`` and, on a machine with
  MIG, the capability files ``/dev/nvidia-caps/nvidia-cap*``: the driver
  opens them when CUDA initializes (without ``nvidia-uvm-tools`` recent drivers
  fail with ``CUDA_ERROR_OPERATING_SYSTEM``);
* **read-only driver state**: ``/sys/devices`` and ``/sys/bus/pci`` (the
  driver reads the GPU's PCI and NUMA entries when CUDA initializes, and fails
  with ``CUDA_ERROR_OPERATING_SYSTEM`` without ``/sys``) and
  ``/sys/module/nvidia*``; not ``/sys/fs`` (cgroups), ``/sys/kernel`` or the
  rest of ``/sys``. ``/proc/driver/nvidia`` needs nothing: it is part of the
  sandbox's own ``/proc``;
* **the driver's libraries**: ``libcuda.so.1`` and ``libnvidia-ml.so.1`` as
  ``ldconfig -p`` finds them; their folders are bound read-only when they lie
  outside the system folders the sandbox has anyway (``/usr``, ``/lib``).

On the CPU none of these exist in the sandbox. :func:`select` decides, from
the names in a ``/dev`` tree, so that a test can run it on a folder of empty
files.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

#: device files of the NVIDIA driver, by name under /dev
NODE = re.compile(r"nvidia(?:[0-9]+|ctl|-uvm|-uvm-tools|-modeset)")
#: MIG capability files, under /dev/nvidia-caps
CAP = re.compile(r"nvidia-cap[0-9]+")
#: the driver's user-space libraries CUDA and NVML load
LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")
#: sysfs entries the driver reads (relative to /sys)
SYSFS = ("devices", "bus/pci")
#: folders a sandbox has anyway (isolation.SYSTEM)
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class GpuFiles:
    """What a sandbox needs for CUDA.

    Attributes:
        devices: device files, bound read-write at the same path.
        readonly: folders bound read-only at the same path.
    """

    devices: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()


def device_nodes(dev: str = "/dev") -> list[str]:
    """The NVIDIA device files under ``dev`` (sorted; links are never taken)."""
    found = []
    try:
        names = sorted(os.listdir(dev))
    except OSError:
        return []
    for name in names:
        path = os.path.join(dev, name)
        if NODE.fullmatch(name) and not os.path.islink(path):
            found.append(path)
    caps = os.path.join(dev, "nvidia-caps")
    if os.path.isdir(caps) and not os.path.islink(caps):
        for name in sorted(os.listdir(caps)):
            path = os.path.join(caps, name)
            if CAP.fullmatch(name) and not os.path.islink(path):
                found.append(path)
    return found


def has_gpu_files(dev: str = "/dev") -> bool:
    """Whether the NVIDIA control device and at least one GPU are under ``dev``."""
    names = {os.path.basename(p) for p in device_nodes(dev)}
    return "nvidiactl" in names and any(n[6:].isdigit() for n in names)


def library_folders(ldconfig: str) -> list[str]:
    """Folders of the driver's libraries in ``ldconfig -p`` output, outside
    the system folders (a ``/usr/local/nvidia/lib64`` lies inside ``/usr``)."""
    found = []
    for line in ldconfig.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" ", 1)[0] not in LIBRARIES or not path.startswith("/"):
            continue
        folder = os.path.dirname(os.path.realpath(path))
        inside = any(folder == s or folder.startswith(s + "/") for s in _SYSTEM)
        if not inside and folder not in found:
            found.append(folder)
    return found


def _ldconfig() -> str:
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        try:
            done = subprocess.run(
                [exe, "-p"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        return done.stdout
    return ""


def select(
    device: str,
    *,
    dev: str = "/dev",
    sys_root: str = "/sys",
    ldconfig: str | None = None,
) -> GpuFiles:
    """The GPU files a sandbox grading on ``device`` gets (none on the CPU).

    Args:
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``).
        dev, sys_root: where to look (a test passes a folder of empty files).
        ldconfig: ``ldconfig -p`` output (default: run it).
    """
    if not device.startswith("cuda"):
        return GpuFiles()
    nodes = device_nodes(dev)
    readonly = [
        os.path.join(sys_root, p)
        for p in SYSFS
        if os.path.isdir(os.path.join(sys_root, p))
    ]
    module = os.path.join(sys_root, "module")
    if os.path.isdir(module):
        readonly += [
            os.path.join(module, m)
            for m in sorted(os.listdir(module))
            if m.startswith("nvidia")
        ]
    readonly += library_folders(_ldconfig() if ldconfig is None else ldconfig)
    return GpuFiles(tuple(nodes), tuple(readonly))
