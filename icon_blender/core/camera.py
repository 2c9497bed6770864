"""OpenCV pinhole camera (bundle) → Blender camera settings. numpy only.

Bundle camera: ``x_cam = R x_world + t`` with the world in the SMPL-X frame (Y up) and the camera in OpenCV axes
(x right, y down, z forward); ``K`` in pixels of the original photo of ``width`` × ``height``.
Blender camera: looks along its local −Z with local +Y up, world Z up. The sensor is fitted to the photo's
longer side (36 mm), the focal length in millimetres follows from ``fx``, and the principal point becomes the
lens shift (in units of the fitted side). Non-square pixels (fx ≠ fy) become the render pixel aspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rig import Y_UP_TO_Z_UP

SENSOR_MM = 36.0
#: OpenCV camera axes → Blender camera axes (y and z flip).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])


@dataclass
class BlenderCamera:
    """Settings for a Blender camera: ``matrix_world`` (4×4, Blender world), lens/sensor in mm, shifts."""

    matrix_world: np.ndarray
    lens_mm: float
    sensor_mm: float
    sensor_fit: str  # "HORIZONTAL" | "VERTICAL"
    shift_x: float
    shift_y: float
    resolution: tuple[int, int]
    pixel_aspect: tuple[float, float]


def blender_camera(K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int) -> BlenderCamera:
    """Blender camera settings that reproduce the OpenCV camera (K, R, t) for a ``width`` × ``height`` photo."""
    K = np.asarray(K, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0 or width <= 0 or height <= 0:
        raise ValueError("camera focal lengths and image size must be positive")
    # Blender scales the pixel aspect into the fitted side; keep x pixels square and stretch y.
    aspect_x, aspect_y = 1.0, fx / fy
    horizontal = width >= height * aspect_y
    if horizontal:
        fit, view, lens = "HORIZONTAL", float(width), fx * SENSOR_MM / width
    else:
        fit, view, lens = "VERTICAL", float(height) * aspect_y, fy * aspect_y * SENSOR_MM / (height * aspect_y)
    shift_x = (width / 2.0 - cx) / view
    shift_y = (cy - height / 2.0) * aspect_y / view
    rot = Y_UP_TO_Z_UP @ R.T @ CV_TO_BLENDER_CAM
    loc = Y_UP_TO_Z_UP @ (-R.T @ t)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, loc
    return BlenderCamera(m, float(lens), SENSOR_MM, fit, float(shift_x), float(shift_y), (int(width), int(height)),
                         (aspect_x, aspect_y))
