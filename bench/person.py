"""Benchmark of photo input and person detection (icon_engine.image_io, icon_engine.person).

Real photos (../shared/images/dev, when present): detection rate, time of ``load_photo`` and ``detect_person``
per photo (warm models), hands found, and how well the mask's boundary sits on image edges (mean image
gradient on the boundary pixels, for our refined mask and for BlazePose's mask thresholded at 0.5).

Synthetic (``--sample``, slow: builds the open body): the built-in sample photo, whose true silhouette and
joints are known: mask IoU (refined and plain threshold) and 2D error of the limb landmarks against the
projected SMPL-X joints (px; BlazePose's and SMPL-X's joint definitions differ by a few px).

Rotations (``--rotations``): every dev photo turned by 90°, 180° and 270°.

Run: ``.venv/bin/python bench/person.py [--rotations] [--sample]`` (prints Markdown for docs/benchmarks/person.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from icon_engine import person as P  # noqa: E402
from icon_engine.errors import EngineError  # noqa: E402
from icon_engine.image_io import IMAGE_SUFFIXES, Photo, load_photo  # noqa: E402

DEV = ROOT.parent / "shared" / "images" / "dev"


def edge_strength(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the grey image on the mask's boundary pixels."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(grad[edge].mean())


def bench_dev() -> None:
    paths = sorted(p for p in DEV.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        print("(../shared/images/dev absent: real-photo figures skipped)")
        return
    P.detect_person(load_photo(paths[0]))  # warm the models
    print("| photo | size (processing) | load s | detect s (wall) | detect s (CPU) | people | hands "
          "| edge refined / raw |")
    print("|---|---|---|---|---|---|---|---|")
    found, loads, detects, cpus, ratios = 0, [], [], [], []
    for path in paths:
        t0 = time.perf_counter()
        photo = load_photo(path)
        t1 = time.perf_counter()
        c1 = time.process_time()
        try:
            obs = P.detect_person(photo)
        except EngineError as exc:
            print(f"| {path.name[:20]} | {photo.size[0]}×{photo.size[1]} | {t1 - t0:.2f} | – | – | {exc.code} | | |")
            continue
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c1)
        found += 1
        loads.append(t1 - t0)
        detects.append(t2 - t1)
        raw = P.find_people(photo.rgb, max_people=1)[0]
        ratio = edge_strength(photo.rgb, obs.mask) / edge_strength(photo.rgb, raw.soft > 0.5)
        ratios.append(ratio)
        hands = ",".join(sorted(obs.hands)) if obs.hands else "–"
        print(f"| {path.name[:20]} | {photo.size[0]}×{photo.size[1]} | {t1 - t0:.2f} | {t2 - t1:.2f} | "
              f"{cpus[-1]:.2f} | {obs.num_people} | {hands} | {ratio:.2f} |")
    print()
    print(f"Detection rate {found}/{len(paths)}; load {np.mean(loads):.2f} s, detect {np.mean(detects):.2f} s "
          f"(median {np.median(detects):.2f}, max {np.max(detects):.2f}) wall, {np.mean(cpus):.2f} s CPU per photo "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); mask edge strength "
          f"refined / BlazePose threshold: mean {np.mean(ratios):.2f} (min {np.min(ratios):.2f}).")


def bench_rotations() -> None:
    """Each dev photo turned by 90°, 180°, 270°: found? landmark error after turning back (% of person size)."""
    paths = sorted(p for p in DEV.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        return
    body = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    found, errors = 0, []
    for path in paths:
        photo = load_photo(path)
        upright = P.detect_person(photo, hands=False)
        h, w = photo.rgb.shape[:2]
        size = max(upright.bbox[2] - upright.bbox[0], upright.bbox[3] - upright.bbox[1])
        for k in (1, 2, 3):
            turned = np.ascontiguousarray(np.rot90(photo.rgb, k))
            try:
                obs = P.detect_person(Photo(turned, None, (turned.shape[1], turned.shape[0]), 1.0, path, b""),
                                      hands=False)
            except EngineError:
                continue
            found += 1
            back = P._unrotate(P._Raw(obs.keypoints, obs.world_landmarks, obs.mask.astype(np.float32)), k, w, h)
            errors.append(float(np.median(np.linalg.norm(back.keypoints[body, :2] - upright.keypoints[body, :2],
                                                         axis=1)) / size))
    print(f"Turned photos: found {found}/{3 * len(paths)}; body landmarks after turning back vs upright: median "
          f"{100 * np.median(errors):.1f} %, max {100 * np.max(errors):.1f} % of the person's size.")


def bench_sample() -> None:
    from icon_engine import render, sample
    from icon_engine.bundle.skeleton import JOINT_NAMES

    scene = sample.build_scene()
    img = sample.render_sample(scene)
    cam = scene.camera
    drawn_vertices, drawn_faces = scene.mesh()  # body, shoes and hair: everything the photo shows
    truth = render.rasterize(cam.to_camera(drawn_vertices), drawn_faces, cam.K, cam.width, cam.height).mask
    photo = Photo(img, None, (img.shape[1], img.shape[0]), 1.0, Path("sample.png"), b"")
    t0 = time.perf_counter()
    obs = P.detect_person(photo)
    took = time.perf_counter() - t0
    raw = P.find_people(img, max_people=1)[0]

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())

    pairs = ["shoulder", "elbow", "wrist", "knee", "ankle"]
    bp = {n: i for i, n in enumerate(P.LANDMARK_NAMES)}
    errs = []
    for part in pairs:
        for side in ("left", "right"):
            uv, _ = cam.project(scene.joints[[JOINT_NAMES.index(f"{side}_{part}")]])
            errs.append(float(np.linalg.norm(obs.keypoints[bp[f"{side}_{part}"], :2] - uv[0])))
    print(f"Sample photo ({img.shape[1]}×{img.shape[0]}): mask IoU refined {iou(obs.mask, truth):.3f}, "
          f"BlazePose threshold {iou(raw.soft > 0.5, truth):.3f}; limb landmarks vs SMPL-X joints "
          f"{np.mean(errs):.1f} px mean, {np.max(errs):.1f} px max; detect {took:.2f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="also measure on the synthetic sample photo")
    parser.add_argument("--rotations", action="store_true", help="also detect on the dev photos turned 90/180/270°")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} cores available\n")
    bench_dev()
    if args.rotations:
        print()
        bench_rotations()
    if args.sample:
        print()
        bench_sample()
    P.close_models()


if __name__ == "__main__":
    main()
