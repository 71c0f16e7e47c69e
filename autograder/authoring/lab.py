"""Open the assignments in JupyterLab, with the course environment and nbgrader.

``python -m autograder.authoring.lab`` (``make lab``) starts JupyterLab on the student
notebooks (``notebooks/``) with:

- the course kernel: the notebooks' ``python3`` kernel runs this interpreter
  (the ``.venv`` one), so ``torch`` and ``trainlab`` import as in the tests;
- nbgrader's JupyterLab extensions, among them the **Validate** button of the
  notebook toolbar: it runs the notebook and reports every cell that fails
  (``autograder/authoring/lab_config/nbgrader_config.py``);
- token authentication: a fresh random token unless one is given; the URL to
  open (token included) is printed. ``--no-token`` is refused unless the
  server only listens on this machine (localhost).

Usage::

    python -m autograder.authoring.lab          # notebooks/, port 8888, browser
    python -m autograder.authoring.lab --port 9000 --no-browser
    python -m autograder.authoring.lab --dir solutions  # instructors: sources
    python -m autograder.authoring.lab --instructor     # the formgrader

``--instructor`` (``make formgrader``) opens nbgrader's formgrader instead:
the server's root is the repository (the nbgrader course root, where
``nbgrader_config.py`` is read), on the gradebook and work folder that
``grade`` uses (``--work`` and ``--db`` as for ``grade``; they default to
``$TRAINLAB_GRADING_DIR`` and ``$TRAINLAB_DB_URL`` as there). Grade the
written answers under "Manual Grading", then run ``grade`` again with the same
arguments: it regrades nothing that has not changed, and writes the hand
grades into the feedback pages and every export.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: nbgrader settings for the Validate button (validate every cell)
LAB_CONFIG = Path(__file__).resolve().parent / "lab_config"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: what the lab needs from nbgrader: the labextension and the validate handler
NBGRADER_LABEXTENSION = "@jupyter/nbgrader"
NBGRADER_VALIDATE = "nbgrader.server_extensions.validate_assignment"
NBGRADER_FORMGRADER = "nbgrader.server_extensions.formgrader"


def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this interpreter's bin/ first on PATH, the
    repository on PYTHONPATH (so kernels import ``trainlab`` and ``autograder``
    even without the editable install), and :data:`LAB_CONFIG` first on
    JUPYTER_CONFIG_PATH (nbgrader's Validate reports every failing cell)."""
    env = dict(os.environ if base is None else base)
    configs = [str(LAB_CONFIG)]
    configs += [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(dict.fromkeys(configs))
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    paths = [str(ROOT / "src"), str(ROOT)]
    paths += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def lab_command(
    notebook_dir: str | os.PathLike,
    *,
    ip: str = "127.0.0.1",
    port: int = 8888,
    token: str | None = None,
    open_browser: bool = True,
    default_url: str | None = None,
) -> list[str]:
    """The command line that starts JupyterLab with this interpreter.

    Args:
        notebook_dir: the folder the file browser shows (the server's root).
        ip: the address to listen on (default 127.0.0.1: this machine only).
        port: the port (default 8888); the server fails rather than pick
            another one, so the printed URL is right.
        token: the access token; ``""`` turns authentication off (localhost
            only, see :func:`main`).
        open_browser: open a browser tab (default True).
        default_url: the page to open (default: ``README.md`` of the folder,
            where there is one).

    Returns:
        The argument list for ``subprocess``.
    """
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.root_dir={Path(notebook_dir).resolve()}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.open_browser={open_browser}",
    ]
    if default_url:
        cmd.append(f"--ServerApp.default_url={default_url}")
    elif (Path(notebook_dir) / "README.md").is_file():  # the landing: where to start
        cmd.append("--LabApp.default_url=/lab/tree/README.md")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")  # containers often run as root
    return cmd


def lab_url(ip: str, port: int, token: str, path: str = "lab") -> str:
    """The address to open; ``path`` e.g. ``lab/tree/activations/activations.ipynb``."""
    host = "127.0.0.1" if ip in ("0.0.0.0", "::", "") else ip
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    url = f"http://{host}:{port}/{path}"
    return f"{url}?token={token}" if token else url


def instructor_env(
    work: Path | None, db_url: str | None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """:func:`lab_env` for the formgrader: the course's nbgrader configuration
    then reads the work folder and gradebook of ``grade --work W --db URL``."""
    env = lab_env(base)
    if work is not None:
        env["TRAINLAB_GRADING_DIR"] = str(Path(work).resolve())
    if db_url:
        env["TRAINLAB_DB_URL"] = db_url
    return env


def check_nbgrader(
    env: dict[str, str] | None = None, *, formgrader: bool = False
) -> list[str]:
    """Problems with nbgrader's extensions in this environment (empty when fine).

    Runs ``jupyter labextension list`` and ``jupyter server extension list``
    with this interpreter and looks for the nbgrader labextension and the
    validate handler, both enabled.
    """
    env = lab_env() if env is None else env
    problems = []
    wanted = [
        (["labextension", "list"], NBGRADER_LABEXTENSION),
        (["server", "extension", "list"], NBGRADER_VALIDATE),
    ]
    if formgrader:
        wanted.append((["server", "extension", "list"], NBGRADER_FORMGRADER))
    for args, name in wanted:
        result = subprocess.run(
            [sys.executable, "-m", "jupyter", *args],
            capture_output=True,
            text=True,
            env={**env, "NO_COLOR": "1"},
            timeout=120,
        )
        text = result.stdout + result.stderr
        lines = [line for line in text.splitlines() if name in line]
        if not lines:
            problems.append(
                f"{name} is not installed (`jupyter {' '.join(args)}` does not list "
                "it); install the pinned environment with `make setup`"
            )
        elif not any("enabled" in line and "disabled" not in line for line in lines):
            problems.append(
                f"{name} is installed but not enabled; enable it with "
                f"`jupyter {args[0]} enable {name}`"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.authoring.lab", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--dir",
        default=str(ROOT / "notebooks"),
        help="folder to open (default: the student notebooks, notebooks/)",
    )
    parser.add_argument("--ip", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=8888, help="default 8888")
    parser.add_argument("--token", default=None, help="default: a random token")
    parser.add_argument(
        "--no-token",
        action="store_true",
        help="no authentication (allowed only with a localhost --ip)",
    )
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--instructor",
        action="store_true",
        help="open nbgrader's formgrader on the repository, to grade the written "
        "answers by hand (the gradebook of `grade`)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="with --instructor: the work folder of `grade --work` (default: "
        "grading/, or $TRAINLAB_GRADING_DIR)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="with --instructor: the gradebook URL of `grade --db` (default: "
        "$TRAINLAB_DB_URL, else SQLite in the work folder)",
    )
    parser.add_argument(
        "--skip-checks",
        action="store_true",
        help="do not check nbgrader's extensions first",
    )
    args = parser.parse_args(argv)

    folder = ROOT if args.instructor else Path(args.dir)
    if (args.work or args.db) and not args.instructor:
        print("error: --work and --db go with --instructor", file=sys.stderr)
        return 2
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    if args.no_token:
        if args.ip not in LOCAL_HOSTS:
            print(
                f"error: --no-token with --ip {args.ip} would let anyone on the "
                "network run code as you; use it only with --ip 127.0.0.1",
                file=sys.stderr,
            )
            return 2
        token = ""
    else:
        token = args.token or secrets.token_hex(24)

    env = instructor_env(args.work, args.db) if args.instructor else lab_env()
    if not args.skip_checks:
        for problem in check_nbgrader(env, formgrader=args.instructor):
            print(f"warning: {problem}", file=sys.stderr)

    landing = "/formgrader" if args.instructor else None
    url = lab_url(args.ip, args.port, token, (landing or "/lab").lstrip("/"))
    print(f"JupyterLab on {folder.resolve()}")
    if args.instructor:
        work = env.get("TRAINLAB_GRADING_DIR", "grading/")
        print(f"formgrader: the gradebook of `grade --work {work}`; after grading")
        print("by hand, run `grade` again with the same arguments (see the README)")
    print(f"open: {url}")
    print("stop it with Ctrl-C")
    cmd = lab_command(
        folder,
        ip=args.ip,
        port=args.port,
        token=token,
        open_browser=not args.no_browser,
        default_url=landing,
    )
    try:
        # nbgrader reads nbgrader_config.py from the current folder
        return subprocess.call(cmd, env=env, cwd=folder)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
