"""The result bundle: skinning contract, PLY io, atomic writing and the reader's rejections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from icon_engine.bundle import (
    JOINT_NAMES,
    PARENTS,
    BundleContent,
    BundleError,
    TriMesh,
    read_bundle,
    read_ply,
    skin_vertices,
    write_bundle,
    write_ply,
)
from icon_engine.bundle import writer as writer_module
from icon_engine.bundle.skeleton import axis_angle_to_matrix, forward_kinematics, matrix_to_axis_angle


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """Rest joints: each joint a small random offset from its parent (metres)."""
    joints = np.zeros((55, 3))
    for j in range(1, 55):
        joints[j] = joints[PARENTS[j]] + rng.normal(0, 0.08, 3)
    return joints


def _jpeg(image: np.ndarray, exif: bytes | None = None) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _content(rng: np.random.Generator, n_per_joint: int = 4) -> BundleContent:
    joints = _skeleton(rng)
    rest_v = np.repeat(joints, n_per_joint, axis=0) + rng.normal(0, 0.02, (55 * n_per_joint, 3))
    faces = np.array([[i, i + 1, i + 2] for i in range(0, len(rest_v) - 2, 2)])
    weights = rng.random((len(rest_v), 55)) ** 8
    weights /= weights.sum(1, keepdims=True)
    pose = rng.normal(0, 0.3, (55, 3))
    transl = np.array([0.1, 0.9, -0.2])
    posed_v = skin_vertices(rest_v, weights, joints, np.array(PARENTS), pose, transl)
    uv = rng.random((len(faces), 3, 2))
    colors = rng.integers(0, 255, (len(rest_v), 3), dtype=np.uint8)
    meta = {
        "photo": {"name": "p.jpg", "size": [640, 480]},
        "camera": {"K": [[500, 0, 320], [0, 500, 240], [0, 0, 1]], "R": np.diag([1.0, -1, -1]), "t": [0, 1, 3]},
        "body": {"model": "open", "full_pose": pose, "transl": transl, "betas": np.zeros(10)},
        "warnings": ["a warning"],
    }
    return BundleContent(
        metadata=meta,
        posed_mesh=TriMesh(posed_v, faces, colors, uv),
        body_mesh=TriMesh(posed_v, faces),
        rest_mesh=TriMesh(rest_v, faces, colors, uv),
        skin_weights=weights,
        rest_joints=joints,
        mask=rng.random((480, 640)) > 0.5,
        texture=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        photo_bytes=_jpeg(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)),
        photo_suffix=".jpg",
    )


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "subject", _content(np.random.default_rng(0)))


def test_rodrigues_matches_scipy_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    aa = rng.normal(0, 1.2, (200, 3))
    aa[0] = 0.0
    aa[1] = [np.pi - 1e-7, 0, 0]
    m = axis_angle_to_matrix(aa)
    np.testing.assert_allclose(m, Rotation.from_rotvec(aa).as_matrix(), atol=1e-9)
    back = axis_angle_to_matrix(matrix_to_axis_angle(m))
    np.testing.assert_allclose(back, m, atol=1e-6)


def test_skinning_identity_pose_is_translation_only() -> None:
    rng = np.random.default_rng(2)
    c = _content(rng)
    out = skin_vertices(c.rest_mesh.vertices, c.skin_weights, c.rest_joints, np.array(PARENTS), np.zeros((55, 3)),
                        np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out, c.rest_mesh.vertices + [1, 2, 3], atol=1e-12)


def test_skinning_rotates_a_limb_about_its_joint() -> None:
    """A vertex bound to the left knee turns about the knee when only the knee is posed."""
    rng = np.random.default_rng(3)
    joints = _skeleton(rng)
    knee = JOINT_NAMES.index("left_knee")
    vertex = joints[knee] + np.array([0.0, -0.3, 0.05])
    weights = np.zeros((1, 55))
    weights[0, knee] = 1.0
    pose = np.zeros((55, 3))
    pose[knee] = [np.pi / 2, 0, 0]
    out = skin_vertices(vertex[None], weights, joints, np.array(PARENTS), pose)
    expected = joints[knee] + Rotation.from_rotvec([np.pi / 2, 0, 0]).apply(vertex - joints[knee])
    np.testing.assert_allclose(out[0], expected, atol=1e-12)
    # the global orientation rotates everything about the pelvis
    pose[0] = [0, np.pi, 0]
    rot, posed_joints = forward_kinematics(joints, np.array(PARENTS), pose)
    np.testing.assert_allclose(posed_joints[1], Rotation.from_rotvec([0, np.pi, 0]).apply(joints[1] - joints[0]),
                               atol=1e-12)


def test_ply_round_trip_and_trimesh_reads_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    c = _content(rng)
    path = tmp_path / "m.ply"
    write_ply(path, c.posed_mesh)
    back = read_ply(path)
    np.testing.assert_allclose(back.vertices, c.posed_mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, c.posed_mesh.faces)
    np.testing.assert_array_equal(back.colors, c.posed_mesh.colors)
    np.testing.assert_allclose(back.uv, c.posed_mesh.uv, atol=1e-6)
    tm = trimesh.load(path, process=False)  # trimesh splits vertices at UV seams: compare triangle corners
    np.testing.assert_allclose(tm.vertices[tm.faces], c.posed_mesh.vertices[c.posed_mesh.faces], atol=1e-6)
    assert tm.visual.uv is not None and len(tm.visual.uv) == len(tm.vertices)


def test_write_then_read_bundle(bundle_dir: Path) -> None:
    bundle = read_bundle(bundle_dir)
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta["format"] == "icon-blender-bundle" and meta["format_version"] == 1
    assert meta["skeleton"]["joint_names"] == list(JOINT_NAMES)
    assert set(meta["files"]) >= {"posed_mesh", "body_mesh", "rest_mesh", "skin_weights", "rest_joints", "mask",
                                  "texture", "photo"}
    reposed = skin_vertices(bundle.rest_mesh.vertices, bundle.skin_weights, bundle.rest_joints, bundle.parents,
                            bundle.full_pose, bundle.transl)
    np.testing.assert_allclose(reposed, bundle.posed_mesh.vertices, atol=1e-5)
    assert bundle.image_size == (640, 480)
    assert bundle.warnings == ["a warning"]
    assert bundle.file("texture").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["subject"]  # no temporary folders left


def test_failed_write_leaves_nothing_and_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    target = tmp_path / "subject"
    calls = {"n": 0}
    real = writer_module.write_ply

    def failing(path: Path, mesh: TriMesh) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(path, mesh)

    monkeypatch.setattr(writer_module, "write_ply", failing)
    with pytest.raises(OSError):
        write_bundle(target, _content(rng))
    assert list(tmp_path.iterdir()) == []  # no partial bundle

    monkeypatch.setattr(writer_module, "write_ply", real)
    first = _content(rng)
    write_bundle(target, first)
    monkeypatch.setattr(writer_module, "write_ply", failing)
    calls["n"] = 0
    with pytest.raises(OSError):
        write_bundle(target, _content(rng))
    assert [p.name for p in tmp_path.iterdir()] == ["subject"]
    np.testing.assert_allclose(read_bundle(target).posed_mesh.vertices, first.posed_mesh.vertices, atol=1e-6)


def _edit_json(path: Path, change) -> None:
    meta = json.loads((path / "bundle.json").read_text())
    change(meta)
    (path / "bundle.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "bundle.json").unlink(), "bundle.json is missing"),
        (lambda p: (p / "bundle.json").write_text("{not json"), "damaged JSON"),
        (lambda p: _edit_json(p, lambda m: m.update(format="something-else")), "not an icon-blender-bundle"),
        (lambda p: _edit_json(p, lambda m: m.update(format_version=99)), "version 99 is not supported"),
        (lambda p: _edit_json(p, lambda m: m["files"].pop("rest_mesh")), "lacks 'rest_mesh'"),
        (lambda p: _edit_json(p, lambda m: m["files"].update(texture="../x.png")), "plain file name"),
        (lambda p: (p / "skin_weights.npy").unlink(), "'skin_weights.npy' (skin_weights) is missing"),
        (lambda p: np.save(p / "skin_weights.npy", np.ones((3, 55))), "expected ("),
        (lambda p: np.save(p / "skin_weights.npy", np.full((220, 55), 0.5)), "sum to 1"),
        (lambda p: np.save(p / "rest_joints.npy", np.zeros((24, 3))), "expected (55, 3)"),
        (lambda p: (p / "posed_mesh.ply").write_bytes((p / "posed_mesh.ply").read_bytes()[:300]), "truncated"),
        (lambda p: (p / "rest_mesh.ply").write_bytes(b"hello"), "not a PLY"),
        (lambda p: _edit_json(p, lambda m: m["camera"].update(R=[[1, 0, 0], [0, 1, 0], [0, 0, 2]])),
         "not a rotation"),
        (lambda p: _edit_json(p, lambda m: m["body"].update(full_pose=[[0, 0, 0]] * 24)), "full_pose"),
        (lambda p: _edit_json(p, lambda m: m["camera"].pop("K")), "no 'camera.K'"),
        (lambda p: (p / "mask.png").write_bytes(b"GIF89a"), "not a PNG"),
    ],
)
def test_reader_rejects_damaged_bundles(bundle_dir: Path, damage, message: str) -> None:
    damage(bundle_dir)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(bundle_dir)


def test_reader_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        read_bundle(tmp_path / "nope")


def test_reader_rejects_mismatched_rest_mesh(bundle_dir: Path) -> None:
    mesh = read_ply(bundle_dir / "rest_mesh.ply")
    write_ply(bundle_dir / "rest_mesh.ply", TriMesh(mesh.vertices[:-1], mesh.faces[:-2]))
    with pytest.raises(BundleError, match="does not match posed_mesh"):
        read_bundle(bundle_dir)
