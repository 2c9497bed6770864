"""Skin weights on the canonical mesh: transferred from the body and diffused, restricted to the parts the
skinning field sees; a skirt skinned as one panel.

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..rig import (
    MIN_BLEND_SINGULAR,
    TRANSFER_JUMP_M,
    blended_transforms,
    diffuse_weights,
    sparsify_weights,
    transfer_jumps,
    transfer_weights,
    unpose_vertices,
)
from . import skinning_field
from .body import _PART_JOINTS, _PART_MATRIX, JOINT_PART, CanonicalBody, part_shares
from .skinning_field import SkinningField


def canonical_skin_weights(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody, skin: SkinningField,
                           max_influences: int = 8, skirt: bool = False
                           ) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
    """Skin weights (N, 55) float32 of the canonical mesh, stats, the skirt panel (N,) bool and the weights
    without the panel's blend (N, 55): transfer from the canonical body, screened-Laplace
    diffusion over the mesh (:mod:`icon_engine.rig`; the anchor gives way where the transfer jumps across a crease,
    :func:`~icon_engine.rig.transfer_jumps`), then every joint of a part that neither the skinning field nor the
    transfer sees at the vertex fades out (:func:`part_keep`); with ``skirt`` (a photo shows cloth spanning the
    legs) the split between the legs of that cloth's panel (:func:`skirt_panel`) is made harmonic
    (:func:`panel_leg_split`); ≤ ``max_influences`` joints, rows normalised."""
    w0, dist, closest = transfer_weights(vertices, body.vertices, body.faces, body.lbs_weights, faces=faces)
    # the field's weights at the vertices on a second thread while SuperLU factors and solves (it releases the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="icon-field-weights") as pool:
        field_job = pool.submit(skin.weights, vertices)
        jump = transfer_jumps(vertices, faces, closest)
        w = diffuse_weights(w0, faces, dist, jump=jump)
        field_w, _ = field_job.result()
    keep = part_keep(np.maximum(part_shares(field_w), part_shares(w0)))[:, JOINT_PART]
    positive = np.maximum(w, 0.0)
    dropped = float((positive * (1.0 - keep)).sum() / max(positive.sum(), 1e-12))
    w = w * keep
    panel = skirt_panel(vertices, w, dist, body.joints) if skirt else np.zeros(len(vertices), dtype=bool)
    legs_w = sparsify_weights(w, max_influences)
    w = sparsify_weights(panel_leg_split(w, faces, panel), max_influences) if panel.any() else legs_w
    return w, {"transfer_distance_mean_cm": float(dist.mean() * 100),
                      "transfer_distance_p95_cm": float(np.percentile(dist, 95) * 100),
                      "loose_vertices": int((dist > 0.06).sum()),
                      "transfer_jump_vertices": int((jump > TRANSFER_JUMP_M).sum()),
                      "foreign_weight_dropped": dropped}, panel, legs_w


#: A body part's joints keep their weights at a vertex as far as the skinning field or the transfer sees that part
#: there: not at all where both give it less than PART_KEEP_FROM of the vertex's weights, fully from PART_KEEP_FULL,
#: smoothly between (dropped at a hard 2 % before wave 28: neighbouring skirt vertices kept 8 % pelvis and 0 %, and
#: tore 4 cm apart when the thighs turned 90°).
PART_KEEP_FROM = 0.01
PART_KEEP_FULL = 0.03


def part_keep(shares: np.ndarray) -> np.ndarray:
    """(N, 5) in [0, 1]: how far each body part's joints keep their weights, from the parts' ``shares`` (N, 5)."""
    return skinning_field._smoothstep((shares - PART_KEEP_FROM) / (PART_KEEP_FULL - PART_KEEP_FROM))


#: Cloth spanning the legs (a skirt, a dress, a long coat) is skinned as one panel (wave 16): a vertex below the hip
#: joints and more than SKIRT_CLOTH_M (metres, canonical) from the body is cloth; where such cloth crosses the
#: midline between the legs (:data:`SKIRT_MIDLINE_M`, both legs at least :data:`LEGS_SHARE_FROM` of its weights) it
#: spans them, and its lowest such vertex is the hem. Between the hips and the hem every cloth vertex with some leg
#: weight belongs to the panel.
SKIRT_CLOTH_M = 0.012
#: Cloth spans the legs where it crosses the body's midline (metres either side of the pelvis joint): a skirt's
#: front and back do down to the hem, trouser legs only at the crotch.
SKIRT_MIDLINE_M = 0.02
#: The panel is skinned only where a photo shows cloth spanning the legs at least this clearly
#: (:func:`cloth_between_legs`).
SKIRT_EVIDENCE = 0.5


def skirt_panel(vertices: np.ndarray, weights: np.ndarray, distance: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(N,) bool: the canonical mesh's vertices (N, 3, metres, Y up) of cloth spanning the legs, from their weights
    (N, 55), their distance to the canonical body (N,) and the body's joints (55, 3) (:data:`SKIRT_CLOTH_M`)."""
    legs = weights @ _PART_MATRIX[3:5].T  # (N, 2) left and right leg shares
    cloth = (distance > SKIRT_CLOTH_M) & (vertices[:, 1] < joints[[1, 2], 1].mean())
    midline = np.abs(vertices[:, 0] - joints[0, 0]) < SKIRT_MIDLINE_M
    spanning = cloth & midline & (legs.min(axis=1) >= skinning_field.LEGS_SHARE_FROM)
    if not spanning.any():
        return np.zeros(len(vertices), dtype=bool)
    hem = vertices[spanning, 1].min()
    return cloth & (vertices[:, 1] >= hem) & (legs.sum(axis=1) >= skinning_field.LEGS_SHARE_FROM)


#: The legs' joints, left and right in the same order (hip, knee, ankle, foot).
_LEFT_LEG, _RIGHT_LEG = np.array(_PART_JOINTS[3]), np.array(_PART_JOINTS[4])


def panel_leg_split(weights: np.ndarray, faces: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """``weights`` (N, 55) with the skirt ``panel``'s (N,) bool split between the legs made harmonic: each panel
    vertex keeps its legs' total share (and the rest of its row: the waist's share), and the left leg's part of that
    total is the harmonic interpolation (:func:`icon_engine.texture.harmonic_fill`) of the part around the panel,
    over the mesh's vertices that carry leg weight. Within a leg the joints keep the vertex's own proportions (hip,
    knee, …), or the other leg's mirrored where the vertex had none of that leg. So the panel drapes from one leg
    to the other across its front and back, and still follows the legs as far as it did: a stride does not split
    it, and sitting (both legs turned alike) does not pull it back to the waist."""
    from ..texture import harmonic_fill

    w = np.array(weights, dtype=np.float64, copy=True)
    left, right = w[:, _LEFT_LEG], w[:, _RIGHT_LEG]
    sl, sr = left.sum(axis=1), right.sum(axis=1)
    total = sl + sr
    legs = total > 1e-6
    if not (panel & legs).any():
        return w
    sub = np.flatnonzero(legs)  # the leg-carrying part of the mesh: the split is interpolated over it
    where = np.full(len(w), -1)
    where[sub] = np.arange(len(sub))
    f = faces[(where[faces] >= 0).all(axis=1)]
    share = (sl[sub] / total[sub])[:, None]
    split = harmonic_fill(share, ~panel[sub], where[f])[:, 0]
    rows = sub[panel[sub]]
    s = np.clip(split[panel[sub]], 0.0, 1.0)
    pl = np.where(sl[rows, None] > 1e-9, left[rows] / np.maximum(sl[rows], 1e-12)[:, None],
                  right[rows] / np.maximum(sr[rows], 1e-12)[:, None])
    pr = np.where(sr[rows, None] > 1e-9, right[rows] / np.maximum(sr[rows], 1e-12)[:, None], pl)
    w[np.ix_(rows, _LEFT_LEG)] = (s * total[rows])[:, None] * pl
    w[np.ix_(rows, _RIGHT_LEG)] = ((1.0 - s) * total[rows])[:, None] * pr
    return w


def _keep_panel_posed(canonical: np.ndarray, weights: np.ndarray, panel: np.ndarray, legs_weights: np.ndarray,
                      skin: SkinningField, canonical_joints: np.ndarray, to_rest: np.ndarray,
                      rest_joints: np.ndarray, pose_rel: np.ndarray, transl: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical vertices (N, 3) of the skirt ``panel`` moved so that the panel, skinned with its new
    ``weights`` (N, 55), lands in the first photo's pose where the canonical occupancy put it (the first photo's
    skinning field ``skin`` warps the vertex there): the avatar reproduces the photo, and its rest shape is the
    photo's skirt un-posed as one panel. Vertices whose new blend is near-singular in that pose
    (:data:`icon_engine.rig.MIN_BLEND_SINGULAR`) keep their place and the weights without the panel's blend
    (``legs_weights``). Returns (canonical, weights, panel) updated; ``to_rest``, ``pose_rel`` (55, 3): canonical →
    rest and rest → photo pose."""
    idx = np.flatnonzero(panel)
    w_new = np.asarray(weights[idx], dtype=np.float64)
    blend, _ = blended_transforms(w_new, rest_joints, pose_rel)
    ok = np.linalg.svd(blend, compute_uv=False)[:, -1] >= MIN_BLEND_SINGULAR
    keep = idx[ok]
    target = skin.warp_points(canonical[keep])[0]  # where the occupancy put the panel in the photo
    rest = unpose_vertices(target, w_new[ok], rest_joints, pose_rel, transl)
    canonical = np.array(canonical, copy=True)
    canonical[keep] = unpose_vertices(rest, w_new[ok], canonical_joints, to_rest, np.zeros(3))
    weights = np.array(weights, copy=True)
    weights[idx[~ok]] = legs_weights[idx[~ok]]
    panel = np.zeros_like(panel)
    panel[keep] = True
    return canonical, weights, panel
