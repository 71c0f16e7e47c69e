"""`make db`: a local PostgreSQL gradebook that `grade` writes to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.outputs import postgres
from tests.grader.conftest import FAST, ROOT, SOLUTION, need_batchnorm, run_grader

pytestmark = [pytest.mark.grader, pytest.mark.xdist_group("grader-e2e")]


def _db(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m autograder.outputs.postgres ARGS``: what ``make db`` runs."""
    return subprocess.run(
        [sys.executable, "-m", "autograder.outputs.postgres", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.fixture
def server_dir():
    if postgres.pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # not under pytest's tmp_path: as root, the postgres user must reach it
    parent = Path(tempfile.mkdtemp(prefix="make-db-"))
    parent.chmod(0o755)
    yield parent / "pg"
    _db("stop", "--dir", str(parent / "pg"))
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_make_db_starts_a_gradebook_that_grade_writes_to(server_dir, tmp_path):
    need_batchnorm()
    missing = _db("url", "--dir", str(server_dir))
    assert missing.returncode == 1 and "no server runs" in missing.stderr
    started = _db("start", "--dir", str(server_dir))
    if started.returncode == 2 and "postgres' user" in started.stderr:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("postgresql+psycopg2://") and "--db" in started.stderr
    assert _db("url", "--dir", str(server_dir)).stdout.strip() == url
    again = _db("start", "--dir", str(server_dir))  # running: the same URL
    assert again.returncode == 0 and again.stdout.strip() == url
    # the socket only: no TCP port, and the folder is the server's alone
    opts = (server_dir / "data" / "postmaster.opts").read_text()
    assert '"listen_addresses="' in opts
    assert server_dir.stat().st_mode & 0o077 == 0

    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    shutil.copy(SOLUTION, subs / "batchnorm.ipynb")
    proc = run_grader(
        "grade",
        str(subs.parent),
        "--assignment",
        "batchnorm",
        "--work",
        str(tmp_path / "work"),
        "--jobs",
        "1",
        "--db",
        url,
        *FAST,
        env={**os.environ, "TRAINLAB_COURSE_SECRET": "test-secret"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "work" / "gradebook.db").exists()  # not SQLite

    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as con:
        rows = con.execute(
            text("SELECT student, score, max_score FROM autograder_results")
        ).all()
        students = con.execute(text("SELECT id FROM student")).scalars().all()
    engine.dispose()
    assert students == ["alice"]
    ((student, score, top),) = rows
    assert student == "alice" and score == top > 0

    assert _db("stop", "--dir", str(server_dir)).stdout.strip() == "stopped"
    assert _db("url", "--dir", str(server_dir)).returncode == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres user matters as root")
def test_a_folder_the_postgres_user_cannot_reach_is_named(tmp_path):
    if postgres.pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    closed = Path(tempfile.mkdtemp(prefix="make-db-closed-"))  # mode 0700
    try:
        proc = _db("start", "--dir", str(closed / "pg"))
        assert proc.returncode == 2
        assert "cannot reach" in proc.stderr and "--dir" in proc.stderr
    finally:
        shutil.rmtree(closed, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="a folder of another user, as root")
def test_a_folder_another_user_made_is_refused_as_root(tmp_path):
    if postgres.pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # a user of the machine made the folder first (say under /var/tmp), with a
    # link where the server's files go: root must not write through it
    parent = Path(tempfile.mkdtemp(prefix="make-db-planted-"))
    parent.chmod(0o755)
    victim = parent / "victim"
    victim.write_text("root's file\n")
    planted = parent / "pg"
    planted.mkdir()
    (planted / "url").symlink_to(victim)
    os.lchown(planted / "url", 4242, 4242)
    os.chown(planted, 4242, 4242)
    try:
        proc = _db("start", "--dir", str(planted))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "owned by" in proc.stderr and "--dir" in proc.stderr
        assert victim.read_text() == "root's file\n"
        assert planted.stat().st_uid == 4242 and not (planted / "data").exists()
    finally:
        _db("stop", "--dir", str(planted))
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="root's own work folder")
def test_make_db_as_root_starts_beside_a_work_folder_closed_to_postgres(tmp_path):
    if postgres.pg_bin() is None or not postgres.ROOT_SERVERS.is_dir():
        pytest.skip("Debian's PostgreSQL server (and /var/lib/postgresql) is missing")
    work = tmp_path / "grading"
    work.mkdir(mode=0o700)  # as grade makes it: root's alone
    env = {**os.environ, "TRAINLAB_GRADING_DIR": str(work)}

    url = ""
    try:
        started = _db("start", env=env)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert f"host={postgres.ROOT_SERVERS}/trainlab-gradebook-" in url
        assert _db("url", env=env).stdout.strip() == url
        assert work.stat().st_mode & 0o777 == 0o700  # the work folder stays closed
    finally:
        _db("stop", env=env)
        if "host=" in url:
            shutil.rmtree(url.split("host=", 1)[1].split("&", 1)[0], ignore_errors=True)
