"""Build time of the textbook: a cold build and a rebuild with nothing changed.

The cold build starts from an empty build folder (no doctrees, no execution
cache) in a temporary directory, so every page is executed; the rebuild then
runs the same command again on that folder. Both run ``book/_tools/build.py``,
the command behind ``make book``, in a fresh process (strict: any warning or
failed cell fails it). Goals on a 2-core machine: cold build at most 3 minutes,
no-change rebuild at most 10 seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "book" / "_tools" / "build.py"
GOALS_S = {"cold": 180.0, "no-change rebuild": 10.0}


def _build(output: Path) -> float:
    """Wall-clock seconds of one strict build into ``output``; raises on failure."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--output", str(output), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"the book build failed:\n{tail}")
    return elapsed


def run() -> list[dict]:
    """Time a cold build and a no-change rebuild; one row each."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="book-bench-") as tmp:
        output = Path(tmp) / "_build"
        for kind in ("cold", "no-change rebuild"):
            seconds = _build(output)
            rows.append(
                {
                    "build": kind,
                    "seconds": round(seconds, 1),
                    "goal_s": GOALS_S[kind],
                    "within_goal": seconds <= GOALS_S[kind],
                    "cpu_count": os.cpu_count(),
                    "pages": len(list((output / "html" / "book").glob("*.html"))),
                }
            )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import table

    print(table(run()))
