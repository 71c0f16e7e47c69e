"""The student install, end to end, in a fresh virtual environment.

``pip install "<course>[student]"`` outside the repository (torch installed
first, as on Colab or with the CPU index), then a notebook with one right and
one wrong function is executed there and checked: ``check`` exits 1 and names
the mistake. The install's size and time are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.grader, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RIGHT = """\
def rel_error(a, b, eps=1e-12):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / max(eps, float((a.abs() + b.abs()).max())))
"""
WRONG = """\
def numerical_gradient(f, x, dout, h=1e-5):
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(x.numel()):
        old = flat[i].item()
        flat[i] = old + h
        plus = float((f(x) * dout).sum())
        flat[i] = old
        gflat[i] = (plus - float((f(x) * dout).sum())) / h  # one-sided
    return grad
"""


def _pip(venv: Path, *args: str) -> None:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        check=True,
        timeout=1800,
    )


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _student_notebook(path: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "gradcheck" / "gradcheck.ipynb", 4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "rel_error":
            cell.source = RIGHT
        elif gid == "numerical_gradient":
            cell.source = WRONG
    nbformat.write(nb, path)


def test_student_install_runs_and_checks_a_notebook(tmp_path_factory):
    work = tmp_path_factory.mktemp("student")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.monotonic()
    _pip(venv, "torch==2.13.0")  # what Colab has; else the CPU index (README)
    torch_mb = _size_mb(venv)
    _pip(venv, f"{ROOT}[student]")
    seconds, size = time.monotonic() - start, _size_mb(venv)
    print(
        f"\nstudent install: {size:.0f} MiB ({size - torch_mb:.0f} MiB without torch)"
    )
    print(f"in {seconds:.0f} s")

    notebook = work / "gradcheck.ipynb"
    _student_notebook(notebook)
    python = str(venv / "bin" / "python")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(
        [python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--allow-errors", "--inplace", str(notebook)],
        check=True, cwd=work, env=env, timeout=600,
    )  # fmt: skip
    executed = nbformat.read(notebook, 4)
    assert executed.cells[0].outputs == []  # the install cell: nothing to do
    args = [python, "-m", "autograder", "check", str(notebook)]
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=work, env=env, timeout=600
    )
    if done.returncode == 2 and "--no-sandbox" in done.stderr:  # no namespaces here
        done = subprocess.run(
            [*args, "--no-sandbox"],
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
            timeout=600,
        )
    print(done.stdout, done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "test_rel_error" in done.stdout and "Points 5/13" in done.stdout
    assert "Likely mistake: a one-sided difference" in done.stdout
