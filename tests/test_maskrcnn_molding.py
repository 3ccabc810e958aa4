"""Pre- and post-processing around the Mask R-CNN: exact against the oracle (check.md checks 2, 3, 11) and
hand-built cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nucleaizer_tf.maskrcnn.molding import (
    image_meta,
    manual_network_size,
    mold,
    reflect_pad,
    resize_for_model,
    round_size_up,
)
from nucleaizer_tf.maskrcnn.unmold import (
    box_masks_to_labels,
    masks_to_labels,
    unmold_box_masks,
    unmold_detections,
    unmold_mask,
)

MEAN_PIXEL = (123.7, 116.8, 103.9)
CASES = ["S1_04acab76_192", "S2_0e4c2e27_1024", "S3_synthetic_384"]


# --------------------------------------------------------------------------------------------- sizes


def test_reflect_pad_sizes_and_values():
    img = np.arange(256 * 320 * 3, dtype=np.uint32).reshape(256, 320, 3)
    padded, (py, px) = reflect_pad(img, 0.05)
    assert (py, px) == (12, 16) and padded.shape == (280, 352, 3)
    assert np.array_equal(padded[12:268, 16:336], img)
    assert np.array_equal(padded[11, 16:336], img[1])  # mirror without repeating the edge row
    assert np.array_equal(padded[12:268, 15], img[:, 1])
    sq, pads = reflect_pad(np.zeros((360, 360), np.uint8), 0.05)
    assert pads == (18, 18) and sq.shape == (396, 396)
    odd, pads = reflect_pad(np.zeros((39, 41, 3), np.uint8), 0.05)  # truncation: int(1.95) = 1, int(2.05) = 2
    assert pads == (1, 2) and odd.shape == (41, 45, 3)
    same, pads = reflect_pad(img, 0)
    assert pads == (0, 0) and same is img


def test_round_size_up():
    assert [round_size_up(v) for v in (1000, 1024, 1025, 1000.9, 1024.5, 64, 1, 0, -5)] == [
        1024, 1024, 1088, 1024, 1024, 64, 64, 64, 64]
    with pytest.raises(ValueError):
        round_size_up(float("nan"))


def test_manual_network_size():
    # (40 / (20/2)) * (256+320)/2 = 1152 -> 18 * 64
    assert manual_network_size(256, 320, 20) == 1152
    # 4 * 300 = 1200 -> 1200/64 = 18.75 -> 19 * 64 = 1216
    assert manual_network_size(300, 300, 20) == 1216
    # 4 * 288 = 1152... use half-way: resizeTo/64 = 2.5 -> round half to even = 2 -> 128; 3.5 -> 4 -> 256
    assert manual_network_size(80, 80, 40) == 128   # resizeTo = 160, 160/64 = 2.5 -> 2
    assert manual_network_size(112, 112, 40) == 256  # 224/64 = 3.5 -> 4
    assert manual_network_size(10, 10, 40) == 128    # clamped up
    assert manual_network_size(5000, 5000, 10) == 4096  # clamped down
    assert manual_network_size(5000, 5000, 10, max_size=2048) == 2048


def test_resize_rules_synthetic():
    img = np.full((100, 50, 3), 7, np.uint8)
    out, window, scale, padding = resize_for_model(img, 256)  # upscale x2.56 -> 256 x 128
    assert scale == 2.56 and out.shape == (256, 256, 3) and window == (0, 64, 256, 192)
    assert padding == [(0, 0), (64, 64), (0, 0)]
    assert (out[:, 64:192] == 7).all() and (out[:, :64] == 0).all() and (out[:, 192:] == 0).all()
    out, window, scale, _ = resize_for_model(np.zeros((64, 64, 3), np.uint8), 64)
    assert scale == 1.0 and isinstance(scale, float) and window == (0, 0, 64, 64)
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((10, 10), np.uint8), 64)


def test_image_meta_and_mold():
    meta = image_meta((256, 320, 3), (102, 0, 921, 1024), 2)
    assert meta.dtype == np.int64 and meta.tolist() == [0, 256, 320, 3, 102, 0, 921, 1024, 0, 0]
    img = np.array([[[0, 128, 255]]], np.uint8)
    m = mold(img, MEAN_PIXEL)
    assert m.dtype == np.float32
    assert m.tolist() == [[[np.float32(0 - 123.7), np.float32(128 - 116.8), np.float32(255 - 103.9)]]]


# --------------------------------------------------------------------------------------------- oracle


@pytest.fixture(scope="module")
def oracle(oracle_dir):
    cases = json.loads((oracle_dir / "outputs" / "cases.json").read_text())["cases"]
    out = {}
    for name in CASES:
        with np.load(oracle_dir / "outputs" / f"{name}.npz") as z:
            out[name] = ({k: z[k] for k in z.files}, cases[name], oracle_dir / cases[name]["input"])
    return out


def _input_rgb(path) -> np.ndarray:
    try:
        from nucleaizer_tf.io import read_image, to_rgb8
    except ImportError:  # before the io module existed: the same conversion with Pillow
        from PIL import Image

        a = np.asarray(Image.open(path))
        a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]
        return a.astype(np.uint8)
    return to_rgb8(read_image(path), mode="nucleaizer")


@pytest.mark.parametrize("case", CASES)
def test_preprocessing_matches_oracle(oracle, case):
    """check.md 2 (exact) and 3 (molding exact)."""
    ref, info, path = oracle[case]
    image = _input_rgb(path)
    assert np.array_equal(image, ref["image"])
    size = info["IMAGE_MIN_DIM=IMAGE_MAX_DIM"]
    resized, window, scale, padding = resize_for_model(image, size)
    assert resized.dtype == np.uint8 and np.array_equal(resized, ref["resized_image"])
    assert list(window) == ref["window"].tolist()
    assert scale == float(ref["scale"])
    assert [list(p) for p in padding] == ref["padding"].tolist()
    meta = image_meta(image.shape, window, 2)
    assert np.array_equal(meta, ref["image_meta"][0]) and meta.shape == (10,)
    molded = mold(resized, MEAN_PIXEL)
    expected = (ref["resized_image"].astype(np.float32) - np.array(MEAN_PIXEL)).astype(np.float32)
    assert molded.dtype == np.float32 and molded.tobytes() == expected.tobytes()


@pytest.mark.parametrize("case", CASES)
def test_unmold_matches_oracle(oracle, case):
    """check.md 11: unmold_detections on the oracle's detections and masks, bit-exact."""
    ref, _, _ = oracle[case]
    det = ref["detections"][0]
    n = int(ref["num_detections"])
    masks = np.zeros((det.shape[0], 28, 28, 2), np.float32)
    masks[:n] = ref["mrcnn_mask_valid"]
    shape = ref["image"].shape
    rois, class_ids, scores, full = unmold_detections(det, masks, shape, ref["window"])
    assert rois.dtype == np.int32 and np.array_equal(rois, ref["result_rois"])
    assert class_ids.dtype == np.int32 and np.array_equal(class_ids, ref["result_class_ids"])
    assert scores.dtype == np.float32 and scores.tobytes() == ref["result_scores"].tobytes()
    assert full.dtype == np.uint8 and list(full.shape) == ref["result_masks_shape"].tolist()
    k = full.shape[2]
    packed = np.packbits(full.astype(bool).transpose(2, 0, 1).reshape(k, -1), axis=1)
    assert np.array_equal(packed, ref["result_masks_packed"])
    # the compact variant gives the same masks
    rois2, _, _, crops = unmold_box_masks(det[None], masks[None], shape, ref["window"])
    assert np.array_equal(rois2, rois)
    for i, (r, c) in enumerate(zip(rois, crops)):
        assert np.array_equal(full[r[0]:r[2], r[1]:r[3], i], c)


@pytest.mark.parametrize("case", CASES)
def test_merge_matches_oracle(oracle, case):
    """The oracle's result_label is MergeMasks only (README "Output keys"): no padding, no dilation."""
    ref, _, _ = oracle[case]
    h, w, n = ref["result_masks_shape"].tolist()
    full = np.unpackbits(ref["result_masks_packed"], axis=1)[:, : h * w].reshape(n, h, w).transpose(1, 2, 0)
    labels = masks_to_labels(full, image_shape=(h, w), dilation=0)
    assert labels.dtype == np.uint16 and np.array_equal(labels, ref["result_label"])
    crops = [full[r[0]:r[2], r[1]:r[3], i] for i, r in enumerate(ref["result_rois"])]
    assert np.array_equal(box_masks_to_labels(ref["result_rois"], crops, image_shape=(h, w), dilation=0),
                          ref["result_label"])


@pytest.mark.parametrize("case", CASES)
def test_post_processing_equals_full_image_reference(oracle, case):
    """Box-local dilation/hole filling equals the original's whole-image, one-instance-at-a-time loop."""
    import cv2
    from scipy.ndimage import binary_fill_holes
    from skimage.morphology import disk

    ref, _, _ = oracle[case]
    h, w, n = ref["result_masks_shape"].tolist()
    full = np.unpackbits(ref["result_masks_packed"], axis=1)[:, : h * w].reshape(n, h, w).transpose(1, 2, 0)
    py, px = 7, 5  # pretend the oracle image was reflect-padded
    ih, iw = h - 2 * py, w - 2 * px
    for dilation, fill in ((1, False), (2, True)):
        want = np.zeros((ih, iw), np.uint16)
        for i in range(n):
            m = np.ascontiguousarray(full[py:py + ih, px:px + iw, i])
            m = cv2.dilate(m, disk(dilation).astype(np.uint8))
            if fill:
                m = binary_fill_holes(m).astype(np.uint8)
            want[m != 0] = i + 1
        got = masks_to_labels(full, pad=(py, px), image_shape=(ih, iw), dilation=dilation, fill_holes=fill)
        assert np.array_equal(got, want)


# --------------------------------------------------------------------------------------------- hand-built


def _det(rows, m=8):
    det = np.zeros((m, 6), np.float32)
    det[: len(rows)] = rows
    return det


def test_unmold_hand_built():
    # Molded 64x64 with window (16, 0, 48, 64) holding a 16x32 image (scale 0.5).
    rows = [(16, 0, 32, 16, 1, 0.9),    # -> (0, 0, 8, 8)
            (21, 3, 22, 9, 1, 0.8),     # -> (2, 1, 3, 4): (2.5, 1.5, 3, 4.5) truncated
            (20, 20, 21, 40, 1, 0.75),  # -> (2, 10, 2, 20): height 0 after truncation -> dropped
            (30, 30, 30, 40, 1, 0.7),   # zero height -> dropped
            (0, 0, 0, 0, 0, 0),         # first class 0: stop
            (16, 0, 48, 64, 1, 0.99)]   # after the stop: ignored
    det = _det(rows)
    masks = np.zeros((8, 28, 28, 2), np.float32)
    masks[:, :, :, 1] = 0.9
    masks[:, 14:, :, 1] = 0.8  # relative threshold: bottom half below the mid-point 0.85 -> off
    masks[:, :, :, 0] = 0.0
    rois, cls, scores, full = unmold_detections(det, masks, (16, 32, 3), (16, 0, 48, 64))
    assert rois.tolist() == [[0, 0, 8, 8], [2, 1, 3, 4]]
    assert cls.tolist() == [1, 1] and scores.tolist() == [np.float32(0.9), np.float32(0.8)]
    assert full.shape == (16, 32, 2)
    want0 = np.zeros((16, 32), np.uint8)
    want0[0:4, 0:8] = 1
    assert np.array_equal(full[:, :, 0], want0)
    # absolute threshold (Q2 fixed): everything >= 0.5 -> the whole box
    _, _, _, full_abs = unmold_detections(det, masks, (16, 32, 3), (16, 0, 48, 64), absolute_threshold=True)
    want0[:8, :8] = 1
    assert np.array_equal(full_abs[:, :, 0], want0)
    # a constant mask byte-scales to all zeros: empty in the faithful mode
    assert unmold_mask(np.full((28, 28), 0.99, np.float32), (0, 0, 5, 5)).sum() == 0
    assert unmold_mask(np.full((28, 28), 0.99, np.float32), (0, 0, 5, 5), absolute_threshold=True).sum() == 25
    # no detections at all
    rois, cls, scores, full = unmold_detections(np.zeros((4, 6), np.float32), np.zeros((4, 28, 28, 2), np.float32),
                                                (10, 12, 3), (0, 0, 64, 64))
    assert rois.shape == (0, 4) and full.shape == (10, 12, 0) and full.dtype == np.uint8


def _stack(h, w, boxes):
    masks = np.zeros((h, w, len(boxes)), np.uint8)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = 1
    return masks


def test_labels_padding_crop_overlap_and_gaps():
    # Padded canvas 10x12 with pad (2, 3) around an 6x6 image.
    masks = _stack(10, 12, [
        (2, 3, 5, 6),     # label 1, top-left of the image
        (4, 5, 7, 8),     # label 2 overlaps 1 at (2, 2): the later (lower score) wins
        (0, 0, 2, 3),     # label 3: entirely in the mirrored border -> empty, its number is skipped
        (7, 8, 10, 12),   # label 4: mostly in the border -> cropped to image (5, 5) only
        (6, 7, 8, 9),     # label 5: image (4:6, 4:6), overwrites 2 at (4, 4) and all of 4
        (8, 9, 9, 10),    # label 6: image (6, 6) is outside the image -> empty
    ])
    got = masks_to_labels(masks, pad=(2, 3), image_shape=(6, 6), dilation=0)
    want = np.array([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 2, 2, 2, 0],
        [0, 0, 2, 2, 2, 0],
        [0, 0, 2, 2, 5, 5],
        [0, 0, 0, 0, 5, 5],
    ], np.uint16)
    assert got.dtype == np.uint16 and np.array_equal(got, want)


def test_labels_dilation_cross_and_overwrite():
    masks = _stack(7, 7, [(3, 3, 4, 4), (3, 5, 4, 6)])  # two single pixels two columns apart
    got = masks_to_labels(masks, image_shape=(7, 7), dilation=1)
    want = np.zeros((7, 7), np.uint16)
    want[2:5, 3] = 1
    want[3, 2:5] = 1
    want[2:5, 5] = 2
    want[3, 4:7] = 2  # the shared pixel (3, 4) goes to the later instance
    assert np.array_equal(got, want)
    # dilation at the image border (no wrap, no border pixels added)
    got = masks_to_labels(_stack(3, 3, [(0, 0, 1, 1)]), image_shape=(3, 3), dilation=1)
    assert got.tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 0]]
    # disk(2): radius-2 diamond-ish disk of skimage
    got = masks_to_labels(_stack(5, 5, [(2, 2, 3, 3)]), image_shape=(5, 5), dilation=2)
    assert got.tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]


def test_labels_fill_holes():
    ring = np.zeros((7, 7, 1), np.uint8)
    ring[1:6, 1:6, 0] = 1
    ring[3, 3, 0] = 0
    faithful = masks_to_labels(ring, image_shape=(7, 7), dilation=0)
    assert faithful[3, 3] == 0 and faithful.sum() == 24  # Q1: the original's cavity filling did nothing
    filled = masks_to_labels(ring, image_shape=(7, 7), dilation=0, fill_holes=True)
    assert filled[3, 3] == 1 and filled.sum() == 25
    # a notch open to the outside is not a hole
    cup = ring.copy()
    cup[3, 3:6, 0] = 0
    assert masks_to_labels(cup, image_shape=(7, 7), dilation=0, fill_holes=True)[3, 3] == 0


def test_labels_uint32_above_65535_instances():
    n = 65536 + 2
    rois = np.array([[0, i % 300, 1, i % 300 + 1] for i in range(n)])
    crops = [np.ones((1, 1), np.uint8)] * n
    got = box_masks_to_labels(rois, crops, image_shape=(1, 300), dilation=0)
    assert got.dtype == np.uint32 and got.max() == n


def test_labels_value_255_masks_and_validation():
    masks = _stack(4, 4, [(1, 1, 3, 3)]) * 255
    assert masks_to_labels(masks, image_shape=(4, 4), dilation=0).sum() == 4
    with pytest.raises(ValueError):
        masks_to_labels(masks, pad=(1, 1), image_shape=(4, 4))
