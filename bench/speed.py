"""Whole-pipeline speed and memory per stage: photo → bundle, per quality preset.

Each run is a fresh engine process (so peak memory is that run's), on the built-in sample photo and, when
present, on photos from ../shared/images/dev. Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/speed.py [--qualities preview standard] [--photos N] [--device cpu] [--warm]

``--warm`` also runs the same photos as jobs of one warm engine (``python -m icon_engine serve``, what the add-on
uses) and reports each job's wall and CPU time from request to ``finished`` beside the cold process's.
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
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = usage0.ru_maxrss
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = usage.ru_maxrss
    cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    if proc.returncode != 0:
        return {"photo": photo.name, "quality": quality, "error": proc.stderr.strip().splitlines()[-1:]}
    meta = json.loads((out / photo.stem / "bundle.json").read_text())
    return {
        "photo": photo.name,
        "quality": quality,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_before": round(load, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 0),
        "timings": meta["timings"],
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_warm(photos: list[Path], quality: str, device: str, out: Path, extra: list[str]) -> list[dict]:
    """The photos as jobs of one warm engine: per job wall and CPU seconds from request to ``finished``."""
    proc = subprocess.Popen([sys.executable, "-m", "icon_engine", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdin is not None and proc.stdout is not None
    start = time.perf_counter()

    def until(kind: str) -> dict:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("event") == kind:
                return event
        raise RuntimeError("the warm engine ended early")

    until("warm")
    rows = [{"photo": "(start-up to warm)", "quality": quality, "wall_s": round(time.perf_counter() - start, 2),
             "cpu_s": round(_cpu_seconds(proc.pid), 2)}]
    for i, photo in enumerate(photos):
        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
        argv = ["reconstruct", str(photo), "--out", str(out / f"warm{i}"), "--quality", quality, "--device", device,
                *extra]
        proc.stdin.write(json.dumps({"op": "run", "job": str(i), "argv": argv}) + "\n")
        proc.stdin.flush()
        done = until("finished")
        bundles = sorted((out / f"warm{i}").glob("*/bundle.json"))
        timings = json.loads(bundles[0].read_text())["timings"] if bundles else {}
        rows.append({"photo": photo.name, "quality": quality, "status": done["status"],
                     "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(_cpu_seconds(proc.pid) - cpu0, 2),
                     "load_before": round(load, 2), "timings": timings})
    proc.stdin.close()
    proc.wait(timeout=60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qualities", nargs="+", default=["preview", "standard"])
    parser.add_argument("--photos", type=int, default=2, help="how many dev photos besides the sample")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-texture", action="store_true")
    parser.add_argument("--warm", action="store_true", help="also run the photos as jobs of one warm engine")
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
        if args.warm:
            stages = ["detect", "fit", "surface", "rig", "texture"]
            print("\n| job of the warm engine | quality | " + " | ".join(stages)
                  + " | other | wall (s) | CPU (s) | load before |\n|---|---|" + "---|" * len(stages)
                  + "---|---|---|---|")
            for quality in args.qualities:
                for row in run_warm(photos, quality, args.device, Path(tmp) / "warm" / quality, extra):
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    timings = row.get("timings", {})
                    cells = " | ".join(f"{timings.get(s, 0):.1f}" for s in stages)
                    other = row["wall_s"] - sum(timings.values()) if timings else 0.0  # bundle, preview, plumbing
                    print(f"| {row['photo']} | {row['quality']} | {cells} | {other:.1f} | {row['wall_s']:.1f} | "
                          f"{row['cpu_s']:.1f} | {row.get('load_before', 0):.1f} |", flush=True)


def print_table(rows: list[dict]) -> None:
    """Markdown table: seconds per stage, the rest of the wall time (process start-up, body model load, preview,
    bundle writing), the whole process's wall and CPU time (user + system, all threads), the 1-minute load average
    before the run, and its peak memory."""
    stages = ["load", "detect", "body_model", "fit", "surface", "rig", "texture"]
    print("\n| photo | quality | " + " | ".join(stages)
          + " | other | total (s) | CPU (s) | load before | peak RSS (MB) |")
    print("|---|---|" + "---|" * len(stages) + "---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['photo']} | {row['quality']} | failed: {row['error']} |")
            continue
        cells = [f"{row['timings'].get(s, 0):.1f}" for s in stages]
        other = row["wall_s"] - sum(row["timings"].values())
        print(f"| {row['photo']} | {row['quality']} | " + " | ".join(cells) + f" | {other:.1f} | {row['wall_s']:.1f} | "
              f"{row['cpu_s']:.1f} | {row['load_before']:.1f} | {row['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
