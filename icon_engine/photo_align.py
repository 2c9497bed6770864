"""Per-part 2-D alignment of another photo of a subject to the avatar posed in it (several photos, issue 13).

The avatar is posed into each other photo with that photo's fit (:func:`icon_engine.subject.avatar_in_photo`); the
fit places each limb a few pixels off the person in the photo, and a single rigid shift of the whole silhouette
(:func:`icon_engine.texture.silhouette_shift`) cannot move an arm one way and a leg the other. Here each body part
(:data:`icon_engine.texture.PART_NAMES`) gets its own shift: the shift (pixels, within ± ``max_shift``) that brings
the part's stretch of the avatar's outline onto the photo's person outline (mean distance to it, robustly clipped),
kept only when it lowers that distance by :data:`MIN_GAIN`. The posed vertices are then moved parallel to the image
plane by their part's shift (blended across joints by the skin weights), so that photo's pixels are read where its
person's part lies; the texture bake is unchanged (it samples the moved mesh).

:func:`colour_part_shifts` (wave 6) aligns each part on colour edges instead: the avatar's predicted image in the
other photo (the first photo's colours, the fill where it saw nothing) against the photo, for edges inside a part
(a hem across the torso) that no outline shows; :func:`icon_engine.texture.align_other_views` applies it (off,
``texture.COLOUR_ALIGN``: docs/multiview.md, wave 6).

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


#: Colour alignment (:func:`colour_part_shifts`): the prediction's colour edges (RGB distance to a pixel
#: EDGE_STEP_PX away above EDGE_RGB) and the silhouette's outline, grown by EDGE_BAND_PX, are the pixels that
#: decide a part's shift (a uniform garment says nothing about it); at most EDGE_SAMPLES of them per part, at least
#: MIN_EDGE_PIXELS.
EDGE_RGB = 25.0
EDGE_STEP_PX = 2
EDGE_BAND_PX = 3
EDGE_SAMPLES = 4000
MIN_EDGE_PIXELS = 60
#: Per-pixel colour distances (RGB, 0–255) beyond this count as this much (a print the prediction cannot know).
COLOUR_CLIP = 40.0
#: A part's colour shift is kept when it lowers that mean clipped distance by this fraction.
COLOUR_MIN_GAIN = 0.1


def _colour_edges(pred: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels within :data:`EDGE_BAND_PX` of a colour edge of the predicted image ``pred`` (H, W, 3)
    or of the outline of ``covered`` (H, W) bool, inside ``covered``."""
    import cv2

    from .geometry.image_shift import mask_outline

    edge = mask_outline(covered)
    s = EDGE_STEP_PX
    dx = np.abs(pred[:, s:] - pred[:, :-s]).max(axis=2) > EDGE_RGB
    dy = np.abs(pred[s:] - pred[:-s]).max(axis=2) > EDGE_RGB
    edge[:, s:] |= dx & covered[:, s:] & covered[:, :-s]
    edge[s:] |= dy & covered[s:] & covered[:-s]
    grow = np.ones((2 * EDGE_BAND_PX + 1,) * 2, dtype=np.uint8)
    return cv2.dilate(edge.astype(np.uint8), grow).astype(bool) & covered


def colour_part_shifts(face_index: np.ndarray, face_colours: np.ndarray, face_parts: np.ndarray, photo: np.ndarray,
                       mask: np.ndarray, base_shift: np.ndarray, max_shift: int, num_parts: int) -> np.ndarray:
    """(num_parts, 2) shifts (dx, dy) in pixels, on top of ``base_shift`` (the whole silhouette's,
    :func:`icon_engine.texture.silhouette_shift`), that bring each body part of the avatar's *predicted* image onto
    another ``photo`` (H, W, 3) float of the person: the avatar is rasterised in that photo's camera
    (``face_index`` (H, W) int, −1 off the mesh), each face coloured by ``face_colours`` (M, 3) — what the photos
    already placed predict there (the first photo's colours, the garment colour at the same height on its hidden
    side) — and labelled by ``face_parts`` (M,). A part's shift minimises the mean colour distance (clipped at
    :data:`COLOUR_CLIP`; off the person ``mask`` (H, W) bool counts as clipped) between the prediction and the photo
    over the part's pixels near a colour edge or the outline (:func:`_colour_edges`), after one gain per channel
    (the photo's exposure); 0 where a part shows too few such pixels or no shift lowers the distance by
    :data:`COLOUR_MIN_GAIN`. So a sweater's hem, a sleeve's cuff or a shoe's top line up, which an outline
    (mostly along the limb) cannot see."""
    from .geometry.image_shift import search_shift

    fi = np.asarray(face_index)
    covered = fi >= 0
    out = np.zeros((num_parts, 2))
    if not covered.any():
        return out
    h, w = covered.shape
    pred = np.where(covered[..., None], np.asarray(face_colours, dtype=np.float32)[np.maximum(fi, 0)], 0.0)
    part = np.where(covered, np.asarray(face_parts)[np.maximum(fi, 0)], -1)
    person = np.asarray(mask, dtype=bool)
    img = np.asarray(photo, dtype=np.float32)
    bx, by = int(round(float(base_shift[0]))), int(round(float(base_shift[1])))
    # one gain per channel: the photo's exposure against the prediction's, over the pixels both cover
    rows, cols = np.nonzero(covered)
    r2, c2 = np.clip(rows + by, 0, h - 1), np.clip(cols + bx, 0, w - 1)
    both = person[r2, c2]
    if both.sum() < MIN_EDGE_PIXELS:
        return out
    gain = np.median(img[r2[both], c2[both]], axis=0) / np.maximum(np.median(pred[rows[both], cols[both]], axis=0),
                                                                    1.0)
    edges = _colour_edges(pred, covered)
    rng = np.random.default_rng(0)
    for p in range(num_parts):
        rows, cols = np.nonzero(edges & (part == p))
        if len(rows) < MIN_EDGE_PIXELS:
            continue
        if len(rows) > EDGE_SAMPLES:
            pick = rng.choice(len(rows), EDGE_SAMPLES, replace=False)
            rows, cols = rows[pick], cols[pick]
        want = pred[rows, cols] * gain  # (K, 3)

        def cost(shifts: np.ndarray, rows: np.ndarray = rows, cols: np.ndarray = cols,
                 want: np.ndarray = want) -> np.ndarray:
            c = cols[None] + bx + shifts[:, :1]  # (S, K)
            r = rows[None] + by + shifts[:, 1:]
            ok = (c >= 0) & (c < w) & (r >= 0) & (r < h)
            cc, rr = np.clip(c, 0, w - 1), np.clip(r, 0, h - 1)
            d = np.abs(img[rr, cc] - want[None]).mean(axis=2)
            return np.where(ok & person[rr, cc], np.minimum(d, COLOUR_CLIP), COLOUR_CLIP).mean(axis=1)

        out[p] = search_shift(cost, max_shift, step=2, radius=1, min_gain=COLOUR_MIN_GAIN)
    return out
