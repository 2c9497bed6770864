"""Throughput of the mesh queries per device: the numpy/k-d tree ``MeshQuery`` and the torch ``TorchMeshQuery``
(CPU here; CUDA when present) on the open body, for points near the surface (±2 cm) and anywhere in its box.

Reports points per second of wall time and of CPU time (``time.process_time``: the machine is shared), the first
round's exact fraction of the torch query, its build time and its agreement with the numpy query. Usage:
``python bench/device_query.py [--points 20000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.lib.fit_cases import named_pose, pose_body  # noqa: E402
from icon_engine.body_model import load_body_model  # noqa: E402
from icon_engine.geometry import torch_closest as tc  # noqa: E402
from icon_engine.geometry.closest import MeshQuery  # noqa: E402
from icon_engine.geometry.raster import one_torch_thread  # noqa: E402
from icon_engine.geometry.torch_closest import TorchMeshQuery  # noqa: E402


def _time(fn: Any, pts: np.ndarray, device: str = "cpu") -> tuple[Any, float, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(pts)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(points: int = 20_000) -> dict[str, Any]:
    """The figures (one dict per query and point set) on a shaped, walking open body."""
    body = load_body_model()
    betas = np.random.default_rng(2).normal(0.0, 0.7, 10)
    v = pose_body(body, named_pose("walking"), betas)[0].vertices[0].numpy().astype(np.float64)
    f = np.asarray(body.faces, np.int64)
    rng = np.random.default_rng(0)
    sets = {"near": v[f[rng.integers(0, len(f), points)]].mean(1) + rng.normal(0, 0.02, (points, 3)),
            "box": rng.uniform(v.min(0) - 0.2, v.max(0) + 0.2, (points, 3))}
    t0 = time.perf_counter()
    queries: dict[str, Any] = {"numpy_k1_float32": MeshQuery(v, f, k=1, dtype=np.float32),
                               "numpy_k2_float64": MeshQuery(v, f, k=2)}
    torch_cpu = TorchMeshQuery(v, f)
    build = {"torch_cpu_build_s": time.perf_counter() - t0}
    queries["torch_cpu_float32"] = torch_cpu
    if torch.cuda.is_available():
        t0 = time.perf_counter()
        queries["torch_cuda_float32"] = TorchMeshQuery(v, f, device="cuda")
        torch.cuda.synchronize()
        build["torch_cuda_build_s"] = time.perf_counter() - t0
    rows = []
    for label, pts in sets.items():
        ref = None
        for name, q in queries.items():
            dev = "cuda" if "cuda" in name else "cpu"
            if dev == "cuda":
                q.query(pts[:1000])  # warm-up: kernels, allocator
            out, wall, cpu = _time(q.query, pts, dev)
            row = {"query": name, "points": label, "n": len(pts), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                   "pts_per_wall_s": round(len(pts) / wall), "pts_per_cpu_s": round(len(pts) / max(cpu, 1e-9))}
            if name == "numpy_k2_float64":
                ref = out
            elif ref is not None and name.startswith("torch"):
                row["closer_than_numpy_k2_mm_max"] = round(float((np.abs(ref.distance) - np.abs(out.distance)).max())
                                                           * 1000, 3)
                row["agree_1e-5_fraction"] = round(float((np.abs(ref.distance - out.distance) < 1e-5).mean()), 4)
                row["sign_agree_fraction"] = round(float((np.sign(ref.distance) == np.sign(out.distance)).mean()), 4)
                same = np.abs(ref.distance - out.distance) < 1e-5  # same closest point: the sign must agree too
                row["sign_agree_where_same_distance"] = round(float((np.sign(ref.distance[same])
                                                                     == np.sign(out.distance[same])).mean()), 5)
            rows.append(row)
        p = torch.as_tensor(pts - torch_cpu.origin, dtype=torch.float32)
        with one_torch_thread("cpu"):
            exact = torch_cpu._search_all(p, min(tc.FIRST_GROUPS, torch_cpu.n_groups), tc.FIRST_BLOCKS)[4]
        build[f"first_round_exact_{label}"] = round(float(exact.float().mean()), 3)
    return {"vertices": len(v), "faces": len(f), "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg(), "cuda": torch.cuda.is_available(), **build, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = measure(args.points)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
