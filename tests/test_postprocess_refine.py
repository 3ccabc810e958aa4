"""Step C of the post-processing (spec 5.6): labelled dilation/erosion, ring correction with the U-Net
mask, the first-component filter (quirk Q4) and the support filter.  Expected arrays are literal."""

import numpy as np
import pytest

from nucleaizer_tf.postprocess.params import PostprocessParams
from nucleaizer_tf.postprocess.refine import (
    dilate_labels,
    erode_labels,
    first_component_filter,
    probability_mask,
    refine_with_unet,
    ring_correction,
    support_filter,
)

A = np.array


def _touching_pair():
    L = np.zeros((5, 8), dtype=np.uint16)
    L[2, 2:4] = 1
    L[2, 4:6] = 2
    return L


def test_dilate_labels_r1_nearest_label_for_touching_objects():
    np.testing.assert_array_equal(
        dilate_labels(_touching_pair(), 1),
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 2, 2, 0, 0],
            [0, 1, 1, 1, 2, 2, 2, 0],
            [0, 0, 1, 1, 2, 2, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
    )


def test_dilate_labels_r2_is_the_13_pixel_disk():
    np.testing.assert_array_equal(
        dilate_labels(_touching_pair(), 2),
        [
            [0, 0, 1, 1, 2, 2, 0, 0],
            [0, 1, 1, 1, 2, 2, 2, 0],
            [1, 1, 1, 1, 2, 2, 2, 2],
            [0, 1, 1, 1, 2, 2, 2, 0],
            [0, 0, 1, 1, 2, 2, 0, 0],
        ],
    )


def test_dilate_erode_r0_is_identity():
    L = _touching_pair()
    np.testing.assert_array_equal(dilate_labels(L, 0), L)
    np.testing.assert_array_equal(erode_labels(L, 0), L)


def test_erode_labels_does_not_separate_touching_objects():
    L = np.zeros((6, 8), dtype=np.uint16)
    L[1:5, 1:4] = 1
    L[1:5, 4:7] = 2
    np.testing.assert_array_equal(
        erode_labels(L, 1),
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 2, 2, 0, 0],
            [0, 0, 1, 1, 2, 2, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
    )


def test_erode_labels_image_border_counts_as_foreground():
    L = np.zeros((5, 5), dtype=np.uint16)
    L[0:3, 0:3] = 3
    np.testing.assert_array_equal(
        erode_labels(L, 1),
        [
            [3, 3, 0, 0, 0],
            [3, 3, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
    )


def _square():
    M = np.zeros((6, 6), dtype=np.uint16)
    M[2:4, 2:4] = 1
    P = np.zeros((6, 6), dtype=bool)
    P[1, 2] = P[2, 1] = P[0, 0] = P[2, 2] = True
    return M, P


def test_ring_correction_adds_only_supported_ring_pixels():
    M, P = _square()
    np.testing.assert_array_equal(
        ring_correction(M, P, 0, 1),
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
    )


def test_ring_correction_with_erosion_keeps_only_supported_pixels_outside_the_core():
    M, P = _square()  # the 2x2 core erodes away completely
    np.testing.assert_array_equal(
        ring_correction(M, P, 1, 1),
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
    )


def test_probability_mask_threshold_levels():
    E = A([[30719, 30720, 65534, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(probability_mask(E, E.shape, PostprocessParams(prob_threshold=15).prob_level),
                                  [[False, True, True, True]])
    np.testing.assert_array_equal(probability_mask(E, E.shape, PostprocessParams().prob_level),
                                  [[False, False, False, True]])


Q4_LABELS = A(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1],
        [1, 0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1, 1],
        [2, 2, 0, 0, 0, 0],
        [0, 0, 3, 3, 3, 3],
        [0, 0, 3, 3, 3, 3],
    ],
    dtype=np.uint16,
)


def test_first_component_filter_keeps_column_major_first_not_largest():
    # 1: total area 10 > 5 -> only its column-major-first component, the lone pixel (2, 0);
    # 2: area 2 <= 5 -> dropped; 3: area 8 -> kept, renumbered 2
    np.testing.assert_array_equal(
        first_component_filter(Q4_LABELS, 5, 4),
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 2, 2, 2, 2],
            [0, 0, 2, 2, 2, 2],
        ],
    )


def test_first_component_filter_total_area_must_exceed_max_v():
    np.testing.assert_array_equal(first_component_filter(Q4_LABELS, 10, 4), (Q4_LABELS == 0) * 0)  # 10 <= 10
    np.testing.assert_array_equal(first_component_filter(Q4_LABELS, 9, 4)[2, 0], 1)


def test_first_component_filter_4_vs_8_connectivity():
    L = A(
        [
            [5, 0, 0],
            [0, 5, 5],
            [0, 5, 5],
        ]
    )
    np.testing.assert_array_equal(first_component_filter(L, 2, 4), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(first_component_filter(L, 2, 8), [[1, 0, 0], [0, 1, 1], [0, 1, 1]])


def _blocks(sizes, shape=(12, 60)):
    """Label image with one rectangle (rows x cols) per entry, left to right, ids 1..n."""
    L = np.zeros(shape, dtype=np.uint16)
    col = 0
    for k, (r, c) in enumerate(sizes, start=1):
        L[0:r, col : col + c] = k
        col += c + 1
    return L


def test_support_filter_area_boundaries():
    L = _blocks([(5, 5), (4, 6), (10, 10), (9, 11)])  # areas 25, 24, 100, 99
    P = np.zeros(L.shape, dtype=bool)
    P[0, 0] = True  # object 1: s = 1/25, supported
    P[0, 6] = True  # object 2: s = 1/24, supported
    got = support_filter(L, P, 0.0017, 25)
    # 25 supported -> kept (1); 24 supported -> dropped; 100 unsupported -> kept (2); 99 unsupported -> dropped
    expected = np.zeros(L.shape, dtype=np.uint16)
    expected[L == 1] = 1
    expected[L == 3] = 2
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16


def test_support_filter_overlap_boundary_is_inclusive():
    L = _blocks([(3, 10), (3, 10)], shape=(3, 21))  # two objects of 30 px
    P = np.zeros(L.shape, dtype=bool)
    P[0, 0:3] = True  # object 1: s = 3/30 = 0.1 exactly
    P[0, 11:13] = True  # object 2: s = 2/30 < 0.1, unsupported and < 4 * 25
    got = support_filter(L, P, PostprocessParams(min_overlap=1000).overlap_fraction, 25)
    expected = np.zeros((3, 21), dtype=np.uint16)
    expected[:, 0:10] = 1
    np.testing.assert_array_equal(got, expected)


def test_refine_with_unet_end_to_end_and_ensemble_resize():
    M = np.zeros((10, 10), dtype=np.uint16)
    M[2:8, 2:8] = 4  # 36 px > max_v 32
    M[0, 9] = 2  # 1 px -> dropped by the component filter
    E = np.full((20, 20), 65535, dtype=np.uint16)  # 2x size: resized (bicubic) to 10x10, still saturated
    got = refine_with_unet(M, E, PostprocessParams())
    expected = A(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16
    # no U-Net support at all: 36 px < 4 * 25 -> removed
    assert not refine_with_unet(M, np.zeros((10, 10), np.uint16), PostprocessParams()).any()


def test_negative_radius_rejected():
    with pytest.raises(ValueError):
        dilate_labels(_touching_pair(), -1)
