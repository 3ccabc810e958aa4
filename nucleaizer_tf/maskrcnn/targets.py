"""Training targets of matterport Mask R-CNN 53afbae (v2.1), built with TensorFlow ops only.

Three groups, in the order the original computed them:

* Ground truth from a label image (`gt_from_labels`): one instance per label id present (ascending
  id, absent ids dropped), its tight pixel box (y1, x1, y2 + 1, x2 + 1) and its 56×56 mini-mask
  (`minimize_masks`). Runs inside the tf.data map, after the flip.
* RPN targets: `match_anchors` (IoU < 0.3 negative, >= 0.7 positive, plus each ground truth's best
  anchor) in the data map, then `sample_rpn_targets` (at most 128 positives, 256 anchors in all, box
  deltas of the kept positives) in the training step, where a per-step seed is available.
  `build_rpn_targets` chains the two (matterport's function of the same name).
* Detection targets (`detection_targets`): 512 ROIs per image from the proposals, at most 33 %
  positive (IoU >= 0.5), class ids, box deltas / BBOX_STD_DEV and 28×28 mask targets cut from the
  mini-masks, zero-padded as the original's DetectionTargetLayer did.

Randomness is stateless (`seed`: shape-[2] int tensor), so a step is reproducible.

Faithful details worth knowing: boxes and IoUs have no "+1"; IoU ties pick the first index; the RPN
keeps one best anchor per ground truth (53afbae's argmax, not all ties); zero-padded proposals are
dropped before matching; when no proposal is positive no negatives are kept either (the count is
derived from the positives), so the heads then see 512 zero ROIs labelled background. The mini-mask
resize reproduces `scipy.misc.imresize(float mask, bilinear) >= 128`, including its min–max byte
scaling: an instance that fills its box completely gets an empty mini-mask (set
`legacy_constant_crop=False` to keep it full).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig

__all__ = [
    "box_deltas",
    "box_iou",
    "build_rpn_targets",
    "detection_targets",
    "expand_mini_mask",
    "gt_from_labels",
    "match_anchors",
    "minimize_masks",
    "sample_rpn_targets",
    "trim_zero_rows",
]


def box_iou(boxes1, boxes2) -> tf.Tensor:
    """[N, M] IoU of (y1, x1, y2, x2) boxes, no "+1" (matterport's `compute_overlaps`/`overlaps_graph`).

    Parameters
    ----------
    boxes1 : array_like or tf.Tensor
        [N, 4] boxes (cast to float32).
    boxes2 : array_like or tf.Tensor
        [M, 4] boxes in the same unit.

    Returns
    -------
    tf.Tensor
        float32 [N, M] intersection over union.

    Examples
    --------
    >>> box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).numpy()
    array([[1.        , 0.33333334, 0.        ]], dtype=float32)
    """
    b1 = tf.cast(boxes1, tf.float32)[:, None, :]
    b2 = tf.cast(boxes2, tf.float32)[None, :, :]
    h = tf.maximum(tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0]), 0.0)
    w = tf.maximum(tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1]), 0.0)
    inter = h * w
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return inter / (area1 + area2 - inter)


def box_deltas(boxes, gt_boxes) -> tf.Tensor:
    """(dy, dx, log dh, log dw) that turn `boxes` [N, 4] into `gt_boxes` [N, 4] (centre/size form).

    The inverse of `proposal.apply_box_deltas`; not divided by any std dev.

    Parameters
    ----------
    boxes : array_like or tf.Tensor
        [N, 4] boxes (y1, x1, y2, x2), e.g. anchors or ROIs.
    gt_boxes : array_like or tf.Tensor
        [N, 4] the ground-truth box of each, in the same unit.

    Returns
    -------
    tf.Tensor
        float32 [N, 4]: dy = (gcy - cy) / h, dx = (gcx - cx) / w, log(gh / h), log(gw / w).

    Examples
    --------
    >>> box_deltas([[0, 0, 10, 10]], [[0, 0, 20, 10]]).numpy()
    array([[0.5      , 0.       , 0.6931472, 0.       ]], dtype=float32)
    """
    boxes = tf.cast(boxes, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + 0.5 * h
    cx = boxes[:, 1] + 0.5 * w
    gh = gt_boxes[:, 2] - gt_boxes[:, 0]
    gw = gt_boxes[:, 3] - gt_boxes[:, 1]
    gcy = gt_boxes[:, 0] + 0.5 * gh
    gcx = gt_boxes[:, 1] + 0.5 * gw
    return tf.stack([(gcy - cy) / h, (gcx - cx) / w, tf.math.log(gh / h), tf.math.log(gw / w)], axis=1)


def trim_zero_rows(boxes) -> tuple[tf.Tensor, tf.Tensor]:
    """Drop all-zero rows (padding) of [N, 4]; returns (boxes, keep mask).

    Parameters
    ----------
    boxes : tf.Tensor
        [N, 4] boxes, zero rows being padding.

    Returns
    -------
    boxes : tf.Tensor
        [K, 4] the rows that are not all zero.
    keep : tf.Tensor
        bool [N], True for the kept rows.

    Examples
    --------
    >>> import tensorflow as tf
    >>> boxes, keep = trim_zero_rows(tf.constant([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    >>> boxes.numpy(), keep.numpy()
    (array([[1., 2., 3., 4.]], dtype=float32), array([ True, False]))
    """
    keep = tf.reduce_sum(tf.abs(boxes), axis=1) > 0
    return tf.boolean_mask(boxes, keep), keep


# ------------------------------------------------------------------------------------------ ground truth


def minimize_masks(labels, ids, boxes, mini_shape=(56, 56), *, legacy_constant_crop: bool = True) -> tf.Tensor:
    """[G, h, w] uint8 {0, 1} mini-masks: each instance's box crop of `labels == id`, resized to `mini_shape`.

    Bilinear with antialiasing when shrinking (what Pillow did for `scipy.misc.imresize`), threshold at
    half height. `legacy_constant_crop`: imresize byte-scaled a float mask to its own min..max, so a
    crop that is all foreground came out all zero; True reproduces that.

    Parameters
    ----------
    labels : array_like or tf.Tensor
        [H, W] int label image.
    ids : array_like or tf.Tensor
        [G] label ids of the instances.
    boxes : array_like or tf.Tensor
        [G, 4] pixel boxes (y1, x1, y2, x2), y2/x2 exclusive (as `gt_from_labels` gives them).
    mini_shape : tuple of int
        (h, w) of the mini-masks, MINI_MASK_SHAPE (56, 56).
    legacy_constant_crop : bool
        True (faithful): a crop that is all foreground gives an all-zero mini-mask.

    Returns
    -------
    tf.Tensor
        uint8 [G, h, w] {0, 1}.

    Examples
    --------
    >>> labels = np.zeros((8, 8), np.int32)
    >>> labels[1:4, 1:5] = 3  # fills its box completely
    >>> int(minimize_masks(labels, [3], [[1, 1, 4, 5]], (4, 4)).numpy().sum())  # the legacy empty mini-mask
    0
    >>> int(minimize_masks(labels, [3], [[1, 1, 4, 5]], (4, 4), legacy_constant_crop=False).numpy().sum())
    16
    """
    labels = tf.convert_to_tensor(labels)
    ibox = tf.cast(boxes, tf.int32)

    def one(args):
        label_id, box = args
        crop = tf.cast(tf.equal(labels[box[0]:box[2], box[1]:box[3]], label_id), tf.float32)[..., None]
        resized = tf.image.resize(crop, mini_shape, method="bilinear", antialias=True)[..., 0]
        mini = tf.cast(resized >= 0.5, tf.uint8)
        if legacy_constant_crop:
            mini = tf.where(tf.reduce_min(crop) == tf.reduce_max(crop), tf.zeros_like(mini), mini)
        return mini

    return tf.map_fn(one, (tf.cast(ids, labels.dtype), ibox),
                     fn_output_signature=tf.TensorSpec(list(mini_shape), tf.uint8))


def gt_from_labels(labels, mini_shape=(56, 56), *, legacy_constant_crop: bool = True):
    """Instances of an int label image [H, W] (0 = background): (ids [G], boxes [G, 4] float32 pixels,
    mini-masks [G, h, w] uint8), in ascending id order, ids absent from the image skipped.

    Each box is the tight pixel box (y1, x1, y2 + 1, x2 + 1) of its instance; the mini-masks come
    from `minimize_masks`.

    Parameters
    ----------
    labels : array_like or tf.Tensor
        [H, W] int label image, 0 = background.
    mini_shape : tuple of int
        (h, w) of the mini-masks, MINI_MASK_SHAPE (56, 56).
    legacy_constant_crop : bool
        Passed to `minimize_masks` (True: faithful).

    Returns
    -------
    ids : tf.Tensor
        [G] label ids, ascending, in the dtype of `labels`.
    boxes : tf.Tensor
        float32 [G, 4] pixel boxes.
    masks : tf.Tensor
        uint8 [G, h, w] {0, 1} mini-masks.

    Examples
    --------
    >>> labels = np.zeros((8, 8), np.int32)
    >>> labels[1:4, 1:5] = 3
    >>> labels[5:7, 5:8] = 7
    >>> ids, boxes, masks = gt_from_labels(labels, (4, 4))
    >>> ids.numpy(), boxes.numpy(), masks.shape
    (array([3, 7], dtype=int32), array([[1., 1., 4., 5.],
           [5., 5., 7., 8.]], dtype=float32), TensorShape([2, 4, 4]))
    """
    labels = tf.convert_to_tensor(labels)
    where = tf.where(labels > 0)
    values = tf.gather_nd(labels, where)
    ids = tf.sort(tf.unique(values)[0])
    segment = tf.searchsorted(ids, values)
    n = tf.shape(ids)[0]
    y, x = where[:, 0], where[:, 1]
    boxes = tf.stack([tf.math.unsorted_segment_min(y, segment, n), tf.math.unsorted_segment_min(x, segment, n),
                      tf.math.unsorted_segment_max(y, segment, n) + 1,
                      tf.math.unsorted_segment_max(x, segment, n) + 1], axis=1)
    boxes = tf.cast(boxes, tf.float32)
    masks = minimize_masks(labels, ids, boxes, mini_shape, legacy_constant_crop=legacy_constant_crop)
    return ids, boxes, masks


def expand_mini_mask(mini_mask, box, image_shape) -> np.ndarray:
    """Inverse of the mini-mask (for checks and visualisation): paste a [h, w] mini-mask back into a
    bool image of `image_shape` at pixel `box` (y1, x1, y2, x2) with bilinear resizing, threshold 0.5.

    Parameters
    ----------
    mini_mask : array_like
        [h, w] {0, 1} mini-mask.
    box : sequence of int
        Pixel box (y1, x1, y2, x2), y2/x2 exclusive.
    image_shape : sequence of int
        Shape of the output image; only (H, W) is used.

    Returns
    -------
    numpy.ndarray
        bool [H, W], True inside the pasted mask.

    Examples
    --------
    >>> mask = expand_mini_mask(np.ones((4, 4), np.uint8), (1, 1, 4, 5), (8, 8))
    >>> mask.shape, int(mask.sum())
    ((8, 8), 12)
    """
    y1, x1, y2, x2 = (int(v) for v in box)
    m = tf.image.resize(tf.cast(tf.convert_to_tensor(mini_mask), tf.float32)[..., None], (y2 - y1, x2 - x1),
                        method="bilinear", antialias=True)[..., 0].numpy()
    out = np.zeros(image_shape[:2], bool)
    out[y1:y2, x1:x2] = m >= 0.5
    return out


# ------------------------------------------------------------------------------------------ RPN


def match_anchors(anchors, gt_boxes) -> tuple[tf.Tensor, tf.Tensor]:
    """Unbalanced RPN match of [A, 4] anchors to [G, 4] boxes (both pixels): (match [A] int32 in
    {-1, 0, 1}, index of each anchor's best ground truth [A] int32).

    -1 where the best IoU < 0.3; then +1 at every ground truth's best anchor (first on ties, even
    below 0.3); then +1 where the best IoU >= 0.7. No ground truth: everything negative.

    Parameters
    ----------
    anchors : array_like or tf.Tensor
        [A, 4] anchors in pixels.
    gt_boxes : array_like or tf.Tensor
        [G, 4] ground-truth boxes in pixels (G may be 0).

    Returns
    -------
    match : tf.Tensor
        int32 [A] in {-1, 0, 1}: negative, neutral, positive.
    gt_index : tf.Tensor
        int32 [A] index of each anchor's best ground truth (0 when there is none).

    Examples
    --------
    >>> anchors = np.array([[0, 0, 10, 10], [0, 0, 9, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    >>> gt = np.array([[0, 0, 10, 10], [21, 21, 31, 31]], np.float32)
    >>> match, gt_index = match_anchors(anchors, gt)  # anchor 2: IoU 0.68, but gt 1's best anchor
    >>> match.numpy(), gt_index.numpy()
    (array([ 1,  1,  1, -1], dtype=int32), array([0, 0, 1, 0], dtype=int32))
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    n_anchors = tf.shape(anchors)[0]

    def matched():
        iou = box_iou(anchors, gt_boxes)
        best_gt = tf.argmax(iou, axis=1, output_type=tf.int32)
        best_iou = tf.reduce_max(iou, axis=1)
        match = tf.where(best_iou < 0.3, -1, 0)
        best_anchor = tf.argmax(iou, axis=0, output_type=tf.int32)
        match = tf.tensor_scatter_nd_update(match, best_anchor[:, None], tf.ones_like(best_anchor))
        match = tf.where(best_iou >= 0.7, 1, match)
        return match, best_gt

    def empty():
        return -tf.ones([n_anchors], tf.int32), tf.zeros([n_anchors], tf.int32)

    return tf.cond(tf.shape(gt_boxes)[0] > 0, matched, empty)


def _random_subset(indices, count, seed):
    """`count` of `indices` (or all), drawn without replacement with a stateless seed, ascending."""
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(indices), seed))
    return tf.sort(tf.gather(indices, order)[:count])


def sample_rpn_targets(match, gt_index, anchors, gt_boxes, config: MaskRCNNConfig, seed):
    """Balance a `match_anchors` result and compute the RPN box targets (matterport's second half).

    Positives above RPN_TRAIN_ANCHORS_PER_IMAGE // 2 and negatives above the remaining budget are
    reset to neutral at random. Returns (rpn_match [A] int32, rpn_bbox [RPN_TRAIN_ANCHORS_PER_IMAGE, 4]
    float32): deltas of the kept positive anchors in ascending anchor order, / RPN_BBOX_STD_DEV, zero
    rows after them.

    Parameters
    ----------
    match : array_like or tf.Tensor
        int [A] unbalanced match of `match_anchors`.
    gt_index : tf.Tensor
        int32 [A] best ground truth of each anchor (`match_anchors`).
    anchors : tf.Tensor
        float32 [A, 4] anchors in pixels.
    gt_boxes : tf.Tensor
        float32 [G, 4] ground-truth boxes in pixels.
    config : MaskRCNNConfig
        Gives RPN_TRAIN_ANCHORS_PER_IMAGE (256) and RPN_BBOX_STD_DEV.
    seed : array_like or tf.Tensor
        Shape-[2] int stateless seed.

    Returns
    -------
    rpn_match : tf.Tensor
        int32 [A] balanced match in {-1, 0, 1}.
    rpn_bbox : tf.Tensor
        float32 [RPN_TRAIN_ANCHORS_PER_IMAGE, 4] box targets.

    Examples
    --------
    >>> anchors = np.array([[0, 0, 10, 10], [0, 0, 9, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    >>> gt = np.array([[0, 0, 10, 10], [21, 21, 31, 31]], np.float32)
    >>> match, gt_index = match_anchors(anchors, gt)
    >>> rpn_match, rpn_bbox = sample_rpn_targets(match, gt_index, anchors, gt, MaskRCNNConfig(), [1, 2])
    >>> rpn_match.numpy(), rpn_bbox.shape  # within the budget of 256: nothing is reset
    (array([ 1,  1,  1, -1], dtype=int32), TensorShape([256, 4]))
    >>> rpn_bbox.numpy()[:4].round(4)
    array([[0.    , 0.    , 0.    , 0.    ],
           [0.5556, 0.    , 0.5268, 0.    ],
           [1.    , 1.    , 0.    , 0.    ],
           [0.    , 0.    , 0.    , 0.    ]], dtype=float32)
    """
    total = config.RPN_TRAIN_ANCHORS_PER_IMAGE
    seed = tf.convert_to_tensor(seed)
    pos_seed, neg_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    match = tf.convert_to_tensor(match, tf.int32)
    positives = _random_subset(tf.where(match == 1)[:, 0], total // 2, pos_seed)
    negatives = _random_subset(tf.where(match == -1)[:, 0], total - tf.shape(positives)[0], neg_seed)
    balanced = tf.zeros_like(match)
    balanced = tf.tensor_scatter_nd_update(balanced, positives[:, None], tf.ones_like(positives, tf.int32))
    balanced = tf.tensor_scatter_nd_update(balanced, negatives[:, None], -tf.ones_like(negatives, tf.int32))
    targets = box_deltas(tf.gather(anchors, positives), tf.gather(gt_boxes, tf.gather(gt_index, positives)))
    targets = targets / np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    targets = tf.pad(targets, [[0, total - tf.shape(targets)[0]], [0, 0]])
    return balanced, tf.ensure_shape(targets, [total, 4])


def build_rpn_targets(anchors, gt_boxes, config: MaskRCNNConfig, seed):
    """matterport `build_rpn_targets`: (rpn_match [A], rpn_bbox [256, 4]) for pixel anchors and boxes.

    `match_anchors` followed by `sample_rpn_targets`.

    Parameters
    ----------
    anchors : array_like or tf.Tensor
        [A, 4] anchors in pixels.
    gt_boxes : array_like or tf.Tensor
        [G, 4] ground-truth boxes in pixels.
    config : MaskRCNNConfig
        Gives RPN_TRAIN_ANCHORS_PER_IMAGE and RPN_BBOX_STD_DEV.
    seed : array_like or tf.Tensor
        Shape-[2] int stateless seed.

    Returns
    -------
    rpn_match : tf.Tensor
        int32 [A] in {-1, 0, 1}.
    rpn_bbox : tf.Tensor
        float32 [RPN_TRAIN_ANCHORS_PER_IMAGE, 4].

    Examples
    --------
    >>> anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    >>> rpn_match, rpn_bbox = build_rpn_targets(anchors, [[0, 0, 10, 10]], MaskRCNNConfig(), [1, 2])
    >>> rpn_match.numpy(), rpn_bbox.shape
    (array([ 1, -1, -1], dtype=int32), TensorShape([256, 4]))
    """
    match, gt_index = match_anchors(anchors, gt_boxes)
    return sample_rpn_targets(match, gt_index, tf.convert_to_tensor(anchors, tf.float32),
                              tf.convert_to_tensor(gt_boxes, tf.float32), config, seed)


# ------------------------------------------------------------------------------------------ detection


def detection_targets(proposals, gt_class_ids, gt_boxes, gt_masks, config: MaskRCNNConfig, seed):
    """matterport `detection_targets_graph` for one image.

    Proposals with IoU >= 0.5 to a ground truth are positive (at most
    int(TRAIN_ROIS_PER_IMAGE · ROI_POSITIVE_RATIO), drawn at random), the others negative; the number of
    negatives follows from the positives (int(positives / ROI_POSITIVE_RATIO) - positives), so no
    positive means no negative. Positive rows get their best ground truth's class id, its box deltas
    / BBOX_STD_DEV and a MASK_SHAPE mask cut from its mini-mask (USE_MINI_MASK).

    Parameters
    ----------
    proposals : array_like or tf.Tensor
        [N, 4] normalised proposals (zero rows = padding, dropped first).
    gt_class_ids : array_like or tf.Tensor
        [G] int class ids.
    gt_boxes : array_like or tf.Tensor
        [G, 4] normalised ground-truth boxes.
    gt_masks : array_like or tf.Tensor
        [G, h, w] mini-masks (any numeric dtype).
    config : MaskRCNNConfig
        Gives TRAIN_ROIS_PER_IMAGE, ROI_POSITIVE_RATIO, BBOX_STD_DEV, USE_MINI_MASK and MASK_SHAPE.
    seed : array_like or tf.Tensor
        Shape-[2] int stateless seed.

    Returns
    -------
    rois : tf.Tensor
        float32 [R, 4] normalised, R = TRAIN_ROIS_PER_IMAGE; positive rows first, then negatives,
        then zero padding.
    class_ids : tf.Tensor
        int32 [R], 0 for negatives and padding.
    deltas : tf.Tensor
        float32 [R, 4].
    masks : tf.Tensor
        float32 [R, 28, 28] {0, 1}.

    Examples
    --------
    >>> config = MaskRCNNConfig(TRAIN_ROIS_PER_IMAGE=6)
    >>> proposals = np.array([[0, 0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]], np.float32)
    >>> rois, class_ids, deltas, masks = detection_targets(proposals, [1], [[0, 0, 0.5, 0.5]],
    ...                                                    np.ones((1, 56, 56), np.uint8), config, [3, 4])
    >>> rois.numpy()[:3], class_ids.numpy(), masks.shape
    (array([[0. , 0. , 0.5, 0.5],
           [0.6, 0.6, 0.9, 0.9],
           [0. , 0. , 0. , 0. ]], dtype=float32), array([1, 0, 0, 0, 0, 0], dtype=int32), TensorShape([6, 28, 28]))
    """
    rois_per_image = config.TRAIN_ROIS_PER_IMAGE
    seed = tf.convert_to_tensor(seed)
    pos_seed, neg_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    proposals, _ = trim_zero_rows(tf.convert_to_tensor(proposals, tf.float32))
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)

    overlaps = box_iou(proposals, gt_boxes)
    has_gt = tf.shape(gt_boxes)[0] > 0
    roi_iou_max = tf.cond(has_gt, lambda: tf.reduce_max(overlaps, axis=1),
                          lambda: tf.zeros(tf.shape(proposals)[:1], tf.float32))
    positive = tf.where(roi_iou_max >= 0.5)[:, 0]
    negative = tf.where(roi_iou_max < 0.5)[:, 0]

    positive_count = int(rois_per_image * config.ROI_POSITIVE_RATIO)
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(positive), pos_seed))
    positive = tf.gather(positive, order)[:positive_count]
    n_pos = tf.shape(positive)[0]
    ratio = 1.0 / config.ROI_POSITIVE_RATIO
    negative_count = tf.cast(ratio * tf.cast(n_pos, tf.float32), tf.int32) - n_pos
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(negative), neg_seed))
    negative = tf.gather(negative, order)[:negative_count]

    positive_rois = tf.gather(proposals, positive)
    negative_rois = tf.gather(proposals, negative)
    assignment = tf.cond(has_gt, lambda: tf.argmax(tf.gather(overlaps, positive), axis=1, output_type=tf.int32),
                         lambda: tf.zeros([0], tf.int32))
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    roi_class_ids = tf.gather(gt_class_ids, assignment)
    deltas = box_deltas(positive_rois, roi_gt_boxes) / np.asarray(config.BBOX_STD_DEV, np.float32)

    boxes = positive_rois
    if config.USE_MINI_MASK:  # ROI in the mini-mask's normalised frame (the box of its ground truth)
        gh = roi_gt_boxes[:, 2] - roi_gt_boxes[:, 0]
        gw = roi_gt_boxes[:, 3] - roi_gt_boxes[:, 1]
        boxes = tf.stack([(boxes[:, 0] - roi_gt_boxes[:, 0]) / gh, (boxes[:, 1] - roi_gt_boxes[:, 1]) / gw,
                          (boxes[:, 2] - roi_gt_boxes[:, 0]) / gh, (boxes[:, 3] - roi_gt_boxes[:, 1]) / gw], axis=1)
    masks = tf.cast(tf.convert_to_tensor(gt_masks), tf.float32)[..., None]
    masks = tf.image.crop_and_resize(masks, boxes, assignment, list(config.MASK_SHAPE), method="bilinear")
    masks = tf.round(masks[..., 0])

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    n_neg = tf.shape(negative_rois)[0]
    pad = tf.maximum(rois_per_image - tf.shape(rois)[0], 0)
    rois = tf.pad(rois, [[0, pad], [0, 0]])
    roi_class_ids = tf.pad(roi_class_ids, [[0, n_neg + pad]])
    deltas = tf.pad(deltas, [[0, n_neg + pad], [0, 0]])
    masks = tf.pad(masks, [[0, n_neg + pad], [0, 0], [0, 0]])
    mh, mw = config.MASK_SHAPE
    return (tf.ensure_shape(rois, [rois_per_image, 4]), tf.ensure_shape(roi_class_ids, [rois_per_image]),
            tf.ensure_shape(deltas, [rois_per_image, 4]), tf.ensure_shape(masks, [rois_per_image, mh, mw]))
