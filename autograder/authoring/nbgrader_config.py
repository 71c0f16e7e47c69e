"""nbgrader configuration for the course (loaded by the root ``nbgrader_config.py``).

Layout, relative to the repository root (the nbgrader course root):

- ``solutions/<assignment>/``: source notebooks (instructor versions);
- ``notebooks/<assignment>/``: release notebooks (student versions), generated
  by ``python -m autograder.authoring.generate``;
- ``grading/``: the git-ignored working folder for the gradebook and the
  submitted, autograded and feedback folders. Set ``TRAINLAB_GRADING_DIR`` to
  put it elsewhere (a relative path is taken from the repository root).

``TRAINLAB_DB_URL`` overrides the gradebook (any SQLAlchemy URL, e.g.
``postgresql://user@host/gradebook``); the default is SQLite in ``grading/``.

nbgrader's exchange (a course JupyterHub, ``deploy/jupyterhub/``) is the folder
``/srv/nbgrader/exchange`` unless ``TRAINLAB_EXCHANGE`` names another; the
instructor's commands (``release_assignment``, ``collect``, ``release_feedback``)
and the students' servers read it from here, with the course id.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COURSE_ID = "training-nn-1"
#: nbgrader's exchange on a course JupyterHub (``TRAINLAB_EXCHANGE`` moves it)
EXCHANGE_ROOT = "/srv/nbgrader/exchange"


def is_checkout(root: Path = ROOT) -> bool:
    """True in a clone of the course (``pyproject.toml`` and ``solutions/`` at the
    root), False where the course is installed as a package (site-packages)."""
    return (root / "pyproject.toml").is_file() and (root / "solutions").is_dir()


def grading_dir() -> Path:
    """The working folder for grading (``grading/`` unless configured).

    A relative ``TRAINLAB_GRADING_DIR`` is taken from the repository root in a
    clone, and from the current folder where the course is installed.
    """
    path = Path(os.environ.get("TRAINLAB_GRADING_DIR", "grading"))
    base = ROOT if is_checkout() else Path.cwd()
    return path if path.is_absolute() else base / path


def db_url() -> str:
    """The gradebook's SQLAlchemy URL."""
    return os.environ.get(
        "TRAINLAB_DB_URL", f"sqlite:///{grading_dir() / 'gradebook.db'}"
    )


def exchange_root() -> Path:
    """The exchange folder: ``$TRAINLAB_EXCHANGE``, else :data:`EXCHANGE_ROOT`."""
    return Path(os.environ.get("TRAINLAB_EXCHANGE") or EXCHANGE_ROOT)


def configure_exchange(c) -> None:
    """The settings students and instructor share: the course id, the exchange."""
    c.CourseDirectory.course_id = COURSE_ID
    c.Exchange.root = str(exchange_root())


def configure(c) -> None:
    """Fill an nbgrader (traitlets) config object ``c``."""
    work = grading_dir()
    configure_exchange(c)
    c.CourseDirectory.root = str(ROOT)
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "notebooks"
    c.CourseDirectory.submitted_directory = str(work / "submitted")
    c.CourseDirectory.autograded_directory = str(work / "autograded")
    c.CourseDirectory.feedback_directory = str(work / "feedback")
    c.CourseDirectory.solution_directory = str(work / "solution")
    c.CourseDirectory.db_url = db_url()
    c.ClearSolutions.code_stub = {
        "python": "# YOUR CODE HERE\nraise NotImplementedError()"
    }


def ensure_grading_dir() -> None:
    """Create the grading folder where the gradebook is its SQLite file, so that
    nbgrader's own commands (``collect``) can open it in a fresh clone."""
    if "TRAINLAB_DB_URL" not in os.environ:
        try:
            grading_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            pass  # read-only: nbgrader says it cannot open the gradebook


if "get_config" in globals():  # loaded by nbgrader/traitlets as a config file
    configure(get_config())  # noqa: F821
    ensure_grading_dir()
