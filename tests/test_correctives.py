"""Pose correctives (icon_engine.correctives): recovered from photos of a body whose clothes deform with the pose,
dropped where they do not help, compressed into shape keys whose evaluation is the bundle's contract."""

from __future__ import annotations

import numpy as np
import pytest
from test_blender_bundle import random_pose, synthetic_joints

from icon_engine.bundle import PARENTS, skin_vertices
from icon_engine.bundle.correctives import Correctives, pose_features
from icon_engine.correctives import compress, distinct_poses, driving_joints, fit_correctives, predict

ELBOW, KNEE = 18, 4  # left_elbow, left_knee


def limb_body(joints: np.ndarray, ring: int = 24, rings: int = 14, radius: float = 0.05):
    """Fine tubes for the left arm and leg bones (shoulder→elbow→wrist, hip→knee→ankle), skinned with a smooth
    blend across each joint: (V, 3) vertices, (F, 3) faces, (V, 55) weights, (V, 3) outward directions."""
    verts, faces, weights, outward = [], [], [], []
    ang = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    for parent, child in ((16, ELBOW), (ELBOW, 20), (1, KNEE), (KNEE, 7)):
        a, b = joints[parent], joints[child]
        d = (b - a) / np.linalg.norm(b - a)
        u = np.cross(d, [0.0, 0.0, 1.0])
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        base = len(verts)
        for k, f in enumerate(np.linspace(0.0, 1.0, rings)):
            c = a + (b - a) * f
            w = np.zeros(55)
            blend = np.clip((f - 0.75) / 0.5 + 0.5, 0.0, 1.0) if child in (ELBOW, KNEE) else np.clip(
                0.5 - f / 0.5, 0.0, 0.5)  # upper bone → child joint near its end; lower bone ← parent near its start
            if child in (ELBOW, KNEE):
                w[parent], w[child] = 1.0 - blend, blend
            else:
                w[parent], w[PARENTS[parent]] = 1.0 - blend, blend
            for t in ang:
                n = np.cos(t) * u + np.sin(t) * v
                verts.append(c + radius * n)
                outward.append(n)
                weights.append(w)
            if k:
                for i in range(ring):
                    i0, i1 = base + (k - 1) * ring + i, base + (k - 1) * ring + (i + 1) % ring
                    faces += [[i0, i1, i0 + ring], [i1, i1 + ring, i0 + ring]]
    return np.array(verts), np.array(faces, dtype=np.int64), np.array(weights), np.array(outward)


@pytest.fixture(scope="module")
def body():
    joints = synthetic_joints()
    rest, faces, weights, outward = limb_body(joints)
    return rest, faces, weights, joints, driving_joints(weights), outward


def true_offsets(pose: np.ndarray, drivers: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Ground truth: the left elbow's and left knee's regions bulge along the normal with their joint's bend
    (a linear function of the joint's rotation matrix: its turn about one axis and its cos θ − 1)."""
    rot = pose_features(pose).reshape(55, 3, 3) + np.eye(3)
    amount = np.zeros(len(drivers))
    for j, (axis, gain) in ((ELBOW, (1, 0.02)), (KNEE, (0, 0.015))):
        antisym = 0.5 * (rot[j] - rot[j].T)
        turn = (antisym[2, 1], antisym[0, 2], antisym[1, 0])[axis]
        amount[drivers[:, 0] == j] = gain * (turn - 0.5 * (np.trace(rot[j]) - 3.0))
    return amount[:, None] * outward


def photos(body, poses, noise=0.0, seed=0, corrective=True):
    rest, faces, weights, joints, drivers, outward = body
    rng = np.random.default_rng(seed)
    surfaces, transls = [], []
    for i, pose in enumerate(poses):
        transl = np.array([0.1 * i, 0.0, -0.05 * i])
        moved = rest + (true_offsets(pose, drivers, outward) if corrective else 0.0)
        posed = skin_vertices(moved, weights, joints, np.array(PARENTS), pose, transl)
        surfaces.append((posed + rng.normal(scale=noise, size=posed.shape), faces))
        transls.append(transl)
    return surfaces, transls


def test_correctives_recover_pose_dependent_bulges_on_a_held_out_pose(body):
    rest, faces, weights, joints, drivers, outward = body
    poses = [random_pose(s, scale=0.5) for s in range(1, 9)]
    assert distinct_poses(poses) == 8
    surfaces, transls = photos(body, poses, noise=0.001)
    corr = fit_correctives(rest, faces, weights, joints, poses, transls, surfaces)
    assert corr is not None and corr.count > 0
    assert {"left_elbow", "left_knee"} <= set(corr.stats["kept"])
    loo = corr.stats["leave_one_out_cm"]
    assert loo["left_elbow"]["with"] < 0.6 * loo["left_elbow"]["without"]
    # a pose none of the photos showed: the corrected avatar is much closer to the truth than plain skinning
    held = random_pose(99, scale=0.5)
    truth = skin_vertices(rest + true_offsets(held, drivers, outward), weights, joints, np.array(PARENTS), held)
    plain = skin_vertices(rest, weights, joints, np.array(PARENTS), held)
    fixed = skin_vertices(rest + corr.displacement(held), weights, joints, np.array(PARENTS), held)
    region = np.isin(drivers[:, 0], [ELBOW, KNEE])
    err_plain = np.linalg.norm(plain - truth, axis=1)[region].mean()
    err_fixed = np.linalg.norm(fixed - truth, axis=1)[region].mean()
    assert err_plain > 0.003 and err_fixed < 0.5 * err_plain, (err_plain, err_fixed)
    # elsewhere nothing moves much, and the rest pose is untouched (features vanish at the rest pose)
    assert np.linalg.norm(fixed - truth, axis=1)[~region].mean() < 0.003
    assert np.abs(corr.displacement(np.zeros((55, 3)))).max() == 0.0
    # the keys are driven by the joints that were kept, at most a few per joint
    assert set(corr.key_joint.tolist()) <= {j for j in range(1, 22)}
    assert corr.offsets.shape == (corr.count, len(rest), 3) and corr.key_coeffs.shape == (corr.count, 9)


def test_no_pose_dependence_or_too_few_poses_gives_no_correctives(body):
    rest, faces, weights, joints, drivers, outward = body
    poses = [random_pose(s, scale=0.5) for s in range(1, 7)]
    surfaces, transls = photos(body, poses, noise=0.002, seed=3, corrective=False)
    corr = fit_correctives(rest, faces, weights, joints, poses, transls, surfaces)
    assert corr is not None and corr.count == 0 and corr.stats["kept"] == [] and corr.stats["dropped"]
    # 4 photos in 3 poses (two the same): not enough
    same = [poses[0], poses[0] + 0.01, poses[1], poses[2]]
    assert distinct_poses(same) == 3
    surfaces, transls = photos(body, same)
    assert fit_correctives(rest, faces, weights, joints, same, transls, surfaces) is None


def test_compression_keeps_the_basis_and_evaluation_matches():
    rng = np.random.default_rng(0)
    n = 40
    drivers = np.stack([np.full(n, ELBOW), np.where(np.arange(n) < 20, KNEE, -1)], axis=1)
    bases = np.zeros((n, 2, 3, 9))
    bases[:, 0] = rng.normal(size=(n, 3, 1)) * rng.normal(size=(1, 1, 9))  # the elbow's: rank 1
    bases[:20, 1] = rng.normal(size=(20, 3, 9)) * 0.01  # the knee's: full rank 9, capped at 4 keys
    offsets, key_joint, key_coeffs = compress(bases, drivers)
    assert key_joint.tolist().count(ELBOW) == 1 and key_joint.tolist().count(KNEE) == 4
    pose = random_pose(5)
    f = pose_features(pose)
    elbow = key_joint == ELBOW
    got = Correctives(offsets[elbow], key_joint[elbow], key_coeffs[elbow]).displacement(pose)
    assert np.abs(got - np.einsum("nce,e->nc", bases[:, 0], f[ELBOW])).max() < 1e-5  # rank 1: exact
    full = Correctives(offsets, key_joint, key_coeffs).displacement(pose)
    exact = predict(bases, drivers, f)
    assert np.abs(full - exact).max() < 0.2 * np.abs(exact).max()  # 4 of 9 knee directions: close, not exact


def test_attach_correctives_puts_them_in_the_bundle(body, tmp_path):
    """The subject run's hook: correctives into the bundle content, the posed mesh in the first photo's pose with
    them, written as format 3 and read back; fewer than 4 photos leave the content alone."""
    from types import SimpleNamespace

    from icon_engine.bundle import BundleContent, TriMesh, read_bundle, write_bundle
    from icon_engine.correctives import attach_correctives

    rest, faces, weights, joints, drivers, outward = body
    poses = [random_pose(s, scale=0.5) for s in range(1, 8)]
    surfaces, transls = photos(body, poses, noise=0.001)
    parents = np.array(PARENTS)
    plain = skin_vertices(rest, weights, joints, parents, poses[0], transls[0])
    content = BundleContent(
        metadata={"photo": {"size": [8, 8], "name": "a.png"},
                  "camera": {"K": np.eye(3), "R": np.eye(3), "t": np.zeros(3)},
                  "body": {"full_pose": poses[0], "transl": transls[0]}, "rig": {"rest_pose": "T"}},
        posed_mesh=TriMesh(plain, faces), body_mesh=TriMesh(plain, faces), rest_mesh=TriMesh(rest, faces),
        skin_weights=weights.astype(np.float32), rest_joints=joints.astype(np.float32),
        mask=np.zeros((8, 8), bool))
    rig = SimpleNamespace(rest_vertices=rest, skin_weights=weights, rest_joints=joints, rest_pose="T",
                          rest_pose_angles=np.zeros((55, 3)), pose_from_rest=poses[0])
    fits = [SimpleNamespace(full_pose=p, transl=t, camera=None) for p, t in zip(poses, transls, strict=True)]
    surf = [SimpleNamespace(vertices=v, faces=f) for v, f in surfaces]
    assert attach_correctives(content, rig, fits[:3], surf[:3]) is None and content.correctives is None
    corr = attach_correctives(content, rig, fits, surf)
    assert corr is content.correctives and corr.count > 0
    truth = surfaces[0][0]
    assert np.abs(content.posed_mesh.vertices - truth).max() < np.abs(plain - truth).max()
    b = read_bundle(write_bundle(tmp_path / "b", content))
    assert b.meta["format_version"] == 3 and b.correctives.count == corr.count
    again = skin_vertices(b.rest_mesh.vertices + b.correctives.displacement(poses[0]), b.skin_weights,
                          b.rest_joints, parents, poses[0], transls[0])
    assert np.abs(again - b.posed_mesh.vertices).max() < 1e-4
