"""Command line: ``python -m icon_engine {reconstruct,batch,motion,serve,doctor,body,sample,validate} …``
(docs/cli.md).

Exit statuses are :mod:`icon_engine.errors`' ``EXIT_*`` constants. With ``--progress json`` every outcome,
errors included, is a JSON line on stdout (protocol in :mod:`icon_engine.progress`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import EXIT_BROKEN_PIPE, EXIT_CANCELLED, EXIT_CODES, EXIT_INTERNAL, EXIT_OK, EngineError
from .options import DEVICES, QUALITIES, REST_POSES, ReconstructOptions, options_from_cli
from .progress import CancelToken, TerminalBar, emit_json, protocol_sink


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
                     help="the person's standing height in metres: makes the avatar's scale exact (default: an "
                          "average adult's 1.70 m; one photo does not show its scale)")
    rec.add_argument("--subject", action="store_true",
                     help="the photos (and videos) show one person: build ONE avatar from all of them")
    rec.add_argument("--frames", type=int, default=12, metavar="N",
                     help="with --subject: sharp frames taken from each video (default 12)")
    rec.add_argument("--name", metavar="NAME", help="with --subject: the bundle's folder name (default: the first "
                     "input's name)")
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

    srv = sub.add_parser("serve", help="warm engine: run reconstructions sent as JSON lines on stdin (the add-on)")
    srv.set_defaults(func=cmd_serve)

    val = sub.add_parser("validate", help="check a result bundle")
    val.add_argument("bundle", type=Path)
    val.set_defaults(func=cmd_validate)

    mot = sub.add_parser("motion", help="capture one person's motion from a video (SMPL-X .npz + BVH)")
    mot.add_argument("video", type=Path, metavar="VIDEO", help="video file (MP4, MOV, MKV, WebM, AVI, ...)")
    mot.add_argument("--out", type=Path, required=True, help="output folder: motion.npz, motion.bvh, motion.json")
    mot.add_argument("--person", type=int, default=0, metavar="N", help="which person (0 = the largest)")
    mot.add_argument("--start", type=float, metavar="S", help="start time in seconds (default: 0)")
    mot.add_argument("--end", type=float, metavar="E", help="end time in seconds (default: the end)")
    mot.add_argument("--fps", type=float, metavar="F", help="output frame rate (default: the video's)")
    mot.add_argument("--smoothing", choices=("zero_phase", "one_euro", "none"), default="zero_phase")
    mot.add_argument("--no-foot-lock", action="store_true", help="keep the fitted root (no foot locking)")
    mot.add_argument("--hands", action=argparse.BooleanOptionalAction, default=True,
                     help="capture the fingers where the hands are visible (default: on)")
    mot.add_argument("--bundle", type=Path, help="an avatar's result bundle: use its body shape (betas)")
    mot.add_argument("--smplx-model", type=Path, help="official SMPL-X .npz file or folder (default: open body)")
    mot.add_argument("--progress", choices=("bar", "json", "none"), default="bar")
    mot.set_defaults(func=cmd_motion)

    from .batch.cli import add_parser as add_batch_parser  # issue 18: shares reconstruct's options

    add_batch_parser(sub, rec)

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


def options_from_args(args: argparse.Namespace) -> ReconstructOptions:
    """The :class:`ReconstructOptions` of parsed ``reconstruct`` arguments (:func:`options.options_from_cli`)."""
    return options_from_cli(vars(args))


def cmd_reconstruct(args: argparse.Namespace) -> int:
    return run_reconstruct(args, emit_json if args.progress == "json" else None, CancelToken())


def run_reconstruct(args: argparse.Namespace, emit: Callable[[dict], None] | None, cancel: CancelToken,
                    body_models: dict | None = None) -> int:
    """Reconstruct every photo of parsed ``reconstruct`` arguments; returns the exit status.

    ``emit``: where protocol events go (JSON lines; None = terminal output); ``cancel``: stops the run at the
    next step; ``body_models``: a cache (options → loaded body model) kept across runs by a warm engine."""
    from .image_io import list_photos

    options = options_from_args(args)
    if not args.photos and not args.sample:
        raise EngineError("usage", "No photo given.", "Name one or more photos or folders, or use --sample.")
    for key, path in (("--smplx-model", args.smplx_model), ("--icon-data", args.icon_data)):
        if path is not None and not path.exists():
            code = "body_model" if key == "--smplx-model" else "icon_data"
            raise EngineError(code, f"{key} {path} does not exist.", "Check the path, or leave the option out.")
    if args.subject:
        return _run_subject(args, emit, cancel, body_models)
    photos = list_photos(list(args.photos)) if args.photos else []
    if args.sample:
        from .sample import sample_photo_path

        photos.append(sample_photo_path())
    _writable_folder(args.out)
    from .image_io import load_photo
    from .options import resolve_device

    sizes, loaded = [], None
    for photo in photos:  # refuse bad photos before any work, so nothing is half-done
        loaded = load_photo(photo)
        sizes.append((len(loaded.data), loaded.original_size))
    if len(photos) != 1:
        loaded = None  # one photo (the warm engine's jobs): reconstruct reuses it instead of reading it again

    if options.device == "cuda":
        resolve_device(options.device)  # fail before any work when CUDA is missing ("auto" cannot fail)
    _check_free_space(args.out, options, sizes)
    from .batch.jobs import assign_names

    jobs = assign_names(photos)  # one folder each: photos with the same stem get me, me-2, me-3… as in a batch
    with _claim_output(args.out, [args.out / job.name for job in jobs]):
        return _run_photos(args, options, jobs, emit, cancel, body_models, loaded)


def _check_free_space(out: Path, options: ReconstructOptions, sizes: list[tuple[int, tuple[int, int]]]) -> None:
    """Refuse a run whose bundles would not fit on the disk of ``out`` (estimate: bundle.writer)."""
    from .bundle.writer import disk_space, estimate_bundle_bytes

    space = disk_space(out)
    if space is not None and space[0] == 0:
        raise EngineError("output", f"Cannot write to {out}: it is on a virtual file system (like /proc), not a "
                          "disk.", "Choose a folder on a disk for --out.")
    free = space[1] if space is not None else None
    texture = options.resolved_texture_size if options.texture else None
    need = sum(estimate_bundle_bytes(options.resolved_face_count, texture, n, size) for n, size in sizes)
    if free is not None and free < need:
        raise EngineError("output", f"Not enough disk space in {out}: {len(sizes)} bundle(s) need about "
                          f"{need / 2**20:.0f} MB, {free / 2**20:.0f} MB is free.",
                          "Free some disk space or choose a folder on another disk for --out.")


@contextlib.contextmanager
def _claim_output(out: Path, targets: list[Path]):
    """Create ``out`` and claim every bundle target in it for this run (a second run into the same targets is
    refused); an output folder this run created is removed again when the run writes nothing into it."""
    from .bundle.writer import claim_target, output_error

    out = out.absolute()
    created = []
    probe = out
    while not probe.exists() and probe.parent != probe:
        created.append(probe)
        probe = probe.parent
    try:
        with contextlib.ExitStack() as stack:
            try:
                for target in dict.fromkeys(t.absolute() for t in targets):
                    stack.enter_context(claim_target(target))
            except OSError as exc:  # e.g. a read-only disk: the up-front check cannot see it, creating can
                err = output_error(exc, "the output folder", out)
                if err is not None and "disk space" not in err.message:
                    err = EngineError("output", f"Cannot create or write the output folder {out}: "
                                      f"{exc.strerror or exc}.", "Choose a folder you can write to for --out.")
                raise (err or exc) from exc
            yield
    finally:
        for folder in created:  # deepest first; stops at the first that is not empty
            try:
                folder.rmdir()
            except OSError:
                break


def _run_photos(args: argparse.Namespace, options: ReconstructOptions, jobs: Sequence[Any],
                emit: Callable[[dict], None] | None, cancel: CancelToken, body_models: dict | None,
                loaded: Any = None) -> int:
    """Reconstruct ``jobs`` (``batch.jobs.BatchJob``: a photo and its bundle's folder name) one by one; ``loaded``:
    the only photo, already read (``image_io.Photo``)."""
    from .options import resolve_device
    from .pipeline import preload_body, reconstruct

    bar = None if emit is not None else (TerminalBar() if args.progress == "bar" else None)
    callback = protocol_sink(emit) if emit is not None else bar
    # a warm engine's cache (torch is loaded there); a cold process loads the body in the background instead
    body_key = (str(options.smplx_model), resolve_device(options.device)) if body_models else None
    body_model = body_models.get(body_key) if body_models else None
    pending = preload_body(options) if body_model is None else None
    status = EXIT_OK
    try:
        for job in jobs:
            photo = job.photo
            try:
                bundle = reconstruct(photo, args.out, options, progress=callback, cancel=cancel,
                                     body_model=body_model if body_model is not None else pending, image=loaded,
                                     bundle_name=job.name)
            except EngineError as err:
                if err.code == "cancelled" or err.code in ("body_model", "device", "icon_data", "output"):
                    raise  # affects every photo
                status = status or err.exit_code
                _report_error(err, emit, photo.name)
                continue
            finally:
                if bar is not None:
                    bar.close()
            _report_bundle(bundle, photo.name, emit, f"bundle written to {bundle}")
    except KeyboardInterrupt:  # cancelled: do not wait for the body model
        raise
    except BaseException:
        if pending is not None:
            pending.exception()  # let the loader finish (no thread left importing at interpreter exit)
        raise
    if pending is not None and pending.exception() is None and body_models is not None:
        body_models[(str(options.smplx_model), resolve_device(options.device))] = pending.result()
    return status


def _run_subject(args: argparse.Namespace, emit: Callable[[dict], None] | None, cancel: CancelToken,
                 body_models: dict) -> int:
    """``reconstruct --subject``: every input shows one person → one bundle (icon_engine.subject)."""
    from .options import resolve_device
    from .pipeline import load_body
    from .subject import reconstruct_subject

    options = options_from_args(args)
    inputs = list(args.photos)
    if args.sample:
        from .sample import sample_photo_path

        inputs.append(sample_photo_path())
    _writable_folder(args.out)
    device = resolve_device(options.device)
    key = (str(options.smplx_model), device)
    body_models = {} if body_models is None else body_models  # None: a one-off command-line run
    if key not in body_models:
        body_models[key] = load_body(options, device)
    bar = None if emit is not None else (TerminalBar() if args.progress == "bar" else None)
    callback = protocol_sink(emit) if emit is not None else bar
    try:
        bundle = reconstruct_subject(inputs, args.out, options, frames=args.frames, progress=callback, cancel=cancel,
                                     bundle_name=args.name, body_model=body_models[key])
    finally:
        if bar is not None:
            bar.close()
    _report_bundle(bundle, bundle.name, emit, f"one avatar from {len(inputs)} input(s) written to {bundle}")
    return EXIT_OK


def _report_bundle(bundle: Path, name: str, emit: Callable[[dict], None] | None, done_text: str) -> None:
    """A finished bundle's warnings and the ``done`` event (or text lines on stderr/stdout)."""
    for warning in json.loads((bundle / "bundle.json").read_text(encoding="utf-8")).get("warnings", []):
        if emit is not None:
            emit({"event": "warning", "photo": name, "message": warning})
        else:
            print(f"warning: {name}: {warning}", file=sys.stderr)
    if emit is not None:
        emit({"event": "done", "photo": name, "bundle": str(bundle)})
    else:
        print(f"{name}: {done_text}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import collect_report, configured_problems, format_report

    report = collect_report(smplx_model=args.smplx_model, icon_data=args.icon_data)
    problems = configured_problems(report, args.smplx_model, args.icon_data)
    if args.json:
        report["problems"] = problems
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    for problem in problems:  # the report is printed in full; a configured file that cannot be used fails
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print("hint: Fix the file or folder named above, or leave the option out (the engine then uses the open "
              "body / its built-in surface).", file=sys.stderr)
        return EXIT_CODES["body_model"]
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import sample_photo_path, write_sample_photo

    if args.out is None:
        print(sample_photo_path())
    else:
        if args.out.is_dir():  # a folder: the photo goes into it, as cp would put it
            args.out = args.out / "sample.png"
            if args.out.is_dir():
                raise EngineError("output", f"{args.out} is a folder.", "Give the photo's file name with --out.")
        _writable_folder(args.out.parent)
        try:
            write_sample_photo(args.out)
        except OSError as exc:  # a full disk, a read-only folder: exit 6, not a traceback
            from .bundle.writer import output_error

            err = output_error(exc, f"the sample photo {args.out.name}", args.out.absolute().parent)
            raise (err or exc) from exc
        print(args.out)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve()


def cmd_validate(args: argparse.Namespace) -> int:
    from .bundle import BundleError, read_bundle

    try:
        bundle = read_bundle(args.bundle)
    except BundleError as exc:
        raise EngineError("bad_bundle", f"Invalid bundle: {exc}", exc.hint or "Re-run the reconstruction.") from exc
    print(f"{bundle.path}: valid bundle v{bundle.meta['format_version']}, {len(bundle.posed_mesh.vertices)} "
          f"vertices, {len(bundle.posed_mesh.faces)} faces, body model {bundle.meta['body']['model']}")
    from .rig import rest_torn_report

    print(rest_torn_report(bundle.posed_mesh.vertices, bundle.rest_mesh.vertices, bundle.rest_mesh.faces))
    return EXIT_OK


def cmd_motion(args: argparse.Namespace) -> int:
    """``motion VIDEO --out DIR``: see icon_engine.motion and docs/motion.md."""
    import signal

    import numpy as np

    from .motion import MotionOptions, capture_motion
    from .motion.video import probe_video

    json_mode = args.progress == "json"
    probe_video(args.video)  # refuse a bad file before loading anything
    _writable_folder(args.out)
    betas = None
    if args.bundle is not None:
        from .bundle import BundleError, read_bundle

        try:
            betas = np.asarray(read_bundle(args.bundle).meta["body"]["betas"], dtype=np.float32).reshape(-1)
        except (BundleError, KeyError, TypeError, ValueError) as exc:
            raise EngineError("bad_bundle", f"Cannot read the body shape from {args.bundle}: {exc}",
                              "Name an ICON result bundle folder, or leave --bundle out.") from exc
    options = MotionOptions(person_index=args.person, start=args.start, end=args.end, fps=args.fps,
                            smoothing=args.smoothing, lock_feet=not args.no_foot_lock, betas=betas,
                            hands=args.hands)
    body_model = None
    if args.smplx_model is not None:
        from .body_model import load_body_model

        body_model = load_body_model(args.smplx_model)
    cancel = CancelToken()
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())  # the add-on's Cancel: keep the work

    def report(event: dict) -> None:
        if json_mode:
            emit_json(event)
        elif args.progress == "bar" and event.get("stage") == "fit":
            print(f"\r{event['message']:<40}", end="", file=sys.stderr, flush=True)

    try:
        result = capture_motion(args.video, args.out, options, body_model=body_model, progress=report,
                                cancel=cancel)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.progress == "bar":
            print(file=sys.stderr)
    for warning in result.warnings:
        if json_mode:
            emit_json({"event": "warning", "photo": args.video.name, "message": warning})
        else:
            print(f"warning: {args.video.name}: {warning}", file=sys.stderr)
    if json_mode:
        emit_json({"event": "done", "photo": args.video.name, "bundle": str(result.npz.resolve()),
                   "bvh": str(result.bvh.resolve()), "frames": result.frames, "fps": result.fps,
                   "partial": result.partial})
    else:
        print(f"{args.video.name}: {result.frames} frames at {result.fps:g} fps written to {result.npz} and "
              f"{result.bvh}")
    return EXIT_CANCELLED if result.partial else EXIT_OK


def _report_error(err: EngineError, emit: Callable[[dict], None] | None, photo: str | None = None) -> None:
    """An error as a protocol event (``emit``) or as text on stderr (``emit`` None)."""
    if emit is not None:
        emit({"event": "error", "photo": photo, **err.to_dict()})
    else:
        prefix = f"{photo}: " if photo else ""
        print(f"error: {prefix}{err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (the add-on's Cancel, ``kill``) ends the run like Ctrl+C: the temporary bundle folder is removed,
    a ``cancelled`` error event is reported and the exit status is 130."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "json" in argv and "--progress" in argv or "--progress=json" in argv
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _main(argv, json_mode)
    except BrokenPipeError:  # the pipe closed while an error was being reported
        return _stdout_gone()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str], json_mode: bool) -> int:
    emit = emit_json if json_mode else None
    try:
        args = build_parser().parse_args(argv)
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return status
    except EngineError as err:
        _report_error(err, emit)
        return err.exit_code
    except BrokenPipeError:  # ``… | head``: the reader closed stdout; stop quietly, like a SIGPIPE'd tool
        return _stdout_gone()
    except KeyboardInterrupt:  # Ctrl+C, or SIGTERM (the add-on's Cancel): see _on_sigterm
        _report_error(EngineError("cancelled", "Reconstruction cancelled.", ""), emit)
        return EXIT_CANCELLED
    except Exception as exc:  # an engine bug: say so plainly, with the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        err = EngineError("internal", f"Internal error: {type(exc).__name__}: {exc}",
                          "Please report this with the log above.")
        _report_error(err, emit)
        return EXIT_INTERNAL


def _stdout_gone() -> int:
    """Point stdout at the null device (so the interpreter's final flush cannot raise again) → exit status 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no real file (tests capture it): nothing to redirect
        pass
    return EXIT_BROKEN_PIPE
