"""Photo input: read an image file into a :class:`Photo` at processing resolution. Torch-free.

Accepted: PNG, JPEG, HEIC/HEIF (phones' photos), AVIF, WebP, BMP and TIFF in RGB, RGBA, greyscale (8/16-bit, with
or without alpha), palette (with or without transparency), CMYK and 16-bit RGB. EXIF orientation is applied, so
``original_size`` and all pixel coordinates refer to the upright photo. A HEIC is decoded in a child process
(:func:`heic_to_jpeg`: ``pi-heif``, i.e. libheif, whose crash on a damaged file must not take the engine down) into
an upright JPEG that carries its EXIF; that JPEG is the photo from then on (``Photo.data``, the bundle's photo).
Photos whose longer side exceeds :data:`MAX_SIDE` are downscaled for processing; ``Photo.scale`` (processing px per
original px) maps coordinates back to the original.

Refusals (:class:`~icon_engine.errors.EngineError`): ``photo_missing`` (no such file), ``bad_image`` (empty,
not an image, corrupt or truncated), ``image_too_small`` (a side below :data:`MIN_SIDE`), ``image_too_large``
(more than :data:`MAX_PIXELS` pixels; checked from the header before any pixel is decoded).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .camera import FILM_35MM_DIAGONAL_MM
from .errors import EngineError

#: Longest side of the processing copy of a photo, pixels.
MAX_SIDE = 1024
#: Smallest accepted side of a photo (after EXIF rotation), pixels.
MIN_SIDE = 64
#: Largest accepted photo, pixels (width × height).
MAX_PIXELS = 100_000_000
#: File suffixes :func:`list_photos` treats as photos (lower case).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".heic", ".heif", ".avif", ".webp", ".bmp", ".tif", ".tiff"}
)
#: Alpha values below this (of 255) are background in a cut-out.
ALPHA_THRESHOLD = 128
#: Rec. 601 luma weights of R, G, B: grey = rgb @ LUMA_WEIGHTS.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

_FORMATS = ("PNG", "JPEG", "MPO", "AVIF", "WEBP", "BMP", "DIB", "TIFF")
_SUPPORTED_TEXT = "PNG, JPEG, HEIC, AVIF, WebP, BMP or TIFF"
#: ISO base media file brands (the ``ftyp`` box at byte 4: major and compatible brands) of HEVC-coded HEIF images
#: (HEIC), of AV1-coded ones (AVIF), and the generic still-image ones either may name first.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
#: Longest a HEIC may take to decode in its child process (seconds).
HEIC_TIMEOUT_S = 120.0
#: JPEG quality of a decoded HEIC (lossy already; 95 keeps what the processing's 1024 px sees).
HEIC_JPEG_QUALITY = 95


def _container_brands(data: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ISO base media file (HEIC, AVIF, MP4 …); empty for other files."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return frozenset()
    end = min(max(int.from_bytes(data[:4], "big"), 16), len(data), 4096)
    return frozenset({data[8:12], *(data[i : i + 4] for i in range(16, end - 3, 4))})


def _is_heic(brands: frozenset[bytes]) -> bool:
    """A HEVC-coded HEIF (what pi-heif reads) and not an AVIF that names the generic HEIF brand first."""
    return bool(brands & _HEIC_BRANDS) or (bool(brands & _HEIF_GENERIC_BRANDS) and not brands & _AVIF_BRANDS)


@dataclass
class Photo:
    """A photo ready for processing.

    ``rgb`` (H, W, 3) uint8 at processing resolution (EXIF-rotated; a cut-out is composited over white);
    ``alpha`` (H, W) bool, the cut-out's foreground, or None when the file has no real cut-out alpha;
    ``original_size`` (W0, H0) pixels of the upright original; ``scale`` processing px per original px
    (1.0 when not downscaled); ``path`` the file; ``data`` the file's bytes; ``focal_35mm`` the lens's 35 mm
    equivalent focal length from EXIF (:func:`exif_focal_35mm`), None when unknown.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    original_size: tuple[int, int]
    scale: float
    path: Path
    data: bytes = field(repr=False)
    focal_35mm: float | None = None  # EXIF focal length, 35 mm equivalent (mm); None when the file has none

    @property
    def size(self) -> tuple[int, int]:
        """Processing size (W, H) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def _bad(path: Path, problem: str) -> EngineError:
    return EngineError(
        "bad_image",
        f"{path.name}: {problem}",
        f"Choose a {_SUPPORTED_TEXT} photo, or re-save this one from an image editor.",
    )


def _too_large(path: Path, size: tuple[int, int] | None) -> EngineError:
    what = f" ({size[0]} × {size[1]} = {size[0] * size[1] / 1e6:.0f} megapixels)" if size else ""
    return EngineError(
        "image_too_large",
        f"{path.name} is larger than {MAX_PIXELS // 1_000_000} megapixels{what}.",
        f"Downscale the photo (a longer side of 2000–4000 px is plenty; it is processed at {MAX_SIDE} px).",
    )


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise EngineError("photo_missing", f"The photo {path} does not exist.", "Check the path and file name.")
    if path.is_dir():
        raise EngineError("photo_missing", f"{path} is a folder, not a photo.", "Choose an image file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EngineError(
            "photo_missing", f"The photo {path} cannot be read: {exc.strerror or exc}.",
            "Check the file's permissions.",
        ) from exc


def _open_checked(path: Path, data: bytes) -> Image.Image:
    """Open the header lazily and check format and size before decoding pixels."""
    if not data:
        raise _bad(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_large(path, None) from exc
    except UnidentifiedImageError as exc:
        if _container_brands(data) & _AVIF_BRANDS:  # a Pillow built without its AVIF codec
            raise EngineError("bad_image", f"{path.name}: an AVIF photo, and this Pillow cannot read AVIF.",
                              "Save the photo as JPEG or PNG, or install the engine's requirements again.") from exc
        raise _bad(path, f"not a readable image (accepted: {_SUPPORTED_TEXT})") from exc
    except (OSError, ValueError, SyntaxError, RuntimeError) as exc:  # RuntimeError: Pillow's AVIF decoder
        raise _bad(path, f"the image is corrupt ({exc})") from exc
    if image.format not in _FORMATS:
        raise _bad(path, f"{image.format} images are not supported (accepted: {_SUPPORTED_TEXT})")
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _too_large(path, (width, height))
    if width <= 0 or height <= 0:
        raise _bad(path, "the image has no pixels")
    return image


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """(W, H) of the photo after its EXIF orientation is applied, from the header only."""
    width, height = image.size
    try:
        orientation = int(image.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: _decode keeps the photo as stored too
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _decode(path: Path, image: Image.Image) -> Image.Image:
    """Decode all pixels and apply the EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as exc:  # RuntimeError: the AVIF decoder
        text = str(exc)
        problem = "the file is truncated" if "truncat" in text.lower() else f"the image is corrupt ({text})"
        raise _bad(path, problem) from exc
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not lose the photo: keep it as stored
        return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """Any PIL mode → an 8-bit "RGB" or "RGBA" image (16-bit and float greyscale are rescaled, not clipped)."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        if mode == "F":
            top = 1.0 if float(values.max(initial=0.0)) <= 1.0 else 255.0 if float(values.max()) <= 255.0 else 65535.0
        else:  # 16-bit greyscale (PIL reads it as I;16* or I)
            top = 65535.0
        grey = np.clip(values.astype(np.float32) * np.float32(255.0 / top) + np.float32(0.5), 0, 255)
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in image.info and mode in ("P", "L", "RGB")):
        return image.convert("RGBA")
    return image.convert("RGB")


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """An RGBA image → (RGB composited over white, alpha "L"); an RGB image → (itself, None)."""
    if image.mode != "RGBA":
        return image, None
    alpha = image.getchannel("A")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB"), alpha


#: EXIF tags (Exif IFD) of the focal length.
_EXIF_IFD = 0x8769
_FOCAL_35MM, _FOCAL, _PLANE_X, _PLANE_Y, _PLANE_UNIT = 0xA405, 0x920A, 0xA20E, 0xA20F, 0xA210
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
#: FocalPlaneResolutionUnit → millimetres per unit (2 inch, 3 cm, 4 mm, 5 µm).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
#: 35 mm-equivalent focal lengths outside this range (mm) are taken for broken EXIF and ignored.
FOCAL_35MM_RANGE = (8.0, 800.0)


def exif_focal_35mm(image: Image.Image) -> float | None:
    """The lens's 35 mm-equivalent focal length (mm) from the image's EXIF, or None.

    ``FocalLengthIn35mmFilm`` when present; else ``FocalLength`` × crop factor, the crop factor from the sensor
    size that ``FocalPlaneX/YResolution`` give (35 mm diagonal / sensor diagonal). Missing, zero or absurd
    values (outside :data:`FOCAL_35MM_RANGE`) give None: the fit then estimates the focal length."""
    try:
        ifd = image.getexif().get_ifd(_EXIF_IFD)
        value = float(ifd.get(_FOCAL_35MM) or 0.0)
        if not value and ifd.get(_FOCAL) and ifd.get(_PLANE_X) and ifd.get(_PLANE_Y):
            unit = _UNIT_MM.get(int(ifd.get(_PLANE_UNIT, 2)))
            width = float(ifd.get(_PIXEL_X) or image.size[0])
            height = float(ifd.get(_PIXEL_Y) or image.size[1])
            if unit is not None:
                sensor = math.hypot(width / float(ifd[_PLANE_X]), height / float(ifd[_PLANE_Y])) * unit
                value = float(ifd[_FOCAL]) * FILM_35MM_DIAGONAL_MM / sensor
    except Exception:  # unreadable or inconsistent EXIF: no focal length
        return None
    lo, hi = FOCAL_35MM_RANGE
    return value if math.isfinite(value) and lo <= value <= hi else None


def processing_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[tuple[int, int], float]:
    """Processing size (W, H) and scale (processing px per original px) for an original of ``width`` × ``height``."""
    longest = max(width, height)
    if longest <= max_side:
        return (width, height), 1.0
    scale = max_side / longest
    return (max(1, round(width * scale)), max(1, round(height * scale))), scale


def heic_to_jpeg(path: Path, data: bytes) -> bytes:
    """The HEIC/HEIF file ``data`` (read from ``path``) as an upright JPEG carrying its EXIF (the focal length; the
    orientation upright) and ICC profile, decoded by ``pi-heif`` in a child process: a damaged file that crashes
    libheif, or one larger than :data:`MAX_PIXELS`, ends in an ``EngineError`` here instead of ending the engine."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]))
    try:
        done = subprocess.run([sys.executable, "-c", _HEIC_CHILD], input=data, capture_output=True,
                              timeout=HEIC_TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _bad(path, f"the HEIC photo did not decode within {HEIC_TIMEOUT_S:.0f} s") from exc
    if done.returncode == 0 and done.stdout:
        return done.stdout
    message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if done.returncode == _HEIC_NO_READER:
        raise EngineError(
            "bad_image", f"{path.name}: a HEIC photo, and this engine's Python has no HEIC reader (pi-heif).",
            "Install the engine's requirements again (the add-on: Preferences ▸ Set up engine; by hand: pip install -r "
            "requirements.txt), or save the photo as JPEG.")
    if done.returncode == _HEIC_TOO_LARGE:
        try:
            w, h = (int(v) for v in message[0].split("x"))
        except ValueError:
            raise _too_large(path, None) from None
        raise _too_large(path, (w, h))
    if done.returncode < 0 or (done.returncode > 1 and not message[0]):  # a signal or a silent exit: it crashed
        raise _bad(path, "the HEIC photo is damaged (its decoder stopped)")
    raise _bad(path, f"the HEIC photo is damaged ({message[0] or f'decoder exit {done.returncode}'})")


#: The child's program (:func:`_heic_child`) and its exit codes beside 0 (done) and 1 (an error).
_HEIC_CHILD = "from icon_engine.image_io import _heic_child; _heic_child()"
_HEIC_NO_READER = 3
_HEIC_TOO_LARGE = 4


def _heic_child() -> None:
    """The child process of :func:`heic_to_jpeg`: HEIC bytes on stdin → JPEG bytes on stdout (exit 0), or exit
    :data:`_HEIC_NO_READER` / :data:`_HEIC_TOO_LARGE` ("WxH" on stderr) / 1 (the error on stderr)."""
    import sys

    try:
        import pi_heif
    except ImportError:
        sys.exit(_HEIC_NO_READER)
    pi_heif.register_heif_opener()
    image = Image.open(io.BytesIO(sys.stdin.buffer.read()))
    if image.size[0] * image.size[1] > MAX_PIXELS:
        sys.stderr.write(f"{image.size[0]}x{image.size[1]}\n")
        sys.exit(_HEIC_TOO_LARGE)
    image.load()  # pi-heif applies the container's rotation and leaves the EXIF saying upright
    exif = image.getexif()
    exif[0x0112] = 1
    rgb = image.convert("RGB")  # a HEIC's alpha (rare in a photo) is dropped, as a JPEG cannot hold it
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=HEIC_JPEG_QUALITY, exif=exif.tobytes(),
             icc_profile=image.info.get("icc_profile"))
    sys.stdout.buffer.write(out.getvalue())


def load_photo(path: str | Path, max_side: int = MAX_SIDE) -> Photo:
    """Read ``path`` into a :class:`Photo` (EXIF-rotated, downscaled so the longer side ≤ ``max_side`` px).

    Raises ``EngineError`` with code ``photo_missing``, ``bad_image``, ``image_too_small`` or ``image_too_large``.
    """
    path = Path(path)
    data = _read_bytes(path)
    if _is_heic(_container_brands(data)):
        data = heic_to_jpeg(path, data)
    image = _open_checked(path, data)
    width, height = _upright_size(image)
    focal_35mm = exif_focal_35mm(image)
    if min(width, height) < MIN_SIDE:
        raise EngineError(
            "image_too_small",
            f"{path.name} is {width} × {height} pixels; each side must be at least {MIN_SIDE} pixels.",
            "Use a larger photo: the person should be several hundred pixels tall.",
        )
    (new_w, new_h), scale = processing_size(width, height, max_side)
    if image.format in ("JPEG", "MPO") and scale < 0.5:  # let the JPEG decoder skip detail we would throw away
        stored_w, stored_h = image.size
        image.draft(image.mode, (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))
    image = _decode(path, image)
    decoded_w, decoded_h = image.size
    if decoded_w != decoded_h and (decoded_w > decoded_h) != (width > height):
        width, height = height, width  # the EXIF rotation could not be applied: the photo stays as stored
        (new_w, new_h), scale = processing_size(width, height, max_side)
    rgb_image, alpha_image = _split_alpha(_to_8bit(image))
    alpha = None if alpha_image is None else np.asarray(alpha_image) >= ALPHA_THRESHOLD
    if alpha is not None and not alpha.any():
        raise _bad(path, "every pixel is fully transparent")
    if rgb_image.size != (new_w, new_h):
        rgb_image = rgb_image.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if alpha_image is not None:
            small = alpha_image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
            alpha = np.asarray(small) >= ALPHA_THRESHOLD
    return Photo(
        rgb=np.array(rgb_image, dtype=np.uint8, copy=True),
        alpha=None if alpha is None or alpha.all() else np.ascontiguousarray(alpha),
        original_size=(int(width), int(height)),
        scale=float(scale),
        path=path,
        data=data,
        focal_35mm=focal_35mm,
    )


def list_photos(paths: list[Path] | list[str]) -> list[Path]:
    """Expand ``paths``: files are kept in order, folders become their image files (sorted by name).

    Hidden files and files without an image suffix (:data:`IMAGE_SUFFIXES`) inside folders are skipped.
    Raises ``EngineError("photo_missing")`` for a path that does not exist or a folder without photos.
    """
    result: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise EngineError(
                    "photo_missing",
                    f"The folder {path} contains no photos.",
                    f"Put {_SUPPORTED_TEXT} files in it, or choose the photo files themselves.",
                )
            result.extend(found)
        elif path.exists():
            result.append(path)
        else:
            raise EngineError("photo_missing", f"The photo {path} does not exist.", "Check the path and file name.")
    return result
