"""The five Mask R-CNN losses of matterport 53afbae and its L2 weight decay, for batch size 1.

Each returns a float32 scalar and 0 when nothing contributes (no positive anchor / ROI), as the
original's `K.switch(tf.size(loss) > 0, ...)`. They are summed with equal weights.

* rpn_class_loss: softmax cross-entropy over the anchors with match != 0 (label: match == 1).
* rpn_bbox_loss: smooth-L1 between the packed targets and the deltas predicted at the positive
  anchors (ascending anchor order), mean over all 4·P elements.
* mrcnn_class_loss: softmax cross-entropy over ALL TRAIN_ROIS_PER_IMAGE rows, the zero-padded ones
  (labelled background) included, weighted by the active classes of the predicted class.
* mrcnn_bbox_loss: smooth-L1 on the deltas of the target class of positive ROIs, mean over 4·P.
* mrcnn_mask_loss: binary cross-entropy (probabilities clipped to [1e-7, 1 - 1e-7] like Keras) on the
  target-class mask of positive ROIs, mean over P·28·28.
* weight_decay: Σ decay · mean(w²) over the trainable weights that are not BatchNorm gamma/beta
  (matterport divided Keras' l2 by the weight's size).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "mrcnn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_mask_loss",
    "rpn_bbox_loss",
    "rpn_class_loss",
    "smooth_l1",
    "weight_decay",
]

_EPS = 1e-7


def smooth_l1(y_true, y_pred) -> tf.Tensor:
    """Element-wise 0.5·d² for |d| < 1, |d| − 0.5 otherwise.

    Parameters
    ----------
    y_true, y_pred : array_like or tf.Tensor
        Targets and predictions of the same shape (cast to float32); d = |y_true − y_pred|.

    Returns
    -------
    tf.Tensor
        float32, the shape of the inputs.

    Examples
    --------
    >>> smooth_l1([0.0, 0.0, 0.0], [0.5, 1.0, 3.0]).numpy()
    array([0.125, 0.5  , 2.5  ], dtype=float32)
    """
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)


def _mean_or_zero(values) -> tf.Tensor:
    return tf.cond(tf.size(values) > 0, lambda: tf.reduce_mean(values), lambda: tf.constant(0.0))


def rpn_class_loss(rpn_match, rpn_class_logits) -> tf.Tensor:
    """RPN anchor classification loss: softmax cross-entropy over the anchors with match != 0.

    Parameters
    ----------
    rpn_match : array_like or tf.Tensor
        [A] (or [1, A]) in {-1, 0, 1}: negative, neutral (ignored), positive.
    rpn_class_logits : array_like or tf.Tensor
        [A, 2] (or [1, A, 2]) logits (background, foreground).

    Returns
    -------
    tf.Tensor
        float32 scalar: the mean over the used anchors (label: match == 1), 0 when none is used.

    Examples
    --------
    >>> round(float(rpn_class_loss([1, -1, 0], [[0.0, 0.0], [0.0, 0.0], [5.0, -5.0]])), 4)  # ln 2
    0.6931
    """
    match = tf.reshape(tf.cast(rpn_match, tf.int32), [-1])
    logits = tf.reshape(tf.cast(rpn_class_logits, tf.float32), [-1, 2])
    used = tf.where(match != 0)[:, 0]
    labels = tf.cast(tf.equal(tf.gather(match, used), 1), tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.gather(logits, used))
    return _mean_or_zero(loss)


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox) -> tf.Tensor:
    """RPN box loss: smooth-L1 between the packed targets and the deltas at the positive anchors.

    Parameters
    ----------
    target_bbox : array_like or tf.Tensor
        [T, 4] targets, one row per positive anchor in ascending anchor order, then zero padding
        (`targets.sample_rpn_targets`); a leading batch axis is allowed.
    rpn_match : array_like or tf.Tensor
        [A] anchor match in {-1, 0, 1} (batch axis optional).
    rpn_bbox : array_like or tf.Tensor
        [A, 4] predicted deltas (batch axis optional).

    Returns
    -------
    tf.Tensor
        float32 scalar: the mean over all 4·P elements of the P positive anchors, 0 when there is none.

    Examples
    --------
    >>> targets = [[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    >>> float(rpn_bbox_loss(targets, [1, 0, -1], [[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]))
    0.03125
    """
    match = tf.reshape(tf.cast(rpn_match, tf.int32), [-1])
    pred = tf.gather(tf.reshape(tf.cast(rpn_bbox, tf.float32), [-1, 4]), tf.where(match == 1)[:, 0])
    target = tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4])[: tf.shape(pred)[0]]
    return _mean_or_zero(smooth_l1(target, pred))


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids=None) -> tf.Tensor:
    """Head classification loss: softmax cross-entropy over ALL rows, zero-padded ones included.

    With `active_class_ids`, each row's loss is weighted by the activity of its predicted class and
    the sum is divided by the sum of those weights (matterport's rule).

    Parameters
    ----------
    target_class_ids : array_like or tf.Tensor
        [R] int class ids (0 = background, also for the padding rows).
    pred_class_logits : array_like or tf.Tensor
        [R, NC] class logits (batch axis optional).
    active_class_ids : array_like or tf.Tensor, optional
        [NC] 1 for the classes of the dataset, 0 otherwise; None (default) weights all rows 1.

    Returns
    -------
    tf.Tensor
        float32 scalar.

    Examples
    --------
    >>> round(float(mrcnn_class_loss([1, 0], [[0.0, 0.0], [0.0, 0.0]])), 4)  # ln 2
    0.6931
    """
    logits = tf.reshape(tf.cast(pred_class_logits, tf.float32), [-1, tf.shape(pred_class_logits)[-1]])
    labels = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if active_class_ids is None:
        return tf.reduce_mean(loss)
    active = tf.gather(tf.reshape(tf.cast(active_class_ids, tf.float32), [-1]), tf.argmax(logits, axis=1))
    return tf.reduce_sum(loss * active) / tf.reduce_sum(active)


def _positive_rows(target_class_ids):
    ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    rows = tf.cast(tf.where(ids > 0)[:, 0], tf.int32)
    return rows, tf.gather(ids, rows)


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox) -> tf.Tensor:
    """Head box loss: smooth-L1 on the deltas of the target class of the positive ROIs.

    Parameters
    ----------
    target_bbox : array_like or tf.Tensor
        [R, 4] target deltas (`targets.detection_targets`).
    target_class_ids : array_like or tf.Tensor
        [R] int class ids; rows with id > 0 are the positive ROIs.
    pred_bbox : array_like or tf.Tensor
        [R, NC, 4] predicted per-class deltas (batch axis optional).

    Returns
    -------
    tf.Tensor
        float32 scalar: the mean over 4·P elements of the P positive ROIs, 0 when there is none.

    Examples
    --------
    >>> import numpy as np
    >>> float(mrcnn_bbox_loss([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], [1, 0], np.zeros((2, 2, 4), np.float32)))
    0.125
    """
    rows, classes = _positive_rows(target_class_ids)
    target = tf.gather(tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4]), rows)
    nc = tf.shape(pred_bbox)[-2]
    pred = tf.gather_nd(tf.reshape(tf.cast(pred_bbox, tf.float32), [-1, nc, 4]), tf.stack([rows, classes], 1))
    return _mean_or_zero(smooth_l1(target, pred))


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks) -> tf.Tensor:
    """Head mask loss: binary cross-entropy on the target-class mask of the positive ROIs.

    Probabilities are clipped to [1e-7, 1 - 1e-7] like Keras' `binary_crossentropy`.

    Parameters
    ----------
    target_masks : array_like or tf.Tensor
        [R, h, w] {0, 1} mask targets (28 x 28).
    target_class_ids : array_like or tf.Tensor
        [R] int class ids; rows with id > 0 are the positive ROIs.
    pred_masks : array_like or tf.Tensor
        [R, h, w, NC] sigmoid probabilities (batch axis optional).

    Returns
    -------
    tf.Tensor
        float32 scalar: the mean over P·h·w, 0 when no ROI is positive.

    Examples
    --------
    >>> import numpy as np
    >>> pred = np.full((1, 2, 2, 2), 0.5, np.float32)
    >>> round(float(mrcnn_mask_loss(np.ones((1, 2, 2)), [1], pred)), 4)  # ln 2
    0.6931
    """
    rows, classes = _positive_rows(target_class_ids)
    shape = tf.shape(pred_masks)
    target = tf.gather(tf.reshape(tf.cast(target_masks, tf.float32), [-1, shape[-3], shape[-2]]), rows)
    pred = tf.transpose(tf.reshape(tf.cast(pred_masks, tf.float32), [-1, shape[-3], shape[-2], shape[-1]]),
                        [0, 3, 1, 2])
    pred = tf.clip_by_value(tf.gather_nd(pred, tf.stack([rows, classes], 1)), _EPS, 1.0 - _EPS)
    bce = -(target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred))
    return _mean_or_zero(bce)


def weight_decay(variables, decay: float) -> tf.Tensor:
    """Σ decay · Σ w² / size(w) over `variables` (pass them without BatchNorm gamma/beta).

    Parameters
    ----------
    variables : sequence of tf.Variable or tf.Tensor
        The weights to decay (matterport: trainable weights except BatchNorm gamma and beta).
    decay : float
        WEIGHT_DECAY (1e-4).

    Returns
    -------
    tf.Tensor
        float32 scalar, 0 for an empty list.

    Examples
    --------
    >>> import tensorflow as tf
    >>> round(float(weight_decay([tf.ones([2, 2]), tf.fill([4], 2.0)], 1e-4)), 8)  # 1e-4 · (1 + 4)
    0.0005
    """
    terms = [decay * tf.reduce_sum(tf.square(v)) / tf.cast(tf.size(v), tf.float32) for v in variables]
    return tf.add_n(terms) if terms else tf.constant(0.0)
