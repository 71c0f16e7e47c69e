"""The static scan flags borrowed answers, autograd in backward passes and
monkeypatching, and stays quiet on the instructor's own notebooks."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.outputs.scan import main, scan_notebook

pytestmark = pytest.mark.grader

ROOT = Path(__file__).resolve().parents[2]


def _nb(*sources: str, solution: bool = True) -> nbformat.NotebookNode:
    cells = []
    for i, src in enumerate(sources):
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["nbgrader"] = {
            "grade": False,
            "solution": solution,
            "locked": not solution,
            "grade_id": f"cell{i}",
            "schema_version": 3,
        }
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def kinds(findings) -> list[str]:
    return [f.kind for f in findings]


@pytest.mark.parametrize(
    "source, kind",
    [
        ("from trainlab.batchnorm import batchnorm_forward as _f", "reference-import"),
        ("import trainlab.groupnorm as gn", "reference-import"),
        ("from trainlab import layernorm", "reference-import"),
        (
            "import torch.nn.functional as F\n"
            "def batchnorm_forward(x, g, b, rm, rv):\n"
            "    return F.batch_norm(x, rm, rv, g, b), {}",
            "library-layer",
        ),
        (
            "import torch\ndef layernorm_forward(x, g, b):\n"
            "    return torch.layer_norm(x, g.shape, g, b), {}",
            "library-layer",
        ),
        (
            "import torch\ndef f(x):\n    return torch.nn.GroupNorm(2, 4)(x)",
            "library-layer",
        ),
        (
            "def sigmoid_forward(x):\n    return x.sigmoid(), x",
            "library-layer",
        ),
        (
            "import torch\ndef batchnorm_backward(dout, cache):\n"
            "    return torch.autograd.grad(cache['out'], cache['x'], dout)",
            "autograd",
        ),
        (
            "def layernorm_backward(dout, cache):\n"
            "    cache['out'].backward(dout)\n    return cache['x'].grad",
            "autograd",
        ),
        ("import torch\ntorch.allclose = lambda *a, **k: True", "monkeypatch"),
        ("import builtins\nbuiltins.print = None", "monkeypatch"),
        ("import torch\nsetattr(torch, 'allclose', None)", "monkeypatch"),
        (
            "import autograder.checks.core as c\nc.Grader.check = lambda *a, **k: True",
            "monkeypatch",
        ),
        ("import sys\nsys.modules['trainlab'] = None", "monkeypatch"),
        ("import sys\nsys.setprofile(None)", "monkeypatch"),
        ("import torch\ntorch.Tensor.__eq__ = lambda a, b: True", "monkeypatch"),
        ("def broken(:\n    pass", "syntax"),
    ],
)
def test_flags(source, kind):
    assert kind in kinds(scan_notebook(_nb(source)))


def test_clean_code_and_allowed_imports_are_not_flagged():
    nb = _nb(
        "%matplotlib inline\nimport torch\n"
        "from trainlab._validate import check_tensor\n"
        "from trainlab.batchnorm import Cache, _check_params\n"
        "def batchnorm_forward(x, gamma, beta, rm, rv):\n"
        "    mu = x.mean(0)\n"
        "    var = ((x - mu) ** 2).mean(0)\n"
        "    return gamma * (x - mu) / torch.sqrt(var + 1e-5) + beta, {}\n"
    )
    assert scan_notebook(nb) == []


def test_unchanged_locked_cells_are_skipped_but_edited_ones_are_not():
    source = _nb("from trainlab.gradcheck import check_layer", solution=False)
    assert scan_notebook(source, source) == []
    edited = _nb(
        "from trainlab.gradcheck import check_layer, numerical_gradient", solution=False
    )
    assert kinds(scan_notebook(edited, source)) == ["reference-import"] * 2


@pytest.mark.parametrize("name", ["gradcheck", "batchnorm", "normalization"])
def test_solution_and_release_notebooks_are_clean(name):
    source = ROOT / "solutions" / name / f"{name}.ipynb"
    release = ROOT / "notebooks" / name / f"{name}.ipynb"
    assert scan_notebook(source, source) == []
    assert scan_notebook(release, source) == []


def test_command_line_exit_status(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_nb("import torch\ntorch.sum = None"), str(bad))
    good = tmp_path / "good.ipynb"
    nbformat.write(_nb("x = 1"), str(good))
    junk = tmp_path / "junk.ipynb"
    junk.write_text("not json")
    assert main([str(good)]) == 0
    assert main([str(bad)]) == 1
    assert "assigns to torch.sum" in capsys.readouterr().out
    assert main([str(junk)]) == 1
    assert "cannot scan" in capsys.readouterr().out
