"""The bake: atlas, visibility, samples, fill and texels into one :class:`Texture`; and the textured render.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..camera import Camera
from ..errors import EngineError
from ..geometry.barycentric import barycentric_blend
from ..geometry.image_fields import bilinear
from ..geometry.normals import signed_volume, vertex_normals
from ..mesh_queries import rasterize as mesh_rasterize
from ..threads import in_background, map_rows
from . import sampling
from .atlas import _atlas
from .colour_stats import _smooth_on_mesh, harmonic_fill
from .exposure import exposure_gains
from .face_mirror import face_mirror_plane, face_points_on_mesh, face_turn, plan_face_mirror
from .fill import _fill_shading, face_region, hips_below_legs, unseen_side_fill
from .keeps import (
    behind_fade,
    behind_other_part,
    finger_colour_keep,
    limb_alignment,
    limb_front_keep,
    limb_outline_keep,
    limb_registration_keep,
    occluder_edge_keep,
    under_photo_hand,
    unshown_limb_keep,
)
from .parts import PART_HEAD, PART_NAMES, _check_parts, _near_parts, _ring_count
from .sampling import (
    PhotoView,
    _erode,
    _mirror_colours,
    _other_view,
    _photo_blur,
    _photo_weight,
    _project_interpolated,
    _Projected,
    _ramp,
    _registration,
    _sample_views,
    _see_through_detail,
    _View,
    _view_cos_own,
)
from .uv import _dilate, _one_fragment_per_texel, depth_layers

#: Smoothing length of the front colours the hidden side mirrors, as a fraction of the mesh's height.
MIRROR_BLUR = 0.05
#: Per-part visibility (:func:`_photo_weight`): a point may show through the surface of another part only within
#: this distance along the mesh (metres) of that part (the part boundaries: shoulders, neck, hips).
CONTACT_RADIUS = 0.03
#: Texels of dilation around each island.
DILATE_TEXELS = 6
#: The direction the body faces in its rest pose (Y-up SMPL-X world: +Z).
REST_FORWARD = np.array([0.0, 0.0, 1.0])


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
                 vertex_hands: np.ndarray | None = None,
                 photo_hands: dict[str, np.ndarray] | None = None,
                 photo_face: np.ndarray | None = None) -> Texture:
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
    raised arm is straight there, so its sleeve/skin profile runs along the arm and not across the bend). See
    :mod:`icon_engine.texture` for the method. ``device``: where the rasteriser's fragments (photo depth layers,
    UV atlas) are made; ``atlas``: ``"auto"`` (xatlas up to :data:`.atlas.XATLAS_MAX_FACES` faces, else the
    projection atlas) or ``"projection"`` (always the projection atlas: the preview preset's, as
    xatlas costs seconds on a 20–30k-face avatar). ``keypoints``: (BlazePose landmarks (33, 3) pixels +
    visibility, the fitted posed SMPL-X joints (55, 3)): with parts and one photo, each limb reads the photo where
    the photo's limb lies (:func:`limb_alignment`). ``debug``: also return the first photo's visibility step
    (:attr:`Texture.debug`). ``vertex_hands`` (N,) int (:func:`hand_labels_from_skin_weights`): with parts and
    one photo, fingers whose sample does not look like their hand take their hand's fill
    (:func:`finger_colour_keep`); with ``photo_hands`` (the photo's hand landmarks, ``{"left"|"right": (21, 3)}``
    processing pixels) too, the other parts under the photo's hands take their fill and fade at the hands' outline
    as behind a limb (:func:`under_photo_hand`). ``photo_face`` (7, 3): the photo's face points
    (:data:`icon_engine.person.FACE_POINTS`, processing pixels): with parts, the rest pose and one photo, the far
    half of a face seen turned takes its near half's photo colours, mirrored through the photo's own face midline
    (:mod:`.face_mirror`)."""
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
    eroded = _erode(m, sampling.MASK_EROSION)
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
    photo_v = bilinear(photo, xy_v)
    keep_v = None  # one photo: limb samples that show a neighbouring part (limb fitted a few pixels off) drop out
    under_hand_v = None  # ... and the other parts' samples under the photo's hands
    texel_fade = None  # ... and the texels' share of their photo colour beside a limb in front, (N,) float32
    if parts is not None and not more_views:
        keep_v = limb_registration_keep(view, v, f, parts, alpha_v, photo_v)
        keep_v &= limb_outline_keep(view, v, v if rest is None else rest, parts, alpha_v, photo_v)
        keep_v &= occluder_edge_keep(view, v, v if rest is None else rest, parts, alpha_v, photo_v)
        keep_v &= limb_front_keep(view, v, v if rest is None else rest, parts, alpha_v, photo_v)
        keep_v &= unshown_limb_keep(parts, alpha_v)
        if hands is not None:
            keep_v &= finger_colour_keep(hands, alpha_v, photo_v)
            if photo_hands:
                under_hand_v = under_photo_hand(view, v, parts, hands, photo_hands, alpha_v, photo_v)
                keep_v &= ~under_hand_v
        if not keep_v.all():  # the dropped samples' pixels show another part: their detail is not seen through
            view.foreign = sampling.foreign_pixels(view, v, ~keep_v & (alpha_v > sampling.SEEN_ALPHA))
        alpha_v = np.where(keep_v, alpha_v, 0.0)
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
                       "seen_vertex_fraction_per_photo": [float((a > sampling.SEEN_ALPHA).mean()) for a in alphas_k],
                       "first_photo_vertex_fraction": float((alphas_k[0] > sampling.SEEN_ALPHA).mean())}
    plane = None  # one photo with its face points: the face's mirror plane is the photo's face midline
    hips_v = None  # one photo: the hips below the legs' top (see-through detail of the texels)
    if parts is None:
        smooth_v, smooth_w = _smooth_on_mesh(photo_v, (alpha_v > 0.05).astype(np.float64), f,
                                             _smoothing_iterations(v, f))
        fw = smooth_w[f]
        face_ok = fw.sum(axis=1) > 1e-6
        face_col = barycentric_blend(fw, f, smooth_v) / np.maximum(fw.sum(axis=1), 1e-12)[:, None]
        mirror_v, mirror_ok = _mirror_colours(view, v, face_col, face_ok)
        known = (alpha_v > sampling.SEEN_ALPHA) | mirror_ok
        seed = np.where((alpha_v > sampling.SEEN_ALPHA)[:, None], photo_v, mirror_v)
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
        profile_v = photo_v
        if not others:  # one photo: what a limb in front hid, and the seen body at its outline, take the profile
            behind_v = behind_other_part(view, v, view_cos, parts, alpha_v)
            if under_hand_v is not None:
                behind_v |= under_hand_v
            behind_v, fade_v = behind_fade(v if rest is None else rest, parts, alpha_v, behind_v)
            # a pattern all over a part (stripes): its profile is the blurred photo's colour (the pattern's mean),
            # and its hidden texels add the detail seen through it (below)
            busy = sampling.busy_parts(view, len(PART_NAMES))
            if busy.any():
                profile_v = np.where(busy[parts][:, None], bilinear(_photo_blur(view)[0], xy_v), photo_v)
        if photo_face is not None and rest is not None:  # several photos: the first photo's face, for the hidden side
            plane = face_mirror_plane(face_points_on_mesh(photo_face, view.layers.face, camera, v, rest, f, parts),
                                      REST_FORWARD)
        if not others:  # the hips the fill gives the legs' garment (its samples: seen, own pixel) take the legs'
            # see-through detail too (texels below)
            hips_v = hips_below_legs(v if rest is None else rest, parts, (alpha_v > sampling.SEEN_ALPHA) & own)
        fill_v, side_stats = unseen_side_fill(v if rest is None else rest, f, parts, alpha_v, profile_v, view_cos,
                                              own, shading, behind_v, fade_v,
                                              face_forward=None if rest is None else REST_FORWARD,
                                              mirror_plane=plane)
        if plane is not None:
            side_stats["face_mirror_plane"] = {"side": np.round(plane[0], 4).tolist(), "centre_m": round(plane[1], 4)}
        if not others:
            side_stats["busy_parts"] = [PART_NAMES[p] for p in view.busy]
        if under_hand_v is not None:
            side_stats["under_photo_hand_vertices"] = int(under_hand_v.sum())
        if fade_v is not None and (fade_v < 1.0).any():
            side_stats["behind_vertex_fraction"] = float(behind_v.mean())
            side_stats["faded_vertex_fraction"] = float((fade_v < 1.0).mean())
            alpha_v = alpha_v * fade_v
            texel_fade = fade_v.astype(np.float32)
        side_stats.update(light_stats)
    colours_v = alpha_v[:, None] * photo_v + (1 - alpha_v[:, None]) * fill_v
    mirror = None  # the far half of a face seen turned: its near half's photo colours (texels below)
    if parts is not None and not others and plane is not None:
        mirror = plan_face_mirror(rest, v, f, parts, alpha_v * np.clip(view_cos, 0.0, 1.0),
                                  face_region(rest, np.nonzero(parts == PART_HEAD)[0], REST_FORWARD), plane,
                                  face_turn(photo_face), camera, photo)
        if mirror is not None:
            colours_v = colours_v + mirror.weight[:, None] * (mirror.colours - colours_v)
            side_stats["face_mirrored_vertices"] = int((mirror.weight > 0.5).sum())

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
        fill_t = barycentric_blend(tb_b, corners, fill_vf)
        if others:
            points, normals = [], []
            for pv, pn in zip(pose_v, pose_n, strict=True):
                points.append(barycentric_blend(tb_b, corners, pv.astype(np.float32)))
                nrm = barycentric_blend(tb_b, corners, pn.astype(np.float32))
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
                                                 barycentric_blend(tb_b[front], corners[front], align_v))
            colour_t[front] = bilinear(photo, xy_t)
            if texel_fade is not None:  # samples faded at the vertices fade at the texels
                alpha_t = alpha_t * np.einsum("nk,nk->n", tb_b, texel_fade[corners])
            if keep_v is not None and not keep_v.all():  # a face with a dropped corner takes no photo colour:
                # its pixels next to the dropped sample's show what that showed (no seam of the other part's colour)
                alpha_t = alpha_t * keep_v[corners].all(axis=1)
        alpha_t = alpha_t.astype(np.float32)[:, None]
        if parts is not None and not others:  # one photo: the legs' (and busy parts') hidden side takes the pattern
            part_t = parts[corners[:, 0]]  # seen through them; the hips below the legs' top too (the trousers)
            hips_t = None if hips_v is None else hips_v[corners].all(axis=1)
            detail_t = np.isin(part_t, sampling.detail_parts(view)) | (False if hips_t is None else hips_t)
            need = np.nonzero((alpha_t[:, 0] < 1.0) & detail_t)[0]
            points_need = barycentric_blend(tb_b[need], corners[need], v)
            fill_t[need] += _see_through_detail(view, points_need, part_t[need],
                                                None if hips_t is None else hips_t[need])
        out = alpha_t * colour_t.astype(np.float32) + (1 - alpha_t) * fill_t
        if mirror is not None:
            w_t = barycentric_blend(tb_b, corners, mirror.weight[:, None].astype(np.float32))[:, 0]
            on = np.nonzero(w_t > 1e-3)[0]
            if len(on):
                colour_m = mirror.sample(barycentric_blend(tb_b[on], corners[on], rest))
                out[on] += w_t[on, None] * (colour_m - out[on])
        return out

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
    out[frag_p] = bilinear(image, xy)
    covered = np.zeros(camera.height * camera.width, dtype=bool)
    covered[frag_p] = True
    return out.reshape(camera.height, camera.width, 3), covered.reshape(camera.height, camera.width)
