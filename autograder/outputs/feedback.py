"""Per-student feedback HTML, with nbgrader's feedback template, hiding hidden tests.

The feedback notebook is the autograded notebook with, in each test cell:

- the source shown without its ``### BEGIN HIDDEN TESTS`` region (nbgrader's
  ``ClearHiddenTests``),
- the outputs of the verification (the check report the student should read;
  errors as one line, never a traceback that would quote test code),
- the cell's score (nbgrader's ``GetGrades`` fields ``score``/``points``).

Every output of every cell is then scrubbed of any line of hidden-test source
(a student could print ``In`` or read frames to copy them into an output).
The HTML is rendered by nbconvert's ``HTMLExporter`` with nbgrader's
``feedback`` template and ``CSSHTMLHeaderPreprocessor``, as
``nbgrader generate_feedback`` does, then made safe to open
(:mod:`autograder.outputs.page`: student HTML sanitized, a Content-Security-
Policy, MathJax from a local copy). :mod:`autograder.outputs.bounded` renders
it within a size cap and a time limit.
"""

from __future__ import annotations

import copy
import os
import re
from functools import cache, lru_cache

import nbformat
from nbformat import NotebookNode

from autograder.authoring.assignment import Assignment

HIDDEN_MARK = "[hidden test code removed]"
#: the comment on a written answer that awaits grading by hand
PENDING = "Your answer will be graded by hand; this page will then show its points."


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _clear_hidden(cell: NotebookNode) -> None:
    from nbgrader.preprocessors import ClearHiddenTests

    try:
        ClearHiddenTests(enforce_metadata=False)._remove_hidden_test_region(cell)
    except RuntimeError:  # unbalanced markers: drop the whole source
        cell.source = HIDDEN_MARK


def scrub(text: str, hidden: list[str]) -> str:
    """``text`` with every line of hidden-test source replaced."""
    if not text:
        return text
    for line in sorted(hidden, key=len, reverse=True):
        if len(line) >= 4 and line in text:
            text = text.replace(line, HIDDEN_MARK)
    return text


def _embed_svg(out: NotebookNode) -> None:
    """An SVG output shown as an ``<img>`` (inert) rather than inline markup."""
    import base64

    data = out.get("data", {})
    svg = data.get("image/svg+xml")
    if svg is None:
        return
    text = "".join(svg) if isinstance(svg, list) else str(svg)
    uri = "data:image/svg+xml;base64," + base64.b64encode(text.encode()).decode()
    del data["image/svg+xml"]
    if "image/png" not in data and "text/html" not in data:
        data["text/html"] = f'<img src="{uri}">'


def _scrub_output(out: NotebookNode, hidden: list[str]) -> None:
    if "text" in out:
        out["text"] = scrub(str(out["text"]), hidden)
    if "evalue" in out:
        out["evalue"] = scrub(str(out["evalue"]), hidden)
    if "traceback" in out:
        out["traceback"] = [scrub(str(t), hidden) for t in out["traceback"]]
    for mime, value in dict(out.get("data", {})).items():
        if isinstance(value, str):
            out["data"][mime] = scrub(value, hidden)
        elif isinstance(value, list):
            out["data"][mime] = [scrub(str(v), hidden) for v in value]


def feedback_notebook(
    autograded: NotebookNode,
    spec: Assignment,
    scores: dict[str, float],
    verified_outputs: dict[str, list[dict]],
    comments: dict[str, str | None],
    notes: dict[str, str],
) -> NotebookNode:
    """The notebook the student sees; see the module docstring.

    Args:
        autograded: the executed, sanitized submission.
        spec: the assignment.
        scores: final score of each grade cell.
        verified_outputs: the verifier's outputs of each grade cell.
        comments: comment of each answer cell (``"No response."`` or None).
        notes: an extra line per grade cell (e.g. why the score differs from
            what the notebook printed).
    """
    fb = copy.deepcopy(autograded)
    for cell in fb.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if meta.get("grade") and gid in spec.points:
            meta["score"] = scores.get(gid, 0.0)
            meta["points"] = spec.points[gid]
            if cell.cell_type == "code" and not meta.get("solution"):
                _clear_hidden(cell)
                outputs = [copy.deepcopy(o) for o in verified_outputs.get(gid, [])]
                for o in outputs:
                    if o["output_type"] == "error":
                        o["traceback"] = [f"{o['ename']}: {o['evalue']}"]
                    if o["output_type"] == "execute_result":
                        o["execution_count"] = cell.get("execution_count")
                if notes.get(gid):
                    outputs.insert(
                        0,
                        {"output_type": "stream", "name": "stdout", "text": notes[gid]},
                    )
                cell.outputs = [nbformat.from_dict(o) for o in outputs]
        if meta.get("solution") and gid:
            meta["comment"] = comments.get(gid)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                _scrub_output(out, spec.hidden_lines)
                _embed_svg(out)
    return fb


def _exporter_class():
    from nbconvert.exporters import HTMLExporter, TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class Exporter(HTMLExporter):
        """HTMLExporter without its BeautifulSoup pass (most of the time spent).

        That pass only adds ``alt`` text to images and ``tabindex`` to JupyterLab
        cells; the feedback template has no such cells, and the ``alt`` text is
        added here with a regular expression.
        """

        def from_notebook_node(self, nb, resources=None, **kw):
            info = nb.metadata.get("language_info", {})
            lexer = info.get("pygments_lexer", info.get("name", None))
            if lexer not in _HIGHLIGHT:
                _HIGHLIGHT[lexer] = _cached_highlight(
                    Highlight2HTML(pygments_lexer=lexer, parent=self)
                )
            highlight = _HIGHLIGHT[lexer]
            resources = self._init_resources(resources)
            data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight)
            self.register_filter("filter_data_type", data_type)
            html, resources = TemplateExporter.from_notebook_node(
                self, nb, resources, **kw
            )
            html = _NO_ALT.sub(f'<img alt="{_ALT}"', html)
            return html, resources

    return Exporter


_HIGHLIGHT: dict = {}


def _cached_highlight(highlight):
    """Highlighting is most of the rendering, and most cells are the same for
    every student (narrative, setup, tests): remember each highlighted source."""
    if getattr(highlight, "_cached", False):
        return highlight

    @lru_cache(maxsize=4096)
    def cached(source: str, language: str | None) -> str:
        return highlight(source, language)

    def call(source, language=None, metadata=None):
        return cached(source, language)

    call._cached = True
    return call


_NO_ALT = re.compile(r"<img(?![^>]*\balt=)")
_ALT = "No description has been provided for this image"


@cache
def _exporter():
    import nbgrader
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from traitlets.config import Config

    base = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions")
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    # validate the notebook once, after all preprocessors, not after each one
    c.HTMLExporter.optimistic_validation = True
    c.HTMLExporter.extra_template_basedirs = [
        os.path.join(base, "formgrader", "templates")
    ]
    c.HTMLExporter.extra_template_paths = [
        os.path.join(
            base, "formgrader", "static", "node_modules", "bootstrap", "dist", "css"
        )
    ]
    exporter = _exporter_class()(config=c)
    exporter.register_preprocessor(CSSHTMLHeaderPreprocessor(config=c), enabled=True)
    return exporter


def render_html(
    fb: NotebookNode,
    *,
    notebook: str,
    student: str,
    assignment: str,
    score: float,
    max_score: float,
    late_penalty: float = 0.0,
) -> str:
    """HTML of the feedback notebook with nbgrader's feedback template, made safe.

    ``late_penalty`` (points) is shown by the template as a late submission
    penalty beside the score.

    The page loads MathJax from ``../../_static/mathjax`` (the layout
    ``feedback/<student>/<assignment>/<assignment>.html``; see
    :func:`autograder.outputs.page.install_static`). No time or size limit:
    :func:`autograder.outputs.bounded.render` adds them.
    """
    from autograder.outputs import page

    resources = {
        "nbgrader": {
            "notebook": notebook,
            "assignment": assignment,
            "student": student,
            "score": score,
            "max_score": max_score,
            "late_penalty": late_penalty,
        }
    }
    html, _ = _exporter().from_notebook_node(fb, resources=resources)
    return page.assemble(html)


def visible_text(html: str) -> str:
    """What a reader of the feedback page sees: the text without the markup."""
    import html as html_lib

    body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", body))
