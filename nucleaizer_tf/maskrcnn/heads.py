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


class TimeDistributed(layers.TimeDistributed):
    """Applies the wrapped layer to [B, T, ...] by folding T into the batch axis.

    Keras 3's TimeDistributed unrolls a Python loop over a static T (1000 ROIs) or vectorises the
    layer; one folded call is what Keras 2 did and is far cheaper. The wrapper carries the legacy
    name; its weights are the wrapped layer's, in the legacy order.
    """

    def call(self, inputs, training=None, mask=None):
        leading = tf.shape(inputs)[:2]
        outputs = self.layer(tf.reshape(inputs, [-1, *inputs.shape[2:]]))
        unfolded = tf.reshape(outputs, tf.concat([leading, tf.shape(outputs)[1:]], 0))
        return tf.ensure_shape(unfolded, [*inputs.shape[:2], *outputs.shape[1:]])


class ClassifierHead:
    """ROI features (7x7, PyramidROIAlign) -> class logits, class probabilities, per-class deltas."""

    def __init__(self, config: MaskRCNNConfig):
        size, width, nc = config.POOL_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE, config.NUM_CLASSES
        self.roi_align = PyramidROIAlign((size, size), config.BACKBONE_STRIDES[0], name="roi_align_classifier")
        self.layers = [
            TimeDistributed(layers.Conv2D(width, size, padding="valid"), name="mrcnn_class_conv1"),
            TimeDistributed(BatchNorm(), name="mrcnn_class_bn1"),
            layers.Activation("relu"),
            TimeDistributed(layers.Conv2D(width, 1), name="mrcnn_class_conv2"),
            TimeDistributed(BatchNorm(), name="mrcnn_class_bn2"),
            layers.Activation("relu"),
            layers.Reshape((-1, width), name="pool_squeeze"),
        ]
        self.logits = TimeDistributed(layers.Dense(nc), name="mrcnn_class_logits")
        self.probs = layers.Activation("softmax", name="mrcnn_class")
        self.bbox_fc = TimeDistributed(layers.Dense(4 * nc), name="mrcnn_bbox_fc")
        self.bbox = layers.Reshape((-1, nc, 4), name="mrcnn_bbox")

    def __call__(self, rois, feature_maps):
        """rois [1, N, 4] normalised, feature_maps P2..P5 -> ([1,N,NC], [1,N,NC], [1,N,NC,4])."""
        x = self.roi_align([rois, *feature_maps])
        for layer in self.layers:
            x = layer(x)
        logits = self.logits(x)
        return logits, self.probs(logits), self.bbox(self.bbox_fc(x))


class MaskHead:
    """ROI features (14x14) -> 28x28 per-class sigmoid masks."""

    def __init__(self, config: MaskRCNNConfig):
        size = config.MASK_POOL_SIZE
        self.roi_align = PyramidROIAlign((size, size), config.BACKBONE_STRIDES[0], name="roi_align_mask")
        self.layers = []
        for i in range(1, 5):
            self.layers += [
                TimeDistributed(layers.Conv2D(256, 3, padding="same"), name=f"mrcnn_mask_conv{i}"),
                TimeDistributed(BatchNorm(), name=f"mrcnn_mask_bn{i}"),
                layers.Activation("relu"),
            ]
        self.layers += [
            TimeDistributed(layers.Conv2DTranspose(256, 2, strides=2, activation="relu"), name="mrcnn_mask_deconv"),
            TimeDistributed(layers.Conv2D(config.NUM_CLASSES, 1, activation="sigmoid"), name="mrcnn_mask"),
        ]

    def __call__(self, boxes, feature_maps):
        """boxes [1, N, 4] normalised, feature_maps P2..P5 -> [1, N, 28, 28, NC]."""
        x = self.roi_align([boxes, *feature_maps])
        for layer in self.layers:
            x = layer(x)
        return x
