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

    Parameters
    ----------
    anchors_per_location : int
        Anchors per feature-map cell, len(RPN_ANCHOR_RATIOS) (3).
    depth : int
        Channels of the pyramid maps it is applied to (256).

    Returns
    -------
    keras.Model
        The model `rpn_model` (layers rpn_conv_shared, rpn_class_raw, rpn_bbox_pred) mapping a
        [B, H, W, depth] map to float32 [logits [B, H*W*A, 2], softmax [B, H*W*A, 2], deltas [B, H*W*A, 4]].

    Examples
    --------
    >>> rpn = build_rpn_model(3)  # doctest: +SKIP
    >>> rpn.name, [tuple(w.shape) for w in rpn.weights][:2]  # doctest: +SKIP
    ('rpn_model', [(3, 3, 256, 512), (512,)])
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
    """rpn_class_logits, rpn_class, rpn_bbox over all levels, concatenated in level order.

    Parameters
    ----------
    rpn_model : keras.Model
        The shared model of `build_rpn_model`.
    feature_maps : sequence of keras.KerasTensor
        P2..P6.

    Returns
    -------
    list of keras.KerasTensor
        [rpn_class_logits [B, A, 2], rpn_class [B, A, 2], rpn_bbox [B, A, 4]] (Concatenate layers of
        those names), A summed over the levels in the order of `anchors.pyramid_anchors`.

    Examples
    --------
    >>> rpn_class_logits, rpn_class, rpn_bbox = rpn_outputs(build_rpn_model(3), p_maps)  # doctest: +SKIP
    """
    per_level = [rpn_model(p) for p in feature_maps]
    return [layers.Concatenate(axis=1, name=name)([out[i] for out in per_level])
            for i, name in enumerate(("rpn_class_logits", "rpn_class", "rpn_bbox"))]
