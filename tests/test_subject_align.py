"""Per-part 2-D alignment of another photo to the avatar posed in it (icon_engine.photo_align)."""

from __future__ import annotations

import numpy as np

from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics
from icon_engine.geometry.raster import rasterize
from icon_engine.photo_align import align_to_photo, part_shifts


def _two_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 'torso' box (part 0) and an 'arm' box (part 1) beside it: vertices (N, 3), faces, part labels."""
    import trimesh

    torso = trimesh.creation.box(extents=(0.4, 0.6, 0.2))
    arm = trimesh.creation.box(extents=(0.12, 0.5, 0.12))
    arm.apply_translation((0.35, 0.0, 0.0))
    v = np.vstack([torso.vertices, arm.vertices])
    f = np.vstack([torso.faces, arm.faces + len(torso.vertices)])
    parts = np.r_[np.zeros(len(torso.vertices), int), np.ones(len(arm.vertices), int)]
    return v, f, parts


def _camera() -> Camera:
    K = default_intrinsics(320, 320)
    return Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 2.5]), 320, 320)


def _silhouette(v: np.ndarray, f: np.ndarray, cam: Camera) -> np.ndarray:
    return rasterize(cam.to_camera(v), f, cam.K, cam.width, cam.height).face_index >= 0


def test_each_part_gets_its_own_shift_and_the_mesh_lands_on_the_person() -> None:
    v, f, parts = _two_boxes()
    cam = _camera()
    # the person in the photo: the arm 6 px right and 4 px down of where the fit put it, the torso where it is
    z = cam.to_camera(v)[parts == 1, 2].mean()
    moved = v.copy()
    moved[parts == 1] += (cam.R.T @ np.array([6.0 * z / cam.K[0, 0], 4.0 * z / cam.K[1, 1], 0.0]))
    person = _silhouette(moved, f, cam)
    shifts = part_shifts(v, f, parts, cam, person, 12, 2)
    assert np.allclose(shifts[0], 0.0) and np.abs(shifts[1] - (6.0, 4.0)).max() <= 1.0, shifts
    weights = np.eye(2)[parts]
    aligned, _ = align_to_photo(v, f, weights, cam, person, 12)
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(_silhouette(aligned, f, cam), person) > iou(_silhouette(v, f, cam), person) + 0.03
    assert np.allclose(aligned[parts == 0], v[parts == 0])  # the torso stays
    # a photo that already matches moves nothing
    same, none = align_to_photo(v, f, weights, cam, _silhouette(v, f, cam), 12)
    assert not none.any() and np.array_equal(same, v)
