"""Student text made inert: the terminal, Markdown, CSV and HTML rules, and the
reports and renderers that use them."""

from __future__ import annotations

import csv
import re
import time

import nbformat
import pytest

from autograder.outputs import bounded, report, sanitize
from autograder.outputs.gradebook import NUMERIC_COLUMNS, neutralize_csv

pytestmark = pytest.mark.grader

ANSI = "\x1b[2J\x1b[32mPoints 37/37\x1b[0m"
QUOTED = "![x](http://evil/x.png) <img src=x onerror=alert(1)> [link](http://evil)"
EVIL_HTML = (
    "<script>alert(1)</script><img src=x onerror=alert(1)>"
    '<iframe src="http://example.com/"></iframe><img src="http://example.com/x.png">'
    '<a href="javascript:alert(1)">j</a><img src="//example.com/y.png">'
    '<object data="http://example.com/o"></object><embed src="http://example.com/e">'
)


def test_terminal_strips_every_control_but_newline_and_tab():
    text = sanitize.terminal(
        ANSI + "\r\x08\x07 \x1b]0;title\x07 \x9b31m \u202eabc\n\tend\x00"
    )
    assert "Points 37/37" in text and text.endswith("\n\tend")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text), repr(text)


def test_markdown_shows_quoted_text_as_text():
    text = sanitize.markdown(QUOTED + "\n# heading\n| a | b |\n`code` $x$ @bob")
    assert "\n" not in text
    assert "<" not in text and ">" not in text
    unescaped = re.findall(r"(?<!\\)[\[\]`|$@!#*_~]", text)
    assert unescaped == [], text
    assert "http://" not in text and "http\\://evil/x.png" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert sanitize.markdown("x" * 1000, limit=50) == "x" * 47 + "..."


def test_csv_cell_neutralizes_formulas_and_keeps_numbers():
    for value in ('=HYPERLINK("http://evil")', "+1", "-1", "@x", "\tx", "\rx"):
        assert sanitize.csv_cell(value) == "'" + value
    assert sanitize.csv_cell("alice") == "alice"
    assert sanitize.csv_cell(-1.5) == -1.5 and sanitize.csv_cell(3) == 3


def test_csv_file_keeps_negative_scores_as_numbers(tmp_path):
    path = tmp_path / "grades.csv"
    ids = ['=HYPERLINK("http://evil")', "+1", "-1", "@x"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assignment", "student_id", "score", "max_score"])
        for sid in ids:
            w.writerow(["batchnorm", sid, "-1.5", "37"])
    neutralize_csv(path, numeric=NUMERIC_COLUMNS)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["student_id"] for r in rows] == ["'" + s for s in ids]
    assert all(r["score"] == "-1.5" and r["max_score"] == "37" for r in rows)


def test_html_keeps_text_and_embedded_images_only():
    png = "data:image/png;base64,iVBORw0KGgo="
    out = sanitize.html(EVIL_HTML + f'<img src="{png}"><a href="#top">top</a><b>b</b>')
    low = out.lower()
    for bad in ("<script", "onerror", "<iframe", "<object", "<embed", "javascript:"):
        assert bad not in low, (bad, out)
    assert "example.com" not in low and "//" not in low.replace("http://", "")
    assert f'src="{png}"' in out and 'href="#top"' in out and "<b>b</b>" in out
    assert out.count("image not shown") == 3


def _result(**kw) -> dict:
    r = {
        "student": "@x",
        "assignment": "batchnorm",
        "status": "graded",
        "score": 0.0,
        "max_score": 37.0,
        "cells": {
            "test_batchnorm_forward": {
                "score": 0.0,
                "max_score": 8.0,
                "problems": f"ValueError: {ANSI}",
            }
        },
        "messages": [f"notebook run stopped (error): cell 3: {QUOTED}\n## new"],
        "scan": [f"cell 3, line 1: [reach-around] names a private path: '{QUOTED}'"],
    }
    r.update(kw)
    return r


def test_summary_quotes_student_text_escaped():
    text = report.summary_markdown([_result()], run={"graded": 1}, problems=[QUOTED])
    for raw in ("![x](", "[link](", "<img", "\n## new", "| @x |"):
        assert raw not in text, (raw, text)
    assert "\\!\\[x\\](http\\://evil/x.png)" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "| \\@x | batchnorm |" in text


def test_check_table_prints_no_escape_bytes():
    text = report.check_table(_result())
    assert "\x1b" not in text and "Points 37/37" in text
    payload = report.classroom_payload(_result())
    assert "\x1b" not in payload["tests"][0]["message"]


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _page(nb, seconds: float = bounded.RENDER_SECONDS):
    return bounded.render(
        nb,
        notebook="batchnorm",
        student="s",
        assignment="batchnorm",
        score=1,
        max_score=2,
        seconds=seconds,
    )


def test_feedback_page_has_a_policy_and_no_student_script():
    code = nbformat.v4.new_code_cell("show()")
    code.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": EVIL_HTML, "text/plain": "x"}
        ),
        nbformat.v4.new_output(
            "display_data", data={"application/javascript": "alert(2)"}
        ),
        nbformat.v4.new_output("stream", name="stdout", text=EVIL_HTML),
    ]
    html, notes = _page(_notebook(nbformat.v4.new_markdown_cell(EVIL_HTML), code))
    assert notes == []
    head, body = html.split("<body>", 1)
    assert "Content-Security-Policy" in head and "default-src 'none'" in head
    assert re.findall(r"<script\b[^>]*>", head) == [
        "<script>",
        '<script defer src="../../_static/mathjax/tex-chtml.js">',
    ]
    assert "<script" not in body and "<iframe" not in body
    assert not re.search(r"<[^>]*\son\w+=", body), "an event handler is left"
    assert not re.search(r"<[^>]*\s(src|href)=\"(https?:)?//", html)
    assert "cdnjs" not in html and "alert(2)" not in html


def test_markdown_bomb_is_cut_and_stopped_in_time():
    bomb = _notebook(nbformat.v4.new_markdown_cell("[" * 120_000))
    start = time.monotonic()
    html, notes = _page(bomb, seconds=2)
    took = time.monotonic() - start
    assert took < 6, f"rendering the bomb took {took:.1f} s"
    assert any("only the first 100 KB" in n for n in notes), notes
    assert any("rendering stopped" in n for n in notes), notes
    assert "rendering stopped" in html and "Score: 1 / 2" in html
    assert "[[[[" in html  # the cell is still shown, as text


def test_huge_outputs_are_cut_with_a_note():
    code = nbformat.v4.new_code_cell("print(x)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 10**7)]
    html, notes = _page(_notebook(code))
    assert any("an output was cut" in n for n in notes), notes
    assert len(html) < 4 * 10**6 and "Feedback shortened" in html


def test_a_render_that_needs_too_much_memory_is_stopped():
    def greedy() -> str:
        return "x" * (3 * 2**30)  # 3 GB beyond the worker's size

    html, why = bounded._in_child(greedy, 10, memory=256 * 2**20)
    assert html is None and why == "it needed more than 256 MB of memory"
    html, why = bounded._in_child(lambda: "<p>ok</p>", 10, memory=256 * 2**20)
    assert (html, why) == ("<p>ok</p>", "")
