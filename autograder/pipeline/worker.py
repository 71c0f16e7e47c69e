"""A grading worker: imports torch once, then grades one notebook at a time.

Started by :mod:`autograder.pipeline.pool` as
``python -m autograder.pipeline.worker`` with a socket on the file descriptor
named by ``AUTOGRADER_WORKER_FD``. It never runs student code itself: for each
submission it forks sandboxed children (:mod:`autograder.sandbox.kernel` for
the notebook, :mod:`autograder.sandbox.runner` for the functions) and runs the
verification and the feedback rendering itself.

One submission (:func:`grade`):

1. read the file (size-capped) as a notebook; scan it (:mod:`autograder.outputs.scan`);
2. nbgrader's sanitize step (:func:`autograder.authoring.assignment.sanitize`);
3. execute it in the sandbox, its grade cells without their hidden tests (the
   kernel never sees them); nbgrader's ``LimitOutput``;
4. verification (:mod:`autograder.pipeline.verify`): the scores that count;
5. comments (nbgrader's "No response." for untouched answers) and feedback.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import socket
import sys
import time
import traceback

import nbformat

from autograder.authoring.assignment import Assignment, sanitize
from autograder.checks import seeds
from autograder.outputs import bounded
from autograder.outputs.feedback import PENDING, feedback_notebook, render_html
from autograder.outputs.sanitize import one_line
from autograder.pipeline import verify
from autograder.pipeline.device import DEVICE_NOTE, device_note  # noqa: F401
from autograder.sandbox import ipc, kernel
from autograder.sandbox import isolation as sandbox

_IMPORT = re.compile(r"^\s*from\s+(autograder\.checks\.\w+)\s+import", re.M)


def _meta(cell) -> dict:
    return (
        cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    )


def _read(path: str, limits: sandbox.Limits):
    """The notebook at ``path``, or None and why not."""
    from autograder.pipeline.intake import read_notebook

    return read_notebook(path, limits.notebook_mb)


def _scan(nb, source_path: str) -> list[str]:
    """Findings of the static scans (advisory: they go into the report)."""
    from autograder.outputs import tamper

    found = []
    try:
        from autograder.outputs.scan import scan_notebook

        found += [str(f) for f in scan_notebook(nb, source_path)]
    except Exception as exc:  # noqa: BLE001 - the scan is advisory
        found.append(f"the static scan failed: {type(exc).__name__}: {one_line(exc)}")
    try:
        found += tamper.scan(nb)
    except Exception as exc:  # noqa: BLE001
        found.append(f"the tamper scan failed: {type(exc).__name__}: {one_line(exc)}")
    return found


def _edited_tests(nb, spec: Assignment) -> list[str]:
    """Messages for test cells that were changed, deleted or duplicated."""
    seen: dict[str, int] = {}
    notes = []
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if gid not in spec.visible_tests:
            continue
        seen[gid] = seen.get(gid, 0) + 1
        mine = str(cell.get("source", "")).strip()
        if mine != spec.visible_tests[gid].strip() and seen[gid] == 1:
            notes.append(
                f"test cell '{gid}' was edited; the original test was run instead"
            )
    for gid in spec.visible_tests:
        if gid not in seen:
            notes.append(f"test cell '{gid}' is missing; the original test was run")
        elif seen[gid] > 1:
            notes.append(f"test cell '{gid}' appears {seen[gid]} times; counted once")
    return notes


_LIMIT_ERROR = re.compile(
    r"MemoryError|can't allocate memory|File too large|No space left|"
    r"Resource temporarily unavailable|Too many open files|BlockingIOError",
    re.I,
)


def _limit_errors(nb) -> list[str]:
    """Messages for cells stopped by a resource limit of the sandbox."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
            if _LIMIT_ERROR.search(text):
                found.append(
                    f"cell {i} hit a resource limit of the sandbox: {text[:200]}"
                )
    return found


def _limit_output(nb) -> None:
    from nbgrader.preprocessors import LimitOutput

    LimitOutput().preprocess(nb, {})


def _without_hidden_tests(nb, spec: Assignment):
    """A copy of ``nb`` for the kernel: the grade cells keep only their visible part.

    The hidden tests (and whatever would derive the check inputs) never enter
    the process that runs student code: the scores come from the verifier.
    """
    from autograder.outputs.feedback import _clear_hidden

    copy_ = copy.deepcopy(nb)
    for cell in copy_.cells:
        meta = _meta(cell)
        if meta.get("grade") and meta.get("grade_id") in spec.points:
            if meta.get("solution"):  # a written answer: the student's own text
                continue
            _clear_hidden(cell)
    return copy_


def _take_outputs(dest, ran) -> None:
    """The kernel's outputs of ``ran`` (same cells, hidden tests cleared) into
    ``dest``, the notebook with its hidden tests, for the autograded copy."""
    for mine, theirs in zip(dest.cells, ran.cells, strict=True):
        if mine.get("cell_type") == "code":
            mine["outputs"] = theirs.get("outputs", [])
            mine["execution_count"] = theirs.get("execution_count")


def _manual_score(nb, gid: str) -> float | None:
    """nbgrader's score for a hand-graded answer: 0 if untouched, else None."""
    from nbgrader.utils import determine_grade

    for cell in nb.cells if nb is not None else []:
        if _meta(cell).get("grade_id") == gid and _meta(cell).get("grade"):
            try:
                score, _ = determine_grade(cell)
            except Exception:  # noqa: BLE001 - forged metadata
                return None
            return None if score is None else float(score)
    return 0.0


def _comments(nb, spec: Assignment) -> dict[str, str | None]:
    """nbgrader's SaveAutoGrades comments: 'No response.' for an untouched answer."""
    from nbgrader.utils import compute_checksum, is_task

    found: dict[str, str | None] = {gid: "No response." for gid in spec.solutions}
    if nb is None:
        return found
    for cell in nb.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if not meta.get("solution") or gid not in found:
            continue
        try:
            same = meta.get("checksum") == compute_checksum(cell)
        except Exception:  # noqa: BLE001 - forged metadata
            same = False
        found[gid] = "No response." if same and not is_task(cell) else None
    return found


def _failed_lines(outputs: list[dict], limit: int = 6) -> str:
    """The lines of a check report that say what went wrong."""
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [ln for ln in lines if ln.startswith("[FAIL]")]
    errors = [
        f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"
    ]
    out = (errors + keep)[:limit]
    return "\n".join(out)


def _empty_notebook(message: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"**Not graded.** {message}")]
    return nb


def grade(
    job: dict,
    spec: Assignment,
    limits: sandbox.Limits,
    policy,
    *,
    device: str = "cpu",
    device_name: str = "",
) -> dict:
    """Grade one submission; see the module docstring.

    Args:
        job: ``{"student", "assignment", "path", "file", "notes", "source"}``.
        spec: the assignment.
        limits: resource limits.
        policy: the sandbox policy (with the GPU's files for ``cuda``).
        device: where the student's functions run (``"cpu"``, ``"cuda"``).
        device_name: how the feedback names it (``"cuda:0 (NVIDIA H200)"``).

    Returns:
        A JSON-able result: ``score``, ``max_score``, per-cell ``cells``,
        ``messages``, ``scan``, ``isolation``, ``timing``, plus ``autograded``
        (notebook JSON or None) and ``feedback_html``.
    """
    t0 = time.monotonic()
    hex_key = job.pop("seed_key", None)  # out of the job before anything forks
    seed_key = seeds.hold(bytearray.fromhex(hex_key)) if hex_key else None
    del hex_key  # the children wipe what is held (seeds.forget)
    result = {
        "student": job["student"],
        "assignment": spec.name,
        "notebook": spec.notebook,
        "file": job.get("file", ""),
        "status": "graded",
        "messages": list(job.get("notes", [])),
        "cells": {},
        "scan": [],
        "isolation": {},
        "timing": {},
    }
    nb, why = _read(job["path"], limits) if job.get("path") else (None, "no notebook")
    if nb is None:
        result["status"] = "unreadable"
        result["messages"].append(why)
    else:
        result["scan"] = _scan(nb, job["source"])
    sanitized = None
    if nb is not None:
        result["messages"] += _edited_tests(nb, spec)
        try:
            sanitized, warnings = sanitize(copy.deepcopy(nb), spec)
            result["messages"] += [
                f"nbgrader: {w}"
                for w in dict.fromkeys(warnings)
                if "Attribute 'checksum'" not in w  # expected: hidden tests restored
            ]
        except Exception as exc:  # noqa: BLE001 - nbgrader refuses the notebook
            result["status"] = "invalid-metadata"
            why = (
                "nbgrader could not read the notebook's grading metadata "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
            result["messages"].append(
                f"{why}; nbgrader would not grade it. The verification below "
                "graded the functions anyway."
            )
    if sanitized is not None:
        ran = _without_hidden_tests(sanitized, spec)
        info = kernel.execute(ran, limits=limits, policy=policy)
        _take_outputs(sanitized, ran)
        _limit_output(sanitized)
        result["messages"] += _limit_errors(sanitized)
        result["isolation"] = info["applied"]
        result["timing"]["execute"] = round(info["seconds"], 3)
        for i in info.get("cut", []):
            result["messages"].append(
                f"cell {i}: output cut at the limit of {limits.output_kb} KB"
            )
        if info["status"] != "ok":
            result["messages"].append(
                f"notebook run stopped ({info['status']}): "
                f"cell {info['cell']}: {info['message']}"
            )
    t1 = time.monotonic()
    v = verify.verify(
        sanitized if sanitized is not None else nb,
        spec,
        limits=limits,
        policy=policy,
        seed_key=seed_key,
        device=device,
    )
    seeds.forget()  # wiped here too: a kernel forked later never holds it
    result["timing"]["verify"] = round(time.monotonic() - t1, 3)
    result["messages"] += v.notes
    if not result["isolation"]:
        result["isolation"] = v.applied
    scores, notes = {}, {}
    for gid, points in spec.points.items():
        if gid in spec.manual:
            score = _manual_score(sanitized, gid)
            result["cells"][gid] = {
                "score": score,
                "max_score": points,
                "manual": True,
                "problems": "no answer" if score == 0 else "to be graded by hand",
            }
            scores[gid] = score or 0.0
            continue
        cell = v.cells.get(gid)
        score = cell.score if cell else 0.0
        scores[gid] = score
        entry = {
            "score": score,
            "max_score": points,
            "report": "".join(
                o.get("text", "")
                for o in (cell.outputs if cell else [])
                if o["output_type"] == "stream"
            )[:4000],
            "problems": _failed_lines(cell.outputs) if cell else "not verified",
        }
        result["cells"][gid] = entry
    result["score"] = float(sum(scores.values()))
    result["max_score"] = spec.max_score
    result["auto_max_score"] = spec.auto_max_score
    comments = _comments(sanitized, spec)
    result["comments"] = comments
    if sanitized is not None:
        base = sanitized
    else:  # the reader's reason (e.g. the JSON error), not a cell's
        why = why or "the notebook could not be read"
        base = _empty_notebook(
            f"{why[:1].upper()}{why[1:]}. Check that the file opens in "
            "JupyterLab, then submit it again."
        )
    outputs = {gid: c.outputs for gid, c in v.cells.items()}
    t2 = time.monotonic()
    shown = dict(comments)  # a written answer to grade says so on the page
    for gid in spec.manual:
        if result["cells"][gid]["score"] is None and not shown.get(gid):
            shown[gid] = PENDING
    fb = feedback_notebook(base, spec, scores, outputs, shown, notes)
    note = device_note(device, device_name)
    result["device"] = note
    result["device_kind"] = device
    fb.cells.insert(0, nbformat.v4.new_markdown_cell(f"*Graded on {note}.*"))
    result["feedback_html"], cut = bounded.render(
        fb,
        notebook=spec.notebook,
        student=job["student"],
        assignment=spec.name,
        score=result["score"],
        max_score=spec.max_score,
        late_penalty=min(float(job.get("late_penalty") or 0.0), result["score"]),
    )
    result["messages"] += cut
    # what the page was drawn from: drawn again when grades are written by hand
    result["feedback_notebook"] = json.dumps(fb)  # no validation: fb is ours
    result["timing"]["feedback"] = round(time.monotonic() - t2, 3)
    result["autograded"] = nbformat.writes(sanitized) if sanitized is not None else None
    result["timing"]["total"] = round(time.monotonic() - t0, 3)
    return result


def _preload(
    specs: dict[str, Assignment], limits, policy, sources: dict, device: str = "cpu"
) -> None:
    """Import what every submission needs, once, before forking children.

    The instructor's own solution is verified once per assignment, so that
    every lazy import and first-call cost of the checks is paid here, in the
    zygote, and not again in each submission.
    """
    import importlib

    import torch

    torch.set_num_threads(1)
    import IPython.core.interactiveshell  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401

    from autograder.checks import own_code
    from autograder.sandbox import runner  # noqa: F401 - loaded before the forks

    own_code.warm_up()

    for spec in specs.values():
        # the setup cells' imports, loaded here: a runner forked later cannot
        # read the reference library's files (they are hidden from it)
        for src in spec.setup:
            with contextlib.suppress(Exception), contextlib.redirect_stdout(None):
                exec(compile(verify._strip_magics(src), "<setup>", "exec"), {})
        for _, src in spec.tests:
            for module in _IMPORT.findall(src):
                with contextlib.suppress(Exception):
                    importlib.import_module(module)
    render_html(
        _empty_notebook("warm-up"),
        notebook="x",
        student="x",
        assignment="x",
        score=0,
        max_score=0,
    )
    for name, spec in specs.items():
        path = sources.get(name)
        if path and os.path.exists(path):
            with contextlib.suppress(Exception):
                nb = nbformat.read(path, as_version=4)
                verify.verify(nb, spec, limits=limits, policy=policy, device=device)


class _Settings:
    """What the parent sent once: assignments, limits, sandbox policy."""

    def __init__(self, msg: dict) -> None:
        self.specs = {k: Assignment.from_dict(v) for k, v in msg["specs"].items()}
        self.limits = sandbox.Limits(**msg["limits"])
        self.policy = sandbox.Policy(
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in msg["policy"].items()
            }
        )
        self.sources = msg.get("sources", {})
        self.device = str(msg.get("device", "cpu"))
        self.device_name = str(msg.get("device_name", self.device))

    def for_worker(self, index: int) -> _Settings:
        """The same settings with this worker's own sandbox uid."""
        import dataclasses

        if self.policy.uid is not None:
            copy_ = object.__new__(_Settings)
            copy_.__dict__.update(self.__dict__)
            copy_.policy = dataclasses.replace(self.policy, uid=self.policy.uid + index)
            return copy_
        return self


def serve(sock: socket.socket, settings: _Settings) -> None:
    """A worker: grade what the parent sends until it says stop or goes away."""
    ipc.send_json(sock, {"type": "ready", "pid": os.getpid()})
    while True:
        try:
            msg = ipc.recv_json(sock)
        except ipc.ChannelError:
            return
        kind = msg.get("type")
        if kind == "grade":
            job = msg["job"]
            try:
                res = grade(
                    job,
                    settings.specs[job["assignment"]],
                    settings.limits,
                    settings.policy,
                    device=settings.device,
                    device_name=settings.device_name,
                )
            except Exception:  # noqa: BLE001 - the grader's own failure
                res = {
                    "student": job.get("student"),
                    "assignment": job.get("assignment"),
                    "status": "grader-error",
                    "error": traceback.format_exc()[-4000:],
                }
            res["key"] = msg.get("key")
            ipc.send_json(sock, {"type": "result", "result": res})
        elif kind == "stop":
            return


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def zygote(ctrl: socket.socket) -> None:
    """Import once, warm up once, then fork a worker whenever the parent asks.

    Messages on ``ctrl``: ``{"type": "init", ...}`` (assignments, limits,
    policy; the zygote then verifies each solution once, so every worker
    starts warm); ``{"type": "prepare", ...}``, the same but naming the
    assignments, sent before the command has loaded them (the warm-up then
    overlaps the command's own start); and ``{"type": "fork", "index": i}``
    followed by one byte carrying the new worker's socket (SCM_RIGHTS).
    """
    settings: _Settings | None = None
    warmed: str | None = None
    while True:
        try:
            msg = ipc.recv_json(ctrl)
        except ipc.ChannelError:
            return
        if msg.get("type") == "prepare":  # early: load the assignments ourselves
            from pathlib import Path

            from autograder.authoring import assignment

            root = Path(msg["source_root"])
            msg["specs"] = {
                name: assignment.load(name, root)[0].to_dict()
                for name in msg["assignments"]
            }
        if msg.get("type") in ("init", "prepare"):
            settings = _Settings(msg)
            key = json.dumps(
                [
                    sorted((k, v.digest) for k, v in settings.specs.items()),
                    msg["limits"],
                    msg["policy"],
                    settings.device,
                ],
                sort_keys=True,
            )
            if key != warmed:  # the same settings as prepared: already warm
                _preload(
                    settings.specs,
                    settings.limits,
                    settings.policy,
                    settings.sources,
                    settings.device,
                )
                warmed = key
        elif msg.get("type") == "fork":
            _, fds, _, _ = socket.recv_fds(ctrl, 1, 1)
            if settings is None or not fds:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    ctrl.close()
                    _die_with_parent()
                    sock = socket.socket(fileno=fds[0])
                    serve(sock, settings.for_worker(int(msg.get("index", 0))))
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                    code = 1
                os._exit(code)
            os.close(fds[0])
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


# What a new IPython shell, and its first traceback (a cell that raises),
# import lazily: imported here once, not again in each sandboxed kernel.
_SHELL_MODULES = (
    "IPython.core.application",
    "IPython.core.completer",
    "IPython.core.completerlib",
    "IPython.core.logger",
    "IPython.core.magics",
    "IPython.core.oinspect",
    "IPython.core.ultratb",
    "bdb",
    "pygments.formatters.terminal256",
    "stack_data",
)


def _import_shell_modules() -> None:
    import importlib

    for name in _SHELL_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def main() -> None:
    _die_with_parent()
    if os.getppid() == 1:
        sys.exit(0)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import IPython.core.interactiveshell  # noqa: F401 - all imports before init
    import nbgrader.preprocessors  # noqa: F401
    import torch

    from autograder.outputs.feedback import _exporter

    torch.set_num_threads(1)
    _exporter()
    _import_shell_modules()
    zygote(socket.socket(fileno=int(os.environ.pop("AUTOGRADER_WORKER_FD"))))


if __name__ == "__main__":
    main()
