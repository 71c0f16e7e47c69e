"""Sphinx extension for the course book: launch buttons open the assignment.

sphinx-book-theme's launch buttons (Binder, Colab, JupyterHub; configured under
``launch_buttons`` in ``_config.yml``) open the page's own source, here a MyST
Markdown file that Colab cannot read and that is not what a student should
work in. A chapter names its assignment in its front matter::

    ---
    assignment: batchnorm
    ---

and this extension rewrites that page's launch links to open
``notebooks/<assignment>/<assignment>.ipynb``, the student notebook, instead.
Pages without an assignment get no launch buttons, and a button without a
target (its service's URL left empty in ``_config.yml``) is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
LAUNCH_GROUP = "launch-buttons"


def assignment_notebook(name: str) -> str:
    """The student notebook of an assignment, relative to the repository root."""
    return f"notebooks/{name}/{name}.ipynb"


def _page_source(app: Sphinx, pagename: str) -> str:
    """The page's source path relative to the repository root, as the theme has it."""
    theme = app.config.html_theme_options
    prefix = theme.get("path_to_docs", "").strip("/")
    prefix = f"{prefix}/" if prefix else ""
    return f"{prefix}{pagename}{Path(app.env.doc2path(pagename)).suffix}"


def retarget_launch_buttons(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: Any,
) -> None:
    """Point the page's launch buttons at its assignment notebook (or drop them)."""
    buttons = context.get("header_buttons")
    if not buttons:
        return
    groups = [b for b in buttons if b.get("label") == LAUNCH_GROUP]
    if not groups:
        return
    name = app.env.metadata.get(pagename, {}).get("assignment")
    if not name:
        for group in groups:
            buttons.remove(group)
        return
    notebook = assignment_notebook(str(name))
    if not (Path(app.srcdir) / notebook).is_file():
        LOGGER.warning(
            "page %s names assignment %r but %s does not exist; generate it with "
            "`make generate`",
            pagename,
            name,
            notebook,
            location=pagename,
        )
    source = _page_source(app, pagename)
    for group in groups:
        group["buttons"] = [b for b in group.get("buttons", []) if b.get("url", "x")]
        for button in group.get("buttons", []):
            if button.get("type") == "link":
                url = button["url"]
                if source not in url:
                    LOGGER.warning(
                        "launch link %s does not contain %s; cannot retarget it",
                        url,
                        source,
                        location=pagename,
                    )
                    continue
                button["url"] = url.replace(source, notebook)
                button["tooltip"] = f"Open the assignment {name} on {button['text']}"


def setup(app: Sphinx) -> dict[str, Any]:
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", retarget_launch_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
