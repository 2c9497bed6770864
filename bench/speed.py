"""Whole-pipeline speed and memory per stage: photo → bundle, per quality preset.

Each run is a fresh engine process (so peak memory is that run's), on the built-in sample photo and, when
present, on photos from ../shared/images/dev. Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/speed.py [--qualities preview standard] [--photos N] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images" / "dev"
sys.path.insert(0, str(ROOT))


def run_once(photo: Path, quality: str, device: str, out: Path, extra: list[str]) -> dict:
    """Reconstruct ``photo`` in a child process; returns timings, wall time and the child's peak RSS (MB)."""
    cmd = [sys.executable, "-m", "icon_engine", "reconstruct", str(photo), "--out", str(out), "--quality", quality,
           "--device", device, "--progress", "none", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        return {"photo": photo.name, "quality": quality, "error": proc.stderr.strip().splitlines()[-1:]}
    meta = json.loads((out / photo.stem / "bundle.json").read_text())
    return {
        "photo": photo.name,
        "quality": quality,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 0),
        "timings": meta["timings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qualities", nargs="+", default=["preview", "standard"])
    parser.add_argument("--photos", type=int, default=2, help="how many dev photos besides the sample")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-texture", action="store_true")
    args = parser.parse_args()

    from icon_engine.sample import sample_photo_path

    photos = [sample_photo_path()] + sorted(SHARED.glob("*.[jp][pn]g"))[: args.photos]
    extra = ["--no-texture"] if args.no_texture else []
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"device {args.device}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quality in args.qualities:
            for photo in photos:
                row = run_once(photo, quality, args.device, Path(tmp) / quality, extra)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """Markdown table: seconds per stage, the rest of the wall time (process start-up, body model load, preview,
    bundle writing) and the whole process's wall time and peak memory."""
    stages = ["load", "detect", "fit", "surface", "texture", "rig"]
    print("\n| photo | quality | " + " | ".join(stages) + " | other | total (s) | peak RSS (MB) |")
    print("|---|---|" + "---|" * len(stages) + "---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['photo']} | {row['quality']} | failed: {row['error']} |")
            continue
        cells = [f"{row['timings'].get(s, 0):.1f}" for s in stages]
        other = row["wall_s"] - sum(row["timings"].values())
        print(f"| {row['photo']} | {row['quality']} | " + " | ".join(cells) + f" | {other:.1f} | {row['wall_s']:.1f} | "
              f"{row['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
