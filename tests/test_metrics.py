"""DSB 2018 metric (spec 7.2 / 9): the numbers users compare against the paper and the Kaggle board."""

import json
import math

import numpy as np
import pytest

from nucleaizer_tf.metrics import (
    THRESHOLDS,
    DatasetScore,
    ImageScore,
    dsb_score,
    iou_matrix,
    score_dataset,
    score_image,
)


def _square(img, r, c, side, label):
    img[r : r + side, c : c + side] = label
    return img


def _first_n_of(region_mask, n):
    """Boolean mask with the first n pixels (raster order) of region_mask: an object inside another."""
    out = np.zeros_like(region_mask)
    flat = np.flatnonzero(region_mask)[:n]
    out.flat[flat] = True
    return out


def _brute_force(gt, pred):
    """Reference straight from the spec's wording: per-object loops, 'some prediction with IoU > t'."""
    g_ids = [v for v in np.unique(gt) if v != 0]
    p_ids = [v for v in np.unique(pred) if v != 0]
    iou = np.zeros((len(g_ids), len(p_ids)))
    for i, g in enumerate(g_ids):
        gm = gt == g
        for j, p in enumerate(p_ids):
            pm = pred == p
            iou[i, j] = (gm & pm).sum() / (gm | pm).sum()
    precs = []
    for t in THRESHOLDS:
        tp = int(sum((iou[i] > t).any() for i in range(len(g_ids))))
        fp, fn = len(p_ids) - tp, len(g_ids) - tp
        precs.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    return iou, np.array(g_ids), np.array(p_ids), precs


# ---------------------------------------------------------------------------------------------- thresholds


def test_thresholds_are_the_ten_exact_decimals():
    assert THRESHOLDS.shape == (10,)
    assert THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# ------------------------------------------------------------------------------------ section 9 sanity cases


def _two_objects():
    gt = np.zeros((64, 64), np.uint16)
    _square(gt, 5, 5, 10, 1)
    _square(gt, 30, 30, 12, 2)
    return gt


def test_prediction_equal_to_gt_scores_one():
    gt = _two_objects()
    s = score_image(gt, gt.copy())
    assert s.dsb == 1.0
    assert s.precisions == (1.0,) * 10
    assert (s.tp, s.fp, s.fn, s.f1, s.mean_matched_iou) == (2, 0, 0, 1.0, 1.0)


def test_empty_prediction_scores_zero():
    s = score_image(_two_objects(), np.zeros((64, 64), np.uint16))
    assert s.dsb == 0.0
    assert (s.n_gt, s.n_pred, s.tp, s.fp, s.fn, s.f1) == (2, 0, 0, 0, 2, 0.0)
    assert math.isnan(s.mean_matched_iou)


def test_one_copy_one_unrelated_is_one_third_everywhere():
    gt = _two_objects()
    pred = np.zeros_like(gt)
    pred[gt == 1] = 1  # exact copy of GT object 1
    _square(pred, 50, 5, 8, 2)  # touches no GT object
    s = score_image(gt, pred)
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert s.precisions == pytest.approx([1 / 3] * 10)
    assert s.dsb == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(0.5)


def test_prediction_of_72_pixels_inside_100_pixel_object_scores_half():
    gt = _square(np.zeros((32, 32), np.int32), 4, 4, 10, 1)
    pred = _first_n_of(gt == 1, 72).astype(np.int32) * 7
    s = score_image(gt, pred)
    assert s.matched_ious == pytest.approx((0.72,))
    # IoU 0.72 passes 0.50 .. 0.70 (5 thresholds) and fails 0.75 .. 0.95
    assert s.precisions == (1.0,) * 5 + (0.0,) * 5
    assert s.dsb == 0.5


# ------------------------------------------------------------------------------------------------ edge cases


def test_label_values_permuted_or_with_gaps_do_not_matter():
    rng = np.random.default_rng(0)
    gt = np.zeros((80, 80), np.uint16)
    pred = np.zeros((80, 80), np.uint16)
    for k in range(9):
        r, c = divmod(k, 3)
        _square(gt, 25 * r + 2, 25 * c + 2, 20, k + 1)
        _square(pred, 25 * r + 2 + k % 4, 25 * c + 2, 20 - k, k + 1)  # IoUs of several levels
    ref = score_image(gt, pred)
    assert 0 < ref.dsb < 1
    perm_g = np.concatenate([[0], rng.permutation(np.arange(1, 10)) * 1000 + 3])  # gaps, scrambled order
    perm_p = np.concatenate([[0], rng.permutation(np.arange(1, 10)) + 60000])
    for g, p in [(perm_g[gt], pred), (gt, perm_p[pred]), (perm_g[gt], perm_p[pred])]:
        s = score_image(g.astype(np.uint32), p.astype(np.int64))
        assert s.dsb == ref.dsb
        assert s.precisions == ref.precisions
        assert sorted(s.matched_ious) == sorted(ref.matched_ious)


def test_huge_and_negative_label_values_take_the_sort_path_with_same_result():
    gt = _two_objects().astype(np.int64)
    pred = np.roll(gt, 2, axis=1)
    ref = score_image(gt, pred)
    big = np.where(gt > 0, gt + 2**40, 0).astype(np.uint64)
    neg = np.where(pred > 0, -pred, 0).astype(np.int16)
    s = score_image(big, neg)
    assert s.precisions == ref.precisions
    _, gt_ids, pred_ids = iou_matrix(big, neg)
    assert gt_ids.tolist() == [2**40 + 1, 2**40 + 2]
    assert pred_ids.tolist() == [-2, -1]


def test_empty_vs_empty_is_nan():
    z = np.zeros((16, 16), np.uint16)
    s = score_image(z, z)
    assert math.isnan(s.dsb) and math.isnan(s.f1) and math.isnan(s.mean_matched_iou)
    assert all(math.isnan(p) for p in s.precisions)
    assert (s.n_gt, s.n_pred, s.tp, s.fp, s.fn) == (0, 0, 0, 0, 0)
    assert math.isnan(dsb_score(z, z))


def test_empty_gt_with_predictions_scores_zero():
    pred = _two_objects()
    s = score_image(np.zeros_like(pred), pred)
    assert s.dsb == 0.0
    assert (s.n_gt, s.n_pred, s.fp, s.f1) == (0, 2, 2, 0.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(64, 64\).*\(64, 65\)"):
        score_image(np.zeros((64, 64), np.uint16), np.zeros((64, 65), np.uint16))


def test_non_2d_or_non_integer_input_is_rejected():
    with pytest.raises(ValueError, match="2-D"):
        score_image(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        score_image(np.full((4, 4), 0.5), np.zeros((4, 4)))


# ----------------------------------------------------------------------------------- hand-computed example


def test_hand_computed_multi_object_case():
    gt = np.zeros((40, 60), np.uint16)
    pred = np.zeros_like(gt)
    for k, n_inside in enumerate([57, 81, 96]):  # 100-px GT squares -> IoU 0.57, 0.81, 0.96
        _square(gt, 5, 5 + 15 * k, 10, k + 1)
        pred[_first_n_of(gt == k + 1, n_inside)] = 10 + k
    _square(pred, 25, 5, 6, 99)  # false positive
    s = score_image(gt, pred)
    assert s.matched_ious == pytest.approx((0.57, 0.81, 0.96))
    # t=.50,.55: TP 3, FP 1, FN 0 -> 3/4;  t=.60..80: TP 2, FP 2, FN 1 -> 2/5;  t=.85..95: TP 1 -> 1/6
    expected = [3 / 4] * 2 + [2 / 5] * 5 + [1 / 6] * 3
    assert s.precisions == pytest.approx(expected)
    assert s.dsb == pytest.approx(0.4)  # (2*3/4 + 5*2/5 + 3*1/6) / 10
    assert (s.n_gt, s.n_pred, s.tp, s.fp, s.fn) == (3, 4, 3, 1, 0)
    assert s.f1 == pytest.approx(6 / 7)
    assert s.mean_matched_iou == pytest.approx(0.78)


def test_iou_matrix_small_case():
    gt = np.zeros((10, 10), np.uint8)
    gt[0:4, 0:4] = 3  # 16 px
    gt[6:10, 6:10] = 5  # 16 px
    pred = np.zeros_like(gt)
    pred[0:4, 2:6] = 1  # 8 px shared with GT 3 -> 8 / 24
    pred[6:10, 8:10] = 2  # 8 px inside GT 5 -> 8 / 16
    mat, g_ids, p_ids = iou_matrix(gt, pred)
    assert g_ids.tolist() == [3, 5] and p_ids.tolist() == [1, 2]
    np.testing.assert_allclose(mat, [[8 / 24, 0], [0, 0.5]])
    # exactly 0.5 is not a match (strict >): nothing matched
    s = score_image(gt, pred)
    assert s.tp == 0 and s.dsb == 0.0


# -------------------------------------------------------------------------------------------- dataset level


def test_dataset_pooling():
    gt = _two_objects()
    half = np.zeros_like(gt)
    half[gt == 1] = 1
    _square(half, 50, 5, 8, 2)
    z = np.zeros_like(gt)
    a = score_image(gt, gt, "perfect")  # TP 2, IoUs 1, 1
    b = score_image(gt, half, "half")  # TP 1, FP 1, FN 1, IoU 1
    c = score_image(z, z, "empty")  # undefined
    d = score_image(gt, z, "missing")  # FN 2
    e = score_image(gt, np.roll(gt, 1, axis=0), "shifted")  # 2 matches with IoU < 1
    ds = score_dataset([a, b, c, d, e])
    assert isinstance(ds, DatasetScore)
    assert ds.n_images == 5 and ds.n_undefined == 1
    assert ds.dsb == pytest.approx((a.dsb + b.dsb + d.dsb + e.dsb) / 4)
    assert (ds.tp, ds.fp, ds.fn) == (5, 1, 3)
    assert ds.f1 == pytest.approx(10 / (10 + 1 + 3))  # pooled counts, not a mean of per-image F1
    all_ious = [1.0, 1.0, 1.0] + list(e.matched_ious)
    assert ds.mean_matched_iou == pytest.approx(np.mean(all_ious))  # pooled pairs, not a mean of means
    mean_of_means = np.mean([a.mean_matched_iou, b.mean_matched_iou, e.mean_matched_iou])
    assert ds.mean_matched_iou != pytest.approx(mean_of_means)
    assert [s.name for s in ds.images] == ["perfect", "half", "empty", "missing", "shifted"]


def test_dataset_of_nothing_or_only_undefined_images():
    z = np.zeros((4, 4), np.uint8)
    only = score_dataset([score_image(z, z)])
    assert math.isnan(only.dsb) and math.isnan(only.f1) and only.n_undefined == 1
    none = score_dataset([])
    assert none.n_images == 0 and math.isnan(none.dsb)


def test_as_dict_is_strict_json():
    gt = _two_objects()
    z = np.zeros_like(gt)
    ds = score_dataset(iter([score_image(gt, gt, "a"), score_image(z, z, "b")]))
    d = ds.to_dict()
    text = json.dumps(d, allow_nan=False)  # NaN would make this raise
    back = json.loads(text)
    keys = {"dsb", "f1", "mean_matched_iou", "n_images", "n_undefined", "tp", "fp", "fn", "images"}
    assert set(back) == keys
    assert back["dsb"] == 1.0 and back["n_undefined"] == 1
    img_b = back["images"][1]
    assert img_b["name"] == "b" and img_b["dsb"] is None and img_b["precisions"] == [None] * 10
    assert back["images"][0]["matched_ious"] == [1.0, 1.0]
    assert isinstance(ds.images[0], ImageScore)


# ---------------------------------------------------------------------------------------- vs brute force


def _random_labels(rng, shape, n, max_side):
    img = np.zeros(shape, np.int32)
    for label in rng.choice(np.arange(1, 10 * n), size=n, replace=False):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        h, w = rng.integers(2, max_side, size=2)
        img[r : r + h, c : c + w] = label  # overlaps overwrite: fragments and vanished labels are fine
    return img


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    gt = _random_labels(rng, (48, 56), 15, 14)
    pred = np.roll(gt, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))  # near-copies: many IoUs > 0.5
    drop = rng.choice(np.unique(pred)[1:], size=3, replace=False)
    pred[np.isin(pred, drop)] = 0
    extra = _random_labels(rng, pred.shape, 4, 10)
    pred = np.where(extra > 0, extra + 1000, pred).astype(np.uint16)

    iou_ref, g_ref, p_ref, precs_ref = _brute_force(gt, pred)
    mat, g_ids, p_ids = iou_matrix(gt, pred)
    assert g_ids.tolist() == g_ref.tolist() and p_ids.tolist() == p_ref.tolist()
    np.testing.assert_allclose(mat, iou_ref, rtol=0, atol=1e-12)

    s = score_image(gt, pred)
    np.testing.assert_allclose(s.precisions, precs_ref, rtol=0, atol=1e-12)
    assert s.dsb == pytest.approx(np.mean(precs_ref))
    assert s.tp == int((iou_ref > 0.5).any(axis=1).sum())
    assert sorted(s.matched_ious) == pytest.approx(sorted(iou_ref[iou_ref > 0.5]))


def test_large_image_with_2000_objects_known_ious():
    """2048x2048, 2025 GT squares; each prediction is its square with r rows cut -> IoU (40 - r) / 40."""
    rng = np.random.default_rng(42)
    side, cell, grid = 40, 45, 45  # 45 * 45 = 2025 objects in the top-left 2025x2025
    gt = np.zeros((2048, 2048), np.uint32)
    pred = np.zeros_like(gt)
    gt_labels = rng.choice(np.arange(1, 4_000_000), size=grid * grid, replace=False)  # gaps, any order
    pred_labels = rng.permutation(grid * grid) + 5
    # 0 or odd row cuts: IoU 1, 0.975, 0.925, ..., 0.375 - never exactly on a threshold
    cut = rng.choice([0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25], size=grid * grid)
    missing = rng.random(grid * grid) < 0.05  # false negatives
    for k in range(grid * grid):
        r0, c0 = divmod(k, grid)
        r0, c0 = r0 * cell + 2, c0 * cell + 2
        gt[r0 : r0 + side, c0 : c0 + side] = gt_labels[k]
        if not missing[k]:
            pred[r0 : r0 + side - cut[k], c0 : c0 + side] = pred_labels[k]
    n_fp = 30
    for f in range(n_fp):  # false positives in the empty bottom strip
        pred[2030:2045, 5 + 60 * f : 5 + 60 * f + 15] = 10_000_000 + f

    s = score_image(gt, pred)
    ious = (side - cut[~missing]) / side
    n_gt, n_pred = grid * grid, int((~missing).sum()) + n_fp
    expected = []
    for t in THRESHOLDS:
        tp = int((ious > t).sum())
        expected.append(tp / (n_gt + n_pred - tp))
    assert (s.n_gt, s.n_pred) == (n_gt, n_pred)
    assert s.precisions == pytest.approx(expected, abs=1e-12)
    assert s.dsb == pytest.approx(np.mean(expected), abs=1e-12)
    assert s.tp == int((ious > 0.5).sum())
    assert s.fp == n_pred - s.tp and s.fn == n_gt - s.tp
    assert sorted(s.matched_ious) == pytest.approx(sorted(ious[ious > 0.5]))

    mat, g_ids, p_ids = iou_matrix(gt, pred)
    assert mat.shape == (n_gt, n_pred)
    assert np.count_nonzero(mat) == int((~missing).sum())  # each prediction touches exactly its own GT


# ------------------------------------------------------------------------------------- shared real masks


def _real_masks(dsb_train):
    tifffile = pytest.importorskip("tifffile")
    paths = sorted((dsb_train / "masks").glob("*.tiff"))
    assert paths, f"no masks in {dsb_train / 'masks'}"
    return [(p.stem, tifffile.imread(p)) for p in paths]


def test_real_masks_against_themselves_score_one(dsb_train):
    scores = [score_image(m, m, name) for name, m in _real_masks(dsb_train)]
    assert len(scores) == 15
    for s in scores:
        assert s.dsb == 1.0, s.name
        assert s.fp == 0 and s.fn == 0 and s.n_gt == s.tp > 0
    ds = score_dataset(scores)
    assert ds.dsb == 1.0 and ds.f1 == 1.0 and ds.mean_matched_iou == 1.0 and ds.n_undefined == 0


def test_real_masks_with_one_nucleus_removed(dsb_train):
    for name, m in _real_masks(dsb_train):
        n = len(np.unique(m)) - 1
        pred = m.copy()
        pred[m == m.max()] = 0  # drop one nucleus
        s = score_image(m, pred, name)
        # every threshold: TP = n-1, FP = 0, FN = 1 -> (n-1)/n
        assert s.dsb == pytest.approx((n - 1) / n, rel=1e-12), name
        assert (s.tp, s.fp, s.fn) == (n - 1, 0, 1)
