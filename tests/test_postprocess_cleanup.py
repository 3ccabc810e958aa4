"""Step A of the post-processing (spec 5.4): relabel, hole absorption, convexity merging, small-object
removal, nearest 0.5 downscale.  Every expected array is written out literally."""

import numpy as np
import pytest

from nucleaizer_tf.postprocess.cleanup import (
    absorb_holes,
    cleanup_scale,
    convex_deficiency,
    first_component,
    merge_touching,
    neighbour_pairs,
    relabel,
    relabel_consecutive,
    remove_small,
)
from nucleaizer_tf.postprocess.params import PostprocessParams

A = np.array


def test_relabel_with_zero():
    got = relabel(A([[0, 5, 5], [7, 0, 2]], dtype=np.uint16))
    np.testing.assert_array_equal(got, [[0, 2, 2], [3, 0, 1]])
    assert got.dtype == np.uint16


def test_relabel_without_zero_makes_smallest_label_background():
    # the original's edge case: sorted unique values -> 0..n-1, so label 3 becomes background
    np.testing.assert_array_equal(relabel(A([[3, 3], [8, 5]])), [[0, 0], [2, 1]])


def test_relabel_consecutive_keeps_zero():
    np.testing.assert_array_equal(relabel_consecutive(A([[3, 3], [8, 5]])), [[1, 1], [3, 2]])
    np.testing.assert_array_equal(relabel_consecutive(A([[0, 9], [4, 9]])), [[0, 2], [1, 2]])


def test_absorb_holes_object_inside_ring_and_background_hole():
    L = A(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 4, 4, 4, 0, 6, 6, 6, 0],
            [0, 4, 2, 4, 0, 6, 0, 6, 0],
            [0, 4, 4, 4, 0, 6, 6, 6, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [9, 9, 9, 0, 0, 0, 0, 0, 0],
            [9, 0, 9, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint16,
    )
    # 2 lies in 4's hole -> absorbed; 6's background hole is filled; 9's notch is open to the border
    # (4-connected background) -> untouched; then relabel 0,4,6,9 -> 0,1,2,3
    expected = A(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 2, 2, 2, 0],
            [0, 1, 1, 1, 0, 2, 2, 2, 0],
            [0, 1, 1, 1, 0, 2, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [3, 3, 3, 0, 0, 0, 0, 0, 0],
            [3, 0, 3, 0, 0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(absorb_holes(L), expected)


def test_absorb_holes_nested_and_lower_id_outside():
    # 1 encloses 3, which encloses 2: everything ends up in 1 whatever the processing order
    L = A(
        [
            [1, 1, 1, 1, 1],
            [1, 3, 3, 3, 1],
            [1, 3, 2, 3, 1],
            [1, 3, 3, 3, 1],
            [1, 1, 1, 1, 1],
            [0, 0, 0, 0, 0],
        ]
    )
    expected = np.zeros((6, 5), dtype=int)
    expected[:5] = 1
    np.testing.assert_array_equal(absorb_holes(L), expected)


def test_neighbour_pairs_8_vs_4():
    L = A(
        [
            [1, 1, 0, 0],
            [0, 0, 2, 0],
            [3, 0, 2, 4],
        ]
    )
    np.testing.assert_array_equal(neighbour_pairs(L, 8), [[1, 2], [2, 4]])
    np.testing.assert_array_equal(neighbour_pairs(L, 4), [[2, 4]])


def test_first_component_is_column_major_first():
    m = A(
        [
            [0, 0, 1, 1],
            [0, 0, 1, 1],
            [1, 0, 0, 0],
        ],
        dtype=bool,
    )
    # column-major scan meets (2, 0) first -> that single pixel, not the larger block
    np.testing.assert_array_equal(first_component(m, 8), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])


# a disc of radius 4 cut along a zigzag: each half is non-convex, their union is the disc
ZIGZAG_DISC = A(
    [
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 2, 2, 2, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 0],
        [0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 0],
        [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0],
        [0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 0],
        [0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 0],
        [0, 0, 0, 1, 1, 2, 2, 2, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint16,
)

TWO_DISCS = A(
    [
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint16,
)


def test_convex_deficiencies_of_the_test_shapes():
    # skimage hull of pixel-edge midpoints (MATLAB ConvexArea may differ by a few pixels on other shapes)
    assert convex_deficiency(ZIGZAG_DISC == 1) == 8
    assert convex_deficiency(ZIGZAG_DISC == 2) == 5
    assert convex_deficiency(ZIGZAG_DISC > 0) == 8
    assert convex_deficiency(TWO_DISCS == 1) == convex_deficiency(TWO_DISCS == 2) == 8
    assert convex_deficiency(TWO_DISCS > 0) == 28


def test_merge_touching_halves_of_a_disc_merge():
    expected = (ZIGZAG_DISC > 0).astype(int)  # 8 + 5 > 8 -> one object, relabelled 1
    np.testing.assert_array_equal(merge_touching(ZIGZAG_DISC), expected)


def test_merge_touching_separate_discs_stay_apart():
    np.testing.assert_array_equal(merge_touching(TWO_DISCS), TWO_DISCS)  # 8 + 8 < 28


def test_merge_touching_relabels_gaps_and_keeps_lonely_objects():
    L = ZIGZAG_DISC.astype(np.int64) * 3  # ids 3 and 6
    L[0, 0] = 9  # lonely pixel, no neighbour
    expected = (ZIGZAG_DISC > 0).astype(int)
    expected[0, 0] = 2
    np.testing.assert_array_equal(merge_touching(L), expected)


def test_remove_small_keeps_gaps():
    L = A(
        [
            [1, 1, 1, 0, 4],
            [2, 0, 3, 3, 4],
            [0, 0, 0, 0, 4],
        ]
    )
    # areas 1:3, 2:1, 3:2, 4:3; area <= 2 removed, ids kept (no relabel)
    np.testing.assert_array_equal(
        remove_small(L, 2),
        [
            [1, 1, 1, 0, 4],
            [0, 0, 0, 0, 4],
            [0, 0, 0, 0, 4],
        ],
    )


def test_cleanup_scale_nearest_half_picks_odd_pixels():
    # 2x image 6x8; object 1 (area 12) survives min_size 10; object 2 (area 4) does not; 3 is in 1's hole
    L = A(
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 0, 2, 2],
            [0, 1, 3, 3, 1, 0, 2, 2],
            [0, 1, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 5],
            [0, 0, 0, 0, 0, 0, 0, 5],
        ]
    )
    params = PostprocessParams(min_size=10)
    # absorb: 3 -> 1; relabel {0,1,2,5} -> {0,1,2,3}; merge: 1 and 2 do not touch; remove area <= 10:
    # 2 (4 px) and 3 (2 px) go -> rows 1,3,5 / cols 1,3,5,7 of that image
    expected = A(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 0, 0],
        ]
    )
    got = cleanup_scale(L, params)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16


def test_cleanup_scale_odd_size_uses_last_row():
    L = np.zeros((5, 5), dtype=np.uint16)
    L[2:5, 2:5] = 7
    got = cleanup_scale(L, PostprocessParams(min_size=0))
    # rows/cols 1, 3, and 4 (the 5th would be past the edge: MATLAB's mirror gives the last one)
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 1, 1], [0, 1, 1]])


def test_bad_inputs():
    with pytest.raises(ValueError):
        relabel(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError):
        merge_touching(np.zeros((3, 3), dtype=np.uint8), connectivity=6)
    with pytest.raises(ValueError):
        relabel(A([[0.5, 1.0]]))


def test_convex_area_matches_skimage_hull_image():
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    from nucleaizer_tf.postprocess.cleanup import _convex_area

    rng = np.random.default_rng(7)
    for t in range(300):
        h, w = rng.integers(1, 25, 2)
        if t % 2:
            m = ndimage.binary_opening(rng.random((h, w)) < 0.7)  # blobs
        else:
            m = rng.random((h, w)) < rng.uniform(0.01, 0.5)  # scattered pixels, disconnected sets
        if m.any():
            assert _convex_area(m) == int(convex_hull_image(m).sum()), m.astype(int)
