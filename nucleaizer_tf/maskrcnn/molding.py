"""Image preparation for the legacy Mask R-CNN, as nucleAIzer + matterport v2.1 did it (NumPy / Pillow only).

Order per image (docs/method.md §2.3): convert to uint8 RGB (`nucleaizer_tf.io.to_rgb8`), `reflect_pad`,
`resize_for_model` (matterport `resize_image` with min_dim = max_dim = D), `mold` (mean subtraction),
`image_meta`. The network size D comes from `round_size_up` (scale files / default size) or
`manual_network_size` (user-given nucleus diameter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "image_meta",
    "manual_network_size",
    "mold",
    "reflect_pad",
    "resize_for_model",
    "round_size_up",
]

MIN_NETWORK_SIZE = 64


def reflect_pad(image: np.ndarray, ratio: float) -> tuple[np.ndarray, tuple[int, int]]:
    """nucleAIzer's `PadImageR`: mirror ``int(H*ratio)`` rows and ``int(W*ratio)`` columns on each side.

    numpy "reflect" mode (the edge pixel is not repeated). Returns ``(padded, (py, px))``; the
    padding is removed again from the masks with ``[py:py+H, px:px+W]``.

    Parameters
    ----------
    image : numpy.ndarray
        H x W or H x W x C image, any dtype.
    ratio : float
        Padding per side as a fraction of the side (0.05 in nucleAIzer); must be >= 0.

    Returns
    -------
    padded : numpy.ndarray
        (H + 2·py) x (W + 2·px) [x C] image; `image` itself when both paddings are 0.
    padding : tuple of int
        (py, px) = (int(H·ratio), int(W·ratio)).

    Examples
    --------
    >>> padded, (py, px) = reflect_pad(np.zeros((100, 80, 3), np.uint8), 0.05)
    >>> padded.shape, (py, px)
    ((110, 88, 3), (5, 4))
    >>> reflect_pad(np.array([[1, 2, 3]]), 0.4)[0]  # 0 rows, 1 column each side; the edge is not repeated
    array([[2, 1, 2, 3, 2]])
    """
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"expected an image, got shape {image.shape}")
    if ratio < 0:
        raise ValueError(f"padding ratio must be >= 0, got {ratio}")
    h, w = image.shape[:2]
    py, px = int(h * ratio), int(w * ratio)
    if py == 0 and px == 0:
        return image, (0, 0)
    pads = [(py, py), (px, px)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pads, mode="reflect"), (py, px)


def resize_for_model(image_u8: np.ndarray, size: int
                     ) -> tuple[np.ndarray, tuple[int, int, int, int], float, list[tuple[int, int]]]:
    """matterport v2.1 `utils.resize_image(image, min_dim=size, max_dim=size, padding=True)`.

    ``scale = max(1, size / min(h, w))``, reduced to ``size / max(h, w)`` if the long side would
    exceed `size` (so with min_dim = max_dim the long side always becomes `size`); new size
    ``(round(h*scale), round(w*scale))`` with Python's round; Pillow bilinear resize of the uint8 RGB
    image (what `scipy.misc.imresize` did; antialiased when shrinking), skipped when scale == 1;
    zero padding to ``size x size`` with ``(size-h)//2`` rows on top and ``(size-w)//2`` columns left.

    Parameters
    ----------
    image_u8 : numpy.ndarray
        uint8 H x W x 3 RGB image (after `reflect_pad`).
    size : int
        Network size D.

    Returns
    -------
    image : numpy.ndarray
        uint8 D x D x 3, the resized image zero-padded to the square.
    window : tuple of int
        (y1, x1, y2, x2) of the image inside the D x D input.
    scale : float
        The resize factor.
    padding : list of tuple of int
        [(top, bottom), (left, right), (0, 0)].

    Examples
    --------
    >>> image, window, scale, padding = resize_for_model(np.zeros((110, 88, 3), np.uint8), 128)
    >>> image.shape, window, round(scale, 4), padding
    ((128, 128, 3), (0, 13, 128, 115), 1.1636, [(0, 0), (13, 13), (0, 0)])
    """
    image = np.asarray(image_u8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    size = int(size)
    h, w = image.shape[:2]
    scale = max(1, size / min(h, w))
    if round(max(h, w) * scale) > size:
        scale = size / max(h, w)
    if scale != 1:
        new_h, new_w = round(h * scale), round(w * scale)
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    h, w = image.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    padding = [(top, size - h - top), (left, size - w - left), (0, 0)]
    image = np.pad(image, padding, mode="constant", constant_values=0)
    return image, (top, left, top + h, left + w), float(scale), padding


def mold(resized_u8: np.ndarray, mean_pixel: Sequence[float]) -> np.ndarray:
    """``float32(float64(image) - MEAN_PIXEL)``: matterport's `mold_image` (float64 subtraction, float32 feed).

    Parameters
    ----------
    resized_u8 : numpy.ndarray
        uint8 D x D x 3 image from `resize_for_model`.
    mean_pixel : sequence of float
        MEAN_PIXEL, (123.7, 116.8, 103.9).

    Returns
    -------
    numpy.ndarray
        float32 D x D x 3.

    Examples
    --------
    >>> mold(np.zeros((2, 2, 3), np.uint8), (123.7, 116.8, 103.9))[0, 0]
    array([-123.7, -116.8, -103.9], dtype=float32)
    """
    return (np.asarray(resized_u8).astype(np.float64) - np.asarray(mean_pixel, dtype=np.float64)).astype(np.float32)


def image_meta(original_shape: Sequence[int], window: Sequence[int], num_classes: int,
               image_id: int = 0) -> np.ndarray:
    """``[image_id, H0, W0, C0, y1, x1, y2, x2, 0 * num_classes]`` (int64; the network takes it as float32).

    `original_shape` is the shape of the image given to the detector (after reflect padding); the
    active-class ids are all zero at inference, as in matterport's `mold_inputs`.

    Parameters
    ----------
    original_shape : sequence of int
        (H0, W0) or (H0, W0, C0); a 2-value shape gets C0 = 3.
    window : sequence of int
        (y1, x1, y2, x2) from `resize_for_model`.
    num_classes : int
        NUM_CLASSES (2).
    image_id : int
        Stored in column 0 (unused by the network).

    Returns
    -------
    numpy.ndarray
        int64 [8 + num_classes].

    Examples
    --------
    >>> image_meta((110, 88, 3), (0, 13, 128, 115), 2)
    array([  0, 110,  88,   3,   0,  13, 128, 115,   0,   0])
    """
    shape = list(original_shape)
    if len(shape) == 2:
        shape.append(3)
    if len(shape) != 3 or len(window) != 4:
        raise ValueError(f"expected a 3-value shape and a 4-value window, got {original_shape}, {window}")
    return np.array([image_id, *shape, *window] + [0] * int(num_classes), dtype=np.int64)


def round_size_up(value: float) -> int:
    """Network size from a scale-file value: ``int(value)`` rounded up to a multiple of 64, at least 64.

    nucleAIzer's `Segment()` truncates the value, then rounds up (``1000 -> 1024``, ``1025 -> 1088``);
    0 or a negative value (a crash in the original, spec Q16) gives 64.

    Parameters
    ----------
    value : float
        The requested size; must be finite (ValueError otherwise).

    Returns
    -------
    int
        A multiple of 64, at least 64.

    Examples
    --------
    >>> round_size_up(1000), round_size_up(1025.7), round_size_up(0)
    (1024, 1088, 64)
    """
    if not math.isfinite(value):
        raise ValueError(f"network size must be a finite number, got {value}")
    n = int(value)
    return max(MIN_NETWORK_SIZE, -(-n // 64) * 64)


def manual_network_size(height: int, width: int, target_object_size: float, *, max_size: int = 4096,
                        min_size: int = 128) -> int:
    """segmentation_manualsize.py: bring nuclei of diameter `target_object_size` px to 80 px.

    ``round((40 / (target/2)) * (H+W)/2 / 64) * 64`` with Python's round (half to even), clamped to
    ``[min_size, max_size]``; H, W are the image size before reflect padding.

    Parameters
    ----------
    height, width : int
        Image size before reflect padding.
    target_object_size : float
        Typical nucleus diameter in pixels; must be positive and finite.
    max_size, min_size : int
        Clamp of the result (4096 and 128).

    Returns
    -------
    int
        Network size D, a multiple of 64 unless clamped.

    Examples
    --------
    >>> manual_network_size(256, 320, 30.0)  # round(768 / 64) * 64
    768
    >>> manual_network_size(1000, 1000, 20.0)  # 4000 / 64 = 62.5 rounds to 62
    3968
    """
    if not (target_object_size > 0 and math.isfinite(target_object_size)):
        raise ValueError(f"target object size must be a positive number, got {target_object_size}")
    resize_to = (40 / (target_object_size / 2)) * (height + width) / 2
    size = round(resize_to / 64) * 64
    return int(min(max(size, min_size), max_size))
