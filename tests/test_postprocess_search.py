"""Parameters (spec 5.3), scale selection / greedy merge (5.5, Q3, Q5), the whole chain (5.7) and the
parameter search (5.8).  Expected label arrays are literal."""

import json
import math

import numpy as np
import pytest

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.postprocess.chain import postprocess
from nucleaizer_tf.postprocess.merge import greedy_merge, merge_for_search, select_or_merge
from nucleaizer_tf.postprocess.params import (
    DEFAULT,
    LOWER,
    UPPER,
    X0,
    PostprocessParams,
    read_params,
    write_params,
)
from nucleaizer_tf.postprocess.search import (
    ValidationSample,
    evaluate_params,
    prepare_validation,
    search_parameters,
    write_search_result,
)

A = np.array


# --------------------------------------------------------------------------------------------------------
# parameters


def test_params_defaults_and_scalings():
    p = PostprocessParams()
    assert p.to_vector() == [76, 32, 0, 1, 44, 17, 32, 25, 21] == list(DEFAULT)
    assert p.scale_fraction == 0.76
    assert p.prob_level == 65535.0
    assert PostprocessParams(prob_threshold=15).prob_level == 30719.53125  # i.e. E >= 30720 for uint16 E
    assert p.overlap_fraction == 0.0017
    assert p.unsupported_area == 100
    assert LOWER == (50, 15, 0, 1, 30, 0, 20, 10, 10)
    assert UPPER == (80, 32, 2, 2, 50, 20, 40, 30, 30)
    assert X0 == (75, 30, 1, 1, 41, 12, 21, 17, 20)
    assert PostprocessParams.from_vector(X0).within_bounds()


def test_params_from_vector_accepts_whole_floats_only():
    assert PostprocessParams.from_vector([75.0, 30, 1, 1, 41, 12, 21, 17, 20]).scale_threshold == 75
    with pytest.raises(ValueError):
        PostprocessParams.from_vector([75.5, 30, 1, 1, 41, 12, 21, 17, 20])
    with pytest.raises(ValueError):
        PostprocessParams.from_vector([1, 2, 3])
    with pytest.raises(ValueError):
        PostprocessParams(dilation_radius=-1)


def test_read_params_formats_and_errors(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(list(X0)))
    assert read_params(plain).to_vector() == list(X0)
    named = tmp_path / "named.json"
    write_params(named, X0)
    assert read_params(named) == PostprocessParams.from_vector(X0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}')
    with pytest.raises(NucleaizerError, match="bad.json"):
        read_params(bad)
    notjson = tmp_path / "broken.json"
    notjson.write_text("[1, 2,")
    with pytest.raises(NucleaizerError, match="broken.json"):
        read_params(notjson)
    with pytest.raises(NucleaizerError, match="missing.json"):
        read_params(tmp_path / "missing.json")
    short = tmp_path / "short.json"
    short.write_text("[1, 2, 3]")
    with pytest.raises(NucleaizerError, match="short.json"):
        read_params(short)


# --------------------------------------------------------------------------------------------------------
# greedy merge / scale selection


def test_greedy_merge_order_overwrite_and_relabel():
    l2 = A(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 3, 3, 3],
            [0, 0, 0, 3, 3, 3],
            [0, 0, 0, 3, 3, 3],
        ],
        dtype=np.uint16,
    )  # label 2 is a gap (area 0)
    l4 = A(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [2, 2, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint16,
    )
    # medians (zero-inclusive): l2 [d(4), 0, d(9)] -> d(4) = 2.2568; l4 [d(9), d(2)] -> 2.4904;
    # jointSize = pi * ((2.2568 + 2.4904) / 4)^2 = 4.425.  Order by |area - 4.425|:
    # 1 (4 px), 10002 (2 px), 2 (empty: rejected), 3 (9 px), 10001 (9 px, tie -> after 3, stable).
    # 10001 overlaps 1 on 4 of 9 px (0.44 < 0.76): accepted and overwrites 1 completely.
    # relabel {0, 3, 10001, 10002} -> {0, 1, 2, 3}
    expected = A(
        [
            [2, 2, 2, 0, 0, 0],
            [2, 2, 2, 0, 0, 0],
            [2, 2, 2, 0, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [3, 3, 0, 1, 1, 1],
            [0, 0, 0, 1, 1, 1],
        ]
    )
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.76), expected)


def test_greedy_merge_overlap_threshold_is_strict():
    l2 = np.zeros((3, 5), dtype=np.uint16)
    l2[:, 0:3] = 1
    l4 = np.zeros((3, 5), dtype=np.uint16)
    l4[:, 1:4] = 1
    # both 9 px, jointSize = 9; l2's object first; l4's overlaps 6/9 = 0.667
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.76), [[1, 2, 2, 2, 0]] * 3)  # accepted, overwrites
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.6), [[1, 1, 1, 0, 0]] * 3)  # 0.667 >= 0.6: rejected
    np.testing.assert_array_equal(greedy_merge(l2, l4, 2 / 3), [[1, 1, 1, 0, 0]] * 3)  # not < threshold


def test_greedy_merge_full_coverage_relabel_quirk():
    # the original's relabel maps the smallest value to 0 when no background is left
    l2 = np.zeros((3, 4), dtype=np.uint16)
    l2[:, 0:3] = 1
    l4 = np.zeros((3, 4), dtype=np.uint16)
    l4[:, 1:4] = 1
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.76), [[0, 1, 1, 1]] * 3)
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.76, consecutive=True), [[1, 2, 2, 2]] * 3)


def test_greedy_merge_with_an_empty_image():
    l2 = A([[0, 3, 3], [0, 0, 0]], dtype=np.uint16)
    l4 = np.zeros((2, 3), dtype=np.uint16)  # NaN median -> NaN keys -> original order
    np.testing.assert_array_equal(greedy_merge(l2, l4, 0.76), [[0, 1, 1], [0, 0, 0]])


def _big_objects_with_gaps():
    l2 = np.zeros((30, 42), dtype=np.uint16)
    l2[0:20, 0:20] = 1  # 400 px, eq. diameter 22.57 > 21
    l2[0:20, 22:42] = 3  # label 2 is a gap
    l4 = np.zeros((30, 42), dtype=np.uint16)
    l4[22:30, 0:8] = 1
    return l2, l4


def test_select_or_merge_large_2x_returned_as_is_with_gaps():
    l2, l4 = _big_objects_with_gaps()  # medians over [22.57, 0, 22.57] -> 22.57 > 21
    got = select_or_merge(l2, l4, PostprocessParams())
    np.testing.assert_array_equal(got, l2)  # ids 1 and 3 kept, 4x object ignored


def test_select_or_merge_gap_inclusive_median_triggers_merge_q3():
    l2, l4 = _big_objects_with_gaps()
    l2[l2 == 3] = 0
    l2[l2 == 1] = 3  # one object with id 3: diameters [0, 0, 22.57] -> zero-inclusive median 0 -> merge
    got = select_or_merge(l2, l4, PostprocessParams())
    assert sorted(np.unique(got).tolist()) == [0, 1, 2]
    assert (got[0:20, 0:20] == 1).all() and (got[22:30, 0:8] == 2).all()
    # the search variant excludes the gaps (estimateCellSize2): 22.57 > 21 -> the 2x image, relabelled
    fixed = merge_for_search(l2, l4, PostprocessParams())
    assert sorted(np.unique(fixed).tolist()) == [0, 1]
    assert (fixed[0:20, 0:20] == 1).all()


def test_merge_for_search_q5_faithful_vs_fixed():
    l2 = A([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint16)
    l4 = A([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 4, 4], [0, 0, 4, 4]], dtype=np.uint16)
    p = PostprocessParams()
    # faithful: both have objects -> the 2x result only
    np.testing.assert_array_equal(merge_for_search(l2, l4, p, faithful_q5=True), l2)
    # faithful, 2x empty -> the 4x result, relabelled
    np.testing.assert_array_equal(
        merge_for_search(np.zeros_like(l2), l4, p, faithful_q5=True), (l4 > 0).astype(int)
    )
    # fixed: the real merge keeps both
    np.testing.assert_array_equal(
        merge_for_search(l2, l4, p), [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]
    )


# --------------------------------------------------------------------------------------------------------
# chain


def test_postprocess_chain_tiny_case():
    raw2 = np.zeros((20, 20), dtype=np.uint16)
    raw2[4:18, 4:18] = 2  # 196 px at 2x -> 7x7 at 1x
    raw2[8:10, 8:10] = 5  # inside 2 -> absorbed
    raw2[0:2, 0:4] = 1  # 8 px <= 44 -> removed
    E = np.zeros((10, 10), dtype=np.uint16)
    E[2:9, 2:9] = 65535
    E[1, 4] = 65535  # one supported ring pixel
    E[0, 0] = 65535  # not next to any object
    got = postprocess(raw2, None, E)  # 4x missing -> zeros
    expected = A(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16
    # both scales missing -> empty result of the ensemble's size
    assert postprocess(None, None, E).shape == (10, 10) and not postprocess(None, None, E).any()
    # same input on both scales gives the same result (the merge drops the duplicates)
    np.testing.assert_array_equal(postprocess(raw2, raw2, E), expected)


# --------------------------------------------------------------------------------------------------------
# parameter search


def _synthetic_set(seed=0, n=3, size=48):
    """GT discs; 2x predictions = GT upscaled with pixels eroded/dilated at random, some objects split;
    the ensemble is saturated on the GT foreground."""
    from scipy import ndimage
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        gt = np.zeros((size, size), dtype=np.uint16)
        k = 0
        for r in range(8, size - 6, 14):
            for c in range(8, size - 6, 14):
                k += 1
                rr, cc = disk((r + rng.integers(-2, 3), c + rng.integers(-2, 3)), rng.integers(4, 7), shape=gt.shape)
                gt[rr, cc] = k
        up = np.kron(gt, np.ones((2, 2), dtype=np.uint16))
        shrunk = np.where(ndimage.binary_erosion(up > 0, iterations=2), up, 0).astype(np.uint16)
        l2 = shrunk if i % 2 else up
        l4 = up.copy()
        l4[:, ::9] = 0  # cut stripes: fragments
        E = np.where(ndimage.binary_dilation(gt > 0), 65535, 20000).astype(np.uint16)
        samples.append(ValidationSample(f"img{i}", gt, l2, l4, E))
    samples.append(ValidationSample("no_prediction", gt, up, None, None))  # scores 0
    return samples


def test_evaluate_params_missing_prediction_scores_zero():
    s = _synthetic_set(n=1)
    prepared = prepare_validation(s)
    score = evaluate_params(prepared, DEFAULT)
    alone = evaluate_params(prepared[:1], DEFAULT)
    assert math.isclose(score, alone / 2)  # the image without prediction counts 0


def test_search_improves_on_x0_and_is_deterministic(tmp_path):
    prepared = prepare_validation(_synthetic_set())
    seen = []
    kw = dict(time_limit_s=8.0, max_evaluations=60, population=18, generations=30, seed=3)
    r1 = search_parameters(prepared, progress=lambda n, best, t: seen.append((n, best)), **kw)
    assert r1.best_score >= r1.x0_score and r1.best_score >= r1.default_score
    assert 1 - r1.best_score <= 1 - evaluate_params(prepared, X0)
    assert r1.n_evaluations <= 60 and len(r1.history) == r1.n_evaluations == seen[-1][0]
    assert all(lo <= v <= hi for v, lo, hi in zip(r1.best_vector, LOWER, UPPER))
    assert math.isclose(evaluate_params(prepared, r1.best_vector), r1.best_score)
    r2 = search_parameters(prepared, **kw)
    assert r2.best_vector == r1.best_vector and r2.best_score == r1.best_score
    assert [h["vector"] for h in r2.history] == [h["vector"] for h in r1.history]
    out = tmp_path / "search.json"
    write_search_result(out, r1)
    assert read_params(out).to_vector() == list(r1.best_vector)
    assert json.loads(out.read_text())["x0_score"] == r1.x0_score


def test_search_time_limit_stops():
    prepared = prepare_validation(_synthetic_set(n=1))
    r = search_parameters(prepared, time_limit_s=0.0, seed=0)
    assert r.stop_reason == "time_limit" and r.n_evaluations == 2  # default and x0 are always scored
    assert r.best_score == max(r.default_score, r.x0_score)


def test_search_faithful_q5_runs():
    prepared = prepare_validation(_synthetic_set(n=1))
    r = search_parameters(prepared, max_evaluations=10, population=9, seed=0, faithful_q5=True)
    assert r.faithful_q5 and r.n_evaluations == 10


def test_load_validation_folders(tmp_path):
    import cv2

    from nucleaizer_tf.io import write_labels
    from nucleaizer_tf.postprocess.search import load_validation_folders

    s = _synthetic_set(n=1)[0]
    for sub in ("gt", "2x", "4x", "ens"):
        (tmp_path / sub).mkdir()
    write_labels(tmp_path / "gt" / "a.tiff", s.gt)
    write_labels(tmp_path / "gt" / "b.tiff", s.gt)
    write_labels(tmp_path / "2x" / "a.tiff", s.l2x_raw)
    write_labels(tmp_path / "4x" / "a.tiff", s.l4x_raw)
    cv2.imwrite(str(tmp_path / "ens" / "a.png"), s.ensemble16)
    got = load_validation_folders(tmp_path / "gt", tmp_path / "2x", tmp_path / "4x", tmp_path / "ens")
    assert [g.name for g in got] == ["a", "b"]
    np.testing.assert_array_equal(got[0].ensemble16, s.ensemble16)
    np.testing.assert_array_equal(got[0].l4x_raw, s.l4x_raw)
    assert got[1].l2x_raw is None and got[1].ensemble16 is None
    prepared = prepare_validation(got)
    assert math.isclose(evaluate_params(prepared, X0), evaluate_params(prepared[:1], X0) / 2)
