"""Benchmark of the add-on's Blender side (bpy, headless): bundle import, motion keys, FBX / glTF / USD / BVH export.

``.venv/bin/python bench/addon_import.py [--faces 80000 200000] [--frames 1000] [--bundle DIR]``. A synthetic bundle
per size (random skinned mesh over the 55 joints, 4 float32 weights per vertex — the slow case for vertex groups)
is written with the engine's bundle writer into a temporary folder; ``--bundle`` adds a real result bundle. Prints
one line per measurement: wall seconds and, in brackets, process CPU seconds (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icon_engine.bundle import PARENTS, BundleContent, TriMesh, skin_vertices, write_bundle  # noqa: E402
from icon_engine.camera import default_intrinsics  # noqa: E402


def synthetic_bundle(target: Path, faces: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n_v = faces // 2
    joints = np.zeros((55, 3))
    for j in range(1, 55):
        joints[j] = joints[PARENTS[j]] + rng.normal(scale=0.1, size=3)
    joints[:, 1] += 1.0
    owner = rng.integers(0, 55, n_v)
    verts = joints[owner] + rng.normal(scale=0.05, size=(n_v, 3))
    f = np.stack([np.arange(faces) % n_v, (np.arange(faces) + 1) % n_v, (np.arange(faces) + 7) % n_v], 1)
    w = np.zeros((n_v, 55), dtype=np.float32)
    for k in range(4):
        w[np.arange(n_v), (owner + k * 3) % 55] += rng.random(n_v).astype(np.float32)
    w /= w.sum(1, keepdims=True)
    pose = rng.normal(scale=0.2, size=(55, 3))
    posed = skin_vertices(verts, w, joints, np.array(PARENTS), pose)
    uv = rng.random((faces, 3, 2))
    K = default_intrinsics(1024, 1536)
    meta = {"photo": {"size": [1024, 1536]}, "camera": {"K": K, "R": np.diag([1.0, -1, -1]), "t": [0, 1, 4]},
            "body": {"full_pose": pose, "transl": np.zeros(3)}}
    content = BundleContent(meta, TriMesh(posed, f, None, uv), TriMesh(posed, f), TriMesh(verts, f, None, uv), w,
                            joints, np.zeros((1536, 1024), bool),
                            texture=rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8))
    return write_bundle(target, content)


def clock(fn) -> tuple[object, str]:
    """``fn()``'s result and its wall and process CPU seconds as text."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, f"{time.perf_counter() - t:6.2f} s ({time.process_time() - c:5.2f} CPU)"


def measure(label: str, path: Path, motion: Path, tmp: Path, frames: int) -> None:
    """Import one bundle, apply the motion, export it every way; print one line of timings."""
    import bpy

    from icon_blender.blender import importer
    from icon_blender.blender.export import export_fbx, export_gltf, export_usd
    from icon_blender.blender.motion import apply_motion, export_bvh

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    res, took = clock(lambda: importer.import_bundle(path))
    times = {"import": took}
    arm = res.armature
    times["motion"] = clock(lambda: apply_motion(arm, motion))[1]
    times["FBX unity"] = clock(lambda: export_fbx(arm, tmp / "out.fbx", "unity"))[1]
    times["glTF godot"] = clock(lambda: export_gltf(arm, tmp / "out.glb", "godot"))[1]
    times["USD"] = clock(lambda: export_usd(arm, tmp / "out.usdc"))[1]
    times["BVH export"] = clock(lambda: export_bvh(arm, tmp / "out.bvh"))[1]
    times["BVH apply"] = clock(lambda: apply_motion(arm, tmp / "out.bvh"))[1]
    print(f"{label} vertices {len(res.mesh.data.vertices):>7}, {frames} frames: "
          + " | ".join(f"{k} {v}" for k, v in times.items()), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, nargs="+", default=[80_000, 200_000])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--bundle", type=Path, help="also measure this real result bundle")
    args = parser.parse_args()
    import bpy

    print(f"bpy {bpy.app.version_string}, Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        motion = tmp / "motion.npz"
        rng = np.random.default_rng(1)
        np.savez(motion, poses=rng.normal(scale=0.2, size=(args.frames, 165)), trans=np.zeros((args.frames, 3)),
                 fps=30.0)
        bundles = [(f"faces {faces:>7}", synthetic_bundle(tmp / f"b{faces}", faces)) for faces in args.faces]
        if args.bundle is not None:
            bundles.append((f"real {args.bundle.name}", args.bundle))
        for label, path in bundles:
            measure(label, path, motion, tmp, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
