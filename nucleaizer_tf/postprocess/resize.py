"""MATLAB-compatible `imresize` (bicubic, nearest at 0.5) and MATLAB rounding, in vectorised numpy.

The original pipeline resized with MATLAB, and its thresholds and label geometry depend on those exact
numbers: OpenCV's bicubic uses a = −0.75 and scikit-image's order 3 is a spline, so neither reproduces
it. The algorithm here is the documented one: Keys cubic kernel (a = −0.5), output pixel u (1-based) maps
to x = u/s + (1 − 1/s)/2, mirror ("symmetric") boundary, and when shrinking (s < 1) the kernel is widened
by 1/s and scaled by s (antialiasing). Dimensions are resized one at a time, the most-shrunk first (rows
first on ties); integer images are rounded (half away from zero) and saturated back to their type after
EVERY pass, because MATLAB's resize kernel returns the input class.
"""

from __future__ import annotations

import math

import numpy as np

#: Width of the Keys cubic kernel's support, in input pixels (at scale ≥ 1).
CUBIC_SUPPORT = 4.0


def matlab_round(x) -> np.ndarray:
    """MATLAB `round`: halves away from zero (numpy's `round` goes to even). Exact for every double."""
    x = np.asarray(x, dtype=np.float64)
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole)


def cast_like_matlab(values, dtype) -> np.ndarray:
    """Convert doubles to `dtype` as MATLAB's `uint8(x)`/`uint16(x)` do: round half away, saturate (NaN → 0)."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    rounded = np.clip(matlab_round(np.nan_to_num(values, nan=0.0)), info.min, info.max)
    return rounded.astype(dtype)


def keys_cubic(x) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = −0.5, MATLAB's 'bicubic'."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


def cubic_contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    """Weights [out_len, taps] and 0-based source indices [out_len, taps] of one 1-D bicubic resize.

    Rows sum to one; indices outside the input are mirrored (…, 2, 1, 0 | 0, 1, 2, …, n−1 | n−1, n−2, …).
    Columns whose weight is zero for every output pixel are dropped.
    """
    shrink = antialias and scale < 1.0
    width = CUBIC_SUPPORT / scale if shrink else CUBIC_SUPPORT
    u = np.arange(1, out_len + 1, dtype=np.float64)
    x = u / scale + 0.5 * (1.0 - 1.0 / scale)  # position in 1-based input coordinates
    left = np.floor(x - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based candidate source pixels
    dist = x[:, None] - idx
    weights = scale * keys_cubic(scale * dist) if shrink else keys_cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    period = 2 * in_len  # mirror: 1..n then n..1, repeated
    folded = np.mod(idx.astype(np.int64) - 1, period)
    source = np.where(folded < in_len, folded, period - 1 - folded)
    used = np.any(weights != 0, axis=0)
    return weights[:, used], source[:, used]


def _resize_axis(data: np.ndarray, axis: int, weights: np.ndarray, source: np.ndarray) -> np.ndarray:
    """One separable pass: out[..., o, ...] = Σ_t weights[o, t] · data[..., source[o, t], ...] (float64)."""
    shape = [1] * data.ndim
    shape[axis] = weights.shape[0]
    out = np.zeros(data.shape[:axis] + (weights.shape[0],) + data.shape[axis + 1:], dtype=np.float64)
    for t in range(weights.shape[1]):  # a handful of kernel taps, each a whole-image gather
        out += weights[:, t].reshape(shape) * np.take(data, source[:, t], axis=axis)
    return out


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H×W or H×W×C image, got shape {image.shape}")
    if image.dtype == bool:
        raise ValueError("bicubic resizing of a boolean mask is not meaningful; use nearest")
    return image


def _bicubic(image: np.ndarray, out_shape, scales, antialias: bool) -> np.ndarray:
    dtype = image.dtype
    data = image
    for axis in np.argsort(scales, kind="stable"):  # most-shrunk dimension first, as MATLAB orders them
        axis = int(axis)
        if out_shape[axis] == data.shape[axis] and scales[axis] == 1.0:
            continue  # the kernel is exactly the identity at scale 1
        weights, source = cubic_contributions(data.shape[axis], out_shape[axis], scales[axis], antialias)
        data = cast_like_matlab(_resize_axis(data, axis, weights, source), dtype)
    return data.astype(dtype, copy=False)


def matlab_resize_bicubic(image, out_shape, antialias: bool = True) -> np.ndarray:
    """MATLAB `imresize(image, [rows cols], 'bicubic')` (antialiasing on by default, as in MATLAB).

    Works on H×W or H×W×C arrays of any numeric type and returns the same type: uint8/uint16 results are
    rounded and saturated after each pass, floats are left unrounded. The scale per dimension is
    out/in, so a non-integer ratio still maps pixel centres exactly as MATLAB does.
    """
    image = _check_image(image)
    rows, cols = (int(v) for v in out_shape)
    if rows < 1 or cols < 1:
        raise ValueError(f"output shape must be positive, got {out_shape}")
    scales = (rows / image.shape[0], cols / image.shape[1])
    return _bicubic(image, (rows, cols), scales, antialias)


def matlab_bicubic_upscale2(image) -> np.ndarray:
    """MATLAB `imresize(image, 2, 'bicubic')`: exactly 2H×2W (docs/method.md §4.1, the 2× images of the 2x/4x runs).

    Source position of output pixel u (1-based) is u/2 + 0.25; no antialiasing applies when enlarging.
    """
    image = _check_image(image)
    return _bicubic(image, (2 * image.shape[0], 2 * image.shape[1]), (2.0, 2.0), antialias=False)


def matlab_nearest_half(labels) -> np.ndarray:
    """MATLAB `imresize(labels, 0.5, 'nearest')` (docs/method.md §5.4.4): out[r, c] = in[2r+1, 2c+1] (0-based).

    The output is ceil(H/2)×ceil(W/2); for an odd size the last row/column would fall one past the edge and
    MATLAB's mirror boundary returns the last input row/column instead. Label ids are copied, never mixed.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"expected an H×W or H×W×C array, got shape {labels.shape}")
    rows = np.minimum(np.arange(1, labels.shape[0] + 1, 2), labels.shape[0] - 1)
    cols = np.minimum(np.arange(1, labels.shape[1] + 1, 2), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]
