"""The far half of a face seen turned takes its near half's photo colours, mirrored through the photo's own face
midline (``icon_engine.texture.face_mirror``, wave 26)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from icon_engine.camera import Camera
from icon_engine.render import render_colors
from icon_engine.texture import PART_HEAD, bake_texture
from icon_engine.texture.face_mirror import face_mirror_plane

SKIN, EYE = np.array([205.0, 150.0, 120.0]), np.array([30.0, 50.0, 200.0])
CENTRE = np.array([0.0, 1.6, 0.0])
AXES = np.array([0.08, 0.12, 0.1])  # a head 24 cm tall, 16 cm wide, the face towards +Z (rest pose)
#: The photo's face lies 1.5 cm to the head's left of the mesh's own midline (a hood, a bun, hair on one side
#: move the mesh's midline off the face on the dev photos).
FACE_X = 0.015
EYE_HALF_SPAN, EYE_Y = 0.032, 0.012


def _surface_point(x: float, y: float) -> np.ndarray:
    """The point of the head's front (z > 0) at lateral ``x`` and height ``y`` above the centre (metres)."""
    u = 1.0 - (x / AXES[0]) ** 2 - (y / AXES[1]) ** 2
    return CENTRE + np.array([x, y, AXES[2] * math.sqrt(u)])


def _camera(yaw_deg: float, size: int = 240) -> Camera:
    """A camera 0.6 m from the head, turned ``yaw_deg`` about +Y from the face's front towards its left (+X)."""
    yaw = math.radians(yaw_deg)
    eye = CENTRE + 0.6 * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    z = (CENTRE - eye) / np.linalg.norm(CENTRE - eye)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = np.array([[500.0, 0.0, size / 2], [0.0, 500.0, size / 2], [0.0, 0.0, 1.0]])
    return Camera(K, R, -R @ eye, size, size)


def _head() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, colours): a head with two blue eyes symmetric about x = FACE_X."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    v = np.asarray(mesh.vertices) * AXES + CENTRE
    rel = v - CENTRE
    eye = np.zeros(len(v), dtype=bool)
    for side in (-1.0, 1.0):
        eye |= ((np.abs(rel[:, 0] - (FACE_X + side * EYE_HALF_SPAN)) < 0.01) & (np.abs(rel[:, 1] - EYE_Y) < 0.008)
                & (rel[:, 2] > 0))
    return v, np.asarray(mesh.faces), np.where(eye[:, None], EYE, SKIN)


def _photo(v: np.ndarray, f: np.ndarray, colours: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(photo (H, W, 3) uint8, mask) of the head's flat colours seen by ``cam``."""
    photo, mask = render_colors(cam.to_camera(v), f, cam.K, cam.width, cam.height, colours / 255.0)
    return np.clip(np.round(np.asarray(photo) * 255.0), 0, 255).astype(np.uint8), np.asarray(mask, dtype=bool)


def _head_scene(yaw_deg: float):
    """(vertices, faces, parts, photo, mask, camera, face points (7, 3)): :func:`_head` photographed from
    ``yaw_deg`` with flat colours; the face points of :data:`icon_engine.person.FACE_POINTS` projected from their
    places on the head."""
    v, f, colours = _head()
    cam = _camera(yaw_deg)
    photo, mask = _photo(v, f, colours, cam)
    places = [(FACE_X - EYE_HALF_SPAN - 0.012, EYE_Y), (FACE_X - EYE_HALF_SPAN + 0.012, EYE_Y),
              (FACE_X + EYE_HALF_SPAN - 0.012, EYE_Y), (FACE_X + EYE_HALF_SPAN + 0.012, EYE_Y),
              (FACE_X, -0.01), (FACE_X - 0.022, -0.04), (FACE_X + 0.022, -0.04)]
    xy = cam.project(np.stack([_surface_point(x, y) for x, y in places]))[0]
    face = np.column_stack([xy, np.ones(len(xy))])
    return v, f, np.full(len(v), PART_HEAD), photo, mask, cam, face


def _near(v: np.ndarray, x: float, radius: float = 0.006) -> np.ndarray:
    rel = v - CENTRE
    return (np.abs(rel[:, 0] - x) < radius) & (np.abs(rel[:, 1] - EYE_Y) < 0.005) & (rel[:, 2] > 0)


def _blueness(colours: np.ndarray) -> float:
    """How far the mean colour lies from the skin towards the eye's blue: 0 skin, 1 eye."""
    c = colours.astype(np.float64).mean(axis=0)
    return float((c - SKIN) @ (EYE - SKIN) / ((EYE - SKIN) @ (EYE - SKIN)))


def test_the_far_half_of_a_face_seen_turned_takes_its_near_half_through_the_photos_midline():
    """A face photographed from 50° to its left: the far eye, seen at a grazing angle, takes the near eye's colours
    through the photo's face midline (1.5 cm off the mesh's); the mesh's own midline (the fill's mirror without the
    face points, wave 22) puts a second eye 3 cm beyond the far one."""
    v, f, parts, photo, mask, cam, face = _head_scene(50.0)
    far_eye = _near(v, FACE_X - EYE_HALF_SPAN)
    ghost = _near(v, -(FACE_X + EYE_HALF_SPAN))  # the near eye mirrored through x = 0
    assert far_eye.sum() >= 5 and ghost.sum() >= 5
    kwargs = dict(size=256, vertex_parts=parts, rest_vertices=v)
    before = bake_texture(v, f, photo, mask, cam, **kwargs)
    after = bake_texture(v, f, photo, mask, cam, photo_face=face, **kwargs)
    plane = after.stats["face_mirror_plane"]  # maps the near eye onto the far one (a plane turned about the
    # head's axis: on a round head a face shifted along the surface is symmetric about such a plane)
    side, near = np.asarray(plane["side"]), _surface_point(FACE_X + EYE_HALF_SPAN, EYE_Y)
    image = near - 2.0 * (near @ side - plane["centre_m"]) * side
    assert np.linalg.norm(image - _surface_point(FACE_X - EYE_HALF_SPAN, EYE_Y)) < 0.006, plane
    assert after.stats["face_mirrored_vertices"] > 0
    assert _blueness(before.vertex_colors[ghost]) > 0.5  # the second eye of the mesh's midline
    assert _blueness(after.vertex_colors[ghost]) < 0.15
    assert _blueness(after.vertex_colors[far_eye]) > 0.7
    # the texels too: the far eye's texels are the eye's blue, read at the near eye's pixels
    from icon_engine.texture import render_textured

    view = _camera(-50.0)
    rgb, covered = render_textured(v, f, after.uv, after.image, view)
    far_px = np.round(view.project(_surface_point(FACE_X - EYE_HALF_SPAN, EYE_Y)[None])[0][0]).astype(int)
    ghost_px = np.round(view.project(_surface_point(-(FACE_X + EYE_HALF_SPAN), EYE_Y)[None])[0][0]).astype(int)
    assert covered[far_px[1], far_px[0]] and covered[ghost_px[1], ghost_px[0]]
    assert _blueness(rgb[far_px[1] - 1:far_px[1] + 2, far_px[0] - 1:far_px[0] + 2].reshape(-1, 3)) > 0.7
    assert _blueness(rgb[ghost_px[1] - 1:ghost_px[1] + 2, ghost_px[0] - 1:ghost_px[0] + 2].reshape(-1, 3)) < 0.15


def test_a_face_seen_head_on_keeps_its_photo_on_both_halves():
    """Photographed from the front, the eyes, the nose and the cheeks between them are seen as well as their mirror
    images: they keep their photo colours (the same as without face points), and no eye appears anywhere else."""
    v, f, parts, photo, mask, cam, face = _head_scene(0.0)
    kwargs = dict(size=128, vertex_parts=parts, rest_vertices=v)
    before = bake_texture(v, f, photo, mask, cam, **kwargs)
    after = bake_texture(v, f, photo, mask, cam, photo_face=face, **kwargs)
    rel = v - CENTRE
    front = (np.abs(rel[:, 0] - FACE_X) < 0.05) & (rel[:, 2] > 0)
    change = np.abs(after.vertex_colors.astype(int) - before.vertex_colors.astype(int)).max(axis=1)
    assert change[front].max() <= 2, change[front].max()
    eyes = _near(v, FACE_X - EYE_HALF_SPAN) | _near(v, FACE_X + EYE_HALF_SPAN)
    assert _blueness(after.vertex_colors[eyes]) > 0.7
    blue = np.array([_blueness(c[None]) for c in after.vertex_colors]) > 0.5
    assert not (blue & ~(_near(v, FACE_X - EYE_HALF_SPAN, 0.014) | _near(v, FACE_X + EYE_HALF_SPAN, 0.014))
                & (np.abs(rel[:, 1] - EYE_Y) > 0.012)).any()


def test_the_mirror_plane_comes_from_the_face_points_and_refuses_implausible_ones():
    forward = np.array([0.0, 0.0, 1.0])
    yaw = math.radians(8.0)
    side = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    depth = np.cross(side, [0.0, 1.0, 0.0])
    centre = 0.02
    lateral = [-0.045, -0.015, 0.015, 0.045, 0.0, -0.025, 0.025]  # FACE_POINTS order: right to left per pair
    heights = [0.69, 0.69, 0.69, 0.69, 0.65, 0.62, 0.62]
    points = np.stack([(centre + x) * side + y * np.array([0.0, 1.0, 0.0]) + 0.1 * depth
                       for x, y in zip(lateral, heights, strict=True)])
    found = face_mirror_plane(points, forward)
    assert found is not None
    assert abs(found[0] @ side) > 0.999 and found[1] == pytest.approx(centre, abs=1e-6)
    one_pair = points.copy()
    one_pair[[1, 2, 5]] = np.nan  # only the outer eye corners on the mesh
    assert face_mirror_plane(one_pair, forward) is None
    wide = points.copy()
    wide[[0, 3]] = points[[0, 3]] + np.outer([-1.0, 1.0], side) * 0.05  # eyes 19 cm apart
    assert face_mirror_plane(wide, forward) is None
    turned = points @ np.array([[math.cos(0.7), 0, math.sin(0.7)], [0, 1, 0], [-math.sin(0.7), 0, math.cos(0.7)]])
    assert face_mirror_plane(turned, forward) is None  # the pairs' direction 40° off the head's left-right axis


def test_several_photos_mirror_the_hidden_far_side_through_the_first_photos_face_midline():
    """Several photos (the head from 50° and from behind): what no photo sees takes the fill, whose mirror of the
    face's far side (wave 22) runs through the first photo's face midline, not the mesh's — no second eye 3 cm beyond
    the far one."""
    from icon_engine.texture import PhotoView

    v, f, parts, photo, mask, cam, face = _head_scene(50.0)
    back_cam = _camera(180.0)
    back = PhotoView(v, *_photo(v, f, _head()[2], back_cam), back_cam)
    ghost = _near(v, -(FACE_X + EYE_HALF_SPAN))
    kwargs = dict(size=128, vertex_parts=parts, rest_vertices=v, more_views=[back])
    before = bake_texture(v, f, photo, mask, cam, **kwargs)
    after = bake_texture(v, f, photo, mask, cam, photo_face=face, **kwargs)
    assert "face_mirror_plane" in after.stats and "face_mirrored_vertices" not in after.stats
    assert _blueness(before.vertex_colors[ghost]) > 0.5
    assert _blueness(after.vertex_colors[ghost]) < 0.15
