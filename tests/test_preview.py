"""Tests for icon_engine.preview: the mesh over the photo beside a side view, and PNG writing."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from icon_engine import preview
from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics

W, H = 192, 256


def _slab() -> tuple[np.ndarray, np.ndarray]:
    """A box 0.8 m wide (X), 1.6 m tall (Y), 0.1 m deep (Z), standing on the ground."""
    box = trimesh.creation.box(extents=(0.8, 1.6, 0.1))
    return np.asarray(box.vertices) + [0.0, 0.8, 0.0], np.asarray(box.faces)


def _camera(w: int = W, h: int = H) -> Camera:
    return Camera(default_intrinsics(w, h), FRONT_VIEW_R.copy(), np.array([0.0, 0.8, 4.0]), w, h)


def _photo(w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def test_preview_layout_blend_and_side_view():
    v, f = _slab()
    photo = _photo()
    img = preview.make_preview(photo, v, f, _camera())
    side_w = H // 2
    assert img.shape == (H, W + side_w, 3) and img.dtype == np.uint8
    front = img[:, :W]
    changed = np.any(front != photo, axis=2)
    # The slab's projection: 0.8 m wide at 3.95 m → f·0.8/3.95 px.
    K = default_intrinsics(W, H)
    width_px = K[0, 0] * 0.8 / 3.95
    cols = np.nonzero(changed[H // 2])[0]
    assert abs((cols.max() - cols.min() + 1) - width_px) < 3
    assert not changed[:, : int(W / 2 - width_px / 2) - 2].any()  # photo untouched outside the mesh
    # Semi-transparent: the photo still shows through (correlated with the blend inside the mesh).
    inside = changed.copy()
    inside[:, : int(W / 2 - width_px / 2) + 3] = False
    inside[:, int(W / 2 + width_px / 2) - 3 :] = False
    a = front[inside].astype(float).mean(axis=1)
    b = photo[inside].astype(float).mean(axis=1)
    assert np.corrcoef(a, b)[0, 1] > 0.5
    # Side view: the slab turned 90° is as wide as it is deep (narrow) and as tall as before.
    side = img[:, W:].astype(int)
    bg = side[:, 0]  # the left column is background
    fg = np.any(np.abs(side - bg[:, None, :]) > 6, axis=2)
    rows = np.nonzero(fg.any(axis=1))[0]
    cols = np.nonzero(fg.any(axis=0))[0]
    height_px, depth_px = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert height_px > 0.8 * H
    assert depth_px < 0.12 * height_px  # 0.1 m deep vs 1.6 m tall


def test_preview_uses_vertex_colors_and_rescales_camera():
    v, f = _slab()
    red = np.tile([255, 0, 0], (len(v), 1)).astype(np.uint8)
    photo = np.zeros((H, W, 3), dtype=np.uint8)
    big = _camera(2 * W, 2 * H)  # made for a photo twice as large
    img = preview.make_preview(photo, v, f, big, colors=red, opacity=1.0)
    c = img[H // 2, W // 2].astype(int)
    assert c[0] > 120 and c[1] < 20 and c[2] < 20
    with pytest.raises(ValueError):
        preview.make_preview(photo, v, f, _camera(W, W))  # another aspect ratio
    with pytest.raises(ValueError):
        preview.make_preview(photo, v, f, _camera(), colors=red[:5])
    with pytest.raises(ValueError):
        preview.make_preview(photo.astype(np.float32), v, f, _camera())


def test_save_png_round_trip(tmp_path):
    img = _photo(20, 10)
    out = preview.save_png(tmp_path / "sub" / "p.png", img)
    back = np.asarray(Image.open(out))
    assert back.shape == (10, 20, 3) and (back == img).all()
    with pytest.raises(ValueError):
        preview.save_png(tmp_path / "x.png", img.astype(np.float64))


def test_background_preview_matches_make_preview():
    """The pipeline's two-step preview on a worker thread (colour-free rendering first, colours later) gives the
    same image as make_preview, PNG-encoded."""
    import io

    v, f = _slab()
    photo = _photo()
    colors = np.random.default_rng(1).integers(0, 255, (len(v), 3)).astype(np.uint8)
    job = preview.BackgroundPreview(photo, v, f, _camera())
    try:
        png = job.png(colors).result(timeout=60)
    finally:
        job.close()
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert np.array_equal(decoded, preview.make_preview(photo, v, f, _camera(), colors=colors))
    layout = preview.prepare_preview(photo, v, f, _camera())
    assert np.array_equal(preview.compose_preview(layout), preview.make_preview(photo, v, f, _camera()))
