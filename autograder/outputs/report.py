"""What a grading run writes for people: grades.json, a Markdown summary, a check table.

The Markdown summary is written to ``<work>/summary.md`` and appended to
``$GITHUB_STEP_SUMMARY`` when that variable is set (a GitHub Actions job
summary). It lists every submission with its score and a "needs review"
section: submissions that could not be read, notebooks stopped by a limit,
cells where the notebook's own run and the independent verification disagree,
and the static scan's findings. Each row shows the raw score, the late
penalty and the final score; a missing submission says ``missing`` (it is not
a 0).

Student text (ids, messages, findings that quote code) is shown through
:func:`autograder.outputs.sanitize.markdown` in the summary and
:func:`autograder.outputs.sanitize.terminal` in the check table and the
Classroom payload.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autograder.outputs import mistakes
from autograder.outputs.sanitize import markdown as md
from autograder.outputs.sanitize import one_line, terminal
from autograder.sandbox import isolation as sandbox

#: the longest reason quoted in the summary (the rest is in grades.json)
REASON_CHARS = 400


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def grades_json(results: list[dict], path: Path) -> None:
    """Every stored result, without the bulky notebook and HTML."""
    keep = [
        {k: v for k, v in r.items() if k not in ("feedback_html", "autograded", "key")}
        for r in results
    ]
    path.write_text(json.dumps({"submissions": keep}, indent=1) + "\n")


def needs_review(r: dict) -> list[str]:
    """Reasons an instructor should look at this submission."""
    reasons = []
    if r.get("status") == "missing":
        return reasons
    if r.get("status") not in ("graded", None):
        reasons.append(f"status: {r['status']}")
    for gid, c in r.get("cells", {}).items():
        if c.get("manual") and c.get("score") is None:
            reasons.append(f"{gid}: an answer to grade by hand (nbgrader formgrader)")
        if c.get("disagree"):
            reasons.append(
                f"{gid}: notebook's own run {_fmt(c.get('in_kernel'))}, verified "
                f"{_fmt(c['score'])} (verified counts)"
            )
    for m in r.get("messages", []):
        if m.startswith(
            ("notebook run stopped", "the file", "nbgrader could not", "feedback page")
        ):
            reasons.append(m)
    reasons += [f"scan: {f}" for f in r.get("scan", [])]
    if r.get("error"):
        last = r["error"].strip().splitlines()[-1:] or [""]
        reasons.append("grader error: " + one_line(last[0]))
    return reasons


def summary_markdown(
    results: list[dict],
    *,
    run: dict,
    problems: list[str],
    title: str = "Grading summary",
) -> str:
    """The Markdown summary of a run (see the module docstring)."""
    lines = [f"## {title}", ""]
    lines.append(
        f"{run.get('graded', 0)} graded, {run.get('cached', 0)} unchanged (kept), "
        f"{run.get('errors', 0)} grader errors, in {run.get('seconds', 0):.1f} s "
        f"with {run.get('jobs', 1)} workers."
    )
    if run.get("isolation"):
        lines += ["", f"Sandbox: {sandbox.describe(run['isolation'])}."]
    if run.get("device"):
        lines += ["", f"Device: {run['device']}."]
    lines += [
        "",
        "| student | assignment | raw | late penalty | score | max | review |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(
        results, key=lambda r: (r.get("assignment", ""), r.get("student", ""))
    ):
        flag = "yes" if needs_review(r) else ""
        if r.get("status") == "missing":
            raw = penalty = score = "missing"
        else:
            raw = _fmt(r.get("raw_score", r.get("score")))
            penalty, score = _fmt(r.get("late_penalty") or 0.0), _fmt(r.get("score"))
        lines.append(
            f"| {md(r.get('student'))} | {md(r.get('assignment'))} | {raw} | "
            f"{penalty} | {score} | {_fmt(r.get('max_score'))} | {flag} |"
        )
    absent = [r for r in results if r.get("status") == "missing"]
    if absent:
        lines += ["", "### Missing (no submission; not counted as 0)", ""]
        lines += [
            f"- {md(r.get('display_name') or r.get('student'))} / "
            f"{md(r.get('assignment'))}"
            for r in absent
        ]
    failed = run.get("failed", [])
    if failed:
        lines += ["", "### Not graded (a grader error: run grade again)", ""]
        for r in failed:
            last = (str(r.get("error", "")).strip().splitlines() or [""])[-1]
            lines.append(
                f"- {md(r.get('student'))} / {md(r.get('assignment'))}: "
                f"{md(one_line(last), limit=REASON_CHARS)}"
            )
    review = [(r, needs_review(r)) for r in results]
    review = [(r, why) for r, why in review if why]
    if review or problems:
        lines += ["", "### Needs review", ""]
        for r, why in review:
            lines.append(f"- **{md(r.get('student'))} / {md(r.get('assignment'))}**")
            lines += [f"  - {md(w, limit=REASON_CHARS)}" for w in why[:12]]
        for p in problems:
            lines.append(f"- intake: {md(p)}")
    return "\n".join(lines) + "\n"


def write_summary(text: str, path: Path) -> None:
    path.write_text(text)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a") as f:
            f.write(text)


def check_table(result: dict) -> str:
    """The per-cell table ``python -m autograder check`` prints."""
    rows = [("cell", "points", "max", "status")]
    for gid, c in result.get("cells", {}).items():
        if c.get("manual"):
            status = "graded by hand" if c["score"] is None else "no answer"
        else:
            status = "ok" if c["score"] >= c["max_score"] else "points lost"
        rows.append((gid, _fmt(c["score"]), _fmt(c["max_score"]), status))
    rows.append(("total", _fmt(result.get("score")), _fmt(result.get("max_score")), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for k, r in enumerate(rows):
        out.append(
            "  ".join(
                (r[i].rjust(widths[i]) if i in (1, 2) else r[i].ljust(widths[i]))
                for i in range(4)
            ).rstrip()
        )
        if k == 0 or k == len(rows) - 2:
            out.append("  ".join("-" * w for w in widths))
    details = []
    for gid, c in result.get("cells", {}).items():
        if c.get("manual") or c["score"] >= c["max_score"]:
            continue
        found = mistakes.failed_checks(c)
        if found:
            details.append(f"\n{gid} ({_fmt(c['score'])}/{_fmt(c['max_score'])}):")
            details += [f"  {line}" for line in found]
    notes = [f"note: {m}" for m in result.get("messages", [])]
    manual = [g for g, c in result.get("cells", {}).items() if c.get("manual")]
    if manual:
        notes.append(
            f"note: {', '.join(manual)} will be graded by hand; the points below "
            "count only what the autograder grades"
        )
    text = "\n".join(out + details + ([""] + notes if notes else []))
    return terminal(text)


def classroom_line(result: dict) -> str:
    """GitHub Classroom reads the points from a ``Points x/y`` line."""
    total = result.get("auto_max_score", result.get("max_score", 0))
    return f"Points {_fmt(result.get('score', 0))}/{_fmt(total)}"


def classroom_payload(result: dict) -> dict:
    """The result in the format of GitHub Classroom's autograding runners.

    ``classroom-resources/autograding-grading-reporter`` reads, from the
    environment variable ``<RUNNER>_RESULTS``, base64-encoded JSON with a
    ``max_score`` and one entry per test with its ``score``; it adds them up
    and writes ``Points <score>/<max>`` on the "Autograding Tests" check run,
    which is what Classroom records. One test per graded cell.
    """
    tests = []
    for gid, c in result.get("cells", {}).items():
        if c.get("manual"):  # graded later by hand; Classroom only sees autograding
            continue
        tests.append(
            {
                "name": gid,
                "status": "pass" if c["score"] >= c["max_score"] else "fail",
                "score": c["score"],
                "max_score": c["max_score"],
                "message": terminal(mistakes.cell_message(c)),
                "line_no": 0,
                "execution_time": "",
            }
        )
    ok = result.get("status") in ("graded", None) and all(
        t["status"] == "pass" for t in tests
    )
    return {
        "version": 1,
        "status": "pass" if ok else "fail",
        "max_score": sum(t["max_score"] for t in tests),
        "tests": tests,
    }


def write_classroom_output(result: dict, path: Path) -> str:
    """Append ``result=<base64 JSON>`` to a GitHub Actions output file."""
    import base64

    encoded = base64.b64encode(json.dumps(classroom_payload(result)).encode()).decode()
    with open(path, "a") as f:
        f.write(f"result={encoded}\n")
    return encoded
