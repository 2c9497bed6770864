"""Texture stage speed: bake cached avatars, per step and per function CPU / wall time, and compare two bakes.

Three modes, run as ``python bench/texture_speed.py``:

1. ``--prepare PHOTO ... [--quality standard]``: run the pipeline up to the texture stage (load → detect → fit →
   surface → canonical avatar) and cache ``bake_texture``'s inputs as ``CACHE/<photo>_<quality>.npz`` (posed
   vertices, faces, photo, mask, camera, skin weights, rest vertices). ~20–40 s a photo.
2. default: bake each cached case (``--cases``, default every file in the cache) ``--reps`` times after one warm-up
   bake, print wall and CPU (``time.process_time``, all threads) of the whole bake and of its steps
   (``Texture.stats``), min and median, with the load average; ``--profile``: one more bake under cProfile (CPU
   clock; it sees the calling thread only, not the atlas' thread nor the texel blocks') and the functions with the
   largest cumulative time; ``--save DIR``: the last bake's atlas, UVs and vertex colours as ``DIR/<case>.npz``;
   ``--tree DIR``: bake with the ``icon_engine`` of another checkout (``git archive REV icon_engine | tar -x -C
   DIR``), to alternate old and new code in separate processes on the same inputs.
3. ``--compare DIR_A DIR_B``: for each case saved in both, the mean absolute RGB difference (0–255) of the
   atlases on the texels both cover, of the vertex colours, and of a front and a back render
   (:func:`icon_engine.texture.render_textured`); ``--sheet FILE`` writes those renders side by side (A | B).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# ``--tree DIR``: time the icon_engine package of another checkout (e.g. ``git archive OLD icon_engine | tar -x -C
# DIR``), so old and new code run in alternate processes on the same inputs
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv[:-1] else str(ROOT)
sys.path.insert(0, _TREE)
DEV = ROOT.parent / "shared" / "images" / "dev"
#: Default cache of the texture inputs (outside the repository).
CACHE = Path("/tmp/icon_texture_speed")


def prepare(photos: list[Path], quality: str, cache: Path, names: list[str] | None = None) -> None:
    """Run the pipeline on each photo until the texture stage and cache ``bake_texture``'s inputs as
    ``CACHE/<name>.npz`` (``names``, one per photo; by default ``<photo stem>_<quality>``); cached names are
    skipped."""
    from icon_engine import pipeline
    from icon_engine.options import ReconstructOptions

    class _Stop(Exception):
        pass

    cache.mkdir(parents=True, exist_ok=True)
    for k, photo in enumerate(photos):
        target = cache / f"{names[k] if names else f'{photo.stem}_{quality}'}.npz"
        if target.exists():
            continue

        def dump(avatar, image, observation, fit, options, reporter, _target=target):  # noqa: ANN001, ARG001
            cam = fit.camera
            np.savez_compressed(_target, vertices=avatar.posed_vertices, faces=avatar.faces, rgb=image.rgb,
                                mask=observation.mask, K=cam.K, R=cam.R, t=cam.t,
                                size=np.array([cam.width, cam.height]), skin_weights=avatar.rig.skin_weights,
                                rest_vertices=avatar.rig.rest_vertices, texture_size=options.resolved_texture_size,
                                atlas=options.resolved_texture_atlas, landmarks=observation.keypoints,
                                joints=fit.joints, **{f"hand_{side}": points
                                                      for side, points in (observation.hands or {}).items()},
                                **({} if observation.face is None else {"face": observation.face}))
            raise _Stop

        t0 = time.perf_counter()
        original = pipeline.bake_avatar_texture
        pipeline.bake_avatar_texture = dump
        try:
            pipeline.reconstruct(str(photo), str(cache / "bundles"), ReconstructOptions(quality=quality))
        except _Stop:
            pass
        except Exception as exc:  # noqa: BLE001 - a benchmark keeps going over the other photos
            print(f"{target.name}: failed ({exc})", flush=True)
            continue
        finally:
            pipeline.bake_avatar_texture = original
        print(f"{target.name}: {time.perf_counter() - t0:.1f} s", flush=True)


def load_case(path: Path) -> dict:
    """A cached case: the keyword arguments of ``bake_texture`` (camera rebuilt, parts from the skin weights)."""
    from icon_engine.camera import Camera
    from icon_engine.texture import parts_from_skin_weights

    d = dict(np.load(path, allow_pickle=False))
    w, h = (int(x) for x in d["size"])
    case = {"vertices": d["vertices"], "faces": d["faces"], "photo_rgb": d["rgb"], "mask": d["mask"],
            "camera": Camera(d["K"], d["R"], d["t"], w, h),
            "vertex_parts": parts_from_skin_weights(d["skin_weights"]),
            "size": int(d["texture_size"]) if "texture_size" in d else 2048}
    if "rest_vertices" in d:
        case["rest_vertices"] = d["rest_vertices"]
    if "atlas" in d:
        case["atlas"] = str(d["atlas"])
    if "landmarks" in d and "joints" in d:  # the pipeline's limb alignment (caches from wave 9 on)
        case["keypoints"] = (d["landmarks"], d["joints"])
    from icon_engine.texture import hand_labels_from_skin_weights

    case["vertex_hands"] = hand_labels_from_skin_weights(d["skin_weights"])  # the pipeline's finger rule (wave 13)
    hands = {side: d[f"hand_{side}"] for side in ("left", "right") if f"hand_{side}" in d}
    if hands:  # the photo's hands (caches from wave 25 on)
        case["photo_hands"] = hands
    if "face" in d:  # the photo's face points (caches from wave 26 on)
        case["photo_face"] = d["face"]
    return case


def bake(case: dict, reps: int, profile: bool, top: int) -> tuple[dict, object]:
    """Bake ``case`` once to warm up, then ``reps`` times: wall/CPU min and median of the whole and of each step."""
    from icon_engine.texture import bake_texture

    tex = bake_texture(**case)
    walls, cpus, steps, step_cpu = [], [], [], []
    load = [os.getloadavg()[0]]
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        tex = bake_texture(**case)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        steps.append(tex.stats["seconds"])
        step_cpu.append(tex.stats["cpu_seconds"])
        load.append(os.getloadavg()[0])

    def summary(xs: list[float]) -> list[float]:
        return [round(min(xs), 3), round(statistics.median(xs), 3)]

    out = {"faces": int(len(case["faces"])), "size": case["size"], "atlas": case.get("atlas", "auto"),
           "wall_min_median": summary(walls), "cpu_min_median": summary(cpus),
           "steps_wall_median": {k: round(statistics.median(s[k] for s in steps), 3) for k in steps[0]},
           "steps_cpu_median": {k: round(statistics.median(s[k] for s in step_cpu), 3) for k in step_cpu[0]},
           "load_average": [round(min(load), 2), round(max(load), 2)]}
    if profile:
        pr = cProfile.Profile(time.process_time)
        pr.enable()
        tex = bake_texture(**case)
        pr.disable()
        st = pstats.Stats(pr)
        rows = []
        for (file, _, name), (_, calls, tottime, cumtime, _) in st.stats.items():  # type: ignore[attr-defined]
            if "icon_engine" in file:
                rows.append((cumtime, tottime, calls, f"{Path(file).stem}.{name}"))
        rows.sort(reverse=True)
        out["profile_cpu"] = [{"function": n, "calls": c, "cumulative_s": round(cu, 3), "own_s": round(tt, 3)}
                              for cu, tt, c, n in rows[:top]]
    return out, tex


def _front_back(case: dict, tex: object) -> list[np.ndarray]:
    """Front (the photo's camera) and back (turned 180° about the mesh's vertical axis) renders, uint8."""
    from icon_engine.camera import Camera
    from icon_engine.texture import render_textured

    cam = case["camera"]
    v = np.asarray(case["vertices"], dtype=np.float64)
    centre = (v.min(axis=0) + v.max(axis=0)) / 2
    turn = np.diag([-1.0, 1.0, -1.0])  # 180° about Y through the centre
    back = (v - centre) @ turn.T + centre
    out = []
    for verts in (v, back):
        rgb, covered = render_textured(verts, case["faces"], tex.uv, tex.image, Camera(cam.K, cam.R, cam.t,
                                                                                        cam.width, cam.height))
        img = np.where(covered[..., None], rgb, 255.0)
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return out


def compare(dir_a: Path, dir_b: Path, cache: Path, sheet: Path | None) -> dict:
    """Mean |ΔRGB| of the atlases on texels both cover, of the vertex colours and of front/back renders."""
    from types import SimpleNamespace

    results, tiles = {}, []
    for pa in sorted(dir_a.glob("*.npz")):
        pb = dir_b / pa.name
        if not pb.exists():
            continue
        a, b = dict(np.load(pa)), dict(np.load(pb))
        both = a["covered"] & b["covered"]
        diff = np.abs(a["image"].astype(np.float64) - b["image"].astype(np.float64))
        r = {"atlas_mean_abs_rgb_on_covered": round(float(diff[both].mean()), 3) if both.any() else None,
             "covered_a": round(float(a["covered"].mean()), 4), "covered_b": round(float(b["covered"].mean()), 4),
             "vertex_colours_mean_abs": round(float(np.abs(a["vc"].astype(float) - b["vc"].astype(float)).mean()), 3),
             "uv_max_abs": round(float(np.abs(a["uv"] - b["uv"]).max()), 6) if a["uv"].shape == b["uv"].shape
             else None}
        case = load_case(cache / pa.name)
        ra = _front_back(case, SimpleNamespace(uv=a["uv"], image=a["image"]))
        rb = _front_back(case, SimpleNamespace(uv=b["uv"], image=b["image"]))
        r["render_mean_abs_rgb"] = [round(float(np.abs(x.astype(float) - y.astype(float)).mean()), 3)
                                    for x, y in zip(ra, rb, strict=True)]
        results[pa.stem] = r
        tiles.append(np.concatenate([ra[0], rb[0], ra[1], rb[1]], axis=1))
    if sheet is not None and tiles:
        from PIL import Image

        width = max(t.shape[1] for t in tiles)
        rows = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
        Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--prepare", nargs="*", type=Path, default=None, help="photos to run up to the texture stage")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--cases", nargs="*", default=None, help="cache file stems (default: all)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--compare", nargs=2, type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose icon_engine bakes (default: this one)")
    args = ap.parse_args()
    if args.prepare is not None:
        prepare(args.prepare or [DEV / "icon_003883.jpg"], args.quality, args.cache)
        return
    if args.compare is not None:
        print(json.dumps(compare(*args.compare, args.cache, args.sheet), indent=1))
        return
    paths = sorted(args.cache.glob("*.npz"))
    if args.cases:
        paths = [p for p in paths if p.stem in args.cases]
    results = {}
    for path in paths:
        case = load_case(path)
        results[path.stem], tex = bake(case, args.reps, args.profile, args.top)
        results[path.stem]["tree"] = str(args.tree)
        print(path.stem, json.dumps(results[path.stem]), flush=True)
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            covered = np.zeros(tex.image.shape[:2], dtype=bool)
            from icon_engine.texture import rasterize_uv

            covered = rasterize_uv(tex.uv, tex.image.shape[0])[0] >= 0
            np.savez_compressed(args.save / f"{path.stem}.npz", uv=tex.uv, image=tex.image, vc=tex.vertex_colors,
                                covered=covered)


if __name__ == "__main__":
    main()
