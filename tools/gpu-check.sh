#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU and a clone of this repository,
#
#   tools/gpu-check.sh            # a venv, the CUDA tests, a class graded on cuda and cpu
#   tools/gpu-check.sh --dry-run  # no install: 2 submissions, the CUDA tests collected
#
# 1. creates the virtual environment .venv-gpu/ (with the system's packages
#    visible, so a CUDA torch already installed there is used as it is) and
#    installs requirements.txt from PyPI, whose torch==2.13.0 is the CUDA
#    build on Linux, and the course package (editable);
# 2. runs tools/gpu_check.py: pytest -m cuda, then the generated benchmark
#    class graded with --device cuda and --device cpu, and prints a table
#    (tests passed/skipped, grading seconds per device, identical scores).
#
# On a GPU machine that reaches no package index, bring the wheels: run
# tools/gpu-wheels.sh where pip works, take .whl/ along, and pass --wheels .whl:
# they are installed (--no-index --no-deps) into that machine's own Python
# (--python, default python3; no venv, whose sandbox would not see the image's
# torch), beside its CUDA torch, which is the one tested (its version is in the
# table). Meant for a throwaway GPU machine: it changes that Python's packages.
#
# Without a GPU it says "no GPU: skipped" for the CUDA rows and still grades
# on the CPU. Options: --python PY (use that interpreter, install nothing),
# --wheels DIR (install offline from DIR), --dry-run (implies --python python3
# unless given), and those of tools/gpu_check.py (-n N submissions, --jobs J,
# --skip-tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPU_CHECK_VENV:-$ROOT/.venv-gpu}"
PY=""
WHEELS=""
DRY=()
REST=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) REST+=("$1"); shift ;;
  esac
done

if [ -n "$WHEELS" ]; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "--wheels $WHEELS: no wheels there; make them with tools/gpu-wheels.sh" >&2
    exit 2
  fi
  PY="${PY:-$(command -v python3)}"
  echo "installing the wheels in $WHEELS into $PY (offline), beside its torch" >&2
  "$PY" -m pip install --quiet --no-index --no-deps "$WHEELS"/*.whl
  "$PY" -m pip install --quiet --no-index --no-deps --no-build-isolation -e "$ROOT"
fi
if [ -z "$PY" ] && [ ${#DRY[@]} -gt 0 ]; then
  PY="$(command -v python3)"
fi
if [ -z "$PY" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    python3 -m venv --system-site-packages "$VENV"
  fi
  PY="$VENV/bin/python"
  echo "installing requirements.txt (torch==2.13.0, the CUDA build from PyPI)" >&2
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet -r "$ROOT/requirements.txt"
  "$PY" -m pip install --quiet --no-deps -e "$ROOT"
fi

cd "$ROOT"
exec "$PY" tools/gpu_check.py "${DRY[@]}" "${REST[@]}"
