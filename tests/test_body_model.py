"""The open body (generated from the real anny package) loaded through the real smplx package."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from icon_engine.body_model import BodyModel, describe_body_model, load_body_model, open_body_path
from icon_engine.body_model.open_body import content_hash, open_body_info
from icon_engine.bundle.skeleton import JOINT_NAMES, PARENTS


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return load_body_model()  # builds the open body into the cache on first use


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of each point w.r.t. a triangle mesh (≈1 inside, ≈0 outside)."""
    out = np.zeros(len(points))
    for i, p in enumerate(points):
        a, b, c = (vertices[faces[:, k]] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        div = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
        div += np.einsum("ij,ij->i", c, a) * lb
        out[i] = np.arctan2(det, div).sum() / (2 * math.pi)
    return out


def idx(name: str) -> int:
    return JOINT_NAMES.index(name)


def test_interface_and_skeleton_match_smplx(body: BodyModel) -> None:
    from smplx.joint_names import JOINT_NAMES as SMPLX_NAMES

    assert body.kind == "open"
    assert tuple(SMPLX_NAMES[:55]) == JOINT_NAMES
    assert tuple(body.parents.tolist()) == PARENTS
    assert body.num_betas >= 10 and body.num_expression == 10
    assert body.faces.dtype == np.int64 and body.faces.shape[1] == 3
    assert body.faces.max() == body.num_vertices - 1
    w = body.lbs_weights.numpy()
    assert w.shape == (body.num_vertices, 55) and np.allclose(w.sum(1), 1.0, atol=1e-5) and (w >= 0).all()
    assert body.uv is not None and body.uv.shape == (len(body.faces), 3, 2)
    assert body.uv.min() >= 0.0 and body.uv.max() <= 1.0
    assert len(body.keypoint_names) == 21 and body.keypoint_names[0] == "nose"


def test_generated_file_loads_through_smplx_and_poses(body: BodyModel) -> None:
    import smplx

    raw = smplx.SMPLX(str(open_body_path()), use_pca=False, flat_hand_mean=True)
    rest = raw().vertices
    pose = torch.zeros(1, 63)
    pose[0, 3 * (idx("left_knee") - 1)] = 1.2
    posed = raw(body_pose=pose).vertices
    assert rest.shape == (1, body.num_vertices, 3) and torch.isfinite(posed).all()
    assert (posed - rest).norm(dim=-1).max() > 0.1
    # our own skinning gives the same vertices as smplx itself
    ours = body(body_pose=pose).vertices
    assert torch.allclose(ours, posed, atol=1e-5)


def test_own_skinning_matches_smplx_for_random_shapes_poses_expressions(body: BodyModel) -> None:
    """The body model no longer runs through smplx; the smplx package is the reference here (tests only)."""
    import contextlib
    import io

    import smplx

    with contextlib.redirect_stdout(io.StringIO()):
        ref = smplx.SMPLX(str(open_body_path()), num_betas=10, num_expression_coeffs=10, use_pca=False,
                          flat_hand_mean=True, use_face_contour=False)
    g = torch.Generator().manual_seed(7)
    n = 3
    kw = dict(betas=torch.randn(n, 10, generator=g), global_orient=0.6 * torch.randn(n, 3, generator=g),
              body_pose=0.4 * torch.randn(n, 63, generator=g), left_hand_pose=0.3 * torch.randn(n, 45, generator=g),
              right_hand_pose=0.3 * torch.randn(n, 45, generator=g), jaw_pose=0.2 * torch.randn(n, 3, generator=g),
              leye_pose=0.1 * torch.randn(n, 3, generator=g), reye_pose=0.1 * torch.randn(n, 3, generator=g),
              expression=torch.randn(n, 10, generator=g), transl=torch.randn(n, 3, generator=g))
    ours = body(**kw)
    with torch.no_grad():
        theirs = ref(**kw)
    assert (ours.vertices - theirs.vertices).abs().max() < 1e-5
    assert (ours.joints - theirs.joints[:, :55]).abs().max() < 1e-5


def test_default_reconstruction_never_imports_smplx(tmp_path) -> None:
    """Licence: the out-of-the-box path (open body) runs without the smplx package (docs/licences.md)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (
        "import sys, json\n"
        "from icon_engine.sample import sample_photo_path\n"
        "from icon_engine import reconstruct\n"
        "from icon_engine.options import ReconstructOptions\n"
        "photo = sample_photo_path()\n"
        f"reconstruct(photo, {str(tmp_path)!r}, ReconstructOptions(quality='preview', texture=False))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'smplx')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert len(list(tmp_path.glob("*/bundle.json"))) == 1


def test_batch_size_and_defaults(body: BodyModel) -> None:
    out = body(body_pose=torch.zeros(3, 63))
    assert out.vertices.shape == (3, body.num_vertices, 3)
    assert out.joints.shape == (3, 55, 3) and out.keypoints.shape == (3, 21, 3)
    rest = body()
    assert torch.allclose(rest.joints, body.rest_joints(), atol=1e-6)
    shifted = body(transl=torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(shifted.vertices - rest.vertices, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_canonical_frame_t_pose(body: BodyModel) -> None:
    j = body.rest_joints()[0].numpy()
    v = body().vertices[0].numpy()
    assert np.linalg.norm(j[0]) < 0.02  # pelvis at the origin
    assert 1.5 < v[:, 1].max() - v[:, 1].min() < 1.9  # an average adult, Y-up, metres
    assert j[idx("head"), 1] > j[idx("pelvis"), 1] > j[idx("left_ankle"), 1]  # Y up
    assert j[idx("left_shoulder"), 0] > 0 > j[idx("right_shoulder"), 0]  # left is +X
    kp = dict(zip(body.keypoint_names, body().keypoints[0].numpy(), strict=True))
    assert kp["nose"][2] > j[idx("head"), 2] + 0.05  # faces +Z
    assert kp["left_big_toe"][2] > kp["left_heel"][2] + 0.15
    for side in ("left", "right"):  # arms straight along ±X (T-pose)
        arm = j[[idx(f"{side}_shoulder"), idx(f"{side}_elbow"), idx(f"{side}_wrist")]]
        d = np.diff(arm, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        assert np.all(np.abs(d[:, 0]) > 0.99)


@pytest.mark.parametrize("seed", [0, 1])
def test_joints_inside_mesh_and_anatomical_order(body: BodyModel, seed: int) -> None:
    betas = torch.zeros(1, body.num_betas)
    if seed:
        betas = torch.randn(1, body.num_betas, generator=torch.Generator().manual_seed(seed)).clamp(-2, 2)
    out = body(betas=betas)
    j = out.joints[0].numpy()
    wn = winding_numbers(j, out.vertices[0].numpy(), body.faces)
    assert (wn > 0.5).all(), [JOINT_NAMES[i] for i in np.flatnonzero(wn <= 0.5)]
    for side in ("left", "right"):
        hip, knee, ankle = j[idx(f"{side}_hip")], j[idx(f"{side}_knee")], j[idx(f"{side}_ankle")]
        assert hip[1] > knee[1] > ankle[1]
        assert np.linalg.norm(hip - knee) > 0.25 and np.linalg.norm(knee - ankle) > 0.25
        s, e, w = (j[idx(f"{side}_{n}")] for n in ("shoulder", "elbow", "wrist"))
        sign = 1 if side == "left" else -1
        assert sign * s[0] < sign * e[0] < sign * w[0]
        assert np.linalg.norm(s - e) > 0.2 and np.linalg.norm(e - w) > 0.18
        for finger in ("index", "middle", "ring", "pinky", "thumb"):
            xs = [sign * j[idx(f"{side}_{finger}{k}"), 0] for k in (1, 2, 3)]
            assert sign * w[0] < xs[0] < xs[1] < xs[2]
    spine = [j[idx(n), 1] for n in ("pelvis", "spine1", "spine2", "spine3", "neck", "head")]
    assert all(a < b for a, b in zip(spine, spine[1:], strict=False))
    assert j[idx("left_eye_smplhf"), 2] > j[idx("head"), 2]


def test_left_right_symmetry_within_2mm(body: BodyModel) -> None:
    gen = torch.Generator().manual_seed(3)
    betas = torch.cat([torch.zeros(1, body.num_betas), torch.randn(3, body.num_betas, generator=gen).clamp(-2, 2)])
    out = body(betas=betas)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    for names, pts in ((JOINT_NAMES, out.joints), (body.keypoint_names, out.keypoints)):
        for i, name in enumerate(names):
            twin = name.replace("left", "@").replace("right", "left").replace("@", "right")
            k = names.index(twin)
            err = (pts[:, i] - pts[:, k] * flip).norm(dim=-1).max().item()
            assert err < 0.002, (name, err)


def test_first_shape_coefficient_changes_height_monotonically(body: BodyModel) -> None:
    b = torch.zeros(9, body.num_betas)
    b[:, 0] = torch.linspace(-2, 2, 9)
    y = body(betas=b).vertices[..., 1]
    height = (y.max(dim=1).values - y.min(dim=1).values).numpy()
    assert np.all(np.diff(height) > 0.005), height
    assert height[-1] - height[0] > 0.2


def _moved(body: BodyModel, joint: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    pose = torch.zeros(1, 55, 3)
    pose[0, idx(joint), axis] = math.pi / 2
    rest = body().vertices[0].numpy()
    bent = body(body_pose=pose[:, 1:22].reshape(1, 63)).vertices[0].numpy()
    return rest, np.linalg.norm(bent - rest, axis=1)


def test_elbow_bend_moves_no_torso_or_other_limb(body: BodyModel) -> None:
    j = body.rest_joints()[0].numpy()
    rest, moved = _moved(body, "left_elbow", 1)
    shoulder_x = j[idx("left_shoulder"), 0]
    fixed = rest[:, 0] < shoulder_x  # torso, head, legs and the whole right arm
    assert moved[fixed].max() < 1e-5
    hand = rest[:, 0] > j[idx("left_wrist"), 0]
    assert moved[hand].min() > 0.15  # the forearm and hand really swing


def test_knee_bend_moves_no_torso_or_other_limb(body: BodyModel) -> None:
    j = body.rest_joints()[0].numpy()
    rest, moved = _moved(body, "left_knee", 0)
    fixed = (rest[:, 0] < 0.0) | (rest[:, 1] > j[idx("left_hip"), 1] - 0.05) | (np.abs(rest[:, 0]) > 0.35)
    assert moved[fixed].max() < 1e-5
    foot = rest[:, 1] < j[idx("left_ankle"), 1]
    assert moved[foot & (rest[:, 0] > 0)].min() > 0.2


def test_expression_moves_only_the_face(body: BodyModel) -> None:
    expr = torch.zeros(1, body.num_expression)
    expr[0, 0] = 1.0  # jawOpen
    rest = body().vertices[0]
    opened = body(expression=expr).vertices[0]
    moved = (opened - rest).norm(dim=-1)
    neck_y = body.rest_joints()[0, idx("neck"), 1]
    assert moved.max() > 0.005
    assert moved[rest[:, 1] < neck_y - 0.05].max() < 1e-6


def test_cache_sidecar_and_describe() -> None:
    info = open_body_info()
    assert info is not None and info["num_vertices"] > 10000
    with np.load(open_body_path(), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert content_hash(arrays) == info["content_hash"]
    assert np.abs(arrays["posedirs"]).max() == 0.0  # documented: no pose correctives
    d = describe_body_model()
    assert d["active"] == "open" and d["open_body_built"] and d["content_hash"] == info["content_hash"]
    assert d["anny_version"] == info["anny_version"]


def test_phenotype_sampling_is_deterministic(body: BodyModel) -> None:
    import anny

    from icon_engine.body_model.open_body import ANNY_RIG, sample_phenotypes

    model = anny.Anny(rig=ANNY_RIG, facial_actions="all")
    a = sample_phenotypes(model, 16)
    b = sample_phenotypes(model, 16)
    assert np.array_equal(a, b) and a.shape == (16, len(model.phenotype_labels))
    assert ((a >= 0) & (a <= 1)).all()


def test_jaw_and_eyes_are_rigged(body: BodyModel) -> None:
    rest = body().vertices[0]
    j = body.rest_joints()[0]
    jaw = body(jaw_pose=torch.tensor([[0.3, 0.0, 0.0]])).vertices[0]
    moved = (jaw - rest).norm(dim=-1)
    chin = body().keypoints[0, body.keypoint_names.index("nose")]
    assert moved.max() > 0.01
    assert moved[rest[:, 1] > chin[1] + 0.04].max() < 1e-6  # the skull above the nose stays
    eye = body(leye_pose=torch.tensor([[0.0, 0.4, 0.0]])).vertices[0]
    moved = (eye - rest).norm(dim=-1)
    near_eye = (rest - j[idx("left_eye_smplhf")]).norm(dim=-1) < 0.02
    assert moved.max() > 0.003 and moved[~near_eye].max() < 1e-6


# --------------------------------------------------------------------------------------------------------------
# Face landmarks (iBUG-68 points 17–67)

_MIRROR_PAIRS = [(17 + i, 26 - i) for i in range(5)] + [
    (31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67),
]  # fmt: skip
_MIDLINE = (27, 28, 29, 30, 33, 51, 57, 62, 66)


@pytest.fixture(scope="module")
def landmarks(body: BodyModel) -> dict[int, np.ndarray]:
    """The 51 landmarks of the rest body, keyed by their iBUG-68 index (model frame, metres)."""
    lmk = body(betas=torch.zeros(1, 10)).face_landmarks[0].numpy()
    return {17 + k: p for k, p in enumerate(lmk)}


def test_face_landmarks_count_and_symmetry(body: BodyModel, landmarks: dict[int, np.ndarray]) -> None:
    assert len(landmarks) == 51
    for left, right in _MIRROR_PAIRS:
        a, b = landmarks[left], landmarks[right]
        assert np.linalg.norm(a - b * np.array([-1.0, 1.0, 1.0])) < 0.002, (left, right)
        assert a[0] * b[0] < 0.0 and min(abs(a[0]), abs(b[0])) > 0.002, (left, right)  # one on each side
    for k in _MIDLINE:
        assert abs(landmarks[k][0]) < 0.002, k
    # the subject's right (iBUG 36-41, 17-21, 48) is −X in the SMPL-X frame (its left is +X)
    assert landmarks[36][0] < landmarks[39][0] < 0.0 < landmarks[42][0] < landmarks[45][0]
    assert landmarks[17][0] < landmarks[21][0] < 0.0 < landmarks[22][0] < landmarks[26][0]


def test_face_landmarks_in_anatomical_order(landmarks: dict[int, np.ndarray]) -> None:
    y = {k: p[1] for k, p in landmarks.items()}
    brows = np.mean([y[k] for k in range(17, 27)])
    eyes = np.mean([y[k] for k in range(36, 48)])
    assert brows > eyes + 0.005
    assert eyes > y[30] + 0.02 > y[33] + 0.02  # nose tip below the eyes, subnasale below the tip
    assert y[33] > y[51] > y[62] > y[57]  # subnasale, upper lip, lip line, lower lip
    assert min(y[k] for k in (27, 28, 29, 30)) == y[30] and y[27] > y[28] > y[29] > y[30]  # bridge down to tip
    assert landmarks[30][2] == max(p[2] for p in landmarks.values())  # the nose tip is the most forward point
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):  # upper lid above the lower lid
        assert y[up] > y[low] + 0.003
    for up, low in ((50, 58), (51, 57), (52, 56)):  # upper lip above the lower lip
        assert y[up] > y[low] + 0.008
    # eye corners outside-in: outer corner, inner corner, midline, inner, outer
    assert landmarks[36][0] < landmarks[39][0] < landmarks[27][0] < landmarks[42][0] < landmarks[45][0]
    eye_width = landmarks[45][0] - landmarks[42][0]
    assert 0.018 < eye_width < 0.04
    # mouth corners wider than the nostrils, nose narrower than the outer eye corners
    assert landmarks[54][0] > landmarks[35][0] + 0.003 and landmarks[48][0] < landmarks[31][0] - 0.003
    assert 0.035 < landmarks[54][0] - landmarks[48][0] < 0.065
    assert landmarks[35][0] < landmarks[45][0]


def test_face_landmarks_on_the_skin_and_follow_the_face(body: BodyModel, landmarks: dict[int, np.ndarray]) -> None:
    from scipy.spatial import cKDTree

    verts = body.rest_vertices()[0].numpy()
    pts = np.array([landmarks[k] for k in sorted(landmarks)])
    dist, nearest = cKDTree(verts).query(pts)
    assert dist.max() < 0.006  # on the surface (barycentric), near a vertex
    # on the skin of the face, not on the eyeballs nor inside the mouth: all in front of the eyes' centres
    eyes = body.rest_joints()[0, [idx("left_eye_smplhf"), idx("right_eye_smplhf")]].numpy()
    assert (pts[:, 2] > eyes[:, 2].mean()).all()
    # they move with the head and open with the jaw
    head_turn = torch.zeros(1, 63)
    head_turn[0, 3 * (idx("head") - 1) + 1] = 0.5
    out = body(body_pose=head_turn)
    assert (out.face_landmarks - body().face_landmarks).norm(dim=-1).min() > 0.01
    jaw = body(jaw_pose=torch.tensor([[0.3, 0.0, 0.0]])).face_landmarks[0].numpy()
    assert jaw[57 - 17, 1] < landmarks[57][1] - 0.005  # lower lip drops
    assert abs(jaw[51 - 17, 1] - landmarks[51][1]) < 0.003  # upper lip stays


def test_face_landmarks_through_smplx(body: BodyModel) -> None:
    import smplx

    raw = smplx.SMPLX(str(open_body_path()), use_pca=False, flat_hand_mean=True)
    assert tuple(raw.lmk_faces_idx.shape) == (51,) and tuple(raw.lmk_bary_coords.shape) == (51, 3)
    pose = torch.zeros(1, 63)
    pose[0, 3 * (idx("neck") - 1)] = 0.4
    joints = raw(body_pose=pose).joints
    # smplx appends, after the 55 joints and its 21 vertex keypoints, the 51 landmarks (127 joints, like SMPL-X)
    assert joints.shape[1] == 55 + 21 + 51
    ours = body(body_pose=pose).face_landmarks
    assert torch.allclose(joints[:, -51:], ours, atol=1e-5)
