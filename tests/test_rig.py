"""Rigging: reproduction of the posed mesh, weight sparsity, loose clothing, rest poses, bundle round trip."""

from __future__ import annotations

import numpy as np
import pytest

from bench.repose import capsule_body, dressed_subject, edge_stretch, named_pose, pose_body
from icon_engine.bundle import BundleContent, TriMesh, read_bundle, skin_vertices, write_bundle
from icon_engine.bundle.skeleton import NUM_JOINTS, PARENTS
from icon_engine.errors import EngineError
from icon_engine.rig import (
    closest_points_on_mesh,
    pose_relative_to_rest,
    rest_pose_angles,
    rig_surface,
    torn_faces,
    transfer_weights,
)

PAR = np.asarray(PARENTS)


@pytest.fixture(scope="module")
def body():
    return capsule_body()


@pytest.fixture(scope="module")
def skirt_subject(body):
    return dressed_subject(body, skirt=True)


def _random_pose(seed: int, scale: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pose = rng.normal(0.0, scale, (NUM_JOINTS, 3))
    pose[0] = [0.1, 0.4, -0.05]  # global orientation: turned, slightly tilted
    return pose


def _posed(subject, pose, transl=None):
    return skin_vertices(subject.rest_vertices, subject.weights, subject.body.joints, PAR, pose, transl)


@pytest.fixture(scope="module")
def rigged(body, skirt_subject):
    pose, transl = _random_pose(1), np.array([0.05, 1.02, -0.2])
    posed = _posed(skirt_subject, pose, transl)
    fit = pose_body(body, pose, transl)
    return posed, fit, rig_surface(posed, skirt_subject.faces, fit, body)


def test_rest_mesh_reproduces_the_posed_mesh_within_a_millimetre(rigged):
    posed, fit, rig = rigged
    back = skin_vertices(rig.rest_vertices.astype(np.float32), rig.skin_weights, rig.rest_joints.astype(np.float32),
                         PAR, fit.full_pose, fit.transl)
    err = np.linalg.norm(back - posed, axis=1)
    assert err.max() < 1e-3
    assert rig.stats["reproduction_error_max_mm"] < 1.0
    # the rest mesh really is unposed: it differs from the posed mesh by far more than the bound
    assert np.linalg.norm(rig.rest_vertices - posed, axis=1).mean() > 0.05


def test_weights_are_normalised_sparse_float32(rigged, skirt_subject):
    _, _, rig = rigged
    w = rig.skin_weights
    assert w.dtype == np.float32 and w.shape == (len(skirt_subject.rest_vertices), NUM_JOINTS)
    assert w.min() >= 0.0
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    nnz = (w > 0).sum(axis=1)
    assert nnz.max() <= 8 and nnz.min() >= 1
    assert rig.stats["influences_max"] == nnz.max()


def test_max_influences_option_limits_joints(body, skirt_subject):
    pose = named_pose("photo")
    rig = rig_surface(_posed(skirt_subject, pose), skirt_subject.faces, pose_body(body, pose), body,
                      max_influences=4)
    assert (rig.skin_weights > 0).sum(axis=1).max() <= 4
    with pytest.raises(EngineError):
        rig_surface(_posed(skirt_subject, pose), skirt_subject.faces, pose_body(body, pose), body, max_influences=0)


def test_rest_joints_are_the_bodys_rest_joints(rigged, body):
    _, _, rig = rigged
    np.testing.assert_allclose(rig.rest_joints, body.joints, atol=1e-9)
    assert rig.rest_pose == "T" and not rig.rest_pose_angles.any()


def test_tight_clothing_gets_the_bodys_weights(body):
    subject = dressed_subject(body, skirt=False)
    w, dist, _ = transfer_weights(subject.rest_vertices, body.rest_vertices, body.faces, body.lbs_weights)
    assert np.median(dist) < 0.02
    main_gt = subject.weights.argmax(axis=1)
    assert (w.argmax(axis=1) == main_gt).mean() > 0.9


def test_closest_points_are_exact_on_a_triangle():
    verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    faces = np.array([[0, 1, 2]])
    pts = np.array([[0.2, 0.2, 0.5], [2.0, -1.0, 0.0], [-1.0, 0.5, 0.0]])
    fi, bary, dist = closest_points_on_mesh(pts, verts, faces)
    np.testing.assert_allclose(dist, [0.5, np.sqrt(2.0), 1.0])
    np.testing.assert_allclose(bary[0], [0.6, 0.2, 0.2])
    np.testing.assert_allclose(bary[1], [0.0, 1.0, 0.0])


def test_skirt_stays_connected_when_the_legs_split(body, skirt_subject):
    """Rigged from a standing photo pose, the skirt follows both legs split 90° without tearing."""
    pose = named_pose("photo")
    rig = rig_surface(_posed(skirt_subject, pose), skirt_subject.faces, pose_body(body, pose), body)
    split = named_pose("split")
    moved = skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, PAR, split)
    n_body = len(body.rest_vertices)
    skirt_faces = skirt_subject.faces[(skirt_subject.faces >= n_body).all(axis=1)]
    stretch = edge_stretch(rig.rest_vertices, moved, skirt_faces)
    assert stretch.max() < 3.0
    # the hem really opens up (the skirt follows the legs rather than staying put)
    hem = skirt_subject.rest_vertices[n_body:, 1] < body.joints[0, 1] - 0.35
    hem_idx = np.nonzero(hem)[0] + n_body
    width_rest = np.ptp(rig.rest_vertices[hem_idx, 0])
    width_split = np.ptp(moved[hem_idx, 0])
    assert width_split > 1.3 * width_rest
    # nearest-point weights without diffusion do tear it: the diffusion is what keeps it whole
    naive = np.zeros_like(rig.skin_weights)
    _, nearest = __import__("scipy.spatial", fromlist=["cKDTree"]).cKDTree(body.rest_vertices).query(
        skirt_subject.rest_vertices)
    naive[:] = body.lbs_weights[nearest]
    torn = skin_vertices(skirt_subject.rest_vertices, naive, body.joints, PAR, split)
    assert edge_stretch(skirt_subject.rest_vertices, torn, skirt_faces).max() > 3.0


def test_a_rest_pose_lowers_the_arms_and_still_reproduces(body, skirt_subject):
    pose, transl = _random_pose(2, 0.25), np.array([0.0, 0.9, 0.1])
    posed = _posed(skirt_subject, pose, transl)
    rig = rig_surface(posed, skirt_subject.faces, pose_body(body, pose, transl), body, rest_pose="A")
    assert rig.rest_pose == "A"
    np.testing.assert_allclose(rig.rest_pose_angles, rest_pose_angles("A"))
    # arms down: the wrists sit below the shoulders in the rest pose (they are level in T)
    for shoulder, wrist in ((16, 20), (17, 21)):
        assert rig.rest_joints[wrist, 1] < rig.rest_joints[shoulder, 1] - 0.15
    back = skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, PAR, rig.pose_from_rest, transl)
    assert np.linalg.norm(back - posed, axis=1).max() < 1e-3
    meta = rig.metadata
    assert meta["rest_pose"] == "A" and np.asarray(meta["rest_pose_angles"]).shape == (NUM_JOINTS, 3)


def test_pose_relative_to_rest_is_identity_for_t_and_consistent_for_a(body):
    pose = _random_pose(3)
    np.testing.assert_allclose(pose_relative_to_rest(pose, np.zeros((NUM_JOINTS, 3))), pose, atol=1e-9)
    a = rest_pose_angles("A")
    from icon_engine.bundle.skeleton import forward_kinematics

    _, joints_a = forward_kinematics(body.joints, PAR, a)
    rel = pose_relative_to_rest(pose, a)
    _, posed_t = forward_kinematics(body.joints, PAR, pose)
    _, posed_a = forward_kinematics(joints_a, PAR, rel)
    np.testing.assert_allclose(posed_a, posed_t, atol=1e-9)


def test_fit_from_another_body_model_is_refused(body, skirt_subject):
    fit = pose_body(body, np.zeros((55, 3)))
    fit.vertices = fit.vertices[:-10]
    with pytest.raises(EngineError, match="vertices"):
        rig_surface(skirt_subject.rest_vertices, skirt_subject.faces, fit, body)


def test_unknown_rest_pose_is_a_user_error(body, skirt_subject):
    with pytest.raises(EngineError) as exc:
        rig_surface(skirt_subject.rest_vertices, skirt_subject.faces, pose_body(body, np.zeros((55, 3))), body,
                    rest_pose="Y")
    assert exc.value.code == "bad_option" and "T or A" in exc.value.hint


def test_rest_intersections_are_measured(rigged):
    _, _, rig = rigged
    inter = rig.stats["rest_intersections"]
    assert set(inter) == {"armpits", "crotch"} and all(isinstance(v, int) and v >= 0 for v in inter.values())


def test_bundle_reader_accepts_the_rig(tmp_path, rigged, skirt_subject):
    posed, fit, rig = rigged
    faces = skirt_subject.faces
    content = BundleContent(
        metadata={
            "camera": {"K": np.diag([500.0, 500.0, 1.0]), "R": np.diag([1.0, -1.0, -1.0]), "t": np.array([0, 0, 3.0])},
            "photo": {"size": [64, 48]},
            "body": {"full_pose": fit.full_pose, "transl": fit.transl},
            "rig": rig.metadata,
        },
        posed_mesh=TriMesh(posed, faces),
        body_mesh=TriMesh(fit.vertices, fit.faces),
        rest_mesh=TriMesh(rig.rest_vertices, faces),
        skin_weights=rig.skin_weights,
        rest_joints=rig.rest_joints,
        mask=np.ones((48, 64), dtype=bool),
    )
    bundle = read_bundle(write_bundle(tmp_path / "b", content))
    back = skin_vertices(bundle.rest_mesh.vertices, bundle.skin_weights, bundle.rest_joints, bundle.parents,
                         bundle.full_pose, bundle.transl)
    assert np.linalg.norm(back - bundle.posed_mesh.vertices, axis=1).max() < 1e-3


def test_validate_reports_torn_faces_of_the_rest_mesh(tmp_path, rigged, skirt_subject, capsys):
    """A bundle whose rest mesh drags a vertex 40 cm away (a sheet, as the old un-posing made between touching
    parts) is reported by ``validate``; a clean one is reported clean."""
    from icon_engine.cli import main

    posed, fit, rig = rigged
    faces = skirt_subject.faces

    def bundle_with(rest: np.ndarray, name: str):
        content = BundleContent(
            metadata={
                "camera": {"K": np.diag([500.0, 500.0, 1.0]), "R": np.diag([1.0, -1.0, -1.0]),
                           "t": np.array([0, 0, 3.0])},
                "photo": {"size": [64, 48]}, "body": {"model": "capsule", "full_pose": fit.full_pose,
                                                      "transl": fit.transl},
                "rig": rig.metadata,
            },
            posed_mesh=TriMesh(posed, faces), body_mesh=TriMesh(fit.vertices, fit.faces),
            rest_mesh=TriMesh(rest, faces), skin_weights=rig.skin_weights, rest_joints=rig.rest_joints,
            mask=np.ones((48, 64), dtype=bool),
        )
        return write_bundle(tmp_path / name, content)

    clean = bundle_with(rig.rest_vertices, "clean")
    assert main(["validate", str(clean)]) == 0
    assert "rest mesh: no torn faces" in capsys.readouterr().out
    torn_rest = rig.rest_vertices.copy()
    torn_rest[0] += [0.4, 0.0, 0.0]
    expected = int(torn_faces(posed, torn_rest, faces).sum())
    assert expected >= 3  # every face around vertex 0
    assert main(["validate", str(bundle_with(torn_rest, "torn"))]) == 0
    out = capsys.readouterr().out
    assert f"the rest mesh has {expected} torn faces" in out


@pytest.fixture(scope="module")
def open_body_subject():
    """The real open body (anny-generated, SMPL-X layout) dressed in tight clothes."""
    from bench.repose import open_body

    return dressed_subject(open_body(), skirt=False)


def test_real_open_body_rig_reproduces_and_moves_the_arms_right(open_body_subject):
    """Rigged through the real BodyModel from an arms-down photo pose, raised arms carry their sleeves: the
    underside of the arm follows the arm, not the nearby side of the torso."""
    subject = open_body_subject
    body = subject.body
    photo, transl = named_pose("photo"), np.array([0.02, 1.1, -0.05])
    posed = _posed(subject, photo, transl)
    rig = rig_surface(posed, subject.faces, pose_body(body, photo, transl), body.for_rig)
    back = skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, PAR, photo, transl)
    assert np.linalg.norm(back - posed, axis=1).max() < 1e-3
    expected_joints = body.model.rest_joints().detach().numpy()[0]
    np.testing.assert_allclose(rig.rest_joints, expected_joints, atol=1e-6)
    arms_up = named_pose("arms_up")
    truth = _posed(subject, arms_up)
    ours = skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, PAR, arms_up)
    err = np.linalg.norm(ours - truth, axis=1)
    assert err.max() < 0.04 and err.mean() < 0.002  # nearest-point transfer without normals: 17 cm in the armpits
    assert rig.stats["rest_intersections"]["armpits"] <= 5


def test_intersection_and_web_measures_on_known_geometry():
    from icon_engine.rig import count_self_intersections, rest_stretched_faces

    # two triangles piercing each other, and the same two pulled apart
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, -0.5], [0.3, 0.2, 0.5], [0.2, 0.3, 0.5]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    assert count_self_intersections(verts, faces, np.ones(2, dtype=bool)) == 1  # face 0 is crossed by 2 edges
    apart = verts.copy()
    apart[3:, 2] += 2.0
    assert count_self_intersections(apart, faces, np.ones(2, dtype=bool)) == 0
    stretched = verts.copy()
    stretched[1] = [4.0, 0, 0]
    assert rest_stretched_faces(verts, stretched, faces) == 1
    assert rest_stretched_faces(verts, verts, faces) == 0


def _corner_scene(step: float = 0.003) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A concave corner of a 'body' (a floor y = 0 weighted to joint 0, a wall x = 0 weighted to joint 1, 20 cm
    each, 4 cm wide in z) and a cloth strip 1 cm off it rounding the corner in a 3 cm fillet: (cloth vertices,
    cloth faces, body vertices, body faces, body weights (V, 2))."""
    # cloth profile in the x-y plane: wall down to the fillet, the fillet, then the floor
    straight, arc = round(0.16 / step), round(0.015 * np.pi / step)
    wall = np.stack([np.full(straight, 0.01), np.linspace(0.2, 0.04, straight, endpoint=False)], axis=1)
    theta = np.linspace(np.pi, 1.5 * np.pi, arc, endpoint=False)
    fillet = np.stack([0.04 + 0.03 * np.cos(theta), 0.04 + 0.03 * np.sin(theta)], axis=1)
    floor = np.stack([np.linspace(0.04, 0.2, straight), np.full(straight, 0.01)], axis=1)
    profile = np.concatenate([wall, fillet, floor])
    zs = np.arange(0.0, 0.04 + 1e-9, step)
    cloth = np.array([[x, y, z] for z in zs for x, y in profile])
    n = len(profile)
    faces = []
    for k in range(len(zs) - 1):
        for i in range(n - 1):
            a, b, c, d = k * n + i, k * n + i + 1, (k + 1) * n + i, (k + 1) * n + i + 1
            faces += [[a, b, d], [a, d, c]]
    grid = np.linspace(0.0, 0.2, 11)
    zb = np.linspace(-0.01, 0.05, 4)
    floor_v = np.array([[x, 0.0, z] for z in zb for x in grid])
    wall_v = np.array([[0.0, y, z] for z in zb for y in grid])
    body_faces = []
    for base in (0, len(floor_v)):
        for k in range(len(zb) - 1):
            for i in range(len(grid) - 1):
                a, b = base + k * len(grid) + i, base + k * len(grid) + i + 1
                body_faces += [[a, b, b + len(grid)], [a, b + len(grid), a + len(grid)]]
    body_w = np.concatenate([np.tile([1.0, 0.0], (len(floor_v), 1)), np.tile([0.0, 1.0], (len(wall_v), 1))])
    return cloth, np.array(faces), np.concatenate([floor_v, wall_v]), np.array(body_faces), body_w


def _steepest(weights: np.ndarray, vertices: np.ndarray, edges: np.ndarray) -> float:
    """The first joint's weight's largest change per metre along an edge (E, 2)."""
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    return float((np.abs(weights[edges[:, 0], 0] - weights[edges[:, 1], 0]) / length).max())


def test_a_crease_whose_sides_match_different_body_parts_gets_smooth_weights():
    """Cloth rounding a concave corner of the body takes the floor's weights on one side of the corner's bisector
    and the wall's on the other: the closest-point map jumps there, and so did the weights (a tear where the
    trousers' front crease over the crotch met the thigh in a seated pose). Where the map jumps the anchor gives
    way to the diffusion, and the weights blend over a band ~4 cm wide at any mesh resolution."""
    from icon_engine.geometry.laplacian import mesh_edges
    from icon_engine.rig import diffuse_weights, transfer_jumps

    for step in (0.003, 0.008):
        cloth, faces, body_v, body_f, body_w = _corner_scene(step)
        w0, dist, closest = transfer_weights(cloth, body_v, body_f, body_w)
        np.testing.assert_allclose(np.linalg.norm(cloth - closest, axis=1), dist, atol=1e-9)
        jump = transfer_jumps(cloth, faces, closest)
        assert jump.max() > 0.015  # the map jumps across the bisector by ~2.7 cm
        edges = mesh_edges(faces)
        plain = _steepest(diffuse_weights(w0, faces, dist), cloth, edges)
        smooth = diffuse_weights(w0, faces, dist, jump=jump)
        assert plain > 90.0  # ~0.75 across one edge
        assert _steepest(smooth, cloth, edges) < min(60.0, 0.6 * plain)
        # far from the corner the cloth keeps its own part's weights
        on_floor = cloth[:, 0] > 0.12
        on_wall = cloth[:, 1] > 0.12
        assert smooth[on_floor, 0].min() > 0.95 and smooth[on_wall, 1].min() > 0.95
    # a continuous map (the floor's cloth onto the floor) jumps nowhere
    floor_faces = faces[on_floor[faces].all(axis=1)]
    assert transfer_jumps(cloth, floor_faces, cloth * [1.0, 0.0, 1.0]).max() < 1e-9
