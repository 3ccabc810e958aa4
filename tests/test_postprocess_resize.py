"""MATLAB-compatible imresize pieces, checked against numbers derived by hand from the Keys kernel.

Keys cubic, a = −0.5:  k(t) = 1.5|t|³ − 2.5|t|² + 1 (|t| ≤ 1),  −0.5|t|³ + 2.5|t|² − 4|t| + 2 (1 < |t| ≤ 2).
Values used below: k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = −0.0703125, k(1.75) = −0.0234375,
k(0.5) = 0.5625, k(1.5) = −0.0625.

Upscale ×2, output u (1-based) samples x = u/2 + 0.25; mirror boundary (index 0 → 1, −1 → 2, n+1 → n).
For u = 1 (x = 0.75): taps at 0, 1, 2, −1 with distances 0.75, −0.25, −1.25, 1.75, i.e.
  out = (0.2265625 + 0.8671875)·a1 + (−0.0703125 − 0.0234375)·a2 = 1.09375·a1 − 0.09375·a2.
For u = 2 (x = 1.25): taps 0, 1, 2, 3 at 1.25, 0.25, −0.75, −1.75:
  out = (−0.0703125 + 0.8671875)·a1 + 0.2265625·a2 − 0.0234375·a3 = 0.796875·a1 + 0.2265625·a2 − 0.0234375·a3.
For u = 3 (x = 1.75): taps 0, 1, 2, 3 at 1.75, 0.75, −0.25, −1.25:
  out = (−0.0234375 + 0.2265625)·a1 + 0.8671875·a2 − 0.0703125·a3 = 0.203125·a1 + 0.8671875·a2 − 0.0703125·a3.
Samples whose taps need no mirroring reproduce a linear ramp exactly (a = −0.5 reproduces degree ≤ 2).
"""

import numpy as np
import pytest

from nucleaizer_tf.postprocess import (
    cubic_contributions,
    keys_cubic,
    matlab_bicubic_upscale2,
    matlab_nearest_half,
    matlab_resize_bicubic,
)


def _round_half_away_u8(x):
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255).astype(np.uint8)


def test_kernel_values():
    np.testing.assert_array_equal(keys_cubic([0, 0.25, 0.75, 1, 1.25, 1.75, 2, 2.5, -0.5, -1.5]),
                                  [1, 0.8671875, 0.2265625, 0, -0.0703125, -0.0234375, 0, 0, 0.5625, -0.0625])


def test_upscale_ramp_1d_float():
    ramp = np.array([[10.0, 20.0, 30.0, 40.0]])
    out = matlab_bicubic_upscale2(ramp)
    assert out.shape == (2, 8) and out.dtype == np.float64
    expected = [
        1.09375 * 10 - 0.09375 * 20,  # 9.0625
        0.796875 * 10 + 0.2265625 * 20 - 0.0234375 * 30,  # 11.796875
        0.203125 * 10 + 0.8671875 * 20 - 0.0703125 * 30,  # x = 1.75: the tap at index 0 still mirrors onto a1
        22.5, 27.5,  # 10·x for x = 2.25, 2.75: no mirrored tap, the ramp is reproduced
        0.203125 * 40 + 0.8671875 * 30 - 0.0703125 * 20,
        0.796875 * 40 + 0.2265625 * 30 - 0.0234375 * 20,  # mirror image of u = 2
        1.09375 * 40 - 0.09375 * 30,
    ]
    np.testing.assert_array_equal(out, [expected, expected])  # one row → two identical rows


def test_upscale_ramp_uint8_rounds_half_away_from_zero():
    out = matlab_bicubic_upscale2(np.array([[10, 20, 30, 40]], np.uint8))
    # 9.0625, 11.796875, 17.265625, 22.5, 27.5, 32.734375, 38.203125, 40.9375; numpy's round gives 22 for 22.5
    np.testing.assert_array_equal(out[0], [9, 12, 17, 23, 28, 33, 38, 41])
    assert out.dtype == np.uint8


def test_upscale_2x2_uint8_rounds_after_each_pass():
    # n = 2: mirror maps index −1 → 2, 0 → 1, 3 → 2, so every output mixes a1 and a2 only:
    #   u=1: 1.09375·a1 − 0.09375·a2;  u=2: 0.796875·a1 + (0.2265625 − 0.0234375)·a2 = 0.796875·a1 + 0.203125·a2;
    #   u=3 and u=4 mirror u=2 and u=1.
    m = np.array([[1.09375, -0.09375], [0.796875, 0.203125], [0.203125, 0.796875], [-0.09375, 1.09375]])
    image = np.array([[0, 100], [200, 50]], np.uint8)
    rows_first = _round_half_away_u8(m @ image.astype(np.float64))  # rows first (equal scales), back to uint8
    expected = _round_half_away_u8(rows_first.astype(np.float64) @ m.T)
    out = matlab_bicubic_upscale2(image)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[0], [0, 21, 84, 115])  # row 0 after pass 1 is [0, 105] (−18.75 saturates)
    np.testing.assert_array_equal(out[1], [36, 51, 80, 95])  # row 1 after pass 1 is [41, 90]
    # floats are not rounded between passes
    np.testing.assert_allclose(matlab_bicubic_upscale2(image.astype(np.float64)), m @ image @ m.T, rtol=0, atol=1e-12)


def test_upscale_exact_sizes_and_channels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    out = matlab_bicubic_upscale2(image)
    assert out.shape == (6, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], matlab_bicubic_upscale2(image[..., c]))
    assert matlab_bicubic_upscale2(np.zeros((1, 1), np.uint8)).shape == (2, 2)


def test_upscale_long_ramp_is_linear_inside():
    ramp = np.tile(np.arange(20, dtype=np.float64), (3, 1))
    out = matlab_bicubic_upscale2(ramp)
    x = np.arange(1, 41) / 2 + 0.25 - 1  # 0-based source position of each output column
    np.testing.assert_allclose(out[0, 3:-3], x[3:-3], atol=1e-12)


def test_shrink_with_antialias_1d():
    # scale 0.5: kernel h(t) = 0.5·k(0.5·t), support 8. u = 1 samples x = 1.5; taps −2…5 at distances
    # 3.5 … −3.5 → weights 0.5·k(±1.75), 0.5·k(±1.25), 0.5·k(±0.75), 0.5·k(±0.25) (they sum to 1).
    # Mirror (n = 4): −2 → 3, −1 → 2, 0 → 1, 5 → 4, so
    #   out1 = (0.11328125 + 0.43359375)·a1 + (−0.03515625 + 0.43359375)·a2 + (−0.01171875 + 0.11328125)·a3
    #          + (−0.03515625 − 0.01171875)·a4 = 0.546875·a1 + 0.3984375·a2 + 0.1015625·a3 − 0.046875·a4
    ramp = np.array([[10.0, 20.0, 30.0, 40.0]])
    out = matlab_resize_bicubic(ramp, (1, 2))
    first = 0.546875 * 10 + 0.3984375 * 20 + 0.1015625 * 30 - 0.046875 * 40
    last = 0.546875 * 40 + 0.3984375 * 30 + 0.1015625 * 20 - 0.046875 * 10
    np.testing.assert_allclose(out, [[first, last]], rtol=0, atol=1e-12)
    # without antialiasing, u = 1 at x = 1.5 uses k(1.5), k(0.5), k(0.5), k(1.5) on a1 (mirrored), a1, a2, a3:
    #   (−0.0625 + 0.5625)·a1 + 0.5625·a2 − 0.0625·a3
    plain = matlab_resize_bicubic(ramp, (1, 2), antialias=False)
    np.testing.assert_allclose(plain[0, 0], 0.5 * 10 + 0.5625 * 20 - 0.0625 * 30, rtol=0, atol=1e-12)


def test_contribution_rows_sum_to_one_and_stay_inside():
    for n_in, n_out in [(4, 2), (7, 3), (5, 13), (1, 3), (256, 100)]:
        weights, source = cubic_contributions(n_in, n_out, n_out / n_in)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0)
        assert source.min() >= 0 and source.max() < n_in


def test_general_resize_sizes_dtype_and_constant_image():
    image = np.full((7, 9), 40000, np.uint16)
    for shape in [(3, 4), (14, 18), (7, 20), (10, 5)]:
        out = matlab_resize_bicubic(image, shape)
        assert out.shape == shape and out.dtype == np.uint16
        np.testing.assert_array_equal(out, 40000)  # weights sum to one → constants are preserved
    np.testing.assert_array_equal(matlab_resize_bicubic(image, (7, 9)), image)


def test_general_resize_matches_upscale2_when_doubling():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(matlab_resize_bicubic(image, (12, 14)), matlab_bicubic_upscale2(image))


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError):
        matlab_resize_bicubic(np.zeros((4, 4)), (0, 3))
    with pytest.raises(ValueError):
        matlab_bicubic_upscale2(np.zeros(5))


def test_nearest_half_picks_odd_pixels():
    labels = np.arange(20).reshape(4, 5)
    out = matlab_nearest_half(labels)
    # rows 1, 3; columns 1, 3 and, for the odd width, the mirrored index 5 → 4
    np.testing.assert_array_equal(out, [[6, 8, 9], [16, 18, 19]])
    assert matlab_nearest_half(np.zeros((512, 640), np.uint16)).shape == (256, 320)
    assert matlab_nearest_half(np.ones((1, 1), np.uint16)).shape == (1, 1)
    assert matlab_nearest_half(labels.astype(np.uint16)).dtype == np.uint16
