"""Every chapter is in _toc.yml and links to its assignment's student notebook."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.book.chapters import CHAPTERS, OTHER_PAGES, ROOT, all_docnames

pytestmark = pytest.mark.book

DOWNLOAD = re.compile(r"\{download\}`[^`<]*<([^>`]+)>`")


def front_matter(docname: str) -> dict:
    """The page's YAML front matter ({} when it has none)."""
    text = (ROOT / f"{docname}.md").read_text()
    m = re.match(r"---\n(.*?)\n---\n", text, re.S)
    return yaml.safe_load(m.group(1)) if m else {}


def test_toc_lists_every_page_once_and_nothing_else():
    names = all_docnames()
    assert len(names) == len(set(names)), f"a page is listed twice: {names}"
    assert set(names) == set(CHAPTERS) | set(OTHER_PAGES)
    assert names[0] == "book/intro"
    on_disk = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.md")}
    assert on_disk == set(names), f"pages not in _toc.yml: {on_disk - set(names)}"


@pytest.mark.parametrize("docname", list(CHAPTERS))
def test_chapter_links_to_its_assignment_notebook(docname):
    name = CHAPTERS[docname]
    meta = front_matter(docname)
    assert meta.get("assignment") == name, (
        f"{docname}.md front matter: assignment {meta.get('assignment')!r}, "
        f"expected {name!r} (the launch buttons open that notebook)"
    )
    assert "kernelspec" in meta, f"{docname}.md is not an executable MyST notebook"
    targets = DOWNLOAD.findall((ROOT / f"{docname}.md").read_text())
    expected = f"../notebooks/{name}/{name}.ipynb"
    assert expected in targets, (
        f"{docname}.md has no {{download}} link to {expected}; found {targets}"
    )


@pytest.mark.parametrize("docname", OTHER_PAGES)
def test_other_pages_name_no_assignment(docname):
    assert "assignment" not in front_matter(docname)


CODE_WIDTH = 83  # characters that fit a code cell of the built page (book.css)


def test_code_cells_fit_the_page():
    too_long = []
    for page in sorted((ROOT / "book").glob("*.md")):
        in_cell = False
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if line.startswith("```{code-cell}"):
                in_cell = True
            elif line.startswith("```"):
                in_cell = False
            elif in_cell and len(line) > CODE_WIDTH:
                too_long.append(f"{page.name}:{number} ({len(line)} characters)")
    assert not too_long, (
        f"code lines longer than {CODE_WIDTH} characters get a scroll bar in the "
        f"book; wrap them: {too_long}"
    )
