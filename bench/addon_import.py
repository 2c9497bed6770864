"""Benchmark of the add-on's Blender side (bpy, headless): bundle import, motion keys, FBX export.

``.venv/bin/python bench/addon_import.py [--faces 80000 200000] [--frames 1000]``. A synthetic bundle per size
(random skinned mesh over the 55 joints, 4 float32 weights per vertex — the slow case for vertex groups) is written
with the engine's bundle writer into a temporary folder. Prints one line per measurement (seconds).
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, nargs="+", default=[80_000, 200_000])
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    import bpy

    from icon_blender.blender import importer
    from icon_blender.blender.export import export_fbx
    from icon_blender.blender.motion import apply_motion

    print(f"bpy {bpy.app.version_string}, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        motion = tmp / "motion.npz"
        rng = np.random.default_rng(1)
        np.savez(motion, poses=rng.normal(scale=0.2, size=(args.frames, 165)), trans=np.zeros((args.frames, 3)),
                 fps=30.0)
        for faces in args.faces:
            path = synthetic_bundle(tmp / f"b{faces}", faces)
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.context.scene.render.fps = 30
            t0 = time.perf_counter()
            res = importer.import_bundle(path)
            t1 = time.perf_counter()
            apply_motion(res.armature, motion)
            t2 = time.perf_counter()
            export_fbx(res.armature, tmp / "out.fbx", "unity")
            t3 = time.perf_counter()
            print(f"faces {faces:>7} vertices {len(res.mesh.data.vertices):>7}: import {t1 - t0:6.2f} s | "
                  f"motion {args.frames} frames x 55 bones {t2 - t1:5.2f} s | FBX export (baked) {t3 - t2:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
