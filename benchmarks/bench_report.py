"""What the class report adds to a grading run: writing it for 200 submissions.

A synthetic gradebook of 200 batchnorm results (six cells of five checks
each; a third of the class with one of four named mistakes, a tenth untouched,
two unreadable; feedback pages written so that every link is checked against
a file) is turned into ``report.json`` and ``report.html`` by
``class_report.write``, as ``grade`` does at the end of a run. Rows:

- importing matplotlib's Figure and Agg canvas, paid once per ``grade`` run
  (measured only where this process has not imported matplotlib yet);
- the data alone (``class_data``: statistics, per-cell and per-check counts,
  misconceptions, links);
- the two figures (histogram and per-cell bars, PNG);
- the whole write (data, figures, both files), and the sizes of the files.

Medians of ``REPEAT`` runs after the import.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

N = 200
REPEAT = 5
CELLS = {
    "test_batchnorm_forward": 8.0,
    "test_batchnorm_backward": 7.0,
    "test_batchnorm_backward_alt": 7.0,
    "test_spatial_batchnorm_forward": 6.0,
    "test_spatial_batchnorm_backward": 5.0,
    "test_fold_batchnorm": 4.0,
}
MISTAKES = [
    ("test_batchnorm_forward", "eps is added outside the square root"),
    ("test_batchnorm_forward", "normalized with the unbiased variance"),
    ("test_batchnorm_backward", "dbeta is a sum over the batch, not a mean"),
    ("test_spatial_batchnorm_forward", "the statistics are taken per sample"),
]


def _cell(gid: str, points: float, mistake: str | None, stub: bool) -> dict:
    lines = [f"{gid}: points"]
    lost = 0.0
    for k in range(5):
        fail = stub or (mistake is not None and k in (1, 3))
        lines.append(f"  [{'FAIL' if fail else 'PASS'}]     0/1  check number {k}")
        if fail:
            lost += points / 5
            lines.append("           out does not match the reference: 1.0e-01")
            if mistake and not stub:
                lines.append(f"           Likely mistake: {mistake}")
    return {"score": points - lost, "max_score": points, "report": "\n".join(lines)}


def results(n: int = N) -> list[dict]:
    """``n`` synthetic results, as ``grades.json`` holds them."""
    out = []
    for i in range(n):
        stub = i % 10 == 9
        wrong = dict([MISTAKES[i % 4]]) if i % 3 == 0 else {}
        cells = {g: _cell(g, p, wrong.get(g), stub) for g, p in CELLS.items()}
        unreadable = i in (7, 8)
        out.append(
            {
                "student": f"student{i:03d}",
                "assignment": "batchnorm",
                "status": "unreadable" if unreadable else "graded",
                "score": 0.0 if unreadable else sum(c["score"] for c in cells.values()),
                "max_score": 37.0,
                "messages": ["the file is not a valid notebook"] if unreadable else [],
                "scan": ["cell 3, line 2: [monkeypatch] torch.allclose"]
                if i == 5
                else [],
                "cells": cells,
            }
        )
    return out


def _median(fn) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> list[dict]:
    rows = []
    if "matplotlib" not in sys.modules:
        t0 = time.perf_counter()
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

        rows.append(
            {
                "what": "import matplotlib (once per run)",
                "ms": (time.perf_counter() - t0) * 1e3,
            }
        )
    from autograder.outputs import class_plots, class_report
    from autograder.outputs.class_data import class_data

    res = results()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        work = Path(tmp)
        for r in res:
            page = work / "feedback" / r["student"] / "batchnorm" / "batchnorm.html"
            page.parent.mkdir(parents=True)
            page.write_text("feedback")
        data = class_data(res, work=work)
        a = data["assignments"][0]
        timings = {
            "class_data (report.json's data)": _median(
                lambda: class_data(res, work=work)
            ),
            "figures: histogram and cell bars (PNG)": _median(
                lambda: (
                    class_plots.score_histogram(a["histogram"], a["stats"], 37.0),
                    class_plots.cell_bars(a["cells"]),
                )
            ),
            "class_report.write (report.json + report.html)": _median(
                lambda: class_report.write(res, work)
            ),
        }
        sizes = {
            "report.html_kB": (work / "report.html").stat().st_size / 1e3,
            "report.json_kB": (work / "report.json").stat().st_size / 1e3,
        }
    for what, seconds in timings.items():
        rows.append({"what": what, "submissions": N, "ms": seconds * 1e3})
    rows[-1] |= sizes
    return rows
