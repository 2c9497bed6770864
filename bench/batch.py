"""Batch throughput: sequential CLI vs local batch vs Ray local, photos per minute, plus a scaling model.

The 12 development photos (../shared/images/dev) are reconstructed three ways, each into a fresh folder:

- ``sequential``: one ``python -m icon_engine reconstruct PHOTO`` per photo, one after another (how a user ran
  a batch before issue 18: every command pays Python start-up, imports and model loading);
- ``local``: ``python -m icon_engine batch DIR`` with the default workers (cores / 1 thread);
- ``ray``: the same with ``--ray local`` (a private Ray started by the command: its start-up is included).

Reported per mode: wall time, photos per minute, the CPU seconds of the whole mode (children's ``getrusage``;
for Ray the workers are not our children, so the per-photo CPU from the manifest is given instead) and the
load average. The machine is shared: wall figures move with the load; CPU figures are the steadier ones.
The node-scaling sketch models N nodes from the measured per-photo costs (see :func:`model_nodes`).

    .venv/bin/python bench/batch.py [--quality preview] [--photos 12] [--modes sequential local ray] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images" / "dev"
sys.path.insert(0, str(ROOT))

from icon_engine.batch import read_manifest  # noqa: E402
from icon_engine.image_io import IMAGE_SUFFIXES  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _engine(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icon_engine", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)


def _measure(name: str, run, photos: int) -> dict:
    load0 = os.getloadavg()
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    extra = run()
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
    return {"mode": name, "photos": photos, "wall_s": round(wall, 1), "photos_per_min": round(60 * photos / wall, 2),
            "children_cpu_s": round(cpu, 1), "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()], **extra}


def _manifest_costs(out: Path) -> dict:
    records = list(read_manifest(out / "batch.jsonl").values())
    done = [r for r in records if r["status"] == "done"]
    sizes = [sum(f.stat().st_size for f in Path(r["bundle"]).iterdir()) for r in done]
    return {"done": len(done), "failed": len(records) - len(done),
            "bundle_mb": round(sum(sizes) / max(1, len(sizes)) / 2**20, 2),
            "photo_cpu_s": round(sum(r["cpu_seconds"] or 0 for r in records), 1),
            "photo_wall_s": round(sum(r["seconds"] for r in records), 1)}


def run_modes(photos: list[Path], quality: str, modes: list[str], work: Path) -> list[dict]:
    folder = work / "photos"
    folder.mkdir()
    for photo in photos:  # symlinks: the batch reads the shared files, names stay the same
        (folder / photo.name).symlink_to(photo)
    opts = ["--quality", quality, "--progress", "none"]
    results = []
    for mode in modes:
        out = work / mode
        if mode == "sequential":
            def run(out: Path = out) -> dict:
                failed = sum(_engine(["reconstruct", str(p), "--out", str(out), *opts]).returncode != 0
                             for p in photos)
                return {"done": len(photos) - failed, "failed": failed}
        else:
            def run(out: Path = out, mode: str = mode) -> dict:
                extra = ["--ray", "local"] if mode == "ray" else []
                proc = _engine(["batch", str(folder), "--out", str(out), *opts, *extra])
                if proc.returncode not in (0, 7):
                    raise SystemExit(f"{mode} batch failed ({proc.returncode}): {proc.stderr[-2000:]}")
                return _manifest_costs(out)
        result = _measure(mode, run, len(photos))
        print(json.dumps(result), flush=True)
        results.append(result)
        shutil.rmtree(out, ignore_errors=True)
    return results


def model_nodes(photo_cpu_s: float, worker_start_s: float, driver_s_per_photo: float, bundle_mb: float,
                photos: int, nodes: list[int], cores_per_node: int, fs_mb_per_s: float) -> list[dict]:
    """Photos per minute for ``photos`` photos on N nodes of ``cores_per_node`` single-thread workers.

    Time = worker start (model loading, paid once per worker, in parallel) + the photos' waves
    (ceil(photos / workers) × photo_cpu_s), bounded below by the driver's per-photo bookkeeping
    (``driver_s_per_photo`` × photos, manifest fsync and Ray scheduling, serial) and by the shared file system
    (``bundle_mb`` × photos / ``fs_mb_per_s``).
    """
    rows = []
    for n in nodes:
        workers = n * cores_per_node
        compute = worker_start_s + math.ceil(photos / workers) * photo_cpu_s
        seconds = max(compute, driver_s_per_photo * photos, bundle_mb * photos / fs_mb_per_s)
        rows.append({"nodes": n, "workers": workers, "minutes": round(seconds / 60, 1),
                     "photos_per_min": round(60 * photos / seconds, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", default="preview")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--modes", nargs="+", default=["sequential", "local", "ray"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    photos = sorted(p for p in SHARED.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.photos]
    if not photos:
        raise SystemExit(f"no photos in {SHARED}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(photos)} photos, quality {args.quality}", flush=True)
    with tempfile.TemporaryDirectory(prefix="icon-bench-batch-") as tmp:
        results = run_modes(photos, args.quality, args.modes, Path(tmp))
    by_mode = {r["mode"]: r for r in results}
    summary: dict = {"results": results}
    if "sequential" in by_mode and "local" in by_mode:
        summary["local_vs_sequential"] = round(by_mode["local"]["photos_per_min"]
                                               / by_mode["sequential"]["photos_per_min"], 2)
    if "ray" in by_mode and "local" in by_mode:
        summary["ray_vs_local"] = round(by_mode["ray"]["photos_per_min"] / by_mode["local"]["photos_per_min"], 2)
    if "sequential" in by_mode and "local" in by_mode and by_mode["local"].get("done"):
        seq, loc = by_mode["sequential"], by_mode["local"]
        photo_cpu = loc["photo_cpu_s"] / len(photos)  # one photo in a warm worker, 1 thread
        start_cpu = max(0.0, (seq["children_cpu_s"] - loc["photo_cpu_s"]) / len(photos))  # start-up + model load
        summary["per_photo"] = {"warm_cpu_s": round(photo_cpu, 2), "process_start_cpu_s": round(start_cpu, 2),
                                "bundle_mb": loc["bundle_mb"]}
        summary["model_1000_photos_16_cores_per_node"] = model_nodes(
            photo_cpu, start_cpu, 0.01, loc["bundle_mb"], 1000, [1, 2, 4, 8, 16, 32, 64], 16, 500.0)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
