"""The allow-list sandbox, as root and as an ordinary user: nothing of the host leaks.

A submission tries to read, list and change files planted where a grader's
machine keeps them: the grader's home (``~/.ssh/id_rsa``, ``~/.bashrc``), the
host's ``/tmp``, a sibling checkout's ``solutions/``, the work folder, and the
file given to ``check --classroom``. It tries from the notebook's own cells
(run by the kernel) and from inside a graded function (run by the runner, its
findings smuggled out in an exception message). The run is made twice: by the
test process as root, and by an unprivileged uid (on a root machine the test
drops to one, granting it only the right to traverse to the interpreter).
Nothing planted may show in any output, every planted file must be unchanged,
and the classroom file holds only the grader's line.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from tests.grader.conftest import FAST, RELEASE, ROOT, SOLUTION, need_batchnorm

pytestmark = [pytest.mark.grader, pytest.mark.slow]

#: the uid an ordinary user's run gets when the tests run as root
USER_UID = 62777


def _plant(base: Path, home: Path) -> dict[str, Path]:
    """Secret files where a grader's machine would have them; name -> path."""
    tag = uuid.uuid4().hex[:10]
    sibling = base / f"sibling-checkout-{tag}" / "solutions" / "batchnorm"
    paths = {
        "ssh_key": home / ".ssh" / "id_rsa",
        "bashrc": home / ".bashrc",
        "host_tmp": Path("/tmp") / f"planted-{tag}.txt",
        "sibling": sibling / "batchnorm.ipynb",
        "work": base / "work" / f"planted-{tag}.txt",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"SECRET-{name}-{tag}\n")
        path.chmod(0o644)
    return paths


ATTACK = """
import glob, os
def _loot(paths):
    found = []
    for p in paths + glob.glob("/tmp/*") + glob.glob("/tmp/*/*") + glob.glob(
        os.path.expanduser("~") + "/*"
    ):
        try:
            with open(p) as f:
                text = f.read(200)
            if "SECRET-" in text:
                found.append(p + "=" + text)
        except Exception:
            pass
        try:
            with open(p, "a") as f:
                f.write("result=37\\n")
        except Exception:
            pass
    return found
"""


def _attack_notebook(paths: dict[str, Path], classroom: Path) -> nbformat.NotebookNode:
    targets = [str(p) for p in paths.values()] + [str(classroom)]
    release = nbformat.read(str(RELEASE), 4)
    source = nbformat.read(str(SOLUTION), 4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    forward = answers["batchnorm_forward"].replace(
        "def batchnorm_forward(", "def _forward_ok(", 1
    )
    answers["batchnorm_forward"] = (
        ATTACK
        + forward
        + "\n\ndef batchnorm_forward(*args, **kwargs):\n"
        + f"    found = _loot({targets!r})\n"
        + "    if found:\n"
        + "        raise RuntimeError('LEAK ' + ' | '.join(found))\n"
        + "    return _forward_ok(*args, **kwargs)\n"
    )
    for cell in release.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[gid]
    spy = nbformat.v4.new_code_cell(
        ATTACK + f"print('KERNEL LOOT', _loot({targets!r}))\n"
    )
    spy.id = "spy"
    release.cells.insert(1, spy)
    return release


def _traversable(path: Path) -> list[tuple[Path, int]]:
    """Give others the right to traverse the folders above ``path``; what changed."""
    changed = []
    for folder in reversed(path.resolve().parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            changed.append((folder, mode))
    return changed


@contextlib.contextmanager
def _as(mode: str, home: Path):
    """The command prefix and environment of a run as root or as a user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINLAB_")}
    env["HOME"] = str(home)
    if mode == "root":
        if os.geteuid() != 0:
            pytest.skip("the tests run as an ordinary user here: see the user case")
        yield [], env
        return
    if os.geteuid() != 0:  # already an ordinary user
        yield [], env
        return
    changed = _traversable(Path(os.path.realpath(sys.executable)))
    changed += _traversable(ROOT / "pyproject.toml")
    changed += _traversable(home)  # the user's own folders (under pytest's tmp)
    try:
        prefix = ["setpriv", f"--reuid={USER_UID}", f"--regid={USER_UID}"]
        yield [*prefix, "--clear-groups"], env
    finally:
        for folder, old in changed:
            folder.chmod(old)


def _run(prefix, env, *args) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, "-m", "autograder", *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("mode", ["root", "user"])
def test_a_submission_sees_nothing_of_the_host(tmp_path, mode):
    need_batchnorm()
    base = tmp_path / "base"
    home = base / "home"
    home.mkdir(parents=True)
    paths = _plant(base, home)
    classroom = base / "classroom-output"
    classroom.write_text("")
    subs = base / "subs" / "mallory"
    subs.mkdir(parents=True)
    nb = _attack_notebook(paths, classroom)
    nbformat.write(nb, str(subs / "batchnorm.ipynb"))
    work = base / "work"
    before = {n: (p.read_bytes(), p.stat().st_mtime_ns) for n, p in paths.items()}
    try:
        with _as(mode, home) as (prefix, env):
            if prefix:  # the ordinary user owns its submissions and work folder
                for p in [base, *base.rglob("*")]:
                    os.chown(p, USER_UID, USER_UID)
            graded = _run(
                prefix,
                env,
                "grade",
                str(base / "subs"),
                "-a",
                "batchnorm",
                "--work",
                str(work),
                *FAST,
            )
            checked = _run(
                prefix,
                env,
                "check",
                str(subs / "batchnorm.ipynb"),
                "--classroom",
                str(classroom),
                *[a for a in FAST if a != "--no-progress"],
            )
    finally:
        for p in paths.values():
            with contextlib.suppress(OSError):
                if p.is_relative_to("/tmp") and not p.is_relative_to(tmp_path):
                    p.unlink()
    assert graded.returncode == 0, graded.stderr[-3000:]
    assert checked.returncode in (0, 1), checked.stderr[-3000:]
    result = json.loads((work / "grades.json").read_text())["submissions"][0]
    outputs = "\n".join(
        [graded.stdout, graded.stderr, checked.stdout, checked.stderr]
        + [
            p.read_text(errors="replace")
            for p in work.rglob("*")
            if p.is_file() and p.suffix in (".html", ".json", ".md", ".csv", ".ipynb")
        ]
    )
    for name, (content, _) in before.items():
        assert content.decode().strip() not in outputs, f"{name} leaked ({mode})"
    for name, path in paths.items():
        if path.exists():
            assert (path.read_bytes(), path.stat().st_mtime_ns) == before[name], name
    # the forward found nothing to steal, so it is simply right
    assert result["cells"]["test_batchnorm_forward"]["score"] == 8.0, result
    lines = [ln for ln in classroom.read_text().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("result="), lines
    assert lines[0] != "result=37", "the submission wrote the classroom file"
    assert "allow-list" in graded.stdout
    assert "Device: the CPU" in graded.stdout and "meta device" in graded.stdout
    assert "Graded on the CPU" in checked.stdout
    page = next((work / "feedback").rglob("batchnorm.html")).read_text()
    assert "Graded on the CPU" in page


def _without_namespaces(*args: str) -> list[str]:
    """A command run where ``unshare`` is refused, as in a locked-down container."""
    boot = (
        "import os, sys; from autograder.sandbox import seccomp; "
        "seccomp.forbid_namespaces(); "
        "os.execv(sys.executable, [sys.executable, '-m', 'autograder', *sys.argv[1:]])"
    )
    return [sys.executable, "-c", boot, *args]


def test_without_namespaces_grading_refuses_unless_told(tmp_path):
    need_batchnorm()
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    nbformat.write(nbformat.read(str(RELEASE), 4), str(subs / "batchnorm.ipynb"))
    work = tmp_path / "work"
    args = ["grade", str(tmp_path / "subs"), "-a", "batchnorm", "--work", str(work)]
    refused = subprocess.run(
        _without_namespaces(*args, *FAST),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "refusing to run submissions" in refused.stderr
    assert "--no-sandbox" in refused.stderr
    assert not (work / "grades.json").exists()
    checked = subprocess.run(
        _without_namespaces("check", str(subs / "batchnorm.ipynb")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 2 and "refusing" in checked.stderr
    told = subprocess.run(
        _without_namespaces(*args, *FAST, "--no-sandbox"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert told.returncode == 0, told.stderr[-2000:]
    summary = (work / "summary.md").read_text()
    assert "--no-sandbox" in summary and "own rights" in summary
