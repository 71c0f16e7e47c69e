"""A course JupyterHub, end to end: fetch, submit, grade, feedback, in chromium.

The hub of ``deploy/jupyterhub/localhost_config.py`` (the course recipe with a
shared password and one unix user) runs on free localhost ports with its own
exchange. The instructor releases the batchnorm assignment with nbgrader's
``release_assignment`` from the course root. In headless chromium a student
logs in, fetches it in the Assignments tab, types a ``fold_batchnorm`` that
forgets the running mean into the notebook, clicks Validate and Submit. The
instructor collects with ``nbgrader collect``, grades with ``python -m
autograder grade`` and releases the feedback with ``nbgrader release_feedback``;
the student fetches it and the page must name the mistake. Screenshots go to
test-output/hub/ (git-ignored). Teardown stops the hub, its proxy and the
student's server and kernels, and fails if any of them outlived the hub.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.deploy import hub_process

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.grader,
    pytest.mark.xdist_group("browser"),
]

ROOT = hub_process.ROOT
SCREENSHOTS = ROOT / "test-output" / "hub"
STUDENT = "alice"
ASSIGNMENT = "batchnorm"
#: the student's answer: the folded bias forgets the running mean
WRONG_FOLD = (
    "def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5):\n"
    "    scale = gamma / torch.sqrt(running_var + eps)\n"
    "    return w * scale, b * scale + beta\n"
)
MISTAKE = "Likely mistake: running_mean is missing from the folded bias"


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[hub_process.Hub]:
    pytest.importorskip("jupyterhub", reason="jupyterhub is not installed")
    if hub_process.proxy_command() is None:
        pytest.skip(
            "configurable-http-proxy is missing: `make setup` installs it "
            "(npm ci in deploy/jupyterhub/; needs node 20+ and npm)"
        )
    if shutil.which("nbgrader", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("nbgrader's command is not installed beside this interpreter")
    server = hub_process.start(tmp_path_factory.mktemp("hub"), users=STUDENT)
    try:
        yield server
    finally:
        left = hub_process.stop(server)
        assert left == [], (
            f"processes of the hub outlived its shutdown (killed now): {left}"
        )


def instructor(hub: hub_process.Hub, *args: str) -> str:
    """One of the instructor's commands, run from the course root."""
    name, *rest = args
    exe = str(
        sys.executable
        if name == "python"
        else os.path.join(os.path.dirname(sys.executable), name)
    )
    result = subprocess.run(
        [exe, *rest],
        cwd=ROOT,
        env=hub.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(args)}` failed:\n{out[-3000:]}"
    return out


def wait_until(ok, timeout: float = 30) -> bool:
    """Poll ``ok()`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def open_assignments(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.locator("#released_assignments_list").wait_for()


def test_a_student_round_trip_through_the_hub(hub, browser):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = instructor(hub, "nbgrader", "release_assignment", ASSIGNMENT)
    assert "Released as" in out, out

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        # a wrong password is refused: no server is started
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", STUDENT)
        page.fill("#password_input", hub.password + "x")
        page.click("#login_submit")
        page.get_by_text("Invalid username or password").wait_for()
        assert not (hub.homes / STUDENT).exists()

        page.fill("#username_input", STUDENT)
        page.fill("#password_input", hub.password)
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf".*/user/{STUDENT}/lab.*"), timeout=120_000)
        page.wait_for_selector("#jp-main-dock-panel")

        # the Assignments tab: fetch the released assignment; a student's
        # Nbgrader menu has no instructor tools
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
        assert [i for i in items if i.strip()] == ["Assignment List"], items
        page.keyboard.press("Escape")
        open_assignments(page)
        released = page.locator("#released_assignments_list")
        released.get_by_text(ASSIGNMENT).first.wait_for()
        released.get_by_role("button", name="Fetch").click()
        fetched = page.locator("#fetched_assignments_list")
        fetched.get_by_role("button", name="Submit").wait_for()
        page.screenshot(path=str(SCREENSHOTS / "fetched.png"))
        notebook = hub.homes / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert notebook.is_file()

        # the student writes fold_batchnorm (wrong) into its cell, and saves
        page.goto(f"{hub.url}/user/{STUDENT}/lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell")
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=120_000)
        cell = page.locator(".jp-Notebook .jp-CodeCell")
        cell = cell.filter(has_text="def fold_batchnorm(").first
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")  # the cell's text
        page.keyboard.insert_text(WRONG_FOLD)
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        assert wait_until(lambda: "b * scale + beta" in notebook.read_text()), (
            "the edited notebook was not saved to the student's home"
        )

        # Validate: runs the notebook, lists the failing cells
        page.locator(".jp-Toolbar").get_by_text("Validate", exact=True).click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_text("Validation Results").wait_for(timeout=300_000)
        page.screenshot(path=str(SCREENSHOTS / "validate.png"))
        assert "fold_batchnorm" in dialog.inner_text()
        dialog.get_by_role("button").last.click()

        # Submit from the Assignments tab
        open_assignments(page)
        page.locator("#fetched_assignments_list").get_by_role(
            "button", name="Submit"
        ).click()
        submitted = page.locator("#submitted_assignments_list")
        submitted.get_by_role("button", name="Fetch Feedback").wait_for()
        page.screenshot(path=str(SCREENSHOTS / "submitted.png"))

        # the instructor: collect, grade, release the feedback
        out = instructor(hub, "nbgrader", "collect", ASSIGNMENT)
        assert f"Collecting submission: {STUDENT} {ASSIGNMENT}" in out, out
        collected = hub.grading / "submitted" / STUDENT / ASSIGNMENT
        assert (collected / f"{ASSIGNMENT}.ipynb").is_file()
        out = instructor(
            hub,
            "python",
            "-m",
            "autograder",
            "grade",
            str(hub.grading / "submitted"),
            "--assignment",
            ASSIGNMENT,
            "--jobs",
            "1",
        )
        assert f"| {STUDENT} | {ASSIGNMENT} | 0 |" in out, out  # one wrong function
        out = instructor(hub, "nbgrader", "release_feedback", ASSIGNMENT)
        assert f"Releasing feedback for student '{STUDENT}'" in out, out

        # the student fetches the feedback and opens it: "(view feedback)" goes
        # to its folder in the file browser, and the page opens in the lab
        submitted.get_by_role("button", name="Fetch Feedback").click()
        submitted.get_by_text("(view feedback)").click()
        listing = page.locator(".jp-DirListing-item", has_text=f"{ASSIGNMENT}.html")
        listing.dblclick()
        frame = page.frame_locator(".jp-HTMLViewer iframe")
        frame.get_by_text(MISTAKE).first.wait_for()
        frame.get_by_text(MISTAKE).first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "feedback.png"))
        shown = frame.locator("body").inner_text()
        assert MISTAKE in shown
        assert "fold_batchnorm" in shown
    finally:
        page.close()
