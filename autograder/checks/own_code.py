"""Run a student's function while recording what it calls.

A graded cell earns points for the student's own implementation. This module
runs the student's function under a profiler (``sys.setprofile``) that sees
every Python and C function it calls, and reports:

* the reference library (``trainlab``), apart from the input checks the notebook
  imports on purpose (``trainlab._validate`` and an explicit allowlist);
* the library's own version of the layer, by the C function's name
  (``torch.sigmoid``, ``F.relu``, ``torch._C._nn.elu``, ...) or by the Python
  module it lives in (``torch.nn.functional``, ``torch.nn.init``, scikit-learn);
* autograd (``torch.autograd.grad``, ``Tensor.backward``, ``torch.func``, and
  forward mode: ``torch.autograd.forward_ad``'s dual numbers) in a manual
  backward pass.

Every call also runs under ``torch.no_grad()`` with forward-mode gradients off,
so a backward that relies on autograd finds no graph to differentiate and no
tangent to read.

The profiler catches a call however the function was bound (an alias such as
``from torch import sigmoid as s`` included). The static scan of the notebook
(``autograder/outputs/scan.py``) is the second line of defence.

Example:
    >>> guard = Guard(Rules(c_names={"sigmoid"}), "sigmoid_forward")
    >>> out = guard.call(student_sigmoid_forward, x)   # Mistake if it cheats
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import trainlab
from autograder.checks import placement
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
    "autograd" + os.sep + "forward_ad.py",
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
        # forward mode (torch.autograd.forward_ad)
        "make_dual",
        "unpack_dual",
        "enter_dual_level",
    }
)
#: C functions that would switch the grader's profiler off or replace it
_PROFILER_C = frozenset({"setprofile", "settrace", "setprofile_all_threads"})
_THIS_FILE = __file__

#: C functions that run the backward engine
_AUTOGRAD_C = frozenset({"run_backward", "_run_backward"})
#: C functions of forward-mode autograd (dual numbers), and its switch
_FORWARD_AD_C = frozenset(
    {"_make_dual", "_unpack_dual", "_enter_dual_level", "_set_fwd_grad_enabled"}
)
#: C functions that start a thread or a process, where no dispatch mode follows
_THREAD_C = frozenset(
    {
        "start_new_thread",
        "start_joinable_thread",
        "fork",
        "forkpty",
        "fork_exec",
        "posix_spawn",
        "posix_spawnp",
        "system",
    }
)


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
    # folding batchnorm into a layer (torch.nn.utils.fuse_conv_bn_weights, ...)
    (os.path.join("torch", "nn", "utils", "fusion.py"), "torch's batchnorm fusion"),
    # the reference implementations of torch's own test suite
    (os.path.join("torch", "testing", "_internal") + os.sep, "torch's test suite"),
)
#: folders of torch's Python versions of its own operators (decompositions,
#: references, the compiler's decompositions): a function there named like an
#: operator the rules forbid is that operator, reached below the dispatcher
_TORCH_PY_OPS = tuple(
    os.path.join(*parts) + os.sep
    for parts in (("_decomp",), ("_refs",), ("_prims",), ("_inductor",))
)
# torch.ops.aten.* needs no entry: the dispatch guard sees the operator itself
TORCH_INIT = ((os.path.join("torch", "nn", "init.py"), "torch.nn.init"),)
SKLEARN = ((os.sep + "sklearn" + os.sep, "scikit-learn"),)


#: (rules, code object) -> what calling it means; filled as calls are seen
_VERDICTS: dict[tuple[Rules, types.CodeType], str | None] = {}


@functools.lru_cache(maxsize=4096)
def _abspath(filename: str) -> str:
    return os.path.abspath(filename)


def _in_trainlab(filename: str) -> bool:
    return _abspath(filename).startswith(_TRAINLAB_DIR)


#: the code objects of the reference library, taken at trusted moments (this
#: module's import, :func:`warm_up`): a function compiled by student code under
#: a file name of trainlab's is not among them
_REFERENCE: set[types.CodeType] = set()


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


_SCANNED: set[str] = set()
_SEEN_COUNT = [0]


def refresh_reference() -> None:
    """Record the code of every ``trainlab`` module loaded since the last time.

    Called where no student code has run in this process yet (the runner's
    start) or where none ever runs (the verifier's :meth:`Guard.call`).
    """
    if len(sys.modules) == _SEEN_COUNT[0]:
        return  # nothing imported since the last scan
    _SEEN_COUNT[0] = len(sys.modules)
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != "trainlab" or module is None or name in _SCANNED:
            continue
        _SCANNED.add(name)
        if not _in_trainlab(getattr(module, "__file__", None) or "?"):
            continue
        for value in list(vars(module).values()):
            items = [value]
            if isinstance(value, type) and value.__module__ == name:
                items = list(vars(value).values())
            for item in items:
                item = getattr(item, "__func__", item)
                fns = [item, getattr(item, "fget", None)]
                while hasattr(fns[-1], "__wrapped__") and len(fns) < 10:
                    fns.append(fns[-1].__wrapped__)  # under a decorator
                for fn in fns:
                    code = getattr(fn, "__code__", None)
                    if isinstance(code, types.CodeType) and _in_trainlab(
                        code.co_filename
                    ):
                        _REFERENCE.update(_codes(code))


def _is_reference(code: types.CodeType) -> bool:
    """Code of the real reference library (not merely under its file name)."""
    return code in _REFERENCE


def _label_c(fn: Any) -> str:
    """A readable name for a C function object: torch.sigmoid, Tensor.sigmoid."""
    name = getattr(fn, "__name__", "?")
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, torch.Tensor):
        return f"Tensor.{name}"
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{name}"
    return f"torch.{name}"


_PREFIXES = ("native_", "cudnn_", "miopen_", "mkldnn_", "fused_", "mps_", "slow_")
_SUFFIXES = (
    "_backward",
    "_forward",
    "_with_update",
    "_no_update",
    "_legit",
    "_no_training",
    "_functional",
    "_impl_index",
    "_update_stats",
    "_stats",
    "_elemt",
    "_reduce",
    "_data",
    "_kernel",
    "_out",
    "_nd",
    "_2d",
)


@functools.lru_cache(maxsize=8192)
def op_family(name: str) -> str:
    """The layer an operator computes, whatever torch calls its variant.

    ``_batch_norm_with_update``, ``native_batch_norm_backward`` and
    ``_native_batch_norm_legit_functional`` are all ``batch_norm``; a rule that
    forbids one name forbids its family, so a new variant in a later torch is
    caught too.
    """
    name = name.lstrip("_")
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name, changed = name[len(prefix) :].lstrip("_"), True
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name, changed = name[: -len(suffix)], True
    return name


@functools.lru_cache(maxsize=256)
def _families(names: frozenset[str]) -> frozenset[str]:
    """The families the rules forbid whole. A backward kernel's name (e.g.
    ``tanh_backward``, where ``torch.tanh`` itself is fine in the forward)
    forbids that exact operator only."""
    return frozenset(op_family(n) for n in names if not n.endswith("_backward"))


def _from_reference() -> bool:
    """Whether a reference function (an allowed ``trainlab`` helper) is running."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        if _is_reference(frame.f_code):
            return True
        frame = frame.f_back
    return False


def _records_graph(args: Any, kwargs: Any) -> bool:
    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in leaves)


@contextlib.contextmanager
def _forward_ad_off() -> Iterator[None]:
    """Forward-mode gradients off (as ``no_grad`` is for reverse mode): no
    operation inside computes a tangent, so dual numbers carry nothing."""
    before = torch._C._is_fwd_grad_enabled()
    torch._C._set_fwd_grad_enabled(False)
    try:
        yield
    finally:
        torch._C._set_fwd_grad_enabled(before)


class _OpGuard(TorchDispatchMode):
    """Sees every torch operator a graded call runs, however it was reached.

    An operator whose name is one of the rules' ``c_names`` (torch's own
    ``native_batch_norm``, ``sigmoid``, ...) is the library's version of the
    layer, unless an allowed reference helper is running it; an operator run
    with grad mode on and an input that requires grad records an autograd
    graph, which a manual backward may not do.
    """

    def __init__(self, rules: Rules, seen: list[str]) -> None:
        super().__init__()
        self.rules = rules
        self.seen = seen
        self.exited_cleanly = False
        self.busy = False  # the profiler ignores the mode's own Python calls
        self._families = _families(rules.c_names)

    def _note(self, text: str) -> None:
        if text not in self.seen:
            self.seen.append(text)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        busy, self.busy = self.busy, True
        try:
            packet = getattr(func, "overloadpacket", func)
            name = getattr(packet, "__name__", "")
            if (
                name in self.rules.c_names or op_family(name) in self._families
            ) and not _from_reference():
                self._note(f"the library's own {name} (torch.ops.aten.{name})")
            if (
                self.rules.autograd
                and torch.is_grad_enabled()
                and _records_graph(args, kwargs)
            ):
                self._note("autograd (a graph recorded for a backward pass)")
            return func(*args, **kwargs)
        finally:
            self.busy = busy

    def __exit__(self, *exc: Any) -> Any:
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        self.exited_cleanly = _get_current_dispatch_mode() is self
        try:
            return super().__exit__(*exc)
        except Exception:  # noqa: BLE001 - the student's code emptied the stack
            self.exited_cleanly = False
            return None


_warm: list[bool] = []


def warm_up() -> None:
    """Pay the first dispatch mode's lazy imports (about a second) now, once.

    Outside the profiler, which would otherwise classify every function of
    those imports; a grading worker calls it before it forks.
    """
    refresh_reference()
    _warm_dispatch()


def _warm_dispatch() -> None:
    if not _warm:
        with torch.no_grad(), _OpGuard(Rules(), []):
            torch.zeros(2, dtype=torch.float64).add(1).sum()
        _warm.append(True)


#: tensors a student's function changed in place (restored since): id -> ref
_CHANGED: dict[int, weakref.ReferenceType] = {}


def was_changed(t: torch.Tensor) -> bool:
    """Whether a graded call changed ``t`` in place (it has been restored)."""
    ref = _CHANGED.get(id(t))
    return ref is not None and ref() is t


def _course_dataclass(value: Any) -> bool:
    """An instance of a dataclass of the reference library (a data split)."""
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.split(".")[0] == "trainlab"
    )


def _copy(t: torch.Tensor) -> torch.Tensor:
    """A copy with the same strides (a non-contiguous input stays one)."""
    with torch.no_grad():
        out = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=t.device)
        return out.copy_(t)


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shape, dtype, device and values, NaN equal to NaN (meta: no values)."""
    if "meta" in (a.device.type, b.device.type):  # shapes only: no values
        return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and a.device == b.device
        and torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


class Protected:
    """Copies of a call's tensor arguments: what the student's function gets.

    Every tensor argument, and every tensor in a list, tuple or dict argument,
    is replaced by a copy, except the arguments named in ``inplace``, which the
    function updates by design (batchnorm's running statistics) and which it
    therefore gets as they are. After the call, :meth:`report` compares each
    copy with its original: the caller's tensors never change, so an answer key
    computed after the call sees the inputs the student was given, and a
    changed copy marks its original for :func:`expect_unchanged`.
    """

    def __init__(self, args: Sequence[Any], kwargs: dict[str, Any], inplace) -> None:
        keep = frozenset(inplace)
        self.pairs: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self.args = tuple(
            self._wrap(f"argument {i + 1}", a, i in keep) for i, a in enumerate(args)
        )
        self.kwargs = {k: self._wrap(k, v, k in keep) for k, v in kwargs.items()}

    def _one(self, label: str, t: torch.Tensor) -> torch.Tensor:
        c = _copy(t)
        self.pairs.append((label, t, c))
        return c

    def _wrap(self, label: str, value: Any, keep: bool) -> Any:
        if keep:
            return value
        if isinstance(value, torch.Tensor):
            return self._one(label, value)
        if type(value) in (list, tuple):
            items = [
                self._one(label, v) if isinstance(v, torch.Tensor) else v for v in value
            ]
            return items if type(value) is list else tuple(items)
        if type(value) is dict:
            return {
                k: self._one(f"{label}[{k!r}]", v) if isinstance(v, torch.Tensor) else v
                for k, v in value.items()
            }
        if _course_dataclass(value):  # a data split: its tensors, copied
            changes = {
                f.name: self._one(f"{label}.{f.name}", getattr(value, f.name))
                for f in dataclasses.fields(value)
                if isinstance(getattr(value, f.name), torch.Tensor)
            }
            return dataclasses.replace(value, **changes) if changes else value
        return value

    def report(self, changed: list[str] | None = None) -> None:
        """Mark the originals whose copies the call changed."""
        for label, original, copy in self.pairs:
            if not same_values(original, copy):
                _CHANGED[id(original)] = weakref.ref(original)
                if changed is not None and label not in changed:
                    changed.append(label)


def _protected_attributes() -> list[tuple[Any, str, Any]]:
    import builtins

    owners: list[tuple[Any, tuple[str, ...]]] = [
        (Guard, ("call", "call_here", "_classify", "_message", "report")),
        (_OpGuard, ("__torch_dispatch__", "__exit__", "__init__")),
        (TorchDispatchMode, ("__enter__", "__exit__")),
        (
            sys.modules[__name__],
            ("Protected", "_OpGuard", "Guard", "_copy", "same_values"),
        ),
        (sys, ("setprofile", "getprofile")),
        (torch, ("no_grad", "is_grad_enabled")),
        (torch._C, ("_set_fwd_grad_enabled", "_is_fwd_grad_enabled")),
        (builtins, ("isinstance", "getattr", "callable", "any", "len")),
    ]
    return [(o, n, o.__dict__[n]) for o, names in owners for n in names]


def integrity_check(
    extra: Iterable[tuple[Any, Iterable[str]]] = (),
) -> Callable[[], str]:
    """A check of the guard's own functions, with the originals taken now.

    Args:
        extra: more ``(owner, attribute names)`` to protect, e.g. the
            runner's request loop.

    Take it before any student code runs; the originals live in the returned
    function's closure.
    """
    table = tuple(_protected_attributes()) + tuple(
        (o, n, o.__dict__[n]) for o, names in extra for n in names
    )

    def check_integrity() -> str:
        """Restore the guard's own functions if student code replaced them.

        Returns what had been changed ('' when nothing was): the graded call
        is then refused.
        """
        changed = []
        for owner, name, original in table:
            if owner.__dict__.get(name) is not original:
                changed.append(f"{getattr(owner, '__name__', owner)}.{name}")
                setattr(owner, name, original)
        if not changed:
            return ""
        return "a change to the grader's own code (" + ", ".join(changed) + ")"

    return check_integrity


@dataclass
class Guard:
    """Calls student functions under the profiler and remembers any violation.

    Args:
        rules: what is forbidden.
        what: the graded function's name, for messages.
        inplace: arguments the function may change in place (positions or
            keyword names); every other tensor argument is restored.
    """

    rules: Rules
    what: str
    violations: list[str] = field(default_factory=list)
    #: arguments the function updates in place by design (positions or names),
    #: e.g. batchnorm's running statistics: ``(3, 4, "running_mean", ...)``
    inplace: tuple[int | str, ...] = ()
    #: the names of the arguments the student's function changed (restored)
    changed: list[str] = field(default_factory=list)
    #: device mistakes seen while calls ran on the grading device (messages);
    #: the device check (:func:`autograder.checks.common.on_meta`) reports them
    device_notes: list[str] = field(default_factory=list)

    def _classify(self, frame: types.FrameType, event: str, arg: Any) -> str | None:
        # what the reference does inside a function the student may call (the
        # model's loss, the training loop) is not the student's doing
        caller = frame if event == "c_call" else frame.f_back
        if caller is not None and _is_reference(caller.f_code):
            return None
        if event == "c_call":
            name = getattr(arg, "__name__", "")
            if name in _PROFILER_C and frame.f_code.co_filename != _THIS_FILE:
                return "a call that touches the profiler (sys.setprofile)"
            if name in self.rules.c_names:
                return f"the library's own {_label_c(arg)}"
            if self.rules.autograd and name in _AUTOGRAD_C:
                return "autograd (the backward engine)"
            if self.rules.autograd and name in _FORWARD_AD_C:
                return f"autograd (forward mode: {name})"
            if name in _THREAD_C:
                return f"a new thread or process ({name}), where the checks cannot see"
            return None
        if event != "call":
            return None
        key = (self.rules, frame.f_code)
        if key not in _VERDICTS:  # a code object's verdict never changes
            _VERDICTS[key] = self._classify_code(frame.f_code)
        return _VERDICTS[key]

    def _classify_code(self, code: types.CodeType) -> str | None:
        """What calling ``code`` means under the rules (None: allowed)."""
        path = _abspath(code.co_filename)
        if path.startswith(_TRAINLAB_DIR) and not _is_reference(code):
            return "code compiled under the reference library's file name"
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
        if path.startswith(_TORCH_DIR):
            rel = path[len(_TORCH_DIR) :]
            name = code.co_name
            if rel.startswith(_TORCH_PY_OPS) and (
                name in self.rules.c_names
                or op_family(name) in _families(self.rules.c_names)
            ):
                module = "torch." + rel.removesuffix(".py").replace(os.sep, ".")
                return f"the library's own {name.lstrip('_')} ({module}.{name})"
            if self.rules.autograd and name in _AUTOGRAD_NAMES:
                if rel.startswith(_AUTOGRAD_FILES):
                    return f"autograd (torch {name})"
        return None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)``; raise a Mistake if it used something forbidden.

        The function gets copies of the caller's tensors, except those named
        in ``inplace`` (:class:`Protected`). A function that lives in another
        process (the grader's runner: its type has ``__guarded_call__``) is
        run there under the same rules. The student's exceptions propagate
        unchanged (NotImplementedError included) unless a violation was seen
        first, which takes precedence.
        """
        if not callable(fn):
            raise Mistake(f"{self.what} should be a function; got {type(fn).__name__}")
        tampered = check_integrity()
        if tampered:
            self.violations.append(tampered)
            raise Mistake(self._message())
        refresh_reference()
        remote = getattr(type(fn), "__guarded_call__", None)
        if remote is not None and placement.on_device():
            device = str(placement.current())
            return self._call_on_device(remote, fn, device, args, kwargs)
        given = Protected(args, kwargs, self.inplace)
        try:
            if remote is not None:
                return remote(fn, self, given.args, given.kwargs)
            return self.call_here(fn, *given.args, **given.kwargs)
        finally:
            given.report(self.changed)

    def _call_on_device(
        self, remote: Callable[..., Any], fn: Any, device: str, args, kwargs
    ) -> Any:
        """A remote call on the grading device (:mod:`placement`).

        A device mistake there (a tensor returned on another device, an error
        that names a device mix) is remembered for the cell's device check,
        and the call is made again on the CPU, whose result the other checks
        see: a function that works only on the CPU loses the device check,
        as it does on a machine without a GPU, and nothing more.
        """
        given = Protected(args, kwargs, self.inplace)
        try:
            return remote(fn, self, given.args, given.kwargs, device=device)
        except Mistake:
            raise
        except placement.OffDevice as exc:
            note = placement.off_device_message(self.what, exc.found, exc.device)
        except Exception as exc:  # student code may raise anything
            text = f"{type(exc).__name__}: {exc}"
            if placement.device_failure(text):  # the GPU's fault: no mistake
                note = ""
                placement.failures.append(f"{self.what}: {text.splitlines()[0]}")
            elif placement.device_mistake(text):
                note = placement.failed_on_device_message(
                    self.what, device, text.splitlines()[0]
                )
            else:
                raise
        finally:
            given.report(self.changed)
        if note and note not in self.device_notes:
            self.device_notes.append(note)
        again = Protected(args, kwargs, self.inplace)
        try:
            return remote(fn, self, again.args, again.kwargs, device="cpu")
        finally:
            again.report(self.changed)

    def call_here(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in this process under the profiler and the dispatch guard."""
        setprofile, getprofile = sys.setprofile, sys.getprofile
        if not all(
            isinstance(f, types.BuiltinFunctionType)
            and getattr(f, "__self__", None) is sys
            for f in (setprofile, getprofile)
        ):
            self.violations.append("a replaced sys.setprofile or sys.getprofile")
            raise Mistake(self._message())
        seen: list[str] = []

        _warm_dispatch()
        ops = _OpGuard(self.rules, seen)

        def profile(frame: types.FrameType, event: str, arg: Any) -> None:
            if ops.busy:
                return
            found = self._classify(frame, event, arg)
            if found is not None and found not in seen:
                seen.append(found)

        previous = getprofile()
        error: BaseException | None = None
        result: Any = None
        current: Any = profile
        try:
            with torch.no_grad(), _forward_ad_off(), ops:
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
        if not ops.exited_cleanly:
            seen.append("a call that removed the grader's dispatch mode")
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
    """CPU, and CUDA when a device is present.

    While grading (:func:`placement.grading`) only the CPU, without asking
    torch: the verifier never touches CUDA, and with ``--device cuda`` every
    graded call already runs on the GPU in the runner.
    """
    found = [torch.device("cpu")]
    if placement.grading():
        return found
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    return found


#: taken at import, before any student code runs
check_integrity = integrity_check()
refresh_reference()
