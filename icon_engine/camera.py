"""Perspective pinhole camera in the OpenCV convention (x right, y down, z forward). Torch-free.

``x_cam = R @ x_world + t``; pixel = ``K @ x_cam`` divided by depth. World = the bundle world (SMPL-X frame:
Y-up, metres). A camera looking at an upright person who faces it has ``R = diag(1, -1, -1)``.

Default field of view (previews, synthetic cameras): :data:`DEFAULT_FOV_DEG` across the longer side, principal
point at the image centre. The body fit takes the photo's EXIF focal length (35 mm equivalent,
:func:`focal_from_35mm`) when present; else, for a full-length photo, the focal that best explains the person's
size in pixels under three log-normal priors (focal length, camera distance, stature: :func:`framing_map`); else
(a crop, a half-body) the photo prior :func:`prior_focal_px` (:data:`PRIOR_FOCAL_35MM`). Either way the fit
solves for the body's distance.
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
#: Spread of that prior, standard deviation of the natural log of the focal length: lenses people photograph a
#: whole person with run from phone wide-angles and 28 mm to 85–100 mm portrait lenses, 55 mm × e^(±2 × 0.3) =
#: 30–100 mm at two standard deviations.
PRIOR_FOCAL_LOG_STD = 0.3

#: Camera-to-person distance (metres) assumed for a full-length photo (head to feet in frame): to get a standing
#: adult (1.5–1.9 m) head to foot into the frame with some margin, a 35–85 mm-equivalent lens must stand about
#: 2.5–5 m back (a room, a studio, a street); 3.5 m is the middle of that range on a log scale ...
FULL_LENGTH_DISTANCE_M = 3.5
#: ... and its spread, standard deviation of the natural log: e^(±0.2) = 2.9–4.3 m at one standard deviation,
#: 2.3–5.2 m at two.
FULL_LENGTH_DISTANCE_LOG_STD = 0.2

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


@dataclass(frozen=True)
class Framing:
    """The most probable focal length (pixels), camera distance (metres, to the body) and stature (metres) of a
    full-length photo under :func:`framing_map`'s priors."""

    focal_px: float
    distance_m: float
    stature_m: float


def framing_map(focal_px: float, distance_m: float, stature_m: float, width: int, height: int,
                stature_mean_m: float, stature_log_std: float) -> Framing:
    """Most probable (focal, distance, stature) of a full-length photo consistent with one observation.

    The observation: a body of stature ``stature_m`` (metres) fits the photo at ``distance_m`` (metres, along the
    optical axis) when the focal length is ``focal_px`` (pixels of the ``width`` × ``height`` image). The
    person's size in pixels fixes ``focal × stature / distance``, i.e. one linear constraint in the logs:
    ``log f + log S − log z = c``. Priors, independent and Gaussian in the logs: the focal length
    (:func:`prior_focal_px`, :data:`PRIOR_FOCAL_LOG_STD`), the distance (:data:`FULL_LENGTH_DISTANCE_M`,
    :data:`FULL_LENGTH_DISTANCE_LOG_STD`) and the stature (``stature_mean_m``, ``stature_log_std``; 0 for a known
    height). The maximum a posteriori on the constraint shares the misfit ``r = c − (μ_f + μ_S − μ_z)`` out in
    proportion to the variances: ``log f = μ_f + σ_f² r / Σ``, ``log S = μ_S + σ_S² r / Σ``,
    ``log z = μ_z − σ_z² r / Σ`` with ``Σ = σ_f² + σ_S² + σ_z²``."""
    if min(focal_px, distance_m, stature_m, stature_mean_m) <= 0.0 or stature_log_std < 0.0:
        raise ValueError("framing_map needs positive focal, distance and statures and a non-negative spread")
    mu = np.log([prior_focal_px(width, height), stature_mean_m, FULL_LENGTH_DISTANCE_M])
    var = np.array([PRIOR_FOCAL_LOG_STD, stature_log_std, FULL_LENGTH_DISTANCE_LOG_STD]) ** 2
    sign = np.array([1.0, 1.0, -1.0])  # the constraint's coefficients on (log f, log S, log z)
    observed = math.log(focal_px) + math.log(stature_m) - math.log(distance_m)
    r = observed - float(sign @ mu)
    log_f, log_s, log_z = mu + sign * var * r / float(var.sum())
    return Framing(math.exp(log_f), math.exp(log_z), math.exp(log_s))


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
