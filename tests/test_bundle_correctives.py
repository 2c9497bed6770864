"""Pose correctives in the bundle: written as format 3 (``corrective_offsets.npy`` + ``correctives``), read back
exactly, refused when damaged (trust rules), and ``validate`` accepts bundles with and without them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_blender_bundle import make_bundle

from icon_engine.bundle import BundleError, read_bundle, skin_vertices
from icon_engine.bundle.correctives import Correctives


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("corr") / "bo", correctives=True)


def test_round_trip_and_posed_mesh_contract(corrected, tmp_path):
    b = read_bundle(corrected)
    assert b.meta["format_version"] == 3 and b.meta["files"]["corrective_offsets"] == "corrective_offsets.npy"
    c = b.correctives
    assert c.count == 3 and c.offsets.shape == (3, len(b.rest_mesh.vertices), 3)
    assert c.key_joint.tolist() == [18, 19, 4] and b.meta["correctives"]["key_names"][0] == "left_elbow"
    # the posed mesh includes the correctives: rest + displacement(pose), skinned
    again = skin_vertices(b.rest_mesh.vertices + c.displacement(b.full_pose), b.skin_weights, b.rest_joints,
                          b.parents, b.full_pose, b.transl)
    plain = skin_vertices(b.rest_mesh.vertices, b.skin_weights, b.rest_joints, b.parents, b.full_pose, b.transl)
    assert np.abs(again - b.posed_mesh.vertices).max() < 1e-4 < np.abs(plain - b.posed_mesh.vertices).max()
    # without correctives: version 2, no file; with every region dropped: the report, no file, version 2
    plain_dir = make_bundle(tmp_path / "plain")
    assert read_bundle(plain_dir).meta["format_version"] == 2 and read_bundle(plain_dir).correctives is None
    from icon_engine.bundle import BundleContent, write_bundle

    empty = Correctives(np.zeros((0, 3, 3), np.float32), np.zeros(0, np.int64), np.zeros((0, 9)),
                        {"kept": [], "dropped": ["left_elbow"]})
    src = read_bundle(plain_dir)
    content = BundleContent(metadata={k: v for k, v in src.meta.items() if k not in ("format", "format_version",
                                                                                      "files")},
                            posed_mesh=src.posed_mesh, body_mesh=src.body_mesh, rest_mesh=src.rest_mesh,
                            skin_weights=src.skin_weights, rest_joints=src.rest_joints,
                            mask=np.zeros(src.image_size[::-1], bool), correctives=empty)
    dropped = read_bundle(write_bundle(tmp_path / "dropped", content))
    assert dropped.meta["format_version"] == 2 and dropped.correctives is None
    assert dropped.meta["correctives"]["stats"]["dropped"] == ["left_elbow"]


def _tampered(src, tmp_path, name, meta_edit=None, offsets=None):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    meta = json.loads((dst / "bundle.json").read_text())
    if meta_edit:
        meta_edit(meta)
    (dst / "bundle.json").write_text(json.dumps(meta))
    if offsets is not None:
        np.save(dst / "corrective_offsets.npy", offsets, allow_pickle=False)
    return dst


@pytest.mark.parametrize("case", ["shape", "nan", "huge", "joint0", "joint_count", "coeffs", "object"])
def test_damaged_correctives_are_refused(corrected, tmp_path, case):
    good = np.load(corrected / "corrective_offsets.npy")
    edits = {
        "shape": ({}, good[:, :-1]),
        "nan": ({}, np.where(np.arange(good.size).reshape(good.shape) == 7, np.nan, good)),
        "huge": ({}, good * 0 + 2.0),
        "joint0": ({"key_joint": [0, 19, 4]}, None),
        "joint_count": ({"key_joint": [18, 19]}, None),
        "coeffs": ({"key_coeffs": [[1.0] * 8] * 3}, None),
    }
    if case == "object":
        dst = _tampered(corrected, tmp_path, case)
        np.save(dst / "corrective_offsets.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        change, offsets = edits[case]
        dst = _tampered(corrected, tmp_path, case, lambda m: m["correctives"].update(change), offsets)
    with pytest.raises(BundleError, match="corrective|key_"):
        read_bundle(dst)


def test_validate_accepts_bundles_with_and_without_correctives(corrected, tmp_path, repo_root):
    for path in (corrected, make_bundle(tmp_path / "plain")):
        proc = subprocess.run([sys.executable, "-m", "icon_engine", "validate", str(path)], capture_output=True,
                              text=True, timeout=300, cwd=repo_root)
        assert proc.returncode == 0, proc.stderr[-1500:]
        assert "valid bundle v" in proc.stdout
