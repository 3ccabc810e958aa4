"""Conversion of any image to the 8-bit, 3-channel RGB the networks take.

Two modes:
* ``nucleaizer`` — exactly the original's rules (`kutils.RCNNConvertInputImage`, docs/method.md §2.3): grey → three
  identical channels, alpha (and any channel past the third) dropped, uint16 stretched per channel by its
  own min–max with truncation, every other dtype cast with numpy's `astype(uint8)`.
* ``percentile`` — one 1 %–99.8 % stretch over the whole image (all kept channels together, so colour
  balance survives), rounded to nearest. What users expect for sparse 16-bit fluorescence, where a few
  bright pixels make the min–max stretch nearly black. Above `SAMPLE_PIXELS` pixels the percentiles
  come from a regular sub-grid (deterministic), so the cost stays flat for 8000² images; the output is
  written in row blocks (uint8 input through a lookup table) to bound the float temporaries.
"""

from __future__ import annotations

import numpy as np

CONVERSION_MODES = ("nucleaizer", "percentile")
PERCENTILES = (1.0, 99.8)
#: above this many pixels the stretch percentiles come from a regular sub-grid of the image
SAMPLE_PIXELS = 1 << 22
_BLOCK_ROWS = 1024


def _three_channels(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3:
        raise ValueError(f"expected a 2-D grey or H×W×C image, got shape {image.shape}")
    c = image.shape[2]
    if c >= 3:
        return image[:, :, :3]
    # 1 channel, or grey + alpha (2 channels): replicate the grey channel.
    return np.repeat(image[:, :, :1], 3, axis=2)


def _faithful(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype == np.uint16:
        out = np.empty(rgb.shape, np.uint8)
        for c in range(3):
            ch = rgb[:, :, c].astype(np.float64)
            lo, hi = ch.min(), ch.max()
            # The original divides by zero on a constant channel (NaN → 0 on cast); we give 0 directly.
            out[:, :, c] = 0 if hi == lo else ((ch - lo) * 255.0 / (hi - lo)).astype(np.uint8)
        return out
    if np.issubdtype(rgb.dtype, np.floating):
        # numpy's float→uint8 cast of out-of-range values is undefined (platform dependent), so clip
        # first; inside 0..255 this is the original truncation.
        return np.clip(np.nan_to_num(rgb), 0, 255).astype(np.uint8)
    return rgb.astype(np.uint8)  # other integers wrap modulo 256 exactly as numpy did in the original


def sample_step(shape: tuple[int, ...]) -> int:
    """Stride of the regular sub-grid `percentile_limits` reads of an image of `shape` (rows, columns):
    1 up to `SAMPLE_PIXELS` pixels, then the smallest stride keeping the sample under about that many.

    Parameters
    ----------
    shape : tuple of int
        The image's shape; only (rows, columns) count.

    Returns
    -------
    int
        The stride k: the sample is ``image[::k, ::k]``.

    Examples
    --------
    >>> sample_step((1000, 1000)), sample_step((4000, 4000))
    (1, 2)
    """
    h, w = shape[:2]
    return max(1, int(np.ceil(np.sqrt(h * w / SAMPLE_PIXELS))))


def limits_of_sample(sample: np.ndarray) -> tuple[float, float]:
    """(low, high) percentiles 1 and 99.8 of the finite values of an already sub-sampled three-channel
    image (`rgb[::step, ::step]`, step from `sample_step`); the full range when those coincide.

    Parameters
    ----------
    sample : numpy.ndarray
        The sub-sampled image, any numeric dtype; NaN and infinite values are ignored.

    Returns
    -------
    tuple of float
        (low, high), low <= high; (0.0, 0.0) when no value is finite.

    Examples
    --------
    >>> limits_of_sample(np.arange(1000.0).reshape(10, 100))
    (9.99, 997.002)
    """
    sample = np.asarray(sample).astype(np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(finite, PERCENTILES)
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
    return float(lo), float(hi)


def percentile_limits(rgb: np.ndarray) -> tuple[float, float]:
    """(low, high) of the percentile stretch: percentiles 1 and 99.8 of the finite values.

    The full range (min, max) is used when those coincide, as in a very sparse image. Above
    `SAMPLE_PIXELS` pixels the percentiles come from a regular sub-grid (every k-th row and column,
    deterministic; `sample_step`).

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W) or (H, W, C) image of any numeric dtype; NaN and infinite values are ignored.

    Returns
    -------
    tuple of float
        (low, high), low <= high; (0.0, 0.0) when no value is finite.

    Examples
    --------
    >>> percentile_limits(np.arange(1000.0).reshape(10, 100))
    (9.99, 997.002)
    >>> sparse = np.zeros((10, 100), np.uint16); sparse[3, 7] = 500
    >>> percentile_limits(sparse)
    (0.0, 500.0)
    """
    step = sample_step(rgb.shape)
    return limits_of_sample(rgb[::step, ::step])


def stretch_with_limits(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint8 copy of a three-channel image stretched linearly from (`lo`, `hi`) to (0, 255), rounded to
    nearest (NaN and -inf → 0, +inf → 255); all zeros when `hi` <= `lo`. Pixel by pixel, so a window of
    an image stretched with the whole image's limits equals that window of the stretched image.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) image of any numeric dtype.
    lo, hi : float
        The values that become 0 and 255 (`percentile_limits`).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.

    Examples
    --------
    >>> stretch_with_limits(np.array([[[0, 5, 10]]], np.uint8), 0.0, 10.0)
    array([[[  0, 128, 255]]], dtype=uint8)
    """
    if hi <= lo:
        return np.zeros(rgb.shape, np.uint8)
    if rgb.dtype == np.uint8:  # a lookup table is exact and avoids a float copy
        lut = np.clip((np.arange(256, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) * 255.0
        return np.floor(lut + 0.5).astype(np.uint8)[rgb]
    out = np.empty(rgb.shape, np.uint8)
    for r in range(0, rgb.shape[0], _BLOCK_ROWS):
        block = np.nan_to_num(rgb[r:r + _BLOCK_ROWS].astype(np.float64), nan=lo, posinf=hi, neginf=lo)
        out[r:r + _BLOCK_ROWS] = np.floor(np.clip((block - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5)
    return out


def _percentile(rgb: np.ndarray) -> np.ndarray:
    return stretch_with_limits(rgb, *percentile_limits(rgb))


def three_channels(image: np.ndarray) -> np.ndarray:
    """The three channels `to_rgb8` converts: grey (H×W, or H×W×1 / grey + alpha) repeated three times,
    channels past the third (alpha) dropped; a view where possible.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) or (H, W, C) image.

    Returns
    -------
    numpy.ndarray
        (H, W, 3), the input's dtype.

    Examples
    --------
    >>> three_channels(np.zeros((4, 5))).shape, three_channels(np.zeros((4, 5, 4))).shape
    ((4, 5, 3), (4, 5, 3))
    """
    return _three_channels(np.asarray(image))


def to_rgb8(image: np.ndarray, mode: str = "nucleaizer") -> np.ndarray:
    """Return `image` as a contiguous uint8 H×W×3 RGB array following `mode` (see module docstring).

    Grey (H×W, or one channel) becomes three identical channels; grey + alpha keeps the grey channel;
    alpha and any channel past the third are dropped. Then, with ``nucleaizer`` (the original's rules,
    `kutils.RCNNConvertInputImage`, docs/method.md §2.3), uint8 is kept, uint16 is stretched per
    channel by its own min–max with truncation (a constant channel gives 0), floats are clipped to
    0..255 and truncated, other integers wrap modulo 256; with ``percentile`` the whole image is
    stretched from `percentile_limits` to 0..255 and rounded to nearest (all 0 when low == high; NaN
    and -inf map to 0, +inf to 255).

    Parameters
    ----------
    image : array_like
        (H, W) grey or (H, W, C) image of any numeric dtype.
    mode : {"nucleaizer", "percentile"}, optional
        One of `CONVERSION_MODES` (default "nucleaizer").

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB image, C-contiguous.

    Raises
    ------
    ValueError
        For an unknown `mode`, or an image that is neither 2-D nor H×W×C.

    Examples
    --------
    >>> grey = np.array([[0, 100], [200, 400]], np.uint16)
    >>> rgb = to_rgb8(grey)
    >>> rgb.shape, rgb.dtype, rgb[:, :, 0].tolist()
    ((2, 2, 3), dtype('uint8'), [[0, 63], [127, 255]])
    >>> to_rgb8(grey, mode="percentile")[:, :, 0].tolist()
    [[0, 64], [128, 255]]
    """
    if mode not in CONVERSION_MODES:
        raise ValueError(f"unknown conversion mode {mode!r}; choose one of {', '.join(CONVERSION_MODES)}")
    rgb = _three_channels(np.asarray(image))
    return _faithful(rgb) if mode == "nucleaizer" else _percentile(rgb)
