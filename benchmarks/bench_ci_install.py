"""What the CI templates and a student install: size and time into an empty venv.

Three sets, each into a fresh ``python -m venv`` with a fresh pip cache:

- **developer**: ``pip install -r requirements.txt`` (what the templates
  installed before: the book, the tests and the tools as well);
- **grading**: ``pip install torch==2.13.0`` from PyTorch's CPU index (here: the
  index pip is configured with), then ``pip install -r requirements-grading.txt``
  (what the templates install now);
- **student**: ``pip install torch==2.13.0`` then ``pip install ".[student]"``
  (the README's student install, from a clone).

Then ``pip install --no-deps -e .`` in the first two. Size is ``du -sk`` of the venv.
Times depend on the network: where pip reads local mirrors they measure the
install itself. "cpu s" (user + system time of pip and its children) depends
less than the wall time on what else the machine is doing.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"


def _pip(venv: Path, *args: str, env: dict) -> None:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        check=True,
        cwd=ROOT,
        env=env,
    )


def _measure(name: str, steps: list[list[str]]) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"ci-install-{name}-"))
    try:
        venv = tmp / "venv"
        env = {**os.environ, "PIP_CACHE_DIR": str(tmp / "cache")}
        env.pop("PYTHONPATH", None)
        start = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for args in steps:
            _pip(venv, *args, env=env)
        seconds = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        du = subprocess.run(
            ["du", "-sk", str(venv)], capture_output=True, text=True, check=True
        )
        count = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.count("\n")
        return {
            "set": name,
            "install s": round(seconds, 1),
            "cpu s": round(cpu, 1),
            "venv MB": round(int(du.stdout.split()[0]) / 1024),
            "distributions": count,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run() -> list[dict]:
    editable = ["--no-deps", "-e", "."]
    return [
        _measure(
            "grading (requirements-grading.txt)",
            [[TORCH], ["-r", "requirements-grading.txt"], editable],
        ),
        _measure(
            "developer (requirements.txt)", [["-r", "requirements.txt"], editable]
        ),
        # what a student's laptop gets (README: "Set-up for students")
        _measure("student (.[student] and torch)", [[TORCH], [".[student]"]]),
    ]
