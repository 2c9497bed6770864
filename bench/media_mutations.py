"""Mutation run of the engine's photo and video readers: damaged files must end in an ``EngineError``.

Small valid files are made first: photos as JPEG (with the source's EXIF), PNG (RGB, RGBA, grey + alpha, palette,
16-bit grey), TIFF, WebP, AVIF and HEIC (with the EXIF; HEIC written with pillow-heif) from a photo (``--photo``,
any image; by default a generated 160 × 120 picture with an EXIF orientation and focal length); videos as H.264
MP4, MPEG-4 AVI and VP8 WebM (12 frames of 64 × 48 noise, written with PyAV). Each read damages a copy
(:func:`bench.lib.mutations.damage`: bytes overwritten, cut short or inserted) and runs the engine's reader:
``image_io.load_photo`` for a photo, ``motion.video.probe_video`` and every frame of ``iter_frames`` for a video
(what ``reconstruct``, ``--subject`` and ``motion`` do first). Prints each kind of other exception with one
mutation that caused it; exits 1 when there is any.

Usage: ``python bench/media_mutations.py --reads 3000 --seed 0`` (about a minute).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.mutations import collect, damage, report  # noqa: E402


def sample_photos(photo: Path | None = None) -> list[tuple[str, bytes]]:
    """(suffix, bytes) of small valid photos in the formats and modes a user may give, made from ``photo`` (None:
    a generated picture with EXIF)."""
    from PIL import Image

    if photo is None:
        yy, xx = np.mgrid[0:120, 0:160]
        source = Image.fromarray(np.stack([xx * 1.5, yy * 2.0, (xx + yy) % 256], axis=2).astype(np.uint8))
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotated
        exif.get_ifd(0x8769)[0xA405] = 35  # focal length in 35 mm film
    else:
        source = Image.open(photo)
        exif = source.getexif()
    rgb = source.convert("RGB")
    rgb.thumbnail((160, 160))
    grey16 = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    out = []
    for image, fmt, suffix, extra in ((rgb, "JPEG", ".jpg", {"exif": exif}), (rgb, "PNG", ".png", {}),
                                      (rgb.convert("RGBA"), "PNG", ".png", {}), (rgb.convert("LA"), "PNG", ".png", {}),
                                      (rgb.convert("P"), "PNG", ".png", {}), (grey16, "PNG", ".png", {}),
                                      (rgb, "TIFF", ".tif", {}), (rgb, "WEBP", ".webp", {})):
        buf = io.BytesIO()
        image.save(buf, format=fmt, **extra)
        out.append((suffix, buf.getvalue()))
    from PIL import features

    if features.check("avif"):
        buf = io.BytesIO()
        rgb.save(buf, format="AVIF", quality=80, exif=exif)
        out.append((".avif", buf.getvalue()))
    try:  # a phone's HEIC, written with pillow-heif (development requirements); the engine reads it with pi-heif
        import pillow_heif
    except ImportError:
        print("no .heic sample (pillow-heif is not installed)", file=sys.stderr)
    else:
        buf = io.BytesIO()
        pillow_heif.from_pillow(rgb).save(buf, quality=80, exif=exif.tobytes())
        out.append((".heic", buf.getvalue()))
    return out


def sample_videos(folder: Path, frames: int = 12) -> list[tuple[str, bytes]]:
    """(suffix, bytes) of short valid videos (the codecs this PyAV build can encode)."""
    import av

    out = []
    for codec, suffix in (("libx264", ".mp4"), ("mpeg4", ".avi"), ("libvpx", ".webm")):
        path = folder / f"sample{suffix}"
        try:
            with av.open(str(path), "w") as container:
                stream = container.add_stream(codec, rate=10)
                stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
                for i in range(frames):
                    rgb = (np.random.default_rng(i).random((48, 64, 3)) * 255).astype(np.uint8)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:  # an encoder this build lacks
            print(f"no {suffix} sample ({exc})", file=sys.stderr)
            continue
        out.append((suffix, path.read_bytes()))
    return out


def run(reads: int, seed: int, photo: Path | None = None) -> dict[str, str]:
    """{exception kind: a mutation that raised it} over ``reads`` mutated reads (half photos, half videos)."""
    from icon_engine.errors import EngineError
    from icon_engine.image_io import load_photo
    from icon_engine.motion.video import iter_frames, probe_video

    def decode_video(path: Path) -> None:
        for _ in iter_frames(probe_video(path)):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos, videos = sample_photos(photo), sample_videos(folder)

        def one_read(rng: random.Random) -> tuple[str, Callable[[], object]]:
            is_video = bool(videos) and rng.random() < 0.5
            suffix, data = rng.choice(videos if is_video else photos)
            data, done = damage(data, rng)
            path = folder / f"damaged{suffix}"
            path.write_bytes(data)
            return f"{suffix}: {done}", (lambda: decode_video(path)) if is_video else (lambda: load_photo(path))

        return collect(reads, seed, one_read, EngineError)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photo", type=Path, help="the photo the samples are made from (default: a generated one)")
    args = ap.parse_args(argv)
    sys.exit(report(run(args.reads, args.seed, args.photo), args.reads, "EngineError"))


if __name__ == "__main__":
    main()
