"""Speed work must not change the result: the sample photo's avatar against a stored reference.

The references (``tests/data/regression_sample_{preview,standard}.npz``) were written by
``bench/regression_reference.py`` from the engine before the speed work of issue 16 (the commit is stored in each
file). They hold the canonical avatar stage's inputs (posed clothed surface, fit, camera, mask) and its posed
mesh and silhouette. Checks: silhouette IoU ≥ 0.98 against the reference silhouette, symmetric Chamfer distance
(mean point-to-surface distance both ways, averaged) ≤ 2 mm, no torn rest faces.

The avatar-stage tests re-run only that stage on the stored inputs (so changes of the fit or surface stages do not
move them); the end-to-end test runs the whole pipeline at preview quality (it also moves when another stage's
result changes on purpose: then regenerate the reference, see ``bench/regression_reference.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "bench"))

from regression_reference import (  # noqa: E402
    avatar_from_inputs,
    dequantize,
    reference_camera,
    silhouette,
    unpack_mask,
)

MIN_IOU = 0.98
MAX_CHAMFER_M = 0.002


def symmetric_chamfer(v_a: np.ndarray, f_a: np.ndarray, v_b: np.ndarray, f_b: np.ndarray) -> float:
    """Mean of the two directed mean point-to-surface distances (metres) between meshes a and b (vertices as the
    sample points: both are evenly tessellated marching-cubes meshes)."""
    from icon_engine.mesh_queries import MeshQuery

    a_to_b = np.abs(MeshQuery(v_b, f_b, k=2).signed_distance(v_a)).mean()
    b_to_a = np.abs(MeshQuery(v_a, f_a, k=2).signed_distance(v_b)).mean()
    return float(0.5 * (a_to_b + b_to_a))


def compare(ref: np.lib.npyio.NpzFile, vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    """(silhouette IoU, symmetric Chamfer metres) of a posed mesh against the reference's."""
    sil_ref = unpack_mask(ref, "silhouette")
    sil = silhouette(vertices, faces, reference_camera(ref))
    iou = float((sil & sil_ref).sum() / max((sil | sil_ref).sum(), 1))
    chamfer = symmetric_chamfer(np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                                dequantize(ref["posed_vertices_q"]), ref["posed_faces"].astype(np.int64))
    return iou, chamfer


@pytest.fixture(scope="module")
def body_model():
    from icon_engine.body_model import load_body_model

    return load_body_model(None, device="cpu")


def _reference(quality: str) -> np.lib.npyio.NpzFile:
    return np.load(DATA / f"regression_sample_{quality}.npz")


def test_compare_detects_a_changed_mesh() -> None:
    """The comparison is sensitive: the reference against itself passes, shifted by 5 mm it fails."""
    ref = _reference("preview")
    v, f = dequantize(ref["posed_vertices_q"]), ref["posed_faces"].astype(np.int64)
    iou, chamfer = compare(ref, v, f)
    assert iou > 0.999 and chamfer < 1e-4
    _, chamfer = compare(ref, v + np.array([0.0, 0.0, 0.005]), f)
    assert chamfer > MAX_CHAMFER_M


@pytest.mark.parametrize("quality", ["preview", pytest.param("standard", marks=pytest.mark.slow)])
def test_avatar_stage_matches_reference(quality: str, body_model) -> None:
    ref = _reference(quality)
    avatar = avatar_from_inputs(ref, body_model, quality)
    iou, chamfer = compare(ref, avatar.posed_vertices, avatar.faces)
    print(f"{quality}: IoU {iou:.4f}, Chamfer {chamfer * 1000:.2f} mm, faces {len(avatar.faces)} "
          f"(reference {int(ref['faces'])}), {avatar.stats['time_s']} s")
    assert iou >= MIN_IOU
    assert chamfer <= MAX_CHAMFER_M
    assert avatar.stats["rest_torn_faces"] == 0
    assert avatar.stats["posed_silhouette_iou"] >= float(ref["posed_silhouette_iou"]) - 0.01


@pytest.mark.slow
def test_pipeline_matches_reference(tmp_path: Path, body_model) -> None:
    """The whole pipeline at preview quality on the sample photo reproduces the reference's posed mesh."""
    from icon_engine.bundle import read_bundle
    from icon_engine.options import ReconstructOptions
    from icon_engine.pipeline import reconstruct
    from icon_engine.sample import sample_photo_path

    ref = _reference("preview")
    bundle = read_bundle(reconstruct(sample_photo_path(), tmp_path, ReconstructOptions(quality="preview",
                                                                                        texture=False),
                                     body_model=body_model))
    iou, chamfer = compare(ref, bundle.posed_mesh.vertices, bundle.posed_mesh.faces)
    print(f"pipeline preview: IoU {iou:.4f}, Chamfer {chamfer * 1000:.2f} mm")
    assert iou >= MIN_IOU
    assert chamfer <= MAX_CHAMFER_M
