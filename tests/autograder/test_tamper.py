"""The tamper scan: what reaches around the guard is flagged, honest code is not."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.authoring import assignment as asg
from autograder.outputs import tamper

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.grader


def _nb(source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    return nb


REACH_AROUND = {
    "closure": "def f():\n    return g.__closure__[0].cell_contents\n",
    "frames": "import sys\ndef f():\n    return sys._getframe().f_back.f_locals\n",
    "traceback frames": "def f(e):\n    return e.__traceback__.tb_frame\n",
    "dispatch off": "import torch\n"
    "def f(x):\n"
    "    with torch._C._DisableTorchDispatch():\n"
    "        return x\n",
    "mode popped": "from torch.utils import _python_dispatch as d\n"
    "def f():\n"
    "    d._pop_mode()\n",
    "grader import": "import autograder.checks.own_code as oc\n",
    "ctypes": "import ctypes\n",
    "memory search": "import gc\ndef f():\n    return gc.get_objects()\n",
}


@pytest.mark.parametrize("name", sorted(REACH_AROUND))
def test_reach_arounds_are_flagged(name):
    found = tamper.scan(_nb(REACH_AROUND[name]))
    assert found and all("[reach-around]" in f for f in found), found


@pytest.mark.parametrize("name", asg.available())
def test_the_release_notebooks_filled_with_the_solutions_are_not_flagged(name):
    release = nbformat.read(str(ROOT / "notebooks" / name / f"{name}.ipynb"), 4)
    source = nbformat.read(str(asg.source_path(name)), as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    for cell in release.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[gid]
    assert tamper.scan(release) == []
