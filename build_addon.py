"""Build the installable ICON for Blender extension zip: ``python build_addon.py [--out-dir dist]``.

The zip holds the add-on (``icon_blender/``'s contents at the top, with ``blender_manifest.toml``) and the engine's
source under ``engine/`` (``engine/icon_engine/...`` plus the pinned ``engine/requirements.txt``), without tests,
caches or data files other than the engine's small JSON tables. The add-on imports the engine's torch-free
bundle reader relatively from ``engine/``; the engine process gets ``engine/`` on its PYTHONPATH.

Blender's own ``blender_ext.py`` (shipped inside the ``bpy`` wheel; no Blender binary needed) validates the
manifest and builds the zip. Prints the zip's path; exits non-zero when anything fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: File types copied from the engine's source tree.
ENGINE_SUFFIXES = {".py", ".json"}
#: Largest data file copied (bytes); weights and generated data never go into the zip.
MAX_DATA_BYTES = 256 * 1024
SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache"}


def blender_ext_cli() -> Path:
    """Path of ``blender_ext.py`` inside the installed ``bpy`` wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the bpy module is not installed; install the pinned one: pip install -r "
                         "requirements-dev.txt")
    for base in spec.submodule_search_locations:
        found = sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise SystemExit("error: blender_ext.py not found inside the bpy package")


def _copy_tree(src: Path, dst: Path, suffixes: set[str] | None) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if suffixes is not None and path.suffix not in suffixes:
            continue
        if path.suffix != ".py" and path.stat().st_size > MAX_DATA_BYTES:
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def stage(staging: Path) -> dict:
    """Lay out the extension's files in ``staging``; returns the manifest."""
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))
    _copy_tree(ROOT / "icon_blender", staging, {".py"})
    shutil.copy2(ROOT / "blender_manifest.toml", staging / "blender_manifest.toml")
    engine = staging / "engine"
    _copy_tree(ROOT / "icon_engine", engine / "icon_engine", ENGINE_SUFFIXES)
    (engine / "__init__.py").write_text('"""The ICON engine\'s source, shipped with the add-on (run in its own '
                                        'process; only the torch-free bundle reader is imported by Blender)."""\n')
    shutil.copy2(ROOT / "requirements.txt", engine / "requirements.txt")
    return manifest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(blender_ext_cli()), *args], capture_output=True, text=True)


def build(out_dir: str | Path = ROOT / "dist") -> Path:
    """Validate and build the zip into ``out_dir``; returns its path."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)  # blender_ext.py needs an existing output folder
    with tempfile.TemporaryDirectory(prefix="icon_addon_") as tmp:
        staging = Path(tmp) / "icon_for_blender"
        staging.mkdir()
        manifest = stage(staging)
        zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
        zip_path.unlink(missing_ok=True)
        check = run_cli("validate", str(staging))
        if check.returncode != 0 or "error" in (check.stdout + check.stderr).lower():
            raise SystemExit(f"error: the manifest does not validate:\n{check.stdout}{check.stderr}")
        result = run_cli("build", "--source-dir", str(staging), "--output-filepath", str(zip_path))
        if result.returncode != 0 or not zip_path.is_file():  # the CLI may exit 0 after a fatal error
            raise SystemExit(f"error: building the extension failed:\n{result.stdout}{result.stderr}")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="where the zip goes (default dist/)")
    args = parser.parse_args(argv)
    print(build(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
