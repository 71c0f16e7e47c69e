"""Static scan of a submitted notebook: what an instructor should look at.

The scan parses every code cell (it runs nothing) and reports:

- ``reference-import``: the reference library's graded code imported (``from
  trainlab.batchnorm import batchnorm_forward as f``, ``import trainlab.gradcheck``);
  private helpers (``_check_params``), non-callables (``Cache``) and the input
  checks of ``trainlab._validate`` are fine;
- ``library-layer``: inside a graded function (one defined in a solution cell),
  a call to torch's own layer: ``torch.nn.functional.*``, a ``torch.nn`` module,
  ``torch.nn.init.*``, ``torch.batch_norm``/``layer_norm``/``group_norm``/
  ``instance_norm`` and their ``native_``/``torch.ops.aten`` forms,
  ``torch.autograd.gradcheck``, a ``trainlab`` function, or the activation the
  function is named after (``torch.sigmoid`` inside ``sigmoid_forward``);
- ``autograd``: inside a graded function, ``.backward(``, ``torch.autograd``,
  ``torch.func``, ``requires_grad`` or ``.grad``;
- ``monkeypatch``: anywhere, an assignment to an attribute of (or an item of) an
  imported module such as torch, builtins, sys, trainlab or autograder,
  ``setattr``/``delattr`` on one, writes to ``sys.modules`` or ``__builtins__``,
  and ``sys.setprofile``/``sys.settrace`` calls (which would blind the
  run-time guard);
- ``syntax``: a cell that does not parse.

Unchanged instructor cells (locked cells whose nbgrader checksum still matches,
or whose source equals the source notebook's) are skipped.

Usage::

    python -m autograder.outputs.scan submission.ipynb [--source solutions/x/x.ipynb]

prints one line per finding and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder.outputs.sanitize import one_line

#: trainlab modules a notebook may import anything from
ALLOWED_REFERENCE = frozenset({"trainlab._validate", "trainlab.data"})
#: modules whose attributes a notebook must not reassign
PROTECTED = (
    "torch",
    "builtins",
    "sys",
    "trainlab",
    "autograder",
    "nbgrader",
    "numpy",
    "math",
    "importlib",
    "inspect",
)
#: torch functions that are a whole normalization layer (C or Python)
NORM_NAMES = frozenset(
    {
        "batch_norm",
        "native_batch_norm",
        "_native_batch_norm_legit",
        "cudnn_batch_norm",
        "layer_norm",
        "native_layer_norm",
        "group_norm",
        "native_group_norm",
        "instance_norm",
        "rms_norm",
    }
)
#: activation names: flagged inside a graded function named after them
ACTIVATION_NAMES = frozenset(
    {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "prelu", "expit", "celu", "selu"}
)
AUTOGRAD_ATTRS = frozenset({"backward", "requires_grad", "requires_grad_", "grad"})


@dataclass(frozen=True)
class Finding:
    """One thing to review.

    Attributes:
        cell: index of the cell in the notebook.
        grade_id: the cell's nbgrader grade_id, or "" if it has none.
        line: line number inside the cell (1-based).
        kind: ``reference-import``, ``library-layer``, ``autograd``,
            ``monkeypatch`` or ``syntax``.
        message: what was found, in words.
    """

    cell: int
    grade_id: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"cell {self.cell}" + (f" ({self.grade_id})" if self.grade_id else "")
        return f"{where}, line {self.line}: [{self.kind}] {self.message}"


_MAGIC = re.compile(r"^\s*[%!]")


def _parse(source: str) -> ast.Module:
    """Parse a cell, blanking IPython magics and shell escapes (keeps lines)."""
    lines = ["" if _MAGIC.match(line) else line for line in source.split("\n")]
    return ast.parse("\n".join(lines))


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``F.batch_norm`` -> ``torch.nn.functional.batch_norm`` using import aliases."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _collect_aliases(trees: Iterable[ast.Module]) -> dict[str, str]:
    """Names bound by imports anywhere in the notebook -> what they refer to."""
    aliases: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _is_reference_object(module: str, name: str) -> bool:
    """Whether ``from module import name`` brings in graded reference code."""
    if module in ALLOWED_REFERENCE or name.startswith("_"):
        return False
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return True  # a submodule, or something unknown: show it
    if inspect.ismodule(obj):
        return obj.__name__ not in ALLOWED_REFERENCE
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return str(getattr(obj, "__module__", "")).startswith("trainlab")
    return False


def _reference_imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if (
                    a.name.split(".")[0] == "trainlab"
                    and a.name not in ALLOWED_REFERENCE
                ):
                    if a.name == "trainlab" and not a.asname:
                        continue  # the package itself: flagged where used
                    found.append((node.lineno, f"imports {a.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != "trainlab":
                continue
            for a in node.names:
                if a.name == "*" or _is_reference_object(node.module, a.name):
                    alias = f" as {a.asname}" if a.asname else ""
                    found.append(
                        (node.lineno, f"imports {a.name}{alias} from {node.module}")
                    )
    return found


def _layer_call(qualified: str, function: str) -> str | None:
    """Why a call inside ``function`` looks like the library's layer, or None."""
    parts = qualified.split(".")
    last = parts[-1]
    if qualified.startswith("trainlab.") and not (
        last.startswith("_") or qualified.rsplit(".", 1)[0] in ALLOWED_REFERENCE
    ):
        return f"calls the reference {qualified}"
    if not qualified.startswith("torch."):
        if last in NORM_NAMES:
            return f"calls {qualified} (a library normalization layer)"
        return None
    if qualified.startswith(("torch.nn.functional.", "torch.nn.init.")):
        return f"calls {qualified}"
    if qualified.startswith(("torch.ops.", "torch._C.")):
        return f"calls {qualified} (torch's operators, below its Python API)"
    if len(parts) == 3 and parts[1] == "nn" and last[:1].isupper():
        return f"builds the torch module {qualified}"
    if qualified.startswith("torch.autograd.grad") and "check" in qualified:
        return f"calls {qualified}"
    if last in NORM_NAMES:
        return f"calls {qualified} (torch's own normalization layer)"
    return None


def _activation_call(node: ast.Call, function: str) -> str | None:
    """``torch.sigmoid(x)`` or ``x.sigmoid()`` inside ``sigmoid_forward``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    base = re.sub(r"_(forward|backward)$", "", function)
    if base in ACTIVATION_NAMES and name.rstrip("_") in {base, "expit"}:
        return f"calls {name} inside {function}: the library's own {base}"
    return None


@dataclass(frozen=True)
class Allowed:
    """What is not a finding: what the reference itself calls, what the checks allow.

    Attributes:
        calls: graded function name -> the qualified names and method names its
            reference implementation calls (``torch.tanh`` in ``tanh_forward``).
        reference: ``trainlab`` functions the checks let graded code call
            (``trainlab.training.train``; ``trainlab.net.*`` for a whole module).
    """

    calls: dict[str, frozenset[str]]
    reference: frozenset[str]

    def permits(self, function: str, qualified: str | None, method: str) -> bool:
        used = self.calls.get(function, frozenset())
        if qualified and qualified in used:
            return True
        if method and f".{method}" in used:
            return True
        if qualified and qualified.startswith("trainlab."):
            module = qualified.rsplit(".", 1)[0]
            return qualified in self.reference or f"{module}.*" in self.reference
        return False


def _calls_of(fn) -> frozenset[str]:
    """The qualified and ``.method`` names a reference function calls."""
    module = inspect.getmodule(fn)
    tree = ast.parse(inspect.getsource(module)) if module else ast.Module([], [])
    aliases = _collect_aliases([tree])
    names: set[str] = set()
    body = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(body):
        if isinstance(node, ast.Call):
            q = _dotted(node.func, aliases)
            if q:
                names.add(q)
            if isinstance(node.func, ast.Attribute):
                names.add(f".{node.func.attr}")
    return frozenset(names)


def allowed_by(source: NotebookNode | None) -> Allowed:
    """:class:`Allowed` for an assignment's source notebook: its generated cells
    name their reference function, its hidden tests name the check module whose
    rules apply."""
    calls: dict[str, frozenset[str]] = {}
    modules: set[str] = set()
    for cell in source.cells if source is not None else []:
        modules.update(_CHECKS_IMPORT.findall(str(cell.get("source", ""))))
        origin = cell.get("metadata", {}).get("trainlab", {}).get("generated_from")
        if not origin:
            continue
        module, _, name = str(origin).partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
            calls[name] = _calls_of(fn)
        except Exception:  # noqa: BLE001 - a moved function: no exemption
            continue
    allowed = frozenset().union(*(_allowed_reference(m) for m in sorted(modules)))
    return Allowed(calls, allowed)


_CHECKS_IMPORT = re.compile(r"from\s+(autograder\.checks\.\w+)\s+import")


@functools.cache
def _allowed_reference(name: str) -> frozenset[str]:
    """``trainlab`` functions the rules of the check module ``name`` allow."""
    from autograder.checks.own_code import Rules

    found: set[str] = set()
    try:
        module = importlib.import_module(name)
    except ImportError:
        return frozenset()
    for value in vars(module).values():
        rules = getattr(value, "rules", value)  # a Rules, or a spec holding one
        if isinstance(rules, Rules):
            for file, fn in rules.allow_reference:
                stem = "trainlab." + file.removesuffix(".py").replace("/", ".")
                found.add(f"{stem}.{fn}")
    return frozenset(found)


def _function_findings(
    fn: ast.FunctionDef, aliases: dict[str, str], allowed: Allowed | None = None
) -> list[tuple[int, str, str]]:
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            qualified = _dotted(node.func, aliases)
            why = _layer_call(qualified, fn.name) if qualified else None
            why = why or _activation_call(node, fn.name)
            method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if (
                why
                and allowed is not None
                and allowed.permits(fn.name, qualified, method)
            ):
                why = None
            if why:
                found.append((node.lineno, "library-layer", f"{fn.name} {why}"))
            if qualified and qualified.startswith(("torch.autograd", "torch.func")):
                if "check" not in qualified:
                    found.append(
                        (node.lineno, "autograd", f"{fn.name} calls {qualified}")
                    )
        if isinstance(node, ast.Attribute) and node.attr in AUTOGRAD_ATTRS:
            found.append(
                (node.lineno, "autograd", f"{fn.name} uses autograd (.{node.attr})")
            )
        if isinstance(node, ast.keyword) and node.arg == "requires_grad":
            found.append(
                (
                    getattr(node, "lineno", fn.lineno),
                    "autograd",
                    f"{fn.name} uses autograd (requires_grad=)",
                )
            )
    return found


def _protected(qualified: str | None) -> bool:
    return bool(qualified) and qualified.split(".")[0] in PROTECTED


def _monkeypatches(tree: ast.Module, aliases: dict[str, str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute):
                    q = _dotted(sub, aliases)
                    if _protected(q):
                        found.append((node.lineno, f"assigns to {q}"))
                elif isinstance(sub, ast.Subscript):
                    q = _dotted(sub.value, aliases)
                    if _protected(q):
                        found.append((node.lineno, f"assigns to an item of {q}"))
                elif isinstance(sub, ast.Name) and sub.id == "__builtins__":
                    found.append((node.lineno, "assigns to __builtins__"))
        if isinstance(node, ast.Call):
            q = _dotted(node.func, aliases) or ""
            if q in {"setattr", "delattr"} and node.args:
                target = _dotted(node.args[0], aliases)
                if _protected(target) or (
                    isinstance(node.args[0], ast.Name) and node.args[0].id in aliases
                ):
                    found.append((node.lineno, f"{q} on {target}"))
            elif q in {"sys.setprofile", "sys.settrace", "threading.setprofile"}:
                found.append((node.lineno, f"calls {q}"))
            elif q.startswith("sys.modules.") and q.rsplit(".", 1)[-1] in {
                "update",
                "pop",
                "setdefault",
                "__setitem__",
            }:
                found.append((node.lineno, f"changes sys.modules ({q})"))
    return found


def _unchanged_instructor_cell(
    cell: NotebookNode, source_cells: dict[str, str]
) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if not meta.get("locked") or meta.get("solution"):
        return False
    if "checksum" in meta:
        from nbgrader.utils import compute_checksum

        if compute_checksum(cell) == meta["checksum"]:
            return True
    gid = meta.get("grade_id")
    return gid in source_cells and source_cells[gid] == cell.source


def _as_v4(nb: NotebookNode | dict | str | Path) -> NotebookNode:
    """A notebook (or the one at a path) as nbformat 4 ``NotebookNode`` objects."""
    if isinstance(nb, str | Path):
        return nbformat.read(str(nb), as_version=4)
    if nb.get("nbformat", 4) != 4:
        nb = nbformat.convert(nbformat.from_dict(nb), 4)
    return nbformat.from_dict(nb)


def scan_notebook(
    nb: NotebookNode | str | Path, source: NotebookNode | str | Path | None = None
) -> list[Finding]:
    """Findings for a notebook, in cell order.

    Args:
        nb: the submission (a notebook of any version nbformat reads, or its
            path).
        source: the instructor's source notebook; its locked cells are skipped
            when the submission kept them unchanged.

    Returns:
        A list of :class:`Finding` (empty when nothing looks wrong).
    """
    nb = _as_v4(nb)
    source_cells: dict[str, str] = {}
    if source is not None:
        source = _as_v4(source)
        for c in source.cells:
            gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                source_cells[gid] = c.source

    parsed: list[tuple[int, NotebookNode, ast.Module | None]] = []
    findings: list[Finding] = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        try:
            tree = _parse(cell.source)
        except SyntaxError as exc:
            findings.append(
                Finding(i, gid, exc.lineno or 1, "syntax", f"does not parse: {exc.msg}")
            )
            tree = None
        parsed.append((i, cell, tree))
    aliases = _collect_aliases(t for _, _, t in parsed if t is not None)
    allowed = allowed_by(source) if source is not None else None

    for i, cell, tree in parsed:
        if tree is None or _unchanged_instructor_cell(cell, source_cells):
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id", "")
        for line, msg in _reference_imports(tree):
            findings.append(Finding(i, gid, line, "reference-import", msg))
        if meta.get("solution"):
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    for line, kind, msg in _function_findings(node, aliases, allowed):
                        findings.append(Finding(i, gid, line, kind, msg))
        for line, msg in _monkeypatches(tree, aliases):
            findings.append(Finding(i, gid, line, "monkeypatch", msg))
    return sorted(set(findings), key=lambda f: (f.cell, f.line, f.kind, f.message))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.outputs.scan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--source", type=Path, help="the instructor's source notebook")
    args = parser.parse_args(argv)
    any_found = False
    for path in args.notebooks:
        try:
            found = scan_notebook(path, args.source)
        except Exception as exc:  # not a notebook: say so and go on
            print(f"{path}: cannot scan ({type(exc).__name__}: {one_line(exc)})")
            any_found = True
            continue
        for f in found:
            print(f"{path}: {f}")
        any_found = any_found or bool(found)
    return 1 if any_found else 0


if __name__ == "__main__":
    sys.exit(main())
