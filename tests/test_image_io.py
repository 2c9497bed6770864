"""Photo input: formats, modes, EXIF orientation, downscaling, refusals, folder expansion."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from icon_engine.errors import EngineError
from icon_engine.image_io import MAX_SIDE, list_photos, load_photo, processing_size


def _pattern(width: int = 160, height: int = 120) -> np.ndarray:
    """An RGB test card: a horizontal ramp in red, a vertical ramp in green, blue constant."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.dstack([x, y, np.full_like(x, 90)]).astype(np.uint8)


def _error(path: Path) -> EngineError:
    with pytest.raises(EngineError) as info:
        load_photo(path)
    assert info.value.message and info.value.hint
    return info.value


@pytest.mark.parametrize(
    ("suffix", "fmt", "tolerance"),
    [(".png", "PNG", 0), (".jpg", "JPEG", 12), (".webp", "WEBP", 0), (".bmp", "BMP", 0), (".tif", "TIFF", 0)],
)
def test_formats_load_as_rgb(tmp_path: Path, suffix: str, fmt: str, tolerance: int) -> None:
    rgb = _pattern()
    path = tmp_path / f"card{suffix}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(rgb).save(path, fmt, **kwargs)
    photo = load_photo(path)
    assert photo.rgb.shape == (120, 160, 3) and photo.rgb.dtype == np.uint8
    assert np.abs(photo.rgb.astype(int) - rgb).mean() <= tolerance
    assert photo.alpha is None
    assert photo.original_size == (160, 120) and photo.scale == 1.0
    assert photo.data == path.read_bytes() and photo.path == path


def test_greyscale_and_palette(tmp_path: Path) -> None:
    grey = _pattern()[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    photo = load_photo(tmp_path / "grey.png")
    assert photo.rgb.shape == (120, 160, 3)
    assert np.array_equal(photo.rgb[..., 0], grey) and np.array_equal(photo.rgb[..., 2], grey)

    card = Image.fromarray(_pattern()).quantize(64)
    card.save(tmp_path / "palette.png")
    photo = load_photo(tmp_path / "palette.png")
    assert np.array_equal(photo.rgb, np.asarray(card.convert("RGB")))
    assert photo.alpha is None


def test_sixteen_bit_greyscale_is_rescaled(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16).repeat(70, 0).repeat(30, 1)
    assert cv2.imwrite(str(tmp_path / "grey16.png"), values)
    photo = load_photo(tmp_path / "grey16.png")
    assert photo.rgb.shape == (70, 90, 3)
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[0, 40, 1] == 128 and photo.rgb[0, 80, 2] == 255


def test_sixteen_bit_rgb(tmp_path: Path) -> None:
    bgr16 = np.zeros((80, 96, 3), np.uint16)
    bgr16[..., 2] = 0xC000  # red, high byte 192
    bgr16[..., 1] = 0x4000  # green, 64
    for name in ("rgb16.png", "rgb16.tif"):
        assert cv2.imwrite(str(tmp_path / name), bgr16)
        photo = load_photo(tmp_path / name)
        assert photo.rgb.shape == (80, 96, 3)
        assert abs(int(photo.rgb[5, 5, 0]) - 192) <= 1 and abs(int(photo.rgb[5, 5, 1]) - 64) <= 1
        assert photo.rgb[5, 5, 2] == 0


def test_float_and_one_bit_greyscale(tmp_path: Path) -> None:
    ramp = np.linspace(0.0, 1.0, 80 * 90, dtype=np.float32).reshape(80, 90)
    Image.fromarray(ramp, "F").save(tmp_path / "float.tif")
    photo = load_photo(tmp_path / "float.tif")
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[-1, -1, 0] == 255
    Image.fromarray(np.arange(80 * 90).reshape(80, 90) % 2 == 0).save(tmp_path / "bw.png")
    photo = load_photo(tmp_path / "bw.png")
    assert set(np.unique(photo.rgb)) == {0, 255}


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.fromarray(_pattern()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    photo = load_photo(tmp_path / "cmyk.jpg")
    assert photo.rgb.shape == (120, 160, 3)
    assert np.abs(photo.rgb.astype(int) - _pattern()).mean() < 20


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_rgba_cutout_gives_alpha_and_white_background(tmp_path: Path, suffix: str) -> None:
    rgba = np.zeros((100, 80, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)  # hidden colour under the transparent part must not show
    rgba[20:80, 20:60, 3] = 255
    kwargs = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(rgba, "RGBA").save(tmp_path / f"cut{suffix}", **kwargs)
    photo = load_photo(tmp_path / f"cut{suffix}")
    assert photo.alpha is not None and photo.alpha.dtype == bool and photo.alpha.shape == (100, 80)
    assert photo.alpha.sum() == 60 * 40 and photo.alpha[50, 40] and not photo.alpha[5, 5]
    assert tuple(photo.rgb[5, 5]) == (255, 255, 255) and tuple(photo.rgb[50, 40]) == (10, 200, 30)


def test_opaque_alpha_is_not_a_cutout(tmp_path: Path) -> None:
    rgba = np.dstack([_pattern(), np.full((120, 160), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    Image.fromarray(rgba[..., [0, 3]].copy(), "LA").save(tmp_path / "opaque_la.png")
    for name in ("opaque.png", "opaque_la.png"):
        photo = load_photo(tmp_path / name)
        assert photo.alpha is None


def test_palette_with_transparency_is_a_cutout(tmp_path: Path) -> None:
    index = np.ones((90, 90), np.uint8)
    index[30:60, 30:60] = 2
    image = Image.fromarray(index, "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.info["transparency"] = 1
    image.save(tmp_path / "pal.png", transparency=1)
    photo = load_photo(tmp_path / "pal.png")
    assert photo.alpha is not None and photo.alpha.sum() == 900
    assert tuple(photo.rgb[45, 45]) == (0, 0, 255)


def test_fully_transparent_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((80, 80, 4), np.uint8), "RGBA").save(tmp_path / "empty.png")
    assert _error(tmp_path / "empty.png").code == "bad_image"


@pytest.mark.parametrize(("orientation", "corner"), [(1, (0, 0)), (3, (1, 1)), (6, (0, 1)), (8, (1, 0))])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, corner: tuple[int, int]) -> None:
    """A red block stored at the top-left ends up where the EXIF orientation puts it (corner = (row, col) end)."""
    stored = np.full((96, 144, 3), 240, np.uint8)
    stored[:24, :24] = (220, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    photo = load_photo(path)
    upright = (96, 144) if orientation in (1, 3) else (144, 96)
    assert photo.rgb.shape[:2] == upright
    assert photo.original_size == (upright[1], upright[0])
    rows = slice(0, 20) if corner[0] == 0 else slice(-20, None)
    cols = slice(0, 20) if corner[1] == 0 else slice(-20, None)
    assert photo.rgb[rows, cols, 0].mean() > 180 and photo.rgb[rows, cols, 1].mean() < 60


def test_large_photo_is_downscaled(tmp_path: Path) -> None:
    rgb = _pattern(2048, 1536)
    Image.fromarray(rgb).save(tmp_path / "big.png")
    photo = load_photo(tmp_path / "big.png")
    assert max(photo.rgb.shape[:2]) == MAX_SIDE
    assert photo.rgb.shape[:2] == (768, 1024)
    assert photo.original_size == (2048, 1536) and photo.scale == pytest.approx(0.5)
    # the ramp survives: a point keeps its value after mapping by ``scale``
    assert abs(int(photo.rgb[400, 512, 0]) - int(rgb[800, 1024, 0])) <= 2
    assert processing_size(3000, 1000) == ((1024, 341), pytest.approx(1024 / 3000))
    assert processing_size(800, 600) == ((800, 600), 1.0)


def test_large_rotated_jpeg_matches_full_decode(tmp_path: Path) -> None:
    """Big JPEGs are decoded at reduced size (draft mode); the result matches a full decode + resize."""
    stored = _pattern(2400, 3200)
    stored[1000:1400, 300:900] = (250, 250, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=92, exif=exif.tobytes())
    photo = load_photo(path)
    assert photo.original_size == (3200, 2400) and photo.rgb.shape == (768, 1024, 3)
    reference = Image.open(path)
    reference.load()
    reference = ImageOps.exif_transpose(reference).resize((1024, 768), Image.Resampling.LANCZOS)
    assert np.abs(photo.rgb.astype(int) - np.asarray(reference)).mean() < 2.0


def test_missing_and_folder(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.jpg").code == "photo_missing"
    assert _error(tmp_path).code == "photo_missing"


def test_empty_text_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    err = _error(tmp_path / "empty.png")
    assert err.code == "bad_image" and "empty" in err.message
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
    assert _error(tmp_path / "notes.jpg").code == "bad_image"
    Image.fromarray(_pattern()).save(tmp_path / "anim.gif")
    err = _error(tmp_path / "anim.gif")
    assert err.code == "bad_image" and "GIF" in err.message


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".jpg", "JPEG")])
def test_truncated_and_corrupt(tmp_path: Path, suffix: str, fmt: str) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(noisy).save(full, fmt)
    data = full.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    assert _error(tmp_path / f"cut{suffix}").code == "bad_image"
    corrupt = bytearray(data)
    corrupt[40:] = bytes(len(corrupt) - 40)  # keep the signature, zero the rest
    (tmp_path / f"bad{suffix}").write_bytes(bytes(corrupt))
    assert _error(tmp_path / f"bad{suffix}").code == "bad_image"


def test_too_small(tmp_path: Path) -> None:
    Image.fromarray(_pattern(63, 200)).save(tmp_path / "thin.png")
    err = _error(tmp_path / "thin.png")
    assert err.code == "image_too_small" and "63" in err.message
    Image.fromarray(_pattern(64, 64)).save(tmp_path / "ok.png")
    assert load_photo(tmp_path / "ok.png").rgb.shape == (64, 64, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` with almost no pixel data (never decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(12000, 9000), (20000, 20000)])
def test_too_large_is_checked_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(width, height))
    err = _error(path)
    assert err.code == "image_too_large"
    assert "100 megapixels" in err.message and "decompression" not in str(err).lower()


def test_list_photos(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("b.JPG", "a.png", "c.webp", "notes.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    single = tmp_path / "single.tif"
    single.write_bytes(b"x")
    found = list_photos([single, folder])
    assert found == [single, folder / "a.png", folder / "b.JPG", folder / "c.webp"]

    with pytest.raises(EngineError) as info:
        list_photos([tmp_path / "missing.png"])
    assert info.value.code == "photo_missing"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos")
    with pytest.raises(EngineError) as info:
        list_photos([empty])
    assert info.value.code == "photo_missing" and "no photos" in info.value.message


def _phone_heic(path: Path, orientation: int = 6, focal_35mm: int = 26) -> np.ndarray:
    """A HEIC as a phone writes it: the sensor's landscape pixels with a rotation to show them upright (the EXIF
    orientation, which the HEIC writer turns into the container's rotation) and the lens's 35 mm-equivalent focal
    length in the EXIF. Returns the stored (landscape) pixels: left half red, right half blue."""
    pillow_heif = pytest.importorskip("pillow_heif")  # a writer (the engine reads with pi-heif)
    sensor = np.zeros((90, 120, 3), np.uint8)
    sensor[:, :60] = (230, 20, 20)
    sensor[:, 60:] = (20, 20, 230)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA405] = focal_35mm
    pillow_heif.from_pillow(Image.fromarray(sensor)).save(path, quality=95, exif=exif.tobytes())
    return sensor


def test_a_phone_heic_loads_upright_with_its_focal_length(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0042.HEIC"
    _phone_heic(path, orientation=6, focal_35mm=26)
    photo = load_photo(path)
    # orientation 6: turned a quarter clockwise to show it, so the sensor's left (red) is the top
    assert photo.original_size == (90, 120) and photo.rgb.shape == (120, 90, 3)
    top, bottom = photo.rgb[:50].reshape(-1, 3).mean(0), photo.rgb[70:].reshape(-1, 3).mean(0)
    assert top[0] > 180 and top[2] < 70 and bottom[2] > 180 and bottom[0] < 70
    assert photo.focal_35mm == 26
    # from here on the photo is an upright JPEG with the EXIF (what the bundle stores: Blender reads no HEIC)
    stored = Image.open(io.BytesIO(photo.data))
    assert stored.format == "JPEG" and stored.size == (90, 120)
    assert stored.getexif().get(0x0112, 1) == 1 and stored.getexif().get_ifd(0x8769)[0xA405] == 26
    assert photo.path == path


def test_avif_loads_as_rgb(tmp_path: Path) -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    rgb = _pattern()
    Image.fromarray(rgb).save(tmp_path / "card.avif", quality=95)
    photo = load_photo(tmp_path / "card.avif")
    assert photo.rgb.shape == (120, 160, 3) and np.abs(photo.rgb.astype(int) - rgb).mean() < 6


def test_an_avif_naming_the_generic_heif_brand_first_is_read_as_avif(tmp_path: Path) -> None:
    """AVIF and HEIC are both HEIF containers; an AVIF whose major brand is the generic ``mif1`` (the AV1 brand among
    its compatible ones) is no HEIC for pi-heif (which has no AV1 decoder)."""
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    buf = io.BytesIO()
    Image.fromarray(_pattern()).save(buf, format="AVIF", quality=95)
    data = buf.getvalue()
    assert data[8:12] == b"avif" and b"mif1" in data[16:32]
    (tmp_path / "generic.avif").write_bytes(data[:8] + b"mif1" + data[12:])
    photo = load_photo(tmp_path / "generic.avif")
    assert photo.rgb.shape == (120, 160, 3) and np.abs(photo.rgb.astype(int) - _pattern()).mean() < 6


def test_phone_formats_count_as_photos_in_a_folder(tmp_path: Path) -> None:
    for name in ("IMG_0001.HEIC", "b.heif", "c.avif", "d.mov"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_photos([tmp_path])] == ["IMG_0001.HEIC", "b.heif", "c.avif"]


def test_a_heic_without_the_heic_reader_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    """An engine environment without pi-heif (an old set-up) names the problem and the fix instead of calling
    the phone's photo unreadable."""
    from icon_engine import image_io

    path = tmp_path / "IMG_0001.heic"
    _phone_heic(path)
    monkeypatch.setattr(image_io, "_HEIC_CHILD", "import sys; sys.modules['pi_heif'] = None\n" + image_io._HEIC_CHILD)
    err = _error(path)
    assert err.code == "bad_image" and "HEIC" in err.message and "pi-heif" in err.message
    assert "Set up engine" in err.hint and "JPEG" in err.hint


def test_a_heic_that_crashes_its_decoder_is_a_damaged_photo_not_a_dead_engine(tmp_path: Path, monkeypatch) -> None:
    """libheif can crash on a damaged file (bench/media_mutations.py found one): the decoder runs in a child process,
    so that ends in an error naming the photo; a HEIC over the pixel limit is refused from its header."""
    from icon_engine import image_io

    path = tmp_path / "IMG_0003.heic"
    _phone_heic(path)
    monkeypatch.setattr(image_io, "_HEIC_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    err = _error(path)
    assert err.code == "bad_image" and "IMG_0003.heic" in err.message and "damaged" in err.message
    monkeypatch.setattr(image_io, "_HEIC_CHILD", "import sys; sys.stderr.write('20000x9000\\n'); sys.exit(4)")
    err = _error(path)
    assert err.code == "image_too_large" and "20000 × 9000" in err.message
    (tmp_path / "cut.heic").write_bytes(path.read_bytes()[:300])  # a real decoder on a truncated file
    monkeypatch.undo()
    err = _error(tmp_path / "cut.heic")
    assert err.code == "bad_image" and "damaged" in err.message
