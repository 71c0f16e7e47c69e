"""One source: graded cells generated from the library, release notebooks from
nbgrader, and a check that fails when committed files are stale."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import nbformat
import pytest
import torch

import trainlab.batchnorm as bn
from autograder.authoring import generate
from autograder.authoring.generate import (
    BEGIN,
    END,
    GenerateError,
    compare,
    function_cell_source,
    notebook_text,
    refresh_source,
)

pytestmark = pytest.mark.grader


def test_cell_keeps_signature_and_docstring_and_marks_the_body():
    src = function_cell_source("trainlab.batchnorm:batchnorm_backward_alt")
    tree = ast.parse(src)
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef) and fn.name == "batchnorm_backward_alt"
    assert ast.get_docstring(fn) == inspect.getdoc(bn.batchnorm_backward_alt)
    lines = src.split("\n")
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == END)
    assert end == len(lines) - 1
    assert '"""' in "\n".join(lines[:begin])  # the docstring is above the marker
    assert lines[begin] == "    " + BEGIN


def test_generated_cell_behaves_like_the_library_function():
    src = function_cell_source("trainlab.batchnorm:batchnorm_backward_alt")
    ns = {"torch": torch, "Cache": bn.Cache, "_check_dout": bn._check_dout}
    exec(src, ns)  # noqa: S102
    x = torch.randn(5, 3, dtype=torch.float64)
    gamma, beta = (
        torch.randn(3, dtype=torch.float64),
        torch.randn(3, dtype=torch.float64),
    )
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    _, cache = bn.batchnorm_forward(x, gamma, beta, rm, rv)
    dout = torch.randn(5, 3, dtype=torch.float64)
    for a, b in zip(
        ns["batchnorm_backward_alt"](dout, cache),
        bn.batchnorm_backward_alt(dout, cache),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_bad_spec_is_a_clear_error():
    with pytest.raises(GenerateError, match="module:function"):
        function_cell_source("trainlab.batchnorm")


def _cell(source: str, **meta) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(meta)
    return cell


def _notebook(*cells) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


def test_refresh_strips_outputs_and_editor_state_and_regenerates():
    setup = _cell(
        "import torch\nfrom trainlab.batchnorm import Cache, _check_dout",
        collapsed=True,
        nbgrader={
            "grade_id": "setup",
            "locked": True,
            "solution": False,
            "grade": False,
            "schema_version": 3,
        },
    )
    setup.outputs = [nbformat.v4.new_output("stream", text="hi")]
    setup.execution_count = 3
    graded = _cell(
        "stale",
        trainlab={"generated_from": "trainlab.batchnorm:batchnorm_backward_alt"},
        nbgrader={
            "grade_id": "batchnorm_backward_alt",
            "solution": True,
            "grade": False,
            "locked": False,
            "schema_version": 3,
        },
    )
    nb = _notebook(setup, graded)
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    refresh_source(nb, "demo")
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert "collapsed" not in nb.cells[0].metadata
    assert nb.cells[1].source.startswith("def batchnorm_backward_alt(")
    assert nb.metadata["language_info"] == {"name": "python"}
    assert [c.id for c in nb.cells] == [c.id for c in refresh_source(nb, "demo").cells]
    assert notebook_text(nb) == notebook_text(refresh_source(nb, "demo"))


def test_a_helper_the_notebook_does_not_import_is_reported():
    graded = _cell(
        "",
        trainlab={"generated_from": "trainlab.batchnorm:batchnorm_backward_alt"},
        nbgrader={
            "grade_id": "batchnorm_backward_alt",
            "solution": True,
            "grade": False,
            "locked": False,
            "schema_version": 3,
        },
    )
    nb = _notebook(_cell("import torch"), graded)
    with pytest.raises(GenerateError, match="_check_dout"):
        refresh_source(nb, "demo")


def test_compare_reports_missing_extra_and_changed_files(tmp_path):
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    fresh.mkdir()
    committed.mkdir()
    (fresh / "same.txt").write_text("a\n")
    (committed / "same.txt").write_text("a\n")
    (fresh / "changed.txt").write_text("new\n")
    (committed / "changed.txt").write_text("old\n")
    (fresh / "missing.txt").write_text("x\n")
    (committed / "extra.txt").write_text("y\n")
    generate.ROOT, saved = tmp_path, generate.ROOT
    try:
        problems = compare(fresh, committed)
    finally:
        generate.ROOT = saved
    text = "\n".join(problems)
    assert len(problems) == 3
    assert "changed.txt: differs" in text and "-old" in text and "+new" in text
    assert "missing.txt: missing" in text
    assert "extra.txt: not produced" in text


@pytest.mark.slow
def test_committed_notebooks_match_a_fresh_generation():
    """`python -m autograder.authoring.generate --check` fails on stale notebooks."""
    result = subprocess.run(
        [sys.executable, "-m", "autograder.authoring.generate", "--check"],
        capture_output=True,
        text=True,
        cwd=generate.ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout
