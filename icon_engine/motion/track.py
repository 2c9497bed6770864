"""Follow one person through a video with BlazePose in tracking (video) mode. Torch-free.

The person is chosen on the first frame where anyone is found, like ``reconstruct --person N`` does on a photo
(:func:`icon_engine.person.find_people`, largest first). From then on BlazePose's tracking graph
(``static_image_mode=False``: landmarks of one frame seed the region of the next) runs on a square window
centred on the person's predicted position (constant velocity), so another person walking past is mostly outside
the window and cannot take over the track. Every result is checked against the prediction (an *identity gate*:
hip centre and size); a result that jumps is refused, the tracking graph is reset, and the person is looked for
again: first in the predicted window, then, after :data:`REACQUIRE_AFTER` misses, in the whole frame, keeping
only a person close to where ours was last seen. Frames without our person are reported as missing.

Pixels: processing-frame pixels (see :mod:`icon_engine.motion.video`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..person import LANDMARK_NAMES, MIN_BODY_VISIBILITY, find_people

_BODY = np.array([11, 12, 13, 14, 23, 24, 25, 26])  # shoulders, elbows, hips, knees (visibility test)
_HIPS = np.array([23, 24])
_SHOULDERS = np.array([11, 12])
#: Side of the tracking window over the person's predicted size (height of the visible landmarks).
WINDOW_MARGIN = 1.7
#: Side of the window image handed to BlazePose, pixels.
WINDOW_PX = 384
#: Misses in a row after which the whole frame is searched.
REACQUIRE_AFTER = 3
#: Identity gate: the hip centre may move at most this many person sizes from the prediction per frame.
GATE_DISTANCE = 0.45
#: Identity gate: the size may change at most by this factor from one tracked frame to the next.
GATE_SCALE = 1.5

assert len(LANDMARK_NAMES) == 33


@dataclass
class Detection:
    """Our person in one frame: ``keypoints (33, 3)`` pixels + visibility, ``world (33, 3)`` BlazePose world
    landmarks (metres, hip-centred, x right, y down, z away from the camera), ``hands`` the hand landmarks found
    next to its wrists (``{"left"|"right": (21, 3)}`` px + score, filled by :mod:`icon_engine.motion.hands`)."""

    keypoints: np.ndarray
    world: np.ndarray
    hands: dict[str, np.ndarray] | None = None

    @property
    def visibility(self) -> float:
        return float(self.keypoints[_BODY, 2].mean())


def _centre_and_size(kp: np.ndarray) -> tuple[np.ndarray, float]:
    """Hip centre (2,) and person size (px): the torso-based height estimate (robust to limbs leaving)."""
    hips = kp[_HIPS, :2].mean(0)
    shoulders = kp[_SHOULDERS, :2].mean(0)
    torso = float(np.linalg.norm(shoulders - hips))
    vis = kp[:, 2] > 0.5
    extent = kp[vis, :2].ptp(0).max() if vis.sum() >= 4 else 0.0
    return hips, max(3.2 * torso, float(extent), 8.0)


class PersonTracker:
    """Track person ``person_index`` (0 = largest on the first frame with people) frame by frame."""

    def __init__(self, person_index: int = 0) -> None:
        self.person_index = person_index
        self._pose = None
        self._centre: np.ndarray | None = None
        self._velocity = np.zeros(2)
        self._size = 0.0
        self.misses = 0
        self.people_at_start = 0
        self.swaps_refused = 0

    # -- mediapipe ------------------------------------------------------------------------------------------
    def _graph(self):
        if self._pose is None:
            from ..person import mediapipe_solution

            mp_pose = mediapipe_solution("pose")  # without mediapipe's package initialisers (matplotlib)

            self._pose = mp_pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                                      enable_segmentation=False, min_detection_confidence=0.5,
                                      min_tracking_confidence=0.5)
        return self._pose

    def _reset_graph(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._reset_graph()

    # -- tracking -------------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._centre is not None

    def step(self, rgb: np.ndarray) -> Detection | None:
        """Our person in this frame (processing pixels), or None when they are not found."""
        if not self.started:
            det = self._start(rgb)
        else:
            det = self._follow(rgb)
            if det is None and self.misses + 1 >= REACQUIRE_AFTER:
                det = self._reacquire(rgb)
        if det is None:
            self.misses += 1
            if self.started:  # keep drifting with the last velocity, slowing down
                self._centre = self._centre + self._velocity
                self._velocity *= 0.5
            return None
        self._update(det)
        return det

    def _start(self, rgb: np.ndarray) -> Detection | None:
        people = find_people(rgb, max(4, self.person_index + 1))
        if not people:
            return None
        self.people_at_start = len(people)
        if self.person_index >= len(people):
            from ..errors import EngineError

            raise EngineError(
                "person_index", f"Person {self.person_index} was asked for, but the first frame with people shows "
                f"only {len(people)}.", f"Use --person from 0 to {len(people) - 1} (0 = the largest person).")
        raw = people[self.person_index]
        return Detection(raw.keypoints.copy(), raw.world.copy())

    def _update(self, det: Detection) -> None:
        centre, size = _centre_and_size(det.keypoints)
        if self._centre is not None and self.misses == 0:
            self._velocity = 0.5 * self._velocity + 0.5 * (centre - self._centre)
        else:
            self._velocity = np.zeros(2)
        self._centre, self._size = centre, size
        self.misses = 0

    def _window(self, rgb: np.ndarray, scale_up: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The square window image around the predicted person and its matrix window px → frame px."""
        assert self._centre is not None
        centre = self._centre + self._velocity
        side = WINDOW_MARGIN * scale_up * self._size
        s = side / WINDOW_PX
        to_frame = np.array([[s, 0.0, centre[0] - side / 2], [0.0, s, centre[1] - side / 2], [0.0, 0.0, 1.0]])
        to_window = np.linalg.inv(to_frame)[:2]
        win = cv2.warpAffine(rgb, to_window, (WINDOW_PX, WINDOW_PX), flags=cv2.INTER_AREA if s > 1 else
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return win, to_frame

    def _follow(self, rgb: np.ndarray) -> Detection | None:
        win, to_frame = self._window(rgb, 1.0 + 0.5 * min(self.misses, 2))
        result = self._graph().process(np.ascontiguousarray(win))
        if result.pose_landmarks is None:
            self._reset_graph()
            return None
        n = WINDOW_PX
        kp = np.array([[lm.x * n, lm.y * n, lm.visibility] for lm in result.pose_landmarks.landmark])
        kp[:, :2] = kp[:, :2] @ to_frame[:2, :2].T + to_frame[:2, 2]
        world = np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks.landmark])
        det = Detection(kp, world)
        if det.visibility < MIN_BODY_VISIBILITY or not self._plausible(det):
            self._reset_graph()
            return None
        return det

    def _plausible(self, det: Detection) -> bool:
        """The identity gate: close to the prediction, about the same size."""
        if self._centre is None:
            return True
        centre, size = _centre_and_size(det.keypoints)
        predicted = self._centre + self._velocity
        slack = 1.0 + self.misses
        near = np.linalg.norm(centre - predicted) <= GATE_DISTANCE * slack * self._size
        scale = size / max(self._size, 1e-6)
        same_size = 1.0 / (GATE_SCALE * slack) <= scale <= GATE_SCALE * slack
        if not (near and same_size):
            self.swaps_refused += 1
            return False
        return True

    def _reacquire(self, rgb: np.ndarray) -> Detection | None:
        """Search the whole frame; accept the person nearest to the last position if they pass the gate."""
        people = find_people(rgb)
        best, best_d = None, np.inf
        for raw in people:
            det = Detection(raw.keypoints.copy(), raw.world.copy())
            centre, _ = _centre_and_size(det.keypoints)
            d = float(np.linalg.norm(centre - self._centre)) if self._centre is not None else 0.0
            if d < best_d and self._plausible(det):
                best, best_d = det, d
        if best is not None:
            self._reset_graph()
        return best
