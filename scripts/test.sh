#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, the engine and add-on tests on Python 3.11 / bpy 5.0.1, an add-on
# smoke test on bpy 4.2.23 (Blender 4.2 LTS), and the add-on tests again on Python 3.13 / bpy 5.2.3 (Blender 5.1+),
# each in its own virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q "$@"
# Add-on smoke test on Blender 4.2 LTS (bpy 4.2.23, Python 3.11): packaging, import, motion, FBX, headless CLI.
if [ ! -x .venv42/bin/python ]; then "${PYTHON:-python3.11}" -m venv .venv42; fi
want42=$(sha256sum requirements-addon42.txt | cut -d' ' -f1)
if [ "$(cat .venv42/.requirements.sha 2>/dev/null)" != "$want42" ]; then
  .venv42/bin/python -m pip install -q --disable-pip-version-check -r requirements-addon42.txt
  echo "$want42" > .venv42/.requirements.sha
fi
.venv42/bin/python -m pytest -q tests/test_addon_package.py tests/test_blender_import.py \
  tests/test_blender_motion_fbx.py tests/test_blender_cli.py tests/test_blender_photo_poses.py
# A working Python 3.13: $PYTHON313, python3.13 on PATH, or a pyenv-installed 3.13 (pyenv's shim alone may refuse).
find_python313() {
  local candidate
  for candidate in "${PYTHON313:-}" python3.13 "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
if PY313=$(find_python313); then
  [ -x .venv313/bin/python ] || "$PY313" -m venv .venv313
  want=$(sha256sum requirements-addon313.txt | cut -d' ' -f1)
  if [ "$(cat .venv313/.requirements.sha 2>/dev/null)" != "$want" ]; then
    .venv313/bin/python -m pip install -q --disable-pip-version-check -r requirements-addon313.txt
    echo "$want" > .venv313/.requirements.sha
  fi
  .venv313/bin/python -m pytest -q tests/test_addon_*.py tests/test_blender_*.py
else
  echo "warning: no Python 3.13 found: skipping the Blender 5.1+ (Python 3.13) add-on tests" >&2
fi
