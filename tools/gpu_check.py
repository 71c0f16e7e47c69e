"""The GPU check behind ``tools/gpu-check.sh``: CUDA tests, then one class graded twice.

1. the CUDA subset of the tests (``pytest -m cuda``: every numerical test's
   CUDA variant, and the sandbox's own CUDA test), counted from pytest's
   JUnit XML;
2. a class of generated batchnorm submissions (``benchmarks/bench_grading.py``'s
   correct and wrong ones, plus one forward that works only on the CPU)
   graded with ``python -m autograder grade --device cuda`` and again with
   ``--device cpu``, each into an empty work folder, timed from start to exit;
3. a table: tests passed/skipped/failed, seconds per device, and whether every
   student got the same score on both devices.

Without a GPU the CUDA rows say "no GPU: skipped" and the CPU leg still runs.
``--dry-run`` grades two submissions and only collects the CUDA tests.
Exit status: 0 when nothing failed (and, with a GPU, the scores are identical).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from autograder.pipeline import device  # noqa: E402
from benchmarks import bench_grading  # noqa: E402

#: a forward that works only on the CPU: the device check must find it on both
CPU_ONLY = (
    "batchnorm_forward",
    "    out, cache = _batchnorm_forward_ok(*args, **kwargs)\n"
    "    return out + torch.zeros(out.shape[1], dtype=out.dtype), cache",
)
NO_GPU = "no GPU: skipped"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def cuda_tests(collect_only: bool) -> str:
    """Run (or collect) ``pytest -m cuda``; 'P passed, S skipped, F failed'."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "tests"]
        cmd += ["-p", "no:cacheprovider", f"--junitxml={xml}"]
        if collect_only:
            cmd.append("--collect-only")
        done = subprocess.run(
            cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, check=False
        )
        if collect_only:
            last = (done.stdout.strip().splitlines() or ["?"])[-1]
            return f"collected only (--dry-run): {last}"
        if not xml.exists():
            return f"pytest did not run (exit {done.returncode}): {done.stderr[-300:]}"
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total = int(suite.get("tests", 0))
        skipped = int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        return f"{total - skipped - failed} passed, {skipped} skipped, {failed} failed"


def make_class(dest: Path, n: int) -> None:
    """``n`` submissions from the grading benchmark, plus a CPU-only forward."""
    bench_grading.make_submissions(dest, n)
    nb_path = dest / "student00" / "batchnorm.ipynb"  # a correct one: copy it
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    name, body = CPU_ONLY
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == name:
            cell.source = bench_grading._wrap(cell.source, name, body)
    (dest / "cpu-only").mkdir()
    nbformat.write(nb, dest / "cpu-only" / "batchnorm.ipynb")


class NoSandbox(Exception):
    """``grade`` refused: this machine cannot give it the sandbox."""


def grade(
    subs: Path, work: Path, on: str, jobs: int, sandbox: bool = True
) -> tuple[float, dict, str]:
    """Grade the class on ``on``; (seconds, {student: score}, device named).

    Raises:
        NoSandbox: ``grade`` refused for want of a sandbox (``sandbox=True``).
    """
    cmd = [sys.executable, "-m", "autograder", "grade", str(subs), "-a", "batchnorm"]
    cmd += ["--work", str(work), "--jobs", str(jobs), "--device", on, "--no-progress"]
    if not sandbox:
        cmd.append("--no-sandbox")
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if not (work / "grades.json").exists():
        if sandbox and "--no-sandbox" in done.stderr:
            raise NoSandbox(done.stderr.strip().splitlines()[-1][:300])
        raise SystemExit(
            f"grading on {on} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    data = json.loads((work / "grades.json").read_text())
    scores = {r["student"]: r["score"] for r in data["submissions"]}
    named = next((r.get("device", "") for r in data["submissions"]), "")
    return seconds, scores, str(named)


def torch_version() -> str:
    """The installed torch's version, read without importing it."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| | cpu | cuda |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="2 submissions, no tests")
    p.add_argument("-n", type=int, default=24, help="generated submissions")
    p.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--skip-tests", action="store_true", help="no pytest -m cuda")
    args = p.parse_args(argv)
    n = 2 if args.dry_run else args.n
    found = device.resolve("auto")
    gpu = found.kind == "cuda"
    print(f"device: {found.name}" + (f" ({found.note})" if found.note else ""))
    if args.skip_tests:
        tests = "not run (--skip-tests)"
    else:
        tests = cuda_tests(collect_only=args.dry_run)
    if not gpu and not args.dry_run and not args.skip_tests:
        tests += f" ({NO_GPU})"
    print(f"tests -m cuda: {tests}")
    sandboxed = "yes"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        tmp = Path(tmp)
        make_class(tmp / "subs", n)
        try:
            cpu_s, cpu, cpu_named = grade(tmp / "subs", tmp / "cpu", "cpu", args.jobs)
        except NoSandbox as why:  # measured all the same, and said so
            sandboxed = f"no: {why}"
            shutil.rmtree(tmp / "cpu", ignore_errors=True)
            cpu_s, cpu, cpu_named = grade(
                tmp / "subs", tmp / "cpu", "cpu", args.jobs, sandbox=False
            )
        if gpu:
            gpu_s, cuda, gpu_named = grade(
                tmp / "subs",
                tmp / "cuda",
                "cuda",
                args.jobs,
                sandbox=sandboxed == "yes",
            )
    students = len(cpu)
    rows = [("torch", torch_version(), ""), ("sandbox", sandboxed, "")]
    rows += [("tests -m cuda", "", tests)]
    if gpu:
        same = cpu == cuda
        differ = {s: (cpu.get(s), cuda.get(s)) for s in cpu if cpu[s] != cuda.get(s)}
        rows += [
            (f"grading {students} submissions (s)", f"{cpu_s:.1f}", f"{gpu_s:.1f}"),
            ("identical scores", "yes" if same else f"no: {differ}", ""),
            ("graded on (grades.json)", cpu_named[:40], gpu_named[:60]),
        ]
    else:
        rows += [
            (f"grading {students} submissions (s)", f"{cpu_s:.1f}", NO_GPU),
            ("identical scores", "n/a", NO_GPU),
        ]
    print()
    print(table(rows))
    failed = " 0 failed" not in tests and "failed" in tests
    return 1 if failed or (gpu and cpu != cuda) else 0


if __name__ == "__main__":
    sys.exit(main())
