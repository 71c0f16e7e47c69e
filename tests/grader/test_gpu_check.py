"""tools/gpu-check.sh on a machine without a GPU: it says so and grades on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autograder.sandbox import gpu

pytestmark = [pytest.mark.grader, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(gpu.has_gpu_files(), reason="this machine has a GPU")
def test_the_dry_run_without_a_gpu_skips_cleanly_and_grades_on_the_cpu():
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu-check.sh"), "--dry-run"]
        + ["--python", sys.executable, "--skip-tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.startswith("device: cpu (no CUDA GPU on this machine")
    lines = [line for line in out.splitlines() if line.startswith("|")]
    rows = {line.split("|")[1].strip(): line for line in lines}
    grading = rows["grading 3 submissions (s)"]
    cpu_seconds = grading.split("|")[2].strip()
    assert float(cpu_seconds) > 0  # the CPU leg ran
    assert "no GPU: skipped" in grading
    assert "no GPU: skipped" in rows["identical scores"]


def test_wheels_from_an_empty_folder_are_refused_with_what_to_do(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu-check.sh"), "--wheels", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no wheels there; make them with tools/gpu-wheels.sh" in done.stderr


def test_the_wheel_list_leaves_out_what_a_gpu_image_holds():
    script = (ROOT / "tools" / "gpu-wheels.sh").read_text()
    skip = script.split('SKIP="', 1)[1].split('"', 1)[0].split()
    # the image's CUDA torch must be the one tested; the lab's front end is
    # never served by grading
    for name in ("torch", "triton", "numpy", "jupyterlab", "notebook", "babel"):
        assert name in skip, name
    # what grading imports must travel
    for name in ("nbgrader", "nbformat", "nbclient", "ipykernel", "nh3"):
        assert name not in skip, name
