"""Mask R-CNN port: configuration, legacy layer layout, graph pieces and size-independent running.

No shared data needed; numerical parity with matterport is in test_maskrcnn_conformance.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from nucleaizer_tf.maskrcnn import (OUTPUT_NAMES, MaskRCNN, MaskRCNNConfig, detection_stage, proposal_stage,
                                    pyramid_anchors)
from nucleaizer_tf.maskrcnn.anchors import pyramid_anchors_graph
from nucleaizer_tf.maskrcnn.backbone import RESNET101_BLOCKS, BatchNorm
from nucleaizer_tf.maskrcnn.roi_align import roi_levels

# --- configuration ----------------------------------------------------------------------------


def test_config_defaults_are_nucleaizer_on_matterport_v21():
    c = MaskRCNNConfig()
    assert (c.NUM_CLASSES, c.BATCH_SIZE, c.IMAGE_META_SIZE, c.IMAGE_SHAPE) == (2, 1, 10, (1024, 1024, 3))
    assert c.BACKBONE_STRIDES == (4, 8, 16, 32, 64) and c.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert c.RPN_ANCHOR_RATIOS == (0.5, 1.0, 2.0) and c.RPN_ANCHOR_STRIDE == 1
    assert (c.RPN_NMS_THRESHOLD, c.PRE_NMS_LIMIT, c.POST_NMS_ROIS_INFERENCE, c.POST_NMS_ROIS_TRAINING) == (
        0.55, 6000, 1000, 2000)
    assert (c.POOL_SIZE, c.MASK_POOL_SIZE, c.MASK_SHAPE) == (7, 14, (28, 28))
    assert c.MEAN_PIXEL == (123.7, 116.8, 103.9)
    assert c.RPN_BBOX_STD_DEV == c.BBOX_STD_DEV == (0.1, 0.1, 0.2, 0.2)
    assert (c.DETECTION_MIN_CONFIDENCE, c.DETECTION_NMS_THRESHOLD, c.DETECTION_MAX_INSTANCES) == (0.5, 0.35, 512)
    assert (c.TRAIN_ROIS_PER_IMAGE, c.ROI_POSITIVE_RATIO, c.MAX_GT_INSTANCES) == (512, 0.33, 100)
    assert (c.USE_MINI_MASK, c.MINI_MASK_SHAPE, c.RPN_TRAIN_ANCHORS_PER_IMAGE) == (True, (56, 56), 256)
    assert (c.LEARNING_RATE, c.LEARNING_MOMENTUM, c.WEIGHT_DECAY, c.GRADIENT_CLIP_NORM) == (0.001, 0.9, 1e-4, 5.0)


@pytest.mark.parametrize("preset,conf,nms,limit", [
    (MaskRCNNConfig.presegment, 0.7, 0.35, 800),
    (MaskRCNNConfig.resegment, 0.60, 0.35, 800),
    (MaskRCNNConfig.manual_size, 0.50, 0.35, 1200),
])
def test_config_presets(preset, conf, nms, limit):
    c = preset()
    assert (c.DETECTION_MIN_CONFIDENCE, c.DETECTION_NMS_THRESHOLD, c.DETECTION_MAX_INSTANCES) == (conf, nms, limit)
    assert c.RPN_NMS_THRESHOLD == 0.55


def test_config_replace_size_and_dict_round_trip():
    c = MaskRCNNConfig.presegment().replace(NUM_CLASSES=81)
    assert c.NUM_CLASSES == 81 and c.IMAGE_META_SIZE == 89
    assert c.with_image_size(384).IMAGE_SHAPE == (384, 384, 3)
    with pytest.raises(ValueError):
        c.with_image_size(100)
    assert MaskRCNNConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="DETECTION_MIN_CONFIDANCE"):
        MaskRCNNConfig.from_dict({"DETECTION_MIN_CONFIDANCE": 0.5, "DETECTION_MIN_CONFIDANCE".replace("EN", "AN"): 1})


# --- legacy layer layout ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    return MaskRCNN(MaskRCNNConfig().replace(DETECTION_MAX_INSTANCES=100))


def _legacy_weighted_names() -> set[str]:
    names = {"conv1", "bn_conv1", "rpn_model"}
    for stage, blocks in RESNET101_BLOCKS.items():
        for letter in "abcdefghijklmnopqrstuvw"[:blocks]:
            for branch in ("2a", "2b", "2c") + (("1",) if letter == "a" else ()):
                names |= {f"res{stage}{letter}_branch{branch}", f"bn{stage}{letter}_branch{branch}"}
    names |= {f"fpn_c{i}p{i}" for i in range(2, 6)} | {f"fpn_p{i}" for i in range(2, 6)}
    names |= {"mrcnn_class_conv1", "mrcnn_class_bn1", "mrcnn_class_conv2", "mrcnn_class_bn2",
              "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask_deconv", "mrcnn_mask"}
    names |= {f"mrcnn_mask_{kind}{i}" for kind in ("conv", "bn") for i in range(1, 5)}
    return names


def _counts(model):
    weighted = [layer for layer in model.layers if layer.weights]
    return len(weighted), sum(len(layer.weights) for layer in weighted), model.count_params()


def test_legacy_layer_names_and_counts(net):
    model = net.keras_model
    assert {layer.name for layer in model.layers if layer.weights} == _legacy_weighted_names()
    assert _counts(model) == (233, 690, 63_733_406)
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 111_488


def test_legacy_counts_for_81_classes():
    model = MaskRCNN(MaskRCNNConfig().replace(NUM_CLASSES=81)).keras_model
    assert _counts(model) == (233, 690, 64_158_584)


def _shapes(layer):
    return [tuple(w.shape) for w in layer.weights]


def test_weight_shapes_and_orders(net):
    model = net.keras_model
    rpn = model.get_layer("rpn_model")
    assert [layer.name for layer in rpn.layers if layer.weights] == ["rpn_conv_shared", "rpn_class_raw",
                                                                     "rpn_bbox_pred"]
    assert _shapes(rpn) == [(3, 3, 256, 512), (512,), (1, 1, 512, 6), (6,), (1, 1, 512, 12), (12,)]
    assert _shapes(model.get_layer("conv1")) == [(7, 7, 3, 64), (64,)]
    bn = model.get_layer("bn_conv1")
    assert [w.path.split("/")[-1] for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert bn.epsilon == 1e-3
    assert _shapes(model.get_layer("res4w_branch2b")) == [(3, 3, 256, 256), (256,)]
    assert _shapes(model.get_layer("res5a_branch1")) == [(1, 1, 1024, 2048), (2048,)]
    assert _shapes(model.get_layer("mrcnn_class_conv1")) == [(7, 7, 256, 1024), (1024,)]
    assert _shapes(model.get_layer("mrcnn_class_bn2")) == [(1024,)] * 4
    assert _shapes(model.get_layer("mrcnn_class_logits")) == [(1024, 2), (2,)]
    assert _shapes(model.get_layer("mrcnn_bbox_fc")) == [(1024, 8), (8,)]
    assert _shapes(model.get_layer("mrcnn_mask_deconv")) == [(2, 2, 256, 256), (256,)]
    assert _shapes(model.get_layer("mrcnn_mask")) == [(1, 1, 256, 2), (2,)]


def test_batchnorm_ignores_training_flag():
    layer = BatchNorm()
    x = tf.random.stateless_normal([4, 3, 3, 8], seed=[1, 2]) * 5 + 2
    layer.build(x.shape)
    layer.moving_mean.assign(tf.fill([8], 0.5))
    layer.moving_variance.assign(tf.fill([8], 2.0))
    expected = (x - 0.5) / tf.sqrt(2.0 + 1e-3)
    np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-5, atol=1e-5)


# --- graph pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("size,count", [(512, 65_472), (1024, 261_888), (2048, 1_047_552)])
def test_anchor_counts(size, count):
    assert pyramid_anchors(size, MaskRCNNConfig()).shape == (count, 4)


def test_anchor_layout_and_in_graph_equality():
    config = MaskRCNNConfig()
    anchors = pyramid_anchors(128, config)
    # P2, position (0, 0), ratios 0.5 / 1 / 2 (width / height), centred on (0, 0).
    h, w = 32 / np.sqrt([0.5, 1, 2]), 32 * np.sqrt([0.5, 1, 2])
    np.testing.assert_allclose(anchors[:3], np.stack([-h / 2, -w / 2, h / 2, w / 2], 1).astype(np.float32))
    np.testing.assert_array_equal(anchors[3:6, [1, 3]] - anchors[:3, [1, 3]], 4)  # next x on P2
    for size in (128, 320):
        maps = [tf.zeros([1, size // s, size // s, 1]) for s in config.BACKBONE_STRIDES]
        np.testing.assert_array_equal(pyramid_anchors_graph(maps, config).numpy(), pyramid_anchors(size, config))


def test_roi_levels():
    area = tf.constant(1024.0 * 1024.0)
    side = np.array([0.0, 10.0, 112.0, 224.0, 448.0, 1000.0]) / 1024
    boxes = tf.constant(np.stack([np.zeros(6), np.zeros(6), side, side], 1), tf.float32)
    np.testing.assert_array_equal(roi_levels(boxes, area).numpy(), [2, 2, 3, 4, 5, 5])


def test_proposal_stage_zero_deltas_normalises_and_pads():
    config = MaskRCNNConfig().with_image_size(64).replace(POST_NMS_ROIS_INFERENCE=8)
    anchors = np.array([[0, 0, 32, 32], [40, 40, 80, 70], [1, 1, 31, 33]], np.float32)
    scores = np.array([0.2, 0.9, 0.8], np.float32)
    rpn_class = np.stack([1 - scores, scores], -1)[None]
    rois = proposal_stage(rpn_class, np.zeros([1, 3, 4], np.float32), anchors, config)
    assert rois.shape == (1, 8, 4)
    # Highest score first, clipped to the image; the third anchor overlaps the first (IoU > 0.55).
    np.testing.assert_allclose(rois[0, :2], [[40 / 64, 40 / 64, 1, 1], [1 / 64, 1 / 64, 31 / 64, 33 / 64]])
    assert not rois[0, 2:].any()


def test_detection_stage_filters_rounds_and_suppresses():
    config = MaskRCNNConfig().with_image_size(64).replace(DETECTION_MAX_INSTANCES=5,
                                                          DETECTION_MIN_CONFIDENCE=0.6)
    rois = np.array([[[0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 1.0],
                      [0.2, 0.2, 0.3, 0.3], [0.2, 0.6, 0.3, 0.7]]], np.float32)
    p1 = np.array([0.7, 0.9, 0.8, 0.3, 0.55], np.float32)  # row 3: background wins; row 4: < 0.6
    probs = np.stack([1 - p1, p1], -1)[None]
    meta = np.array([[0, 64, 64, 3, 0, 0, 64, 60, 0, 0]], np.float32)  # window clips x at 60
    det = detection_stage(rois, probs, np.zeros([1, 5, 2, 4], np.float32), meta, config)[0]
    np.testing.assert_array_equal(det[:2, :5], [[7, 6, 32, 32, 1], [38, 38, 58, 60, 1]])  # rint(7.04) = 7
    np.testing.assert_allclose(det[:2, 5], [0.9, 0.8])
    assert not det[2:].any()


# --- one model for every size -----------------------------------------------------------------


def test_run_molded_any_size_without_retracing(net):
    """Sizes 128 / 192 / 128 on one traced graph; the class-logit bias forces n = 0 or n > 0 detections."""
    outputs = ("P2", "rpn_rois", "detections", "mrcnn_mask")
    logits = net.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    rng = np.random.default_rng(0)
    counts = []
    try:
        for size, background_bias in ((128, 100.0), (192, -100.0), (128, -100.0)):
            logits.set_weights([kernel, np.array([background_bias, -background_bias], np.float32)])
            image = rng.normal(0, 50, [1, size, size, 3]).astype(np.float32)
            meta = np.array([[0, size, size, 3, 0, 0, size, size, 0, 0]], np.float32)
            out = net.run_molded(image, meta, outputs)
            assert out["P2"].shape == (1, size // 4, size // 4, 256)
            assert out["rpn_rois"].shape == (1, 1000, 4)
            assert out["detections"].shape == (1, 100, 6)
            assert out["mrcnn_mask"].shape == (1, 100, 28, 28, 2)
            n = int((out["detections"][0, :, 4] > 0).sum())
            assert not out["detections"][0, n:].any() and not out["mrcnn_mask"][0, n:].any()
            counts.append(n)
    finally:
        logits.set_weights([kernel, bias])
    assert counts[0] == 0 and counts[1] > 0 and counts[2] > 0
    assert net._function(outputs).experimental_get_tracing_count() == 1
    assert set(OUTPUT_NAMES) == set(net.keras_model.output)


@pytest.mark.parametrize("shape", [(1, 100, 100, 3), (1, 128, 192, 3), (2, 128, 128, 3), (1, 128, 128, 1)])
def test_run_molded_rejects_bad_shapes(net, shape):
    with pytest.raises(ValueError, match="square molded image"):
        net.run_molded(np.zeros(shape, np.float32), np.zeros([1, 10], np.float32))


def test_run_molded_rejects_unknown_outputs(net):
    with pytest.raises(ValueError, match="unknown outputs"):
        net.run_molded(np.zeros([1, 64, 64, 3], np.float32), np.zeros([1, 10], np.float32), ("C1",))


def test_window_conv_has_conv2d_outputs_and_gradients():
    """mrcnn_class_conv1's 7x7-on-7x7 convolution: Conv2D's forward bit for bit, its gradients (computed
    as matrix products, 2.5x faster training steps) to float rounding."""
    import keras

    from nucleaizer_tf.maskrcnn.heads import WindowConv2D

    x = tf.constant(np.random.default_rng(0).standard_normal((16, 7, 7, 32)), tf.float32)
    window = WindowConv2D(24, 7)
    window.build(x.shape)
    plain = keras.layers.Conv2D(24, 7, padding="valid")
    plain.build(x.shape)
    plain.set_weights(window.get_weights())

    def value_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    mine, reference = value_and_grads(window), value_and_grads(plain)
    assert np.array_equal(mine[0].numpy(), reference[0].numpy())
    for got, want in zip(mine[1:], reference[1:]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * np.abs(want.numpy()).max())
