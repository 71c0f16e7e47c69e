"""Start the course JupyterHub on localhost for a test, and stop all of it.

:func:`start` runs ``jupyterhub -f deploy/jupyterhub/localhost_config.py`` in a
state folder of its own, on free ports, with a fresh password, homes and
exchange. :func:`stop` stops the hub (which stops the users' servers and its
proxy), then looks for anything of this run still alive (the hub's proxy by a
marker in its environment, the users' servers and kernels by their homes) and
kills it by its process id; it returns what it had to kill.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "deploy" / "jupyterhub"
PROXY = RECIPE / "node_modules" / ".bin" / "configurable-http-proxy"
#: the environment variable that marks the processes of one test hub
MARKER = "TRAINLAB_HUB_TEST_RUN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str | None:
    """The proxy the hub will run (``make setup`` installs it), or None."""
    return str(PROXY) if PROXY.exists() else shutil.which("configurable-http-proxy")


@dataclass
class Hub:
    """A running hub: where it lives, how to reach it, its process."""

    folder: Path
    url: str
    password: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path
    marker: str

    @property
    def homes(self) -> Path:
        return self.folder / "homes"

    @property
    def exchange(self) -> Path:
        return self.folder / "exchange"

    @property
    def grading(self) -> Path:
        return self.folder / "grading"

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def start(folder: Path, users: str, timeout: float = 90) -> Hub:
    """Start the hub in ``folder`` for the comma-separated ``users``."""
    port = free_port()
    marker = secrets.token_hex(8)
    password = secrets.token_urlsafe(16)
    for sub in ("state", "homes", "exchange"):  # grading/: nbgrader makes it
        (folder / sub).mkdir(parents=True, exist_ok=True)
    paths = [str(ROOT), str(ROOT / "src")]  # this checkout's course first
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "TRAINLAB_HUB_PASSWORD": password,
        "TRAINLAB_HUB_USERS": users,
        "TRAINLAB_HUB_PORT": str(port),
        "TRAINLAB_HUB_API_PORT": str(free_port()),
        "TRAINLAB_PROXY_API_PORT": str(free_port()),
        "TRAINLAB_HUB_HOMES": str(folder / "homes"),
        "TRAINLAB_EXCHANGE": str(folder / "exchange"),
        "TRAINLAB_GRADING_DIR": str(folder / "grading"),
        MARKER: marker,
    }
    log = folder / "hub.log"
    cmd = [
        str(Path(sys.executable).with_name("jupyterhub")),
        "-f",
        str(RECIPE / "localhost_config.py"),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=folder / "state",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(folder, f"http://127.0.0.1:{port}", password, env, proc, log, marker)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stop(hub)  # its proxy may be up
            raise RuntimeError(f"the hub exited early:\n{hub.log_tail()}")
        try:
            with urllib.request.urlopen(f"{hub.url}/hub/login", timeout=3) as r:  # noqa: S310
                if r.status == 200:
                    return hub
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            stop(hub)
            raise RuntimeError(
                f"the hub did not answer in {timeout:g} s:\n{hub.log_tail()}"
            )
        time.sleep(0.25)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def survivors(hub: Hub) -> list[int]:
    """Processes of this run still alive: the proxy (the hub's marker) and the
    users' servers and kernels (a home under the run's homes)."""
    marker = f"{MARKER}={hub.marker}".encode()
    home = f"HOME={hub.homes}{os.sep}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        env = b"\0" + _environ(int(entry.name))
        if b"\0" + marker + b"\0" in env + b"\0" or b"\0" + home in env:
            found.append(int(entry.name))
    return sorted(found)


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop(hub: Hub, timeout: float = 30) -> list[int]:
    """Stop the hub as an admin would (SIGTERM: it stops the users' servers and
    the proxy), then kill whatever of this run is left. Returns the ids of the
    processes that outlived the hub's own shutdown (empty when it was clean)."""
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait(timeout=10)
    deadline = time.monotonic() + 5  # the servers' last kernels are going
    left = survivors(hub)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = survivors(hub)
    if left:
        _kill(left, signal.SIGTERM)
        time.sleep(2)
        _kill(survivors(hub), signal.SIGKILL)
    return left
