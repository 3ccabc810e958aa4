"""DetectionLayer of matterport v2.1 (refine_detections_graph) and the mask-head input boxes.

v2.1 semantics kept on purpose: boxes are refined on the normalised proposals, scaled to pixels of
the molded image, clipped to the image window, rounded with `rint` (half-to-even) and per-class
NMS runs on those integer boxes. Zero-area boxes survive here; `unmold_detections` drops them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import layers

from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
from nucleaizer_tf.maskrcnn.proposal import apply_box_deltas, clip_boxes, normalize_boxes


def refine_detections(rois, probs, deltas, window, image_hw, config: MaskRCNNConfig) -> tf.Tensor:
    """[MAX, 6] rows (y1, x1, y2, x2, class_id, score), best score first, zero-padded.

    Each ROI takes its most probable class; background ROIs and scores below DETECTION_MIN_CONFIDENCE
    are dropped, boxes are refined by that class's deltas x BBOX_STD_DEV, scaled to pixels, clipped to
    `window`, rounded half-to-even, and per-class NMS at DETECTION_NMS_THRESHOLD keeps at most
    DETECTION_MAX_INSTANCES (MAX) of them.

    Parameters
    ----------
    rois : tf.Tensor
        float32 [N, 4] normalised proposals.
    probs : tf.Tensor
        float32 [N, NC] class probabilities.
    deltas : tf.Tensor
        float32 [N, NC, 4] per-class box deltas.
    window : tf.Tensor
        float32 (4,) image window (y1, x1, y2, x2) in molded-image pixels.
    image_hw : tf.Tensor
        (2,) size (H, W) of the molded image.
    config : MaskRCNNConfig
        The detection settings.

    Returns
    -------
    tf.Tensor
        float32 [DETECTION_MAX_INSTANCES, 6]; box coordinates are integers in molded-image pixels.

    Examples
    --------
    >>> import tensorflow as tf
    >>> config = MaskRCNNConfig(DETECTION_MAX_INSTANCES=3)
    >>> rois = tf.constant([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.7]])
    >>> probs = tf.constant([[0.1, 0.9], [0.8, 0.2]])  # the second ROI is background
    >>> refine_detections(rois, probs, tf.zeros([2, 2, 4]), tf.constant([0.0, 0.0, 64.0, 64.0]),
    ...                   tf.constant([64, 64]), config).numpy()
    array([[ 6. ,  6. , 19. , 19. ,  1. ,  0.9],
           [ 0. ,  0. ,  0. ,  0. ,  0. ,  0. ],
           [ 0. ,  0. ,  0. ,  0. ,  0. ,  0. ]], dtype=float32)
    """
    limit = config.DETECTION_MAX_INSTANCES
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    index = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)
    scores = tf.gather_nd(probs, index)
    class_deltas = tf.gather_nd(deltas, index) * np.asarray(config.BBOX_STD_DEV, np.float32)
    h, w = tf.unstack(tf.cast(image_hw, tf.float32))
    boxes = apply_box_deltas(rois, class_deltas) * tf.stack([h, w, h, w])
    boxes = tf.cast(tf.math.rint(clip_boxes(boxes, window)), tf.int32)

    # Ascending indices, as the original's sorted set intersections produce them.
    keep = tf.where((class_ids > 0) & (scores >= config.DETECTION_MIN_CONFIDENCE))[:, 0]
    kept_per_class = []
    for class_id in range(1, config.NUM_CLASSES):
        members = tf.gather(keep, tf.where(tf.equal(tf.gather(class_ids, keep), class_id))[:, 0])
        chosen = tf.image.non_max_suppression(
            tf.cast(tf.gather(boxes, members), tf.float32), tf.gather(scores, members),
            max_output_size=limit, iou_threshold=config.DETECTION_NMS_THRESHOLD)
        kept_per_class.append(tf.gather(members, chosen))
    keep = tf.sort(tf.concat(kept_per_class, axis=0))
    kept_scores = tf.gather(scores, keep)
    keep = tf.gather(keep, tf.math.top_k(kept_scores, tf.minimum(tf.size(keep), limit), sorted=True).indices)

    detections = tf.concat([
        tf.cast(tf.gather(boxes, keep), tf.float32),
        tf.cast(tf.gather(class_ids, keep), tf.float32)[:, tf.newaxis],
        tf.gather(scores, keep)[:, tf.newaxis],
    ], axis=1)
    return tf.pad(detections, [[0, limit - tf.shape(detections)[0]], [0, 0]])


def detection_stage(rois, mrcnn_class, mrcnn_bbox, image_meta, config: MaskRCNNConfig) -> np.ndarray:
    """DetectionLayer on numpy inputs (batch 1) for an image of config.IMAGE_SHAPE -> [1, MAX, 6].

    Runs as a graph like the model (see `proposal.proposal_stage`).

    Parameters
    ----------
    rois : numpy.ndarray
        [1, N, 4] normalised proposals.
    mrcnn_class : numpy.ndarray
        [1, N, NC] class probabilities.
    mrcnn_bbox : numpy.ndarray
        [1, N, NC, 4] per-class deltas.
    image_meta : numpy.ndarray
        [1, 8 + NUM_CLASSES] (`molding.image_meta`); only the window (columns 4..7) is used.
    config : MaskRCNNConfig
        The detection settings; the molded image size is config.IMAGE_SHAPE[:2].

    Returns
    -------
    numpy.ndarray
        float32 [1, DETECTION_MAX_INSTANCES, 6] rows (y1, x1, y2, x2, class_id, score), as
        `refine_detections`.

    Examples
    --------
    >>> config = MaskRCNNConfig(DETECTION_MAX_INSTANCES=3).with_image_size(64)
    >>> rois = np.array([[[0.1, 0.1, 0.3, 0.3]]], np.float32)
    >>> meta = np.array([[0, 64, 64, 3, 0, 0, 64, 64, 0, 0]])
    >>> detection_stage(rois, np.array([[[0.1, 0.9]]]), np.zeros((1, 1, 2, 4)), meta, config)[0, 0]  # doctest: +SKIP
    array([ 6. ,  6. , 19. , 19. ,  1. ,  0.9], dtype=float32)
    """
    run = tf.function(lambda *args: refine_detections(*args, config))
    detections = run(tf.constant(rois[0], tf.float32), tf.constant(mrcnn_class[0], tf.float32),
                     tf.constant(mrcnn_bbox[0], tf.float32), tf.constant(np.asarray(image_meta, np.float32)[0, 4:8]),
                     tf.constant(config.IMAGE_SHAPE[:2], tf.int32))
    return detections.numpy()[np.newaxis]


class DetectionLayer(layers.Layer):
    """Inputs [rois, mrcnn_class, mrcnn_bbox, image_meta, molded image] (batch 1) -> [1, MAX, 6].

    The window comes from image_meta (columns 4..7), the image size from the molded image's shape;
    the output rows are those of `refine_detections`.

    Parameters
    ----------
    config : MaskRCNNConfig
        The detection settings.
    **kwargs
        Passed to `keras.layers.Layer` (the model names it "mrcnn_detection").

    Examples
    --------
    >>> import tensorflow as tf
    >>> layer = DetectionLayer(MaskRCNNConfig(DETECTION_MAX_INSTANCES=3), name="mrcnn_detection")
    >>> meta = tf.constant([[0, 64, 64, 3, 0, 0, 64, 64, 0, 0]], tf.float32)
    >>> inputs = [tf.constant([[[0.1, 0.1, 0.3, 0.3]]]), tf.constant([[[0.1, 0.9]]]), tf.zeros([1, 1, 2, 4]),
    ...           meta, tf.zeros([1, 64, 64, 3])]
    >>> layer(inputs).numpy()[0, 0]
    array([ 6. ,  6. , 19. , 19. ,  1. ,  0.9], dtype=float32)
    """

    def __init__(self, config: MaskRCNNConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        rois, probs, deltas, image_meta, image = inputs
        detections = refine_detections(rois[0], probs[0], deltas[0], image_meta[0, 4:8],
                                       tf.shape(image)[1:3], self.config)
        return detections[tf.newaxis]

    def compute_output_shape(self, input_shape):
        return (1, self.config.DETECTION_MAX_INSTANCES, 6)


def _detection_count(detections: tf.Tensor) -> tf.Tensor:
    """Number of real detections (class > 0); they are always the leading rows."""
    return tf.reduce_sum(tf.cast(detections[0, :, 4] > 0, tf.int32))


class DetectionBoxes(layers.Layer):
    """Normalised boxes [1, max(n, 1), 4] of the n real detections, for the mask head.

    matterport ran the mask head on all DETECTION_MAX_INSTANCES rows, but rows past n are zero boxes
    whose masks nothing reads. One row is kept when n = 0 because TensorFlow's CPU convolutions
    return wrongly shaped results for an empty batch.

    Inputs: [detections [1, MAX, 6] in molded-image pixels, molded image (for its size)].

    Parameters
    ----------
    **kwargs
        Passed to `keras.layers.Layer` (the model names it "detection_boxes").

    Examples
    --------
    >>> import tensorflow as tf
    >>> detections = tf.constant([[[6, 6, 19, 19, 1, 0.9], [0, 0, 0, 0, 0, 0]]])
    >>> DetectionBoxes()([detections, tf.zeros([1, 64, 64, 3])]).numpy()
    array([[[0.09375 , 0.09375 , 0.296875, 0.296875]]], dtype=float32)
    """

    def call(self, inputs):
        detections, image = inputs
        rows = tf.maximum(_detection_count(detections), 1)
        return normalize_boxes(detections[:, :rows, :4], tf.shape(image)[1:3])

    def compute_output_shape(self, input_shape):
        return (1, None, 4)


class DetectionMasks(layers.Layer):
    """Inputs [masks [1, m, 28, 28, NC], detections]: the n real rows, zero-padded to [1, MAX, ...].

    The counterpart of `DetectionBoxes`: the mask head ran on max(n, 1) rows; this restores the
    [1, DETECTION_MAX_INSTANCES, 28, 28, NC] layout of matterport's `mrcnn_mask`.

    Parameters
    ----------
    **kwargs
        Passed to `keras.layers.Layer` (the model names it "detection_masks").

    Examples
    --------
    >>> import tensorflow as tf
    >>> detections = tf.constant([[[6, 6, 19, 19, 1, 0.9], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]])
    >>> masks = DetectionMasks()([tf.ones([1, 1, 28, 28, 2]), detections])
    >>> masks.shape, float(tf.reduce_sum(masks[0, 1:]))
    (TensorShape([1, 3, 28, 28, 2]), 0.0)
    """

    def call(self, inputs):
        masks, detections = inputs
        count = _detection_count(detections)
        padding = [[0, 0], [0, tf.shape(detections)[1] - count], [0, 0], [0, 0], [0, 0]]
        return tf.pad(masks[:, :count], padding)

    def compute_output_shape(self, input_shape):
        return (1, input_shape[1][1], *input_shape[0][2:])
