"""Regenerate the assignments from one source: the reference library.

1. In each source notebook ``solutions/<name>/<name>.ipynb``, every code cell
   whose metadata holds ``{"trainlab": {"generated_from": "module:function"}}``
   is rewritten from ``src/trainlab``: the function's signature and docstring
   are kept and its body is wrapped in ``### BEGIN SOLUTION`` /
   ``### END SOLUTION``. Outputs, execution counts and editor metadata are
   stripped, so the stored notebook is the same whoever saved it last.
2. ``nbgrader generate_assignment`` (with ``autograder/authoring/nbgrader_config.py``)
   makes the student version ``notebooks/<name>/<name>.ipynb`` and records the
   assignment in the gradebook under ``grading/``.
3. Every notebook's first cell is the install cell, the student notebooks link
   to the published book, and ``notebooks/README.md`` says where to start
   (:mod:`autograder.authoring.student_cells`).

Usage::

    python -m autograder.authoring.generate              # every assignment
    python -m autograder.authoring.generate batchnorm    # only these
    python -m autograder.authoring.generate --check      # exit 1 if the committed files
                                               # differ from a fresh generation

``--check`` writes nothing in the repository (it generates into a temporary
folder and compares); it is what CI and ``make check-generated`` run.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import importlib
import inspect
import logging
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat

from autograder.authoring import nbgrader_config, student_cells

ROOT = nbgrader_config.ROOT
SOURCE = ROOT / "solutions"
RELEASE = ROOT / "notebooks"
LANDING = "README.md"  # notebooks/README.md, where the lab opens

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
# cell metadata kept in source notebooks; everything else is editor state
CELL_METADATA_KEYS = ("nbgrader", "trainlab", "tags")
NOTEBOOK_METADATA = {
    "kernelspec": {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    },
    "language_info": {"name": "python"},
}
# files in an assignment folder that are never released
IGNORED = shutil.ignore_patterns(
    ".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store", "gradebook.db"
)
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class GenerateError(RuntimeError):
    """A source notebook cannot be generated; the message says what to fix."""


# ---------------------------------------------------------------------------
# graded function cells from src/trainlab


def resolve(spec: str) -> object:
    """``"trainlab.batchnorm:batchnorm_forward"`` -> the function object."""
    module_name, _, qualname = spec.partition(":")
    if not qualname:
        raise GenerateError(f"generated_from must be 'module:function'; got {spec!r}")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def function_cell_source(spec: str) -> str:
    """The source of a graded cell: signature and docstring, body in markers.

    Args:
        spec: ``"module:function"``, e.g. ``"trainlab.batchnorm:batchnorm_forward"``.

    Returns:
        The cell source, without a trailing newline.
    """
    func = resolve(spec)
    source = textwrap.dedent(inspect.getsource(func))
    tree = ast.parse(source)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise GenerateError(f"{spec} is not a function")
    body = node.body
    has_doc = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    if not has_doc or len(body) < 2:
        raise GenerateError(f"{spec} needs a docstring and a body to make a cell")
    lines = source.rstrip("\n").split("\n")
    split = body[0].end_lineno  # 1-based last line of the docstring
    head, rest = lines[:split], lines[split:]
    while rest and not rest[0].strip():
        rest.pop(0)
    indent = re.match(r"\s*", rest[0]).group(0)
    return "\n".join([*head, indent + BEGIN, *rest, indent + END])


def _names_bound(sources: Iterable[str]) -> set[str]:
    """Names a notebook's code cells define or import at top level."""
    bound: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bound.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
    return bound


def _globals_used(func: object) -> set[str]:
    """Module-level names a function refers to: in its code and its annotations.

    Annotations count because a notebook evaluates them when the cell runs
    (the library's ``from __future__ import annotations`` does not carry over).
    """
    names: set[str] = set()
    stack = [func.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if inspect.iscode(c))
    node = ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]
    args = node.args
    annotations = [
        a.annotation
        for a in [
            *args.posonlyargs,
            *args.args,
            *args.kwonlyargs,
            args.vararg,
            args.kwarg,
        ]
        if a is not None and a.annotation is not None
    ]
    if node.returns is not None:
        annotations.append(node.returns)
    for ann in annotations:
        names.update(n.id for n in ast.walk(ann) if isinstance(n, ast.Name))
    module_globals = func.__globals__
    return {n for n in names if n in module_globals and not hasattr(builtins, n)}


def refresh_source(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Regenerate graded cells and strip editor state, in place; returns ``nb``.

    Raises:
        GenerateError: a generated function refers to a module-level name
            (a helper, a type alias) that no cell of the notebook imports.
    """
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen: set[str] = set()
    generated = []
    for i, cell in enumerate(nb.cells):
        spec = cell.get("metadata", {}).get("trainlab", {}).get("generated_from")
        if spec:
            cell.source = function_cell_source(spec)
            generated.append((spec, resolve(spec)))
        cell.metadata = nbformat.from_dict(
            {k: cell.metadata[k] for k in CELL_METADATA_KEYS if k in cell.metadata}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell_id = cell.get("id")
        if not cell_id or not _CELL_ID.match(cell_id) or cell_id in seen:
            cell_id = grade_id if grade_id and grade_id not in seen else f"{name}-{i}"
        cell.id = cell_id
        seen.add(cell_id)

    bound = _names_bound(c.source for c in nb.cells if c.cell_type == "code")
    for spec, func in generated:
        missing = sorted(_globals_used(func) - bound)
        if missing:
            raise GenerateError(
                f"solutions/{name}: the cell generated from {spec} uses "
                f"{', '.join(missing)}, which no cell of the notebook defines or "
                "imports; import it in the setup cell"
            )
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The stored form of a notebook: nbformat's JSON and a final newline."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


# ---------------------------------------------------------------------------
# the release (student) notebooks via nbgrader


def discover() -> list[str]:
    """Assignment names: folders of solutions/ holding ``<name>/<name>.ipynb``."""
    return sorted(p.name for p in SOURCE.iterdir() if (p / f"{p.name}.ipynb").is_file())


def ensure_venv_on_path() -> None:
    """Put this interpreter's bin/ on PATH: nbgrader runs ``alembic`` from it."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path


def _run_nbgrader(course_root: Path, name: str, db_url: str) -> None:
    """``nbgrader generate_assignment name`` in ``course_root``."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    ensure_venv_on_path()
    config = Config()
    nbgrader_config.configure(config)
    config.CourseDirectory.root = str(course_root)
    config.CourseDirectory.db_url = db_url
    config.Application.log_level = logging.WARNING
    api = NbGraderAPI(config=config)
    result = api.generate_assignment(name, force=True, create=True)
    if not result["success"]:
        raise GenerateError(
            f"nbgrader generate_assignment {name} failed:\n"
            f"{result.get('error') or ''}\n{result.get('log') or ''}"
        )


def _normalize_release(path: Path) -> None:
    """Make a release notebook byte-stable (nbgrader keeps our metadata)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    student_cells.book_links(nb, student_cells.course(ROOT))
    path.write_text(notebook_text(nb), encoding="utf-8")


def build(names: Sequence[str], out: Path, *, db_url: str | None) -> None:
    """Generate sources and releases of ``names`` into the course root ``out``.

    ``out/solutions/<name>/`` and ``out/notebooks/<name>/`` are written;
    ``db_url`` is the gradebook to record the assignments in (a throwaway
    SQLite file under ``out`` when None).
    """
    db_url = db_url or f"sqlite:///{out / 'gradebook.db'}"
    for name in names:
        src_dir = SOURCE / name
        if not (src_dir / f"{name}.ipynb").is_file():
            raise GenerateError(f"no source notebook solutions/{name}/{name}.ipynb")
        dst = out / "solutions" / name
        shutil.copytree(src_dir, dst, ignore=IGNORED)
        for path in sorted(dst.glob("*.ipynb")):
            nb = refresh_source(nbformat.read(path, as_version=4), name)
            student_cells.with_install_cell(nb, student_cells.course(ROOT))
            path.write_text(notebook_text(nb), encoding="utf-8")
        _run_nbgrader(out, name, db_url)
        for path in sorted((out / "notebooks" / name).glob("*.ipynb")):
            _normalize_release(path)
    landing = student_cells.landing_page(discover(), student_cells.course(ROOT))
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "notebooks" / LANDING).write_text(landing, encoding="utf-8")


def _compare_landing(out: Path) -> list[str]:
    """notebooks/README.md against a fresh generation."""
    fresh = (out / "notebooks" / LANDING).read_text(encoding="utf-8")
    committed = RELEASE / LANDING
    if not committed.is_file():
        return [f"notebooks/{LANDING}: missing (a fresh generation creates it)"]
    if committed.read_text(encoding="utf-8") != fresh:
        return [f"notebooks/{LANDING}: differs from a fresh generation"]
    return []


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".ipynb_checkpoints" not in p.parts
    }


def compare(fresh: Path, committed: Path) -> list[str]:
    """Differences between two folders, one summary per differing file."""
    problems = []
    new, old = _files(fresh), _files(committed)
    for rel in sorted(new.keys() | old.keys()):
        shown = committed.relative_to(ROOT) / rel
        if rel not in old:
            problems.append(f"{shown}: missing (a fresh generation creates it)")
        elif rel not in new:
            problems.append(f"{shown}: not produced by a fresh generation")
        elif new[rel].read_bytes() != old[rel].read_bytes():
            diff = difflib.unified_diff(
                old[rel].read_text(errors="replace").splitlines(),
                new[rel].read_text(errors="replace").splitlines(),
                "committed",
                "fresh",
                lineterm="",
                n=1,
            )
            lines = list(diff)
            text = "\n".join("    " + line for line in lines[:24])
            more = (
                f"\n    ... ({len(lines) - 24} more diff lines)"
                if len(lines) > 24
                else ""
            )
            problems.append(f"{shown}: differs from a fresh generation\n{text}{more}")
    return problems


def _replace_folder(fresh: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for rel, path in _files(fresh).items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)  # plain copy: no nbgrader permissions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.authoring.generate",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("assignments", nargs="*", help="default: all of solutions/")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare a fresh generation with the committed files; write nothing",
    )
    args = parser.parse_args(argv)
    names = args.assignments or discover()
    try:
        with tempfile.TemporaryDirectory(prefix="trainlab-generate-") as tmp:
            out = Path(tmp)
            if args.check:
                build(names, out, db_url=None)
                problems = []
                for name in names:
                    problems += compare(out / "solutions" / name, SOURCE / name)
                    problems += compare(out / "notebooks" / name, RELEASE / name)
                problems += _compare_landing(out)
                if problems:
                    print("\n".join(problems))
                    print(
                        f"\n{len(problems)} generated file(s) out of date; "
                        "run `make generate` (python -m autograder.authoring.generate) "
                        "and commit the result."
                    )
                    return 1
                print(f"generated files are up to date: {', '.join(names)}")
                return 0
            nbgrader_config.grading_dir().mkdir(parents=True, exist_ok=True)
            build(names, out, db_url=nbgrader_config.db_url())
            for name in names:
                _replace_folder(out / "solutions" / name, SOURCE / name)
                _replace_folder(out / "notebooks" / name, RELEASE / name)
                print(f"generated solutions/{name} and notebooks/{name}")
            shutil.copyfile(out / "notebooks" / LANDING, RELEASE / LANDING)
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
