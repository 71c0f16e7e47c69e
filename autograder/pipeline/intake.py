"""Find the submissions in a folder or in the zip an LMS exports.

Layouts understood:

- one folder per student: ``alice/batchnorm.ipynb``, or nbgrader's
  ``alice/batchnorm/batchnorm.ipynb`` (any depth; checkpoints ignored);
- Moodle's folders, ``Full Name_12345_assignsubmission_file_``: the student
  is the participant (``Full+Name_12345``), whatever the plugin's folder;
- a flat folder of Canvas downloads, ``<name>_<userid>_<submissionid>_<file>``
  (``<name>_LATE_<userid>_...`` for late ones; Canvas adds ``-1``, ``-2`` to
  resubmitted file names): the student id is ``<name>_<userid>``, so two
  Canvas users of one name stay two students;
- a ``.zip`` of any of these, possibly inside one top folder. A member that
  is unsafe (an absolute path, ``..``, a link, a device, an oversized file)
  is skipped, with a message naming it; the rest is extracted. Only an archive
  that cannot be read, or is over the size and count limits, is refused.

Student ids are unique, stable and reversible (:mod:`.identity`): ``alice``
stays ``alice``, ``a b`` is ``a+b``, ``张三`` is ``~E5~BC~A0~E4~B8~89``; every
student's files are listed in ``roster.csv`` by the ``grade`` command.

A notebook is matched to an assignment by its file name, else by the nbgrader
cell ids it shares with an assignment (a renamed file is still found; the
report says it was renamed). With ``--assignment`` a student's only notebook
is graded as that assignment even when it cannot be read (it then scores 0
with a clear message).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder.pipeline import identity

CANVAS = re.compile(
    r"^(?P<name>[^_/]+?)(?:_LATE)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$"
)
_RESUBMIT = re.compile(r"-\d+(?=\.ipynb$)")
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_[A-Za-z]+_?$")
#: limits on an uploaded archive (beyond them, the archive is refused)
MAX_ARCHIVE_BYTES = 2 * 1024**3
MAX_ARCHIVE_FILES = 20000
#: the largest member extracted (a bigger one is skipped)
MAX_MEMBER_BYTES = 256 * 1024**2


#: what nbgrader's exchange puts beside a submitted notebook: when it was
#: submitted, and the secret that names its feedback file in the exchange
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")
#: the most bytes of one of them that is read or copied
NBGRADER_FILE_BYTES = 4096


class IntakeError(ValueError):
    """The submissions folder or archive cannot be used; the message says why."""


@dataclass
class Submission:
    """One notebook to grade.

    Attributes:
        student: the student id (safe for paths and the gradebook).
        assignment: the assignment it belongs to.
        path: the notebook file.
        file: the file name as submitted.
        notes: what the report should say about how it was found.
        timestamp: when it was submitted, if known (nbgrader's timestamp.txt).
        display_name: the student's name as the export writes it.
        lms_id: the LMS's id of the student (Canvas, Moodle), or ``""``.
        late: how late it is (:class:`autograder.pipeline.late.Late`), once
            the grading run has read the course file.
    """

    student: str
    assignment: str
    path: Path
    file: str
    notes: list[str] = field(default_factory=list)
    timestamp: str | None = None
    display_name: str = ""
    lms_id: str = ""
    late: object | None = None


def safe_id(name: str) -> str:
    """The student id of a folder named ``name`` (see :mod:`.identity`)."""
    return identity.student_id(name)


def _unsafe(info: zipfile.ZipInfo, parts: list[str]) -> str | None:
    """Why one archive member must not be extracted, or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "it has an absolute path"
    if ".." in parts:
        return "its path leads out of the archive's folder (..)"
    if any("\x00" in p for p in parts):
        return "its name holds a NUL character"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "it is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "it is a device or other special file"
    if info.file_size > MAX_MEMBER_BYTES:
        return (
            f"it unpacks to {info.file_size / 2**20:.1f} MB, over the limit of "
            f"{MAX_MEMBER_BYTES / 2**20:.1f} MB for one file"
        )
    return None


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one (checked) member to ``target``, never more than it declares."""
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    # the member's time, as unzip keeps it: the submission time where the
    # export has no other (see autograder.pipeline.late)
    try:
        when = time.mktime((*info.date_time, 0, 0, -1))
        os.utime(target, (when, when))
    except (OverflowError, ValueError, OSError):
        pass


def _extract_all(zf: zipfile.ZipFile, archive: Path, dest: Path) -> list[str]:
    """Extract every safe member of ``zf``; a message for each one skipped."""
    problems = []
    written: set[tuple[str, ...]] = set()
    for info in zf.infolist():
        parts = [
            p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")
        ]
        why = _unsafe(info, parts)
        if why is None and not info.is_dir() and tuple(parts) in written:
            why = "the archive holds it twice; the first copy was kept"
        if why is None:
            try:
                _extract(zf, info, dest.joinpath(*parts) if parts else dest)
                written.add(tuple(parts))
                continue
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                why = f"it cannot be extracted ({type(exc).__name__}: {exc})"
        problems.append(
            f"{archive.name}: the member {info.filename!r} was skipped: {why}; "
            "the rest of the archive was extracted"
        )
    return problems


def unpack(archive: Path, dest_root: Path) -> tuple[Path, list[str]]:
    """Extract ``archive`` under ``dest_root``: the folder, and what was skipped.

    An unsafe member (an absolute path, ``..``, a link, a device, an oversized
    or unreadable file) is skipped with a message naming it; every other
    member is extracted. The same archive is extracted once (by its hash).

    Raises:
        IntakeError: not a zip, or more files or bytes than the limits.
    """
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    dest = dest_root / digest
    done = dest / ".complete"
    if done.exists():
        text = done.read_text(encoding="utf-8", errors="replace").strip()
        return dest, json.loads(text) if text.startswith("[") else []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IntakeError(
            f"{archive} is not a zip archive that can be read ({exc}); "
            "download it again from the LMS"
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_FILES:
            raise IntakeError(
                f"{archive} holds {len(infos)} files; the limit is {MAX_ARCHIVE_FILES}"
            )
        if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
            raise IntakeError(
                f"{archive} unpacks to more than "
                f"{MAX_ARCHIVE_BYTES // 2**30} GB; split the download"
            )
        if dest.exists():  # an extraction that was interrupted
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        problems = _extract_all(zf, archive, dest)
    done.write_text(json.dumps(problems, ensure_ascii=False) + "\n", encoding="utf-8")
    return dest, problems


def _notebooks(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in ("__MACOSX", "__pycache__")
        )
        for f in sorted(filenames):
            if f.endswith(".ipynb") and not f.startswith("."):
                found.append(Path(dirpath) / f)
    return found


def _other_files(folder: Path) -> list[str]:
    """Files in a student's folder that are not notebooks (never run)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in (".ipynb_checkpoints",)]
        for f in filenames:
            if not f.endswith(".ipynb") and f not in (*NBGRADER_FILES, ".DS_Store"):
                found.append(str((Path(dirpath) / f).relative_to(folder)))
    return sorted(found)


def _grade_ids(path: Path, limit: int = 64 * 1024 * 1024) -> set[str]:
    try:
        if path.stat().st_size > limit:
            return set()
        data = json.loads(path.read_bytes())
        return {
            c["metadata"]["nbgrader"]["grade_id"]
            for c in data.get("cells", [])
            if isinstance(c, dict)
            and isinstance(c.get("metadata", {}).get("nbgrader"), dict)
            and isinstance(c["metadata"]["nbgrader"].get("grade_id"), str)
        }
    except Exception:  # noqa: BLE001 - unreadable: no ids
        return set()


def _match(
    path: Path, shown: str, specs: dict, forced: str | None
) -> tuple[str | None, list[str]]:
    """The assignment of one notebook file, and notes."""
    stem = (
        _RESUBMIT.sub("", shown)[: -len(".ipynb")]
        if shown.endswith(".ipynb")
        else shown
    )
    if stem in specs and (forced is None or stem == forced):
        return stem, []
    ids = _grade_ids(path)
    best, overlap = None, 0
    for name, spec in specs.items():
        if forced is not None and name != forced:
            continue
        n = len(ids & set(spec.source_cells))
        if n > overlap:
            best, overlap = name, n
    if best is not None:
        return best, [f"submitted as '{shown}'; graded as {best}.ipynb (renamed file)"]
    return None, []


def _timestamp(folder: Path) -> str | None:
    """nbgrader's ``timestamp.txt`` beside a submission (its first 64 bytes:
    the file is the student's, and may be a link, a pipe or huge)."""
    for candidate in (folder / "timestamp.txt", folder.parent / "timestamp.txt"):
        if candidate.is_file() and not candidate.is_symlink():
            with open(candidate, "rb") as f:
                head = f.read(64)
            return head.decode(errors="replace").strip() or None
    return None


def _from_files(
    student: str, files: list[tuple[Path, str]], specs: dict, forced: str | None
) -> tuple[list[Submission], list[str]]:
    """Submissions of one student from ``(path, shown name)`` pairs."""
    chosen: dict[str, Submission] = {}
    unknown = []
    for path, shown in files:
        name, notes = _match(path, shown, specs, forced)
        if name is None:
            unknown.append((path, shown))
            continue
        sub = Submission(student, name, path, shown, notes, _timestamp(path.parent))
        old = chosen.get(name)
        if old is None or (old.notes and not notes):
            if old is not None:
                sub.notes.append(f"also submitted '{old.file}' (not graded)")
            chosen[name] = sub
        else:
            old.notes.append(f"also submitted '{shown}' (not graded)")
    problems = []
    if forced is not None and forced not in chosen and len(files) == 1:
        path, shown = files[0]
        chosen[forced] = Submission(
            student, forced, path, shown, [f"graded '{shown}' as {forced}.ipynb"]
        )
        unknown = []
    for _, shown in unknown:
        problems.append(f"{student}: '{shown}' is not a notebook of any assignment")
    return list(chosen.values()), problems


@dataclass
class Intake:
    """What :func:`gather` found.

    Attributes:
        submissions: the notebooks to grade.
        problems: what the instructor should know (skipped files, changed ids).
        students: every student found, with the files of each (the roster).
    """

    submissions: list[Submission]
    problems: list[str]
    students: list[identity.Student]


def _top_folder(src: Path, specs: dict) -> tuple[Path, list[Path], list[Path]]:
    """The folder that holds the submissions, its folders and its notebooks.

    A zip is often wrapped in one top folder that is not a student's folder.
    """
    entries = [p for p in src.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file() and p.suffix == ".ipynb"]
    if (
        len(dirs) == 1
        and not files
        and not (dirs[0] / f"{dirs[0].name}.ipynb").exists()
    ):
        inner = [p for p in dirs[0].iterdir() if not p.name.startswith(".")]
        names = {p.name for p in inner}
        if (
            inner
            and not names & set(specs)
            and not any(p.suffix == ".ipynb" for p in inner)
        ):
            top = dirs[0]
            dirs = [p for p in inner if p.is_dir()]
            files = [p for p in inner if p.is_file() and p.suffix == ".ipynb"]
            return top, dirs, files
    return src, dirs, files


def _student_of(name: str, kind: str, lms_id: str = "") -> identity.Student:
    """A student named ``name`` in the export (``kind``: folder, canvas, moodle)."""
    display = identity.normalize(name)
    return identity.Student(
        key=(kind, name, lms_id),
        id=identity.student_id(name, lms_id),
        display_name=display,
        lms_id=lms_id,
    )


def _folder_student(d: Path) -> identity.Student:
    """The student of a folder: Moodle's ``Name_12345_assignsubmission_file_``,
    else the folder's name."""
    m = MOODLE.match(d.name)
    if m:
        return _student_of(m["name"], "moodle", m["pid"])
    return _student_of(d.name, "folder")


def _find(
    dirs: list[Path], files: list[Path]
) -> tuple[dict[tuple, identity.Student], dict[tuple, list[tuple[Path, str]]], list]:
    """Group the notebooks by student: Canvas files, then student folders."""
    students: dict[tuple, identity.Student] = {}
    found: dict[tuple, list[tuple[Path, str]]] = {}
    problems: list[str] = []
    for f in sorted(files):
        m = CANVAS.match(f.name)
        if not m:
            problems.append(
                f"'{f.name}' is not in a student folder and has no "
                "Canvas-style name; skipped"
            )
            continue
        st = students.setdefault(
            ("canvas", m["name"], m["uid"]), _student_of(m["name"], "canvas", m["uid"])
        )
        found.setdefault(st.key, []).append((f, m["file"]))
    empty = []
    for d in sorted(dirs):
        st = _folder_student(d)
        st = students.setdefault(st.key, st)
        notebooks = [(p, p.name) for p in _notebooks(d)]
        found.setdefault(st.key, []).extend(notebooks)
        if not notebooks:
            empty.append((st.key, d.name))
    for key, name in empty:
        if not found[key]:
            problems.append(f"{name}: no notebook found")
    return students, found, problems


def gather(src: Path, specs: dict, *, assignment: str | None, work: Path) -> Intake:
    """Every submission under ``src`` (a folder or a zip), and every student.

    Args:
        src: the submissions folder or archive.
        specs: the assignments (``name -> Assignment``) to match against.
        assignment: only this assignment (``--assignment``), or None for all.
        work: the working folder (archives are unpacked under ``work/intake``).

    Raises:
        IntakeError: ``src`` does not exist, or is an archive that cannot be
            read at all.
    """
    if not src.exists():
        raise IntakeError(f"{src} does not exist")
    problems: list[str] = []
    label = f"{src.name}:" if src.is_file() else ""
    if src.is_file():
        src, problems = unpack(src, work / "intake")
        problems = list(problems)
    root = src
    src, dirs, files = _top_folder(src, specs)
    students, found, more = _find(dirs, files)
    problems += more
    renamed = identity.make_unique(list(students.values()))
    problems += list(renamed.values())
    targets = {assignment: specs[assignment]} if assignment else specs
    subs: list[Submission] = []
    for key, st in sorted(students.items(), key=lambda kv: kv[1].id):
        if not found[key]:
            continue
        s, p = _from_files(st.id, found[key], targets, assignment)
        graded = {sub.path: sub.assignment for sub in s}
        st.sources = [
            (_shown(path, root, label), graded.get(path, "")) for path, _ in found[key]
        ]
        extras = sorted({e for d in _dirs_of(found[key], src) for e in _other_files(d)})
        for sub in s:
            sub.display_name, sub.lms_id = st.display_name, st.lms_id
            if st.id in renamed:
                sub.notes.append(renamed[st.id])
            if extras:
                sub.notes.append(
                    "files other than notebooks were ignored (never run): "
                    + ", ".join(extras[:8])
                )
        subs += s
        problems += p
    kept = [st for key, st in students.items() if found[key]]
    if not kept:
        problems.append(unrecognized(src))
    return Intake(subs, problems, sorted(kept, key=lambda st: st.id))


def unrecognized(src: Path) -> str:
    """What to say when an export holds no notebook in a layout we know."""
    entries = sorted(p.name for p in src.iterdir() if not p.name.startswith("."))
    shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
    return (
        f"{src.name}: no notebook in a layout the grader knows; expected one "
        "folder per student (alice/batchnorm.ipynb), Canvas downloads "
        "(<name>_<userid>_<submissionid>_<file>.ipynb) or Moodle folders "
        f"(<Full Name>_<id>_assignsubmission_file_/); found: {shown or 'nothing'}"
    )


def _shown(path: Path, root: Path, label: str) -> str:
    """Where a file came from: its path in the folder (``export.zip:a/b`` in
    an archive)."""
    return label + path.relative_to(root).as_posix()


def _dirs_of(files: list[tuple[Path, str]], src: Path) -> list[Path]:
    """The student folders (directly under ``src``) that hold ``files``."""
    out = []
    for path, _ in files:
        rel = path.relative_to(src)
        if len(rel.parts) > 1 and src / rel.parts[0] not in out:
            out.append(src / rel.parts[0])
    return out


def collect(
    src: Path, specs: dict, *, assignment: str | None, work: Path
) -> tuple[list[Submission], list[str]]:
    """Every submission under ``src`` (a folder or a zip); and intake problems.

    See :func:`gather`, which also returns the students (for ``roster.csv``).
    """
    found = gather(src, specs, assignment=assignment, work=work)
    return found.submissions, found.problems


def select(subs: list[Submission], wanted: list[str]) -> tuple[list[Submission], list]:
    """The submissions of the students named in ``wanted`` (``--student``).

    A student is named by id (as in grades.csv), by the name their id is made
    of, or by display name. Returns the submissions and the names that match
    no one.
    """
    chosen, missing = [], []
    for w in wanted:
        match = [
            s
            for s in subs
            if w in (s.student, s.display_name)
            or identity.student_id(w) == s.student
            or identity.normalize(w) == s.display_name
        ]
        if not match:
            missing.append(w)
        chosen += [s for s in match if s not in chosen]
    return [s for s in subs if s in chosen], missing


def read_notebook(path, max_mb: float) -> tuple[object | None, str]:
    """The notebook at ``path`` (nbformat 4, validated), or None and why not.

    Any format nbformat reads (an nbformat 3 notebook, say) is upgraded to
    version 4, as plain :class:`nbformat.NotebookNode` objects, so that every
    later step (the static scans first) sees the same structure.
    """
    import nbformat

    size = os.path.getsize(path)
    if size > max_mb * 1024 * 1024:
        return None, (
            f"the file is {size / 2**20:.1f} MB, over the limit of {max_mb} MB; "
            "it was not graded"
        )
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        nb = nbformat.from_dict(nbformat.reads(text, as_version=4))
        nbformat.validate(nb)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except RecursionError:
        return None, "the file is not a valid notebook: nested too deeply"
    except Exception as exc:  # noqa: BLE001 - any malformed input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"the file is not a valid notebook ({type(exc).__name__}: {first})"
    return nb, ""
