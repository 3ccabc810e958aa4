"""Read one image/mask pair into the two arrays every trainer starts from.

Reading goes through `nucleaizer_tf.io` (the only module that knows file formats); this module only
fixes the contract of the input layer: image uint8 H×W×3 RGB, labels int32 H×W instance ids, same
H×W. Any other combination is refused here with both file names, not later as a shape error
inside a tf.data graph.
"""

from __future__ import annotations

import numpy as np

from nucleaizer_tf.data.pairs import Pair
from nucleaizer_tf.errors import ImageReadError
from nucleaizer_tf.io import read_image, read_labels, to_rgb8

_INT32_MAX = np.iinfo(np.int32).max


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Return (image as stored, labels int32 H×W) for `pair`, checked as `load_pair` checks them.

    For callers that prepare the image themselves (the default model's `stretch_rgb8`); `load_pair`
    is this plus the `to_rgb8` conversion.

    Parameters
    ----------
    pair : Pair
        The image file and its label (instance mask) file.

    Returns
    -------
    image : numpy.ndarray
        The image in its own dtype and channels (H×W or H×W×C).
    labels : numpy.ndarray
        (H, W) int32 label image, C-contiguous.

    Raises
    ------
    ImageReadError
        When a file cannot be read, label ids do not fit int32, or the sizes differ (both files named).

    Examples
    --------
    >>> from pathlib import Path
    >>> image, labels = read_pair(Pair("a1", Path("train/images/a1.png"), Path("train/masks/a1.tiff")))  # doctest: +SKIP
    """
    image = read_image(pair.image_path)
    labels = read_labels(pair.mask_path)
    if image.shape[:2] != labels.shape:
        raise ImageReadError(
            f"image {pair.image_path} is {image.shape[0]}×{image.shape[1]} but its mask {pair.mask_path} "
            f"is {labels.shape[0]}×{labels.shape[1]}; they must have the same height and width"
        )
    if labels.size and labels.max() > _INT32_MAX:
        raise ImageReadError(f"{pair.mask_path}: label id {labels.max()} does not fit int32")
    return image, np.ascontiguousarray(labels, dtype=np.int32)


def load_pair(pair: Pair, mode: str = "nucleaizer") -> tuple[np.ndarray, np.ndarray]:
    """Return (image uint8 H×W×3, labels int32 H×W) for `pair`.

    `mode` is the `to_rgb8` conversion for non-uint8 or non-RGB images ("nucleaizer" = the original's,
    "percentile" = robust stretch). Raises `ImageReadError` when a file cannot be read, when label
    ids do not fit int32, or when the image and mask sizes differ (both files and shapes named).

    Parameters
    ----------
    pair : Pair
        The image file and its label (instance mask) file.
    mode : {"nucleaizer", "percentile"}, optional
        The `to_rgb8` conversion mode (default "nucleaizer").

    Returns
    -------
    image : numpy.ndarray
        (H, W, 3) uint8 RGB image, C-contiguous.
    labels : numpy.ndarray
        (H, W) int32 label image, 0 = background, k > 0 = nucleus k, C-contiguous.

    Raises
    ------
    ImageReadError
        As described above.

    Examples
    --------
    >>> from pathlib import Path
    >>> pair = Pair("a1", Path("train/images/a1.png"), Path("train/masks/a1.tiff"))
    >>> image, labels = load_pair(pair)  # doctest: +SKIP
    >>> image.dtype, image.shape[2], labels.dtype, labels.shape == image.shape[:2]  # doctest: +SKIP
    (dtype('uint8'), 3, dtype('int32'), True)
    """
    image, labels = read_pair(pair)
    return np.ascontiguousarray(to_rgb8(image, mode=mode), dtype=np.uint8), labels
