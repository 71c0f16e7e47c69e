"""Fixtures for the grader's tests: the batchnorm assignment, a sandbox policy,
a PostgreSQL server started for the session, and running the command."""

from __future__ import annotations

import glob
import os
import shutil
import socket
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


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on a free localhost port, for the session.

    As root the server runs as the ``postgres`` user (initdb refuses root).
    Skipped, with the reason, when the server binaries are missing.
    """
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    prefix: list[str] = []
    data_root = tempfile.mkdtemp(prefix="gradebook-pg-")
    if os.geteuid() == 0:
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip(
                "running as root and there is no 'postgres' user to run the server"
            )
        os.chown(data_root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(data_root, "data")
    port = _free_port()

    def pg_run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            prefix + [os.path.join(pg, cmd[0]), *cmd[1:]],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
            cwd=data_root,
        )

    pg_run("initdb", "-D", data, "-U", "grader", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -k {data_root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_run(
        "pg_ctl",
        "-D",
        data,
        "-o",
        opts,
        "-l",
        os.path.join(data_root, "log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        pg_run(
            "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook"
        )
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/gradebook"
    finally:
        pg_run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", check=False)
        time.sleep(0.2)
        shutil.rmtree(data_root, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        con.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
