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
    """MATLAB `round`: round to the nearest integer, halves away from zero.

    numpy's `round` sends halves to the even neighbour instead; this one is exact for every double.

    Parameters
    ----------
    x : array_like
        Numbers to round (converted to float64).

    Returns
    -------
    np.ndarray
        float64 array of the shape of `x`, holding whole numbers.

    Examples
    --------
    >>> matlab_round([-2.5, -0.5, 0.5, 1.5, 2.5])
    array([-3., -1.,  1.,  2.,  3.])
    >>> np.round([-2.5, -0.5, 0.5, 1.5, 2.5])
    array([-2., -0.,  0.,  2.,  2.])
    """
    x = np.asarray(x, dtype=np.float64)
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole)


def cast_like_matlab(values, dtype) -> np.ndarray:
    """Convert doubles to `dtype` as MATLAB's `uint8(x)`/`uint16(x)` do.

    For an integer `dtype` the values are rounded half away from zero (`matlab_round`), saturated to the
    type's range, and NaN becomes 0. A non-integer `dtype` is a plain cast.

    Parameters
    ----------
    values : array_like
        Numbers to convert (taken as float64).
    dtype : numpy dtype or type
        Target type, e.g. ``np.uint8``, ``np.uint16`` or ``np.float32``.

    Returns
    -------
    np.ndarray
        Array of the shape of `values` and type `dtype`.

    Examples
    --------
    >>> cast_like_matlab([-3.0, 0.5, 2.5, 254.5, 300.0, np.nan], np.uint8)
    array([  0,   1,   3, 255, 255,   0], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    rounded = np.clip(matlab_round(np.nan_to_num(values, nan=0.0)), info.min, info.max)
    return rounded.astype(dtype)


def keys_cubic(x) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = −0.5, MATLAB's 'bicubic'.

    ``1.5|x|³ − 2.5|x|² + 1`` for |x| ≤ 1, ``−0.5|x|³ + 2.5|x|² − 4|x| + 2`` for 1 < |x| ≤ 2, else 0.

    Parameters
    ----------
    x : array_like
        Distances from the sample position, in input pixels (any sign).

    Returns
    -------
    np.ndarray
        float64 kernel weights, same shape as `x`.

    Examples
    --------
    >>> keys_cubic([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    array([ 1.    ,  0.5625,  0.    , -0.0625,  0.    ,  0.    ])
    """
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


def cubic_contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    """Weights and 0-based source indices of one 1-D bicubic resize (MATLAB `imresize` 'bicubic').

    Output pixel u (1-based) samples the input at x = u/scale + (1 − 1/scale)/2 (1-based). When shrinking
    with `antialias` (scale < 1) the Keys kernel is widened by 1/scale and scaled by `scale`.
    Rows sum to one; indices outside the input are mirrored (…, 2, 1, 0 | 0, 1, 2, …, n−1 | n−1, n−2, …).
    Columns whose weight is zero for every output pixel are dropped.

    Parameters
    ----------
    in_len : int
        Input length n along the resized dimension.
    out_len : int
        Output length along that dimension.
    scale : float
        Scale factor, normally ``out_len / in_len``.
    antialias : bool, default True
        Widen the kernel when shrinking, as MATLAB does by default.

    Returns
    -------
    weights : np.ndarray
        (out_len, taps) float64 weights; each row sums to one.
    source : np.ndarray
        (out_len, taps) int64 0-based input indices, in 0..in_len−1.

    Examples
    --------
    >>> weights, source = cubic_contributions(3, 6, 2.0)
    >>> weights.shape
    (6, 4)
    >>> source[0]
    array([1, 0, 0, 1])
    >>> np.allclose(weights.sum(axis=1), 1.0)
    True
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
    out/in, so a non-integer ratio still maps pixel centres exactly as MATLAB does. Dimensions are
    resized one at a time, the most-shrunk first (rows first on ties).

    Parameters
    ----------
    image : array_like
        (H, W) or (H, W, C) numeric image; boolean masks are refused (use nearest for those).
    out_shape : tuple of int
        Output size ``(rows, cols)``, both ≥ 1; the channels are kept.
    antialias : bool, default True
        Widen the kernel when shrinking, as MATLAB does.

    Returns
    -------
    np.ndarray
        (rows, cols) or (rows, cols, C) array of the input's dtype.

    Raises
    ------
    ValueError
        If the image is not 2-D or 3-D, is boolean, or `out_shape` is not positive.

    Examples
    --------
    >>> img = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    >>> matlab_resize_bicubic(img, (4, 4))
    array([[  0,  17,  68,  93],
           [ 33,  59, 113, 139],
           [153, 172, 211, 230],
           [216, 226, 248, 255]], dtype=uint8)
    >>> matlab_resize_bicubic(np.arange(16.0).reshape(4, 4), (2, 2))
    array([[ 2.3046875,  4.3828125],
           [10.6171875, 12.6953125]])
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

    Parameters
    ----------
    image : array_like
        (H, W) or (H, W, C) numeric image (not boolean).

    Returns
    -------
    np.ndarray
        (2H, 2W) or (2H, 2W, C) array of the input's dtype (integers rounded and saturated).

    Examples
    --------
    >>> matlab_bicubic_upscale2(np.array([[0, 100], [200, 255]], dtype=np.uint8))
    array([[  0,  17,  68,  93],
           [ 33,  59, 113, 139],
           [153, 172, 211, 230],
           [216, 226, 248, 255]], dtype=uint8)
    """
    image = _check_image(image)
    return _bicubic(image, (2 * image.shape[0], 2 * image.shape[1]), (2.0, 2.0), antialias=False)


def matlab_nearest_half(labels) -> np.ndarray:
    """MATLAB `imresize(labels, 0.5, 'nearest')` (docs/method.md §5.4.4): out[r, c] = in[2r+1, 2c+1] (0-based).

    The output is ceil(H/2)×ceil(W/2); for an odd size the last row/column would fall one past the edge and
    MATLAB's mirror boundary returns the last input row/column instead. Label ids are copied, never mixed.

    Parameters
    ----------
    labels : array_like
        (H, W) or (H, W, C) array of any dtype, typically a label image at 2× resolution.

    Returns
    -------
    np.ndarray
        (ceil(H/2), ceil(W/2)[, C]) array of the input's dtype (a gathered copy).

    Raises
    ------
    ValueError
        If `labels` is not 2-D or 3-D.

    Examples
    --------
    >>> matlab_nearest_half(np.arange(1, 17).reshape(4, 4))
    array([[ 6,  8],
           [14, 16]])
    >>> matlab_nearest_half(np.arange(1, 26).reshape(5, 5))
    array([[ 7,  9, 10],
           [17, 19, 20],
           [22, 24, 25]])
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"expected an H×W or H×W×C array, got shape {labels.shape}")
    rows = np.minimum(np.arange(1, labels.shape[0] + 1, 2), labels.shape[0] - 1)
    cols = np.minimum(np.arange(1, labels.shape[1] + 1, 2), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]
