"""Sphinx extension: the bibliography labels its entries as the text cites them.

The chapters cite author-year (``bibtex_reference_style: author_year``):
"Bergstra and Bengio [2012]", "[Ioffe and Szegedy, 2015]". pybtex's ``plain``
style would number the bibliography [1], [2], ... instead. This registers a
pybtex formatting style ``author_year`` (``bibtex_default_style`` in
``_config.yml``): ``plain``'s entry format, with labels made the way
sphinxcontrib-bibtex writes an author-year citation,

- one author: ``Last, 2012``; two: ``Last and Last, 2012``; three or more:
  ``Last et al., 2012`` (the first author's last name);
- two works with the same label get ``2015a``, ``2015b`` in sorted order;

and the entries sorted by that label (accents ignored), then by title. So the
entry a citation links to carries the citation's own words, and a reader finds
"LeCun et al., 1991" before "LeCun et al., 1998" (``plain`` sorts by every
author's name, and would put them the other way round).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pybtex.plugin
from pybtex.database import Entry, Person
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from sphinx.application import Sphinx

NAME = "author_year"


def last_name(person: Person) -> str:
    """A person's last name as plain text, von part included: "van der Maaten"."""
    parts = person.rich_prelast_names + person.rich_last_names
    return Text(" ").join(parts).render_as("text")


def author_year_label(entry: Entry) -> str:
    """``Last, 2012`` / ``Last and Last, 2012`` / ``Last et al., 2012``."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [last_name(p) for p in persons]
    if not names:
        who = Text.from_latex(entry.fields.get("title", entry.key)).render_as("text")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Author-year labels, made unique with a, b, ... after the year."""

    def format_labels(self, sorted_entries: Iterable[Entry]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year_label(e) for e in entries]
        counts = Counter(labels)
        seen: Counter[str] = Counter()
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[seen[label]]}"
                seen[label] += 1


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sorted as the labels read: first author, co-authors, year; then title."""

    def sorting_key(self, entry: Entry) -> tuple[str, str]:
        label = unicodedata.normalize("NFKD", author_year_label(entry))
        plain = "".join(c for c in label if not unicodedata.combining(c))
        title = Text.from_latex(entry.fields.get("title", "")).render_as("text")
        return plain.lower(), title.lower()


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` entries with author-year labels, in label order."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = AuthorYearSortingStyle


def setup(app: Sphinx) -> dict[str, Any]:
    # force: a second build in the same process registers the same class again
    pybtex.plugin.register_plugin(
        "pybtex.style.formatting", NAME, AuthorYearStyle, force=True
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
