"""Several photos: their canonical occupancies fused into one (per-point confidence: seen head-on, inside the
silhouette, away from contact zones).

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..mesh_queries import rasterize
from ..threads import map_rows
from . import photo_occupancy
from .body import HAND_JOINTS
from .photo_occupancy import bare_hands

#: Confidence of a photo's surface at a point: RIM_FLOOR + rim², rim = 1 − |cos(normal, view ray)|. A photo's
#: silhouette pins the surface where it is seen edge-on (its rim); where the surface faces its camera (front or
#: back), its depth is the body-guided guess of the checkpoint-free surface.
RIM_FLOOR = 0.05
#: Carving: the fused occupancy never exceeds a photo's silhouette signed distance (metres at the point's depth)
#: by more than CARVE_SLACK_M (the first photo, which the avatar is posed and framed like), CARVE_OTHERS times that
#: plus CARVE_CONTACT_M in their contact zones (the other photos, whose fits register less exactly with the first
#: photo's pose): a visual hull.
CARVE_SLACK_M = 0.004
CARVE_OTHERS = 6.0
CARVE_CONTACT_M = 0.10
#: The first photo (the avatar is posed and framed like it) weighs this much more than the others.
FIRST_PHOTO_WEIGHT = 4.0
#: Confidence factor of a surface point a photo does not see (another part hides it), and the depth tolerance
#: (metres) of that visibility test.
HIDDEN_WEIGHT = 0.1
SEEN_DEPTH_M = 0.02
#: Each photo's confidence is smoothed over space before it weighs the photo's surface: computed on a grid of this
#: spacing (metres) within CONFIDENCE_BAND_M of the canonical body, blurred by a Gaussian of CONFIDENCE_BLUR_M
#: (normalised over the band) and read back by trilinear interpolation. Its factors switch within a centimetre or
#: two — the visibility test past a photo's silhouette rim or an occluding arm, the rim weight, the contact zones —
#: and where the photos' surfaces disagree by a centimetre (their fits register to a centimetre or two) a switch
#: is a step: the 4-view avatars had cracks down the middle of the back and the legs (where two side views' rims
#: meet) and pits along the spine.
CONFIDENCE_GRID_M = 0.03
CONFIDENCE_BLUR_M = 0.03
CONFIDENCE_BAND_M = 0.15
#: Most grid points per block of the confidence grid's evaluation (blocks run on the cores: ``threads.map_rows``).
CONFIDENCE_BLOCK = 20_000


class FusedOccupancy:
    """Canonical occupancy of several photos (metres, positive inside): the confidence-weighted mean of every
    photo's observed occupancy at its warped point, where the confidence of photo i is
    ``(1 − contact_i) · (1 − fold_i) · (RIM_FLOOR + rim_i²) · seen_i`` (× :data:`FIRST_PHOTO_WEIGHT` for the first),
    smoothed over space (:data:`CONFIDENCE_BLUR_M`; the grid is built on the first call), capped by every photo's
    carving bound (:data:`CARVE_SLACK_M`); where every photo is in a contact zone the body prior (the canonical body
    grown by the clothing offsets measured over all photos) takes over.

    ``occupancies``: one :class:`CanonicalOccupancy` per photo, all over the same canonical body (one shape);
    ``centres``: each photo's camera centre in its own bundle world (metres)."""

    def __init__(self, occupancies: list[Any], cameras: list[Any], masks: list[np.ndarray]) -> None:
        from ..geometry.image_fields import mask_signed_distance

        if not occupancies or len(occupancies) != len(cameras) or len(masks) != len(cameras):
            raise ValueError("one camera and one person mask per occupancy, at least one")
        self.occupancies = occupancies
        self.cameras = cameras
        self.mask_sd = [mask_signed_distance(np.asarray(m, dtype=bool)) for m in masks]
        self.centres = [np.asarray(c.center, dtype=np.float64).reshape(1, 3) for c in cameras]
        # each photo's depth map of its own clothed surface: a surface point hidden behind another part (the far
        # arm in a side view) is a guess of that photo, not an observation
        self.depths = [rasterize(o.clothed.vertices, o.clothed.faces, c).depth for o, c in zip(occupancies, cameras,
                                                                                                strict=True)]
        self.count = 0
        self.contact_count = 0
        self.confidence: list[np.ndarray] | None = None  # per photo, on the grid (:meth:`_confidence_grids`)
        self.confidence_origin = np.zeros(3)
        self.confidence_cover = np.zeros((1, 1, 1), np.float32)

    def _silhouette(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N,) signed distance (metres at each point's depth, positive inside) of the points' pixels in photo
        ``i`` to its person mask's outline; points off the image are not bounded by it."""
        from ..geometry.image_fields import sample_image

        cam = self.cameras[i]
        uv, z = cam.project(points)
        sd_px = sample_image(self.mask_sd[i], uv, outside=np.inf)
        return sd_px * np.maximum(z, 1e-3) / float(cam.K[0, 0])

    def _seen(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N,) 1 where photo ``i`` sees the surface points (N, 3) (nearest at their pixel), falling smoothly to
        HIDDEN_WEIGHT for points more than 2 × SEEN_DEPTH_M behind the nearest surface."""
        cam, depth = self.cameras[i], self.depths[i]
        uv, z = cam.project(points)
        col = np.clip(uv[:, 0].astype(np.int64), 0, cam.width - 1)
        row = np.clip(uv[:, 1].astype(np.int64), 0, cam.height - 1)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
        behind = np.where(inside, z - depth[row, col], np.inf)  # metres behind the nearest surface at the pixel
        ramp = np.clip((behind - SEEN_DEPTH_M) / SEEN_DEPTH_M, 0.0, 1.0)  # smooth: no step in the fused field
        return 1.0 - (1.0 - HIDDEN_WEIGHT) * ramp

    def _prelude(self, x_c: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]:
        """The first photo's skinning field at the canonical points (N, 3): (neighbours, weights, distance to the
        canonical body, between-legs weight or None) — the same for every photo (one canonical body)."""
        first = self.occupancies[0]
        neighbours = first.skin.neighbours(x_c)  # the skinning field depends on the canonical body alone
        weights, d_c = first.skin.weights(x_c, neighbours=neighbours)
        legs = first.skin.between_legs(neighbours) if any(o.skirt > 0 for o in self.occupancies) else None
        return neighbours, weights, d_c, legs

    def _photo(self, i: int, x_c: np.ndarray, neighbours: Any, weights: np.ndarray,
               legs: np.ndarray | None) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray, np.ndarray]:
        """Photo ``i`` at the canonical points: (warped points, closest-point query on its clothed surface,
        contact weight, fold weight, point-wise confidence) — see the class."""
        occ, centre = self.occupancies[i], self.centres[i]
        x_p = occ.skin.warp(x_c, weights)
        q = occ.clothed.query(x_p)
        contact = occ.contact(x_c, x_p, legs=legs)
        # a photo whose pose compresses the warp there (the inside of its bends) does not vote; where every
        # photo's does, the body prior replaces the surface (as for one photo)
        fold = occ.skin.fold_weight(x_c, neighbours, occ.skirt)
        ray = x_p - centre
        ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-12)
        rim = 1.0 - np.abs(np.einsum("ni,ni->n", q.normal, ray))
        seen = self._seen(i, q.closest)
        rim = rim * (seen - HIDDEN_WEIGHT) / (1.0 - HIDDEN_WEIGHT)  # a hidden rim is no silhouette
        conf = ((1.0 - contact) * (1.0 - fold) * (RIM_FLOOR + rim * rim) * seen
                * (FIRST_PHOTO_WEIGHT if i == 0 else 1.0))
        return x_p, q, contact, fold, conf

    def _confidence_grids(self) -> None:
        """Every photo's confidence on the grid of :data:`CONFIDENCE_GRID_M` within :data:`CONFIDENCE_BAND_M` of
        the canonical body, blurred (:data:`CONFIDENCE_BLUR_M`) over that band."""
        from scipy import ndimage

        body = self.occupancies[0].skin.body.vertices
        lo = body.min(axis=0) - CONFIDENCE_BAND_M
        shape = tuple(int(n) for n in np.ceil((body.max(axis=0) + CONFIDENCE_BAND_M - lo) / CONFIDENCE_GRID_M) + 1)
        points = lo + CONFIDENCE_GRID_M * np.indices(shape).reshape(3, -1).T
        near = np.nonzero(self.occupancies[0].skin.tree.query(points)[0] < CONFIDENCE_BAND_M)[0]
        raw = np.zeros((len(self.occupancies), len(points)))
        raw[:, near] = map_rows(self._pointwise, points[near], min_rows=photo_occupancy.FIELD_MIN_ROWS,
                                max_rows=CONFIDENCE_BLOCK).T
        inside = np.zeros(len(points))
        inside[near] = 1.0
        sigma = CONFIDENCE_BLUR_M / CONFIDENCE_GRID_M
        norm = np.maximum(ndimage.gaussian_filter(inside.reshape(shape), sigma), 1e-6)
        self.confidence = [(ndimage.gaussian_filter(r.reshape(shape), sigma) / norm).astype(np.float32) for r in raw]
        # how much of a node's blur came from evaluated points: beyond the band the point-wise confidence is kept
        self.confidence_cover = np.clip(2.0 * norm, 0.0, 1.0).astype(np.float32)
        self.confidence_origin = lo

    def _pointwise(self, x_c: np.ndarray) -> np.ndarray:
        """(N, photos) every photo's point-wise confidence at the canonical points (N, 3) (row-wise)."""
        neighbours, weights, _, legs = self._prelude(x_c)
        return np.stack([self._photo(i, x_c, neighbours, weights, legs)[4] for i in range(len(self.occupancies))],
                        axis=1)

    def _smooth_confidence(self, i: int, x_c: np.ndarray, pointwise: np.ndarray) -> np.ndarray:
        """(N,) photo ``i``'s blurred confidence at the canonical points (N, 3) (trilinear), blended into the
        ``pointwise`` one (N,) where the band of evaluated grid points ends."""
        from scipy import ndimage

        coords = ((x_c - self.confidence_origin) / CONFIDENCE_GRID_M).T
        cover = ndimage.map_coordinates(self.confidence_cover, coords, order=1, mode="constant", cval=0.0)
        smooth = ndimage.map_coordinates(self.confidence[i], coords, order=1, mode="nearest")
        return cover * smooth + (1.0 - cover) * pointwise

    def __call__(self, x_c: np.ndarray) -> np.ndarray:
        """F (N,) at canonical points (N, 3), blocks of rows evaluated on :func:`~icon_engine.threads.cpu_workers`
        threads like one photo's field (:data:`~.photo_occupancy.FIELD_BLOCK_ROWS`): every step is row-wise and
        reads only state built before the split (the confidence grids are built here first), and the counters are
        summed here from the blocks' columns, so the values and the counts do not depend on the split (wave 32, 4
        views at standard on 2 cores: the field 8.8 → 5.6 s, the bundles byte-identical)."""
        if self.confidence is None:
            self._confidence_grids()
        out = map_rows(self._evaluate, np.asarray(x_c, dtype=np.float64), min_rows=photo_occupancy.FIELD_MIN_ROWS,
                       max_rows=photo_occupancy.FIELD_BLOCK_ROWS)
        self.count += len(x_c)
        self.contact_count += int(out[:, 1].sum())
        self.occupancies[0].lost_count += int(out[:, 2].sum())
        return out[:, 0]

    def _evaluate(self, x_c: np.ndarray) -> np.ndarray:
        """(N, 3): F, whether every photo's contact weight is above 0.5 there (none is free), and whether the body
        prior grew F around body vertices the first meshing lost (:meth:`CanonicalOccupancy.keep_lost`)."""
        first = self.occupancies[0]
        neighbours, weights, d_c, legs = self._prelude(x_c)
        num = np.zeros(len(x_c))
        den = np.zeros(len(x_c))
        free = np.zeros(len(x_c))
        unfolded = np.zeros(len(x_c))
        bound = np.full(len(x_c), np.inf)
        for i in range(len(self.occupancies)):
            x_p, q, contact, fold, pointwise = self._photo(i, x_c, neighbours, weights, legs)
            conf = self._smooth_confidence(i, x_c, pointwise)
            num += conf * -q.distance
            den += conf
            free = np.maximum(free, 1.0 - contact)
            unfolded = np.maximum(unfolded, 1.0 - fold)
            # each photo's silhouette bounds the volume (a visual hull), loosely for the photos the avatar is not
            # posed in (their fits register less exactly with the first photo's) and in contact zones
            slack = CARVE_SLACK_M if i == 0 else CARVE_SLACK_M * CARVE_OTHERS + CARVE_CONTACT_M * contact
            bound = np.minimum(bound, self._silhouette(i, x_p) + slack)
        observed = np.minimum(num / np.maximum(den, 1e-12), bound)
        out = observed.copy()
        blend = np.nonzero(free < 1.0)[0]
        if len(blend):
            prior = np.minimum(first.prior(x_c[blend]), observed[blend])  # the prior only carves (as for one photo)
            out[blend] = free[blend] * observed[blend] + (1.0 - free[blend]) * prior
        folds = np.nonzero(unfolded < 1.0)[0]
        if len(folds):
            out[folds] = unfolded[folds] * out[folds] + (1.0 - unfolded[folds]) * first.prior(x_c[folds])
        # a limb a first meshing lost is kept as the body prior (first photo's occupancy: the avatar is posed in it)
        out, grown = first.keep_lost(out, x_c, d_c)
        return np.stack([bare_hands(out, x_c, weights[:, list(HAND_JOINTS)].sum(axis=1), first.prior), free < 0.5,
                         grown], axis=1)


def fused_offsets(per_photo: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Clothing offsets (V,) of the body prior from every photo's (offsets, measured) (:func:`body_offsets`):
    the mean over the photos that measured a body vertex; a vertex no photo measured keeps the first photo's
    harmonically filled value. Returns (offsets, measured by any photo)."""
    offsets = np.stack([o for o, _ in per_photo])
    measured = np.stack([m for _, m in per_photo]).astype(np.float64)
    count = measured.sum(axis=0)
    mean = (offsets * measured).sum(axis=0) / np.maximum(count, 1.0)
    return np.where(count > 0, mean, offsets[0]), count > 0
