"""Which GPU files a sandbox gets: exactly the driver's, only with --device cuda."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from autograder.sandbox import gpu, ipc
from autograder.sandbox import isolation as sandbox

pytestmark = pytest.mark.grader

WANTED = [
    "nvidia-modeset",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia0",
    "nvidia1",
    "nvidia12",
    "nvidiactl",
    "nvidia-caps/nvidia-cap1",
    "nvidia-caps/nvidia-cap2",
]
#: names a careless pattern would take too
DECOYS = [
    "nvidia",
    "nvidiactl2",
    "nvidia0p1",
    "nvidia-uvm-evil",
    "nvidia-caps/other",
    "nvme0",
    "nvme0n1",
    "nvram",
    "video0",
    "dri/card0",
    "kvm",
    "fuse",
]
LDCONFIG = """\
1234 libs found in cache `/etc/ld.so.cache'
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibnvidia-ml.so.1 (libc6,x86-64) => /opt/nvidia/lib64/libnvidia-ml.so.1
\tlibcudart.so.12 (libc6,x86-64) => /opt/cuda/lib64/libcudart.so.12
\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6
"""


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    dev, sys_root = tmp_path / "dev", tmp_path / "sys"
    _tree(dev, WANTED + DECOYS)
    (dev / "nvidia9").symlink_to("/etc/passwd")  # a link is never bound
    for d in ("devices/pci0000:00", "bus/pci/devices", "fs/cgroup", "kernel"):
        (sys_root / d).mkdir(parents=True)
    for m in ("nvidia", "nvidia_uvm", "snd", "kvm"):
        (sys_root / "module" / m).mkdir(parents=True)
    return dev, sys_root


def test_cuda_selects_exactly_the_driver_files(fake):
    dev, sys_root = fake
    files = gpu.select("cuda", dev=str(dev), sys_root=str(sys_root), ldconfig=LDCONFIG)
    assert sorted(files.devices) == sorted(str(dev / n) for n in WANTED)
    assert sorted(files.readonly) == sorted(
        [
            str(sys_root / "devices"),
            str(sys_root / "bus/pci"),
            str(sys_root / "module/nvidia"),
            str(sys_root / "module/nvidia_uvm"),
            "/opt/nvidia/lib64",  # libcuda lies in /usr: the sandbox has it anyway
        ]
    )


def test_cpu_selects_nothing(fake):
    dev, sys_root = fake
    assert gpu.select(
        "cpu", dev=str(dev), sys_root=str(sys_root), ldconfig=LDCONFIG
    ) == gpu.GpuFiles((), ())


def test_a_gpu_needs_the_control_device_and_a_card(tmp_path):
    for i, (names, has) in enumerate(
        [
            ([], False),
            (["nvidiactl"], False),
            (["nvidia0"], False),
            (["nvidia-uvm", "nvidia0"], False),
            (["nvidiactl", "nvidia0"], True),
        ]
    ):
        dev = tmp_path / f"dev{i}"
        dev.mkdir()
        _tree(dev, names)
        assert gpu.has_gpu_files(str(dev)) is has, names


def test_binds_take_only_device_files_under_dev():
    policy = sandbox.Policy(
        devices=("/dev/null", "/etc/passwd", "/dev/../etc/passwd", "/dev/nvidia9")
    )
    binds = sandbox.device_binds(policy)
    assert "/etc/passwd" not in binds and "/dev/../etc/passwd" not in binds
    assert all(b.startswith("/dev/") for b in binds)
    assert "/dev/nvidia9" not in binds  # not on this machine (or a real one)


def test_the_course_policy_on_cpu_names_no_gpu_file():
    root = str(Path(__file__).resolve().parents[2])
    policy = sandbox.course_policy(root, device="cpu")
    assert policy.devices == ()
    named = " ".join(policy.allow + policy.hide)
    assert "nvidia" not in named and "/sys" not in named


def test_the_course_policy_on_cuda_adds_what_select_finds():
    root = str(Path(__file__).resolve().parents[2])
    policy = sandbox.course_policy(root, device="cuda")
    files = gpu.select("cuda")
    assert policy.devices == files.devices
    assert set(files.readonly) <= set(policy.allow)


def _list_dev(sock) -> None:
    import resource

    found = []
    for base, dirs, names in os.walk("/dev"):
        found += [os.path.join(base, n) for n in dirs + names]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    ipc.send_json(sock, {"dev": sorted(found), "as_limited": soft != -1})


def _dev_inside(policy: sandbox.Policy) -> tuple[dict, dict]:
    limits = sandbox.Limits()
    try:
        with sandbox.start(_list_dev, limits=limits, policy=policy) as box:
            return ipc.recv_json(box.sock, timeout=30), box.applied
    except sandbox.SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


def test_a_cpu_sandbox_has_no_gpu_device(policy):
    inside, applied = _dev_inside(policy)
    if not applied.get("allow_list"):
        pytest.skip("no allow-list root here (no mount namespace)")
    assert not [p for p in inside["dev"] if "nvidia" in p or "dxg" in p]
    basics = {f"/dev/{n}" for n in sandbox.DEVICES if os.path.exists(f"/dev/{n}")}
    assert basics <= set(inside["dev"])
    assert applied["rlimits"][0] == "AS" and inside["as_limited"]


def test_policy_devices_are_bound_and_the_memory_limit_is_data(policy):
    """The same code binds the GPU's files: tried with a real device node here."""
    extra = next(
        (f"/dev/{n}" for n in ("tty", "kvm", "fuse") if os.path.exists(f"/dev/{n}")),
        None,
    )
    if extra is None:
        pytest.skip("no spare device node on this machine to bind")
    inside, applied = _dev_inside(dataclasses.replace(policy, devices=(extra,)))
    if not applied.get("allow_list"):
        pytest.skip("no allow-list root here (no mount namespace)")
    assert extra in inside["dev"]
    # CUDA reserves far more address space than it uses: no RLIMIT_AS then
    assert applied["rlimits"][0] == "DATA" and not inside["as_limited"]


def test_the_cuda_driver_in_the_forking_process_is_noticed():
    maps = "7f00-7f10 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libcuda.so.1.1\n"
    assert sandbox.cuda_driver_loaded(maps)
    assert not sandbox.cuda_driver_loaded(
        "7f00-7f10 r-xp 0 08:01 1 /opt/venv/nvidia/cuda_runtime/lib/libcudart.so.12\n"
        "7f10-7f20 rw-p 0 00:00 0 [heap]\n"
    )
    if not gpu.has_gpu_files():  # no GPU: nothing here can have loaded it
        assert not sandbox.cuda_driver_loaded()


def test_the_grading_policy_has_gpu_files_only_with_cuda(tmp_path):
    from autograder.pipeline import grading

    cpu = grading._policy(grading.Options(submissions=tmp_path, work=tmp_path), [])
    assert cpu["devices"] == []
    assert not [p for p in cpu["allow"] if "nvidia" in p or p.startswith("/sys")]
    cuda = grading._policy(
        grading.Options(submissions=tmp_path, work=tmp_path, device="cuda"), []
    )
    assert cuda["devices"] == list(gpu.select("cuda").devices)
