"""Mutation run of the add-on's motion reader: damaged motion files must end in a ``MotionError``.

A BVH (SMPL-X names, written by ``icon_blender.core.bvh.write_bvh``) and an AMASS-style ``.npz`` (``poses`` T × 165,
``trans``, ``mocap_framerate``) are made, then each read changes a copy: BVH tokens or lines replaced by odd ones
(NaN, inf, 1e308, braces, keywords, empty), deleted or inserted, sometimes the text cut short; or an ``.npz`` key
deleted or set to an odd array (empty, NaN, 1e308, wrong shapes, a string, booleans), sometimes with the archive's
bytes damaged. ``icon_blender.core.motion.load_motion`` and ``resample`` (what the panel, the CLI and the
importer run before touching Blender) must succeed or raise a ``MotionError``. Prints each kind of other exception
with one mutation that caused it; exits 1 when there is any. Run it with ``-W error::RuntimeWarning`` to count
overflowing maths (a value the reader let through) as failures too.

Usage: ``python -W error::RuntimeWarning bench/motion_mutations.py --reads 1500 --seed 0`` (a few seconds).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.mutations import collect, damage, report  # noqa: E402

#: Tokens a mutated BVH takes.
ODD_TOKENS = ("nan", "inf", "-1", "0", "1e308", "x", "", "{", "}", "ROOT", "JOINT", "End", "CHANNELS", "6",
              "100000000", "-0", "1e-320")


def sample_files(folder: Path, frames: int = 6) -> tuple[str, bytes]:
    """(BVH text, .npz bytes) of a short valid motion."""
    from icon_blender.core import bvh
    from icon_engine.bundle.skeleton import JOINT_NAMES, PARENTS

    rng = np.random.default_rng(0)
    rest = rng.normal(0.0, 0.2, (55, 3))
    rest[0] = [0.0, 0.9, 0.0]
    rotations = np.tile(np.eye(3), (frames, 55, 1, 1))
    text = bvh.write_bvh(folder / "base.bvh", list(JOINT_NAMES), np.array(PARENTS), rest, rotations,
                         np.zeros((frames, 3)) + rest[0], 30.0).read_text()
    buf = io.BytesIO()
    np.savez(buf, poses=rng.normal(0.0, 0.3, (frames, 165)), trans=np.zeros((frames, 3)), mocap_framerate=30.0,
             betas=np.zeros(10))
    return text, buf.getvalue()


def mutated_bvh(text: str, rng: random.Random) -> str:
    """``text`` with 1–3 tokens (or lines) replaced, deleted or inserted, sometimes cut short."""
    by_line = rng.random() < 0.5
    parts = text.split("\n") if by_line else text.split(" ")
    for _ in range(rng.randint(1, 3)):
        i, how = rng.randrange(len(parts)), rng.random()
        if how < 0.5:
            parts[i] = rng.choice(ODD_TOKENS)
        elif how < 0.8:
            del parts[i]
        else:
            parts.insert(i, rng.choice(ODD_TOKENS))
    out = ("\n" if by_line else " ").join(parts)
    return out[: rng.randrange(len(out))] if rng.random() < 0.1 else out


def mutated_npz(data: bytes, path: Path, rng: random.Random, frames: int = 6) -> str:
    """Write ``data`` (an .npz) to ``path`` with one key deleted or replaced, sometimes bytes flipped; returns what
    was done."""
    arrays = dict(np.load(io.BytesIO(data)))
    key = rng.choice([*arrays, "fps"])
    odd = [np.zeros((0, 165)), np.full((frames, 165), np.nan), np.full((frames, 165), 1e308), np.zeros((frames,)),
           np.array("x"), np.array(0.0), np.array(-5.0), np.array(1e308), np.zeros((frames, 3)),
           np.zeros((10**5, 72)), np.array([30.0, 2.0]), np.zeros((frames, 55, 3)),
           np.ones((2, 165), dtype=np.int8), np.array([True])]
    if rng.random() < 0.2:
        arrays.pop(key, None)
        done = f"npz: delete {key}"
    else:
        value = rng.choice(odd)
        arrays[key] = value
        done = f"npz: {key} = {value.dtype} {value.shape}"
    np.savez(path, **arrays)
    if rng.random() < 0.15:
        data, how = damage(path.read_bytes(), rng)
        path.write_bytes(data)
        done += f", {how}"
    return done


def run(reads: int, seed: int) -> dict[str, str]:
    """{exception kind: a mutation that raised it} over ``reads`` mutated reads."""
    from icon_blender.core.motion import MotionError, load_motion, resample

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text, npz = sample_files(folder)

        def one_read(rng: random.Random) -> tuple[str, Callable[[], object]]:
            if rng.random() < 0.6:
                path = folder / "m.bvh"
                path.write_text(mutated_bvh(text, rng))
                done = "bvh"
            else:
                path = folder / "m.npz"
                done = mutated_npz(npz, path, rng)
            return done, lambda: resample(load_motion(path), 24.0)

        return collect(reads, seed, one_read, MotionError)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.exit(report(run(args.reads, args.seed), args.reads, "MotionError"))


if __name__ == "__main__":
    main()
