"""Student ids: unique, stable, reversible, safe as folder names.

An id is the student's name (NFC-normalized) written with the characters
``A-Z a-z 0-9 _ . @ -`` as they are, a space as ``+`` and every other
character as ``~HH``, the hex of each of its UTF-8 bytes (a leading or
trailing ``.`` too, so no id is hidden or ``..``)::

    alice      -> alice            a b   -> a+b
    bob_smith  -> bob_smith        a_b   -> a_b
    张三       -> ~E5~BC~A0~E4~B8~89

Where the export carries an LMS id (a Canvas user id, a Moodle participant
id), it follows the name: ``smithjane_12345``. An id longer than
:data:`MAX_ID` keeps its start and ends with ``~h`` and 12 hex digits of a
hash of the whole name (never cut into another student's id); a collision that
remains (names that differ only in letter case, which a macOS or Windows disk
cannot tell apart, or only in Unicode form) gets ``~-2``, ``~-3``. The
encoder never writes ``~h`` or ``~-`` itself, so :func:`decode_id` gives the
name back from any id that is not shortened; ``roster.csv`` holds every
display name in full.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

#: the longest id before suffixes (nbgrader's gradebook allows 128)
MAX_ID = 100
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-")
_HASH_DIGITS = 12
_SUFFIX = re.compile(r"~-\d+$")
_SHORTENED = re.compile(rf"~h[0-9a-f]{{{_HASH_DIGITS}}}(?P<tail>_\d+)?$")
_TOKEN = re.compile(r"~[0-9A-F]{2}|\+|[A-Za-z0-9_.@-]")
#: what a spreadsheet would run as a formula (see outputs.sanitize.csv_cell)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
ROSTER_COLUMNS = ("id", "display_name", "lms_id", "source", "graded_as")


def normalize(name: str) -> str:
    """``name`` in Unicode normal form C (é as one code point, not e + accent)."""
    return unicodedata.normalize("NFC", name)


def _escape(ch: str) -> str:
    # surrogateescape: a file name that is not UTF-8 keeps its raw bytes
    return "".join(f"~{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))


def encode_id(name: str) -> str:
    """``name`` as an id, whole (see the module docstring); never empty.

    >>> encode_id("Jane Doe (2)")
    'Jane+Doe+~282~29'
    """
    name = normalize(name)
    out = []
    for i, ch in enumerate(name):
        edge = ch == "." and i in (0, len(name) - 1)
        if ch in _SAFE and not edge:
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.append(_escape(ch))
    return "".join(out) or "~"


def _shorten(encoded: str, room: int, whole: str) -> str:
    """The start of ``encoded`` (no ``~HH`` cut) and a hash of ``whole``."""
    digest = hashlib.sha256(whole.encode("utf-8", "surrogateescape")).hexdigest()
    keep = room - 2 - _HASH_DIGITS
    head = ""
    for token in _TOKEN.findall(encoded):
        if len(head) + len(token) > keep:
            break
        head += token
    return f"{head}~h{digest[:_HASH_DIGITS]}"


def student_id(name: str, lms_id: str = "") -> str:
    """The id of a student named ``name`` (with the LMS's id, if any).

    Args:
        name: the name as the export writes it (a folder name, Canvas's slug).
        lms_id: the LMS's own id of the student (digits), or ``""``.

    Returns:
        ``encode_id(name)``, then ``_<lms_id>``; shortened with a hash when
        longer than :data:`MAX_ID`.
    """
    tail = f"_{lms_id}" if lms_id else ""
    encoded = encode_id(name)
    if len(encoded) + len(tail) <= MAX_ID:
        return encoded + tail
    return _shorten(encoded, MAX_ID - len(tail), normalize(name) + tail) + tail


def _unescape(token: str) -> bytes:
    if token.startswith("~"):
        return bytes.fromhex(token[1:])
    return b" " if token == "+" else token.encode()


def decode_id(sid: str) -> str:
    """The name an id was made from (``name_lmsid`` where there is an LMS id).

    A shortened id gives the start of the name followed by ``…``; a ``~-N``
    suffix is dropped.

    Raises:
        ValueError: ``sid`` is not an id this module writes.
    """
    base = _SUFFIX.sub("", sid)
    shortened = _SHORTENED.search(base)
    tail = ""
    if shortened:
        base, tail = base[: shortened.start()], shortened["tail"] or ""
    if base == "~":
        return ""
    tokens = _TOKEN.findall(base)
    if "".join(tokens) != base:
        raise ValueError(f"{sid!r} is not a student id written by the grader")
    raw = b"".join(_unescape(t) for t in tokens)
    name = raw.decode("utf-8", "surrogateescape")
    return f"{name}…{tail}" if shortened else name


@dataclass
class Student:
    """Who a set of submitted files belongs to.

    Attributes:
        key: what tells this student apart in the export (layout, name, LMS id).
        id: the student id (folder name, gradebook id).
        display_name: the name as the export writes it (NFC).
        lms_id: the LMS's id of the student, or ``""``.
        sources: ``(shown path, graded as)`` of every file found
            (``graded as`` is the assignment, or ``""`` when not graded).
    """

    key: tuple[str, ...]
    id: str
    display_name: str
    lms_id: str = ""
    sources: list[tuple[str, str]] = field(default_factory=list)


def make_unique(students: list[Student]) -> dict[str, str]:
    """Give every student an id of their own (``~-2`` on a collision).

    Ids that differ only in letter case collide too: a macOS or Windows disk
    would put their feedback in one folder. The order is that of the ids and
    keys, so the same export gives the same ids on every run.

    Returns:
        ``new id -> message for the instructor``, for each id that was changed.
    """
    groups: dict[str, list[Student]] = {}
    for s in sorted(students, key=lambda s: (s.id, s.key)):
        groups.setdefault(s.id.lower(), []).append(s)
    messages = {}
    for group in groups.values():
        first = group[0]
        for n, s in enumerate(group[1:], start=2):
            base, s.id = s.id, f"{s.id}~-{n}"
            messages[s.id] = (
                f"'{s.display_name}' and '{first.display_name}' would share the "
                f"student id '{base}' (a disk that ignores letter case, or "
                f"Unicode form, cannot tell them apart); '{s.display_name}' "
                f"is graded as '{s.id}' (see roster.csv)"
            )
    return messages


def _cell(text: str) -> str:
    """A roster cell a spreadsheet shows as text; :func:`_uncell` undoes it."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _uncell(text: str) -> str:
    if text.startswith("'") and text[1:2] and text[1] in "".join(_FORMULA_START):
        return text[1:]
    return text


def write_roster(students: list[Student], path: Path) -> None:
    """Write (or update) ``roster.csv``: one row per file of every student.

    Rows of students not in ``students`` (graded by an earlier run) are kept.
    """
    kept = [r for r in read_roster(path) if r["id"] not in {s.id for s in students}]
    rows = kept + [
        {
            "id": s.id,
            "display_name": s.display_name,
            "lms_id": s.lms_id,
            "source": src,
            "graded_as": graded,
        }
        for s in students
        for src, graded in (s.sources or [("", "")])
    ]
    rows.sort(key=lambda r: (r["id"], r["source"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.writer(f)
        writer.writerow(ROSTER_COLUMNS)
        for r in rows:
            writer.writerow([_cell(r[c]) for c in ROSTER_COLUMNS])
    os.replace(tmp, path)


def read_roster(path: Path) -> list[dict[str, str]]:
    """The rows of a ``roster.csv`` (none when it does not exist)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    return [{c: _uncell(r.get(c) or "") for c in ROSTER_COLUMNS} for r in rows]
