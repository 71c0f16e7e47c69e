"""Notebook cells run in a sandboxed IPython shell, with a kernel's outputs."""

from __future__ import annotations

import nbformat
import pytest

from autograder.sandbox import isolation as sandbox
from autograder.sandbox import kernel

pytestmark = pytest.mark.grader
LIMITS = sandbox.Limits(
    cell_timeout=3, notebook_timeout=20, memory_mb=1024, output_kb=8
)


def _run(policy, *sources: str) -> tuple[nbformat.NotebookNode, dict]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    info = kernel.execute(nb, limits=LIMITS, policy=policy)
    return nb, info


def _types(cell) -> list[str]:
    return [o.output_type + (f":{o.name}" if "name" in o else "") for o in cell.outputs]


def test_outputs_are_those_of_a_kernel(policy):
    nb, info = _run(
        policy,
        "import torch\nx = torch.ones(3)\nprint('hi')\nx.sum()",
        "import sys\nprint('warn', file=sys.stderr)",
        "from IPython.display import display, HTML\ndisplay(HTML('<b>b</b>'))\n3.5",
        "1 / 0",
        "x.sum();",
        "import os\n_ = os.write(1, b'raw fd output')",
    )
    assert info["status"] == "ok"
    c = nb.cells
    assert _types(c[0]) == ["stream:stdout", "execute_result"]
    assert c[0].outputs[1].data["text/plain"] == "tensor(3.)"
    assert c[0].execution_count == 1 and c[0].outputs[1].execution_count == 1
    assert _types(c[1]) == ["stream:stderr"]
    assert _types(c[2]) == ["display_data", "execute_result"]
    assert c[2].outputs[0].data["text/html"] == "<b>b</b>"
    assert _types(c[3]) == ["error"] and c[3].outputs[0].ename == "ZeroDivisionError"
    assert c[4].outputs == []  # a trailing semicolon hides the value
    assert c[5].outputs[0].text == "raw fd output"


def test_cell_timeout_stops_the_notebook(policy):
    nb, info = _run(policy, "1", "while True:\n    pass", "2")
    assert info["status"] == "timeout" and info["cell"] == 1
    assert nb.cells[1].outputs[0].ename == "CellTimeoutError"
    assert nb.cells[2].outputs[0].ename == "CellNotRun"


def test_a_dying_kernel_is_reported(policy):
    nb, info = _run(policy, "1", "import os\nos._exit(7)", "2")
    assert info["status"] == "died" and "exit status 7" in info["message"]
    assert nb.cells[1].outputs[0].ename == "DeadKernelError"


def test_output_is_cut_at_the_limit(policy):
    nb, info = _run(policy, "for i in range(100000):\n    print('flood ' * 10)")
    text = nb.cells[0].outputs[0].text
    assert len(text) < LIMITS.output_kb * 1024 + 200
    assert "output cut" in text and info["cut"] == [0]
