"""Perspective pinhole camera in the OpenCV convention (x right, y down, z forward). Torch-free.

``x_cam = R @ x_world + t``; pixel = ``K @ x_cam`` divided by depth. World = the bundle world (SMPL-X frame:
Y-up, metres). A camera looking at an upright person who faces it has ``R = diag(1, -1, -1)``.

Default field of view: :data:`DEFAULT_FOV_DEG` across the photo's longer side (about a 50 mm lens on a
full-frame camera), principal point at the image centre. Photos carry no reliable focal length, so the fit
keeps this field of view and solves for the body's distance instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Field of view across the longer image side, degrees.
DEFAULT_FOV_DEG = 40.0

#: Rotation of a camera that looks along world −Z with world +Y up (an upright person facing it).
FRONT_VIEW_R = np.diag([1.0, -1.0, -1.0])


def default_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """3×3 intrinsics for an image of ``width`` × ``height`` pixels with ``fov_deg`` over the longer side."""
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


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
