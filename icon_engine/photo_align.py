"""Per-part 2-D alignment of another photo of a subject to the avatar posed in it (several photos, issue 13).

The avatar is posed into each other photo with that photo's fit (:func:`icon_engine.subject.avatar_in_photo`); the
fit places each limb a few pixels off the person in the photo, and a single rigid shift of the whole silhouette
(:func:`icon_engine.texture.silhouette_shift`) cannot move an arm one way and a leg the other. Here each body part
(:data:`icon_engine.texture.PART_NAMES`) gets its own shift: the shift (pixels, within ± ``max_shift``) that brings
the part's stretch of the avatar's outline onto the photo's person outline (mean distance to it, robustly clipped),
kept only when it lowers that distance by :data:`MIN_GAIN`. The posed vertices are then moved parallel to the image
plane by their part's shift (blended across joints by the skin weights), so that photo's pixels are read where its
person's part lies; the texture bake is unchanged (it samples the moved mesh).

Frames and units: the photo's bundle world (metres), its OpenCV camera (processing pixels).
"""

from __future__ import annotations

import numpy as np

from .camera import Camera

#: Fewest outline pixels of a part that decide its shift (fewer: the part keeps no shift of its own).
MIN_OUTLINE_PIXELS = 40
#: A part's shift is kept when it lowers its outline's mean distance to the person's outline by this fraction.
MIN_GAIN = 0.15
#: Distances (pixels) beyond this count as this much (the part's outline may follow a sleeve the photo does not show).
CLIP_PX = 12.0


def part_shifts(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray, camera: Camera, mask: np.ndarray,
                max_shift: int, num_parts: int) -> np.ndarray:
    """(num_parts, 2) shifts (dx, dy) in pixels of each body part's stretch of the mesh's outline onto the person
    ``mask`` (H, W) bool, 0 where a part shows too little outline or no shift helps. ``vertices`` (N, 3) posed in
    the photo's world, ``faces`` (F, 3), ``parts`` (N,) int labels in [0, num_parts)."""
    import cv2

    from .geometry.image_shift import mask_outline, search_shift
    from .geometry.raster import rasterize

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    r = rasterize(camera.to_camera(v), f, camera.K, camera.width, camera.height)
    face_part = np.asarray(parts)[f[:, 0]]
    pixel_part = np.where(r.face_index >= 0, face_part[np.maximum(r.face_index, 0)], -1)
    sil_outline = mask_outline(r.face_index >= 0)
    person = np.asarray(mask, dtype=bool)
    to_outline = cv2.distanceTransform((~mask_outline(person)).astype(np.uint8), cv2.DIST_L2, 5)
    h, w = person.shape
    out = np.zeros((num_parts, 2))
    for part in range(num_parts):
        rows, cols = np.nonzero(sil_outline & (pixel_part == part))
        if len(rows) < MIN_OUTLINE_PIXELS:
            continue
        pts = np.stack([cols, rows], axis=1)

        def cost(shifts: np.ndarray, pts: np.ndarray = pts) -> np.ndarray:
            q = pts[None] + shifts[:, None]  # (S, K, 2) column, row
            ok = (q[..., 0] >= 0) & (q[..., 0] < w) & (q[..., 1] >= 0) & (q[..., 1] < h)
            d = to_outline[np.clip(q[..., 1], 0, h - 1), np.clip(q[..., 0], 0, w - 1)]
            return np.where(ok, np.minimum(d, CLIP_PX), CLIP_PX).mean(axis=1)

        out[part] = search_shift(cost, max_shift, step=2, radius=1, min_gain=MIN_GAIN)
    return out


def align_to_photo(vertices: np.ndarray, faces: np.ndarray, part_weights: np.ndarray, camera: Camera,
                   mask: np.ndarray, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(moved vertices (N, 3), part shifts (P, 2) pixels): the mesh posed in another photo with each body part moved
    parallel to the image plane by its :func:`part_shifts` shift. ``part_weights`` (N, P) each vertex's skin weight
    per part (rows summing to 1): a vertex moves by the weighted mean of its parts' shifts, so the mesh stays whole
    across joints. A pixel shift becomes the camera-frame displacement (dx · z / fx, dy · z / fy, 0) at the vertex's
    depth z."""
    pw = np.asarray(part_weights, dtype=np.float64)
    parts = pw.argmax(axis=1)
    shifts = part_shifts(vertices, faces, parts, camera, mask, max_shift, pw.shape[1])
    if not shifts.any():
        return np.asarray(vertices, dtype=np.float64), shifts
    v = np.asarray(vertices, dtype=np.float64)
    cam = camera.to_camera(v)
    px = pw @ shifts  # (N, 2)
    cam[:, 0] += px[:, 0] * cam[:, 2] / camera.K[0, 0]
    cam[:, 1] += px[:, 1] * cam[:, 2] / camera.K[1, 1]
    return (cam - camera.t) @ camera.R, shifts
