"""Static scan for code that reaches around the grader, for the instructor's review.

Complements :mod:`autograder.outputs.scan` (reference imports, library layers,
autograd, monkeypatching) with what a notebook has no business doing:
running strings as code (``exec``, ``eval``, ``__import__``, ``importlib``),
raw file descriptors and sockets, processes (``fork``, ``subprocess``,
``os._exit``, ``kill``), the interpreter's insides (``gc``, frames,
``ctypes``), databases, reading the environment to detect the grader, and
file paths that name the course's private folders. Nothing here changes a
score; every finding goes into the report.
"""

from __future__ import annotations

import ast
import re

from nbformat import NotebookNode

#: dotted call names (or prefixes ending in ".") and what they mean
CALLS = {
    "exec": "runs a string as code",
    "eval": "runs a string as code",
    "compile": "compiles a string as code",
    "__import__": "imports by name at run time",
    "importlib.": "imports by name at run time",
    "os.write": "writes to a raw file descriptor",
    "os.dup": "duplicates a file descriptor",
    "os.dup2": "duplicates a file descriptor",
    "os.fdopen": "opens a raw file descriptor",
    "os.fork": "starts processes",
    "os.system": "runs a shell command",
    "os.popen": "runs a shell command",
    "os._exit": "ends the process",
    "os.kill": "sends signals",
    "subprocess.": "starts processes",
    "socket.": "opens a socket",
    "gc.get_objects": "searches the interpreter's memory",
    "gc.get_referrers": "searches the interpreter's memory",
    "sys._getframe": "reads the caller's frames",
    "inspect.currentframe": "reads the caller's frames",
    "inspect.stack": "reads the caller's frames",
    "ctypes.": "calls C code directly",
    "sqlite3.": "opens a database",
    "os.environ.get": "reads the environment",
    "os.getenv": "reads the environment",
}
IMPORTS = {
    "ctypes": "calls C code directly",
    "sqlite3": "opens a database",
    "psycopg2": "opens a database",
    "sqlalchemy": "opens a database",
    "socket": "opens a socket",
    "subprocess": "starts processes",
    "multiprocessing": "starts processes",
    "gc": "can search the interpreter's memory",
    "autograder": "imports the grader's own code",
}
#: attributes that reach around the write-it-yourself guard: the grader's
#: closures and frames, and torch's switches for its Python dispatch
ATTRIBUTES = {
    "__closure__": "reads or changes a function's closure",
    "cell_contents": "reads or changes a function's closure",
    "f_locals": "reads another frame's variables",
    "f_globals": "reads another frame's variables",
    "f_back": "walks the call stack",
    "tb_frame": "walks the call stack",
    "gi_frame": "walks the call stack",
    "_DisableTorchDispatch": "switches off torch's Python dispatch",
    "_DisableTorchFunction": "switches off torch's Python dispatch",
    "_DisableTorchFunctionSubclass": "switches off torch's Python dispatch",
    "_pop_mode": "removes a torch dispatch mode",
    "_pop_mode_temporarily": "removes a torch dispatch mode",
    "_unset_dispatch_mode": "removes a torch dispatch mode",
    "_ExcludeDispatchKeyGuard": "changes torch's dispatch keys",
    "_dispatch_tls_set_dispatch_key_excluded": "changes torch's dispatch keys",
}
#: IPython's history of inputs and outputs (test cells' source included)
HISTORY = frozenset({"In", "Out", "_ih", "_oh", "_i", "_ii", "_iii", "get_ipython"})
PRIVATE_PATH = re.compile(
    r"(solutions|grading|gradebook|autograded|\.db\b|/proc/|nbgrader_config|"
    r"sitecustomize|conftest|startup)",
    re.I,
)
_MAGIC = re.compile(r"^\s*[%!]")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _unchanged(cell: NotebookNode) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if not meta.get("locked") or meta.get("solution") or "checksum" not in meta:
        return False
    try:
        from nbgrader.utils import compute_checksum

        return compute_checksum(cell) == meta["checksum"]
    except Exception:  # noqa: BLE001 - forged metadata: scan it
        return False


def scan(nb: NotebookNode) -> list[str]:
    """Findings as lines ``cell N, line L: [reach-around] what``."""
    found: list[str] = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or _unchanged(cell):
            continue
        src = "\n".join(
            "" if _MAGIC.match(s) else s
            for s in str(cell.get("source", "")).split("\n")
        )
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                for key, meaning in CALLS.items():
                    if name == key or (key.endswith(".") and name.startswith(key)):
                        what = f"{name}(): {meaning}"
                        break
            elif isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for m in mods:
                    if m.split(".")[0] in IMPORTS:
                        what = f"imports {m}: {IMPORTS[m.split('.')[0]]}"
            elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
                what = f"uses .{node.attr}: {ATTRIBUTES[node.attr]}"
            elif isinstance(node, ast.Name) and node.id in HISTORY:
                what = f"reads {node.id}: the kernel's input/output history"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if PRIVATE_PATH.search(node.value) and len(node.value) < 300:
                    what = f"names a private path: {node.value[:80]!r}"
            if what:
                line = getattr(node, "lineno", 0)
                found.append(f"cell {i}, line {line}: [reach-around] {what}")
    return list(dict.fromkeys(found))
