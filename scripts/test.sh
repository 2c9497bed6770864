#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, the engine and add-on tests on Python 3.11 / bpy 5.0.1, and the
# add-on tests again on Python 3.13 / bpy 5.2.3 (Blender 5.1+), each in its own virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q "$@"
if [ -f requirements-addon313.txt ]; then
  PY313=${PYTHON313:-python3.13}
  if command -v "$PY313" >/dev/null 2>&1; then
    [ -x .venv313/bin/python ] || "$PY313" -m venv .venv313
    want=$(sha256sum requirements-addon313.txt | cut -d' ' -f1)
    if [ "$(cat .venv313/.requirements.sha 2>/dev/null)" != "$want" ]; then
      .venv313/bin/python -m pip install -q --disable-pip-version-check -r requirements-addon313.txt
      echo "$want" > .venv313/.requirements.sha
    fi
    .venv313/bin/python -m pytest -q tests/test_addon_*.py tests/test_blender_*.py
  else
    echo "warning: $PY313 not found: skipping the Blender 5.1+ (Python 3.13) add-on tests" >&2
  fi
fi
