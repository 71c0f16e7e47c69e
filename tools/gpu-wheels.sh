#!/usr/bin/env bash
# The wheels for tools/gpu-check.sh on a GPU machine that reaches no package
# index: run this where pip reaches PyPI, then take .whl/ along with the
# repository and run `tools/gpu-check.sh --wheels .whl` there.
#
#   tools/gpu-wheels.sh                     # for Python 3.12 on x86-64 Linux
#   tools/gpu-wheels.sh --python-version 3.11 --dest DIR
#
# What grading and the tests need (requirements-grading.txt, pytest, filelock)
# and what they pull in, as binary wheels for that Python, minus:
# - what a GPU image already holds: torch and the NVIDIA libraries, the
#   scientific stack (numpy, scipy, matplotlib, scikit-learn, pillow), pytest's
#   own packages and the common small ones (the list SKIP below);
# - JupyterLab's front end (jupyterlab, notebook, their servers' extensions,
#   widgets, babel's locale data): grading runs notebooks with a kernel and never
#   serves the lab.
# gpu-check.sh installs them with --no-deps into a venv that sees the system's
# packages, so the image's torch (CUDA) is the one tested; a package missing on
# both sides shows as an ImportError in its first step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYVER=3.12
DEST="$ROOT/.whl"
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYVER="$2"; shift 2 ;;
    --dest) DEST="$2"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# distributions the wheels leave out (names as pip normalizes them, lower case)
SKIP="torch triton numpy scipy matplotlib scikit_learn pillow contourpy cycler
fonttools kiwisolver pyparsing joblib threadpoolctl pytest pluggy iniconfig
packaging filelock setuptools pyyaml tqdm jinja2 markupsafe pygments attrs
certifi idna urllib3 requests charset_normalizer six python_dateutil
typing_extensions psutil sympy mpmath networkx fsspec
jupyterlab notebook jupyterlab_server jupyter_lsp notebook_shim jupyter_builder
ipywidgets widgetsnbextension jupyterlab_widgets babel json5 async_lru httpx
httpcore h11 anyio"

REQS="$(mktemp)"
trap 'rm -f "$REQS"' EXIT
grep -v -E '^(#|torch==)' "$ROOT/requirements-grading.txt" >"$REQS"
grep -E '^(pytest|filelock)==' "$ROOT/requirements.txt" >>"$REQS"

mkdir -p "$DEST"
python3 -m pip download --quiet --only-binary=:all: --implementation cp \
  --python-version "$PYVER" --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$DEST" -r "$REQS"

for whl in "$DEST"/*.whl; do
  name="$(basename "$whl" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')"
  for skip in $SKIP; do
    if [ "$name" = "$skip" ]; then rm -f "$whl"; fi
  done
done
count="$(find "$DEST" -name '*.whl' | wc -l)"
size="$(du -sm "$DEST" | cut -f1)"
echo "$count wheels for Python $PYVER in $DEST ($size MB)"
