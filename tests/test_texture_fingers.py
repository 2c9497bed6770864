"""Fingers take their hand's colour where their photo sample does not look like it (wave 13).

The body model's fingers grafted onto the avatar, fitted a little off the photo's, read the background the person
mask holds between spread fingers (icon_fb9d20fd's raised hand against the sky had blue fingertips). A finger
vertex whose sample lies far from its hand's seen palm colour drops it and takes the fill."""

from __future__ import annotations

import numpy as np

from icon_engine.texture import hand_labels_from_skin_weights
from icon_engine.texture.keeps import FINGER_COLOUR, FINGER_MIN_PALM, finger_colour_keep
from icon_engine.texture.parts import HAND_FINGERS, HAND_PALM

SKIN = np.array([200.0, 140.0, 110.0])
SKY = np.array([90.0, 145.0, 205.0])


def test_hand_labels_follow_the_finger_and_wrist_weights():
    w = np.zeros((5, 55))
    w[0, 26] = 1.0  # left index middle joint: a finger
    w[1, 20], w[1, 25] = 0.6, 0.3  # left wrist with the index root: the palm
    w[2, 18] = 1.0  # left elbow: the forearm
    w[3, 41] = 1.0  # right index: a finger
    w[4, 21], w[4, 18] = 0.4, 0.6  # the right wrist's edge, mostly forearm: not the hand
    labels = hand_labels_from_skin_weights(w)
    assert labels.tolist() == [HAND_FINGERS["left"], HAND_PALM["left"], 0, HAND_FINGERS["right"], 0]


def _hand(n_palm: int, finger_colours: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hands = np.array([HAND_PALM["left"]] * n_palm + [HAND_FINGERS["left"]] * len(finger_colours) + [0])
    photo = np.array([SKIN + (i % 3) for i in range(n_palm)] + finger_colours + [SKY])
    alpha = np.ones(len(hands))
    return hands, alpha, photo


def test_a_finger_that_reads_the_sky_drops_its_sample():
    hands, alpha, photo = _hand(20, [SKIN + 10, SKY, 0.5 * (SKIN + SKY), SKIN - 30])
    keep = finger_colour_keep(hands, alpha, photo)
    assert keep.tolist() == [True] * 20 + [True, False, False, True, True]  # the sky-coloured elsewhere stays
    assert np.linalg.norm(0.5 * (SKIN + SKY) - SKIN) > FINGER_COLOUR  # the half-sky blend is far enough


def test_a_hand_without_a_seen_palm_judges_nothing():
    hands, alpha, photo = _hand(FINGER_MIN_PALM - 1, [SKY])
    assert finger_colour_keep(hands, alpha, photo).all()
    hands, alpha, photo = _hand(20, [SKY])
    alpha[:20] = 0.0  # the palm is there but unseen
    assert finger_colour_keep(hands, alpha, photo).all()


def test_the_pipeline_gives_the_bake_each_vertexs_hand_and_the_photos_hands_and_face(monkeypatch):
    from types import SimpleNamespace

    from icon_engine import pipeline, texture
    from icon_engine.options import ReconstructOptions

    seen = {}

    def fake_bake(*args, **kwargs):
        seen.update(kwargs)
        return "texture"

    monkeypatch.setattr(texture, "bake_texture", fake_bake)
    w = np.zeros((3, 55))
    w[0, 30], w[1, 20], w[2, 0] = 1.0, 1.0, 1.0
    avatar = SimpleNamespace(posed_vertices=np.zeros((3, 3)), faces=np.zeros((1, 3), int),
                             rig=SimpleNamespace(skin_weights=w, rest_vertices=np.zeros((3, 3))))
    reporter = SimpleNamespace(stage=lambda *a, **k: None, update=lambda *a, **k: None)
    out = pipeline.bake_avatar_texture(avatar, SimpleNamespace(rgb=np.zeros((4, 4, 3), np.uint8)),
                                       SimpleNamespace(mask=np.ones((4, 4), bool), keypoints=np.zeros((33, 3)),
                                                       hands={"left": np.ones((21, 3))}, face=np.ones((7, 3))),
                                       SimpleNamespace(camera=None, joints=np.zeros((55, 3))),
                                       ReconstructOptions(quality="preview"), reporter)
    assert out == "texture"
    assert seen["vertex_hands"].tolist() == [HAND_FINGERS["left"], HAND_PALM["left"], 0]
    assert list(seen["photo_hands"]) == ["left"]  # the photo's hands: what lies under them takes its part's fill
    assert seen["photo_face"].shape == (7, 3)  # the photo's face points: a turned face's far half mirrored


def test_hand_labels_of_the_wrong_length_are_a_clear_error():
    import pytest

    from icon_engine.errors import EngineError
    from icon_engine.texture import bake_texture

    with pytest.raises(EngineError, match="vertex_hands has shape"):
        bake_texture(np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((4, 4, 3), np.uint8), None, None,
                     vertex_hands=np.zeros(2, np.int8))
