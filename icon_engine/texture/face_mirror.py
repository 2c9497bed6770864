"""The far half of a face seen turned: its near half mirrored, read from the photo at full resolution.

A face in three-quarter view shows its far half squeezed against its contour: baked from the photo, the far eye
and cheek smear over the few pixels they cover, a seam of the face's outline (hood, hair, background) runs where the
mesh turns away, and the hidden side beyond takes a mirrored fill that doubles the eye (wave 22,
:func:`~icon_engine.texture.fill._mirrored_head`). A face is left-right symmetric: where a point of the face is
seen much more obliquely than its mirror image, it takes the photo's colour at its mirror image instead.

The mirror plane is the photo's own: the 7 face points MediaPipe's face mesh finds (eye corners, nose tip, mouth
corners: :data:`icon_engine.person.FACE_POINTS`) are carried onto the rest-pose mesh through the pixel where the
photo shows each, and the plane runs through the midpoints of the pairs and the nose tip. The mesh's own
midline (the head's lateral median) lies 0.5–4 cm off the photo's face on the dev photos (a hood, a bun, hair
on one side), which is twice that in the mirrored copy: a second eye beside the first.

Frames and units: rest pose (+Y up, the face towards ``forward``: +Z), metres; the photo and its camera in
processing pixels (:mod:`icon_engine.texture`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Camera
from ..geometry.barycentric import barycentric_blend
from ..geometry.image_fields import bilinear
from ..mesh_queries import MeshQuery
from .colour_stats import _smooth_on_mesh
from .parts import PART_HEAD

#: Pairs of :data:`icon_engine.person.FACE_POINTS` (right, left): the outer eye corners, the inner ones and the
#: mouth corners; and the nose tip, on the midline.
FACE_PAIRS = ((0, 3), (1, 2), (5, 6))
FACE_NOSE = 4
#: The plane needs at least this many of the pairs on the mesh, its normal within MAX_TILT_DEG of the head's
#: left-right axis (a plane across the face is a bad find), and outer eye corners 4–14 cm apart (9 cm on an adult;
#: a face near profile lands its far eye corners short of their places, next to the nose).
MIN_PAIRS = 2
MAX_TILT_DEG = 25.0
EYE_SPAN_M = (0.04, 0.14)
#: Only a face turned from the camera by about 15° or more (:func:`face_turn` of at least TURN_MIN) has a far half:
#: one seen head-on keeps its photo on both halves.
TURN_MIN = 0.15
#: A point of the face's far half takes its mirror image's colour fully when its quality
#: (photo weight × cosine to the camera) is at most RATIO_FULL × its mirror image's, not at all from RATIO_NONE,
#: and only where the mirror image's quality is at least MIN_DONOR (seen within about 65° of head-on).
RATIO_FULL = 0.5
RATIO_NONE = 0.8
MIN_DONOR = 0.4
#: The weights are averaged over the head's mesh this many rounds (no jagged edge where the copy takes over: 4
#: left one along rendered subject_101's hair framing the far cheek).
SMOOTH_ROUNDS = 12


def reflect(points: np.ndarray, side: np.ndarray, centre: float) -> np.ndarray:
    """``points`` (N, 3) mirrored through the plane of unit normal ``side`` (3,) at offset ``centre`` along it."""
    return points - 2.0 * ((points @ side) - centre)[:, None] * side


@dataclass
class FaceMirror:
    """Where the far half of a face takes its near half's colours: ``weight`` (N,) per vertex in [0, 1], ``side``
    (3,) unit normal of the mirror plane and ``centre`` its offset along it (rest pose, metres); ``colours`` (N, 3)
    the photo colour at each weighted vertex's mirror image (0 elsewhere). ``rest``/``posed`` (N, 3) the mesh in
    the rest pose and in the photo's, ``faces`` (M, 3); ``halves`` the closest-point queries of the face's −side
    and +side halves, each with the mesh's ids of its faces (None: no face there); ``camera`` and ``photo`` (H, W, 3)
    what the colours are read from."""

    weight: np.ndarray
    side: np.ndarray
    centre: float
    colours: np.ndarray
    rest: np.ndarray
    posed: np.ndarray
    faces: np.ndarray
    halves: tuple[tuple[MeshQuery, np.ndarray] | None, tuple[MeshQuery, np.ndarray] | None]
    camera: Camera
    photo: np.ndarray

    def reflect(self, points: np.ndarray) -> np.ndarray:
        """``points`` (N, 3) mirrored through the plane."""
        return reflect(points, self.side, self.centre)

    def sample(self, rest_points: np.ndarray) -> np.ndarray:
        """(N, 3) float32 photo colours at the mirror images of rest-pose ``rest_points`` (N, 3): each image moved
        onto the nearest surface of the other half of the face, posed, projected and read from the photo."""
        out = np.zeros((len(rest_points), 3), dtype=np.float32)
        lateral = rest_points @ self.side - self.centre
        for sign, half in ((1.0, self.halves[0]), (-1.0, self.halves[1])):  # points on +side read the −side half
            sel = np.nonzero(np.sign(lateral) == sign)[0]
            if half is None or not len(sel):
                continue
            query, face_ids = half
            hit = query.query(self.reflect(rest_points[sel]))
            corners = self.faces[face_ids[hit.face]]
            posed = barycentric_blend(hit.bary, corners, self.posed)
            xy, _ = self.camera.project(posed)
            out[sel] = bilinear(self.photo, xy)
        return out


def face_points_on_mesh(face_px: np.ndarray, front_face: np.ndarray, camera: Camera, posed: np.ndarray,
                        rest: np.ndarray, faces: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(K, 3) rest-pose points of the photo's face points ``face_px`` (K, 2+) processing px: the surface the photo
    shows at each pixel (``front_face`` (H·W,) nearest face per pixel, −1 none, of ``posed`` (N, 3) with ``faces``
    (M, 3)), carried to ``rest`` (N, 3) by its barycentrics; NaN where the pixel shows no head face."""
    out = np.full((len(face_px), 3), np.nan)
    for k, (x, y) in enumerate(np.asarray(face_px, dtype=np.float64)[:, :2]):
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= col < camera.width and 0 <= row < camera.height):
            continue
        fid = int(front_face[row * camera.width + col])
        if fid < 0 or (parts[faces[fid]] != PART_HEAD).any():
            continue
        corners = camera.project(posed[faces[fid]])[0]
        a, b, c = corners
        m = np.column_stack([b - a, c - a])
        if abs(np.linalg.det(m)) < 1e-12:
            continue
        u, w = np.linalg.solve(m, np.array([x, y]) - a)
        bary = np.clip(np.array([1.0 - u - w, u, w]), 0.0, 1.0)
        out[k] = (bary / bary.sum()) @ rest[faces[fid]]
    return out


def face_mirror_plane(points: np.ndarray, forward: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(unit normal (3,), offset along it) of the face's mirror plane from its rest-pose face points ``points``
    (7, 3) (NaN rows: not on the mesh): normal along the pairs' right-to-left directions (kept level), offset the
    median of the pairs' midpoints and the nose tip; None when too few pairs lie on the mesh or the plane is
    implausible (:data:`MIN_PAIRS`, :data:`MAX_TILT_DEG`, :data:`EYE_SPAN_M`)."""
    up = np.array([0.0, 1.0, 0.0])
    head_side = np.cross(up, np.asarray(forward, dtype=np.float64))
    head_side /= np.linalg.norm(head_side)
    pairs = [(r, left) for r, left in FACE_PAIRS if np.isfinite(points[[r, left]]).all()]
    if len(pairs) < MIN_PAIRS:
        return None
    outer = FACE_PAIRS[0]
    if np.isfinite(points[list(outer)]).all():
        span = float(np.linalg.norm(points[outer[1]] - points[outer[0]]))
        if not EYE_SPAN_M[0] <= span <= EYE_SPAN_M[1]:
            return None
    direction = sum((points[left] - points[r]) / max(np.linalg.norm(points[left] - points[r]), 1e-9)
                    for r, left in pairs)
    direction = direction - (direction @ up) * up
    norm = float(np.linalg.norm(direction))
    if norm < 1e-9 or np.degrees(np.arccos(np.clip(direction @ head_side / norm, -1.0, 1.0))) > MAX_TILT_DEG:
        return None
    side = direction / norm
    mids = [0.5 * (points[r] + points[left]) @ side for r, left in pairs]
    if np.isfinite(points[FACE_NOSE]).all():
        mids.append(points[FACE_NOSE] @ side)
    return side, float(np.median(mids))


def face_turn(face_px: np.ndarray) -> float:
    """How far the photo's face is turned, from its face points ``face_px`` (7, 2+) processing px: along the eye
    line (outer corners, right to left: the face's left-right axis in the image, however the head is rolled), the
    mean over the pairs (eye corners, mouth corners) of (s_left + s_right) / (s_left − s_right), s each point's
    position from the nose tip. 0 for a face seen head-on; the nose, in front of the eyes and the mouth, moves
    towards the far side as the face turns (about 0.2 at 20°, 0.65 at 50°, above 1 once the nose passes the far
    eye's outer corner); positive when the face's left half is the nearer one (the camera on its left)."""
    xy = np.asarray(face_px, dtype=np.float64)[:, :2]
    axis = xy[FACE_PAIRS[0][1]] - xy[FACE_PAIRS[0][0]]
    if np.linalg.norm(axis) < 1e-9:
        return 0.0
    s = (xy - xy[FACE_NOSE]) @ (axis / np.linalg.norm(axis))
    out = [(s[left] + s[r]) / (s[left] - s[r]) for r, left in FACE_PAIRS if s[left] - s[r] > 1e-9]
    return float(np.mean(out)) if out else 0.0


def plan_face_mirror(rest: np.ndarray, posed: np.ndarray, faces: np.ndarray, parts: np.ndarray,
                     quality: np.ndarray, region: np.ndarray, plane: tuple[np.ndarray, float], turn: float,
                     camera: Camera, photo: np.ndarray) -> FaceMirror | None:
    """Which vertices of the face take their mirror image's photo colour, and how much (:class:`FaceMirror`).

    ``rest``/``posed`` (N, 3) the mesh in the rest pose and in the photo's; ``quality`` (N,) how well the photo
    shows each vertex (photo weight × cosine to the camera); ``region`` (N,) bool the face (head vertices in front
    of the ears and below the skull); ``plane`` from :func:`face_mirror_plane`; ``turn`` from :func:`face_turn`:
    only the far half of a face turned by at least :data:`TURN_MIN` takes colours from its near half (where its
    brightness differs, the mirrored half keeps the near half's light: a darker copy matching the photo's shaded
    far half put rendered subject_102's far cheek 64 RGB off its skin instead of 43). None when nothing is
    mirrored."""
    idx = np.nonzero(region)[0]
    if abs(turn) < TURN_MIN or not len(idx):
        return None
    far_sign = -1.0 if turn > 0 else 1.0  # turned towards the face's right (−side) or its left (+side)
    side, centre = plane
    f = np.asarray(faces, dtype=np.int64)
    head_faces = np.nonzero((parts[f] == PART_HEAD).all(axis=1))[0]
    # the face region grown by a ring, so that the mirror images near its edge still find a surface
    region_faces = head_faces[region[f[head_faces]].any(axis=1)]
    lateral = rest @ side - centre
    face_lateral = lateral[f[region_faces]].mean(axis=1)
    halves = []
    for sign in (-1.0, 1.0):  # the half a point on the other side reads: −side for +side points, then +side
        ids = region_faces[np.sign(face_lateral) == sign]
        if not len(ids):
            halves.append(None)
            continue
        used, compact = np.unique(f[ids], return_inverse=True)  # corner order kept: bary refers to f[ids]
        halves.append((MeshQuery(rest[used], compact.reshape(-1, 3)), ids))
    mirror = FaceMirror(np.zeros(len(rest)), side, centre, np.zeros((len(rest), 3), np.float32), rest, posed, f,
                        (halves[0], halves[1]), camera, photo)
    weight = np.zeros(len(rest))
    sel = idx[np.sign(lateral[idx]) == far_sign]
    half = halves[0] if far_sign > 0 else halves[1]  # a +side point reads the −side half
    if half is None or not len(sel):
        return None
    query, face_ids = half
    hit = query.query(mirror.reflect(rest[sel]))
    donor = np.einsum("nk,nk->n", hit.bary, quality[f[face_ids[hit.face]]])
    ratio = quality[sel] / np.maximum(donor, 1e-6)
    w = np.clip((RATIO_NONE - ratio) / (RATIO_NONE - RATIO_FULL), 0.0, 1.0)
    weight[sel] = np.where(donor >= MIN_DONOR, w, 0.0)
    head = f[head_faces]
    weight = _smooth_on_mesh(weight[:, None], region.astype(np.float64), head, SMOOTH_ROUNDS)[0][:, 0]
    weight = np.where(region, np.clip(weight, 0.0, 1.0), 0.0)
    if not (weight > 1e-3).any():
        return None
    mirror.weight = weight
    on = np.nonzero(weight > 1e-3)[0]
    mirror.colours[on] = mirror.sample(rest[on])
    return mirror
