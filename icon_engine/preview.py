"""Preview image of a reconstruction: the mesh over the photo beside a side view.

``make_preview`` draws the mesh (bundle world, metres) through the photo's camera, shaded and half-transparent
over the photo with its outline, so the fit can be judged, and puts a side view (the mesh turned 90° about the
vertical axis through its centre) on a neutral background to the right.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import render
from .camera import FRONT_VIEW_R, Camera, default_intrinsics
from .geometry.image_shift import mask_outline
from .threads import with_torch_threads

#: Clay colour (RGB in [0, 1]) used when the mesh has no vertex colours.
CLAY = np.array([0.62, 0.74, 0.90])

#: Key light of the side view: direction the light travels, camera frame (from the upper left, front).
KEY_LIGHT = np.array([0.4, 0.6, 1.0])


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _background(height: int, width: int) -> np.ndarray:
    """Neutral vertical grey gradient (H, W, 3) float in [0, 1]."""
    g = np.linspace(0.86, 0.66, height)[:, None, None]
    return np.broadcast_to(g, (height, width, 3)).copy()


def framing_camera(vertices: np.ndarray, width: int, height: int, fill: float = 0.9) -> Camera:
    """A front camera (looking along world −Z, Y up) that frames ``vertices`` (N, 3, world) in the image."""
    v = np.asarray(vertices, dtype=np.float64)
    K = default_intrinsics(width, height)
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    fx, fy = K[0, 0], K[1, 1]
    dist = max(fx * half[0] / (0.5 * fill * width), fy * half[1] / (0.5 * fill * height)) + half[2]
    R = FRONT_VIEW_R.copy()
    t = np.array([0.0, 0.0, dist]) - R @ centre
    return Camera(K, R, t, width, height)


def _camera_for_photo(camera: Camera, width: int, height: int) -> Camera:
    if (camera.width, camera.height) == (width, height):
        return camera
    scale = width / camera.width
    if abs(height / camera.height - scale) > 0.02:
        raise ValueError(
            f"camera is {camera.width}×{camera.height} px but the photo is {width}×{height} px (another aspect)"
        )
    return camera.rescaled(scale, width, height)


def _shade_colors(colors: np.ndarray | None, n: int) -> np.ndarray | None:
    if colors is None:
        return None
    c = np.asarray(colors)
    if c.shape[0] != n:
        raise ValueError(f"colors has {c.shape[0]} rows but the mesh has {n} vertices")
    return c


#: Outline colour of the mesh over the photo (RGB, uint8).
OUTLINE = np.array([255, 217, 26], dtype=np.uint8)


@dataclass
class PreviewLayout:
    """The colour-free part of a preview (:func:`prepare_preview`): the photo, the covered pixels of the front and
    side renders with their Lambert factors, the outline; :func:`compose_preview` adds the colours."""

    photo: np.ndarray  # (H, W, 3) uint8
    front: render.ShadedPixels  # pixels of the photo's frame
    outline: np.ndarray  # (H, W) bool
    side: render.ShadedPixels | None  # pixels of the side view's frame (None: no faces)
    side_width: int
    opacity: float
    vertex_count: int


def _unit_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


@with_torch_threads(1)  # the rasteriser's scatter ops: 1 thread 0.5 s CPU, 2 threads 2.3-3.1 s (docs/benchmarks.md)
def prepare_preview(photo_rgb: np.ndarray, vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                    opacity: float = 0.6, side_width: int | None = None) -> PreviewLayout:
    """Render the mesh for :func:`make_preview` without its colours (the rasters and the shading), so that the
    colours can come later (the pipeline runs this while it bakes the texture). Arguments as
    :func:`make_preview`'s."""
    photo = np.asarray(photo_rgb)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError("photo_rgb must be an (H, W, 3) uint8 array")
    h, w = photo.shape[:2]
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    cam = _camera_for_photo(camera, w, h)

    # Front: the mesh through the photo's camera (blended over the photo, outlined by compose_preview).
    v_cam = cam.to_camera(v)
    raster = render.rasterize(v_cam, f, cam.K, w, h)
    front = render.ShadedPixels.of(raster, v_cam, cam.K)

    # Side: turned +90° about the vertical axis through the mesh centre, framed in its own camera.
    sw = max(64, h // 2) if side_width is None else int(side_width)
    side = None
    if len(f):
        centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
        turned = (v - centre) @ _rot_y(np.pi / 2).T + centre
        scam = framing_camera(turned, sw, h)
        s_cam = scam.to_camera(turned)
        side = render.ShadedPixels.of(render.rasterize(s_cam, f, scam.K, sw, h), s_cam, scam.K,
                                      light_dir=KEY_LIGHT, ambient=0.3)
    return PreviewLayout(photo, front, mask_outline(raster.mask), side, sw, float(opacity), len(v))


def compose_preview(layout: PreviewLayout, colors: np.ndarray | None = None) -> np.ndarray:
    """The preview (H, W + side width, 3) uint8 of a :func:`prepare_preview` layout with per-vertex ``colors``
    ((N, 3) uint8 or [0, 1]; None: clay): the shaded mesh over the photo, outlined, then the side view."""
    cols = _shade_colors(colors, layout.vertex_count)
    shade_cols = CLAY if cols is None else cols
    photo = layout.photo
    h, w = photo.shape[:2]
    out = np.empty((h, w + layout.side_width, 3), dtype=np.uint8)
    out[:, :w] = photo
    fr = layout.front
    if len(fr.rows):
        under = photo[fr.rows, fr.cols].astype(np.float64) / 255.0
        out[fr.rows, fr.cols] = _unit_to_uint8((1.0 - layout.opacity) * under
                                               + layout.opacity * fr.colored(shade_cols))
    out[:, :w][layout.outline] = OUTLINE
    out[:, w:] = _unit_to_uint8(_background(h, 1))
    if layout.side is not None and len(layout.side.rows):
        out[layout.side.rows, w + layout.side.cols] = _unit_to_uint8(layout.side.colored(shade_cols))
    return out


def make_preview(
    photo_rgb: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    colors: np.ndarray | None = None,
    opacity: float = 0.6,
    side_width: int | None = None,
) -> np.ndarray:
    """Preview (H, W + side_width, 3) uint8: the mesh over the photo, then a side view.

    ``photo_rgb`` (H, W, 3) uint8; ``vertices`` (N, 3) bundle world (metres); ``faces`` (M, 3); ``camera`` the
    photo's camera (rescaled if it was made for another resolution of the same photo); ``colors`` optional
    per-vertex (N, 3) uint8 or [0, 1] (default clay). ``opacity`` of the mesh over the photo. ``side_width``
    defaults to H / 2 (at least 64 px).
    """
    _shade_colors(colors, len(vertices))  # a bad colour array fails before the rendering
    return compose_preview(prepare_preview(photo_rgb, vertices, faces, camera, opacity, side_width), colors)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image at deflate ``level`` (default the fastest: the preview 0.10 s instead
    of 0.21 s CPU at 1280×1024 for 20 % more bytes)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


class BackgroundPreview:
    """:func:`make_preview` on a worker thread, in two steps: the colour-free rendering starts at construction
    (while the caller bakes the texture on the other core), :meth:`png` adds the colours and encodes the PNG
    (while the caller writes the rest of the bundle). :meth:`close` waits for the thread (call it in a
    ``finally``)."""

    def __init__(self, photo_rgb: np.ndarray, vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icon-preview")
        self._layout = self._pool.submit(prepare_preview, photo_rgb, vertices, faces, camera)

    def png(self, colors: np.ndarray | None = None) -> Future:
        """The Future of the preview's PNG bytes with per-vertex ``colors`` (None: clay)."""
        return self._pool.submit(lambda: encode_png(compose_preview(self._layout.result(), colors)))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W, 4) uint8 image as PNG (parent folders created); returns the path."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError("image must be an (H, W, 3) or (H, W, 4) uint8 array")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out, format="PNG")
    return out
