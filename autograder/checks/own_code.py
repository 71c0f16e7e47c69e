"""Run a student's function while recording what it calls.

A graded cell earns points for the student's own implementation. This module
runs the student's function under a profiler (``sys.setprofile``) that sees
every Python and C function it calls, and reports:

* the reference library (``trainlab``), apart from the input checks the notebook
  imports on purpose (``trainlab._validate`` and an explicit allowlist);
* the library's own version of the layer, by the C function's name
  (``torch.sigmoid``, ``F.relu``, ``torch._C._nn.elu``, ...) or by the Python
  module it lives in (``torch.nn.functional``, ``torch.nn.init``, scikit-learn);
* autograd (``torch.autograd.grad``, ``Tensor.backward``, ``torch.func``) in a
  manual backward pass.

Every call also runs under ``torch.no_grad()``, so a backward that relies on
autograd finds no graph to differentiate.

The profiler catches a call however the function was bound (an alias such as
``from torch import sigmoid as s`` included). The static scan of the notebook
(``autograder/outputs/scan.py``) is the second line of defence.

Example:
    >>> guard = Guard(Rules(c_names={"sigmoid"}), "sigmoid_forward")
    >>> out = guard.call(student_sigmoid_forward, x)   # Mistake if it cheats
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

import trainlab
from autograder.checks.core import Grader, Mistake, Report

_TRAINLAB_DIR = os.path.dirname(os.path.abspath(trainlab.__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep

#: Python files of torch whose functions compute gradients for you
_AUTOGRAD_FILES = (
    "autograd" + os.sep + "__init__.py",
    "autograd" + os.sep + "functional.py",
    "autograd" + os.sep + "graph.py",
    "autograd" + os.sep + "function.py",
    "_tensor.py",
    "_functorch" + os.sep,
    "func" + os.sep,
)
#: names (co_name) of the autograd entry points inside those files
_AUTOGRAD_NAMES = frozenset(
    {
        "grad",
        "backward",
        "vjp",
        "jvp",
        "jacobian",
        "hessian",
        "_engine_run_backward",
        "grad_and_value",
        "jacrev",
        "jacfwd",
        "apply",
    }
)
#: C functions that would switch the grader's profiler off or replace it
_PROFILER_C = frozenset({"setprofile", "settrace", "setprofile_all_threads"})
_THIS_FILE = __file__

#: C functions that run the backward engine
_AUTOGRAD_C = frozenset({"run_backward", "_run_backward"})


@dataclass(frozen=True)
class Rules:
    """What a graded function may not call.

    Attributes:
        c_names: names of C functions that are the library's version of the
            graded layer, e.g. ``{"sigmoid", "special_expit"}`` (the name torch
            reports for ``torch.sigmoid``, ``Tensor.sigmoid``, ...).
        modules: ``(path fragment, label)`` pairs: any Python function whose file
            path contains the fragment is forbidden, e.g.
            ``("torch/nn/init.py", "torch.nn.init")``.
        allow_reference: ``(file name, function name)`` pairs of ``trainlab``
            helpers the notebook imports on purpose, e.g.
            ``("activations.py", "_check_dout")``, or ``(file name, "*")`` for a
            whole module (the model a training function drives);
            ``_validate.py`` is always allowed. Whatever an allowed function
            calls in turn is allowed too.
        autograd: forbid autograd (manual backward passes).
        hint: what to use instead, appended to the message.
    """

    c_names: frozenset[str] = frozenset()
    modules: tuple[tuple[str, str], ...] = ()
    allow_reference: frozenset[tuple[str, str]] = frozenset()
    autograd: bool = True
    hint: str = ""

    def with_names(self, *names: str) -> Rules:
        """A copy that also forbids the C functions ``names``."""
        return Rules(
            self.c_names | frozenset(names),
            self.modules,
            self.allow_reference,
            self.autograd,
            self.hint,
        )


# torch's layer modules and functional API: never the graded function
TORCH_LAYERS = (
    (os.path.join("torch", "nn", "functional.py"), "torch.nn.functional"),
    (os.path.join("torch", "nn", "modules") + os.sep, "a torch.nn module"),
    (os.path.join("torch", "_ops.py"), "torch.ops"),
)
TORCH_INIT = ((os.path.join("torch", "nn", "init.py"), "torch.nn.init"),)
SKLEARN = ((os.sep + "sklearn" + os.sep, "scikit-learn"),)


def _in_trainlab(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_TRAINLAB_DIR)


def _label_c(fn: Any) -> str:
    """A readable name for a C function object: torch.sigmoid, Tensor.sigmoid."""
    name = getattr(fn, "__name__", "?")
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, torch.Tensor):
        return f"Tensor.{name}"
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{name}"
    return f"torch.{name}"


@dataclass
class Guard:
    """Calls student functions under the profiler and remembers any violation.

    Args:
        rules: what is forbidden.
        what: the graded function's name, for messages.
    """

    rules: Rules
    what: str
    violations: list[str] = field(default_factory=list)

    def _classify(self, frame: types.FrameType, event: str, arg: Any) -> str | None:
        # what the reference does inside a function the student may call (the
        # model's loss, the training loop) is not the student's doing
        caller = frame if event == "c_call" else frame.f_back
        if caller is not None and _in_trainlab(caller.f_code.co_filename):
            return None
        if event == "c_call":
            name = getattr(arg, "__name__", "")
            if name in _PROFILER_C and frame.f_code.co_filename != _THIS_FILE:
                return "a call that touches the profiler (sys.setprofile)"
            if name in self.rules.c_names:
                return f"the library's own {_label_c(arg)}"
            if self.rules.autograd and name in _AUTOGRAD_C:
                return "autograd (the backward engine)"
            return None
        if event != "call":
            return None
        code = frame.f_code
        path = os.path.abspath(code.co_filename)
        if path.startswith(_TRAINLAB_DIR):
            base = os.path.relpath(path, _TRAINLAB_DIR)
            allowed = self.rules.allow_reference
            if (
                base == "_validate.py"
                or (base, code.co_name) in allowed
                or (base, "*") in allowed
            ):
                return None
            module = "trainlab." + base.removesuffix(".py").replace(os.sep, ".")
            return f"the reference implementation {module}.{code.co_name}"
        for fragment, label in self.rules.modules:
            if fragment in path:
                return f"{label} ({code.co_name})"
        if self.rules.autograd and path.startswith(_TORCH_DIR):
            rel = path[len(_TORCH_DIR) :]
            if code.co_name in _AUTOGRAD_NAMES and rel.startswith(_AUTOGRAD_FILES):
                return f"autograd (torch {code.co_name})"
        return None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)``; raise a Mistake if it used something forbidden.

        The student's exceptions propagate unchanged (NotImplementedError included)
        unless a violation was seen first, which takes precedence.
        """
        if not callable(fn):
            raise Mistake(f"{self.what} should be a function; got {type(fn).__name__}")
        setprofile, getprofile = sys.setprofile, sys.getprofile
        if not all(
            isinstance(f, types.BuiltinFunctionType)
            and getattr(f, "__self__", None) is sys
            for f in (setprofile, getprofile)
        ):
            self.violations.append("a replaced sys.setprofile or sys.getprofile")
            raise Mistake(self._message())
        seen: list[str] = []

        def profile(frame: types.FrameType, event: str, arg: Any) -> None:
            found = self._classify(frame, event, arg)
            if found is not None and found not in seen:
                seen.append(found)

        previous = getprofile()
        error: BaseException | None = None
        result: Any = None
        current: Any = profile
        try:
            with torch.no_grad():
                setprofile(profile)
                try:
                    result = fn(*args, **kwargs)
                finally:
                    current = getprofile()
                    setprofile(previous)
        except BaseException as exc:  # re-raised below unless a violation wins
            error = exc
        if current is not profile:  # the student's code switched it off
            seen.append("a call that switched off the profiler (sys.setprofile)")
        for s in seen:
            if s not in self.violations:
                self.violations.append(s)
        if seen:
            raise Mistake(self._message())
        if error is not None:
            raise error
        return result

    def _message(self) -> str:
        used = "; ".join(self.violations)
        msg = (
            f"{self.what} used {used}. This cell is graded on your own "
            "implementation, so it earns 0 points."
        )
        if self.rules.hint:
            msg += f" {self.rules.hint}"
        return msg

    def report(self, grader: Grader) -> Report:
        """The grader's report, with every check zeroed if a violation was seen."""
        report = grader.report()
        if not self.violations:
            return report
        from autograder.checks.core import CheckResult

        msg = self._message()
        zeroed = [
            CheckResult(r.name, 0.0, r.max_points, r.message or msg)
            for r in report.results
        ]
        return Report(report.title, zeroed)


def rules(
    c_names: Iterable[str] = (),
    *,
    modules: tuple[tuple[str, str], ...] = TORCH_LAYERS,
    allow_reference: Iterable[tuple[str, str]] = (),
    autograd: bool = True,
    hint: str = "",
) -> Rules:
    """Build :class:`Rules` from plain iterables."""
    return Rules(
        frozenset(c_names),
        modules,
        frozenset(allow_reference),
        autograd,
        hint,
    )


def devices() -> list[torch.device]:
    """CPU, and CUDA when a device is present."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    return found
