"""Pyramid anchors of matterport v2.1, in pixels of the molded (padded) image.

One scale per level P2..P6; per level the order is row-major over the feature grid (y, x) and then
the ratios, the order of the RPN's flattened outputs. Anchor centres sit at (i*stride, j*stride)
(not at cell centres). Values are computed in float64 and cast to float32 as matterport's
ProposalLayer did, so the numpy and the in-graph versions agree bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from keras import layers

from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig


def _half_sizes(scale: float, ratios) -> tuple[np.ndarray, np.ndarray]:
    """Half heights and half widths per ratio (ratio = width / height)."""
    root = np.sqrt(np.asarray(ratios, dtype=np.float64))
    return 0.5 * (scale / root), 0.5 * (scale * root)


def _level_anchors_np(grid: int, stride: int, scale: float, config: MaskRCNNConfig) -> np.ndarray:
    half_h, half_w = _half_sizes(scale, config.RPN_ANCHOR_RATIOS)
    centres = np.arange(0, grid, config.RPN_ANCHOR_STRIDE, dtype=np.float64) * stride
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    cy, cx = cy.reshape(-1, 1), cx.reshape(-1, 1)
    boxes = np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)
    return boxes.reshape(-1, 4)


@functools.lru_cache(maxsize=16)
def pyramid_anchors(image_size: int, config: MaskRCNNConfig) -> np.ndarray:
    """[A, 4] float32 anchors (y1, x1, y2, x2) for a square molded image of side `image_size`.

    Parameters
    ----------
    image_size : int
        Side D of the molded image in pixels.
    config : MaskRCNNConfig
        Gives BACKBONE_STRIDES, RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS and RPN_ANCHOR_STRIDE.

    Returns
    -------
    numpy.ndarray
        float32 [A, 4] in pixels of the molded image, level P2 first, then row-major over each level's
        ceil(D / stride)² grid and the ratios. The array is read-only: results are cached per
        (image_size, config).

    Examples
    --------
    >>> anchors = pyramid_anchors(64, MaskRCNNConfig())
    >>> anchors.shape, anchors.dtype
    ((1023, 4), dtype('float32'))
    >>> anchors[0]  # P2, cell (0, 0), ratio 0.5: scale 32
    array([-22.627417, -11.313708,  22.627417,  11.313708], dtype=float32)
    """
    levels = [_level_anchors_np(-(-image_size // stride), stride, scale, config)
              for stride, scale in zip(config.BACKBONE_STRIDES, config.RPN_ANCHOR_SCALES)]
    anchors = np.concatenate(levels).astype(np.float32)
    anchors.setflags(write=False)
    return anchors


def pyramid_anchors_graph(feature_maps, config: MaskRCNNConfig) -> tf.Tensor:
    """In-graph `pyramid_anchors` whose grid sizes are read from the feature maps P2..P6.

    Parameters
    ----------
    feature_maps : sequence of tf.Tensor
        P2..P6, [1, H_l, W_l, C] each; only their dynamic shapes are used.
    config : MaskRCNNConfig
        Gives BACKBONE_STRIDES, RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS and RPN_ANCHOR_STRIDE.

    Returns
    -------
    tf.Tensor
        float32 [A, 4] anchors (y1, x1, y2, x2) in molded-image pixels, computed in float64 and cast,
        equal bit for bit to `pyramid_anchors` of the same image size.

    Examples
    --------
    >>> import tensorflow as tf
    >>> config = MaskRCNNConfig()
    >>> maps = [tf.zeros([1, 64 // s, 64 // s, 1]) for s in config.BACKBONE_STRIDES]
    >>> anchors = pyramid_anchors_graph(maps, config)
    >>> anchors.shape, bool(np.array_equal(anchors.numpy(), pyramid_anchors(64, config)))
    (TensorShape([1023, 4]), True)
    """
    levels = []
    for fmap, stride, scale in zip(feature_maps, config.BACKBONE_STRIDES, config.RPN_ANCHOR_SCALES):
        half_h, half_w = _half_sizes(scale, config.RPN_ANCHOR_RATIOS)
        shape = tf.shape(fmap)
        ys = tf.range(0, shape[1], config.RPN_ANCHOR_STRIDE)
        xs = tf.range(0, shape[2], config.RPN_ANCHOR_STRIDE)
        cy = tf.cast(ys, tf.float64) * float(stride)
        cx = tf.cast(xs, tf.float64) * float(stride)
        cy, cx = tf.meshgrid(cy, cx, indexing="ij")
        cy, cx = tf.reshape(cy, [-1, 1]), tf.reshape(cx, [-1, 1])
        boxes = tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)
        levels.append(tf.reshape(boxes, [-1, 4]))
    return tf.cast(tf.concat(levels, axis=0), tf.float32)


class AnchorLayer(layers.Layer):
    """[1, A, 4] anchors for the feature maps it is given, so one model serves every image size.

    Called on the list P2..P6, it returns `pyramid_anchors_graph(feature_maps, config)` with a
    leading batch axis of 1.

    Parameters
    ----------
    config : MaskRCNNConfig
        The anchor settings (see `pyramid_anchors_graph`).
    **kwargs
        Passed to `keras.layers.Layer` (e.g. ``name="anchors"``).

    Examples
    --------
    >>> import tensorflow as tf
    >>> config = MaskRCNNConfig()
    >>> maps = [tf.zeros([1, 64 // s, 64 // s, 1]) for s in config.BACKBONE_STRIDES]
    >>> AnchorLayer(config, name="anchors")(maps).shape
    TensorShape([1, 1023, 4])
    """

    def __init__(self, config: MaskRCNNConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, feature_maps):
        return pyramid_anchors_graph(feature_maps, self.config)[tf.newaxis]

    def compute_output_shape(self, input_shape):
        return (1, None, 4)
