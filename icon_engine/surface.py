"""Clothed surface from the fitted body and the person mask, without learned weights ("body-guided hull").

An ICON-style implicit surface fed only local, pose-robust cues (docs/method.md). A point ``p`` of the bundle
world (metres) is inside the clothed person when

    f(p) = min( s(p),  r(π(p)) − d(p) ) > 0

- ``d(p)``: signed distance to the fitted body (positive outside; :class:`~icon_engine.mesh_queries.MeshQuery`),
- ``s(p)``: signed distance of the pixel ``π(p)`` to the mask outline (positive inside), converted to metres at
  the point's depth — the silhouette carves the volume, so it reprojects onto the mask; where the fitted body
  reaches beyond the mask the carve is rounded about the body's mid-depth (:class:`BodyDepth`), not a flat wall;
- ``r(π(p))``: the allowed clothing offset around the body at that pixel (metres), from how far the silhouette
  extends beyond the body's own silhouette there, spread inward and smoothed so that a loose region (a skirt
  between the legs, a coat's hem) becomes one smooth volume while tight clothes stay a thin shell.

``f`` is evaluated coarse-to-fine on a grid (only the nodes near the zero level are re-evaluated at each finer
level), meshed by marching cubes (``skimage``), reduced to its largest component, smoothed with Taubin's
shrink-free filter and decimated to a face budget (``fast_simplification``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .camera import Camera
from .errors import EngineError
from .geometry.decimate import decimate, is_watertight
from .geometry.device import mesh_query
from .geometry.frame import distance_beyond
from .geometry.image_fields import distance_to_zero, gaussian_image, mask_signed_distance, sample_image
from .geometry.image_shift import mask_iou
from .geometry.implicit import evaluate_coarse_to_fine, largest_component, mesh_zero_level, upsample2
from .geometry.laplacian import laplacian_smooth, taubin_smooth
from .mesh_queries import MeshQuery, Raster, rasterize
from .options import MeshPreset, PresetView
from .progress import NoProgress
from .threads import in_background

#: The surface's settings per quality (grid cells across the longest side, coarse-to-fine levels, Taubin
#: smoothing steps, final faces): its typed live view of the one preset table (``icon_engine.options.PRESETS``).
QUALITY_PRESETS: Mapping[str, MeshPreset] = PresetView("mesh")

#: Offset kept around the body everywhere (metres): thinnest clothing plus discretisation.
TIGHT_OFFSET_M = 0.004
#: How fast a loose offset fades inward from the silhouette (metres of offset per metre in the image plane).
SPREAD_SLOPE = 0.5
#: Smoothing radius of the offset field (metres in the image plane at the body's depth).
OFFSET_SMOOTH_M = 0.06
#: Largest offset honoured (metres): mask regions further from the body than this are not filled.
MAX_OFFSET_M = 0.45
#: Loose offsets (above LOOSE_FROM_M, fully from 2×) count depth along the view DEPTH_STRETCH times: a skirt's
#: width is seen, its depth is not, and isotropic growth of the legs would bulge front and back.
DEPTH_STRETCH = 1.8
LOOSE_FROM_M = 0.04
#: Smoothing scale of loose regions (metres).
LOOSE_BLUR_M = 0.03
#: The loose blur fades out towards the mask's outline: none where a node projects onto the outline, full from
#: LOOSE_RIM_M (metres at the node's depth) inside it. The silhouette is what the photo shows; blurring it rounded
#: a skirt's hem corners and shaved its sides (a midi skirt of the shared set: IoU 0.949 against the true mask).
LOOSE_RIM_M = 0.06
#: Largest offset around limbs that rarely carry loose cloth (metres), by the parent joint of the nearest bone:
#: a hand in front of a skirt must not swell to the skirt's width.
PART_CAPS_M: dict[str, float] = {"hand": 0.015, "forearm": 0.04, "upper_arm": 0.07, "face": 0.0, "throat": 0.0}
#: The face: head vertices (nearest bone the head's, jaw or eyes) whose normal points within this angle's cosine
#: of the face's forward direction (from the head joint to the eyes, horizontal). Hair seen beside the head spreads
#: its outline margin over the whole head; in front of the face it would be a mask of cloth over the skin.
FACE_MIN_COSINE = 0.5
#: Hair behind the head and neck: head and neck vertices whose normal points backwards (cosine with the face's
#: forward direction below -HAIR_BACK_COSINE) grow their offset as far back as the silhouette shows it sideways
#: (no depth stretch): long hair seen beside the head and neck hangs behind them as thick as it is beside them.
HAIR_BACK_COSINE = 0.2
#: The throat: head, jaw and neck vertices (nearest bone the head's, the jaw's or the neck's) whose normal points
#: forward (cosine with the face's forward direction above this; the face's sides, the chin's underside, the front
#: of the neck) keep PART_CAPS_M["throat"]. The margins of long hair or a collar seen beside the head and neck
#: filled the hollow under the chin and the cheeks 2–4 cm deep on four of the shared set's eight subjects (the
#: ground truth's throat is bare; wave 5b, docs/benchmarks/fidelity.md).
THROAT_MIN_COSINE = 0.0
#: Gaps between body parts ("webs"). For a point outside the body, take its closest points on two parts (the left
#: arm, the right arm, the rest of the body); where the two parts face each other there (each one's normal points
#: towards the other's closest point: weight 0 at a cosine of GAP_FACING_FROM, 1 at GAP_FACING_FULL) and those
#: closest points are apart (weight 0 at GAP_SEPARATION_M, 1 at twice that), the offset is blended (by the
#: weight) towards TIGHT_OFFSET_M + GAP_SHARE × (distance to the farther part): each part's clothing stops well
#: short of the other part, so a mask that merges an arm with the torso does not bridge them.
GAP_FACING_FROM = -0.3
GAP_FACING_FULL = 0.2
GAP_SEPARATION_M = 0.01
GAP_SHARE = 0.35
#: Beyond the photo's frame (a half-body photo, a head cut at the top) the body goes on with tight clothing: the
#: offset at the frame's edge tapers to TIGHT_OFFSET_M over this distance (metres) outside it. Clamped to the edge's
#: value all the way down, the trousers' margin at a crop through the thighs made blobs of the feet.
OFF_FRAME_TAPER_M = 0.3
#: Depth reach (towards and away from the camera) of the clothing outside skirts, metres: the body's outline
#: margins, each clipped to DEPTH_MAX_M and averaged over DEPTH_SMOOTH_M (normalised Gaussian). What the
#: silhouette shows far out to the side (a flap, an open jacket, a hem held out) is a thin sheet in depth, not a
#: volume: the offset around the body is an ellipse, its lateral radius the offset field, its depth radius this.
DEPTH_MAX_M = 0.05
DEPTH_SMOOTH_M = 0.15
#: Share of the (clipped, averaged) outline margin that becomes depth reach: cloth hangs out at the sides more than
#: it stands off the chest and back. With the full margin, the surface built on the ground-truth body of the
#: shared rendered set was 0.2–1 cm too deep front and back on every subject (docs/benchmarks/fidelity.md).
DEPTH_GAIN = 0.5
#: Smallest depth radius of a loose offset (metres; reached as the offset goes from LOOSE_FROM_M to twice that): a
#: flap stays a sheet thick enough for the grid to keep it.
DEPTH_MIN_M = 0.02
#: Skirts, dresses and coats (the mask fills the gap between the legs below the crotch): there the body is
#: replaced by the hull of both legs (the horizontal segment between the legs' axes at each height, grown by the
#: leg radius), and the depth reach is SKIRT_DEPTH_RATIO × the lateral one (a cone hanging from the waist).
#: 0.8 → 0.9 in wave 4: on our fit of the shared set's skirt and dress the cone was too shallow (preview, 103 / 107:
#: 1.99 / 2.92 → 1.89 / 2.89 cm) and the ground-truth body keeps its figures (0.86 / 1.14 → 0.84 / 1.16 cm); 1.0
#: gains a little more on the fit (1.85 / 2.86) but loses on the ground-truth body (0.87 / 1.20).
SKIRT_DEPTH_RATIO = 0.9
#: A skirt: below the crotch, rows where the mask fills at least SKIRT_MIN_FILL of the gap between the legs,
#: over at least SKIRT_MIN_LENGTH_M (metres at the body) from the hips down.
SKIRT_MIN_FILL = 0.5
SKIRT_MIN_LENGTH_M = 0.08
#: ... and reaching at least this far (metres) beyond the legs somewhere: a mask that only closes the crotch is
#: not a skirt, nor are thighs that touch in trousers a little looser than the fitted legs (1 cm until wave 5: the
#: shared set's subject 106, trousers, flared 2.4 cm and got a cone cut flat where its thighs part, 1.97 → 1.85 cm
#: without it; its coat, 104, flares 3.6 cm, the skirt and the dress 12 cm).
SKIRT_MIN_FLARE_M = 0.03
#: A skirt's row in the mask is one span from its left to its right edge: holes and notches of the detector's
#: mask up to this wide (metres at the body) are bridged (a notch at a midi skirt's hem split the row and
#: centred the cone on one half of it, so the hem's other corner went missing).
SKIRT_ROW_HOLE_M = 0.1
#: Rounded carve (wave 14): where the fitted body reaches beyond the person mask, the silhouette's straight cut
#: along the camera rays left a flat wall in the body (a torso fitted a few centimetres wider than the photo's);
#: there the silhouette is drawn in by ROUND_CARVE × (1 − √(1 − t²)) × the local half-thickness (the body's along
#: the pixel's ray plus the clothing offset), t the point's depth from the body's mid-depth over that half-thickness:
#: a round cross-section touching the silhouette at the mid-depth instead of a wall. Full on the body's pixels
#: beyond the mask, fading to none ROUND_REACH_M (metres) from them; elsewhere the carve is the plain silhouette.
ROUND_CARVE = 1.0
ROUND_REACH_M = 0.05
#: ... on the body's thick parts only: none where the body's half-thickness along the ray is under this (metres),
#: full from twice it (a torso, a thigh). A hand or forearm fitted beside the photo's keeps the plain carve: rounded,
#: it lost the volume the avatar's hand graft checks the fitted hand against.
ROUND_MIN_HALF_M = 0.04


@dataclass
class ClothedSurface:
    """Watertight clothed mesh: ``vertices`` (N, 3) float64 bundle world (metres), ``faces`` (M, 3) int64
    counter-clockwise seen from outside; ``method`` names the construction; ``warnings`` are for the user;
    ``stats`` holds sizes, timings (s) and the reprojected silhouette IoU."""

    vertices: np.ndarray
    faces: np.ndarray
    method: str
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- image fields


def offset_field(mask: np.ndarray, body_mask: np.ndarray, px_per_m: float) -> np.ndarray:
    """Allowed clothing offset (H, W) in metres around the body, per pixel.

    ``e``: distance (px) of each mask pixel from the body's silhouette. The field is the larger of (a) ``e``
    spread inward as a cone of slope :data:`SPREAD_SLOPE` (a skirt's width reaches over the legs) and (b) the
    offsets seen along the body's outline averaged over :data:`OFFSET_SMOOTH_M` (tight clothes: the body's
    silhouette margin applies to its front and back too).
    """
    e = distance_to_zero(~body_mask).astype(np.float32)
    e = np.where(mask, np.maximum(e - 0.5, 0.0), 0.0)  # from the body's edge, half a pixel past its last pixel
    e = np.minimum(e, MAX_OFFSET_M * px_per_m)
    # (a) cone dilation max_y (e(y) - k |x - y|), by thresholds.
    cone = e.copy()
    top = float(e.max())
    if top > 0:
        for t in np.linspace(top / 12.0, top, 12):
            dist = distance_to_zero(e < t)
            cone = np.maximum(cone, t - SPREAD_SLOPE * dist)
    # (b) outline offsets: at body-outline pixels, how far the mask reaches beyond (px, ≥ 0).
    outline = body_mask & ~ndimage.binary_erosion(body_mask)
    sd = mask_signed_distance(mask)
    obs = np.where(outline, np.clip(sd - 0.5, 0.0, None), 0.0).astype(np.float32)  # body edge: 0.5 px out
    sigma = OFFSET_SMOOTH_M * px_per_m
    num = gaussian_image(obs, sigma, truncate=2.5)
    den = gaussian_image(outline.astype(np.float32), sigma, truncate=2.5)
    smooth = np.where(den > 1e-4, num / np.maximum(den, 1e-12), 0.0)
    r_px = np.maximum(cone, smooth)
    r_px = gaussian_image(r_px, max(1.0, 0.25 * sigma), truncate=2.5)
    r_px = np.maximum(r_px, e)  # every mask pixel must stay reachable
    return (TIGHT_OFFSET_M + r_px / px_per_m).astype(np.float32)


def depth_field(mask: np.ndarray, body_mask: np.ndarray, px_per_m: float) -> np.ndarray:
    """Depth reach (H, W) in metres of the clothing around the body (towards and away from the camera).

    The margins by which the mask extends beyond the body's outline, each clipped to :data:`DEPTH_MAX_M`,
    averaged over :data:`DEPTH_SMOOTH_M` (normalised Gaussian in the image) and scaled by :data:`DEPTH_GAIN`: a
    garment that is loose all round shows the same margin on both sides; one flap sticking out far is clipped and
    diluted by its neighbours.
    """
    outline = body_mask & ~ndimage.binary_erosion(body_mask)
    sd = mask_signed_distance(mask)
    obs = np.where(outline, np.clip(sd - 0.5, 0.0, DEPTH_MAX_M * px_per_m), 0.0).astype(np.float32)
    sigma = DEPTH_SMOOTH_M * px_per_m
    num = gaussian_image(obs, sigma, truncate=2.5)
    den = gaussian_image(outline.astype(np.float32), sigma, truncate=2.5)
    r_px = np.where(den > 1e-4, num / np.maximum(den, 1e-12), 0.0)
    return (TIGHT_OFFSET_M + DEPTH_GAIN * r_px / px_per_m).astype(np.float32)


#: Cloth hangs from the hips as a skirt only while both thighs hang within this angle (degrees) of straight down.
THIGHS_DOWN_DEG = 45.0


def thighs_hang_down(joints: np.ndarray, max_deg: float = THIGHS_DOWN_DEG) -> bool:
    """Both thighs (hip → knee of ``joints`` (≥ 9, 3), SMPL-X order, Y up) within ``max_deg`` of straight down."""
    thighs = joints[[4, 5]] - joints[[1, 2]]
    down = -thighs[:, 1] / np.maximum(np.linalg.norm(thighs, axis=1), 1e-9)
    return bool(down.min() >= np.cos(np.radians(max_deg)))


class SkirtZone:
    """A skirt, a dress or a coat: one smooth volume hanging from the hips, where the mask fills the gap between
    the legs.

    Detection (image): rows below the hip joints where the body's silhouette shows a gap between the legs; a
    skirt when the mask fills at least :data:`SKIRT_MIN_FILL` of that gap on consecutive rows from the hips down
    over :data:`SKIRT_MIN_LENGTH_M` or more (only columns between the legs' joints count: a hand beside a thigh
    makes no gap); the hem's row is the last such row. Volume (bundle world, metres): per height, the body's own
    cross-section there (the hips, then both legs; a box's centre and half-sizes along the hip axis and the
    forward direction) grown by ``δ(y)`` sideways and :data:`SKIRT_DEPTH_RATIO` ``× δ(y)`` in depth, an ellipse;
    ``δ(y)`` makes its outline as wide as the mask's row there (per 1 cm of height, never shrinking downwards),
    centred on the mask's row; cut flat at the hips and at the hem, the height where the ellipse's edge nearest the
    camera projects onto the hem's row (a camera above the hem sees that edge lowest; cutting where the centre
    projects there hung the back of a dress 2–5 cm too low). ``present`` is False when no skirt is seen.
    """

    LEGS = ((1, 4, 7), (2, 5, 8))  # SMPL-X hip, knee, ankle (left, right)

    def __init__(self, mask: np.ndarray, body_mask: np.ndarray, joints: np.ndarray, camera: Camera,
                 vertices: np.ndarray, px_per_m: float, arm_mask: np.ndarray | None = None) -> None:
        """``vertices`` (V, 3): the fitted body without its arms (its cross-sections shape the cone);
        ``arm_mask`` (H, W): the arms' silhouette — a row's width is measured up to it: a hand beside a skirt
        does not widen the skirt."""
        self.present = False
        J = np.asarray(joints, np.float64)
        H = mask.shape[0]
        uv, _ = camera.project(J[[1, 2, 4, 5, 7, 8]])  # hips, knees, ankles
        top = int(np.clip(np.max(uv[:2, 1]), 0, H - 1))  # below the hip joints
        c0, c1 = (int(np.clip(v, 0, mask.shape[1])) for v in (uv[:, 0].min(), uv[:, 0].max() + 1))
        rows = np.zeros_like(body_mask[top:])
        rows[:, c0:c1] = body_mask[top:, c0:c1]  # between the legs' joints: not between a hand and a thigh
        left = np.maximum.accumulate(rows, axis=1)
        right = np.maximum.accumulate(rows[:, ::-1], axis=1)[:, ::-1]
        gap = ndimage.binary_opening(left & right & ~rows, iterations=2)
        filled = gap & mask[top:]
        # Rows with a gap that the mask fills (mostly); rows where the legs touch do not end the skirt, nor holes
        # of up to 2 cm in the detector's mask. The skirt runs from the hips to its last filled row.
        row_gap, row_filled = gap.sum(1), filled.sum(1)
        is_filled = (row_gap > 0) & (row_filled >= SKIRT_MIN_FILL * np.maximum(row_gap, 1))
        hole = max(3, int(0.02 * px_per_m))
        ok = ndimage.binary_closing(np.pad(is_filled | (row_gap == 0), hole, constant_values=True),
                                    np.ones(hole, bool), border_value=1)[hole:-hole]
        run = int(np.argmin(ok)) if not ok.all() else len(ok)
        run_filled = np.nonzero(is_filled[:run])[0]
        if len(run_filled) < SKIRT_MIN_LENGTH_M * px_per_m or gap[:run].sum() < 0.002 * px_per_m**2:
            return
        hem_row = top + int(run_filled.max())
        # The cone's frame: vertical axis through the pelvis, e1 along the hips, e2 forward (horizontal).
        e1 = J[1] - J[2]
        e1[1] = 0.0
        e1 /= max(float(np.linalg.norm(e1)), 1e-9)
        e2 = np.cross(e1, [0.0, 1.0, 0.0])
        self.e1, self.e2 = e1, e2
        y_top = float(0.5 * (J[1, 1] + J[2, 1]))
        # Per height (1 cm steps down from the hips): the body's cross-section there (the hips, then both legs)
        # as a box along e1, e2 → the core ellipse's centre and half-sizes.
        ys = np.arange(y_top, float(vertices[:, 1].min()), -0.01)
        centers = np.repeat(J[0][None], len(ys), axis=0)
        half = np.tile([0.17, 0.12], (len(ys), 1))
        found = np.zeros(len(ys), bool)
        for k, y in enumerate(ys):
            near = np.abs(vertices[:, 1] - y) < 0.015
            if near.sum() < 8:
                continue
            a, b = vertices[near] @ e1, vertices[near] @ e2
            centers[k] = 0.5 * (a.max() + a.min()) * e1 + 0.5 * (b.max() + b.min()) * e2
            half[k] = 0.5 * (a.max() - a.min()), 0.5 * (b.max() - b.min())
            found[k] = True
        if found.sum() < 3:
            return
        centers = ndimage.gaussian_filter1d(centers[found], 2.0, axis=0)
        half = ndimage.gaussian_filter1d(half[found], 2.0, axis=0)
        ys = ys[found]
        centers[:, 1] = ys
        puv, pz = camera.project(centers)
        lat = camera.R[0] - camera.R[0, 1] * np.array([0.0, 1.0, 0.0])  # the image's x direction, horizontal
        lat /= max(float(np.linalg.norm(lat)), 1e-9)
        fx = float(camera.K[0, 0])
        delta = np.zeros(len(ys))
        shift = np.zeros(len(ys))
        bridge = max(3, int(SKIRT_ROW_HOLE_M * px_per_m))
        keep = np.zeros(len(ys), bool)
        for k, ((u, v), z) in enumerate(zip(puv, pz, strict=True)):
            iv, iu = int(np.floor(v)), int(np.floor(u))
            if not (top <= iv <= hem_row and 0 <= iu < mask.shape[1]):
                continue
            row = mask[iv] if arm_mask is None else mask[iv] & ~arm_mask[iv]
            # Holes and notches of the detector's mask inside the skirt (up to SKIRT_ROW_HOLE_M) do not split it.
            row = ndimage.binary_closing(np.pad(row, bridge), np.ones(bridge, bool))[bridge:-bridge]
            if not row[iu]:
                continue
            lo = iu - int(np.argmin(row[iu::-1])) + 1 if not row[: iu + 1].all() else 0
            hi = iu + int(np.argmin(row[iu:])) if not row[iu:].all() else len(row)
            w_left, w_right = (u - lo) * z / fx, (hi - u) * z / fx
            delta[k] = self._grow(0.5 * (w_left + w_right), lat, *half[k])
            shift[k] = 0.5 * (w_right - w_left)
            keep[k] = True
        if keep.sum() < 3 or delta.max() < SKIRT_MIN_FLARE_M:
            return
        last = int(np.nonzero(keep)[0].max())
        ys, delta, shift = ys[: last + 1], delta[: last + 1], shift[: last + 1]
        centers, half = centers[: last + 1], half[: last + 1]
        # Heights whose centre falls in a hole of the detector's mask (a notch at the hem): their neighbours'.
        kept = np.nonzero(keep[: last + 1])[0]
        at = np.arange(last + 1)
        delta, shift = np.interp(at, kept, delta[kept]), np.interp(at, kept, shift[kept])
        delta = np.maximum.accumulate(ndimage.gaussian_filter1d(delta, 2.0))  # never shrinking downwards
        # The mask's last row is the hem's edge nearest the camera, not its centre: a camera above the hem
        # sees the front edge lower in the image than the centre at the same height. Cut the cone where its
        # front edge passes below the mask's last row.
        shift = ndimage.gaussian_filter1d(shift, 3.0)
        c = centers + shift[:, None] * lat
        w = camera.center - c
        w[:, 1] = 0.0
        w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-9)
        reach = np.hypot((half[:, 0] + delta) * (w @ e1), (half[:, 1] + SKIRT_DEPTH_RATIO * delta) * (w @ e2))
        v_front = camera.project(c + reach[:, None] * w)[0][:, 1]
        below = np.nonzero(v_front > hem_row + 1.0)[0]
        y_hem = float(ys[-1])
        if len(below) and below[0] >= 3:
            k = int(below[0])
            a = (hem_row + 1.0 - v_front[k - 1]) / max(float(v_front[k] - v_front[k - 1]), 1e-9)
            y_hem = float(ys[k - 1] + np.clip(a, 0.0, 1.0) * (ys[k] - ys[k - 1]))
            ys, delta, shift = ys[: k + 1], delta[: k + 1], shift[: k + 1]
            centers, half = centers[: k + 1], half[: k + 1]
        self.centers, self.half = centers[::-1].copy(), half[::-1].copy()
        self.ys, self.delta = ys[::-1].copy(), delta[::-1].copy()  # ascending heights for np.interp
        self.shift = shift[::-1].copy()
        self.lat, self.y_top, self.y_hem = lat, y_top, y_hem
        self.fill = np.zeros(mask.shape, bool)
        if thighs_hang_down(J):  # a seated or lunging person's gaps between trouser folds are not holes in cloth
            self.fill = self._row_holes(mask, arm_mask, top, hem_row, puv, bridge, (c0, c1))
        self.present = True

    @staticmethod
    def _row_holes(mask: np.ndarray, arm_mask: np.ndarray | None, top: int, hem_row: int, centres_uv: np.ndarray,
                   bridge: int, columns: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: the pixels the detector's mask misses inside the skirt — on every row from the hips to just
        above the hem, the holes and notches of up to ``bridge`` px in the run of mask pixels through the skirt's centre
        (``centres_uv`` (K, 2): the cone's centres in the picture; the arms' silhouette ends a run), between the
        legs' joints (``columns``: a gap between a hand and the skirt's side is not a hole in it)."""
        fill = np.zeros(mask.shape, bool)
        order = np.argsort(centres_uv[:, 1])
        for iv in range(top, min(hem_row, mask.shape[0])):  # the hem's own row may show the legs apart below it
            row = mask[iv] if arm_mask is None else mask[iv] & ~arm_mask[iv]
            closed = ndimage.binary_closing(np.pad(row, bridge), np.ones(bridge, bool))[bridge:-bridge]
            iu = int(np.clip(np.interp(iv, centres_uv[order, 1], centres_uv[order, 0]), 0, mask.shape[1] - 1))
            if not closed[iu]:
                continue
            lo = iu - int(np.argmin(closed[iu::-1])) + 1 if not closed[: iu + 1].all() else 0
            hi = iu + int(np.argmin(closed[iu:])) if not closed[iu:].all() else len(closed)
            lo, hi = max(lo, columns[0]), min(hi, columns[1])
            fill[iv, lo:hi] = ~mask[iv, lo:hi]
        return fill

    def _grow(self, half_width: float, lat: np.ndarray, ax: float, az: float) -> float:
        """δ ≥ 0 such that the ellipse (ax + δ, az + ratio·δ) spans ``half_width`` (metres) along ``lat``."""
        l1, l2 = abs(float(lat @ self.e1)), abs(float(lat @ self.e2))
        lo, hi = 0.0, 1.0
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            span = np.hypot((ax + mid) * l1, (az + SKIRT_DEPTH_RATIO * mid) * l2)
            lo, hi = (mid, hi) if span < half_width else (lo, mid)
        return lo

    def occupancy(self, pts: np.ndarray) -> np.ndarray:
        """(N,) about the distance (metres) inside the cone (positive inside, −1 far outside its heights)."""
        y = pts[:, 1]
        out = np.full(len(pts), -1.0)
        inz = np.nonzero((y > self.y_hem - 0.05) & (y < self.y_top + 0.05))[0]
        if len(inz) == 0:
            return out
        p, yy = pts[inz], y[inz]
        dl = np.interp(yy, self.ys, self.delta)
        c = np.stack([np.interp(yy, self.ys, self.centers[:, i]) for i in range(3)], axis=1)
        c += np.interp(yy, self.ys, self.shift)[:, None] * self.lat
        ax = np.interp(yy, self.ys, self.half[:, 0])
        az = np.interp(yy, self.ys, self.half[:, 1])
        qv = p - c
        u, v = qv @ self.e1, qv @ self.e2
        k = np.hypot(u / (ax + dl), v / (az + SKIRT_DEPTH_RATIO * dl))
        radial = np.hypot(u, v)
        f = radial * (1.0 - k) / np.maximum(k, 1e-9)
        f = np.minimum(f, np.minimum(yy - self.y_hem, self.y_top - yy))
        out[inz] = f
        return out


@dataclass
class BodyDepth:
    """The fitted body along each pixel's ray (H, W) arrays, metres, camera depth: ``mid`` the middle between its
    nearest front-facing and nearest back-facing surface, ``half`` half that thickness (pixels off the body: the
    nearest body pixel's), ``weight`` the rounded carve's share (:data:`ROUND_CARVE`; 0 away from the body's
    pixels beyond the person mask)."""

    mid: np.ndarray
    half: np.ndarray
    weight: np.ndarray

    def round_carve(self, s: np.ndarray, uv: np.ndarray, z: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """The silhouette's signed distance ``s`` (N,) metres of points at pixels ``uv`` (N, 2) and depths ``z``
        (N,), drawn in round the body's mid-depth where :attr:`weight` holds (``offset`` (N,): the clothing offset
        at the points' pixels, added to the body's half-thickness)."""
        w = sample_image(self.weight, uv, outside=0.0)
        near = np.nonzero(w > 0)[0]
        if not len(near):
            return s
        mid = sample_image(self.mid, uv[near], outside=None)
        half = sample_image(self.half, uv[near], outside=None) + offset[near]
        t = np.minimum(np.abs(z[near] - mid) / np.maximum(half, 1e-3), 1.0)
        out = s.copy()
        out[near] -= ROUND_CARVE * w[near] * half * (1.0 - np.sqrt(1.0 - t * t))
        return out


def body_depth(vertices: np.ndarray, faces: np.ndarray, camera: Camera, front: Raster, mask: np.ndarray,
               px_per_m: float) -> BodyDepth | None:
    """:class:`BodyDepth` of the body mesh (``vertices`` (V, 3) bundle world, ``faces`` (F, 3) outward) seen by
    ``camera``, ``front`` its raster (:func:`~icon_engine.mesh_queries.rasterize`), ``mask`` (H, W) the person;
    ``px_per_m`` pixels per metre at the body's depth. None where the body lies inside the mask everywhere."""
    beyond = front.mask & ~mask
    if not beyond.any():
        return None
    back = rasterize(vertices, np.asarray(faces)[:, ::-1], camera, cull_backfaces=True)  # nearest back-facing
    ok = front.mask & back.mask
    ok[ok] = back.depth[ok] > front.depth[ok]
    if not ok.any():
        return None
    mid = np.zeros(ok.shape)
    half = np.zeros(ok.shape)
    mid[ok] = 0.5 * (front.depth[ok] + back.depth[ok])
    half[ok] = 0.5 * (back.depth[ok] - front.depth[ok])
    rows, cols = ndimage.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    mid, half = mid[rows, cols], half[rows, cols]
    reach = ndimage.distance_transform_edt(~beyond) / px_per_m
    thick = np.clip(half / ROUND_MIN_HALF_M - 1.0, 0.0, 1.0)  # hands and arms keep the plain carve
    return BodyDepth(mid, half, np.clip(1.0 - reach / ROUND_REACH_M, 0.0, 1.0) * thick)


# --------------------------------------------------------------------------------------------------- the field


def bone_owner(vertices: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex, the parent joint (SMPL-X index, (V,)) of the nearest skeleton bone and the closest point on that
    bone ((V, 3), metres); ``joints`` (55, 3)."""
    from .bundle.skeleton import PARENTS

    children = np.array([c for c in range(1, 55) if PARENTS[c] >= 0])
    a = np.asarray(joints, np.float64)[np.array([PARENTS[c] for c in children])]
    b = np.asarray(joints, np.float64)[children]
    best = np.full(len(vertices), np.inf)
    owner = np.zeros(len(vertices), np.int64)
    foot = np.zeros((len(vertices), 3))
    for k in range(len(children)):
        ab = b[k] - a[k]
        t = np.clip(((vertices - a[k]) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        on = a[k] + t[:, None] * ab
        d = np.linalg.norm(vertices - on, axis=1)
        closer = d < best
        best[closer], owner[closer], foot[closer] = d[closer], PARENTS[children[k]], on[closer]
    return owner, foot


def arm_groups(vertices: np.ndarray, faces: np.ndarray, owner: np.ndarray, foot: np.ndarray) -> np.ndarray:
    """(V,) body part groups: 0 the rest of the body (torso, legs, head), 1 the left arm (upper arm, forearm, hand,
    fingers), 2 the right arm. A vertex is on an arm when its nearest bone (:func:`bone_owner`) is an arm bone and
    its normal points away from that bone: the side of the torso next to a hanging arm is nearest to the arm's bone
    but faces it, so it stays with the torso."""
    from .mesh_queries import vertex_normals

    away = np.einsum("ni,ni->n", vertex_normals(vertices, faces), vertices - foot) > 0
    left = (np.isin(owner, (16, 18, 20)) | ((owner >= 25) & (owner <= 39))) & away
    right = (np.isin(owner, (17, 19, 21)) | (owner >= 40)) & away
    return np.where(left, 1, np.where(right, 2, 0)).astype(np.int64)


def vertex_caps(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray | None,
                owner: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex largest offset (V,) in metres: :data:`PART_CAPS_M` for hands, forearms and upper arms (by the
    nearest bone of the SMPL-X skeleton ``joints`` (55, 3), or the given :func:`bone_owner`), :data:`MAX_OFFSET_M`
    elsewhere; smoothed over the mesh so that the cap changes gradually across a limb."""
    caps = np.full(len(vertices), MAX_OFFSET_M)
    if owner is None:
        if joints is None or len(joints) < 55:
            return caps
        owner = bone_owner(vertices, joints)[0]
    hand = (owner == 20) | (owner == 21) | (owner >= 25)
    caps[(owner == 16) | (owner == 17)] = PART_CAPS_M["upper_arm"]
    caps[(owner == 18) | (owner == 19)] = PART_CAPS_M["forearm"]
    caps[hand] = PART_CAPS_M["hand"]
    caps = laplacian_smooth(caps, faces, 10, (0.5,))
    if joints is not None and len(joints) >= 55:
        # The face's cap is far below its neighbours' (the head's): blend it in by its own smoothed indicator (full
        # over the face, fading over a few rings outside it) instead of averaging it away.
        face = face_vertices(vertices, faces, joints, owner).astype(np.float64)
        w = np.clip(2.0 * laplacian_smooth(face, faces, 10, (0.5,)), 0.0, 1.0)
        caps = (1.0 - w) * caps + w * np.minimum(caps, PART_CAPS_M["face"])
        throat = throat_vertices(vertices, faces, joints, owner) & ~(face > 0)
        if throat.any():
            w = np.clip(2.0 * laplacian_smooth(throat.astype(np.float64), faces, 10, (0.5,)), 0.0, 1.0)
            caps = (1.0 - w) * caps + w * np.minimum(caps, PART_CAPS_M["throat"])
    return caps


def _head_facing(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray) -> np.ndarray | None:
    """(V,) cosine between each vertex normal and the face's forward direction (SMPL-X head joint 15 to the eyes'
    midpoint, joints 23–24, made horizontal), or None when the eyes give no direction."""
    from .mesh_queries import vertex_normals

    J = np.asarray(joints, np.float64)
    forward = 0.5 * (J[23] + J[24]) - J[15]
    forward[1] = 0.0
    norm = float(np.linalg.norm(forward))
    if norm < 1e-6:
        return None
    return vertex_normals(vertices, faces) @ (forward / norm)


def face_vertices(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(V,) bool: the face — vertices nearest the head, jaw or eye bones (SMPL-X joints 15, 22–24 of ``joints``
    (55, 3), metres; ``owner`` from :func:`bone_owner`) whose normal is within :data:`FACE_MIN_COSINE` of the
    head's forward direction."""
    facing = _head_facing(vertices, faces, joints)
    if facing is None:
        return np.zeros(len(vertices), bool)
    return np.isin(owner, (15, 22, 23, 24)) & (facing > FACE_MIN_COSINE)


def throat_vertices(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(V,) bool: the front of the head and neck — vertices nearest the neck, head or jaw bones (SMPL-X joints 12,
    15, 22 of ``joints`` (55, 3), metres; ``owner`` from :func:`bone_owner`) whose normal points forward (cosine
    with the head's forward direction above :data:`THROAT_MIN_COSINE`): the throat, the chin's underside, the
    face's sides."""
    facing = _head_facing(vertices, faces, joints)
    if facing is None:
        return np.zeros(len(vertices), bool)
    return np.isin(owner, (12, 15, 22)) & (facing > THROAT_MIN_COSINE)


def hair_back_weight(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray | None,
                     owner: np.ndarray | None) -> np.ndarray:
    """(V,) weight in [0, 1]: 1 on the back of the head and neck (nearest bone the head's or the neck's, SMPL-X 15
    and 12; normal pointing backwards by more than :data:`HAIR_BACK_COSINE`), fading over a few rings around it;
    where it is 1 the clothing offset is isotropic (as deep behind as the silhouette shows it beside)."""
    w = np.zeros(len(vertices))
    if joints is None or owner is None or len(joints) < 55:
        return w
    facing = _head_facing(vertices, faces, joints)
    if facing is None:
        return w
    w[np.isin(owner, (12, 15)) & (facing < -HAIR_BACK_COSINE)] = 1.0
    return np.clip(2.0 * laplacian_smooth(w, faces, 6, (0.5,)), 0.0, 1.0)


class PartGaps:
    """Where a point lies in the gap between two body parts that are apart in the fitted body.

    The body (``vertices`` (V, 3) metres, ``faces`` (F, 3)) is split by :func:`arm_groups` (``groups`` (V,)) into
    the rest of the body and the two arms; :meth:`limit` lowers clothing offsets so that the gaps between those
    parts stay open.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, groups: np.ndarray, device: str = "cpu") -> None:
        from scipy.spatial import cKDTree

        g = np.asarray(groups)[faces]
        face_group = np.where(g[:, 1] == g[:, 2], g[:, 1], g[:, 0])
        subsets = [faces[face_group == k] for k in range(3) if (face_group == k).sum() >= 8]
        self.parts = [mesh_query(vertices, f, device) for f in subsets]
        self.trees = [cKDTree(vertices[np.unique(f)]) for f in subsets]
        t = vertices[faces]
        # A point's distance to a part is at least its distance to the part's nearest vertex minus this (metres).
        self.slack = float(np.linalg.norm(t - np.roll(t, 1, axis=1), axis=2).max())

    def limit(self, pts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offsets ``r`` (N,) in metres at points ``pts`` (N, 3) capped in the gaps between parts; returns
        (capped offsets (N,), gap weight (N,) in [0, 1]: how strongly a gap cap lowers the offset there)."""
        r = np.asarray(r, np.float64).copy()
        weight = np.zeros(len(pts))
        if len(self.parts) < 2 or len(pts) == 0:
            return r, weight
        # A pair can only lower r where both parts are nearer than `reach` (cap < r): find those points with the
        # parts' vertex trees first, then run the exact queries on them alone.
        reach = (r - TIGHT_OFFSET_M) / GAP_SHARE + self.slack
        near = [tree.query(pts, distance_upper_bound=float(reach.max()))[0] < reach for tree in self.trees]
        pairs = [(i, j, np.nonzero(near[i] & near[j])[0]) for i in range(len(near)) for j in range(i + 1, len(near))]
        queried = {}
        for k in range(len(self.parts)):
            idx = np.unique(np.concatenate([ix for i, j, ix in pairs if k in (i, j)]))
            queried[k] = (idx, self.parts[k].query(pts[idx]))
        for i, j, ix in pairs:
            if len(ix) == 0:
                continue
            qa, qb = (_rows(*queried[k], ix) for k in (i, j))
            ab = qb[0] - qa[0]
            sep = np.linalg.norm(ab, axis=1)
            ab /= np.maximum(sep, 1e-9)[:, None]
            w = np.clip(sep / GAP_SEPARATION_M - 1.0, 0.0, 1.0)
            if GAP_FACING_FULL > GAP_FACING_FROM:
                facing = np.minimum(np.einsum("ni,ni->n", qa[1], ab), -np.einsum("ni,ni->n", qb[1], ab))
                w *= np.clip((facing - GAP_FACING_FROM) / (GAP_FACING_FULL - GAP_FACING_FROM), 0.0, 1.0)
            cap = TIGHT_OFFSET_M + GAP_SHARE * np.maximum(np.abs(qa[2]), np.abs(qb[2]))
            lowers = (w > 0) & (cap < r[ix])
            r[ix] = np.where(lowers, (1.0 - w) * r[ix] + w * cap, r[ix])
            weight[ix] = np.where(lowers, np.maximum(weight[ix], w), weight[ix])
        return r, weight


def _rows(idx: np.ndarray, q: Any, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(closest, normal, distance) of the PointQuery ``q`` (made for the sorted point indices ``idx``) at the
    point indices ``wanted`` (a subset of ``idx``)."""
    pos = np.searchsorted(idx, wanted)
    return q.closest[pos], q.normal[pos], q.distance[pos]


class _Field:
    """f(p) = min(s(p), min(r(π p), cap(closest body point)) − d(p)) in metres, positive inside; ``gaps`` lowers
    r further between body parts (:class:`PartGaps`); ``rounded`` rounds the silhouette's carve where the body
    reaches beyond the mask (:meth:`BodyDepth.round_carve`)."""

    def __init__(self, body: MeshQuery, camera: Camera, mask_sd_px: np.ndarray, offset_m: np.ndarray,
                 caps: np.ndarray | None = None, gaps: PartGaps | None = None, depth_m: np.ndarray | None = None,
                 skirt: SkirtZone | None = None, isotropic: np.ndarray | None = None,
                 rounded: BodyDepth | None = None) -> None:
        self.body, self.camera = body, camera
        self.rounded = rounded
        self.isotropic = isotropic if isotropic is not None and isotropic.any() else None
        self.mask_sd_px, self.offset_m = mask_sd_px, offset_m
        self.caps, self.gaps = caps, gaps
        self.depth_m = depth_m
        self.skirt = skirt if skirt is not None and skirt.present else None
        self.fx = float(camera.K[0, 0])
        self.count = 0
        self._count_lock = threading.Lock()  # the grid's blocks are evaluated on several threads

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        with self._count_lock:
            self.count += len(pts)
        uv, z = self.camera.project(pts)
        s = sample_image(self.mask_sd_px, uv, outside=1e4) * np.maximum(z, 1e-3) / self.fx
        r = sample_image(self.offset_m, uv, outside=None)
        # beyond the photo's frame (a person cut by it) the clothing the frame's edge shows tapers to tight
        height, width = self.mask_sd_px.shape
        off_px = distance_beyond(uv, width, height)
        taper = np.clip(1.0 - off_px * np.maximum(z, 1e-3) / self.fx / OFF_FRAME_TAPER_M, 0.0, 1.0)
        r = TIGHT_OFFSET_M + (r - TIGHT_OFFSET_M) * taper
        if self.rounded is not None:
            s = self.rounded.round_carve(s, uv, z, r)
        q = self.body.query(pts)
        if self.caps is not None:
            cap = np.einsum("ni,ni->n", q.bary, self.caps[self.body.faces[q.face]])
            r = np.minimum(r, TIGHT_OFFSET_M + cap)
        d = q.distance.copy()
        if self.gaps is not None:
            # Only points that the offset would fill outside the body can change (the cap only lowers r).
            cand = np.nonzero((d > 0) & (r - d > -0.05))[0]
            if len(cand):
                r[cand] = self.gaps.limit(pts[cand], r[cand])[0]
        # Loose offsets reach sideways (what the silhouette shows) more than along the view: outside the body the
        # offset is an ellipse, lateral radius r, depth radius r_depth = r / g (g ≥ 1): the distance's component
        # along the viewing ray counts g times.
        loose = np.clip((r - LOOSE_FROM_M) / LOOSE_FROM_M, 0.0, 1.0)
        g = 1.0 + (DEPTH_STRETCH - 1.0) * loose
        if self.depth_m is not None:
            reach = np.maximum(sample_image(self.depth_m, uv, outside=None),
                               np.maximum(DEPTH_MIN_M * loose, TIGHT_OFFSET_M))
            g = np.maximum(g, r / reach)
        g = np.maximum(g, 1.0)
        if self.isotropic is not None:  # behind the head and neck: hair as deep as it is wide
            iso = np.einsum("ni,ni->n", q.bary, self.isotropic[self.body.faces[q.face]])
            g = g - (g - 1.0) * iso
        ray = self.camera.center - pts
        ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-9)
        along = np.einsum("ni,ni->n", pts - q.closest, ray)
        stretched = np.sqrt(np.maximum(d * d + (g * g - 1.0) * along * along, 0.0))
        d = np.where(d > 0, stretched, d)
        # Divided by g: the zero level is the same and f stays about 1-Lipschitz along the ray.
        f = (r - d) / g
        if self.skirt is not None:
            f = np.maximum(f, self.skirt.occupancy(pts))
        return np.minimum(s, f)


def _smooth_loose(vol: np.ndarray, origin: np.ndarray, h: float, camera: Camera, offset: np.ndarray,
                  gap_weight: Any = None, mask_sd_px: np.ndarray | None = None) -> np.ndarray:
    """Blend the node values towards a Gaussian-blurred copy (σ = :data:`LOOSE_BLUR_M`) where the offset is
    loose (weight 0 at :data:`LOOSE_FROM_M`, 1 at twice that): fills the groove between legs under a skirt and
    rounds the lumps of grown limbs, leaving tight regions (and their thin parts) untouched. ``gap_weight``
    (points (N, 3) → (N,) in [0, 1], optional) marks gaps between body parts, which are not blurred shut.
    ``mask_sd_px`` (H, W; the mask's signed distance in pixels, optional): the blur fades out over
    :data:`LOOSE_RIM_M` towards the mask's outline, so it does not move the silhouette."""
    # the blurred copy on a second thread while the weight is found (SciPy's filter releases the GIL)
    blur_job = in_background(ndimage.gaussian_filter, vol, LOOSE_BLUR_M / h)
    # The weight varies slowly: compute it on every 4th node (when the grid allows) and upsample.
    step = 4 if all((n - 1) % 4 == 0 for n in vol.shape) else 1
    shape = tuple((n - 1) // step + 1 for n in vol.shape)
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    pts = origin + (h * step) * idx
    uv, z = camera.project(pts)
    r = sample_image(offset, uv, outside=None)
    w = np.clip((r - LOOSE_FROM_M) / LOOSE_FROM_M, 0.0, 1.0)
    if mask_sd_px is not None:
        rim_m = sample_image(mask_sd_px, uv, outside=1e4) * np.maximum(z, 1e-3) / float(camera.K[0, 0])
        w *= np.clip(rim_m / LOOSE_RIM_M, 0.0, 1.0)
    if gap_weight is not None and (w > 0).any():
        loose = np.nonzero(w > 0)[0]
        w[loose] *= 1.0 - gap_weight(pts[loose])
    w = w.reshape(shape).astype(np.float32)
    for _ in range({4: 2, 1: 0}[step]):
        w = upsample2(w)
    if not (w > 0).any():
        return vol
    blurred = blur_job.result()
    # the blend only where the weight is (a fraction of the grid; elsewhere it would give the node's own value)
    out = np.array(vol, copy=True, order="C")
    flat_w, flat_out = w.reshape(-1), out.reshape(-1)
    at = np.nonzero(flat_w > 0)[0]
    flat_out[at] = (1.0 - flat_w[at]) * flat_out[at] + flat_w[at] * blurred.reshape(-1)[at]
    return out


# --------------------------------------------------------------------------------------------------- meshing


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, camera: Camera, mask: np.ndarray) -> float:
    """Intersection over union of the mesh's silhouette seen by ``camera`` and ``mask`` (H, W)."""
    return mask_iou(rasterize(vertices, faces, camera).mask, mask)


# --------------------------------------------------------------------------------------------------- checks


def _mask_warnings(mask: np.ndarray, body_mask: np.ndarray, px_per_m: float) -> list[str]:
    warns = []
    sides = {
        "top": mask[0].any(),
        "bottom": mask[-1].any(),
        "left": mask[:, 0].any(),
        "right": mask[:, -1].any(),
    }
    cut = [k for k, v in sides.items() if v]
    if cut:
        warns.append(
            "The person touches the photo's " + ", ".join(cut) + " edge: the part outside the photo follows the "
            "fitted body with tight clothing. Use a photo showing the whole person for a complete avatar."
        )
    iou = mask_iou(mask, body_mask)
    if iou < 0.6:
        warns.append(
            f"The fitted body covers the person's outline poorly (IoU {iou:.2f}): the clothed shape may be too thick "
            "or too thin in depth. Try a photo with a plainer background or a clearer pose."
        )
    # Gaps the body shows between the arms and the torso (concave parts of its silhouette above the hips) that
    # the mask fills: the arms are merged with the torso in the mask.
    rows = np.nonzero(body_mask.any(1))[0]
    if len(rows) and px_per_m > 0:
        radius = max(2.0, 0.08 * px_per_m)
        pad = int(radius) + 2
        dilated = distance_to_zero(~np.pad(body_mask, pad)) <= radius  # closing by a disk via EDTs
        closed = (distance_to_zero(dilated) > radius)[pad:-pad, pad:-pad]
        gaps = closed & ~body_mask
        hip_row = int(rows.min() + 0.5 * (rows.max() - rows.min()))
        gaps[hip_row:] = False
        gaps = ndimage.binary_opening(gaps, iterations=2)
        if gaps.sum() > 0.01 * body_mask.sum() and (gaps & mask).sum() > 0.7 * gaps.sum():
            warns.append(
                "The person mask fills the gaps between the arms and the body: the surface keeps the arms apart "
                "only where the fitted body's arms are clear of it. A photo with the arms held away from the body "
                "gives separate arms."
            )
    return warns


# --------------------------------------------------------------------------------------------------- entry point


def build_surface(
    fit: Any,
    observation: Any,
    photo: Any,
    quality: str = "standard",
    progress: Any = None,
    face_count: int | None = None,
    device: str = "cpu",
) -> ClothedSurface:
    """Clothed, watertight surface (bundle world, metres) from the fitted body, its camera and the person mask.

    ``fit``: a BodyFit (``vertices`` (V, 3), ``faces`` (F, 3), ``camera``: :class:`Camera` in processing pixels,
    ``joints`` (55, 3) — optional, used to keep hands and arms from swelling);
    ``observation``: a PersonObservation (``mask`` (H, W) bool, processing pixels); ``photo``: the Photo (its
    ``rgb`` gives the processing size). ``quality``: ``preview`` | ``standard`` | ``high``
    (:data:`QUALITY_PRESETS`); ``face_count``: final number of faces (default: the preset's). ``device``: where
    the body's closest-point queries run (:func:`~icon_engine.geometry.torch_closest.mesh_query`).
    """
    progress = progress or NoProgress()
    if quality not in QUALITY_PRESETS:
        raise EngineError(
            "bad_option", f"Unknown quality {quality!r}.", "Use one of: " + ", ".join(QUALITY_PRESETS) + "."
        )
    if face_count is not None and face_count < 1000:
        raise EngineError("bad_option", f"Face count {face_count} is too small.", "Use at least 1000 faces.")
    preset = QUALITY_PRESETS[quality]
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    camera: Camera = fit.camera
    mask = np.asarray(observation.mask, dtype=bool)
    H, W = mask.shape
    if (camera.width, camera.height) != (W, H):
        raise ValueError(f"mask is {W}x{H} px but the camera is {camera.width}x{camera.height} px")
    if photo is not None and hasattr(photo, "rgb") and tuple(photo.rgb.shape[:2]) != (H, W):
        raise ValueError("mask and photo sizes differ")
    if mask.sum() < 64:
        raise EngineError("no_person", "The person mask is empty.", "Use a photo where the person is clearly visible.")
    vertices = np.asarray(fit.vertices, dtype=np.float64)
    faces = np.asarray(fit.faces, dtype=np.int64)

    progress.update(0.02, "Preparing the silhouette")
    t = time.perf_counter()
    vertices, faces, _ = largest_component(vertices, faces)  # drop eyes/teeth: they would carve cavities
    # the body's raster on a second thread while the body's parts are found (the rasteriser, numpy and SciPy
    # release the GIL); the fields below likewise: each is one deterministic function of its inputs
    raster_job = in_background(rasterize, vertices, faces, camera)
    body = mesh_query(vertices, faces, device)
    joints = getattr(fit, "joints", None)
    owner, gaps, groups, skirt, arm_sil = None, None, None, None, None
    if joints is not None and len(joints) >= 55:
        owner, foot = bone_owner(vertices, joints)
        groups = arm_groups(vertices, faces, owner, foot)
        gaps = PartGaps(vertices, faces, groups, device)
        arm_faces = (groups[faces] > 0).all(1)
        arm_sil = rasterize(vertices, faces[arm_faces], camera).mask if arm_faces.any() else None
    caps = vertex_caps(vertices, faces, joints, owner)
    iso = hair_back_weight(vertices, faces, joints, owner)
    braster = raster_job.result()
    body_mask = braster.mask
    z_body = float(np.median(braster.depth[body_mask])) if body_mask.any() else float(
        np.median(camera.to_camera(vertices)[:, 2])
    )
    px_per_m = float(camera.K[0, 0]) / max(z_body, 1e-3)
    warns = _mask_warnings(mask, body_mask, px_per_m)
    if groups is not None:
        skirt = SkirtZone(mask, body_mask, joints, camera, vertices[groups == 0], px_per_m, arm_sil)
        if skirt.present:  # the detector's holes and notches inside a skirt are cloth: not carved into it
            mask = mask | skirt.fill
    rounded_job = in_background(body_depth, vertices, faces, camera, braster, mask, px_per_m) \
        if ROUND_CARVE > 0 else None
    sd_px = mask_signed_distance(mask)
    offset = offset_field(mask, body_mask, px_per_m)
    depth = depth_field(mask, body_mask, px_per_m)
    rounded = rounded_job.result() if rounded_job is not None else None
    timings["fields"] = time.perf_counter() - t

    # Grid over the body's box grown by the largest offset met on the mask.
    r_max = float(min(offset[mask].max(), MAX_OFFSET_M))
    lo = vertices.min(0) - r_max - 0.03
    hi = vertices.max(0) + r_max + 0.03
    res, levels = preset.resolution, preset.levels
    h = float((hi - lo).max()) / res

    def gap_weight(pts: np.ndarray) -> np.ndarray:
        w = np.zeros(len(pts))
        outside = np.nonzero(body.query(pts).distance > 0)[0]
        if gaps is not None and len(outside):
            uv, _ = camera.project(pts[outside])
            w[outside] = gaps.limit(pts[outside], sample_image(offset, uv, outside=None))[1]
        return w

    fn = _Field(body, camera, sd_px, offset, caps, gaps, depth, skirt, iso, rounded)
    t = time.perf_counter()
    progress.update(0.08, "Evaluating the occupancy")
    vol, origin = evaluate_coarse_to_fine(fn, lo, hi, h, levels, progress, 0.08, 0.6, workers=None)
    vol = _smooth_loose(vol, origin, h, camera, offset, gap_weight if gaps is not None else None, sd_px)
    timings["field"] = time.perf_counter() - t

    progress.update(0.62, "Marching cubes")
    t = time.perf_counter()
    verts, tris = mesh_zero_level(vol, origin, h)
    raw_faces = len(tris)
    verts, tris, floaters = largest_component(verts, tris)
    if floaters:
        warns.append(f"Removed {floaters} small detached piece(s) of the surface (floating bits of the mask).")
    timings["marching_cubes"] = time.perf_counter() - t

    progress.update(0.75, "Smoothing")
    t = time.perf_counter()
    verts = taubin_smooth(verts, tris, preset.smooth)
    timings["smooth"] = time.perf_counter() - t
    progress.update(0.85, "Decimating")
    t = time.perf_counter()
    target = int(face_count) if face_count is not None else preset.face_count
    n_before = len(tris)
    verts, tris = decimate(verts, tris, target)
    if len(tris) > 1.05 * target and n_before > target:
        warns.append(f"Could not reduce the surface to {target} faces without opening it; kept {len(tris)} faces.")
    timings["decimate"] = time.perf_counter() - t

    progress.update(0.95, "Checking the surface")
    t = time.perf_counter()
    iou = silhouette_iou(verts, tris, camera, mask)
    watertight = is_watertight(tris)
    timings["check"] = time.perf_counter() - t
    if iou < 0.95:
        warns.append(f"The surface matches the person's outline only approximately (silhouette IoU {iou:.3f}).")
    if not watertight:
        warns.append("The surface is not watertight; some tools may not handle it.")
    stats = {
        "quality": quality,
        "grid_spacing_m": h,
        "grid_shape": list(vol.shape),
        "points_evaluated": fn.count,
        "raw_faces": raw_faces,
        "floaters_removed": floaters,
        "faces": len(tris),
        "vertices": len(verts),
        "silhouette_iou": iou,
        "watertight": watertight,
        "max_offset_m": r_max,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "time_s": round(time.perf_counter() - t_start, 3),
    }
    progress.update(1.0, "Surface done")
    return ClothedSurface(verts, tris, "body-guided-hull", warns, stats)
