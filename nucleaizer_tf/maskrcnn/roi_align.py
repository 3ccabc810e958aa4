"""PyramidROIAlign of matterport v2.1: pool each box from the pyramid level that suits its size.

Not a "true" ROIAlign: one bilinear sample per output cell through `tf.image.crop_and_resize`
with the image-normalised box (corner-aligned, `y * (H_f - 1)`, extrapolation 0), which is what
the legacy heads were trained on. Batch size 1 only.
"""

from __future__ import annotations

import tensorflow as tf
from keras import layers


def roi_levels(boxes: tf.Tensor, image_area: tf.Tensor) -> tf.Tensor:
    """Pyramid level 2..5 per [N, 4] normalised box: 4 + round(log2(sqrt(h w) / (224 / sqrt(area)))).

    Rounding is half-to-even (tf.round); zero-area boxes give -inf and land on level 2. The two
    divisions are multiplications by float32 reciprocals: in the original graph both divisors were
    constants, which TensorFlow's graph optimiser rewrites that way (it decides boundary cases).

    Parameters
    ----------
    boxes : tf.Tensor
        float32 [N, 4] normalised boxes (y1, x1, y2, x2).
    image_area : tf.Tensor
        float32 scalar: area H·W of the molded image in pixels.

    Returns
    -------
    tf.Tensor
        int32 [N] pyramid level (2 = P2 ... 5 = P5) of each box.

    Examples
    --------
    >>> import tensorflow as tf
    >>> boxes = tf.constant([[0, 0, 0.25, 0.25], [0, 0, 0.0625, 0.0625], [0, 0, 0, 0], [0, 0, 1, 1]])
    >>> roi_levels(boxes, tf.constant(1024.0 ** 2)).numpy()  # 256 px, 64 px, empty, 1024 px
    array([4, 2, 2, 5], dtype=int32)
    """
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    level = tf.math.log(tf.sqrt(h * w) * (1.0 / (224.0 / tf.sqrt(image_area))))
    level = level * (1.0 / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(4.0 + tf.round(level), 2.0, 5.0), tf.int32)


def pyramid_roi_align(boxes, feature_maps, pool_shape, image_area) -> tf.Tensor:
    """[1, N, ph, pw, C] features for [1, N, 4] normalised boxes from P2..P5, in box order.

    Parameters
    ----------
    boxes : tf.Tensor
        float32 [1, N, 4] normalised boxes (no gradient flows into them).
    feature_maps : sequence of tf.Tensor
        P2, P3, P4, P5, [1, H_l, W_l, C] each.
    pool_shape : list of int
        Output size [ph, pw] (7 x 7 for the classifier, 14 x 14 for the mask head).
    image_area : tf.Tensor
        float32 scalar: molded image area in pixels (for `roi_levels`).

    Returns
    -------
    tf.Tensor
        float32 [1, N, ph, pw, C]: each box sampled bilinearly (corner-aligned) from its level.

    Examples
    --------
    >>> import tensorflow as tf
    >>> maps = [tf.reshape(tf.range(256.0), [1, 16, 16, 1]) / 2 ** i for i in range(4)]
    >>> boxes = tf.constant([[[0.0, 0.0, 0.5, 0.5]]])
    >>> pyramid_roi_align(boxes, maps, [2, 2], tf.constant(64.0 * 64.0)).numpy()[0, 0, :, :, 0]  # on P2
    array([[  0. ,   7.5],
           [120. , 127.5]], dtype=float32)
    """
    boxes = tf.stop_gradient(boxes[0])
    levels = roi_levels(boxes, image_area)
    pooled = tf.zeros(tf.concat([tf.shape(boxes)[:1], pool_shape, tf.shape(feature_maps[0])[3:]], 0))
    for level, fmap in enumerate(feature_maps, start=2):
        ix = tf.where(tf.equal(levels, level))
        crops = tf.image.crop_and_resize(fmap, tf.gather_nd(boxes, ix), tf.zeros_like(ix[:, 0], tf.int32),
                                         pool_shape, method="bilinear")
        pooled = tf.tensor_scatter_nd_update(pooled, ix, crops)
    return pooled[tf.newaxis]


class PyramidROIAlign(layers.Layer):
    """Inputs [boxes [1, N, 4], P2, P3, P4, P5].

    The ROI-level formula needs the molded image area; it is P2's area times P2's stride squared,
    so the layer works for any image size without further inputs. Output: [1, N, ph, pw, C]
    (`pyramid_roi_align`).

    Parameters
    ----------
    pool_shape : tuple of int
        Output size (ph, pw).
    p2_stride : int
        Stride of P2 in molded-image pixels (BACKBONE_STRIDES[0], 4).
    **kwargs
        Passed to `keras.layers.Layer` (e.g. ``name="roi_align_mask"``, ``dtype="float32"``).

    Examples
    --------
    >>> import tensorflow as tf
    >>> maps = [tf.zeros([1, 16 // 2 ** i, 16 // 2 ** i, 8]) for i in range(4)]
    >>> layer = PyramidROIAlign((14, 14), 4, name="roi_align_mask")
    >>> layer([tf.constant([[[0.0, 0.0, 0.5, 0.5]]]), *maps]).shape
    TensorShape([1, 1, 14, 14, 8])
    """

    def __init__(self, pool_shape, p2_stride: int, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(pool_shape)
        self.p2_stride = p2_stride

    def call(self, inputs):
        boxes, *feature_maps = inputs
        p2_hw = tf.cast(tf.shape(feature_maps[0])[1:3] * self.p2_stride, tf.float32)
        return pyramid_roi_align(boxes, feature_maps, list(self.pool_shape), p2_hw[0] * p2_hw[1])

    def compute_output_shape(self, input_shape):
        return (1, input_shape[0][1], *self.pool_shape, input_shape[1][-1])
