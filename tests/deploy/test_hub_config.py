"""The course JupyterHub's configuration files, loaded as JupyterHub and nbgrader
load them (traitlets), without starting anything: seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from traitlets.config import Config, PyFileConfigLoader

from autograder.authoring import nbgrader_config as cfg
from autograder.authoring.lab import LAB_CONFIG
from autograder.pipeline import grading, intake

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub"

pytestmark = pytest.mark.grader


def load(name: str) -> Config:
    loader = PyFileConfigLoader(name, path=str(RECIPE))
    return loader.load_config()


def test_exchange_root_is_the_default_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAINLAB_EXCHANGE", raising=False)
    assert cfg.exchange_root() == Path(cfg.EXCHANGE_ROOT)
    monkeypatch.setenv("TRAINLAB_EXCHANGE", str(tmp_path))
    c = Config()
    cfg.configure_exchange(c)
    assert c.Exchange.root == str(tmp_path)
    assert c.CourseDirectory.course_id == cfg.COURSE_ID
    c = Config()
    cfg.configure(c)  # the instructor's commands read the same exchange
    assert c.Exchange.root == str(tmp_path)


def test_the_hub_runs_the_course_lab_for_each_unix_user(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINLAB_EXCHANGE", str(tmp_path))
    c = load("jupyterhub_config.py")
    assert c.JupyterHub.spawner_class == "localprocess"
    assert c.Spawner.default_url == "/lab"
    assert Path(c.Spawner.cmd[0]).name == "jupyterhub-singleuser"
    env = c.Spawner.environment
    assert env["TRAINLAB_EXCHANGE"] == str(tmp_path)
    paths = env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert str(RECIPE) in paths and str(LAB_CONFIG) in paths
    proxy = Path(c.ConfigurableHTTPProxy.command[0])
    assert proxy.name == "configurable-http-proxy"
    assert "TRAINLAB_STUDENT_ID" not in env  # real users: nbgrader's own names


def test_localhost_hub_needs_a_password(monkeypatch):
    monkeypatch.delenv("TRAINLAB_HUB_PASSWORD", raising=False)
    with pytest.raises(SystemExit, match="set TRAINLAB_HUB_PASSWORD"):
        load("localhost_config.py")


def test_localhost_hub_listens_on_this_machine_only(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINLAB_HUB_PASSWORD", "a-long-password")
    monkeypatch.setenv("TRAINLAB_HUB_USERS", "alice, bob,")
    monkeypatch.setenv("TRAINLAB_HUB_PORT", "18123")
    monkeypatch.setenv("TRAINLAB_HUB_HOMES", str(tmp_path))
    c = load("localhost_config.py")
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.SharedPasswordAuthenticator.user_password == "a-long-password"
    assert c.Authenticator.allowed_users == {"alice", "bob"}
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18123"
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.spawner_class == "simple"
    assert c.SimpleLocalProcessSpawner.home_dir_template == f"{tmp_path}/{{username}}"
    assert c.Spawner.default_url == "/lab"  # the recipe's, kept

    class Spawner:  # what JupyterHub passes to a callable environment value
        class user:
            name = "alice"

    assert c.Spawner.environment["TRAINLAB_STUDENT_ID"](Spawner) == "alice"


def test_students_server_names_the_student(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINLAB_EXCHANGE", str(tmp_path))
    monkeypatch.delenv("TRAINLAB_STUDENT_ID", raising=False)
    c = load("nbgrader_config.py")
    assert c.Exchange.root == str(tmp_path)
    assert "student_id" not in c.CourseDirectory  # nbgrader: the unix user
    monkeypatch.setenv("TRAINLAB_STUDENT_ID", "alice")
    assert load("nbgrader_config.py").CourseDirectory.student_id == "alice"


def test_feedback_gets_the_exchange_files_but_no_link(tmp_path):
    sub, dest = tmp_path / "sub", tmp_path / "feedback"
    sub.mkdir()
    (sub / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")
    secret = tmp_path / "host-secret"
    secret.write_text("not the student's")
    (sub / "submission_secret.txt").symlink_to(secret)  # a hostile submission
    grading._copy_exchange_files(sub, dest)
    assert (dest / "timestamp.txt").read_text().startswith("2026-01-01")
    assert not (dest / "submission_secret.txt").exists()

    (sub / "submission_secret.txt").unlink()
    (sub / "submission_secret.txt").write_text("x" * (intake.NBGRADER_FILE_BYTES + 1))
    grading._copy_exchange_files(sub, dest)
    assert not (dest / "submission_secret.txt").exists()  # too big to be nbgrader's

    (sub / "submission_secret.txt").write_text("3f2a")
    grading._copy_exchange_files(sub, dest)
    assert (dest / "submission_secret.txt").read_text() == "3f2a"


def test_nbgrader_commands_find_a_gradebook_folder(monkeypatch, tmp_path):
    """``nbgrader collect`` in a fresh clone: the course config makes grading/."""
    work = tmp_path / "grading"
    monkeypatch.setenv("TRAINLAB_GRADING_DIR", str(work))
    monkeypatch.delenv("TRAINLAB_DB_URL", raising=False)
    root = RECIPE.parents[1]
    c = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    assert work.is_dir()
    assert c.CourseDirectory.db_url == f"sqlite:///{work / 'gradebook.db'}"


def test_students_get_no_instructor_tools():
    page = json.loads((RECIPE / "labconfig" / "page_config.json").read_text())
    off = {k for k, v in page["disabledExtensions"].items() if v}
    assert "@jupyter/nbgrader:formgrader" in off
    assert "@jupyter/nbgrader:assignment-list" not in off  # the Assignments tab
    assert "@jupyter/nbgrader:validate-assignment" not in off
    server = RECIPE / "jupyter_server_config.d" / "nbgrader-students.json"
    ext = json.loads(server.read_text())["ServerApp"]["jpserver_extensions"]
    assert ext == {
        "nbgrader.server_extensions.formgrader": False,
        "nbgrader.server_extensions.course_list": False,
    }


def test_a_grading_folder_is_made_for_the_instructor_alone(monkeypatch, tmp_path):
    """On the hub every user can read the clone: the grading folder that
    ``nbgrader collect`` or ``grade`` makes in it holds every student's
    submission, feedback and grades, and must be closed to the others."""
    clone = tmp_path / "clone"
    clone.mkdir()
    clone.chmod(0o755)
    monkeypatch.delenv("TRAINLAB_DB_URL", raising=False)
    old = os.umask(0o022)
    try:
        work = clone / "grading"
        monkeypatch.setenv("TRAINLAB_GRADING_DIR", str(work))
        PyFileConfigLoader(
            "nbgrader_config.py", path=str(RECIPE.parents[1])
        ).load_config()
        assert work.stat().st_mode & 0o077 == 0  # nbgrader collect's

        grading.course_secret(clone / "secret-first")
        assert (clone / "secret-first").stat().st_mode & 0o077 == 0

        def stop(*args, **kwargs):
            raise RuntimeError("stop here")

        monkeypatch.setattr(grading, "_require_sandbox", stop)
        with pytest.raises(RuntimeError, match="stop here"):
            grading.grade_folder(grading.Options(tmp_path, work=clone / "w"))
        assert (clone / "w").stat().st_mode & 0o077 == 0  # grade --work's
    finally:
        os.umask(old)
