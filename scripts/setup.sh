#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv, Python 3.11) with the pinned engine, Blender (bpy)
# and test requirements. Idempotent: pip runs only when the requirement files changed since the last set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found. Install Python 3.11 (Blender 4.2-5.0's Python) or set PYTHON=/path/to/python3.11." >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha 2>/dev/null)" != "$want" ]; then
  echo "Installing the pinned requirements into .venv (a few minutes, 3.8 GB)..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > .venv/.requirements.sha
fi
