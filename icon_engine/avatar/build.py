"""The canonical avatar built: field, meshing, hands, skin weights and the posed mesh (the bundle contract).

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bundle.skeleton import NUM_JOINTS, PARENTS, forward_kinematics, skin_vertices
from ..geometry.device import mesh_query
from ..mesh_queries import rasterize
from ..rig import Rig, _np, check_rig_inputs, pose_relative_to_rest, rest_mesh_intersections, torn_faces
from ..threads import in_background
from . import body as canonical_poses
from . import hand_graft, photo_occupancy, skin_weights
from .body import _PART_MATRIX, LIMB_SEGMENT_NAMES, CanonicalBody, canonical_body, canonical_pose_angles, pose_body
from .fusion import FusedOccupancy, fused_offsets
from .hand_graft import (
    HAND_SIDES,
    body_hand,
    graft_body_hands,
    hand_budget,
    hand_outside_fraction,
)
from .photo_occupancy import CanonicalOccupancy, body_offsets, cloth_between_legs, missing_body
from .skin_weights import _keep_panel_posed, canonical_skin_weights
from .skinning_field import SkinningField

#: Nodes re-evaluated at each finer grid level: |interpolated F| < FIELD_BAND_FACTOR × spacing. Measured on the
#: sample (docs/benchmarks.md, speed): 1.5 gives the same mesh as 3 (Chamfer 0.00 mm) with half the points; 1.0
#: starts to move it.
FIELD_BAND_FACTOR = 1.5
#: Torn face: its longest edge grows more than this factor and ends longer than TORN_MIN_M (see rig.torn_faces).
SILHOUETTE_TARGET = 0.95


@dataclass
class Avatar:
    """The canonical avatar: ``posed_vertices`` (N, 3) bundle world = LBS of ``rig.rest_vertices``;
    ``faces`` (M, 3); ``canonical_vertices`` (N, 3) and ``canonical_joints`` (55, 3) in the canonical pose
    (:func:`canonical_pose_angles`, model frame); ``vertex_parts`` (N,) int body part
    (:data:`PART_NAMES`) of each vertex; ``rig`` the skinning (rest mesh, weights, joints); ``stats``."""

    posed_vertices: np.ndarray
    faces: np.ndarray
    canonical_vertices: np.ndarray
    canonical_joints: np.ndarray
    vertex_parts: np.ndarray
    rig: Rig
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _canonical_grid(body_t: CanonicalBody, body: CanonicalBody, reach: float, resolution: int,
                    levels: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(lo, hi, spacing h) of the canonical grid (metres): ``resolution`` nodes along the longest side of the body
    with the legs together (``body_t`` posed as :data:`.body.CANONICAL_HIP_SPREAD_DEG`) grown by ``reach``, widened
    by whole coarsest cells (h · 2^(levels − 1)) to hold ``body`` (the canonical body, its legs perhaps apart) grown
    by ``reach``: the lattice, and so the mesh of the upper body, does not move with the legs' spread."""
    together = pose_body(body_t, canonical_pose_angles(canonical_poses.CANONICAL_HIP_SPREAD_DEG)).vertices
    lo0, hi0 = together.min(0) - reach, together.max(0) + reach
    h = float((hi0 - lo0).max()) / resolution
    coarse = h * 2 ** (levels - 1)
    lo = lo0 - np.ceil(np.maximum(lo0 - (body.vertices.min(0) - reach), 0.0) / coarse) * coarse
    hi = hi0 + np.ceil(np.maximum(body.vertices.max(0) + reach - hi0, 0.0) / coarse) * coarse
    return lo, hi, h


def _skirt_evidence(body_t: CanonicalBody, fit: Any, camera: Any, mask: np.ndarray | None) -> float:
    """[0, 1]: how clearly one photo shows cloth spanning the legs (:func:`cloth_between_legs`), from the T body
    ``body_t`` posed by ``fit`` (``full_pose``, ``transl``: bundle world) — known before the canonical pose is chosen;
    0 without the photo's ``camera`` or person ``mask``."""
    if camera is None or mask is None:
        return 0.0
    transl = _np(fit.transl).reshape(1, 3)
    posed = pose_body(body_t, _np(fit.full_pose).reshape(NUM_JOINTS, 3))
    return cloth_between_legs(posed.joints + transl, camera, np.asarray(mask, bool),
                              lambda: rasterize(posed.vertices + transl, body_t.faces, camera).mask)


def build_avatar(posed_vertices: np.ndarray, posed_faces: np.ndarray, fit: Any, body_model: Any, *,
                 resolution: int = 256, levels: int = 4, smooth: int = 8, face_count: int | None = None,
                 rest_pose: str = "T", max_influences: int = 8, camera: Any = None, mask: np.ndarray | None = None,
                 progress: Any = None) -> Avatar:
    """Rebuild the posed clothed surface (``posed_vertices`` (N, 3) bundle world, ``posed_faces`` (M, 3), closed)
    as a canonical avatar skinned to the fitted skeleton.

    ``fit`` needs ``betas``, ``full_pose`` (55, 3) and ``transl`` (3,); ``body_model`` the SMPL-X layout body it
    was fitted with. ``resolution``: grid nodes along the longest side of the canonical box; ``levels``: coarse-to-
    fine levels; ``smooth``: Taubin iterations; ``face_count``: decimation target. With ``camera`` and ``mask``
    (processing pixels) the posed mesh's silhouette IoU is measured (a warning below 0.95).
    """
    return build_fused_avatar([posed_vertices], [posed_faces], [fit], body_model, resolution=resolution,
                              levels=levels, smooth=smooth, face_count=face_count, rest_pose=rest_pose,
                              max_influences=max_influences, cameras=[camera], mask=mask, progress=progress)


def build_fused_avatar(posed_vertices: list[np.ndarray], posed_faces: list[np.ndarray], fits: list[Any],
                       body_model: Any, *, resolution: int = 256, levels: int = 4, smooth: int = 8,
                       face_count: int | None = None, rest_pose: str = "T", max_influences: int = 8,
                       cameras: list[Any] | None = None, mask: np.ndarray | None = None,
                       masks: list[np.ndarray] | None = None, progress: Any = None, device: str = "cpu") -> Avatar:
    """One canonical avatar from the clothed surfaces of several photos of one person (same shape ``betas`` in
    every fit; each photo its own pose, translation and camera): every photo's canonical occupancy
    (:class:`CanonicalOccupancy`) is fused by :class:`FusedOccupancy` (one photo: its occupancy as it is), then
    meshed, skinned and posed into the **first** photo, whose ``cameras[0]`` and ``mask`` check the silhouette.
    Arguments as in :func:`build_avatar`, one list entry per photo; ``cameras`` and ``masks`` (every photo's person
    mask, processing pixels) are needed for several photos. ``device``: where the closest-point queries against
    the clothed surfaces and the canonical body run (:func:`~icon_engine.geometry.torch_closest.mesh_query`).
    """
    from ..geometry.decimate import decimate
    from ..geometry.implicit import evaluate_coarse_to_fine, largest_component, mesh_zero_level
    from ..geometry.laplacian import taubin_smooth

    t_start, cpu_start = time.perf_counter(), time.process_time()
    if not fits or len(fits) != len(posed_vertices) or len(fits) != len(posed_faces):
        raise ValueError("one clothed surface per fit, at least one")
    surfaces = []
    for v, f in zip(posed_vertices, posed_faces, strict=True):
        angles, pv, pf = check_rig_inputs(v, f, rest_pose, max_influences)
        surfaces.append((pv, pf))
    cameras = list(cameras) if cameras is not None else [None] * len(fits)
    camera = cameras[0]
    fit = fits[0]

    def report(frac: float, text: str) -> None:
        if progress is not None:
            progress.update(frac, text)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    report(0.02, "Preparing the canonical body")
    body_t = canonical_body(fit, body_model)
    photo_masks = list(masks) if masks is not None else [mask] + [None] * (len(fits) - 1)
    skirts = [_skirt_evidence(body_t, f, cam, m) for f, cam, m in zip(fits, cameras, photo_masks, strict=True)]
    skirt = max(skirts) >= skin_weights.SKIRT_EVIDENCE
    hip_spread = canonical_poses.CANONICAL_HIP_SPREAD_DEG if skirt else canonical_poses.TROUSERS_HIP_SPREAD_DEG
    canon_angles = canonical_pose_angles(hip_spread)
    body = pose_body(body_t, canon_angles)
    full_pose = _np(fit.full_pose).reshape(NUM_JOINTS, 3)
    transl = _np(fit.transl).reshape(3)
    views = []  # (skinning field, posed body, clothed query, offsets, measured) per photo
    for (pv, pf), f in zip(surfaces, fits, strict=True):
        pose_f = pose_relative_to_rest(_np(f.full_pose).reshape(NUM_JOINTS, 3), canon_angles)
        skin_f = SkinningField(body, pose_f, _np(f.transl).reshape(3))
        posed_f = skin_f.warp(body.vertices, body.lbs_weights)
        clothed_f = mesh_query(pv, pf, device)
        views.append((skin_f, posed_f, clothed_f, *body_offsets(posed_f, body, clothed_f)))
    skin = views[0][0]
    offsets, measured = fused_offsets([(v[3], v[4]) for v in views])
    occupancies = [CanonicalOccupancy(sk, pb, cq, offsets, device) for sk, pb, cq, _, _ in views]
    for occ, evidence in zip(occupancies, skirts, strict=True):
        occ.skirt = evidence
    if len(occupancies) == 1:
        occupancy = occupancies[0]
    else:
        if any(c is None for c in cameras):
            raise ValueError("fusing several photos needs every photo's camera")
        if masks is None or len(masks) != len(cameras):
            raise ValueError("fusing several photos needs every photo's person mask")
        occupancy = FusedOccupancy(occupancies, cameras, masks)
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    reach = float(np.percentile(offsets, 99.5)) + photo_occupancy.GRID_MARGIN_M
    lo, hi, h = _canonical_grid(body_t, body, reach, resolution, levels)
    vol, origin = evaluate_coarse_to_fine(occupancy, lo, hi, h, levels, progress, 0.05, 0.6,
                                          band_factor=FIELD_BAND_FACTOR)
    timings["field"] = time.perf_counter() - t

    t = time.perf_counter()
    report(0.62, "Meshing the canonical avatar")
    verts, tris = mesh_zero_level(vol, origin, h)
    verts, tris, floaters = largest_component(verts, tris)
    # a limb the photo surface lost (fitted off it, cut by a contact zone) is meshed again as the body prior
    lost, restored = missing_body(verts, tris, body)
    if restored:
        occupancies[0].lost = lost.astype(np.float64)
        report(0.63, "Restoring a limb the photo surface lost")
        t2 = time.perf_counter()
        vol, origin = evaluate_coarse_to_fine(occupancy, lo, hi, h, levels, None, 0.0, 0.0,
                                              band_factor=FIELD_BAND_FACTOR)
        timings["field_restore"] = time.perf_counter() - t2
        verts, tris = mesh_zero_level(vol, origin, h)
        verts, tris, floaters = largest_component(verts, tris)
    verts = taubin_smooth(verts, tris, smooth)
    hands = {side: body_hand(body, side) for side in HAND_SIDES} if hand_graft.GRAFT_HANDS else {}
    hand_outside = {side: round(hand_outside_fraction(h, views[0][1], views[0][2]), 3)
                    for side, h in hands.items() if h is not None}
    hands = {side: h for side, h in hands.items()
             if h is not None and hand_outside[side] <= hand_graft.HAND_OUTSIDE_MAX}
    if face_count:  # the grafted hands' faces come out of the budget, the cut ones' back into it
        verts, tris = decimate(verts, tris, hand_budget(verts, tris, body, hands, int(face_count)))
    grafted: list[str] = []
    if hands:
        verts, tris, grafted = graft_body_hands(verts, tris, body, hands)
    timings["mesh"] = time.perf_counter() - t

    t = time.perf_counter()
    report(0.75, "Skinning the canonical avatar")
    weights, wstats, panel, legs_weights = canonical_skin_weights(verts, tris, body, skin, max_influences, skirt)
    # canonical (legs spread) → rest pose (T or A), then rest → photo pose: posed is exactly LBS of the rest mesh
    to_rest = pose_relative_to_rest(angles, canon_angles)
    _, rest_joints = forward_kinematics(body_t.joints, np.asarray(PARENTS), angles)
    pose_rel = pose_relative_to_rest(full_pose, angles)
    if panel.any():  # the panel keeps its place in the photo: its rest shape is un-posed with its new weights
        verts, weights, panel = _keep_panel_posed(verts, weights, panel, legs_weights, skin, body.joints, to_rest,
                                                  rest_joints, pose_rel, transl)
    parts = (weights.astype(np.float64) @ _PART_MATRIX.T).argmax(axis=1)  # each vertex's part, from its weights
    rest = skin_vertices(verts, weights, body.joints, np.asarray(PARENTS), to_rest)
    posed = skin_vertices(rest, weights, rest_joints, np.asarray(PARENTS), pose_rel, transl)
    wstats["skirt_panel_vertices"] = int(panel.sum())
    timings["skin"] = time.perf_counter() - t

    report(0.9, "Checking the avatar")
    warnings: list[str] = []
    if restored:
        limbs = ", ".join(LIMB_SEGMENT_NAMES[j] for j in restored)
        warnings.append(f"The fitted {limbs} lay outside the photo's clothed surface (fitted off the person's "
                        "outline or at the wrong depth): the avatar keeps the body model's limb there, in the fitted "
                        "pose, which may differ from the photo's.")
    iou = iou_job = None
    if camera is not None and mask is not None:  # on a second thread beside the rest-pose checks below
        from ..surface import silhouette_iou

        iou_job = in_background(silhouette_iou, posed, tris, camera, np.asarray(mask, dtype=bool))
    torn = int(torn_faces(posed, rest, tris).sum())
    intersections = rest_mesh_intersections(rest, tris, rest_joints)
    if iou_job is not None:
        iou = iou_job.result()
        if iou < SILHOUETTE_TARGET:
            warnings.append(f"The posed avatar matches the person's outline only approximately "
                            f"(silhouette IoU {iou:.3f}).")
    nnz = (weights > 0).sum(axis=1)
    stats: dict[str, Any] = {
        "method": "canonical",
        "vertices": int(len(verts)),
        "faces": int(len(tris)),
        "grid_spacing_m": h,
        "photos_fused": len(fits),
        "points_evaluated": occupancy.count,
        "contact_zone_fraction": occupancy.contact_count / max(occupancy.count, 1),
        "body_vertices_in_contact": int((~measured).sum()),
        "limb_segments_restored": restored,
        "cloth_between_legs": [round(float(o.skirt), 3) for o in occupancies],
        "canonical_hip_spread_deg": float(hip_spread),
        "body_vertices_restored": 0 if occupancies[0].lost is None else int((occupancies[0].lost > 0).sum()),
        "points_grown_by_restored_body": occupancies[0].lost_count,
        "floaters_removed": int(floaters),
        "hands_grafted": grafted,
        "hand_outside_fraction": hand_outside,
        "posed_silhouette_iou": iou,
        "reproduction_error_max_mm": 0.0,
        "influences_max": int(nnz.max()),
        "influences_mean": float(nnz.mean()),
        "rest_torn_faces": torn,
        "rest_intersections": intersections,
        **wstats,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "time_s": round(time.perf_counter() - t_start, 3),
        "cpu_s": round(time.process_time() - cpu_start, 3),
    }
    rig = Rig(skin_weights=weights, rest_vertices=rest, rest_joints=np.asarray(rest_joints, dtype=np.float64),
              rest_pose=rest_pose, rest_pose_angles=angles, pose_from_rest=pose_rel, stats=stats)
    report(1.0, "Avatar done")
    return Avatar(posed, tris, verts, body.joints, parts, rig, warnings, stats)
