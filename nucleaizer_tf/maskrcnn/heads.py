"""Classifier/box head and mask head, with matterport's TimeDistributed layer names.

The heads are plain objects holding their layers so the same weights serve both the functional
model (called on KerasTensors) and the stage-wise entry points of `MaskRCNN` (called eagerly).
"""

from __future__ import annotations

import tensorflow as tf
from keras import layers

from nucleaizer_tf.maskrcnn.backbone import BatchNorm
from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
from nucleaizer_tf.maskrcnn.roi_align import PyramidROIAlign
from nucleaizer_tf.precision import policy_scope


class TimeDistributed(layers.TimeDistributed):
    """Applies the wrapped layer to [B, T, ...] by folding T into the batch axis.

    Keras 3's TimeDistributed unrolls a Python loop over a static T (1000 ROIs) or vectorises the
    layer; one folded call is what Keras 2 did and is far cheaper. The wrapper carries the legacy
    name; its weights are the wrapped layer's, in the legacy order.

    Parameters
    ----------
    layer : keras.layers.Layer
        The layer applied to every [T] slice (as for `keras.layers.TimeDistributed`).
    **kwargs
        Passed to `keras.layers.TimeDistributed` (e.g. ``name="mrcnn_class_conv1"``).

    Examples
    --------
    >>> import numpy as np
    >>> td = TimeDistributed(layers.Dense(3), name="mrcnn_class_logits")
    >>> td(np.zeros((1, 5, 4), np.float32)).shape
    TensorShape([1, 5, 3])
    >>> [tuple(w.shape) for w in td.weights]
    [(4, 3), (3,)]
    """

    def call(self, inputs, training=None, mask=None):
        leading = tf.shape(inputs)[:2]
        outputs = self.layer(tf.reshape(inputs, [-1, *inputs.shape[2:]]))
        unfolded = tf.reshape(outputs, tf.concat([leading, tf.shape(outputs)[1:]], 0))
        return tf.ensure_shape(unfolded, [*inputs.shape[:2], *outputs.shape[1:]])


class WindowConv2D(layers.Conv2D):
    """A "valid" convolution whose kernel covers its whole input (7x7 on 7x7 ROI features): one dot
    product per output channel, with the weights and forward maths of `keras.layers.Conv2D`.

    Only the gradient differs in how it is computed: TensorFlow's CPU kernel-gradient op for a 7x7
    kernel is slow (it was 80 % of a Mask R-CNN heads training step), while the same numbers are two
    matrix products of the flattened window. Inference is untouched.

    Parameters
    ----------
    filters, kernel_size
        As for `keras.layers.Conv2D`; the input's spatial size must equal `kernel_size`.
    **kwargs
        Passed to `keras.layers.Conv2D` (padding is always "valid", strides 1).

    Examples
    --------
    >>> import numpy as np
    >>> conv = WindowConv2D(4, 3)
    >>> x = tf.constant(np.random.default_rng(0).random((2, 3, 3, 5)), tf.float32)
    >>> with tf.GradientTape() as tape:
    ...     y = tf.reduce_sum(conv(x) ** 2)
    >>> [tuple(g.shape) for g in tape.gradient(y, conv.trainable_weights)]
    [(3, 3, 5, 4), (4,)]
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, padding="valid", **kwargs)

    def convolution_op(self, inputs, kernel):
        """The convolution of `keras.layers.Conv2D`, with its gradient as matrix products."""
        forward = super().convolution_op

        @tf.custom_gradient
        def window_conv(x, k):
            def grad(dy):
                n = tf.shape(x)[0]
                window = tf.reshape(x, [n, -1])  # (i, j, c) row-major, as the kernel's leading axes
                dy_flat = tf.reshape(dy, [n, -1])
                d_kernel = tf.reshape(tf.matmul(window, dy_flat, transpose_a=True), tf.shape(k))
                d_x = tf.matmul(dy_flat, tf.reshape(k, [-1, tf.shape(k)[-1]]), transpose_b=True)
                return tf.reshape(d_x, tf.shape(x)), d_kernel

            return forward(x, k), grad

        return window_conv(inputs, tf.convert_to_tensor(kernel))


class ClassifierHead:
    """ROI features (7x7, PyramidROIAlign) -> class logits, class probabilities, per-class deltas.

    `precision` is the compute type of the convolutions; ROI align, the logits, the softmax and the
    box deltas are float32 layers.

    Parameters
    ----------
    config : MaskRCNNConfig
        Gives POOL_SIZE (7), FPN_CLASSIF_FC_LAYERS_SIZE (1024), NUM_CLASSES and BACKBONE_STRIDES.
    precision : str
        "float32" (default), "bfloat16" or "float16".

    Attributes
    ----------
    roi_align : PyramidROIAlign
        The layer "roi_align_classifier".
    layers : list of keras.layers.Layer
        mrcnn_class_conv1, mrcnn_class_bn1, ReLU, mrcnn_class_conv2, mrcnn_class_bn2, ReLU, pool_squeeze.
    logits, probs, bbox_fc, bbox : keras.layers.Layer
        mrcnn_class_logits, mrcnn_class (softmax), mrcnn_bbox_fc and the reshape mrcnn_bbox.

    Examples
    --------
    >>> head = ClassifierHead(MaskRCNNConfig())
    >>> logits, probs, deltas = head(rois, p_maps[:4])  # doctest: +SKIP
    >>> deltas.shape  # doctest: +SKIP
    TensorShape([1, 1000, 2, 4])
    """

    def __init__(self, config: MaskRCNNConfig, *, precision: str = "float32"):
        size, width, nc = config.POOL_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE, config.NUM_CLASSES
        self.roi_align = PyramidROIAlign((size, size), config.BACKBONE_STRIDES[0], dtype="float32",
                                         name="roi_align_classifier")
        with policy_scope(precision):
            self.layers = [
                TimeDistributed(WindowConv2D(width, size), name="mrcnn_class_conv1"),
                TimeDistributed(BatchNorm(), name="mrcnn_class_bn1"),
                layers.Activation("relu"),
                TimeDistributed(layers.Conv2D(width, 1), name="mrcnn_class_conv2"),
                TimeDistributed(BatchNorm(), name="mrcnn_class_bn2"),
                layers.Activation("relu"),
                layers.Reshape((-1, width), name="pool_squeeze"),
            ]
        self.logits = TimeDistributed(layers.Dense(nc, dtype="float32"), dtype="float32", name="mrcnn_class_logits")
        self.probs = layers.Activation("softmax", dtype="float32", name="mrcnn_class")
        self.bbox_fc = TimeDistributed(layers.Dense(4 * nc, dtype="float32"), dtype="float32", name="mrcnn_bbox_fc")
        self.bbox = layers.Reshape((-1, nc, 4), dtype="float32", name="mrcnn_bbox")

    def __call__(self, rois, feature_maps):
        """rois [1, N, 4] normalised, feature_maps P2..P5 -> ([1,N,NC], [1,N,NC], [1,N,NC,4]).

        The three outputs are the class logits, the class probabilities and the per-class box deltas.
        """
        x = self.roi_align([rois, *feature_maps])
        for layer in self.layers:
            x = layer(x)
        logits = self.logits(x)
        return logits, self.probs(logits), self.bbox(self.bbox_fc(x))


class MaskHead:
    """ROI features (14x14) -> 28x28 per-class sigmoid masks.

    Parameters
    ----------
    config : MaskRCNNConfig
        Gives MASK_POOL_SIZE (14), NUM_CLASSES and BACKBONE_STRIDES.
    precision : str
        Compute type of the convolutions ("float32", "bfloat16", "float16"); ROI align and the final
        1x1 sigmoid convolution are float32.

    Attributes
    ----------
    roi_align : PyramidROIAlign
        The layer "roi_align_mask".
    layers : list of keras.layers.Layer
        mrcnn_mask_conv1..4 with mrcnn_mask_bn1..4 and ReLUs, mrcnn_mask_deconv, mrcnn_mask.

    Examples
    --------
    >>> head = MaskHead(MaskRCNNConfig())
    >>> head(boxes, p_maps[:4]).shape  # doctest: +SKIP
    TensorShape([1, 12, 28, 28, 2])
    """

    def __init__(self, config: MaskRCNNConfig, *, precision: str = "float32"):
        size = config.MASK_POOL_SIZE
        self.roi_align = PyramidROIAlign((size, size), config.BACKBONE_STRIDES[0], dtype="float32",
                                         name="roi_align_mask")
        self.layers = []
        with policy_scope(precision):
            for i in range(1, 5):
                self.layers += [
                    TimeDistributed(layers.Conv2D(256, 3, padding="same"), name=f"mrcnn_mask_conv{i}"),
                    TimeDistributed(BatchNorm(), name=f"mrcnn_mask_bn{i}"),
                    layers.Activation("relu"),
                ]
            self.layers.append(TimeDistributed(layers.Conv2DTranspose(256, 2, strides=2, activation="relu"),
                                               name="mrcnn_mask_deconv"))
        # the per-class sigmoid masks are computed in float32 (a 1×1 convolution: cheap)
        self.layers.append(TimeDistributed(layers.Conv2D(config.NUM_CLASSES, 1, activation="sigmoid", dtype="float32"),
                                           dtype="float32", name="mrcnn_mask"))

    def __call__(self, boxes, feature_maps):
        """boxes [1, N, 4] normalised, feature_maps P2..P5 -> [1, N, 28, 28, NC]."""
        x = self.roi_align([boxes, *feature_maps])
        for layer in self.layers:
            x = layer(x)
        return x
