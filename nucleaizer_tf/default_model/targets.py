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
    """uint8 H×W class map (0 background, 1 interior, 2 boundary) from an instance label image.

    Parameters
    ----------
    labels : numpy.ndarray
        H×W instance label image, 0 = background.
    width : int
        A nucleus pixel is boundary when another label lies within `width` pixels (a (2·width+1)²
        window, pixels outside the image ignored) (2).

    Returns
    -------
    numpy.ndarray
        uint8 H×W with values BACKGROUND (0), INTERIOR (1), BOUNDARY (2).

    Examples
    --------
    >>> labels = np.zeros((7, 7), np.int32)
    >>> labels[1:6, 1:6] = 1
    >>> three_class_map(labels, width=1)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 2, 2, 2, 2, 2, 0],
           [0, 2, 1, 1, 1, 2, 0],
           [0, 2, 1, 1, 1, 2, 0],
           [0, 2, 1, 1, 1, 2, 0],
           [0, 2, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    labels = np.asarray(labels)
    size = 2 * width + 1
    # 'nearest' repeats the edge pixel, which is already inside every edge window: outside = ignored
    hi = ndimage.maximum_filter(labels, size=size, mode="nearest")
    lo = ndimage.minimum_filter(labels, size=size, mode="nearest")
    classes = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    classes[(labels > 0) & ((hi != labels) | (lo != labels))] = BOUNDARY
    return classes


def make_target_fn(width: int = 2):
    """tf.data `target_fn(image, labels) -> (image, one-hot float32 H×W×3)` for `make_dataset`.

    The TensorFlow version of `three_class_map` (max-pooling with SAME padding ignores the outside).
    Negative labels (`self_training.IGNORE`) get an all-zero target: those pixels add nothing to the loss.

    Parameters
    ----------
    width : int
        Boundary width, as in `three_class_map` (2).

    Returns
    -------
    callable
        `target_fn(image, labels)` returning (image, one-hot float32 H×W×3 of the classes).

    Examples
    --------
    >>> labels = np.zeros((7, 7), np.int32)
    >>> labels[1:6, 1:6] = 1
    >>> image, onehot = make_target_fn(width=1)(np.zeros((7, 7, 3), np.float32), labels)
    >>> onehot.shape, bool(np.array_equal(np.argmax(onehot, -1), three_class_map(labels, width=1)))
    (TensorShape([7, 7, 3]), True)
    >>> labels[0, 0] = -1                    # ignored: no class at all
    >>> make_target_fn(width=1)(np.zeros((7, 7, 3), np.float32), labels)[1][0, 0].numpy().tolist()
    [0.0, 0.0, 0.0]
    """
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
        classes = tf.where(labels < 0, -1, classes)  # self-training's IGNORE: an all-zero target, no loss
        return image, tf.one_hot(classes, N_CLASSES, dtype=tf.float32)

    return target_fn


def weighted_crossentropy(class_weights=(1.0, 1.0, 2.0)):
    """Loss `(one-hot target, softmax probabilities) -> scalar`: class-weighted cross-entropy, the mean
    over all pixels of the batch. Boundary pixels weigh more by default: they are few, and they are
    what separates touching nuclei.

    Parameters
    ----------
    class_weights : sequence of float
        Weights of (background, interior, boundary): (1, 1, 2).

    Returns
    -------
    callable
        `loss(y_true, y_pred)`: mean over pixels of −Σ_c w_c · y_true_c · log(y_pred_c), the
        probabilities clipped to [1e-7, 1].

    Examples
    --------
    >>> loss = weighted_crossentropy()
    >>> y_true = np.array([[[0.0, 0.0, 1.0]]], np.float32)  # one boundary pixel
    >>> round(float(loss(y_true, np.array([[[0.25, 0.25, 0.5]]], np.float32))), 4)  # 2 · ln 2
    1.3863
    """
    import tensorflow as tf

    weights = tf.constant(class_weights, tf.float32)

    def loss(y_true, y_pred):
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
        per_pixel = -tf.reduce_sum(y_true * weights * tf.math.log(p), axis=-1)
        return tf.reduce_mean(per_pixel)

    return loss
