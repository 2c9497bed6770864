"""Rigging the clothed surface to the SMPL-X skeleton: skin weights, rest mesh and rest joints.

Frames and units: bundle world (SMPL-X frame, Y-up, metres). The posed clothed mesh comes from the surface
stage; the fitted body (posed vertices, full pose, shape, translation) from the fit stage.

Method (docs/texture_rig.md):

1. **Transfer.** Every clothed vertex takes the body's LBS weights at its closest point on the posed body
   surface (exact point–triangle distance plus a penalty for opposed normals, so the underside of a lowered arm
   takes the arm and not the nearby torso; barycentric interpolation of the three corners' weights).
2. **Diffusion.** The weights are then solved over the clothed surface as a screened Laplace problem,
   ``(L + Λ) W = Λ W₀``: vertices close to the body (confidence ``exp(-(d/σ)²)``) keep their transferred
   weights, loose parts far from the body (skirts, hoods, hair) take the harmonic blend of their anchored
   neighbourhood, so a skirt spreads smoothly between both legs instead of tearing along the midline.
3. **Sparsify.** At most ``max_influences`` (default 8) joints per vertex, tiny weights dropped, rows
   normalised, stored as float32.
4. **Rest mesh.** Each vertex's blended transform ``A_v = Σ_j w_j [R_j | G_j − R_j J_j]`` (the bundle's LBS,
   :func:`icon_engine.bundle.skeleton.skin_vertices`) is inverted exactly per vertex:
   ``rest = B_v⁻¹ (posed − transl − t_v)``. Vertices whose blended rotation is near-singular (weights mixing
   opposite rotations) have their weights pulled towards their main joint first.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .bundle.skeleton import (
    NUM_JOINTS,
    PARENTS,
    axis_angle_to_matrix,
    forward_kinematics,
    matrix_to_axis_angle,
    skin_vertices,
)
from .errors import EngineError
from .geometry.barycentric import barycentric_blend
from .geometry.closest import closest_points_on_mesh
from .geometry.laplacian import mesh_edges, mesh_laplacian, spd_solver
from .geometry.lengths import lengths
from .geometry.normals import outward_vertex_normals, signed_volume
from .geometry.skinning import blended_transforms as geometry_blended_transforms
from .threads import cpu_workers

#: Rest poses: "T" = SMPL-X zero pose; "A" = arms lowered by :data:`A_POSE_SHOULDER_DEG` at the shoulders.
REST_POSES = ("T", "A")
#: Shoulder rotation of the A rest pose (degrees about the body's Z axis; left arm down = negative).
A_POSE_SHOULDER_DEG = 45.0
#: Joints of the A pose's shoulder rotation (left_shoulder, right_shoulder).
_SHOULDERS = (16, 17)

#: Confidence length scale of the weight transfer (metres): vertices this far from the body are ~37 % anchored.
TRANSFER_SIGMA = 0.03
#: Anchor strength of a vertex on the body relative to the graph Laplacian (neighbours weigh 1 each).
ANCHOR_STRENGTH = 10.0
#: Where neighbouring clothed vertices take body points much farther apart than themselves (the closest-point map
#: jumps: a crease of the clothing over the crotch or an armpit, whose sides match the thigh and the belly, the arm
#: and the chest), the transferred weights jump too and the anchor gives way to the diffusion: it weighs
#: exp(−(jump / TRANSFER_JUMP_M)²), the jump being the largest excess of the body points' distance over the
#: vertices' own along the vertex's edges (metres).
TRANSFER_JUMP_M = 0.01
#: ... and a jump reaches this far from where it happens (metres), fading linearly.
TRANSFER_JUMP_REACH_M = 0.02
#: Extra cost (metres) of matching a clothed vertex to a body face whose normal points the opposite way.
NORMAL_PENALTY = 0.04
#: Smallest singular value allowed for a vertex's blended rotation before its weights are sharpened.
MIN_BLEND_SINGULAR = 0.3

#: Joints whose neighbourhood the self-intersection check inspects.
_ARMPIT_JOINTS = (16, 17)  # shoulders
_CROTCH_JOINTS = (0, 1, 2)  # pelvis and hips


@dataclass
class Rig:
    """Skinning of the clothed mesh. ``skin_weights`` (N, 55) float32, rows sum to 1, ≤ 8 non-zeros;
    ``rest_vertices`` (N, 3) and ``rest_joints`` (55, 3) in metres, bundle/SMPL-X frame, in the rest pose;
    ``rest_pose`` "T" or "A"; ``rest_pose_angles`` (55, 3) axis-angle that carries the SMPL-X zero pose into the
    rest pose (zeros for "T"); ``pose_from_rest`` (55, 3) the fitted pose expressed relative to the rest pose
    (equals the fitted full pose for "T"); ``stats`` diagnostics (JSON-friendly)."""

    skin_weights: np.ndarray
    rest_vertices: np.ndarray
    rest_joints: np.ndarray
    rest_pose: str = "T"
    rest_pose_angles: np.ndarray = field(default_factory=lambda: np.zeros((NUM_JOINTS, 3)))
    pose_from_rest: np.ndarray = field(default_factory=lambda: np.zeros((NUM_JOINTS, 3)))
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        """Fields for ``bundle.json["rig"]`` (the pipeline merges them in)."""
        meta: dict[str, Any] = {"rest_pose": self.rest_pose, "stats": dict(self.stats)}
        if self.rest_pose != "T":
            meta["rest_pose_angles"] = np.asarray(self.rest_pose_angles).tolist()
            meta["pose_from_rest"] = np.asarray(self.pose_from_rest).tolist()
        return meta


# ----------------------------------------------------------------------------------------------------------------
# Small numpy helpers


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """Tensor or array → numpy array of ``dtype``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# Weights


def transfer_weights(vertices: np.ndarray, body_vertices: np.ndarray, body_faces: np.ndarray,
                     body_weights: np.ndarray, faces: np.ndarray | None = None,
                     normal_penalty: float = NORMAL_PENALTY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body LBS weights at each vertex's closest body surface point → (weights (N, 55), distance (N,) metres,
    the closest body points (N, 3)).

    With the clothed ``faces`` given, the match also respects normals (see :func:`closest_points_on_mesh`)."""
    normals = None if faces is None else outward_vertex_normals(vertices, faces)
    bf = np.asarray(body_faces, dtype=np.int64)
    if normals is not None and signed_volume(body_vertices, bf) < 0:
        bf = bf[:, ::-1]  # the body's faces must wind outward for the normal test
    fi, bary, dist = closest_points_on_mesh(vertices, body_vertices, bf, candidates=32 if normals is not None else 16,
                                            point_normals=normals, normal_penalty=normal_penalty)
    corners = bf[fi]
    return (barycentric_blend(bary, corners, body_weights), dist,
            barycentric_blend(bary, corners, np.asarray(body_vertices, dtype=np.float64)))


def transfer_jumps(vertices: np.ndarray, faces: np.ndarray, closest: np.ndarray,
                   reach: float = TRANSFER_JUMP_REACH_M) -> np.ndarray:
    """(N,) metres: how far the closest-point map jumps near each vertex (``vertices`` (N, 3), ``faces`` (M, 3),
    their ``closest`` body points (N, 3)). A vertex's own jump is the largest excess, over its edges, of the
    distance between the two ends' body points over the edge's length (0 where the map is continuous; a crease
    whose sides match different parts of the body jumps); it reaches the vertices within ``reach`` metres, fading
    linearly to 0 there (the weights are smoothed over a band of the same width at any mesh resolution)."""
    from scipy.spatial import cKDTree

    from .geometry.laplacian import mesh_edges

    e = mesh_edges(faces)
    excess = np.clip(lengths(closest[e[:, 0]] - closest[e[:, 1]])
                     - lengths(vertices[e[:, 0]] - vertices[e[:, 1]]), 0.0, None)
    own = np.zeros(len(vertices))
    np.maximum.at(own, e[:, 0], excess)
    np.maximum.at(own, e[:, 1], excess)
    src = np.flatnonzero(own > 0.1 * TRANSFER_JUMP_M)
    if not len(src):
        return own
    pairs = cKDTree(vertices[src]).sparse_distance_matrix(cKDTree(vertices), reach, output_type="coo_matrix")
    out = np.zeros(len(vertices))
    np.maximum.at(out, pairs.col, own[src[pairs.row]] * (1.0 - pairs.data / reach))
    out[src] = np.maximum(out[src], own[src])  # a distance of 0 is not stored in the sparse matrix
    return out


def diffuse_weights(weights: np.ndarray, faces: np.ndarray, distance: np.ndarray,
                    sigma: float = TRANSFER_SIGMA, strength: float = ANCHOR_STRENGTH,
                    jump: np.ndarray | None = None) -> np.ndarray:
    """Screened Laplace smoothing over the clothed surface: ``(L + Λ) W = Λ W₀``, ``Λ = strength·exp(-(d/σ)²)``,
    times ``exp(−(jump/TRANSFER_JUMP_M)²)`` with the vertices' :func:`transfer_jumps` ``jump`` (N,) when given.

    Vertices on the body keep their weights, loose vertices and creases interpolate harmonically from anchored ones.
    """
    n = len(weights)
    conf = strength * np.exp(-((np.asarray(distance) / sigma) ** 2))
    if jump is not None:
        conf = conf * np.exp(-((np.asarray(jump) / TRANSFER_JUMP_M) ** 2))
    conf = conf + 1e-4
    lap = mesh_laplacian(n, faces)
    system = (lap + sp.diags(conf)).tocsc()
    cols = np.nonzero(np.abs(weights).max(axis=0) > 1e-6)[0]
    rhs = weights[:, cols] * conf[:, None]
    solve = spd_solver(system)
    out = np.zeros_like(weights)

    def solve_columns(ks: np.ndarray) -> None:
        for k in ks:
            out[:, cols[k]] = solve(rhs[:, k])

    # SuperLU's triangular solves release the GIL and only read the factors: the columns split over the cores
    groups = np.array_split(np.arange(len(cols)), max(1, min(cpu_workers(), len(cols))))
    if len(groups) == 1:
        solve_columns(groups[0])
    else:
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="icon-diffuse") as pool:
            list(pool.map(solve_columns, groups))
    return out


def sparsify_weights(weights: np.ndarray, max_influences: int = 8, min_weight: float = 0.01) -> np.ndarray:
    """Keep the ``max_influences`` largest weights ≥ ``min_weight`` per row (at least one), normalise, float32."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    n, j = w.shape
    if max_influences < j:
        drop = np.argpartition(-w, max_influences, axis=1)[:, max_influences:]
        np.put_along_axis(w, drop, 0.0, axis=1)
    top = w.argmax(axis=1)
    small = w < min_weight * w.sum(axis=1, keepdims=True)
    small[np.arange(n), top] = False
    w[small] = 0.0
    empty = w.sum(axis=1) <= 0
    w[empty, 0] = 1.0  # a vertex with no weight at all follows the pelvis
    w /= w.sum(axis=1, keepdims=True)
    w32 = w.astype(np.float32)
    # renormalise in float32 so the stored rows sum to 1 to float32 precision
    return w32 / w32.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------------
# Poses and inverse skinning


def rest_pose_angles(rest_pose: str) -> np.ndarray:
    """(55, 3) axis-angle carrying the SMPL-X zero pose (T) into the named rest pose ("T" or "A")."""
    if rest_pose not in REST_POSES:
        raise EngineError("bad_option", f"Unknown rest pose {rest_pose!r}.", "Use T or A.")
    angles = np.zeros((NUM_JOINTS, 3))
    if rest_pose == "A":
        a = np.radians(A_POSE_SHOULDER_DEG)
        angles[_SHOULDERS[0], 2] = -a  # left arm (+X) down
        angles[_SHOULDERS[1], 2] = a  # right arm (−X) down
    return angles


def pose_relative_to_rest(full_pose: np.ndarray, rest_angles: np.ndarray,
                          parents: tuple[int, ...] = PARENTS) -> np.ndarray:
    """Local axis-angles that give the same global joint rotations as ``full_pose`` but starting from a skeleton
    posed by ``rest_angles`` (both (55, 3), SMPL-X convention). With rest joints = the rest-posed joints, the
    skinned result equals the SMPL-X one."""
    rot_pose = axis_angle_to_matrix(np.asarray(full_pose, dtype=np.float64).reshape(-1, 3))
    rot_rest = axis_angle_to_matrix(np.asarray(rest_angles, dtype=np.float64).reshape(-1, 3))
    n = len(parents)
    glob_pose, glob_rest = np.zeros((n, 3, 3)), np.zeros((n, 3, 3))
    for j in range(n):
        p = parents[j]
        glob_pose[j] = rot_pose[j] if p < 0 else glob_pose[p] @ rot_pose[j]
        glob_rest[j] = rot_rest[j] if p < 0 else glob_rest[p] @ rot_rest[j]
    delta = glob_pose @ np.transpose(glob_rest, (0, 2, 1))  # global rotation from rest to posed
    local = np.zeros_like(delta)
    for j in range(n):
        p = parents[j]
        local[j] = delta[j] if p < 0 else delta[p].T @ delta[j]
    return matrix_to_axis_angle(local)


def blended_transforms(weights: np.ndarray, rest_joints: np.ndarray, pose: np.ndarray,
                       parents: tuple[int, ...] = PARENTS) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex blended LBS transform of the bundle contract: (B (N, 3, 3), t (N, 3)), posed = B v + t
    (:func:`icon_engine.geometry.skinning.blended_transforms` in this module's argument order)."""
    return geometry_blended_transforms(weights, rest_joints, np.asarray(parents), pose)


def _sharpen_singular(weights: np.ndarray, rest_joints: np.ndarray, pose: np.ndarray,
                      limit: float = MIN_BLEND_SINGULAR, rounds: int = 6) -> tuple[np.ndarray, int]:
    """Pull the weights of vertices whose blended rotation is near-singular towards their main joint."""
    w = np.asarray(weights, dtype=np.float64).copy()
    fixed = np.zeros(len(w), dtype=bool)
    for _ in range(rounds):
        blend, _ = blended_transforms(w, rest_joints, pose)
        smin = np.linalg.svd(blend, compute_uv=False)[:, -1]
        bad = smin < limit
        if not bad.any():
            break
        fixed |= bad
        onehot = np.zeros((int(bad.sum()), w.shape[1]))
        onehot[np.arange(len(onehot)), w[bad].argmax(axis=1)] = 1.0
        w[bad] = 0.5 * w[bad] + 0.5 * onehot
    return w, int(fixed.sum())


def unpose_vertices(vertices: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray, pose: np.ndarray,
                    transl: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`icon_engine.bundle.skeleton.skin_vertices`: posed (N, 3) → rest (N, 3)."""
    blend, offset = blended_transforms(weights, rest_joints, pose)
    rhs = np.asarray(vertices, dtype=np.float64) - np.asarray(transl, dtype=np.float64).reshape(1, 3) - offset
    return np.linalg.solve(blend, rhs[..., None])[..., 0]


# ----------------------------------------------------------------------------------------------------------------
# Diagnostics


def _segment_triangle_hits(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(K,) bool: segment p0→p1 crosses triangle (a, b, c) strictly inside (Möller–Trumbore)."""
    d = p1 - p0
    e1, e2 = b - a, c - a
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p0 - a
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", d, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    eps = 1e-9
    return ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)


def _rowdot(x: np.ndarray) -> np.ndarray:
    """(N,) squared length of each row of ``x`` (N, 3)."""
    return np.einsum("ij,ij->i", x, x)


def count_self_intersections(vertices: np.ndarray, faces: np.ndarray, region: np.ndarray,
                             candidates: int = 24) -> int:
    """Number of faces in ``region`` (face mask) crossed by an edge of another region face (sharing no vertex).

    Broad phase: each edge is tested against the ``candidates`` region faces with the nearest centroids (enough
    on an evenly tessellated surface, where a crossing face is always among an edge's close neighbours)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)[region]
    if len(f) < 2:
        return 0
    edges = mesh_edges(f)
    mid = v[edges].mean(axis=1)
    k = int(min(candidates, len(f)))
    centroid = v[f].mean(axis=1)
    # an edge can only cross a face whose centroid lies within half the edge plus the face's circumradius: the
    # largest such reach bounds the search, each pair's own reach drops most of its candidates before any test
    half = 0.5 * np.sqrt(_rowdot(v[edges[:, 1]] - v[edges[:, 0]]))
    radius = np.sqrt(np.max([_rowdot(v[f[:, i]] - centroid) for i in range(3)], axis=0))
    reach = float(half.max() + radius.max())
    dist, near = cKDTree(centroid).query(mid, k=k, distance_upper_bound=reach * (1 + 1e-9))
    near, dist = near.reshape(len(edges), k), dist.reshape(len(edges), k)
    pe, slot = np.nonzero(near < len(f))
    pf = near[pe, slot]
    keep = dist[pe, slot] <= (half[pe] + radius[pf]) * (1 + 1e-9)
    pe, pf = pe[keep], pf[keep]
    # Narrow phase only where the edge's ends lie on opposite sides of the face's plane (a crossing needs it): a
    # few per cent of the candidate pairs
    a = v[f[:, 0]]
    normal = np.cross(v[f[:, 1]] - a, v[f[:, 2]] - a)
    s0 = np.einsum("ij,ij->i", v[edges[pe, 0]] - a[pf], normal[pf])
    s1 = np.einsum("ij,ij->i", v[edges[pe, 1]] - a[pf], normal[pf])
    keep = s0 * s1 < 0
    pe, pf = pe[keep], pf[keep]
    shared = (edges[pe][:, :, None] == f[pf][:, None, :]).any(axis=(1, 2))
    pe, pf = pe[~shared], pf[~shared]
    hit = _segment_triangle_hits(v[edges[pe, 0]], v[edges[pe, 1]], v[f[pf, 0]], v[f[pf, 1]], v[f[pf, 2]])
    return int(len(np.unique(pf[hit])))


def rest_stretched_faces(posed: np.ndarray, rest: np.ndarray, faces: np.ndarray, ratio: float = 3.0) -> int:
    """Faces with an edge over ``ratio`` times (and 2 mm) longer in the rest mesh than in the posed mesh: webs
    where the surface joins parts that the rest pose pulls apart (arms fused to the torso, hands to thighs)."""
    t_p, t_r = np.asarray(posed)[faces], np.asarray(rest)[faces]
    lp = lengths(t_p - np.roll(t_p, 1, axis=1))
    lr = lengths(t_r - np.roll(t_r, 1, axis=1))
    return int(((lr > ratio * lp) & (lr - lp > 0.002)).any(axis=1).sum())


#: Torn face (docs/method.md): its longest edge grows more than TORN_RATIO times and ends over TORN_MIN_M metres.
TORN_RATIO = 3.0
TORN_MIN_M = 0.03


def longest_edges(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(M,) longest edge of each face (mesh units)."""
    t = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    return lengths(t - np.roll(t, 1, axis=1)).max(axis=1)


def torn_faces(reference: np.ndarray, moved: np.ndarray, faces: np.ndarray, ratio: float = TORN_RATIO,
               min_length: float = TORN_MIN_M) -> np.ndarray:
    """(M,) bool: faces whose longest edge in ``moved`` (N, 3) is over ``ratio`` times the one in ``reference``
    (N, 3, same faces) and over ``min_length`` metres: the sheets a re-pose drags between parts that touched."""
    lr, lm = longest_edges(reference, faces), longest_edges(moved, faces)
    return (lm > ratio * lr) & (lm > min_length)


def rest_torn_report(posed: np.ndarray, rest: np.ndarray, faces: np.ndarray) -> str:
    """One line for ``validate``: the rest mesh's torn faces against the posed mesh (:func:`torn_faces`)."""
    torn = torn_faces(posed, rest, faces)
    if not torn.any():
        return "rest mesh: no torn faces (the avatar re-poses without sheets between parts)"
    worst = float(longest_edges(rest, faces)[torn].max())
    return (f"warning: the rest mesh has {int(torn.sum())} torn faces ({100.0 * torn.mean():.2f} %, longest edge "
            f"{worst:.2f} m): faces more than {TORN_RATIO:g}x longer than in the posed mesh, which tear when the "
            "avatar is re-posed; re-run the reconstruction with this engine version")


def _region_faces(vertices: np.ndarray, faces: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    cent = np.asarray(vertices)[np.asarray(faces)].mean(axis=1)
    d = lengths(cent[:, None, :] - centres[None]).min(axis=1)
    return d < radius


def rest_mesh_intersections(rest_vertices: np.ndarray, faces: np.ndarray, rest_joints: np.ndarray,
                            radius: float = 0.15) -> dict[str, int]:
    """Self-intersecting faces of the rest mesh within ``radius`` metres of the armpits and the crotch (the two
    regions on two threads when the cores allow: the k-d queries and numpy release the GIL)."""
    regions = (("armpits", _ARMPIT_JOINTS), ("crotch", _CROTCH_JOINTS))

    def count(joints: tuple[int, ...]) -> int:
        region = _region_faces(rest_vertices, faces, np.asarray(rest_joints)[list(joints)], radius)
        return count_self_intersections(rest_vertices, faces, region)

    if cpu_workers() == 1:
        return {name: count(joints) for name, joints in regions}
    with ThreadPoolExecutor(max_workers=len(regions), thread_name_prefix="icon-rest-check") as pool:
        counts = list(pool.map(count, [joints for _, joints in regions]))
    return {name: n for (name, _), n in zip(regions, counts, strict=True)}


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def _body_arrays(fit: Any, body_model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(posed body vertices (V, 3), faces (F, 3), lbs weights (V, 55), rest joints (55, 3)) of the fit."""
    body_v = _np(fit.vertices).reshape(-1, 3)
    faces = getattr(fit, "faces", None)
    body_f = _np(faces if faces is not None else body_model.faces, np.int64).reshape(-1, 3)
    lbs = _np(body_model.lbs_weights)
    if lbs.ndim != 2 or len(lbs) != len(body_v):
        raise EngineError("internal", f"The fitted body has {len(body_v)} vertices but the body model's skin weights "
                          f"cover {len(lbs)}.", "Rig with the body model the fit used.")
    if lbs.shape[1] != NUM_JOINTS:
        raise EngineError("body_model", f"The body model has {lbs.shape[1]} skinning joints, not {NUM_JOINTS}.",
                          "Use an SMPL-X layout body model (the open body or the official SMPL-X model).")
    betas = _np(fit.betas).reshape(1, -1)
    torch = sys.modules.get("torch")  # a torch body model means torch is loaded; stand-ins take numpy
    if torch is not None and isinstance(body_model, torch.nn.Module):
        with torch.no_grad():
            param = next(iter(body_model.buffers()), None)
            betas_t = torch.as_tensor(betas, dtype=torch.float32, device=param.device if param is not None else None)
            joints = _np(body_model.rest_joints(betas_t)).reshape(-1, 3)[:NUM_JOINTS]
    else:
        joints = _np(body_model.rest_joints(betas)).reshape(-1, 3)[:NUM_JOINTS]
    return body_v, body_f, lbs, joints


def check_rig_inputs(vertices: np.ndarray, faces: np.ndarray, rest_pose: str,
                     max_influences: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a rig request: (rest-pose angles (55, 3), vertices (N, 3) float64, faces (M, 3) int64)."""
    angles = rest_pose_angles(rest_pose)
    if not 1 <= max_influences <= NUM_JOINTS:
        raise EngineError("bad_option", f"max_influences={max_influences} is out of range.", "Use 1 to 55.")
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(v) == 0 or len(f) == 0:
        raise EngineError("internal", "The clothed surface to rig is empty.", "Check the surface stage's output.")
    return angles, v, f


def rig_surface(vertices: np.ndarray, faces: np.ndarray, fit: Any, body_model: Any, rest_pose: str = "T",
                max_influences: int = 8, progress: Any = None) -> Rig:
    """Skin the clothed mesh (``vertices`` (N, 3) bundle world, ``faces`` (M, 3)) to the fitted SMPL-X skeleton.

    ``fit`` needs ``vertices`` (posed body, bundle world), ``faces`` (or ``body_model.faces``), ``full_pose``
    (55, 3), ``betas`` and ``transl`` (3,); ``body_model`` needs ``lbs_weights`` (V, 55) and ``rest_joints(betas)``.
    ``skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, PARENTS, rig.pose_from_rest, transl)``
    reproduces ``vertices`` (for the T rest pose ``pose_from_rest`` is ``fit.full_pose``).
    """
    angles, v, f = check_rig_inputs(vertices, faces, rest_pose, max_influences)

    def report(frac: float, text: str) -> None:
        if progress is not None:
            progress.update(frac, text)

    report(0.05, "Transferring skin weights")
    body_v, body_f, lbs, joints_t = _body_arrays(fit, body_model)
    full_pose = _np(fit.full_pose).reshape(NUM_JOINTS, 3)
    transl = _np(fit.transl).reshape(3)
    w0, dist, closest = transfer_weights(v, body_v, body_f, lbs, faces=f)
    report(0.3, "Smoothing skin weights over the clothing")
    w = diffuse_weights(w0, f, dist, jump=transfer_jumps(v, f, closest))
    w = sparsify_weights(w, max_influences)

    report(0.7, "Unposing to the rest pose")
    if rest_pose == "T":
        rest_joints, pose_rel = joints_t, full_pose.copy()
    else:
        _, rest_joints = forward_kinematics(joints_t, np.asarray(PARENTS), angles)
        pose_rel = pose_relative_to_rest(full_pose, angles)
    w_fixed, n_sharpened = _sharpen_singular(w, rest_joints, pose_rel)
    if n_sharpened:
        w = sparsify_weights(w_fixed, max_influences)
    rest = unpose_vertices(v, w, rest_joints, pose_rel, transl)

    report(0.85, "Checking the rest mesh")
    back = skin_vertices(rest.astype(np.float32), w, rest_joints.astype(np.float32), np.asarray(PARENTS),
                         pose_rel, transl)
    err = np.linalg.norm(back - v, axis=1)
    nnz = (w > 0).sum(axis=1)
    stats: dict[str, Any] = {
        "vertices": int(len(v)),
        "reproduction_error_max_mm": float(err.max() * 1000),
        "transfer_distance_mean_cm": float(dist.mean() * 100),
        "transfer_distance_p95_cm": float(np.percentile(dist, 95) * 100),
        "loose_vertices": int((dist > 2 * TRANSFER_SIGMA).sum()),
        "influences_max": int(nnz.max()),
        "influences_mean": float(nnz.mean()),
        "sharpened_vertices": n_sharpened,
        "rest_intersections": rest_mesh_intersections(rest, f, rest_joints),
        "rest_stretched_faces": rest_stretched_faces(v, rest, f),
    }
    report(1.0, "Rig done")
    return Rig(
        skin_weights=w,
        rest_vertices=rest,
        rest_joints=np.asarray(rest_joints, dtype=np.float64),
        rest_pose=rest_pose,
        rest_pose_angles=angles,
        pose_from_rest=pose_rel,
        stats=stats,
    )
