"""Mutation runs of our readers of untrusted files (bundles, motions, photos, videos): change one thing in a copy
of a valid file, read it, and collect every exception that is not the reader's own error class.

``damage(data, rng)`` changes bytes; :func:`collect` runs the reads and names each kind of unexpected exception
(type, message, where it was raised) with one mutation that caused it.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from pathlib import Path


def damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """``data`` with 1–20 bytes overwritten, cut short at a random length, or 1–64 random bytes inserted; and what
    was done."""
    out, how = bytearray(data), rng.random()
    if how < 0.5 and out:
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out), "bytes overwritten"
    if how < 0.8:
        return bytes(out[: rng.randrange(max(len(out), 1))]), "cut short"
    at = rng.randrange(len(out) + 1)
    out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(out), "bytes inserted"


def exception_kind(exc: BaseException) -> str:
    """``Type: message @ file:line`` of the frame that raised ``exc``."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {str(exc)[:100]} @ {Path(frame.filename).name}:{frame.lineno}"


def collect(reads: int, seed: int, one_read: Callable[[random.Random], tuple[str, Callable[[], object]]],
            expected: type[BaseException] | tuple[type[BaseException], ...]) -> dict[str, str]:
    """Run ``reads`` mutated reads. ``one_read(rng)`` makes one mutated file and returns (what it did, a function
    that reads it); any exception from the read other than ``expected`` is recorded.
    Returns {exception kind: a mutation that raised it}."""
    rng = random.Random(seed)
    found: dict[str, str] = {}
    for _ in range(reads):
        done, read = one_read(rng)
        try:
            read()
        except expected:
            continue
        except Exception as exc:  # noqa: BLE001 - what a mutation run looks for
            found.setdefault(exception_kind(exc), done)
    return found


def report(found: dict[str, str], reads: int, expected: str) -> int:
    """Print the kinds found; the exit status (1 when there is any)."""
    for kind, example in found.items():
        print(f"{kind}\n    from: {example}")
    print(f"{reads} reads, {len(found)} kinds of exception other than {expected}")
    return 1 if found else 0
