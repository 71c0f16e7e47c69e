"""Regenerate the MathJax subset served with the book (book/_static/mathjax/).

The book must render its math without any CDN, so a minimal MathJax 3 is copied
from the npm ``mathjax`` package into the site's static files: the combined
``tex-chtml.js`` component, its WOFF fonts and a few TeX extensions that
``tex-chtml.js`` loads on demand (autoload) when a page uses their macros.

Usage::

    python book/_tools/vendor_mathjax.py            # needs npm (registry access)
    python book/_tools/vendor_mathjax.py --version 3.2.2

The files are committed; run this only to change the MathJax version.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
DEST = Path(__file__).resolve().parents[1] / "_static" / "mathjax"
# autoloaded TeX extensions kept (macros: \boldsymbol, \cancel, \color)
EXTENSIONS = ("boldsymbol", "cancel", "color")


def wanted(name: str) -> str | None:
    """Map a path inside the npm tarball to its place under DEST (None: skip)."""
    prefix = "package/es5/"
    if name == "package/LICENSE":
        return "LICENSE"
    if not name.startswith(prefix):
        return None
    rel = name.removeprefix(prefix)
    if rel == "tex-chtml.js":
        return rel
    if rel.startswith("output/chtml/fonts/woff-v2/") and rel.endswith(".woff"):
        return rel
    if rel in {f"input/tex/extensions/{e}.js" for e in EXTENSIONS}:
        return rel
    return None


def vendor(version: str = VERSION, dest: Path = DEST) -> list[Path]:
    """Download mathjax@version with npm and copy the subset into dest."""
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch the mathjax package; install Node.js")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                "npm",
                "pack",
                "--loglevel=error",
                f"mathjax@{version}",
                "--pack-destination",
                tmp,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(tmp).glob("mathjax-*.tgz")
        keep = [p for p in dest.rglob("*") if p.name == "README.md"]
        readme = {p: p.read_bytes() for p in keep}
        shutil.rmtree(dest, ignore_errors=True)
        written = []
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                target = wanted(member.name)
                if target is None or not member.isfile():
                    continue
                out = dest / target
                out.parent.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member)
                assert data is not None
                out.write_bytes(data.read())
                written.append(out)
        for path, content in readme.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    if not any(p.name == "tex-chtml.js" for p in written):
        raise SystemExit(f"mathjax@{version} has no es5/tex-chtml.js; is it MathJax 3?")
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args(argv)
    written = vendor(args.version)
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files ({size / 1e6:.2f} MB) to {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
