"""The result bundle: skinning contract, PLY io, atomic writing and the reader's rejections."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from bundle_trust import BUNDLE_FILES, LINK_MESSAGE, file_label, link_outside
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
from icon_engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]


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


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
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
        extra_files={"preview.png": _png(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))},
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
    assert meta["format"] == "icon-blender-bundle" and meta["format_version"] == 2
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


@pytest.mark.parametrize("kind", ["folder of photos", "link to a folder", "dangling link", "file"])
def test_a_target_that_is_not_a_bundle_is_never_replaced(tmp_path: Path, kind: str) -> None:
    """``reconstruct holiday.jpg --out ~/Pictures`` beside the user's ``~/Pictures/holiday/`` replaced that folder,
    photos and all (wave 18). Only a missing target, an empty folder or an earlier bundle is replaced; anything
    else is an output error naming it, with everything left as it was."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.jpg").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "holiday"
    if kind == "folder of photos":
        target.mkdir()
        (target / "beach.jpg").write_text("keep")
    elif kind == "link to a folder":
        target.symlink_to(elsewhere, target_is_directory=True)
    elif kind == "dangling link":
        target.symlink_to(tmp_path / "nowhere")
    else:
        target.write_text("notes")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(EngineError) as err:
        write_bundle(target, _content(np.random.default_rng(0)))
    assert err.value.code == "output" and str(target) in err.value.message and err.value.hint
    assert sorted(p.name for p in out.iterdir()) == before and (elsewhere / "precious.jpg").read_text() == "keep"
    if kind == "folder of photos":
        assert (target / "beach.jpg").read_text() == "keep"


def test_an_empty_folder_or_an_earlier_bundle_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "subject"
    target.mkdir()
    write_bundle(target, _content(np.random.default_rng(0)))
    first = (target / "bundle.json").read_bytes()
    write_bundle(target, _content(np.random.default_rng(1)))
    assert (target / "bundle.json").read_bytes() != first and sorted(p.name for p in tmp_path.iterdir()) == ["subject"]


def test_a_rerun_keeps_the_users_files_in_the_bundle_folder(tmp_path: Path) -> None:
    """A .blend or an export the user saved inside a bundle folder moves into the new bundle; the old bundle's own
    files go. Before wave 19 a rerun deleted them with the old bundle."""
    target = write_bundle(tmp_path / "subject", _content(np.random.default_rng(0)))
    (target / "subject.blend").write_bytes(b"BLENDER work")
    (target / "exports").mkdir()
    (target / "exports" / "subject.fbx").write_bytes(b"fbx")
    (target / "notes.txt").write_text("mine")
    (target / "texture.png").unlink()  # the old bundle had no texture; the user's own texture.png is theirs
    _edit_json(target, lambda m: m["files"].pop("texture", None))
    (target / "texture.png").write_bytes(b"my painting")
    write_bundle(target, _content(np.random.default_rng(1)))
    assert (target / "subject.blend").read_bytes() == b"BLENDER work"
    assert (target / "exports" / "subject.fbx").read_bytes() == b"fbx" and (target / "notes.txt").read_text() == "mine"
    assert (target / "texture (before rerun).png").read_bytes() == b"my painting"
    read_bundle(target)  # the new bundle's own texture.png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]


def test_a_run_killed_after_the_replace_still_keeps_the_users_files(tmp_path: Path) -> None:
    """Killed after the new bundle was renamed in but before the user's files were moved over: the next claim
    moves them, then removes the old copy."""
    from icon_engine.bundle.writer import claim_target

    target = write_bundle(tmp_path / "subject", _content(np.random.default_rng(2)))
    old = tmp_path / ".subject.old-0badc0de"
    target.rename(old)
    (old / "subject.blend").write_bytes(b"work")
    write_bundle(tmp_path / "subject", _content(np.random.default_rng(3)))
    with claim_target(target):
        pass
    assert (target / "subject.blend").read_bytes() == b"work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]


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
        # the add-on builds the armature from the skeleton and finds bones by SMPL-X's names; the add-on's camera
        # needs positive focal lengths (found by mutating bundles: bench/bundle_mutations.py)
        (lambda p: _edit_json(p, lambda m: m.update(skeleton="")), "must list 55 joint names"),
        (lambda p: _edit_json(p, lambda m: m["skeleton"]["parents"].__setitem__(3, None)), "parents must be SMPL-X"),
        (lambda p: _edit_json(p, lambda m: m["skeleton"]["parents"].__setitem__(3, 10**30)), "parents must be SMPL"),
        (lambda p: _edit_json(p, lambda m: m["skeleton"]["parents"].__setitem__(3, 7)), "parents must be SMPL-X"),
        (lambda p: _edit_json(p, lambda m: m["skeleton"]["parents"].__setitem__(4, 1.0)), "parents must be SMPL-X"),
        (lambda p: _edit_json(p, lambda m: m["skeleton"]["joint_names"].__setitem__(0, "../x")),
         "joint 0 is '../x', expected 'pelvis'"),
        (lambda p: (p / "rest_joints.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': "
                                                       b"False, 'shape': (55, 3" + b" " * 60 + b"\n"),
         "not a readable .npy array"),
        (lambda p: _edit_json(p, lambda m: m["camera"].update(R=[[1e308, 0, 0], [0, 1, 0], [0, 0, 1]])),
         "camera.R is not a rotation"),
        (lambda p: _edit_json(p, lambda m: m["camera"]["K"][1].__setitem__(1, 0)), "camera.K is not a camera's"),
        (lambda p: _edit_json(p, lambda m: m["camera"]["K"][2].__setitem__(2, 5)), "camera.K is not a camera's"),
        (lambda p: _edit_json(p, lambda m: m["photo"].update(size=[0, 48])), "photo.size must be"),
        (lambda p: _edit_json(p, lambda m: m["body"]["transl"].__setitem__(2, 1e300)), "body.transl' holds a value"),
        (lambda p: _edit_json(p, lambda m: m["body"]["full_pose"][3].__setitem__(0, 1e9)), "full_pose' holds a"),
        (lambda p: _edit_json(p, lambda m: m.update(rig=float("nan"))), "'rig' must be a JSON object"),
        (lambda p: _edit_json(p, lambda m: m.update(rig={"pose_from_rest": "x"})), "rig.pose_from_rest' is not"),
        (lambda p: _edit_json(p, lambda m: m["body"].update(betas=[0.1, float("nan")])), "body.betas' contains NaN"),
        (lambda p: _edit_json(p, lambda m: m["body"].update(betas="x")), "'body.betas' must be a list"),
        (lambda p: _edit_json(p, lambda m: m["body"].update(betas=[1e9])), "body.betas' holds a value beyond"),
    ],
)
def test_reader_rejects_damaged_bundles(bundle_dir: Path, damage, message: str) -> None:
    damage(bundle_dir)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(bundle_dir)


def test_reader_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        read_bundle(tmp_path / "nope")
    (tmp_path / "a.zip").write_bytes(b"PK")
    with pytest.raises(BundleError, match="a file, not a bundle folder"):
        read_bundle(tmp_path / "a.zip")


def test_reader_rejects_mismatched_rest_mesh(bundle_dir: Path) -> None:
    mesh = read_ply(bundle_dir / "rest_mesh.ply")
    write_ply(bundle_dir / "rest_mesh.ply", TriMesh(mesh.vertices[:-1], mesh.faces[:-2]))
    with pytest.raises(BundleError, match="does not match posed_mesh"):
        read_bundle(bundle_dir)


# ---------------------------------------------------------------------------------------------------------------
# Trust rules: a bundle is untrusted input (issue 19)
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_reader_refuses_a_symlink_of_every_file_kind(bundle_dir: Path, name: str) -> None:
    link_outside(bundle_dir, name)
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)
    assert str(info.value) == f"{bundle_dir}: {file_label(name)} {LINK_MESSAGE}"


def test_reader_refuses_a_link_inside_the_bundle_too(bundle_dir: Path) -> None:
    (bundle_dir / "texture.png").unlink()
    (bundle_dir / "texture.png").symlink_to("mask.png")  # relative, pointing inside: still refused
    with pytest.raises(BundleError, match="'texture.png' \\(texture\\) is a symbolic link"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("make, what", [
    (lambda p: (p.unlink(), os.mkfifo(p)), "a named pipe"),
    (lambda p: (p.unlink(), p.mkdir()), "a folder"),
])
def test_reader_refuses_special_files(bundle_dir: Path, make, what: str) -> None:
    make(bundle_dir / "rest_joints.npy")
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)  # a pipe must not block the reader
    assert str(info.value) == f"{bundle_dir}: 'rest_joints.npy' (rest_joints) is {what}, not a regular file"


def test_reader_refuses_a_hard_to_spot_name(bundle_dir: Path) -> None:
    for bad in ("..", "a\\b.png", "", "bundle.json"):
        _edit_json(bundle_dir, lambda m, bad=bad: m["files"].update(texture=bad))
        with pytest.raises(BundleError, match="must be a plain file name"):
            read_bundle(bundle_dir)


@pytest.mark.parametrize("name, data, message", [
    ("photo.jpg", b"this is a text file, not a photo", "'photo.jpg' (photo) is not a PNG or JPEG image"),
    ("photo.jpg", b"", "'photo.jpg' (photo) is not a PNG or JPEG image"),
    ("texture.png", b"\xff\xd8\xff\xe0 a JPEG named .png", "'texture.png' (texture) is not a PNG image"),
    ("mask.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x00\x00\x01\x00\x00\x08\x00\x00\x00\x00",
     "'mask.png' (mask) is a 65536 × 65536 image (at most 100 megapixels and at least 1 × 1)"),
    ("skin_weights.npy", b"\x80\x04\x95 a pickle", "'skin_weights.npy' (skin_weights) is not a readable .npy array"),
    ("rest_mesh.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex x\nend_header\n",
     "rest_mesh.ply: not a valid PLY file (ValueError"),
])
def test_reader_checks_file_types_by_content(bundle_dir: Path, name: str, data: bytes, message: str) -> None:
    (bundle_dir / name).write_bytes(data)
    with pytest.raises(BundleError, match=re.escape(message)):
        read_bundle(bundle_dir)


def test_reader_refuses_an_object_array_without_unpickling(bundle_dir: Path) -> None:
    np.save(bundle_dir / "rest_joints.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(BundleError, match="Object arrays cannot be loaded when allow_pickle=False"):
        read_bundle(bundle_dir)


def test_reader_bounds_file_sizes(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from icon_engine.bundle import reader

    monkeypatch.setitem(reader.MAX_FILE_BYTES, ".ply", 1 << 20)
    with open(bundle_dir / "body_mesh.ply", "ab") as fh:
        fh.truncate(3 << 20)  # sparse: 3 MB of zeros after the mesh
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)
    assert str(info.value) == (f"{bundle_dir}: 'body_mesh.ply' (body_mesh) is 3 MB, more than the 1 MB a bundle "
                               "file of this kind may have")


def test_reader_names_nan_joints(bundle_dir: Path) -> None:
    joints = np.load(bundle_dir / "rest_joints.npy")
    joints[7, 1] = np.nan
    joints[20, 0] = np.inf
    np.save(bundle_dir / "rest_joints.npy", joints)
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)
    assert str(info.value) == (f"{bundle_dir / 'rest_joints.npy'}: NaN or infinite coordinates in joint(s) 7 "
                               "(left_ankle), 20 (left_wrist)")


def test_reader_checks_image_sizes_against_the_photo(bundle_dir: Path) -> None:
    (bundle_dir / "photo.jpg").write_bytes(_jpeg(np.zeros((640, 480, 3), np.uint8)))  # sideways, no EXIF
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)
    assert str(info.value) == (f"{bundle_dir / 'photo.jpg'}: 480 × 640 pixels as stored, expected the photo's "
                               "640 × 480")


def test_reader_points_from_an_output_folder_to_its_bundles(bundle_dir: Path) -> None:
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir.parent)
    out = bundle_dir.parent
    assert str(info.value) == (f"{out}: not a bundle (bundle.json is missing) but an output folder holding 1 "
                               "bundle(s): subject/")
    assert info.value.hint == f"Give one bundle folder, e.g. {bundle_dir}"


def _exif_rotated_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """A JPEG storing ``upright`` rotated, with the EXIF orientation that turns it upright again (as a phone)."""
    from PIL import Image

    stored = {6: np.rot90(upright, 1), 8: np.rot90(upright, -1), 3: np.rot90(upright, 2)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _jpeg(np.ascontiguousarray(stored), exif.tobytes())


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_writer_stores_the_photo_upright(tmp_path: Path, orientation: int) -> None:
    """A phone photo (pixels stored sideways + EXIF orientation) is stored upright: Blender ignores EXIF."""
    from PIL import Image

    rng = np.random.default_rng(9)
    content = _content(rng)
    upright = np.zeros((480, 640, 3), np.uint8)
    upright[:100, :200] = (255, 0, 0)  # a red block at the top left of the upright photo
    content.photo_bytes = _exif_rotated_jpeg(upright, orientation)
    bundle = read_bundle(write_bundle(tmp_path / "b", content))
    stored = Image.open(bundle.file("photo"))
    assert stored.size == (640, 480) and int(stored.getexif().get(0x0112, 1)) == 1
    assert bundle.photo_orientation == 1
    pixels = np.asarray(stored.convert("RGB")).astype(int)
    assert pixels[:100, :200, 0].mean() > 200 and pixels[:100, :200, 1].mean() < 60  # red at the top left
    assert pixels[380:, 440:].mean() < 30


def test_writer_keeps_an_upright_photo_byte_for_byte(tmp_path: Path) -> None:
    content = _content(np.random.default_rng(10))
    bundle = read_bundle(write_bundle(tmp_path / "b", content))
    assert bundle.file("photo").read_bytes() == content.photo_bytes


def test_writer_png_photo_upright_without_decoding_a_plain_one(tmp_path: Path, monkeypatch) -> None:
    """A PNG with an EXIF orientation (eXIf chunk) is stored upright; one without metadata chunks is kept byte for
    byte and never decoded (the writer walks its chunk headers)."""
    import io

    from PIL import Image, PngImagePlugin

    from icon_engine.bundle.writer import upright_photo

    upright = np.zeros((48, 64, 3), np.uint8)
    upright[:10, :20] = (255, 0, 0)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(buf, format="PNG", exif=exif.tobytes())
    stored, suffix = upright_photo(buf.getvalue())
    pixels = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB")).astype(int)
    assert suffix == ".png" and pixels.shape == (48, 64, 3) and pixels[:10, :20, 0].mean() > 200

    plain = io.BytesIO()
    Image.fromarray(upright).save(plain, format="PNG")
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("decoded a plain PNG"))
    assert upright_photo(plain.getvalue()) == (plain.getvalue(), ".png")


def test_writer_waits_for_an_extra_file_made_on_another_thread(tmp_path: Path) -> None:
    """``extra_files`` may hold the Future of a file's bytes (the pipeline's preview, still encoding): the writer
    writes the rest first and waits for it; a failed Future leaves no bundle and no temporary folder behind."""
    import threading
    from concurrent.futures import Future

    content = _content(np.random.default_rng(15))
    png = content.extra_files["preview.png"]
    late: Future = Future()
    content.extra_files["preview.png"] = late
    threading.Timer(0.2, lambda: late.set_result(png)).start()
    bundle = read_bundle(write_bundle(tmp_path / "b", content))
    assert bundle.file("preview").read_bytes() == png and bundle.meta["files"]["preview"] == "preview.png"

    failed: Future = Future()
    failed.set_exception(ValueError("the preview failed"))
    content.extra_files["preview.png"] = failed
    with pytest.raises(ValueError, match="the preview failed"):
        write_bundle(tmp_path / "c", content)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_reader_accepts_an_older_bundle_with_a_rotated_photo(bundle_dir: Path) -> None:
    """Bundles written before the upright rule may hold the phone's rotated JPEG: accepted, orientation exposed
    (the importer applies it)."""
    (bundle_dir / "photo.jpg").write_bytes(_exif_rotated_jpeg(np.zeros((480, 640, 3), np.uint8), 6))
    assert read_bundle(bundle_dir).photo_orientation == 6


# ---------------------------------------------------------------------------------------------------------------
# Disk full, claims, stale temporary folders (issue 19)
# ---------------------------------------------------------------------------------------------------------------


def test_disk_full_is_an_output_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import shutil

    from icon_engine.errors import EngineError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.np, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    out = tmp_path / "new" / "out"
    with pytest.raises(EngineError) as info:
        write_bundle(out / "subject", _content(np.random.default_rng(11)))
    err = info.value
    assert err.code == "output" and err.exit_code == 6
    assert err.message == f"Not enough disk space to write the bundle subject in {out} (5 MB free)."
    assert err.hint == "Free some disk space or choose a folder on another disk for --out; nothing was written."
    assert list(tmp_path.iterdir()) == []  # not even the folders it created


def test_a_claimed_target_is_refused_and_a_dead_claim_is_not(tmp_path: Path) -> None:
    from icon_engine.bundle.writer import claim_target
    from icon_engine.errors import EngineError

    target = tmp_path / "subject"
    child = subprocess.Popen([sys.executable, "-c", CLAIM_AND_WAIT, str(target)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout.readline().strip() == "claimed"
        with pytest.raises(EngineError) as info:
            write_bundle(target, _content(np.random.default_rng(12)))
        assert info.value.exit_code == 6
        assert info.value.message == f"{target} is being written by another reconstruction (process {child.pid})."
        assert (tmp_path / ".subject.partial-live").is_dir()  # the live run's folder is left alone
    finally:
        child.kill()  # SIGKILL: the OS drops its lock; the lock file and its temporary folder stay behind
        child.wait()
    assert (tmp_path / ".subject.lock").exists() and (tmp_path / ".subject.partial-live").is_dir()
    with claim_target(target):
        assert not (tmp_path / ".subject.partial-live").exists()
    write_bundle(target, _content(np.random.default_rng(12)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]


CLAIM_AND_WAIT = """
import sys, time
from pathlib import Path
from icon_engine.bundle.writer import claim_target
target = Path(sys.argv[1])
with claim_target(target):
    (target.parent / ".subject.partial-live").mkdir()
    print("claimed", flush=True)
    time.sleep(120)
"""


def test_sigkill_during_a_write_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    """A real process killed with SIGKILL while writing leaves its temporary folder; the next write of the same
    target removes it (and the temporary folders of other targets are left alone)."""
    target = tmp_path / "subject"
    (tmp_path / ".other.partial-12345678").mkdir()
    child = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, str(target)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}"))
    try:
        assert child.stdout.readline().strip() == "writing"
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".subject.partial-")]
        assert len(partial) == 1 and any(partial[0].iterdir())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert partial[0].is_dir()
    write_bundle(target, _content(np.random.default_rng(13)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-12345678", "subject"]
    read_bundle(target)


SLOW_WRITE = """
import sys, time
from pathlib import Path
import numpy as np
from icon_engine.bundle import writer
from test_bundle import _content
real = writer.write_ply
def slow(path, mesh):
    real(path, mesh)
    print("writing", flush=True)
    time.sleep(120)
writer.write_ply = slow
writer.write_bundle(Path(sys.argv[1]), _content(np.random.default_rng(0)))
"""


def test_a_bundle_moved_aside_by_a_killed_replace_is_put_back(tmp_path: Path) -> None:
    """Killed between moving the old bundle aside and renaming the new one in: the next claim restores it."""
    from icon_engine.bundle.writer import claim_target

    target = write_bundle(tmp_path / "subject", _content(np.random.default_rng(14)))
    target.rename(tmp_path / ".subject.old-0badc0de")
    (tmp_path / ".subject.partial-0badc0de").mkdir()
    with claim_target(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]
    read_bundle(target)
    (tmp_path / ".subject.old-12345678").mkdir()  # the target exists: a leftover copy is removed
    with claim_target(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow(orientation: int) -> None:
    """The importer's pixel turn for older bundles equals what Pillow (and every viewer) does with the EXIF tag,
    and the reader reads the tag from the JPEG's bytes."""
    import io

    from PIL import Image, ImageOps

    from icon_engine.bundle.reader import apply_orientation, jpeg_info

    stored = np.random.default_rng(orientation).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    assert jpeg_info(buf.getvalue()) == (10, 6, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    decoded = np.asarray(Image.open(buf))
    np.testing.assert_array_equal(apply_orientation(decoded, orientation), expected)


def _subject_block(n_used: int = 2) -> dict:
    camera = {"convention": "opencv", "K": [[900.0, 0, 320], [0, 900.0, 240], [0, 0, 1]],
              "R": np.eye(3).tolist(), "t": [0.0, -1.0, 3.0], "width": 640, "height": 480}
    photos = [{"label": f"p{i}.jpg", "status": "used", "full_pose": np.zeros((55, 3)).tolist(),
               "transl": [0.0, 0.9, 0.0], "camera": camera} for i in range(n_used)]
    photos.append({"label": "empty.png", "status": "no_person"})
    return {"photos": photos, "used": n_used, "betas": [0.0] * 10, "stature_m": 1.7}


def test_several_photo_block_is_read_and_both_versions_accepted(bundle_dir: Path) -> None:
    assert read_bundle(bundle_dir).meta["format_version"] == 2 and read_bundle(bundle_dir).views == []
    _edit_json(bundle_dir, lambda m: m.update(subject=_subject_block()))
    views = read_bundle(bundle_dir).views
    assert [(v.label, v.status) for v in views] == [("p0.jpg", "used"), ("p1.jpg", "used"), ("empty.png", "no_person")]
    assert views[1].full_pose.shape == (55, 3) and views[1].image_size == (640, 480) and views[2].K is None
    _edit_json(bundle_dir, lambda m: (m.pop("subject"), m.update(format_version=1)))
    assert read_bundle(bundle_dir).views == []  # format 1 bundles still read


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.update(photos=[]), "non-empty list"),
        (lambda s: s["photos"][0].pop("status"), "needs a label and a status"),
        (lambda s: s["photos"][1].update(full_pose=[[0, 0, 0]] * 3), r"subject.photos\[1\].full_pose"),
        (lambda s: s["photos"][0]["camera"].update(width=-5), "camera width and height"),
        (lambda s: s["photos"][0].update(transl=[0.0, float("nan"), 0.0]), "NaN"),
        (lambda s: [p.update(status="poor_fit") for p in s["photos"]], "no photo of the subject is marked as used"),
    ],
)
def test_reader_rejects_a_damaged_several_photo_block(bundle_dir: Path, damage, message: str) -> None:
    block = _subject_block()
    damage(block)
    _edit_json(bundle_dir, lambda m: m.update(subject=block))
    with pytest.raises(BundleError, match=message):
        read_bundle(bundle_dir)


def test_writer_stores_an_avif_photo_as_a_jpeg(tmp_path: Path) -> None:
    """Blender reads no AVIF: the bundle's photo is a JPEG of it (a HEIC is one already: image_io decodes it)."""
    import io

    from PIL import Image, features

    from icon_engine.bundle.writer import upright_photo

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    card = np.zeros((48, 64, 3), np.uint8)
    card[:, :32] = (230, 20, 20)
    buf = io.BytesIO()
    Image.fromarray(card).save(buf, format="AVIF", quality=95)
    stored, suffix = upright_photo(buf.getvalue())
    image = Image.open(io.BytesIO(stored))
    assert suffix == ".jpg" and image.format == "JPEG" and image.size == (64, 48)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels[:, :28, 0].mean() > 180 and pixels[:, 36:, 0].mean() < 60
