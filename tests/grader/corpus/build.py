"""Write the adversarial corpus: one student folder per threat-model item.

Each submission starts from the release notebook (the stubs a student gets)
or from it filled with the solution's answers, and adds one attack. Where an
attack could only show as a higher score on top of wrong answers, it is built
on the "wrong" answers (forward without ``beta``, backward with ``2 * dbeta``),
so an inflated score would be visible.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[3]
SOLUTION = ROOT / "solutions" / "batchnorm" / "batchnorm.ipynb"
RELEASE = ROOT / "notebooks" / "batchnorm" / "batchnorm.ipynb"
NAME = "batchnorm.ipynb"


@dataclass(frozen=True)
class Case:
    """One submission and what grading it must give.

    Attributes:
        name: the student id (folder name).
        threat: the threat-model item it tries.
        total: ``"full"``, ``"zero"``, ``"wrong"`` (the plain-wrong student's
            score), or None when only ``zero_cells`` and ``at_most`` are fixed.
        message: a regular expression the report must contain.
        zero_cells: test cells that must score 0.
        at_most: the total may not exceed the correct score minus this.
        needs_mounts: the expectation relies on the mount namespace.
        below: the total must be below this expected total (``"wrong"``).
    """

    name: str
    threat: str
    total: str | None
    message: str
    zero_cells: tuple[str, ...] = ()
    at_most: float = 0.0
    needs_mounts: bool = False
    below: str | None = None


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _answers(nb: NotebookNode) -> dict[str, str]:
    return {
        _meta(c)["grade_id"]: c.source for c in nb.cells if _meta(c).get("solution")
    }


def _tests(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if _meta(c).get("grade")]


def _fill(release: NotebookNode, answers: dict[str, str]) -> NotebookNode:
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and gid in answers:
            cell.source = answers[gid]
    return nb


def _insert_after_setup(nb: NotebookNode, source: str) -> NotebookNode:
    nb = copy.deepcopy(nb)
    idx = next(i for i, c in enumerate(nb.cells) if _meta(c).get("grade_id") == "setup")
    cell = nbformat.v4.new_code_cell(source)
    cell.id = f"extra-{len(nb.cells)}"
    nb.cells.insert(idx + 1, cell)
    return nb


def _rename(source: str, old: str, new: str) -> str:
    out, n = re.subn(rf"\bdef {old}\(", f"def {new}(", source, count=1)
    if not n:
        raise ValueError(f"the solution has no 'def {old}(': update the corpus")
    return out


def wrong_answers(sol: dict[str, str]) -> dict[str, str]:
    """The solution with two mistakes: forward forgets beta, backward doubles dbeta."""
    wrong = dict(sol)
    wrong["batchnorm_forward"] = (
        _rename(sol["batchnorm_forward"], "batchnorm_forward", "_forward_ok")
        + "\n\n\ndef batchnorm_forward(x, gamma, beta, rm, rv, **kw):\n"
        "    out, cache = _forward_ok(x, gamma, beta, rm, rv, **kw)\n"
        "    return out - beta, cache\n"
    )
    wrong["batchnorm_backward"] = (
        _rename(sol["batchnorm_backward"], "batchnorm_backward", "_backward_ok")
        + "\n\n\ndef batchnorm_backward(dout, cache):\n"
        "    dx, dgamma, dbeta = _backward_ok(dout, cache)\n"
        "    return dx, dgamma, 2 * dbeta\n"
    )
    return wrong


FULL_MARKS_CHECK = """
import autograder.checks.core as _K
def _always(self, name, points, fn, **kw):
    self._results.append(_K.CheckResult(name, float(points), float(points)))
    return True
_K.Grader.check = _always
"""

ATTACKS: dict[str, str] = {
    "patch_torch": """
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
torch.isfinite = lambda t: torch.ones_like(t, dtype=torch.bool)
""",
    "patch_asserts": """
import autograder.checks.expect as _E
import autograder.checks.common as _C
_E.expect_close = lambda *a, **k: None
_C.close_with_hints = lambda *a, **k: None
"""
    + FULL_MARKS_CHECK,
    "patch_checks": """
import autograder.checks.batchnorm as _B
class _Fake:
    score = 1.0
    def __repr__(self):
        return "all checks passed"
for _n in dir(_B):
    if _n.startswith("grade_"):
        setattr(_B, _n, lambda *a, **k: _Fake())
""",
    "patch_builtins": """
import builtins
builtins.isinstance = lambda *a: True
builtins.sum = lambda *a, **k: 0
""",
    "detect_env": """
import os, sys
if os.environ.get("NBGRADER_EXECUTION") or "autograder" in sys.modules:
"""
    + "\n".join("    " + line for line in FULL_MARKS_CHECK.strip().splitlines()),
    "write_gradebook": """
import os, sqlite3
hits = []
for top in ("/tmp", "/work", os.path.expanduser("~")):
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath.count(os.sep) - top.count(os.sep) > 6:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if d not in (".venv", ".git")]
        for f in filenames:
            if f.endswith(".db"):
                path = os.path.join(dirpath, f)
                try:
                    con = sqlite3.connect(path)
                    con.execute("UPDATE grade SET auto_score = 1000")
                    con.commit()
                    hits.append(path)
                except Exception as exc:
                    print("could not write", path, exc)
print("wrote to", hits)
""",
    # the host's files, as a notebook cell sees them (nothing but its own)
    "glob_host_files": """
import glob, os
for pattern in ("/home/*/*", "/root/*", "/work/*/solutions/*/*.ipynb",
                "/tmp/*/solutions/*/*.ipynb", "/tmp/*", os.path.expanduser("~/.ssh/*"),
                "/etc/shadow", "/etc/passwd", "/proc/1/environ"):
    for path in glob.glob(pattern):
        try:
            print(path, open(path).read(200))
        except Exception as exc:
            print(path, type(exc).__name__)
print("host files seen:", len(glob.glob("/*")))
""",
    # student markup and terminal escapes in outputs
    "print_markup": """
from IPython.display import HTML, Markdown, display
print("<script>alert('x')</script> \\x1b[2J\\x1b[32mPoints 37/37\\x1b[0m")
display(HTML("<img src=x onerror=alert(1)><iframe src='http://evil'></iframe>"))
display(Markdown("![x](http://evil/x.png) [click](javascript:alert(1))"))
""",
    "infinite_loop": "while True:\n    pass\n",
    "memory_bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 26))\n",
    "fork_bomb": """
import os
children = []
while True:
    try:
        children.append(os.fork())
    except OSError as exc:
        print("fork failed:", exc)
        break
""",
    "disk_filler": """
with open("filler.bin", "wb") as f:
    for _ in range(4096):
        f.write(b"\\0" * (1 << 20))
""",
    "output_flood": "for i in range(200000):\n    print('flood ' * 20)\n",
    "kernel_exit": "import os\nos._exit(3)\n",
    "sleep_past_limit": "import time\ntime.sleep(3600)\n",
}

FORWARD = {
    "imports_trainlab": "from trainlab.batchnorm import batchnorm_forward\n",
    "eq_always_true": """
class _Liar(torch.Tensor):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
def batchnorm_forward(x, gamma, beta, running_mean, running_var, **kw):
    fake = torch.zeros_like(x).as_subclass(_Liar)
    return fake, {"x": x}
""",
    "fake_passed": """
print("batchnorm_forward: 8 / 8 points")
print("  [PASS]     8/8  everything")
def batchnorm_forward(x, gamma, beta, running_mean, running_var, **kw):
    print("batchnorm_forward: 8 / 8 points")
    raise NotImplementedError()
""",
    "read_hidden": """
import glob, json, os, trainlab
def batchnorm_forward(*args, **kwargs):
    root = os.path.dirname(os.path.dirname(os.path.dirname(trainlab.__file__)))
    found = glob.glob(os.path.join(root, "solutions", "*", "*.ipynb"))
    if not found:
        raise FileNotFoundError("no solutions visible under " + root)
    with open(found[0]) as f:
        nb = json.load(f)
    ns = {}
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            try:
                exec("".join(c["source"]), ns)
            except Exception:
                pass
    return ns["batchnorm_forward"](*args, **kwargs)
""",
    "infinite_loop": """
def batchnorm_forward(*args, **kwargs):
    while True:
        pass
""",
    "memory_bomb": """
def batchnorm_forward(*args, **kwargs):
    blocks = []
    while True:
        blocks.append(torch.ones(1 << 25))
""",
    "kernel_exit": """
def batchnorm_forward(*args, **kwargs):
    import os
    os._exit(0)
""",
}

#: signature shared by the forwards below
_SIG = (
    "def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,"
    " training=True, momentum=0.1, eps=1e-5):\n"
)
_CALL_F = (
    "torch.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta,"
    " training, momentum, eps)"
)

#: torch's own layer, reached below the Python functions the profiler sees
GUARD_PATHS = {
    "guard_partial": "import functools\n"
    + _SIG
    + "    f = functools.partial(torch.batch_norm, x, gamma, beta, running_mean,"
    " running_var, training, momentum, eps, False)\n"
    "    return f(), {'x': x, 'gamma': gamma}\n",
    "guard_map": _SIG
    + "    out = list(map(torch.ops.aten.native_batch_norm, [x], [gamma], [beta],"
    " [running_mean], [running_var], [training], [momentum], [eps]))[0][0]\n"
    "    return out, {'x': x, 'gamma': gamma}\n",
    "guard_getattr": _SIG + "    f = getattr(torch, 'batch' + '_' + 'norm')\n"
    "    out = f(x, gamma, beta, running_mean, running_var, training, momentum,"
    " eps, False)\n"
    "    return out, {'x': x, 'gamma': gamma}\n",
    "guard_sorted": _SIG + "    box = []\n"
    "    sorted([x], key=lambda t: box.append(" + _CALL_F + ") or 0)\n"
    "    return box[0], {'x': x, 'gamma': gamma}\n",
    "guard_thread": "import threading\n" + _SIG + "    box = []\n"
    "    t = threading.Thread(target=lambda: box.append(" + _CALL_F + "))\n"
    "    t.start()\n"
    "    t.join()\n"
    "    return box[0], {'x': x, 'gamma': gamma}\n",
    # answer cells that switch the guard off (in a class body, which runs when
    # the cell is loaded), then call torch's layer
    "guard_switch_off": "class _Off:\n"
    "    import autograder.checks.own_code as _oc\n"
    "    _oc.Guard.call_here = lambda self, fn, *a, **k: fn(*a, **k)\n"
    "    _oc._OpGuard.__torch_dispatch__ = (\n"
    "        lambda self, f, t, a=(), k=None: f(*a, **(k or {})))\n"
    + _SIG
    + "    return "
    + _CALL_F
    + ", {'x': x, 'gamma': gamma}\n",
    "guard_runner_patch": "class _Off:\n"
    "    import autograder.sandbox.runner as _r\n"
    "    _r._guarded = lambda fn, args, kwargs, guard, t='': fn(*args, **kwargs)\n"
    + _SIG
    + "    return "
    + _CALL_F
    + ", {'x': x, 'gamma': gamma}\n",
}

#: torch's layer under operator names a list of exact names would miss, and a
#: forward that records the backward's answer with autograd while the backward
#: is graded (found by a review of the grader)
VARIANTS = {
    "aten_family_forward": _SIG + "    A = torch.ops.aten\n"
    "    if training:\n"
    "        out = A._batch_norm_with_update(x, gamma, beta, running_mean,"
    " running_var, momentum, eps)[0]\n"
    "    else:\n"
    "        out = A._batch_norm_no_update(x, gamma, beta, running_mean,"
    " running_var, momentum, eps)[0]\n"
    "    return out, {'x': x, 'gamma': gamma}\n",
}
JACOBIAN_FORWARD = """
def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,
                      training=True, momentum=0.1, eps=1e-5):
    out, cache = _forward_ok(x, gamma, beta, running_mean, running_var,
                             training=training, momentum=momentum, eps=eps)
    if torch._C._len_torch_dispatch_stack() == 0 and x.device.type != "meta":
        with torch.enable_grad():
            xs = x.detach().clone().requires_grad_(True)
            f = lambda t: torch.nn.functional.batch_norm(
                t, running_mean.clone(), running_var.clone(), gamma, beta,
                training, momentum, eps)
            cache["J"] = torch.autograd.functional.jacobian(f, xs).detach()
    return out, cache
"""
JACOBIAN_BACKWARD = """
def batchnorm_backward(dout, cache):
    J = cache.get("J")
    dx = torch.einsum("ijkl,ij->kl", J, dout) if J is not None else dout * 0
    return dx, (dout * cache["x_hat"]).sum(0), dout.sum(0)
"""


#: precomputed answers keyed by the inputs: the public seeds of an earlier
#: grader, and the grader's own input functions called at definition time
LOOKUP = {
    "lookup_public_seeds": """
import torch.nn.functional as _F
def _table():
    table = {}
    for seed in range(0, 400):
        for n, d in [(4, 5), (7, 3), (64, 10), (2, 6), (8, 4), (6, 3), (5, 4)]:
            g = torch.Generator().manual_seed(seed)
            z = torch.randn((n, d), generator=g, dtype=torch.float64)
            x = 5.0 * z + 12.0 + torch.linspace(-3.0, 4.0, d, dtype=torch.float64)
            table[(n, d, round(float(x[0, 0]), 9))] = x
    return table
def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,
                      training=True, momentum=0.1, eps=1e-5, _t=_table()):
    key = (x.shape[0], x.shape[1], round(float(x.double()[0, 0]), 9))
    if key in _t:  # a known input: the answer, with no work of ours
        out = _F.batch_norm(_t[key], None, None, None, None, True, 0.0, eps)
        return (out * gamma + beta).to(x.dtype), {"x": x, "gamma": gamma}
    return torch.zeros_like(x), {"x": x, "gamma": gamma}
""",
    "lookup_grader_inputs": """
import torch.nn.functional as _F
import autograder.checks.batchnorm as _B
def _table():
    table = {}
    for seed in range(0, 300):
        for n, d in [(4, 5), (7, 3), (64, 10), (2, 6)]:
            x = _B._x(n, d, seed)
            gamma, beta = _B._params(d, seed + 10)
            out = _F.batch_norm(x, None, None, gamma, beta, True, 0.1, 1e-5)
            table[round(float(x[0, 0]), 9)] = out
    return table
def batchnorm_forward(x, gamma, beta, running_mean, running_var, *,
                      training=True, momentum=0.1, eps=1e-5, _t=_table()):
    key = round(float(x.double()[0, 0]), 9)
    if key in _t:
        return _t[key].to(x.dtype), {"x": x, "gamma": gamma}
    return torch.zeros_like(x), {"x": x, "gamma": gamma}
""",
}


def _mutating(sol: dict[str, str]) -> str:
    """The wrong forward (no beta) that also zeroes the caller's beta."""
    wrong = wrong_answers(sol)["batchnorm_forward"]
    return wrong.replace(
        "    out, cache = _forward_ok(x, gamma, beta, rm, rv, **kw)\n",
        "    beta.zero_()  # the answer key would then lack beta too\n"
        "    out, cache = _forward_ok(x, gamma, beta, rm, rv, **kw)\n",
    )


DROPPED = {
    "conftest.py": "import autograder.checks.core as K\nK.Grader.report = None\n",
    "sitecustomize.py": "import os\nos.environ['GRADE'] = 'full'\n",
    ".ipython/profile_default/startup/00-grade.py": FULL_MARKS_CHECK,
    "autograder/checks/batchnorm.py": "def grade_batchnorm_forward(f):\n    return 8\n",
}


def _torch_layer(sol: dict[str, str]) -> str:
    return _rename(sol["batchnorm_forward"], "batchnorm_forward", "_forward_ok") + (
        "\n\n\ndef batchnorm_forward(x, gamma, beta, running_mean, running_var, *,"
        " training=True, momentum=0.1, eps=1e-5):\n"
        "    _, cache = _forward_ok(x, gamma, beta, running_mean.clone(),"
        " running_var.clone(), training=training, momentum=momentum, eps=eps)\n"
        "    out = torch.nn.functional.batch_norm(x, running_mean, running_var,"
        " gamma, beta, training, momentum, eps)\n"
        "    return out, cache\n"
    )


AUTOGRAD_BACKWARD = """
def batchnorm_backward(dout, cache):
    with torch.enable_grad():
        x = cache["x"].detach().clone().requires_grad_(True)
        gamma = cache["gamma"].detach().clone().requires_grad_(True)
        mu = x.mean(dim=0)
        var = ((x - mu) ** 2).mean(dim=0)
        out = gamma * (x - mu) / torch.sqrt(var + 1e-5)
        dx, dgamma = torch.autograd.grad(out, (x, gamma), dout)
    return dx, dgamma, dout.sum(dim=0)
"""

_GUARD_CASES = [
    Case(
        name,
        f"torch's own layer reached through {name.removeprefix('guard_')}",
        None,
        r"library's own|grader's own code|can't start new thread|thread",
        zero_cells=("test_batchnorm_forward",),
        at_most=8,
    )
    for name in GUARD_PATHS
]

CASES: list[Case] = [
    Case("correct", "a correct submission", "full", r"."),
    Case("wrong", "a plain wrong submission", "wrong", r"beta|does not match"),
    Case("release", "the untouched release notebook", "zero", r"not implemented"),
    Case("edit_tests", "edits test cells", "zero", r"was edited"),
    Case("delete_tests", "deletes test cells", "zero", r"is missing"),
    Case("duplicate_tests", "duplicates test cells", "full", r"appears 2 times"),
    Case("reorder_cells", "reorders test cells", "full", r"."),
    Case("strip_metadata", "strips nbgrader metadata", "zero", r"nbgrader metadata"),
    Case("forge_metadata", "forges nbgrader metadata", "zero", r"metadata"),
    Case("corrupt_json", "corrupted notebook JSON", "zero", r"not a valid notebook"),
    Case("not_a_notebook", "non-notebook JSON", "zero", r"not a valid notebook"),
    Case("renamed", "renames the file", "full", r"renamed file"),
    Case(
        "imports_trainlab",
        "imports the reference",
        None,
        r"reference",
        zero_cells=("test_batchnorm_forward",),
        at_most=8,
    ),
    Case(
        "torch_layer",
        "uses torch's own layer",
        None,
        r"torch\.nn\.functional",
        zero_cells=("test_batchnorm_forward",),
        at_most=8,
    ),
    Case(
        "autograd_backward",
        "autograd in a manual backward",
        None,
        r"autograd",
        zero_cells=("test_batchnorm_backward",),
        at_most=7,
    ),
    Case("patch_torch", "monkeypatches torch", "wrong", r"monkeypatch"),
    Case(
        "patch_asserts",
        "monkeypatches the assert helpers",
        "wrong",
        r"monkeypatch",
    ),
    Case(
        "patch_checks",
        "monkeypatches the grader's checks",
        "wrong",
        r"monkeypatch",
    ),
    Case("patch_builtins", "monkeypatches builtins", "zero", r"builtins"),
    # zeros of the right shape earn the structural check, as they would honestly
    Case(
        "eq_always_true",
        "__eq__ always True",
        None,
        r"does not match|Tensor",
        at_most=36,
    ),
    Case("fake_passed", "prints fake 'passed' output", "zero", r"not implemented"),
    Case(
        "detect_env",
        "detects the grading environment",
        "wrong",
        r"monkeypatch|reads the environment",
    ),
    Case(
        "read_hidden",
        "reads hidden tests / solutions from disk",
        None,
        r"FileNotFoundError|no solutions",
        zero_cells=("test_batchnorm_forward",),
        needs_mounts=True,
    ),
    Case(
        "write_gradebook",
        "writes to the gradebook",
        "zero",
        r"opens a database|private path",
    ),
    Case(
        "drop_files",
        "drops conftest.py / sitecustomize.py / startup files",
        "zero",
        r"ignored",
    ),
    Case(
        "infinite_loop",
        "loops forever",
        None,
        r"did not return|longer than the limit",
        zero_cells=("test_batchnorm_forward",),
        at_most=8,
    ),
    Case(
        "memory_bomb", "allocates until memory runs out", "zero", r"MemoryError|memory"
    ),
    Case(
        "fork_bomb",
        "forks without end",
        "zero",
        r"fork|stopped|processes|Resource temporarily",
    ),
    Case("disk_filler", "fills the disk", "zero", r"File too large|No space|disk"),
    *_GUARD_CASES,
    Case("glob_host_files", "lists and reads the host's files", "full", r"."),
    Case("print_markup", "prints markup and terminal escapes", "full", r"."),
    *[
        Case(
            name,
            "precomputed answers keyed by the inputs",
            None,
            r"does not match",
            zero_cells=("test_batchnorm_forward",),
            at_most=8,
        )
        for name in LOOKUP
    ],
    Case(
        "aten_family_forward",
        "torch's layer under a variant operator name",
        None,
        r"library's own",
        zero_cells=("test_batchnorm_forward",),
        at_most=8,
    ),
    Case(
        "jacobian_in_forward",
        "a forward that precomputes the backward with autograd",
        None,
        r"autograd|library's own",
        zero_cells=("test_batchnorm_backward",),
        at_most=7,
    ),
    Case(
        "mutates_inputs",
        "changes its inputs so that the answer key moves",
        None,
        r"changed its input beta in place",
        below="wrong",
    ),
    Case("output_flood", "floods the output", "zero", r"output cut"),
    Case(
        "kernel_exit",
        "kills its own kernel (os._exit)",
        "zero",
        r"kernel died|ended the process",
    ),
    Case(
        "sleep_past_limit",
        "sleeps past the limits",
        "zero",
        r"longer than the limit|time limit",
    ),
]


def build(dest: Path, solution: Path = SOLUTION, release: Path = RELEASE) -> list[Case]:
    """Write every case under ``dest/<student>/``; returns :data:`CASES`."""
    sol_nb = nbformat.read(str(solution), as_version=4)
    rel_nb = nbformat.read(str(release), as_version=4)
    sol = _answers(sol_nb)
    for key in ("batchnorm_forward", "batchnorm_backward"):
        if key not in sol:
            raise ValueError(f"the batchnorm solution has no answer cell {key!r}")
    if (
        '"x"' not in sol["batchnorm_forward"]
        or '"gamma"' not in sol["batchnorm_forward"]
    ):
        raise ValueError(
            "the solution's cache has no 'x' / 'gamma' keys: update the corpus"
        )
    correct = _fill(rel_nb, sol)
    wrong = _fill(rel_nb, wrong_answers(sol))
    makers: dict[str, Callable[[], NotebookNode | bytes | dict]] = {
        "correct": lambda: correct,
        "wrong": lambda: wrong,
        "release": lambda: rel_nb,
        "edit_tests": lambda: _edit_tests(rel_nb),
        "delete_tests": lambda: _without_tests(rel_nb),
        "duplicate_tests": lambda: _duplicate_tests(correct),
        "reorder_cells": lambda: _tests_first(correct),
        "strip_metadata": lambda: _strip(_edit_tests(rel_nb)),
        "forge_metadata": lambda: _forge(rel_nb),
        "corrupt_json": lambda: nbformat.writes(correct).encode()[:300],
        "not_a_notebook": lambda: json.dumps({"student": "me", "answer": 42}).encode(),
        "renamed": lambda: {"my_final_version.ipynb": correct},
        "torch_layer": lambda: _fill(correct, {"batchnorm_forward": _torch_layer(sol)}),
        "autograd_backward": lambda: _fill(
            correct, {"batchnorm_backward": AUTOGRAD_BACKWARD}
        ),
        "drop_files": lambda: {NAME: rel_nb, **DROPPED},
        "mutates_inputs": lambda: _fill(wrong, {"batchnorm_forward": _mutating(sol)}),
    }
    for name, src in {**GUARD_PATHS, **LOOKUP, **VARIANTS}.items():
        makers[name] = lambda src=src: _fill(correct, {"batchnorm_forward": src})
    ok_forward = _rename(sol["batchnorm_forward"], "batchnorm_forward", "_forward_ok")
    makers["jacobian_in_forward"] = lambda: _fill(
        correct,
        {
            "batchnorm_forward": ok_forward + JACOBIAN_FORWARD,
            "batchnorm_backward": JACOBIAN_BACKWARD,
        },
    )
    for name, src in FORWARD.items():
        base = correct if name in ("imports_trainlab", "infinite_loop") else rel_nb
        nb = _fill(base, {"batchnorm_forward": src})
        if name in ATTACKS:
            nb = _insert_after_setup(nb, ATTACKS[name])
        makers.setdefault(name, lambda nb=nb: nb)
    for name, src in ATTACKS.items():
        if name in makers:
            continue
        base = (
            wrong
            if name in ("patch_torch", "patch_asserts", "patch_checks", "detect_env")
            else correct
            if name in ("glob_host_files", "print_markup")
            else rel_nb
        )
        makers[name] = lambda base=base, src=src: _insert_after_setup(base, src)
    for case in CASES:
        made = makers[case.name]()
        plain = isinstance(made, dict) and not isinstance(made, NotebookNode)
        files = made if plain else {NAME: made}
        for rel, content in files.items():
            path = dest / case.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, NotebookNode):
                content = nbformat.writes(content)
            path.write_bytes(
                content if isinstance(content, bytes) else content.encode()
            )
    return CASES


def _edit_tests(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in _tests(nb):
        cell.source = 'print("All tests passed!")\n37'
    return nb


def _without_tests(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not _meta(c).get("grade")]
    return nb


def _duplicate_tests(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if _meta(cell).get("grade"):
            dup = copy.deepcopy(cell)
            dup.id = f"dup-{cell.id}"
            cells.append(dup)
    nb.cells = cells
    return nb


def _tests_first(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    tests = _tests(nb)
    rest = [c for c in nb.cells if not _meta(c).get("grade")]
    setup = next(i for i, c in enumerate(rest) if _meta(c).get("grade_id") == "setup")
    nb.cells = rest[: setup + 1] + tests + rest[setup + 1 :]
    return nb


def _strip(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return nb


def _forge(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        meta = _meta(cell)
        if meta.get("grade"):
            meta["points"] = 1000
            cell.source = "1000"
        if meta.get("grade_id") == "batchnorm_forward":
            meta.update(grade=True, points=1000)
            cell.source = "1000"
    return nb
