"""Feature pyramid (P2..P6) on top of C2..C5, with matterport's layer names."""

from __future__ import annotations

import keras
from keras import layers


def feature_pyramid(c2, c3, c4, c5, depth: int = 256) -> list[keras.KerasTensor]:
    """P2..P6: 1x1 laterals, nearest x2 top-down path, 3x3 smoothing; P6 subsamples P5 by 2.

    Parameters
    ----------
    c2, c3, c4, c5 : keras.KerasTensor
        The backbone outputs of `backbone.resnet101` (strides 4, 8, 16, 32).
    depth : int
        Channels of every pyramid map (TOP_DOWN_PYRAMID_SIZE, 256).

    Returns
    -------
    list of keras.KerasTensor
        P2, P3, P4, P5, P6 (strides 4 to 64), `depth` channels each, with matterport's layer names
        (fpn_c5p5, fpn_p4add, ..., fpn_p6).

    Examples
    --------
    >>> import keras
    >>> from nucleaizer_tf.maskrcnn.backbone import resnet101
    >>> image = keras.Input(shape=(None, None, 3), batch_size=1)
    >>> p_maps = feature_pyramid(*resnet101(image))  # doctest: +SKIP
    >>> [p.shape[-1] for p in p_maps]  # doctest: +SKIP
    [256, 256, 256, 256, 256]
    """
    p5 = layers.Conv2D(depth, 1, name="fpn_c5p5")(c5)
    p4 = layers.Add(name="fpn_p4add")([
        layers.UpSampling2D(2, name="fpn_p5upsampled")(p5), layers.Conv2D(depth, 1, name="fpn_c4p4")(c4)])
    p3 = layers.Add(name="fpn_p3add")([
        layers.UpSampling2D(2, name="fpn_p4upsampled")(p4), layers.Conv2D(depth, 1, name="fpn_c3p3")(c3)])
    p2 = layers.Add(name="fpn_p2add")([
        layers.UpSampling2D(2, name="fpn_p3upsampled")(p3), layers.Conv2D(depth, 1, name="fpn_c2p2")(c2)])
    p2 = layers.Conv2D(depth, 3, padding="same", name="fpn_p2")(p2)
    p3 = layers.Conv2D(depth, 3, padding="same", name="fpn_p3")(p3)
    p4 = layers.Conv2D(depth, 3, padding="same", name="fpn_p4")(p4)
    p5 = layers.Conv2D(depth, 3, padding="same", name="fpn_p5")(p5)
    p6 = layers.MaxPooling2D(pool_size=1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]
