"""Build the course book: every page executed, any warning or failed cell fatal.

Usage::

    python book/_tools/build.py                 # -> _build/html/index.html
    python book/_tools/build.py --output /tmp/b # -> /tmp/b/html (own cache)
    python book/_tools/build.py --all           # re-write every page
    python book/_tools/build.py --draft         # warnings do not stop the build

This is Jupyter Book 1 (``jupyter-book build . -W -n``) driven from Python, so that
the benchmark and the tests build exactly as ``make book`` does. Execution
outputs are cached in ``<output>/.jupyter_cache`` (``execute_notebooks: cache``
in ``_config.yml``): a page is re-executed only when its code changes. The
cache does not know the figure rule, ``book/matplotlibrc``, which every page
draws with: when the rule changes, every page is executed again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "_build"
FIGURE_RULE = "book/matplotlibrc"


def forget_pages_drawn_by_another_rule(root: Path, output: Path) -> None:
    """Forget every executed page when ``root/book/matplotlibrc`` changed.

    Sphinx re-reads a page, and the execution cache re-runs it, only when its
    source changed; a page drawn under an older figure rule would keep its old
    figures. So when the rule's SHA-256 differs from the one kept in
    ``output/figure-rule.sha256``, the doctrees and the execution cache go.
    """
    rule = root / FIGURE_RULE
    digest = hashlib.sha256(rule.read_bytes()).hexdigest() if rule.is_file() else ""
    stamp = output / "figure-rule.sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    stale = [output / ".doctrees", output / ".jupyter_cache"]
    if any(path.exists() for path in stale):
        print(f"{FIGURE_RULE} changed: every page is executed again", file=sys.stderr)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


def build(
    output: Path | str = DEFAULT_OUTPUT,
    *,
    root: Path | str = ROOT,
    strict: bool = True,
    force_all: bool = False,
    quiet: bool = False,
) -> int:
    """Build the HTML site into ``output/html``; return 0 on success.

    Args:
        output: build folder; the site goes to ``output/html``, the doctrees
            and the execution cache next to it. Default ``_build``.
        root: the repository root holding ``_config.yml`` and ``_toc.yml``.
        strict: turn every warning (a failed cell included) into an error and
            stop at the first one (``-W`` without ``--keep-going``). Default True.
        force_all: write every page even if unchanged. Default False.
        quiet: print only warnings. Default False.

    Returns:
        0 when the build succeeded, 1 otherwise.
    """
    from jupyter_book.sphinx import build_sphinx  # slow import, only when building

    root = Path(root).resolve()
    output = Path(output).resolve()
    # the page kernels must draw with the inline backend: a leftover MPLBACKEND
    # (e.g. Agg from a headless shell) would silently drop every figure
    os.environ.pop("MPLBACKEND", None)
    # no debugger warning on stderr from the kernels (stderr output is fatal)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    forget_pages_drawn_by_another_rule(root, output)
    result = build_sphinx(
        root,
        output / "html",
        use_external_toc=True,
        noconfig=True,
        path_config=str(root / "_config.yml"),
        confoverrides={
            "external_toc_path": (root / "_toc.yml").as_posix(),
            "nb_execution_cache_path": (output / ".jupyter_cache").as_posix(),
            "latex_individualpages": False,
            # nitpicky (-n): every unresolved cross-reference is a warning too
            "nitpicky": True,
        },
        builder="html",
        warningiserror=strict,
        keep_going=False,
        force_all=force_all,
        quiet=quiet,
    )
    if isinstance(result, BaseException) or result:
        print(f"\nthe book did not build: {result!r}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--all", action="store_true", help="write every page")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--draft", action="store_true", help="report warnings but do not fail on them"
    )
    args = parser.parse_args(argv)
    status = build(
        args.output, strict=not args.draft, force_all=args.all, quiet=args.quiet
    )
    if status == 0:
        index = (args.output / "html" / "index.html").resolve()
        print(f"\nthe book is built: open {index}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
