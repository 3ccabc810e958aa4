"""Target builders and losses of the training recipe against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from nucleaizer_tf.maskrcnn import losses as L  # noqa: E402
from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig  # noqa: E402
from nucleaizer_tf.maskrcnn.targets import (  # noqa: E402
    box_deltas,
    box_iou,
    build_rpn_targets,
    detection_targets,
    expand_mini_mask,
    gt_from_labels,
    match_anchors,
    minimize_masks,
    sample_rpn_targets,
)

SEED = tf.constant([3, 4], tf.int64)
STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


# ------------------------------------------------------------------------------------------ boxes


def test_iou_and_deltas_by_hand():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]]).numpy()
    np.testing.assert_allclose(iou, [[1.0, 25 / 175, 0.0]], rtol=1e-6)
    d = box_deltas([[0, 0, 10, 10], [0, 0, 10, 10]], [[2, 2, 12, 12], [0, 0, 20, 10]]).numpy()
    np.testing.assert_allclose(d, [[0.2, 0.2, 0, 0], [0.5, 0, math.log(2), 0]], atol=1e-6)


# ------------------------------------------------------------------------------------------ RPN


ANCHORS = np.array([
    [0, 0, 10, 10],      # IoU 1 with gt0 -> positive
    [0, 0, 10, 14],      # IoU 100/140 = 0.714 with gt0 -> positive (>= 0.7)
    [20, 20, 30, 30],    # IoU 0.64 with gt1, its best anchor -> positive
    [50, 50, 60, 60],    # no overlap -> negative
    [0, 0, 20, 20],      # IoU 0.25 with gt0 -> negative
    [0, 0, 10, 25],      # IoU 0.4 -> neutral
    [100, 100, 116, 116],  # IoU 16/256 with gt2, but gt2's best anchor -> positive
], np.float32)
GT = np.array([[0, 0, 10, 10], [22, 22, 30, 30], [100, 100, 104, 104]], np.float32)


def test_anchor_matching_by_hand():
    match, gt_index = match_anchors(ANCHORS, GT)
    assert match.numpy().tolist() == [1, 1, 1, -1, -1, 0, 1]
    assert gt_index.numpy()[[0, 1, 2, 6]].tolist() == [0, 0, 1, 2]
    match, _ = match_anchors(ANCHORS, np.zeros((0, 4), np.float32))
    assert match.numpy().tolist() == [-1] * 7  # no ground truth: every anchor is background


def test_rpn_targets_balance_and_deltas():
    cfg = MaskRCNNConfig(RPN_TRAIN_ANCHORS_PER_IMAGE=4)
    match, gt_index = match_anchors(ANCHORS, GT)
    rpn_match, rpn_bbox = sample_rpn_targets(match, gt_index, ANCHORS, GT, cfg, SEED)
    rpn_match, rpn_bbox = rpn_match.numpy(), rpn_bbox.numpy()
    positives = np.flatnonzero(rpn_match == 1)
    negatives = np.flatnonzero(rpn_match == -1)
    assert len(positives) == 2 and set(positives) <= {0, 1, 2, 6}  # at most half the budget
    assert len(negatives) == 2 and set(negatives) == {3, 4}  # the rest of the budget
    expected = box_deltas(ANCHORS[positives], GT[gt_index.numpy()[positives]]).numpy() / STD
    np.testing.assert_allclose(rpn_bbox[:2], expected, rtol=1e-5)
    np.testing.assert_array_equal(rpn_bbox[2:], 0)
    # anchor 6 -> gt2 by hand: centres 108 vs 102, size 16 vs 4
    one, bbox = build_rpn_targets(ANCHORS[6:], GT[2:], MaskRCNNConfig(), SEED)
    assert one.numpy().tolist() == [1]
    np.testing.assert_allclose(bbox.numpy()[0], [-6 / 16 / 0.1, -6 / 16 / 0.1, math.log(0.25) / 0.2,
                                                 math.log(0.25) / 0.2], rtol=1e-5)
    # same seed, same sample; the balance never keeps more than the budget
    again, _ = sample_rpn_targets(match, gt_index, ANCHORS, GT, cfg, SEED)
    np.testing.assert_array_equal(again.numpy(), rpn_match)


# ------------------------------------------------------------------------------------------ ground truth


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def test_gt_from_labels_ids_boxes_and_mini_mask_round_trip():
    labels = np.zeros((64, 80), np.int32)
    labels[_disc(labels.shape, 20, 30, 12)] = 7
    labels[40:50, 60:75] = 3  # a rectangle (fills its box)
    ids, boxes, masks = gt_from_labels(tf.constant(labels))
    assert ids.numpy().tolist() == [3, 7]  # ascending, absent ids skipped
    np.testing.assert_array_equal(boxes.numpy(), [[40, 60, 50, 75], [9, 19, 32, 42]])
    assert masks.shape == (2, 56, 56) and masks.dtype == tf.uint8
    back = expand_mini_mask(masks[1], boxes[1].numpy(), labels.shape)
    truth = labels == 7
    assert (back & truth).sum() / (back | truth).sum() > 0.9  # mini-mask round trip
    # scipy.misc.imresize byte-scaled each crop to its own range: a full box came out empty
    assert masks.numpy()[0].max() == 0
    full = minimize_masks(tf.constant(labels), tf.constant([3]), boxes[:1], legacy_constant_crop=False)
    assert full.numpy().min() == 1


# ------------------------------------------------------------------------------------------ detection targets


def test_detection_targets_by_hand():
    cfg = MaskRCNNConfig(TRAIN_ROIS_PER_IMAGE=9)  # 2 positives max, then int(2 / 0.33) - 2 = 4 negatives max
    proposals = np.array([[0, 0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0, 0, 0.5, 0.25], [0, 0, 0, 0], [0, 0, 0, 0]],
                         np.float32)
    gt_boxes = np.array([[0, 0, 0.5, 0.5]], np.float32)
    mini = np.zeros((1, 56, 56), np.uint8)
    mini[0, :, :28] = 1  # left half of the nucleus
    rois, class_ids, deltas, masks = (t.numpy() for t in detection_targets(
        proposals, np.array([1]), gt_boxes, mini, cfg, SEED))
    assert rois.shape == (9, 4) and masks.shape == (9, 28, 28)
    assert class_ids.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert {tuple(r) for r in rois[:2]} == {(0, 0, 0.5, 0.5), (0, 0, 0.5, 0.25)}  # IoU 1 and 0.5
    np.testing.assert_allclose(rois[2], [0.6, 0.6, 0.9, 0.9])  # the one negative
    np.testing.assert_array_equal(rois[3:], 0)  # zero padding (padded proposals were dropped first)
    exact = int(np.flatnonzero(rois[:2, 3] == 0.5)[0])
    np.testing.assert_allclose(deltas[exact], 0, atol=1e-6)
    half = 1 - exact
    # centre x 0.125 -> 0.25 over a width of 0.25; width x2
    np.testing.assert_allclose(deltas[half], [0, (0.25 - 0.125) / 0.25 / 0.1, 0, math.log(2) / 0.2], rtol=1e-5)
    np.testing.assert_array_equal(deltas[2:], 0)
    # ROI = GT box: the mini-mask resampled to 28 x 28, left 14 columns set (TF's crop_and_resize puts the
    # last row a rounding error past the mini-mask edge and extrapolates 0 there, as in the original graph)
    np.testing.assert_array_equal(masks[exact][:27, :14], 1)
    np.testing.assert_array_equal(masks[exact][:, 14:], 0)
    assert masks[half].mean() > 0.9  # the ROI on the left half sees mostly foreground
    np.testing.assert_array_equal(masks[2:], 0)


def test_detection_targets_without_positives_keeps_no_negatives():
    cfg = MaskRCNNConfig(TRAIN_ROIS_PER_IMAGE=8)
    proposals = np.array([[0.6, 0.6, 0.9, 0.9]], np.float32)
    rois, class_ids, _, _ = detection_targets(proposals, np.array([1]), np.array([[0, 0, 0.2, 0.2]], np.float32),
                                              np.ones((1, 56, 56), np.uint8), cfg, SEED)
    np.testing.assert_array_equal(rois.numpy(), 0)  # the 53afbae quirk: negatives follow the positive count
    np.testing.assert_array_equal(class_ids.numpy(), 0)


# ------------------------------------------------------------------------------------------ losses


def test_losses_by_hand():
    np.testing.assert_allclose(L.smooth_l1([0, 0, 0], [0, 0.5, -2]).numpy(), [0, 0.125, 1.5])
    log2 = math.log(2)
    # RPN class: two used anchors with 50/50 logits; the neutral one is ignored
    assert L.rpn_class_loss([1, -1, 0], [[0, 0], [0, 0], [5, -5]]).numpy() == pytest.approx(log2)
    assert L.rpn_class_loss([1], [[0, math.log(3)]]).numpy() == pytest.approx(-math.log(0.75), rel=1e-6)
    # RPN box: positives 1 and 2 take target rows 0 and 1 in order
    pred = [[9, 9, 9, 9], [0, 0, 0, 0], [1, 1, 1, 1], [9, 9, 9, 9]]
    target = [[0, 0, 0, 0.5], [1, 1, 3, 1], [0, 0, 0, 0]]
    assert L.rpn_bbox_loss(target, [0, 1, 1, -1], pred).numpy() == pytest.approx((0.125 + 1.5) / 8)
    assert L.rpn_bbox_loss(target, [0, 0, -1, -1], pred).numpy() == 0.0
    # class loss averages over every ROI row, padding (class 0) included
    assert L.mrcnn_class_loss([1, 0, 0], np.zeros((3, 2), np.float32), [1, 1]).numpy() == pytest.approx(log2)
    # box loss: only positive rows, only their class' deltas
    pred_bbox = np.zeros((2, 2, 4), np.float32)
    pred_bbox[0, 0] = 9
    assert L.mrcnn_bbox_loss([[0, 0, 0, 2], [5, 5, 5, 5]], [1, 0], pred_bbox).numpy() == pytest.approx(1.5 / 4)
    # mask BCE on the class channel of positives; an empty set gives 0
    pred_masks = np.zeros((2, 2, 2, 2), np.float32)
    pred_masks[0, :, :, 1] = 0.5
    target_masks = np.ones((2, 2, 2), np.float32)
    assert L.mrcnn_mask_loss(target_masks, [1, 0], pred_masks).numpy() == pytest.approx(log2, rel=1e-6)
    assert L.mrcnn_mask_loss(target_masks, [0, 0], pred_masks).numpy() == 0.0
    assert L.mrcnn_bbox_loss([[0, 0, 0, 2]], [0], pred_bbox[:1]).numpy() == 0.0
    # decay: 1e-4 * mean(w^2) per weight
    w = [tf.Variable(np.ones((2, 2), np.float32)), tf.Variable(np.full((3,), 2.0, np.float32))]
    assert L.weight_decay(w, 1e-4).numpy() == pytest.approx(1e-4 * 1 + 1e-4 * 4)


# ------------------------------------------------------------------------------------------ U-Net targets


def test_unet_soft_target_spec_example():
    from nucleaizer_tf.unet.targets import soft_target, target_fn

    labels = np.zeros((9, 9), np.uint16)
    labels[3:6, 3:6] = 5
    t1 = soft_target(labels, 1.0)
    # spec 9: middle row after the uint16-truncating Gaussian is [20, 31, 76, 151, 186, 151, 76, 31, 20];
    # then the first maximum becomes 255 and the first minimum 0
    assert t1[4].tolist() == [20, 31, 76, 151, 255, 151, 76, 31, 20]
    assert t1.dtype == np.uint8 and t1.reshape(-1)[int(np.argmin(t1))] == 0 and (t1 == 0).sum() == 1
    t0 = soft_target(labels, 0.0)
    assert t0[3].tolist() == [20, 20, 20, 255, 235, 235, 20, 20, 20] and t0[0, 0] == 0
    _, target = target_fn(tf.zeros((9, 9, 3)), tf.constant(t0.astype(np.int32)))
    assert target.shape == (9, 9, 1)
    assert float(target[4, 4, 0]) == pytest.approx(235 / 255)


def test_soft_jaccard_by_hand():
    from nucleaizer_tf.unet.train import soft_jaccard_loss

    y = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    x = np.array([1.0, 0.0, 0.5, 0.5], np.float32)
    # -(1 + 0.5) / ((1 + 0 + 1.5 + 0.5) - 1.5) = -1.5 / 2.5
    assert float(soft_jaccard_loss(y, x)) == pytest.approx(-0.6)
    assert float(soft_jaccard_loss(np.zeros(4, np.float32), np.zeros(4, np.float32))) == pytest.approx(-1.0)
