"""The adversarial corpus, graded in one run with a correct and a plain-wrong one.

For every threat-model item of DESIGN.md the run must give no inflated score,
put a clear message in the report, and grade every other submission correctly.
The plain-wrong submission's expected score comes from nbgrader's own route:
the notebook executed in a Jupyter kernel (nbclient) with the hidden tests
restored, scored with nbgrader's ``determine_grade``.
"""

from __future__ import annotations

import csv
import json
import re

import nbformat
import pytest

from tests.grader.conftest import FAST, RELEASE, SOLUTION, need_batchnorm, run_grader
from tests.grader.corpus import CASES, build

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    need_batchnorm()
    root = tmp_path_factory.mktemp("corpus")
    build(root / "submissions")
    work = root / "work"
    args = [
        "grade",
        str(root / "submissions"),
        "--assignment",
        "batchnorm",
        "--work",
        str(work),
        "--jobs",
        "2",
        *FAST,
    ]
    proc = run_grader(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads((work / "grades.json").read_text())
    results = {r["student"]: r for r in data["submissions"]}
    return {
        "root": root,
        "work": work,
        "results": results,
        "args": args,
        "stdout": proc.stdout,
    }


@pytest.fixture(scope="module")
def expected(corpus, bn_spec):
    """Per-cell scores of the plain-wrong notebook, graded the nbgrader way."""
    from autograder.authoring.harness import (
        execute_notebook,
        restore_tests,
        score_notebook,
    )

    wrong = nbformat.read(
        corpus["root"] / "submissions" / "wrong" / "batchnorm.ipynb", 4
    )
    source = nbformat.read(SOLUTION, 4)
    scores = score_notebook(execute_notebook(restore_tests(wrong, source), timeout=120))
    return {
        "full": float(bn_spec.max_score),
        "zero": 0.0,
        "wrong": float(sum(s for s, _ in scores.values())),
        "wrong_cells": {gid: s for gid, (s, _) in scores.items()},
    }


def _text(result: dict) -> str:
    parts = list(result.get("messages", [])) + list(result.get("scan", []))
    for c in result.get("cells", {}).values():
        parts += [c.get("problems", ""), c.get("report", "")]
    return "\n".join(parts)


def test_every_submission_is_graded(corpus):
    assert set(corpus["results"]) == {c.name for c in CASES}
    assert "0 grader errors" in corpus["stdout"]


def test_plain_submissions_are_graded_correctly(corpus, expected, bn_spec):
    res = corpus["results"]
    assert res["correct"]["score"] == expected["full"] == res["correct"]["max_score"]
    assert res["release"]["score"] == 0.0
    assert 0 < expected["wrong"] < expected["full"]
    assert res["wrong"]["score"] == expected["wrong"]
    for gid, s in expected["wrong_cells"].items():
        assert res["wrong"]["cells"][gid]["score"] == s, gid


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(corpus, expected, case):
    r = corpus["results"][case.name]
    if case.needs_mounts and not r.get("isolation", {}).get("mounts"):
        pytest.skip("needs the mount namespace, not available here")
    assert r["max_score"] == expected["full"], "the maximum must never change"
    if case.total is not None:
        assert r["score"] == expected[case.total], f"{case.threat}: {r['score']}"
    assert r["score"] <= expected["full"] - case.at_most, case.threat
    if case.below is not None:
        assert r["score"] < expected[case.below], f"{case.threat}: {r['score']}"
    for gid in case.zero_cells:
        assert r["cells"][gid]["score"] == 0.0, f"{case.threat}: {gid}"
    assert re.search(case.message, _text(r)), (
        f"{case.threat}: no message matching {case.message!r} in\n{_text(r)[:3000]}"
    )


def test_the_gradebook_agrees_with_the_report(corpus):
    rows = {
        r["student_id"]: float(r["score"])
        for r in csv.DictReader(open(corpus["work"] / "grades.csv"))
    }
    assert rows == {s: r["score"] for s, r in corpus["results"].items()}


def test_feedback_never_shows_hidden_tests(corpus, bn_spec):
    from autograder.outputs.feedback import visible_text

    pages = list((corpus["work"] / "feedback").rglob("*.html"))
    assert len(pages) == len(CASES)
    for page in pages:
        text = visible_text(page.read_text())
        for line in bn_spec.hidden_lines:
            assert line not in text, f"{page}: {line!r}"


def test_rerun_keeps_unchanged_and_regrades_one_student(corpus):
    before = json.loads((corpus["work"] / "grades.json").read_text())
    proc = run_grader(*corpus["args"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"0 graded, {len(CASES)} unchanged" in proc.stdout
    after = json.loads((corpus["work"] / "grades.json").read_text())
    assert after == before
    proc = run_grader(*corpus["args"], "--student", "wrong")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 graded" in proc.stdout
    again = {
        r["student"]: r["score"]
        for r in json.loads((corpus["work"] / "grades.json").read_text())["submissions"]
    }
    assert again == {r["student"]: r["score"] for r in before["submissions"]}


def test_release_is_what_students_start_from():
    assert RELEASE.is_file()


def test_no_host_file_and_no_markup_reaches_the_feedback(corpus):
    """The notebook that lists the host's files saw only its own sandbox; the one
    that prints markup and escapes has them inert in its feedback page."""
    seen = (corpus["work"] / "feedback" / "glob_host_files").rglob("*.html")
    page = next(iter(seen)).read_text()
    assert "solutions/batchnorm/batchnorm.ipynb" not in page and "id_rsa" not in page
    assert "host files seen:" in page
    assert "root:x:0:0" not in page  # /etc/passwd
    markup = next((corpus["work"] / "feedback" / "print_markup").rglob("*.html"))
    tags = _tags(markup.read_text())
    assert not [t for t, _ in tags if t in ("iframe", "object", "embed")]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    for tag, attrs in tags:
        load = attrs.get("src") or ("" if tag == "a" else attrs.get("href", ""))
        assert not load.startswith(("http:", "https:", "//")), tag  # no remote load
        assert not attrs.get("href", "").startswith("javascript:"), tag
    assert "\x1b" not in markup.read_text()


def _tags(text: str) -> list[tuple[str, dict]]:
    """Every start tag of an HTML page, with its attributes."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {k: v or "" for k, v in attrs}))

    Collect().feed(text)
    return found
