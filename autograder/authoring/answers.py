"""Which statements of a student's answer cell the verification runs.

The runner (:mod:`autograder.sandbox.runner`) defines the student's functions without
running the rest of the cell: imports, ``def`` and ``class`` statements and
simple assignments (constants, names, containers of those) are kept; loops,
calls and prints at the top level are dropped, so code outside functions can
neither loop forever in the runner nor prepare anything for the checks.
"""

from __future__ import annotations

import ast
import re

_MAGIC = re.compile(r"^\s*[%!]")


def answer_statements(source: str) -> tuple[str, list[int]]:
    """Keep a cell's imports, definitions and simple assignments.

    Returns:
        The filtered source (line numbers kept, dropped lines blanked) and the
        first line of each dropped statement.
    """
    lines = ["" if _MAGIC.match(line) else line for line in source.split("\n")]
    tree = ast.parse("\n".join(lines))
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    kept, dropped = [], []
    for node in tree.body:
        simple = isinstance(node, ast.Assign | ast.AnnAssign) and _simple(node.value)
        if isinstance(node, keep + (ast.AsyncFunctionDef,)) or simple:
            kept.append(node)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            dropped.append(node.lineno)
    tree.body = kept
    return ast.unparse(tree) if kept else "", dropped


def _simple(node: ast.AST | None) -> bool:
    """A constant, a name, an attribute, or a container of those."""
    if node is None or isinstance(node, ast.Constant | ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _simple(node.value)
    if isinstance(node, ast.UnaryOp):
        return _simple(node.operand)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_simple(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(
            _simple(k) and _simple(v)
            for k, v in zip(node.keys, node.values, strict=True)
        )
    return False
