"""Sampling the photos: a photo seeing the surface (visibility, photo weights, colours), the other photos'
alignment and the blend of several photos.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..camera import Camera
from ..errors import EngineError
from ..geometry.barycentric import barycentric_blend
from ..geometry.image_fields import bilinear
from ..geometry.image_shift import mask_iou, search_shift
from ..geometry.normals import vertex_normals
from .parts import PART_HEAD, PART_LEFT_LEG, PART_RIGHT_LEG, PART_TORSO
from .uv import DepthLayers, depth_layers

#: Photo weight ramp over the cosine between the surface normal and the direction to the camera.
COS_FULL, COS_ZERO = 0.45, 0.12


#: Depth tolerance of the visibility test (metres).
DEPTH_TOLERANCE = 0.01
#: Mask erosion (pixels) before sampling: silhouette pixels often carry background colour.
MASK_EROSION = 2
#: Photo weight above which a vertex counts as seen.
SEEN_ALPHA = 0.3
#: Parts whose hidden side takes the photo's fine detail seen through them (:func:`_see_through_detail`): the legs
#: (trouser stripes, denim); the blur that separates detail from colour (pixels).
DETAIL_PARTS = (PART_LEFT_LEG, PART_RIGHT_LEG)
DETAIL_SIGMA = 3.0
#: The parts a pixel may show for the hips' detail (:func:`_see_through_detail`): the torso and the legs.
TROUSER_BITS = (1 << PART_TORSO) | (1 << PART_LEFT_LEG) | (1 << PART_RIGHT_LEG)
#: Any other part is **busy** — a pattern all over it (stripes, checks), whose hidden side takes the detail seen
#: through it too (:func:`busy_parts`) — when at least BUSY_SHARE of its own pixels lie where at least BUSY_DENSITY
#: of the pixels within BUSY_BOX px show detail stronger than BUSY_DETAIL (0–255, any channel). A print or a logo
#: covers a part's middle, not all of it, and folds are smoother than the detail's blur.
BUSY_DETAIL = 20.0
BUSY_BOX = 9
BUSY_DENSITY = 0.25
BUSY_SHARE = 0.65
#: Parts with fewer own pixels than this are never busy (nor is the head).
BUSY_MIN_PIXELS = 500
#: A busy part's pattern: its pixels in dense detail whose blurred colour lies within this (RGB, 0–255) of the
#: median over them (a shirt's stripes; not the jeans' waistband, button and pocket that its lowest band shows).
BUSY_COLOUR_RADIUS = 60.0
#: Per-part visibility (:func:`_photo_weight`): a point is not seen within this many pixels of another part's surface
#: in the photo (outlines mix both parts' colours); how far along the mesh it may show through another part's
#: surface is :data:`.bake.CONTACT_RADIUS`.
CONTACT_PIXELS = 3
#: Several photos: a surface point's colour is the mean of the photos that see it weighted by
#: photo weight × (quality / best quality) ** BLEND_POWER, quality = cos(view angle) × pixels per metre; the
#: power keeps the sharpest head-on photo dominant while the weights stay continuous (no seam between photos).
BLEND_POWER = 4.0
#: Weight factor of the first photo in that blend: the avatar is posed and framed like it, so its colours land
#: exactly; the other photos see the avatar through their own fits, a few centimetres off (bench/multiview.py,
#: 4 views: front colour error 5.9 → 4.9 with 4 instead of 1, the back unchanged).
FIRST_PHOTO_QUALITY = 4.0
#: Several photos: each other photo is read shifted by the 2-D offset between its person mask and the avatar's
#: silhouette in its camera (:func:`silhouette_shift`; the joint fit places the avatar a few pixels off in the
#: other photos), at most ALIGN_MAX_SHIFT × the photo's height, used when it lowers the outlines' chamfer distance
#: by ALIGN_MIN_GAIN.
ALIGN_MAX_SHIFT = 0.04
ALIGN_MIN_GAIN = 0.15
#: Several photos: each photo's blend weight (:func:`_blend_weights`) is also scaled by (its registration / the
#: best photo's) ** REGISTRATION_POWER, its registration the IoU of the mesh's silhouette in its camera (after its
#: silhouette shift) with its person mask (:func:`_registration`): a photo whose fit places the avatar worse reads
#: more colours off their surface point (bench/multiview.py, 4 views, 3 subjects: side photos IoU 0.87–0.93 against
#: the front's 0.96; 30 takes the back colour error 9.82 → 9.41 and the front's 5.11 → 4.60; docs/multiview.md).
#: Not used when a photo has no person mask (all weigh 1). ``stats["photo_registration"]`` lists the IoUs.
REGISTRATION_POWER = 30.0


@dataclass
class PhotoView:
    """Another photo of the textured mesh (several photos of one person): ``vertices`` (N, 3) the same mesh (same
    faces) posed as in that photo, in its bundle world (metres); ``photo_rgb`` (H, W, 3) uint8 processing photo;
    ``mask`` (H, W) bool person pixels (None: all); ``camera`` its OpenCV camera (processing pixels)."""

    vertices: np.ndarray
    photo_rgb: np.ndarray
    mask: np.ndarray | None
    camera: Camera


def _ramp(cos: np.ndarray) -> np.ndarray:
    return np.clip((cos - COS_ZERO) / (COS_FULL - COS_ZERO), 0.0, 1.0)


@dataclass
class _View:
    """What the camera sees: layers, eroded mask, photo; ``face_part`` (M,) the body part of each face (with
    ``vertex_parts``), for the per-part visibility test of :func:`_photo_weight`; ``part_bits`` (H·W,) int the
    parts whose surface is the nearest one within :data:`CONTACT_PIXELS` of each pixel (bit p: part p)."""

    layers: DepthLayers
    mask: np.ndarray
    photo: np.ndarray
    camera: Camera
    face_part: np.ndarray | None = None
    part_bits: np.ndarray | None = None
    #: (dx, dy) pixels: the photo's person lies this far from the mesh's projection (:func:`silhouette_shift`);
    #: photo and mask are read there.
    shift: np.ndarray = field(default_factory=lambda: np.zeros(2))
    #: IoU of the mesh's silhouette (after :attr:`shift`) with the person mask (several photos).
    registration: float = 1.0
    #: (blurred photo, where it holds) once :func:`_photo_blur` has made it.
    blur: tuple[np.ndarray, np.ndarray] | None = None
    #: (H, W) int: the busy part whose pattern each pixel shows, −1 for none (:func:`busy_parts`), once it has run.
    pattern_part: np.ndarray | None = None
    #: The busy parts' labels (:func:`busy_parts`), once it has run.
    busy: tuple[int, ...] = ()
    #: (H·W,) bool: pixels whose photo colour a rule judged another part's (:func:`foreign_pixels`): their detail
    #: is not seen through (:func:`_see_through_detail`). None: none.
    foreign: np.ndarray | None = None

    def set_parts(self, face_part: np.ndarray) -> None:
        """Label the view's faces with body parts and find which parts show at or next to each pixel."""
        self.face_part = face_part
        front = self.layers.face
        shown = np.where(front >= 0, face_part[np.maximum(front, 0)], -1).reshape(self.camera.height, -1)
        import cv2

        bits = np.zeros(shown.shape, dtype=np.int64)
        grow = np.ones((2 * CONTACT_PIXELS + 1,) * 2, dtype=np.uint8)
        for part in np.unique(shown[shown >= 0]):
            near = cv2.dilate((shown == part).astype(np.uint8), grow)
            bits |= near.astype(np.int64) << int(part)
        self.part_bits = bits.reshape(-1)


#: :func:`foreign_pixels`: each dropped sample's pixel grows to a square of this many pixels either side: the
#: photo's detail (the photo less its blur of :data:`DETAIL_SIGMA` px) rings about that far round an edge between
#: the dropped colour and the kept one (and the vertices' pixels lie 1–3 px apart on a standard avatar).
FOREIGN_GROW_PIXELS = int(np.ceil(2 * DETAIL_SIGMA))


def foreign_pixels(view: _View, points: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """(H·W,) bool: the pixels of the surface points ``points`` (N, 3) whose photo sample a rule dropped
    (``dropped`` (N,) bool: it shows another part), each grown by :data:`FOREIGN_GROW_PIXELS`."""
    import cv2

    cam = view.camera
    out = np.zeros(cam.height * cam.width, dtype=np.uint8)
    _, _, inside, pix = _pixels(cam, points)
    out[pix[dropped & inside]] = 1
    grow = np.ones((2 * FOREIGN_GROW_PIXELS + 1,) * 2, dtype=np.uint8)
    return cv2.dilate(out.reshape(cam.height, cam.width), grow).reshape(-1).astype(bool)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """The person mask (H, W) bool eroded by ``steps`` pixels (4-connected steps, as
    ``ndimage.binary_erosion(mask, iterations=steps)``; the mask is kept as is when it has ≤ 100 pixels)."""
    import cv2

    if mask.sum() <= 100:
        return mask
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = cv2.erode(mask.astype(np.uint8), cross, iterations=steps, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)


def _pixels(cam: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World points (N, 3) → (pixel coordinates (N, 2), camera depth (N,), in front and inside the image (N,),
    flat pixel index row · width + column (N,), 0 where not inside)."""
    xy, z = cam.project(points)
    return (xy, z, *_pixel_index(cam, xy, z))


def _pixel_index(cam: Camera, xy: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected points (pixel coordinates (N, 2), camera depth (N,)) → (in front and inside the image (N,), flat
    pixel index row · width + column (N,), 0 where not inside)."""
    col, row = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
    inside = (z > 1e-4) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
    return inside, np.where(inside, row * cam.width + col, 0)


def _view_cos(cam: Camera, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N,) cosine between unit ``normals`` (N, 3) and the direction from world ``points`` (N, 3) to the camera."""
    to_cam = cam.center[None] - points
    return np.einsum("ij,ij->i", normals, to_cam) / np.maximum(np.sqrt(np.einsum("ij,ij->i", to_cam, to_cam)),
                                                               1e-12)


@dataclass
class _Projected:
    """Surface points as one camera sees them: pixel coordinates (N, 2), camera depth (N,) metres, cosine of the
    view angle (N,) (what :func:`_photo_weight` computes from world points and unit normals)."""

    xy: np.ndarray
    z: np.ndarray
    cos: np.ndarray


def _project_interpolated(cam: Camera, per_vertex_cam: np.ndarray, faces: np.ndarray,
                          bary: np.ndarray) -> _Projected:
    """:class:`_Projected` of points inside faces (``faces`` (T, 3) vertex ids, ``bary`` (T, 3) barycentrics) from
    the vertices' camera-frame positions and normals ``per_vertex_cam`` (N, 6) (:meth:`Camera.to_camera`, R · n).

    The point's camera-frame position is the barycentric blend of its corners' (the world → camera map is affine),
    so nothing is projected twice; the normal is the blend of the corners' normals, normalised (as
    :func:`_photo_weight`'s callers do in the world frame: a rotation changes neither length nor cosine). Float32."""
    g = barycentric_blend(bary, faces, per_vertex_cam)
    p, n = g[:, :3], g[:, 3:]
    z = p[:, 2]
    K = np.asarray(cam.K, dtype=np.float32)
    zs = np.maximum(z, np.float32(1e-9))
    xy = np.stack([(K[0, 0] * p[:, 0] + K[0, 1] * p[:, 1]) / zs + K[0, 2], K[1, 1] * p[:, 1] / zs + K[1, 2]], axis=1)
    # camera at the origin: cos = n · (−p) / (|n| |p|)
    norm = np.sqrt(np.einsum("ij,ij->i", n, n) * np.einsum("ij,ij->i", p, p))
    cos = -np.einsum("ij,ij->i", n, p) / np.maximum(norm, np.float32(1e-12))
    return _Projected(xy, z, cos)


def _photo_weight(view: _View, points: np.ndarray | None, normals: np.ndarray | None,
                  allowed: np.ndarray | None = None,
                  projected: _Projected | None = None,
                  offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Photo weight in [0, 1] of surface points (N, 3) with unit normals, and their pixel coordinates (N, 2).

    ``allowed`` (N,) int bit masks (bit p: part p, :func:`_near_parts`): with the view's parts
    (:meth:`_View.set_parts`), a point only counts as seen when every part whose surface is the nearest one at or
    within :data:`CONTACT_PIXELS` of its pixel is one it allows (its own, or one next to it on the mesh). Where
    two parts touch (a hand on the head, an arm against the torso), the hidden one passes the depth test but the
    pixel shows the other, and along the outline of a part in front of another the photo's pixels mix both (a
    raised arm a few pixels off the photo's arm sees the hair behind it): without this, it would take their
    colour instead of its own part's fill. ``projected``: the points' :class:`_Projected` when already at hand
    (then ``points`` and ``normals`` are not read). ``offset`` (N, 2) pixels: each point reads the photo and the
    mask this far from its projection (:func:`limb_alignment`), as it does the view's :attr:`_View.shift`."""
    cam = view.camera
    if projected is None:
        xy, z = cam.project(points)
        cos = _view_cos(cam, points, normals)
    else:
        xy, z, cos = projected.xy, projected.z, projected.cos
    inside, pix = _pixel_index(cam, xy, z)
    vis = inside & (z <= view.layers.zbuf[pix] + DEPTH_TOLERANCE)
    shift = view.shift[None] if offset is None else view.shift[None] + offset
    if np.any(shift):  # the photo is read where its person lies (several photos: each one's registration)
        xy = xy + shift
        col, row = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
        on = (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
        vis &= on & view.mask.reshape(-1)[np.where(on, row * cam.width + col, 0)]
    else:
        vis &= view.mask.reshape(-1)[pix]
    if allowed is not None and view.part_bits is not None:
        vis &= (view.part_bits[pix] & ~allowed) == 0
    return np.where(vis, _ramp(cos), 0.0), xy


def _photo_detail(view: _View) -> tuple[np.ndarray, np.ndarray]:
    """The photo's fine detail inside the person: (photo − its Gaussian blur (:func:`_photo_blur`) (H, W, 3)
    float32, where it holds (H, W) bool: the mask eroded by 2σ)."""
    blur, where = _photo_blur(view)
    return view.photo - blur, where


def _photo_blur(view: _View) -> tuple[np.ndarray, np.ndarray]:
    """(the photo's Gaussian blur of :data:`DETAIL_SIGMA` px taken over the person's pixels only (H, W, 3) float32,
    where it holds (H, W) bool: the mask eroded by 2σ). Cached on ``view``."""
    if view.blur is not None:
        return view.blur
    import cv2

    h, w = view.camera.height, view.camera.width
    inside = view.mask.reshape(h, w).astype(np.float32)
    blur = cv2.GaussianBlur(view.photo * inside[..., None], (0, 0), DETAIL_SIGMA)
    weight = cv2.GaussianBlur(inside, (0, 0), DETAIL_SIGMA)
    view.blur = (blur / np.maximum(weight, 1e-6)[..., None], _erode(view.mask.reshape(h, w),
                                                                    int(np.ceil(2 * DETAIL_SIGMA))))
    return view.blur


def busy_parts(view: _View, part_count: int) -> np.ndarray:
    """(P,) bool per part label: a pattern covers the part's pixels in the photo (stripes, checks: see
    :data:`BUSY_SHARE`; never the head, nor the :data:`DETAIL_PARTS`, which take the detail anyway). Records them
    in ``view.busy`` and each one's pattern pixels (:data:`BUSY_COLOUR_RADIUS`) in ``view.pattern_part``, where
    :func:`_see_through_detail` takes their detail from. Needs the view's part labels (:meth:`_View.set_parts`);
    all False without them."""
    import cv2

    out = np.zeros(part_count, dtype=bool)
    if view.part_bits is None:
        return out
    detail, where = _photo_detail(view)
    strong = (np.abs(detail).max(axis=2) > BUSY_DETAIL).astype(np.float32)
    busy = cv2.blur(strong, (BUSY_BOX, BUSY_BOX)) >= BUSY_DENSITY
    blur = _photo_blur(view)[0]
    bits = view.part_bits.reshape(where.shape)
    view.pattern_part = np.full(where.shape, -1, dtype=np.int64)
    for part in range(part_count):
        if part == PART_HEAD or part in DETAIL_PARTS:  # hair strands are detail too: no face on the back
            continue
        own = (bits == (1 << part)) & where
        if own.sum() < BUSY_MIN_PIXELS or busy[own].mean() < BUSY_SHARE:
            continue
        out[part] = True
        dense = own & busy
        mean = np.median(blur[dense], axis=0)
        dense[dense] = np.linalg.norm(blur[dense] - mean, axis=1) < BUSY_COLOUR_RADIUS
        view.pattern_part[dense] = part
    view.busy = tuple(int(p) for p in np.nonzero(out)[0])
    return out


def detail_parts(view: _View) -> tuple[int, ...]:
    """The parts whose hidden side takes the detail seen through them: :data:`DETAIL_PARTS` and the view's busy
    parts (:func:`busy_parts`)."""
    return (*DETAIL_PARTS, *view.busy)


def _see_through_detail(view: _View, points: np.ndarray, point_part: np.ndarray,
                        hips: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) float32 detail to add to the fill of surface points (N, 3) of :func:`detail_parts` (the legs, and
    busy parts: :func:`busy_parts`): the photo's fine detail (:func:`_photo_detail`) at each point's pixel where that
    pixel shows the point's own part and no other within :data:`CONTACT_PIXELS` (the front of the same leg, seen
    through it). ``hips`` (N,) bool: torso points below the legs' top (the trousers' seat and hips, which the fill
    gives the legs' garment, :func:`~icon_engine.texture.fill._hips_from_legs`) take it too, where their pixel
    shows the torso or the legs and nothing else (the seat's back is otherwise the plain V of the pooled profile
    between two striped or denim legs). A trouser's stripes or a denim weave then continue on the back of the leg
    instead of its plain mean colour; the profile keeps the colour. Points of busy parts take it only from their
    part's pattern (:attr:`_View.pattern_part`); where their pixel shows something else (an arm across a striped shirt,
    the jeans' waistband below it) the detail of the nearest pixel of their pattern in the same image row (a
    pattern repeats across its part; the same column when the torso lies across the photo). Zero elsewhere (a plain
    torso and the head: no print or face is copied to the back)."""
    out = np.zeros((len(points), 3), dtype=np.float32)
    sel = np.isin(point_part, detail_parts(view))
    if hips is not None:
        sel |= hips
    if view.part_bits is None or not sel.any():
        return out
    detail, where = _photo_detail(view)
    xy, _, inside, pix = _pixels(view.camera, points[sel])
    part = point_part[sel]
    own = view.part_bits[pix] == (1 << part)
    if hips is not None:  # the hips: the torso, the legs or both at the pixel (the trousers), nothing else
        bits = view.part_bits[pix]
        own |= hips[sel] & (bits != 0) & ((bits & ~TROUSER_BITS) == 0)
    ok = inside & own & where.reshape(-1)[pix]
    if view.foreign is not None:
        ok &= ~view.foreign[pix]
    busy = np.isin(part, view.busy)
    pattern = view.pattern_part
    if busy.any():  # a busy part's detail comes from its pattern only (not a button, a pocket)
        ok &= ~busy | (pattern.reshape(-1)[pix] == part)
    sel_idx = np.nonzero(sel)[0]
    out[sel_idx[ok]] = bilinear(detail, xy[ok])
    # "rows" run across the body: image rows for a person standing up in the photo, columns for one lying across
    # it (a photo taken sideways: rows along the body smeared its stripes into streaks down the back)
    ys, xs = np.divmod(np.nonzero(view.part_bits & (1 << PART_TORSO))[0], where.shape[1])
    across = bool(len(xs)) and np.ptp(xs) > np.ptp(ys)
    for row_part in np.intersect1d(view.busy, part[~ok]):
        todo = np.nonzero(~ok & inside & (part == row_part))[0]
        own_px = pattern == row_part
        grid, part_detail, pts = (own_px.T, detail.transpose(1, 0, 2), xy[todo, ::-1]) if across else \
            (own_px, detail, xy[todo])
        found, row, col = nearest_in_row(grid, pts)
        out[sel_idx[todo[found]]] = part_detail[row, col]
    return out


def nearest_in_row(grid: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For points (N, 2) (x, y) in pixel coordinates with 0 ≤ x < W, the nearest set pixel of ``grid`` (H, W) bool
    in the point's row (the row ``round(y)``, clipped; the left one on a tie): (found (N,) bool: that row has a set
    pixel, its row (F,), its column (F,)) for the F found points."""
    h, w = grid.shape
    keys = np.flatnonzero(grid)  # row · W + column, ascending
    rows = np.clip(np.round(points[:, 1]).astype(np.int64), 0, h - 1)
    start, end = np.searchsorted(keys, rows * w), np.searchsorted(keys, (rows + 1) * w)
    found = end > start
    rows, start, end, x = rows[found], start[found], end[found], points[found, 0]
    k = np.searchsorted(keys, rows * w + x)  # the first set pixel of the row at or right of x
    left = keys[np.maximum(k - 1, start)] - rows * w
    right = keys[np.minimum(k, end - 1)] - rows * w
    return found, rows, np.where(np.abs(x - left) <= np.abs(x - right), left, right)


def _mirror_colours(view: _View, points: np.ndarray, face_colours: np.ndarray,
                    face_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the colour of the first front-facing surface in front of it along its pixel ray, if that
    surface is the visible one (``face_colours`` (M, 3) and ``face_ok`` (M,) per face); returns
    (colours (N, 3), valid (N,) bool)."""
    cam, lay = view.camera, view.layers
    xy, z, inside, pix = _pixels(cam, points)
    sel = lay.front
    fp, fd, ffc = lay.pix[sel], lay.depth[sel], lay.frag_face[sel]
    out = np.zeros((len(points), 3))
    if not len(fp):
        return out, np.zeros(len(points), dtype=bool)
    big = float(np.nanmax(fd)) + 10.0
    key = fp * big + fd
    q = np.searchsorted(key, pix * big + (z - 0.005), side="left") - 1
    ok = inside & (q >= 0)
    q = np.clip(q, 0, len(key) - 1)
    ok &= fp[q] == pix
    ok &= fd[q] <= lay.zbuf[pix] + 1e-4  # that surface is the nearest one: seen in the photo
    ok &= view.mask.reshape(-1)[pix]
    face = ffc[q]
    ok &= face_ok[face]
    out[ok] = face_colours[face[ok]]
    return out, ok


def _other_view(other: PhotoView, n: int, faces_out: np.ndarray,
                device: str = "cpu") -> tuple[_View, np.ndarray, np.ndarray]:
    """(view, posed vertices (N, 3), vertex normals (N, 3)) of another photo of the mesh (``faces_out``: the
    faces wound outward)."""
    pv = np.asarray(other.vertices, dtype=np.float64).reshape(-1, 3)
    rgb = np.asarray(other.photo_rgb)
    cam = other.camera
    if len(pv) != n:
        raise EngineError("internal", f"Another photo's mesh has {len(pv)} vertices, the textured mesh {n}.",
                          "Pose the same mesh into every photo.")
    if rgb.ndim != 3 or (rgb.shape[1], rgb.shape[0]) != (cam.width, cam.height):
        raise EngineError("internal", f"Another photo has shape {rgb.shape}, its camera {cam.width}×{cam.height}.",
                          "Pass each processing photo with the camera its fit used.")
    m = np.ones(rgb.shape[:2], dtype=bool) if other.mask is None else np.asarray(other.mask, dtype=bool)
    eroded = _erode(m, MASK_EROSION)
    view = _View(depth_layers(pv, faces_out, cam, device), eroded, rgb.astype(np.float32), cam)
    if other.mask is not None:
        silhouette = np.isfinite(view.layers.zbuf).reshape(cam.height, cam.width)
        view.shift = silhouette_shift(silhouette, m, int(np.ceil(ALIGN_MAX_SHIFT * cam.height)))
    return view, pv, vertex_normals(pv, faces_out)


def _view_cos_own(view: _View, points: np.ndarray, normals: np.ndarray, faces: np.ndarray,
                  parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cosine of the view angle (N,), own part (N,) bool) of the mesh's vertices ``points`` (N, 3) with unit
    ``normals`` posed as ``view`` sees them: own where the nearest surface at the vertex's pixel belongs to the
    vertex's own part (``parts`` (N,), ``faces`` (M, 3))."""
    to_cam = view.camera.center[None] - points
    cos = np.einsum("ij,ij->i", normals, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-12)
    _, _, inside, pix = _pixels(view.camera, points)
    nearest = view.layers.face[pix]
    return cos, inside & (nearest >= 0) & (parts[faces[np.maximum(nearest, 0), 0]] == parts)


def _outline(mask: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels (K, 2) (column, row) on the outline of a mask (H, W) bool, at most ``limit`` of them (a random
    subset)."""
    import cv2

    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0).astype(bool)
    rows, cols = np.nonzero(mask & ~inner)
    pts = np.stack([cols, rows], axis=1)
    return pts[rng.choice(len(pts), limit, replace=False)] if len(pts) > limit else pts


def silhouette_shift(silhouette: np.ndarray, mask: np.ndarray, max_shift: int) -> np.ndarray:
    """(dx, dy) integer pixels by which the photo's person ``mask`` (H, W) bool lies off the mesh's projected
    ``silhouette`` (H, W) bool: the shift within ± ``max_shift`` minimising the symmetric chamfer distance between
    their outlines (mean distance of each outline's pixels to the other outline's region), found on a 3-pixel grid
    then refined. Zero unless it lowers that distance by :data:`ALIGN_MIN_GAIN` (a fit that already matches, or
    outlines too different for a shift to explain)."""
    import cv2

    if not silhouette.any() or not mask.any() or max_shift < 1:
        return np.zeros(2)
    rng = np.random.default_rng(0)
    sil_pts, mask_pts = _outline(silhouette, 3000, rng), _outline(mask, 3000, rng)
    # distance of every pixel to each region (0 inside)
    to_mask = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    to_sil = cv2.distanceTransform((~silhouette).astype(np.uint8), cv2.DIST_L2, 5)
    h, w = mask.shape
    far = float(max(h, w))

    def cost(shifts: np.ndarray) -> np.ndarray:
        out = np.zeros(len(shifts))
        for pts, field_, sign in ((sil_pts, to_mask, 1), (mask_pts, to_sil, -1)):
            q = pts[None] + sign * shifts[:, None]  # (S, K, 2)
            ok = (q[..., 0] >= 0) & (q[..., 0] < w) & (q[..., 1] >= 0) & (q[..., 1] < h)
            d = np.where(ok, field_[np.clip(q[..., 1], 0, h - 1), np.clip(q[..., 0], 0, w - 1)], far)
            out += d.mean(axis=1)
        return out

    return search_shift(cost, max_shift, step=3, radius=2, min_gain=ALIGN_MIN_GAIN)


def _view_quality(cam: Camera, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N,) cos(view angle) × pixels per metre of surface points (N, 3) with unit normals seen by ``cam``."""
    to_cam = cam.center[None] - points
    dist = np.maximum(np.linalg.norm(to_cam, axis=1), 1e-9)
    cos = np.clip(np.einsum("ij,ij->i", normals, to_cam) / dist, 0.0, 1.0)
    return cos * float(cam.K[0, 0]) / dist


def _blend_weights(alphas: np.ndarray, qualities: np.ndarray, reliability: np.ndarray | None = None) -> np.ndarray:
    """(K, N) blend weights of K photos from their photo weights and view qualities (K, N) (:data:`BLEND_POWER`),
    times each photo's ``reliability`` (K,) in (0, 1] when given (:data:`REGISTRATION_POWER`)."""
    seen_q = np.where(alphas > 0, qualities, 0.0)
    seen_q[0] *= FIRST_PHOTO_QUALITY ** (1.0 / BLEND_POWER)  # the first photo counts FIRST_PHOTO_QUALITY× more
    best = np.maximum(seen_q.max(axis=0, keepdims=True), 1e-12)
    w = alphas * (seen_q / best) ** BLEND_POWER
    return w if reliability is None else w * np.asarray(reliability, dtype=np.float64)[:, None]


def _registration(view: _View) -> float:
    """IoU of the mesh's silhouette in ``view`` moved by its :attr:`_View.shift` with its (eroded) person mask."""
    h, w = view.camera.height, view.camera.width
    sil = np.isfinite(view.layers.zbuf).reshape(h, w)
    dx, dy = int(round(float(view.shift[0]))), int(round(float(view.shift[1])))
    sil = np.roll(np.roll(sil, dy, axis=0), dx, axis=1)
    return mask_iou(sil, view.mask.reshape(h, w))


def _sample_views(views: list[_View], points: list[np.ndarray], normals: list[np.ndarray],
                  gains: np.ndarray | None = None, allowed: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every photo's view of the same surface points (``points``/``normals`` (N, 3) per photo, in its pose):
    (blended colour (N, 3), combined photo weight (N,) = the largest, every photo's photo weight (K, N), every
    photo's colour (K, N, 3) after ``gains`` (:func:`exposure_gains`), every photo's view-angle cosine (K, N)).
    ``allowed``: the points' part masks (:func:`_photo_weight`)."""
    alphas, cols, quals, coss = [], [], [], []
    for k, (view, pts, nrm) in enumerate(zip(views, points, normals, strict=True)):
        a, xy = _photo_weight(view, pts, nrm, allowed)
        c = bilinear(view.photo, xy)
        if gains is not None:
            c = c * gains[k, 0] + gains[k, 1]
        alphas.append(a)
        cols.append(c)
        quals.append(_view_quality(view.camera, pts, nrm))
        to_cam = view.camera.center[None] - pts
        coss.append(np.einsum("ij,ij->i", nrm, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-12))
    alpha, col = np.stack(alphas), np.stack(cols)
    reg = np.array([vw.registration for vw in views])
    w = _blend_weights(alpha, np.stack(quals), (reg / max(float(reg.max()), 1e-12)) ** REGISTRATION_POWER)
    blended = np.einsum("kn,knc->nc", w, col) / np.maximum(w.sum(axis=0), 1e-12)[:, None]
    return blended, alpha.max(axis=0), alpha, col, np.stack(coss)
