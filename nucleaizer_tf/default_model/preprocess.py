"""Image preparation shared by training and inference: any image → stretched 8-bit RGB, and resizing.

The default model sees every image through `stretch_rgb8`, i.e. `to_rgb8(mode="percentile")`: a single
1 %–99.8 % percentile stretch over all kept channels, colour balance preserved. Training applies it to
the raw training images, so a dim 8-bit fluorescence image, a 16-bit one and a bright-field one all
reach the network with comparable contrast.
"""

from __future__ import annotations

import cv2
import numpy as np

from nucleaizer_tf.io.convert import percentile_limits, stretch_with_limits, three_channels, to_rgb8
from nucleaizer_tf.labels import resize_labels

# resize_labels lives in nucleaizer_tf.labels (shared with the style-transfer tiles); kept importable here.
__all__ = ["inverted_grey", "is_light_field", "resize_image", "resize_labels", "scaled_shape", "stretch_limits", "stretch_rgb8",
           "stretch_rgb8_with_limits"]


def stretch_rgb8(image: np.ndarray) -> np.ndarray:
    """Any-dtype grey/RGB(A) image → uint8 H×W×3: `to_rgb8(image, "percentile")`.

    A single 1 %–99.8 % percentile stretch over all kept channels (module docstring).

    Parameters
    ----------
    image : numpy.ndarray
        H×W or H×W×C image of any dtype.

    Returns
    -------
    numpy.ndarray
        uint8 H×W×3.

    Examples
    --------
    >>> image = (np.arange(100, dtype=np.uint16) * 600).reshape(10, 10)  # a dim 16-bit ramp
    >>> rgb = stretch_rgb8(image)
    >>> rgb.shape, rgb.dtype, int(rgb.min()), int(rgb.max())
    ((10, 10, 3), dtype('uint8'), 0, 255)
    """
    return to_rgb8(image, "percentile")


def inverted_grey(image: np.ndarray) -> np.ndarray:
    """uint8 H×W grey image, dark stained nuclei on a light field turned into bright nuclei on a dark one.

    255 − the channel mean of `stretch_rgb8(image)`: how a model that knows fluorescence can be shown
    bright-field or stained images (`adapt --presegment-view`).

    Parameters
    ----------
    image : numpy.ndarray
        H×W or H×W×C image of any dtype.

    Returns
    -------
    numpy.ndarray
        uint8 H×W.

    Examples
    --------
    >>> field = np.full((4, 4, 3), 230, np.uint8); field[1:3, 1:3] = (90, 40, 160)  # a purple nucleus
    >>> grey = inverted_grey(field)
    >>> bool(grey[1, 1] > grey[0, 0]), grey.dtype
    (True, dtype('uint8'))
    """
    rgb = stretch_rgb8(image).astype(np.float32)
    return (255.0 - rgb.mean(axis=2)).round().astype(np.uint8)


def is_light_field(image: np.ndarray) -> bool:
    """Whether `image` is a light field (bright-field, stained tissue): its median grey level, after
    `stretch_rgb8`, lies in the upper half.

    Such images are where `inverted_grey` makes sense: dark nuclei on a light field become bright
    nuclei on a dark one, as in fluorescence. (On the 68 DSB 2018 validation images it is true for all
    stained and bright-field images and for none of the 55 fluorescence ones.)

    Parameters
    ----------
    image : numpy.ndarray
        H×W or H×W×C image of any dtype.

    Returns
    -------
    bool

    Examples
    --------
    >>> field = np.full((8, 8, 3), 230, np.uint8); field[2:5, 2:5] = (90, 40, 160)
    >>> is_light_field(field), is_light_field(255 - field)
    (True, False)
    """
    return bool(np.median(stretch_rgb8(image).mean(axis=2)) > 127.5)


def stretch_limits(image: np.ndarray) -> tuple[float, float]:
    """The (low, high) limits `stretch_rgb8` stretches `image` with (percentiles 1 and 99.8).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) grey or (H, W, C) image of any numeric dtype.

    Returns
    -------
    tuple of float
        (low, high), from the regular sub-grid `stretch_rgb8` reads (`io.convert.percentile_limits`).

    Examples
    --------
    >>> image = np.arange(100, dtype=np.uint16).reshape(10, 10)
    >>> np.array_equal(stretch_rgb8_with_limits(image, stretch_limits(image)), stretch_rgb8(image))
    True
    """
    return percentile_limits(three_channels(image))


def stretch_rgb8_with_limits(image: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """`stretch_rgb8` with given (low, high) limits instead of the image's own percentiles: a window
    of a large image stretched with the whole image's limits (`stretch_limits`, or `limits_of_sample`
    of its sub-grid) equals that window of `stretch_rgb8(image)`.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) grey or (H, W, C) image (or window) of any numeric dtype.
    limits : tuple of float
        (low, high): the values that become 0 and 255.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB, C-contiguous.

    Examples
    --------
    >>> stretch_rgb8_with_limits(np.array([[0.0, 0.5, 2.0]]), (0.0, 1.0))[0, :, 0]
    array([  0, 128, 255], dtype=uint8)
    """
    lo, hi = limits
    return np.ascontiguousarray(stretch_with_limits(three_channels(image), float(lo), float(hi)))


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size of an image of `shape` (rows, columns) resized by `scale` (each side at least 1 pixel).

    Parameters
    ----------
    shape : tuple of int
        (rows, columns).
    scale : float
        Resize factor.

    Returns
    -------
    tuple of int
        (round(rows·scale), round(columns·scale)), each at least 1.

    Examples
    --------
    >>> scaled_shape((100, 250), 0.5), scaled_shape((3, 3), 0.1)
    ((50, 125), (1, 1))
    """
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an image (H×W or H×W×C, uint8 or float32) to `shape`: area averaging when shrinking,
    bilinear when enlarging (OpenCV), same dtype.

    Parameters
    ----------
    image : numpy.ndarray
        H×W or H×W×C image, uint8 or float32.
    shape : tuple of int
        (rows, columns) of the result.

    Returns
    -------
    numpy.ndarray
        The resized image (`image` itself when it already has `shape`); a single channel is kept.

    Examples
    --------
    >>> resize_image(np.zeros((8, 8), np.uint8), (4, 4)).shape
    (4, 4)
    >>> resize_image(np.zeros((8, 8, 1), np.float32), (16, 16)).shape
    (16, 16, 1)
    """
    h, w = image.shape[:2]
    if (h, w) == tuple(shape):
        return image
    shrink = shape[0] * shape[1] < h * w
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel
        out = out[:, :, None]
    return out
