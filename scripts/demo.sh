#!/usr/bin/env bash
# Set up, then reconstruct a photo (default: the built-in sample) into out/<name>/:
# the result bundle, <name>.blend (rigged avatar, camera matching the photo), <name>.fbx and preview.png.
# Usage: bash scripts/demo.sh [PHOTO] [extra engine options, e.g. --quality preview]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then  # first argument not an option: the photo
  photo=$1; shift
else
  photo=out/sample.png
  .venv/bin/python -m icon_engine sample --out "$photo" >/dev/null
fi
name=$(basename "${photo%.*}")
.venv/bin/python -m icon_engine reconstruct "$photo" --out out "$@"
.venv/bin/python -m icon_blender import-bundle "out/$name" --blend "out/$name/$name.blend" --fbx "out/$name/$name.fbx"
echo "Done: out/$name/ (bundle, $name.blend, $name.fbx, preview.png)"
