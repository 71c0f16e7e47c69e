"""Student text made inert wherever the grader shows it.

Everything a submission contains or prints is untrusted. Each place that shows
it to a person applies the one rule for its medium, from this module:

- :func:`terminal`: what ``check`` and ``grade`` print (no escape sequences
  that could repaint the screen, no carriage returns, no bidi overrides);
- :func:`markdown`: text quoted in ``summary.md`` (rendered by GitHub): shown
  as plain text, never as Markdown or HTML, on one line;
- :func:`csv_cell`: a cell of a CSV file opened in a spreadsheet (OWASP's
  rule against formula injection);
- :func:`html`: student HTML inside the feedback page (no scripts, no event
  handlers, no frames, nothing loaded from elsewhere; images only when they
  are embedded in the notebook);
- :func:`one_line`: an exception or finding quoted in a message.
"""

from __future__ import annotations

import re

#: ANSI/ECMA-48 escapes: CSI (ESC [ or 0x9b), OSC, DCS/SOS/PM/APC strings, and
#: two-character ESC sequences
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI ... final byte
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"  # strings
    r"|\x1b[ -/]*[0-~]?",  # ESC + intermediates + final
    re.S,
)
#: C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidi
#: overrides and isolates (text that reads differently from what it is)
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def terminal(text: object) -> str:
    """``text`` without escape sequences and control characters but ``\\n``, ``\\t``.

    ``"\\x1b[2J\\x1b[32mPoints 37/37\\x1b[0m"`` becomes ``"Points 37/37"``: the
    text stays readable, but it can no longer clear the screen, move the cursor
    or colour a forged line.
    """
    return _CONTROLS.sub("", _ESCAPES.sub("", str(text)))


def one_line(text: object, limit: int = 200) -> str:
    """The first line of ``text``, controls removed, cut at ``limit`` characters."""
    lines = terminal(text).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
#: what starts Markdown inline syntax on GitHub: escapes, code, emphasis,
#: links and images, tables, strikethrough, math, mentions, autolinks
_MD_SPECIAL = re.compile(r"[\\`*_\[\]|!~$@#]|:(?=//)|(?<=www)\.", re.I)
_LINE_BREAKS = re.compile(r"[\r\n\v\f\u0085\u2028\u2029]+")


def markdown(text: object, limit: int | None = None) -> str:
    """``text`` as inert Markdown: it shows as the same characters, as plain text.

    Controls are removed; line breaks become spaces (a new line could start a
    heading, a list or a table row: quoted text never starts a line); ``& < >
    "`` become HTML entities; the characters that start inline syntax are
    backslash-escaped, so ``![x](http://evil/x.png)`` is no image, ``[a](b)``
    no link, a backtick no code span, ``|`` no table cell, ``$`` no math,
    ``@name`` no mention, ``http://`` and ``www.`` no autolink. With
    ``limit``, the text is cut (before escaping) to that many characters.
    """
    flat = _LINE_BREAKS.sub(" ", terminal(str(text)).replace("\t", " "))
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    out = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), flat)
    return "".join(_MD_ENTITIES.get(c, c) for c in out)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    Text that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return gets a leading single quote (OWASP). Numbers (``int``/``float``)
    are returned as they are, so a negative score stays a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = "" if value is None else str(value)
        return "'" + text if text.startswith(_FORMULA_START) else text
    return value


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def is_number(text: str) -> bool:
    """Whether ``text`` is a plain decimal number such as ``-1.5`` or ``3e-2``."""
    return _NUMBER.fullmatch(text.strip()) is not None


# -- HTML ---------------------------------------------------------------------

#: what student HTML may keep: structure, text, tables, code highlighting
_ATTRIBUTES = {
    "*": {"class", "id", "name", "title", "lang", "dir", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start", "type"},
}
_DATA_IMAGE = re.compile(
    r"data:image/(png|jpeg|gif|webp|svg\+xml)(;base64)?,", re.I | re.ASCII
)
_LINK = re.compile(r"(https?:|mailto:|#)", re.I)
_NO_SRC_IMG = re.compile(r"<img\b(?![^>]*\ssrc=)[^>]*>")
#: what a reader sees where an image from elsewhere was
REMOVED_IMAGE = (
    '<span class="removed-image">[image not shown: only images embedded in the '
    "notebook are shown]</span>"
)


def _attribute(element: str, attribute: str, value: str) -> str | None:
    """Keep a URL only where it loads nothing: embedded images, plain links."""
    if attribute == "src":
        return value if _DATA_IMAGE.match(value.strip()) else None
    if attribute == "href":
        return value if _LINK.match(value.strip()) else None
    return value


def html(fragment: str) -> str:
    """Student HTML with only inert markup left (see the module docstring).

    Script, style, iframe, object, embed, form, meta, base and the like are
    removed with their content; event handlers (``onerror=``), ``style`` and
    unknown attributes are dropped; a ``src`` is kept only for an image
    embedded as a ``data:`` URI (an image from elsewhere becomes a note), an
    ``href`` only for http(s), mailto and in-page links (``javascript:`` and
    relative URLs are dropped). Text is escaped as needed.
    """
    import nh3

    clean = nh3.clean(
        fragment,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return _NO_SRC_IMG.sub(REMOVED_IMAGE, clean)
