"""Sandboxed processes: limits, isolation, clean environment, cleanup."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from autograder.sandbox import ipc
from autograder.sandbox import isolation as sandbox
from tests.grader.conftest import ROOT

pytestmark = pytest.mark.grader

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="namespaces and the uid drop are checked when run as root"
)
LIMITS = sandbox.Limits(memory_mb=512, processes=16, file_mb=4, disk_mb=16)


def _run(target, policy, limits=LIMITS, timeout=30.0) -> tuple[dict, dict]:
    """Run ``target() -> dict`` in a sandbox; its result and what was applied."""

    def wrapped(sock):
        try:
            out = target()
        except BaseException as exc:  # noqa: BLE001 - report it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        ipc.send_json(sock, out)

    with sandbox.start(wrapped, limits=limits, policy=policy) as box:
        return ipc.recv_json(box.sock, timeout=timeout), box.applied


def test_environment_is_a_whitelist(policy, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("TRAINLAB_DB_URL", "postgresql://u:pw@db/grades")
    out, _ = _run(lambda: dict(os.environ), policy)
    assert "GITHUB_TOKEN" not in out and "TRAINLAB_DB_URL" not in out
    assert set(out) <= set(sandbox.clean_env("/x"))
    assert out["HOME"] == out["TMPDIR"] == os.path.realpath(out["HOME"])


def test_descriptors_other_than_the_channel_are_closed(policy):
    fd = os.open(ROOT / "pyproject.toml", os.O_RDONLY)  # the child must not see it
    try:
        out, _ = _run(
            lambda: {"fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}, policy
        )
    finally:
        os.close(fd)
    # 0-2 are /dev/null, 3 is listdir's own, then the channel
    assert set(out["fds"]) <= {0, 1, 2, 3, sandbox.CHANNEL_FD}


@ROOT_ONLY
def test_isolation_when_root(policy):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def probe():
        found = {"uid": os.getuid(), "pid": os.getpid()}
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            found["loopback"] = "connected"
        except OSError as exc:
            found["loopback"] = str(exc)
        found["solutions"] = os.path.exists(ROOT / "solutions")
        found["root"] = sorted(os.listdir("/"))
        try:
            (ROOT / "sandbox-was-here").write_text("x")
            found["write"] = "written"
        except OSError as exc:
            found["write"] = str(exc)
        found["procs"] = [p for p in os.listdir("/proc") if p.isdigit()]
        return found

    try:
        out, applied = _run(probe, policy)
    finally:
        listener.close()
    assert applied["network"] and applied["mounts"] and applied["pids"]
    assert out["uid"] == policy.uid != 0
    assert out["loopback"] != "connected"
    assert out["solutions"] is False  # the allow-list: not there at all
    tops = {Path(p).parts[1] for p in (*policy.allow, *sandbox.SYSTEM)}
    assert set(out["root"]) <= tops | {"dev", "etc", "proc", "tmp"}
    assert out["write"] != "written" and not (ROOT / "sandbox-was-here").exists()
    assert out["pid"] == 1 and len(out["procs"]) <= 2


def test_memory_limit(policy):
    def bomb():
        blocks = []
        try:
            while True:
                blocks.append(bytearray(1 << 26))
        except MemoryError:
            return {"got": len(blocks) * 64}

    out, _ = _run(bomb, policy)
    assert "got" in out and out["got"] <= LIMITS.memory_mb + 64


def test_file_size_limit(policy):
    def filler():
        try:
            with open("big.bin", "wb") as f:
                for _ in range(64):
                    f.write(b"\0" * (1 << 20))
                    f.flush()
        except OSError as exc:
            return {"error": exc.strerror, "size": os.path.getsize("big.bin")}
        return {"size": os.path.getsize("big.bin")}

    out, _ = _run(filler, policy)
    assert out["size"] <= LIMITS.file_mb * 2**20
    assert out.get("error") in ("File too large", "No space left on device")


@ROOT_ONLY
def test_process_limit_and_cleanup(policy):
    def forker():
        pids = []
        try:
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    import time

                    time.sleep(600)
                    os._exit(0)
                pids.append(pid)
        except OSError as exc:
            return {"forked": len(pids), "error": exc.strerror}
        return {"forked": len(pids)}

    out, applied = _run(forker, policy)
    assert out["forked"] < LIMITS.processes and "error" in out
    # every process of the sandbox's uid is gone once it is killed
    deadline = time.monotonic() + 5
    while (left := _processes_of(policy.uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"sandbox processes still alive: {left}"


def _processes_of(uid: int) -> list[str]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/status") as f:
                    fields = dict(ln.split(":", 1) for ln in f if ":" in ln)
            except OSError:
                continue
            if int(fields["Uid"].split()[1]) == uid and not fields[
                "State"
            ].strip().startswith("Z"):
                found.append(p)
    return found


def test_describe_names_what_was_applied():
    applied = {
        "network": True,
        "mounts": False,
        "pids": True,
        "uid": 61000,
        "rlimits": ["AS"],
    }
    text = sandbox.describe(applied)
    assert "network namespace" in text and "not isolated" in text
    assert "uid 61000" in text
    text = sandbox.describe({**applied, "mounts": True, "allow_list": True})
    assert "allow-list" in text
