"""CPU and wall time of the clothed-surface and canonical-avatar (rig) stages alone, in one warm process.

The photo is detected and fitted once; then the surface stage (:func:`icon_engine.pipeline.build_clothed_surface`)
and the avatar stage (:func:`icon_engine.pipeline.build_canonical_avatar`: field, meshing, skin weights, rest
mesh) run ``--repeats`` times, each timed by wall clock and by this process's CPU time (all threads). The stage
modules are imported before the first timing (as in the warm engine). With ``--save`` the first repeat's surface
and posed avatar are written (npz) so that two code versions can be compared (``--compare A.npz B.npz``: symmetric
Chamfer distance in mm, as tests/test_speed_regression.py measures it).

Run: ``.venv/bin/python bench/mesh_speed.py --quality standard --repeats 2`` (the built-in sample photo);
``ICON_ENGINE_WORKERS=1`` gives the single-core figures; ``--fit-cache /tmp/fit.pkl`` stages one fit in both code
versions of an A/B comparison. Figures: docs/benchmarks.md, speed section.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _chamfer_mm(va: np.ndarray, fa: np.ndarray, vb: np.ndarray, fb: np.ndarray) -> float:
    """Mean of the two directed mean vertex-to-surface distances (mm)."""
    from icon_engine.mesh_queries import MeshQuery

    a_to_b = np.abs(MeshQuery(vb, fb, k=2).signed_distance(va)).mean()
    b_to_a = np.abs(MeshQuery(va, fa, k=2).signed_distance(vb)).mean()
    return float(500.0 * (a_to_b + b_to_a))


def compare(a_path: Path, b_path: Path) -> None:
    """Print the Chamfer distance between the surfaces and between the posed avatars of two ``--save`` files."""
    a, b = np.load(a_path), np.load(b_path)
    for name, key in (("surface", "surface"), ("posed avatar", "avatar")):
        mm = _chamfer_mm(a[f"{key}_vertices"], a[f"{key}_faces"], b[f"{key}_vertices"], b[f"{key}_faces"])
        print(f"{name}: Chamfer {mm:.4f} mm ({len(a[f'{key}_faces'])} vs {len(b[f'{key}_faces'])} faces)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--photo", type=Path, default=None, help="default: the built-in sample photo")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--save", type=Path, default=None, help="write the first repeat's meshes here (.npz)")
    ap.add_argument("--compare", type=Path, nargs=2, default=None, help="compare two --save files and exit")
    ap.add_argument("--fit-cache", type=Path, default=None,
                    help="pickle of (fit, observation, image) written by this script: reused when present, written "
                         "when absent, so that two code versions stage the very same fit (this bench's own file)")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return

    import icon_engine.avatar  # noqa: F401  (warm imports, as in the warm engine)
    import icon_engine.rig  # noqa: F401
    import icon_engine.surface  # noqa: F401
    import icon_engine.texture  # noqa: F401
    from icon_engine.fit import fit_body
    from icon_engine.image_io import load_photo
    from icon_engine.options import ReconstructOptions
    from icon_engine.person import detect_person
    from icon_engine.pipeline import build_canonical_avatar, build_clothed_surface, load_body
    from icon_engine.progress import ProgressReporter
    from icon_engine.sample import sample_photo_path

    options = ReconstructOptions(quality=args.quality, texture=False)
    body_model = load_body(options, "cpu")
    if args.fit_cache is not None and args.fit_cache.exists():
        with open(args.fit_cache, "rb") as fh:
            fit, observation, image = pickle.load(fh)  # noqa: S301 (this bench's own cache, never a user's file)
    else:
        image = load_photo(args.photo or sample_photo_path())
        observation = detect_person(image)
        fit = fit_body(observation, body_model, image, quality=args.quality, device="cpu")
        if args.fit_cache is not None:
            with open(args.fit_cache, "wb") as fh:
                pickle.dump((fit, observation, image), fh)
    print(f"quality {args.quality}, workers {os.environ.get('ICON_ENGINE_WORKERS', 'default')}")
    for r in range(args.repeats):
        reporter = ProgressReporter("bench", None, None)
        reporter.stage("surface", "surface")
        load = os.getloadavg()[0]
        w, c = time.perf_counter(), time.process_time()
        surface = build_clothed_surface(fit, observation, image, options, "cpu", reporter, body_model)
        ws, cs = time.perf_counter() - w, time.process_time() - c
        reporter.stage("rig", "avatar")
        w, c = time.perf_counter(), time.process_time()
        avatar = build_canonical_avatar([surface], [fit], [observation.mask], options, reporter, body_model)
        wa, ca = time.perf_counter() - w, time.process_time() - c
        print(f"repeat {r + 1}: load {load:.1f} | surface {ws:.2f} s wall / {cs:.2f} s CPU | avatar {wa:.2f} s "
              f"wall / {ca:.2f} s CPU | avatar parts (wall) {avatar.stats['timings_s']} | points "
              f"{avatar.stats['points_evaluated']} | torn {avatar.stats['rest_torn_faces']} | posed IoU "
              f"{avatar.stats['posed_silhouette_iou']:.4f}")
        if r == 0 and args.save:
            np.savez(args.save, surface_vertices=surface.vertices, surface_faces=surface.faces,
                     avatar_vertices=avatar.posed_vertices, avatar_faces=avatar.faces)


if __name__ == "__main__":
    main()
