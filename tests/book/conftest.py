"""Fixtures for the book tests: one build per test session, a local server, chromium.

The book is built (or brought up to date: the build is incremental and reuses
the execution cache) once per session, by ``book/_tools/build.py`` exactly as
``make book`` does. With pytest-xdist the workers share a file lock and a marker
in the session's shared temporary folder, so only the first builds.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: F401 - used by tests

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / "_build"
SITE = BUILD_DIR / "html"
SCREENSHOTS = ROOT / "test-output" / "book"
BUILD_TIMEOUT_S = 1200


def _shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every xdist worker of this session (the base temp)."""
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's basetemp is <session>/popen-gwN
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _run_build() -> None:
    cmd = [sys.executable, str(ROOT / "book" / "_tools" / "build.py"), "--quiet"]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        pytest.fail(
            f"`make book` (python book/_tools/build.py) failed with exit code "
            f"{proc.returncode}; the end of its output:\n{tail}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site folder (_build/html), built at most once per session."""
    shared = _shared_tmp(tmp_path_factory)
    marker = shared / "book-built"
    BUILD_DIR.mkdir(exist_ok=True)
    with FileLock(str(BUILD_DIR / ".build.lock"), timeout=BUILD_TIMEOUT_S):
        if not marker.exists():
            _run_build()
            marker.write_text("built\n")
    if not (SITE / "index.html").is_file():
        pytest.fail(f"the build finished but {SITE / 'index.html'} is missing")
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def site_url(built_site: Path) -> Iterator[str]:
    """The built site served over HTTP on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """test-output/book/, emptied once per session (git-ignored)."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
