"""Tiles of one image/label pair (docs/method.md §6.4): a centred grid of tile×tile crops, or one resized tile."""

from __future__ import annotations

import numpy as np

from nucleaizer_tf.labels import resize_labels
from nucleaizer_tf.postprocess.resize import matlab_resize_bicubic

TILE = 256


def resize_pair_to(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair resized to size×size: MATLAB bicubic for the image, `labels.resize_labels` (nearest,
    pixel-centre mapping) for the labels."""
    return matlab_resize_bicubic(image, (size, size)), resize_labels(labels, (size, size))


def cut_tiles(name: str, image: np.ndarray, labels: np.ndarray, tile: int = TILE):
    """docs/method.md §6.4: a centred grid of non-overlapping tile×tile tiles named `<name>_<xi>_<yi>` (1-based);
    an image smaller than a tile in either side is resized to tile×tile instead (`<name>_1_1`)."""
    h, w = labels.shape
    if h < tile or w < tile:
        img, lab = resize_pair_to(image, labels, tile)
        yield f"{name}_1_1", img, lab
        return
    nx, ny = w // tile, h // tile
    xs, ys = int(np.floor((w - tile * nx) / 2 + 0.5)), int(np.floor((h - tile * ny) / 2 + 0.5))
    for xi in range(nx):
        for yi in range(ny):
            y0, x0 = ys + yi * tile, xs + xi * tile
            yield f"{name}_{xi + 1}_{yi + 1}", image[y0:y0 + tile, x0:x0 + tile], labels[y0:y0 + tile, x0:x0 + tile]
