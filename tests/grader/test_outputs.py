"""What a grading run shows people carries no student code.

One ``grade`` run over a small folder: a correct submission, one that prints
and displays HTML/JS and writes it in Markdown (with math), one whose scan
finding quotes Markdown and HTML, a Markdown bomb, a 50 MB notebook, an
nbformat 3 notebook, and students whose ids look like spreadsheet formulas.
The feedback page is opened in headless Chromium; ``check`` is run on a
notebook whose error message carries terminal escapes.
"""

from __future__ import annotations

import csv
import json

import nbformat
import pytest

from tests.grader.conftest import FAST, RELEASE, SOLUTION, need_batchnorm, run_grader
from tests.grader.corpus.build import _answers, _fill, _insert_after_setup

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]

PAYLOAD = (
    "<script>console.log('PWNED');alert(1)</script>"
    "<img src=x onerror=\"console.log('PWNED');alert(1)\">"
    '<iframe src="http://example.com/"></iframe>'
    '<img src="http://example.com/x.png">'
)
SHOW = f"""from IPython.display import HTML, Markdown, display
p = {PAYLOAD!r}
print(p)
display(HTML(p))
display(Markdown(p))
"""
QUOTED = 'p = "solutions ![x](http://evil/x.png) <img src=x> [a](http://evil)"\n'
ANSI = "\x1b[2J\x1b[32mPoints 37/37\x1b[0m"
IDS = ['=HYPERLINK("http://evil")', "+1", "-1", "@x"]


def _write(path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))


def _correct():
    release = nbformat.read(RELEASE, as_version=4)
    return _fill(release, _answers(nbformat.read(SOLUTION, as_version=4)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    need_batchnorm()
    root = tmp_path_factory.mktemp("outputs")
    subs = root / "submissions"
    correct = _correct()
    _write(subs / "correct" / "batchnorm.ipynb", correct)
    shown = _insert_after_setup(correct, SHOW)
    shown.cells.append(nbformat.v4.new_markdown_cell(f"Math: $x^2$\n\n{PAYLOAD}"))
    _write(subs / "shows_html" / "batchnorm.ipynb", shown)
    _write(subs / "quotes" / "batchnorm.ipynb", _insert_after_setup(correct, QUOTED))
    bomb = _insert_after_setup(correct, "x = 1")
    bomb.cells.append(nbformat.v4.new_markdown_cell("[" * 120_000))
    _write(subs / "bomb" / "batchnorm.ipynb", bomb)
    huge = nbformat.v4.new_notebook()
    huge.cells = [nbformat.v4.new_markdown_cell("x" * (50 * 2**20))]
    _write(subs / "huge" / "batchnorm.ipynb", huge)
    _write(
        subs / "old_format" / "batchnorm.ipynb",
        nbformat.writes(nbformat.convert(correct, 3), version=3),
    )
    release = nbformat.read(RELEASE, as_version=4)
    for sid in IDS:
        _write(subs / sid / "batchnorm.ipynb", release)
    work = root / "work"
    proc = run_grader(
        "grade", str(subs), "-a", "batchnorm", "--work", str(work), "-j", "2", *FAST
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads((work / "grades.json").read_text())
    return {
        "work": work,
        "results": {r["student"]: r for r in data["submissions"]},
        "stdout": proc.stdout,
    }


def test_the_good_submission_is_graded_beside_the_bombs(run):
    res = run["results"]
    assert res["correct"]["score"] == res["correct"]["max_score"] > 0
    bomb = res["bomb"]
    assert bomb["score"] == bomb["max_score"], bomb["messages"]
    assert any("rendering stopped" in m for m in bomb["messages"]), bomb["messages"]
    assert bomb["timing"]["feedback"] < 30, bomb["timing"]
    page = (
        run["work"] / "feedback" / "bomb" / "batchnorm" / "batchnorm.html"
    ).read_text()
    assert "rendering stopped" in page
    huge = res["huge"]
    assert huge["status"] == "unreadable"
    assert any("over the limit" in m for m in huge["messages"]), huge["messages"]
    summary = (run["work"] / "summary.md").read_text()
    assert "rendering stopped" in summary and "over the limit" in summary


def test_an_old_notebook_format_is_scanned_after_the_upgrade(run):
    old = run["results"]["old_format"]
    assert old["status"] == "graded"
    assert old["score"] == old["max_score"], old["messages"]
    assert not any("scan failed" in f for f in old["scan"]), old["scan"]
    summary = (run["work"] / "summary.md").read_text()
    assert len(summary) < 20_000, f"summary.md is {len(summary)} characters"
    assert "orig_nbformat" not in summary


def test_summary_shows_quoted_student_text_escaped(run):
    found = run["results"]["quotes"]["scan"]
    assert any("![x](http://evil/x.png)" in f for f in found), found
    summary = (run["work"] / "summary.md").read_text()
    for raw in ("![x](", "[a](http", "<img", "| @x |"):
        assert raw not in summary, raw
    assert "\\!\\[x\\](http\\://evil/x.png) &lt;img src=x&gt; \\[a\\]" in summary
    assert "\x1b" not in run["stdout"]


def test_grades_csv_cells_are_no_formulas(run):
    with open(run["work"] / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(run["results"])
    for row in rows:
        for column, cell in row.items():
            if column in ("raw_score", "score", "max_score", "late_submission_penalty"):
                float(cell)  # still numbers
            else:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    ids = {r["student_id"] for r in rows}
    assert {"'-1", "'@x"} <= ids
    assert {"-1", "@x"} <= set(run["results"])  # the JSON keeps the real ids


def test_feedback_page_runs_no_student_code_and_loads_nothing_remote(run, browser):
    path = run["work"] / "feedback" / "shows_html" / "batchnorm" / "batchnorm.html"
    assert (run["work"] / "feedback" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    requests, dialogs, console = [], [], []
    page = browser.new_page()
    try:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: console.append(m.text))

        def route(r):
            requests.append(r.request.url)
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                r.abort()

        page.route("**/*", route)
        page.goto(path.as_uri())
        page.wait_for_selector("mjx-container", timeout=20_000)
        page.wait_for_timeout(500)
        rendered = page.locator("mjx-container").count()
    finally:
        page.close()
    assert dialogs == [], dialogs
    assert not [c for c in console if "PWNED" in c], console
    remote = [u for u in requests if not u.startswith("file://")]
    assert remote == [], remote
    assert any(u.endswith("_static/mathjax/tex-chtml.js") for u in requests)
    assert rendered >= 1


def test_check_prints_no_terminal_escapes(tmp_path):
    need_batchnorm()
    nb = _correct()
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == (
            "batchnorm_forward"
        ):
            cell.source = (
                "def batchnorm_forward(*args, **kwargs):\n"
                f"    print({ANSI!r})\n"
                f"    raise ValueError({ANSI!r})\n"
            )
    path = tmp_path / "batchnorm.ipynb"
    # a message quotes the error: "cell N hit a resource limit: MemoryError: ..."
    attack = f"print({ANSI!r})\nraise MemoryError({ANSI!r})"
    _write(path, _insert_after_setup(nb, attack))
    proc = run_grader("check", str(path), *FAST[:-1])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr
    assert "Points 37/37" in proc.stdout  # the student's text, shown as text
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("Points ")]
    assert last and last[-1] != "Points 37/37", proc.stdout


def test_a_notebook_under_the_size_limit_that_escapes_heavily_is_graded(tmp_path):
    """Backslashes double in each JSON encoding: a 15 MB notebook of them made
    a worker's result (page, autograded notebook, the page's notebook) too
    big for its channel, and the submission was lost as a "missing" one."""
    need_batchnorm()
    nb = _correct()
    nb.cells += [nbformat.v4.new_markdown_cell("\\" * 99_000) for _ in range(80)]
    _write(tmp_path / "subs" / "escapes" / "batchnorm.ipynb", nb)
    work = tmp_path / "work"
    proc = run_grader(
        "grade", str(tmp_path / "subs"), "-a", "batchnorm", "--work", str(work),
        "-j", "1", *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (res,) = json.loads((work / "grades.json").read_text())["submissions"]
    assert res["status"] == "graded", res
    assert res["score"] == res["max_score"] > 0
