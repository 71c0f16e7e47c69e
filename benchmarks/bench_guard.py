"""What the grader's protections cost: the guard per call, a sandbox per start.

- **Guard per call.** A correct batchnorm forward (a student's, defined from
  the solution's source) called plainly, and called through
  ``own_code.Guard.call``: the profiler, the torch dispatch mode that sees every
  operator, the copies of the tensor inputs and the integrity check of the
  guard's own code. Medians of many calls; the ratio is guarded over plain.
- **Sandbox start.** One ``isolation.start`` of an empty target and its end
  (fork, namespaces, the allow-list root with its read-only binds, ``/proc``,
  limits), against a plain ``fork`` and exit measured the same way.

Both sides of each ratio are measured in the same run, on the same machine.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import nbformat
import torch

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "batchnorm" / "batchnorm.ipynb"


def _student_forward():
    nb = nbformat.read(str(SOLUTION), 4)
    ns: dict = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") in ("setup", "batchnorm_forward"):
            exec(compile(cell.source, "<cell>", "exec"), ns)  # noqa: S102
    return ns["batchnorm_forward"]


def _median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _guard_rows() -> list[dict]:
    from autograder.checks import own_code
    from autograder.checks.batchnorm import RULES, RUNNING

    forward = _student_forward()
    own_code.warm_up()
    rows = []
    torch.set_num_threads(1)
    for n, d in ((4, 5), (64, 10), (256, 128)):
        x = torch.randn(n, d, dtype=torch.float64) * 5 + 12
        g, b = torch.rand(d, dtype=torch.float64) + 0.5, torch.randn(d).double()
        rm, rv = torch.zeros(d).double(), torch.ones(d).double()

        def plain(x=x, g=g, b=b, rm=rm, rv=rv):
            forward(x, g, b, rm, rv)

        def guarded(x=x, g=g, b=b, rm=rm, rv=rv):
            own_code.Guard(RULES, "bn", inplace=RUNNING).call(forward, x, g, b, rm, rv)

        for _ in range(20):  # warm both paths
            plain()
            guarded()
        p, q = _median_us(plain, 300), _median_us(guarded, 300)
        rows.append(
            {
                "what": f"batchnorm_forward ({n}, {d}), per call",
                "plain_us": round(p, 1),
                "guarded_us": round(q, 1),
                "ratio": round(q / p, 2),
                "added_us": round(q - p, 1),
            }
        )
    return rows


def _sandbox_row() -> dict:
    from autograder.sandbox import isolation as sandbox

    uid = sandbox.BASE_UID + 4999 if os.geteuid() == 0 else None
    policy = sandbox.course_policy(str(ROOT), uid=uid)
    limits = sandbox.Limits()

    def start_one():
        with sandbox.start(lambda sock: None, limits=limits, policy=policy) as box:
            box.wait(10)

    def fork_one():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    start_one()
    applied = sandbox.require_isolation(policy, limits)
    s, f = _median_us(start_one, 30), _median_us(fork_one, 30)
    return {
        "what": "sandbox start and end (allow-list: "
        + ("yes" if applied.get("allow_list") else "no")
        + ("; user namespace" if applied.get("userns") else "")
        + ")",
        "plain_us": round(f, 1),
        "guarded_us": round(s, 1),
        "ratio": round(s / f, 2),
        "added_us": round(s - f, 1),
    }


def run() -> list[dict]:
    """Rows: plain (a bare call or fork) vs protected, in microseconds."""
    return [*_guard_rows(), _sandbox_row()]
