"""Region proposal network: one small model shared by all pyramid levels.

It is a nested Keras model named `rpn_model` because the legacy file stores its six arrays in one
group of that name (conv_shared, class_raw, bbox_pred, each kernel then bias).
"""

from __future__ import annotations

import keras
from keras import layers


def build_rpn_model(anchors_per_location: int, depth: int = 256) -> keras.Model:
    """Per location: 2 class logits and 4 box deltas for each anchor, flattened to [B, H*W*A, .].

    The flattening order (y, x, anchor) matches the anchor order of `anchors.pyramid_anchors`.
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(512, 3, padding="same", activation="relu", name="rpn_conv_shared")(feature_map)
    x = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw")(shared)
    # The outputs are float32 whatever the policy the convolutions run under (Keras casts a layer's
    # inputs to its dtype): the softmax, the box deltas and the proposals stay in full precision.
    logits = layers.Reshape((-1, 2), dtype="float32")(x)
    probs = layers.Activation("softmax", dtype="float32", name="rpn_class_xxx")(logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred")(shared)
    deltas = layers.Reshape((-1, 4), dtype="float32")(x)
    return keras.Model(feature_map, [logits, probs, deltas], name="rpn_model")


def rpn_outputs(rpn_model: keras.Model, feature_maps) -> list[keras.KerasTensor]:
    """rpn_class_logits, rpn_class, rpn_bbox over all levels, concatenated in level order."""
    per_level = [rpn_model(p) for p in feature_maps]
    return [layers.Concatenate(axis=1, name=name)([out[i] for out in per_level])
            for i, name in enumerate(("rpn_class_logits", "rpn_class", "rpn_bbox"))]
