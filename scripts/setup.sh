#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv.
#  - creates .venv with $PYTHON (default python3; Python 3.11+) if it does not exist;
#  - installs torch only when none is importable: torch==$TORCH_VERSION (default 2.13.0),
#    from $TORCH_INDEX_URL when set (e.g. https://download.pytorch.org/whl/cpu). A plain
#    `torch` requirement would otherwise pull several GB of CUDA packages on Linux;
#  - installs this project in editable mode with its test extras, unless the same
#    pyproject.toml was installed into this .venv before (a stamp file records its sha256; the
#    install is editable, so source changes need no reinstall). FORCE_INSTALL=1 reinstalls.
# Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
VENV_PY=.venv/bin/python

if ! "$VENV_PY" -c "import sys; sys.exit(sys.version_info < (3, 11))"; then
  echo "avalanche_kedro needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if ! "$VENV_PY" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$VENV_PY" -m pip install "torch==${TORCH_VERSION:-2.13.0}" --index-url "$TORCH_INDEX_URL"
  else
    "$VENV_PY" -m pip install "torch==${TORCH_VERSION:-2.13.0}"
  fi
fi

STAMP=.venv/.avalanche-kedro-install
WANTED=$("$VENV_PY" -c "import hashlib, sys; print(hashlib.sha256(open('pyproject.toml', 'rb').read()).hexdigest(), sys.version.split()[0])")
if [ "${FORCE_INSTALL:-0}" = "0" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANTED" ] \
  && "$VENV_PY" -c "import avalanche_kedro" 2>/dev/null; then
  echo "avalanche_kedro is installed in .venv for this pyproject.toml (FORCE_INSTALL=1 reinstalls)"
  exit 0
fi
"$VENV_PY" -m pip install -e ".[test]"
echo "$WANTED" > "$STAMP"
