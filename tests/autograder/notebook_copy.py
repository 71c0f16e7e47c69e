"""Student-like copies of reference functions, for testing the check functions.

A notebook defines the graded functions from their source, in the notebook's
own namespace: not in ``trainlab``'s files. The checks flag any call into
``trainlab``, so tests must grade such copies, never the reference objects.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import torch


def notebook_namespace(**helpers: Any) -> dict[str, Any]:
    """A fresh namespace like a notebook's: torch, plus the given helpers."""
    import builtins

    return {"__builtins__": builtins, "__name__": "__main__", "torch": torch, **helpers}


def define(namespace: dict[str, Any], source: str) -> None:
    """Run ``source`` (function definitions) in ``namespace``, as a cell would."""
    code = "from __future__ import annotations\n" + textwrap.dedent(source)
    exec(compile(code, "<notebook cell>", "exec"), namespace)  # noqa: S102


def copy_functions(
    namespace: dict[str, Any], *functions: Callable[..., Any]
) -> dict[str, Any]:
    """Define copies of ``functions`` (from their source) in ``namespace``."""
    for fn in functions:
        define(namespace, inspect.getsource(fn))
    return namespace
