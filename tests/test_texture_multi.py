"""Texture from several photos (issue 13): each photo's weight follows how well its fit places the avatar (wave 6);
the bench's colour error and its reading of the photos' labels (bench/multiview.py, wave 7)."""

from __future__ import annotations

import numpy as np
import pytest

GREEN = np.array([40.0, 200.0, 60.0])


def _scaled(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + (points - centre) * factor


@pytest.mark.parametrize("power", [None, 0.0])
def test_a_badly_registered_photo_weighs_less(monkeypatch, power):
    """Front photo + two back photos: one whose fit places the avatar right, one whose fit makes it 10 % too big
    (its silhouette overlaps the person worse: no shift fixes a scale) and which shows a green print where the
    first shows the red one. The back print takes the well-registered photo's red (registration weighting); with
    :data:`REGISTRATION_POWER` 0 the two photos blend half and half (the test can fail)."""
    from test_texture import BACK_PRINT, _outfit_with_back, front_back_photos

    import icon_engine.texture as texture
    from bench.repose import synthetic_photo
    from icon_engine.texture import PhotoView, bake_texture, render_textured

    if power is not None:
        monkeypatch.setattr(texture.sampling, "REGISTRATION_POWER", power)
    subject, posed, parts, cam, back_cam, (rgb, mask), (back_rgb, back_mask) = front_back_photos(_outfit_with_back)

    def green_print(points: np.ndarray) -> np.ndarray:
        out = _outfit_with_back(points)
        out[np.all(out == BACK_PRINT, axis=1)] = GREEN
        return out

    green_rgb, green_mask = synthetic_photo(posed, subject.faces, subject.rest_vertices, back_cam, colour=green_print)
    tex = bake_texture(posed, subject.faces, rgb, mask, cam, size=256, vertex_parts=parts,
                       more_views=[PhotoView(posed, back_rgb, back_mask, back_cam),
                                   PhotoView(_scaled(posed, 1.1), green_rgb, green_mask, back_cam)])
    truth, _ = synthetic_photo(posed, subject.faces, subject.rest_vertices, back_cam, colour=_outfit_with_back)
    on_print = np.all(truth == BACK_PRINT.astype(np.uint8), axis=2)
    out, covered = render_textured(posed, subject.faces, tex.uv, tex.image, back_cam)
    err = float(np.abs(out[on_print & covered] - BACK_PRINT).mean())
    if power is None:
        assert err < 20.0, err
    else:
        assert err > 40.0, err


def test_registration_needs_every_photos_mask():
    """The registration weight needs each photo's person mask: with one photo's mask missing every photo weighs 1
    (an IoU against a mask of the whole image would bury that photo); with masks each photo's IoU is reported."""
    from test_texture import _outfit_with_back, front_back_photos

    from icon_engine.texture import PhotoView, bake_texture

    subject, posed, parts, cam, back_cam, (rgb, mask), (back_rgb, back_mask) = front_back_photos(_outfit_with_back)
    with_masks = bake_texture(posed, subject.faces, rgb, mask, cam, size=128, vertex_parts=parts,
                              more_views=[PhotoView(posed, back_rgb, back_mask, back_cam)])
    reg = with_masks.stats["photo_registration"]
    assert len(reg) == 2 and all(0.8 < r < 1.0 for r in reg) and abs(reg[0] - reg[1]) < 0.02, reg  # eroded masks
    no_mask = bake_texture(posed, subject.faces, rgb, mask, cam, size=128, vertex_parts=parts,
                           more_views=[PhotoView(posed, back_rgb, None, back_cam)])
    assert no_mask.stats["photo_registration"] == [1.0, 1.0]


def test_bench_view_index_reads_the_bench_labels():
    """bench/multiview.py finds the front (0) and back (2) photo of a set from the photos' labels."""
    from bench.multiview import view_index

    assert view_index("s11_000_loose_view2.png") == 2
    assert view_index("s11_000_loose_view0.png") == 0
    assert view_index("preview_view12.jpg") == 12
    assert view_index("front.jpg") == -1 and view_index("my_view.png") == -1 and view_index("a_viewx.png") == -1


def test_bench_own_fit_error_is_scored_up_to_the_photos_exposure():
    """The bench's own-fit colour error (bench/multiview.py ``colour_error``, wave 7): a front + back texture takes
    the front photo's exposure, so the avatar seen through the back camera is brighter than the back photo, which
    was shot ×0.7 darker. Raw, that exposure difference reads as a large colour error (what the bench's "own fits"
    column showed before wave 7: 6.9 / 27.8 where the texture is off by ~1–4); after one gain per channel it is
    the texture's own error. A render a few pixels off still shows an error after the gain (the gain cannot hide
    misplaced colours)."""
    from test_texture import _outfit_with_back, front_back_photos

    from bench.multiview import colour_error
    from icon_engine.texture import PhotoView, bake_texture, render_textured

    subject, posed, parts, cam, back_cam, (rgb, mask), (back_rgb, back_mask) = front_back_photos(_outfit_with_back)
    dark = np.clip(np.rint(back_rgb * 0.7), 0, 255).astype(np.uint8)
    tex = bake_texture(posed, subject.faces, rgb, mask, cam, size=256, vertex_parts=parts,
                       more_views=[PhotoView(posed, dark, back_mask, back_cam)])
    out, covered = render_textured(posed, subject.faces, tex.uv, tex.image, back_cam)
    raw, gained, per, gain = colour_error(out, covered, dark, back_mask)
    assert raw > 3 * gained and gained < 6.0, (raw, gained)
    assert np.all(np.abs(gain - 0.7) < 0.1), gain  # the photo is ×0.7 the texture (front exposure)
    assert per.shape == mask.shape and np.isclose(per[per > 0].sum() / max((per > 0).sum(), 1), gained, rtol=0.2)
    moved = np.roll(out, 6, axis=0), np.roll(covered, 6, axis=0)
    assert colour_error(*moved, dark, back_mask)[1] > 1.5 * gained


def _turnaround_colours(gains: tuple[float, ...], light_turn_deg: float = 17.0) -> tuple:
    """A grey-shirted cylinder (radius 0.15 m) photographed from 4 sides (0°, 90°, 180°, 270° about +Y), each photo
    lit by a light on its camera turned ``light_turn_deg`` about the vertical (Lambert, ambient 0.35, as the
    bench's renders) and exposed × ``gains[k]``: (colours (4, N, 3), photo weights (4, N), points (N, 3), view
    cosines (4, N))."""
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 2 * np.pi, 6000)
    points = np.stack([0.15 * np.sin(a), rng.uniform(0, 1, 6000), 0.15 * np.cos(a)], axis=1)
    normals = np.stack([np.sin(a), np.zeros_like(a), np.cos(a)], axis=1)
    albedo = np.array([150.0, 140.0, 130.0])
    colours, alphas, cosines = [], [], []
    for k, yaw in enumerate((0.0, 90.0, 180.0, 270.0)):
        view = np.radians(yaw)
        light = np.radians(yaw + light_turn_deg)
        cos = normals @ np.array([np.sin(view), 0.0, np.cos(view)])
        shade = 0.35 + 0.65 * np.clip(normals @ np.array([np.sin(light), 0.0, np.cos(light)]), 0.0, 1.0)
        colours.append(albedo[None] * shade[:, None] * gains[k])
        alphas.append(np.clip((cos - 0.12) / (0.45 - 0.12), 0.0, 1.0))
        cosines.append(cos)
    return np.stack(colours), np.stack(alphas), points, np.stack(cosines)


def test_exposure_gains_close_the_loop_round_a_turnaround():
    """Four photos round a person, each lit by a light on its camera a little off its axis: every pair of
    neighbouring photos sees their shared quarter lit differently (one photo's light falls head-on where the
    other's grazes), the same way round the loop. Chaining each photo's gain to the photos before it multiplied
    that bias (the old fit put every other photo at the lowest gain, 0.70, on bench/multiview.py; here 1.41 / 1.45 /
    1.11); solved jointly over the pairs that see the same points the loop closes and every gain stays near 1 (the
    photos share one exposure). A real exposure difference is still found: the back photo shot × 0.75."""
    from icon_engine.texture import exposure_gains

    gains = exposure_gains(*_turnaround_colours((1.0, 1.0, 1.0, 1.0)))[:, 0]
    assert np.all(np.abs(gains - 1.0) < 0.05), gains
    darker = exposure_gains(*_turnaround_colours((1.0, 1.0, 0.75, 1.0)))[:, 0]
    assert np.all(np.abs(darker[2] * 0.75 - 1.0) < 0.05), darker
    assert np.all(np.abs(darker[[0, 1, 3]] - 1.0) < 0.05), darker


def test_exposure_gains_link_groups_of_photos_across_a_seam():
    """Two front photos and two back photos (× 0.75) of a shirt-over-trousers cylinder: each pair sees the same
    points, the two pairs only meet across the seams. The seam pairs link the back photos to the front ones (both
    recover 1 / 0.75); a seam pair between photos that shared points already link would not count."""
    from icon_engine.texture import exposure_gains

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 2 * np.pi, 4000)
    y = rng.uniform(0, 1, 4000)
    points = np.stack([0.15 * np.cos(a), y, 0.15 * np.sin(a)], axis=1)
    base = np.where((y > 0.5)[:, None], [200.0, 180.0, 60.0], [40.0, 50.0, 120.0])
    front, back = np.sin(a) > 0.05, np.sin(a) < -0.05
    colours = np.stack([base, base, base * 0.75, base * 0.75])
    alphas = np.stack([front, front, back, back]).astype(np.float64)
    gains = exposure_gains(colours, alphas, points)[:, 0]
    assert np.allclose(gains[:2], 1.0, atol=0.02), gains
    assert np.allclose(gains[2:], 1 / 0.75, rtol=0.05), gains
