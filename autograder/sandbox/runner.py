"""Call a student's functions from a process that never runs student code.

The *runner* is a sandboxed process (:mod:`autograder.sandbox.isolation`) that executes
only the instructor's locked setup cells and the student's answer cells
(imports, function and class definitions, simple constants: top-level loops,
prints and calls are dropped), and then answers requests: call this function
with these arguments, read this attribute, and so on.

The *verifier* side holds :class:`RemoteFunction` proxies that look like the
student's functions to the instructor's check code. Messages in both
directions are data only (:mod:`autograder.sandbox.wire`: JSON plus raw tensor bytes,
nothing is unpickled): the verifier receives plain tensors, numbers, strings,
lists, tuples and dicts, and builds new plain tensors from the bytes. An object
that is not plain data (a student's class instance) stays in the runner and
comes back as a :class:`RemoteRef` handle that can be passed back, called or
inspected; a dataclass of the course's own code travels field by field.

In-place changes to tensor, list, dict and ``torch.Generator`` arguments (the
running statistics of batchnorm, a generator's state) are copied back, so a
check sees the same effects it would see in the kernel. Callables passed as
arguments (a function ``f`` for a numerical gradient) stay in the verifier and
are called back.

A call that raises comes back as the nearest built-in exception type with the
student's message; a call that takes longer than the limit, or that kills the
runner, raises :class:`TimeLimitExceeded` or :class:`RunnerDied` and a fresh
runner is started for the next call.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import torch

from autograder.authoring.answers import answer_statements
from autograder.sandbox import ipc, seccomp, wire
from autograder.sandbox import isolation as sandbox

_MAGIC = re.compile(r"^\s*[%!]")
_TAG = "__ag__"
MAX_DEPTH = 12
MAX_ITEMS = 100_000


class RemoteError(RuntimeError):
    """A failure of the runner itself, as opposed to an error in student code."""


class TimeLimitExceeded(RemoteError):
    """The student's function did not return in time."""


class RunnerDied(RemoteError):
    """The runner process ended during a call (os._exit, a crash, a limit)."""


class StaleObject(RemoteError):
    """A handle to an object of a runner that has since been restarted."""


# ---------------------------------------------------------------------------
# encoding shared by both sides


def _plain(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if type(t) is not torch.Tensor:
        t = torch.Tensor._make_subclass(torch.Tensor, t, False)
    return t


def _trusted_dataclass(cls: type) -> bool:
    """A dataclass of the course's own code: rebuilt field by field, by value."""
    root = cls.__module__.split(".")[0]
    return root in ("trainlab", "autograder") and dataclasses.is_dataclass(cls)


def _trusted_object(cls: type) -> bool:
    """An instance of a class of the course's own code (a model, a history):
    it travels as its attributes, by value, and is rebuilt without ``__init__``."""
    root = cls.__module__.split(".")[0]
    return (
        root in ("trainlab", "autograder")
        and not dataclasses.is_dataclass(cls)
        and not issubclass(cls, BaseException | RemoteFunction)
        and "__dict__" in dir(cls)
        and not isinstance(cls, type(sys))
    )


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise RemoteError(f"unknown dtype {name!r}")
    return value


class _Codec:
    """Turns values into plain data and back; ``objects`` keeps what cannot travel."""

    def __init__(self, remote: Callable[[int, dict], Any]) -> None:
        self.objects: dict[int, Any] = {}
        self.next_id = 1
        self.remote = remote  # builds a local stand-in for the peer's object

    def keep(self, obj: Any) -> int:
        k = self.next_id
        self.next_id += 1
        self.objects[k] = obj
        return k

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise RemoteError("value nested too deeply")
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        if isinstance(value, torch.Tensor):
            return _plain(value)
        if isinstance(value, torch.Size):
            return tuple(int(v) for v in value)
        if isinstance(value, torch.dtype):
            return {_TAG: "dtype", "v": str(value)}
        if isinstance(value, torch.device):
            return {_TAG: "device", "v": str(value)}
        if isinstance(value, torch.Generator):
            return {
                _TAG: "gen",
                "state": value.get_state(),
                "device": str(value.device),
            }
        if isinstance(value, complex):
            return {_TAG: "complex", "re": value.real, "im": value.imag}
        if isinstance(value, tuple | list) and len(value) <= MAX_ITEMS:
            items = [self.encode(v, depth + 1) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if (
            type(value) is dict
            and len(value) <= MAX_ITEMS
            and _TAG not in value  # a student's dict never reads as our tag
            and all(isinstance(k, str | int) for k in value)
        ):
            return {k: self.encode(v, depth + 1) for k, v in value.items()}
        if _trusted_dataclass(type(value)):
            cls = type(value)
            fields = {
                f.name: self.encode(getattr(value, f.name), depth + 1)
                for f in dataclasses.fields(value)
            }
            return {
                _TAG: "dataclass",
                "cls": f"{cls.__module__}:{cls.__qualname__}",
                "fields": fields,
            }
        if _trusted_object(type(value)):
            cls = type(value)
            return {
                _TAG: "object",
                "cls": f"{cls.__module__}:{cls.__qualname__}",
                "state": self.encode(dict(vars(value)), depth + 1),
            }
        if isinstance(value, types.FunctionType) and getattr(
            value, "runs_with_the_answer", False
        ):  # a function of the checks that must run beside the student's code
            return {_TAG: "course_fn", "v": f"{value.__module__}:{value.__qualname__}"}
        if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
            import numpy as np

            if isinstance(value, np.ndarray):
                return {_TAG: "ndarray", "v": torch.from_numpy(value.copy())}
            return value.item()
        return self.handle(value)

    def lookup(self, name: str) -> Any:
        raise RemoteError(f"no name {name!r} here")

    def generator_device(self, claimed: str) -> str:
        """Where a generator sent by the peer is rebuilt (as it says, here)."""
        return claimed

    def handle(self, value: Any) -> dict:
        """A reference to ``value``, which stays on this side."""
        return {
            _TAG: "ref",
            "id": self.keep(value),
            "type": type(value).__name__,
            "callable": callable(value),
        }

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise RemoteError("value nested too deeply")
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            return tuple(self.decode(v, depth + 1) for v in value)
        if isinstance(value, dict):
            tag = value.get(_TAG)
            if tag is None:
                return {k: self.decode(v, depth + 1) for k, v in value.items()}
            return self._special(tag, value)
        return value

    def _special(self, tag: str, value: dict) -> Any:
        if tag == "dtype":
            return _dtype(str(value["v"]))
        if tag == "device":
            return torch.device(str(value["v"]))
        if tag == "complex":
            return complex(float(value["re"]), float(value["im"]))
        if tag == "ndarray":
            return value["v"].numpy()
        if tag == "gen":
            gen = torch.Generator(device=self.generator_device(str(value["device"])))
            gen.set_state(value["state"])
            return gen
        if tag in ("dataclass", "object"):
            module, _, qualname = str(value["cls"]).partition(":")
            cls = sys.modules.get(module)  # never import on the peer's word
            if cls is None or module.split(".")[0] not in ("trainlab", "autograder"):
                raise RemoteError(f"{value['cls']} is not a class of the course")
            for part in qualname.split("."):
                cls = getattr(cls, part, None)
            trusted = _trusted_dataclass if tag == "dataclass" else _trusted_object
            if not (isinstance(cls, type) and trusted(cls)):
                raise RemoteError(f"{value['cls']} is not a class of the course")
            obj = cls.__new__(cls)
            fields = value["fields"] if tag == "dataclass" else value["state"]
            for name, v in dict(fields).items():
                object.__setattr__(obj, str(name), self.decode(v))
            return obj
        if tag == "name":
            return self.lookup(str(value["v"]))
        if tag == "course_fn":
            module, _, qualname = str(value["v"]).partition(":")
            fn = sys.modules.get(module)  # never import on the peer's word
            for part in qualname.split("."):
                fn = getattr(fn, part, None)
            if not (
                module.startswith("autograder.checks.")
                and isinstance(fn, types.FunctionType)
                and getattr(fn, "runs_with_the_answer", False)
            ):
                raise RemoteError(f"{value['v']} is not a function of the checks")
            return fn
        if tag == "mine":  # one of our own objects, sent back
            k = int(value["id"])
            if k not in self.objects:
                raise StaleObject("this object no longer exists in the grader")
            return self.objects[k]
        if tag == "ref":
            return self.remote(int(value["id"]), value)
        raise RemoteError(f"unknown tag {tag!r}")


def _dump(obj: Any) -> bytes:
    return wire.pack(obj)


def _load(data: bytes, device: str | None = None) -> Any:
    """Plain data from the peer; never unpickled. ``device``: where tensors land
    (the verifier says ``"cpu"``: whatever the runner claims, it never touches CUDA)."""
    try:
        return wire.unpack(data, device=device)
    except wire.WireError as exc:
        raise RemoteError(f"the runner sent a malformed message: {exc}") from None


# ---------------------------------------------------------------------------
# runner side (inside the sandbox)


def _strip_magics(source: str) -> str:
    return "\n".join("" if _MAGIC.match(s) else s for s in source.split("\n"))


class _RunnerCodec(_Codec):
    def __init__(self, remote, ns: dict) -> None:
        super().__init__(remote)
        self.ns = ns

    def lookup(self, name: str) -> Any:
        if name not in self.ns:
            raise NameError(f"name {name!r} is not defined")
        return self.ns[name]


class _Server:
    """The runner's loop: decode a request, do it, send the answer."""

    def __init__(self, sock, ns: dict) -> None:
        self.sock = sock
        self.codec = _RunnerCodec(self._callback, ns)
        #: the device of the call being served (None: where its tensors are)
        self.device: str | None = None

    def _callback(self, k: int, info: dict) -> Callable:
        def call(*args, **kwargs):
            msg = {
                "type": "callback",
                "id": k,
                "args": self.codec.encode(args),
                "kwargs": self.codec.encode(kwargs),
            }
            ipc.send(self.sock, _dump(msg))
            return self.wait_callback()

        call.__name__ = f"callback_{k}"
        return call

    def wait_callback(self) -> Any:
        while True:
            req = _load(ipc.recv(self.sock))
            if req["op"] == "callback_result":
                if "error" in req:
                    raise RuntimeError(req["error"])
                value = self.codec.decode(req["value"])
                return _to_device(value, self.device) if self.device else value
            self.serve(req)

    def serve(self, req: dict, tampered: str = "") -> None:
        for k in req.get("release", ()):
            self.codec.objects.pop(k, None)
        try:
            reply = self._do(req, tampered)
        except BaseException as exc:  # noqa: BLE001 - report any failure
            reply = {"type": "error", "exc": _exc_info(exc)}
            reply["violations"] = getattr(exc, "_violations", [])
        try:
            data = _dump(reply)
        except Exception as exc:  # noqa: BLE001 - unpicklable result
            data = _dump({"type": "error", "exc": _exc_info(exc)})
        ipc.send(self.sock, data)

    def _do(self, req: dict, tampered: str = "") -> dict:
        target = self.codec.decode(req["target"])
        op = req["op"]
        if op == "call":
            args = self.codec.decode(req["args"])
            kwargs = self.codec.decode(req["kwargs"])
            device = req.get("device")
            if device and not _has_meta((args, kwargs)):  # meta, a CPU generator
                moved = _to_device((args, kwargs), str(device))
                # no tensor moved (an initializer given a shape): no device to keep
                device = device if _on(moved, str(device)) else None
                args, kwargs = moved
            else:
                device = None
            tracked = [*args, *kwargs.values()]
            before = [_snapshot(t) for t in tracked]
            self.device = device
            try:
                if req.get("guard"):
                    value = _guarded(target, args, kwargs, req["guard"], tampered)
                else:
                    value = target(*args, **kwargs)
            finally:
                self.device = None
            changed = {
                str(i): self.codec.encode(t)
                for i, (t, b) in enumerate(zip(tracked, before, strict=True))
                if _differs(t, b)
            }
            reply = {
                "type": "result",
                "value": self.codec.encode(value),
                "mutated": changed,
            }
            off = _off_device(value, device) if device else None
            if off:
                reply["off_device"] = off
            return reply
        if op == "getattr":
            return {
                "type": "result",
                "value": self.codec.encode(getattr(target, req["name"])),
            }
        if op == "getitem":
            key = self.codec.decode(req["key"])
            return {"type": "result", "value": self.codec.encode(target[key])}
        if op == "len":
            return {"type": "result", "value": int(len(target))}
        if op == "list":
            return {"type": "result", "value": self.codec.encode(list(target))}
        if op == "repr":
            return {"type": "result", "value": repr(target)[:2000]}
        raise RemoteError(f"unknown request {op!r}")


def _has_meta(value: Any, depth: int = 0) -> bool:
    """Whether a call must stay where it is: it has a ``meta`` tensor (the
    device check on meta) or a CPU ``torch.Generator`` (its random numbers
    are drawn on the CPU, as the answer key's are)."""
    if isinstance(value, torch.Tensor):
        return value.device.type == "meta"
    if isinstance(value, torch.Generator):
        return value.device.type == "cpu"
    if depth < MAX_DEPTH and isinstance(value, list | tuple):
        return any(_has_meta(v, depth + 1) for v in value)
    if depth < MAX_DEPTH and type(value) is dict:
        return any(_has_meta(v, depth + 1) for v in value.values())
    return False


def _on(value: Any, device: str, depth: int = 0) -> bool:
    """Whether any tensor in ``value`` (as :func:`_to_device` walks it) is on
    ``device``'s type."""
    if isinstance(value, torch.Tensor):
        return value.device.type == torch.device(device).type
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, list | tuple):
        return any(_on(v, device, depth + 1) for v in value)
    if type(value) is dict:
        return any(_on(v, device, depth + 1) for v in value.values())
    if _trusted_dataclass(type(value)) or _trusted_object(type(value)):
        return any(_on(v, device, depth + 1) for v in vars(value).values())
    return False


def _to_device(value: Any, device: str, depth: int = 0) -> Any:
    """``value`` with every CPU tensor in it moved to ``device`` (runner side).

    Tensors inside lists, tuples, dicts and the course's own objects (a data
    split, a model of the reference library) move too; anything else stays.
    """
    if isinstance(value, torch.Tensor):
        return value.to(device) if value.device.type == "cpu" else value
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, list):
        return [_to_device(v, device, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_device(v, device, depth + 1) for v in value)
    if type(value) is dict:
        return {k: _to_device(v, device, depth + 1) for k, v in value.items()}
    if _trusted_dataclass(type(value)) or _trusted_object(type(value)):
        for k, v in list(vars(value).items()):
            object.__setattr__(value, k, _to_device(v, device, depth + 1))
    return value


def _off_device(value: Any, device: str) -> str | None:
    """The device of a returned tensor that is not on ``device``, else None.

    Checked: the value itself and the items of a returned tuple or list (a
    forward's output, a backward's gradients), not what a cache holds inside.
    """
    want = torch.device(device).type
    items = value if isinstance(value, list | tuple) else [value]
    for t in items:
        if isinstance(t, torch.Tensor) and t.device.type not in (want, "meta"):
            return str(t.device)
    return None


def start_device(device: str, memory_mb: int | None = None) -> None:
    """Initialize ``device`` (CUDA) in this process, before the thread filter.

    The CUDA driver starts its threads when it initializes and when the first
    context and cuBLAS handle are made: all of that happens here, so that the
    filter (:mod:`seccomp`) can then forbid threads as on the CPU. GPU memory
    is capped at ``memory_mb`` through torch's allocator.
    """
    torch.cuda.init()
    x = torch.ones(8, 8, device=device)
    for dtype in (torch.float32, torch.float64):
        y = x.to(dtype)
        torch.addmm(y, y, y).sum().item()
        (y @ y.T).mean().item()
    torch.randn(4, device=device, generator=torch.Generator(device=device)).sum()
    torch.cuda.synchronize()
    if memory_mb:
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        torch.cuda.set_per_process_memory_fraction(
            min(1.0, memory_mb * 1024 * 1024 / total), torch.device(device)
        )


def _guarded(fn, args, kwargs, guard: dict, tampered: str = "") -> Any:
    from autograder.checks import own_code

    r = guard["rules"]
    rules = own_code.Rules(
        frozenset(r["c_names"]),
        tuple(tuple(m) for m in r["modules"]),
        frozenset(tuple(a) for a in r["allow_reference"]),
        bool(r["autograd"]),
        str(r["hint"]),
    )
    g = own_code.Guard(rules, str(guard["what"]))
    try:
        if tampered:  # the answers changed the grader's code: restored, refused
            g.violations.append(tampered)
            raise own_code.Mistake(g._message())
        return g.call_here(fn, *args, **kwargs)
    except BaseException as exc:
        exc._violations = list(g.violations)
        raise


def _exc_info(exc: BaseException) -> dict:
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<answer"):
            where = f"in {frame.name}, line {frame.lineno}"
            break
    names = [c.__name__ for c in type(exc).__mro__]
    return {"types": names, "message": str(exc)[:2000], "where": where}


def _unavailable(*args, **kwargs):
    raise RuntimeError(
        "the reference implementation is not available to graded code: "
        "write the function yourself"
    )


def _reached(start: dict) -> set[str]:
    """Names of ``trainlab`` functions the given namespace's helpers may call.

    Follows every ``trainlab`` function or class (methods included) found in
    ``start``, the global names its code uses, and those names' values in its
    module, transitively.
    """
    seen_ids: set[int] = set()
    names: set[str] = set()
    work = [v for v in start.values() if _from_trainlab(v)]
    while work:
        obj = work.pop()
        if id(obj) in seen_ids:
            continue
        seen_ids.add(id(obj))
        funcs = [obj] if isinstance(obj, types.FunctionType) else []
        if isinstance(obj, type):
            funcs = [f for f in vars(obj).values() if isinstance(f, types.FunctionType)]
        for fn in funcs:
            codes = [fn.__code__]
            while codes:
                code = codes.pop()
                codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
                for n in code.co_names:
                    names.add(n)
                    value = fn.__globals__.get(n)
                    if _from_trainlab(value):
                        work.append(value)
    return names


def _from_trainlab(value: Any) -> bool:
    return isinstance(value, types.FunctionType | type) and str(
        getattr(value, "__module__", "")
    ).startswith("trainlab")


def withdraw_reference(names, keep: dict | None = None) -> list[str]:
    """Disable the reference library's versions of the graded functions, here.

    Every ``trainlab`` function named like a graded function gets a body that
    raises, so no reference to it (an alias, a closure, ``gc``) can compute
    the answer in this process; the library's source is hidden by the mount
    namespace, so it cannot be reloaded either. Functions that the setup
    cell's helpers (in ``keep``, the namespace after the setup cells) call,
    directly or not, stay as they are: the run-time guard and the static scan
    still flag a graded function that calls them.
    """
    names = set(names) - _reached(keep or {})
    done = []
    for mod_name, mod in list(sys.modules.items()):
        if mod_name != "trainlab" and not mod_name.startswith("trainlab."):
            continue
        for attr in names:
            fn = getattr(mod, attr, None)
            seen = 0
            while isinstance(fn, types.FunctionType) and seen < 8:
                inner = getattr(fn, "__wrapped__", None)
                if (
                    str(fn.__module__).startswith("trainlab")
                    and not fn.__code__.co_freevars
                ):
                    fn.__code__ = _unavailable.__code__
                    fn.__defaults__ = fn.__kwdefaults__ = None
                    done.append(f"{mod_name}.{attr}")
                fn, seen = inner, seen + 1
    return done


def _integrity():
    """A check of the runner's and the guard's own code, originals taken now."""
    from autograder.checks import own_code

    here = sys.modules[__name__]
    return own_code.integrity_check(
        [
            (_Server, ("serve", "_do", "wait_callback", "_callback")),
            (_RunnerCodec, ("lookup",)),
            (_Codec, ("encode", "decode", "_special", "handle", "keep")),
            (
                here,
                (
                    "_guarded",
                    "_snapshot",
                    "_differs",
                    "_dump",
                    "_load",
                    "_has_meta",
                    "_on",
                    "_to_device",
                    "_off_device",
                ),
            ),
            (ipc, ("send", "recv")),
            (wire, ("pack", "unpack")),
        ]
    )


def _runner_main(sock) -> None:
    """Inside the sandbox: build the namespace, then serve requests.

    Before the answers are loaded, the process loses the right to start
    threads or processes (:mod:`autograder.sandbox.seccomp`), and the
    originals of the grader's own functions are taken; before each request
    they are checked and put back, so no answer cell can switch the guard off.
    """
    from autograder.checks import seeds

    seeds.forget()  # forked from the verifier: the student's key is wiped here
    job = _load(ipc.recv(sock))
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    errors, dropped = [], []
    for i, src in enumerate(job["setup"]):
        try:
            exec(compile(_strip_magics(src), f"<setup {i}>", "exec"), ns)
        except BaseException as exc:  # noqa: BLE001
            errors.append({"cell": f"setup {i}", **_exc_info(exc)})
    withdraw_reference(job.get("graded", []), keep=ns)
    from autograder.checks import own_code

    own_code.warm_up()  # the dispatch guard's first use, before any time limit
    check = _integrity()
    server = _Server(sock, ns)
    device_error = ""
    if job.get("device", "cpu") != "cpu":  # before the filter: CUDA's threads
        try:
            start_device(str(job["device"]), job.get("gpu_memory_mb"))
        except Exception as exc:  # noqa: BLE001 - said in the ready message
            device_error = f"{type(exc).__name__}: {str(exc)[:1000]}"
    threads = "forbidden"
    try:
        torch.set_num_threads(1)
        seccomp.forbid_threads()
    except (OSError, RuntimeError) as exc:
        threads = f"not forbidden ({exc})"
    before = {k: id(v) for k, v in ns.items()}
    for cell in job["answers"]:
        name = f"<answer {cell['grade_id']}>"
        try:
            src, lost = answer_statements(cell["source"])
            dropped += [{"cell": cell["grade_id"], "line": n} for n in lost]
            exec(compile(src, name, "exec"), ns)
        except BaseException as exc:  # noqa: BLE001
            errors.append({"cell": cell["grade_id"], **_exc_info(exc)})
    tampered = check()
    names = {}
    for k, v in ns.items():
        if k.startswith("__") or before.get(k) == id(v):
            continue
        names[k] = server.codec.handle(v)
    ready = {
        "type": "ready",
        "names": names,
        "errors": errors,
        "dropped": dropped,
        "threads": threads,
        "device_error": device_error,
    }
    ipc.send(sock, _dump(ready))
    while True:
        data = ipc.recv(sock)
        tampered = check() or tampered
        server.serve(_load(data), tampered)


# ---------------------------------------------------------------------------
# verifier side


class RemoteFunction:
    """A student's function (or class, or object) living in the runner."""

    def __init__(
        self, client: RunnerClient, ref: dict, name: str, *, by_name: bool = False
    ) -> None:
        self._client = client
        self._ref = ref
        self._gen = client.generation
        self._by_name = by_name
        self.__name__ = name
        self.__qualname__ = name

    def _target(self) -> dict:
        if self._by_name:  # a name of the notebook: found again after a restart
            return {_TAG: "name", "v": self.__name__}
        if self._gen != self._client.generation:
            raise StaleObject(
                f"{self.__name__} belongs to a run that was stopped earlier "
                "(a time limit or a crash)"
            )
        return {_TAG: "mine", "id": self._ref["id"]}

    def __call__(self, *args, **kwargs):
        return self._client.call(self, args, kwargs)

    def guarded_call(self, guard, args, kwargs, device: str | None = None):
        """Run under the guard's rules in the runner (on ``device`` when given:
        its CPU tensors move there); merge what it saw."""
        return self._client.call(self, args, kwargs, guard=guard, device=device)

    #: how :meth:`autograder.checks.own_code.Guard.call` runs a function that
    #: lives in the runner: there, under the same rules
    __guarded_call__ = guarded_call

    def __repr__(self) -> str:
        return f"<student {self._ref.get('type', 'object')} {self.__name__}>"

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        by_name = getattr(self, "_by_name", True)
        if client is not None and not by_name and self._gen == client.generation:
            client.released.append(self._ref["id"])


class RemoteRef(RemoteFunction):
    """An object returned by student code that is not plain data."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._client.request("getattr", self, name=name)

    def __getitem__(self, key):
        return self._client.request("getitem", self, key=self._client.codec.encode(key))

    def __len__(self) -> int:
        return int(self._client.request("len", self))

    def __iter__(self):
        return iter(self._client.request("list", self))


class RunnerClient:
    """The verifier's end: starts the runner, sends requests, restarts it if needed.

    Args:
        setup: sources of the instructor's locked setup cells.
        answers: ``[{"grade_id": ..., "source": ...}]``, the student's answer cells.
        limits: ``call_timeout`` bounds each call, ``cell_timeout`` the loading
            of the answers, ``notebook_timeout`` all of it.
        policy: the sandbox policy.
        max_restarts: runners started after the first one dies (default 3).
    """

    def __init__(
        self,
        setup,
        answers,
        *,
        limits,
        policy,
        max_restarts: int = 3,
        device: str = "cpu",
    ):
        self.job = {
            "setup": list(setup),
            "answers": list(answers),
            "graded": [],
            "device": device,
            "gpu_memory_mb": limits.memory_mb,
        }
        self.limits = limits
        self.policy = policy
        self.max_restarts = max_restarts
        self.deadline = time.monotonic() + limits.notebook_timeout
        self.generation = 0
        self.restarts = -1
        self.box: sandbox.Sandboxed | None = None
        self.codec = _VerifierCodec(self._remote)
        self.released: list[int] = []
        self.ready: dict = {}
        self.events: list[str] = []
        self.applied: dict = {}
        self.timeouts: dict[str, int] = {}

    def _remote(self, k: int, info: dict) -> RemoteRef:
        return RemoteRef(self, {**info, "id": k}, info.get("type", "object"))

    # -- lifecycle

    def start(self) -> dict:
        """Start (or restart) the runner; returns its ready message."""
        self.close()
        self.restarts += 1
        self.generation += 1
        self.released = []
        if self.restarts > self.max_restarts:
            raise RunnerDied("the runner was restarted too many times; giving up")
        self.box = sandbox.start(_runner_main, limits=self.limits, policy=self.policy)
        self.applied = self.box.applied
        ipc.send(self.box.sock, _dump(self.job))
        ready = self._receive(self.limits.cell_timeout * 2)
        self.ready = ready
        if ready.get("device_error"):
            self.close()
            raise RemoteError(
                f"{self.job['device']} could not be used in the sandbox: "
                f"{ready['device_error']}"
            )
        return ready

    def close(self) -> None:
        if self.box is not None:
            self.box.kill()
            self.box = None

    def functions(self) -> dict[str, RemoteFunction]:
        """Proxies for every name the answer cells defined."""
        found = {}
        for name, ref in self.ready.get("names", {}).items():
            cls = RemoteFunction if ref.get("callable") else RemoteRef
            found[name] = cls(self, ref, name, by_name=True)
        return found

    # -- requests

    def _receive(self, timeout: float) -> dict:
        assert self.box is not None
        try:
            data = ipc.recv(self.box.sock, timeout=timeout)
        except ipc.ChannelError as exc:
            self.close()
            if exc.reason == "timeout":
                self.events.append("time limit")
                raise TimeLimitExceeded(
                    f"your function did not return within {timeout:.0f} s"
                ) from None
            self.events.append("runner died")
            raise RunnerDied(
                "your function ended the process that ran it (os._exit, a crash, "
                "or a memory/CPU limit)"
            ) from None
        reply = _load(data, device="cpu")
        if not isinstance(reply, dict):
            raise RemoteError("the runner sent something that is not a reply")
        return reply

    def request(self, op: str, proxy: RemoteFunction, **fields) -> Any:
        if self.box is None:  # an earlier call killed it: start afresh first
            self.start()
        return self._exchange({"op": op, "target": proxy._target(), **fields})

    def call(self, proxy: RemoteFunction, args, kwargs, guard=None, device=None) -> Any:
        """Call the student's function; on ``device`` (not the CPU) its CPU
        tensors move there in the runner, and a tensor it returns on another
        device raises :class:`~autograder.checks.placement.OffDevice`."""
        name = proxy.__name__
        if self.timeouts.get(name, 0) >= 2:
            raise TimeLimitExceeded(
                f"{name} was not called again: it went over the time limit twice"
            )
        if self.box is None:  # an earlier call killed it: start afresh
            self.start()
        tracked = [*args, *kwargs.values()]
        req = {
            "op": "call",
            "target": proxy._target(),
            "args": self.codec.encode(tuple(args)),
            "kwargs": self.codec.encode(dict(kwargs)),
        }
        if guard is not None:
            req["guard"] = {"rules": _rules_dict(guard.rules), "what": guard.what}
        if device and device != "cpu":
            req["device"] = str(device)
        try:
            reply = self._exchange(req, raw=True)
        except TimeLimitExceeded:
            self.timeouts[name] = self.timeouts.get(name, 0) + 1
            raise
        if guard is not None and reply.get("violations"):
            from autograder.checks.core import Mistake

            for v in reply["violations"]:
                if v not in guard.violations:
                    guard.violations.append(str(v))
            raise Mistake(guard._message())
        if reply["type"] == "error":
            raise _rebuild(reply["exc"])
        if reply.get("off_device") and "device" in req:  # nothing copied back
            from autograder.checks.placement import OffDevice

            raise OffDevice(str(reply["off_device"])[:40], req["device"])
        changed = reply.get("mutated", {})
        if not isinstance(changed, dict):
            raise RemoteError("the runner sent a malformed reply")
        _copy_back(tracked, {int(k): self.codec.decode(v) for k, v in changed.items()})
        return self.codec.decode(reply["value"])

    def _exchange(self, req: dict, raw: bool = False) -> Any:
        if self.box is None:
            self.start()
        if time.monotonic() > self.deadline:
            raise TimeLimitExceeded("the time for checking this notebook ran out")
        req["release"], self.released = self.released, []
        ipc.send(self.box.sock, _dump(req))
        while True:
            wait = min(
                self.limits.call_timeout, max(0.01, self.deadline - time.monotonic())
            )
            reply = self._receive(wait)
            if reply.get("type") == "callback":
                self._answer_callback(reply)
                continue
            break
        if raw:
            return reply
        if reply["type"] == "error":
            raise _rebuild(reply["exc"])
        return self.codec.decode(reply["value"])

    def _answer_callback(self, msg: dict) -> None:
        fn = self.codec.objects.get(int(msg["id"]))
        try:
            args = self.codec.decode(msg["args"])
            kwargs = self.codec.decode(msg["kwargs"])
            value = fn(*args, **kwargs)
            answer = {"op": "callback_result", "value": self.codec.encode(value)}
        except Exception as exc:  # noqa: BLE001 - tell the student's code
            answer = {"op": "callback_result", "error": f"{type(exc).__name__}: {exc}"}
        ipc.send(self.box.sock, _dump(answer))


class _VerifierCodec(_Codec):
    """Our side: proxies go back as themselves; anything else is a callback."""

    def encode(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, RemoteFunction):
            return value._target()
        return super().encode(value, depth)

    def generator_device(self, claimed: str) -> str:
        """Always the CPU: a generator "on cuda" from the runner must not make
        the verifier, which forks sandboxes, initialize CUDA."""
        return "cpu"


def _rules_dict(rules) -> dict:
    return {
        "c_names": sorted(rules.c_names),
        "modules": [list(m) for m in rules.modules],
        "allow_reference": [list(a) for a in rules.allow_reference],
        "autograd": bool(rules.autograd),
        "hint": str(rules.hint),
    }


def _rebuild(info: dict) -> BaseException:
    """The student's exception as the nearest built-in type, message kept."""
    names = [str(n) for n in info.get("types", [])]
    message = str(info.get("message", ""))
    if info.get("where"):
        message = f"{message} ({info['where']})"
    if names and names[0] == "Mistake":
        from autograder.checks.core import Mistake

        return Mistake(message)
    for name in names:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(message)
            except Exception:  # noqa: BLE001 - e.g. UnicodeError needs more args
                continue
    first = names[0] if names else "BaseException"
    return RuntimeError(f"your code raised {first}: {message}")


def _same(a: Any, b: Any) -> bool:
    """Equal structure and values (tensors compared exactly)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        both = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        if both and "meta" in (a.device.type, b.device.type):
            return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
        return (
            both
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(torch.equal(a.cpu(), b.cpu()))
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, RemoteFunction) or isinstance(b, RemoteFunction):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _snapshot(obj: Any, depth: int = 0) -> Any:
    """What an argument looked like before the call, deeply (runner side)."""
    if depth > 6:
        return ("v", obj)
    if isinstance(obj, torch.Tensor) and obj.device.type == "meta":
        return ("m", tuple(obj.shape), obj.dtype)  # no values to compare
    if isinstance(obj, torch.Tensor):
        return ("t", obj.detach().clone())
    if isinstance(obj, torch.Generator):
        return ("g", obj.get_state())
    if isinstance(obj, list | tuple):
        return ("l", type(obj), [_snapshot(v, depth + 1) for v in obj])
    if isinstance(obj, dict):
        return ("d", {k: _snapshot(v, depth + 1) for k, v in obj.items()})
    if _trusted_object(type(obj)) or _trusted_dataclass(type(obj)):
        return ("o", _snapshot(dict(vars(obj)), depth + 1))
    return ("v", obj)


def _differs(obj: Any, snap: Any) -> bool:
    """Whether the call changed the argument, anywhere inside it."""
    kind = snap[0]
    if kind == "m":
        return not (
            isinstance(obj, torch.Tensor)
            and tuple(obj.shape) == snap[1]
            and obj.dtype == snap[2]
        )
    if kind == "t":
        before = snap[1]
        return not (
            isinstance(obj, torch.Tensor)
            and obj.shape == before.shape
            and obj.dtype == before.dtype
            and obj.device == before.device
            and torch.equal(obj.detach(), before)
        )
    if kind == "g":
        return not (
            isinstance(obj, torch.Generator) and torch.equal(obj.get_state(), snap[1])
        )
    if kind == "l":
        return (
            type(obj) is not snap[1]
            or len(obj) != len(snap[2])
            or any(_differs(v, b) for v, b in zip(obj, snap[2], strict=True))
        )
    if kind == "d":
        return (
            not isinstance(obj, dict)
            or obj.keys() != snap[1].keys()
            or any(_differs(obj[k], b) for k, b in snap[1].items())
        )
    if kind == "o":
        return _differs(dict(vars(obj)), snap[1])
    return obj is not snap[1]


def _merge(mine: Any, theirs: Any) -> Any:
    """``theirs`` (the runner's value after the call) written into ``mine``,
    in place wherever ``mine`` is mutable; returns the merged value."""
    if isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor):
        with torch.no_grad():
            if mine.shape == theirs.shape and mine.dtype == theirs.dtype:
                if not _same(mine, theirs):
                    mine.copy_(theirs)
            else:
                mine.set_(theirs.to(mine.device).clone())
        return mine
    if isinstance(mine, torch.Generator) and isinstance(theirs, torch.Generator):
        mine.set_state(theirs.get_state())
        return mine
    if type(mine) is dict and isinstance(theirs, dict):
        for k in [k for k in mine if k not in theirs]:
            del mine[k]
        for k, v in theirs.items():
            mine[k] = _merge(mine[k], v) if k in mine else v
        return mine
    if isinstance(mine, list) and isinstance(theirs, list):
        if len(mine) == len(theirs):
            for i, v in enumerate(theirs):
                mine[i] = _merge(mine[i], v)
        else:
            mine[:] = theirs
        return mine
    if (
        isinstance(mine, tuple)
        and isinstance(theirs, tuple)
        and len(mine) == len(theirs)
    ):
        return tuple(_merge(a, b) for a, b in zip(mine, theirs, strict=True))
    if type(mine) is type(theirs) and (
        _trusted_object(type(mine)) or _trusted_dataclass(type(mine))
    ):
        state = vars(mine)
        for k in [k for k in state if k not in vars(theirs)]:
            delattr(mine, k)
        for k, v in vars(theirs).items():
            object.__setattr__(mine, k, _merge(state[k], v) if k in state else v)
        return mine
    return theirs


def _copy_back(tracked: list, after: dict[int, Any]) -> None:
    """Apply the runner's in-place changes to our arguments."""
    for index, theirs in after.items():
        if 0 <= index < len(tracked):
            _merge(tracked[index], theirs)


__all__ = [
    "RemoteError",
    "RemoteFunction",
    "RemoteRef",
    "RunnerClient",
    "RunnerDied",
    "StaleObject",
    "TimeLimitExceeded",
    "answer_statements",
]
