"""A local PostgreSQL server for the gradebook, from Debian's ``postgresql`` package.

``make db`` (``python -m autograder.outputs.postgres start``) creates a
database cluster in a folder of the work folder (``grading/postgres/``; as
root, whose work folder is closed to other users, a folder of its own under
Debian's ``/var/lib/postgresql``), starts it and creates the database
``gradebook``, then prints the URL to give ``grade``::

    make db   # prints the URL
    python -m autograder grade submissions/ --db "$(make -s db-url)"

By default the server listens on a Unix socket inside that folder only (no
network port; the folder is its owner's alone), so no other user of the
machine can reach the gradebook; ``--port P`` also listens on 127.0.0.1:P. The
server trusts its one role, ``grader``: whoever can reach the socket (or,
with ``--port``, anyone on this machine) can use the gradebook. As root the
server runs as the unprivileged ``postgres`` user (PostgreSQL refuses to run
as root), which then owns the folder.

``stop`` stops it; ``url`` prints the URL of a running one. The tests start
their server with :func:`start` too.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROLE = "grader"
DATABASE = "gradebook"
#: the socket's port number when the server has no TCP port (a name only)
SOCKET_PORT = 5432


class ServerError(RuntimeError):
    """The server cannot be started (the message says why and what to do)."""


def pg_bin() -> str | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A server whose cluster lives in ``folder`` (``data/``, ``log``, the socket).

    Attributes:
        folder: the server's folder.
        port: its TCP port on 127.0.0.1, or None (a Unix socket only).
    """

    folder: Path
    port: int | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "log"

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        if self.port is not None:
            return f"postgresql+psycopg2://{ROLE}@127.0.0.1:{self.port}/{database}"
        return (
            f"postgresql+psycopg2://{ROLE}@/{database}"
            f"?host={self.folder.resolve()}&port={SOCKET_PORT}"
        )


def _runner() -> list[str]:
    """The prefix that runs a server program as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerError(
            "running as root and there is no 'postgres' user to run the server as "
            "(PostgreSQL refuses root); install Debian's postgresql package, which "
            "creates it, or run as an ordinary user"
        ) from exc
    if shutil.which("runuser") is None:
        raise ServerError("running as root and `runuser` (util-linux) is missing")
    return ["runuser", "-u", "postgres", "--"]


def _run(prefix: list[str], bindir: str, *cmd: str, cwd: Path, check: bool = True):
    proc = subprocess.run(
        prefix + [os.path.join(bindir, cmd[0]), *cmd[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise ServerError(
            f"{cmd[0]} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-1500:]}"
        )
    return proc


def _prepare(folder: Path, prefix: list[str]) -> None:
    """Create ``folder`` (its owner's alone) and, as root, give it to postgres."""
    folder.mkdir(parents=True, exist_ok=True)
    owners = {os.geteuid()}
    if prefix:
        import pwd

        owners.add(pwd.getpwnam("postgres").pw_uid)
    owner = folder.lstat().st_uid
    if owner not in owners:  # made by another user: what it holds is theirs
        raise ServerError(
            f"{folder} is owned by another user (uid {owner}), who may have put "
            "links or files in it; choose a new folder: --dir"
        )
    if not prefix:
        folder.chmod(0o700)
        return
    import pwd

    user = pwd.getpwnam("postgres")
    os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    reach = subprocess.run(prefix + ["test", "-w", str(folder)], capture_output=True)
    if reach.returncode != 0:
        raise ServerError(
            f"the postgres user cannot reach {folder} (a folder above it is closed "
            "to other users, as a home folder often is); put the server where it "
            "can, e.g. --dir /var/tmp/gradebook-pg"
        )


def running(server: Server) -> bool:
    """True when the server of ``server.folder`` answers ``pg_ctl status``."""
    bindir = pg_bin()
    if bindir is None or not server.data.is_dir():
        return False
    proc = subprocess.run(
        _runner() + [os.path.join(bindir, "pg_ctl"), "-D", str(server.data), "status"],
        capture_output=True,
        cwd=server.folder,
    )
    return proc.returncode == 0


def start(folder: Path, port: int | None = None, *, fast: bool = False) -> Server:
    """Create (the first time) and start the server of ``folder``; create the
    database :data:`DATABASE`. Does nothing but return it if it runs already.

    Args:
        folder: the server's folder (created).
        port: also listen on 127.0.0.1:``port``; None: the Unix socket only.
        fast: no fsync (for tests: a crash may lose the data).

    Raises:
        ServerError: the programs are missing, or a step failed (its message).
    """
    bindir = pg_bin()
    if bindir is None:
        raise ServerError(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed; "
            "install Debian's package: apt-get install postgresql"
        )
    folder = folder.resolve()
    prefix = _runner()
    _prepare(folder, prefix)
    server = Server(folder, port)
    if running(server):
        _write_url(server)
        return server
    if not (server.data / "PG_VERSION").is_file():
        _run(
            prefix,
            bindir,
            "initdb",
            "-D",
            str(server.data),
            "-U",
            ROLE,
            "--auth=trust",
            "-E",
            "UTF8",
            cwd=folder,
        )
    listen = "127.0.0.1" if port is not None else "''"
    opts = f"-p {port or SOCKET_PORT} -k {folder} -c listen_addresses={listen}"
    if fast:
        opts += " -c fsync=off"
    proc = _run(
        prefix,
        bindir,
        "pg_ctl",
        "-D",
        str(server.data),
        "-o",
        opts,
        "-l",
        str(server.log),
        "-w",
        "-t",
        "60",
        "start",
        cwd=folder,
        check=False,
    )
    if proc.returncode != 0:
        log = server.log.read_text()[-1500:] if server.log.is_file() else ""
        raise ServerError(f"the server did not start: {proc.stderr.strip()}\n{log}")
    host = ["-h", "127.0.0.1", "-p", str(port)] if port else ["-h", str(folder)]
    if port is None:
        host += ["-p", str(SOCKET_PORT)]
    exists = _run(
        prefix,
        bindir,
        "psql",
        *host,
        "-U",
        ROLE,
        "-d",
        "postgres",
        "-tAc",
        f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        cwd=folder,
    )
    if exists.stdout.strip() != "1":
        _run(prefix, bindir, "createdb", *host, "-U", ROLE, DATABASE, cwd=folder)
    _write_url(server)
    return server


def _write_url(server: Server) -> None:
    (server.folder / "url").write_text(server.url() + "\n")


def stop(folder: Path) -> bool:
    """Stop the server of ``folder``; False if none was running."""
    server = Server(folder.resolve())
    if not running(server):
        return False
    bindir = pg_bin() or ""
    _run(
        _runner(),
        bindir,
        "pg_ctl",
        "-D",
        str(server.data),
        "-m",
        "fast",
        "-w",
        "stop",
        cwd=server.folder,
        check=False,
    )
    return True


#: where root's servers live: Debian's folder of the postgres user, which the
#: server (run as postgres) can reach and no other user can write to
ROOT_SERVERS = Path("/var/lib/postgresql")


def default_folder() -> Path:
    """``postgres/`` in the work folder; as root, a folder of its own under
    :data:`ROOT_SERVERS` (the work folder is root's alone, closed to postgres)."""
    from autograder.authoring import nbgrader_config as cfg

    work = cfg.grading_dir()
    if os.geteuid() == 0 and ROOT_SERVERS.is_dir():
        tag = hashlib.sha256(str(work.resolve()).encode()).hexdigest()[:12]
        return ROOT_SERVERS / f"trainlab-gradebook-{tag}"
    return work / "postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.outputs.postgres",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="the server's folder (default: postgres/ in the work folder)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="also listen on 127.0.0.1:PORT (default: a Unix socket only)",
    )
    args = parser.parse_args(argv)
    folder = (args.dir or default_folder()).resolve()
    if args.action == "stop":
        print("stopped" if stop(folder) else f"no server runs in {folder}")
        return 0
    if args.action == "url":
        saved = folder / "url"
        if not (running(Server(folder)) and saved.is_file()):
            print(
                f"error: no server runs in {folder}; start it: make db", file=sys.stderr
            )
            return 1
        print(saved.read_text().strip())
        return 0
    try:
        server = start(folder, args.port)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = server.url()
    print(
        f"PostgreSQL gradebook running in {folder} (log: {server.log})", file=sys.stderr
    )
    print(
        f"grade into it: python -m autograder grade SUBMISSIONS --db '{url}'",
        file=sys.stderr,
    )
    print(
        f"  (or export TRAINLAB_DB_URL='{url}'); stop it: make db-stop", file=sys.stderr
    )
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
