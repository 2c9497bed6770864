"""Occluder edges of the one-photo bake (issue 15, wave 9): where a limb crosses well in front of the body and the
photo's limb is wider than the fitted one, the body's samples next to the limb's outline show the limb; they must
not colour the body (dev photo icon_22097467: skin on the front of the black shorts beside the raised thigh)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.repose import front_camera, synthetic_photo
from icon_engine.texture import PART_RIGHT_LEG, PART_TORSO, bake_texture, render_textured

SHORTS, SKIN = np.array([25.0, 25.0, 30.0]), np.array([230.0, 180.0, 150.0])
#: The thigh in the photo is this much wider on every side than the fitted one (metres).
PHOTO_WIDER = 0.03


def _box(centre: np.ndarray, half: np.ndarray, divisions: int) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.creation.box(extents=2 * np.asarray(half))
    for _ in range(divisions):
        mesh = mesh.subdivide()
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.faces)


@pytest.fixture(scope="module")
def thigh_scene():
    """A black "torso" (the shorts, 40 cm wide, as tall as a person: the bands scale with the person's height)
    and a skin "thigh" (14 cm square) 10 cm in front of it, seen from the front; the photo's thigh is
    :data:`PHOTO_WIDER` wider on every side than the model's (a limb's clothed outline off the photo's)."""
    torso = _box(np.array([0.0, 0.9, 0.0]), np.array([0.2, 0.6, 0.08]), 5)
    thigh_c, thigh_h = np.array([0.0, 0.9, 0.25]), np.array([0.07, 0.07, 0.07])
    model_thigh = _box(thigh_c, thigh_h, 4)
    photo_thigh = _box(thigh_c, thigh_h + PHOTO_WIDER, 4)

    def colour(points: np.ndarray) -> np.ndarray:
        return np.where((points[:, 2] > 0.1)[:, None], SKIN, SHORTS)

    return (*_torso_and_thigh(torso, model_thigh, photo_thigh, colour), len(torso[1]))


def _torso_and_thigh(torso: tuple, model_thigh: tuple, photo_thigh: tuple, colour) -> tuple:
    """The bake's inputs for a "torso" and a "thigh" (each (vertices, faces)), the photo rendered with the thigh
    ``photo_thigh`` and coloured by ``colour`` (points → RGB), the model with ``model_thigh``: (vertices, faces,
    parts, photo, mask, camera)."""
    cam = front_camera(width=320, height=480, distance=3.2, height_m=0.9)
    pv = np.concatenate([torso[0], photo_thigh[0]])
    pf = np.concatenate([torso[1], photo_thigh[1] + len(torso[0])])
    rgb, mask = synthetic_photo(pv, pf, pv, cam, colour=colour)
    v = np.concatenate([torso[0], model_thigh[0]])
    f = np.concatenate([torso[1], model_thigh[1] + len(torso[0])])
    parts = np.r_[np.full(len(torso[0]), PART_TORSO), np.full(len(model_thigh[0]), PART_RIGHT_LEG)]
    return v, f, parts, rgb, mask, cam


def _ring(v: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """The torso's front vertices that the photo's wider thigh covers but the model's does not (seen by the model,
    showing the thigh's skin in the photo)."""
    d = np.maximum(np.abs(v[:, 0]), np.abs(v[:, 1] - 0.9))
    return (parts == PART_TORSO) & (v[:, 2] > 0.079) & (d > 0.075) & (d < 0.07 + PHOTO_WIDER - 0.005)


def test_the_body_beside_a_wider_limb_in_front_keeps_its_own_colour(thigh_scene, monkeypatch):
    """The torso's front next to the thigh's outline, where the photo's (wider) thigh lies, keeps the shorts'
    colour in the vertex colours and in the texture (rendered without the thigh); away from the thigh the torso
    and the thigh keep their photo colours. Without the occluder check those vertices take the thigh's skin (the
    test can fail)."""
    import icon_engine.texture as texture

    v, f, parts, rgb, mask, cam, n_torso_faces = thigh_scene
    # this rule alone: the body behind a limb (tests/test_texture_behind.py) fades the ring to the body's colour too
    monkeypatch.setattr(texture.keeps, "BEHIND_DEPTH", np.inf)
    ring = _ring(v, parts)
    assert ring.sum() >= 20
    tex = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    err = np.abs(tex.vertex_colors[ring].astype(np.float64) - SHORTS).mean(axis=1)
    assert np.percentile(err, 90) < 30.0 and err.mean() < 15.0, err.mean()
    # the texture: the torso alone rendered from the photo's camera, on the ring's pixels
    body_rgb, covered = render_textured(v, f[:n_torso_faces], tex.uv[:n_torso_faces], tex.image, cam)
    xy, _ = cam.project(v[ring])
    px = np.clip(np.floor(xy).astype(int), 0, [cam.width - 1, cam.height - 1])
    assert covered[px[:, 1], px[:, 0]].all()
    assert np.abs(body_rgb[px[:, 1], px[:, 0]] - SHORTS).mean() < 30.0
    # what the photo really shows keeps its colour
    away = (parts == PART_TORSO) & (v[:, 2] > 0.079) & (np.abs(v[:, 0]) > 0.14)
    assert np.abs(tex.vertex_colors[away].astype(np.float64) - SHORTS).mean() < 10.0
    front = (parts == PART_RIGHT_LEG) & (v[:, 2] > 0.319)
    assert np.abs(tex.vertex_colors[front].astype(np.float64) - SKIN).mean() < 10.0
    # without the check (no surface counts as far enough in front) the ring takes the photo's thigh
    monkeypatch.setattr(texture.keeps, "OCCLUDER_DEPTH", np.inf)
    old = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    assert np.abs(old.vertex_colors[ring].astype(np.float64) - SHORTS).mean(axis=1).mean() > 45.0


def test_a_body_pattern_seen_away_from_the_limb_is_kept(thigh_scene):
    """The same scene with the shorts' colour beside the thigh also seen elsewhere on the torso at that height
    (a skin-coloured stripe across the torso): the ring is then not dropped (its colour is the torso's own)."""
    v, f, parts, _, _, cam, _ = thigh_scene
    torso_n = int((parts == PART_TORSO).sum())
    pv = v.copy()
    big = _box(np.array([0.0, 0.9, 0.25]), np.array([0.07, 0.07, 0.07]) + PHOTO_WIDER, 4)
    pv = np.concatenate([v[:torso_n], big[0]])
    pf = np.concatenate([f[:len(f) - len(big[1])], big[1] + torso_n])

    def colour(points: np.ndarray) -> np.ndarray:
        stripe = (np.abs(points[:, 1] - 0.9) < 0.12) & (points[:, 2] < 0.1)
        return np.where(((points[:, 2] > 0.1) | stripe)[:, None], SKIN, SHORTS)

    rgb, mask = synthetic_photo(pv, pf, pv, cam, colour=colour)
    tex = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    ring = _ring(v, parts)
    assert np.abs(tex.vertex_colors[ring].astype(np.float64) - SKIN).mean(axis=1).mean() < 30.0


#: The photo's thigh is this much thinner above and below than the fitted one (metres): the fitted thigh's outline
#: over the body shows the body (:func:`icon_engine.texture.keeps.limb_front_keep`).
PHOTO_THINNER = 0.03
STRIPE = np.array([120.0, 120.0, 125.0])


def _limb_over_body(hip_shorts: bool, torso_stripes: bool = False) -> tuple:
    """A black "torso" (40 cm wide, as tall as a person) and a skin "thigh" lying across in front of it (40 cm
    long, 14 cm thick, 10 cm in front), seen from the front; the photo's thigh is :data:`PHOTO_THINNER` thinner
    above and below than the fitted one, so the fitted thigh's upper and lower bands show the torso's black.
    ``hip_shorts``: the photo's thigh is black (shorts) over its left half, right across it; ``torso_stripes``: the
    torso has grey stripes 1 cm high every 2 cm (a print or lettering). Returns the bake's inputs and the fitted
    thigh's front vertices in those bands."""
    torso = _box(np.array([0.0, 0.9, 0.0]), np.array([0.2, 0.6, 0.08]), 5)
    thigh_c, thigh_h = np.array([0.0, 0.9, 0.25]), np.array([0.2, 0.07, 0.07])
    model_thigh = _box(thigh_c, thigh_h, 4)
    photo_thigh = _box(thigh_c, thigh_h - np.array([0.0, PHOTO_THINNER, 0.0]), 4)

    def colour(points: np.ndarray) -> np.ndarray:
        skin = (points[:, 2] > 0.1) & ~(hip_shorts & (points[:, 0] < 0.0))
        stripe = torso_stripes & ((points[:, 1] * 100.0) % 2.0 < 1.0)
        return np.where(skin[:, None], SKIN, np.where(stripe[:, None], STRIPE, SHORTS))

    v, f, parts, rgb, mask, cam = _torso_and_thigh(torso, model_thigh, photo_thigh, colour)
    off = np.abs(v[:, 1] - 0.9)
    band = (parts == PART_RIGHT_LEG) & (v[:, 2] > 0.319) & (off > 0.07 - PHOTO_THINNER + 0.005) & \
        (np.abs(v[:, 0]) < 0.17)
    return v, f, parts, rgb, mask, cam, band


def test_a_limb_wider_than_the_photos_keeps_its_own_colour_over_the_body(monkeypatch):
    """The fitted thigh's bands over the torso, where the photo shows the torso's black beside the thinner photo
    thigh, take the thigh's skin (its fill), in the vertex colours and in the texture; its middle keeps the photo's
    skin. Without the rule (no band) those vertices keep the black (the test can fail): the outline rule alone
    (:func:`limb_outline_keep`) trusts the black seen farther in."""
    import icon_engine.texture as texture

    v, f, parts, rgb, mask, cam, band = _limb_over_body(hip_shorts=False)
    assert band.sum() >= 20
    tex = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    err = np.abs(tex.vertex_colors[band].astype(np.float64) - SKIN).mean(axis=1)
    assert np.percentile(err, 90) < 30.0 and err.mean() < 15.0, err.mean()
    thigh_faces = np.nonzero((parts[f] == PART_RIGHT_LEG).all(axis=1))[0]
    thigh_rgb, covered = render_textured(v, f[thigh_faces], tex.uv[thigh_faces], tex.image, cam)
    inner = band & (np.abs(v[:, 1] - 0.9) < 0.065)  # off the box's edge, where the render's coverage ends
    xy, _ = cam.project(v[inner])
    px = np.clip(np.floor(xy).astype(int), 0, [cam.width - 1, cam.height - 1])
    assert covered[px[:, 1], px[:, 0]].all()
    assert np.abs(thigh_rgb[px[:, 1], px[:, 0]] - SKIN).mean() < 30.0
    middle = (parts == PART_RIGHT_LEG) & (v[:, 2] > 0.319) & (np.abs(v[:, 1] - 0.9) < 0.03)
    assert np.abs(tex.vertex_colors[middle].astype(np.float64) - SKIN).mean() < 10.0
    monkeypatch.setattr(texture.keeps, "LIMB_FRONT_BAND", 0.0)
    old = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    assert np.abs(old.vertex_colors[band].astype(np.float64) - SKIN).mean(axis=1).mean() > 60.0


def test_a_garment_right_across_a_limb_over_the_body_is_kept():
    """The same scene with the photo's thigh black over its left half (shorts, right across the thigh): there the
    bands' black is the thigh's own colour and stays; the right half's bands take the skin as before."""
    v, f, parts, rgb, mask, cam, band = _limb_over_body(hip_shorts=True)
    tex = bake_texture(v, f, rgb, mask, cam, size=512, vertex_parts=parts)
    shorts = band & (v[:, 0] < -0.03)
    bare = band & (v[:, 0] > 0.03)
    assert shorts.sum() >= 10 and bare.sum() >= 10
    assert np.abs(tex.vertex_colors[shorts].astype(np.float64) - SHORTS).mean() < 15.0
    assert np.abs(tex.vertex_colors[bare].astype(np.float64) - SKIN).mean() < 15.0


def test_a_limb_over_a_printed_body_does_not_carry_the_print_round_its_back(monkeypatch):
    """The torso striped (a print): the fitted thigh's bands over it are dropped, and the thigh's hidden back, which
    takes the fine detail the photo shows at its pixels (the legs' see-through detail), does not take the stripes
    seen in those bands (:func:`icon_engine.texture.sampling.foreign_pixels`): its texels there keep the plain
    skin. Without the exclusion they carry the stripes (the test can fail)."""
    import icon_engine.texture as texture

    v, f, parts, rgb, mask, cam, band = _limb_over_body(hip_shorts=False, torso_stripes=True)
    thigh = parts == PART_RIGHT_LEG
    off = np.abs(v[:, 1] - 0.9)
    back = thigh & (v[:, 2] < 0.181) & (off > 0.07 - PHOTO_THINNER + 0.008) & (off < 0.066) & (np.abs(v[:, 0]) < 0.17)
    faces = np.nonzero(back[f].all(axis=1))[0]
    assert len(faces) >= 20

    def back_error(tex) -> float:
        bary = np.random.default_rng(0).dirichlet(np.ones(3), size=len(faces))
        uv = np.einsum("nk,nkc->nc", bary, tex.uv[faces])
        size = tex.image.shape[0]
        px = np.clip(np.floor(np.c_[uv[:, 0], 1.0 - uv[:, 1]] * size).astype(int), 0, size - 1)
        return float(np.abs(tex.image[px[:, 1], px[:, 0]].astype(np.float64) - SKIN).mean())

    tex = bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)
    assert np.abs(tex.vertex_colors[band].astype(np.float64) - SKIN).mean() < 15.0
    assert back_error(tex) < 8.0
    monkeypatch.setattr(texture.sampling, "foreign_pixels",
                        lambda view, points, dropped: np.zeros(view.camera.width * view.camera.height, dtype=bool))
    assert back_error(bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)) > 15.0
