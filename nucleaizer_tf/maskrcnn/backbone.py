"""ResNet-101 backbone (C2..C5) with matterport's layer names, so legacy `.h5` groups load by name.

Differences from common ResNets that the legacy weights depend on: every convolution has a bias,
the stride of a down-sampling block sits on its first 1x1 convolution (Caffe style), conv1 is a
"valid" 7x7 after an explicit 3-pixel zero padding, and BatchNorm never updates or uses batch
statistics (matterport froze it, epsilon stays at Keras' default 1e-3).
"""

from __future__ import annotations

import keras
from keras import layers

#: Residual blocks per stage of ResNet-101 (stage 4: one conv block + 22 identity blocks).
RESNET101_BLOCKS = {2: 3, 3: 4, 4: 23, 5: 3}
_STAGE_FILTERS = {2: (64, 64, 256), 3: (128, 128, 512), 4: (256, 256, 1024), 5: (512, 512, 2048)}


class BatchNorm(layers.BatchNormalization):
    """BatchNormalization that always normalises with the stored moving statistics.

    matterport's BatchNorm passed `training=False` unconditionally; the weights were trained that
    way, so the port must not switch to batch statistics even when called in training mode.

    Parameters
    ----------
    epsilon : float
        Keras' default 1e-3, which matterport kept.
    **kwargs
        Passed to `keras.layers.BatchNormalization` (e.g. the legacy ``name="bn_conv1"``).

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm(name="bn_conv1")
    >>> x = np.ones((1, 2, 2, 3), np.float32)
    >>> np.asarray(bn(x, training=True))[0, 0, 0]  # moving mean 0, variance 1: x / sqrt(1 + 1e-3)
    array([0.9995004, 0.9995004, 0.9995004], dtype=float32)
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


def _block(x, stage: int, block: str, strides: int, projection: bool):
    """Bottleneck block; `projection` adds the `branch1` 1x1 shortcut of block "a"."""
    f1, f2, f3 = _STAGE_FILTERS[stage]
    conv = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    y = layers.Conv2D(f1, 1, strides=strides, name=conv + "2a")(x)
    y = BatchNorm(name=bn + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f2, 3, padding="same", name=conv + "2b")(y)
    y = BatchNorm(name=bn + "2b")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f3, 1, name=conv + "2c")(y)
    y = BatchNorm(name=bn + "2c")(y)
    if projection:
        x = layers.Conv2D(f3, 1, strides=strides, name=conv + "1")(x)
        x = BatchNorm(name=bn + "1")(x)
    y = layers.Add()([y, x])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def resnet101(image: keras.KerasTensor) -> list[keras.KerasTensor]:
    """C2..C5 (strides 4, 8, 16, 32) of ResNet-101 for a mean-subtracted RGB image.

    Layer names are matterport's (conv1, bn_conv1, res2a_branch2a, ..., res5c_out); the stages have
    `RESNET101_BLOCKS` residual blocks.

    Parameters
    ----------
    image : keras.KerasTensor
        [B, H, W, 3] molded (mean-subtracted) image.

    Returns
    -------
    list of keras.KerasTensor
        C2, C3, C4, C5 with 256, 512, 1024 and 2048 channels at 1/4, 1/8, 1/16 and 1/32 of the image size.

    Examples
    --------
    >>> import keras
    >>> image = keras.Input(shape=(None, None, 3), batch_size=1)
    >>> [c.shape[-1] for c in resnet101(image)]  # doctest: +SKIP
    [256, 512, 1024, 2048]
    """
    x = layers.ZeroPadding2D(3)(image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = BatchNorm(name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    outputs = []
    for stage, blocks in RESNET101_BLOCKS.items():
        for i in range(blocks):
            strides = 2 if (i == 0 and stage > 2) else 1
            x = _block(x, stage, "abcdefghijklmnopqrstuvw"[i], strides, projection=(i == 0))
        outputs.append(x)
    return outputs
