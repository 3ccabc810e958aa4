"""ProposalLayer of matterport v2.1: RPN scores and deltas -> normalised, NMS-filtered ROIs.

Batch size 1 only (as in the original). The float32 arithmetic follows the original op by op
(centre/size form, `y2 = y1 + h`) so that proposals agree to the last bit where possible.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import layers

from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig


def apply_box_deltas(boxes: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """Refine [N, 4] (y1, x1, y2, x2) boxes by [N, 4] (dy, dx, log dh, log dw) deltas.

    In centre/size form: the centre moves by (dy·h, dx·w), the size is multiplied by (exp dh, exp dw),
    and y2 = y1 + h, x2 = x1 + w as in the original graph.

    Parameters
    ----------
    boxes : tf.Tensor
        float32 [N, 4] boxes (y1, x1, y2, x2), in any unit.
    deltas : tf.Tensor
        float32 [N, 4] (dy, dx, log dh, log dw), already multiplied by the std dev (RPN_BBOX_STD_DEV
        or BBOX_STD_DEV).

    Returns
    -------
    tf.Tensor
        float32 [N, 4] refined boxes in the unit of `boxes`.

    Examples
    --------
    >>> import tensorflow as tf
    >>> boxes = tf.constant([[0.0, 0.0, 10.0, 10.0]])
    >>> apply_box_deltas(boxes, tf.constant([[0.1, 0.0, 0.0, np.log(2.0)]])).numpy()
    array([[ 1., -5., 11., 15.]], dtype=float32)
    """
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    center_y += deltas[:, 0] * height
    center_x += deltas[:, 1] * width
    height *= tf.exp(deltas[:, 2])
    width *= tf.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=1)


def clip_boxes(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Clamp [N, 4] boxes into window (y1, x1, y2, x2).

    Parameters
    ----------
    boxes : tf.Tensor
        float32 [N, 4] boxes (y1, x1, y2, x2).
    window : tf.Tensor
        float32 (4,) window (y1, x1, y2, x2) in the unit of `boxes`.

    Returns
    -------
    tf.Tensor
        float32 [N, 4]: every coordinate clamped into the window (boxes outside it become zero-area).

    Examples
    --------
    >>> import tensorflow as tf
    >>> clip_boxes(tf.constant([[-5.0, 2.0, 12.0, 8.0]]), tf.constant([0.0, 0.0, 10.0, 10.0])).numpy()
    array([[ 0.,  2., 10.,  8.]], dtype=float32)
    """
    y1 = tf.maximum(tf.minimum(boxes[:, 0], window[2]), window[0])
    x1 = tf.maximum(tf.minimum(boxes[:, 1], window[3]), window[1])
    y2 = tf.maximum(tf.minimum(boxes[:, 2], window[2]), window[0])
    x2 = tf.maximum(tf.minimum(boxes[:, 3], window[3]), window[1])
    return tf.stack([y1, x1, y2, x2], axis=1)


def normalize_boxes(boxes: tf.Tensor, image_hw) -> tf.Tensor:
    """Pixel boxes -> fractions of the image, as the original graph computed it.

    matterport divided by a constant [H, W, H, W]; TensorFlow's graph optimiser turns that into a
    multiplication by the float32 reciprocal, which rounds differently from a true division.

    Parameters
    ----------
    boxes : tf.Tensor
        float32 [..., 4] boxes (y1, x1, y2, x2) in pixels.
    image_hw : tf.Tensor or sequence of int
        (H, W) of the (molded) image.

    Returns
    -------
    tf.Tensor
        float32 [..., 4] boxes as fractions of the image: `boxes * (1 / [H, W, H, W])`.

    Examples
    --------
    >>> import tensorflow as tf
    >>> normalize_boxes(tf.constant([[0.0, 0.0, 32.0, 64.0]]), [64, 128]).numpy()
    array([[0. , 0. , 0.5, 0.5]], dtype=float32)
    """
    h, w = tf.unstack(tf.cast(image_hw, tf.float32))
    return boxes * (1.0 / tf.stack([h, w, h, w]))


def propose(rpn_class, rpn_bbox, anchors, image_hw, config: MaskRCNNConfig) -> tf.Tensor:
    """[1, POST_NMS_ROIS_INFERENCE, 4] proposals normalised by the molded image size, zero-padded.

    Top PRE_NMS_LIMIT anchors by foreground score (ties: lower index), deltas x RPN_BBOX_STD_DEV,
    clip to the whole padded image, normalise, NMS at RPN_NMS_THRESHOLD.

    Parameters
    ----------
    rpn_class : tf.Tensor
        float32 [1, A, 2] RPN softmax (background, foreground).
    rpn_bbox : tf.Tensor
        float32 [1, A, 4] RPN deltas, before the multiplication by RPN_BBOX_STD_DEV.
    anchors : tf.Tensor
        float32 [A, 4] anchors in pixels of the molded image.
    image_hw : tf.Tensor
        int32 (2,) size (H, W) of the molded image.
    config : MaskRCNNConfig
        Gives PRE_NMS_LIMIT, POST_NMS_ROIS_INFERENCE, RPN_NMS_THRESHOLD and RPN_BBOX_STD_DEV.

    Returns
    -------
    tf.Tensor
        float32 [1, POST_NMS_ROIS_INFERENCE, 4] normalised proposals (y1, x1, y2, x2) in NMS order
        (best score first), zero rows after the last one.

    Examples
    --------
    >>> import tensorflow as tf
    >>> config = MaskRCNNConfig(POST_NMS_ROIS_INFERENCE=4)
    >>> anchors = tf.constant([[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 30.0, 32.0], [32.0, 32.0, 64.0, 64.0]])
    >>> rpn_class = tf.constant([[[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]])
    >>> propose(rpn_class, tf.zeros([1, 3, 4]), anchors, tf.constant([64, 64]), config).numpy()[0]
    array([[0. , 0. , 0.5, 0.5],
           [0.5, 0.5, 1. , 1. ],
           [0. , 0. , 0. , 0. ],
           [0. , 0. , 0. , 0. ]], dtype=float32)
    """
    scores = rpn_class[0, :, 1]
    deltas = rpn_bbox[0] * np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    k = tf.minimum(config.PRE_NMS_LIMIT, tf.shape(anchors)[0])
    top = tf.math.top_k(scores, k, sorted=True).indices
    scores = tf.gather(scores, top)
    boxes = apply_box_deltas(tf.gather(anchors, top), tf.gather(deltas, top))
    h, w = tf.unstack(tf.cast(image_hw, tf.float32))
    boxes = normalize_boxes(clip_boxes(boxes, tf.stack([0.0, 0.0, h, w])), image_hw)
    count = config.POST_NMS_ROIS_INFERENCE
    keep = tf.image.non_max_suppression(boxes, scores, count, config.RPN_NMS_THRESHOLD)
    proposals = tf.gather(boxes, keep)
    proposals = tf.pad(proposals, [[0, count - tf.shape(proposals)[0]], [0, 0]])
    return tf.reshape(proposals, [1, count, 4])


def proposal_stage(rpn_class, rpn_bbox, anchors, config: MaskRCNNConfig) -> np.ndarray:
    """`propose` on numpy inputs for an image of config.IMAGE_SHAPE (stage-wise checks).

    Runs as a graph like the model: eager kernels round some element-wise results differently.

    Parameters
    ----------
    rpn_class : numpy.ndarray
        [1, A, 2] RPN softmax.
    rpn_bbox : numpy.ndarray
        [1, A, 4] RPN deltas.
    anchors : numpy.ndarray
        [A, 4] anchors in pixels (e.g. `anchors.pyramid_anchors(D, config)`).
    config : MaskRCNNConfig
        The settings; the image size is config.IMAGE_SHAPE[:2].

    Returns
    -------
    numpy.ndarray
        float32 [1, POST_NMS_ROIS_INFERENCE, 4] normalised proposals, as `propose`.

    Examples
    --------
    >>> config = MaskRCNNConfig(POST_NMS_ROIS_INFERENCE=4).with_image_size(64)
    >>> anchors = np.array([[0, 0, 32, 32], [0, 0, 30, 32], [32, 32, 64, 64]], np.float32)
    >>> rpn_class = np.array([[[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]], np.float32)
    >>> proposal_stage(rpn_class, np.zeros((1, 3, 4), np.float32), anchors, config)[0, :2]  # doctest: +SKIP
    array([[0. , 0. , 0.5, 0.5],
           [0.5, 0.5, 1. , 1. ]], dtype=float32)
    """
    run = tf.function(lambda *args: propose(*args, config))
    return run(tf.constant(rpn_class, tf.float32), tf.constant(rpn_bbox, tf.float32),
               tf.constant(anchors, tf.float32), tf.constant(config.IMAGE_SHAPE[:2], tf.int32)).numpy()


class ProposalLayer(layers.Layer):
    """Inputs [rpn_class, rpn_bbox, anchors [1, A, 4], molded image]; the image only gives the size.

    Output: `propose(...)`, [1, POST_NMS_ROIS_INFERENCE, 4] normalised proposals (batch size 1).

    Parameters
    ----------
    config : MaskRCNNConfig
        The proposal settings (see `propose`).
    **kwargs
        Passed to `keras.layers.Layer` (the model names it "ROI").

    Examples
    --------
    >>> import tensorflow as tf
    >>> layer = ProposalLayer(MaskRCNNConfig(POST_NMS_ROIS_INFERENCE=4), name="ROI")
    >>> anchors = tf.constant([[[0.0, 0.0, 32.0, 32.0], [32.0, 32.0, 64.0, 64.0]]])
    >>> rpn_class = tf.constant([[[0.1, 0.9], [0.7, 0.3]]])
    >>> layer([rpn_class, tf.zeros([1, 2, 4]), anchors, tf.zeros([1, 64, 64, 3])]).shape
    TensorShape([1, 4, 4])
    """

    def __init__(self, config: MaskRCNNConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        rpn_class, rpn_bbox, anchors, image = inputs
        return propose(rpn_class, rpn_bbox, anchors[0], tf.shape(image)[1:3], self.config)

    def compute_output_shape(self, input_shape):
        return (1, self.config.POST_NMS_ROIS_INFERENCE, 4)
