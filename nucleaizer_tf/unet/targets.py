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
    """uint8 [H, W] target of a label (or binary) image for the member with Gaussian `sigma`."""
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
    """(uint8 RGB image, int32 target 0..255) per `Pair` or (image, labels) item, for `make_dataset`."""
    from nucleaizer_tf.data import Pair, load_pair

    out = []
    for item in items:
        image, labels = load_pair(item, mode=image_mode) if isinstance(item, Pair) else item
        out.append((np.asarray(image, np.uint8), soft_target(labels, sigma).astype(np.int32)))
    return out


def target_fn(image, target):
    """tf.data map for items from `soft_target_items`: (image, target [H, W, 1] float32 = value / 255)."""
    import tensorflow as tf

    return image, (tf.cast(target, tf.float32) / 255.0)[..., None]
