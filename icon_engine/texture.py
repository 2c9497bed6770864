"""Texturing the clothed surface from the photo: UV atlas, bake, fill of the hidden side, vertex colours.

Frames and units: vertices in the bundle world (SMPL-X frame, metres); the photo and the camera in processing
pixels (OpenCV camera, pixel (i, j) covers [i, i+1) × [j, j+1)); UVs per face corner in [0, 1] with the origin
at the bottom-left (Blender/OBJ), texel row ``r`` of the image covers v ∈ [1 − (r+1)/S, 1 − r/S).

Method (docs/texture_rig.md):

1. **Atlas.** ``xatlas`` with fast settings (one chart-growing iteration, random chart placement, 4×4 block
   alignment) packs the charts into one S × S atlas with a few texels of padding; meshes above
   :data:`XATLAS_MAX_FACES` get the faster projection atlas (:func:`projection_atlas`).
2. **Visibility.** A numpy z-buffer of the mesh seen by the photo's camera (perspective-correct depth). A
   surface point is visible when it is the nearest one at its pixel (within a tolerance) and inside the
   (slightly eroded) person mask; with ``vertex_parts``, also only where the pixel (and its neighbourhood of
   :data:`CONTACT_PIXELS`) shows its own part or one next to it on the mesh (a part touching another does not
   take its colour). Its photo weight ramps with the view angle, so grazing surfaces (which would smear) fade
   into the fill colour.
3. **Fill of the hidden side, per body part** (with ``vertex_parts``, e.g. from the skin weights): a hidden
   vertex takes its own part's garment colour at the same position along the part (measured in the rest pose
   when ``rest_vertices`` is given; the colour cluster that runs along the part wins over a print that fills one
   band: the back of a shirt gets the shirt, a heel the shoe), the back of the head the hair colour (clustered
   from the head's seen colours), and a band along the seen side's edge is blended harmonically on the part's
   own mesh graph (no seam, no colour from another part). The legs' hidden texels add the photo's fine detail
   seen through the leg (stripes, denim).
   **Without parts** (mirroring through the body): a hidden vertex looks towards the camera through the body:
   the first front-facing surface in front of it along its pixel ray is the front of the same body part (the back of the
   torso sees the front of the torso, not the arm in front of it). If that surface is visible, the vertex takes
   that surface's colour, smoothed over the mesh first (no copied details: no face on the back of the head, and
   no colour bleeding from a neighbouring object as an image blur would). Vertices that get neither a photo
   nor a mirrored colour are filled by harmonic diffusion of the known colours over the mesh (Laplace equation
   on the surface), so there is no black and no seam.
4. **Bake.** Every texel covered by a face gets the photo colour of its 3-D point, blended by its photo weight
   with the barycentric fill colour of its face; islands are then dilated by a few texels so bilinear lookups
   across seams stay clean, and the remaining empty texels take the mean colour.
5. **Several photos** (``more_views``: the same mesh posed as in each other photo, with its photo, mask and
   camera). Every vertex and texel is sampled in every photo (visibility and view-angle ramp as in 2.) and takes the
   mean of the photos that see it, each weighted by its photo weight × (its quality / the best photo's quality) **
   :data:`BLEND_POWER`, quality = cos(view angle) × pixels per metre: the photo that sees a point best dominates and
   the weights stay continuous, so there is no cut where one photo takes over from another. Before blending, each
   photo's colours are mapped onto the first photo's exposure by a per-channel gain, solved jointly over every
   pair of photos from pairs of points both see (the same point where they overlap, the nearest seen point within
   :data:`EXPOSURE_RADIUS_M` across the seam where they do not: front and back photos) (:func:`exposure_gains`).
   Each other photo is read at its 2-D offset from the avatar's silhouette (:func:`silhouette_shift`). Only what
   no photo sees goes to the fill of 3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .camera import Camera
from .errors import EngineError
from .geometry.device import on_device
from .geometry.image_shift import mask_iou, search_shift
from .geometry.laplacian import adjacency, mesh_laplacian
from .geometry.normals import face_normals, signed_volume, vertex_normals
from .geometry.raster import fragments
from .mesh_queries import rasterize as mesh_rasterize
from .threads import in_background, map_rows

#: Photo weight ramp over the cosine between the surface normal and the direction to the camera.
COS_FULL, COS_ZERO = 0.45, 0.12
#: Depth tolerance of the visibility test (metres).
DEPTH_TOLERANCE = 0.01
#: Mask erosion (pixels) before sampling: silhouette pixels often carry background colour.
MASK_EROSION = 2
#: Smoothing length of the front colours the hidden side mirrors, as a fraction of the mesh's height.
MIRROR_BLUR = 0.05
#: Texels of dilation around each island.
DILATE_TEXELS = 6
#: Atlas padding (texels) between charts.
ATLAS_PADDING = 4

#: Body-part labels of ``vertex_parts`` (see :func:`parts_from_skin_weights`): the hidden side of a vertex only
#: takes colours from vertices with the same label.
PART_TORSO, PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG, PART_HEAD = range(6)
PART_NAMES = ("torso", "left_arm", "right_arm", "left_leg", "right_leg", "head")
#: SMPL-X joints that start each part; a joint belongs to the part of its nearest listed ancestor (the pelvis,
#: spine and collars: torso). The neck goes with the head: the torso's colour profile then stops at the collar.
_PART_ROOTS = {"left_shoulder": PART_LEFT_ARM, "right_shoulder": PART_RIGHT_ARM, "left_hip": PART_LEFT_LEG,
               "right_hip": PART_RIGHT_LEG, "neck": PART_HEAD}
#: Photo weight above which a vertex counts as seen.
SEEN_ALPHA = 0.3
#: Parts whose hidden side takes the photo's fine detail seen through them (:func:`_see_through_detail`): the legs
#: (trouser stripes, denim); the blur that separates detail from colour (pixels).
DETAIL_PARTS = (PART_LEFT_LEG, PART_RIGHT_LEG)
DETAIL_SIGMA = 3.0
#: Per-part visibility (:func:`_photo_weight`): a point may show through the surface of another part only within
#: this distance along the mesh (metres) of that part (the part boundaries: shoulders, neck, hips).
CONTACT_RADIUS = 0.03
#: ... and not within this many pixels of another part's surface in the photo (outlines mix both parts' colours).
CONTACT_PIXELS = 3
#: Window (fraction of the mesh's height) of the colour profile along a part's axis that fills its hidden side.
PROFILE_WINDOW = 0.02
#: Visible vertices a profile window takes at least (it widens where the part shows fewer).
PROFILE_MIN_SAMPLES = 10
#: Exponent of the profile's preference for seen samples towards the silhouette: weight (1.05 − cos)^p.
SIDE_WEIGHT_POWER = 1.0
#: Colour clusters of a part's seen samples (:func:`_colour_clusters`): at most this many, and clusters whose centres
#: are closer than PROFILE_CLUSTER_MERGE (RGB, 0–255) are one.
PROFILE_CLUSTERS = 6
PROFILE_CLUSTER_MERGE = 45.0
#: RGB radius (0–255) around the winning cluster's median whose samples set the profile colour (plain median).
PROFILE_MODE_RADIUS = 90.0
#: Share of a profile window's (side-weighted) samples from which a colour cluster counts as present there.
PROFILE_MIN_SHARE = 0.2
#: At each position the cluster with the largest share × persistence ** PROFILE_PERSISTENCE_POWER wins: a garment
#: seen along most of the part beats a print that covers most of one band.
PROFILE_PERSISTENCE_POWER = 2.0
#: A window is a pattern (its colour: the mean of the steady clusters) when two or more clusters with persistence
#: ≥ PATTERN_PERSISTENCE are present and the winner holds less than PATTERN_SHARE of it.
PATTERN_PERSISTENCE = 0.6
PATTERN_SHARE = 0.7
#: A profile sample in the photo's shadow (:mod:`icon_engine.lighting`: brightness below the median, factor < 1)
#: weighs factor ** SHADOW_POWER (:func:`unseen_side_fill`).
SHADOW_POWER = 2.0
#: Width (fraction of the mesh's height) of the band between the seen and the filled side that is blended
#: harmonically, so the front/back boundary shows no seam.
SEAM_BAND = 0.025
#: The head part's lower part (fraction of its height from its lowest point: the neck) keeps the profile fill;
#: above it the hidden side takes the hair colour.
HAIR_FROM = 0.3
#: Hidden head vertices facing the camera more than this (cosine of the view angle) keep the profile, not the hair:
#: the front of a face the photo's frame cut off (icon_003883) is skin, its back and sides hair.
HAIR_MAX_COS = 0.3
#: ... below this fraction of the head's height from its lowest point (above it, the skull: hair all round).
HAIR_SKULL = 0.75
#: Smallest RGB distance (0–255) between the head's hair and face-skin colour clusters for a distinct hair colour.
HAIR_MIN_CONTRAST = 20.0
#: Several photos: a surface point's colour is the mean of the photos that see it weighted by
#: photo weight × (quality / best quality) ** BLEND_POWER, quality = cos(view angle) × pixels per metre; the
#: power keeps the sharpest head-on photo dominant while the weights stay continuous (no seam between photos).
BLEND_POWER = 4.0
#: Weight factor of the first photo in that blend: the avatar is posed and framed like it, so its colours land
#: exactly; the other photos see the avatar through their own fits, a few centimetres off (bench/multiview.py,
#: 4 views: front colour error 5.9 → 4.9 with 4 instead of 1, the back unchanged).
FIRST_PHOTO_QUALITY = 4.0
#: Exposure equalisation (:func:`exposure_gains`): points count when a photo's weight exceeds EXPOSURE_ALPHA; a
#: point is paired with the nearest point another photo sees within EXPOSURE_RADIUS_M (metres); fewest pairs for
#: a least-squares gain (fewer give the ratio of medians).
EXPOSURE_ALPHA = 0.02
EXPOSURE_RADIUS_M = 0.06
MIN_OVERLAP = 40
#: Pairs count only when both photos see their points at view-angle cosines this close (camera-fixed shading).
EXPOSURE_COS_BAND = 0.15
#: Range of the gains (about ± half a stop: cameras' auto-exposure between shots of one session); beyond it the
#: difference is lighting that follows the camera (a person turning in front of a fixed light), which a gain would
#: only move to the wrong side (bench/multiview.py's renders: back photo ×0.56).
GAIN_RANGE = (0.7, 1.45)
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
class Texture:
    """The baked texture: ``uv`` (M, 3, 2) per-corner UVs in [0, 1] (origin bottom-left), ``image`` (S, S, 3)
    uint8, ``vertex_colors`` (N, 3) uint8, ``stats`` diagnostics (JSON-friendly)."""

    uv: np.ndarray
    image: np.ndarray
    vertex_colors: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
    #: ``bake_texture(..., debug=True)``: what the first photo's visibility step found (:class:`BakeDebug`).
    debug: BakeDebug | None = None


@dataclass
class BakeDebug:
    """The first photo's visibility step of one bake, for diagnosis sheets (``bench/texture_hidden.py``):
    ``front_face`` (H·W,) the nearest face per pixel (−1: none) and ``zbuf`` (H·W,) its depth (metres, camera
    frame), faces wound outward (``faces_out`` (M, 3)); per vertex ``photo_weight`` (N,) before the keep rules and
    ``kept`` (N,) bool which samples they kept (all True without them), ``pixel_xy`` (N, 2) where each vertex reads
    the photo (limb alignment included)."""

    front_face: np.ndarray
    zbuf: np.ndarray
    faces_out: np.ndarray
    photo_weight: np.ndarray
    kept: np.ndarray
    pixel_xy: np.ndarray


@dataclass
class PhotoView:
    """Another photo of the textured mesh (several photos of one person): ``vertices`` (N, 3) the same mesh (same
    faces) posed as in that photo, in its bundle world (metres); ``photo_rgb`` (H, W, 3) uint8 processing photo;
    ``mask`` (H, W) bool person pixels (None: all); ``camera`` its OpenCV camera (processing pixels)."""

    vertices: np.ndarray
    photo_rgb: np.ndarray
    mask: np.ndarray | None
    camera: Camera


# ----------------------------------------------------------------------------------------------------------------
# Rasterisation (fragments from icon_engine.geometry.raster)


@dataclass
class DepthLayers:
    """Every surface fragment seen by a camera, sorted by (pixel, depth). ``zbuf`` (H·W,) nearest depth (inf =
    background), ``face`` (H·W,) nearest face (−1 = background); ``pix``/``depth``/``front``/``frag_face`` per
    fragment."""

    zbuf: np.ndarray
    face: np.ndarray
    pix: np.ndarray
    depth: np.ndarray
    front: np.ndarray
    frag_face: np.ndarray
    width: int
    height: int


def depth_layers(vertices: np.ndarray, faces: np.ndarray, camera: Camera, device: str = "cpu") -> DepthLayers:
    """Rasterise the mesh (bundle world) in ``camera``: z-buffer plus all fragments (depth-peeling queries).

    Deliberately not :func:`icon_engine.render.rasterize`: the mirror query peels every camera-facing fragment
    along a pixel ray, which render's nearest/farthest layers cannot give, and the z-buffer comes free from the
    same fragments (an extra render pass measured +0.1 s per bake on the sample photo). Same pixel-centre
    convention as render (centre of pixel (i, j) at (i + 0.5, j + 0.5)); tests/test_texture.py checks they agree.
    """
    pix2d, z = camera.project(vertices)
    f = np.asarray(faces, dtype=np.int64)
    ok = (z[f] > 1e-4).all(axis=1)
    fid = np.nonzero(ok)[0]
    frag_f, frag_p, bary = _fragments(pix2d[f[fid]], camera.width, camera.height, device)
    frag_f = fid[frag_f]
    depth = 1.0 / (bary / z[f[frag_f]]).sum(axis=1)  # perspective-correct
    normals = face_normals(vertices, f)
    centre = np.asarray(vertices)[f].mean(axis=1)
    facing = np.einsum("ij,ij->i", normals, camera.center[None] - centre) > 0
    order = np.lexsort((depth, frag_p))
    frag_f, frag_p, depth = frag_f[order], frag_p[order], depth[order]
    n = camera.width * camera.height
    zbuf = np.full(n, np.inf)
    face = np.full(n, -1, dtype=np.int64)
    first = np.ones(len(frag_p), dtype=bool)
    first[1:] = frag_p[1:] != frag_p[:-1]
    zbuf[frag_p[first]] = depth[first]
    face[frag_p[first]] = frag_f[first]
    return DepthLayers(zbuf, face, frag_p, depth, facing[frag_f], frag_f, camera.width, camera.height)


@dataclass
class UVTexels:
    """Every texel centre covered by the UV triangles of an S × S atlas (:func:`uv_texels`): ``face`` (P,) face
    index, ``texel`` (P,) flat texel index row · S + column (row 0 at the top: v = 1), ``bary`` (P, 3) float32
    barycentrics of the face's corners. A texel on an edge shared by two faces appears once per face."""

    face: np.ndarray
    texel: np.ndarray
    bary: np.ndarray
    size: int


def uv_texels(uv: np.ndarray, size: int, device: str = "cpu") -> UVTexels:
    """Rasterise per-corner UVs (M, 3, 2) (origin bottom-left) into an S × S atlas (all fragments, no test);
    ``device``: where the rasteriser runs."""
    xy = np.empty(np.shape(uv), dtype=np.float64)
    xy[..., 0] = np.asarray(uv)[..., 0] * size
    xy[..., 1] = (1.0 - np.asarray(uv)[..., 1]) * size
    ff, fp, bary = _fragments(xy, size, size, device)
    return UVTexels(ff, fp, bary.astype(np.float32), int(size))


def _fragments(tri: np.ndarray, width: int, height: int,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`icon_engine.geometry.raster.fragments` of 2-D triangles (F, 3, 2) pixels, run on ``device``."""
    return fragments(on_device(tri, device), width, height)


def rasterize_uv(uv: np.ndarray, size: int, texels: UVTexels | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Texels covered by per-corner UVs (M, 3, 2) in an S × S atlas: (face (S, S) int, −1 = empty; bary (S, S, 3)
    float32). ``texels``: the atlas' :func:`uv_texels` when already at hand (the projection atlas' last check)."""
    t = uv_texels(uv, size) if texels is None else texels
    face = np.full(size * size, -1, dtype=np.int64)
    bimg = np.zeros((size * size, 3), dtype=np.float32)
    face[t.texel] = t.face
    bimg[t.texel] = t.bary
    return face.reshape(size, size), bimg.reshape(size, size, 3)


# ----------------------------------------------------------------------------------------------------------------
# Mesh helpers


def harmonic_fill(values: np.ndarray, known: np.ndarray, faces: np.ndarray,
                  fallback_faces: np.ndarray | None = None) -> np.ndarray:
    """Fill ``values`` (N, C) at unknown vertices by solving Laplace's equation on the graph of ``faces``' edges
    with the known vertices fixed. Components without a known vertex take the mean of the known values, or, with
    ``fallback_faces`` (a larger graph, e.g. the whole mesh when ``faces`` is restricted to body parts), are
    filled a second time on that graph."""
    from scipy.sparse.csgraph import connected_components

    n = len(values)
    out = np.asarray(values, dtype=np.float64).copy()
    if known.all():
        return out
    if fallback_faces is not None:
        comp = connected_components(mesh_laplacian(n, faces), directed=False)[1]
        orphan = ~known & (np.bincount(comp, weights=known.astype(np.float64))[comp] == 0)
        if orphan.any():
            return harmonic_fill(harmonic_fill(out, known, faces), ~orphan, fallback_faces)
    fallback = out[known].mean(axis=0) if known.any() else np.full(out.shape[1], 128.0)
    if not known.any():
        out[:] = fallback
        return out
    lap = mesh_laplacian(n, faces)
    unk = np.nonzero(~known)[0]
    kn = np.nonzero(known)[0]
    # A tiny screening term keeps isolated unknown components solvable; they relax to the fallback colour.
    a = (lap[unk][:, unk] + sp.identity(len(unk)) * 1e-6).tocsc()
    rhs = -(lap[unk][:, kn] @ out[kn]) + 1e-6 * fallback[None]
    solve = spla.factorized(a)
    for c in range(out.shape[1]):
        out[unk, c] = solve(np.ascontiguousarray(rhs[:, c]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Photo sampling


def _one_fragment_per_texel(texels: UVTexels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texel (T,), face (T,), barycentrics (T, 3)) with one fragment per covered texel: a texel on an edge shared
    by two faces keeps the last one."""
    last = np.full(texels.size * texels.size, -1, dtype=np.int64)
    last[texels.texel] = np.arange(len(texels.texel))
    pick = last[last >= 0]
    return texels.texel[pick], texels.face[pick], np.take(texels.bary, pick, axis=0)


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample (H, W, C) at continuous pixel coordinates (N, 2) (pixel centres at integer + 0.5), edge-clamped:
    (N, C) float32."""
    h, w = image.shape[:2]
    flat = np.asarray(image, dtype=np.float32).reshape(h * w, -1)
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0).astype(np.float32)[:, None], (y - y0).astype(np.float32)[:, None]
    # np.take gathers rows ~10× faster than fancy indexing (numpy 1.26)
    top = np.take(flat, y0 * w + x0, axis=0) * (1 - fx) + np.take(flat, y0 * w + x1, axis=0) * fx
    bottom = np.take(flat, y1 * w + x0, axis=0) * (1 - fx) + np.take(flat, y1 * w + x1, axis=0) * fx
    return top * (1 - fy) + bottom * fy


def _smooth_on_mesh(colours: np.ndarray, weight: np.ndarray, faces: np.ndarray,
                    iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted neighbour averaging of vertex colours (N, 3) over the mesh, ``iterations`` times (a diffusion of
    about ``edge · sqrt(iterations / 2)``); colours of zero weight do not spread. Returns (colours, weight)."""
    n = len(colours)
    step = (adjacency(n, faces) + sp.identity(n)).tocsr()
    num = colours * weight[:, None]
    den = weight.astype(np.float64).copy()
    for _ in range(iterations):
        num = step @ num
        den = step @ den
        scale = np.maximum(den, 1e-300)
        num, den = num / scale[:, None] * np.minimum(den, 1.0)[:, None], np.minimum(den, 1.0)
    out = num / np.maximum(den, 1e-12)[:, None]
    return out, den


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
    g = _interpolate(bary, faces, per_vertex_cam)
    p, n = g[:, :3], g[:, 3:]
    z = p[:, 2]
    K = np.asarray(cam.K, dtype=np.float32)
    zs = np.maximum(z, np.float32(1e-9))
    xy = np.stack([(K[0, 0] * p[:, 0] + K[0, 1] * p[:, 1]) / zs + K[0, 2], K[1, 1] * p[:, 1] / zs + K[1, 2]], axis=1)
    # camera at the origin: cos = n · (−p) / (|n| |p|)
    norm = np.sqrt(np.einsum("ij,ij->i", n, n) * np.einsum("ij,ij->i", p, p))
    cos = -np.einsum("ij,ij->i", n, p) / np.maximum(norm, np.float32(1e-12))
    return _Projected(xy, z, cos)


def _interpolate(bary: np.ndarray, faces: np.ndarray, per_vertex: np.ndarray) -> np.ndarray:
    """Barycentric blend (T, C) of per-vertex values (N, C) at points with corner ids ``faces`` (T, 3) and
    ``bary`` (T, 3) (three gathers and multiply-adds: no (T, 3, C) temporary)."""
    out = bary[:, 0:1] * np.take(per_vertex, faces[:, 0], axis=0)  # np.take: ~5× faster than fancy indexing
    out += bary[:, 1:2] * np.take(per_vertex, faces[:, 1], axis=0)
    out += bary[:, 2:3] * np.take(per_vertex, faces[:, 2], axis=0)
    return out


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
    """The photo's fine detail inside the person: (photo − its Gaussian blur of :data:`DETAIL_SIGMA` px taken over
    the person's pixels only (H, W, 3) float32, where it holds (H, W) bool: the mask eroded by 2σ)."""
    import cv2

    h, w = view.camera.height, view.camera.width
    inside = view.mask.reshape(h, w).astype(np.float32)
    blur = cv2.GaussianBlur(view.photo * inside[..., None], (0, 0), DETAIL_SIGMA)
    weight = cv2.GaussianBlur(inside, (0, 0), DETAIL_SIGMA)
    detail = view.photo - blur / np.maximum(weight, 1e-6)[..., None]
    return detail, _erode(view.mask.reshape(h, w), int(np.ceil(2 * DETAIL_SIGMA)))


def _see_through_detail(view: _View, points: np.ndarray, point_part: np.ndarray) -> np.ndarray:
    """(N, 3) float32 detail to add to the fill of surface points (N, 3) of :data:`DETAIL_PARTS`: the photo's fine
    detail (:func:`_photo_detail`) at each point's pixel where that pixel shows the point's own part and no other
    within :data:`CONTACT_PIXELS` (the front of the same leg, seen through it). A trouser's stripes or a denim
    weave then continue on the back of the leg instead of its plain mean colour; the profile keeps the colour.
    Zero elsewhere (torso and head: no print or face is copied to the back)."""
    out = np.zeros((len(points), 3), dtype=np.float32)
    sel = np.isin(point_part, DETAIL_PARTS)
    if view.part_bits is None or not sel.any():
        return out
    detail, where = _photo_detail(view)
    xy, _, inside, pix = _pixels(view.camera, points[sel])
    own = view.part_bits[pix] == (1 << point_part[sel])
    ok = inside & own & where.reshape(-1)[pix]
    idx = np.nonzero(sel)[0][ok]
    out[idx] = _bilinear(detail, xy[ok])
    return out


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


def _fit_gain(x: np.ndarray, y: np.ndarray) -> float:
    """One channel's gain ``g`` with ``y ≈ g · x`` (colours 0–255 of paired points): least squares, twice more
    without residuals beyond 2.5 robust sigmas (pairs that straddle two garments); with fewer than
    :data:`MIN_OVERLAP` pairs the ratio of medians."""
    g = float(np.median(y) / max(float(np.median(x)), 1.0))
    if len(x) < MIN_OVERLAP:
        return g
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        if keep.sum() < MIN_OVERLAP // 2:
            break
        xk, yk = x[keep], y[keep]
        g = float(xk @ yk / max(float(xk @ xk), 1e-9))
        r = y - g * x
        mad = float(np.median(np.abs(r - np.median(r)))) * 1.4826 + 1.0
        keep = np.abs(r) <= 2.5 * mad
    return g


def _pair_gains(colours: np.ndarray, alphas: np.ndarray, seen: np.ndarray, points: np.ndarray, cos: np.ndarray,
                j: int, k: int) -> tuple[int, int, np.ndarray]:
    """(pairs, pairs of the same point, per-channel gain (3,) mapping photo ``k``'s colours onto photo ``j``'s) from
    the points photo k sees paired with the nearest point photo j sees within :data:`EXPOSURE_RADIUS_M` at a
    view-angle cosine within :data:`EXPOSURE_COS_BAND` (arguments as :func:`exposure_gains`'s, ``seen`` (K, N)
    bool)."""
    from scipy.spatial import cKDTree

    ref_ok, mine = np.nonzero(seen[j])[0], np.nonzero(seen[k])[0]
    if not len(ref_ok) or not len(mine):
        return 0, 0, np.ones(3)
    dist, idx = cKDTree(points[ref_ok]).query(points[mine], distance_upper_bound=EXPOSURE_RADIUS_M)
    hit = np.isfinite(dist)
    near, mine, dist = ref_ok[idx[hit]], mine[hit], dist[hit]
    alike = np.abs(cos[k][mine] - cos[j][near]) <= EXPOSURE_COS_BAND
    near, mine, dist = near[alike], mine[alike], dist[alike]
    if not len(mine):
        return 0, 0, np.ones(3)
    src, ref = colours[k][mine], colours[j][near]
    return len(mine), int((dist == 0).sum()), np.array([_fit_gain(src[:, c], ref[:, c]) for c in range(3)])


def exposure_gains(colours: np.ndarray, alphas: np.ndarray, points: np.ndarray,
                   cosines: np.ndarray | None = None) -> np.ndarray:
    """(K, 2, 3) per-photo, per-channel (gain, offset) mapping photo k's colours onto the first photo's exposure:
    ``c' = gain · c + offset`` (the offset is 0: a gain per channel — exposure, white balance — is what differs
    between photos of one shoot; a fitted offset tinted dark garments, bench/multiview.py wave 5). ``colours``
    (K, N, 3) and ``alphas`` (K, N): every photo's colour and photo weight of the same surface points ``points``
    (N, 3, metres); a point counts for a photo when its weight exceeds :data:`EXPOSURE_ALPHA`.

    Every pair of photos (j, k) gives a gain from its point pairs (:func:`_pair_gains`: the same point where the
    photos overlap, the neighbouring surface across the seam where they do not, as front and back photos), and the
    photos' log-gains are solved together by least squares over the pairs, each weighted by its number of point
    pairs, the first photo's held at 0 (and each photo pulled to 0 with the weight of one pair, so a photo that
    shares nothing with the others keeps gain 1). A pair that meets only across a seam (fewer than
    :data:`MIN_OVERLAP` pairs of the same point) counts only between photos that no chain of same-point pairs
    links (front and back alone; not the front and the back of a turnaround, whose sides link them). Pairs that go
    round the person (front → side → back → other side
    → front) close a loop: shading that follows each camera (a light on the camera, off its axis) biases each
    pair's gain one way round the loop and cancels in the joint solve, where chaining each photo to the ones
    before it multiplied the biases (bench/multiview.py, 4 views: every other photo at the lowest gain, 0.70; wave
    7). With ``cosines`` (K, N) (cos of each photo's view angle) only pairs seen at similar angles count. Gains are
    clipped to :data:`GAIN_RANGE`; two photos give (nearly) the pair's gain."""
    k_views = len(colours)
    out = np.zeros((k_views, 2, 3))
    out[:, 0] = 1.0
    if k_views < 2:
        return out
    seen = alphas > EXPOSURE_ALPHA
    pts = np.asarray(points, dtype=np.float64)
    cos = np.zeros(alphas.shape) if cosines is None else np.asarray(cosines, dtype=np.float64)
    pairs = {(j, k): _pair_gains(colours, alphas, seen, pts, cos, j, k) for k in range(1, k_views) for j in range(k)}
    group = list(range(k_views))  # photos linked by pairs that see the same points (union-find)

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for (j, k), (_, same, _) in pairs.items():
        if same >= MIN_OVERLAP:
            group[root(k)] = root(j)
    rows, rhs, weights = [], [], []
    for (j, k), (n, same, g) in pairs.items():
        if n == 0 or (same < MIN_OVERLAP and root(j) == root(k)):
            continue  # across a seam only between photos that no chain of shared points links
        row = np.zeros(k_views - 1)  # unknowns: log-gains of photos 1..K-1 (photo 0's is 0)
        row[k - 1] += 1.0
        if j > 0:
            row[j - 1] -= 1.0
        rows.append(row)
        rhs.append(np.log(np.maximum(g, 1e-6)))
        weights.append(float(n))
    if not rows:
        return out
    prior = np.eye(k_views - 1)  # each photo's log-gain pulled to 0 with the weight of one pair
    a = np.concatenate([np.asarray(rows), prior])
    b = np.concatenate([np.asarray(rhs), np.zeros((k_views - 1, 3))])
    sw = np.sqrt(np.concatenate([np.asarray(weights), np.ones(k_views - 1)]))[:, None]
    log_gain = np.linalg.lstsq(a * sw, b * sw, rcond=None)[0]  # (K-1, 3)
    out[1:, 0] = np.clip(np.exp(log_gain), *GAIN_RANGE)
    return out


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
        c = _bilinear(view.photo, xy)
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


# ----------------------------------------------------------------------------------------------------------------
# Body parts and the unseen sides


def _ring_count(vertices: np.ndarray, faces: np.ndarray, radius: float) -> int:
    """Edge rings (1–12) that cover about ``radius`` metres on the mesh (from its mean edge length)."""
    t = np.asarray(vertices)[np.asarray(faces[: min(len(faces), 20000)])]
    edge = float(np.linalg.norm(t[:, 1] - t[:, 0], axis=1).mean())
    return int(np.clip(np.ceil(radius / max(edge, 1e-6)), 1, 12))


def _near_parts(parts: np.ndarray, faces: np.ndarray, rings: int) -> np.ndarray:
    """(N,) int bit masks of the body parts within ``rings`` edge rings of each vertex on the mesh (bit p: part p):
    a vertex's own part and, near a part boundary (shoulder, neck, hips), its neighbour, whose surface may be the
    nearest at the vertex's pixel without hiding it."""
    n = len(parts)
    step = (adjacency(n, faces) + sp.identity(n)).tocsr()
    near = np.zeros((n, len(PART_NAMES)), dtype=np.float32)
    near[np.arange(n), parts] = 1.0
    for _ in range(rings):
        near = np.minimum(step @ near, 1.0)
    return ((near > 0) * (1 << np.arange(len(PART_NAMES)))).sum(axis=1).astype(np.int64)


def parts_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """Body-part label per vertex (N,) int from skin weights (N, 55) in the SMPL-X joint order
    (``bundle.skeleton.JOINT_NAMES``): the part (:data:`PART_NAMES`: 0 torso with pelvis, spine and collars;
    1 left arm from the shoulder to the fingers; 2 right arm; 3 left leg from the hip to the toes; 4 right leg;
    5 head with neck, jaw and eyes) holding the largest sum of the vertex's weights."""
    return part_weights_from_skin_weights(skin_weights).argmax(axis=1)


def part_weights_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """(N, len(PART_NAMES)) each vertex's skin weights summed per body part (:func:`parts_from_skin_weights`)."""
    from .bundle.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

    w = np.asarray(skin_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != NUM_JOINTS:
        raise EngineError("internal", f"Skin weights have shape {w.shape}, not (N, {NUM_JOINTS}).",
                          "Pass the rig's skin_weights (SMPL-X joint order).")
    joint_part = np.full(NUM_JOINTS, PART_TORSO, dtype=np.int64)
    for j in range(NUM_JOINTS):  # parents come before children in SMPL-X order
        name = JOINT_NAMES[j]
        joint_part[j] = _PART_ROOTS.get(name, joint_part[PARENTS[j]] if PARENTS[j] >= 0 else PART_TORSO)
    sums = np.zeros((len(w), len(PART_NAMES)))
    for part in range(len(PART_NAMES)):
        sums[:, part] = w[:, joint_part == part].sum(axis=1)
    return sums


def _check_parts(vertex_parts: np.ndarray | None, n: int, name: str = "vertex_parts",
                 source: str = "parts_from_skin_weights") -> np.ndarray | None:
    """``vertex_parts`` as (n,) int64 labels (None stays None); a clear error otherwise (``name`` and the
    ``source`` function that makes them, for the message)."""
    if vertex_parts is None:
        return None
    parts = np.asarray(vertex_parts)
    if parts.shape != (n,) or not np.issubdtype(parts.dtype, np.integer):
        raise EngineError("internal", f"{name} has shape {parts.shape} and type {parts.dtype}, not ({n},) "
                          "integers.", f"Pass one label per vertex (texture.{source}).")
    return parts.astype(np.int64)


def _same_part_faces(faces: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Faces whose three vertices carry the same part label: their edges form the part-restricted graph."""
    lab = parts[faces]
    return faces[(lab == lab[:, :1]).all(axis=1)]


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-channel weighted median (C,) of ``values`` (K, C) with ``weights`` (K,) > 0."""
    order = np.argsort(values, axis=0)
    w = weights[order]  # (K, C)
    cum = np.cumsum(w, axis=0)
    idx = (cum < 0.5 * cum[-1]).sum(axis=0)
    return np.take_along_axis(values, order, axis=0)[idx, np.arange(values.shape[1])]


def _colour_clusters(colours: np.ndarray, weights: np.ndarray, count: int = PROFILE_CLUSTERS,
                     merge: float = PROFILE_CLUSTER_MERGE) -> np.ndarray:
    """Cluster label (K,) of colours (K, C) (0–255): weighted k-means from farthest-point seeds, then clusters whose
    centres lie within ``merge`` of each other are merged (one garment's lit and shaded sides stay one cluster)."""
    k = min(count, len(colours))
    centres = [colours[int(np.argmax(weights))]]
    for _ in range(k - 1):
        d = np.min(np.linalg.norm(colours[:, None] - np.asarray(centres)[None], axis=2), axis=1)
        if d.max() < merge:
            break
        centres.append(colours[int(np.argmax(d))])
    cen = np.asarray(centres, dtype=np.float64)
    for _ in range(8):
        lab = np.linalg.norm(colours[:, None] - cen[None], axis=2).argmin(axis=1)
        w = np.bincount(lab, weights=weights, minlength=len(cen))
        for j in np.nonzero(w > 0)[0]:
            cen[j] = (colours[lab == j] * weights[lab == j, None]).sum(axis=0) / w[j]
    lab = np.linalg.norm(colours[:, None] - cen[None], axis=2).argmin(axis=1)
    root = np.arange(len(cen))  # merge close centres (union by the lower index)
    for a in range(len(cen)):
        for b in range(a + 1, len(cen)):
            if np.linalg.norm(cen[a] - cen[b]) < merge:
                root[root == root[b]] = root[a]
    return np.unique(root[lab], return_inverse=True)[1]


def _colour_profile(s_seen: np.ndarray, colours: np.ndarray, weights: np.ndarray, s_query: np.ndarray,
                    window: float, end_band: tuple[float, float] | None = None) -> np.ndarray:
    """Garment colour (C,) at each query position along an axis from the seen samples within ``window`` (metres)
    (at least :data:`PROFILE_MIN_SAMPLES` nearest ones). The part's seen colours are clustered
    (:func:`_colour_clusters`); a cluster's **persistence** is the fraction of the positions where it holds at
    least :data:`PROFILE_MIN_SHARE` of the (``weights``-weighted: towards the silhouette, which continues into the
    back) samples. At each position the cluster with the largest share × persistence **
    :data:`PROFILE_PERSISTENCE_POWER` wins; the plain median of the window's samples within
    :data:`PROFILE_MODE_RADIUS` of that cluster's median is the colour (the better lit front of that garment sets
    the brightness). A garment runs along the part, a print or a face is a short band: where a
    print covers most of the seen width (a chest print between hanging arms), the shirt's persistence still wins,
    so the back gets the shirt (dev photo icon_003883). Where several clusters all run along the part
    (persistence ≥ :data:`PATTERN_PERSISTENCE`) and none holds :data:`PATTERN_SHARE` of the window, the garment is
    a pattern (stripes, checks) and the colour is their weighted mean (the pattern itself is added back on the
    legs by :func:`_see_through_detail`). Within ``end_band`` (positions (low, high): a limb's end, the foot or
    the hand) persistence is measured within that band only: a shoe or a hand is a short band at the end of its
    limb, not a print, and the leg's skin or trousers, persistent along the whole leg, would otherwise take the
    heel. Evaluated on a grid and
    interpolated."""
    order = np.argsort(s_seen)
    s, c, w = s_seen[order], colours[order], weights[order]
    lab = _colour_clusters(c, w)
    n_lab = int(lab.max()) + 1
    grid = np.arange(s_query.min() - window, s_query.max() + 2 * window, window / 2)
    grid = np.clip(grid, s[0], s[-1])
    k = min(PROFILE_MIN_SAMPLES, len(s))
    lo_all = np.searchsorted(s, grid - window)
    hi_all = np.searchsorted(s, grid + window)
    short = hi_all - lo_all < k  # widen to the k nearest samples
    mid = np.searchsorted(s, grid[short])
    hi_all[short] = np.minimum(len(s), np.maximum(0, mid - k // 2) + k)
    lo_all[short] = np.maximum(0, hi_all[short] - k)
    share = np.zeros((len(grid), n_lab))
    cum = np.zeros((len(s) + 1, n_lab))  # prefix sums of each cluster's weight along the axis
    cum[1:] = np.cumsum(np.eye(n_lab)[lab] * w[:, None], axis=0)
    share = cum[hi_all] - cum[lo_all]
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
    persistence = (share >= PROFILE_MIN_SHARE).mean(axis=0)
    best = np.argmax(share * persistence[None] ** PROFILE_PERSISTENCE_POWER, axis=1)
    end = np.zeros(len(grid), dtype=bool) if end_band is None else (grid >= end_band[0]) & (grid <= end_band[1])
    if end.any():  # a limb's end (foot, hand): persistence measured within that band (a shoe runs along the foot)
        end_persistence = (share[end] >= PROFILE_MIN_SHARE).mean(axis=0)
        best[end] = np.argmax(share[end] * end_persistence[None] ** PROFILE_PERSISTENCE_POWER, axis=1)
    # a pattern (stripes, checks): several colours that all run along the part, none dominant: their mean
    steady = persistence >= PATTERN_PERSISTENCE
    pattern = (share[np.arange(len(grid)), best] < PATTERN_SHARE) & ((share * steady[None]) > 0).sum(axis=1) >= 2
    pattern &= ~end  # a limb's end is one garment (shoe, hand), not a pattern's mean
    prof = np.empty((len(grid), c.shape[1]))
    for g, (lo, hi) in enumerate(zip(lo_all, hi_all, strict=True)):
        if pattern[g]:
            keep = steady[lab[lo:hi]]
            prof[g] = (c[lo:hi][keep] * w[lo:hi][keep, None]).sum(axis=0) / max(float(w[lo:hi][keep].sum()), 1e-12)
            continue
        own = c[lo:hi][lab[lo:hi] == best[g]]
        centre = np.median(own, axis=0) if len(own) else _weighted_median(c[lo:hi], w[lo:hi])
        # that garment's samples, all counted: the better lit front of it sets the brightness (its shaded sides
        # may form a cluster of their own)
        near = np.linalg.norm(c[lo:hi] - centre, axis=1) < PROFILE_MODE_RADIUS
        prof[g] = np.median(c[lo:hi][near], axis=0) if near.sum() >= 3 else centre
    return np.stack([np.interp(s_query, grid, prof[:, ch]) for ch in range(c.shape[1])], axis=1)


def _clear_first_profile(s_seen: np.ndarray, colours: np.ndarray, weights: np.ndarray, clear: np.ndarray,
                         s_query: np.ndarray, window: float, end_band: tuple[float, float] | None = None) -> np.ndarray:
    """:func:`_colour_profile` of the ``clear`` (bool per sample) samples at the query positions whose window holds
    at least :data:`BEHIND_CLEAR_MIN` of them, of all samples elsewhere (where an occluder's outline covers the
    part's whole seen width, its samples are all there is)."""
    out = _colour_profile(s_seen, colours, weights, s_query, window, end_band)
    if clear.all() or clear.sum() < BEHIND_CLEAR_MIN:
        return out
    s_clear = np.sort(s_seen[clear])
    ok = np.searchsorted(s_clear, s_query + window) - np.searchsorted(s_clear, s_query - window) >= BEHIND_CLEAR_MIN
    if ok.any():
        out[ok] = _colour_profile(s_seen[clear], colours[clear], weights[clear], s_query[ok], window, end_band)
    return out


def _hair_colour(points: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Hair and face-skin colours of a head's seen vertices (``points`` (K, 3) world, Y up; ``colours`` (K, 3)):
    two-means clustering started from the top band's median (hair) and the middle band's median (face). Returns
    (hair colour or None when the clusters are too alike — bald, or a hat the colour of the skin —, skin colour)."""
    y = points[:, 1]
    lo, hi = float(y.min()), float(y.max())
    top = y >= hi - 0.2 * (hi - lo)
    face = (y >= lo + 0.3 * (hi - lo)) & (y <= lo + 0.65 * (hi - lo))
    if top.sum() < 5 or face.sum() < 5:
        return None, np.median(colours, axis=0)
    centres = np.stack([np.median(colours[top], axis=0), np.median(colours[face], axis=0)])
    for _ in range(8):
        d = np.linalg.norm(colours[:, None] - centres[None], axis=2)
        lab = d.argmin(axis=1)
        if (lab == 0).sum() < 5 or (lab == 1).sum() < 5:
            break
        centres = np.stack([np.median(colours[lab == 0], axis=0), np.median(colours[lab == 1], axis=0)])
    hair, skin = centres
    # the hair cluster must own the top of the head
    top_hair = (np.linalg.norm(colours[top] - hair, axis=1) < np.linalg.norm(colours[top] - skin, axis=1)).mean()
    if np.linalg.norm(hair - skin) < HAIR_MIN_CONTRAST or top_hair < 0.5:
        return None, skin
    return hair, skin


#: Limbs over the hair (:func:`limb_registration_keep`): the limbs checked; the registration uncertainty (fraction
#: of the person's height in the photo, pixels) within which a limb's pixel may show the hair instead; a limb sample
#: within REGISTRATION_MATCH_RGB of a hair shade and farther than REGISTRATION_MIN_RGB from the skin is the hair
#: (RGB, 0–255); at most REGISTRATION_MAX_DROP of a limb's seen vertices are dropped; a limb whose samples away
#: from the head match the hair this often (REGISTRATION_HAIR_SHARE) is itself hair-coloured and keeps them.
REGISTRATION_PARTS = (PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG)
REGISTRATION_UNCERTAINTY = 0.04
REGISTRATION_MATCH_RGB = 30.0
REGISTRATION_MIN_RGB = 40.0
REGISTRATION_MAX_DROP = 0.6
REGISTRATION_HAIR_SHARE = 0.2
#: The hair's shades also count darkened by this factor (hair in shadow: its darkest strands).
REGISTRATION_HAIR_SHADOW = 0.6
#: Colour clusters holding less than this share of a part's samples are ignored (stray pixels).
REGISTRATION_CLUSTER_SHARE = 0.03


def _cluster_centres(colours: np.ndarray, min_share: float = REGISTRATION_CLUSTER_SHARE) -> np.ndarray:
    """Median colours (K, 3) of the colour clusters (:func:`_colour_clusters`) of ``colours`` (N, 3) holding at
    least ``min_share`` of them, largest first (at most ~3000 samples are clustered, evenly subsampled)."""
    c = np.asarray(colours, dtype=np.float64)[:: max(1, len(colours) // 3000)]
    if not len(c):
        return np.zeros((0, 3))
    lab = _colour_clusters(c, np.ones(len(c)))
    counts = np.bincount(lab)
    big = [j for j in np.argsort(-counts, kind="stable") if counts[j] >= min_share * len(c)]
    return np.stack([np.median(c[lab == j], axis=0) for j in big])


def _nearest_colour(colours: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(N,) RGB distance of each colour (N, 3) to the nearest of ``refs`` (K, 3) (inf when K = 0)."""
    if not len(refs):
        return np.full(len(colours), np.inf)
    return np.linalg.norm(colours[:, None] - refs[None], axis=2).min(axis=1)


def limb_registration_keep(view: _View, posed: np.ndarray, faces: np.ndarray, parts: np.ndarray,
                           alpha: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the limb vertices whose photo colour is most likely the hair, because the fitted limb
    lies off the photo's limb over the hair (icon_028009: a raised arm, hand on the head) or long hair hangs over
    it. Neither the mask nor the per-part visibility notices: the limb's own surface is the nearest one there, and
    the hair is not a part of the model. ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3)
    the vertices in the photo's pose (metres), ``faces`` (M, 3); ``alpha`` (N,) photo weights; ``colours`` (N, 3)
    photo colours (0–255).

    The hair's shades are the head's colour clusters (its own seen samples, :func:`_colour_clusters`) nearer the
    hair colour than the face's skin (:func:`_hair_colour`; none on a bald head), and the same in shadow
    (× :data:`REGISTRATION_HAIR_SHADOW`). A seen limb vertex
    (:data:`REGISTRATION_PARTS`) is dropped when its pixel lies within :data:`REGISTRATION_UNCERTAINTY` × the
    person's height of the head's projection or of person pixels no part covers (hair hanging down), its colour
    lies within :data:`REGISTRATION_MATCH_RGB` of a hair shade and farther than :data:`REGISTRATION_MIN_RGB` from
    the skin, and so is every hair-coloured seen vertex of the limb connected to one on the mesh through
    hair-coloured seen vertices (the middle of a limb lying over the hair is farther from the hair's edge).
    Guards: nothing is dropped when the torso's main colour is a hair shade (a black shirt and black
    hair: the sleeve may be that colour), on a limb whose samples away from the head match the hair in
    :data:`REGISTRATION_HAIR_SHARE` of cases (black trousers), or where more than :data:`REGISTRATION_MAX_DROP` of
    the limb's seen vertices would go. A dropped vertex takes its limb's fill like a hidden one (the profile of
    the limb's other samples at its place: sleeve or skin)."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    if view.face_part is None:
        return keep
    cam = view.camera
    col = np.asarray(colours, dtype=np.float64)
    _, _, inside, pix = _pixels(cam, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    seen = (alpha > SEEN_ALPHA) & inside
    head = seen & (shown[pix] == parts) & (parts == PART_HEAD)
    rows = np.nonzero((shown >= 0).reshape(cam.height, cam.width).any(axis=1))[0]
    if head.sum() < 10 or not len(rows):
        return keep
    hair, skin = _hair_colour(posed[head], col[head])
    if hair is None:
        return keep
    shades = _cluster_centres(col[head])
    hair = np.concatenate([hair[None], shades[np.linalg.norm(shades - hair, axis=1)
                                              < np.linalg.norm(shades - skin, axis=1)]])
    hair = np.concatenate([hair, REGISTRATION_HAIR_SHADOW * hair])  # and the same hair in shadow
    torso = seen & (shown[pix] == parts) & (parts == PART_TORSO)
    if torso.sum() >= 10 and _nearest_colour(_cluster_centres(col[torso])[:1], hair)[0] <= REGISTRATION_MIN_RGB:
        return keep
    # pixels of the head's projection or of the person that no part covers (hair hanging down)
    hairy_px = (shown == PART_HEAD) | (view.mask.reshape(-1) & (shown < 0))
    reach = REGISTRATION_UNCERTAINTY * float(rows[-1] - rows[0] + 1)
    near = cv2.distanceTransform((~hairy_px).reshape(cam.height, cam.width).astype(np.uint8), cv2.DIST_L2,
                                 3).reshape(-1)[pix] < reach
    hairy = (_nearest_colour(col, hair) < REGISTRATION_MATCH_RGB) & (_nearest_colour(col, skin[None])
                                                                     > REGISTRATION_MIN_RGB)
    step = None
    for part in REGISTRATION_PARTS:
        mine = seen & (parts == part)
        far = mine & ~near
        if far.sum() >= 10 and hairy[far].mean() >= REGISTRATION_HAIR_SHARE:
            continue  # the limb itself has the hair's colour
        drop = mine & near & hairy
        if not drop.any():
            continue
        step = adjacency(len(posed), faces).tocsr() if step is None else step
        for _ in range(64):  # grow through the limb's hair-coloured seen vertices
            grown = drop | (mine & hairy & (step @ drop.astype(np.float32) > 0))
            if (grown == drop).all():
                break
            drop = grown
        if drop.sum() <= REGISTRATION_MAX_DROP * mine.sum():
            keep &= ~drop
    return keep


#: Limb outlines (:func:`limb_outline_keep`): the band (fraction of the person's height in the photo) along a limb's
#: projected outline where the photo may show the neighbouring region instead (the fit a few pixels off); a seen
#: sample there whose colour lies farther than OUTLINE_MIN_RGB (RGB, 0–255) from every sample the limb shows away
#: from its outline at the same place along it (within PROFILE_WINDOW) is dropped.
OUTLINE_UNCERTAINTY = 0.015
OUTLINE_MIN_RGB = 45.0
#: Interior samples of a window compared at most (evenly subsampled).
_OUTLINE_REFS = 300


def _part_axis(positions: np.ndarray, parts: np.ndarray, part: int) -> np.ndarray:
    """Unit principal axis (3,) of the vertices ``positions`` (N, 3) labelled ``part``."""
    mine = positions[parts == part]
    return np.linalg.svd(mine - mine.mean(axis=0), full_matrices=False)[2][0]


def _profile_axis(positions: np.ndarray, parts: np.ndarray, part: int) -> np.ndarray:
    """Unit axis (3,) a part's colour profile runs along: vertical (+Y) for the head, else the part's long axis
    (a leaning torso, a raised arm; :func:`_part_axis`)."""
    return np.array([0.0, 1.0, 0.0]) if part == PART_HEAD else _part_axis(positions, parts, part)


def _interior_distance(s: np.ndarray, colours: np.ndarray, interior: np.ndarray, window: float) -> np.ndarray:
    """(K,) RGB distance (0–255) from each sample outside ``interior`` to the nearest ``interior`` sample at the same
    place along their part; 0 for the interior samples and where no interior sample lies there (no evidence).
    ``s`` (K,) positions along the part's axis (metres), ``colours`` (K, 3) (0–255), ``interior`` (K,) bool the
    samples trusted as the part's own, ``window`` metres. Positions are compared in bins of half a window, each
    with the two next to it (half a window to a window and a half either side)."""
    out = np.zeros(len(s))
    if interior.sum() < PROFILE_MIN_SAMPLES or interior.all():
        return out
    order = np.argsort(s[interior])
    s_in, c_in = s[interior][order], colours[interior][order]
    edge = np.nonzero(~interior)[0]
    bin_in = np.floor((s_in - s_in[0]) / (0.5 * window)).astype(np.int64)
    bin_edge = np.floor((s[edge] - s_in[0]) / (0.5 * window)).astype(np.int64)
    starts = np.searchsorted(bin_in, np.arange(bin_in[-1] + 2))
    for b in np.unique(bin_edge):
        lo, hi = starts[int(np.clip(b - 1, 0, len(starts) - 1))], starts[int(np.clip(b + 2, 0, len(starts) - 1))]
        if hi <= lo:
            continue  # nothing trusted there: no evidence
        ref = c_in[lo:hi:max(1, (hi - lo) // _OUTLINE_REFS)]
        here = edge[bin_edge == b]
        out[here] = np.linalg.norm(colours[here][:, None] - ref[None], axis=2).min(axis=1)
    return out


def limb_outline_keep(view: _View, posed: np.ndarray, positions: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                      colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the limb vertices along a limb's projected outline whose photo colour the limb shows
    nowhere else at that place along it: the neighbouring region seen because the fitted limb lies a few pixels
    off the photo's (a raised thigh over the shorts, dev photo icon_22097467; a hanging hand over the trousers).
    ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3) the vertices in the photo's pose and
    ``positions`` (N, 3) where they are compared along the limb (the rest pose, where a limb is straight; metres);
    ``alpha`` (N,) photo weights; ``colours`` (N, 3) photo colours (0–255).

    For each limb (:data:`REGISTRATION_PARTS`), a seen vertex whose pixel lies within :data:`OUTLINE_UNCERTAINTY` ×
    the person's height of a pixel the limb's surface does not cover is on the outline; the others are its
    interior. An outline vertex is dropped when interior vertices lie within :data:`PROFILE_WINDOW` × the mesh's
    height of it along the limb's axis (the principal axis of its ``positions``) and its colour lies farther than
    :data:`OUTLINE_MIN_RGB` from all of them: a garment runs around the limb (a hem is a ring), so a colour only
    its outline shows is the neighbour's. A stripe or print seen inside the limb at that place is kept."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    if view.face_part is None:
        return keep
    cam = view.camera
    col = np.asarray(colours, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    _, _, inside, pix = _pixels(cam, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    rows = np.nonzero((shown >= 0).reshape(cam.height, cam.width).any(axis=1))[0]
    if not len(rows):
        return keep
    band = OUTLINE_UNCERTAINTY * float(rows[-1] - rows[0] + 1)
    window = PROFILE_WINDOW * (float(np.ptp(pos[:, 1])) or 1.0)
    seen = (alpha > SEEN_ALPHA) & inside
    for part in REGISTRATION_PARTS:
        mine = np.nonzero(seen & (parts == part))[0]
        if len(mine) < PROFILE_MIN_SAMPLES:
            continue
        to_edge = cv2.distanceTransform((shown == part).reshape(cam.height, cam.width).astype(np.uint8),
                                        cv2.DIST_L2, 3).reshape(-1)[pix[mine]]
        interior = (to_edge > band) & (shown[pix[mine]] == part)
        if interior.sum() < PROFILE_MIN_SAMPLES or interior.all():
            continue
        far = _interior_distance(pos[mine] @ _part_axis(pos, parts, part), col[mine], interior, window)
        keep[mine[far > OUTLINE_MIN_RGB]] = False
    return keep


#: Occluder edges (:func:`occluder_edge_keep`): a seen sample whose pixel lies within OCCLUDER_BAND × the person's
#: height in the photo (a square window) of the projection of another part's surface lying more than
#: OCCLUDER_DEPTH metres nearer the camera may show that occluder instead (the photo's limb a few pixels wider or
#: off the fitted one); it is dropped when its colour lies farther than OUTLINE_MIN_RGB from every sample of its
#: part away from such edges at the same place along the part.
OCCLUDER_BAND = 0.03
OCCLUDER_DEPTH = 0.08
#: A hidden vertex lies *behind another part* (:func:`behind_other_part`) when the surface its pixel shows belongs
#: to another part and lies more than this (metres) nearer the camera: a forearm across the chest, a hand on a hip
#: or over the face (parts touching at a seam lie at about the same depth).
BEHIND_DEPTH = 0.03
#: Seen vertices within this fraction of the person's height (rest pose) of a region hidden behind another part
#: fade from their photo colour to their part's fill (:func:`behind_fade`): the occluder's shadow and colour bleed
#: at its outline do not draw the limb's shape on the body once the limb has moved away.
BEHIND_FADE = 0.04
#: ... unless the part would keep fewer than this share of its seen vertices unfaded.
BEHIND_MIN_KEPT = 0.5
#: The profile of a region behind another part is made of the samples away from the occluder's outline wherever
#: the profile's window holds at least this many of them (:func:`_clear_first_profile`).
BEHIND_CLEAR_MIN = 3


def _nearby_distance(xy: np.ndarray, colours: np.ndarray, ref_xy: np.ndarray, ref_colours: np.ndarray,
                     reach: float, k: int = 16) -> np.ndarray:
    """(N,) RGB distance (0–255) from each point (pixels ``xy`` (N, 2), ``colours`` (N, 3)) to the nearest in colour
    of the ``k`` reference samples (``ref_xy`` (R, 2), ``ref_colours`` (R, 3)) nearest to it in the image within
    ``reach`` pixels; inf where none lies that near."""
    from scipy.spatial import cKDTree

    dist, near = cKDTree(ref_xy).query(xy, k=min(k, len(ref_xy)), distance_upper_bound=reach)
    dist, near = dist.reshape(len(xy), -1), near.reshape(len(xy), -1)
    ok = np.isfinite(dist)
    ref = np.take(ref_colours, np.where(ok, near, 0), axis=0)
    return np.where(ok, np.linalg.norm(ref - colours[:, None], axis=2), np.inf).min(axis=1)


def occluder_edge_keep(view: _View, posed: np.ndarray, positions: np.ndarray, parts: np.ndarray,
                       alpha: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the seen vertices next to the outline of a part lying well in front of them whose
    photo colour their own part shows nowhere away from such outlines at that place: the occluder's colour, read
    because the photo's occluder is wider or lies a few pixels off the fitted one (icon_22097467: the crotch of
    the shorts beside the raised thigh takes the thigh's skin, which the shorts' front then inherits through the
    fill). ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3) the vertices in the photo's
    pose, ``positions`` (N, 3) where they are compared along their part (the rest pose; metres); ``alpha`` (N,)
    photo weights; ``colours`` (N, 3) photo colours (0–255).

    A seen vertex is *at an occluder's edge* when, within :data:`OCCLUDER_BAND` × the person's height (pixels,
    square window) of its pixel, the nearest surface belongs to another part and lies more than
    :data:`OCCLUDER_DEPTH` in front of the vertex: a limb crossing in front of the body. (A neighbour touching it
    across a seam lies at its depth; the crotch is next to both thighs on the mesh, so the raised thigh is told by
    its depth, not by the mesh's adjacency.) Per part, the seen vertices not at such an edge are its trusted
    samples; a vertex at an edge is dropped when its colour lies farther than :data:`OUTLINE_MIN_RGB` from all of
    them at its place along the part (:func:`_interior_distance`; none there: kept) and nearer to a sample the
    occluder shows nearby than to them (its own seen vertices whose pixel shows it, within twice the band, as its
    outline's vertices are not seen: :func:`_nearby_distance`). The sample then looks like the occluder, or a
    blend of the two at its outline, not like its own part (a hand on the head keeps its skin). Every part, the
    torso and head too: the occluded part is the one whose samples go wrong. A dropped vertex takes its part's
    fill like a hidden one."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    if view.face_part is None:
        return keep
    cam = view.camera
    h, w = cam.height, cam.width
    xy, z, inside, pix = _pixels(cam, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    rows = np.nonzero((shown >= 0).reshape(h, w).any(axis=1))[0]
    seen = (alpha > SEEN_ALPHA) & inside
    if not len(rows) or not seen.any():
        return keep
    reach = max(1, int(round(OCCLUDER_BAND * float(rows[-1] - rows[0] + 1))))
    grow = np.ones((2 * reach + 1,) * 2, dtype=np.uint8)
    zbuf = view.layers.zbuf
    col = np.asarray(colours, dtype=np.float64)
    at_edge = np.zeros(len(posed), dtype=bool)
    to_occluder = np.full(len(posed), np.inf)  # RGB distance to the nearest-coloured occluder sample nearby
    idx = np.nonzero(seen)[0]
    for part in np.unique(shown[shown >= 0]):
        cand = idx[parts[idx] != part]
        if not len(cand):
            continue
        # nearest depth of this part's surface within the window (a min filter: erosion of a float image)
        depth = np.where(shown == part, zbuf, np.inf).astype(np.float32).reshape(h, w)
        nearest = cv2.erode(np.where(np.isfinite(depth), depth, np.float32(1e6)), grow).reshape(-1)
        cand = cand[nearest[pix[cand]] < z[cand] - OCCLUDER_DEPTH]
        occluder = np.nonzero(seen & (parts == part) & (shown[pix] == part))[0]
        if not len(cand) or not len(occluder):
            continue
        at_edge[cand] = True
        to_occluder[cand] = np.minimum(to_occluder[cand],
                                       _nearby_distance(xy[cand], col[cand], xy[occluder], col[occluder],
                                                        2 * reach))
    if not np.isfinite(to_occluder).any():
        return keep
    pos = np.asarray(positions, dtype=np.float64)
    window = PROFILE_WINDOW * (float(np.ptp(pos[:, 1])) or 1.0)
    for part in np.unique(parts[np.isfinite(to_occluder)]):
        mine = np.nonzero(seen & (parts == part))[0]
        if len(mine) < PROFILE_MIN_SAMPLES:
            continue
        axis = _profile_axis(pos, parts, int(part))
        to_own = _interior_distance(pos[mine] @ axis, col[mine], ~at_edge[mine], window)
        keep[mine[(to_own > OUTLINE_MIN_RGB) & (to_occluder[mine] < to_own)]] = False
    return keep


def behind_other_part(view: _View, posed: np.ndarray, view_cos: np.ndarray, parts: np.ndarray,
                      alpha: np.ndarray) -> np.ndarray:
    """(N,) bool: the vertices (``posed`` (N, 3) in the photo's pose, ``parts`` (N,)) facing the camera
    (``view_cos`` (N,) > 0, as :func:`_view_cos_own` gives it) that the photo does not see (``alpha`` ≤
    :data:`SEEN_ALPHA`) because the surface their pixel shows belongs to another part lying more than
    :data:`BEHIND_DEPTH` nearer the camera (``view`` with its parts set): the chest behind crossed forearms, a hip
    under a hand, a face behind a hand. In the rest pose these face the viewer with nothing in front of them."""
    out = np.zeros(len(posed), dtype=bool)
    if view.face_part is None:
        return out
    _, z, inside, pix = _pixels(view.camera, posed)
    front = view.layers.face[pix]
    other = inside & (front >= 0) & (view.face_part[np.maximum(front, 0)] != parts)
    other &= view_cos > 0.0
    return other & (view.layers.zbuf[pix] < z - BEHIND_DEPTH) & (alpha <= SEEN_ALPHA)


def behind_fade(positions: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                behind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much of its photo colour each seen vertex keeps next to a region of its own part hidden behind another
    part (``behind`` (N,) bool, :func:`behind_other_part`): 0 at the region, rising linearly to 1 at
    :data:`BEHIND_FADE` × the person's height (``positions`` (N, 3), the rest pose, metres). The photo there shows
    the occluder's shadow and its outline's colour; the vertex takes its part's fill instead, so the limb leaves no
    outline on the body when it moves. A part that would keep under :data:`BEHIND_MIN_KEPT` of its seen vertices
    unfaded (a head mostly behind a raised arm) is left as it was: its few samples could not make its profile.
    Returns (``behind`` without those parts (N,) bool, fade (N,) float in [0, 1], 1 everywhere else)."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    behind = np.asarray(behind, dtype=bool).copy()
    fade = np.ones(len(pos))
    reach = BEHIND_FADE * (float(np.ptp(pos[:, 1])) or 1.0)
    seen = alpha > SEEN_ALPHA
    for part in np.unique(parts[behind]):
        mine = np.nonzero(seen & (parts == part))[0]
        if not len(mine):
            continue
        dist = cKDTree(pos[behind & (parts == part)]).query(pos[mine], k=1, distance_upper_bound=reach)[0]
        if (dist >= reach).mean() < BEHIND_MIN_KEPT:
            behind[parts == part] = False
            continue
        fade[mine] = np.clip(dist / reach, 0.0, 1.0)
    return behind, fade


#: Limb alignment (:func:`limb_alignment`): each limb's joint chain, root first, as (SMPL-X joint, BlazePose
#: landmark) pairs (bundle.skeleton.JOINT_NAMES / person.LANDMARK_NAMES: shoulder, elbow, wrist; hip, knee, ankle).
LIMB_CHAINS: dict[int, tuple[tuple[int, int], ...]] = {
    PART_LEFT_ARM: ((16, 11), (18, 13), (20, 15)), PART_RIGHT_ARM: ((17, 12), (19, 14), (21, 16)),
    PART_LEFT_LEG: ((1, 23), (4, 25), (7, 27)), PART_RIGHT_LEG: ((2, 24), (5, 26), (8, 28)),
}
#: ... a landmark counts with at least this BlazePose visibility; a joint's 2-D offset is shortened by
#: LIMB_DEAD_ZONE (BlazePose's knee/ankle and SMPL-X's differ by up to ~1.5 % of the height on well-fitted
#: synthetic subjects: a definition difference, not a misregistration) and capped at LIMB_MAX_SHIFT, both
#: fractions of the person's height in the photo (pixels).
LIMB_MIN_VISIBILITY = 0.5
LIMB_DEAD_ZONE = 0.015
LIMB_MAX_SHIFT = 0.06


def limb_alignment(camera: Camera, posed: np.ndarray, parts: np.ndarray, keypoints: np.ndarray,
                   joints: np.ndarray, height_px: float) -> np.ndarray:
    """(N, 2) float32 pixel offsets that move where each limb vertex reads the photo onto the photo's limb: the fit
    leaves a limb 20–30 px off (icon_028009's raised forearm over the hair; a jumper's front thigh), and its samples
    would show what lies beside it. ``camera`` the photo's (processing pixels); ``posed`` (N, 3) the vertices in the
    photo's pose and ``joints`` (≥ 22, 3) the fitted posed SMPL-X joints (bundle world, metres); ``parts`` (N,)
    (:data:`PART_NAMES`); ``keypoints`` (33, 3) BlazePose landmarks (x, y pixels, visibility); ``height_px`` the
    person's height in the photo (pixels).

    Per limb (:data:`LIMB_CHAINS`), each joint's offset is its landmark minus its projection, shortened by
    :data:`LIMB_DEAD_ZONE` × ``height_px`` (zero when shorter) and capped at :data:`LIMB_MAX_SHIFT` ×
    ``height_px``; the root joint's (shoulder, hip) is zero so the seam with the torso stays put. The middle
    joint (elbow, knee) takes its offset where it and the root's landmark are confident
    (:data:`LIMB_MIN_VISIBILITY`), else none; the end joint (wrist, ankle) where it and the middle one's are, else
    the middle joint's. A vertex takes the offset blended linearly between the two joints of its nearest segment
    (3-D, posed) at its position along it; beyond the end joint (hand, foot) the end joint's. Zero elsewhere."""
    kp = np.asarray(keypoints, dtype=np.float64)
    jt = np.asarray(joints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] < 33 or kp.shape[1] < 3 or jt.ndim != 2 or jt.shape[0] < 22 or jt.shape[1] != 3:
        raise EngineError("internal", f"Limb keypoints {kp.shape} / joints {jt.shape} are not BlazePose's (33, 3) "
                          "and SMPL-X's (55, 3).", "Pass observation.keypoints and fit.joints.")
    out = np.zeros((len(posed), 2), dtype=np.float32)
    cap, dead = LIMB_MAX_SHIFT * float(height_px), LIMB_DEAD_ZONE * float(height_px)
    for part, chain in LIMB_CHAINS.items():
        sel = np.nonzero(parts == part)[0]
        if not len(sel):
            continue
        jid, lid = [c[0] for c in chain], [c[1] for c in chain]
        proj, z = camera.project(jt[jid])
        ok = (kp[lid, 2] >= LIMB_MIN_VISIBILITY) & (z > 1e-4) & np.isfinite(kp[lid, :2]).all(axis=1)
        d = kp[lid, :2] - proj
        length = np.linalg.norm(d, axis=1)
        d *= (np.clip(length - dead, 0.0, cap) / np.maximum(length, 1e-9))[:, None]
        d_mid = d[1] if ok[0] and ok[1] else np.zeros(2)
        d_end = d[2] if ok[1] and ok[2] else d_mid
        if not (d_mid.any() or d_end.any()):
            continue
        ends = ((np.zeros(2), d_mid), (d_mid, d_end))
        p = posed[sel]
        best = np.full(len(sel), np.inf)
        for k, (a, b) in enumerate(((jt[jid[0]], jt[jid[1]]), (jt[jid[1]], jt[jid[2]]))):
            ab = b - a
            t = np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
            dist = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
            closer = dist < best
            best = np.where(closer, dist, best)
            off = (1 - t)[:, None] * ends[k][0] + t[:, None] * ends[k][1]
            out[sel[closer]] = off[closer]
    return out


#: A head whose seen samples stop this far (fraction of the head's height) below its top was cut off by the photo's
#: frame or hidden: its hair was not seen (:func:`_unseen_hair_colour`).
HAIR_TOP_UNSEEN = 0.25
#: Hair colour (RGB, 0–255) of a head whose top was not seen and whose visible top shows no hairline: a dark
#: neutral brown (most hair; far less wrong than skin over the whole back of the head).
HAIR_FALLBACK = (45.0, 35.0, 30.0)


def _unseen_hair_colour(head_y: np.ndarray, points: np.ndarray, colours: np.ndarray) -> np.ndarray | None:
    """Hair colour (3,) for the hidden side of a head, or None (bald: keep the profile, skin). ``head_y`` (K,) the
    heights of all the head's vertices (metres, Y up), ``points`` (S, 3) / ``colours`` (S, 3) its seen ones.

    The hair cluster of :func:`_hair_colour` when the seen head shows both hair and face. When the seen samples
    stop more than :data:`HAIR_TOP_UNSEEN` of the head's height below its top (a head cut off by the photo's
    frame, icon_003883), a bald head cannot be told: the colour is the hairline's (the median of the seen top
    band's samples farther than 2 × :data:`HAIR_MIN_CONTRAST` from the face's skin, when at least 5), else
    :data:`HAIR_FALLBACK`, never the skin."""
    hair, skin = _hair_colour(points, colours)
    if hair is not None:
        return hair
    top, lo = float(head_y.max()), float(head_y.min())
    if float(np.percentile(points[:, 1], 98)) >= top - HAIR_TOP_UNSEEN * (top - lo):
        return None  # the top of the head was seen and shows no hair: bald
    y = points[:, 1]
    band = y >= y.max() - 0.2 * np.ptp(y)
    hairline = band & (np.linalg.norm(colours - skin, axis=1) > 2 * HAIR_MIN_CONTRAST)
    if hairline.sum() >= 5:
        return np.median(colours[hairline], axis=0)
    return np.asarray(HAIR_FALLBACK)


#: A limb's end (fraction of the mesh's height from its far end along the limb: a foot with its shoe, a hand)
#: takes the local majority colour in its profile (:func:`_colour_profile`), not the colour persistent along the limb.
LIMB_END = 0.06


def _limb_end(vertices: np.ndarray, parts: np.ndarray, part: int, axis: np.ndarray) -> float:
    """+1 when a limb's far end (its extreme along ``axis`` farther from the torso's centroid: the foot, the
    hand) lies at the largest positions along ``axis``, −1 when at the smallest, 0 for the torso and head or
    without a torso."""
    if part not in (PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG) or not (parts == PART_TORSO).any():
        return 0.0
    s = vertices[parts == part] @ axis
    centre = float(vertices[parts == PART_TORSO].mean(axis=0) @ axis)
    return 1.0 if abs(float(s.max()) - centre) >= abs(float(s.min()) - centre) else -1.0


#: Each limb's left/right counterpart: a limb the photo does not show at all (the far leg of a side view, hidden
#: behind the near one) takes its counterpart's colour profile, since clothes are mostly alike on both sides (both
#: trouser legs, both sleeves, both shoes) — not a colour diffused in from the torso across the hip.
LIMB_COUNTERPART = {PART_LEFT_ARM: PART_RIGHT_ARM, PART_RIGHT_ARM: PART_LEFT_ARM,
                    PART_LEFT_LEG: PART_RIGHT_LEG, PART_RIGHT_LEG: PART_LEFT_LEG}
#: A part with fewer seen samples than this is treated as not shown (its own profile would rest on a few pixels).
PART_MIN_SEEN = 8
#: Along a limb, a stretch farther than this (fraction of the mesh's height) from every seen sample of the limb
#: takes the counterpart's profile there: the far leg of a side view shows only its shoe, whose colour the own
#: profile would otherwise stretch up to the hip.
COUNTERPART_GAP = 0.1


def _limb_fraction(vertices: np.ndarray, parts: np.ndarray, part: int) -> tuple[np.ndarray, float]:
    """(N,) every vertex's position along limb ``part``'s principal axis as a fraction of the limb's length, 0 at
    its root (the end nearer the torso) and 1 at its far end (foot, hand), and that length (metres)."""
    axis = _part_axis(vertices, parts, part)
    s = vertices @ axis
    lo, hi = float(s[parts == part].min()), float(s[parts == part].max())
    length = max(hi - lo, 1e-6)
    t = (s - lo) / length if _limb_end(vertices, parts, part, axis) >= 0 else (hi - s) / length
    return t, length


#: A limb with seen vertices below this fraction of its own, whose counterpart shows at least
#: :data:`UNSHOWN_RATIO` times that fraction, counts as not shown (:func:`unshown_limb_keep`).
UNSHOWN_FRACTION = 0.05
UNSHOWN_RATIO = 4.0


#: Hand labels of :func:`hand_labels_from_skin_weights`: 0 not a hand, 1 / 2 the left / right hand's palm (the
#: wrist and the fingers' roots), 3 / 4 the left / right fingers.
HAND_PALM = {"left": 1, "right": 2}
HAND_FINGERS = {"left": 3, "right": 4}
#: Fingers (the body model's, grafted onto the avatar: docs/method.md, "The canonical avatar", step 4) keep a photo
#: sample only when it looks like their hand: a finger vertex whose sample lies more than FINGER_COLOUR (RGB,
#: 0–255) from the median of its hand's seen palm samples drops it and takes the fill, its hand's colour. Fingers
#: fitted a little off the photo's read the background between the photo's fingers, which the person mask drawn
#: round a spread hand holds (icon_fb9d20fd's raised hand against the sky: blue fingertips).
FINGER_COLOUR = 60.0
#: Seen palm samples a hand needs before its fingers are judged.
FINGER_MIN_PALM = 10


def hand_labels_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """(N,) int8 hand label per vertex (:data:`HAND_PALM`, :data:`HAND_FINGERS`, 0 elsewhere) from skin weights
    (N, 55) in the SMPL-X joint order: fingers where a hand's finger joints hold more than half of the weight,
    the palm where its wrist and finger joints together do."""
    w = np.asarray(skin_weights, dtype=np.float64)
    out = np.zeros(len(w), dtype=np.int8)
    for side, wrist, first in (("left", 20, 25), ("right", 21, 40)):
        fingers = w[:, first:first + 15].sum(axis=1)
        out[(fingers + w[:, wrist] > 0.5) & (fingers <= 0.5)] = HAND_PALM[side]
        out[fingers > 0.5] = HAND_FINGERS[side]
    return out


def finger_colour_keep(hands: np.ndarray, alpha: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the finger vertices (``hands`` (N,) of :func:`hand_labels_from_skin_weights`) whose
    photo sample (``photo`` (N, 3), weight ``alpha`` (N,)) lies more than :data:`FINGER_COLOUR` from their hand's
    median seen palm colour; True elsewhere (and for a hand with fewer than :data:`FINGER_MIN_PALM` seen palm
    vertices)."""
    keep = np.ones(len(hands), dtype=bool)
    for side in ("left", "right"):
        palm = (hands == HAND_PALM[side]) & (alpha > SEEN_ALPHA)
        if palm.sum() < FINGER_MIN_PALM:
            continue
        reference = np.median(photo[palm], axis=0)
        fingers = np.nonzero((hands == HAND_FINGERS[side]) & (alpha > 0))[0]
        keep[fingers] = np.linalg.norm(photo[fingers] - reference, axis=1) <= FINGER_COLOUR
    return keep


def unshown_limb_keep(parts: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(N,) bool: False for every vertex of a limb the photo barely shows — seen vertices (``alpha`` (N,) >
    :data:`SEEN_ALPHA`) under :data:`UNSHOWN_FRACTION` of the limb's, while its counterpart
    (:data:`LIMB_COUNTERPART`) shows :data:`UNSHOWN_RATIO` times that share. What such a limb shows are slivers
    along its outline, where the fitted limb lying a few pixels off the photo's lets the background or the limb
    in front through (dev photo icon_923d65f7, a backflip seen from the side: the far leg's slivers show the dark
    doorway, and its profile turned the whole grey trouser leg black); it then takes its counterpart's profile
    whole (:func:`counterpart_limb_fill`)."""
    keep = np.ones(len(parts), dtype=bool)
    seen = alpha > SEEN_ALPHA
    share = {p: float(seen[parts == p].mean()) if (parts == p).any() else 0.0 for p in LIMB_COUNTERPART}
    for part, other in LIMB_COUNTERPART.items():
        if share[part] < UNSHOWN_FRACTION and share[other] >= UNSHOWN_RATIO * max(share[part], 1e-3):
            keep[parts == part] = False
    return keep


def counterpart_limb_fill(vertices: np.ndarray, parts: np.ndarray, part: int, samples: np.ndarray,
                          colours: np.ndarray, view_cos: np.ndarray, height: float,
                          lit: np.ndarray | None = None) -> np.ndarray | None:
    """Colours (N, 3) for limb ``part`` from its counterpart's (:data:`LIMB_COUNTERPART`) seen samples at the same
    fraction of the limb's length (:func:`_limb_fraction`: hip to foot, shoulder to hand), profiled like a limb's
    own (:func:`_colour_profile`, its end band included); None for the torso and head or when the counterpart has
    fewer than :data:`PROFILE_MIN_SAMPLES` samples. ``samples`` (N,) bool the vertices that give samples,
    ``colours`` (N, 3) their colours (0–255), ``view_cos`` (N,) as in :func:`unseen_side_fill`, ``height`` the
    mesh's height (metres), ``lit`` (N,) extra sample weights (:func:`unseen_side_fill`'s light weights). ``vertices``
    in the rest pose (straight limbs)."""
    other = LIMB_COUNTERPART.get(int(part))
    if other is None:
        return None
    vis = np.nonzero((parts == other) & samples)[0]
    if len(vis) < PROFILE_MIN_SAMPLES:
        return None
    t_other, length = _limb_fraction(vertices, parts, other)
    t_own = _limb_fraction(vertices, parts, part)[0]
    weight = np.clip(1.05 - view_cos[vis], 0.05, 1.0) ** SIDE_WEIGHT_POWER
    if lit is not None:
        weight = weight * lit[vis]
    end = 1.0 - LIMB_END * height / length
    return _colour_profile(t_other[vis], colours[vis], weight, t_own, PROFILE_WINDOW * height / length,
                           (end, np.inf))


def _end_samples(vertices: np.ndarray, parts: np.ndarray, part: int, samples: np.ndarray, height: float) -> int:
    """How many of limb ``part``'s sample vertices (``samples`` (N,) bool) lie in its end band (the last
    :data:`LIMB_END` × ``height`` metres along the limb: the foot with its shoe, the hand); 0 without samples."""
    if not ((parts == part) & samples).any():
        return 0
    t, length = _limb_fraction(vertices, parts, part)
    return int(((parts == part) & samples & (t >= 1.0 - LIMB_END * height / length)).sum())


def _fill_shading(normals: np.ndarray, colours: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                  camera: Camera) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(shading factors (N,) or None, stats) of one photo's directional light (:mod:`icon_engine.lighting`),
    fitted on the seen vertices (``alpha`` > :data:`SEEN_ALPHA`) of every part but the head (hair above a face is
    darker whatever the light) with one albedo per part; ``normals`` (N, 3) in the photo's pose (bundle world),
    ``colours`` (N, 3) their photo colours. None when the light is too weak to matter (soft or frontal light)."""
    from .lighting import fit_directional_light, shading_factors

    seen = alpha > SEEN_ALPHA
    sel = seen & (parts != PART_HEAD)
    light = fit_directional_light(normals[sel], colours[sel], parts[sel], view_axis=camera.R[2])
    if light is None:
        return None, {"light": None}
    stats = {"light": {"vector": np.round(light.vector, 3).tolist(), "strength": round(light.strength, 3),
                       "explained": round(light.explained, 3), "used": light.significant}}
    return (shading_factors(normals, light, seen) if light.significant else None), stats


def unseen_side_fill(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                     photo_colours: np.ndarray, view_cos: np.ndarray,
                     own_pixel: np.ndarray | None = None,
                     shading: np.ndarray | None = None, behind: np.ndarray | None = None,
                     fade: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fill colours (N, 3) of every vertex for its unseen side, per body part (``parts`` (N,)).

    Seen vertices (``alpha`` > :data:`SEEN_ALPHA`) keep their ``photo_colours``. A hidden vertex takes the
    colour profile (:func:`_colour_profile`) of its own part's seen vertices at the same position along the
    part's axis (vertical for the head, the principal axis for the torso and limbs), with samples weighted
    towards the silhouette (``view_cos`` (N,): cosine between the normal and the direction to the camera;
    weight (1.05 − cos) ** :data:`SIDE_WEIGHT_POWER`): the back of the torso gets the garment colour at the
    same height, a foot its shoe colour, an arm its sleeve or skin. The head's hidden side above its neck
    (:data:`HAIR_FROM`) takes the hair colour (:func:`_hair_colour`), never the face. Hidden vertices within
    :data:`SEAM_BAND` of the seen ones (same part) are filled harmonically on the part-restricted mesh graph, so
    the front/back boundary is a smooth blend. A limb with fewer than :data:`PART_MIN_SEEN` samples, and the
    stretches of a limb farther than :data:`COUNTERPART_GAP` from its samples, take its counterpart limb's
    profile (:func:`counterpart_limb_fill`); other parts with nothing seen are filled
    harmonically (whole mesh where a part has nothing known). ``own_pixel`` (N,) bool: the nearest surface at
    the vertex's pixel belongs to its own part (a torso vertex just behind crossed arms shows the arms: it keeps
    that photo colour but gives no sample). ``shading`` (N,): each vertex's brightness under the photo's
    directional light relative to the median (:func:`icon_engine.lighting.shading_factors`); a sample in shadow
    (below 1) weighs ``shading ** SHADOW_POWER`` in the profiles, so a hidden side next to a shadowed silhouette (a
    jumper's belly facing the ground in sunlight) takes the garment's colour where it is lit, not its shadow's.
    Only the weights change: no colour is brightened (a deep shadow's hue is noise) and seen vertices keep theirs.
    ``behind`` (N,) bool: hidden vertices behind another part (:func:`behind_other_part`), ``fade`` (N,) the seen
    vertices' share of their photo colour next to them (:func:`behind_fade`): both take their part's profile as the
    photo shows it head-on (samples weighted by their cosine to the camera, the faded ones left out where the
    position along the part has enough others: :func:`_clear_first_profile`) directly, without the seam band's
    blend from the occluder's outline (which would draw the limb's shape in its shadow's colour on the body). The
    hidden side's own profile is unchanged by them.
    """
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float64)
    height = float(np.ptp(v[:, 1])) or 1.0
    seen = alpha > SEEN_ALPHA
    # samples in the photo's shadow count less (their colour is the shadow's, not the garment's)
    lit = np.ones(len(v)) if shading is None else np.minimum(np.asarray(shading, dtype=np.float64), 1.0) ** SHADOW_POWER
    # hidden behind another part, or seen next to such a region: the part's face-on profile without the seam band
    unfaded = np.ones(len(v), dtype=bool) if fade is None else np.asarray(fade) >= 1.0
    direct = seen & ~unfaded
    if behind is not None:
        direct |= np.asarray(behind, dtype=bool)
    filled = ~seen | direct
    seed = np.asarray(photo_colours, dtype=np.float64).copy()
    known = ~filled
    stats: dict[str, Any] = {"hair_colour": None}
    sample = seen if own_pixel is None else seen & own_pixel
    for part in np.unique(parts):
        sel = parts == part
        vis, hid = np.nonzero(sel & sample)[0], np.nonzero(sel & filled)[0]
        if not len(hid):
            continue
        if len(vis) < PART_MIN_SEEN:  # a limb not shown: its counterpart's profile (else the harmonic fill)
            mirrored = counterpart_limb_fill(v, parts, int(part), sample, seed, view_cos, height, lit)
            if mirrored is not None:
                seed[hid], known[hid] = mirrored[hid], True
                stats.setdefault("counterpart_filled", []).append(PART_NAMES[int(part)])
            continue
        axis = _profile_axis(v, parts, int(part))
        s = v @ axis
        weight = np.clip(1.05 - view_cos[vis], 0.05, 1.0) ** SIDE_WEIGHT_POWER
        sign = _limb_end(v, parts, part, axis)  # a limb's end (foot, hand): its own garment
        band = None
        if sign > 0:
            band = (float(s[sel].max()) - LIMB_END * height, np.inf)
        elif sign < 0:
            band = (-np.inf, float(s[sel].min()) + LIMB_END * height)
        fill = _colour_profile(s[vis], seed[vis], weight * lit[vis], s[hid], PROFILE_WINDOW * height, band)
        front = np.nonzero(direct[hid])[0]
        if len(front):  # behind a limb, facing the camera: the part as the photo shows it head-on, not its sides,
            # from the samples away from any occluder's outline (its shadow, its colour's bleed) where there are some
            face_on = np.clip(view_cos[vis], 0.05, 1.0) ** SIDE_WEIGHT_POWER
            fill[front] = _clear_first_profile(s[vis], seed[vis], face_on * lit[vis], unfaded[vis], s[hid[front]],
                                               PROFILE_WINDOW * height, band)
        if part == PART_HEAD:
            hair = _unseen_hair_colour(v[sel, 1], v[vis], seed[vis])
            if hair is not None:
                y = v[sel, 1]
                upper = v[hid, 1] >= y.min() + HAIR_FROM * np.ptp(y)
                # a face cut off by the frame faces the camera: skin profile there, hair on the skull above it (the
                # cosine smoothed over the head, so eye sockets and the nose's sides do not count as its sides)
                head_faces = _same_part_faces(np.asarray(faces, dtype=np.int64), parts)
                head_faces = head_faces[parts[head_faces[:, 0]] == PART_HEAD]
                cos_head = _smooth_on_mesh(view_cos[:, None], sel.astype(np.float64), head_faces, 20)[0][:, 0]
                upper &= (cos_head[hid] < HAIR_MAX_COS) | (v[hid, 1] >= y.min() + HAIR_SKULL * np.ptp(y))
                fill[upper] = hair
                stats["hair_colour"] = [round(float(x), 1) for x in hair]
        if part in LIMB_COUNTERPART:  # stretches of the limb the photo does not show: the counterpart's profile
            t_own, length = _limb_fraction(v, parts, int(part))
            gap = cKDTree(t_own[vis, None]).query(t_own[hid, None], k=1)[0] * length
            unshown = gap > COUNTERPART_GAP * height
            # a hidden foot or hand (fewer than PART_MIN_SEEN samples in the limb's end band) whose counterpart's
            # shows: the other's shoe or hand, not the limb's own colour stretched over it (dev photo icon_5a6a2596:
            # a far foot behind the near shin took the shin's skin and became a bare foot beside a boot)
            end = t_own[hid] >= 1.0 - LIMB_END * height / length
            other = LIMB_COUNTERPART[int(part)]
            if (end.any() and (t_own[vis] >= 1.0 - LIMB_END * height / length).sum() < PART_MIN_SEEN
                    and _end_samples(v, parts, other, sample, height) >= PROFILE_MIN_SAMPLES):
                unshown |= end
            if unshown.any():
                mirrored = counterpart_limb_fill(v, parts, int(part), sample, seed, view_cos, height, lit)
                if mirrored is not None:
                    fill[unshown] = mirrored[hid[unshown]]
                    stats.setdefault("counterpart_filled", []).append(PART_NAMES[int(part)])
        # the band next to the seen side is left to the harmonic blend
        dist = cKDTree(v[vis]).query(v[hid], k=1)[0]
        far = (dist >= SEAM_BAND * height) | direct[hid]
        seed[hid[far]] = fill[far]
        known[hid[far]] = True
    same = _same_part_faces(np.asarray(faces, dtype=np.int64), parts)
    out = harmonic_fill(seed, known, same, fallback_faces=faces)
    stats["profile_vertex_fraction"] = float((known & filled).mean())
    return out, stats


# ----------------------------------------------------------------------------------------------------------------
# UV atlas


def unwrap(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """xatlas UV atlas with fast settings: per-corner UVs (M, 3, 2) in [0, 1], origin bottom-left."""
    import xatlas

    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.uint32)
    atlas = xatlas.Atlas()
    atlas.add_mesh(v, f)
    chart = xatlas.ChartOptions()
    chart.max_iterations = 1
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = ATLAS_PADDING
    pack.bilinear = True
    pack.blockAlign = True
    pack.bruteForce = False
    atlas.generate(chart, pack)
    _vmap, indices, uvs = atlas[0]
    if len(indices) != len(f):
        raise EngineError("internal", "The UV atlas lost faces of the mesh.", "Report this with the input photo.")
    uv = np.asarray(uvs, dtype=np.float64)[np.asarray(indices, dtype=np.int64)]
    uv[..., 1] = 1.0 - uv[..., 1]  # xatlas rows grow downwards; bundle UVs have their origin bottom-left
    return np.clip(uv, 0.0, 1.0)


#: Meshes with more faces than this get the projection atlas (xatlas' chart search takes minutes on 100k faces).
XATLAS_MAX_FACES = 30_000

#: Projection directions of the projection atlas and, per direction, (u axis, v axis) with u × v = direction,
#: so charts keep the counter-clockwise winding.
_AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
_UV_AXES = np.array([
    [[0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 0, -1]],
    [[1, 0, 0], [0, 0, 1]], [[1, 0, 0], [0, 1, 0]], [[-1, 0, 0], [0, 1, 0]],
], dtype=np.float64)  # fmt: skip


def _face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(K, 2) pairs of faces sharing an edge."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(len(f)), 3)
    key = e[:, 0] * (int(f.max()) + 1) + e[:, 1]
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    same = key[1:] == key[:-1]
    return np.stack([owner[:-1][same], owner[1:][same]], axis=1)


def _chart_labels(normals: np.ndarray, adjacency: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Projection direction per face: the best-aligned axis, then a few majority votes over neighbours (fewer
    tiny charts), never picking a direction the face turns away from."""
    score = normals @ _AXES.T  # (M, 6)
    label = score.argmax(axis=1)
    m = len(normals)
    for _ in range(rounds):  # neighbour votes per (face, direction) counted by bincount (np.add.at is ~10× slower)
        votes = (np.bincount(adjacency[:, 0] * 6 + label[adjacency[:, 1]], minlength=m * 6)
                 + np.bincount(adjacency[:, 1] * 6 + label[adjacency[:, 0]], minlength=m * 6)).reshape(m, 6)
        votes = votes.astype(np.float64)
        votes[np.arange(m), label] += 1.5
        votes[score < 0.2] = -1.0  # keep each face well in front of its projection plane
        label = votes.argmax(axis=1)
    return label


def _charts(label: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """Chart id per face: connected components of edge-adjacent faces with the same label."""
    from scipy.sparse.csgraph import connected_components

    keep = label[adjacency[:, 0]] == label[adjacency[:, 1]]
    a = adjacency[keep]
    m = len(label)
    graph = sp.coo_matrix((np.ones(len(a)), (a[:, 0], a[:, 1])), shape=(m, m))
    return connected_components(graph, directed=False)[1]


def _shelf_pack(sizes: np.ndarray, atlas: float) -> tuple[np.ndarray, float] | None:
    """Place boxes (C, 2) (width, height) on shelves in an ``atlas`` × ``atlas`` square: offsets (C, 2) and the
    used height, or None when they do not fit."""
    placed = _shelf_pack_free(sizes, atlas)
    return None if placed is None else placed[:2]


def _shelf_pack_free(sizes: np.ndarray, atlas: float) -> tuple[np.ndarray, float, list[list[float]]] | None:
    """:func:`_shelf_pack` and the free rectangles it leaves, [x, y, width, height] (texels): the rest of each
    shelf to its right and the space below the last shelf."""
    order = np.argsort(-sizes[:, 1], kind="stable")  # tallest first: a shelf's first box sets its height
    width, height = sizes[order, 0], sizes[order, 1]
    if len(order) and float(width.max()) > atlas:
        return None
    placed = np.zeros((len(order), 2), dtype=np.float64)
    free: list[list[float]] = []
    y = shelf = x_end = 0.0
    start = 0
    while start < len(order):  # one shelf at a time: boxes while their running width stays within the atlas
        run = np.add.accumulate(width[start:])  # sequential sums: the x a box-by-box loop reaches
        end = start + int(np.searchsorted(run, atlas, side="right"))
        shelf = float(height[start])
        if y + shelf > atlas:
            return None
        placed[start + 1:end, 0] = run[:end - start - 1]
        placed[start:end, 1] = y
        x_end = float(run[end - start - 1])
        start = end
        if start < len(order):
            free.append([x_end, y, atlas - x_end, shelf])
            y += shelf
    pos = np.zeros_like(sizes)
    pos[order] = placed
    free.append([x_end, y, atlas - x_end, shelf])
    free.append([0.0, y + shelf, atlas, atlas - y - shelf])
    return pos, y + shelf, free


def projection_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = 2,
                     rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fast UV atlas: faces grouped by their best axis-aligned view direction (±X, ±Y, ±Z) into connected charts,
    each chart projected orthographically on its plane, charts shelf-packed with ``padding`` texels around each.
    Faces of a chart that folds over itself (found by rasterising the atlas) move to their next-best direction
    once; the folds left after that become single-face charts in the space the layout left free (no room: the
    atlas is packed again with them), so no two faces share a texel.

    Returns (per-corner UVs (M, 3, 2) in [0, 1], origin bottom-left; chart id per face (M,))."""
    uv, chart, _ = _projection_atlas(vertices, faces, size, padding, rounds)
    return uv, chart


def _projection_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = 2,
                      rounds: int = 3, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, UVTexels]:
    """:func:`projection_atlas` and the texels of its final layout (the last fold check's raster, which the bake
    reuses instead of rasterising the atlas again; that full-size check runs on ``device``)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = face_normals(v, f)
    adj = _face_adjacency(f)
    label = _chart_labels(n, adj)
    score = n @ _AXES.T
    single = np.zeros(len(f), dtype=bool)
    moved = np.zeros(len(f), dtype=bool)
    last = False
    for attempt in range(rounds + 2):
        chart = _charts(np.where(single, -1 - np.arange(len(f)), label), adj)
        local = np.einsum("mkc,mdc->mkd", v[f], _UV_AXES[label])  # (M, 3, 2) metres in each face's plane
        local[single] = _own_plane(v[f[single]], n[single])
        uv, scale, free = _pack_charts_layout(local, chart, size, padding)
        last = last or attempt == rounds + 1
        texels = uv_texels(uv, size, device)  # the fold check's raster, which the bake reuses
        if last:
            break
        bad = _overlapping_faces(uv, f, size, texels)
        if not bad.any():
            break
        if attempt > 0:  # the folds left after the first round become single-face charts in the space the
            idx = np.nonzero(bad)[0]  # layout left free, at its scale, and only they are rasterised again (the
            placed = _place_in_free(_own_plane(v[f[idx]], n[idx]), scale, free, size, padding)  # other charts
            if placed is not None:  # only lost faces, so nothing else overlaps)
                uv[idx] = placed
                chart = np.where(bad, int(chart.max()) + 1 + np.cumsum(bad) - 1, chart)
                texels = _replace_faces(texels, idx, uv_texels(placed, size, device))
                break
            single |= bad  # no room left: single charts, and the next layout is the last (a chart of one face
            last = True  # cannot fold, and the other charts only lost faces: overlaps in a chart's plane do not
            continue  # depend on the scale)
        # a folded face moves to its next-best direction once; folded again, or without a direction it faces
        # well, or after ``rounds`` rounds, it becomes a chart of its own
        idx = np.nonzero(bad)[0]
        s2 = score[idx].copy()
        s2[np.arange(len(idx)), label[idx]] = -np.inf
        nxt = s2.argmax(axis=1)
        ok = (s2[np.arange(len(idx)), nxt] >= 0.2) & ~moved[idx] & (attempt < rounds)
        label[idx[ok]] = nxt[ok]
        moved[idx[ok]] = True
        single[idx[~ok]] = True
    return uv, chart, texels


def _replace_faces(texels: UVTexels, idx: np.ndarray, new: UVTexels) -> UVTexels:
    """``texels`` with the fragments of faces ``idx`` (K,) replaced by ``new`` (the :func:`uv_texels` of those K
    faces alone, face k ↦ idx[k])."""
    replaced = np.zeros(int(max(texels.face.max(initial=-1), idx.max(initial=-1))) + 1, dtype=bool)
    replaced[idx] = True
    keep = ~replaced[texels.face]  # a lookup table instead of np.isin's sort
    return UVTexels(np.concatenate([texels.face[keep], idx[new.face]]),
                    np.concatenate([texels.texel[keep], new.texel]),
                    np.concatenate([texels.bary[keep], new.bary]), texels.size)


def _own_plane(tri: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Triangles (K, 3, 3) in their own plane: (K, 3, 2) coordinates with counter-clockwise winding kept."""
    e1 = tri[:, 1] - tri[:, 0]
    e1 /= np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-20)
    e2 = np.cross(normals, e1)
    rel = tri - tri[:, :1]
    return np.stack([np.einsum("kic,kc->ki", rel, e1), np.einsum("kic,kc->ki", rel, e2)], axis=-1)


def _overlapping_faces(uv: np.ndarray, faces: np.ndarray, size: int,
                       texels: UVTexels | None = None) -> np.ndarray:
    """(M,) bool: faces sharing a texel centre with another face that has no vertex in common with it
    (``texels``: :func:`uv_texels` of ``uv`` at ``size`` when already at hand)."""
    t = uv_texels(uv, size) if texels is None else texels
    shared = np.bincount(t.texel, minlength=size * size)[t.texel] > 1  # only texels with several fragments
    fp, ff = t.texel[shared], t.face[shared]
    order = np.lexsort((ff, fp))
    fp, ff = fp[order], ff[order]
    same = fp[1:] == fp[:-1]
    a, b = ff[:-1][same], ff[1:][same]
    touching = (faces[a][:, :, None] == faces[b][:, None, :]).any(axis=(1, 2))
    bad = np.zeros(len(faces), dtype=bool)
    bad[a[~touching]] = True
    bad[b[~touching]] = True
    return bad


def _pack_charts(local: np.ndarray, chart: np.ndarray, size: int, padding: int) -> np.ndarray:
    """Scale and shelf-pack charts (per-corner plane coordinates (M, 3, 2) metres, chart id per face) into [0, 1]².

    Tall charts are turned by 90° (winding kept) so shelves stay low; the largest scale that fits is found by
    bisection."""
    return _pack_charts_layout(local, chart, size, padding)[0]


def _pack_charts_layout(local: np.ndarray, chart: np.ndarray, size: int,
                        padding: int) -> tuple[np.ndarray, float, list[list[float]]]:
    """:func:`_pack_charts` and its layout: the scale (texels per metre) and the free rectangles it leaves
    ([x, y, width, height] texels, y down from the top: :func:`_shelf_pack_free`)."""
    local = local.copy()
    n_charts = int(chart.max()) + 1

    order = np.argsort(chart, kind="stable")
    starts = np.searchsorted(chart[order], np.arange(n_charts))  # every chart id up to the max has a face

    def bounds(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.minimum.reduceat(np.take(np.minimum(np.minimum(pts[:, 0], pts[:, 1]), pts[:, 2]), order, axis=0),
                                 starts, axis=0)  # corner-wise min/max: faster than .min(axis=1) over 3 corners
        hi = np.maximum.reduceat(np.take(np.maximum(np.maximum(pts[:, 0], pts[:, 1]), pts[:, 2]), order, axis=0),
                                 starts, axis=0)
        return lo, hi

    lo, hi = bounds(local)
    tall = (hi - lo)[:, 1] > (hi - lo)[:, 0]
    turn = tall[chart]
    local[turn] = np.stack([local[turn][..., 1], -local[turn][..., 0]], axis=-1)  # rotate by −90°
    lo, hi = bounds(local)
    extent = hi - lo
    area = float((extent[:, 0] * extent[:, 1]).sum())

    def attempt(scale: float) -> tuple[np.ndarray, float, list[list[float]]] | None:
        return _shelf_pack_free(np.ceil(extent * scale) + 2 * padding + 1, float(size))

    good, bad = 0.0, 1.2 * size / np.sqrt(max(area, 1e-12))  # texels per metre: the upper bound never fits
    while attempt(bad) is not None:
        good, bad = bad, bad * 1.5
    for _ in range(18):
        mid = 0.5 * (good + bad)
        if attempt(mid) is not None:
            good = mid
        else:
            bad = mid
    placed = attempt(good) if good > 0 else None
    if placed is None:
        raise EngineError("internal", "The UV charts did not fit the texture.", "Use a larger texture size.")
    pos, _, free = placed
    # texel coordinates: x to the right, y down from the top; chart plane v axis points up
    tx = pos[chart][:, None, 0] + padding + (local[..., 0] - lo[chart][:, None, 0]) * good
    ty = pos[chart][:, None, 1] + padding + (hi[chart][:, None, 1] - local[..., 1]) * good
    uv = np.stack([tx / size, 1.0 - ty / size], axis=-1)
    return np.clip(uv, 0.0, 1.0), good, free


def _place_in_free(local: np.ndarray, scale: float, free: list[list[float]], size: int,
                   padding: int) -> np.ndarray | None:
    """Per-corner UVs (K, 3, 2) of K single-face charts (their own plane coordinates (K, 3, 2) metres) placed at
    ``scale`` (texels per metre) into the ``free`` rectangles an atlas layout left (:func:`_pack_charts_layout`;
    used space is taken from them), each with ``padding`` texels around it as in the packing; None when they do
    not all fit (then the whole atlas is packed again)."""
    lo, hi = local.min(axis=1), local.max(axis=1)
    boxes = np.ceil((hi - lo) * scale) + 2 * padding + 1
    pos = np.zeros_like(boxes)
    for i in np.argsort(-boxes[:, 1], kind="stable"):
        w, h = boxes[i]
        for rect in free:
            if w <= rect[2] and h <= rect[3]:
                pos[i] = rect[:2]
                rect[0] += w  # the rest of the rectangle to the right stays free (its full height)
                rect[2] -= w
                break
        else:
            return None
    tx = pos[:, None, 0] + padding + (local[..., 0] - lo[:, None, 0]) * scale
    ty = pos[:, None, 1] + padding + (hi[:, None, 1] - local[..., 1]) * scale
    return np.clip(np.stack([tx / size, 1.0 - ty / size], axis=-1), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def _dilate(image: np.ndarray, covered: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge padding: empty texels within ``steps`` texels of an island copy the nearest covered texel
    (``image`` (S, S, C) uint8, ``covered`` (S, S) bool). Returns (padded image, covered or padded)."""
    import cv2

    if covered.all() or not covered.any():
        return image, covered.copy()
    # distance of every empty texel to the nearest covered one (5 × 5 chamfer mask: within 2 % of Euclidean),
    # labelled with that texel; covered texels carry their own labels, which map back to their positions
    dist, labels = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    flat_cov = np.flatnonzero(covered)
    where = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    where[labels.reshape(-1)[flat_cov]] = flat_cov
    grow = (~covered) & (dist <= steps)
    img = image.reshape(-1, image.shape[-1]).copy()
    g = np.flatnonzero(grow)
    img[g] = np.take(img, where[labels.reshape(-1)[g]], axis=0)
    return img.reshape(image.shape), covered | grow


class _Clock:
    """Wall-clock and CPU laps (seconds) for the stats. A lap's CPU is the whole process's (all threads: the texel
    blocks', the libraries' pools) or, for the laps run while the atlas is made on its own thread
    (``own_thread=True``), the calling thread's alone: the atlas' CPU is timed apart (:func:`_atlas`), so the laps
    add up to :meth:`total` (the whole bake's wall and process CPU)."""

    def __init__(self) -> None:
        self._start = (time.perf_counter(), time.process_time())
        self._last = (self._start[0], self._start[1], time.thread_time())
        self.laps: dict[str, float] = {}
        self.cpu_laps: dict[str, float] = {}

    def lap(self, name: str, own_thread: bool = False) -> None:
        """Close the lap ``name`` (added to its earlier laps of that name)."""
        now = (time.perf_counter(), time.process_time(), time.thread_time())
        cpu = now[2] - self._last[2] if own_thread else now[1] - self._last[1]
        self.laps[name] = round(self.laps.get(name, 0.0) + now[0] - self._last[0], 3)
        self.cpu_laps[name] = round(self.cpu_laps.get(name, 0.0) + cpu, 3)
        self._last = now

    def total(self) -> None:
        """Record the whole bake's wall and process CPU (all threads) since the clock started, as ``total``."""
        self.laps["total"] = round(time.perf_counter() - self._start[0], 3)
        self.cpu_laps["total"] = round(time.process_time() - self._start[1], 3)


def _atlas(v: np.ndarray, f: np.ndarray, size: int, atlas: str,
           device: str) -> tuple[np.ndarray, UVTexels, float, float]:
    """The bake's UV atlas (per-corner UVs (M, 3, 2)) and its texels (:func:`uv_texels`), with the wall and the
    CPU (this thread's) seconds it took: xatlas up to :data:`XATLAS_MAX_FACES` faces with ``atlas="auto"``, else
    the projection atlas."""
    t0, c0 = time.perf_counter(), time.thread_time()
    if atlas == "auto" and len(f) <= XATLAS_MAX_FACES:
        uv = unwrap(v, f, size)
        texels = uv_texels(uv, size, device)
    else:
        uv, _, texels = _projection_atlas(v, f, size, device=device)
    return uv, texels, time.perf_counter() - t0, time.thread_time() - c0


def _smoothing_iterations(vertices: np.ndarray, faces: np.ndarray) -> int:
    """Neighbour-averaging rounds for a diffusion length of :data:`MIRROR_BLUR` × the mesh's height."""
    t = np.asarray(vertices)[np.asarray(faces[: min(len(faces), 20000)])]
    edge = float(np.linalg.norm(t[:, 1] - t[:, 0], axis=1).mean())
    height = float(np.ptp(np.asarray(vertices)[:, 1]))
    return int(np.clip(2.0 * (MIRROR_BLUR * height / max(edge, 1e-6)) ** 2, 1, 150))


def bake_texture(vertices: np.ndarray, faces: np.ndarray, photo_rgb: np.ndarray, mask: np.ndarray | None,
                 camera: Camera, size: int = 2048, progress: Any = None,
                 vertex_parts: np.ndarray | None = None, more_views: list[PhotoView] | None = None,
                 rest_vertices: np.ndarray | None = None, device: str = "cpu", atlas: str = "auto",
                 keypoints: tuple[np.ndarray, np.ndarray] | None = None, debug: bool = False,
                 vertex_hands: np.ndarray | None = None) -> Texture:
    """Texture the clothed mesh (``vertices`` (N, 3) bundle world, ``faces`` (M, 3)) from ``photo_rgb`` (H, W, 3)
    uint8 seen by ``camera`` (processing pixels), ``mask`` (H, W) bool the person's pixels. ``size``: atlas edge
    in texels. ``vertex_parts`` (N,) int: body-part label per vertex (:data:`PART_NAMES`, e.g. from
    :func:`parts_from_skin_weights`); with it the unseen sides are filled per part (:func:`unseen_side_fill`:
    garment colour at the same height, hair on the back of the head, never a colour from another part), without
    it by mirroring through the body. ``more_views``: other photos of the same person (:class:`PhotoView`, the
    mesh posed as in each): every surface point then takes its colour from the photos that see it best
    (:data:`BLEND_POWER`), each photo's exposure equalised to the first one's (:func:`exposure_gains`); only what
    no photo sees is filled. ``rest_vertices`` (N, 3): the same mesh in its rest pose (the canonical avatar's,
    metres): with parts, the unseen sides are filled along the parts as they lie in the rest pose (a bent or
    raised arm is straight there, so its sleeve/skin profile runs along the arm and not across the bend). See the
    module docstring for the method. ``device``: where the rasteriser's fragments (photo depth
    layers, UV atlas) are made; ``atlas``: ``"auto"`` (xatlas up to :data:`XATLAS_MAX_FACES`
    faces, else the projection atlas) or ``"projection"`` (always the projection atlas: the preview preset's, as
    xatlas costs seconds on a 20–30k-face avatar). ``keypoints``: (BlazePose landmarks (33, 3) pixels +
    visibility, the fitted posed SMPL-X joints (55, 3)): with parts and one photo, each limb reads the photo where
    the photo's limb lies (:func:`limb_alignment`). ``debug``: also return the first photo's visibility step
    (:attr:`Texture.debug`). ``vertex_hands`` (N,) int (:func:`hand_labels_from_skin_weights`): with parts and
    one photo, fingers whose sample does not look like their hand take their hand's fill
    (:func:`finger_colour_keep`)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    parts = _check_parts(vertex_parts, len(v))
    hands = _check_parts(vertex_hands, len(v), "vertex_hands", "hand_labels_from_skin_weights")
    rest = None if rest_vertices is None else np.asarray(rest_vertices, dtype=np.float64)
    if rest is not None and rest.shape != v.shape:
        raise EngineError("internal", f"rest_vertices has shape {rest.shape}, the mesh {v.shape}.",
                          "Pass the rest pose of the same mesh (avatar.rig.rest_vertices).")
    rgb = np.asarray(photo_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EngineError("bad_image", f"The photo to bake has shape {rgb.shape}, not (H, W, 3).",
                          "Load the photo with icon_engine.image_io.load_photo.")
    if (rgb.shape[1], rgb.shape[0]) != (camera.width, camera.height):
        raise EngineError("internal", f"Photo size {rgb.shape[1]}×{rgb.shape[0]} differs from the camera's "
                          f"{camera.width}×{camera.height}.", "Pass the processing photo the fit used.")
    if not 16 <= int(size) <= 16384:
        raise EngineError("bad_option", f"Texture size {size} is out of range.", "Use 256 to 8192.")
    if len(v) == 0 or len(f) == 0:
        raise EngineError("internal", "The clothed surface to texture is empty.", "Check the surface stage.")
    m = np.ones(rgb.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != rgb.shape[:2]:
        raise EngineError("internal", f"The person mask is {m.shape[1]}×{m.shape[0]} but the photo is "
                          f"{rgb.shape[1]}×{rgb.shape[0]}.", "Pass the mask of the processing photo.")

    def report(frac: float, text: str) -> None:
        if progress is not None:
            progress.update(frac, text)

    clock = _Clock()
    report(0.02, "Unwrapping UVs")
    if atlas not in ("auto", "projection"):
        raise ValueError(f"unknown atlas kind {atlas!r}")
    # the atlas depends on the mesh only: it is made on a second thread while the photo is sampled
    atlas_job = in_background(_atlas, v, f, int(size), atlas, device)
    clock.lap("unwrap_wait", own_thread=True)  # the atlas when it ran inline (one worker), else nothing
    report(0.05, "Finding what the photo sees")
    faces_out = f if signed_volume(v, f) >= 0 else f[:, ::-1]
    vn = vertex_normals(v, faces_out)
    eroded = _erode(m, MASK_EROSION)
    photo = rgb.astype(np.float32)
    view = _View(depth_layers(v, faces_out, camera, device), eroded, photo, camera)
    others = [_other_view(o, len(v), faces_out, device) for o in (more_views or [])]
    views = [view] + [ov for ov, _, _ in others]
    near_v = near_f = None
    if parts is not None:  # per-part visibility: a point is seen only where the pixel shows its own part
        near_v = _near_parts(parts, f, _ring_count(v, f, CONTACT_RADIUS))
        near_f = np.bitwise_or.reduce(near_v[f], axis=1)
        for vw in views:
            vw.set_parts(parts[faces_out[:, 0]])
    pose_v = [v] + [pv for _, pv, _ in others]  # the mesh in every photo's pose
    pose_n = [vn] + [pn for _, _, pn in others]

    clock.lap("visibility", own_thread=True)
    report(0.5, "Colouring the vertices")
    align_v = None  # one photo: each limb's pixel offsets onto the photo's limb
    if parts is not None and not more_views and keypoints is not None:
        rows_px = np.nonzero(view.mask.reshape(camera.height, camera.width).any(axis=1))[0]
        align_v = limb_alignment(camera, v, parts, keypoints[0], keypoints[1],
                                 float(rows_px[-1] - rows_px[0] + 1) if len(rows_px) else float(camera.height))
        align_v = align_v if align_v.any() else None
    alpha_v, xy_v = _photo_weight(view, v, vn, near_v, offset=align_v)
    seen_weight_v = alpha_v
    photo_v = _bilinear(photo, xy_v)
    keep_v = None  # one photo: limb samples that show a neighbouring part (limb fitted a few pixels off) drop out
    texel_keep = None  # ... and the texels' share of their photo colour, (N,) float32 per vertex
    if parts is not None and not more_views:
        keep_v = limb_registration_keep(view, v, f, parts, alpha_v, photo_v)
        keep_v &= limb_outline_keep(view, v, v if rest is None else rest, parts, alpha_v, photo_v)
        keep_v &= occluder_edge_keep(view, v, v if rest is None else rest, parts, alpha_v, photo_v)
        keep_v &= unshown_limb_keep(parts, alpha_v)
        if hands is not None:
            keep_v &= finger_colour_keep(hands, alpha_v, photo_v)
        alpha_v = np.where(keep_v, alpha_v, 0.0)
        texel_keep = None if keep_v.all() else keep_v.astype(np.float32)
    gains = None
    multi_stats: dict[str, Any] = {}
    if others:
        if mask is not None and all(o.mask is not None for o in more_views or []):
            for vw in views:  # each photo's blend weight follows how well its fit places the avatar
                vw.registration = _registration(vw)
        _, _, alphas_k, cols_k, cos_all = _sample_views(views, pose_v, pose_n, allowed=near_v)
        gains = exposure_gains(cols_k, alphas_k, v, cos_all)
        photo_v, alpha_v, alphas_k, _, _ = _sample_views(views, pose_v, pose_n, gains, near_v)
        multi_stats = {"photos": len(views), "exposure_gain_offset": np.round(gains, 3).tolist(),
                       "photo_shift_px": [vw.shift.tolist() for vw in views],
                       "photo_registration": [round(vw.registration, 4) for vw in views],
                       "seen_vertex_fraction_per_photo": [float((a > SEEN_ALPHA).mean()) for a in alphas_k],
                       "first_photo_vertex_fraction": float((alphas_k[0] > SEEN_ALPHA).mean())}
    if parts is None:
        smooth_v, smooth_w = _smooth_on_mesh(photo_v, (alpha_v > 0.05).astype(np.float64), f,
                                             _smoothing_iterations(v, f))
        fw = smooth_w[f]
        face_ok = fw.sum(axis=1) > 1e-6
        face_col = np.einsum("mk,mkc->mc", fw, smooth_v[f]) / np.maximum(fw.sum(axis=1), 1e-12)[:, None]
        mirror_v, mirror_ok = _mirror_colours(view, v, face_col, face_ok)
        known = (alpha_v > SEEN_ALPHA) | mirror_ok
        seed = np.where((alpha_v > SEEN_ALPHA)[:, None], photo_v, mirror_v)
        fill_v = harmonic_fill(seed, known, f)
        side_stats: dict[str, Any] = {"mirrored_vertex_fraction": float((mirror_ok & ~(alpha_v > 0.3)).mean()),
                                      "diffused_vertex_fraction": float((~known).mean())}
    else:
        # per photo: the cosine to its camera and whether the nearest surface at the vertex's pixel is its own part;
        # a vertex takes those of the photo that sees it best
        cos_k, own_k, score_k = [], [], []
        for vw, pv, pn in zip(views, pose_v, pose_n, strict=True):
            cos, own_v = _view_cos_own(vw, pv, pn, f, parts)
            cos_k.append(cos)
            own_k.append(own_v)
            score_k.append(_photo_weight(vw, pv, pn, near_v)[0] + 1e-3 * cos)
        best = np.argmax(np.stack(score_k), axis=0)
        rows = np.arange(len(v))
        view_cos, own = np.stack(cos_k)[best, rows], np.stack(own_k)[best, rows]
        shading, light_stats = _fill_shading(vn, photo_v, parts, alpha_v, camera) if not others else (None, {})
        behind_v = fade_v = None
        if not others:  # one photo: what a limb in front hid, and the seen body at its outline, take the profile
            behind_v = behind_other_part(view, v, view_cos, parts, alpha_v)
            behind_v, fade_v = behind_fade(v if rest is None else rest, parts, alpha_v, behind_v)
        fill_v, side_stats = unseen_side_fill(v if rest is None else rest, f, parts, alpha_v, photo_v, view_cos, own,
                                              shading, behind_v, fade_v)
        if fade_v is not None and (fade_v < 1.0).any():
            side_stats["behind_vertex_fraction"] = float(behind_v.mean())
            side_stats["faded_vertex_fraction"] = float((fade_v < 1.0).mean())
            alpha_v = alpha_v * fade_v
            texel_keep = fade_v.astype(np.float32) * (1.0 if keep_v is None else keep_v)
        side_stats.update(light_stats)
    colours_v = alpha_v[:, None] * photo_v + (1 - alpha_v[:, None]) * fill_v

    clock.lap("vertex_colours", own_thread=True)
    report(0.6, "Unwrapping UVs")
    uv, texels, atlas_wall, atlas_cpu = atlas_job.result()
    clock.lap("unwrap_wait", own_thread=True)
    clock.laps["unwrap"], clock.cpu_laps["unwrap"] = round(atlas_wall, 3), round(atlas_cpu, 3)
    report(0.7, "Baking the texture")
    tpix, tf, tb = _one_fragment_per_texel(texels)
    fill_vf = fill_v.astype(np.float32)
    # one photo: the texels' pixels and view angles come from the vertices' camera-frame positions and normals
    v_cam = None if others else np.concatenate([camera.to_camera(v), vn @ camera.R.T], axis=1).astype(np.float32)

    def texel_colours(rows: np.ndarray) -> np.ndarray:
        """Colours (T', 3) float32 of a contiguous block of the texels (``rows``: their indices)."""
        sl = slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)
        tb_b, corners = tb[sl], np.take(f, tf[sl], axis=0)  # corners: (T', 3) vertex ids of each texel's face
        near_t = None if near_f is None else near_f[tf[sl]]
        fill_t = _interpolate(tb_b, corners, fill_vf)
        if others:
            points, normals = [], []
            for pv, pn in zip(pose_v, pose_n, strict=True):
                points.append(_interpolate(tb_b, corners, pv.astype(np.float32)))
                nrm = _interpolate(tb_b, corners, pn.astype(np.float32))
                normals.append(nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12))
            colour_t, alpha_t, _, _, _ = _sample_views(views, points, normals, gains, near_t)
        else:
            proj = _project_interpolated(camera, v_cam, corners, tb_b)
            # the photo weight is 0 where the view-angle ramp is: only the other texels are looked up in the photo
            front = np.nonzero(_ramp(proj.cos) > 0)[0]
            alpha_t = np.zeros(len(tb_b), dtype=np.float32)
            colour_t = np.zeros((len(tb_b), 3), dtype=np.float32)
            alpha_t[front], xy_t = _photo_weight(view, None, None, None if near_t is None else near_t[front],
                                                 _Projected(proj.xy[front], proj.z[front], proj.cos[front]),
                                                 None if align_v is None else
                                                 _interpolate(tb_b[front], corners[front], align_v))
            colour_t[front] = _bilinear(photo, xy_t)
            if texel_keep is not None:  # samples dropped (or faded) at the vertices drop (fade) at the texels
                alpha_t = alpha_t * np.einsum("nk,nk->n", tb_b, texel_keep[corners])
        alpha_t = alpha_t.astype(np.float32)[:, None]
        if parts is not None and not others:  # one photo: the legs' hidden side takes the pattern seen through them
            part_t = parts[corners[:, 0]]
            need = np.nonzero((alpha_t[:, 0] < 1.0) & np.isin(part_t, DETAIL_PARTS))[0]
            points_need = _interpolate(tb_b[need], corners[need], v)
            fill_t[need] += _see_through_detail(view, points_need, part_t[need])
        return alpha_t * colour_t.astype(np.float32) + (1 - alpha_t) * fill_t

    # texel blocks on the cores (numpy releases the GIL in its gathers and arithmetic)
    texel = map_rows(texel_colours, np.arange(len(tpix)), min_rows=100_000)
    image = np.zeros((size * size, 3), dtype=np.uint8)
    image[tpix] = np.clip(np.rint(texel), 0, 255).astype(np.uint8)
    covered = np.zeros(size * size, dtype=bool)
    covered[tpix] = True
    image, covered = image.reshape(size, size, 3), covered.reshape(size, size)
    clock.lap("bake")
    report(0.9, "Blending seams")
    image, grown = _dilate(image, covered, DILATE_TEXELS)
    background = np.clip(np.rint(texel.mean(axis=0)), 0, 255).astype(np.uint8) if len(texel) else np.uint8(128)
    np.copyto(image, background, where=~grown[..., None])  # (a boolean-mask assignment: 1.5× slower)
    clock.lap("dilate")
    clock.total()
    stats = {
        "seconds": clock.laps,
        "cpu_seconds": clock.cpu_laps,
        "size": int(size),
        "faces": int(len(f)),
        "texel_coverage": float(covered.mean()),
        "visible_vertex_fraction": float((alpha_v > 0.3).mean()),
        **side_stats,
        **multi_stats,
    }
    report(1.0, "Texture done")
    debug_out = None
    if debug:
        debug_out = BakeDebug(view.layers.face, view.layers.zbuf, faces_out, seen_weight_v,
                              np.ones(len(v), dtype=bool) if keep_v is None else keep_v, xy_v)
    return Texture(
        uv=uv.astype(np.float32),
        image=image,
        vertex_colors=np.clip(np.rint(colours_v), 0, 255).astype(np.uint8),
        stats=stats,
        debug=debug_out,
    )


def render_textured(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, image: np.ndarray,
                    camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Render the textured mesh in ``camera`` (nearest surface, bilinear texture lookup, no shading).

    Returns (rgb (H, W, 3) float in 0–255, covered (H, W) bool). Used to measure the bake's colour error."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    r = mesh_rasterize(v, f, camera)
    frag_p = np.flatnonzero(r.mask)
    frag_f = r.face.reshape(-1)[frag_p]
    bary = r.bary.reshape(-1, 3)[frag_p]
    tex_uv = np.einsum("nk,nkc->nc", bary, np.asarray(uv, dtype=np.float64)[frag_f])
    size_h, size_w = image.shape[:2]
    xy = np.stack([tex_uv[:, 0] * size_w, (1.0 - tex_uv[:, 1]) * size_h], axis=1)
    out = np.zeros((camera.height * camera.width, 3))
    out[frag_p] = _bilinear(image, xy)
    covered = np.zeros(camera.height * camera.width, dtype=bool)
    covered[frag_p] = True
    return out.reshape(camera.height, camera.width, 3), covered.reshape(camera.height, camera.width)
