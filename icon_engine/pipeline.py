"""Photo → result bundle: runs the stages in order (docs/architecture.md) and writes the bundle atomically.

Order: photo → person → body fit → clothed surface (photo pose) → canonical avatar ("rig": the surface rebuilt in
the rest pose, skinned and posed back, :mod:`icon_engine.avatar`) → texture baked on the avatar's posed mesh →
bundle. The bundle's posed mesh is the avatar's LBS output, so it reproduces exactly from the rest mesh.

Frames: stages work in processing pixels of :class:`~icon_engine.image_io.Photo`; the bundle's camera and mask
are in pixels of the original photo; 3D data is in the bundle world (SMPL-X frame, metres).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .bundle import BundleContent, TriMesh, write_bundle
from .bundle.skeleton import JOINT_NAMES, PARENTS
from .bundle.writer import bundle_folder, check_target
from .camera import Camera
from .errors import EngineError
from .options import ReconstructOptions, resolve_device
from .progress import CancelToken, ProgressCallback, ProgressReporter


def reconstruct(
    photo: str | Path,
    out_dir: str | Path,
    options: ReconstructOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    bundle_name: str | None = None,
    body_model: Any | None = None,
    image: Any | None = None,
) -> Path:
    """Reconstruct the person in ``photo`` into the bundle folder ``out_dir/<photo stem>``.

    Args:
        photo: path of the photo.
        out_dir: parent folder of the bundle (created if needed).
        options: reconstruction options (defaults: standard quality, open body, checkpoint-free surface).
        progress: called with every :class:`~icon_engine.progress.ProgressEvent`.
        cancel: set it from another thread to stop at the next step (raises ``Cancelled``; nothing is written).
        bundle_name: folder name instead of the photo's stem.
        body_model: an already loaded body model to reuse across photos, or the Future of one being loaded
            (:func:`preload_body`).
        image: ``photo`` already read by :func:`~icon_engine.image_io.load_photo` (not read again).
    Returns:
        The absolute path of the finished bundle.
    """
    from .image_io import load_photo
    from .person import detect_person, mirror_pass_for

    options = options or ReconstructOptions()
    photo_path = Path(photo)
    target = bundle_folder(out_dir, bundle_name, photo_path)
    check_target(target)  # before any work: a folder or file that is not a bundle is never replaced
    reporter = ProgressReporter(photo_path.name, progress, cancel)
    warnings: list[str] = []

    reporter.stage("load", "Reading the photo")
    if image is None or Path(image.path) != photo_path:
        image = load_photo(photo_path)

    reporter.stage("detect", "Finding the person")
    observation = detect_person(image, person_index=options.person_index,
                                mirror_pass=mirror_pass_for(options.quality))
    warnings += list(getattr(observation, "warnings", []))

    reporter.stage("body_model", "Loading the body model")
    device = resolve_device(options.device)  # after detection: "auto" imports torch (see preload_body)
    if body_model is None:
        body_model = load_body(options, device)
    elif isinstance(body_model, Future):
        body_model = body_model.result()

    reporter.stage("fit", "Fitting the body")
    from .fit import fit_body

    fit = fit_body(observation, body_model, image, quality=options.quality, device=device, progress=reporter,
                   height_m=options.height_m)
    warnings += list(getattr(fit, "warnings", []))

    reporter.stage("surface", "Building the clothed surface")
    surface = build_clothed_surface(fit, observation, image, options, device, reporter, body_model)
    warnings += list(surface.warnings)
    if options.icon_data is not None:  # ICON's feedback loop refined the body: texture, rig and bundle use it
        from .icon.infer import apply_refined_body

        fit = apply_refined_body(fit, surface)

    release_memory()
    reporter.stage("rig", "Building the animatable avatar")
    avatar = build_canonical_avatar([surface], [fit], [observation.mask], options, reporter, body_model)
    warnings += list(avatar.warnings)
    rig = avatar.rig
    surface = dataclasses.replace(surface, vertices=avatar.posed_vertices, faces=avatar.faces)

    release_memory()
    from .preview import BackgroundPreview

    preview = BackgroundPreview(image.rgb, surface.vertices, surface.faces, fit.camera)  # on the other core
    try:
        texture = bake_avatar_texture(avatar, image, observation, fit, options, reporter)
        release_memory()

        reporter.stage("bundle", "Writing the bundle")
        content = assemble_bundle(
            image=image, observation=observation, fit=fit, surface=surface, texture=texture, rig=rig,
            body_model=body_model, options=options, device=device, warnings=warnings, timings=reporter.timings,
            preview=preview,
        )  # fmt: skip
        reporter.update(0.5, "Writing files")
        path = write_bundle(target, content)
    finally:
        preview.close()
    reporter.update(1.0, "Done")
    reporter.finish()
    return path


def release_memory() -> None:
    """Hand the heap's free pages back to the system between stages (glibc ``malloc_trim``; elsewhere a no-op):
    the stages' large temporary arrays leave the heap fragmented, and the next stage's peak would add to it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def preload_body(options: ReconstructOptions) -> Future:
    """Load the body model of ``options`` in a background thread; returns its Future (the loader's error, if any,
    is raised by ``result()``).

    What a cold process pays before the fit — importing torch and the fit (1-2 s) and reading the body model —
    then overlaps reading the photo and detecting the person, whose work runs in mediapipe's and OpenCV's C++
    without the GIL (two cores). The thread imports the fit too (the next stage)."""
    future: Future = Future()

    def work() -> None:
        future.set_running_or_notify_cancel()
        try:
            body = load_body(options, resolve_device(options.device))
            from . import fit  # noqa: F401
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the Future
            future.set_exception(exc)
        else:
            future.set_result(body)

    threading.Thread(target=work, name="icon-preload", daemon=True).start()
    return future


def load_body(options: ReconstructOptions, device: str) -> Any:
    """The body model the options ask for (the open body unless ``smplx_model`` is given)."""
    from .body_model import load_body_model

    return load_body_model(options.smplx_model, device=device)


def build_clothed_surface(fit: Any, observation: Any, image: Any, options: ReconstructOptions, device: str,
                          reporter: ProgressReporter, body_model: Any) -> Any:
    """ICON's learned surface when ``options.icon_data`` is given, else the checkpoint-free surface."""
    if options.icon_data is not None:
        from .icon import find_icon_data
        from .icon.infer import build_icon_surface

        icon_data = find_icon_data(options.icon_data)
        if icon_data is None:
            raise EngineError(
                "icon_data",
                f"No ICON checkpoints found in {options.icon_data}.",
                "Point --icon-data at the folder holding icon-filter.ckpt (or icon-nofilter.ckpt) and normal.ckpt "
                "from icon.is.tue.mpg.de (registration required).",
            )
        return build_icon_surface(fit, observation, image, icon_data, quality=options.quality, progress=reporter,
                                  device=device, body_model=body_model, face_count=options.resolved_face_count)
    from .surface import build_surface

    return build_surface(fit, observation, image, quality=options.quality, progress=reporter,
                         face_count=options.resolved_face_count, device=device)


def build_canonical_avatar(surfaces: list[Any], fits: list[Any], masks: list[np.ndarray],
                           options: ReconstructOptions, reporter: ProgressReporter, body_model: Any) -> Any:
    """Rebuild the clothed surface(s) of one or several photos as the canonical (rest-pose) avatar and pose it into
    the first photo (:func:`icon_engine.avatar.build_fused_avatar`): grid and smoothing of the quality preset, the
    options' face budget and rest pose; ``masks`` are the photos' person masks (the first one checks the posed
    silhouette, all of them carve the fused volume)."""
    from .avatar import build_fused_avatar
    from .options import PRESETS

    preset = PRESETS[options.quality].mesh
    return build_fused_avatar([s.vertices for s in surfaces], [s.faces for s in surfaces], fits, body_model,
                              resolution=preset.resolution, levels=preset.levels, smooth=preset.smooth,
                              face_count=options.resolved_face_count, rest_pose=options.rest_pose,
                              cameras=[f.camera for f in fits], mask=masks[0], masks=masks, progress=reporter,
                              device=resolve_device(options.device))


def bake_avatar_texture(avatar: Any, image: Any, observation: Any, fit: Any, options: ReconstructOptions,
                        reporter: ProgressReporter) -> Any:
    """The texture of the avatar's posed mesh from ``image`` seen by ``fit.camera`` (None without texture)."""
    if not options.texture:
        return None
    reporter.stage("texture", "Baking the texture")
    from .texture import bake_texture, hand_labels_from_skin_weights, parts_from_skin_weights

    return bake_texture(avatar.posed_vertices, avatar.faces, image.rgb, observation.mask, fit.camera,
                        size=options.resolved_texture_size, progress=reporter,
                        vertex_parts=parts_from_skin_weights(avatar.rig.skin_weights),  # unseen sides per part
                        rest_vertices=avatar.rig.rest_vertices,  # ... profiled along the rest-pose parts
                        device=resolve_device(options.device), atlas=options.resolved_texture_atlas,
                        keypoints=(observation.keypoints, fit.joints),  # limbs read where the photo's limbs lie
                        vertex_hands=hand_labels_from_skin_weights(avatar.rig.skin_weights),  # fingers: their hand's
                        photo_hands=observation.hands,  # what lies under the photo's hands: its part's fill
                        photo_face=getattr(observation, "face", None))  # a turned face: far half mirrored


def _mask_to_original(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask.astype(bool)
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img) >= 128


def assemble_bundle(*, image: Any, observation: Any, fit: Any, surface: Any, texture: Any, rig: Any,
                    body_model: Any, options: ReconstructOptions, device: str, warnings: list[str],
                    timings: dict[str, float], preview: Any = None) -> BundleContent:
    """Collect the stages' results into a :class:`BundleContent` (camera and mask in original-photo pixels).

    ``preview``: a :class:`~icon_engine.preview.BackgroundPreview` of ``surface`` already rendering; its PNG is
    then composed and encoded while the bundle's other files are written (else it is made here)."""
    width0, height0 = (int(v) for v in image.original_size)
    cam: Camera = fit.camera
    cam0 = cam.rescaled(1.0 / image.scale, width0, height0)
    full_pose = np.asarray(fit.full_pose, dtype=np.float64).reshape(len(JOINT_NAMES), 3)
    uv = texture.uv if texture is not None else None
    colors = texture.vertex_colors if texture is not None else None
    posed = TriMesh(np.asarray(surface.vertices), np.asarray(surface.faces), colors, uv)
    rest = TriMesh(np.asarray(rig.rest_vertices), np.asarray(surface.faces), colors, uv)
    body = TriMesh(np.asarray(fit.vertices), np.asarray(fit.faces))

    if preview is not None:
        preview_png: Any = preview.png(colors)  # a Future: the writer takes it last
    else:
        from .preview import encode_png, make_preview

        preview_png = encode_png(make_preview(image.rgb, posed.vertices, posed.faces, cam, colors=colors))

    metadata: dict[str, Any] = {
        "engine_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "device": device,
        "options": options.to_json(),
        "photo": {
            "name": Path(image.path).name,
            "size": [width0, height0],
            "processing_size": [int(image.rgb.shape[1]), int(image.rgb.shape[0])],
        },
        "camera": {"convention": "opencv", "K": cam0.K, "R": cam0.R, "t": cam0.t, "width": width0,
                   "height": height0},
        "skeleton": {"joint_names": list(JOINT_NAMES), "parents": list(PARENTS)},
        "body": {
            "model": body_model.kind,
            "description": body_model.description,
            "betas": np.asarray(fit.betas).reshape(-1),
            "expression": np.asarray(fit.expression).reshape(-1),
            "global_orient": full_pose[0],
            "body_pose": full_pose[1:22],
            "jaw_pose": full_pose[22],
            "leye_pose": full_pose[23],
            "reye_pose": full_pose[24],
            "left_hand_pose": full_pose[25:40],
            "right_hand_pose": full_pose[40:55],
            "full_pose": full_pose,
            "transl": np.asarray(fit.transl).reshape(3),
            "flat_hand_mean": True,
        },
        "fit": dict(getattr(fit, "metrics", {})),
        "surface": {"method": surface.method, "stats": dict(getattr(surface, "stats", {}))},
        "rig": {"rest_pose": options.rest_pose, **dict(getattr(rig, "metadata", {}) or {})},
        "texture": {"size": int(texture.image.shape[0])} if texture is not None else None,
        "timings": dict(timings),
        "warnings": list(warnings),
    }
    extra = {"preview.png": preview_png}
    return BundleContent(
        metadata=metadata,
        posed_mesh=posed,
        body_mesh=body,
        rest_mesh=rest,
        skin_weights=np.asarray(rig.skin_weights, dtype=np.float32),
        rest_joints=np.asarray(rig.rest_joints, dtype=np.float32),
        mask=_mask_to_original(np.asarray(observation.mask), (width0, height0)),
        texture=texture.image if texture is not None else None,
        photo_bytes=image.data,
        photo_suffix=Path(image.path).suffix or ".png",
        extra_files=extra,
    )
