"""The U-Net's soft training targets (docs/method.md §6.10, `JointlyTransformedDataset`), bit-exact.

label > 0.5 → 235 on foreground, 20 on background in a uint16 array → if σ > 0,
`scipy.ndimage.gaussian_filter(·, σ)` (reflect, truncate 4) into uint16, so the values are truncated
after each of the two 1-D passes → the first argmax pixel set to 255, then the first argmin pixel to 0
→ uint8 → /255 when fed. The original computed the target on the whole label image and only then
cropped/flipped it together with the image (padding the target with 0), so it is computed here before
the shared input layer: `soft_target_items` turns (image, labels) pairs into (image, target) pairs
whose "labels" are the 0..255 target values; `target_fn` turns those into the float target in the
tf.data graph. Padding, cropping and flipping then act on image and target alike, as in the original.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BACKGROUND", "FOREGROUND", "soft_target", "soft_target_items", "target_fn"]

BACKGROUND = 20
FOREGROUND = 235


def soft_target(labels, sigma: float) -> np.ndarray:
    """uint8 [H, W] target of a label (or binary) image for the member with Gaussian `sigma`.

    The steps of the module docstring: 235 / 20, the uint16 Gaussian for σ > 0, then the first argmax
    pixel set to 255 and the first argmin pixel to 0.

    Parameters
    ----------
    labels : array_like
        [H, W] label or binary image (or [H, W, C], whose first channel is used); > 0.5 is foreground.
    sigma : float
        The member's Gaussian sigma (0 = no smoothing).

    Returns
    -------
    numpy.ndarray
        uint8 [H, W] target values 0..255.

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.int32)
    >>> labels[1:3, 1:3] = 5
    >>> soft_target(labels, 0.0)
    array([[  0,  20,  20,  20],
           [ 20, 255, 235,  20],
           [ 20, 235, 235,  20],
           [ 20,  20,  20,  20]], dtype=uint8)
    >>> soft_target(labels, 1.0)
    array([[  0,  69,  69,  46],
           [ 68, 255, 109,  68],
           [ 68, 109, 109,  68],
           [ 46,  69,  69,  46]], dtype=uint8)
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    if labels.ndim != 2:
        raise ValueError(f"expected a 2-D label image, got shape {labels.shape}")
    target = np.where(labels > 0.5, FOREGROUND, BACKGROUND).astype(np.uint16)
    if sigma > 0:
        target = ndimage.gaussian_filter(target, sigma, output=np.uint16, mode="reflect", truncate=4.0)
    flat = target.reshape(-1)  # a view: the two edits land in `target`
    flat[int(np.argmax(flat))] = 255
    flat[int(np.argmin(flat))] = 0
    return target.astype(np.uint8)


def soft_target_items(items: Sequence, sigma: float, image_mode: str = "nucleaizer") -> list[tuple[np.ndarray, np.ndarray]]:
    """(uint8 RGB image, int32 target 0..255) per `Pair` or (image, labels) item, for `make_dataset`.

    Parameters
    ----------
    items : sequence
        `nucleaizer_tf.data.Pair`s (read with `load_pair`) or in-memory (image, labels) pairs.
    sigma : float
        The member's Gaussian sigma (`soft_target`).
    image_mode : str
        `to_rgb8` mode used to read `Pair` images ("nucleaizer").

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        (uint8 image, int32 [H, W] target) per item, in order.

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.int32)
    >>> labels[1:3, 1:3] = 5
    >>> image, target = soft_target_items([(np.zeros((4, 4, 3), np.uint8), labels)], sigma=0.5)[0]
    >>> image.dtype, target.dtype, int(target.max())
    (dtype('uint8'), dtype('int32'), 255)
    """
    from nucleaizer_tf.data import Pair, load_pair

    out = []
    for item in items:
        image, labels = load_pair(item, mode=image_mode) if isinstance(item, Pair) else item
        out.append((np.asarray(image, np.uint8), soft_target(labels, sigma).astype(np.int32)))
    return out


def target_fn(image, target):
    """tf.data map for items from `soft_target_items`: (image, target [H, W, 1] float32 = value / 255).

    Parameters
    ----------
    image : tf.Tensor
        The image, passed through unchanged.
    target : tf.Tensor
        [H, W] target values 0..255 (the "labels" of the items).

    Returns
    -------
    tuple of tf.Tensor
        (image, float32 [H, W, 1] target in [0, 1]).

    Examples
    --------
    >>> image, target = target_fn(np.zeros((2, 2, 3), np.float32), np.array([[0, 255], [20, 235]]))
    >>> target.shape, target.numpy()[..., 0].round(4)
    (TensorShape([2, 2, 1]), array([[0.    , 1.    ],
           [0.0784, 0.9216]], dtype=float32))
    """
    import tensorflow as tf

    return image, (tf.cast(target, tf.float32) / 255.0)[..., None]
