"""Perspective pinhole camera in the OpenCV convention (x right, y down, z forward). Torch-free.

``x_cam = R @ x_world + t``; pixel = ``K @ x_cam`` divided by depth. World = the bundle world (SMPL-X frame:
Y-up, metres). A camera looking at an upright person who faces it has ``R = diag(1, -1, -1)``.

Default field of view (previews, synthetic cameras): :data:`DEFAULT_FOV_DEG` across the longer side, principal
point at the image centre. The body fit takes the photo's EXIF focal length (35 mm equivalent,
:func:`focal_from_35mm`) when present, else the photo prior :func:`prior_focal_px` (:data:`PRIOR_FOCAL_35MM`);
either way it solves for the body's distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Field of view across the longer image side, degrees.
DEFAULT_FOV_DEG = 40.0

#: Focal length (35 mm equivalent, mm) assumed for a photo whose EXIF gives none: a "normal" to short-portrait
#: lens, what full-body photos without EXIF (web images, exports, renders) are mostly taken with. Over the
#: rendered benchmark's 1,200–2,000 px focal lengths (40–68 mm equivalent on its 768 × 1024 images) it gives a
#: mean focal error of 13 % (the old 40° field of view, 48 mm equivalent: 15 %); one photo carries no usable
#: cue for the focal length itself (docs/fit.md).
PRIOR_FOCAL_35MM = 55.0

#: Rotation of a camera that looks along world −Z with world +Y up (an upright person facing it).
FRONT_VIEW_R = np.diag([1.0, -1.0, -1.0])


def default_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """3×3 intrinsics for an image of ``width`` × ``height`` pixels with ``fov_deg`` over the longer side."""
    return intrinsics_from_focal(width, height, 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0))


#: Diagonal of the 35 mm film frame (36 × 24 mm), millimetres: "35 mm equivalent" focal lengths refer to it.
FILM_35MM_DIAGONAL_MM = math.hypot(36.0, 24.0)


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length in pixels of a ``width`` × ``height`` image from its 35 mm-equivalent focal length (mm).

    The equivalence holds on the diagonal (the EXIF/CIPA convention), so other aspect ratios map correctly."""
    return float(focal_35mm) * math.hypot(width, height) / FILM_35MM_DIAGONAL_MM


def focal_px_to_35mm(focal_px: float, width: int, height: int) -> float:
    """Inverse of :func:`focal_from_35mm`: the 35 mm-equivalent focal length (mm) of ``focal_px`` pixels."""
    return float(focal_px) * FILM_35MM_DIAGONAL_MM / math.hypot(width, height)


def prior_focal_px(width: int, height: int) -> float:
    """Focal length in pixels assumed for a ``width`` × ``height`` photo without EXIF (:data:`PRIOR_FOCAL_35MM`)."""
    return focal_from_35mm(PRIOR_FOCAL_35MM, width, height)


def intrinsics_from_focal(width: int, height: int, focal_px: float) -> np.ndarray:
    """3×3 intrinsics with square pixels of ``focal_px`` and the principal point at the image centre."""
    return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class Camera:
    """Pinhole camera: intrinsics ``K`` (pixels), world→camera ``R``, ``t`` (metres), image size in pixels."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) → camera-frame points (N, 3)."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) → (pixels (N, 2), depth (N,)). Pixel centres are at integer + 0.5."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        uvw = cam @ self.K.T
        return uvw[:, :2] / np.maximum(depth, 1e-9)[:, None], depth

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (metres)."""
        return -self.R.T @ self.t

    def rescaled(self, scale: float, width: int, height: int) -> Camera:
        """The same camera for an image resized by ``scale`` (new pixels per old pixel)."""
        S = np.diag([scale, scale, 1.0])
        return Camera(S @ self.K, self.R.copy(), self.t.copy(), width, height)

    def translated_world(self, offset: np.ndarray) -> Camera:
        """The same camera after the world is shifted by ``offset`` (new = old + offset)."""
        return Camera(self.K.copy(), self.R.copy(), self.t - self.R @ np.asarray(offset, dtype=np.float64),
                      self.width, self.height)
