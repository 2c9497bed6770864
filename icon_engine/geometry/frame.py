"""The photo's frame: which points lie beyond which edge, and how far (processing pixels, OpenCV image frame:
x right, y down, the frame spans [0, width] × [0, height]). A person cut by the frame (a half-body photo, a head
cut at the top) goes on beyond it; the fit, the surface and ICON's path all ask the same questions here."""

from __future__ import annotations

import numpy as np

EDGES = ("top", "bottom", "left", "right")


def beyond_edges(xy: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Per edge of a ``width`` × ``height`` photo (``"top"``, ``"bottom"``, ``"left"``, ``"right"``): which points
    ``xy`` (…, 2, processing px) lie beyond it."""
    xy = np.asarray(xy, dtype=np.float64)
    return {"top": xy[..., 1] < 0, "bottom": xy[..., 1] > height, "left": xy[..., 0] < 0, "right": xy[..., 0] > width}


def beyond_frame(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(…) bool: which points ``xy`` (…, 2, processing px) lie beyond the photo's frame."""
    return np.logical_or.reduce(list(beyond_edges(xy, width, height).values()))


def open_edges(keypoints: np.ndarray, width: int, height: int) -> frozenset[str]:
    """The photo's edges the person goes on beyond: those with a landmark of ``keypoints`` (K, ≥ 2) processing px
    beyond them (BlazePose places the joints of a person cut by the frame outside it, a half-body photo's knees and
    ankles below it). A person whose mask only touches an edge (feet on the bottom row) has none."""
    beyond = beyond_edges(np.asarray(keypoints, dtype=np.float64)[:, :2], width, height)
    return frozenset(edge for edge, points in beyond.items() if points.any())


def distance_beyond(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(…) distance (px) of points ``xy`` (…, 2, processing px) from the photo's frame; 0 inside it."""
    xy = np.asarray(xy, dtype=np.float64)
    dx = np.clip(-xy[..., 0], 0, None) + np.clip(xy[..., 0] - width, 0, None)
    dy = np.clip(-xy[..., 1], 0, None) + np.clip(xy[..., 1] - height, 0, None)
    return np.hypot(dx, dy)


def into_frame(xy: np.ndarray, width: int, height: int, edges: frozenset[str] | set[str] | None = None,
               inset: float = 0.5) -> np.ndarray:
    """Points ``xy`` (…, 2, processing px) beyond the given ``edges`` (default all four) moved straight back to
    ``inset`` px inside them: what the photo shows nearest to where a person cut by the frame goes on."""
    out = np.array(xy, dtype=np.float64, copy=True)
    edges = EDGES if edges is None else edges
    if "left" in edges:
        out[..., 0] = np.maximum(out[..., 0], inset)
    if "right" in edges:
        out[..., 0] = np.minimum(out[..., 0], width - inset)
    if "top" in edges:
        out[..., 1] = np.maximum(out[..., 1], inset)
    if "bottom" in edges:
        out[..., 1] = np.minimum(out[..., 1], height - inset)
    return out
