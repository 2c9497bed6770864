"""The photos of a several-photo avatar in its bundle (format 2/3, optional ``subject.photos[i].image``): the
engine's downscaled copies, and the reader's checks of them (a bundle is untrusted input)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_blender_bundle import make_bundle, view_photo_grey

from icon_engine.bundle import BundleError, read_bundle
from icon_engine.bundle.reader import MAX_VIEW_PHOTO_SIDE
from icon_engine.subject import PHOTO_SIDE, photo_jpeg


def _jpeg(width: int, height: int, grey: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), grey, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _edit(bundle: Path, change) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    change(meta)
    (bundle / "bundle.json").write_text(json.dumps(meta))


def test_photo_jpeg_downscales_to_the_long_side_and_keeps_small_photos() -> None:
    rng = np.random.default_rng(0)
    tall = rng.integers(0, 255, (3000, 2000, 3), dtype=np.uint8)
    img = Image.open(io.BytesIO(photo_jpeg(tall)))
    assert img.format == "JPEG" and img.size == (round(2000 * PHOTO_SIDE / 3000), PHOTO_SIDE)
    small = np.full((300, 200, 3), 50, np.uint8)
    img = Image.open(io.BytesIO(photo_jpeg(small)))
    assert img.size == (200, 300)  # never upscaled
    assert abs(float(np.asarray(img).mean()) - 50) < 2


def test_reader_gives_each_used_photo_its_image(tmp_path: Path) -> None:
    b = read_bundle(make_bundle(tmp_path / "alice", views=3))
    used = [v for v in b.views if v.status == "used"]
    assert used[0].image == b.file("photo")  # the first photo is the bundle's own
    for i, view in enumerate(b.views):
        if view.status != "used" or view is used[0]:
            assert view.status == "used" or view.image is None
            continue
        assert view.image == b.path / f"photo_{i}.jpg" and view.image.is_file()
        assert abs(float(np.asarray(Image.open(view.image)).mean()) - view_photo_grey(i)) < 3


def test_reader_accepts_a_subject_without_images(tmp_path: Path) -> None:
    """Bundles written before the images existed (format 2 without ``image``) still read; no image then."""
    path = make_bundle(tmp_path / "old", views=3)

    def drop(meta: dict) -> None:
        for entry in meta["subject"]["photos"]:
            entry.pop("image", None)
        for key in [k for k in meta["files"] if k.startswith("photo_")]:
            del meta["files"][key]

    _edit(path, drop)
    b = read_bundle(path)
    assert [v.image for v in b.views if v.status == "used"][1:] == [None, None]


@pytest.mark.parametrize("damage, message", [
    ("other_name", "is not the bundle's file 'photo_1'"),
    ("outside", "must be a plain file name"),
    ("not_an_image", "is not a PNG or JPEG image"),
    ("too_big", f"at most {MAX_VIEW_PHOTO_SIDE} on its longest side"),
    ("wrong_shape", "does not have its camera's proportions"),
    ("link", "is a symbolic link"),
])  # fmt: skip
def test_reader_refuses_a_bad_subject_image(tmp_path: Path, damage: str, message: str) -> None:
    path = make_bundle(tmp_path / "bad", views=3)
    image = path / "photo_1.jpg"
    if damage == "other_name":
        _edit(path, lambda m: m["subject"]["photos"][1].update(image="texture.png"))
    elif damage == "outside":
        (tmp_path / "secret.jpg").write_bytes(_jpeg(160, 120))
        _edit(path, lambda m: m["files"].update(photo_1="../secret.jpg"))
    elif damage == "not_an_image":
        image.write_bytes(b"#!/bin/sh\necho hello\n")
    elif damage == "too_big":
        image.write_bytes(_jpeg(MAX_VIEW_PHOTO_SIDE + 4, (MAX_VIEW_PHOTO_SIDE + 4) * 3 // 4))
    elif damage == "wrong_shape":
        image.write_bytes(_jpeg(120, 160))  # portrait for a landscape camera
    elif damage == "link":
        (tmp_path / "elsewhere.jpg").write_bytes(image.read_bytes())
        image.unlink()
        image.symlink_to(tmp_path / "elsewhere.jpg")
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(path)
