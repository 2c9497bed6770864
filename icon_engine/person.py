"""Person detection: BlazePose landmarks, a crisp person mask and an ICON-style square crop. Torch-free.

Detector: the legacy ``mediapipe.solutions.pose`` graph of ``mediapipe==0.10.21`` with ``model_complexity=1``
("full") — the only landmark model inside the wheel (lite and heavy are downloaded on demand by mediapipe,
which we never allow) — and its segmentation output. Hands use ``mediapipe.solutions.hands`` (palm detection
and hand landmarks also ship in the wheel), run on a close-up around each BlazePose wrist.

Several people: BlazePose finds one person per pass. We detect, blank that person out (inpaint their dilated
mask from the surroundings), and detect again, up to :data:`MAX_PEOPLE` people; they are ordered by mask area,
largest first, and ``person_index`` picks one. When nobody is found upright, the photo is also tried rotated by
180°, 90° and 270° (people upside down or lying), and then in overlapping tiles (small people); results are
mapped back.

Mask: BlazePose's mask is soft and low-resolution (256² over the person's region). Its 0.5 contour is
snapped to the image by GrabCut in a narrow band around it, and around the hands guided by the hand landmarks
(see :func:`refine_mask`), stray blobs are
dropped and pin-holes filled, while holes larger than :data:`HOLE_KEEP_FRACTION` of the person (between arms and
body, between legs) stay holes. When the photo has a cut-out alpha, that alpha is the mask.

Pixels: continuous processing-photo pixels (pixel (i, j) covers [i, i+1) × [j, j+1)); crop pixels likewise.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import EngineError
from .geometry.image_fields import hull_zone
from .geometry.image_shift import mask_iou
from .image_io import Photo

#: Default side of the square person crop, pixels (ICON uses 512).
CROP_SIZE = 512
#: Crop side over the person's larger bounding-box side (ICON: 200 / 180, a SPIN-style crop).
CROP_MARGIN = 200.0 / 180.0
#: Most people looked for in one photo.
MAX_PEOPLE = 4
#: Holes in the mask larger than this fraction of the person's area are kept (gaps between limbs).
HOLE_KEEP_FRACTION = 0.002
#: Mask blobs smaller than this fraction of the largest blob are dropped, unless a visible landmark is on them.
BLOB_KEEP_FRACTION = 0.02
#: Minimum mean visibility of the torso and limb landmarks for a detection to count as a person.
MIN_BODY_VISIBILITY = 0.35

#: BlazePose landmark names, in order (33).
LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
_BODY = np.array([11, 12, 13, 14, 23, 24, 25, 26])  # shoulders, elbows, hips, knees


@dataclass
class PersonObservation:
    """One detected person in processing-photo pixels.

    ``keypoints (33, 3)`` BlazePose landmarks: x, y pixels + visibility in [0, 1];
    ``world_landmarks (33, 3)`` metres, hip-centred, BlazePose axes (x image right, y down, z away from camera);
    ``mask (H, W) bool`` crisp person mask; ``bbox (4,)`` x0, y0, x1, y1 pixels of mask ∪ visible landmarks;
    ``crop_matrix (3, 3)`` processing px → crop px (homogeneous); ``crop_size`` crop side in px;
    ``hands`` optional ``{"left"|"right": (21, 3)}`` pixels + visibility (MediaPipe hand landmark order);
    ``face`` optional (7, 3) pixels + confidence of the face's eye corners, nose tip and mouth corners
    (:data:`FACE_POINT_NAMES`, from MediaPipe's face mesh), None when no face turned towards the camera was found;
    ``num_people`` people found in the photo; ``rotation`` degrees (counter-clockwise) the photo was turned
    for the detector to find this person (0 normally).
    """

    keypoints: np.ndarray
    world_landmarks: np.ndarray
    mask: np.ndarray
    bbox: np.ndarray
    crop_matrix: np.ndarray
    crop_size: int
    hands: dict[str, np.ndarray] | None = None
    face: np.ndarray | None = None
    num_people: int = 1
    rotation: int = 0
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# MediaPipe objects, created once per process


def mediapipe_solution(name: str) -> types.ModuleType:
    """The module ``mediapipe.python.solutions.<name>`` ("pose", "hands"), imported without mediapipe's package
    initialisers where they are not loaded yet.

    ``mediapipe/__init__.py`` imports every solution and the Tasks API, and ``mediapipe.python.solutions`` imports
    ``drawing_utils``, which imports matplotlib: about 0.7 s of a 1.1 s import, for nothing the engine uses. The two
    packages are registered as bare packages over their folders (their ``__init__`` not run), so importing a
    solution loads only the framework bindings (``mediapipe.python``), the solution and its graph's protobufs.
    Anything imported later under ``mediapipe`` still imports as usual (``import mediapipe.tasks.python`` works);
    only the re-exports of the skipped ``__init__`` files (``mediapipe.solutions``) are missing."""
    module = f"mediapipe.python.solutions.{name}"
    spec = None if "mediapipe" in sys.modules else importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        sys.modules["mediapipe"] = _bare_package("mediapipe", root)
        python = importlib.import_module("mediapipe.python")  # the framework bindings: its __init__ is needed
        python.solutions = sys.modules["mediapipe.python.solutions"] = _bare_package(
            "mediapipe.python.solutions", root / "python" / "solutions")
    return importlib.import_module(module)


def _bare_package(name: str, folder: Path) -> types.ModuleType:
    """A package module ``name`` over ``folder`` whose ``__init__`` is not run (see :func:`mediapipe_solution`)."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    return importlib.util.module_from_spec(spec)


class _Models:
    """Lazily created MediaPipe solutions, shared by the process and guarded by a lock (they are not re-entrant)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._pose = None
        self._hands = None
        self._face = None

    def pose(self):
        if self._pose is None:
            mp_pose = mediapipe_solution("pose")
            self._pose = mp_pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True,
                min_detection_confidence=0.5,
            )
        return self._pose

    def face(self):
        if self._face is None:
            mp_face = mediapipe_solution("face_mesh")
            self._face = mp_face.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.5,
            )
        return self._face

    def hands(self):
        if self._hands is None:
            mp_hands = mediapipe_solution("hands")
            self._hands = mp_hands.Hands(
                static_image_mode=True, max_num_hands=1, model_complexity=1, min_detection_confidence=0.4,
            )
        return self._hands

    def close(self) -> None:
        with self.lock:
            for model in (self._pose, self._hands, self._face):
                if model is not None:
                    model.close()
            self._pose = None
            self._hands = None
            self._face = None


_MODELS = _Models()
atexit.register(_MODELS.close)


def warm_up() -> None:
    """Create the MediaPipe graphs now (a warm engine does this before its first job)."""
    with _MODELS.lock:
        _MODELS.pose()
        _MODELS.hands()


def close_models() -> None:
    """Release the cached MediaPipe graphs (they are re-created on the next detection)."""
    _MODELS.close()


# ---------------------------------------------------------------------------------------------------------------
# Raw BlazePose passes


@dataclass
class _Raw:
    keypoints: np.ndarray  # (33, 3) px + visibility
    world: np.ndarray  # (33, 3)
    soft: np.ndarray  # (H, W) float32 in [0, 1]
    rotation: int = 0

    @property
    def body_visibility(self) -> float:
        return float(self.keypoints[_BODY, 2].mean())


def _run_pose(rgb: np.ndarray) -> _Raw | None:
    """One BlazePose pass on an RGB uint8 image; None when no person is found."""
    height, width = rgb.shape[:2]
    with _MODELS.lock:
        result = _MODELS.pose().process(np.ascontiguousarray(rgb))
    if result.pose_landmarks is None:
        return None
    kp = np.array([[lm.x * width, lm.y * height, lm.visibility] for lm in result.pose_landmarks.landmark])
    world = np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks.landmark])
    soft = result.segmentation_mask
    soft = np.zeros((height, width), np.float32) if soft is None else np.clip(soft.astype(np.float32), 0.0, 1.0)
    return _Raw(kp, world, soft)


def _unrotate(raw: _Raw, k: int, width: int, height: int) -> _Raw:
    """Map a detection on ``np.rot90(image, k)`` back to the image (``width`` × ``height``)."""
    kp = raw.keypoints.copy()
    world = raw.world.copy()
    soft = raw.soft
    sizes = [(width, height) if i % 2 == 0 else (height, width) for i in range(k)]
    for w, _h in reversed(sizes):  # undo one counter-clockwise quarter turn of an image w wide
        u, v = kp[:, 0].copy(), kp[:, 1].copy()
        kp[:, 0], kp[:, 1] = w - v, u
        x, y = world[:, 0].copy(), world[:, 1].copy()
        world[:, 0], world[:, 1] = -y, x
    soft = np.ascontiguousarray(np.rot90(soft, -k))
    return _Raw(kp, world, soft, rotation=90 * k)


def _is_person(raw: _Raw, image_area: int) -> bool:
    return raw.body_visibility >= MIN_BODY_VISIBILITY and float((raw.soft > 0.5).sum()) >= 5e-4 * image_area


def _detect_one(rgb: np.ndarray, try_rotations: bool) -> _Raw | None:
    """Detect the most prominent person, trying quarter turns and then tiles when none is found upright."""
    height, width = rgb.shape[:2]
    turns = (0, 2, 1, 3) if try_rotations else (0,)
    for k in turns:
        raw = _run_pose(np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb)
        if raw is None:
            continue
        if k:
            raw = _unrotate(raw, k, width, height)
        if _is_person(raw, width * height):
            return raw
    return _detect_in_tiles(rgb) if try_rotations else None


#: Tile side for the small-person search, as a fraction of the photo's longer side (stride: half a tile).
TILE_FRACTION = 0.5


def _detect_in_tiles(rgb: np.ndarray) -> _Raw | None:
    """Search overlapping square tiles (people too small for the whole-photo detector); the largest find wins."""
    height, width = rgb.shape[:2]
    side = int(round(TILE_FRACTION * max(height, width)))
    if side < 128 or side >= min(height, width):
        return None
    best: _Raw | None = None
    stride = side // 2
    for y0 in sorted({*range(0, height - side + 1, stride), height - side}):
        for x0 in sorted({*range(0, width - side + 1, stride), width - side}):
            raw = _run_pose(np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side]))
            if raw is None:
                continue
            soft = np.zeros((height, width), np.float32)
            soft[y0:y0 + side, x0:x0 + side] = raw.soft
            kp = raw.keypoints.copy()
            kp[:, :2] += (x0, y0)
            found = _Raw(kp, raw.world, soft)
            if _is_person(found, height * width) and (
                    best is None or (found.soft > 0.5).sum() > (best.soft > 0.5).sum()):
                best = found
    return best


def _blank_out(rgb: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """``rgb`` with the person of mask ``soft`` painted over from the surroundings (so the detector moves on).

    Works at ≤ 256 px: the person's mask grown by 2 % of the photo is inpainted there (a smooth fill looks like
    nobody), blurred, and pasted back at full size over the grown mask.
    """
    height, width = rgb.shape[:2]
    factor = max(1, max(height, width) // 256)
    size = (max(1, width // factor), max(1, height // factor))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    region = (cv2.resize(soft, size, interpolation=cv2.INTER_AREA) > 0.1).astype(np.uint8)
    grow = max(2, int(round(0.02 * max(size))))
    region = cv2.dilate(region, _disk(grow))
    filled = cv2.GaussianBlur(cv2.inpaint(small, region, 3, cv2.INPAINT_TELEA), (0, 0), 1.5)
    full = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
    paint = cv2.resize(region, (width, height), interpolation=cv2.INTER_NEAREST) > 0
    paint |= soft > 0.1
    out = rgb.copy()
    out[paint] = full[paint]
    return out


def _overlap(new: np.ndarray, old: np.ndarray) -> float:
    """Share of mask ``new`` covered by mask ``old``."""
    area = new.sum()
    return float(np.logical_and(new, old).sum() / area) if area else 1.0


#: Side of the close-up the second BlazePose pass runs on, pixels.
_CLOSEUP = 512


#: Each BlazePose landmark's mirror image (left and right exchanged; the nose stays), index into the 33.
MIRROR_INDEX = np.array([LANDMARK_NAMES.index("_".join({"left": "right", "right": "left"}.get(w, w)
                                                       for w in name.split("_"))) for name in LANDMARK_NAMES])
#: Margin of the close-up the mirrored pass runs on (the last close-up of :func:`_refine_in_crop`).
MIRROR_MARGIN = 1.5
#: The mirrored pass is used only if each shoulder, elbow, wrist, hip, knee and ankle lies within this fraction of
#: the person's larger bounding-box side of the plain pass's: beyond it the passes read different poses (a swapped
#: or misread leg) and their mean would lie on neither. Agreeing passes differ by ≤ 4 % on the rendered set and the
#: dev photos; a backflip's misread leg by 56–78 %.
MIRROR_AGREEMENT = 0.1
#: The qualities whose detection runs the mirrored pass: it helps the fit only where the fit converges far enough
#: to see it (docs/benchmarks/fidelity.md "Wave 8: body"; standard since wave 9, whose fit converges further,
#: "Wave 9: the standard fit"). Preview's short fit is too noisy to gain from it.
MIRROR_PASS_QUALITIES = frozenset({"standard", "high"})


def mirror_pass_for(quality: str) -> bool:
    """Whether a photo reconstructed at ``quality`` is detected with the mirrored pass
    (:data:`MIRROR_PASS_QUALITIES`); one rule for the single-photo pipeline and the several-photo subject."""
    return quality in MIRROR_PASS_QUALITIES


#: The limb landmarks :func:`with_mirrored_pass` compares: shoulders, elbows, wrists, hips, knees, ankles.
_LIMB_POINTS = np.array([LANDMARK_NAMES.index(f"{side}_{part}") for part in
                         ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for side in ("left", "right")])


def _closeup_pass(rgb: np.ndarray, raw: _Raw, margin: float, mirror: bool = False) -> _Raw | None:
    """BlazePose on a square close-up (``margin`` × the detection's box), mapped back; None if nobody found.

    ``mirror``: the close-up is flipped left-right for the detector and its answer flipped back (pixels mirrored,
    world-landmark x negated, left and right landmarks exchanged)."""
    height, width = rgb.shape[:2]
    bbox = person_bbox(raw.soft > 0.5, raw.keypoints)
    m = crop_matrix_for_bbox(bbox, _CLOSEUP, margin=margin)
    crop = crop_image(rgb, m, _CLOSEUP, fill=(128, 128, 128))
    found = _run_pose(np.ascontiguousarray(crop[:, ::-1]) if mirror else crop)
    if found is None:
        return None
    kp, world, crop_soft = found.keypoints.copy(), found.world.copy(), found.soft
    if mirror:
        kp[:, 0] = _CLOSEUP - kp[:, 0]  # continuous pixels: x -> S - x
        world[:, 0] = -world[:, 0]
        kp, world = kp[MIRROR_INDEX], world[MIRROR_INDEX]
        crop_soft = np.ascontiguousarray(crop_soft[:, ::-1])
    kp[:, :2] = crop_to_photo(kp[:, :2], m)
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    m_cv = np.linalg.inv(shift) @ m @ shift
    soft = cv2.warpAffine(crop_soft, m_cv[:2], (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return _Raw(kp, world, soft, raw.rotation)


def with_mirrored_pass(rgb: np.ndarray, raw: _Raw) -> _Raw:
    """``raw`` with its landmarks averaged with BlazePose's answer on the mirrored close-up (test-time
    augmentation): 2-D positions, visibilities and world landmarks are the two passes' means (both hip-centred);
    the mask stays ``raw``'s. Unchanged when the mirrored pass finds nobody or another person (its mask covers
    under 60 % of ``raw``'s) or reads another pose (:data:`MIRROR_AGREEMENT`)."""
    found = _closeup_pass(rgb, raw, MIRROR_MARGIN, mirror=True)
    if found is None or _overlap(raw.soft > 0.5, found.soft > 0.5) <= 0.6:
        return raw
    box = person_bbox(raw.soft > 0.5, raw.keypoints)
    apart = np.linalg.norm(found.keypoints[_LIMB_POINTS, :2] - raw.keypoints[_LIMB_POINTS, :2], axis=1)
    if apart.max() > MIRROR_AGREEMENT * max(box[2] - box[0], box[3] - box[1], 1.0):
        return raw
    return _Raw(0.5 * (raw.keypoints + found.keypoints), 0.5 * (raw.world + found.world), raw.soft, raw.rotation)


def _refine_in_crop(rgb: np.ndarray, raw: _Raw) -> _Raw:
    """Run BlazePose again on close-ups around a detection (more pixels for small people, a better ROI).

    Two rounds, each centred on the latest result; a round is kept only if it finds the same person (its
    mask covers most of the previous one) about as confidently.
    """
    best = raw
    for margin in (2.0, 1.5):
        found = _closeup_pass(rgb, best, margin)
        if found is None:
            break
        same = _overlap(best.soft > 0.5, found.soft > 0.5) > 0.6
        if not same or found.body_visibility < best.body_visibility - 0.1:
            break
        best = found
    return best


def find_people(rgb: np.ndarray, max_people: int = MAX_PEOPLE) -> list[_Raw]:
    """All people BlazePose finds by detect-and-blank passes, largest mask first (internal detections)."""
    work = rgb
    found: list[_Raw] = []
    taken = np.zeros(rgb.shape[:2], dtype=bool)
    for _ in range(max_people):
        raw = _detect_one(work, try_rotations=not found)
        if raw is None:
            break
        if found and _overlap(raw.soft > 0.5, taken) > 0.3:
            break  # a ghost of someone already found: blanking did not hide them fully
        raw = _refine_in_crop(work, raw)
        found.append(raw)
        taken |= raw.soft > 0.2
        work = _blank_out(work, raw.soft)
    found.sort(key=lambda r: float((r.soft > 0.5).sum()), reverse=True)
    return found


# ---------------------------------------------------------------------------------------------------------------
# Mask refinement


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def refine_mask(
    rgb: np.ndarray, soft: np.ndarray, keypoints: np.ndarray | None = None,
    hands: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """A crisp bool mask (H, W) from BlazePose's soft mask, with its edge snapped to the image.

    GrabCut (colour models of person and background) decides only a narrow band around the soft mask's 0.5
    contour (:data:`MASK_BAND_FRACTION` of the person's size, at least 2 px): inside the band is person,
    outside is background, so holes wider than the band (between arms and body, between legs) stay holes.
    Then blobs that are small and carry no visible landmark are dropped and pin-holes (below
    :data:`HOLE_KEEP_FRACTION` of the person's area) filled. Falls back to the plain threshold if GrabCut
    changes more than a few per cent of the person. ``hands`` (hand landmarks, px): around each hand GrabCut
    may also decide beyond the band, starting from the finger bones as probable person (fingers and thumbs
    are often thinner than BlazePose's mask resolves).
    """
    coarse = soft > 0.5
    if not coarse.any():
        return coarse
    mask = _grabcut_band(rgb, coarse, hands)
    if mask_iou(mask, coarse) < MIN_REFINE_IOU:
        mask = coarse
    if keypoints is not None:
        mask |= hanging_hair(rgb, soft, mask, keypoints)
    mask = _drop_blobs(mask, keypoints)
    return _fill_small_holes(mask)


#: BlazePose landmarks of the head and the shoulders (nose, eyes, ears, mouth, shoulders): long hair hangs within
#: their hull grown by :data:`HAIR_ZONE_GROW` of its extent.
_HEAD_AND_SHOULDERS = np.arange(13)
HAIR_ZONE_GROW = 0.3
#: BlazePose's soft mask above this (and below the mask's 0.5) is where it half-saw something beside the head.
HAIR_SOFT_MIN = 0.01
#: A candidate pixel is hair when its colour is within this (RGB, 0–255) of the hair's ...
HAIR_COLOUR_RADIUS = 60.0
#: ... and nearer the hair than this fraction of its distance to the background beside the head.
HAIR_VS_BACKGROUND = 1.0


def hanging_hair(rgb: np.ndarray, soft: np.ndarray, mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """bool (H, W): hair hanging beside the face and neck that BlazePose's soft mask half-saw (above
    :data:`HAIR_SOFT_MIN`, below 0.5) and ``mask`` left out (dark strands against a grey background), within the
    head and shoulders' zone: pixels whose colour lies within :data:`HAIR_COLOUR_RADIUS` of the hair's (the median of
    ``mask``'s pixels in the upper half from the crown to the eyes) and nearer it than :data:`HAIR_VS_BACKGROUND` ×
    their distance to the zone's background (the nearest of up to 2,000 sampled pixels), connected to ``mask``. A
    pocket of background beside a face (a hand at the cheek) keeps the background's colour and stays out. Pixels
    (H, W) of the processing photo ``rgb``; ``keypoints`` BlazePose's (33, ≥ 2) in the same pixels."""
    zone = hull_zone(mask.shape, np.asarray(keypoints, np.float64)[_HEAD_AND_SHOULDERS, :2], HAIR_ZONE_GROW)
    candidate = zone & ~mask & (soft > HAIR_SOFT_MIN)
    eyes = np.asarray(keypoints, np.float64)[1:7, 1]
    if not candidate.any() or not np.isfinite(eyes).all():
        return np.zeros_like(mask)
    rows = np.arange(mask.shape[0])[:, None]
    head = mask & zone & (rows < eyes.min())
    if not head.any():
        return np.zeros_like(mask)
    crown = np.flatnonzero(head.any(axis=1))[0]
    top = head & (rows < (crown + eyes.min()) / 2.0)  # the upper half from the crown to the eyes: the hair's colour
    background = zone & ~cv2.dilate(mask.astype(np.uint8), _disk(3)).astype(bool) & (soft <= HAIR_SOFT_MIN)
    if top.sum() < 20 or background.sum() < 20:
        return np.zeros_like(mask)
    colours = rgb.astype(np.float64)
    hair = np.median(colours[top], axis=0)
    rng = np.random.default_rng(0)
    bg = colours[background]
    bg = bg[rng.choice(len(bg), size=min(len(bg), 2000), replace=False)]
    from scipy.spatial import cKDTree

    c = colours[candidate]
    d_hair = np.linalg.norm(c - hair, axis=1)
    d_bg = cKDTree(bg).query(c)[0]
    keep = np.zeros_like(mask)
    keep[candidate] = (d_hair < HAIR_COLOUR_RADIUS) & (d_hair < HAIR_VS_BACKGROUND * d_bg)
    _, labels = cv2.connectedComponents((keep | mask).astype(np.uint8), connectivity=8)
    attached = np.unique(labels[mask])
    return keep & np.isin(labels, attached[attached > 0])


#: Width of the band GrabCut may relabel, as a fraction of the person's larger bounding-box side.
MASK_BAND_FRACTION = 1.0 / 200.0
#: GrabCut iterations (on the dev photos one gives nearly all the edge gain of three at under half the time).
GRABCUT_ITERATIONS = 1
#: The refined mask must keep at least this IoU with BlazePose's thresholded mask (else it is not used).
MIN_REFINE_IOU = 0.85


#: MediaPipe hand landmark bones (wrist 0; thumb 1–4, index 5–8, middle 9–12, ring 13–16, pinky 17–20).
HAND_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20), (0, 17),
)


def _hand_hints(shape: tuple[int, int], hands: dict[str, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(zone, bones) bool (H, W): around each hand (its landmarks' hull grown by 30 % of the hand), its bones."""
    zone = np.zeros(shape, bool)
    bones = np.zeros(shape, np.uint8)
    for points in (hands or {}).values():
        xy = np.asarray(points, np.float64)[:, :2]
        size = float(np.ptp(xy, axis=0).max())
        if not np.isfinite(size) or size < 4.0:
            continue
        zone |= hull_zone(shape, xy, 0.3)
        thickness = max(1, int(round(size / 20.0)))
        for a, b in HAND_BONES:
            pa = (int(round(xy[a, 0])), int(round(xy[a, 1])))
            pb = (int(round(xy[b, 0])), int(round(xy[b, 1])))
            cv2.line(bones, pa, pb, 1, thickness)
    return zone, bones > 0


def _grabcut_band(
    rgb: np.ndarray, coarse: np.ndarray, hands: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """GrabCut restricted to a band of ±k px around ``coarse``'s boundary (and the hands' zones), on the
    person's bounding box only."""
    height, width = coarse.shape
    zone, bones = _hand_hints(coarse.shape, hands)
    rows = np.flatnonzero(coarse.any(axis=1))
    cols = np.flatnonzero(coarse.any(axis=0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    k = max(2, int(round(extent * MASK_BAND_FRACTION)))
    pad = 4 * k
    span = coarse | zone
    rows = np.flatnonzero(span.any(axis=1))
    cols = np.flatnonzero(span.any(axis=0))
    y0, y1 = max(0, rows[0] - pad), min(height, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(width, cols[-1] + 1 + pad)
    sub = coarse[y0:y1, x0:x1].astype(np.uint8)
    labels = np.where(sub > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[cv2.erode(sub, _disk(k)) > 0] = cv2.GC_FGD
    labels[(cv2.dilate(sub, _disk(k)) == 0) & ~zone[y0:y1, x0:x1]] = cv2.GC_BGD
    labels[bones[y0:y1, x0:x1] & (labels != cv2.GC_FGD)] = cv2.GC_PR_FGD
    if not (labels == cv2.GC_FGD).any() or not (labels == cv2.GC_BGD).any():
        return coarse.copy()
    bgr = np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1])
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's RNG: fix it so a photo always gives one mask
    try:
        cv2.grabCut(bgr, labels, None, bgd_model, fgd_model, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return coarse.copy()
    out = np.zeros_like(coarse)
    out[y0:y1, x0:x1] = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return out


def _drop_blobs(mask: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = areas >= BLOB_KEEP_FRACTION * areas.max()
    if keypoints is not None:
        height, width = mask.shape
        vis = keypoints[keypoints[:, 2] > 0.5]
        cols = np.clip(vis[:, 0].astype(int), 0, width - 1)
        rows = np.clip(vis[:, 1].astype(int), 0, height - 1)
        hit = labels[rows, cols]
        keep[hit[hit > 0] - 1] = True
    return np.isin(labels, np.flatnonzero(keep) + 1)


def _fill_small_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the photo's border and are below the hole-size limit."""
    background = (~mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    height, width = mask.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    touches_border = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)
    fill = ~touches_border & (stats[:, cv2.CC_STAT_AREA] < HOLE_KEEP_FRACTION * mask.sum())
    fill[0] = False  # label 0 is the mask itself
    return mask | fill[labels]


def _person_from_alpha(alpha: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The cut-out's alpha, limited to the blobs that overlap this person's BlazePose mask."""
    count, labels = cv2.connectedComponents(alpha.astype(np.uint8), connectivity=8)
    if count <= 2:
        return alpha.copy()
    hits = np.unique(labels[(soft > 0.5) & alpha])
    hits = hits[hits > 0]
    return np.isin(labels, hits) if hits.size else alpha.copy()


# ---------------------------------------------------------------------------------------------------------------
# Crop


def person_bbox(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 pixels enclosing the mask and the landmarks with visibility > 0.5."""
    xs, ys = [], []
    if mask.any():
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        xs += [cols[0], cols[-1] + 1]
        ys += [rows[0], rows[-1] + 1]
    vis = keypoints[keypoints[:, 2] > 0.5]
    xs += list(vis[:, 0])
    ys += list(vis[:, 1])
    if not xs:
        xs, ys = list(keypoints[:, 0]), list(keypoints[:, 1])
    return np.array([min(xs), min(ys), max(xs), max(ys)], dtype=np.float64)


def crop_matrix_for_bbox(bbox: np.ndarray, crop_size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> np.ndarray:
    """(3, 3) processing px → crop px: a square of ``margin`` × the bbox's larger side, centred on the bbox."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    side = max(x1 - x0, y1 - y0, 1.0) * margin
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    s = crop_size / side
    return np.array([[s, 0.0, crop_size / 2.0 - s * cx], [0.0, s, crop_size / 2.0 - s * cy], [0.0, 0.0, 1.0]])


def _matrix(obs_or_matrix: PersonObservation | np.ndarray) -> np.ndarray:
    return obs_or_matrix.crop_matrix if isinstance(obs_or_matrix, PersonObservation) else np.asarray(obs_or_matrix)


def photo_to_crop(points: np.ndarray, obs_or_matrix: PersonObservation | np.ndarray) -> np.ndarray:
    """Processing-photo pixels (N, 2) → crop pixels (N, 2) (continuous coordinates)."""
    m = _matrix(obs_or_matrix)
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    return pts @ m[:2, :2].T + m[:2, 2]


def crop_to_photo(points: np.ndarray, obs_or_matrix: PersonObservation | np.ndarray) -> np.ndarray:
    """Crop pixels (N, 2) → processing-photo pixels (N, 2) (continuous coordinates)."""
    inv = np.linalg.inv(_matrix(obs_or_matrix))
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    return pts @ inv[:2, :2].T + inv[:2, 2]


def crop_image(
    image: np.ndarray, obs_or_matrix: PersonObservation | np.ndarray, crop_size: int | None = None,
    fill: int | tuple[int, ...] = 0,
) -> np.ndarray:
    """Cut the square crop out of a photo-sized ``image`` ((H, W), (H, W, C); uint8, float or bool).

    Colour images are resampled bilinearly, bool masks by nearest neighbour; outside the photo is ``fill``.
    Returns (S, S[, C]) with S = ``crop_size`` (default: the observation's).
    """
    if crop_size is None:
        crop_size = obs_or_matrix.crop_size if isinstance(obs_or_matrix, PersonObservation) else CROP_SIZE
    m = _matrix(obs_or_matrix)
    # our pixel centres are at i + 0.5, OpenCV's at i: conjugate by a half-pixel shift
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    m_cv = np.linalg.inv(shift) @ m @ shift
    is_bool = image.dtype == bool
    src = image.astype(np.uint8) if is_bool else image
    interp = cv2.INTER_NEAREST if is_bool else cv2.INTER_LINEAR
    if src.ndim == 3 and not isinstance(fill, tuple):
        fill = (fill,) * src.shape[2]
    out = cv2.warpAffine(src, m_cv[:2], (crop_size, crop_size), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=fill)
    if src.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out.astype(bool) if is_bool else out


# ---------------------------------------------------------------------------------------------------------------
# Hands


#: Hand landmarks count (MediaPipe hand landmark order: wrist, thumb 1–4, index 5–8, middle 9–12, ring, pinky).
HAND_POINTS = 21
_HAND_PROXIES = {"left": (15, 17, 19, 21), "right": (16, 18, 20, 22)}  # wrist, pinky, index, thumb


def _detect_hand(rgb: np.ndarray, keypoints: np.ndarray, side: str, graph=None) -> np.ndarray | None:
    """Hand landmarks (21, 3) px + visibility for ``side`` from a close-up around BlazePose's hand points.
    ``graph``: a caller's own ``mp.solutions.hands.Hands`` (e.g. one in tracking mode per side for a video)
    instead of the shared still-image one."""
    ids = _HAND_PROXIES[side]
    pts = keypoints[list(ids)]
    if pts[0, 2] < 0.5:
        return None
    elbow = keypoints[13 if side == "left" else 14]
    forearm = float(np.linalg.norm(pts[0, :2] - elbow[:2]))
    spread = float(np.linalg.norm(pts[1:, :2] - pts[0, :2], axis=1).max())
    half = max(1.2 * max(forearm * 0.6, spread * 2.0), 12.0)
    center = pts[:, :2].mean(axis=0)
    side_px = 2.0 * half
    size = 256
    s = size / side_px
    m = np.array([[s, 0.0, size / 2 - s * center[0]], [0.0, s, size / 2 - s * center[1]], [0.0, 0.0, 1.0]])
    patch = crop_image(rgb, m, crop_size=size)
    if graph is not None:
        result = graph.process(np.ascontiguousarray(patch))
    else:
        with _MODELS.lock:
            result = _MODELS.hands().process(np.ascontiguousarray(patch))
    if not result.multi_hand_landmarks:
        return None
    lms = result.multi_hand_landmarks[0].landmark
    local = np.array([[lm.x * size, lm.y * size] for lm in lms])
    pix = crop_to_photo(local, m)
    score = float(result.multi_handedness[0].classification[0].score) if result.multi_handedness else 0.5
    # the hand must sit on BlazePose's wrist, else it is the other hand or a false find
    if np.linalg.norm(pix[0] - pts[0, :2]) > 0.5 * half:
        return None
    return np.column_stack([pix, np.full(HAND_POINTS, score)])


def detect_hands(rgb: np.ndarray, keypoints: np.ndarray) -> dict[str, np.ndarray] | None:
    """``{"left"|"right": (21, 3)}`` hand landmarks near BlazePose's wrists, or None when neither is found."""
    hands = {}
    for side in ("left", "right"):
        found = _detect_hand(rgb, keypoints, side)
        if found is not None:
            hands[side] = found
    return hands or None


#: The face points the body fit aligns the head with (docs/fit.md, "The face"): eye corners, nose tip and mouth
#: corners, each with its MediaPipe face-mesh vertex (``FaceMesh`` topology, 468 points) and its iBUG-68 index
#: (the body model's static face landmarks hold iBUG points 17–67). "right" is the person's right.
FACE_POINTS: tuple[tuple[str, int, int], ...] = (
    ("right_eye_outer", 33, 36), ("right_eye_inner", 133, 39), ("left_eye_inner", 362, 42),
    ("left_eye_outer", 263, 45), ("nose_tip", 1, 30), ("mouth_right", 61, 48), ("mouth_left", 291, 54),
)
FACE_POINT_NAMES = tuple(name for name, _, _ in FACE_POINTS)
#: BlazePose's face landmarks (nose, eyes, ears, mouth corners); the face is looked for only when the nose and
#: both eyes have at least FACE_MIN_VISIBILITY (a face turned towards the camera) ...
FACE_MIN_VISIBILITY = 0.5
#: ... in a square close-up of FACE_CROP_SPAN × the face's size in BlazePose's points (the larger of ear to ear and
#: twice eye to eye), resampled to FACE_CROP_PX, and a face mesh whose nose tip lies farther than FACE_MAX_OFFSET ×
#: that size from BlazePose's nose is someone else's face or a false find.
FACE_CROP_SPAN = 2.4
FACE_CROP_PX = 256
FACE_MAX_OFFSET = 0.5
#: A face whose up direction (BlazePose's mouth to eyes) lies more than this many degrees from the photo's up is
#: turned upright in its close-up (the face mesh finds no face upside down: the backflips of the dev photos); up to
#: it the close-up stays as the photo is (the 7 faces found before wave 26, rolled up to 35°, unchanged).
FACE_ROLL_DEG = 45.0


def detect_face(rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray | None:
    """(7, 3) face points (:data:`FACE_POINTS`: x, y processing px + 1.0 confidence) of the person whose BlazePose
    landmarks are ``keypoints`` (33, 3), from MediaPipe's face mesh run on a close-up round BlazePose's face; None
    when BlazePose sees no face turned towards the camera, the face mesh finds none there, or its eyes do not lie
    on BlazePose's eyes of their sides (a mirrored or upside-down find)."""
    kp = np.asarray(keypoints, np.float64)
    if kp[[0, 2, 5], 2].min() < FACE_MIN_VISIBILITY:
        return None
    seen = kp[:11][kp[:11, 2] >= FACE_MIN_VISIBILITY, :2]  # BlazePose's face points
    size = max(float(np.linalg.norm(kp[7, :2] - kp[8, :2])) if kp[[7, 8], 2].min() >= FACE_MIN_VISIBILITY else 0.0,
               2.0 * float(np.linalg.norm(kp[2, :2] - kp[5, :2])), 8.0)
    centre = seen.mean(axis=0)
    side_px = FACE_CROP_SPAN * size
    s = FACE_CROP_PX / side_px
    # the face's up (mouth to eyes, BlazePose's 9/10 and 2/5): a face rolled by more than FACE_ROLL_DEG (upside down
    # in a backflip) is turned upright in the close-up, as the face mesh expects it
    up = kp[[2, 5], :2].mean(axis=0) - kp[[9, 10], :2].mean(axis=0)
    turn = -0.5 * np.pi - float(np.arctan2(up[1], up[0])) if np.linalg.norm(up) > 1e-6 else 0.0
    turn = (turn + np.pi) % (2.0 * np.pi) - np.pi
    if abs(np.degrees(turn)) <= FACE_ROLL_DEG:
        turn = 0.0
    c, si = s * np.cos(turn), s * np.sin(turn)
    m = np.array([[c, -si, FACE_CROP_PX / 2 - (c * centre[0] - si * centre[1])],
                  [si, c, FACE_CROP_PX / 2 - (si * centre[0] + c * centre[1])], [0.0, 0.0, 1.0]])
    patch = crop_image(rgb, m, crop_size=FACE_CROP_PX)
    with _MODELS.lock:
        result = _MODELS.face().process(np.ascontiguousarray(patch))
    if not result.multi_face_landmarks:
        return None
    lms = result.multi_face_landmarks[0].landmark
    local = np.array([[lms[i].x * FACE_CROP_PX, lms[i].y * FACE_CROP_PX] for _, i, _ in FACE_POINTS])
    pix = crop_to_photo(local, m)
    if np.linalg.norm(pix[FACE_POINT_NAMES.index("nose_tip")] - kp[0, :2]) > FACE_MAX_OFFSET * size:
        return None
    # each eye on BlazePose's eye of its side (2: left, 5: right): not a mirrored or upside-down find
    right, left = pix[[0, 1]].mean(axis=0), pix[[2, 3]].mean(axis=0)
    if (np.linalg.norm(right - kp[5, :2]) > np.linalg.norm(right - kp[2, :2])
            or np.linalg.norm(left - kp[2, :2]) > np.linalg.norm(left - kp[5, :2])):
        return None
    return np.column_stack([pix, np.ones(len(FACE_POINTS))])


# ---------------------------------------------------------------------------------------------------------------
# Entry point

#: Highest visibility a landmark outside the photo keeps (BlazePose extrapolates cut-off parts, e.g. a head above
#: the frame, often with visibility 1; they are guesses the photo cannot confirm).
OUT_OF_FRAME_VISIBILITY = 0.3
#: A person shown smaller than this (the person's box, the longer of its sides, in the original photo's pixels) gets
#: a warning: the surface and the texture can only be as sharp as the photo (a 160 px tall person bakes a blurred
#: texture over the 2,048 px atlas).
SMALL_PERSON_PX = 300


def _cap_out_of_frame(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    out = keypoints.copy()
    outside = (out[:, 0] < 0) | (out[:, 0] > width) | (out[:, 1] < 0) | (out[:, 1] > height)
    out[outside, 2] = np.minimum(out[outside, 2], OUT_OF_FRAME_VISIBILITY)
    return out


def detect_person(
    photo: Photo, person_index: int = 0, crop_size: int = CROP_SIZE, hands: bool = True, mirror_pass: bool = False,
    face: bool = True,
) -> PersonObservation:
    """Find person ``person_index`` (0 = largest) in ``photo``: landmarks, crisp mask, bbox and square crop.

    ``crop_size``: side of the ICON-style crop in px. ``hands``: also look for hand landmarks (they fill
    ``obs.hands`` and guide the mask around the hands; about 0.1 s). ``mirror_pass``: average the landmarks with
    a pass on the mirrored close-up (:func:`with_mirrored_pass`; about 0.03 s; standard and high quality use it:
    docs/fit.md). ``face``: also look for the face's eye corners, nose tip and mouth corners (:func:`detect_face`:
    ``obs.face``, which the fit aligns the head with). All pixels are processing-photo pixels.
    Raises ``EngineError("no_person")`` when nobody is found, ``EngineError("person_index")`` when fewer than
    ``person_index + 1`` people are.
    """
    if person_index < 0:
        raise EngineError("person_index", f"Person index {person_index} is negative.", "Use 0 for the largest "
                          "person, 1 for the next, and so on.")
    rgb = photo.rgb
    people = find_people(rgb, max(MAX_PEOPLE, person_index + 1))
    if not people:
        raise EngineError(
            "no_person",
            f"No person was found in {photo.path.name}.",
            "Use a photo showing one person's whole body (or most of it), reasonably lit and not too small.",
        )
    if person_index >= len(people):
        raise EngineError(
            "person_index",
            f"Person {person_index} was asked for, but {photo.path.name} shows only {len(people)} "
            f"{'person' if len(people) == 1 else 'people'} the detector can find.",
            f"Use a person index from 0 to {len(people) - 1} (0 = the largest person).",
        )
    raw = people[person_index]
    if mirror_pass and not raw.rotation:  # a person found only in a turned photo keeps that one answer
        raw = with_mirrored_pass(rgb, raw)
    keypoints = _cap_out_of_frame(raw.keypoints, rgb.shape[1], rgb.shape[0])
    hand_points = detect_hands(rgb, keypoints) if hands else None
    face_points = detect_face(rgb, keypoints) if face else None
    if photo.alpha is not None:
        mask = _person_from_alpha(photo.alpha, raw.soft)
    else:
        mask = refine_mask(rgb, raw.soft, keypoints, hand_points)
    warnings: list[str] = []
    if not mask.any():
        mask = raw.soft > 0.5
    bbox = person_bbox(mask, keypoints)
    if raw.rotation:
        warnings.append(f"The person was found with the photo turned {raw.rotation}° (upside down or lying).")
    if len(people) > 1:
        warnings.append(f"{len(people)} people found; using person {person_index} (0 = largest).")
    shown_px = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1])) / max(float(photo.scale), 1e-9)
    if shown_px < SMALL_PERSON_PX:
        warnings.append(f"The person is only {shown_px:.0f} pixels tall in the photo: the avatar's shape and texture "
                        f"will be coarse and blurred. A photo showing the person at least {SMALL_PERSON_PX} pixels "
                        "tall (better 1,000) gives a sharper avatar.")
    return PersonObservation(
        keypoints=keypoints,
        world_landmarks=raw.world,
        mask=mask,
        bbox=bbox,
        crop_matrix=crop_matrix_for_bbox(bbox, crop_size),
        crop_size=int(crop_size),
        hands=hand_points,
        face=face_points,
        num_people=len(people),
        rotation=raw.rotation,
        warnings=warnings,
    )
