"""``python -m autograder``: grade a folder of submissions, or check one notebook.

Run ``python -m autograder --help`` (and ``grade --help``, ``check --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import autograder.pipeline._fastimport  # noqa: F401 - first, before nbformat
from autograder.authoring import nbgrader_config as cfg
from autograder.outputs.sanitize import terminal
from autograder.sandbox import isolation as sandbox

DESCRIPTION = """\
Grade the course's nbgrader assignments.

  grade SUBMISSIONS   grade a folder (or LMS zip) of student submissions into
                      the gradebook; write feedback, grades.csv, grades.json
                      and a Markdown summary
  check NOTEBOOK      check one notebook (a student's, or in a student's CI):
                      a table of points per test cell; exit 1 if points are lost

Student code runs in a sandbox (time, memory, process, file and output limits;
no network; an allow-list file system), and every score is verified again in a
process that never ran student code.
"""

GRADE_EPILOG = """\
SUBMISSIONS layouts:
  one folder per student    alice/batchnorm.ipynb  or  alice/batchnorm/batchnorm.ipynb
  Canvas download (flat)    smithjane_12345_67890_batchnorm.ipynb  (id smithjane_12345)
  Moodle download           Jane Doe_4321_assignsubmission_file_/  (id Jane+Doe_4321)
  a .zip of any of these    as exported by the LMS; an unsafe member (.., absolute
                            path, link, device, oversized) is skipped and named in
                            summary.md, the rest is graded

Student ids are the names, made safe for folders and reversible: letters, digits
and _.@- as they are, a space as +, any other character as ~ and its UTF-8 hex
(张三 -> ~E5~BC~A0~E4~B8~89); a name that is too long ends with a hash (~h...);
two names that one disk cannot tell apart get ~-2. roster.csv says who is who.

Outputs (in the work folder, default grading/ in the repository, git-ignored):
  gradebook.db                                   nbgrader gradebook (unless --db)
  feedback/<student>/<assignment>/<assignment>.html  what each student receives
  feedback/_static/                              the local MathJax the pages load
  feedback-source/                               what each page was drawn from
  autograded/<student>/<assignment>/...          executed notebooks, for review
  grades.csv                                     nbgrader's CSV export (raw score,
                                                 late penalty, score)
  canvas-grades.csv                              Canvas gradebook import (Grades >
                                                 Import): Student, ID, SIS User ID,
                                                 SIS Login ID, Section, one column
                                                 per assignment
  moodle-grades.csv                              Moodle grade import (map from Email
                                                 address or ID number)
  grades.json                                    per cell, with messages
  roster.csv                                     id, display name, LMS id, files
  summary.md                                     also appended to $GITHUB_STEP_SUMMARY
  report.html, report.json                       the class report: score histogram,
                                                 what the class lost, misconceptions

Check inputs: every check draws its inputs from a key derived from the course
secret and the student id, so no table of precomputed answers can match them,
and a regrade gives the same grades. The secret is $TRAINLAB_COURSE_SECRET, or
the file course-secret in the work folder, created on first use: keep it (and
out of the repository). `check` draws fresh random inputs on every run.

Late work: course.yml in the work folder (or --course FILE) gives due dates,
extensions and the penalty (per day or hour, a cap, a grace period); the time
is nbgrader's timestamp.txt, else the file's time (a zip member's time).
Students of --roster or the course file without a submission are "missing".

Hand grading: written answers are graded in nbgrader's formgrader
(python -m autograder.authoring.lab --instructor, same --work and --db); the
next run reads those scores and comments into every output above.

A rerun only grades new or changed submissions (and gives the same grades);
--student NAME regrades one student; --force regrades everyone. A run that is
interrupted (even killed) keeps what it finished; run it again to finish.

Safety: every notebook runs in a sandbox: the limits above, no network, and an
allow-list file system (only Python, its packages and the course's code,
read-only, plus a private tmp: not your home, not /tmp, not the work folder),
as root or as an ordinary user with user namespaces. Where that cannot be had,
grading refuses to start unless you pass --no-sandbox (the summary then says
that student code ran with your rights). The scores come from the tests run in
a process that never runs student code, calling the student's functions in the
sandbox; the notebook's own run never receives the hidden tests. summary.md
lists under "Needs review" what the static scans found.

Device: --device auto (the default) grades on a CUDA GPU when this machine has
one, else on the CPU; --device cuda insists (and says why not); --device cpu
never uses a GPU. On the GPU the student's functions run there, in the
sandbox (which then also gets the GPU's device files and nothing more); the
answer keys stay float64 on the CPU; each layer is also compared on the CPU
and the GPU, and a function that works only on the CPU loses its device
check. summary.md, grades.json and every feedback page say which device graded.

Examples:
  python -m autograder grade submissions/ --assignment batchnorm
  python -m autograder grade canvas_export.zip -a batchnorm --jobs 8
  python -m autograder grade submissions/ --db postgresql://grader@db/gradebook
  python -m autograder grade submissions/ --student alice
"""

CHECK_EPILOG = """\
Prints one row per test cell (points, maximum), the failed checks, and a final
line "Points x/y". Exits 0 with full marks, 1 when points are lost, 2 when the
notebook cannot be graded. With --classroom "$GITHUB_OUTPUT" it also writes the
step output that GitHub Classroom's grading reporter reads (see
autograder/authoring/workflows/student.yml); the reporter puts "Points x/y" on the
"Autograding Tests" check run, which is what Classroom records.

Example:
  python -m autograder check notebooks/batchnorm/batchnorm.ipynb
"""


def _limits_args(p: argparse.ArgumentParser) -> None:
    d = sandbox.Limits()
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="grade where the allow-list sandbox cannot be had (no user "
        "namespaces): student code then runs with your rights and sees your "
        "files; only the limits apply, and the summary says so",
    )
    g = p.add_argument_group("limits per submission")
    g.add_argument(
        "--cell-timeout",
        type=float,
        default=d.cell_timeout,
        metavar="S",
        help=f"seconds per cell (default {d.cell_timeout:g})",
    )
    g.add_argument(
        "--notebook-timeout",
        type=float,
        default=d.notebook_timeout,
        metavar="S",
        help=f"seconds per notebook (default {d.notebook_timeout:g})",
    )
    g.add_argument(
        "--call-timeout",
        type=float,
        default=d.call_timeout,
        metavar="S",
        help="seconds per call of a student function when verifying "
        f"(default {d.call_timeout:g})",
    )
    g.add_argument(
        "--memory-mb",
        type=int,
        default=d.memory_mb,
        metavar="MB",
        help=f"memory per notebook (default {d.memory_mb})",
    )


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the student's functions run: auto (default: a CUDA GPU when "
        "there is one, else the CPU), cpu, or cuda (an error where there is none)",
    )


def _resolve_device(args: argparse.Namespace):
    """The device for ``--device``, or None after printing why not (exit 2)."""
    from autograder.pipeline import device

    try:
        found = device.resolve(args.device)
    except ValueError as exc:
        print(f"error: {terminal(exc)}", file=sys.stderr)
        return None
    if args.device == "auto" and found.kind == "cpu" and found.note:
        if not found.note.startswith("no CUDA GPU on this machine"):
            print(f"note: grading on the CPU: {terminal(found.note)}", file=sys.stderr)
    return found


def _limits(args: argparse.Namespace) -> sandbox.Limits:
    return sandbox.Limits(
        cell_timeout=args.cell_timeout,
        call_timeout=args.call_timeout,
        notebook_timeout=args.notebook_timeout,
        memory_mb=args.memory_mb,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser(
        "grade",
        help="grade a folder or zip of submissions",
        description="Grade a folder (or LMS zip) of submissions with nbgrader's "
        "pipeline: autograde, feedback, export.",
        epilog=GRADE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument(
        "submissions",
        type=Path,
        metavar="SUBMISSIONS",
        help="folder with one folder per student, or a .zip",
    )
    g.add_argument(
        "-a",
        "--assignment",
        metavar="A",
        help="grade only this assignment (default: every assignment "
        "found, matched by notebook name or content)",
    )
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="parallel workers (default: the number of cores)",
    )
    g.add_argument(
        "--db",
        metavar="URL",
        help="gradebook SQLAlchemy URL (default: $TRAINLAB_DB_URL, else SQLite "
        "in the work folder; e.g. postgresql://user@host/gradebook)",
    )
    g.add_argument(
        "-s",
        "--student",
        action="append",
        default=[],
        metavar="S",
        help="grade (again) only this student; repeatable",
    )
    g.add_argument(
        "--work",
        type=Path,
        default=None,
        metavar="DIR",
        help="work folder (default: grading/ in the repository, or "
        "$TRAINLAB_GRADING_DIR)",
    )
    g.add_argument(
        "--course",
        type=Path,
        default=None,
        metavar="FILE",
        help="the course file: due dates, extensions, late penalty, students "
        "(default: course.yml in the work folder, if there)",
    )
    g.add_argument(
        "--roster",
        type=Path,
        default=None,
        metavar="FILE",
        help="the LMS's roster export (a Canvas gradebook export CSV or a Moodle "
        "participants CSV): SIS ids and emails for the LMS files",
    )
    g.add_argument(
        "--force", action="store_true", help="regrade submissions that have not changed"
    )
    g.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )
    g.add_argument(
        "--json", action="store_true", help="print the run's results as JSON on stdout"
    )
    _device_arg(g)
    _limits_args(g)

    c = sub.add_parser(
        "check",
        help="check one notebook and print points per test cell",
        description="Run the visible and hidden checks on one notebook, as the "
        "grader will.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("notebook", type=Path, metavar="NOTEBOOK")
    c.add_argument(
        "-a",
        "--assignment",
        metavar="A",
        help="the assignment (default: from the file name or content)",
    )
    c.add_argument(
        "--classroom",
        metavar="FILE",
        type=Path,
        help="append the result for GitHub Classroom's grading reporter "
        '(result=<base64 JSON>) to FILE, e.g. "$GITHUB_OUTPUT"',
    )
    c.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        help="also write the result as JSON to FILE",
    )
    _device_arg(c)
    _limits_args(c)
    return parser


def _grade(args: argparse.Namespace) -> int:
    from autograder.pipeline import grading, intake

    found = _resolve_device(args)
    if found is None:
        return 2
    opts = grading.Options(
        submissions=args.submissions,
        assignment=args.assignment,
        jobs=max(1, args.jobs),
        db_url=args.db or os.environ.get("TRAINLAB_DB_URL"),
        students=args.student,
        work=args.work or cfg.grading_dir(),
        force=args.force,
        limits=_limits(args),
        progress=not args.no_progress,
        sandbox=not args.no_sandbox,
        course=args.course,
        roster=args.roster,
        device=found.kind,
        device_name=found.name,
    )
    try:
        run = grading.grade_folder(opts)
    except (intake.IntakeError, ValueError, sandbox.SandboxUnavailable) as exc:
        print(f"error: {terminal(exc)}", file=sys.stderr)
        return 2
    if args.json:
        keep = ("graded", "cached", "errors", "jobs", "seconds", "problems", "work")
        keep += ("device",)
        out = {k: run.get(k) for k in keep}
        out["results"] = [
            {k: r.get(k) for k in ("student", "assignment", "score", "max_score")}
            for r in run["results"]
        ]
        print(json.dumps(out, indent=1))
    else:
        print(terminal(run["summary"]))
        print(f"feedback, grades.csv, grades.json, summary.md: {run['work']}")
    return 1 if run["errors"] or run.get("setup_problems") else 0


def _check(args: argparse.Namespace) -> int:
    from autograder.outputs import report
    from autograder.pipeline import grading

    if not args.notebook.is_file():
        print(f"error: {args.notebook} is not a file", file=sys.stderr)
        return 2
    found = _resolve_device(args)
    if found is None:
        return 2
    try:
        res = grading.check_notebook(
            args.notebook,
            assignment_name=args.assignment,
            limits=_limits(args),
            use_sandbox=not args.no_sandbox,
            device=found.kind,
            device_name=found.name,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"error: {terminal(exc)}", file=sys.stderr)
        return 2
    print(report.check_table(res))
    if res.get("isolation", {}).get("no_sandbox"):
        print("\nSandbox: " + sandbox.describe(res["isolation"]))
    if res.get("device"):
        print(f"\nGraded on {res['device']}.")
    print()
    print(report.classroom_line(res))
    if args.classroom:
        report.write_classroom_output(res, args.classroom)
    if args.json:
        lite = {
            k: v for k, v in res.items() if k not in ("feedback_html", "autograded")
        }
        args.json.write_text(json.dumps(lite, indent=1) + "\n")
    if res.get("status") == "unreadable":
        return 2
    return 0 if res["score"] >= res.get("auto_max_score", res["max_score"]) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "grade":
        return _grade(args)
    return _check(args)
