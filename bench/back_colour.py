"""Where the back colour error of a several-photo avatar comes from (issue 13): split by body part and by cause.

The subjects, photos and scoring are bench/multiview.py's (3 synthetic subjects, views at 0°, 90°, 180°, 270°, or
the front view and 3 other poses for "4 poses"; preview quality). Each set is reconstructed once; its texture is
then baked again under each variant named on the command line (``NAME=VALUE`` settings of ``icon_engine.texture``,
e.g. ``REGISTRATION_POWER=0``), so the variants share the fits and the avatar. For each bake:

- **GT views**: the textured posed avatar (placed through the first photo's fit, as bench/multiview.py does) in the
  ground-truth front (0°) and back (180°) renders: mean absolute RGB error (0–255) on the person's pixels after one
  gain per channel (bench/multiview.py's "colour front/back");
- **own fits**: the avatar posed by the front and back photos' own fits, in their own cameras, against those photos
  (the texture's error without the first fit's misplacement of the avatar's back; nan without a back photo);
- the back error's share per body part (texture.PART_NAMES, from the skin weights), its share in pixels off by
  more than 30 levels, and of those the share **misregistered** (the avatar's colour there appears in the truth
  within 8 px: a colour placed a few pixels off, not a wrong colour);
- with ``--images DIR``: per subject, set and variant, the back view (truth | avatar | error × 4) as PNG.

Usage: ``python bench/back_colour.py --count 3 --variants base REGISTRATION_POWER=0 --images /tmp/back``.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fidelity import to_gt_world  # noqa: E402
from multiview import SETS, colour_error, render_views, subject_in_poses  # noqa: E402
from synthetic import load_open_body  # noqa: E402

#: Pixels off by more than this (RGB mean, 0–255) count as large errors.
BIG_ERROR = 30.0
#: A large error is misregistration when the avatar's colour appears in the truth within this many pixels.
NEAR_PX = 8
NEAR_RGB = 20.0


def capture(bm: Any, index: int, set_name: str, size: tuple[int, int], quality: str) -> dict[str, Any]:
    """Reconstruct subject ``index`` from the photos of ``set_name``; keep the avatar and the photos' views."""
    from PIL import Image

    import icon_engine.subject as subject
    from icon_engine.options import ReconstructOptions

    posed = subject_in_poses(bm, index, 11, size, ("loose", "tight", "skirt", "coat")[index % 4])
    s = posed[0]
    views = render_views(s, size)
    got: dict[str, Any] = {}
    original = subject.bake_subject_texture

    def keep(avatar: Any, vs: Any, options: Any, reporter: Any) -> Any:
        got.update(avatar=avatar, views=vs, options=options)
        return original(avatar, vs, options, reporter)

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, rgb in enumerate([rgb for rgb, _, _ in views] + [o.rgb for o in posed[1:]]):
            paths.append(Path(tmp) / f"{s.name}_view{k}.png")
            Image.fromarray(rgb).save(paths[-1])
        subject.bake_subject_texture = keep
        try:
            subject.reconstruct_subject([paths[k] for k in SETS[set_name]], Path(tmp) / "out",
                                        ReconstructOptions(quality=quality), body_model=bm, bundle_name="avatar")
        finally:
            subject.bake_subject_texture = original
    fit0 = got["views"][0].fit
    dz = float(views[0][2].to_camera(s.body_vertices)[:, 2].mean() - fit0.camera.to_camera(fit0.vertices)[:, 2].mean())
    back = list(SETS[set_name]).index(2) if 2 in SETS[set_name] else None
    return dict(got, gt_views=views, dz=dz, name=s.name, back_photo=back)


def score(case: dict[str, Any], tex: Any, image_path: Path | None = None) -> dict[str, Any]:
    """The texture ``tex`` of ``case`` (:func:`capture`) scored as in the module docstring."""
    from scipy import ndimage

    from icon_engine.geometry.raster import rasterize
    from icon_engine.subject import avatar_in_photo
    from icon_engine.texture import PART_NAMES, parts_from_skin_weights, render_textured

    av, vs = case["avatar"], case["views"]
    image = tex.image.astype(np.float64)
    v = to_gt_world(av.posed_vertices, vs[0].fit.camera, case["gt_views"][0][2], case["dz"])
    out: dict[str, Any] = {}
    for name, k in (("front", 0), ("back", 2)):
        truth_rgb, truth_mask, cam = case["gt_views"][k]
        rgb, covered = render_textured(v, av.faces, tex.uv, image, cam)
        _, out[name], err, gain = colour_error(rgb, covered, truth_rgb, truth_mask)
        if name != "back":
            continue
        sel = covered & ndimage.binary_erosion(truth_mask, iterations=2)
        r = rasterize(cam.to_camera(v), av.faces, cam.K, cam.width, cam.height)
        parts = parts_from_skin_weights(av.rig.skin_weights)
        pixel_part = np.where(r.face_index >= 0, parts[av.faces[np.maximum(r.face_index, 0), 0]], -1)
        scaled, truth_f = rgb * gain, truth_rgb.astype(np.float64)
        nearest = np.full(err.shape, np.inf)  # the avatar's colour against the truth's within NEAR_PX
        for dy in range(-NEAR_PX, NEAR_PX + 1, 2):
            for dx in range(-NEAR_PX, NEAR_PX + 1, 2):
                moved = np.roll(np.roll(truth_f, dy, axis=0), dx, axis=1)
                nearest = np.minimum(nearest, np.abs(moved - scaled).mean(axis=2))
        big = sel & (err > BIG_ERROR)
        total = max(float(err[sel].sum()), 1e-9)
        out["back_big_share"] = float(err[big].sum()) / total
        out["back_misregistered_share"] = float(err[big & (nearest < NEAR_RGB)].sum()) / total
        out["back_part_share"] = {PART_NAMES[p]: float(err[sel & (pixel_part == p)].sum()) / total
                                  for p in range(len(PART_NAMES))}
        if image_path is not None:
            from PIL import Image

            sheet = np.concatenate([truth_f, np.clip(scaled, 0, 255) * covered[..., None],
                                    np.repeat(np.clip(4 * err, 0, 255)[..., None], 3, axis=2)], axis=1)
            Image.fromarray(sheet.astype(np.uint8)).save(image_path)
    out["back_own"] = float("nan")  # no back photo: no own-fit back view
    for name, k in (("front", 0), ("back", case["back_photo"])):
        if k is None:
            continue
        view = vs[k]
        posed = av.posed_vertices if k == 0 else avatar_in_photo(av, view.fit)
        rgb, covered = render_textured(posed, av.faces, tex.uv, image, view.fit.camera)
        _, out[f"{name}_own"], _, _ = colour_error(rgb, covered, view.photo.rgb, view.observation.mask)
    return out


def bake_variant(case: dict[str, Any], settings: dict[str, str]) -> Any:
    """The case's texture baked again with ``settings`` (constants of ``icon_engine.texture``, set in the submodule
    that defines each, → Python literals)."""
    import icon_engine.texture as texture
    from bench.lib.constants import defining_module
    from icon_engine.progress import NoProgress
    from icon_engine.subject import bake_subject_texture

    modules = {k: defining_module(texture, k) for k in settings}
    unknown = [k for k, m in modules.items() if m is None]
    if unknown:
        raise SystemExit(f"--variants: no constant {', '.join(unknown)} in icon_engine.texture")
    saved = {k: getattr(modules[k], k) for k in settings}
    try:
        for k, value in settings.items():
            setattr(modules[k], k, type(saved[k])(ast.literal_eval(value)))  # numbers and booleans
        return bake_subject_texture(case["avatar"], case["views"], case["options"], NoProgress())
    finally:
        for k, value in saved.items():
            setattr(modules[k], k, value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Back colour of several-photo avatars, split by part and cause")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--quality", default="preview")
    ap.add_argument("--sets", nargs="+", choices=("front+back", "4 views", "4 poses"),
                    default=["front+back", "4 views"])
    ap.add_argument("--variants", nargs="+", default=["base"],
                    help="'base' or comma-separated NAME=VALUE settings of icon_engine.texture")
    ap.add_argument("--images", type=Path, help="write each back view (truth | avatar | error × 4) here")
    args = ap.parse_args(argv)
    if args.images is not None:
        args.images.mkdir(parents=True, exist_ok=True)
    bm = load_open_body()
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(args.count):
        for set_name in args.sets:
            case = capture(bm, i, set_name, (448, 640), args.quality)
            for variant in args.variants:
                settings = {} if variant == "base" else dict(kv.split("=", 1) for kv in variant.split(","))
                tex = bake_variant(case, settings)
                tag = f"{case['name']}_{set_name}_{variant}".replace(" ", "_").replace("+", "_").replace(",", "_")
                r = score(case, tex, None if args.images is None else args.images / f"{tag}.png")
                rows.setdefault((set_name, variant), []).append(r)
                print(f"{case['name']:16s} {set_name:10s} {variant:24s} front {r['front']:.2f} back {r['back']:.2f}"
                      f"  own {r['front_own']:.2f} / {r['back_own']:.2f}", flush=True)
    print("| set | variant | colour front | colour back | back/front | own fits front, back | back error: >30 "
          "levels, misregistered | by part (torso, arms, legs, head) |")
    print("|---|---|---|---|---|---|---|---|")
    for (set_name, variant), rs in rows.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in ("front", "back", "front_own", "back_own",
                                                              "back_big_share", "back_misregistered_share")}
        part = {p: float(np.mean([r["back_part_share"][p] for r in rs])) for p in rs[0]["back_part_share"]}
        print(f"| {set_name} | {variant} | {m['front']:.2f} | {m['back']:.2f} | {m['back'] / m['front']:.2f} | "
              f"{m['front_own']:.2f}, {m['back_own']:.2f} | {100 * m['back_big_share']:.0f} %, "
              f"{100 * m['back_misregistered_share']:.0f} % | {100 * part['torso']:.0f} / "
              f"{100 * (part['left_arm'] + part['right_arm']):.0f} / {100 * (part['left_leg'] + part['right_leg']):.0f}"
              f" / {100 * part['head']:.0f} % |")


if __name__ == "__main__":
    main()
