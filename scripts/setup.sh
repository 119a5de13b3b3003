#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv.
#  - creates .venv with $PYTHON (default python3; Python 3.11+) if it does not exist;
#  - installs torch only when none is importable: torch==$TORCH_VERSION (default 2.13.0),
#    from $TORCH_INDEX_URL when set (e.g. https://download.pytorch.org/whl/cpu), else the
#    CPU wheel in $PIP_FIND_LINKS when there is one (with uv), else from PyPI. A plain
#    `torch` requirement would otherwise pull several GB of CUDA packages on Linux;
#  - installs this project in editable mode with its test extras (with uv, installed into the
#    venv from PyPI; pip when USE_PIP=1 or uv is unavailable), unless the same
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

# uv (installed into the venv from PyPI) resolves the same versions as pip and installs them
# in seconds instead of about two minutes (measured 2026-11-30: 46 s for everything vs 137 s
# with pip). --compile-bytecode writes the .pyc files pip would: without them, and with
# PYTHONDONTWRITEBYTECODE set (as on CI machines), every `kedro run` recompiles every imported
# module (17 s per run, measured). USE_PIP=1, no uv, or uv failing falls back to pip.
use_uv() {
  [ "${USE_PIP:-0}" = "0" ] && { "$VENV_PY" -m uv --version >/dev/null 2>&1 \
    || "$VENV_PY" -m pip install -q uv; }
}

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# find_spec, not import: importing torch costs seconds on every (no-op) rerun
installed() { "$VENV_PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

if ! installed torch; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$VENV_PY" -m pip install "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  elif [ -n "${PIP_FIND_LINKS:-}" ] && use_uv \
    && "$VENV_PY" -m uv pip install --compile-bytecode --python "$VENV_PY" --find-links "$PIP_FIND_LINKS" \
      "torch==$TORCH_VERSION+cpu"; then
    :  # the local CPU wheel pip would take from $PIP_FIND_LINKS, unpacked by uv
  else
    "$VENV_PY" -m pip install "torch==$TORCH_VERSION"
  fi
fi

STAMP=.venv/.avalanche-kedro-install
WANTED=$("$VENV_PY" -c "import hashlib, sys; print(hashlib.sha256(open('pyproject.toml', 'rb').read()).hexdigest(), sys.version.split()[0])")
if [ "${FORCE_INSTALL:-0}" = "0" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANTED" ] \
  && installed avalanche_kedro; then
  echo "avalanche_kedro is installed in .venv for this pyproject.toml (FORCE_INSTALL=1 reinstalls)"
  exit 0
fi
# torch is installed above, so uv keeps that CPU wheel
if use_uv && "$VENV_PY" -m uv pip install --compile-bytecode --python "$VENV_PY" -e ".[test]"; then
  :
else
  "$VENV_PY" -m pip install -e ".[test]"
fi
echo "$WANTED" > "$STAMP"
