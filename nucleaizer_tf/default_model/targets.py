"""Training targets and loss of the default model: three classes per pixel.

0 = background, 1 = nucleus interior, 2 = nucleus boundary. A nucleus pixel is *boundary* when a pixel
of another label (another nucleus or background) lies within `width` pixels of it (a (2·width+1)²
square window); pixels outside the image do not count, so nuclei cut by a crop or image border keep an
interior up to the border. Interiors of touching nuclei are thus separated by two boundary bands,
and the instance step grows each interior back over its boundary (`instances.py`).

The numpy and TensorFlow versions compute the same classes (`tests/test_default_model.py`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
N_CLASSES = 3


def three_class_map(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """uint8 H×W class map (0 background, 1 interior, 2 boundary) from an instance label image."""
    labels = np.asarray(labels)
    size = 2 * width + 1
    # 'nearest' repeats the edge pixel, which is already inside every edge window: outside = ignored
    hi = ndimage.maximum_filter(labels, size=size, mode="nearest")
    lo = ndimage.minimum_filter(labels, size=size, mode="nearest")
    classes = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    classes[(labels > 0) & ((hi != labels) | (lo != labels))] = BOUNDARY
    return classes


def make_target_fn(width: int = 2):
    """tf.data `target_fn(image, labels) -> (image, one-hot float32 H×W×3)` for `make_dataset`."""
    import tensorflow as tf

    size = 2 * width + 1

    def target_fn(image, labels):
        lab = tf.cast(labels, tf.float32)[None, :, :, None]  # ids < 2^24 are exact in float32
        hi = tf.nn.max_pool2d(lab, size, 1, "SAME")[0, :, :, 0]  # SAME max-pool ignores the padding
        lo = -tf.nn.max_pool2d(-lab, size, 1, "SAME")[0, :, :, 0]
        fg = labels > 0
        me = lab[0, :, :, 0]
        edge = fg & ((hi != me) | (lo != me))
        classes = tf.where(edge, BOUNDARY, tf.where(fg, INTERIOR, BACKGROUND))
        return image, tf.one_hot(classes, N_CLASSES, dtype=tf.float32)

    return target_fn


def weighted_crossentropy(class_weights=(1.0, 1.0, 2.0)):
    """Loss `(one-hot target, softmax probabilities) -> scalar`: class-weighted cross-entropy, the mean
    over all pixels of the batch. Boundary pixels weigh more by default: they are few, and they are
    what separates touching nuclei."""
    import tensorflow as tf

    weights = tf.constant(class_weights, tf.float32)

    def loss(y_true, y_pred):
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
        per_pixel = -tf.reduce_sum(y_true * weights * tf.math.log(p), axis=-1)
        return tf.reduce_mean(per_pixel)

    return loss
