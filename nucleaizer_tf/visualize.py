"""Pictures a person checks a segmentation with: label outlines drawn over the image."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from nucleaizer_tf.io import to_rgb8


def outline_overlay(image: np.ndarray, labels: np.ndarray, color=(255, 255, 0), mode: str = "inner") -> np.ndarray:
    """uint8 RGB copy of `image` with each object's outline painted in `color`.

    Touching objects keep separate outlines (boundaries between different ids are drawn too), so
    over- and under-splitting is visible at a glance. Non-8-bit images are converted with `to_rgb8`.
    """
    rgb = image if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 else to_rgb8(image)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    out = rgb.copy()
    out[find_boundaries(labels, mode=mode)] = color
    return out
