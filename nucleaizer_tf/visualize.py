"""Pictures a person checks a segmentation with: label outlines drawn over the image."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from nucleaizer_tf.io import to_rgb8


def outline_overlay(image: np.ndarray, labels: np.ndarray, color=(255, 255, 0), mode: str = "inner") -> np.ndarray:
    """uint8 RGB copy of `image` with each object's outline painted in `color`.

    Touching objects keep separate outlines (boundaries between different ids are drawn too), so
    over- and under-splitting is visible at a glance. Non-8-bit images are converted with `to_rgb8`.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) grey or (H, W, C) image. A uint8 (H, W, 3) RGB image is copied as it is; anything else
        goes through `to_rgb8` (its default ``"nucleaizer"`` rules: uint16 stretched per channel, floats
        clipped to 0..255).
    labels : numpy.ndarray
        (H, W) integer label image (0 = background), the same height and width as `image`.
    color : tuple of int, optional
        RGB colour of the outlines (default yellow, ``(255, 255, 0)``).
    mode : str, optional
        `skimage.segmentation.find_boundaries` mode (default ``"inner"``: the outline pixels lie inside
        the objects; ``"outer"`` and ``"thick"`` are the other modes that keep the image's size).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB image; `image` itself is not changed.

    Raises
    ------
    ValueError
        When `image` and `labels` differ in height or width.

    Examples
    --------
    >>> image = np.zeros((8, 8), np.uint8)
    >>> labels = np.zeros((8, 8), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> overlay = outline_overlay(image, labels)
    >>> overlay.shape, overlay.dtype
    ((8, 8, 3), dtype('uint8'))
    >>> overlay[2, 2].tolist(), overlay[3, 3].tolist(), overlay[0, 0].tolist()
    ([255, 255, 0], [0, 0, 0], [0, 0, 0])
    >>> int((overlay == (255, 255, 0)).all(axis=2).sum())  # the 12 border pixels of the 4 x 4 square
    12
    """
    rgb = image if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 else to_rgb8(image)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    out = rgb.copy()
    out[find_boundaries(labels, mode=mode)] = color
    return out
