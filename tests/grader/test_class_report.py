"""The class report of a small class with known mistakes, read in Chromium.

One ``grade`` run over eleven batchnorm submissions: three correct, three
whose forward adds eps outside the square root, two whose backward takes the
mean of dout for dbeta, two untouched release notebooks and one that is not
JSON. ``report.html`` is opened in headless Chromium (a laptop's 1280 px
window) and what it shows must be those counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from tests.grader.conftest import FAST, RELEASE, SOLUTION, need_batchnorm, run_grader
from tests.grader.corpus.build import _answers, _fill

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.xdist_group("grader-e2e"),
]

EPS = "eps is added outside the square root"
DBETA = "dbeta is a sum over the batch, not a mean"


def _with(sol: dict[str, str], key: str, old: str, new: str) -> dict[str, str]:
    assert old in sol[key], f"the solution's {key} changed: update this test"
    return dict(sol, **{key: sol[key].replace(old, new)})


def _class() -> dict[str, object]:
    release = nbformat.read(RELEASE, as_version=4)
    sol = _answers(nbformat.read(SOLUTION, as_version=4))
    eps = _with(
        sol,
        "batchnorm_forward",
        "std = torch.sqrt(var + eps)",
        "std = torch.sqrt(var) + eps",
    )
    dbeta = _with(
        sol, "batchnorm_backward", "dbeta = dout.sum(dim=0)", "dbeta = dout.mean(0)"
    )
    subs: dict[str, object] = {f"ok{i}": _fill(release, sol) for i in (1, 2, 3)}
    subs |= {f"eps{i}": _fill(release, eps) for i in (1, 2, 3)}
    subs |= {f"dbeta{i}": _fill(release, dbeta) for i in (1, 2)}
    subs |= {"stub1": release, "stub2": release, "broken": "{not json"}
    return subs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    need_batchnorm()
    root = tmp_path_factory.mktemp("class")
    for student, nb in _class().items():
        path = root / "submissions" / student / "batchnorm.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))
    work = root / "work"
    subs = str(root / "submissions")
    proc = run_grader(
        "grade", subs, "-a", "batchnorm", "--work", str(work), "-j", "2", *FAST
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return {"work": work, "stderr": proc.stderr}


def test_grade_writes_the_report_and_says_where(run):
    page = run["work"] / "report.html"
    assert page.is_file() and (run["work"] / "report.json").is_file()
    assert f"class report: {page}" in run["stderr"]
    (a,) = json.loads((run["work"] / "report.json").read_text())["assignments"]
    assert [(m["text"].split(";")[0], m["count"]) for m in a["misconceptions"]] == [
        (EPS, 3),
        (DBETA, 2),
    ]


#: what the page shows, read as a person would see it
READ = """() => {
  const text = (el) => (el ? el.textContent.trim() : null);
  const all = (el, sel) => [...el.querySelectorAll(sel)];
  const sec = document.querySelector("section.assignment");
  const stat = (k) => text(sec.querySelector(`[data-stat="${k}"]`));
  const img = sec.querySelector("img.histogram");
  const box = img.getBoundingClientRect();
  return {
    total: text(document.querySelector("#total")),
    submissions: text(sec.querySelector(".submissions")),
    n: stat("n"),
    min: stat("min"),
    max: stat("max"),
    image: [img.complete, img.naturalWidth, box.width],
    scroll: document.documentElement.scrollWidth,
    misconceptions: all(sec, "li.misconception").map((li) => [
      text(li.querySelector(".text")),
      text(li.querySelector(".count")),
      all(li, "a.student").map(text),
    ]),
    cells: Object.fromEntries(
      all(sec, "tr.cell").map((tr) => [text(tr.cells[0]), tr.cells[2].dataset.lost])
    ),
    flagged: all(sec, "li.flagged > .student").map(text),
    unreadable: text(sec.querySelector("ul.unreadable")),
    links: all(document, "a").map((a) => a.href),
  };
}"""


def _read(browser, path: Path) -> dict:
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.route("**/*", lambda r: (requests.append(r.request.url), r.continue_())[1])
        page.goto(path.as_uri())
        found = page.evaluate(READ)
    finally:
        page.close()
    found["requests"] = requests
    return found


def test_the_page_shows_the_class_as_it_is(run, browser):
    got = _read(browser, run["work"] / "report.html")
    assert got["total"] == got["submissions"] == got["n"] == "11"
    assert (got["min"], got["max"]) == ("0", "37")
    complete, natural, shown = got["image"]
    assert complete and natural > 0, "the histogram did not load"
    assert 600 <= shown <= 800 and got["scroll"] <= 1280  # fits a laptop's width
    (eps, n_eps, who_eps), (dbeta, n_dbeta, who_dbeta) = got["misconceptions"]
    assert eps.startswith(EPS) and n_eps == "3"
    assert who_eps == ["eps1", "eps2", "eps3"]
    assert dbeta == DBETA and n_dbeta == "2" and who_dbeta == ["dbeta1", "dbeta2"]
    # eps: 3 wrong + 2 stubs + 1 unreadable; dbeta: 2 + 2 + 1
    assert got["cells"]["test_batchnorm_forward"] == "6"
    assert got["cells"]["test_batchnorm_backward"] == "5"
    assert got["flagged"] == ["broken"]
    assert got["unreadable"].startswith("broken: the file is not a valid notebook")
    assert all(u.startswith("file://") for u in got["requests"]), got["requests"]
    assert len(got["requests"]) == 1  # the page itself: nothing else is loaded
    assert len(got["links"]) == 3 + 2 + 1 + 1
    for url in got["links"]:
        target = Path(unquote(urlparse(url).path))
        assert target.is_file(), url
        assert target.is_relative_to(run["work"] / "feedback"), url
