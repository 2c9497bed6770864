"""Benchmark of the software renderer (icon_engine.render), the preview and the sample photo.

Times (median of ``--repeat`` warm runs) of: the hard rasterizer for icospheres of 20k / 80k faces at 512² and
1024², the ICON normal-map pair, vertex visibility, the soft silhouette (forward + backward) at 256² and 512²,
``make_preview`` and, with ``--sample``, the sample photo (needs the open body).

Run: ``.venv/bin/python bench/render.py [--sample] [--write]`` (prints Markdown; ``--write`` also writes
docs/benchmarks/render.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from timing import timed  # bench/timing.py (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from icon_engine import preview, render  # noqa: E402
from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics  # noqa: E402


def sphere(sub: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=sub, radius=0.5)
    return np.asarray(s.vertices) + [0.0, 0.0, z], np.asarray(s.faces)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sample", action="store_true", help="also time the sample photo (builds the open body)")
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks/render.md")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, tuple[float, float]]] = []

    for sub, size, z in ((5, 512, 2.2), (5, 1024, 2.2), (6, 512, 2.2), (6, 1024, 2.2)):
        v, f = sphere(sub, z)
        K = default_intrinsics(size, size)
        cover = render.render_mask(v, f, K, size, size).mean()
        t = timed(lambda v=v, f=f, K=K, size=size: render.rasterize(v, f, K, size, size), args.repeat)
        rows.append((f"rasterize, sphere {len(f) // 1000}k faces", f"{size}² ({cover:.0%} covered)", t))

    v, f = sphere(5, 2.2)
    K = default_intrinsics(512, 512)
    rows.append(("render_normal_pair (front + back)", "512², 20k faces",
                 timed(lambda: render.render_normal_pair(v, f, K, 512, 512), args.repeat)))
    rows.append(("render_shaded", "512², 20k faces",
                 timed(lambda: render.render_shaded(v, f, K, 512, 512), args.repeat)))
    rows.append(("vertex_visibility", "512², 20k faces",
                 timed(lambda: render.vertex_visibility(v, f, K, 512, 512), args.repeat)))

    for size in (256, 512):
        Ks = default_intrinsics(size, size)
        vt = torch.tensor(v, dtype=torch.float32, requires_grad=True)

        def soft(vt=vt, Ks=Ks, size=size) -> None:
            sil = render.soft_silhouette(vt, f, Ks, size, size)
            sil.sum().backward()

        rows.append(("soft_silhouette forward + backward", f"{size}², 20k faces", timed(soft, args.repeat)))

    photo = np.full((1024, 768, 3), 120, dtype=np.uint8)
    box = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    pv = np.asarray(box.vertices) * [1.0, 2.0, 0.6] + [0.0, 0.9, 0.0]
    cam = Camera(default_intrinsics(768, 1024), FRONT_VIEW_R.copy(), np.array([0.0, 0.9, 3.5]), 768, 1024)
    rows.append(("make_preview", "768×1024 photo + side view, 20k faces",
                 timed(lambda: preview.make_preview(photo, pv, box.faces, cam), args.repeat)))

    if args.sample:
        from icon_engine import sample

        t, c = time.perf_counter(), time.process_time()
        scene = sample.build_scene()
        rows.append(("sample.build_scene (open body loaded)", "", (time.perf_counter() - t, time.process_time() - c)))
        rows.append(("sample.render_sample", f"{sample.WIDTH}×{sample.HEIGHT}",
                     timed(lambda: sample.render_sample(scene), max(1, args.repeat // 2))))

    threads_flag = f" --threads {args.threads}" if args.threads else ""
    lines = [
        "# Renderer benchmark (icon_engine.render, preview, sample)",
        "",
        f"Machine: {platform.machine()} CPU, {torch.get_num_threads()} torch threads, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}. Median of {args.repeat} warm runs. "
        f"Load average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run: with other "
        "jobs on the 2 cores, wall times are upper bounds; CPU = this process's CPU seconds (all threads).",
        f"Produced by `.venv/bin/python bench/render.py --sample --write{threads_flag}`.",
        "",
        "| operation | case | wall s | CPU s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {case} | {wall:.3f} | {cpu:.3f} |" for name, case, (wall, cpu) in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        out = ROOT / "docs" / "benchmarks" / "render.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


if __name__ == "__main__":
    main()
