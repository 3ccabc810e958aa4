"""Style features and correlation k-means clustering (spec 6.3)."""

import numpy as np
import pytest

from nucleaizer_tf.style.clustering import (THRASH, candidate_ks, cluster_styles, contact_sheet, correlation_kmeans,
                                            keep_best, quadrants)
from nucleaizer_tf.style.features import FEATURE_NAMES, image_style_features, style_distances
from nucleaizer_tf.synthetic import synthetic_nuclei


def test_candidate_ks_follow_the_original_rule():
    assert candidate_ks(15) == [3, 3, 2, 2, 2, 2]  # round(15/6) = 2.5 -> 3 (MATLAB rounds halves away)
    assert candidate_ks(3) == [1, 1, 1, 1, 1, 1]  # zeros become 1
    assert candidate_ks(100) == [20, 17, 14, 13, 11, 10]  # 12.5 -> 13


def test_correlation_kmeans_ignores_offset_and_scale():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    rows = [2.0 * a + 5, 0.5 * a - 1, 3 * a, b + 7, 4 * b, -0.1 + 0.2 * b]
    result = correlation_kmeans(np.array(rows), 2, replicates=5)
    assert len(set(result.labels[:3])) == 1 and len(set(result.labels[3:])) == 1
    assert result.labels[0] != result.labels[3]
    assert result.total == pytest.approx(0.0, abs=1e-9)


def test_keep_best_keeps_the_nearest_members():
    assigned = np.array([1, 1, 1, 1, 2, 2])
    distance = np.array([0.4, 0.1, 0.3, 0.2, 0.9, 0.5])
    assert keep_best(assigned, distance, 3).tolist() == [THRASH, 1, 1, 1, 2, 2]


def test_features_have_the_documented_length_and_nuclei_part_needs_labels():
    sample = synthetic_nuclei((96, 96), 8, 14, seed=1)
    with_labels = image_style_features(sample.image, sample.labels)
    without = image_style_features(sample.image)
    assert with_labels.shape == without.shape == (len(FEATURE_NAMES),)
    assert np.all(np.isfinite(with_labels))
    n_nuclei = 8
    assert np.isnan(without[-n_nuclei:]).all() and np.isfinite(without[:-n_nuclei]).all()
    emb = style_distances(np.stack([with_labels, without, with_labels]))  # NaN features count as average
    assert np.allclose(emb.distances, emb.distances.T) and emb.distances[0, 2] == pytest.approx(0.0, abs=1e-9)


def test_two_distinct_styles_end_in_two_clusters():
    names, feats, style = [], [], {}
    for i in range(12):
        kind = "fluorescence" if i % 2 == 0 else "brightfield"
        sample = synthetic_nuclei((128, 128), n_nuclei=8 + i, diameter=12 + i, style=kind, seed=i)
        names.append(f"{kind}_{i:02d}")
        style[names[-1]] = kind
        feats.append(image_style_features(sample.image, sample.labels))
    result = cluster_styles(names, style_distances(np.array(feats)).distances, seed=0)
    assert result.k == 2  # candidates round(12 ./ [5..10]) = {2, 1}; 2 has the smaller total distance
    groups = {g: {style[n] for n in result.members(g, kept_only=False)} for g in result.groups}
    assert sorted(len(s) for s in groups.values()) == [1, 1]  # every cluster is pure
    assert {next(iter(s)) for s in groups.values()} == {"fluorescence", "brightfield"}
    assert all(len(result.members(g)) == 3 for g in result.groups)  # best 3 kept, the rest thrash
    assert (result.cluster == THRASH).sum() == 6


def test_quadrants_share_the_middle_row_and_column():
    a = np.arange(256 * 320).reshape(256, 320)
    q = quadrants(a)
    assert [x.shape for x in q] == [(128, 160), (128, 161), (129, 160), (129, 161)]
    assert q[3][0, 0] == a[127, 159] and q[0][-1, -1] == a[127, 159]


def test_contact_sheet_grid():
    images = [np.full((64, 80, 3), i * 20, np.uint8) for i in range(8)]
    sheet = contact_sheet(images, [True] * 3 + [False] * 5, [str(i) for i in range(8)], thumb=32, columns=6)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * 40, 6 * 40, 3)
