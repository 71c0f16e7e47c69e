"""The GitHub Actions templates: their grading steps, run exactly as written."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.grader.conftest import ROOT, need_batchnorm
from tests.grader.corpus import build

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]
WORKFLOWS = ROOT / "autograder" / "authoring" / "workflows"


def _grading_steps(name: str) -> tuple[dict, list[dict]]:
    flow = yaml.safe_load((WORKFLOWS / name).read_text())
    (job,) = flow["jobs"].values()
    steps = [s for s in job["steps"] if "autograder" in s.get("run", "")]
    assert steps, f"{name} has no step that runs the grader"
    env = {**flow.get("env", {}), **job.get("env", {})}
    return env, steps


def _run_step(step: dict, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """As GitHub runs a ``run:`` step: bash -eo pipefail, in working-directory."""
    full = dict(os.environ)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full['PATH']}"
    full.update({k: str(v) for k, v in env.items()})
    where = cwd / step.get("working-directory", ".")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=where,
        env=full,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    need_batchnorm()
    root = tmp_path_factory.mktemp("wf")
    build(root / "all")
    return root / "all"


def test_workflows_are_valid_and_report_to_classroom():
    student = yaml.safe_load((WORKFLOWS / "student.yml").read_text())
    job = student["jobs"]["run-autograding-tests"]
    assert job["name"] == "Autograding Tests"  # the check run the reporter updates
    reporter = next(s for s in job["steps"] if "grading-reporter" in s.get("uses", ""))
    assert reporter["with"]["runners"] == "grade"
    assert "steps.grade.outputs.result" in reporter["env"]["GRADE_RESULTS"]
    assert reporter["if"] == "always()"
    instructor = yaml.safe_load((WORKFLOWS / "instructor.yml").read_text())
    assert "workflow_dispatch" in instructor["on"]


def _header(name: str) -> str:
    text = (WORKFLOWS / name).read_text()
    return " ".join(ln.lstrip("# ") for ln in text.split("\nname:", 1)[0].splitlines())


@pytest.mark.parametrize("name", ["student.yml", "instructor.yml"])
def test_workflows_install_the_locked_grading_set_with_cpu_torch(name):
    flow = yaml.safe_load((WORKFLOWS / name).read_text())
    (job,) = flow["jobs"].values()
    setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert setup["with"]["cache-dependency-path"].endswith("requirements-grading.txt")
    (install,) = [s for s in job["steps"] if "pip install" in s.get("run", "")]
    lines = install["run"].strip().splitlines()
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[0]
    assert "torch==" in lines[0] and "requirements-grading.txt" in lines[0]
    assert "-r requirements-grading.txt" in lines[1]
    assert "requirements.txt" not in install["run"].replace("-grading.txt", "")
    (ROOT / "requirements-grading.txt").read_text().index("torch==2.13.0")
    header = _header(name)
    assert "MB" in header and "distributions" in header, "measured numbers"


def test_no_secret_in_the_workflow_students_can_edit():
    text = (WORKFLOWS / "student.yml").read_text()
    assert "secrets." not in text and "token:" not in text
    header = _header("student.yml")
    assert "no secret" in header.lower() and "public" in header
    instructor = (WORKFLOWS / "instructor.yml").read_text()
    assert "secrets.TRAINLAB_COURSE_SECRET" in instructor
    header = _header("instructor.yml")
    assert "private repository" in header and "TRAINLAB_COURSE_SECRET" in header


def test_student_workflow_step(submissions, tmp_path):
    env, (step,) = _grading_steps("student.yml")
    workspace = tmp_path / "workspace"
    (workspace / "submission").mkdir(parents=True)
    (workspace / "course").symlink_to(ROOT)
    wrong = (submissions / "wrong" / "batchnorm.ipynb").read_bytes()
    (workspace / "submission" / env["NOTEBOOK"]).write_bytes(wrong)
    output = tmp_path / "github_output"
    proc = _run_step(
        step, workspace, {**env, "GITHUB_WORKSPACE": workspace, "GITHUB_OUTPUT": output}
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # points were lost
    assert "points lost" in proc.stdout
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("Points ")]
    score, total = map(float, line[-1].split()[1].split("/"))
    assert 0 < score < total
    key, _, value = output.read_text().strip().partition("=")
    payload = json.loads(base64.b64decode(value))
    assert key == "result" and payload["max_score"] == total
    assert sum(t["score"] for t in payload["tests"]) == score


def test_instructor_workflow_step(submissions, tmp_path):
    env, (step,) = _grading_steps("instructor.yml")
    folder = tmp_path / "submissions"
    for name in ("correct", "wrong"):
        (folder / name).mkdir(parents=True)
        (folder / name / "batchnorm.ipynb").write_bytes(
            (submissions / name / "batchnorm.ipynb").read_bytes()
        )
    summary = tmp_path / "step_summary.md"
    proc = _run_step(
        step,
        tmp_path,
        {
            "SUBMISSIONS": folder,
            "ASSIGNMENT": "batchnorm",
            "GITHUB_STEP_SUMMARY": summary,
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grades = json.loads((tmp_path / "grading" / "grades.json").read_text())
    scores = {r["student"]: r["score"] for r in grades["submissions"]}
    assert scores["correct"] == grades["submissions"][0]["max_score"] > scores["wrong"]
    assert "| correct | batchnorm |" in summary.read_text()
    assert (
        tmp_path / "grading" / "feedback" / "wrong" / "batchnorm" / "batchnorm.html"
    ).is_file()
