"""Several photos fused (icon_engine.avatar.fusion): each photo's confidence is smoothed over space before it weighs
the photo's surface, so photos that disagree by a centimetre leave no step where one photo's confidence switches
(past its silhouette's rim, behind an occluding arm). Stand-in: a bench/synthetic.py person seen from the front
and from the side, the side photo's surface 1.5 cm larger than the front one's (a registration error of that size).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench import synthetic as syn
from icon_engine.avatar import build_fused_avatar
from icon_engine.avatar.fusion import FusedOccupancy
from icon_engine.geometry.laplacian import laplacian_smooth
from icon_engine.mesh_queries import rasterize, vertex_normals


@pytest.fixture(scope="module")
def two_views():
    model = syn.load_open_body()
    s = syn.make_subject(model, 1, kind="tight")
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    side_vertices = s.clothed_vertices + 0.015 * vertex_normals(s.clothed_vertices, s.clothed_faces)
    side_camera = syn.front_camera(side_vertices, 448, 640, yaw_deg=90.0)
    side_mask = rasterize(side_vertices, s.clothed_faces, side_camera).mask
    return model, s, fit, side_vertices, side_camera, side_mask


def _fuse(two_views):
    model, s, fit, side_vertices, side_camera, side_mask = two_views
    return build_fused_avatar([s.clothed_vertices, side_vertices], [s.clothed_faces] * 2, [fit, fit], model,
                              resolution=160, levels=3, smooth=6, face_count=None, cameras=[s.camera, side_camera],
                              mask=s.mask, masks=[s.mask, side_mask])


def _steps(av) -> float:
    """Share of the canonical torso's vertices (between the spine's first and third joints' heights) that stand
    more than 2 mm off the mesh's own lightly smoothed copy (3 rounds) along the normals: a step stands out of it,
    a smooth bulge or ramp does not."""
    v, f = np.asarray(av.canonical_vertices, np.float64), np.asarray(av.faces)
    off = np.abs(np.einsum("ij,ij->i", v - laplacian_smooth(v, f, 3, (0.5,)), vertex_normals(v, f)))
    j = np.asarray(av.canonical_joints)
    torso = (v[:, 1] > j[3, 1]) & (v[:, 1] < j[9, 1]) & (np.abs(v[:, 0] - j[0, 0]) < 0.2)
    return float((off[torso] > 0.002).mean())


def test_a_registration_error_leaves_no_step_where_a_photos_confidence_switches(two_views, monkeypatch):
    smoothed = _steps(_fuse(two_views))
    monkeypatch.setattr(FusedOccupancy, "_smooth_confidence", lambda self, i, x_c, pointwise: pointwise)
    pointwise = _steps(_fuse(two_views))
    assert pointwise > 0.004  # the stand-in does step where the side photo's confidence switches
    assert smoothed < 0.3 * pointwise, (smoothed, pointwise)
