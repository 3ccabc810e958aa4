"""The pix2pix 70×70 PatchGAN discriminator ("basic", n_layers 3; docs/method.md §6.6), for Keras 3.

Input: the condition (mask) and an image, concatenated to 6 channels. Layers: 4×4 stride-2 conv to
ndf (with bias) + LeakyReLU 0.2; for n = 1 .. n_layers-1 a 4×4 stride-2 conv to ndf·min(2^n, 8) +
BatchNorm + LeakyReLU; a 4×4 stride-1 conv to ndf·min(2^n_layers, 8) + BatchNorm + LeakyReLU; a 4×4
stride-1 conv to 1 channel (with bias). Every conv pads 1 pixel first (explicit ZeroPadding2D, the
PyTorch geometry: 256 -> 128 -> 64 -> 32 -> 31 -> 30 patches, each seeing 70×70 input pixels).
At ndf 64 this has 2,768,705 trainable parameters, as the original.

The original ends in a Sigmoid and trains with BCELoss (`--no_lsgan`); here the model returns the
logits and the loss applies the sigmoid (`from_logits=True`): the same function, numerically safer.
`sigmoid=True` appends the activation for callers that want probabilities.
"""

from __future__ import annotations

import keras
from keras import layers

from nucleaizer_tf.pix2pix.generator import batch_norm, conv_init


class LeakyMax(layers.Layer):
    """LeakyReLU written as max(x, αx). Used after the first (biased) convolution: TensorFlow's graph
    optimiser fuses Conv2D+BiasAdd+LeakyRelu in the forward pass of a discriminator that is called three
    times per step and then logs a harmless but alarming "remapper failed" error for the gradient.

    Parameters
    ----------
    alpha : float
        Slope for negative inputs (0.2); must be in [0, 1] for max(x, αx) to be a LeakyReLU.
    **kwargs
        Passed to `keras.layers.Layer` (e.g. ``name="d0_lrelu"``).

    Examples
    --------
    >>> import numpy as np
    >>> np.asarray(LeakyMax(0.2)(np.array([-1.0, 0.0, 2.0], np.float32)))
    array([-0.2,  0. ,  2. ], dtype=float32)
    """

    def __init__(self, alpha: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, x):
        return keras.ops.maximum(x, self.alpha * x)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


def patch_discriminator(ndf: int = 64, n_layers: int = 3, *, input_nc: int = 6, size: int | None = None,
                        sigmoid: bool = False, name: str = "patch_discriminator") -> keras.Model:
    """Build the PatchGAN discriminator of the module docstring (logits unless `sigmoid`).

    Parameters
    ----------
    ndf : int
        Filters of the first convolution (64).
    n_layers : int
        Number of stride-2 convolutions after the first ("basic" = 3).
    input_nc : int
        Channels of condition and image together (6); the condition gets input_nc // 2 of them.
    size : int, optional
        Fixed input side; None accepts any size.
    sigmoid : bool
        Append a sigmoid (probabilities instead of logits).
    name : str
        The model name.

    Returns
    -------
    keras.Model
        Inputs [mask [B, H, W, input_nc // 2], image [B, H, W, input_nc - input_nc // 2]], output
        [B, h, w, 1] patch logits (30 x 30 for 256 x 256 inputs at n_layers 3).

    Examples
    --------
    >>> discriminator = patch_discriminator()  # doctest: +SKIP
    >>> discriminator.count_params()  # 2,768,705 trainable + BatchNorm statistics  # doctest: +SKIP
    2770497
    >>> tuple(discriminator([mask, image]).shape)  # 256 x 256 tiles  # doctest: +SKIP
    (1, 30, 30, 1)
    """
    half = input_nc // 2
    condition = keras.Input((size, size, half), name="mask")
    image = keras.Input((size, size, input_nc - half), name="image")
    x = layers.Concatenate(name="pair")([condition, image])

    def conv(x, filters, stride, bias, tag):
        x = layers.ZeroPadding2D(1, name=f"{tag}_pad")(x)
        return layers.Conv2D(filters, 4, strides=stride, padding="valid", use_bias=bias,
                             kernel_initializer=conv_init(), name=f"{tag}_conv")(x)

    x = LeakyMax(0.2, name="d0_lrelu")(conv(x, ndf, 2, True, "d0"))
    for n in range(1, n_layers + 1):
        stride = 2 if n < n_layers else 1
        x = conv(x, ndf * min(2 ** n, 8), stride, False, f"d{n}")
        x = batch_norm(f"d{n}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"d{n}_lrelu")(x)
    x = conv(x, 1, 1, True, "logits")
    if sigmoid:
        x = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model([condition, image], x, name=name)
