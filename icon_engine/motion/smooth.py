"""Temporal filtering of a motion: zero-phase Butterworth (offline) or OneEuro (live), gap bridging. Torch-free.

Rotations are filtered as unit quaternions (w, x, y, z) made sign-continuous along time first (q and −q are the
same rotation; mixing them would average to nonsense), then renormalised — for the small angular steps between
video frames this equals filtering on the rotation manifold to first order. Translations are filtered per axis.
The Butterworth filter runs forwards and backwards (:func:`scipy.signal.filtfilt`): no lag, no phase shift.
Time is in frames; cut-offs are in Hz at the motion's frame rate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import butter, filtfilt

from ..geometry.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle, sign_continuous

#: Default cut-off frequencies (Hz) for limb (and finger) rotations and for the root translation.
ROTATION_CUTOFF_HZ = 4.0
TRANSLATION_CUTOFF_HZ = 3.0
#: The trunk — the body's orientation, spine, neck and head (SMPL-X joints 0, 3, 6, 9, 12, 15) — is heavy and turns
#: slowly: its rotations are low-passed at this lower cut-off (Hz); the collars (13, 14) half-way between.
TRUNK_CUTOFF_HZ = 2.5
TRUNK_JOINTS = (0, 3, 6, 9, 12, 15)
COLLAR_JOINTS = (13, 14)


def _butter(cutoff_hz: float, fps: float, order: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
    nyquist = 0.5 * fps
    if cutoff_hz <= 0 or cutoff_hz >= 0.95 * nyquist:
        return None
    return butter(order, cutoff_hz / nyquist)


def zero_phase(x: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase low-pass of ``x`` (T, ...) along time (2nd-order Butterworth, run forwards and backwards).
    Short clips are padded by reflection as far as they allow; clips under 4 frames come back unchanged."""
    x = np.asarray(x, dtype=np.float64)
    ba = _butter(cutoff_hz, fps)
    if ba is None or len(x) < 4:
        return x.copy()
    b, a = ba
    return filtfilt(b, a, x, axis=0, padlen=min(len(x) - 1, 3 * max(len(a), len(b)) * 4), padtype="odd")


def joint_cutoffs(joints: int, limbs_hz: float = ROTATION_CUTOFF_HZ, trunk_hz: float = TRUNK_CUTOFF_HZ
                  ) -> np.ndarray:
    """(joints,) cut-off (Hz) per SMPL-X joint: ``trunk_hz`` for :data:`TRUNK_JOINTS`, their mean for the
    collars, ``limbs_hz`` for every other joint (limbs, hands, jaw, eyes)."""
    out = np.full(joints, float(limbs_hz))
    out[[j for j in TRUNK_JOINTS if j < joints]] = trunk_hz
    out[[j for j in COLLAR_JOINTS if j < joints]] = 0.5 * (trunk_hz + limbs_hz)
    return out


def smooth_rotations(aa: np.ndarray, fps: float, cutoff_hz: float | np.ndarray = ROTATION_CUTOFF_HZ) -> np.ndarray:
    """Zero-phase smoothing of axis-angle rotations (T, J, 3) through sign-continuous quaternions; ``cutoff_hz``
    one cut-off (Hz) for all joints or one per joint (J,) (e.g. :func:`joint_cutoffs`)."""
    q = sign_continuous(axis_angle_to_quaternion(aa))
    cut = np.broadcast_to(np.asarray(cutoff_hz, np.float64), (q.shape[1],))
    out = np.empty_like(q)
    for c in np.unique(cut):
        cols = np.flatnonzero(cut == c)
        out[:, cols] = zero_phase(q[:, cols], fps, float(c))
    return quaternion_to_axis_angle(out)


class OneEuro:
    """The OneEuro filter (Casiez et al., CHI 2012) on arrays of any shape: a causal low-pass whose cut-off rises
    with speed (little jitter when still, little lag when moving). ``min_cutoff`` Hz, ``beta`` s/unit,
    ``d_cutoff`` Hz for the speed estimate; call with one sample per frame at ``fps``."""

    def __init__(self, fps: float, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0) -> None:
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.fps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) * self.fps
        a_d = self._alpha(self.d_cutoff)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx))
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()


def one_euro_rotations(aa: np.ndarray, fps: float, **kw: float) -> np.ndarray:
    """OneEuro-filtered axis-angle rotations (T, J, 3) (causal; sign-continuous quaternions, renormalised)."""
    q = sign_continuous(axis_angle_to_quaternion(aa))
    f = OneEuro(fps, **kw)
    return quaternion_to_axis_angle(np.stack([f(frame) for frame in q]))


def one_euro(x: np.ndarray, fps: float, **kw: float) -> np.ndarray:
    """OneEuro-filtered samples (T, ...) (causal)."""
    f = OneEuro(fps, **kw)
    return np.stack([f(frame) for frame in np.asarray(x, dtype=np.float64)])


def segments(valid: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs [start, end) of ``valid`` frames, joining runs separated by at most ``max_gap`` invalid frames."""
    idx = np.flatnonzero(np.asarray(valid, bool))
    if len(idx) == 0:
        return []
    runs = [[int(idx[0]), int(idx[0]) + 1]]
    for i in idx[1:]:
        if i - runs[-1][1] <= max_gap:
            runs[-1][1] = int(i) + 1
        else:
            runs.append([int(i), int(i) + 1])
    return [(a, b) for a, b in runs]


def bridge(values: np.ndarray, valid: np.ndarray, rotations: bool) -> np.ndarray:
    """Fill invalid frames of ``values`` (T, ..., 3) between valid ones: rotations by normalised quaternion
    interpolation (sign-continuous), anything else linearly; ends are held."""
    valid = np.asarray(valid, bool)
    out = np.array(values, dtype=np.float64, copy=True)
    good = np.flatnonzero(valid)
    if len(good) == 0 or valid.all():
        return out
    t = np.arange(len(out))
    data = sign_continuous(axis_angle_to_quaternion(out[good])) if rotations else out[good]
    flat = data.reshape(len(good), -1)
    filled = np.stack([np.interp(t, good, flat[:, c]) for c in range(flat.shape[1])], 1)
    filled = filled.reshape((len(out),) + data.shape[1:])
    return quaternion_to_axis_angle(filled) if rotations else filled


def fill_unseen(aa: np.ndarray, seen: np.ndarray, max_gap: int, blend: int) -> np.ndarray:
    """Rotations (T, J, 3) axis-angle known where ``seen`` (T,) → all frames: a gap of at most ``max_gap`` frames
    between two seen frames is bridged (:func:`bridge`); elsewhere the last seen pose relaxes to the rest pose
    (zero) over ``blend`` frames and the next seen one grows out of it over as many (the axis-angle scaled: the
    shortest way to the rest); a part never seen stays at rest."""
    seen = np.asarray(seen, bool)
    aa = np.asarray(aa, np.float64)
    out = np.where(seen[(slice(None),) + (None,) * (aa.ndim - 1)], aa, 0.0)
    good = np.flatnonzero(seen)
    if len(good) == 0 or seen.all():
        return out
    bridged = bridge(aa, seen, rotations=True)
    for t in np.flatnonzero(~seen):
        k = int(np.searchsorted(good, t))
        prev = int(good[k - 1]) if k > 0 else None
        nxt = int(good[k]) if k < len(good) else None
        if prev is not None and nxt is not None and nxt - prev - 1 <= max_gap:
            out[t] = bridged[t]
            continue
        a = max(0.0, 1.0 - (t - prev) / (blend + 1)) if prev is not None else 0.0
        b = max(0.0, 1.0 - (nxt - t) / (blend + 1)) if nxt is not None else 0.0
        if a + b > 1.0:
            a, b = a / (a + b), b / (a + b)
        out[t] = (a * aa[prev] if a else 0.0) + (b * aa[nxt] if b else 0.0)
    return out
