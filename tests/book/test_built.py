"""The built site's files: every page accounted for, nothing remote, notebooks offered.

Checks of the HTML and CSS the build wrote, without a browser (see test_site.py
for the pages opened in chromium).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.book.chapters import CHAPTERS, notebook, site_pages

pytestmark = [pytest.mark.book, pytest.mark.slow, pytest.mark.xdist_group("book")]


def test_every_built_page_is_one_we_check(built_site: Path):
    built = {
        p.relative_to(built_site).as_posix()
        for p in built_site.rglob("*.html")
        if not p.relative_to(built_site).parts[0].startswith("_")
    } - {"index.html"}
    missing = sorted(set(site_pages()) - built)
    unchecked = sorted(built - set(site_pages()))
    assert not missing, f"pages of _toc.yml not in the built site: {missing}"
    assert not unchecked, (
        f"built pages the browser test (test_site.py) does not open: {unchecked}"
    )


REMOTE_ASSET = re.compile(
    r"""<(?:script|img|iframe|source)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:url\()?["']?(?:https?:)?//""",
    re.IGNORECASE,
)


def test_no_page_or_stylesheet_references_a_remote_asset(built_site: Path):
    # complements the browser check: also catches assets loaded only on demand
    offenders = []
    for path in sorted(built_site.rglob("*")):
        if path.suffix not in {".html", ".css"} or not path.is_file():
            continue
        for m in REMOTE_ASSET.finditer(path.read_text(errors="replace")):
            line = m.string[max(0, m.start() - 40) : m.end() + 60].replace("\n", " ")
            offenders.append(f"{path.relative_to(built_site)}: ...{line}...")
    assert not offenders, "remote assets referenced:\n" + "\n".join(offenders[:20])


def test_mathjax_is_served_from_the_site(built_site: Path):
    html = (built_site / "book" / "batchnorm.html").read_text()
    m = re.search(r'<script[^>]*src="([^"]*tex-chtml\.js[^"]*)"', html)
    assert m, "batchnorm.html loads no tex-chtml.js"
    assert m.group(1).startswith("../_static/mathjax/"), m.group(1)
    fonts = built_site / "_static" / "mathjax" / "output" / "chtml" / "fonts"
    assert len(list(fonts.glob("woff-v2/*.woff"))) >= 20


@pytest.mark.parametrize("docname", list(CHAPTERS))
def test_built_chapter_offers_its_notebook(built_site: Path, docname: str):
    name = CHAPTERS[docname]
    html = (built_site / f"{docname}.html").read_text()
    links = re.findall(r'href="(\.\./_downloads/[0-9a-f]+/([^"/]+\.ipynb))"', html)
    targets = [href for href, file in links if file == f"{name}.ipynb"]
    assert targets, f"{docname}.html has no download link to {name}.ipynb"
    served = (built_site / docname).parent / targets[0]
    assert served.read_bytes() == notebook(name).read_bytes(), (
        f"{served} differs from {notebook(name)}: rebuild the book"
    )
    launch = f"notebooks/{name}/{name}.ipynb"
    for host in ("mybinder.org", "colab.research.google.com"):
        assert re.search(rf'href="https://{re.escape(host)}/[^"]*{launch}', html), (
            f"{docname}.html: no {host} launch button opening {launch}"
        )


def test_printed_outputs_fit_the_page(built_site: Path):
    width = 83  # characters that fit an output block (book.css)
    too_long = []
    for page in sorted((built_site / "book").glob("*.html")):
        source = page.read_text()
        for block in re.findall(
            r'<div class="output[^"]*"><div class="highlight"><pre>(.*?)</pre>',
            source,
            re.S,
        ):
            text = html.unescape(re.sub(r"<[^>]+>", "", block))
            too_long += [
                f"{page.name}: {line[:60]}..."
                for line in text.splitlines()
                if len(line) > width
            ]
    assert not too_long, (
        f"printed lines longer than {width} characters get a scroll bar; "
        f"shorten what the cell prints: {too_long}"
    )
