"""The 51 static face landmarks (iBUG-68 points 17–67) placed on the open body's mesh, as smplx stores them.

Placed once on the mean rest body (SMPL-X frame: Y-up, facing +Z, left = +X, metres) from a frontal
orthographic depth map of the face, the way a 2-D annotator sees the face:

- eyes: the opening is where the eyeball is the front-most surface; corners are its inner/outer extremes,
  the lid points its upper/lower edge at 1/3 and 2/3 of the corner-to-corner width;
- brows: going up each column from 6 mm above the upper lid, the first point within 0.5 mm of the most
  forward point up to 25 mm (the lower edge of the brow ridge's plateau), five columns from
  above the inner eye corner to 4 mm beyond the outer corner;
- nose: on the midline profile, the tip = the most forward point, the bridge top (27) = the deepest point
  between the tip and the brows, 28–29 evenly between; the subnasale (33) = the deepest point between the tip
  and the upper lip; the alar crease = where the nose's side bends most sharply into the cheek along the row
  at the tip's height; the alar bases (31/35) at 0.8 of its distance from the midline, 3 mm above the
  subnasale, 32/34 at 0.4 of it, 1.5 mm above;
- mouth: following the midline profile down from the subnasale, the next local extrema are the upper lip
  (most forward), the stomion (deepest) and the lower lip (most forward); the lip line of every column is its
  deepest point between the lips (where the lips are parted: the middle of the gap, at the lips' depth); the
  corners are the lip line's outermost point still deeper than its neighbours above and below (the crease);
  the outer contour is the lip line plus the midline lip heights with an elliptic fall-off towards the
  corners; the inner contour is the lip line (a closed mouth: 61–63 coincide with 67–65).

Left-side points are mirrored across x = 0 to the right side; every point is then snapped to the closest point
of the mesh surface and stored as (face index, barycentric coordinates), smplx's ``lmk_faces_idx`` /
``lmk_bary_coords``.
"""

from __future__ import annotations

import numpy as np

#: iBUG-68 index → its mirror partner (symmetric pairs; midline points map to themselves).
MIRROR_68 = {
    **{17 + i: 26 - i for i in range(10)},
    27: 27, 28: 28, 29: 29, 30: 30, 31: 35, 32: 34, 33: 33, 34: 32, 35: 31,
    36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 42: 39, 43: 38, 44: 37, 45: 36, 46: 41, 47: 40,
    48: 54, 49: 53, 50: 52, 51: 51, 52: 50, 53: 49, 54: 48, 55: 59, 56: 58, 57: 57, 58: 56, 59: 55,
    60: 64, 61: 63, 62: 62, 63: 61, 64: 60, 65: 67, 66: 66, 67: 65,
}  # fmt: skip
NUM_LANDMARKS = 51
_PIX = 0.0005  # depth-map pixel size, metres
_CREST = 0.0005  # the brow: the lowest point within this depth of the brow ridge's most forward point
_GAP = 0.012  # a lip-line pixel this much deeper than the column's lips sees through parted lips, metres


class _DepthMap:
    """Orthographic depth map seen from +Z: ``z[iy, ix]`` front-most surface height, ``eye[iy, ix]`` True where
    the front-most surface is an eyeball. Pixel centres ``x0 + ix * pix``, ``y0 + iy * pix``."""

    def __init__(self, verts: np.ndarray, faces: np.ndarray, is_eye_face: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, pix: float = _PIX) -> None:  # fmt: skip
        self.x0, self.y0, self.pix = float(lo[0]), float(lo[1]), pix
        nx = int(np.ceil((hi[0] - lo[0]) / pix)) + 1
        ny = int(np.ceil((hi[1] - lo[1]) / pix)) + 1
        self.z = np.full((ny, nx), -np.inf)
        self.eye = np.zeros((ny, nx), bool)
        tri = verts[faces]
        keep = ((tri[:, :, 0].max(1) >= lo[0]) & (tri[:, :, 0].min(1) <= hi[0]) & (tri[:, :, 1].max(1) >= lo[1])
                & (tri[:, :, 1].min(1) <= hi[1]))  # fmt: skip
        for t, eye in zip(tri[keep], is_eye_face[keep], strict=True):
            self._raster(t, bool(eye))

    def _raster(self, t: np.ndarray, eye: bool) -> None:
        ix0 = max(int(np.ceil((t[:, 0].min() - self.x0) / self.pix)), 0)
        ix1 = min(int(np.floor((t[:, 0].max() - self.x0) / self.pix)), self.z.shape[1] - 1)
        iy0 = max(int(np.ceil((t[:, 1].min() - self.y0) / self.pix)), 0)
        iy1 = min(int(np.floor((t[:, 1].max() - self.y0) / self.pix)), self.z.shape[0] - 1)
        if ix1 < ix0 or iy1 < iy0:
            return
        gx, gy = np.meshgrid(self.x0 + np.arange(ix0, ix1 + 1) * self.pix, self.y0 + np.arange(iy0, iy1 + 1) * self.pix)
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = t
        det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(det) < 1e-14:
            return
        l1 = ((by - cy) * (gx - cx) + (cx - bx) * (gy - cy)) / det
        l2 = ((cy - ay) * (gx - cx) + (ax - cx) * (gy - cy)) / det
        l3 = 1.0 - l1 - l2
        inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
        z = l1 * az + l2 * bz + l3 * cz
        sub = self.z[iy0 : iy1 + 1, ix0 : ix1 + 1]
        front = inside & (z > sub)
        sub[front] = z[front]
        self.eye[iy0 : iy1 + 1, ix0 : ix1 + 1][front] = eye

    def ix(self, x: float) -> int:
        return int(round((x - self.x0) / self.pix))

    def iy(self, y: float) -> int:
        return int(round((y - self.y0) / self.pix))

    def point(self, iy: int, ix: int) -> np.ndarray:
        return np.array([self.x0 + ix * self.pix, self.y0 + iy * self.pix, self.z[iy, ix]])

    def column(self, x: float, y_lo: float, y_hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and depths of column ``x`` between heights ``y_lo`` and ``y_hi``."""
        rows = np.arange(self.iy(y_lo), self.iy(y_hi) + 1)
        return rows, self.z[rows, self.ix(x)]


def _eye_points(dm: _DepthMap) -> dict[int, np.ndarray]:
    """Left eye (iBUG 42–47) from the visible eyeball region (x > 0)."""
    mask = dm.eye.copy()
    mask[:, : dm.ix(0.0) + 1] = False
    rows, cols = np.nonzero(mask)
    inner, outer = cols.min(), cols.max()
    out = {42: dm.point(int(round(rows[cols == inner].mean())), inner),
           45: dm.point(int(round(rows[cols == outer].mean())), outer)}  # fmt: skip
    for k_up, k_low, frac in ((43, 47, 1 / 3), (44, 46, 2 / 3)):
        c = int(round(inner + frac * (outer - inner)))
        r = rows[cols == c]
        out[k_up] = dm.point(int(r.max()) + 1, c)  # the lid margin just above the opening
        out[k_low] = dm.point(int(r.min()) - 1, c)
    return out


def _brow_points(dm: _DepthMap, eye: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Left brow (iBUG 22 inner … 26 outer): the brow crest above the eye."""
    lid = max(eye[43][1], eye[44][1])
    xs = np.linspace(eye[42][0], eye[45][0] + 0.004, 5)
    out = {}
    for k, x in zip(range(22, 27), xs, strict=True):
        rows, z = dm.column(float(x), lid + 0.006, lid + 0.025)
        first = int(np.flatnonzero(z >= z.max() - _CREST)[0])  # the crest's lower edge (the brow is a plateau)
        out[k] = dm.point(int(rows[first]), dm.ix(float(x)))
    return out


def _profile_extreme(dm: _DepthMap, y_lo: float, y_hi: float, deepest: bool) -> np.ndarray:
    rows, z = dm.column(0.0, y_lo, y_hi)
    r = rows[np.argmin(z)] if deepest else rows[np.argmax(z)]
    return dm.point(int(r), dm.ix(0.0))


def _walk(dm: _DepthMap, start: np.ndarray, down: bool) -> np.ndarray:
    """Follow the midline profile from ``start`` up or down to the next local depth extremum."""
    ix, r = dm.ix(0.0), dm.iy(float(start[1]))
    step = -1 if down else 1
    sign = np.sign(dm.z[r + step, ix] - dm.z[r, ix])
    while 0 < r + step < dm.z.shape[0] - 1 and np.sign(dm.z[r + step, ix] - dm.z[r, ix]) == sign:
        r += step
    return dm.point(r, ix)


def _nose_mouth_points(
    dm: _DepthMap, eye: dict[int, np.ndarray], brow_y: float, chin_y: float
) -> dict[int, np.ndarray]:
    """Nose (27–35) and mouth (48–67): midline points and the left side."""
    eye_y = eye[42][1]
    out: dict[int, np.ndarray] = {}
    out[30] = tip = _profile_extreme(dm, chin_y + 0.04, eye_y, deepest=False)
    out[27] = _profile_extreme(dm, tip[1] + 0.01, brow_y, deepest=True)
    for k, f in ((28, 1 / 3), (29, 2 / 3)):
        y = out[27][1] + f * (tip[1] - out[27][1])
        out[k] = dm.point(dm.iy(y), dm.ix(0.0))
    out[33] = sub = _walk(dm, tip - [0.0, 0.003, 0.0], down=True)  # past the tip, down to the deepest point
    upper = _walk(dm, sub, down=True)
    stom = _walk(dm, upper, down=True)
    lower = _walk(dm, stom, down=True)
    # alar crease: along the row at the tip's height, where the steep side of the nose meets the cheek (the
    # largest increase of slope, 2-mm differences, 5–30 mm from the midline); the alar base lies inside it
    start = dm.ix(0.0)
    step = int(round(0.002 / dm.pix))
    z = dm.z[dm.iy(tip[1]), start : start + int(0.03 / dm.pix)]
    bend = z[2 * step :] - 2 * z[step:-step] + z[: -2 * step]  # at index i + step
    first = int(round(0.005 / dm.pix)) - step
    ala = (first + int(np.argmax(bend[first:])) + step) * dm.pix
    out[35] = dm.point(dm.iy(sub[1] + 0.003), dm.ix(0.8 * ala))
    out[34] = dm.point(dm.iy(sub[1] + 0.0015), dm.ix(0.4 * ala))
    # lip line: the deepest point of each column between the lips
    h_up, h_low = upper[1] - stom[1], stom[1] - lower[1]
    line = []
    for ix in range(start, start + int(0.04 / dm.pix)):
        x = dm.x0 + ix * dm.pix
        y_prev = line[-1][1] if line else stom[1]
        rows, zc = dm.column(x, y_prev - 0.5 * h_low, y_prev + 0.5 * h_up)
        gap = np.flatnonzero(zc < zc.max() - _GAP)  # parted lips: the mouth's inside shows through
        j = int(np.argmin(zc)) if len(gap) == 0 else int(round(gap.mean()))
        if j == 0 or j == len(zc) - 1:  # no crease any more: past the mouth corner
            break
        z = zc[j] if len(gap) == 0 else 0.5 * (zc[max(gap[0] - 1, 0)] + zc[min(gap[-1] + 1, len(zc) - 1)])
        line.append(np.array([x, dm.y0 + rows[j] * dm.pix, z]))
    line_arr = np.array(line)
    corner = line_arr[-1]
    width = corner[0]

    def on_line(x: float, dy: float) -> np.ndarray:
        k = int(np.argmin(np.abs(line_arr[:, 0] - x)))
        if dy == 0.0:
            return line_arr[k].copy()
        return dm.point(dm.iy(line_arr[k, 1] + dy), dm.ix(line_arr[k, 0]))

    def lip(x: float, h: float) -> float:
        return h * np.sqrt(max(1.0 - (x / width) ** 2, 0.0))

    out[54] = corner
    out[51], out[57] = on_line(0.0, h_up), on_line(0.0, -h_low)
    for k_up, k_low, f in ((52, 56, 1 / 3), (53, 55, 2 / 3)):
        x = f * width
        out[k_up], out[k_low] = on_line(x, lip(x, h_up)), on_line(x, -lip(x, h_low))
    out[64] = on_line(0.9 * width, 0.0)
    out[62] = out[66] = on_line(0.0, 0.0)
    out[63] = out[65] = on_line(0.45 * width, 0.0)
    return out


def landmark_points(verts: np.ndarray, faces: np.ndarray, eye_vertex: np.ndarray) -> np.ndarray:
    """The 51 face landmarks (iBUG points 17–67, in that order) as 3-D points (51, 3) on the rest body.

    Args:
        verts: (V, 3) rest vertices, SMPL-X frame (metres), mirror-symmetric across x = 0.
        faces: (F, 3) triangles.
        eye_vertex: (V,) bool, True for the eyeball vertices.
    """
    eyes = verts[eye_vertex]
    top = eyes[:, 1].mean()
    lo = np.array([-0.075, top - 0.16])
    hi = np.array([0.075, top + 0.06])
    dm = _DepthMap(verts, faces, eye_vertex[faces].all(axis=1), lo, hi)
    left = _eye_points(dm)
    left.update(_brow_points(dm, left))
    brow_y = float(np.mean([left[k][1] for k in range(22, 27)]))
    left.update(_nose_mouth_points(dm, left, brow_y, top - 0.15))
    points = np.zeros((68, 3))
    for k, p in left.items():
        points[k] = p
        if MIRROR_68[k] != k:
            points[MIRROR_68[k]] = p * np.array([-1.0, 1.0, 1.0])
    return points[17:]


def snap_to_surface(
    points: np.ndarray, verts: np.ndarray, faces: np.ndarray, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Closest surface points: (face index (N,) int64, barycentric coordinates (N, 3)) per point.

    ``allowed``: optional (F,) bool mask of the faces that may carry a point (e.g. skin, not the eyeballs).
    """
    from trimesh.triangles import closest_point, points_to_barycentric

    allowed = np.ones(len(faces), bool) if allowed is None else allowed
    cand_all = np.flatnonzero(allowed)
    centroids = verts[faces[cand_all]].mean(axis=1)
    tri_out = np.zeros(len(points), np.int64)
    bary_out = np.zeros((len(points), 3))
    for n, p in enumerate(points):
        near = cand_all[np.argsort(np.linalg.norm(centroids - p, axis=1))[:64]]
        tris = verts[faces[near]]
        closest = closest_point(tris, np.repeat(p[None], len(near), axis=0))
        k = int(np.argmin(np.linalg.norm(closest - p, axis=1)))
        tri_out[n] = near[k]
        bary = np.clip(points_to_barycentric(tris[k : k + 1], closest[k : k + 1])[0], 0.0, 1.0)
        bary_out[n] = bary / bary.sum()
    return tri_out, bary_out
