"""Mask database measurements and synthetic mask generation (spec 6.2, 6.5)."""

import time

import numpy as np
import pytest
from skimage.measure import perimeter, regionprops

from nucleaizer_tf.style import synth_masks as sm
from nucleaizer_tf.style.maskdb import MaskDB, build_mask_db, clear_border, measure_objects
from nucleaizer_tf.synthetic import synthetic_nuclei


def _disk(r):
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def _ellipse(a, b):
    y, x = np.mgrid[-b:b + 1, -a:a + 1]
    return (x / a) ** 2 + (y / b) ** 2 <= 1


# --------------------------------------------------------------------------- measurements


def test_measurements_agree_with_regionprops():
    labels = synthetic_nuclei((160, 160), 20, 18, seed=3).labels.astype(np.int64)
    m = measure_objects(labels)
    props = regionprops(labels)
    assert np.array_equal(m["area"], [p.area for p in props])
    for i, p in enumerate(props):
        assert m["perimeter"][i] == pytest.approx(perimeter(labels == p.label), rel=1e-9)
        assert m["major"][i] == pytest.approx(p.axis_major_length, rel=0.02)  # MATLAB adds 1/12 px² per pixel
        assert m["minor"][i] == pytest.approx(p.axis_minor_length, rel=0.03)
        assert m["solidity"][i] == pytest.approx(p.solidity, abs=0.04)
    assert np.allclose(m["circularity"], m["area"] / m["perimeter"] ** 2)
    assert np.allclose(m["shape_ratio"], m["major"] / m["minor"])


def test_clear_border_and_database_round_trip():
    labels = np.zeros((40, 40), np.uint16)
    labels[0:5, 10:15] = 1  # touches the border: dropped
    labels[10:20, 10:20] = 2
    labels[20:25, 20:30] = 3  # diagonal neighbour of 2: merged by 8-connectivity, as bwlabel did
    labels[30:35, 5:9] = 4
    assert 1 not in clear_border(labels)
    db = build_mask_db([labels])
    assert len(db) == 2  # {2, 3} became one object, 4 is the other
    assert sorted(db.column("area")) == [20, 150]
    again = MaskDB.from_arrays(db.to_arrays())
    assert np.array_equal(again.crop(0), db.crop(0)) and np.array_equal(again.features, db.features)


def test_edge_distance_is_contour_to_contour():
    labels = np.zeros((50, 60), np.int32)
    labels[10:20, 10:20] = 1
    labels[10:20, 26:36] = 2  # 6 columns to the right of object 1's last column
    labels[40:45, 50:55] = 3
    d = sm.edge_distances(labels)
    assert d[1] == pytest.approx(7.0) and d[2] == pytest.approx(7.0)
    assert d[3] == pytest.approx(np.hypot(40 - 19, 50 - 35))
    assert sm.edge_distances(labels == 1) == {1: np.inf}


# --------------------------------------------------------------------------- placement


def _masks(n, rng, radius=(6, 12)):
    return [_ellipse(int(rng.integers(*radius)), int(rng.integers(*radius))) for _ in range(n)]


def test_tetris_places_the_requested_count_without_overlap():
    rng = np.random.default_rng(1)
    masks = _masks(200, rng)
    placed = sm.tetris_image(masks, 60, np.random.default_rng(2), gap=8)
    labels = placed.labels
    assert labels.shape == (512, 512) and labels.dtype == np.uint16
    assert labels.max() == 60 and len(np.unique(labels)) == 61
    areas = np.bincount(labels.ravel())[1:]
    assert np.array_equal(areas, [m.sum() for m in masks[:60]])  # every mask intact: nothing overwritten


def _touching_earlier(labels):
    """Per label 1..n: is it 8-adjacent to a label with a smaller id (placed before it)?"""
    n = labels.max()
    found = np.zeros(n + 1, bool)
    padded = np.pad(labels, 1)
    h, w = labels.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            other = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            hit = (labels > 0) & (other > 0) & (other < labels)
            found[labels[hit]] = True
    return found[1:].tolist()


def test_touching_flags_match_the_image_and_ratio_is_about_5_percent():
    rng = np.random.default_rng(5)
    masks = _masks(3000, rng, (5, 10))
    flagged = tetris_total = 0
    for seed in range(6):
        placed = sm.tetris_image(masks[seed * 500:(seed + 1) * 500], 10**6, np.random.default_rng(seed), gap=6)
        labels = placed.labels.astype(np.int64)
        assert np.array_equal(_touching_earlier(labels), placed.touching)
        flagged += sum(placed.touching)
        tetris_total += placed.modes.count("tetris")
    ratio = flagged / tetris_total
    assert 0.02 < ratio < 0.09, ratio  # touch probability 0.05 per tetris placement


def test_placement_is_deterministic_under_a_seed():
    masks = _masks(300, np.random.default_rng(0))
    a = sm.tetris_image(masks, 80, np.random.default_rng(7), gap=5).labels
    b = sm.tetris_image(masks, 80, np.random.default_rng(7), gap=5).labels
    c = sm.tetris_image(masks, 80, np.random.default_rng(8), gap=5).labels
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_one_image_of_about_100_nuclei_takes_well_under_a_second():
    masks = _masks(450, np.random.default_rng(0), (8, 14))
    times = []
    for seed in range(3):
        start = time.perf_counter()
        placed = sm.tetris_image(masks, 100, np.random.default_rng(seed), gap=10)
        times.append(time.perf_counter() - start)
        assert placed.labels.max() == 100
    assert min(times) < 0.5, times


# --------------------------------------------------------------------------- cluster-driven synthesis


@pytest.fixture(scope="module")
def cluster():
    tiles = [synthetic_nuclei((256, 256), 40, 16, seed=s).labels for s in range(3)]
    db_images = [synthetic_nuclei((256, 256), 30, d, seed=10 + s).labels for s, d in enumerate((10, 16, 24, 30))]
    return tiles, build_mask_db(db_images)


def test_cluster_statistics(cluster):
    tiles, _ = cluster
    stats = sm.cluster_statistics(tiles)
    areas = np.concatenate([np.bincount(t.ravel())[1:] for t in tiles])
    areas = areas[areas >= 35]
    assert stats.mean_area == pytest.approx(areas.mean())
    assert stats.area_sigma == pytest.approx(min(0.2 * areas.mean(), areas.std(ddof=1)))
    assert np.all(np.isfinite(stats.edge_distance)) and stats.edge_distance.min() >= 2  # the generator keeps gaps
    assert stats.counts == pytest.approx([512 * 512 / a[a >= 35].mean() for a in
                                          (np.bincount(t.ravel())[1:] for t in tiles)])


def test_resize_to_areas_q8_switch():
    stats = sm.ClusterStats(np.full(10, 400.0), np.zeros((10, 4)), np.full(10, 5.0), np.array([600.0]))
    assert stats.area_sigma == 0.0
    big = _disk(20)  # ~1257 px
    fixed = sm.resize_to_areas([big], stats, np.random.default_rng(0), linear_area_ratio=False)[0]
    quirk = sm.resize_to_areas([big], stats, np.random.default_rng(0), linear_area_ratio=True)[0]
    assert fixed.sum() == pytest.approx(400, rel=0.1)
    # Q8: the area ratio 400/1257 is used as a LINEAR factor -> area ~ 400²/1257 ~ 127 (pixel rounding: +-25 %)
    assert quirk.sum() == pytest.approx(400 ** 2 / big.sum(), rel=0.25)
    assert quirk.sum() < 0.5 * fixed.sum()


def test_simcep_q9_switch():
    m = measure_objects(_ellipse(22, 10).astype(int))  # an elongated nucleus (shape ratio 2.2) as the target
    target = np.array([[m[f][0] for f in ("shape_ratio", "circularity", "eccentricity", "solidity")]])
    stats = sm.ClusterStats(m["area"], target, np.full(1, 5.0), np.array([870.0]))
    rng = np.random.default_rng(0)
    stretched = sm.simcep_shapes(15, stats, rng, unstretched=False, tolerance=0.15)
    round_ = sm.simcep_shapes(15, stats, np.random.default_rng(0), unstretched=True, tolerance=0.15)
    assert len(stretched) == len(round_) == 15
    ecc = lambda ms: np.mean([measure_objects(m.astype(int))["eccentricity"][0] for m in ms])  # noqa: E731
    assert ecc(stretched) > 0.8 and ecc(round_) < 0.7


def test_generated_masks_match_the_cluster(cluster):
    tiles, db = cluster
    opts = sm.SynthesisOptions(n_db_masks=100, linear_area_ratio=False, n_cells=40)
    labels, stats = sm.generate_cluster_masks(db, tiles, 3, seed=11, options=opts)
    again, _ = sm.generate_cluster_masks(db, tiles, 3, seed=11, options=opts)
    assert all(np.array_equal(a, b) for a, b in zip(labels, again))  # deterministic under the seed
    for lab in labels:
        assert lab.shape == (512, 512) and lab.max() == 40
        areas = np.bincount(lab.ravel())[1:]
        assert np.median(areas) == pytest.approx(stats.mean_area, rel=0.25)
    default = sm.generate_cluster_masks(db, tiles, 1, seed=3, options=sm.SynthesisOptions(n_db_masks=100))[0][0]
    assert default.max() >= 25  # at least minNumberOfCells when room allows
