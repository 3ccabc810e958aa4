"""The nucleAIzer U-Net (spec 4.2) as a Keras functional model, plus slimmer variants.

At the defaults the graph matches the original PyTorch `UNet(3, 1)` layer for layer (31,043,521 trainable
parameters, 11,776 BN statistics), so converted original weights map one-to-one onto it. Block names follow
the original modules (first, encoder_1..3, center, decoder_3..1, last) so a weight converter can find them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: PyTorch BatchNorm2d defaults expressed in Keras terms (momentum 0.1 there is 0.9 here).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

OUTPUT_ACTIVATIONS = ("sigmoid", "softmax", "linear")


@keras.saving.register_keras_serializable(package="nucleaizer_tf")
class PadToMatch(keras.layers.Layer):
    """Zero-pad the first input on the bottom and right up to the spatial size of the second.

    Max-pooling floors odd sizes and the transposed convolution doubles, so on the way up a tensor can be
    one pixel short of its skip connection; the original pads right/bottom only (`pad_to_shape`). Sizes are
    read at run time so one traced graph serves every image size.

    Called on [x [B, h, w, C], reference [B, H, W, C']] with H >= h and W >= w; returns x zero-padded
    to [B, H, W, C].

    Parameters
    ----------
    **kwargs
        Passed to `keras.layers.Layer` (e.g. ``name="decoder_3_pad"``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 3, 4, 2), np.float32)
    >>> padded = PadToMatch()([x, np.zeros((1, 4, 5, 8), np.float32)])
    >>> tuple(padded.shape), np.asarray(padded)[0, :, :, 0]
    ((1, 4, 5, 2), array([[1., 1., 1., 1., 0.],
           [1., 1., 1., 1., 0.],
           [1., 1., 1., 1., 0.],
           [0., 0., 0., 0., 0.]], dtype=float32))
    """

    def call(self, inputs):
        x, reference = inputs
        dh = tf.shape(reference)[1] - tf.shape(x)[1]
        dw = tf.shape(reference)[2] - tf.shape(x)[2]
        return tf.pad(x, [[0, 0], [0, dh], [0, dw], [0, 0]])

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


def _double_conv(x, filters: int, prefix: str):
    """conv3×3 → BN → ReLU, twice (the original's repeated block)."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=True, name=f"{prefix}_conv{i}")(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
    return x


def _up(x, filters: int, prefix: str):
    return keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="valid", use_bias=True, name=f"{prefix}_up")(x)


def _merge(up, skip, prefix: str):
    """[pad(up), skip] along channels: upsampled FIRST, skip SECOND, as in the original."""
    up = PadToMatch(name=f"{prefix}_pad")([up, skip])
    return keras.layers.Concatenate(axis=-1, name=f"{prefix}_concat")([up, skip])


def build_unet(
    in_channels: int = 3,
    out_channels: int = 1,
    base_filters: int = 64,
    depth: int = 4,
    output_activation: str = "sigmoid",
    name: str = "unet",
) -> keras.Model:
    """Build the U-Net for inputs of any spatial size (None, None, in_channels).

    `depth` is the number of 2× poolings (4 in the original: three encoders plus the centre), level i has
    `base_filters·2^i` channels. `output_activation` is "sigmoid" (original), "softmax" (over the channel
    axis, for multi-class slim variants) or "linear" (logits). The activation runs in float32 so the model
    also works under a mixed-precision policy.

    Parameters
    ----------
    in_channels : int
        Input channels (3: RGB in [0, 1]).
    out_channels : int
        Output channels (1 in the original).
    base_filters : int
        Channels of the first level (64 in the original).
    depth : int
        Number of 2× poolings (4).
    output_activation : str
        "sigmoid", "softmax" or "linear" (ValueError for others).
    name : str
        The model name.

    Returns
    -------
    keras.Model
        Input "image" [B, None, None, in_channels], output [B, H, W, out_channels] float32 of the same
        spatial size. ValueError when a size argument is not positive.

    Examples
    --------
    >>> unet = build_unet()  # the original's graph  # doctest: +SKIP
    >>> unet.count_params()  # 31,043,521 trainable + 11,776 BatchNorm statistics  # doctest: +SKIP
    31055297
    >>> slim = build_unet(out_channels=3, base_filters=16, output_activation="softmax")  # doctest: +SKIP
    """
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
    if depth < 1 or base_filters < 1 or in_channels < 1 or out_channels < 1:
        raise ValueError("depth, base_filters, in_channels and out_channels must be positive")
    widths = [base_filters * 2**i for i in range(depth + 1)]

    inputs = keras.Input(shape=(None, None, in_channels), name="image")
    skips = [_double_conv(inputs, widths[0], "first")]
    for level in range(1, depth):
        x = keras.layers.MaxPooling2D(2, name=f"encoder_{level}_pool")(skips[-1])
        skips.append(_double_conv(x, widths[level], f"encoder_{level}"))

    x = keras.layers.MaxPooling2D(2, name="center_pool")(skips[-1])
    x = _double_conv(x, widths[depth], "center")
    x = _up(x, widths[depth - 1], "center")

    for level in range(depth - 1, 0, -1):
        x = _merge(x, skips[level], f"decoder_{level}")
        x = _double_conv(x, widths[level], f"decoder_{level}")
        x = _up(x, widths[level - 1], f"decoder_{level}")

    x = _merge(x, skips[0], "last")
    x = _double_conv(x, widths[0], "last")
    x = keras.layers.Conv2D(out_channels, 1, use_bias=True, name="last_conv_out")(x)
    outputs = keras.layers.Activation(output_activation, dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name)
