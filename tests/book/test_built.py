"""The built site's files: every page accounted for, nothing remote, notebooks offered.

Checks of the HTML and CSS the build wrote, without a browser (see test_site.py
for the pages opened in chromium).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.book.chapters import CHAPTERS, TEACHING_PAGES, notebook, site_pages

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


IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
ATTR = r'\b{}\s*=\s*"([^"]*)"'
# alt text that only repeats a file name or a content hash (myst-nb's default)
FILE_LIKE = re.compile(
    r"(?:^|/)[0-9a-f]{16,}(?:\.\w+)?$|\.(?:png|jpe?g|gif|svg|webp)$", re.IGNORECASE
)


def _attr(tag: str, name: str) -> str | None:
    m = re.search(ATTR.format(name), tag)
    return html.unescape(m.group(1)) if m else None


def test_every_image_has_alt_text(built_site: Path):
    offenders = []
    for page in sorted(built_site.rglob("*.html")):
        for tag in IMG_TAG.findall(page.read_text(errors="replace")):
            alt = (_attr(tag, "alt") or "").strip()
            if not alt or FILE_LIKE.search(alt):
                src = _attr(tag, "src")
                offenders.append(f"{page.relative_to(built_site)}: {src} alt={alt!r}")
    assert not offenders, (
        "images without a description a screen reader can read out; give the "
        "figure cell `mystnb: image: alt:` metadata:\n" + "\n".join(offenders[:20])
    )


FIGURE = re.compile(r"<figure\b.*?</figure>", re.IGNORECASE | re.DOTALL)
CAPTION_NUMBER = re.compile(r'class="caption-number">\s*Fig\.\s*\d+')
CAPTION_TEXT = re.compile(r'class="caption-text">\s*([^<\s][^<]*)')


@pytest.mark.parametrize("docname", TEACHING_PAGES)
def test_every_computed_figure_is_numbered_with_a_caption(
    built_site: Path, docname: str
):
    source = (built_site / f"{docname}.html").read_text()
    computed = [t for t in IMG_TAG.findall(source) if "/_images/" in t]
    captioned = [
        t
        for block in FIGURE.findall(source)
        if CAPTION_NUMBER.search(block) and CAPTION_TEXT.search(block)
        for t in IMG_TAG.findall(block)
        if "/_images/" in t
    ]
    assert computed, f"{docname}.html has no computed figure"
    assert len(captioned) == len(computed), (
        f"{docname}.html: {len(computed) - len(captioned)} of {len(computed)} "
        "figures have no numbered caption; give the figure cell `mystnb: figure: "
        "name:` and `caption:` metadata"
    )
