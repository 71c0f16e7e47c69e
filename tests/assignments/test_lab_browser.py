"""The student's lab, end to end: JupyterLab as `make lab` starts it, in chromium.

A JupyterLab server is started the way ``autograder/authoring/lab.py`` starts it (same
command and environment) on a free localhost port, with a known token, on a
temporary copy of a student notebook. Headless chromium (Debian's, driven by
playwright; no downloaded browsers) opens the notebook, runs its setup cell,
which loads the digits data with ``trainlab``, and must see the printed split.
The nbgrader **Validate** button must answer too. Screenshots go to
test-output/lab/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.authoring.lab import check_nbgrader, lab_command, lab_env, lab_url

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.assignments,
    pytest.mark.xdist_group("browser"),
]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "lab"
NOTEBOOK = "training"
#: what the setup cell of the training notebook prints (trainlab.data.load_digits)
EXPECTED = "Split(train=(1079, 64), val=(359, 64), test=(359, 64)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


class Lab:
    """A running JupyterLab server: its URL pieces and its process."""

    def __init__(self, folder: Path, port: int, token: str, proc, log: Path):
        self.folder, self.port, self.token = folder, port, token
        self.proc, self.log = proc, log

    def url(self, path: str) -> str:
        return lab_url("127.0.0.1", self.port, self.token, path)

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on a temporary copy of a student notebook; shut down afterwards."""
    problems = check_nbgrader()
    assert problems == [], problems
    folder = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK / f"{NOTEBOOK}.ipynb", folder)
    port, token = _free_port(), secrets.token_hex(16)
    log = folder.parent / "lab-server.log"
    cmd = lab_command(folder, port=port, token=token, open_browser=False)
    env = lab_env()
    env["JUPYTER_RUNTIME_DIR"] = str(folder.parent / "runtime")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(folder, port, token, proc, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
            try:
                status, _ = _get(server.api(f"api/status?token={token}"))
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        _shutdown(server)


def _shutdown(server: Lab) -> None:
    """Ask the server to stop (it stops its kernels), then make sure it did."""
    proc = server.proc
    if proc.poll() is None:
        req = urllib.request.Request(
            server.api("api/shutdown"),
            method="POST",
            headers={"Authorization": f"token {server.token}"},
        )
        try:
            urllib.request.urlopen(req, timeout=10)  # noqa: S310
        except OSError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the server we started
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_token_is_required(lab):
    status, _ = _get(lab.api("api/contents"))
    assert status in (401, 403), "the server must not answer without the token"
    status, body = _get(lab.api(f"api/contents?token={lab.token}"))
    assert status == 200
    names = [item["name"] for item in json.loads(body)["content"]]
    assert f"{NOTEBOOK}.ipynb" in names


def test_validate_handler_answers(lab):
    """nbgrader's Validate button posts here; it runs the notebook and reports."""
    req = urllib.request.Request(
        lab.api("assignments/validate"),
        data=json.dumps({"path": f"{NOTEBOOK}.ipynb"}).encode(),
        method="POST",
        headers={
            "Authorization": f"token {lab.token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=300) as r:  # noqa: S310
        result = json.loads(r.read())
    assert result["success"], result
    # an untouched notebook: its stubs raise NotImplementedError
    assert "NotImplementedError" in json.dumps(result["value"])


def test_notebook_runs_a_cell_in_the_browser(lab, browser):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}.ipynb"), timeout=90_000)
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
        # the kernel is ready when the status bar says so
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=120_000)
        page.screenshot(path=str(SCREENSHOTS / "opened.png"))
        # the first code cell is the generated install cell (quiet where the
        # course is installed); the setup cell comes next
        setup = page.locator(".jp-Notebook .jp-CodeCell").nth(1)
        setup.locator(".jp-InputPrompt").first.click()  # select it (command mode)
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            """(expected) => Array.from(document.querySelectorAll(
                   '.jp-Notebook .jp-CodeCell .jp-OutputArea-output'))
               .some(e => e.innerText.includes(expected))""",
            arg=EXPECTED,
            timeout=120_000,
        )
        output = setup.locator(".jp-OutputArea-output").first.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "setup-cell-ran.png"))
        assert EXPECTED in output
        # nbgrader's Validate button: runs the notebook, shows the failing cells
        page.locator(".jp-Toolbar").get_by_text("Validate", exact=True).click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=300_000)
        dialog.get_by_text("NotImplementedError").first.wait_for(timeout=300_000)
        page.screenshot(path=str(SCREENSHOTS / "validate.png"))
    finally:
        page.close()
    assert (SCREENSHOTS / "setup-cell-ran.png").stat().st_size > 0
