"""The bibliography labels each work as the text cites it, sorted by author and year.

The chapters cite author-year ("Bergstra and Bengio [2012]", "[Ioffe and
Szegedy, 2015]"); the bibliography's labels come from book/_ext/author_year_bib.py.
The label function is checked on its own, then every citation of the built
site against the label of the entry it links to.
"""

from __future__ import annotations

import html
import importlib.util
import re
import unicodedata
from pathlib import Path

import pytest

from tests.book.chapters import ROOT

database = pytest.importorskip("pybtex.database", reason="the book's tools (pybtex)")
Entry, Person = database.Entry, database.Person

pytestmark = pytest.mark.book


def _extension():
    path = ROOT / "book" / "_ext" / "author_year_bib.py"
    spec = importlib.util.spec_from_file_location("author_year_bib", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(key: str, authors: list[str], year: str) -> Entry:
    return Entry(
        "article",
        fields={"title": key, "year": year},
        persons={"author": [Person(a) for a in authors]},
    )


def test_labels_are_author_year_as_cited():
    ext = _extension()
    cases = {
        "Bengio, 2009": _entry("a", ["Bengio, Yoshua"], "2009"),
        "Bergstra and Bengio, 2012": _entry(
            "b", ["Bergstra, James", "Bengio, Yoshua"], "2012"
        ),
        "Ba et al., 2016": _entry(
            "c", ["Ba, Jimmy", "Kiros, Jamie", "Hinton, G."], "2016"
        ),
        "Krähenbühl et al., 2015": _entry(
            "d", ['Kr{\\"a}henb{\\"u}hl, Philipp', "Doersch, C.", "Darrell, T."], "2015"
        ),
        "van der Maaten and Hinton, 2008": _entry(
            "e", ["van der Maaten, Laurens", "Hinton, Geoffrey"], "2008"
        ),
    }
    for label, entry in cases.items():
        assert ext.author_year_label(entry) == label


def test_equal_labels_get_a_letter_after_the_year():
    ext = _extension()
    entries = [
        _entry("x", ["He, Kaiming", "Zhang, X.", "Ren, S."], "2015"),
        _entry("y", ["He, Kaiming", "Sun, J.", "Tang, X."], "2015"),
        _entry("z", ["He, Kaiming", "Zhang, X.", "Ren, S."], "2016"),
    ]
    labels = list(ext.AuthorYearLabelStyle().format_labels(entries))
    assert labels == ["He et al., 2015a", "He et al., 2015b", "He et al., 2016"]


def test_entries_sort_as_their_labels_read():
    ext = _extension()
    later = _entry("l98", ["LeCun, Yann", "Bottou, Leon", "Orr, G."], "1998")
    earlier = _entry("l91", ["LeCun, Yann", "Kanter, Ido", "Solla, S."], "1991")
    accented = _entry("k", ['Kr{\\"a}henb{\\"u}hl, P.', "D, C.", "E, T."], "2015")
    plain = _entry("z", ["Krizhevsky, Alex", "Sutskever, I.", "Hinton, G."], "2012")
    ordered = ext.AuthorYearSortingStyle().sort([later, plain, earlier, accented])
    assert [e.fields["title"] for e in ordered] == ["k", "z", "l91", "l98"]


CITATION = re.compile(r'<span class="bibtex-citation"[^>]*>(.*?)</span>', re.S)
LINK = re.compile(r'<a [^>]*href="bibliography\.html#([^"]+)"[^>]*>(.*?)</a>', re.S)
ENTRY = re.compile(
    r'<div class="citation" id="([^"]+)" role="doc-biblioentry">\s*'
    r'<span class="label"><span class="fn-bracket">\[</span>(.*?)'
    r'<span class="fn-bracket">\]</span>',
    re.S,
)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _sort_key(label: str) -> str:
    plain = unicodedata.normalize("NFKD", label)
    return "".join(c for c in plain if not unicodedata.combining(c)).lower()


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_every_citation_links_to_an_entry_labelled_as_cited(built_site: Path):
    source = (built_site / "book" / "bibliography.html").read_text()
    labels = {anchor: _text(label) for anchor, label in ENTRY.findall(source)}
    assert len(labels) >= 20, f"bibliography.html lists {len(labels)} entries"
    in_order = list(labels.values())
    assert in_order == sorted(in_order, key=_sort_key), (
        f"the bibliography is not sorted by author and year: {in_order}"
    )
    numbered = [label for label in in_order if re.fullmatch(r"\d+", label)]
    assert not numbered, f"numbered entries: {numbered}"

    checked, wrong = 0, []
    for page in sorted((built_site / "book").glob("*.html")):
        for span in CITATION.findall(page.read_text()):
            links = LINK.findall(span)
            author = _text(span.split("[", 1)[0])  # textual: "Wu and He [2018]"
            for anchor, text in links:
                cited = _text(text)
                if re.fullmatch(r"\d{4}[a-z]?", cited):
                    cited = f"{author}, {cited}"
                checked += 1
                if labels.get(anchor) != cited:
                    wrong.append(
                        f"{page.name}: cited {cited!r}, listed as "
                        f"{labels.get(anchor)!r}"
                    )
    assert checked >= 20, f"only {checked} citations found in the built pages"
    assert not wrong, "citations whose entry carries another label:\n" + "\n".join(
        wrong
    )
