"""Headless command line: ``python -m icon_blender import-bundle DIR --blend OUT.blend --fbx OUT.fbx --gltf OUT.glb
--usd OUT.usdc``.

Runs with the ``bpy`` module (no Blender UI). Exit statuses follow the engine's (docs/cli.md): 0 ok, 2 bad
command line, 3 bad bundle or motion file, 6 output not writable, 1 internal error. Outputs are written beside
their targets and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_OUTPUT = 0, 1, 2, 3, 6


class CliError(Exception):
    """A problem the user can fix: message, hint, exit status."""

    def __init__(self, message: str, hint: str, status: int) -> None:
        super().__init__(message)
        self.message, self.hint, self.status = message, hint, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m icon_blender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-bundle", help="build a .blend and/or .fbx from a result bundle")
    imp.add_argument("bundle", type=Path, help="the result bundle folder (python -m icon_engine reconstruct ...)")
    imp.add_argument("--blend", type=Path, help="write the scene to this .blend file")
    imp.add_argument("--fbx", type=Path, help="export the rigged avatar to this .fbx file")
    imp.add_argument("--preset", choices=("generic", "unity", "unreal"), default="generic", help="FBX preset")
    imp.add_argument("--gltf", type=Path, help="export the rigged avatar to this .glb (or .gltf) file")
    imp.add_argument("--gltf-preset", choices=("unreal", "godot", "web"), default="godot", help="glTF preset")
    imp.add_argument("--usd", type=Path, help="export the rigged avatar to this .usd/.usdc/.usda/.usdz file")
    imp.add_argument("--bone-names", choices=("smplx", "mixamo", "unreal", "unity"), default="smplx",
                     help="bone names in the exported files (default: SMPL-X's)")
    imp.add_argument("--motion", type=Path, help="a motion to apply after the photo pose: SMPL-X/AMASS/SMPL .npz, "
                     ".npy or .bvh")
    imp.add_argument("--motion-start", type=int, default=1, help="scene frame of the motion's first frame")
    imp.add_argument("--bvh", type=Path, help="write the animation (the scene's frame range) to this .bvh file")
    imp.add_argument("--fps", type=int, default=30, help="scene frame rate for the motion (default 30)")
    imp.add_argument("--no-camera", action="store_true", help="do not create the photo camera")
    return parser


def _check_output(path: Path | None, suffix: str | tuple[str, ...]) -> None:
    if path is None:
        return
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    if path.suffix.lower() not in suffixes:
        raise CliError(f"{path}: the file name must end in {' or '.join(suffixes)}",
                       f"Use a name like avatar{suffixes[0]}.", EXIT_USAGE)
    parent = path.absolute().parent
    if not parent.is_dir():
        raise CliError(f"{parent}: output folder does not exist", "Create the folder or choose another path.",
                       EXIT_OUTPUT)
    import os

    if not os.access(parent, os.W_OK):
        raise CliError(f"{parent}: output folder is not writable", "Choose a folder you can write to.", EXIT_OUTPUT)


def import_bundle_command(args: argparse.Namespace) -> int:
    if all(getattr(args, k) is None for k in ("blend", "fbx", "gltf", "usd", "bvh")):
        raise CliError("nothing to write", "Give --blend OUT.blend, --fbx OUT.fbx, --gltf OUT.glb, --usd OUT.usdc "
                       "and/or --bvh OUT.bvh.", EXIT_USAGE)
    _check_output(args.blend, ".blend")
    _check_output(args.fbx, ".fbx")
    _check_output(args.gltf, (".glb", ".gltf"))
    _check_output(args.usd, (".usd", ".usdc", ".usda", ".usdz"))
    _check_output(args.bvh, ".bvh")
    if args.fps <= 0:
        raise CliError(f"--fps {args.fps} is not a frame rate", "Use a positive number such as 30.", EXIT_USAGE)
    from .engine_link import BundleError, read_bundle

    try:
        bundle = read_bundle(args.bundle)
    except BundleError as exc:
        raise CliError(f"bad bundle: {exc}", "Re-run the reconstruction, or check the folder with "
                       "`python -m icon_engine validate DIR`.", EXIT_BAD_INPUT) from exc
    _check_free_space(bundle, [p for p in (args.blend, args.fbx) if p is not None])
    from .core.motion import MotionError, load_motion

    if args.motion is not None:
        try:
            load_motion(args.motion)  # fail before building anything
        except MotionError as exc:
            raise CliError(f"bad motion file: {exc}", "Use an SMPL-X/AMASS/SMPL .npz or .npy motion, or a BVH file.",
                           EXIT_BAD_INPUT) from exc

    import bpy

    from .blender.export import ExportTargetError
    from .blender.importer import import_bundle
    from .blender.motion import apply_motion

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    result = import_bundle(bundle, scene, with_camera=not args.no_camera)
    if args.motion is not None:
        apply_motion(result.armature, args.motion, scene, frame_start=args.motion_start)
        scene.frame_set(scene.frame_start)
    try:
        _write_exports(args, result.armature, scene)
    except ExportTargetError as exc:
        raise CliError(str(exc), "Move it away, or choose another output name.", EXIT_OUTPUT) from exc
    if args.blend is not None:
        with _disk_errors(args.blend):
            _save_blend(args.blend)
        print(f"wrote {args.blend}")
    return EXIT_OK


def _write_exports(args: argparse.Namespace, armature: Any, scene: Any) -> None:
    """The FBX, glTF, USD and BVH files ``args`` asks for, of the imported avatar's ``armature``."""
    from .blender.export import export_fbx, export_gltf, export_usd
    from .blender.motion import export_bvh

    if args.fbx is not None:
        with _disk_errors(args.fbx):
            export_fbx(armature, args.fbx, args.preset, args.bone_names)
        print(f"wrote {args.fbx}")
    if args.gltf is not None:
        with _disk_errors(args.gltf):
            export_gltf(armature, args.gltf, args.gltf_preset, args.bone_names)
        print(f"wrote {args.gltf}")
    if args.usd is not None:
        with _disk_errors(args.usd):
            export_usd(armature, args.usd, None, args.bone_names)
        print(f"wrote {args.usd}")
    if args.bvh is not None:
        with _disk_errors(args.bvh):
            export_bvh(armature, args.bvh, scene, bone_names=args.bone_names)
        print(f"wrote {args.bvh}")


# --- disk full / unwritable outputs (issue 19): exit 6 with a plain message, nothing half-written ---------------

_DISK_FULL_TEXT = ("No space left on device", "Errno 28", "Disk quota exceeded", "File too large", "Errno 27")


def _check_free_space(bundle, outputs: list[Path]) -> None:
    """Refuse up front when an output's disk has less free space than about 1.5× the (validated) bundle's files
    + 8 MB per output."""
    import shutil

    names = set(bundle.meta["files"].values())
    need = int(1.5 * sum((bundle.path / name).lstat().st_size for name in names)) + (8 << 20)
    for out in outputs:
        free = shutil.disk_usage(out.absolute().parent).free
        if free < need:
            raise CliError(f"{out.absolute().parent}: not enough disk space for {out.name} (about "
                           f"{need >> 20} MB needed, {free >> 20} MB free)",
                           "Free some disk space or write to another disk.", EXIT_OUTPUT)


class _disk_errors:  # noqa: N801 - used as a context manager
    """Around a Blender write to ``path``: Blender's output (its traceback print of a failed operator goes to
    stdout) is held back; a full disk becomes ``CliError`` (exit 6) with a plain message, and any other failure is
    re-raised with Blender's output shown."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _disk_errors:
        import os
        import threading

        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        read, write = os.pipe()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, args=(read,), daemon=True)
        self._reader.start()
        return self

    def _drain(self, fd: int) -> None:
        import os

        while chunk := os.read(fd, 65536):
            self._chunks.append(chunk)
        os.close(fd)

    def __exit__(self, kind, exc, tb) -> bool:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved, strict=True):  # closes the pipe's write ends: the reader sees EOF
            os.dup2(saved, fd)
            os.close(saved)
        self._reader.join(timeout=10)
        captured = b"".join(self._chunks).decode("utf-8", "replace")
        disk_full = exc is not None and (getattr(exc, "errno", None) in (28, 27, 122)
                                         or any(t in f"{exc}\n{captured}" for t in _DISK_FULL_TEXT))
        if disk_full:
            raise CliError(f"could not write {self.path}: the disk is full", "Free some disk space or write to "
                           "another disk; nothing was written.", EXIT_OUTPUT) from exc
        if captured:
            sys.stdout.write(captured)
            sys.stdout.flush()
        return False


def _save_blend(path: Path) -> None:
    import bpy

    path = path.absolute()
    tmp = path.with_name(f".{path.stem}.partial.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), check_existing=False, compress=True, copy=True)
        if not tmp.is_file():
            raise CliError(f"could not write {path}", "Check the disk space and permissions.", EXIT_OUTPUT)
        if not _blend_is_complete(tmp):  # Blender's compressed writer reports success on a full disk
            raise OSError(28, f"No space left on device: {path} was cut short")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + "1").unlink(missing_ok=True)  # Blender's backup copy, if any


def _blend_is_complete(path: Path) -> bool:
    """Whether a saved .blend ends as a complete file does: a zstd-compressed one with the seek table's magic
    number (Blender writes the seekable zstd format), an uncompressed one with its ENDB block."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        fh.seek(max(0, path.stat().st_size - 64))
        tail = fh.read()
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return tail.endswith(b"\xb1\xea\x92\x8f")
    return head.startswith(b"BLENDER") and b"ENDB" in tail


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return import_bundle_command(args)
    except CliError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return exc.status
    except Exception as exc:  # a bug: say so, with the details
        import traceback

        traceback.print_exc()
        print(f"error: internal error ({exc})\nhint: please report this with the output above", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
