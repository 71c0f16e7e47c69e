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
    if (Path(notebook_dir) / "README.md").is_file():  # the landing: where to start
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


def check_nbgrader(env: dict[str, str] | None = None) -> list[str]:
    """Problems with nbgrader's extensions in this environment (empty when fine).

    Runs ``jupyter labextension list`` and ``jupyter server extension list``
    with this interpreter and looks for the nbgrader labextension and the
    validate handler, both enabled.
    """
    env = lab_env() if env is None else env
    problems = []
    for args, name in (
        (["labextension", "list"], NBGRADER_LABEXTENSION),
        (["server", "extension", "list"], NBGRADER_VALIDATE),
    ):
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
        "--skip-checks",
        action="store_true",
        help="do not check nbgrader's extensions first",
    )
    args = parser.parse_args(argv)

    folder = Path(args.dir)
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

    env = lab_env()
    if not args.skip_checks:
        for problem in check_nbgrader(env):
            print(f"warning: {problem}", file=sys.stderr)

    url = lab_url(args.ip, args.port, token)
    print(f"JupyterLab on {folder.resolve()}")
    print(f"open: {url}")
    print("stop it with Ctrl-C")
    cmd = lab_command(
        folder,
        ip=args.ip,
        port=args.port,
        token=token,
        open_browser=not args.no_browser,
    )
    try:
        return subprocess.call(cmd, env=env, cwd=folder)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
