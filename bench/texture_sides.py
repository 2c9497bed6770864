"""Unseen sides of the baked texture: contact sheets (front / side / back) and a back-side colour error.

Two steps, run as ``python bench/texture_sides.py``:

1. ``--prepare``: each photo (the real dev photos and the synthetic bench photos) goes through the pipeline up
   to the texture stage (load → detect → fit → clothed surface → canonical avatar) and ``bake_texture``'s inputs
   are cached as ``CACHE/<name>.npz`` (:func:`bench.texture_speed.prepare`: the avatar posed as in the photo, its
   rest pose, faces, photo, mask, camera, skin weights, landmarks and joints). ~10–20 s a photo. (Before wave 10
   the cache held the clothed surface rigged per vertex and the bakes had no rest pose nor landmarks: back-side
   errors measured before then are on that mesh.)
2. default: bake each cached subject with the texture package of the working tree and, with ``--before PATH``,
   with an older one: a folder holding an older ``icon_engine/texture`` package (``git archive REV
   icon_engine/texture | tar -x -C /tmp/before`` → ``--before /tmp/before/icon_engine/texture``) or, for code before
   the package (wave 17), the single file ``texture.py`` (``git show REV:icon_engine/texture.py > /tmp/t.py``),
   render front / side / back and measure the synthetic back-side colour error (see :func:`back_side_error`);
   with ``--before``, which parts' vertex colours changed (:func:`changed_vertices`).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEV = SHARED / "images" / "dev"
SYNTH = SHARED / "bench" / "synthetic-dev"


#: A vertex whose baked colour moves by more than this (0–255, any channel) between two bakes counts as changed.
CHANGE_THRESHOLD = 10.0


def photos() -> list[tuple[str, Path]]:
    """(name, photo path) of the 12 real dev photos and the synthetic bench photos."""
    real = sorted(p for p in DEV.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:12]
    out = [(p.stem, p) for p in real]
    if SYNTH.is_dir():
        out += [(d.name, d / "photo.png") for d in sorted(SYNTH.iterdir()) if (d / "photo.png").exists()]
    return out


def prepare(cache: Path, quality: str, only: list[str] | None) -> None:
    """Run the pipeline up to the texture stage for every photo and cache the texture's inputs
    (:func:`bench.texture_speed.prepare`: the canonical avatar posed as in the photo, its rest pose, the
    landmarks: exactly what the pipeline bakes)."""
    from bench.texture_speed import prepare as prepare_inputs

    chosen = [(name, path) for name, path in photos() if not only or name in only]
    prepare_inputs([path for _, path in chosen], quality, cache, [name for name, _ in chosen])


def load_texture_module(path: Path | None):
    """The working tree's ``icon_engine.texture`` or an older copy of it loaded beside it: a package folder (its
    ``__init__.py``) or, before the package, the single module file."""
    import icon_engine.texture as current

    if path is None:
        return current
    if path.is_dir():
        spec = importlib.util.spec_from_file_location("icon_engine._texture_before", path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location("icon_engine._texture_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def turned_views(vertices: np.ndarray, camera, height_px: int = 320) -> list[tuple[np.ndarray, object]]:
    """The mesh turned about the vertical through its centre by 0°, 90° and 180° (front, side, back), each
    with the photo camera scaled to ``height_px`` rows: [(vertices, camera)]."""
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    cam = camera.rescaled(height_px / camera.height, round(camera.width * height_px / camera.height), height_px)
    out = []
    for deg in (0.0, 90.0, 180.0):
        a = np.radians(deg)
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        out.append(((vertices - centre) @ rot.T + centre, cam))
    return out


def render_views(tex_module, case: dict, tex) -> list[np.ndarray]:
    """Front / side / back renders (H, W, 3) uint8 of the baked texture on a grey background."""
    out = []
    for verts, cam in turned_views(case["vertices"], case["camera"]):
        rgb, covered = tex_module.render_textured(verts, case["faces"], tex.uv, tex.image, cam)
        img = np.where(covered[..., None], rgb, 200.0)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _crop_columns(images: list[np.ndarray]) -> list[np.ndarray]:
    """Crop every image to the union of their non-background columns (plus a margin)."""
    fg = np.zeros(images[0].shape[1], dtype=bool)
    for im in images:
        if im.shape[1] == len(fg):
            fg |= (np.abs(im.astype(int) - 200).sum(axis=2) > 6).any(axis=0)
    cols = np.nonzero(fg)[0]
    if not len(cols):
        return images
    lo, hi = max(0, cols[0] - 8), min(len(fg), cols[-1] + 9)
    return [im[:, lo:hi] if im.shape[1] == len(fg) else im for im in images]


# ---------------------------------------------------------------------------------------------------------------
# Synthetic back-side colour error


def _srgb(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def label_appearance(subject_dir: Path) -> dict[str, np.ndarray]:
    """Colour (0–255) of each garment label as the photo shows it: every person pixel of the GT mask whose
    colour is clearly nearest to one label's albedo (meta.json, sRGB-encoded; nearest distance < 0.7 × the
    second nearest) goes to that label; the label's colour is the median of its pixels (the albedo itself where
    fewer than 200 pixels show it)."""
    from PIL import Image

    meta = json.loads((subject_dir / "meta.json").read_text())
    labels = ["skin", "top", "bottom", "shoes", "hair"]
    if meta["spec"].get("skirt"):
        labels.append("skirt")
    if "bottom" not in meta["garments"]:
        labels.remove("bottom")
    alb = {k: _srgb(meta["colours"][k]) for k in labels}
    photo = np.asarray(Image.open(subject_dir / "photo.png").convert("RGB"), dtype=np.float64)
    mask = np.asarray(Image.open(subject_dir / "mask.png").convert("L")) > 127
    px = photo[mask]
    colours = np.unique(np.stack([alb[k] for k in labels]), axis=0)  # labels sharing a colour count once
    d = np.stack([np.linalg.norm(px - c, axis=1) for c in colours], axis=1)
    lab = d.argmin(axis=1)
    if len(colours) > 1:
        two = np.sort(d, axis=1)[:, :2]
        lab[two[:, 0] >= 0.7 * two[:, 1]] = -1
    out = {}
    for k in labels:
        i = int(np.nonzero((colours == alb[k]).all(axis=1))[0][0])
        out[k] = np.median(px[lab == i], axis=0) if (lab == i).sum() >= 200 else alb[k]
    return out


def back_regions(case: dict, parts: np.ndarray, meta: dict) -> dict[str, tuple[np.ndarray, str]]:
    """Vertex sets on the reconstructed mesh facing away from the photo camera whose GT label is known from the
    subject's outfit: {region: (vertex mask, label)}. Heights are fractions of the top of the head above the
    lowest vertex: back of the head (above 0.35 of the head part's height: hair), back of the upper torso
    (0.60–0.70: the top), back of the upper thighs (0.42–0.48: trousers, shorts or skirt), the feet's hidden
    side (below 0.035: shoes), and the back of the hips: torso vertices below the legs' highest vertex (trousers,
    shorts or skirt) where the top is fitted (how far a loose top hangs over the hips is not in meta.json); and the
    skull: the head region's vertices behind the ears in the rest pose (the head region of a camera turned from the
    front holds the far cheek, which is skin); and that far cheek: the head's back-facing vertices 3 cm or more in
    front of the ears' plane below the eyes (rest pose; skin)."""
    from icon_engine.geometry.normals import outward_vertex_normals
    from icon_engine.texture import PART_HEAD, PART_LEFT_LEG, PART_RIGHT_LEG, PART_TORSO

    v, f = case["vertices"], case["faces"]
    cam = case["camera"]
    n = outward_vertex_normals(v, f)
    to_cam = cam.center[None] - v
    cos = np.einsum("ij,ij->i", n, to_cam) / np.linalg.norm(to_cam, axis=1)
    back = cos < -0.2
    floor = v[:, 1].min()
    head = parts == PART_HEAD
    top = v[head, 1].max() if head.any() else v[:, 1].max()
    rel = (v[:, 1] - floor) / (top - floor)
    hy = v[head, 1]
    legs = (parts == PART_LEFT_LEG) | (parts == PART_RIGHT_LEG)
    lower = "skirt" if meta["spec"].get("skirt") else "bottom"
    if meta["garments"]["top"].get("coat_lower_volume"):
        lower = "top"  # a coat's skirt covers the thighs
    regions = {
        "head": (back & head & (v[:, 1] >= hy.min() + 0.35 * np.ptp(hy)), "hair"),
        "torso": (back & (parts == PART_TORSO) & (rel > 0.60) & (rel < 0.70), "top"),
        "thighs": (back & legs & (rel > 0.42) & (rel < 0.48), lower),
        "shoes": (legs & (rel < 0.035) & (cos < 0.2), "shoes"),
    }
    if not meta["garments"]["top"].get("loose"):
        regions["hips"] = (back & (parts == PART_TORSO) & (v[:, 1] < v[legs, 1].max()), lower)
    rest = case.get("rest_vertices")
    if rest is not None and head.any():  # the head's region behind the ears (rest pose, the face looks along +Z):
        # a camera turned 35° from the front counts the far cheek as "back", where the truth is skin, not hair
        z = rest[head, 2]
        regions["skull"] = (regions["head"][0] & (rest[:, 2] < (z.min() + z.max()) / 2), "hair")
        # the far cheek of a camera turned from the front (wave 22): the head's hidden vertices 3 cm or more in
        # front of the ears' plane (rest pose), below the eyes' line: skin
        ry = rest[head, 1]
        regions["cheek"] = (back & head & (rest[:, 2] > (z.min() + z.max()) / 2 + 0.03)
                            & (rest[:, 1] < ry.min() + 0.55 * np.ptp(ry)), "skin")
    return regions


def behind_region(case: dict, parts: np.ndarray) -> np.ndarray:
    """The chest and belly behind a limb: torso vertices between 0.60 and 0.75 of the height (as
    :func:`back_regions`; the top's label) facing the photo camera (cos > 0.2) whose pixel shows another part's
    surface more than 3 cm nearer the camera (a forearm across the chest, a hand on the belly)."""
    from icon_engine.geometry.normals import outward_vertex_normals
    from icon_engine.mesh_queries import rasterize
    from icon_engine.texture import PART_HEAD, PART_TORSO

    v, f, cam = case["vertices"], case["faces"], case["camera"]
    n = outward_vertex_normals(v, f)
    to_cam = cam.center[None] - v
    cos = np.einsum("ij,ij->i", n, to_cam) / np.linalg.norm(to_cam, axis=1)
    floor = v[:, 1].min()
    rel = (v[:, 1] - floor) / (v[parts == PART_HEAD, 1].max() - floor)
    r = rasterize(v, f, cam)
    xy, z = cam.project(v)
    px = np.clip(np.floor(xy).astype(int), 0, [cam.width - 1, cam.height - 1])
    pix = px[:, 1] * cam.width + px[:, 0]
    face = r.face.reshape(-1)[pix]
    other = (face >= 0) & (parts[f[np.maximum(face, 0), 0]] != parts)
    nearer = r.depth.reshape(-1)[pix] < z - 0.03
    return (parts == PART_TORSO) & (rel > 0.60) & (rel < 0.75) & (cos > 0.2) & other & nearer


def back_side_error(case: dict, parts: np.ndarray, colours: np.ndarray, subject_dir: Path) -> dict:
    """Per region: mean RGB error (0–255, mean over channels) of the baked vertex colours against the photo's
    appearance of the region's GT label, and the fraction of vertices whose colour is nearest to that label
    among the subject's labels (labels of one colour count as one)."""
    meta = json.loads((subject_dir / "meta.json").read_text())
    app = label_appearance(subject_dir)
    names = list(app)
    ref = np.stack([app[k] for k in names])
    same = {k: [i for i, o in enumerate(names) if np.allclose(app[o], app[k])] for k in names}
    out = {}
    regions = back_regions(case, parts, meta)
    regions["behind"] = (behind_region(case, parts), "top")  # not a back region: reported apart from them
    for region, (sel, label) in regions.items():
        if sel.sum() < 10:
            continue
        c = colours[sel].astype(np.float64)
        err = np.abs(c - app[label]).mean()
        nearest = np.linalg.norm(c[:, None] - ref[None], axis=2).argmin(axis=1)
        out[region] = {"label": label, "vertices": int(sel.sum()), "error": round(float(err), 1),
                       "correct": round(float(np.isin(nearest, same[label]).mean()), 3)}
    return out


def changed_vertices(before: np.ndarray, after: np.ndarray, parts: np.ndarray,
                     threshold: float = CHANGE_THRESHOLD) -> dict[str, int]:
    """Per body part, how many vertices' baked colours (N, 3), 0–255, moved by more than ``threshold`` in some
    channel between two bakes of the same case (which parts a change reaches; parts that did not change are left
    out)."""
    from icon_engine.texture import PART_NAMES

    moved = np.abs(np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)).max(axis=1) > threshold
    counts = {PART_NAMES[int(p)]: int((moved & (parts == p)).sum()) for p in np.unique(parts)}
    return {name: n for name, n in counts.items() if n}


def evaluate(cache: Path, before: Path | None, size: int, sheet: Path | None, only: list[str] | None) -> dict:
    """Bake every cached case (working tree, and the older module when given), render views, score synthetics."""
    from PIL import Image

    from bench.texture_speed import load_case

    modules = {"after": load_texture_module(None)}
    if before is not None:
        modules = {"before": load_texture_module(before), **modules}
    results: dict = {}
    rows = []
    for path in sorted(cache.glob("*.npz")):
        name = path.stem
        if only and name not in only:
            continue
        case = load_case(path)
        parts = case["vertex_parts"]
        res: dict = {"faces": int(len(case["faces"]))}
        panels = []
        for tag, mod in modules.items():
            accepted = inspect.signature(mod.bake_texture).parameters  # an older module takes fewer inputs
            kwargs = {k: val for k, val in case.items() if k in accepted and k != "size"}
            t0, c0 = time.perf_counter(), time.process_time()
            tex = mod.bake_texture(**kwargs, size=size)
            res[tag] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                        "steps": tex.stats.get("cpu_seconds", tex.stats["seconds"]),
                        "texel_coverage": round(tex.stats["texel_coverage"], 3)}
            if name.startswith("subject_") and (SYNTH / name).is_dir():
                res[tag]["back"] = back_side_error(case, parts, tex.vertex_colors, SYNTH / name)
            if tag == "before":
                before_colours = tex.vertex_colors
            elif "before" in modules:
                res["changed"] = changed_vertices(before_colours, tex.vertex_colors, parts)
            views = render_views(mod, case, tex)
            panels += views if tag == "after" else views[1:]
        print(name, json.dumps(res), flush=True)
        results[name] = res
        if sheet is not None:
            cam = case["camera"]
            h = panels[0].shape[0]
            small = (round(cam.width * h / cam.height), h)
            photo = np.asarray(Image.fromarray(case["photo_rgb"].astype(np.uint8)).resize(small))
            rows.append(_crop_columns([photo] + panels))
    if sheet is not None and rows:
        width = max(sum(p.shape[1] for p in r) + 6 * len(r) for r in rows)
        canvas = np.full((sum(r[0].shape[0] + 6 for r in rows), width, 3), 255, dtype=np.uint8)
        y = 0
        for r in rows:
            x = 0
            for p in r:
                canvas[y:y + p.shape[0], x:x + p.shape[1]] = p
                x += p.shape[1] + 6
            y += r[0].shape[0] + 6
        sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas).save(sheet, quality=82)
    return results


def summary(results: dict) -> list[str]:
    """Lines summing up :func:`evaluate`'s ``results``: the rendered subjects' back-side error, mean over every
    region of every subject (the figure the docs quote), before and after; then each case whose vertex colours
    moved (:func:`changed_vertices`), with the parts and counts."""
    lines = []
    for tag in ("before", "after"):
        errors = [r["error"] for res in results.values() for r in res.get(tag, {}).get("back", {}).values()]
        if errors:
            lines.append(f"back-side error, {tag}: {np.mean(errors):.3f} (mean of {len(errors)} regions)")
    moved = {name: res["changed"] for name, res in results.items() if res.get("changed")}
    if any("changed" in res for res in results.values()):
        lines.append(f"vertex colours moved > {CHANGE_THRESHOLD:g}: " + (", ".join(
            f"{name} {changed}" for name, changed in moved.items()) or "none"))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/icon_texture_sides"))
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--before", type=Path, help="an older texture package folder (or texture.py) to compare with")
    ap.add_argument("--size", type=int, default=2048, help="texture size of the bakes")
    ap.add_argument("--sheet", type=Path, help="contact sheet image (photo | before: side, back | after: front, "
                    "side, back)")
    ap.add_argument("--out", type=Path, help="JSON results")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.cache, args.quality, args.only)
        return
    results = evaluate(args.cache, args.before, args.size, args.sheet, args.only)
    print("\n".join(summary(results)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
