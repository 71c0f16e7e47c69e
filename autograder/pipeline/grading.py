"""A grading run: intake, the worker pool, the gradebook, the exports.

:func:`grade_folder` is ``python -m autograder grade``; :func:`check_notebook`
is ``python -m autograder check``. Both grade through the same worker
(:mod:`autograder.pipeline.worker`); only ``grade`` writes a gradebook.

Work folder layout (nbgrader's, under ``grading/`` unless ``--work``)::

    gradebook.db                        (SQLite, unless --db)
    submitted/<student>/<assignment>/<assignment>.ipynb
    autograded/<student>/<assignment>/<assignment>.ipynb
    feedback/<student>/<assignment>/<assignment>.html
    feedback/_static/mathjax/           (what the feedback pages load)
    feedback-source/<student>/<assignment>/<assignment>.ipynb  (what a page
                                        was drawn from; drawn again with hand grades)
    grades.csv  grades.json  summary.md  logs/
    report.html  report.json            (the class report)
    roster.csv                          (id, display name, LMS id, source files)
    canvas-grades.csv  moodle-grades.csv  (the LMSs' grade imports)
    course.yml                          (optional: due dates, extensions, penalty)

Every run reads the grades and comments written by hand in nbgrader's
formgrader (:mod:`autograder.pipeline.hand_grades`) into every output.

A rerun skips a submission whose content hash (the notebook, the assignment
source, the grader's code and limits) matches the stored one; ``--student``
regrades the named students whatever their hash; ``--force`` regrades all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.authoring import assignment as asg
from autograder.authoring import nbgrader_config as cfg
from autograder.outputs import class_report, feedback_pages, page, report
from autograder.pipeline import (
    classlist,
    hand_grades,
    identity,
    intake,
    late,
    lms_export,
)
from autograder.pipeline import course as course_file
from autograder.pipeline.device import device_note
from autograder.sandbox import isolation as sandbox

ROOT = cfg.ROOT


@dataclass
class Options:
    """The settings of one grading run (the command-line flags)."""

    submissions: Path
    assignment: str | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    db_url: str | None = None
    students: list[str] = field(default_factory=list)
    work: Path = field(default_factory=cfg.grading_dir)
    force: bool = False
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    progress: bool = True
    source_root: Path = asg.SOURCE
    #: False (--no-sandbox): no namespaces, no allow-list; the summary says so
    sandbox: bool = True
    #: the course file (default: course.yml in the work folder, if there)
    course: Path | None = None
    #: the LMS's roster export (--roster): a Canvas gradebook or Moodle CSV
    roster: Path | None = None
    #: where student functions run (--device, resolved): "cpu" or "cuda"
    device: str = "cpu"
    #: how summary and feedback name it ("cuda:0 (NVIDIA H200)")
    device_name: str = "cpu"


#: the environment variable that holds the course secret (else a file)
SECRET_ENV = "TRAINLAB_COURSE_SECRET"
SECRET_FILE = "course-secret"


def course_secret(work: Path, *, create: bool = True) -> bytes:
    """The course secret the check inputs are derived from.

    From ``$TRAINLAB_COURSE_SECRET`` when set, else from ``<work>/course-secret``,
    which is created (random, readable by its owner only) on first use. Keep
    it out of the repository and the students' reach: with it and a student id
    anyone can compute that student's check inputs.
    """
    value = os.environ.get(SECRET_ENV, "").strip()
    if value:
        return value.encode()
    path = work / SECRET_FILE
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text.encode()
    if not create:
        raise FileNotFoundError(f"no course secret: set {SECRET_ENV} or {path}")
    work.mkdir(mode=0o700, parents=True, exist_ok=True)  # students' work
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    print(
        f"created the course secret {path} (check inputs are derived from it; "
        f"keep it, or set {SECRET_ENV}, so that regrades give the same grades)",
        file=sys.stderr,
    )
    return path.read_text().strip().encode()


def code_version() -> str:
    """A hash of the grader's and the reference library's code."""
    h = hashlib.sha256()
    for folder in (ROOT / "autograder", ROOT / "src" / "trainlab"):
        for path in sorted(folder.rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    import nbgrader

    h.update(nbgrader.__version__.encode())
    return h.hexdigest()


def _policy(opts: Options, extra_hidden: list[Path]) -> dict:
    hide = [opts.source_root, opts.work, ROOT / ".git", *extra_hidden]
    # local database sockets (a gradebook server on this machine)
    hide += [Path(p) for p in ("/run/postgresql", "/var/run/postgresql", "/run/mysqld")]
    if opts.db_url and opts.db_url.startswith("sqlite:///"):
        hide.append(Path(opts.db_url.removeprefix("sqlite:///")).parent)
    needed = [ROOT, Path(sys.prefix), Path(sys.base_prefix)]
    hide = [
        str(p.resolve())
        for p in hide
        if p.exists()
        and not any(n.resolve().is_relative_to(p.resolve()) for n in needed)
    ]
    # one block of uids per grading run, so concurrent runs never share one
    uid = sandbox.BASE_UID + 16 * (os.getpid() % 256) if os.geteuid() == 0 else None
    policy = sandbox.course_policy(
        str(ROOT), hide=tuple(hide), uid=uid, device=opts.device
    )
    if not opts.sandbox:
        policy = sandbox.Policy(uid=uid, namespaces=False, devices=policy.devices)
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in policy.__dict__.items()
    }


def _require_sandbox(opts: Options, policy: dict) -> None:
    """Refuse to grade where the allow-list cannot be had (unless --no-sandbox).

    Raises:
        sandbox.SandboxUnavailable: with what to do about it.
    """
    pol = sandbox.Policy(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in policy.items()}
    )
    if opts.sandbox:
        sandbox.require_isolation(pol, opts.limits)
    if opts.device != "cpu":
        from autograder.pipeline import device

        device.require_in_sandbox(pol, opts.limits, opts.device)


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _copy_exchange_files(src: Path, dest: Path) -> None:
    """Put nbgrader's ``timestamp.txt`` and ``submission_secret.txt`` (where the
    submission has them: it came through the exchange) beside its feedback page,
    where nbgrader's ``release_feedback`` reads them to name the page in the
    exchange. Only small regular files are copied, never a link."""
    for name in intake.NBGRADER_FILES:
        f = src / name
        if f.is_file() and not f.is_symlink():
            if f.stat().st_size <= intake.NBGRADER_FILE_BYTES:
                _write(dest / name, f.read_bytes())


def _paths(work: Path, student: str, name: str) -> dict[str, Path]:
    return {
        "submitted": work / "submitted" / student / name / f"{name}.ipynb",
        "autograded": work / "autograded" / student / name / f"{name}.ipynb",
        "feedback": work / "feedback" / student / name / f"{name}.html",
        "feedback_source": feedback_pages.source_path(work, student, name),
    }


def _load_specs(names: list[str], root: Path) -> dict:
    loaded = {}
    for name in names:
        loaded[name] = asg.load(name, root)
    return loaded


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        file=sys.stderr,
        disable=not enabled or total == 0,
        unit="notebook",
        desc="grading",
        dynamic_ncols=True,
    )


def grade_folder(opts: Options) -> dict:
    """Grade every submission under ``opts.submissions``; returns run statistics.

    Raises:
        intake.IntakeError: the submissions cannot be read.
        ValueError: an unknown assignment.
    """
    from autograder.pipeline.pool import Pool

    start = time.monotonic()
    work = opts.work.resolve()
    work.mkdir(mode=0o700, parents=True, exist_ok=True)  # students' work
    _require_sandbox(opts, _policy(opts, [opts.submissions.resolve()]))
    # the workers start now: they import torch while the assignments load
    pool = Pool(max(1, opts.jobs), work / "logs", opts.device, opts.device_name)
    if opts.assignment:  # known now: the workers can warm up while we load
        pool.prepare(
            [opts.assignment],
            opts.source_root,
            opts.limits.to_dict(),
            _policy(opts, [opts.submissions.resolve()]),
            {opts.assignment: str(asg.source_path(opts.assignment, opts.source_root))},
        )
    try:
        return _grade_folder(opts, work, pool, start)
    finally:
        pool.close()


def _prefetch_plotting() -> None:
    """Import matplotlib for the class report while the workers grade.

    The import takes about a second; the grading process mostly waits for its
    workers meanwhile, so a thread does it then rather than after the last
    submission.
    """
    import threading

    def load() -> None:
        import contextlib

        with contextlib.suppress(Exception):
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401

    threading.Thread(target=load, name="prefetch-matplotlib", daemon=True).start()


def _grade_folder(opts: Options, work: Path, pool, start: float) -> dict:
    from autograder.outputs.gradebook import Book

    _prefetch_plotting()
    names = asg.available(opts.source_root)
    if opts.assignment and opts.assignment not in names:
        known = ", ".join(names) or "none"
        raise ValueError(f"unknown assignment {opts.assignment!r}; known: {known}")
    loaded = _load_specs(
        [opts.assignment] if opts.assignment else names, opts.source_root
    )
    specs = {n: s for n, (s, _) in loaded.items()}
    found = intake.gather(
        opts.submissions, specs, assignment=opts.assignment, work=work
    )
    subs, problems = found.submissions, found.problems
    identity.write_roster(found.students, work / "roster.csv")
    course, roster, setup = _course_and_roster(opts, work)
    for p in setup:
        print(f"error: {p}", file=sys.stderr)
    problems += setup
    classes = classlist.build(found.students, roster, course.students)
    problems += classes.problems
    if opts.students:
        subs, missing = intake.select(subs, opts.students)
        problems += [f"--student {m}: no submission found" for m in missing]
    db_url = opts.db_url or f"sqlite:///{work / 'gradebook.db'}"
    secret = course_secret(work)
    # the secret decides the check inputs, so it is part of what a grade is of
    version = code_version() + hashlib.sha256(b"secret:" + secret).hexdigest()
    # a grade says where it was computed: another device grades again
    limits_key = json.dumps(opts.limits.to_dict(), sort_keys=True) + opts.device
    run = {"graded": 0, "cached": 0, "errors": 0, "jobs": 0, "isolation": {}}
    run["device"] = device_note(opts.device, opts.device_name)
    if not opts.sandbox:
        run["isolation"] = {"no_sandbox": True}
    with Book(db_url, cfg.COURSE_ID) as book:
        for name in sorted({s.assignment for s in subs}):
            book.register(*loaded[name])
            book.set_duedate(name, course.due.get(name))
        todo = []
        for sub in subs:
            lt = _late(sub, specs[sub.assignment], course, classes)
            sub.late = lt
            late_key = f"{lt.due}|{lt.penalty}"
            digest = _digest(sub, specs[sub.assignment], version, limits_key + late_key)
            paths = _paths(work, sub.student, sub.assignment)
            fresh = (
                not opts.force
                and not opts.students
                and book.digest(sub.assignment, sub.student) == digest
                and paths["feedback"].exists()
            )
            if fresh:
                run["cached"] += 1
                continue
            todo.append((sub, digest, paths))
        if todo:
            wanted = sorted({s.assignment for s, _, _ in todo})
            pool.configure(
                {k: specs[k].to_dict() for k in wanted},
                opts.limits.to_dict(),
                _policy(opts, [opts.submissions.resolve()]),
                sources={k: str(asg.source_path(k, opts.source_root)) for k in wanted},
                n=min(pool.n, len(todo)),
            )
            run["jobs"] = pool.n
            jobs = [
                (str(i), _job(sub, opts, secret)) for i, (sub, _, _) in enumerate(todo)
            ]
            bar = _progress(len(todo), opts.progress)
            for res in pool.run(jobs):
                sub, digest, paths = todo[int(res["key"])]
                _finish(book, res, sub, digest, paths, run)
                bar.update(1)
            bar.close()
        page.install_static(work / "feedback")  # the MathJax the pages load
        book.export_csv(work / "grades.csv")
        hand = hand_grades.collect(book.hand_entries())
        results = [hand_grades.apply(r, hand) for r in book.results()]
        scores = book.scores()
    for r in results:  # the gradebook's own total (manual grades included)
        key = (r["assignment"], r["student"])
        r["gradebook_score"] = r["score"] if key in hand.rejected else scores.get(key)
    hand_grades.fix_csv(work / "grades.csv", results, hand.rejected)
    problems += feedback_pages.refresh(work, results, hand.digest)
    for p in hand.problems:
        print(f"error: {p}", file=sys.stderr)
    problems += hand.problems
    setup += hand.problems  # the exit status says that something needs fixing
    tops = {r["assignment"]: float(r.get("max_score", 0.0)) for r in results}
    for name in _run_assignments(opts, subs, course, names):
        tops.setdefault(name, float(specs[name].max_score))
    # a submission the grader failed on is not missing: it is listed as not
    # graded (summary, class report) and left out of the exports until a regrade
    absent = lms_export.missing(results + run.get("failed", []), classes, tops)
    problems += lms_export.write(
        work, results + absent, classes, tops, _canvas_ids(course, roster)
    )
    report.grades_json(results + absent, work / "grades.json")
    page_path = class_report.write(
        results, work, problems=problems, failed=run.get("failed", [])
    )
    print(f"class report: {page_path}", file=sys.stderr)
    run["seconds"] = time.monotonic() - start
    text = report.summary_markdown(results + absent, run=run, problems=problems)
    report.write_summary(text, work / "summary.md")
    run.update(results=results, problems=problems, summary=text, work=str(work))
    run.update(missing=absent, setup_problems=setup)
    return run


def _course_and_roster(opts: Options, work: Path) -> tuple:
    """The course file and the LMS roster; an unusable one is a problem, and
    grading goes on without it."""
    from autograder.outputs import lms

    problems: list[str] = []
    course = course_file.Course()
    path = opts.course or work / course_file.FILE_NAME
    if opts.course or path.is_file():
        try:
            course, found = course_file.load(path)
            problems += [f"course file: {p}" for p in found]
        except course_file.CourseError as exc:
            problems.append(f"course file: {exc}; graded without due dates")
    roster = None
    if opts.roster:
        try:
            roster = lms.read_roster(opts.roster)
        except lms.RosterError as exc:
            problems.append(f"roster: {exc}; graded without it")
    return course, roster, problems


def _run_assignments(opts: Options, subs: list, course, names: list[str]) -> list:
    """The assignments of this run: ``--assignment``, else those submitted
    and those with a due date in the course file."""
    if opts.assignment:
        return [opts.assignment]
    return sorted({s.assignment for s in subs} | (set(course.due) & set(names)))


def _canvas_ids(course, roster) -> dict[str, str]:
    """Canvas's assignment ids: from the roster export, then the course file."""
    ids = dict(roster.assignments) if roster else {}
    return ids | course.canvas_ids


def _late(sub, spec, course, classes) -> late.Late:
    """How late ``sub`` is, by the course file (:mod:`.late`)."""
    due = course.due_for(sub.assignment, classes.names(sub.student))
    when, source = late.submitted_at(sub.path, sub.timestamp)
    return late.assess(
        due=due,
        submitted=when,
        source=source,
        rule=course.rule_for(sub.assignment),
        max_score=float(spec.max_score),
        marked_late=late.canvas_marked_late(sub.path, sub.file),
    )


def _digest(sub, spec, version: str, limits_key: str) -> str:
    """The content hash of a submission: notebook, assignment, grader, limits."""
    h = hashlib.sha256()
    for part in (
        sub.path.read_bytes(),
        spec.digest.encode(),
        version.encode(),
        limits_key.encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _job(sub, opts: Options, secret: bytes | None = None) -> dict:
    from autograder.checks.seeds import student_key

    key = student_key(secret, sub.student).hex() if secret else None
    return {
        "seed_key": key,  # the student's check inputs; never the secret itself
        "student": sub.student,
        "assignment": sub.assignment,
        "path": str(sub.path),
        "file": sub.file,
        "notes": sub.notes,
        "source": str(asg.source_path(sub.assignment, opts.source_root)),
        # the feedback page shows it (capped at the raw score there)
        "late_penalty": sub.late.penalty if sub.late else 0.0,
    }


def _finish(book, res: dict, sub, digest: str, paths: dict, run: dict) -> None:
    """Write the files of one result, then its gradebook transaction."""
    if res.get("status") == "grader-error":
        run["errors"] += 1
        res.setdefault("cells", {})
        res.update(score=0.0, max_score=0.0, messages=[res.get("error", "")])
        res["student"], res["assignment"] = sub.student, sub.assignment
        run.setdefault("failed", []).append(res)
        return
    run["graded"] += 1
    if not run["isolation"] and res.get("isolation"):
        run["isolation"] = res["isolation"]
    if res.get("device"):
        run["device"] = res["device"]
    _write(paths["submitted"], sub.path.read_bytes())
    if res.get("autograded"):
        _write(paths["autograded"], res["autograded"])
    _write(paths["feedback"], res["feedback_html"])
    _copy_exchange_files(sub.path.parent, paths["feedback"].parent)
    feedback_pages.keep(paths["feedback_source"], res.get("feedback_notebook"))
    bulky = ("feedback_html", "feedback_notebook", "autograded", "key")
    lite = {k: v for k, v in res.items() if k not in bulky}
    lt = sub.late or late.Late(None, None, "unknown", 0.0, 0.0, 0.0)
    raw = float(lite.get("score") or 0.0)
    applied, final = late.final(raw, lt.penalty)
    lite.update(raw_score=raw, late_penalty=applied, score=final, late=lt.to_dict())
    lite["messages"] = list(lite.get("messages", [])) + list(lt.notes)
    book.record(
        lite,
        digest,
        timestamp=_naive(lt.submitted) or _timestamp(sub.timestamp),
        due=_naive(lt.due),
    )


def _naive(when):
    """A UTC time as nbgrader stores it (naive, UTC); None stays None."""
    return when.astimezone(late.UTC).replace(tzinfo=None) if when else None


def _timestamp(text: str | None):
    if not text:
        return None
    try:
        from nbgrader.utils import parse_utc

        return parse_utc(text)
    except Exception:  # noqa: BLE001 - an unreadable timestamp is ignored
        return None


def _assignment_of(path: Path, names: list[str], source_root: Path) -> str:
    """The assignment a notebook belongs to: by its file name, else its cells.

    Raises:
        ValueError: neither tells; the message lists the known assignments.
    """
    if path.stem in names:
        return path.stem
    loaded = _load_specs(names, source_root)
    subs, _ = intake._from_files(
        "student",
        [(path, path.name)],
        {n: s for n, (s, _) in loaded.items()},
        None,
    )
    if not subs:
        raise ValueError(
            f"{path.name} is not a notebook of a known assignment (neither its "
            "name nor its cells match one). The assignments are: "
            f"{', '.join(names)}. Pass one with --assignment NAME."
        )
    return subs[0].assignment


def check_notebook(
    path: Path,
    *,
    assignment_name: str | None = None,
    limits: sandbox.Limits | None = None,
    source_root: Path = asg.SOURCE,
    use_sandbox: bool = True,
    device: str = "cpu",
    device_name: str = "",
) -> dict:
    """Grade one notebook without a gradebook (``python -m autograder check``).

    ``device``: where the student's functions run (``"cpu"``, ``"cuda"``),
    already resolved (:func:`autograder.pipeline.device.resolve`).

    Raises:
        ValueError: the assignment cannot be told from the notebook.
        sandbox.SandboxUnavailable: no allow-list here and ``use_sandbox``.
    """
    from autograder.pipeline.pool import Pool

    limits = limits or sandbox.Limits()
    names = asg.available(source_root)
    if not names:
        raise ValueError(
            f"no assignments found in {source_root}: this install of the course "
            "has no assignment data; reinstall it with its student extra "
            '(pip install "trainlab[student]", see the README)'
        )
    if assignment_name is None:
        assignment_name = _assignment_of(path, names, source_root)
    if assignment_name not in names:
        raise ValueError(
            f"unknown assignment {assignment_name!r}; the assignments are: "
            f"{', '.join(names)}"
        )
    spec, _ = asg.load(assignment_name, source_root)
    nb, why = intake.read_notebook(path, limits.notebook_mb)
    if nb is None:  # nothing to run: no need for a worker
        return {
            "student": "student",
            "assignment": assignment_name,
            "status": "unreadable",
            "score": 0.0,
            "max_score": spec.max_score,
            "messages": [why],
            "cells": {
                gid: {"score": 0.0, "max_score": p, "problems": "not graded"}
                for gid, p in spec.points.items()
            },
        }
    work = Path(tempfile.mkdtemp(prefix="autograder-check-"))
    try:
        opts = Options(
            submissions=path,
            work=work,
            source_root=source_root,
            limits=limits,
            sandbox=use_sandbox,
            device=device,
            device_name=device_name or device,
        )
        policy = _policy(opts, [path.resolve().parent])
        _require_sandbox(opts, policy)
        job = {
            "student": "student",
            "assignment": assignment_name,
            "path": str(path),
            "file": path.name,
            "notes": [],
            "source": str(asg.source_path(assignment_name, source_root)),
        }
        with Pool(1, work / "logs", opts.device, opts.device_name) as pool:
            pool.configure(
                {assignment_name: spec.to_dict()},
                limits.to_dict(),
                policy,
                sources={assignment_name: job["source"]},
            )
            (res,) = list(pool.run([("0", job)]))
        if res.get("status") == "grader-error":
            raise RuntimeError(f"the grader failed:\n{res.get('error')}")
        res.pop("feedback_notebook", None)  # kept only by `grade`
        if not use_sandbox:
            res["isolation"] = {"no_sandbox": True}
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)
