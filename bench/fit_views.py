"""Look at body fits from the side: contact sheets of fitted bodies (and the GT body on the rendered set).

- ``--photos P [P ...]``: each photo is detected (cached next to ``--out`` as a pickle this script writes) and
  fitted; the sheet shows the photo with the fitted body's outline, then the body's normals seen from the
  photo's camera, from the person's left and right (90° about the vertical through the pelvis) and from above.
- ``--fit-results R --shared-set DIR``: the bodies that ``bench/fidelity.py --fit-only`` saved
  (``R/subject_1XX_body_gt_frame.npy``, GT world) beside the GT body, seen from the GT camera, its left and its
  right side (ours coloured by normals, the GT's outline drawn over it).

Usage: ``python bench/fit_views.py --photos ../shared/images/dev/icon_028009.jpg --out /tmp/views``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icon_engine.camera import Camera, default_intrinsics  # noqa: E402
from icon_engine.render import normals_to_rgb, render_normals  # noqa: E402

SIZE = 384


def turntable_camera(center: np.ndarray, up: np.ndarray, front: np.ndarray, yaw_deg: float, extent: float,
                     size: int = SIZE) -> Camera:
    """Camera looking at ``center`` from ``front`` turned by ``yaw_deg`` about ``up``, framing ``extent`` metres."""
    up = up / np.linalg.norm(up)
    f = front - (front @ up) * up
    f /= np.linalg.norm(f)
    yaw = math.radians(yaw_deg)
    side = np.cross(up, f)
    d = math.cos(yaw) * f + math.sin(yaw) * side
    distance = 4.0
    eye = center + distance * d
    z = -d
    x = np.cross(-up, z)  # OpenCV: x right, y down (x = y × z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = default_intrinsics(size, size, 32.0)
    K[0, 0] = K[1, 1] = size * distance / (1.15 * extent)
    return Camera(K, R, -R @ eye, size, size)


def view(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(normal colours (H, W, 3) uint8, mask) of a mesh seen by ``camera``."""
    n, m = render_normals(camera.to_camera(vertices), faces, camera.K, camera.width, camera.height)
    return normals_to_rgb(n, m), m


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def sheet(tiles: list[np.ndarray]) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    out = []
    for t in tiles:
        pad = np.full((h, t.shape[1], 3), 128, np.uint8)
        pad[: t.shape[0]] = t
        out.append(pad)
    return np.concatenate(out, axis=1)


def photo_sheet(photo_path: Path, out: Path, model, suffix: str = "") -> None:
    from PIL import Image

    from bench.fidelity import cached_detection
    from icon_engine.fit import fit_body
    from icon_engine.image_io import load_photo

    photo = load_photo(photo_path)
    fit = fit_body(cached_detection(photo, out / f"{photo_path.stem}.obs.pkl"), model, photo)
    V, F = np.asarray(fit.vertices), np.asarray(fit.faces)
    cam = fit.camera
    img = np.asarray(photo.rgb).copy()
    _, m = view(V, F, cam)
    img[outline(m)] = (255, 0, 0)
    scale = SIZE / img.shape[0]
    img = np.asarray(Image.fromarray(img).resize((int(img.shape[1] * scale), SIZE)))
    center = 0.5 * (V.min(0) + V.max(0))
    extent = float((V.max(0) - V.min(0)).max())
    front = -(cam.R.T @ np.array([0.0, 0.0, 1.0]))  # towards the camera
    up = np.array([0.0, 1.0, 0.0])
    tiles = [img] + [view(V, F, turntable_camera(center, up, front, yaw, extent))[0] for yaw in (0, 90, -90)]
    top = turntable_camera(center, front, -up, 0, extent)  # from above, the photo's camera at the bottom
    tiles.append(view(V, F, top)[0])
    Image.fromarray(sheet(tiles)).save(out / f"{photo_path.stem}_fit{suffix}.png")
    print(photo_path.name, fit.metrics["keypoint_error_px"], fit.metrics["silhouette_iou"], fit.metrics.get("standing"))


def shared_sheet(results: Path, bench: Path, out: Path, model) -> None:
    import json

    from PIL import Image

    sys.path.insert(0, str(bench.parent))
    from common import read_ply

    faces = np.asarray(model.faces, dtype=np.int64)
    for npy in sorted(results.glob("subject_*_body_gt_frame.npy")):
        name = npy.name[: len("subject_1XX")]
        gv, gf = read_ply(str(bench / name / "gt_body.ply"))
        cam = json.loads((bench / name / "camera.json").read_text())
        Rg, tg = np.asarray(cam["R"]), np.asarray(cam["t"])
        ours = np.load(npy)
        F = faces[np.all(faces < len(ours), axis=1)]
        center = 0.5 * (gv.min(0) + gv.max(0))
        extent = float((gv.max(0) - gv.min(0)).max())
        eye = -Rg.T @ tg
        front = eye - center
        tiles = []
        for yaw in (0, 90, -90):
            c = turntable_camera(center, np.array([0.0, 1.0, 0.0]), front, yaw, extent)
            rgb, _ = view(ours, F, c)
            _, gm = view(gv, gf, c)
            rgb[outline(gm)] = (255, 255, 0)
            tiles.append(rgb)
        Image.fromarray(sheet(tiles)).save(out / f"{name}_vs_gt.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, nargs="*", default=[])
    ap.add_argument("--fit-results", type=Path)
    ap.add_argument("--shared-set", type=Path, default=Path("../shared/bench/synthetic-dev"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="override fit constants of icon_engine.fit.core for an A/B look (e.g. W_OCCLUSION=0)")
    ap.add_argument("--suffix", default="", help="appended to the sheets' file names")
    args = ap.parse_args(argv)
    from bench.lib.constants import set_constants

    for line in set_constants(args.set, ("fit.core",)):
        print(f"set {line}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    from icon_engine.body_model import load_body_model

    model = load_body_model()
    for p in args.photos:
        photo_sheet(p, args.out, model, args.suffix)
    if args.fit_results:
        shared_sheet(args.fit_results, args.shared_set, args.out, model)


if __name__ == "__main__":
    main()
