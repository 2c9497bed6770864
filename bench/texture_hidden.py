"""Where does the photo colour a surface it does not show? Diagnosis sheets of the one-photo bake.

For each cached case (``bench/texture_speed.py --prepare``: ``bake_texture``'s inputs), bakes the texture (with
``debug=True``: the bake's own visibility step, :class:`icon_engine.texture.BakeDebug`) and writes one sheet (PNG) of
four panels:

1. the photo with each pixel tinted by the body part whose surface is the nearest one there (z-buffer of the posed
   mesh in the photo's camera; :data:`PART_TINT`);
2. the photo with the vertices that pass the visibility test (photo weight > ``SEEN_ALPHA``) drawn at the pixel
   they read (limb alignment included) in their own part's tint, black where the bake's keep rules drop them: a
   torso dot inside a leg's region is a vertex that passes the visibility test but whose pixel the photo fills
   with another part;
3. the rest pose, front, coloured by how each vertex got its colour: its part's tint where it is seen, white where
   its pixel shows another part, black where the keep rules dropped it, grey where it is filled (unseen);
4. the rest pose, front, with the baked vertex colours (what the contact sheet shows).

Prints, per part, the fraction of vertices seen, and how many seen vertices are *depth-tied*: their pixel's
nearest surface belongs to another part (or a far part of their own) lying within a few centimetres of them in
depth (``--tie`` metres). Run:
``python bench/texture_hidden.py --cache /tmp/tex/cache --out /tmp/tex/hidden [--cases STEM ...]``
(``--tree DIR``: bake with another checkout's ``icon_engine``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv[:-1] else str(ROOT)
sys.path.insert(0, _TREE)
sys.path.insert(1, str(ROOT))

#: RGB tint (0–255) per body part (icon_engine.texture.PART_NAMES order).
PART_TINT = np.array([[60, 200, 60], [230, 60, 60], [60, 60, 230], [230, 200, 40], [200, 60, 220], [40, 200, 220]],
                     dtype=np.float64)


def _front(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, width: int, height: int) -> np.ndarray:
    from bench.avatar import render_front

    return render_front(vertices, faces, colours.astype(np.float64) / 255.0, width, height)


def diagnose(case: dict, tie: float) -> tuple[dict, np.ndarray]:
    """(figures, sheet (H, W, 3) uint8) of one cached case."""
    from icon_engine.texture import SEEN_ALPHA, bake_texture

    tex = bake_texture(**case, debug=True)
    dbg = tex.debug
    v = np.asarray(case["vertices"], dtype=np.float64)
    f = np.asarray(case["faces"], dtype=np.int64)
    parts = case["vertex_parts"]
    cam = case["camera"]
    photo = case["photo_rgb"].astype(np.float64)
    seen = dbg.photo_weight > SEEN_ALPHA  # before the keep rules
    dropped = seen & ~dbg.kept
    xy = dbg.pixel_xy
    h, w = cam.height, cam.width
    front = dbg.front_face
    shown = np.where(front >= 0, parts[dbg.faces_out[np.maximum(front, 0), 0]], -1)
    # panel 1: parts of the nearest surface
    tint = np.where((shown >= 0)[:, None], PART_TINT[np.maximum(shown, 0)], photo.reshape(-1, 3))
    p1 = (0.55 * photo.reshape(-1, 3) + 0.45 * tint).reshape(h, w, 3)
    # panel 2: seen vertices at their pixel, in their own part's tint (black: dropped by the keep rules)
    p2 = 0.5 * photo.copy() + 64
    col = np.clip(np.floor(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.floor(xy[:, 1]).astype(int), 0, h - 1)
    p2[row[seen], col[seen]] = PART_TINT[parts[seen]]
    p2[row[dropped], col[dropped]] = 0.0
    # depth ties: seen vertex whose pixel's nearest surface is another part
    pix = row * w + col
    other = seen & (shown[pix] >= 0) & (shown[pix] != parts)
    z = cam.to_camera(v)[:, 2]
    tied = other & (z - dbg.zbuf[pix] < tie)
    figures = {"vertices": int(len(v)), "seen_fraction": round(float(seen.mean()), 4),
               "dropped_by_keep_rules": int(dropped.sum()),
               "seen_over_other_part": int(other.sum()), "seen_over_other_part_within_tie": int(tied.sum())}
    for p in np.unique(parts):
        sel = parts == p
        figures[f"part{p}_seen_over_other"] = int((other & sel).sum())
    rest = case.get("rest_vertices", v)
    ph, pw = 600, 420
    cat = np.where(seen[:, None], PART_TINT[parts], 150.0)
    cat[other] = (255, 255, 255)  # seen although the pixel shows another part
    cat[dropped] = (0, 0, 0)  # seen, dropped by the keep rules (the fill colours it)
    p3 = _front(rest, f, cat, pw, ph)
    p4 = _front(rest, f, tex.vertex_colors, pw, ph)
    from PIL import Image

    def fit(img: np.ndarray) -> np.ndarray:
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        im.thumbnail((pw, ph))
        out = np.full((ph, pw, 3), 238, dtype=np.uint8)
        a = np.asarray(im)
        out[:a.shape[0], :a.shape[1]] = a
        return out

    sheet = np.concatenate([fit(p1), fit(p2), p3, p4], axis=1)
    return figures, sheet


def main() -> None:
    from PIL import Image

    from bench.texture_speed import load_case

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--tie", type=float, default=0.05, help="metres: depth gap counted as a contact")
    ap.add_argument("--tree", type=Path, default=ROOT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.cache.glob("*.npz")):
        if args.cases and not any(path.stem.startswith(c) for c in args.cases):
            continue
        figures, sheet = diagnose(load_case(path), args.tie)
        Image.fromarray(sheet).save(args.out / f"{path.stem}.png")
        print(json.dumps({path.stem: figures}), flush=True)


if __name__ == "__main__":
    main()
