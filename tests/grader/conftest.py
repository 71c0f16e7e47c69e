"""Fixtures for the grader's tests: the batchnorm assignment, a sandbox policy,
a PostgreSQL server started for the session, and running the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "batchnorm" / "batchnorm.ipynb"
RELEASE = ROOT / "notebooks" / "batchnorm" / "batchnorm.ipynb"


def need_batchnorm() -> None:
    if not SOLUTION.is_file() or not RELEASE.is_file():
        pytest.skip("the batchnorm assignment (solutions/ and notebooks/) is missing")


@pytest.fixture(scope="session")
def bn_spec():
    """The batchnorm assignment as the grader sees it."""
    need_batchnorm()
    from autograder.authoring import assignment

    spec, _ = assignment.load("batchnorm")
    return spec


@pytest.fixture
def policy():
    """The grading sandbox policy: the solutions hidden, a uid of its own."""
    from autograder.sandbox import isolation as sandbox

    uid = sandbox.BASE_UID + 4000 + os.getpid() % 1000 if os.geteuid() == 0 else None
    return sandbox.course_policy(str(ROOT), hide=(str(ROOT / "solutions"),), uid=uid)


def grade_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "autograder", *args]


def run_grader(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` from the repository root."""
    return subprocess.run(
        grade_cmd(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


#: fast limits for end-to-end runs (the hidden tests take well under a second)
FAST = (
    # what these tests expect is the CPU's grading, also on a machine with a
    # GPU (grading on the GPU is tools/gpu-check.sh's and test_device_grading's)
    "--device",
    "cpu",
    "--cell-timeout",
    "8",
    "--call-timeout",
    "4",
    "--notebook-timeout",
    "120",
    "--memory-mb",
    "1024",
    "--no-progress",
)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on a free localhost port, for the session, started as
    ``make db`` starts one (:mod:`autograder.outputs.postgres`).

    Skipped, with the reason, when the server cannot be had here (no server
    programs; as root, no ``postgres`` user).
    """
    from autograder.outputs import postgres

    if postgres.pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    folder = Path(tempfile.mkdtemp(prefix="gradebook-pg-"))
    try:
        server = postgres.start(folder, postgres.free_port(), fast=True)
    except postgres.ServerError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server here: {exc}")
    try:
        yield server.url()
    finally:
        postgres.stop(folder)
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        con.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
