"""The student lab launcher: its command line, its URL, its refusal to go tokenless."""

from __future__ import annotations

import sys

import pytest

from autograder.authoring import lab

pytestmark = pytest.mark.grader


def test_command_uses_this_interpreter_and_the_folder(tmp_path):
    cmd = lab.lab_command(tmp_path, port=9123, token="abc", open_browser=False)
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in cmd
    assert "--ServerApp.ip=127.0.0.1" in cmd
    assert "--ServerApp.port=9123" in cmd
    assert "--ServerApp.port_retries=0" in cmd  # the printed URL stays right
    assert "--IdentityProvider.token=abc" in cmd
    assert "--ServerApp.open_browser=False" in cmd


def test_environment_puts_the_course_first():
    env = lab.lab_env({"PATH": "/usr/bin", "PYTHONPATH": "/elsewhere"})
    assert env["PATH"].split(":")[0] == str(lab.Path(sys.executable).parent)
    paths = env["PYTHONPATH"].split(":")
    assert paths[:2] == [str(lab.ROOT / "src"), str(lab.ROOT)]
    assert paths[-1] == "/elsewhere"
    assert env["JUPYTER_CONFIG_PATH"].split(":")[0] == str(lab.LAB_CONFIG)
    assert (lab.LAB_CONFIG / "nbgrader_config.py").is_file()


@pytest.mark.parametrize(
    ("ip", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8888/lab?token=t0k"),
        ("0.0.0.0", "http://127.0.0.1:8888/lab?token=t0k"),
        ("::1", "http://[::1]:8888/lab?token=t0k"),
    ],
)
def test_url(ip, url):
    assert lab.lab_url(ip, 8888, "t0k") == url
    assert lab.lab_url(ip, 8888, "").endswith(":8888/lab")


def test_no_token_only_on_localhost(capsys):
    assert lab.main(["--no-token", "--ip", "0.0.0.0", "--skip-checks"]) == 2
    assert "--no-token" in capsys.readouterr().err


def test_missing_folder_is_an_error(tmp_path, capsys):
    assert lab.main(["--dir", str(tmp_path / "nope"), "--skip-checks"]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_nbgrader_extensions_are_enabled():
    assert lab.check_nbgrader() == []


def test_the_instructor_lab_opens_the_formgrader_on_grades_work_folder(tmp_path):
    cmd = lab.lab_command(lab.ROOT, token="abc", default_url="/formgrader")
    assert f"--ServerApp.root_dir={lab.ROOT}" in cmd  # the nbgrader course root
    assert "--ServerApp.default_url=/formgrader" in cmd
    assert not any("LabApp.default_url" in c for c in cmd)
    env = lab.instructor_env(tmp_path / "work", "sqlite:///x.db", base={"PATH": ""})
    assert env["TRAINLAB_GRADING_DIR"] == str((tmp_path / "work").resolve())
    assert env["TRAINLAB_DB_URL"] == "sqlite:///x.db"
    assert "TRAINLAB_DB_URL" not in lab.instructor_env(None, None, base={"PATH": ""})


def test_work_and_db_go_with_instructor(capsys):
    assert lab.main(["--work", "grading", "--skip-checks"]) == 2
    assert "--instructor" in capsys.readouterr().err


def test_the_formgrader_extension_is_enabled():
    assert lab.check_nbgrader(lab.instructor_env(None, None), formgrader=True) == []
