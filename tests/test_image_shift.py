"""The shared 2-D shift search and mask outline (icon_engine.geometry.image_shift)."""

from __future__ import annotations

import numpy as np

from icon_engine.geometry.image_shift import mask_outline, search_shift


def test_search_shift_finds_an_off_grid_minimum_and_keeps_zero_without_enough_gain():
    target = np.array([5, -3])

    def bowl(shifts: np.ndarray) -> np.ndarray:
        return 1.0 + ((shifts - target) ** 2).sum(axis=1)

    np.testing.assert_array_equal(search_shift(bowl, 10, step=3, radius=2, min_gain=0.15), [5.0, -3.0])
    # the best shift lowers the cost of no shift (35) to 1, i.e. by 97 %: asking for more keeps zero
    assert not search_shift(bowl, 10, step=3, radius=2, min_gain=0.99).any()
    # the minimum beyond max_shift: the shift stays within it
    assert np.abs(search_shift(bowl, 2, step=2, radius=1, min_gain=0.1)).max() <= 2


def test_mask_outline_is_the_ring_of_pixels_with_a_4_neighbour_outside():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    ring = mask_outline(mask)
    assert ring.sum() == 16 and not ring[2:5, 2:5].any() and ring[1, 1] and ring[5, 3]
    full = np.ones((3, 3), dtype=bool)  # the image border counts as outside
    assert mask_outline(full).sum() == 8


def test_mask_iou_counts_overlap_over_union():
    from icon_engine.geometry.image_shift import mask_iou

    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 1.0  # both empty
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == 4 / 12
    assert mask_iou(a, ~a) == 0.0
