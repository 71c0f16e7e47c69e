"""Execute a notebook's code cells in a sandboxed, pre-forked IPython shell.

This replaces a fresh Jupyter kernel per notebook (seconds to start and to
``import torch``) with a fork of a worker that has already imported torch: the
cells run in an IPython ``InteractiveShell`` inside a
:mod:`autograder.sandbox.isolation` process, and their outputs come back as
nbformat outputs (``stream``, ``display_data``, ``execute_result``, ``error``),
as a kernel would produce
them, so nbgrader's ``determine_grade`` reads them the same way.

Limits enforced here: time per cell and per notebook (the process is killed,
the cell gets a ``CellTimeoutError`` and later cells are marked as not run),
text output per cell (cut with a note), and the size of each reply. A process
that dies (``os._exit``, a crash, a kill by a resource limit) leaves a
``DeadKernelError`` in the running cell.

Example:
    >>> info = execute(nb, limits=Limits(), policy=policy)   # fills nb's outputs
    >>> info["status"]
    'ok'
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import sys
import time

import nbformat
from nbformat import NotebookNode

from autograder.sandbox import ipc
from autograder.sandbox import isolation as sandbox

_CUT = "\n... output cut: over the limit of {kb} KB for one cell ...\n"


class _Sink:
    """The outputs of the cell being run, with a cap on text."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.outputs: list[dict] = []
        self.size = 0
        self.cut = False

    def begin(self) -> None:
        self.outputs = []
        self.size = 0
        self.cut = False

    def stream(self, name: str, text: str) -> None:
        if not text or self.cut:
            return
        if self.size + len(text) > self.cap:
            text = text[: max(0, self.cap - self.size)]
            text += _CUT.format(kb=self.cap // 1024)
            self.cut = True
        self.size += len(text)
        last = self.outputs[-1] if self.outputs else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def _bundle(self, data: dict, metadata: dict) -> tuple[dict, dict]:
        clean = {}
        for mime, value in data.items():
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            elif not isinstance(value, str | dict | list):
                value = str(value)
            clean[mime] = value
        size = len(json.dumps(clean, default=str))
        if self.size + size > 8 * self.cap:
            clean = {"text/plain": f"[display output of {size} bytes dropped]"}
            size = 60
        self.size += size
        return clean, json.loads(json.dumps(metadata or {}, default=str))

    def display(self, data: dict, metadata: dict) -> None:
        data, metadata = self._bundle(data, metadata)
        self.outputs.append(
            {"output_type": "display_data", "data": data, "metadata": metadata}
        )

    def result(self, data: dict, metadata: dict, count: int) -> None:
        data, metadata = self._bundle(data, metadata)
        self.outputs.append(
            {
                "output_type": "execute_result",
                "data": data,
                "metadata": metadata,
                "execution_count": count,
            }
        )

    def error(self, ename: str, evalue: str, traceback: list[str]) -> None:
        tb = [str(line)[:4000] for line in traceback[-60:]]
        self.outputs.append(
            {
                "output_type": "error",
                "ename": ename,
                "evalue": str(evalue)[:4000],
                "traceback": tb,
            }
        )

    def clear(self) -> None:
        self.outputs = []


class _Stream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of the shell: text goes to the sink."""

    def __init__(self, sink: _Sink, name: str) -> None:
        self._sink = sink
        self.name = name

    def write(self, text: str) -> int:
        text = str(text)
        self._sink.stream(self.name, text)
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _make_shell(sink: _Sink):
    """An InteractiveShell whose display, results and errors go to ``sink``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Hook(DisplayHook):
        def start_displayhook(self) -> None:
            pass

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict, md_dict=None) -> None:
            sink.result(format_dict, md_dict or {}, self.prompt_count)

        def finish_displayhook(self) -> None:
            pass

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, **kwargs) -> None:
            sink.display(data, metadata or {})

        def clear_output(self, wait=False) -> None:
            sink.clear()

    class Shell(InteractiveShell):
        displayhook_class = Hook
        display_pub_class = Publisher

        def _showtraceback(self, etype, evalue, stb) -> None:
            sink.error(getattr(etype, "__name__", str(etype)), str(evalue), stb)

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    return Shell.instance(config=config)


def _read_new(fd: int, name: str, sink: _Sink) -> None:
    """Output written straight to file descriptor 1 or 2 (C code, subprocesses)."""
    with contextlib.suppress(OSError):
        data = os.read(fd, 1 << 20)
        while data:
            sink.stream(name, data.decode(errors="replace"))
            if sink.cut:
                break
            data = os.read(fd, 1 << 20)


def _kernel_main(sock) -> None:
    """Inside the sandbox: receive the cells, run them, send outputs per cell."""
    from autograder.checks import seeds

    seeds.forget()  # forked from a grading worker: no key survives here
    job = ipc.recv_json(sock, timeout=60)
    sink = _Sink(int(job["output_kb"]) * 1024)
    home = os.getcwd()
    os.environ["IPYTHONDIR"] = os.path.join(home, ".ipython")
    # file descriptors 1 and 2 go to files we read after each cell
    readers = {}
    for fd, name in ((1, "stdout"), (2, "stderr")):
        path = os.path.join(home, f".{name}")
        w = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(w, fd)
        os.close(w)
        readers[name] = os.open(path, os.O_RDONLY)
    sys.stdout = _Stream(sink, "stdout")
    sys.stderr = _Stream(sink, "stderr")
    shell = _make_shell(sink)
    for cell in job["cells"]:
        sink.begin()
        try:
            shell.run_cell(cell["source"], store_history=True)
        except BaseException as exc:  # noqa: BLE001 - the shell itself failed
            sink.error(type(exc).__name__, str(exc), [])
        for name, fd in readers.items():
            _read_new(fd, name, sink)
        reply = {
            "type": "done",
            "cut": sink.cut,
            "index": cell["index"],
            "execution_count": shell.execution_count - 1,
            "outputs": sink.outputs,
        }
        ipc.send(sock, json.dumps(reply, default=str).encode())
    ipc.send_json(sock, {"type": "finished"})


def _error(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def execute(
    nb: NotebookNode,
    *,
    limits: sandbox.Limits,
    policy: sandbox.Policy,
) -> dict:
    """Run the code cells of ``nb`` in a sandbox; fill in their outputs in place.

    Args:
        nb: the notebook (already sanitized); its code cells get outputs and
            execution counts.
        limits: time, memory, output limits.
        policy: what the code may see.

    Returns:
        ``{"status": "ok" | "timeout" | "died" | "too-much-output" | "no-sandbox",
        "cell": index of the cell where it stopped or None, "message": str,
        "applied": isolation in force, "seconds": float}``
    """
    start = time.monotonic()
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for _, cell in code:
        cell.outputs = []
        cell.execution_count = None
    info = {"status": "ok", "cell": None, "message": "", "applied": {}}
    try:
        box = sandbox.start(_kernel_main, limits=limits, policy=policy)
    except sandbox.SandboxError as exc:
        info.update(status="no-sandbox", message=str(exc))
        _mark_not_run(code, 0, "the sandbox did not start")
        info["seconds"] = time.monotonic() - start
        return info
    info["applied"] = box.applied
    deadline = start + limits.notebook_timeout
    max_reply = limits.output_kb * 1024 * 12 + 65536
    with box:
        ipc.send_json(
            box.sock,
            {
                "output_kb": limits.output_kb,
                "cells": [{"index": i, "source": c.source} for i, c in code],
            },
        )
        for k, (i, cell) in enumerate(code):
            wait = min(limits.cell_timeout, deadline - time.monotonic())
            try:
                reply = ipc.recv_json(
                    box.sock, timeout=max(wait, 0.01), max_bytes=max_reply
                )
                if not isinstance(reply, dict) or reply.get("index") != i:
                    raise ipc.ChannelError("unexpected reply", reason="garbled")
                cell.outputs = [nbformat.from_dict(o) for o in reply["outputs"]]
                if reply.get("cut"):
                    info.setdefault("cut", []).append(i)
                count = reply.get("execution_count")
                cell.execution_count = count if isinstance(count, int) else None
                # only this cell changed: check it alone, the whole notebook once
                if k == len(code) - 1:
                    nbformat.validate(nb)
                else:
                    nbformat.validate(
                        cell,
                        ref="code_cell",
                        version=nb.nbformat,
                        version_minor=nb.nbformat_minor,
                    )
            except ipc.ChannelError as exc:
                status, ename, text = _failure(exc, box, limits, wait)
                cell.outputs = [_error(ename, text)]
                info.update(status=status, cell=i, message=text)
                _mark_not_run(code, k + 1, f"the notebook stopped at cell {i}")
                break
            except (nbformat.ValidationError, KeyError, TypeError, ValueError):
                cell.outputs = [
                    _error("InvalidOutput", "the cell's output was garbled")
                ]
                info.update(status="died", cell=i, message="garbled output")
                _mark_not_run(code, k + 1, f"the notebook stopped at cell {i}")
                break
    info["seconds"] = time.monotonic() - start
    return info


def _failure(exc: ipc.ChannelError, box, limits, wait) -> tuple[str, str, str]:
    if exc.reason == "timeout":
        if wait < limits.cell_timeout:
            return (
                "timeout",
                "CellTimeoutError",
                f"the notebook went over its time limit of "
                f"{limits.notebook_timeout:g} s in this cell",
            )
        return (
            "timeout",
            "CellTimeoutError",
            f"this cell ran longer than the limit of {limits.cell_timeout:g} s",
        )
    if exc.reason == "too-large":
        return (
            "too-much-output",
            "OutputLimitError",
            "this cell produced more output than the grader accepts",
        )
    status = box.wait(2.0)
    how = "" if status is None else f" (exit status {status})"
    return (
        "died",
        "DeadKernelError",
        f"the kernel died while running this cell{how}: os._exit, a crash, "
        "or a resource limit (memory, CPU time)",
    )


def _mark_not_run(code: list, first: int, why: str) -> None:
    for _, cell in code[first:]:
        cell.outputs = [_error("CellNotRun", f"not run: {why}")]
