"""Figures a person can read, on a laptop and on a phone: the figure rule holds.

The rule is ``book/matplotlibrc`` (figure width, font sizes, dpi), read by
every page's kernel. Two kinds of check:

- the pages' sources do not undo it: no page sets the dpi, a figure size or a
  font size through ``rcParams``, draws a figure wider than the rule allows,
  or passes a font size smaller than the rule's smallest;
- on the built site, in chromium at a viewport of 390 px (a phone) and of
  1280 px (a laptop), every computed figure's smallest text is large enough.

The criterion, per image: its text was drawn at ``pt`` points (the rule's
smallest font size) at the image's own dpi (matplotlib writes it into the
PNG), so in the image it is ``pt * dpi / 72`` pixels tall; the page shows the
image at ``rendered / natural`` of its size. The text's height on the page,

    effective_px = pt * dpi / 72 * rendered_width / natural_width,

must reach ``MIN_TEXT_PX``: 12 CSS px at 1280 (three quarters of the body
text's 16 px) and 7.5 CSS px at 390 (half of it: a phone shows a figure at
about half size; 7.5 CSS px are 22 device pixels at a phone's pixel ratio of
3). A figure drawn wider than the rule, or at a lower dpi, fails at 390 first.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from tests.book.chapters import ROOT, all_docnames

pytestmark = pytest.mark.book

RULE = ROOT / "book" / "matplotlibrc"
MIN_TEXT_PX = {390: 7.5, 1280: 12.0}
# the rule's font sizes; the smallest of them is the text the criterion measures
FONT_KEYS = [
    "font.size",
    "axes.titlesize",
    "axes.labelsize",
    "xtick.labelsize",
    "ytick.labelsize",
    "legend.fontsize",
]
# room for a colorbar or a label sticking out of the rule's width
MAX_FIGURE_WIDTH_IN = 7.0
FONT_NAMES = {"xx-small", "x-small", "small", "smaller"}


def rule() -> dict:
    """The rule's settings, as matplotlib parses them."""
    return dict(matplotlib.rc_params_from_file(str(RULE), use_default_template=False))


def smallest_font_pt() -> float:
    settings = rule()
    sizes = [settings[k] for k in FONT_KEYS if k in settings]
    assert all(isinstance(s, float) for s in sizes), (
        f"{RULE.name}: give every font size in points, not a name: {sizes}"
    )
    return min(sizes)


def test_the_rule_sets_size_fonts_and_dpi():
    settings = rule()
    missing = [
        k for k in ["figure.figsize", "figure.dpi", *FONT_KEYS] if k not in settings
    ]
    assert not missing, f"{RULE} does not set {missing}"
    width = settings["figure.figsize"][0]
    assert width <= MAX_FIGURE_WIDTH_IN, f"{RULE}: default width {width} in"


def code_cells(page: Path) -> list[tuple[int, str]]:
    """``(first line number, source)`` of every code cell of a MyST page."""
    cells, current, start = [], None, 0
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.startswith("```{code-cell}"):
            current, start = [], number
        elif line.startswith("```") and current is not None:
            cells.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return cells


RC_OVERRIDE = re.compile(
    r"rcParams[^)\]]*?(?:figure\.dpi|figure\.figsize|savefig\.dpi|font\.size"
    r"|\w+\.\w*fontsize|\w+\.labelsize|\w+\.titlesize)"
    r"|\brc\(\s*[\"'](?:font|figure)[\"']|\bset_size_inches\b|\bdpi\s*=",
    re.S,
)
FIGSIZE = re.compile(r"figsize\s*=\s*\(\s*([0-9.]+)\s*,")
FONTSIZE = re.compile(
    r"\b(?:fontsize|labelsize|titlesize)\s*=\s*(?:([0-9.]+)|[\"']([a-z-]+)[\"'])"
)


@pytest.mark.parametrize("docname", all_docnames())
def test_pages_keep_the_figure_rule(docname: str):
    smallest = smallest_font_pt()
    offenders = []
    for line, source in code_cells(ROOT / f"{docname}.md"):
        where = f"{docname}.md, cell at line {line}"
        for m in RC_OVERRIDE.finditer(source):
            offenders.append(f"{where}: sets {m.group(0)[-40:]!r} (the rule does)")
        for m in FIGSIZE.finditer(source):
            if float(m.group(1)) > MAX_FIGURE_WIDTH_IN:
                offenders.append(
                    f"{where}: figsize width {m.group(1)} in > {MAX_FIGURE_WIDTH_IN}"
                )
        for m in FONTSIZE.finditer(source):
            number, name = m.groups()
            if (number and float(number) < smallest) or name in FONT_NAMES:
                offenders.append(
                    f"{where}: {m.group(0)} is smaller than the rule's {smallest} pt"
                )
    assert not offenders, (
        f"book/matplotlibrc sets figure size, fonts and dpi for every page; "
        f"drop these overrides: {offenders}"
    )


FIGURES_JS = """
async () => {
  const imgs = [...document.images].filter((i) => i.src.includes('/_images/'));
  imgs.forEach((i) => { i.loading = 'eager'; });
  await Promise.all(imgs.map((i) => i.complete ? null : new Promise((r) => {
    i.addEventListener('load', r);
    i.addEventListener('error', r);
  })));
  return imgs.map((i) => ({
    file: decodeURIComponent(new URL(i.src).pathname.split('/').pop()),
    natural: i.naturalWidth,
    rendered: i.getBoundingClientRect().width,
  }));
}
"""


def png_dpi(path: Path) -> float:
    """The dpi matplotlib drew the image at (its PNG pHYs chunk)."""
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        dpi = image.info.get("dpi")
    assert dpi, f"{path.name} records no dpi; was it drawn by matplotlib?"
    return float(dpi[0])


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.xdist_group("book")
@pytest.mark.parametrize("viewport", sorted(MIN_TEXT_PX))
@pytest.mark.parametrize("docname", all_docnames())
def test_figure_text_is_legible(
    browser, site_url: str, built_site: Path, docname: str, viewport: int
):
    pt = smallest_font_pt()
    page = browser.new_page(viewport={"width": viewport, "height": 900})
    try:
        page.goto(f"{site_url}/{docname}.html", wait_until="load")
        figures = page.evaluate(FIGURES_JS)
    finally:
        page.close()
    too_small = []
    for fig in figures:
        assert fig["natural"], f"{docname}: {fig['file']} did not load"
        dpi = png_dpi(built_site / "_images" / fig["file"])
        px = pt * dpi / 72 * fig["rendered"] / fig["natural"]
        if px < MIN_TEXT_PX[viewport]:
            too_small.append(
                f"{fig['file'][:12]}: {fig['natural']} px drawn at {dpi:.0f} dpi, "
                f"shown {fig['rendered']:.0f} px wide: {pt:g} pt text is "
                f"{px:.1f} px"
            )
    assert not too_small, (
        f"{docname} at {viewport} px: figures whose smallest text is under "
        f"{MIN_TEXT_PX[viewport]} CSS px (draw them at the width of "
        f"book/matplotlibrc, 2-3 panels per row): {too_small}"
    )
