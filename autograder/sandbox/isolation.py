"""Run untrusted code in a forked child with limits and, where the OS allows, isolation.

A sandboxed process is forked from a grading worker that has already imported
torch (a zygote), so it starts in milliseconds. Two processes are forked:

1. the *keeper* (trusted) enters new namespaces with ``unshare`` where it may:
   network (no interface but a down loopback: no network at all), mounts, PIDs,
   IPC and UTS; as root it needs nothing else, as another user it enters a
   user namespace first. In the mount namespace it builds an **allow-list**
   root (:class:`Policy`): an empty ``tmpfs`` holding only read-only binds of
   the system libraries, the Python installation and the course's code, a
   private working folder, a private ``/tmp`` and a few devices; it then
   ``pivot_root`` into it, so nothing else of the host can be named at all;
2. the *inner* process (PID 1 of the new PID namespace, so every process it
   starts dies with it) mounts its own ``/proc``, sets resource limits
   (address space, processes, file size, CPU time, open files, no core dumps),
   drops to an unprivileged uid when the grader runs as root, clears the
   environment down to a whitelist, closes every inherited file descriptor but
   its channel, and then runs the target function.

What was applied is reported back (``Sandboxed.applied``) so the grading report
can say what was enforced where. Without namespaces (e.g. a container that
forbids ``unshare``), the limits, the uid drop, the clean environment and the
private working folder still apply.

Example:
    >>> box = start(target, limits=Limits(), policy=Policy(hide=("/srv/answers",)))
    >>> box.sock  # a socket to the target, see autograder.sandbox.ipc
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from autograder.sandbox import ipc

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
#: the file descriptor of the channel inside the sandbox
CHANNEL_FD = 200
#: first uid used for sandboxes when the grader runs as root (one per worker)
BASE_UID = 61000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission.

    Attributes:
        cell_timeout: wall-clock seconds per notebook cell (default 60).
        notebook_timeout: wall-clock seconds for a whole notebook, and for
            its verification (default 600).
        call_timeout: wall-clock seconds per call of a student function during
            verification (default 10; the checks use small inputs).
        memory_mb: address space the code may add to what the worker had
            mapped (default 2048 MiB), via ``RLIMIT_AS``.
        processes: processes and threads of the sandbox user (``RLIMIT_NPROC``,
            default 64).
        file_mb: the largest file the code may write (``RLIMIT_FSIZE``, default 64).
        disk_mb: size of the private ``tmpfs`` working folder (default 256).
        output_kb: text output kept per cell; the rest is cut (default 256).
        notebook_mb: the largest notebook accepted, and the largest executed
            notebook returned (default 16).
    """

    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    call_timeout: float = 10.0
    memory_mb: int = 2048
    processes: int = 64
    file_mb: int = 64
    disk_mb: int = 256
    output_kb: int = 256
    notebook_mb: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Policy:
    """What the sandboxed code may see: an allow-list.

    The sandbox gets a new, empty root file system holding only: the system's
    programs and libraries (``/usr`` and its ``/bin``, ``/lib`` links),
    read-only; the paths in ``allow`` (the Python installation, its packages,
    the course's code), read-only; a private writable working folder (its
    ``HOME``, ``TMPDIR`` and current folder) and a small private ``/tmp``;
    ``/dev/null``, ``/dev/zero``, ``/dev/urandom`` and the like; its own
    ``/proc``. Nothing else of the host exists there: not ``$HOME``, not other
    checkouts, not the work folder or the gradebook, not the host's ``/tmp``.

    Attributes:
        allow: paths bound read-only at the same place in the new root.
        hide: paths inside ``allow`` covered by an empty read-only folder (or
            ``/dev/null`` for a file), e.g. the reference library for the runner.
        uid: the unprivileged uid (and gid) to run as; used only when root.
        namespaces: try ``unshare`` at all (default True); without them there
            is no allow-list, and the commands refuse to grade unless told
            ``--no-sandbox``.
        devices: device files bound read-write beside ``/dev/null`` and the
            like: the GPU's with ``--device cuda`` (:mod:`autograder.sandbox.gpu`),
            none on the CPU. With any, the memory limit is ``RLIMIT_DATA``
            instead of ``RLIMIT_AS`` (CUDA reserves far more address space
            than it uses) and ``CUDA_VISIBLE_DEVICES`` is kept.
    """

    allow: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    uid: int | None = None
    namespaces: bool = True
    devices: tuple[str, ...] = ()


class SandboxError(RuntimeError):
    """The sandbox could not be started."""


class SandboxUnavailable(SandboxError):
    """This machine cannot give submissions the allow-list sandbox."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    ret = _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data))
    _check(ret, f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_namespaces(policy: Policy) -> dict:
    """In the keeper: unshare what the OS allows; returns what was applied."""
    applied = {"network": False, "mounts": False, "pids": False, "userns": False}
    if not policy.namespaces:
        return applied
    full = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() == 0 and _unshare(full):
        applied.update(network=True, mounts=True, pids=True)
    elif _unshare(CLONE_NEWUSER | full):
        # map our own uid to root inside: we may mount, but only as ourselves
        with contextlib.suppress(OSError):
            _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        applied.update(network=True, mounts=True, pids=True, userns=True)
    elif _unshare(CLONE_NEWNET):
        applied["network"] = True
    return applied


MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
#: the system's programs and libraries, always bound read-only
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf")
DEVICES = ("null", "zero", "full", "random", "urandom")
#: mount flags that a bind mount inside a user namespace must keep
_LOCKED = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024}


def _bind_readonly(src: str, dest: str) -> None:
    """Bind ``src`` at ``dest`` (same kind: folder or file), read-only."""
    if os.path.isdir(src):
        os.makedirs(dest, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            open(dest, "wb").close()
    _mount(src, dest, None, MS_BIND | MS_REC)
    keep = os.statvfs(src).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    flags |= sum(v for k, v in _LOCKED.items() if keep & k)
    _mount(None, dest, None, flags)


def _pivot(new_root: str) -> None:
    """Make ``new_root`` this mount namespace's ``/``; the old root is gone."""
    import platform

    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(0, f"no pivot_root for {platform.machine()}")
    os.chdir(new_root)
    _check(_libc.syscall(nr, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def _setup_mounts(policy: Policy, limits: Limits, workdir: str) -> list[str]:
    """In the keeper, inside the new mount namespace: build the allow-list root.

    ``workdir`` (an empty folder of the host) becomes the new root; inside it,
    the same path is the private working folder. The inner process mounts its
    ``/proc`` there and then pivots into it (:func:`_enter_root`). Returns notes.
    """
    notes: list[str] = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = workdir
    _mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in SYSTEM:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind_readonly(path, root + path)
    for path in SYSTEM_FILES:
        if os.path.isfile(path):
            _bind_readonly(path, root + path)
    small = MS_NOSUID | MS_NODEV
    os.makedirs(root + "/tmp")
    _mount("none", root + "/tmp", "tmpfs", small, "size=16m,mode=1777")
    # the allowed trees; a path under /tmp lands on the private /tmp above
    for path in dict.fromkeys(os.path.realpath(p) for p in policy.allow):
        if not os.path.exists(path) or any(
            path == s or path.startswith(s + "/") for s in SYSTEM
        ):
            continue
        _bind_readonly(path, root + path)
    for path in policy.hide:
        target = root + os.path.realpath(path)
        if os.path.isdir(target):
            _mount("none", target, "tmpfs", MS_RDONLY | small, "size=4k")
        elif os.path.exists(target):
            _mount("/dev/null", target, None, MS_BIND)
    os.makedirs(root + "/dev")
    _mount("none", root + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for path in device_binds(policy):
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        open(root + path, "wb").close()
        _mount(path, root + path, None, MS_BIND)
    os.makedirs(root + "/dev/shm")
    _mount("none", root + "/dev/shm", "tmpfs", small, "size=16m,mode=1777")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc")
    os.makedirs(root + workdir, exist_ok=True)
    _mount("none", root + workdir, "tmpfs", small, f"size={limits.disk_mb}m,mode=0700")
    notes.append("allow-list root: Python, the course code, a private tmp")
    return notes


def device_binds(policy: Policy) -> list[str]:
    """The device files bound into the sandbox's ``/dev``: the basic ones, and
    the policy's (the GPU's with ``--device cuda``); only existing files
    under ``/dev`` that are not links."""
    found = [f"/dev/{name}" for name in DEVICES]
    found += [
        p for p in policy.devices if p.startswith("/dev/") and ".." not in p.split("/")
    ]
    keep = dict.fromkeys(found)
    return [p for p in keep if os.path.exists(p) and not os.path.islink(p)]


def _enter_root(root: str, applied: dict) -> None:
    """In the inner process (PID 1 of its namespace): mount its own ``/proc`` in
    the allow-list root, then make that root ``/``.

    ``/proc`` is mounted before the pivot, while the host's is still visible (a
    kernel rule for mounting it inside a user namespace). Where the kernel
    refuses, the sandbox has no ``/proc`` at all: never the host's, whose
    ``environ`` files would show the grader's own environment.
    """
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        applied["proc"] = True
    except OSError:
        applied["proc"] = False
    _pivot(root)


def _vm_size(field: str = "VmSize") -> int:
    """This process's mapped address space (or ``VmData``) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


#: the environment CUDA reads, kept for a sandbox with GPU devices
GPU_ENV = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CUDA_MODULE_LOADING")


def cuda_driver_loaded(maps: str | None = None) -> bool:
    """Whether this process has loaded the CUDA driver (``libcuda``).

    A process that has initialized CUDA cannot give a working CUDA to a
    forked child; the driver's library is mapped from the first CUDA call
    on, so its absence from ``/proc/self/maps`` means CUDA was never
    initialized here.
    """
    if maps is None:
        try:
            with open("/proc/self/maps") as f:
                maps = f.read()
        except OSError:
            return False
    return any(
        os.path.basename(line.split()[-1]).startswith("libcuda.so")
        for line in maps.splitlines()
        if "/" in line
    )


def clean_env(home: str) -> dict[str, str]:
    """The whitelisted environment of sandboxed code: no tokens, no URLs."""
    bin_dir = os.path.dirname(sys.executable)
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "NBGRADER_EXECUTION": "autograde",
    }


def _processes_of_uid() -> int:
    """How many processes (and threads) this uid runs, as RLIMIT_NPROC counts."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def _confine(policy: Policy, limits: Limits, applied: dict, workdir: str) -> None:
    """In the inner process: /proc, limits, uid, environment, descriptors."""
    drop = policy.uid is not None and os.geteuid() == 0 and not applied["userns"]
    own = 0 if drop else int(applied.get("own_processes", 0))
    gpu = bool(policy.devices)
    vm_size = _vm_size("VmData" if gpu else "VmSize")  # before /proc may be gone
    gpu_env = {k: os.environ[k] for k in GPU_ENV if gpu and k in os.environ}
    if applied.get("allow_list"):
        _enter_root(workdir, applied)
    with contextlib.suppress(OSError):
        os.setsid()
    if drop:
        os.chown(workdir, policy.uid, policy.uid)
    mb = 1024 * 1024
    memory = resource.RLIMIT_DATA if gpu else resource.RLIMIT_AS
    rl = [
        (memory, vm_size + limits.memory_mb * mb),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_CPU, int(limits.notebook_timeout) + 30),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ]
    if drop:
        rl.append((resource.RLIMIT_NPROC, limits.processes))
    else:  # our own uid: allow what it already runs, plus the sandbox's share
        rl.append((resource.RLIMIT_NPROC, own + limits.processes))
    for which, value in rl:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    applied["rlimits"] = [
        "DATA" if gpu else "AS",
        "FSIZE",
        "CPU",
        "NOFILE",
        "CORE",
        "NPROC",
    ]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full file fails, not kills
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(clean_env(workdir))
    os.environ.update(gpu_env)
    os.chdir(workdir)
    if drop:
        os.setgroups([])
        os.setgid(policy.uid)
        os.setuid(policy.uid)
    applied["uid"] = os.getuid()
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        applied["no_new_privs"] = True
    except OSError:
        applied["no_new_privs"] = False


def _redirect_std() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _inner(target, chan: socket.socket, policy, limits, applied, workdir) -> None:
    code = 1
    try:
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _confine(policy, limits, applied, workdir)
            _redirect_std()
            fd = os.dup2(chan.fileno(), CHANNEL_FD)
            chan.close()
            os.closerange(3, CHANNEL_FD)
            os.closerange(CHANNEL_FD + 1, 4096)
            sock = socket.socket(fileno=fd)
        except BaseException as exc:
            import traceback

            error = "".join(traceback.format_exception(exc))
            ipc.send_json(chan, {"type": "crash", "error": error})
            raise
        ipc.send_json(sock, {"type": "hello", "applied": applied})
        target(sock)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the process ends here either way
        code = 1
    os._exit(code)


def _keeper(target, chan, info_w: int, policy, limits, workdir) -> None:
    code = 70
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # counted on the host's /proc, before the new root hides it
        own = _processes_of_uid() if os.geteuid() != 0 or policy.uid is None else 0
        applied = _enter_namespaces(policy)
        applied["own_processes"] = own
        notes: list[str] = []
        if applied["mounts"]:
            try:
                notes = _setup_mounts(policy, limits, workdir)
                applied["allow_list"] = True
            except OSError as exc:
                notes = [f"mount setup failed: {exc}"]
                applied["mounts"] = False
                applied["allow_list"] = False
        applied["notes"] = notes
        pid = os.fork()
        if pid == 0:
            os.close(info_w)
            _inner(target, chan, policy, limits, applied, workdir)
        os.write(info_w, json.dumps({"pid": pid}).encode())
        os.close(info_w)
        chan.close()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code & 0xFF)


class Sandboxed:
    """A running sandboxed process: its channel, and how to end it.

    Attributes:
        sock: the channel to the target function.
        applied: what isolation was in force (from the process's hello).
        pid: the keeper's pid; ``inner``: the inner process's pid.
    """

    def __init__(self, pid: int, inner: int, sock: socket.socket, workdir: str):
        self.pid = pid
        self.inner = inner
        self.sock = sock
        self.workdir = workdir
        self.applied: dict = {}
        self.uid: int | None = None
        self.status: int | None = None

    def wait(self, timeout: float) -> int | None:
        """The exit status of the target (None if still running after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)
        return self.status

    def kill(self) -> None:
        """End the target and everything it started; reap the keeper."""
        for pid in (self.inner, self.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.inner, signal.SIGKILL)
        if not self.applied.get("pids") and self.uid not in (None, 0, os.getuid()):
            _kill_uid(self.uid)
        if self.status is None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.status = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            self.sock.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandboxed:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (sandboxes without a PID namespace)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def start(
    target: Callable[[socket.socket], None],
    *,
    limits: Limits,
    policy: Policy,
    hello_timeout: float = 30.0,
) -> Sandboxed:
    """Fork a sandboxed process that runs ``target(sock)``.

    Args:
        target: runs in the sandbox with the channel socket; its return ends
            the process.
        limits: resource limits.
        policy: isolation policy.
        hello_timeout: seconds to wait for the sandbox to come up.

    Returns:
        The running sandbox; :meth:`Sandboxed.kill` ends it (use ``with``).

    Raises:
        SandboxError: the process did not come up.
    """
    if policy.devices and cuda_driver_loaded():
        raise SandboxError(
            "this grading process has initialized CUDA, so a sandbox forked from "
            "it cannot use the GPU; CUDA must be used only in the sandboxes"
        )
    workdir = tempfile.mkdtemp(prefix="autograder-")
    parent, child = socket.socketpair()
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(info_r)
        parent.close()
        _keeper(target, child, info_w, policy, limits, workdir)
    os.close(info_w)
    child.close()
    with os.fdopen(info_r, "rb") as f:
        raw = f.read()
    inner = json.loads(raw)["pid"] if raw else -1
    box = Sandboxed(pid, inner, parent, workdir)
    box.uid = policy.uid if os.geteuid() == 0 else None
    try:
        if inner < 0:
            raise SandboxError("the sandbox keeper failed before starting the code")
        hello = ipc.recv_json(parent, timeout=hello_timeout, max_bytes=1 << 16)
        if isinstance(hello, dict) and hello.get("type") == "crash":
            raise SandboxError(hello.get("error", "?"))
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise SandboxError(f"unexpected first message from the sandbox: {hello!r}")
        box.applied = hello["applied"]
    except (ipc.ChannelError, SandboxError) as exc:
        box.kill()
        raise SandboxError(f"the sandbox did not start: {exc}") from None
    return box


def require_isolation(policy: Policy, limits: Limits) -> dict:
    """Start one empty sandbox and check that the allow-list was in force.

    Returns:
        What was applied.

    Raises:
        SandboxUnavailable: no mount namespace (no user namespaces for this
            user, or a container that forbids ``unshare``), so submissions
            would see the host's files with the grader's own rights.
    """
    try:
        with start(lambda sock: None, limits=limits, policy=policy) as box:
            applied = dict(box.applied)
    except SandboxError as exc:
        raise SandboxUnavailable(f"the sandbox did not start: {exc}") from None
    if not applied.get("allow_list"):
        why = "; ".join(applied.get("notes", [])) or (
            "unshare is refused (no user namespaces for this user, or a container "
            "that forbids them)"
        )
        raise SandboxUnavailable(
            "refusing to run submissions: the sandbox cannot hide this machine's "
            f"files here ({why}). Run as root, enable unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
            "user.max_user_namespaces), or pass --no-sandbox to grade with the "
            "limits only, with student code running with your own rights"
        )
    return applied


def describe(applied: dict) -> str:
    """One line for the report: what isolation was in force."""
    if not applied:
        return "no sandbox information"
    if applied.get("no_sandbox"):
        return (
            "NONE (--no-sandbox): student code ran with the grader's own rights "
            "and saw its files; only the time, memory and output limits applied"
        )
    parts = [
        "network: "
        + ("none (network namespace)" if applied.get("network") else "open"),
        "filesystem: "
        + (
            "allow-list (Python, the course code, a private tmp; nothing else)"
            if applied.get("allow_list")
            else "the host's, not isolated (no mount namespace)"
        ),
        "processes: "
        + ("own PID namespace" if applied.get("pids") else "shared PID space"),
        f"uid {applied.get('uid')}"
        + (" (user namespace)" if applied.get("userns") else ""),
        "limits: " + ",".join(applied.get("rlimits", [])),
    ]
    return "; ".join(parts)


def course_policy(
    root: str,
    *,
    hide: tuple[str, ...] = (),
    uid: int | None = None,
    device: str = "cpu",
) -> Policy:
    """The policy for grading: Python, its packages and the course's code.

    Allowed, read-only: the Python installation (``sys.prefix``,
    ``sys.base_prefix``, the interpreter's folder), the ``sys.path`` folders
    inside them, and the course's importable code (``<root>/src`` and
    ``<root>/autograder``); ``hide`` is covered inside those. Nothing else of
    the repository (solutions, the work folder, ``.git``, tests) is there.
    With ``device="cuda"``, also the GPU's files
    (:func:`autograder.sandbox.gpu.select`).
    """
    from autograder.sandbox import gpu

    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    prefixes = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, exe_dir)]
    inside = [
        os.path.realpath(p)
        for p in sys.path
        if p
        and os.path.isdir(p)
        and any(os.path.realpath(p).startswith(q + "/") for q in prefixes)
    ]
    course = [os.path.join(root, "src"), os.path.join(root, "autograder")]
    files = gpu.select(device)
    allow = tuple(dict.fromkeys([*prefixes, *inside, *course, *files.readonly]))
    return Policy(allow=allow, hide=tuple(hide), uid=uid, devices=files.devices)
