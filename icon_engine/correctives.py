"""Pose correctives: how the clothes of a several-photo avatar deform with the pose (what SCANimate adds).

Model (per vertex v, rest frame of the rig, metres)::

    d_v(θ) = Σ_{j ∈ J_v} B_vj · vec(R_j(θ) − I)          posed = LBS(rest + d(θ))

``R_j(θ)`` is joint j's local rotation relative to the rig's rest pose (``rig.pose_from_rest`` convention, SMPL-X
world axes), ``vec`` flattens it row-major (9 numbers, zero at the rest pose, so the rest mesh is unchanged),
``J_v`` are the 1–:data:`JOINTS_PER_VERTEX` body joints that most influence the vertex (skin weight) and
``B_vj`` (3 × 9) is fitted by ridge regression from the photos: each photo's clothed surface, compared with the
fused avatar posed into that photo, gives an offset at every vertex the photo **sees** (visible from its camera,
close to the surface, normals agreeing), mapped back to the rest frame by the inverse of the vertex's blended
LBS rotation. Needs photos in at least :data:`MIN_POSES` different poses.

Kept only where they help: leave-one-out over the photos (fit without photo h, predict photo h) measures the
distance to photo h's surface with and without correctives per joint region (the vertices whose strongest body
joint is j); the regions that do not improve by :data:`KEEP_MARGIN` get no correctives.

Storage (:class:`icon_engine.bundle.correctives.Correctives`, a bundle's ``corrective_offsets.npy`` +
``bundle.json["correctives"]``, docs/bundle.md): the per-joint 3N × 9 bases compressed by SVD into K shape keys,
``offsets`` (K, N, 3) float32, each driven by one joint, ``key_joint`` (K,), through ``key_coeffs`` (K, 9)::

    value_k(θ) = key_coeffs[k] · vec(R_{key_joint[k]}(θ) − I),    d(θ) = Σ_k value_k(θ) · offsets[k]

which is what Blender's shape keys driven by the bones compute. Torch-free at import (the fit imports the mesh
queries lazily); the evaluation (the bundle's contract) lives in :mod:`icon_engine.bundle.correctives`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .bundle.correctives import MAX_KEY_OFFSET, MAX_KEYS, Correctives, pose_features
from .bundle.skeleton import JOINT_NAMES, NUM_BODY_JOINTS, PARENTS, blended_transforms, skin_vertices

__all__ = ["MAX_KEYS", "MAX_KEY_OFFSET", "Correctives", "attach_correctives", "fit_correctives", "pose_features"]

#: The features the fit uses, as rows over vec(R − I) (row-major): the rotation's antisymmetric part
#: (sin θ · axis, 3 numbers: which way the joint turns) and cos θ − 1 (how far). Few photos cannot pin 9 numbers
#: per joint; these 4 are linear in R's entries too, so a fitted basis is stored over vec(R − I) unchanged.
FEATURE_MAP = np.array([
    [0, 0, 0, 0, 0, -0.5, 0, 0.5, 0],
    [0, 0, 0.5, 0, 0, 0, -0.5, 0, 0],
    [0, -0.5, 0, 0.5, 0, 0, 0, 0, 0],
    [0.5, 0, 0, 0, 0.5, 0, 0, 0, 0.5],
])  # fmt: skip
#: Photos in at least this many different poses are needed to fit correctives.
MIN_POSES = 4
#: Poses closer than this (radians, largest joint angle difference over the body joints) count as the same pose.
SAME_POSE_RAD = 0.15
#: Joints whose rotation may drive a vertex: the body joints 1–21 (no global orientation, jaw, eyes or fingers).
DRIVING_JOINTS = tuple(range(1, NUM_BODY_JOINTS + 1))
#: Most joints driving one vertex (the strongest by skin weight) and the least weight a driving joint must have.
JOINTS_PER_VERTEX = 2
MIN_JOINT_WEIGHT = 0.1
#: Ridge penalty on the per-vertex basis (features are rotation-matrix entries, ~ the joint angle in radians).
RIDGE = 0.05
#: A photo's offset counts only when the photo's surface lies within this distance (metres) of the posed avatar.
MAX_OFFSET = 0.04
#: Least photos that must see a vertex for its basis to be fitted.
MIN_SAMPLES = 3
#: Mesh-neighbour smoothing passes over the per-vertex bases (photo surfaces are noisy per vertex).
SMOOTHING_PASSES = 4
#: A joint region's correctives are kept when its leave-one-out error drops by at least this fraction.
KEEP_MARGIN = 0.05
#: Shape keys per joint after compression: the fewest singular vectors that hold this share of the energy ...
SVD_ENERGY = 0.98
#: ... and at most this many.
MAX_KEYS_PER_JOINT = 4


def driving_joints(weights: np.ndarray, per_vertex: int = JOINTS_PER_VERTEX) -> np.ndarray:
    """(N, per_vertex) the body joints (:data:`DRIVING_JOINTS`) with the largest skin weights per vertex; -1 where
    fewer than ``per_vertex`` joints reach :data:`MIN_JOINT_WEIGHT` (the strongest one is always kept)."""
    w = np.asarray(weights, dtype=np.float64)[:, DRIVING_JOINTS]
    order = np.argsort(-w, axis=1)[:, :per_vertex]
    picked = np.asarray(DRIVING_JOINTS)[order]
    strong = np.take_along_axis(w, order, axis=1) >= MIN_JOINT_WEIGHT
    strong[:, 0] = True
    return np.where(strong, picked, -1)


def distinct_poses(poses: list[np.ndarray]) -> int:
    """How many of the poses (55, 3) differ from each other by more than :data:`SAME_POSE_RAD` at some body
    joint (greedy count)."""
    kept: list[np.ndarray] = []
    for pose in poses:
        body = np.asarray(pose, dtype=np.float64).reshape(-1, 3)[1 : NUM_BODY_JOINTS + 1]
        if all(np.abs(body - k).max() > SAME_POSE_RAD for k in kept):
            kept.append(body)
    return len(kept)


@dataclass
class PhotoSamples:
    """What one photo says about the correctives: ``offset`` (N, 3) rest-frame offsets (metres) from the avatar
    to the photo's surface, ``seen`` (N,) where they are trustworthy, ``features`` (55, 9) the photo's pose."""

    offset: np.ndarray
    seen: np.ndarray
    features: np.ndarray


def photo_samples(rest_vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray,
                  pose_from_rest: np.ndarray, transl: np.ndarray, surface_vertices: np.ndarray,
                  surface_faces: np.ndarray, camera: Any | None = None) -> PhotoSamples:
    """Offsets from the avatar posed into one photo to that photo's clothed surface (same world, metres), mapped
    to the rest frame; ``seen``: the vertex is visible from the photo's ``camera`` (when given), the surface lies
    within :data:`MAX_OFFSET` and its normal agrees with the avatar's."""
    from .mesh_queries import MeshQuery, vertex_visibility
    from .render import vertex_normals

    parents = np.asarray(PARENTS)
    blend_r, blend_t = blended_transforms(weights, rest_joints, parents, pose_from_rest)
    posed = np.einsum("vab,vb->va", blend_r, np.asarray(rest_vertices, dtype=np.float64)) + blend_t
    posed = posed + np.asarray(transl, dtype=np.float64).reshape(1, 3)
    hit = MeshQuery(surface_vertices, surface_faces).query(posed)
    residual = hit.closest - posed
    normals = np.asarray(vertex_normals(posed, faces), dtype=np.float64)
    seen = (np.linalg.norm(residual, axis=1) < MAX_OFFSET) & (np.einsum("ij,ij->i", normals, hit.normal) > 0.5)
    if camera is not None:
        seen &= vertex_visibility(posed, faces, camera)
    offset = np.linalg.solve(blend_r, residual[..., None])[..., 0]  # posed → rest frame (inverse blended rotation)
    return PhotoSamples(offset, seen, pose_features(pose_from_rest))


def fit_bases(samples: list[PhotoSamples], drivers: np.ndarray, faces: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Per-vertex bases (N, k, 3, 9): slot s maps ``vec(R − I)`` of joint ``drivers[:, s]`` to a rest-frame offset
    (zero where the slot has no joint), by ridge regression over the photos that see each vertex (``drivers``
    (N, k) from :func:`driving_joints`), smoothed over mesh neighbours."""
    n = len(drivers)
    drv = drivers
    dim = len(FEATURE_MAP)
    feats = np.stack([s.features for s in samples]) @ FEATURE_MAP.T  # (S, 55, dim)
    seen = np.stack([s.seen for s in samples], axis=1)  # (N, S)
    offs = np.stack([s.offset for s in samples], axis=1)  # (N, S, 3)
    slots = drv.shape[1]
    # design matrix per vertex: (N, S, slots * 9), zero where a slot has no joint or the photo does not see it
    x = np.where((drv >= 0)[:, None, :, None], feats[:, np.maximum(drv, 0)].transpose(1, 0, 2, 3), 0.0)
    x = x.reshape(n, len(samples), slots * dim) * seen[:, :, None]
    y = offs * seen[:, :, None]
    gram = np.einsum("nsa,nsb->nab", x, x) + ridge * np.eye(slots * dim)[None]
    rhs = np.einsum("nsa,nsc->nac", x, y)
    coef = np.linalg.solve(gram, rhs)  # (N, slots*dim, 3)
    coef[seen.sum(1) < MIN_SAMPLES] = 0.0
    coef = _smooth(coef.reshape(n, -1), faces, SMOOTHING_PASSES, valid=seen.sum(1) >= MIN_SAMPLES).reshape(coef.shape)
    bases = coef.reshape(n, slots, dim, 3).transpose(0, 1, 3, 2) @ FEATURE_MAP  # (N, slots, 3, 9)
    return np.where((drv >= 0)[:, :, None, None], bases, 0.0)


def _smooth(values: np.ndarray, faces: np.ndarray, passes: int, valid: np.ndarray) -> np.ndarray:
    """Average each valid vertex's values with its valid mesh neighbours ``passes`` times (invalid ones stay 0)."""
    import scipy.sparse as sp

    n = len(values)
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], np.arange(n)])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], np.arange(n)])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64) @ sp.diags(valid.astype(np.float64))
    count = np.maximum(np.asarray(adj.sum(1)).ravel(), 1.0)
    out = values * valid[:, None]
    for _ in range(passes):
        out = (adj @ out) / count[:, None] * valid[:, None]
    return out


def predict(bases: np.ndarray, drivers: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(N, 3) rest-frame offsets of bases (N, k, 3, 9) with their ``drivers`` (N, k) for a pose's features
    (55, 9)."""
    f = np.where((drivers >= 0)[:, :, None], features[np.maximum(drivers, 0)], 0.0)  # (N, k, 9)
    return np.einsum("nsce,nse->nc", bases, f)


def leave_one_out(samples: list[PhotoSamples], drivers: np.ndarray, faces: np.ndarray,
                  ridge: float = RIDGE) -> dict[int, tuple[float, float]]:
    """Per driving joint j: (mean distance to the held-out photos' surfaces without, with correctives) in metres,
    over the vertices whose strongest joint is j and that the held-out photo sees (each photo held out once)."""
    region = drivers[:, 0]
    sums: dict[int, list[float]] = {}
    for h, held in enumerate(samples):
        rest = samples[:h] + samples[h + 1 :]
        bases = fit_bases(rest, drivers, faces, ridge)
        err_with = np.linalg.norm(held.offset - predict(bases, drivers, held.features), axis=1)
        err_without = np.linalg.norm(held.offset, axis=1)
        for j in np.unique(region[held.seen]):
            m = held.seen & (region == j)
            acc = sums.setdefault(int(j), [0.0, 0.0, 0.0])
            acc[0] += float(err_without[m].sum())
            acc[1] += float(err_with[m].sum())
            acc[2] += float(m.sum())
    return {j: (a / max(c, 1.0), b / max(c, 1.0)) for j, (a, b, c) in sums.items()}


def compress(bases: np.ndarray, drivers: np.ndarray, energy: float = SVD_ENERGY,
             max_keys: int = MAX_KEYS_PER_JOINT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per joint, its (3N × 9) basis (the slots it drives, bases (N, k, 3, 9), ``drivers`` (N, k)) → the fewest
    rank-1 terms holding ``energy`` of it (SVD): shape keys ``offsets`` (K, N, 3), ``key_joint`` (K,),
    ``key_coeffs`` (K, 9)."""
    n = len(bases)
    offsets, joints, coeffs = [], [], []
    for j in np.unique(drivers[drivers >= 0]):
        per_joint = np.einsum("ns,nsce->nce", (drivers == j).astype(np.float64), bases)
        mat = per_joint.reshape(3 * n, 9)
        if not np.any(mat):
            continue
        u, s, vt = np.linalg.svd(mat, full_matrices=False)
        share = np.cumsum(s**2) / max(float((s**2).sum()), 1e-30)
        rank = min(int(np.searchsorted(share, energy) + 1), max_keys)
        for r in range(rank):
            offsets.append((u[:, r] * s[r]).reshape(n, 3))
            joints.append(int(j))
            coeffs.append(vt[r])
    if not offsets:
        return np.zeros((0, n, 3), np.float32), np.zeros(0, np.int64), np.zeros((0, 9))
    return np.asarray(offsets, np.float32), np.asarray(joints, np.int64), np.asarray(coeffs, np.float64)


def fit_correctives(rest_vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray,
                    poses_from_rest: list[np.ndarray], transls: list[np.ndarray],
                    surfaces: list[tuple[np.ndarray, np.ndarray]], cameras: list[Any] | None = None,
                    ridge: float = RIDGE) -> Correctives | None:
    """Correctives of an avatar (rest mesh, skin weights, rest joints: the rig, rest frame) from photos: each
    photo's pose relative to the rig's rest, its translation, its clothed surface (vertices, faces) in the same
    world and optionally its camera (for visibility). None when the photos show fewer than :data:`MIN_POSES`
    different poses; no keys when no joint region improves in the leave-one-out test (``stats`` says which)."""
    if distinct_poses(poses_from_rest) < MIN_POSES:
        return None
    cams = cameras if cameras is not None else [None] * len(surfaces)
    samples = [photo_samples(rest_vertices, faces, weights, rest_joints, p, t, sv, sf, c)
               for p, t, (sv, sf), c in zip(poses_from_rest, transls, surfaces, cams, strict=True)]
    return correctives_from_samples(samples, driving_joints(weights), faces, poses_from_rest, ridge)


def correctives_from_samples(samples: list[PhotoSamples], drivers: np.ndarray, faces: np.ndarray,
                             poses_from_rest: list[np.ndarray], ridge: float = RIDGE) -> Correctives | None:
    """:func:`fit_correctives` from the photos' :class:`PhotoSamples` (``drivers`` from :func:`driving_joints`):
    the leave-one-out selection per joint region, the fit on every photo, the shape keys."""
    n_poses = distinct_poses(poses_from_rest)
    if n_poses < MIN_POSES:
        return None
    n = len(drivers)
    loo = leave_one_out(samples, drivers, faces, ridge)
    kept = {j for j, (without, with_) in loo.items() if with_ < (1.0 - KEEP_MARGIN) * without}
    stats: dict[str, Any] = {
        "photos": len(samples), "distinct_poses": n_poses, "ridge": ridge,
        "leave_one_out_cm": {JOINT_NAMES[j]: {"without": round(a * 100, 3), "with": round(b * 100, 3)}
                             for j, (a, b) in sorted(loo.items())},
        "kept": [JOINT_NAMES[j] for j in sorted(kept)],
        "dropped": [JOINT_NAMES[j] for j in sorted(set(loo) - kept)],
    }
    if not kept:
        return Correctives(np.zeros((0, n, 3), np.float32), np.zeros(0, np.int64), np.zeros((0, 9)), stats)
    bases = fit_bases(samples, drivers, faces, ridge)
    bases[~np.isin(drivers[:, 0], sorted(kept))] = 0.0  # only the regions that improved (as measured above)
    offsets, key_joint, key_coeffs = compress(bases, drivers)
    stats["keys"] = len(key_joint)
    return Correctives(offsets, key_joint, key_coeffs, stats)


def attach_correctives(content: Any, rig: Any, fits: list[Any], surfaces: list[Any]) -> Correctives | None:
    """Fit the pose correctives of a several-photo avatar and put them into the bundle ``content``.

    ``rig`` the avatar's :class:`icon_engine.rig.Rig`; ``fits`` and ``surfaces`` the used photos' body fits (shared
    shape: ``full_pose``, ``transl``, ``camera``) and clothed surfaces (``vertices``, ``faces``), each in its own
    photo's world, the first being the bundle's photo. With keys, the posed mesh gets the first photo's correctives
    (the bundle becomes format 3). Returns the correctives (None: fewer than :data:`MIN_POSES` different poses)."""
    from .rig import pose_relative_to_rest

    if len(fits) < MIN_POSES:
        return None
    angles = np.asarray(rig.rest_pose_angles, dtype=np.float64).reshape(55, 3)
    poses = [pose_relative_to_rest(np.asarray(f.full_pose, dtype=np.float64).reshape(55, 3), angles) for f in fits]
    corr = fit_correctives(rig.rest_vertices, content.rest_mesh.faces, rig.skin_weights, rig.rest_joints, poses,
                           [np.asarray(f.transl, dtype=np.float64).reshape(3) for f in fits],
                           [(s.vertices, s.faces) for s in surfaces], [f.camera for f in fits])
    if corr is None:
        return None
    corr.offsets = np.asarray(corr.offsets, dtype=np.float16).astype(np.float32)  # as the bundle stores them
    content.correctives = corr
    if corr.count:
        parents = np.asarray(PARENTS)
        pose = poses[0]  # the first photo's pose relative to the rig's rest (= rig.pose_from_rest)
        transl = np.asarray(fits[0].transl, dtype=np.float64).reshape(3)
        rest = np.asarray(rig.rest_vertices, dtype=np.float64)
        moved = skin_vertices(rest + corr.displacement(pose), rig.skin_weights, rig.rest_joints, parents, pose, transl)
        plain = skin_vertices(rest, rig.skin_weights, rig.rest_joints, parents, pose, transl)
        content.posed_mesh = replace(content.posed_mesh, vertices=np.asarray(content.posed_mesh.vertices) + moved
                                     - plain)
    return corr
