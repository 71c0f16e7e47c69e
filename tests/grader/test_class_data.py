"""The class report's data and page on a hand-made gradebook (no grading run)."""

from __future__ import annotations

import json

import pytest

from autograder.outputs import class_data, class_report

pytestmark = pytest.mark.grader

HOSTILE = "<script>alert(1)</script>"
LIKELY = "eps is added outside the square root; it goes inside: sqrt(var + eps)"


def _cell(score: float, max_score: float, checks: list[tuple[str, bool, str]]) -> dict:
    lines = [f"forward: {score:g} / {max_score:g} points"]
    for name, ok, likely in checks:
        lines.append(f"  [{'PASS' if ok else 'FAIL'}]     {int(ok)}/1  {name}")
        if likely:
            lines.append("           out does not match the reference")
            lines.append(f"           Likely mistake: {likely}")
    return {"score": score, "max_score": max_score, "report": "\n".join(lines)}


def _result(student: str, score: float, likely: str = "", **kw) -> dict:
    ok = not likely
    return {
        "student": student,
        "assignment": "bn",
        "status": "graded",
        "score": score,
        "max_score": 2.0,
        "messages": [],
        "scan": [],
        "cells": {
            "test_forward": _cell(
                score, 2.0, [("shapes", True, ""), ("eps", ok, likely)]
            )
        },
        **kw,
    }


@pytest.fixture
def results() -> list[dict]:
    return [
        _result("a", 2.0),
        _result("b", 1.0, LIKELY),
        _result(HOSTILE, 1.0, LIKELY, scan=[f"cell 1: [monkeypatch] {HOSTILE}"]),
        _result("c", 1.0, f"<img src=x onerror=alert(1)> {HOSTILE}"),
        {
            "student": "..",
            "assignment": "bn",
            "status": "unreadable",
            "score": 0.0,
            "max_score": 2.0,
            "messages": [f"the file is not a valid notebook ({HOSTILE})"],
            "cells": {"test_forward": {"score": 0.0, "max_score": 2.0, "report": ""}},
        },
    ]


def test_data_counts_scores_cells_checks_and_misconceptions(results):
    data = class_data.class_data(results, problems=["x.zip: unsafe member"])
    assert data["submissions"] == 5 and data["problems"] == ["x.zip: unsafe member"]
    (a,) = data["assignments"]
    s = a["stats"]
    assert (s["n"], s["min"], s["max"], s["median"]) == (5, 0.0, 2.0, 1.0)
    assert s["mean"] == pytest.approx(1.0) and s["std"] == pytest.approx(0.6325, 1e-3)
    assert sum(a["histogram"]["counts"]) == 5
    assert a["cells"] == [
        {"cell": "test_forward", "max_score": 2.0, "lost": 4, "n": 5, "fraction": 0.8}
    ]
    failed = {c["check"]: (c["failed"], c["n"]) for c in a["checks"]}
    assert failed == {
        "shapes": (0, 4),
        "eps": (3, 4),
    }  # the unreadable one lists no checks
    top, other = a["misconceptions"]
    assert (top["text"], top["count"]) == (LIKELY, 2)
    assert [s["student"] for s in top["students"]] == [HOSTILE, "b"]  # raw ids
    assert other["count"] == 1 and top["cells"] == ["test_forward"]
    assert [r["student"] for r in a["review"]] == [HOSTILE, ".."]
    assert [u["student"] for u in a["unreadable"]] == [".."]


def test_links_are_relative_encoded_and_only_to_pages_that_exist(tmp_path):
    page = tmp_path / "feedback" / "b" / "bn" / "bn.html"
    page.parent.mkdir(parents=True)
    page.write_text("x")
    assert class_data.feedback_link(tmp_path, "b", "bn") == "feedback/b/bn/bn.html"
    assert class_data.feedback_link(tmp_path, "a", "bn") is None  # no page
    assert class_data.feedback_link(None, "..", "bn") is None
    assert class_data.feedback_link(None, "a/b", "bn") is None
    assert class_data.feedback_link(None, HOSTILE, "bn") is None  # "</script>"
    link = class_data.feedback_link(None, "<b onclick=x>", "bn")
    assert link == "feedback/%3Cb%20onclick%3Dx%3E/bn/bn.html"


def test_page_escapes_every_student_text(results, tmp_path):
    problems = [f"intake {HOSTILE}"]
    page = class_report.write(results, tmp_path, problems=problems)
    html = page.read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'http-equiv="Content-Security-Policy"' in html and "script-src" not in html
    assert html.count('src="data:image/png;base64,') == 2  # histogram, cell bars
    data = json.loads((tmp_path / "report.json").read_text())
    assert data == json.loads(
        json.dumps(class_data.class_data(results, problems=problems, work=tmp_path))
    )
    assert data["assignments"][0]["misconceptions"][0]["students"][0] == {
        "student": HOSTILE,
        "feedback": None,  # no feedback page was written here
    }


def test_an_empty_gradebook_gives_an_empty_report(tmp_path):
    page = class_report.write([], tmp_path)
    assert "0</span> submissions" in page.read_text()
    assert json.loads((tmp_path / "report.json").read_text())["assignments"] == []


@pytest.mark.parametrize(
    ("max_score", "width"), [(37, 2.0), (100, 5.0), (8, 1.0), (1, 0.05)]
)
def test_histogram_bins_are_round(max_score, width):
    hist = class_data.histogram([0.0, max_score], max_score)
    assert hist["edges"][1] == pytest.approx(width)
    assert hist["counts"][0] == 1 and hist["counts"][-1] == 1
    assert len(hist["counts"]) <= class_data.MAX_BINS + 1
