"""The pix2pix U-Net generator ("unet_256", docs/method.md §6.6), written for Keras 3.

Encoder level i (0 = outermost) is a 4×4 stride-2 convolution to ngf·min(2^i, 8) channels, preceded by
LeakyReLU(0.2) except at level 0 and followed by BatchNorm except at the outermost and innermost
levels. The decoder mirrors it: ReLU -> 4×4 stride-2 transposed convolution -> BatchNorm (-> Dropout
0.5 at levels 4 .. depth-2, the three innermost non-bottleneck blocks of unet_256) -> concatenation
with the encoder output of the level above ([skip, up]); the outermost block ends in a transposed
convolution to 3 channels (with bias) and tanh. Convolutions followed by BatchNorm have no bias.

depth 8 turns a 256×256 tile into a 1×1 bottleneck (the original, ≈ 54.41 M parameters at ngf 64);
any input whose sides are multiples of 2^depth works (512×512 at synthesis time). Smaller depths
let tests and CPU users train on small tiles: depth 6 for 64×64, 7 for 128×128.

Initialisation as pix2pix's `init_weights('normal')`: conv kernels N(0, 0.02), BatchNorm gamma
N(1, 0.02) and beta 0. BatchNorm uses PyTorch's settings (momentum 0.1 ≙ Keras 0.9, eps 1e-5).
"""

from __future__ import annotations

import keras
from keras import layers

INIT_STD = 0.02


def conv_init(seed=None):
    """Kernel initialiser of every pix2pix convolution: N(0, 0.02) (`init_weights('normal')`).

    Parameters
    ----------
    seed : int, optional
        Seed of the initialiser (None: Keras' global seeding).

    Returns
    -------
    keras.initializers.RandomNormal
        Mean 0, standard deviation `INIT_STD` (0.02).

    Examples
    --------
    >>> init = conv_init(seed=0)
    >>> init.mean, init.stddev
    (0.0, 0.02)
    """
    return keras.initializers.RandomNormal(0.0, INIT_STD, seed=seed)


def batch_norm(name: str) -> layers.BatchNormalization:
    """BatchNormalization with PyTorch's settings and pix2pix's initialisation.

    Momentum 0.9 (PyTorch's 0.1), epsilon 1e-5, gamma ~ N(1, 0.02), beta 0.

    Parameters
    ----------
    name : str
        The layer name (e.g. "down1_bn").

    Returns
    -------
    keras.layers.BatchNormalization

    Examples
    --------
    >>> bn = batch_norm("down1_bn")
    >>> bn.name, bn.momentum, bn.epsilon
    ('down1_bn', 0.9, 1e-05)
    """
    gamma = keras.initializers.RandomNormal(1.0, INIT_STD)
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=gamma, beta_initializer="zeros",
                                     name=name)


def level_channels(ngf: int, level: int) -> int:
    """Channels of encoder level `level` (0 = outermost): ngf·min(2^level, 8).

    Parameters
    ----------
    ngf : int
        Filters of the outermost level (64).
    level : int
        Level index, 0-based.

    Returns
    -------
    int

    Examples
    --------
    >>> [level_channels(64, level) for level in range(8)]
    [64, 128, 256, 512, 512, 512, 512, 512]
    """
    return ngf * min(2 ** level, 8)


def unet_generator(ngf: int = 64, depth: int = 8, *, input_nc: int = 3, output_nc: int = 3, dropout: float = 0.5,
                   size: int | None = None, name: str = "unet_generator") -> keras.Model:
    """Build the U-Net generator; `size=None` accepts any H×W that is a multiple of 2^depth.

    The architecture is the module docstring's; layer names are down{i}_conv, down{i}_bn, up{i}_conv,
    up{i}_bn, up{i}_dropout, up{i}_skip and tanh.

    Parameters
    ----------
    ngf : int
        Filters of the outermost level (64); ValueError below 1.
    depth : int
        Number of stride-2 levels (8 = unet_256); ValueError below 2.
    input_nc, output_nc : int
        Input channels (the mask, 3) and output channels (the image, 3).
    dropout : float
        Dropout rate at the decoder levels 4 .. depth-2 (0.5; 0 = none).
    size : int, optional
        Fixed input side; None accepts any multiple of 2^depth.
    name : str
        The model name.

    Returns
    -------
    keras.Model
        Input "mask" [B, H, W, input_nc] in [-1, 1], output [B, H, W, output_nc] in [-1, 1] (tanh).

    Examples
    --------
    >>> generator = unet_generator(16, depth=6)  # for 64 x 64 tiles  # doctest: +SKIP
    >>> tuple(generator(np.zeros((1, 64, 64, 3), np.float32)).shape)  # doctest: +SKIP
    (1, 64, 64, 3)
    >>> unet_generator().count_params()  # 54,413,955 trainable + BatchNorm statistics  # doctest: +SKIP
    54423811
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    if ngf < 1:
        raise ValueError(f"ngf must be >= 1, got {ngf}")
    inputs = keras.Input((size, size, input_nc), name="mask")
    skips = []
    x = inputs
    for i in range(depth):
        if i > 0:
            x = layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
        x = layers.Conv2D(level_channels(ngf, i), 4, strides=2, padding="same", use_bias=False,
                          kernel_initializer=conv_init(), name=f"down{i}_conv")(x)
        if 0 < i < depth - 1:
            x = batch_norm(f"down{i}_bn")(x)
        skips.append(x)
    for i in reversed(range(depth)):
        x = layers.ReLU(name=f"up{i}_relu")(x)
        if i == 0:
            x = layers.Conv2DTranspose(output_nc, 4, strides=2, padding="same", use_bias=True,
                                       kernel_initializer=conv_init(), name="up0_conv")(x)
            x = layers.Activation("tanh", name="tanh")(x)
            break
        x = layers.Conv2DTranspose(level_channels(ngf, i - 1), 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=conv_init(), name=f"up{i}_conv")(x)
        x = batch_norm(f"up{i}_bn")(x)
        if dropout > 0 and 4 <= i <= depth - 2:
            x = layers.Dropout(dropout, name=f"up{i}_dropout")(x)
        x = layers.Concatenate(name=f"up{i}_skip")([skips[i - 1], x])
    return keras.Model(inputs, x, name=name)
