"""Benchmark of the body models: open-body build (cold and cached), load, forward pass (batch 1 and 64), memory.

Usage: ``.venv/bin/python bench/body.py [--cold-anny] [--smplx-model FILE]``. Prints one figure per line
(and a JSON object at the end). The open-body build runs in a temporary cache folder so the user's cache is
untouched; ``--cold-anny`` also empties anny's own model cache (the very first build on a new machine).
Results go in docs/benchmarks/body.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from timing import timed  # bench/timing.py (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_forward(body, batch: int, repeat: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    args = dict(
        betas=torch.randn(batch, body.num_betas, generator=gen),
        global_orient=0.3 * torch.randn(batch, 3, generator=gen),
        body_pose=0.3 * torch.randn(batch, 63, generator=gen),
        left_hand_pose=0.2 * torch.randn(batch, 45, generator=gen),
        right_hand_pose=0.2 * torch.randn(batch, 45, generator=gen),
        transl=torch.randn(batch, 3, generator=gen),
    )
    with torch.no_grad():
        fwd, fwd_cpu = timed(lambda: body(**args), repeat)
    pose = args["body_pose"].clone().requires_grad_(True)

    def fwd_bwd() -> None:
        out = body(**{**args, "body_pose": pose})
        out.vertices.square().mean().backward()

    both, both_cpu = timed(fwd_bwd, repeat)
    return {
        "forward_ms": round(fwd * 1000, 1),
        "forward_cpu_ms": round(fwd_cpu * 1000, 1),
        "forward_backward_ms": round(both * 1000, 1),
        "forward_backward_cpu_ms": round(both_cpu * 1000, 1),
    }


def write_standin(path: Path) -> Path:
    """A random, well-formed file in the official SMPL-X layout with non-zero pose correctives (timing only)."""
    import numpy as np

    from icon_engine.bundle.skeleton import PARENTS

    rng = np.random.default_rng(0)
    n_v, n_f = 10475, 20908
    w = rng.uniform(size=(n_v, 55)) ** 8
    reg = rng.uniform(size=(55, n_v)) * (rng.uniform(size=(55, n_v)) < 0.01)
    np.savez(
        path,
        v_template=rng.uniform(-0.5, 0.5, (n_v, 3)), f=rng.integers(0, n_v, (n_f, 3)),
        shapedirs=rng.normal(0, 0.01, (n_v, 3, 400)).astype(np.float32),
        posedirs=rng.normal(0, 0.001, (n_v, 3, 486)).astype(np.float32),
        J_regressor=reg / reg.sum(1, keepdims=True), weights=w / w.sum(1, keepdims=True),
        kintree_table=np.array([[4294967295 if p < 0 else p for p in PARENTS], list(range(55))], np.int64),
        hands_meanl=np.zeros(45), hands_meanr=np.zeros(45), hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45), lmk_faces_idx=np.zeros(51, np.int64), lmk_bary_coords=np.full((51, 3), 1 / 3),
    )  # fmt: skip
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold-anny", action="store_true", help="also empty anny's model cache for the cold build")
    parser.add_argument("--smplx-model", type=Path, help="also time an official SMPL-X file")
    parser.add_argument("--standin", action="store_true",
                        help="also time a random stand-in in the official layout (10,475 vertices, pose correctives)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--use-cache", action="store_true", help="skip the build: time the user's cached open body")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
    }
    from icon_engine.body_model import load_body_model, open_body_path
    from icon_engine.body_model.open_body import build_open_body, content_hash, open_body_info

    with tempfile.TemporaryDirectory() as tmp:
        user_cache = os.environ.get("ICON_ENGINE_CACHE")
        if not args.use_cache:
            os.environ["ICON_ENGINE_CACHE"] = tmp
        if args.cold_anny:
            import anny.paths

            anny.paths.set_anny_cache_path(Path(tmp) / "anny")
        try:
            t = time.perf_counter()
            build_open_body()
            results["build_open_cold_s"] = round(time.perf_counter() - t, 1)
            results["anny_cache"] = "cold" if args.cold_anny else "warm (anny's model data already cached)"
            t = time.perf_counter()
            build_open_body()
            results["build_open_cached_s"] = round(time.perf_counter() - t, 4)
            info = open_body_info() or {}
            results["open_body_file_mb"] = round(open_body_path().stat().st_size / 2**20, 1)
            results["open_body_stats"] = {k: info.get(k) for k in (
                "num_vertices", "num_faces", "explained_variance", "joint_rms_mm_mean", "joint_rms_mm_max",
                "build_seconds", "content_hash")}  # fmt: skip
            import numpy as np

            with np.load(open_body_path(), allow_pickle=False) as data:
                results["deterministic"] = content_hash({k: data[k] for k in data.files}) == info.get("content_hash")
            rss_before = rss_mb()
            t = time.perf_counter()
            body = load_body_model()
            results["load_open_s"] = round(time.perf_counter() - t, 2)
            results["model_buffers_mb"] = round(sum(b.numel() * b.element_size() for b in body.buffers()) / 2**20, 1)
            for batch in (1, 64):
                results[f"open_batch{batch}"] = bench_forward(body, batch, args.repeat if batch == 1 else 3)
            results["peak_rss_mb"] = round(max(rss_mb(), rss_before), 0)
        finally:
            if user_cache is None:
                os.environ.pop("ICON_ENGINE_CACHE", None)
            else:
                os.environ["ICON_ENGINE_CACHE"] = user_cache
    if args.standin and not args.smplx_model:
        args.smplx_model = write_standin(Path(tempfile.mkdtemp()) / "SMPLX_NEUTRAL.npz")
    if args.smplx_model:
        t = time.perf_counter()
        official = load_body_model(args.smplx_model)
        results["load_smplx_s"] = round(time.perf_counter() - t, 2)
        for batch in (1, 64):
            results[f"smplx_batch{batch}"] = bench_forward(official, batch, args.repeat if batch == 1 else 3)
    for key, value in results.items():
        print(f"{key}: {value}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
