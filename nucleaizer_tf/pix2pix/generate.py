"""Render synthetic images from label images with a trained generator (docs/method.md §6.7).

docs/method.md, quirk Q13 (reproduced, as recommended): the original never switched the generator to evaluation
mode, so at synthesis BatchNorm normalises with the statistics of the image being generated and
dropout (p = 0.5) stays on; outputs are stochastic, which is pix2pix's intended noise source.
`training=True` is the default here; BatchNorm's moving statistics, which a Keras call in training
mode updates, are restored afterwards so the model is left exactly as loaded.

Output conversion as the original: uint8 = floor((y + 1) / 2 · 255), clipped to [0, 255].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np


def labels_to_input(labels: np.ndarray) -> np.ndarray:
    """Label image H×W -> binary foreground as a 3-channel float32 image in {-1, 1}.

    Parameters
    ----------
    labels : numpy.ndarray
        H×W label (or binary) image; > 0 is foreground.

    Returns
    -------
    numpy.ndarray
        float32 H×W×3: 1 on foreground, -1 on background.

    Examples
    --------
    >>> x = labels_to_input(np.array([[0, 3], [1, 0]]))
    >>> x.shape, x[:, :, 0]
    ((2, 2, 3), array([[-1.,  1.],
           [ 1., -1.]], dtype=float32))
    """
    fg = (np.asarray(labels) > 0).astype(np.float32)
    return np.repeat(fg[:, :, None], 3, axis=-1) * 2.0 - 1.0


def output_to_uint8(y: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 floor((y + 1) / 2 · 255), clipped to [0, 255] (as the original).

    Parameters
    ----------
    y : numpy.ndarray
        Generator output (any shape).

    Returns
    -------
    numpy.ndarray
        uint8, the shape of `y`.

    Examples
    --------
    >>> output_to_uint8(np.array([-1.0, 0.0, 0.999, 1.0, 1.5]))
    array([  0, 127, 254, 255, 255], dtype=uint8)
    """
    return np.clip(np.floor((np.asarray(y, np.float64) + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def generate_images(generator: keras.Model, label_images: Iterable[np.ndarray], *, training: bool = True,
                    progress: Callable | None = None) -> list[np.ndarray]:
    """uint8 RGB images (H×W×3) for each label image; sides must be multiples of 2^depth (512 for depth 8).

    `training=True` (docs/method.md, quirk Q13) keeps BatchNorm on the image's own statistics and dropout
    on; BatchNorm's moving statistics are restored afterwards, even after an error.

    Parameters
    ----------
    generator : keras.Model
        A trained `unet_generator`.
    label_images : iterable of numpy.ndarray
        H×W label images (synthetic masks).
    training : bool
        Call the generator in training mode (True, faithful) or inference mode.
    progress : callable, optional
        Called without arguments after each image.

    Returns
    -------
    list of numpy.ndarray
        One uint8 H×W×3 image per label image, in order.

    Examples
    --------
    >>> images = generate_images(trainer.generator, synthetic_masks)  # doctest: +SKIP
    >>> images[0].shape, images[0].dtype  # doctest: +SKIP
    ((512, 512, 3), dtype('uint8'))
    """
    saved = [v.numpy() for v in generator.non_trainable_variables]
    out = []
    try:
        for labels in label_images:
            y = generator(labels_to_input(labels)[None], training=training)
            out.append(output_to_uint8(np.asarray(y)[0]))
            if progress is not None:
                progress()
    finally:
        for v, value in zip(generator.non_trainable_variables, saved):
            v.assign(value)
    return out
