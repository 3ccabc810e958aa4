"""The public Mask R-CNN API end to end (`MaskRCNN.from_legacy_h5`, `.detect`, `.segment`) against the
oracle's final results (check.md 16-17), and nucleAIzer's post-steps on hand-built detections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nucleaizer_tf.io import read_image
from nucleaizer_tf.maskrcnn import MaskRCNNConfig
from nucleaizer_tf.maskrcnn.inference import Detections, SegmentOptions, detections_to_labels
from nucleaizer_tf.maskrcnn.legacy_h5 import LegacyWeightsError
from nucleaizer_tf.maskrcnn.unmold import masks_to_labels

CASES = {"S1_04acab76_192": 192, "S2_0e4c2e27_1024": 1024, "S3_synthetic_384": 384}
ORACLE_CONFIG = MaskRCNNConfig.resegment()  # confidence 0.60, NMS 0.35, 800 instances (outputs/config.json)


@pytest.fixture(scope="module")
def model(legacy_fixture):
    from nucleaizer_tf.maskrcnn import MaskRCNN

    return MaskRCNN.from_legacy_h5(legacy_fixture.wrapped, ORACLE_CONFIG)


def _greedy_match(ref_rows, cand_rows):
    """check.md's matching: oracle rows in order, same index if it qualifies, else the nearest unused."""
    used, pairs = set(), {}
    for i, ref in enumerate(ref_rows):
        dist = np.array([np.inf if j in used else d for j, d in enumerate(np.max(np.abs(cand_rows - ref), axis=1))])
        if i < len(dist) and dist[i] <= 1:
            j = i
        elif len(dist) and dist.min() <= 1:
            j = int(dist.argmin())
        else:
            continue
        used.add(j)
        pairs[i] = j
    return pairs


@pytest.mark.parametrize("name", list(CASES))
def test_detect_and_segment_match_matterport_results(model, oracle_dir, name):
    case = json.loads((oracle_dir / "outputs" / "cases.json").read_text())["cases"][name]
    ref = np.load(oracle_dir / "outputs" / f"{name}.npz")
    image = read_image(oracle_dir / case["input"])
    # The oracle ran matterport's detect() on the converted image: no reflect padding, no dilation.
    options = SegmentOptions(image_size=CASES[name], padding=0.0, dilation=0)
    found = model.detect(image, options)
    assert found.network_size == CASES[name]

    # check 16: instances matched as a set (box within 1 px, same class, score within 1e-4)
    def rows(rois, classes, scores):
        return np.column_stack([rois, np.asarray(classes) * 1000.0, np.asarray(scores) / 1e-4])

    ref_rows = rows(ref["result_rois"], ref["result_class_ids"], ref["result_scores"])
    cand_rows = rows(found.rois, found.class_ids, found.scores)
    pairs = _greedy_match(ref_rows, cand_rows)
    assert len(pairs) >= 0.9 * max(len(ref_rows), len(cand_rows))
    h, w = image.shape[:2]
    ref_masks = np.unpackbits(ref["result_masks_packed"], axis=1)[:, : h * w].reshape(-1, h, w).astype(bool)
    cand_masks = found.masks()
    ious = []
    for i, j in pairs.items():
        a, b = ref_masks[i], cand_masks[:, :, j]
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else np.logical_and(a, b).sum() / union)
    assert np.mean(np.array(ious) >= 0.97) >= 0.95

    # check 17: the merged label image, candidate labels renumbered through the matching
    labels = model.segment(image, options)
    assert labels.dtype == np.uint16 and labels.shape == (h, w)
    lut = np.full(len(found) + 1, -1, np.int64)
    lut[0] = 0
    for i, j in pairs.items():
        lut[j + 1] = i + 1
    assert np.mean(lut[labels] == ref["result_label"]) >= 0.85


def test_from_legacy_h5_rejects_a_non_hdf5_file_before_building(tmp_path):
    from nucleaizer_tf.maskrcnn import MaskRCNN

    bad = tmp_path / "mask_rcnn_final.h5"
    bad.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(LegacyWeightsError) as err:
        MaskRCNN.from_legacy_h5(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def _detections(boxes_and_masks, shape):
    rois = np.array([b for b, _ in boxes_and_masks], np.int32).reshape(-1, 4)
    crops = [np.asarray(m, np.uint8) for _, m in boxes_and_masks]
    n = len(crops)
    return Detections(rois, np.ones(n, np.int32), np.linspace(0.9, 0.8, n, dtype=np.float32), crops, shape, 64)


def test_post_steps_dilate_overlap_rank_and_mirror_border():
    square = np.ones((2, 2), np.uint8)
    found = _detections(
        [
            ((1, 1, 3, 3), square),  # rank 1
            ((2, 3, 4, 5), square),  # rank 2: its dilation overlaps rank 1, lower score wins
            ((-3, -3, -1, -1), square),  # rank 3: wholly in the mirrored border → empty, label 3 unused
            ((5, -1, 7, 1), square),  # rank 4: half in the border, cut to the image, then dilated
        ],
        (8, 7),
    )
    expected = np.array(
        [
            [0, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 2, 2, 0, 0],
            [1, 1, 2, 2, 2, 2, 0],
            [0, 1, 2, 2, 2, 2, 0],
            [4, 0, 0, 2, 2, 0, 0],
            [4, 4, 0, 0, 0, 0, 0],
            [4, 4, 0, 0, 0, 0, 0],
            [4, 0, 0, 0, 0, 0, 0],
        ],
        np.uint16,
    )
    assert detections_to_labels(found, SegmentOptions(dilation=1)).tolist() == expected.tolist()
    undilated = detections_to_labels(found, SegmentOptions(dilation=0))
    assert undilated[2].tolist() == [0, 1, 1, 2, 2, 0, 0]  # rows 1-2 of rank 1 touch rank 2 only dilated
    assert set(np.unique(undilated)) == {0, 1, 2, 4}
    # the same through the whole-image path used by the oracle checks
    assert np.array_equal(masks_to_labels(found.masks()[..., :], image_shape=(8, 7), dilation=1), expected)


def test_fill_holes_switch_and_empty_image():
    ring = np.ones((5, 5), np.uint8)
    ring[2, 2] = 0
    found = _detections([((0, 0, 5, 5), ring)], (6, 6))
    assert detections_to_labels(found, SegmentOptions(dilation=0))[2, 2] == 0  # faithful: Q1 no-op
    assert detections_to_labels(found, SegmentOptions(dilation=0, fill_holes=True))[2, 2] == 1
    empty = _detections([], (4, 4))
    labels = detections_to_labels(empty, SegmentOptions())
    assert labels.shape == (4, 4) and labels.max() == 0  # the original wrote no file; we write zeros


def test_network_size_rules():
    assert SegmentOptions(image_size=1000).network_size(256, 320) == 1024
    assert SegmentOptions(image_size=1025).network_size(256, 320) == 1088
    # manual size (spec 2.7): 40 / (20 / 2) * (256 + 320) / 2 = 1152 → 18 * 64
    assert SegmentOptions(nucleus_size=20).network_size(256, 320) == 1152
    assert SegmentOptions(nucleus_size=400).network_size(256, 256) == 128  # clamped to [128, 4096]
