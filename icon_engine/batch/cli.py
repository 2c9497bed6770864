"""``python -m icon_engine batch INPUT... --out DIR [reconstruct options] [--workers N] [--ray ADDRESS]``.

The batch command takes the ``reconstruct`` command's options as they are (the same argparse actions), so an
option added to ``reconstruct`` is a batch option too; :func:`options_from_args` maps them onto
:class:`~icon_engine.options.ReconstructOptions` and refuses an option it does not know how to pass on.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from ..errors import EngineError
from ..options import ReconstructOptions, options_from_cli

#: reconstruct's own arguments that the batch command replaces or does not take (a batch is one avatar per photo:
#: no --subject).
_NOT_SHARED = frozenset({"help", "photos", "sample", "out", "progress", "subject", "frames", "name"})
def shared_destinations(reconstruct: argparse.ArgumentParser) -> list[str]:
    """The ``reconstruct`` options the batch command takes (argparse destinations)."""
    return [a.dest for a in reconstruct._actions if a.dest not in _NOT_SHARED]


def add_parser(sub: Any, reconstruct: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to ``sub``, sharing ``reconstruct``'s option actions."""
    bat = sub.add_parser("batch", help="reconstruct many photos on all cores or a Ray cluster (docs/batch.md)")
    bat.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                     help="photos, folders (searched recursively) or .txt/.csv lists of photos")
    bat.add_argument("--out", type=Path, required=True, help="output folder: DIR/<name>/ bundles, DIR/batch.jsonl")
    for action in reconstruct._actions:
        if action.dest not in _NOT_SHARED:
            bat._add_action(action)  # the same option, as argparse's parents= does
    bat.add_argument("--workers", type=int, metavar="N",
                     help="worker processes or Ray actors (default: cores / threads per job)")
    bat.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per job (default 1)")
    bat.add_argument("--ray", metavar="ADDRESS",
                     help="run on Ray: 'local' (a private one on this machine), 'auto' (the cluster this machine "
                          "joined with 'ray start') or HOST:PORT / ray://HOST:10001")
    bat.add_argument("--gpus-per-job", type=float, metavar="G", help="GPUs per Ray actor (default 1 with --device "
                     "cuda, else 0)")
    bat.add_argument("--retry-failed", action="store_true", help="run photos that failed in an earlier run again")
    bat.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                     help="one overall bar (default), JSON lines on stdout, or nothing")
    bat.set_defaults(func=cmd_batch, batch_option_destinations=shared_destinations(reconstruct))
    return bat


def options_from_args(args: argparse.Namespace, destinations: list[str]) -> ReconstructOptions:
    """ReconstructOptions from the shared ``reconstruct`` options in ``args`` (the CLI's one mapping,
    :func:`icon_engine.options.options_from_cli`; an option it cannot place is an internal error)."""
    return options_from_cli({dest: getattr(args, dest) for dest in destinations}, strict=True)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # stop the workers and exit 130, like Ctrl-C


def cmd_batch(args: argparse.Namespace) -> int:
    from .runner import run_batch

    if args.workers is not None and args.workers < 1:
        raise EngineError("bad_option", f"--workers {args.workers} is below 1.", "Use 1 or more.")
    if args.threads < 1:
        raise EngineError("bad_option", f"--threads {args.threads} is below 1.", "Use 1 or more.")
    options = options_from_args(args, args.batch_option_destinations)
    signal.signal(signal.SIGTERM, _terminate)
    result = run_batch(args.inputs, args.out, options, workers=args.workers, threads=args.threads, ray=args.ray,
                       gpus_per_job=args.gpus_per_job, retry_failed=args.retry_failed, progress=args.progress)
    return result.exit_code
