"""Who is in the class: the students found in the export, matched to the LMS's
roster (``--roster``) and the course file's ``students``.

A student found in the export is matched to a roster person by Canvas user
id, else by any id or name the two share (the student id, an SIS id, an
email, the full name, ``Last, First`` for ``First Last``, Canvas's
``lastfirst`` download name); a match must be unique. A person of the roster
or the course file that no student matches is *absent*: their submissions
are marked missing (never 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autograder.outputs.lms import Person, Roster
from autograder.pipeline import identity


def _keys(*names: str) -> set[str]:
    """The forms a name is compared in: case-folded, and letters only."""
    out = set()
    for n in names:
        if not n:
            continue
        n = identity.normalize(n).casefold().strip()
        out.add(n)
        if "," in n:  # "doe, jane" -> "jane doe"
            last, _, first = n.partition(",")
            out.add(f"{first.strip()} {last.strip()}")
        letters = re.sub(r"[\W_]+", "", n)
        if letters:
            out.add(letters)
            parts = n.split()
            if len(parts) > 1:  # Canvas download names: last name first
                out.add(re.sub(r"[\W_]+", "", parts[-1] + "".join(parts[:-1])))
    return out


def _student_keys(st: identity.Student) -> set[str]:
    return _keys(st.id, st.display_name)


def _person_keys(p: Person) -> set[str]:
    return _keys(*p.names())


@dataclass
class ClassList:
    """Everyone, as the LMS files and the missing marks need them.

    Attributes:
        person_of: student id -> the person (from the roster, or made from
            what the export says: a Canvas download's user id).
        absent: people of the roster or course file with no submission found.
        problems: what the instructor should know (ambiguous names).
    """

    person_of: dict[str, Person] = field(default_factory=dict)
    absent: list[Person] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def names(self, student: str) -> list[str]:
        """Every name the student may be known by (for extensions)."""
        p = self.person_of.get(student)
        return [student, *(p.names() if p else [])]


def _own_person(st: identity.Student) -> Person:
    canvas = st.key[0] == "canvas" if st.key else False
    return Person(name=st.display_name, canvas_id=st.lms_id if canvas else "")


def build(
    students: list[identity.Student], roster: Roster | None, expected: list[str]
) -> ClassList:
    """Match the students of the export to ``roster`` and ``expected`` names."""
    out = ClassList()
    people = list(roster.people) if roster else []
    people_keys = [_person_keys(p) for p in people]
    claimed: set[int] = set()
    for st in students:
        hits = []
        if st.key and st.key[0] == "canvas" and st.lms_id:
            hits = [i for i, p in enumerate(people) if p.canvas_id == st.lms_id]
        if not hits:
            mine = _student_keys(st)
            hits = [i for i, k in enumerate(people_keys) if mine & k]
        if len(hits) == 1 and hits[0] not in claimed:
            claimed.add(hits[0])
            out.person_of[st.id] = people[hits[0]]
            continue
        if len(hits) > 1:
            out.problems.append(
                f"roster: '{st.display_name}' ({st.id}) matches "
                f"{len(hits)} people of the roster; matched to none of them"
            )
        out.person_of[st.id] = _own_person(st)
    out.absent = [p for i, p in enumerate(people) if i not in claimed]
    known = [_person_keys(p) for p in [*out.person_of.values(), *out.absent]]
    known += [_student_keys(st) for st in students]
    for name in expected:
        if not any(_keys(name) & k for k in known):
            out.absent.append(Person(name=name))
            known.append(_keys(name))
    return out
