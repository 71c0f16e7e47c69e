"""Rendering student content within a size cap and a time limit.

Markdown to HTML and code highlighting are pure Python and can be made slow on
purpose (120 KB of ``[`` takes mistune most of a minute: its cost grows with
the square of the length). So the feedback page is rendered:

1. from a notebook cut to size first (:func:`cap`): at most
   :data:`MAX_CELL_CHARS` of each cell's source, :data:`MAX_OUTPUT_CHARS` of
   each output and :data:`MAX_PAGE_CHARS` in all; what was cut is said in a
   note at the top of the page;
2. a small page (every cell under :data:`SMALL_CELL_CHARS`, all under
   :data:`SMALL_PAGE_CHARS`) in the worker itself, its cost bounded by its
   size; any other in a forked child given :data:`RENDER_SECONDS`
   (:func:`render`); a child that takes longer, or writes more than
   :data:`MAX_HTML_BYTES`, or needs more than :data:`RENDER_MEMORY_BYTES` of
   memory beyond what the worker holds, is stopped, and the page is then
   written as plain text (:func:`plain_page`: linear, no Markdown, no
   highlighting), with a note saying so.

The notes are returned too, for the result's messages (and so the summary).
"""

from __future__ import annotations

import html as html_lib
import os
import resource
import select
import signal
import time
from collections.abc import Callable

import nbformat
from nbformat import NotebookNode

from autograder.outputs import page

RENDER_SECONDS = 10.0
MAX_CELL_CHARS = 100_000
MAX_OUTPUT_CHARS = 2_000_000  # an embedded image is base64 text
MAX_PAGE_CHARS = 8_000_000
MAX_HTML_BYTES = 32 * 2**20
#: address space a render child may take beyond the worker's own (torch's
#: mappings included in that): a page that needs more is written as plain text
RENDER_MEMORY_BYTES = 2 * 2**30
#: the exit status of a render child that ran out of its memory
_OUT_OF_MEMORY = 3


def _kb(n: int) -> str:
    return f"{n / 1000:.0f} KB"


def _cut_output(out: NotebookNode, room: int) -> int:
    """Cut the text of one output to ``room`` characters; returns what it holds."""
    size = 0
    for key in ("text", "evalue"):
        if key in out:
            text = str(out[key])
            out[key] = text[:room]
            size += len(out[key])
    if "traceback" in out:
        out["traceback"] = [str(t)[: max(room - size, 0)] for t in out["traceback"]]
        size += sum(len(t) for t in out["traceback"])
    data = out.get("data", {})
    for mime in list(data):
        value = data[mime]
        text = "".join(value) if isinstance(value, list) else str(value)
        if len(text) > room - size:
            del data[mime]
        else:
            size += len(text)
    if "data" in out and not data:
        data["text/plain"] = "[output too large to show]"
    return size


def cap(nb: NotebookNode) -> list[str]:
    """Cut ``nb`` in place to the sizes above; returns one note per cut."""
    notes: list[str] = []
    total = 0
    for i, cell in enumerate(nb.cells):
        source = str(cell.get("source", ""))
        if total >= MAX_PAGE_CHARS:
            cell.source = ""
            if cell.get("cell_type") == "code":
                cell.outputs = []
            notes.append(
                f"cell {i} and the cells after it are not shown: the page "
                f"is over {_kb(MAX_PAGE_CHARS)}"
            )
            for rest in nb.cells[i + 1 :]:
                rest.source = ""
                if rest.get("cell_type") == "code":
                    rest.outputs = []
            break
        if len(source) > MAX_CELL_CHARS:
            cell.source = source[:MAX_CELL_CHARS]
            notes.append(
                f"cell {i}: only the first {_kb(MAX_CELL_CHARS)} of its "
                f"{_kb(len(source))} are shown"
            )
        total += len(cell.source)
        for out in cell.get("outputs", []):
            room = min(MAX_OUTPUT_CHARS, max(MAX_PAGE_CHARS - total, 0))
            size = _cut_output(out, room)
            total += size
            if size >= room:
                notes.append(f"cell {i}: an output was cut to {_kb(room)}")
    return list(dict.fromkeys(notes))


def _limit_memory(extra: int) -> None:
    """Cap this process's address space at its current size plus ``extra`` bytes."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _in_child(
    make: Callable[[], str], seconds: float, memory: int = RENDER_MEMORY_BYTES
) -> tuple[str | None, str]:
    """``make()`` run in a forked child for at most ``seconds`` and ``memory``
    bytes beyond the worker's size: (html, why not)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, write, leave without cleanup
        code = 1
        try:
            os.close(r)
            _limit_memory(memory)
            data = make().encode()
            with os.fdopen(w, "wb") as f:
                f.write(data)
            code = 0
        except MemoryError:
            code = _OUT_OF_MEMORY
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    size, why = 0, ""
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"it took longer than {seconds:g} s"
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_HTML_BYTES:
                why = f"it was over {MAX_HTML_BYTES // 2**20} MB"
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        if why:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if why:
        return None, why
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _OUT_OF_MEMORY:
        return None, f"it needed more than {memory // 2**20} MB of memory"
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None, "rendering failed"
    return b"".join(chunks).decode(), ""


def plain_page(
    nb: NotebookNode, *, notebook: str, score: float, max_score: float, notes: list[str]
) -> str:
    """The feedback as plain text: every cell's source and text outputs, escaped."""
    esc = html_lib.escape
    parts = [
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8" />\n'
        f"<title>{esc(notebook)}</title>\n</head>\n<body>\n",
        f"<h4>{esc(notebook)} (Score: {score:g} / {max_score:g})</h4>\n",
    ]
    parts += [f"<p><strong>{esc(n)}</strong></p>\n" for n in notes]
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        label = f"cell {i} ({cell.get('cell_type', '?')})"
        if meta.get("grade") and "score" in meta:
            label += f", score {meta['score']:g} / {meta.get('points', 0):g}"
        parts.append(f"<h5>{esc(label)}</h5>\n<pre>{esc(str(cell.source))}</pre>\n")
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain")
            if out.get("output_type") == "error":
                text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
            if text:
                text = "".join(text) if isinstance(text, list) else str(text)
                parts.append(f"<pre>{esc(text)}</pre>\n")
    parts.append("</body>\n</html>\n")
    return page.assemble("".join(parts))


#: a page this small renders in the worker itself: the worst Markdown of these
#: sizes costs well under a second a cell and a few seconds in all (the cost
#: grows with the square of a cell's length), so no child and no timer is needed
SMALL_CELL_CHARS = 8_000
SMALL_PAGE_CHARS = 60_000


def _text_size(cell: NotebookNode) -> tuple[int, int]:
    """(the largest piece, all) of a cell's source and text outputs, in characters."""
    pieces = [len(str(cell.get("source", "")))]
    for out in cell.get("outputs", []):
        for key in ("text", "evalue"):
            if key in out:
                pieces.append(len(str(out[key])))
        for value in out.get("data", {}).values():
            pieces.append(len(value) if isinstance(value, str) else len(str(value)))
    return max(pieces), sum(pieces)


def small(nb: NotebookNode) -> bool:
    """Whether every cell and the whole page are under the in-worker sizes."""
    total = 0
    for cell in nb.cells:
        largest, size = _text_size(cell)
        if largest > SMALL_CELL_CHARS:
            return False
        total += size
    return total <= SMALL_PAGE_CHARS


def render(
    fb: NotebookNode,
    *,
    notebook: str,
    student: str,
    assignment: str,
    score: float,
    max_score: float,
    seconds: float = RENDER_SECONDS,
    late_penalty: float = 0.0,
) -> tuple[str, list[str]]:
    """The feedback page of ``fb`` within the limits; returns (html, notes).

    ``fb`` is cut in place (:func:`cap`); see the module docstring.
    """
    from autograder.outputs.feedback import render_html

    notes = [f"feedback page: {n}" for n in cap(fb)]
    if notes:
        text = "**Feedback shortened.** " + "; ".join(n for n in notes) + "."
        fb.cells.insert(0, nbformat.v4.new_markdown_cell(text))

    def draw() -> str:
        return render_html(
            fb,
            notebook=notebook,
            student=student,
            assignment=assignment,
            score=score,
            max_score=max_score,
            late_penalty=late_penalty,
        )

    if small(fb):  # bounded by its size: no child needed
        html, why = draw(), ""
    else:
        html, why = _in_child(draw, seconds)
    if html is None:
        notes.append(
            f"feedback page: rendering stopped ({why}); the page shows the "
            "notebook as plain text"
        )
        if fb.cells and fb.cells[0].get("source", "").startswith("**Feedback"):
            fb.cells.pop(0)
        html = plain_page(
            fb, notebook=notebook, score=score, max_score=max_score, notes=notes
        )
    return html, notes
