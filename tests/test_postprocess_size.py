"""Nucleus-size estimation and scale files (spec 3): worked examples, gaps, MATLAB rounding, cap, CSVs."""

import math

import numpy as np
import pytest

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import read_labels
from nucleaizer_tf.postprocess import (
    SizeRecord,
    matlab_round,
    median_equivalent_diameter,
    network_sizes,
    read_scale_csv,
    write_scale_csvs,
)

# prefix: (median eq. diameter, 1x, 2x, 4x) from the spec's table
WORKED = {
    "57bd029b19c1": (38.8431, 320, 640, 1280),
    "e321cfa987e7": (15.9577, 640, 1280, 2560),
    "72b18a405555": (15.3476, 640, 1280, 2560),
    "64eeef16fdc4": (10.1867, 1024, 2048, 4096),
    "1e488c42eb1a": (41.2088, 256, 512, 1024),
    "ec486143ecfe": (9.1670, 1088, 2176, 4352),
}


@pytest.fixture(scope="module")
def worked_table(dsb_train):
    labels = {}
    for prefix in WORKED:
        (path,) = sorted((dsb_train / "masks").glob(f"{prefix}*.tiff"))
        labels[path.stem] = read_labels(path)
    return network_sizes(labels)


def test_worked_examples(worked_table):
    assert len(worked_table.records) == len(WORKED)
    for i, record in enumerate(worked_table.records):
        median, *scales = WORKED[record.name[:12]]
        assert record.median_diameter == pytest.approx(median, abs=5e-5)
        assert [worked_table.rounded[f][i] for f in (1, 2, 4)] == scales
        assert record.n_objects == record.n_labels > 0


def test_raw_values_of_64eeef16(worked_table):
    (i,) = [k for k, r in enumerate(worked_table.records) if r.name.startswith("64eeef16")]
    np.testing.assert_allclose([worked_table.raw[f][i] for f in (1, 2, 4)], [1005.2362, 2010.4725, 4020.9450],
                               atol=5e-5)


def test_median_counts_gaps_as_zero_diameter():
    labels = np.zeros((20, 20), np.uint16)
    labels[0:4, 0:4] = 1  # 16 px
    labels[10:15, 10:15] = 4  # 25 px; ids 2 and 3 are gaps
    d16, d25 = math.sqrt(64 / math.pi), math.sqrt(100 / math.pi)
    assert median_equivalent_diameter(labels) == pytest.approx(d16 / 2)  # median of [d16, 0, 0, d25]
    assert median_equivalent_diameter(labels, include_gaps=False) == pytest.approx((d16 + d25) / 2)


def test_median_of_empty_image_is_nan():
    assert math.isnan(median_equivalent_diameter(np.zeros((5, 5), np.uint16)))
    assert math.isnan(median_equivalent_diameter(np.zeros((0, 0), np.uint16)))


def test_median_rejects_negative_labels():
    with pytest.raises(ValueError):
        median_equivalent_diameter(np.array([[-1, 0]]))


def test_matlab_round_halves_away_from_zero():
    np.testing.assert_array_equal(matlab_round([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999999999999996, 0.49999999999999994]),
                                  [1, 2, 3, -1, -3, 2, 0])


def test_scale_rounding_at_exact_halves():
    # raw = 40/median · 256 · f; median 40 → raw = 256·f: choose medians giving raw/(64f) = k + 0.5 exactly
    records = [("a", (256, 256), 40 * 256 / 288.0),  # raw_1 = 288 = 4.5·64 → 320 (numpy would give 256)
               ("b", (256, 256), 40 * 256 / 352.0)]  # raw_1 = 352 = 5.5·64 → 384
    table = network_sizes(records, factors=(1,))
    np.testing.assert_array_equal(table.raw[1], [288.0, 352.0])
    np.testing.assert_array_equal(table.rounded[1], [320.0, 384.0])


def test_cap_and_stable_order_of_ties():
    records = [SizeRecord("zeta", (256, 256), 2.0), SizeRecord("alpha", (256, 256), 1.0),
               SizeRecord("mid", (256, 256), 40.0)]
    table = network_sizes(records)
    assert table.names == ["alpha", "mid", "zeta"]
    # alpha: 40/1·256·f = 10240·f, always capped; zeta: 5120·f, capped from f = 2 on
    np.testing.assert_array_equal(table.raw[1], [6000.0, 256.0, 5120.0])
    np.testing.assert_array_equal(table.raw[4], [6000.0, 1024.0, 6000.0])
    assert table.rounded[1][0] == 6016.0  # 6000/64 = 93.75 → 94·64: rounding may pass the cap, as in MATLAB
    assert table.rounded[4][0] == table.rounded[4][2] == 5888.0  # 6000/256 = 23.44 → 23·256
    # f=1: mid (256) < zeta (5120) < alpha (6000); f=4: both capped → tie kept in name order
    assert [n for n, _ in table.rows(1)] == ["mid", "zeta", "alpha"]
    assert [n for n, _ in table.rows(4)] == ["mid", "alpha", "zeta"]


def test_nan_median_propagates_and_sorts_last():
    table = network_sizes({"b": np.zeros((8, 8), np.uint16), "a": np.pad(np.ones((4, 4), np.uint16), 2)})
    assert math.isnan(table.raw[1][1]) and math.isnan(table.rounded[1][1])
    assert [n for n, _ in table.rows(1)] == ["a", "b"]
    assert table.report()[1]["median_diameter"] is None


def test_csv_files_round_trip(tmp_path):
    records = [("img_b", (256, 320), 38.8431), ("img_a", (256, 256), 10.1867)]
    table = network_sizes(records)
    paths = write_scale_csvs(table, tmp_path / "scales")
    assert sorted(p.name for p in paths) == ["scales-rcnn-1x.csv", "scales-rcnn-2x.csv", "scales-rcnn-4x.csv",
                                             "scales-unet.csv"]
    text = (tmp_path / "scales" / "scales-rcnn-2x.csv").read_text()
    assert text == "img_b\t640.000000\nimg_a\t2048.000000\n"  # ascending, %f, no header
    assert read_scale_csv(tmp_path / "scales" / "scales-rcnn-4x.csv") == {"img_b": 1280.0, "img_a": 4096.0}
    unet = read_scale_csv(tmp_path / "scales" / "scales-unet.csv")
    assert list(unet) == ["img_a", "img_b"]
    assert unet["img_a"] == pytest.approx(round(40 / 10.1867 * 4, 6))
    assert not list((tmp_path / "scales").glob(".*"))  # no temporary files left behind


def test_report_is_json_ready(worked_table):
    import json

    entry = worked_table.report()[0]
    assert set(entry) == {"name", "shape", "median_diameter", "n_objects", "n_labels", "scales"}
    assert set(entry["scales"]) == {"1x", "2x", "4x"}
    json.dumps(worked_table.report())


def test_read_scale_csv_errors(tmp_path):
    with pytest.raises(NucleaizerError, match="not found"):
        read_scale_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a\t1.0\nno-tab-here\n")
    with pytest.raises(NucleaizerError, match=r"bad.csv:2"):
        read_scale_csv(bad)
