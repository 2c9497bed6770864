"""Command line: ``python -m icon_engine {reconstruct,doctor,body,sample,validate} …`` (docs/cli.md).

Exit statuses are :mod:`icon_engine.errors`' ``EXIT_*`` constants. With ``--progress json`` every outcome,
errors included, is a JSON line on stdout (protocol in :mod:`icon_engine.progress`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import EXIT_CANCELLED, EXIT_INTERNAL, EXIT_OK, EngineError
from .options import DEVICES, QUALITIES, REST_POSES, ReconstructOptions
from .progress import CancelToken, TerminalBar, emit_json, json_lines_sink


class _Parser(argparse.ArgumentParser):
    """Argument errors become :class:`EngineError` so they follow the same reporting path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise EngineError("usage", f"{self.prog}: {message}", f"Run '{self.prog} --help' for the options.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m icon_engine", description="ICON for Blender engine: photo → rigged avatar")
    parser.add_argument("--version", action="version", version=f"icon_engine {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    rec = sub.add_parser("reconstruct", help="reconstruct photos into result bundles")
    rec.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="photo files or folders of photos")
    rec.add_argument("--sample", action="store_true", help="reconstruct the built-in sample photo")
    rec.add_argument("--out", type=Path, required=True, help="output folder; one bundle per photo in OUT/<name>/")
    rec.add_argument("--quality", choices=QUALITIES, default="standard")
    rec.add_argument("--device", choices=DEVICES, default="auto")
    rec.add_argument("--smplx-model", type=Path, help="official SMPL-X .npz file or folder (default: open body)")
    rec.add_argument("--icon-data", type=Path, help="folder with ICON's official checkpoints (default: none)")
    rec.add_argument("--person", type=int, default=0, metavar="N", help="which person (0 = the largest)")
    rec.add_argument("--no-texture", action="store_true", help="skip UV unwrapping and texture baking")
    rec.add_argument("--texture-size", type=int, metavar="PX", help="texture edge in pixels (default by quality)")
    rec.add_argument("--faces", type=int, metavar="N", help="final face count of the clothed mesh")
    rec.add_argument("--rest-pose", choices=REST_POSES, default="T", help="rest pose of the rig")
    rec.add_argument("--height", type=float, metavar="METRES",
                     help="the person's standing height in metres: makes the avatar's scale exact (default: estimated)")
    rec.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                     help="terminal bar (default), JSON lines on stdout, or nothing")
    rec.set_defaults(func=cmd_reconstruct)

    doc = sub.add_parser("doctor", help="what is installed and found, what is missing and where to get it")
    doc.add_argument("--json", action="store_true", help="print one JSON object")
    doc.add_argument("--smplx-model", type=Path)
    doc.add_argument("--icon-data", type=Path)
    doc.set_defaults(func=cmd_doctor)

    smp = sub.add_parser("sample", help="write the built-in sample photo")
    smp.add_argument("--out", type=Path, help="where to write it (default: print the cached path)")
    smp.set_defaults(func=cmd_sample)

    val = sub.add_parser("validate", help="check a result bundle")
    val.add_argument("bundle", type=Path)
    val.set_defaults(func=cmd_validate)

    try:
        from .body_model.cli import add_parser as add_body_parser
    except ImportError:  # pragma: no cover - body model package missing
        pass
    else:
        add_body_parser(sub)
    return parser


def _writable_folder(path: Path) -> None:
    """Raise EngineError('output') unless ``path`` exists as a writable folder or can be created."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise EngineError("output", f"Output path {probe} is a file, not a folder.", "Choose a folder for --out.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EngineError("output", f"Cannot write to {probe}.", "Choose a folder you can write to for --out.")


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .image_io import list_photos

    json_mode = args.progress == "json"
    options = ReconstructOptions(
        quality=args.quality, device=args.device, smplx_model=args.smplx_model, icon_data=args.icon_data,
        person_index=args.person, texture=not args.no_texture, texture_size=args.texture_size,
        face_count=args.faces, rest_pose=args.rest_pose, height_m=args.height,
    )  # fmt: skip
    if not args.photos and not args.sample:
        raise EngineError("usage", "No photo given.", "Name one or more photos or folders, or use --sample.")
    for key, path in (("--smplx-model", args.smplx_model), ("--icon-data", args.icon_data)):
        if path is not None and not path.exists():
            code = "body_model" if key == "--smplx-model" else "icon_data"
            raise EngineError(code, f"{key} {path} does not exist.", "Check the path, or leave the option out.")
    photos = list_photos(list(args.photos)) if args.photos else []
    if args.sample:
        from .sample import sample_photo_path

        photos.append(sample_photo_path())
    _writable_folder(args.out)
    from .image_io import load_photo
    from .options import resolve_device

    for photo in photos:  # refuse bad photos before any work, so nothing is half-done
        load_photo(photo)

    resolve_device(options.device)  # fail before any work when CUDA is missing

    from .pipeline import load_body, reconstruct

    bar = None if json_mode else (TerminalBar() if args.progress == "bar" else None)
    callback = json_lines_sink() if json_mode else bar
    body_model = None
    status = EXIT_OK
    for photo in photos:
        try:
            if body_model is None:
                body_model = load_body(options, resolve_device(options.device))
            bundle = reconstruct(photo, args.out, options, progress=callback, body_model=body_model,
                                 cancel=CancelToken())
        except EngineError as err:
            if err.code == "cancelled" or err.code in ("body_model", "device", "icon_data", "output"):
                raise  # affects every photo
            status = status or err.exit_code
            _report_error(err, json_mode, photo.name)
            continue
        finally:
            if bar is not None:
                bar.close()
        for warning in json.loads((bundle / "bundle.json").read_text(encoding="utf-8")).get("warnings", []):
            if json_mode:
                emit_json({"event": "warning", "photo": photo.name, "message": warning})
            else:
                print(f"warning: {photo.name}: {warning}", file=sys.stderr)
        if json_mode:
            emit_json({"event": "done", "photo": photo.name, "bundle": str(bundle)})
        else:
            print(f"{photo.name}: bundle written to {bundle}")
    return status


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import collect_report, format_report

    report = collect_report(smplx_model=args.smplx_model, icon_data=args.icon_data)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import sample_photo_path, write_sample_photo

    if args.out is None:
        print(sample_photo_path())
    else:
        _writable_folder(args.out.parent)
        write_sample_photo(args.out)
        print(args.out)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .bundle import BundleError, read_bundle

    try:
        bundle = read_bundle(args.bundle)
    except BundleError as exc:
        raise EngineError("bad_bundle", f"Invalid bundle: {exc}", "Re-run the reconstruction.") from exc
    print(f"{bundle.path}: valid bundle v{bundle.meta['format_version']}, {len(bundle.posed_mesh.vertices)} "
          f"vertices, {len(bundle.posed_mesh.faces)} faces, body model {bundle.meta['body']['model']}")
    return EXIT_OK


def _report_error(err: EngineError, json_mode: bool, photo: str | None = None) -> None:
    if json_mode:
        emit_json({"event": "error", "photo": photo, **err.to_dict()})
    else:
        prefix = f"{photo}: " if photo else ""
        print(f"error: {prefix}{err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "json" in argv and "--progress" in argv or "--progress=json" in argv
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except EngineError as err:
        _report_error(err, json_mode)
        return err.exit_code
    except KeyboardInterrupt:
        _report_error(EngineError("cancelled", "Interrupted.", ""), json_mode)
        return EXIT_CANCELLED
    except Exception as exc:  # an engine bug: say so plainly, with the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        err = EngineError("internal", f"Internal error: {type(exc).__name__}: {exc}",
                          "Please report this with the log above.")
        _report_error(err, json_mode)
        return EXIT_INTERNAL
