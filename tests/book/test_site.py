"""The built book in headless chromium: math typeset, images load, nothing remote.

Every HTML page of the site is opened from a local server on 127.0.0.1. All
requests are routed; any whose host is not 127.0.0.1/localhost is recorded,
blocked, and fails the test with the list. Screenshots of two pages go to
test-output/book/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.book.chapters import TEACHING_PAGES, site_pages

pytestmark = [
    pytest.mark.book,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.xdist_group("book"),
]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SCREENSHOT_PAGES = {"book/initialization.html", "book/batchnorm.html"}
# raw TeX a reader must never see outside code: delimiters or a control word
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\(?:frac|sigma|sum|mathbb|partial)\b")

IMAGES_JS = """
async () => {
  const imgs = [...document.images];
  imgs.forEach((i) => { i.loading = 'eager'; });
  const done = (i) => new Promise((r) => {
    i.addEventListener('load', r);
    i.addEventListener('error', r);
  });
  await Promise.all(imgs.map((i) => (i.complete ? null : done(i))));
  return imgs.map((i) => ({src: i.currentSrc || i.src, w: i.naturalWidth}));
}
"""

MATH_JS = """
async () => {
  const nodes = [...document.querySelectorAll('.math')];
  if (nodes.length === 0) return {math: 0};
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 20000) return {math: nodes.length, loaded: false};
    await new Promise((r) => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  await document.fonts.ready;
  // display math wider than the text column is cut off (or scrolls)
  const wide = [...document.querySelectorAll('mjx-container[display="true"]')]
    .filter((c) => c.firstElementChild &&
      c.firstElementChild.getBoundingClientRect().width > c.clientWidth + 2)
    .map((c) => c.parentElement.textContent.slice(0, 60));
  return {
    math: nodes.length,
    loaded: true,
    untypeset: nodes.filter((n) => !n.querySelector('mjx-container')).length,
    errors: [...document.querySelectorAll('mjx-merror')].map((e) => e.textContent),
    wide: wide,
  };
}
"""

# visible text outside code, scripts and typeset math
TEXT_JS = """
() => {
  const skip = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'MJX-CONTAINER', 'TEXTAREA']);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let p = n.parentElement, hidden = false;
    while (p) {
      if (skip.has(p.tagName)) { hidden = true; break; }
      p = p.parentElement;
    }
    if (!hidden) out.push(n.textContent);
  }
  return out.join(' ');
}
"""


def test_index_redirects_to_the_introduction(browser, site_url: str):
    page = browser.new_page()
    try:
        page.goto(f"{site_url}/index.html")
        page.wait_for_url(f"{site_url}/book/intro.html", timeout=10_000)
    finally:
        page.close()


@pytest.mark.parametrize("page_path", site_pages())
def test_page_renders_offline(browser, site_url: str, page_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    remote: list[str] = []
    console_errors: list[str] = []
    bad_responses: list[str] = []

    def route(r):
        url = r.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and (
            parts.hostname not in LOCAL_HOSTS
        ):
            remote.append(url)
            r.abort()
        else:
            r.continue_()

    context.route("**/*", route)
    page = context.new_page()
    page.on(
        "console",
        lambda m: console_errors.append(m.text) if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
    page.on(
        "response",
        lambda r: (
            bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None
        ),
    )
    try:
        response = page.goto(f"{site_url}/{page_path}", wait_until="load")
        assert response is not None and response.ok, f"{page_path}: {response}"
        math = page.evaluate(MATH_JS)
        images = page.evaluate(IMAGES_JS)
        page.wait_for_load_state("networkidle")
        text = page.evaluate(TEXT_JS)
    finally:
        context.close()

    assert not remote, f"{page_path} requested addresses outside localhost: {remote}"
    assert not bad_responses, f"{page_path}: failed requests {bad_responses}"
    assert not console_errors, f"{page_path}: console errors {console_errors}"
    if math["math"]:
        assert math["loaded"], f"{page_path}: MathJax did not load"
        assert math["untypeset"] == 0, (
            f"{page_path}: {math['untypeset']} of {math['math']} math elements "
            "were not typeset by MathJax"
        )
        assert not math["errors"], f"{page_path}: TeX errors {math['errors']}"
        assert not math["wide"], (
            f"{page_path}: display math wider than the page (break it into "
            f"lines): {math['wide']}"
        )
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(text)})
    assert not raw, f"{page_path}: raw TeX left in the page text: {raw}"
    broken = [i["src"] for i in images if not i["w"]]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    docname = page_path.removesuffix(".html")
    if docname in TEACHING_PAGES:
        figures = [i for i in images if "/_images/" in i["src"]]
        assert figures, f"{page_path}: a chapter with no computed figure"
        assert math["math"], f"{page_path}: a chapter with no math"


@pytest.mark.parametrize("page_path", sorted(SCREENSHOT_PAGES))
def test_screenshot(browser, site_url: str, screenshot_dir: Path, page_path):
    """Full-page screenshots for a person to look at, once math and images are in."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{site_url}/{page_path}", wait_until="load")
        page.evaluate(MATH_JS)
        page.evaluate(IMAGES_JS)
        shot = screenshot_dir / (
            page_path.replace("/", "_").removesuffix(".html") + ".png"
        )
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert shot.stat().st_size > 50_000, f"{shot} looks empty"
