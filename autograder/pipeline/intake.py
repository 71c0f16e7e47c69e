"""Find the submissions in a folder or in the zip an LMS exports.

Layouts understood:

- one folder per student: ``alice/batchnorm.ipynb``, or nbgrader's
  ``alice/batchnorm/batchnorm.ipynb`` (any depth; checkpoints ignored);
- a flat folder of Canvas downloads, ``<name>_<userid>_<submissionid>_<file>``
  (``<name>_LATE_<userid>_...`` for late ones; Canvas adds ``-1``, ``-2`` to
  resubmitted file names): the student id is ``<name>``;
- a ``.zip`` of either, possibly inside one top folder. Archives are unpacked
  with checks: no absolute paths, no ``..``, no links, size and count limits.

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
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

CANVAS = re.compile(
    r"^(?P<name>[^_/]+?)(?:_LATE)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$"
)
_RESUBMIT = re.compile(r"-\d+(?=\.ipynb$)")
_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")
#: limits on an uploaded archive
MAX_ARCHIVE_BYTES = 2 * 1024**3
MAX_ARCHIVE_FILES = 20000


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
    """

    student: str
    assignment: str
    path: Path
    file: str
    notes: list[str] = field(default_factory=list)
    timestamp: str | None = None


def safe_id(name: str) -> str:
    """A student id made of letters, digits and ``_.@-`` (others become ``_``)."""
    s = _SAFE.sub("_", name.strip()).strip(".") or "student"
    return s[:100]


def unpack(archive: Path, dest_root: Path) -> Path:
    """Safely extract ``archive`` under ``dest_root``; returns the folder.

    Raises:
        IntakeError: not a zip, or an unsafe or oversized member.
    """
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    dest = dest_root / digest
    if (dest / ".complete").exists():
        return dest
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise IntakeError(f"{archive} is not a zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_FILES:
            raise IntakeError(
                f"{archive} holds {len(infos)} files; the limit is {MAX_ARCHIVE_FILES}"
            )
        if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
            raise IntakeError(f"{archive} unpacks to more than 2 GB")
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                raise IntakeError(f"unsafe path in {archive}: {info.filename!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise IntakeError(f"{archive} contains a link: {info.filename!r}")
            target = dest.joinpath(*parts) if parts else dest
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                out.write(src.read())
    (dest / ".complete").touch()
    return dest


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
            if not f.endswith(".ipynb") and f not in ("timestamp.txt", ".DS_Store"):
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
    for candidate in (folder / "timestamp.txt", folder.parent / "timestamp.txt"):
        if candidate.is_file():
            return candidate.read_text(errors="replace").strip()[:64] or None
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


def collect(
    src: Path, specs: dict, *, assignment: str | None, work: Path
) -> tuple[list[Submission], list[str]]:
    """Every submission under ``src`` (a folder or a zip); and intake problems.

    Args:
        src: the submissions folder or archive.
        specs: the assignments (``name -> Assignment``) to match against.
        assignment: only this assignment (``--assignment``), or None for all.
        work: the working folder (archives are unpacked under ``work/intake``).

    Raises:
        IntakeError: ``src`` does not exist or cannot be unpacked.
    """
    if not src.exists():
        raise IntakeError(f"{src} does not exist")
    if src.is_file():
        src = unpack(src, work / "intake")
    entries = [p for p in src.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file() and p.suffix == ".ipynb"]
    # a zip wrapped in one top folder that is not itself a student folder
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
            src, dirs = dirs[0], [p for p in inner if p.is_dir()]
            files = [p for p in inner if p.is_file() and p.suffix == ".ipynb"]
    subs: list[Submission] = []
    problems: list[str] = []
    by_student: dict[str, list[tuple[Path, str]]] = {}
    for f in files:
        m = CANVAS.match(f.name)
        if m:
            by_student.setdefault(safe_id(m["name"]), []).append((f, m["file"]))
        else:
            problems.append(
                f"'{f.name}' is not in a student folder and has no "
                "Canvas-style name; skipped"
            )
    extras: dict[str, list[str]] = {}
    for d in sorted(dirs):
        found = [(p, p.name) for p in _notebooks(d)]
        if not found:
            problems.append(f"{d.name}: no notebook found")
            continue
        by_student.setdefault(safe_id(d.name), []).extend(found)
        extras[safe_id(d.name)] = _other_files(d)
    targets = {assignment: specs[assignment]} if assignment else specs
    for student, found in sorted(by_student.items()):
        s, p = _from_files(student, found, targets, assignment)
        for sub in s:
            if extras.get(student):
                shown = ", ".join(extras[student][:8])
                sub.notes.append(
                    f"files other than notebooks were ignored (never run): {shown}"
                )
        subs += s
        problems += p
    return subs, problems


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
