"""The class report: ``report.html`` and ``report.json`` in the work folder.

Every ``grade`` run writes them from the gradebook's results (the data is
:func:`autograder.outputs.class_data.class_data`). The page shows, per
assignment: the score histogram and statistics, the share of the class that
lost each cell and each check, the named misconceptions ranked by how many
students have them (each student linked to their feedback page), what needs
review, and what could not be read.

The page is one self-contained file: its figures are embedded PNGs
(:mod:`autograder.outputs.class_plots`), it has no script at all, and its
Content-Security-Policy allows nothing but inline styles and ``data:``
images, so it works offline and loads nothing. Every text that could come
from a student (ids, messages, findings, check output) is shown through
:func:`autograder.outputs.sanitize.one_line` and :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

from autograder.outputs import class_plots
from autograder.outputs.class_data import class_data
from autograder.outputs.sanitize import one_line

#: the longest reason or message quoted in the page (the rest is in grades.json)
REASON_CHARS = 400
#: the most students listed per misconception or review section
MAX_LISTED = 200

POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 840px; margin: 2em auto;
  padding: 0 20px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee;
  vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
img.figure { width: 100%; max-width: 800px; height: auto; display: block; }
.students a, .students span { margin-right: 0.6em; white-space: nowrap; }
.muted { color: #666; }
"""


def _t(text: object, limit: int = REASON_CHARS) -> str:
    """Untrusted text, as inert HTML on one line."""
    return html.escape(one_line(text, limit))


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _student(name: object, link: str | None) -> str:
    label = _t(name, 100)
    if link:
        return f'<a class="student" href="{html.escape(link)}">{label}</a>'
    return f'<span class="student">{label}</span>'


def _pct(k: int, n: int) -> str:
    return f"{k} of {n} ({100 * k / n:.0f}%)" if n else "-"


def _stats(a: dict) -> str:
    s = a["stats"]
    cols = ("n", "mean", "median", "min", "max", "std")
    head = "".join(f'<th class="num">{c}</th>' for c in cols)
    row = "".join(
        f'<td class="num" data-stat="{c}">{_num(s.get(c))}</td>' for c in cols
    )
    return f'<table class="stats"><tr>{head}</tr><tr>{row}</tr></table>'


def _cells(a: dict) -> list[str]:
    out = [
        "<h3>Cells and checks: who lost points</h3>",
        '<table class="cells"><tr><th>cell / check</th><th class="num">points</th>'
        '<th class="num">lost by</th></tr>',
    ]
    for c in a["cells"]:
        out.append(
            f'<tr class="cell"><td><b>{_t(c["cell"])}</b></td>'
            f'<td class="num">{_num(c["max_score"])}</td>'
            f'<td class="num" data-lost="{c["lost"]}">{_pct(c["lost"], c["n"])}</td>'
            "</tr>"
        )
        for k in (k for k in a["checks"] if k["cell"] == c["cell"]):
            out.append(
                f'<tr class="check"><td>&emsp;{_t(k["check"])}</td>'
                f'<td class="num">{_t(k["points"], 20)}</td>'
                f'<td class="num" data-failed="{k["failed"]}">'
                f"{_pct(k['failed'], k['n'])}</td></tr>"
            )
    out.append("</table>")
    return out


def _misconceptions(a: dict) -> list[str]:
    out = ["<h3>Named misconceptions</h3>"]
    if not a["misconceptions"]:
        return out + ['<p class="muted">No failed check named a likely mistake.</p>']
    out.append(
        '<p class="muted">The "Likely mistake" of failed checks, by the number of '
        "students it concerns; each name opens that student's feedback.</p>"
    )
    out.append('<ol class="misconceptions">')
    for m in a["misconceptions"]:
        people = " ".join(
            _student(s["student"], s["feedback"]) for s in m["students"][:MAX_LISTED]
        )
        more = len(m["students"]) - MAX_LISTED
        if more > 0:
            people += f' <span class="muted">and {more} more</span>'
        cells = ", ".join(_t(c, 60) for c in m["cells"])
        noun = "student" if m["count"] == 1 else "students"
        out.append(
            f'<li class="misconception" data-count="{m["count"]}">'
            f'<span class="text">{_t(m["text"])}</span>: '
            f'<b class="count">{m["count"]}</b> {noun} '
            f'<span class="muted">({cells})</span>'
            f'<div class="students">{people}</div></li>'
        )
    out.append("</ol>")
    if a["misconceptions_left_out"]:
        out.append(f"<p>{a['misconceptions_left_out']} more in report.json.</p>")
    return out


def _review(a: dict) -> list[str]:
    out = ["<h3>Needs review</h3>"]
    if not a["review"]:
        return out + ['<p class="muted">Nothing to review.</p>']
    out.append('<ul class="review">')
    for r in a["review"][:MAX_LISTED]:
        reasons = "".join(f"<li>{_t(w)}</li>" for w in r["reasons"][:12])
        out.append(
            f'<li class="flagged">{_student(r["student"], r["feedback"])}'
            f"<ul>{reasons}</ul></li>"
        )
    out.append("</ul>")
    return out


def _by_hand(a: dict) -> list[str]:
    rows = a.get("by_hand") or []
    if not rows:
        return []
    out = ["<h3>Graded by hand</h3>", '<ul class="by-hand">']
    for h in rows[:MAX_LISTED]:
        parts = [
            f'<span class="hand-score" data-cell="{_t(g, 100)}">{_t(g, 100)}: '
            f"{_num(c['score'])}/{_num(c['max_score'])}</span>"
            for g, c in h["cells"].items()
        ]
        parts += [
            f'<q class="hand-comment">{_t(text)}</q>' for text in h["comments"].values()
        ]
        out.append(
            f'<li class="hand">{_student(h["student"], h["feedback"])}: '
            f"{'; '.join(parts)}</li>"
        )
    more = len(rows) - MAX_LISTED
    if more > 0:
        out.append(f'<li class="muted">and {more} more (report.json)</li>')
    return out + ["</ul>"]


def _unreadable(a: dict) -> list[str]:
    if not a["unreadable"]:
        return []
    out = ["<h3>Unreadable submissions (scored 0)</h3>", '<ul class="unreadable">']
    out += [
        f"<li>{_student(u['student'], u['feedback'])}: {_t(u['message'])}</li>"
        for u in a["unreadable"][:MAX_LISTED]
    ]
    return out + ["</ul>"]


def _assignment(a: dict, k: int) -> list[str]:
    n = a["stats"]["n"]
    hist = class_plots.score_histogram(a["histogram"], a["stats"], a["max_score"])
    out = [
        f'<section class="assignment" id="a{k}" data-submissions="{n}">',
        f"<h2>{_t(a['assignment'])}</h2>",
        f'<p><b class="submissions">{n}</b> submissions, '
        f"{len(a['unreadable'])} unreadable, {len(a['review'])} to review; "
        f"out of {_num(a['max_score'])} points.</p>",
        _stats(a),
        f'<img class="figure histogram" src="{hist}" alt="histogram of the scores">',
    ]
    out += _misconceptions(a)
    if a["cells"]:
        bars = class_plots.cell_bars(a["cells"])
        out.append(
            f'<img class="figure cells" src="{bars}" '
            'alt="share of the submissions that lost points, per cell">'
        )
    out += _cells(a) + _review(a) + _by_hand(a) + _unreadable(a)
    return out + ["</section>"]


def _problems(data: dict) -> list[str]:
    rows = [f"<li>intake: {_t(p)}</li>" for p in data["problems"]]
    rows += [
        f"<li>grader error: {_t(e['student'], 100)} / {_t(e['assignment'], 100)}: "
        f"{_t(e['message'])}</li>"
        for e in data["grader_errors"]
    ]
    if not rows:
        return []
    return [
        "<h2>Missing from the gradebook</h2>",
        "<p>Submissions that could not be taken in, or that the grader failed on "
        "(run <code>grade</code> again to retry them):</p>",
        '<ul class="problems">',
        *rows[:MAX_LISTED],
        "</ul>",
    ]


def render(data: dict, title: str = "Class report") -> str:
    """The page for ``data`` (from :func:`class_data`)."""
    body = [f"<h1>{_t(title)}</h1>"]
    k = len(data["assignments"])
    body.append(
        f'<p><span id="total">{data["submissions"]}</span> submissions in the '
        f"gradebook, {k} assignment{'' if k == 1 else 's'}.</p>"
    )
    for k, a in enumerate(data["assignments"]):
        body += _assignment(a, k)
    body += _problems(data)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_t(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(
    results: list[dict],
    work: Path,
    *,
    problems: Sequence[str] = (),
    failed: Sequence[dict] = (),
) -> Path:
    """Write ``report.json`` and ``report.html`` in ``work``; returns the page.

    Args:
        results: the gradebook's results (as in ``grades.json``).
        problems: intake's problems (files it could not take in).
        failed: this run's grader errors (not in the gradebook).
    """
    data = class_data(results, problems=problems, failed=failed, work=work)
    _write(work / "report.json", json.dumps(data, indent=1) + "\n")
    page = work / "report.html"
    _write(page, render(data))
    return page
