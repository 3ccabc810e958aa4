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
    """Label image H×W -> binary foreground as a 3-channel float32 image in {-1, 1}."""
    fg = (np.asarray(labels) > 0).astype(np.float32)
    return np.repeat(fg[:, :, None], 3, axis=-1) * 2.0 - 1.0


def output_to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((np.asarray(y, np.float64) + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def generate_images(generator: keras.Model, label_images: Iterable[np.ndarray], *, training: bool = True,
                    progress: Callable | None = None) -> list[np.ndarray]:
    """uint8 RGB images (H×W×3) for each label image; sides must be multiples of 2^depth (512 for depth 8)."""
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
