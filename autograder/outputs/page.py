"""The feedback page's frame: a Content-Security-Policy and a local MathJax.

nbgrader's feedback template loads MathJax 2 from a CDN. The page the grader
writes instead:

- keeps the template's head (title, inlined CSS) without any of its scripts;
- starts with a ``Content-Security-Policy`` ``<meta>``: scripts only from the
  page's own folder tree (``'self'``) and the one inline MathJax configuration
  (by its SHA-256 hash), no event handlers, nothing loaded from another origin
  (images only from ``data:`` URIs), no frames, objects, forms or ``<base>``;
- loads MathJax 3 from ``_static/mathjax/`` beside the feedback, the copy the
  book vendors (``book/_static/mathjax``, see ``book/_tools/vendor_mathjax.py``),
  written by :func:`install_static` once per run, so the page works offline;
- has its body, where student content lands, cleaned by
  :func:`autograder.outputs.sanitize.html`.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import re
import shutil
import sys
from pathlib import Path

from autograder.outputs import sanitize

#: the vendored MathJax of the book
MATHJAX_SOURCE = Path(__file__).resolve().parents[2] / "book" / "_static" / "mathjax"
#: the folder beside the feedback that holds what the pages load
STATIC = "_static"
#: from feedback/<student>/<assignment>/<assignment>.html up to feedback/
DEFAULT_PREFIX = "../../" + STATIC

_CONFIG = (
    "window.MathJax = {"
    'tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], '
    'displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]], '
    "processEscapes: true, processEnvironments: true}, "
    "options: {enableMenu: false}};"
)


def _hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def policy() -> str:
    """The Content-Security-Policy of every feedback page."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {_hash(_CONFIG)}",
            "style-src 'self' 'unsafe-inline'",  # the template's and MathJax's CSS
            "font-src 'self'",
            "img-src data:",
            "connect-src 'none'",
            "object-src 'none'",
            "frame-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def head_tags(prefix: str = DEFAULT_PREFIX) -> str:
    """The CSP ``<meta>`` and the MathJax scripts, loaded from ``prefix``."""
    return (
        f'<meta http-equiv="Content-Security-Policy" content="{policy()}">\n'
        f"<script>{_CONFIG}</script>\n"
        f'<script defer src="{prefix}/mathjax/tex-chtml.js"></script>\n'
    )


_SCRIPT = re.compile(r"(?is)<script\b.*?</script\s*>")
_COMMENT = re.compile(r"(?s)<!--.*?-->")
_BODY = re.compile(r"(?is)<body\b[^>]*>(.*)</body\s*>")
_CHARSET = re.compile(r'(?i)<meta charset="utf-8"\s*/?>')


def assemble(page: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The rendered template ``page`` made safe (see the module docstring).

    Args:
        page: nbconvert's HTML (``<head>`` from the template, ``<body>`` with
            student content).
        prefix: where ``_static`` is, relative to the page.
    """
    match = _BODY.search(page)
    head = page[: match.start()] if match else page.split("<body", 1)[0]
    body = match.group(1) if match else ""
    head = _COMMENT.sub("", _SCRIPT.sub("", head))
    head, n = _CHARSET.subn(lambda m: m.group(0) + "\n" + head_tags(prefix), head, 1)
    if not n:
        head = head.replace("<head>", "<head>\n" + head_tags(prefix), 1)
    return f"{head}<body>\n{sanitize.html(body)}\n</body>\n</html>\n"


def install_static(feedback_dir: Path, source: Path = MATHJAX_SOURCE) -> Path | None:
    """Copy MathJax to ``<feedback_dir>/_static/mathjax`` (only what changed).

    Returns:
        The folder written, or None when the book's MathJax is missing (the
        pages then show the TeX source of the math).
    """
    if not (source / "tex-chtml.js").is_file():
        return None
    dest = feedback_dir / STATIC / "mathjax"
    try:
        for path in sorted(source.rglob("*")):
            if not path.is_file() or path.name == "README.md":
                continue
            target = dest / path.relative_to(source)
            if target.is_file() and filecmp.cmp(path, target, shallow=False):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    except OSError as exc:  # the pages still work: math shows as TeX source
        print(f"note: MathJax not copied beside the feedback ({exc})", file=sys.stderr)
        return None
    return dest
