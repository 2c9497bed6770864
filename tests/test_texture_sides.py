"""Unseen sides and contact zones of the per-part texture (issue 15): a chest print that fills the seen width does
not band the back, a part hidden behind another part it touches does not take that part's colour, the bake
reuses the atlas raster (same result as rasterising it again)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.repose import capsule_body, dressed_subject, front_camera, named_pose, synthetic_photo
from icon_engine.bundle import skin_vertices
from icon_engine.bundle.skeleton import PARENTS
from icon_engine.texture import (
    PART_HEAD,
    PART_LEFT_ARM,
    PART_NAMES,
    PART_RIGHT_ARM,
    PART_RIGHT_LEG,
    PART_TORSO,
    bake_texture,
    fill,
    parts_from_skin_weights,
    rasterize_uv,
    unseen_side_fill,
)
from icon_engine.texture.atlas import _projection_atlas
from icon_engine.texture.fill import _colour_profile

WHITE, YELLOW, BLACK = np.array([235.0, 235.0, 235.0]), np.array([230.0, 200.0, 40.0]), np.array([25.0, 25.0, 25.0])


def test_profile_keeps_the_garment_where_a_print_fills_the_seen_width():
    """Samples along a torso: a white shirt everywhere, and over a fifth of its length a print and text covering 85 %
    of the seen samples (a chest print between hanging arms, dev photo icon_003883). The profile there is the
    shirt, not the print (the weighted median of the window, the former method, gave the print)."""
    rng = np.random.default_rng(3)
    s = rng.uniform(0.0, 1.0, 4000)
    colours = np.tile(WHITE, (len(s), 1)) + rng.normal(scale=6.0, size=(len(s), 3))
    band = (s > 0.4) & (s < 0.6)
    printed = band & (rng.uniform(size=len(s)) < 0.75)
    colours[printed] = YELLOW + rng.normal(scale=6.0, size=(printed.sum(), 3))
    text = band & ~printed & (rng.uniform(size=len(s)) < 0.4)
    colours[text] = BLACK  # and some text in it
    weights = rng.uniform(0.05, 1.0, len(s))
    query = np.linspace(0.0, 1.0, 51)
    prof = _colour_profile(s, colours, weights, query, 0.02)
    assert np.abs(prof - WHITE).max(axis=1).max() < 20.0, prof[np.abs(prof - WHITE).max(axis=1).argmax()]


def test_profile_takes_the_garments_hue_not_a_pale_prints(monkeypatch):
    """A white shirt, lit in front and shaded towards its sides, with a pale yellow print over 40 % of the seen
    samples along a long band (a chest print's light parts, dev photo icon_003883). The print is within the RGB
    radius of the shirt's colour; its hue is not, so the hidden side at the print's height stays white, not cream.
    Without the hue test the profile there is tinted (blue channel 20+ below red)."""
    rng = np.random.default_rng(5)
    s = rng.uniform(0.0, 1.0, 4000)
    shade = rng.uniform(0.78, 1.0, len(s))[:, None]  # lit front to shaded sides
    colours = WHITE * shade + rng.normal(scale=4.0, size=(len(s), 3))
    printed = (s > 0.3) & (s < 0.7) & (rng.uniform(size=len(s)) < 0.4)
    colours[printed] = np.array([232.0, 222.0, 150.0]) + rng.normal(scale=4.0, size=(printed.sum(), 3))
    query = np.linspace(0.35, 0.65, 31)

    def tint() -> float:
        prof = _colour_profile(s, colours, np.ones(len(s)), query, 0.02)
        return float((prof[:, 0] - prof[:, 2]).max())

    assert tint() < 6.0
    monkeypatch.setattr(fill, "PROFILE_MODE_CHROMA", np.inf)
    assert tint() > 20.0


def test_profile_takes_the_garments_face_on_brightness():
    """A grey garment seen lit face-on (cosine to the camera 0.7–1, [200, 200, 200]) on 30 % of the samples and on
    its flanks (0.05–0.35, shaded to [150, 150, 150]) on the rest: with the samples' facing as colour weights the
    profile is the face-on grey (the hidden side looks like the garment the photo shows), without them the flanks'."""
    rng = np.random.default_rng(6)
    s = rng.uniform(0.0, 1.0, 3000)
    front = rng.uniform(size=len(s)) < 0.3
    cos = np.where(front, rng.uniform(0.7, 1.0, len(s)), rng.uniform(0.05, 0.35, len(s)))
    colours = np.where(front[:, None], 200.0, 150.0) + rng.normal(scale=4.0, size=(len(s), 3))
    query = np.linspace(0.2, 0.8, 13)
    side = 1.05 - cos  # the clusters' side weights, as unseen_side_fill gives them
    face_on = _colour_profile(s, colours, side, query, 0.02, colour_weights=cos**fill.FACE_ON_POWER)
    plain = _colour_profile(s, colours, side, query, 0.02)
    assert np.abs(face_on - 200.0).max() < 10.0
    assert np.abs(plain - 150.0).max() < 10.0


def test_profile_follows_garments_that_change_along_the_part():
    """A shirt over trousers: each keeps its own colour on its side of the waist (persistence does not let the
    larger garment take over the other)."""
    rng = np.random.default_rng(4)
    s = rng.uniform(0.0, 1.0, 3000)
    blue = np.array([50.0, 70.0, 170.0])
    colours = np.where((s > 0.45)[:, None], WHITE, blue) + rng.normal(scale=5.0, size=(len(s), 3))
    prof = _colour_profile(s, colours, np.ones(len(s)), np.array([0.1, 0.3, 0.6, 0.9]), 0.02)
    assert np.abs(prof[:2] - blue).max() < 15.0 and np.abs(prof[2:] - WHITE).max() < 15.0


def test_profile_takes_no_rings_from_a_garments_folds():
    """Jeans seen along a leg in folds: every 12 cm a 4 cm band of the denim's shadow (another colour cluster, 110
    apart) in the lit denim, and the leg ends in a white shoe. The hidden side's profile is one steady denim colour
    (no rings: before wave 19 it followed the bands), and the shoe stays a step at the leg's end."""
    rng = np.random.default_rng(11)
    s = rng.uniform(0.0, 0.9, 4000)  # along a 0.9 m leg
    lit, shade = np.array([95.0, 115.0, 160.0]), np.array([40.0, 50.0, 75.0])
    fold = (s % 0.12 > 0.08) & (rng.uniform(size=len(s)) < 0.8)
    colours = np.where(fold[:, None], shade, lit) + rng.normal(scale=5.0, size=(len(s), 3))
    shoe = s > 0.84
    colours[shoe] = WHITE + rng.normal(scale=5.0, size=(shoe.sum(), 3))
    query = np.linspace(0.05, 0.78, 74)
    prof = _colour_profile(s, colours, np.ones(len(s)), query, 0.018)
    assert np.ptp(prof, axis=0).max() < 25.0, np.ptp(prof, axis=0)
    heel = _colour_profile(s, colours, np.ones(len(s)), np.array([0.88]), 0.018, end_band=(0.83, np.inf))
    assert np.abs(heel - WHITE).max() < 20.0, heel


HAIR, SKIN = np.array([90.0, 50.0, 30.0]), np.array([230.0, 180.0, 150.0])


def _box(centre: np.ndarray, half: np.ndarray, divisions: int) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.creation.box(extents=2 * half)
    for _ in range(divisions):
        mesh = mesh.subdivide()
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.faces)


@pytest.fixture(scope="module")
def contact_scene():
    """A hand on the head, photographed from the front: a flat "head" (part 5, hair-coloured) and a thin "hand"
    (part 1, skin, 6 mm thick) lying 3 mm in front of it, so the head's surface under the hand is within the
    visibility test's depth tolerance (1 cm) of the hand's front."""
    head_v, head_f = _box(np.array([0.0, 0.9, 0.0]), np.array([0.25, 0.12, 0.04]), 4)
    hand_v, hand_f = _box(np.array([0.0, 0.9, 0.046]), np.array([0.08, 0.06, 0.003]), 4)
    v = np.concatenate([head_v, hand_v])
    f = np.concatenate([head_f, hand_f + len(head_v)])
    parts = np.r_[np.full(len(head_v), PART_HEAD), np.full(len(hand_v), PART_LEFT_ARM)]

    def colour(points: np.ndarray) -> np.ndarray:
        return np.where((points[:, 2] > 0.042)[:, None], SKIN, HAIR)

    cam = front_camera(width=256, height=256, distance=1.6)
    rgb, mask = synthetic_photo(v, f, v, cam, colour=colour)
    return v, f, parts, head_v, rgb, mask, cam


def test_a_part_behind_another_it_touches_keeps_its_own_colour(contact_scene):
    """The head's front under the hand passes the depth test (9 mm) but its pixels show the hand: with parts it
    keeps the hair colour (not the hand's skin, which would show when the hand moves: a raised arm's hand on the
    head, dev photo icon_028009); without parts it takes the occluder's colour (the test can fail)."""
    v, f, parts, head_v, rgb, mask, cam = contact_scene
    n_head = len(head_v)
    under = np.zeros(len(v), dtype=bool)
    under[:n_head] = (np.abs(head_v[:, 0]) < 0.06) & (np.abs(head_v[:, 1] - 0.9) < 0.04) & (head_v[:, 2] > 0.039)
    assert under.sum() > 10
    with_parts = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    without = bake_texture(v, f, rgb, mask, cam, size=256)
    err = np.abs(with_parts.vertex_colors[under].astype(np.float64) - HAIR).mean(axis=1)
    old = np.abs(without.vertex_colors[under].astype(np.float64) - HAIR).mean(axis=1)
    assert np.percentile(err, 90) < 30.0, err.mean()
    assert old.mean() > 60.0  # the occluder's skin
    # the head's seen front around the hand keeps the photo, and the hand its skin
    around = np.zeros(len(v), dtype=bool)
    around[:n_head] = (np.abs(head_v[:, 0]) > 0.14) & (head_v[:, 2] > 0.039)
    assert np.abs(with_parts.vertex_colors[around].astype(np.float64) - HAIR).mean() < 10.0
    hand_front = np.zeros(len(v), dtype=bool)
    hand_front[n_head:] = v[n_head:, 2] > 0.048
    assert np.abs(with_parts.vertex_colors[hand_front].astype(np.float64) - SKIN).mean() < 15.0


def test_bake_reuses_the_atlas_raster():
    """The projection atlas' last fold check is the bake's raster: the same texels as rasterising its UVs anew."""
    body = capsule_body()
    subject = dressed_subject(body, skirt=False)
    posed = skin_vertices(subject.rest_vertices, subject.weights, body.joints, np.asarray(PARENTS),
                          named_pose("photo"))
    uv, _, texels = _projection_atlas(posed, subject.faces, 256)
    face_a, bary_a = rasterize_uv(uv, 256, texels)
    face_b, bary_b = rasterize_uv(uv, 256)
    np.testing.assert_array_equal(face_a, face_b)
    np.testing.assert_allclose(bary_a, bary_b, atol=1e-6)
    assert (face_a >= 0).mean() > 0.1
    assert set(np.unique(parts_from_skin_weights(subject.weights))) >= {PART_TORSO, PART_HEAD}


def test_late_folds_go_to_free_space_and_only_they_are_rasterised_again(monkeypatch):
    """Folds that only the full-size check shows after the first round become single-face charts in the space the
    layout left free, at its scale, and only those faces are rasterised again: no overlaps at full size, each
    its own chart, and the texels equal a fresh raster of the final UVs. (The capsule has no such
    folds, so the full-size check reports five far-apart faces as folded on its first two calls.)"""
    import icon_engine.texture as texture

    body = capsule_body()
    subject = dressed_subject(body, skirt=False)
    posed = skin_vertices(subject.rest_vertices, subject.weights, body.joints, np.asarray(PARENTS),
                          named_pose("photo"))
    size = 512
    clean_uv, _, _ = _projection_atlas(posed, subject.faces, size)
    assert not texture.atlas._overlapping_faces(clean_uv, subject.faces, size).any()
    forced = np.arange(5) * (len(subject.faces) // 5)
    real = texture.atlas._overlapping_faces
    calls, placed = [], []

    def overlapping(uv, faces, at, texels=None):
        bad = real(uv, faces, at, texels)
        if at == size:
            calls.append(at)
            if len(calls) <= 2:
                bad[forced] = True
        return bad

    def place(*args, **kwargs):
        out = place_real(*args, **kwargs)
        placed.append(out is not None)
        return out

    place_real = texture.atlas._place_in_free
    monkeypatch.setattr(texture.atlas, "_overlapping_faces", overlapping)
    monkeypatch.setattr(texture.atlas, "_place_in_free", place)
    uv, chart, texels = _projection_atlas(posed, subject.faces, size)
    assert placed == [True] and len(calls) == 2  # placed in free space: no further packing or check
    assert not real(uv, subject.faces, size).any()
    assert len(np.unique(chart[forced])) == 5 and not np.isin(np.delete(chart, forced), chart[forced]).any()
    face_a, bary_a = rasterize_uv(uv, size, texels)
    face_b, bary_b = rasterize_uv(uv, size)
    np.testing.assert_array_equal(face_a, face_b)
    np.testing.assert_allclose(bary_a, bary_b, atol=1e-6)
    assert all((face_a == k).any() for k in forced)  # the moved faces cover texels of their own
    ext = uv[forced].max(axis=1) - uv[forced].min(axis=1)
    assert (ext > 0).all() and (ext < 0.2).all()  # at the atlas' scale, not stretched


def test_late_folds_without_free_space_pack_the_atlas_again(monkeypatch):
    """Without room for the late folds' single-face charts the atlas is packed once more with them: still no
    overlaps, and the bake's texels are that layout's raster."""
    import icon_engine.texture as texture

    body = capsule_body()
    subject = dressed_subject(body, skirt=False)
    posed = skin_vertices(subject.rest_vertices, subject.weights, body.joints, np.asarray(PARENTS),
                          named_pose("photo"))
    size, forced = 512, np.array([0, len(subject.faces) // 2])
    real, calls = texture.atlas._overlapping_faces, []

    def overlapping(uv, faces, at, texels=None):
        bad = real(uv, faces, at, texels)
        calls.append(at)
        if len(calls) <= 2:
            bad[forced] = True
        return bad

    monkeypatch.setattr(texture.atlas, "_overlapping_faces", overlapping)
    monkeypatch.setattr(texture.atlas, "_place_in_free", lambda *args, **kwargs: None)
    uv, chart, texels = _projection_atlas(posed, subject.faces, size)
    assert len(calls) == 2 and not real(uv, subject.faces, size).any()
    assert len(np.unique(chart[forced])) == 2 and (np.bincount(chart)[chart[forced]] == 1).all()
    np.testing.assert_array_equal(rasterize_uv(uv, size, texels)[0], rasterize_uv(uv, size)[0])


def test_another_photo_is_aligned_to_the_avatar_silhouette(monkeypatch):
    """Front + back photos where the back photo's camera is 8 px off (the joint fit's registration error): the
    back photo is read where its person lies (shift found from the silhouette, within 1 px), so the back print
    lands on the back; without the alignment its edges smear (the test can fail)."""
    from test_texture import BACK_PRINT, _outfit_with_back, front_back_photos

    import icon_engine.texture as texture
    from icon_engine.camera import Camera
    from icon_engine.texture import PhotoView, render_textured, silhouette_shift

    subject, posed, parts, cam, back_cam, (rgb, mask), (back_rgb, back_mask) = front_back_photos(_outfit_with_back)
    k_off = back_cam.K.copy()
    k_off[0, 2] += 8.0  # the fitted back camera sees the avatar 8 px right of the person in the photo
    off_cam = Camera(k_off, back_cam.R.copy(), back_cam.t.copy(), back_cam.width, back_cam.height)
    silhouette = np.isfinite(texture.depth_layers(posed, subject.faces, off_cam).zbuf).reshape(back_mask.shape)
    np.testing.assert_allclose(silhouette_shift(silhouette, back_mask, 20), [-8.0, 0.0], atol=1.0)
    assert not silhouette_shift(back_mask, back_mask, 20).any()  # registered: no shift

    truth, _ = synthetic_photo(posed, subject.faces, subject.rest_vertices, back_cam, colour=_outfit_with_back)
    on_print = np.all(truth == BACK_PRINT.astype(np.uint8), axis=2)
    errs, shifts = [], []
    for max_shift in (texture.sampling.ALIGN_MAX_SHIFT, 0.0):  # aligned, then the alignment turned off
        monkeypatch.setattr(texture.sampling, "ALIGN_MAX_SHIFT", max_shift)
        tex = bake_texture(posed, subject.faces, rgb, mask, cam, size=256, vertex_parts=parts,
                           more_views=[PhotoView(posed, back_rgb, back_mask, off_cam)])
        out, covered = render_textured(posed, subject.faces, tex.uv, tex.image, back_cam)
        errs.append(np.abs(out[on_print & covered] - BACK_PRINT).mean())
        shifts.append(tex.stats["photo_shift_px"])
    assert shifts[0][0] == [0.0, 0.0] and abs(shifts[0][1][0] + 8.0) <= 1.0 and shifts[1][1] == [0.0, 0.0]
    assert errs[0] < 15.0 and errs[0] < 0.6 * errs[1], errs


def _striped_trousers(top: float):
    """Rest-pose points (N, 3) → RGB: the test outfit with white trousers and 3 cm dark stripes from 0.1 m up to
    ``top`` metres."""
    from test_texture import _outfit

    def colour(points: np.ndarray) -> np.ndarray:
        out = _outfit(points)
        legs = (points[:, 1] > 0.1) & (points[:, 1] < top)
        out[legs] = WHITE
        out[legs & (np.floor(points[:, 1] / 0.03) % 2 == 0)] = [70.0, 70.0, 90.0]
        return out

    return colour


def test_the_back_of_striped_trousers_keeps_the_stripes(monkeypatch):
    """Trousers with 3 cm stripes (dev photo icon_003883 has pinstripes): the back of the legs, never
    photographed, shows the stripes where they really are (they run around the leg, so the front's pattern seen
    through the leg is the back's, up to the perspective's shift of < 1 cm at the
    heights scored) instead of a plain colour: without the detail the back's luminance does not follow them."""
    import icon_engine.texture as texture
    from icon_engine.texture import render_textured

    v, f, parts, cam, rgb, mask, back, truth = _striped_scene(_striped_trousers(0.9))
    top, bottom = back.project(np.array([[0.0, 0.85, 0.0], [0.0, 0.55, 0.0]]))[0][:, 1]
    rows = np.arange(truth.shape[0])[:, None]
    corr = []
    for detail_parts in (texture.sampling.DETAIL_PARTS, ()):  # with the see-through detail, then without it
        monkeypatch.setattr(texture.sampling, "DETAIL_PARTS", detail_parts)
        monkeypatch.setattr(texture.sampling, "BUSY_SHARE", texture.sampling.BUSY_SHARE if detail_parts else 2.0)
        tex = bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)
        out, covered = render_textured(v, f, tex.uv, tex.image, back)
        legs = covered & (rows > top) & (rows < bottom) & (truth.max(axis=2) > 20)
        assert legs.sum() > 500
        corr.append(np.corrcoef(out[legs].mean(axis=1), truth[legs].astype(np.float64).mean(axis=1))[0, 1])
    assert corr[0] > 0.3 and corr[0] > corr[1] + 0.25, corr


def test_the_seat_of_striped_trousers_keeps_the_stripes_too(monkeypatch):
    """The hips below the legs' top (torso vertices: the trousers' seat, which the fill gives the legs' garment) take
    the detail seen through them like the legs: the back of the seat continues the stripes instead of a plain V
    between two striped legs (dev photo icon_003883, wave 26). Without the hips' detail the seat's luminance does not
    follow them."""
    from icon_engine.mesh_queries import rasterize
    from icon_engine.texture import PART_LEFT_LEG, render_textured
    from icon_engine.texture import bake as bake_module

    v, f, parts, cam, rgb, mask, back, truth = _striped_scene(_striped_trousers(1.0))
    legs_top = v[np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG)), 1].max()
    raster = rasterize(v, f, back)
    hit = raster.face >= 0
    seat_face = (parts[f] == PART_TORSO).all(axis=1) & (v[f, 1].max(axis=1) < legs_top)
    seat = hit & seat_face[np.maximum(raster.face, 0)] & (truth.max(axis=2) > 20)
    assert seat.sum() > 200
    corr = []
    for hips in (bake_module.hips_below_legs, lambda *a: None):  # with the hips' detail, then without it
        monkeypatch.setattr(bake_module, "hips_below_legs", hips)
        tex = bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)
        out, covered = render_textured(v, f, tex.uv, tex.image, back)
        assert covered[seat].all()
        corr.append(np.corrcoef(out[seat].mean(axis=1), truth[seat].astype(np.float64).mean(axis=1))[0, 1])
    print("seat correlation with / without the hips detail", corr)
    assert corr[0] > 0.3 and corr[0] > corr[1] + 0.2, corr


def _striped_scene(colour):
    """(vertices, faces, parts, camera, photo, mask, back camera, truth) of the capsule body in the photo pose,
    subdivided to ~50k vertices (stripes of a few vertices each), coloured by ``colour`` (rest-pose points → RGB)
    and seen from the front and the back, far away (the see-through shift stays < 1 cm)."""
    import trimesh
    from test_texture import _back_camera

    body = capsule_body()
    subject = dressed_subject(body, skirt=False)
    posed = skin_vertices(subject.rest_vertices, subject.weights, body.joints, np.asarray(PARENTS),
                          named_pose("photo"))
    attr = {"rest": subject.rest_vertices, "weights": subject.weights}
    v, f = posed, subject.faces
    for _ in range(2):
        v, f, attr = trimesh.remesh.subdivide(v, f, vertex_attributes=attr)
    cam = front_camera(width=768, height=1024, distance=6.4)
    rgb, mask = synthetic_photo(v, f, attr["rest"], cam, colour=colour)
    back = _back_camera(cam)
    truth, _ = synthetic_photo(v, f, attr["rest"], back, colour=colour)
    return v, f, parts_from_skin_weights(attr["weights"]), cam, rgb, mask, back, truth


def test_the_back_of_a_striped_shirt_keeps_the_stripes(monkeypatch):
    """A shirt with 1.2 cm stripes all over the torso (dev photo icon_028009's Breton top): the torso is busy
    (:func:`icon_engine.texture.sampling.busy_parts`), so its back, never photographed, shows the stripes seen
    through it on the pattern's mean colour; before wave 19 (no busy parts) it was plain. A shirt with one print
    on the chest is not busy: no print is copied to the back."""
    from test_texture import _outfit

    import icon_engine.texture as texture
    from icon_engine.texture import render_textured

    def striped(points: np.ndarray) -> np.ndarray:
        out = _outfit(points)
        shirt = (points[:, 1] > 0.95) & (points[:, 1] < 1.4) & (np.abs(points[:, 0]) < 0.19)
        out[shirt] = WHITE
        out[shirt & (np.floor(points[:, 1] / 0.012) % 2 == 0)] = [40.0, 50.0, 110.0]
        hair = points[:, 1] > 1.6  # a head of fine braids: detail all over it, never busy (no face on the back)
        out[hair & (np.floor(points[:, 0] / 0.008) % 2 == 0)] = [60.0, 40.0, 30.0]
        return out

    v, f, parts, cam, rgb, mask, back, truth = _striped_scene(striped)
    top, bottom = back.project(np.array([[0.0, 1.3, 0.0], [0.0, 1.05, 0.0]]))[0][:, 1]
    centre = back.project(np.array([[0.0, 1.2, 0.0]]))[0][0, 0]
    band = (slice(int(top), int(bottom)), slice(int(centre) - 15, int(centre) + 15))  # the back's middle

    def stripes(image: np.ndarray) -> float:
        """Spread (0–255) of the band's row means: the stripes' contrast down the back (any phase: the back's
        stripes seen through the torso are shifted by the perspective)."""
        return float(np.std(np.asarray(image, dtype=np.float64)[band].mean(axis=(1, 2))))

    spread = []
    for share in (texture.sampling.BUSY_SHARE, 2.0):  # busy parts found, then never
        monkeypatch.setattr(texture.sampling, "BUSY_SHARE", share)
        tex = bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)
        assert (PART_NAMES[PART_TORSO] in tex.stats["busy_parts"]) == (share < 1.0)
        assert PART_NAMES[PART_HEAD] not in tex.stats["busy_parts"]
        out, covered = render_textured(v, f, tex.uv, tex.image, back)
        assert covered[band].all()
        spread.append(stripes(out))
    assert spread[0] > 0.4 * stripes(truth) and spread[0] > 3.0 * spread[1], (spread, stripes(truth))
    monkeypatch.undo()

    def printed(points: np.ndarray) -> np.ndarray:
        out = _outfit(points)
        shirt = (points[:, 1] > 0.95) & (points[:, 1] < 1.4) & (np.abs(points[:, 0]) < 0.19)
        out[shirt] = WHITE
        chest = shirt & (points[:, 2] > 0) & (np.abs(points[:, 0]) < 0.08)
        chest &= (points[:, 1] > 1.15) & (points[:, 1] < 1.3)
        out[chest & (np.floor(points[:, 1] / 0.02) % 2 == 0)] = [200.0, 40.0, 30.0]
        return out

    v, f, parts, cam, rgb, mask, back, truth = _striped_scene(printed)
    tex = bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts)
    assert PART_NAMES[PART_TORSO] not in tex.stats["busy_parts"]


SLEEVE = np.array([235.0, 235.0, 235.0])


@pytest.fixture(scope="module")
def arm_over_hair_scene():
    """A raised arm fitted a little too high, over the hair (dev photo icon_028009): the photo shows a white torso,
    a head (hair on top, skin face), long hair hanging beside it (not in the model, as a surface misses hair) and a
    white sleeve in front of the hair's lower part; the model's arm (part 2) is the same sleeve but 20 cm longer
    upwards, so its top third lies over the hair in the photo."""
    torso = _box(np.array([0.0, 1.1, 0.0]), np.array([0.15, 0.25, 0.08]), 3)
    head = _box(np.array([0.0, 1.5, 0.0]), np.array([0.09, 0.11, 0.09]), 3)
    hair = _box(np.array([0.2, 1.5, -0.02]), np.array([0.07, 0.2, 0.01]), 2)
    true_arm = _box(np.array([0.2, 1.2, 0.03]), np.array([0.035, 0.25, 0.03]), 3)
    model_arm = _box(np.array([0.2, 1.3, 0.03]), np.array([0.035, 0.35, 0.03]), 3)

    def merge(*meshes):
        vs, fs, n = [], [], 0
        for mv, mf in meshes:
            vs.append(mv)
            fs.append(mf + n)
            n += len(mv)
        return np.concatenate(vs), np.concatenate(fs)

    def colour(points: np.ndarray) -> np.ndarray:
        out = np.tile(SLEEVE, (len(points), 1))
        in_head = (np.abs(points[:, 0]) <= 0.091) & (points[:, 1] > 1.385)
        out[in_head & (points[:, 1] > 1.53)] = HAIR
        out[in_head & (points[:, 1] <= 1.53)] = SKIN
        out[points[:, 2] < -0.005] = HAIR  # the hanging hair's panel
        return out

    cam = front_camera(width=320, height=480, distance=2.4, height_m=1.25)
    pv, pf = merge(torso, head, hair, true_arm)
    rgb, mask = synthetic_photo(pv, pf, pv, cam, colour=colour)
    v, f = merge(torso, head, model_arm)
    parts = np.r_[np.full(len(torso[0]), PART_TORSO), np.full(len(head[0]), PART_HEAD),
                  np.full(len(model_arm[0]), PART_RIGHT_ARM)]
    return v, f, parts, rgb, mask, cam


def test_an_arm_fitted_over_the_hair_keeps_its_sleeve(arm_over_hair_scene, monkeypatch):
    """The arm's top third, fitted over the hair, gets the sleeve's colour (its own limb's fill), not the hair's;
    its lower part and the head keep the photo. Without the check (no limbs checked) the top is hair-coloured, so
    the test can fail."""
    import icon_engine.texture as texture

    v, f, parts, rgb, mask, cam = arm_over_hair_scene
    arm = parts == PART_RIGHT_ARM
    top = arm & (v[:, 1] > 1.5) & (v[:, 2] > 0.059)  # the arm's front where it lies over the hair
    low = arm & (v[:, 1] < 1.15) & (v[:, 2] > 0.059)
    assert top.sum() > 10 and low.sum() > 10
    tex = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    top_err = np.abs(tex.vertex_colors[top].astype(np.float64) - SLEEVE).mean(axis=1)
    assert np.median(top_err) < 10.0 and top_err.mean() < 25.0, top_err.mean()
    assert np.abs(tex.vertex_colors[low].astype(np.float64) - SLEEVE).mean() < 10.0
    face = (parts == PART_HEAD) & (v[:, 2] > 0.089) & (v[:, 1] < 1.5) & (v[:, 1] > 1.42)
    assert np.abs(tex.vertex_colors[face].astype(np.float64) - SKIN).mean() < 15.0
    # the texture too: the arm's top rendered in the photo camera is the sleeve
    from icon_engine.texture import render_textured

    img, covered = render_textured(v, f, tex.uv, tex.image, cam)
    centre = np.stack([np.full(12, 0.2), np.linspace(1.5, 1.6, 12), np.full(12, 0.06)], axis=1)
    xy, _ = cam.project(centre)  # the arm's front along its middle
    col, row = xy[:, 0].astype(int), xy[:, 1].astype(int)
    assert covered[row, col].all()
    assert np.abs(img[row, col] - SLEEVE).mean() < 30.0
    monkeypatch.setattr(texture.keeps, "REGISTRATION_PARTS", ())
    old = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    old_err = np.abs(old.vertex_colors[top].astype(np.float64) - SLEEVE).mean(axis=1)
    assert old_err.mean() > 100.0, old_err.mean()  # the hair, without the check


def test_a_hair_coloured_garment_is_not_dropped(arm_over_hair_scene):
    """The same scene with a shirt of the hair's colour: the sleeve may be that colour, nothing is dropped (the
    arm's top keeps the photo: the hair behind it)."""
    from icon_engine.texture.keeps import limb_registration_keep  # noqa: F401 - the check exists

    v, f, parts, rgb, mask, cam = arm_over_hair_scene
    shirt = rgb.copy()
    white = (np.abs(rgb.astype(np.float64) - SLEEVE).max(axis=2) < 3) & mask
    shirt[white] = HAIR.astype(np.uint8)
    tex = bake_texture(v, f, shirt, mask, cam, size=256, vertex_parts=parts)
    top = (parts == PART_RIGHT_ARM) & (v[:, 1] > 1.5) & (v[:, 2] > 0.059)
    assert np.abs(tex.vertex_colors[top].astype(np.float64) - HAIR).mean() < 15.0


def test_a_head_cut_off_by_the_frame_gets_hair_not_skin():
    """A photo that cuts the head at the nose (dev photo icon_003883): no hair is seen, yet the back of the head is
    a hair colour (the hairline's, else a dark neutral), not the skin of the chin; a fully seen bald head keeps
    its skin (no hair colour)."""
    from icon_engine.texture.fill import HAIR_FALLBACK, _unseen_hair_colour

    rng = np.random.default_rng(5)
    head_y = np.linspace(1.40, 1.65, 200)
    pts = np.stack([rng.uniform(-0.08, 0.08, 300), rng.uniform(1.40, 1.50, 300), np.full(300, 0.09)], axis=1)
    skin = np.tile(SKIN, (300, 1)) + rng.normal(scale=4.0, size=(300, 3))
    assert np.allclose(_unseen_hair_colour(head_y, pts, skin), HAIR_FALLBACK)
    sides = (np.abs(pts[:, 0]) > 0.06) & (pts[:, 1] > 1.48)  # hair framing the face at the top of the frame
    framed = np.where(sides[:, None], HAIR, skin)
    assert np.abs(_unseen_hair_colour(head_y, pts, framed) - HAIR).max() < 5.0
    bald = pts.copy()
    bald[:, 1] = rng.uniform(1.40, 1.65, 300)
    assert _unseen_hair_colour(head_y, bald, skin) is None

    # end to end: torso and head, the camera's frame cuts the head below the hairline
    torso = _box(np.array([0.0, 1.1, 0.0]), np.array([0.15, 0.25, 0.08]), 3)
    head = _box(np.array([0.0, 1.5, 0.0]), np.array([0.09, 0.11, 0.09]), 3)
    v = np.concatenate([torso[0], head[0]])
    f = np.concatenate([torso[1], head[1] + len(torso[0])])
    parts = np.r_[np.full(len(torso[0]), PART_TORSO), np.full(len(head[0]), PART_HEAD)]

    def colour(points: np.ndarray) -> np.ndarray:
        out = np.tile(SLEEVE, (len(points), 1))
        in_head = points[:, 1] > 1.385
        out[in_head] = np.where((points[in_head, 1] > 1.56)[:, None], HAIR, SKIN)
        return out

    cam = front_camera(width=320, height=320, distance=1.6, height_m=1.03)
    xy, _ = cam.project(np.array([[0.0, 1.5, 0.09]]))
    assert 0 < xy[0, 1] < 40  # the head's middle is near the top of the frame, its top outside
    rgb, mask = synthetic_photo(v, f, v, cam, colour=colour)
    tex = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    back = (parts == PART_HEAD) & (v[:, 2] < -0.089) & (v[:, 1] > 1.5)
    err_skin = np.abs(tex.vertex_colors[back].astype(np.float64) - SKIN).mean()
    assert err_skin > 80.0, tex.stats["hair_colour"]
    assert tex.stats["hair_colour"] is not None


def test_a_limb_fitted_off_its_outline_keeps_its_own_colour(monkeypatch):
    """A bare leg fitted 1.5 cm (4 px, inside the outline band) off sideways, over a dark region the model does
    not have (the other leg's shorts, dev photo icon_22097467): the leg's outline over the dark region takes the
    skin its interior shows at the same height, not the dark colour; without the check it is dark (the test can
    fail)."""
    import icon_engine.texture as texture

    dark = np.array([25.0, 25.0, 30.0])
    torso = _box(np.array([0.0, 1.1, 0.0]), np.array([0.15, 0.25, 0.08]), 3)
    true_leg = _box(np.array([0.08, 0.5, 0.0]), np.array([0.07, 0.35, 0.07]), 4)
    shorts = _box(np.array([0.23, 0.55, -0.02]), np.array([0.08, 0.3, 0.01]), 2)  # only in the photo
    model_leg = _box(np.array([0.095, 0.5, 0.0]), np.array([0.07, 0.35, 0.07]), 4)

    def colour(points: np.ndarray) -> np.ndarray:
        out = np.tile(SKIN, (len(points), 1))
        out[points[:, 1] > 0.86] = SLEEVE
        out[points[:, 2] < -0.005] = dark
        return out

    cam = front_camera(width=320, height=480, distance=2.4, height_m=0.8)
    pv = np.concatenate([torso[0], true_leg[0], shorts[0]])
    pf = np.concatenate([torso[1], true_leg[1] + len(torso[0]), shorts[1] + len(torso[0]) + len(true_leg[0])])
    rgb, mask = synthetic_photo(pv, pf, pv, cam, colour=colour)
    v = np.concatenate([torso[0], model_leg[0]])
    f = np.concatenate([torso[1], model_leg[1] + len(torso[0])])
    parts = np.r_[np.full(len(torso[0]), PART_TORSO), np.full(len(model_leg[0]), PART_RIGHT_LEG)]
    edge = (parts == PART_RIGHT_LEG) & (v[:, 0] > 0.155) & (v[:, 2] > 0.069) & (v[:, 1] > 0.4) & (v[:, 1] < 0.75)
    assert edge.sum() >= 5
    tex = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    assert np.abs(tex.vertex_colors[edge].astype(np.float64) - SKIN).mean() < 40.0
    inner = (parts == PART_RIGHT_LEG) & (np.abs(v[:, 0] - 0.095) < 0.03) & (v[:, 2] > 0.069) & (v[:, 1] < 0.75)
    assert np.abs(tex.vertex_colors[inner].astype(np.float64) - SKIN).mean() < 10.0
    monkeypatch.setattr(texture.keeps, "REGISTRATION_PARTS", ())
    old = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    assert np.abs(old.vertex_colors[edge].astype(np.float64) - SKIN).mean() > 60.0


def test_profile_keeps_the_shoe_at_the_end_of_the_leg():
    """A bare leg (skin along most of it) ending in a black shoe: with the limb's end given, the heel's profile is
    the shoe (the local majority), not the skin that persists along the leg (without it, the skin wins: the test
    can fail)."""
    rng = np.random.default_rng(6)
    s = rng.uniform(0.0, 0.9, 3000)  # along the leg, the foot at 0.9
    shoe = s > 0.82
    colours = np.where(shoe[:, None], BLACK, SKIN) + rng.normal(scale=5.0, size=(len(s), 3))
    colours[shoe & (rng.uniform(size=len(s)) < 0.3)] = SKIN  # the ankle's skin mixes into the shoe's window
    query = np.linspace(0.0, 0.9, 91)  # the leg's hidden side, all along it
    heel = query > 0.85
    with_end = _colour_profile(s, colours, np.ones(len(s)), query, 0.03, end_band=(0.8, np.inf))[heel]
    without = _colour_profile(s, colours, np.ones(len(s)), query, 0.03)[heel]
    assert np.abs(with_end - BLACK).max() < 20.0, with_end
    assert np.abs(without - SKIN).max() < 20.0, without


def test_a_limb_fitted_off_the_photo_reads_the_photo_where_its_keypoints_lie():
    """A raised arm (green sleeve) fitted 25 px below the photo's arm, over a dark region the model does not have
    (hair behind a raised forearm, icon_028009): with BlazePose's shoulder/elbow/wrist on the photo's arm, the
    model arm's outer half reads the photo's sleeve; without the keypoints it takes the dark region (the test can
    fail). The offset fades to zero at the shoulder, and the torso keeps its own colours."""
    from icon_engine.texture.keeps import limb_alignment

    green, dark, shirt = np.array([40.0, 170.0, 60.0]), np.array([25.0, 20.0, 20.0]), np.array([200.0, 60.0, 60.0])
    cam = front_camera(width=360, height=480, distance=2.6, height_m=0.75)
    dy = 25.0 * 2.6 / float(cam.K[1, 1])  # metres that project to 25 px at the arm's depth
    torso = _box(np.array([0.0, 0.75, 0.0]), np.array([0.15, 0.6, 0.08]), 3)
    arm = _box(np.array([0.45, 1.2, 0.0]), np.array([0.3, 0.05, 0.05]), 4)
    panel = _box(np.array([0.5, 1.05, -0.12]), np.array([0.35, 0.2, 0.01]), 2)  # only in the photo

    def colour(points: np.ndarray) -> np.ndarray:
        out = np.tile(shirt, (len(points), 1))
        out[points[:, 0] > 0.152] = green
        out[points[:, 2] < -0.1] = dark
        return out

    pv = np.concatenate([torso[0], arm[0], panel[0]])
    pf = np.concatenate([torso[1], arm[1] + len(torso[0]), panel[1] + len(torso[0]) + len(arm[0])])
    rgb, mask = synthetic_photo(pv, pf, pv, cam, colour=colour)
    model_arm = arm[0] - np.array([0.0, dy, 0.0])
    v = np.concatenate([torso[0], model_arm])
    f = np.concatenate([torso[1], arm[1] + len(torso[0])])
    parts = np.r_[np.full(len(torso[0]), PART_TORSO), np.full(len(arm[0]), PART_LEFT_ARM)]
    joints = np.zeros((55, 3))
    photo_joints = np.array([[0.15, 1.2, 0.0], [0.45, 1.2, 0.0], [0.75, 1.2, 0.0]])
    joints[[16, 18, 20]] = photo_joints - np.array([0.0, dy, 0.0])
    keypoints = np.zeros((33, 3))
    keypoints[[11, 13, 15], :2] = cam.project(photo_joints)[0]
    keypoints[[11, 13, 15], 2] = 0.95
    off = limb_alignment(cam, v, parts, keypoints, joints, 460.0)
    assert np.abs(off[parts == PART_TORSO]).max() == 0.0
    shift = 25.0 - 0.015 * 460.0  # shortened by the dead zone
    assert np.allclose(off[(parts == PART_LEFT_ARM) & (v[:, 0] > 0.45)], [0.0, -shift], atol=0.5)
    assert np.abs(off[(parts == PART_LEFT_ARM) & (v[:, 0] < 0.16)]).max() < 1.0  # zero at the shoulder
    capped = limb_alignment(cam, v, parts, keypoints, joints, 200.0)  # cap 6 % of 200 px = 12 px
    assert np.linalg.norm(capped, axis=1).max() <= 12.0 + 1e-4
    assert not limb_alignment(cam, v, parts, keypoints, joints, 25.0 / 0.015 + 1).any()  # inside the dead zone
    from icon_engine.errors import EngineError

    with pytest.raises(EngineError, match="BlazePose"):
        limb_alignment(cam, v, parts, keypoints[:17], joints, 460.0)
    shy = keypoints.copy()
    shy[13, 2] = 0.1  # the elbow unsure: nothing to align the arm by
    assert not limb_alignment(cam, v, parts, shy, joints, 460.0).any()

    outer = (parts == PART_LEFT_ARM) & (v[:, 0] > 0.45) & (v[:, 0] < 0.74) & (v[:, 2] > 0.049)
    assert outer.sum() >= 5
    tex = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts, keypoints=(keypoints, joints))
    assert np.abs(tex.vertex_colors[outer].astype(np.float64) - green).mean() < 25.0
    front_torso = (parts == PART_TORSO) & (v[:, 2] > 0.079) & (np.abs(v[:, 0]) < 0.1)
    assert np.abs(tex.vertex_colors[front_torso].astype(np.float64) - shirt).mean() < 10.0
    old = bake_texture(v, f, rgb, mask, cam, size=256, vertex_parts=parts)
    assert np.abs(old.vertex_colors[outer].astype(np.float64) - green).mean() > 60.0


def _head_scene():
    """A head (part 5, a sphere of 10 cm at 1.6 m, rest pose, facing +Z) photographed from its left side (+X): the
    seen side shows hair on the skull and at the back, skin on the face's left half below the skull."""
    import trimesh

    from icon_engine.geometry.normals import vertex_normals

    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    v = np.asarray(mesh.vertices) + np.array([0.0, 1.6, 0.0])
    f = np.asarray(mesh.faces)
    n = np.asarray(vertex_normals(v, f))
    view_cos = n[:, 0]  # the camera on the head's left (+X)
    skull = v[:, 1] > 1.6 + 0.5 * 0.1  # above HAIR_SKULL of the head's height
    face = (n[:, 2] > -0.1) & ~skull
    colours = np.where(face[:, None], SKIN, HAIR)
    alpha = np.where(view_cos > 0.25, 1.0, 0.0)
    return v, f, np.full(len(v), PART_HEAD), alpha, colours, view_cos, n


def test_the_hidden_front_of_a_face_is_skin_not_hair():
    """A face photographed from the side: its hidden half (the right cheek, the front of the face beyond the nose)
    takes the face's skin, the hidden back of the head the hair. Without the face's direction (a bake without a
    rest pose) the hidden front is hair, as before wave 20 (dev photo icon_e1e7622a's face was hair-coloured from
    the front)."""
    from icon_engine.texture.bake import REST_FORWARD

    v, f, parts, alpha, colours, view_cos, n = _head_scene()
    hidden_face = (alpha == 0) & (n[:, 2] > 0.85) & (v[:, 1] < 1.65) & (v[:, 1] > 1.55)
    hidden_back = (alpha == 0) & (n[:, 2] < -0.5)
    assert hidden_face.sum() > 20 and hidden_back.sum() > 20
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, view_cos, face_forward=REST_FORWARD)
    assert np.abs(out[hidden_face] - SKIN).max(axis=1).mean() < 25.0, out[hidden_face].mean(axis=0)
    assert np.abs(out[hidden_back] - HAIR).max(axis=1).mean() < 15.0, out[hidden_back].mean(axis=0)
    assert stats["hidden_face_vertices"] > 0
    before = unseen_side_fill(v, f, parts, alpha, colours, view_cos)[0]
    assert np.abs(before[hidden_face] - HAIR).max(axis=1).mean() < 25.0, before[hidden_face].mean(axis=0)


def test_a_pattern_under_an_arm_is_taken_across_the_body_when_the_photo_is_sideways():
    """A striped shirt photographed sideways (the torso lies across the photo, its stripes run down the image):
    where an arm hides the shirt, the back takes the detail of the nearest shirt pixel in the same image *column*,
    the same stripe. Wave 19 took the same image row, along the body, which on a sideways photo (dev photo
    icon_028009 turned 90°) drew streaks down the back."""
    from types import SimpleNamespace

    from icon_engine.camera import Camera
    from icon_engine.texture.sampling import _see_through_detail

    h, w = 100, 200
    stripe = (np.arange(w) // 6) % 2 == 0  # 6-px stripes across the body: columns in a sideways photo
    photo = np.where(stripe[None, :, None], 40.0, 220.0) * np.ones((h, w, 3))
    photo = photo.astype(np.float32)
    blur = np.full((h, w, 3), 130.0, dtype=np.float32)  # the pattern's mean
    torso = np.zeros((h, w), dtype=bool)
    torso[30:70, 20:180] = True  # lying across the photo: wider than tall
    arm = np.zeros((h, w), dtype=bool)
    arm[45:56, 95:105] = True  # an arm across it
    bits = np.where(arm, 1 << PART_LEFT_ARM, np.where(torso, 1 << PART_TORSO, 0)).reshape(-1)
    pattern = np.where(torso & ~arm, PART_TORSO, -1)
    camera = Camera(np.array([[100.0, 0, 0], [0, 100.0, 0], [0, 0, 1]]), np.eye(3), np.zeros(3), w, h)
    view = SimpleNamespace(camera=camera, photo=photo, blur=(blur, torso | arm), part_bits=bits,
                           pattern_part=pattern, busy=(PART_TORSO,), foreign=None)
    under_arm = np.array([[1.005, 0.505, 1.0]])  # pixel (100.5, 50.5): the arm; its column's stripe is dark
    detail = _see_through_detail(view, under_arm, np.array([PART_TORSO]))
    assert detail[0, 0] < -50.0, detail  # the dark stripe's detail (40 − 130), not the light one beside the arm


def test_the_hidden_cheeks_in_front_of_the_ears_keep_the_profile_not_the_hair():
    """The cheek of a face seen from the other side turns 60–90° from the front: the hair rule made it hair, a
    sideburn from the temple to the jaw (dev photo icon_e1e7622a, before wave 21). Below the eyes, in front of the
    ears' plane, the hidden cheek takes the head's profile at its height (the seen cheek's skin here; a beard where
    the photo shows one); behind the ears and on the skull it stays hair."""
    import trimesh

    from icon_engine.geometry.normals import vertex_normals
    from icon_engine.texture.fill import FACE_EYE_LINE, _jaw_front

    head = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    v = np.asarray(head.vertices) * [0.08, 0.12, 0.1] + [0.0, 1.6, 0.0]  # a head 24 cm tall, +Z the face
    f = np.asarray(head.faces)
    y_rel = (v[:, 1] - v[:, 1].min()) / np.ptp(v[:, 1])
    side = np.abs(v[:, 0]) > 0.06  # the head's sides: normals 60-90° from the front
    cheek = side & (v[:, 2] > 0.035) & (y_rel > 0.35) & (y_rel < FACE_EYE_LINE - 0.15)
    behind = side & (v[:, 2] < -0.01)
    skull = y_rel > 0.9
    every = np.arange(len(v))
    jaw = _jaw_front(v, every, np.array([0.0, 0.0, 1.0]), every)
    assert cheek.sum() > 5 and jaw[cheek].min() > 0.9, jaw[cheek].min()
    assert jaw[behind].max() == 0.0 and jaw[skull].max() == 0.0
    # the whole fill: the photo (a camera on +X) shows the head's left half, hair above the eyes and behind the ears
    hair_rgb, skin_rgb = np.array([40.0, 30.0, 25.0]), np.array([200.0, 150.0, 120.0])
    colours = np.where(((y_rel > 0.62) | ((v[:, 2] < 0) & (y_rel > 0.5)))[:, None], hair_rgb, skin_rgb)
    view_cos = np.asarray(vertex_normals(v, f))[:, 0]
    alpha = np.where(view_cos > 0.1, 1.0, 0.0)
    parts = np.full(len(v), PART_HEAD)
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, view_cos, face_forward=np.array([0.0, 0.0, 1.0]))
    hidden_cheek = cheek & (v[:, 0] < 0)
    print("hidden cheek", np.median(out[hidden_cheek], axis=0), stats.get("hair_colour"))
    assert np.abs(np.median(out[hidden_cheek], axis=0) - skin_rgb).max() < 25
    hidden_back = (v[:, 0] < -0.03) & (v[:, 2] < -0.03) & (y_rel > 0.65)
    assert np.abs(np.median(out[hidden_back], axis=0) - hair_rgb).max() < 25


def test_the_far_side_of_a_head_seen_turned_takes_the_near_sides_colours(monkeypatch):
    """A head photographed from its left side (+X), its hair tied back (hair behind the ears down to the jaw, so the
    head's profile at cheek height is mostly hair): the hidden right eye, cheek and ear take the colours the photo
    shows at their mirror image on the left (wave 22) — an eye where the eye is, skin on the cheek — instead of the
    profile's hair over the far cheek (dev photo icon_22097467) and a featureless smear (icon_5a6a2596)."""
    import trimesh

    from icon_engine.geometry.normals import vertex_normals
    from icon_engine.texture import fill

    head = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    v = np.asarray(head.vertices) * [0.08, 0.12, 0.1] + [0.0, 1.6, 0.0]  # a head 24 cm tall, +Z the face
    f = np.asarray(head.faces)
    y_rel = (v[:, 1] - v[:, 1].min()) / np.ptp(v[:, 1])
    hair_rgb, skin_rgb = np.array([30.0, 25.0, 25.0]), np.array([200.0, 150.0, 120.0])
    eye_rgb = np.array([40.0, 60.0, 200.0])
    hair = (y_rel > 0.62) | ((v[:, 2] < 0.01) & (y_rel > 0.25))
    eye = (np.linalg.norm(v[:, [0, 2]] - [0.035, 0.085], axis=1) < 0.02) & (np.abs(y_rel - 0.55) < 0.05)
    colours = np.where(hair[:, None], hair_rgb, np.where(eye[:, None], eye_rgb, skin_rgb))
    view_cos = np.asarray(vertex_normals(v, f))[:, 0]
    alpha = np.where(view_cos > 0.1, 1.0, 0.0)
    parts = np.full(len(v), PART_HEAD)
    far_eye = (np.linalg.norm(v[:, [0, 2]] - [-0.035, 0.085], axis=1) < 0.015) & (np.abs(y_rel - 0.55) < 0.03)
    far_cheek = (v[:, 0] < -0.06) & (v[:, 2] > 0.02) & (y_rel > 0.3) & (y_rel < 0.45)
    assert far_eye.sum() >= 3 and far_cheek.sum() >= 5 and (alpha[far_eye | far_cheek] == 0).all()
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, view_cos, face_forward=np.array([0.0, 0.0, 1.0]))
    assert stats["head_mirrored_vertices"] > 0.3 * (alpha == 0).sum()
    assert np.abs(np.median(out[far_eye], axis=0) - eye_rgb).max() < 40, np.median(out[far_eye], axis=0)
    assert np.abs(np.median(out[far_cheek], axis=0) - skin_rgb).max() < 25, np.median(out[far_cheek], axis=0)
    # without the mirror: no eye on the far side, and the far cheek takes the hair of the profile at its height
    monkeypatch.setattr(fill, "HEAD_MIRROR_M", 0.0)
    before, _ = unseen_side_fill(v, f, parts, alpha, colours, view_cos, face_forward=np.array([0.0, 0.0, 1.0]))
    assert np.abs(np.median(before[far_eye], axis=0) - eye_rgb).max() > 60
    assert np.abs(np.median(before[far_cheek], axis=0) - skin_rgb).max() > 40, np.median(before[far_cheek], axis=0)


def test_the_profiles_running_median_keeps_the_garments_own_colours():
    """The hidden side's profile is smoothed by a running median along the part (:func:`_steady_runs`): a band
    shorter than the window goes and a step stays, and every colour it gives is one of the profile's own. A stretch
    of skin (6 positions) between a grey sleeve (7) and a white band (5), the window 17 positions wide (the
    icon_5a6a2596 forearm): a median per channel gave the skin's red with the sleeve's green and blue, a pink no
    garment has (the test can fail: that filter is the counter-check)."""
    from scipy.ndimage import median_filter

    from icon_engine.texture.fill import _steady_runs

    grey, skin, white = [186.0, 180.0, 187.0], [220.0, 170.0, 131.0], [215.0, 218.0, 224.0]
    prof = np.array([grey] * 12 + [skin] * 6 + [white] * 5 + [grey] * 12)
    keep = np.ones(len(prof), dtype=bool)
    out = _steady_runs(prof, keep, 8)
    nearest = np.linalg.norm(out[:, None] - prof[None], axis=2).min(axis=1)
    assert nearest.max() == 0.0
    assert (out[:8] == grey).all() and (out[-8:] == grey).all()  # the runs longer than the window stay
    per_channel = median_filter(prof, size=(17, 1), mode="nearest")
    assert np.linalg.norm(per_channel[:, None] - prof[None], axis=2).min(axis=1).max() > 20.0
    # a step between two long runs stays a step; the end band (keep False) is left as it is
    step = np.array([grey] * 20 + [skin] * 20)
    ends = np.ones(40, dtype=bool)
    ends[-3:] = False
    stepped = _steady_runs(step, ends, 4)
    assert (stepped[:20] == grey).all() and (stepped[20:] == skin).all()


def _strip(columns: int = 40, rows: int = 20, spacing: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A flat grid (metres, the XY plane) of ``columns`` × ``rows`` vertices and its triangles."""
    x, y = np.meshgrid(np.arange(columns) * spacing, np.arange(rows) * spacing)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    i = np.arange(columns - 1)[None, :] + columns * np.arange(rows - 1)[:, None]
    i = i.ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + columns], 1), np.stack([i + 1, i + columns + 1, i + columns], 1)])
    return vertices, faces


def test_one_garment_over_two_parts_has_no_seam_where_they_meet():
    from icon_engine.texture.fill import PART_SEAM_BAND, blend_part_seams

    v, f = _strip()
    parts = np.where(v[:, 0] < 0.195, 0, 3)  # torso left of x = 0.2, a leg right of it
    colours = np.where(parts[:, None] == 0, [140.0, 140.0, 150.0], [110.0, 110.0, 120.0])  # one dress, two greys
    colours[v[:, 0] > 0.345] = [200.0, 150.0, 120.0]  # the skin below its hem
    hidden = np.ones(len(v), dtype=bool)
    hidden[v[:, 1] > 0.175] = False  # the top rows are seen: photo colours
    out, moved = blend_part_seams(colours, hidden, parts, f, v, height=1.0)
    row = (np.abs(v[:, 1] - 0.05) < 1e-9)
    left = row & (np.abs(v[:, 0] - 0.19) < 1e-9)
    right = row & (np.abs(v[:, 0] - 0.20) < 1e-9)
    assert np.abs(colours[left] - colours[right]).max() == 30.0
    assert np.abs(out[left] - out[right]).max() < 1e-9  # the step at the seam is gone: both meet at the mean
    assert np.allclose(out[left], [125.0, 125.0, 135.0])
    far = np.abs(v[:, 0] - 0.195) > PART_SEAM_BAND + 0.005
    assert np.array_equal(out[far], colours[far])  # beyond the band nothing moves
    assert np.array_equal(out[~hidden], colours[~hidden])  # nor does what the photo shows
    assert moved == int((~np.isclose(out, colours).all(axis=1)).sum()) > 0
    # another garment (a blue leg under a grey top) keeps its step
    blue = np.where(parts[:, None] == 0, [140.0, 140.0, 150.0], [40.0, 60.0, 160.0])
    out_blue, moved_blue = blend_part_seams(blue, hidden, parts, f, v, height=1.0)
    assert moved_blue == 0 and np.array_equal(out_blue, blue)


def test_a_seam_blend_leaves_the_next_garment_alone():
    from icon_engine.texture.fill import blend_part_seams

    v, f = _strip()
    parts = np.where(v[:, 0] < 0.195, 0, 3)
    colours = np.where(parts[:, None] == 0, [140.0, 140.0, 150.0], [110.0, 110.0, 120.0])
    band = (v[:, 0] > 0.205) & (v[:, 0] < 0.235)
    colours[band] = [60.0, 40.0, 30.0]  # a dark belt on the leg's side right next to the seam
    out, _ = blend_part_seams(colours, np.ones(len(v), dtype=bool), parts, f, v, height=1.0)
    assert np.array_equal(out[band], colours[band])

