"""A pool of grading workers (:mod:`autograder.worker`), one per core.

Each worker is a ``python -m autograder.worker`` process with a clean
environment (no tokens, no database URL: it never needs the gradebook) that
imports torch once and then grades submissions one at a time. The pool hands
out jobs as workers become free and yields results as they finish; a worker
that dies is replaced and its submission reported as a grader error.
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
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from autograder import ipc
from autograder.assignment import ROOT

#: environment variables a worker keeps (plus locale and CUDA selection)
_KEEP = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "TZ")


def worker_env(home: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    env.update(
        HOME=home,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        IPYTHONDIR=os.path.join(home, ".ipython"),
    )
    return env


#: how a worker starts: skip a slow optional import, then run autograder.worker
_START = (
    "import autograder._fastimport, runpy; "
    "runpy.run_module('autograder.worker', run_name='__main__')"
)


class _Worker:
    def __init__(self, index: int, log_dir: Path, home: str) -> None:
        self.index = index
        ours, theirs = socket.socketpair()
        env = worker_env(home)
        env["AUTOGRADER_WORKER_FD"] = str(theirs.fileno())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _START],
            cwd=str(ROOT),
            env=env,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        theirs.close()
        self.sock = ours
        self.job: tuple[str, dict] | None = None
        self.ready = False

    def stop(self) -> None:
        if not self.ready or self.job is not None:  # busy: no need to wait
            self.proc.kill()
        with contextlib.suppress(OSError):
            ipc.send_json(self.sock, {"type": "stop"})
        with contextlib.suppress(OSError):
            self.sock.close()

    def reap(self, deadline: float) -> None:
        try:
            self.proc.wait(timeout=max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Pool:
    """Worker processes, started at once (they spend seconds importing torch).

    :meth:`configure` then sends them the assignments, limits and sandbox
    policy (one uid per worker is filled in); :meth:`run` hands out jobs.

    Args:
        n: number of worker processes.
        log_dir: where each worker's stderr goes.
    """

    def __init__(self, n: int, log_dir: Path):
        self.n = max(1, n)
        self.log_dir = log_dir
        self.home = tempfile.mkdtemp(prefix="autograder-home-")
        self.deaths = 0
        self.init: dict | None = None
        self.workers = [_Worker(i, log_dir, self.home) for i in range(self.n)]

    def configure(
        self,
        specs: dict,
        limits: dict,
        policy: dict,
        sources: dict | None = None,
        n: int | None = None,
    ) -> None:
        """Send the grading settings; keep only ``n`` workers (default all)."""
        if n is not None and n < self.n:
            for w in self.workers[n:]:
                w.stop()
                w.reap(time.monotonic())
            self.workers, self.n = self.workers[:n], max(1, n)
        self.init = {
            "type": "init",
            "specs": specs,
            "limits": limits,
            "policy": policy,
            "sources": sources or {},
        }
        for w in self.workers:
            ipc.send_json(w.sock, self._init_for(w.index))

    def _init_for(self, index: int) -> dict:
        assert self.init is not None, "configure() the pool first"
        init = dict(self.init)
        policy = dict(init["policy"])
        if policy.get("uid") is not None:
            policy["uid"] = int(policy["uid"]) + index
        init["policy"] = policy
        return init

    def _spawn(self, index: int) -> _Worker:
        w = _Worker(index, self.log_dir, self.home)
        ipc.send_json(w.sock, self._init_for(index))
        return w

    def run(self, jobs: Iterable[tuple[str, dict]]) -> Iterator[dict]:
        """Grade ``(key, job)`` pairs; yield each result (with ``key``) when done."""
        pending = list(jobs)[::-1]
        sel = selectors.DefaultSelector()
        for w in self.workers:
            sel.register(w.sock, selectors.EVENT_READ, w)
        busy = 0
        try:
            while pending or busy:
                for w in self.workers:
                    if w.ready and w.job is None and pending:
                        w.job = pending.pop()
                        key, job = w.job
                        ipc.send_json(w.sock, {"type": "grade", "key": key, "job": job})
                        busy += 1
                for sk, _ in sel.select(timeout=1.0):
                    w = sk.data
                    try:
                        msg = ipc.recv_json(w.sock)
                    except ipc.ChannelError:
                        msg = None
                    if msg is None:  # the worker died: report, replace
                        sel.unregister(w.sock)
                        if w.job is not None:
                            busy -= 1
                            key, job = w.job
                            yield {
                                "key": key,
                                "student": job.get("student"),
                                "assignment": job.get("assignment"),
                                "status": "grader-error",
                                "error": f"grading worker {w.index} died "
                                f"(exit {w.proc.poll()}); see {self.log_dir}",
                            }
                        w.stop()
                        w.reap(time.monotonic() + 1)
                        self.deaths += 1
                        if self.deaths > 3 * self.n + len(pending):
                            raise RuntimeError(
                                f"grading workers keep dying; see {self.log_dir}"
                            )
                        new = self._spawn(w.index)
                        self.workers[w.index] = new
                        sel.register(new.sock, selectors.EVENT_READ, new)
                        continue
                    if msg.get("type") == "ready":
                        w.ready = True
                    elif msg.get("type") == "result":
                        w.job = None
                        busy -= 1
                        yield msg["result"]
        finally:
            sel.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        deadline = time.monotonic() + 3
        for w in self.workers:
            w.reap(deadline)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
