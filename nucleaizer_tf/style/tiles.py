"""Tiles of one image/label pair (docs/method.md §6.4): a centred grid of tile×tile crops, or one resized tile."""

from __future__ import annotations

import numpy as np

from nucleaizer_tf.labels import resize_labels
from nucleaizer_tf.postprocess.resize import matlab_resize_bicubic

TILE = 256


def resize_pair_to(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair resized to size×size: MATLAB bicubic for the image, `labels.resize_labels` (nearest,
    pixel-centre mapping) for the labels.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 image.
    labels : numpy.ndarray
        H×W label image.
    size : int
        Side of the result.

    Returns
    -------
    tuple of numpy.ndarray
        (size×size×3 image, size×size labels of the dtype of `labels`).

    Examples
    --------
    >>> image, labels = resize_pair_to(np.zeros((10, 20, 3), np.uint8), np.ones((10, 20), np.int32), 8)
    >>> image.shape, labels.shape
    ((8, 8, 3), (8, 8))
    """
    return matlab_resize_bicubic(image, (size, size)), resize_labels(labels, (size, size))


def cut_tiles(name: str, image: np.ndarray, labels: np.ndarray, tile: int = TILE):
    """docs/method.md §6.4: a centred grid of non-overlapping tile×tile tiles named `<name>_<xi>_<yi>` (1-based);
    an image smaller than a tile in either side is resized to tile×tile instead (`<name>_1_1`).

    Parameters
    ----------
    name : str
        Name of the pair.
    image : numpy.ndarray
        H×W×3 image.
    labels : numpy.ndarray
        H×W label image.
    tile : int
        Tile side (`TILE`, 256).

    Yields
    ------
    tuple of (str, numpy.ndarray, numpy.ndarray)
        (tile name, tile image, tile labels), xi outer, yi inner; crops are views of the inputs.

    Examples
    --------
    >>> image, labels = np.zeros((600, 520, 3), np.uint8), np.zeros((600, 520), np.int32)
    >>> [name for name, _, _ in cut_tiles("img", image, labels)]
    ['img_1_1', 'img_1_2', 'img_2_1', 'img_2_2']
    >>> [(name, tile.shape) for name, tile, _ in cut_tiles("small", image[:100], labels[:100])]
    [('small_1_1', (256, 256, 3))]
    """
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
