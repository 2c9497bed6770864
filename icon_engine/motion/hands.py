"""Hand landmarks of the tracked person in a video. Torch-free.

Per frame and side, a close-up around BlazePose's hand points (wrist, pinky, index, thumb) of the tracked person
goes to MediaPipe's hand graph (``mp.solutions.hands``, whose palm detector and hand landmark models ship in the
``mediapipe==0.10.21`` wheel: nothing is downloaded), the same close-up and wrist check as for a photo
(:func:`icon_engine.person.detect_hands`). One graph per side runs in tracking mode (``static_image_mode=False``):
while the hand is found, the next frame skips palm detection and only refines the landmarks in the region the last
ones give (the close-up follows the wrist, so the hand stays near the same spot of it). A hand is accepted only
when its wrist sits on the person's BlazePose wrist (the other hand or another person's is refused).

Pixels: processing-frame pixels (see :mod:`icon_engine.motion.video`); the third column is the detector's score.
"""

from __future__ import annotations

import numpy as np

from ..person import _detect_hand

#: MediaPipe hand landmark model: 0 "lite", 1 "full" (both ship in the wheel).
HAND_MODEL_COMPLEXITY = 1
MIN_DETECTION = 0.4
MIN_TRACKING = 0.5


class HandTracker:
    """Find the tracked person's hands frame after frame (one MediaPipe hand graph per side, tracking mode)."""

    def __init__(self, model_complexity: int = HAND_MODEL_COMPLEXITY) -> None:
        self.model_complexity = model_complexity
        self._graphs: dict[str, object] = {}
        self.found = {"left": 0, "right": 0}
        self._tracking: dict[str, bool] = {}

    def _graph(self, side: str):
        if side not in self._graphs:
            from ..person import mediapipe_solution

            mp_hands = mediapipe_solution("hands")  # without mediapipe's package initialisers (matplotlib)

            self._graphs[side] = mp_hands.Hands(
                static_image_mode=False, max_num_hands=1, model_complexity=self.model_complexity,
                min_detection_confidence=MIN_DETECTION, min_tracking_confidence=MIN_TRACKING)
        return self._graphs[side]

    def _reset(self, side: str) -> None:
        graph = self._graphs.pop(side, None)
        if graph is not None:
            graph.close()

    def step(self, rgb: np.ndarray, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        """``{"left"|"right": (21, 3)}`` (px + score) for the hands found next to the person's BlazePose wrists
        (``keypoints`` (33, 3) px + visibility) in this frame; a side whose hand is not found is left out."""
        out = {}
        for side in ("left", "right"):
            hand = _detect_hand(rgb, keypoints, side, graph=self._graph(side))
            if hand is None:
                if self._tracking.get(side):  # it may follow something else now (the other hand): start afresh
                    self._reset(side)
                self._tracking[side] = False
                continue
            out[side] = hand
            self._tracking[side] = True
            self.found[side] += 1
        return out

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for side in list(self._graphs):
            self._reset(side)
