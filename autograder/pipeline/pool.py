"""Grading workers: one zygote that imports torch once, forked into workers.

The pool starts a single ``autograder.pipeline.worker`` process (the zygote) with a
clean environment (no tokens, no database URL: workers never need the
gradebook). It imports torch, nbconvert and nbgrader while the command loads
the assignments; :meth:`Pool.configure` then sends it the assignments, limits
and sandbox policy, it verifies each solution once (every first-call cost is
paid there), and forks the workers, which start warm and share its memory.
Each worker grades one submission at a time (:func:`autograder.pipeline.worker.grade`)
and forks its own sandboxes for student code. The pool hands out jobs as
workers become free and yields results as they finish; a worker that dies is
replaced and its submission reported as a grader error.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from autograder.authoring.assignment import ROOT
from autograder.sandbox import ipc

#: the largest result a worker sends back: the page, the autograded notebook
#: and the page's notebook of a notebook at the size limit, each JSON-escaped
#: (a backslash doubles at each encoding, an emoji takes 12 bytes)
RESULT_BYTES = 256 * 1024 * 1024

#: environment variables the workers keep
_KEEP = ("PATH", "LANG", "LC_ALL", "TZ")

#: how the zygote starts: skip a slow optional import, then run
#: autograder.pipeline.worker
_START = (
    "import autograder.pipeline._fastimport, runpy; "
    "runpy.run_module('autograder.pipeline.worker', run_name='__main__')"
)


def worker_env(home: str, device: str = "cpu") -> dict[str, str]:
    """The zygote's environment: nothing of the grader's but what it needs.

    CUDA never initializes in the zygote or its workers (they fork the
    sandboxes, and a CUDA context does not survive a fork): on the CPU they
    see no GPU at all; with ``device="cuda"`` the GPUs stay visible for the
    sandboxes (``CUDA_VISIBLE_DEVICES`` as the grader has it), and any
    ``torch.cuda.is_available()`` asks NVML, which initializes nothing.
    """
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    env.update(
        PYTORCH_NVML_BASED_CUDA_CHECK="1",
        HOME=home,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        IPYTHONDIR=os.path.join(home, ".ipython"),
    )
    return env


class _Worker:
    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.job: tuple[str, dict] | None = None
        self.ready = False
        self.pid: int | None = None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            ipc.send_json(self.sock, {"type": "stop"})
        if self.job is not None and self.pid:  # busy: end it now
            with contextlib.suppress(OSError):
                os.kill(self.pid, 9)
        with contextlib.suppress(OSError):
            self.sock.close()


class Pool:
    """Workers forked from one zygote; see the module docstring.

    Args:
        n: the number of workers :meth:`configure` starts (at most).
        log_dir: where the workers' stderr goes (``workers.log``).
        device: where student functions run, ``"cpu"`` or ``"cuda"``.
        device_name: how the summary and feedback name it.
    """

    def __init__(self, n: int, log_dir: Path, device: str = "cpu", device_name=""):
        self.device = device
        self.device_name = device_name or device
        self.n = max(1, n)
        self.log_dir = log_dir
        self.home = tempfile.mkdtemp(prefix="autograder-home-")
        self.deaths = 0
        self.workers: list[_Worker] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / "workers.log", "ab")  # noqa: SIM115
        self.ctrl, theirs = socket.socketpair()
        env = worker_env(self.home, device)
        env["AUTOGRADER_WORKER_FD"] = str(theirs.fileno())
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", _START],
            cwd=str(ROOT),
            env=env,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        theirs.close()

    def prepare(
        self,
        assignments: list[str],
        source_root: Path,
        limits: dict,
        policy: dict,
        sources: dict,
    ) -> None:
        """Let the zygote load the assignments and warm up before configure()."""
        ipc.send_json(
            self.ctrl,
            {
                "type": "prepare",
                "assignments": assignments,
                "source_root": str(source_root),
                "limits": limits,
                "policy": policy,
                "sources": sources,
                "device": self.device,
                "device_name": self.device_name,
            },
        )

    def configure(
        self,
        specs: dict,
        limits: dict,
        policy: dict,
        sources: dict | None = None,
        n: int | None = None,
    ) -> None:
        """Send the grading settings and start ``n`` workers (default: all)."""
        self.n = max(1, min(self.n, n or self.n))
        ipc.send_json(
            self.ctrl,
            {
                "type": "init",
                "specs": specs,
                "limits": limits,
                "policy": policy,
                "sources": sources or {},
                "device": self.device,
                "device_name": self.device_name,
            },
        )
        self.workers = [self._fork(i) for i in range(self.n)]

    def _fork(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        ipc.send_json(self.ctrl, {"type": "fork", "index": index})
        socket.send_fds(self.ctrl, [b"F"], [theirs.fileno()])
        theirs.close()
        return _Worker(index, ours)

    def run(self, jobs: Iterable[tuple[str, dict]]) -> Iterator[dict]:
        """Grade ``(key, job)`` pairs; yield each result (with ``key``) when done."""
        pending = list(jobs)[::-1]
        sel = selectors.DefaultSelector()
        for w in self.workers:
            sel.register(w.sock, selectors.EVENT_READ, w)
        busy = 0
        try:
            while pending or busy:
                if self.zygote.poll() is not None and not any(
                    w.ready for w in self.workers
                ):
                    raise RuntimeError(
                        f"the grading workers did not start; see {self.log_dir}"
                    )
                for w in self.workers:
                    if w.ready and w.job is None and pending:
                        w.job = pending.pop()
                        key, job = w.job
                        ipc.send_json(w.sock, {"type": "grade", "key": key, "job": job})
                        busy += 1
                for sk, _ in sel.select(timeout=1.0):
                    w = sk.data
                    try:
                        msg = ipc.recv_json(w.sock, max_bytes=RESULT_BYTES)
                    except ipc.ChannelError:
                        msg = None
                    if msg is None:  # the worker died: report, replace
                        sel.unregister(w.sock)
                        w.stop()
                        if w.job is not None:
                            busy -= 1
                            key, job = w.job
                            w.job = None
                            yield {
                                "key": key,
                                "student": job.get("student"),
                                "assignment": job.get("assignment"),
                                "status": "grader-error",
                                "error": f"grading worker {w.index} died; "
                                f"see {self.log_dir / 'workers.log'}",
                            }
                        self.deaths += 1
                        if self.deaths > 3 * self.n + len(pending):
                            raise RuntimeError(
                                f"grading workers keep dying; see {self.log_dir}"
                            )
                        new = self._fork(w.index)
                        self.workers[w.index] = new
                        sel.register(new.sock, selectors.EVENT_READ, new)
                        continue
                    if msg.get("type") == "ready":
                        w.ready, w.pid = True, msg.get("pid")
                    elif msg.get("type") == "result":
                        w.job = None
                        busy -= 1
                        yield msg["result"]
        finally:
            sel.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        with contextlib.suppress(OSError):
            self.ctrl.close()
        # idle workers hold nothing worth a clean exit: end the zygote now (its
        # workers die with it), rather than wait for torch's interpreter shutdown
        self.zygote.kill()
        self.zygote.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
