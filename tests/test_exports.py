"""Outputs for Fiji, QuPath and spreadsheets: ROI sets, GeoJSON and measurement CSVs, and reading them back."""

import csv
import json

import numpy as np
import pytest
import roifile
import shapely
import tifffile
from scipy import ndimage
from shapely.geometry import shape as geometry_from_json
from skimage.draw import polygon as fill_polygon
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.errors import ImageReadError
from nucleaizer_tf.io import read_labels, write_geojson, write_labels, write_roi_zip
from nucleaizer_tf.io.export import write_table_csv
from nucleaizer_tf.measure import measure_nuclei, trace_mask, trace_outlines
from nucleaizer_tf.synthetic import synthetic_nuclei

runner = CliRunner()


def _labels_with_hole_and_border():
    """Synthetic nuclei plus one ring-shaped nucleus (a hole) and one cut by the image border."""
    labels = synthetic_nuclei((160, 160), 25, 16, seed=7).labels.astype(np.uint16)
    ring_id, edge_id = int(labels.max()) + 1, int(labels.max()) + 2
    labels[0:14, 0:14] = 0
    labels[2:12, 2:12] = ring_id
    labels[5:8, 5:9] = 0  # the hole
    labels[150:160, 100:112] = edge_id
    return labels, ring_id


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def _assert_same_nuclei(original, drawn):
    """drawn: {label: boolean mask}; every nucleus present with IoU >= 0.95, none invented."""
    ids = [int(i) for i in np.unique(original) if i]
    assert sorted(drawn) == ids
    for label, mask in drawn.items():
        assert _iou(original == label, mask) >= 0.95, label


def test_roi_zip_reads_back_with_roifile_as_every_nucleus(tmp_path):
    labels, _ = _labels_with_hole_and_border()
    path = write_roi_zip(tmp_path / "a.zip", trace_outlines(labels))
    rois = roifile.roiread(path)
    names = [roi.name for roi in rois]
    assert names == sorted(names) and all(len(n) == 4 for n in names)  # zero-padded: Fiji sorts them
    drawn = {}
    for roi in rois:
        assert roi.roitype == roifile.ROI_TYPE.POLYGON and roi.subpixel_coordinates is None
        xy = roi.coordinates()
        rr, cc = fill_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, labels.shape)  # pixel centres inside
        mask = np.zeros(labels.shape, bool)
        mask[rr, cc] = True
        drawn[int(roi.name)] = mask
    outer = labels.copy()
    outer[5:8, 5:9] = labels[2, 2]  # an ROI is the outer contour: the hole is covered
    _assert_same_nuclei(outer, drawn)


def test_geojson_is_valid_for_shapely_with_holes_and_qupath_fields(tmp_path):
    labels, ring_id = _labels_with_hole_and_border()
    path = write_geojson(tmp_path / "a.geojson", trace_outlines(labels), measure_nuclei(labels))
    payload = json.loads(path.read_text())
    assert payload["type"] == "FeatureCollection"
    ys, xs = np.mgrid[0 : labels.shape[0], 0 : labels.shape[1]]
    drawn = {}
    for feature in payload["features"]:
        props = feature["properties"]
        assert props["objectType"] == "detection" and props["classification"]["name"] == "Nucleus"
        label = int(props["name"])
        assert props["measurements"]["label"] == label
        assert props["measurements"]["area_px"] == np.count_nonzero(labels == label)
        rings = feature["geometry"]["coordinates"]
        assert all(ring[0] == ring[-1] for ring in rings)  # closed rings
        geometry = geometry_from_json(feature["geometry"])
        assert geometry.is_valid, shapely.is_valid_reason(geometry)
        if label == ring_id:
            assert geometry.geom_type == "Polygon" and len(geometry.interiors) == 1
            assert shapely.Polygon(geometry.interiors[0]).area == 12  # the 3 x 4 pixel hole
        drawn[label] = shapely.contains_xy(geometry, xs + 0.5, ys + 0.5)
    _assert_same_nuclei(labels, drawn)


def test_tracing_is_pixel_exact_on_random_masks():
    rng = np.random.default_rng(0)
    for trial in range(60):
        mask = rng.random((11, 13)) > 0.5  # holes, corner contacts, several parts
        if trial % 2:
            mask = ndimage.binary_opening(mask)
        parts = [shapely.Polygon(exterior, holes) for exterior, holes in trace_mask(mask)]
        geometry = shapely.make_valid(shapely.MultiPolygon(parts)) if parts else shapely.Polygon()
        ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
        assert np.array_equal(shapely.contains_xy(geometry, xs + 0.5, ys + 0.5), mask), trial
        assert all(ring.dtype.kind == "i" for exterior, holes in trace_mask(mask) for ring in (exterior, *holes))


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_csv_areas_and_intensities_equal_numpy_on_known_values(tmp_path, dtype):
    labels = np.zeros((40, 50), np.int32)
    labels[2:10, 3:9] = 1
    labels[20:31, 10:30] = 4  # ids need not be consecutive
    labels[33:36, 40:49] = 9
    rng = np.random.default_rng(3)
    top = 60000 if dtype == np.uint16 else 250
    image = rng.integers(0, top, (40, 50, 2) if dtype == np.uint8 else (40, 50)).astype(dtype)
    path = write_table_csv(tmp_path / "m.csv", measure_nuclei(labels, image, pixel_size=0.5))
    rows = _read_csv(path)
    assert [int(r["label"]) for r in rows] == [1, 4, 9]
    channels = image[:, :, None] if image.ndim == 2 else image
    for row in rows:
        inside = labels == int(row["label"])
        assert int(row["area_px"]) == inside.sum()
        assert float(row["area_um2"]) == pytest.approx(inside.sum() * 0.25)
        for c in range(channels.shape[2]):
            suffix = f"_c{c}" if channels.shape[2] > 1 else ""
            values = channels[:, :, c][inside].astype(np.int64)
            assert int(row[f"intensity_min{suffix}"]) == values.min()
            assert int(row[f"intensity_max{suffix}"]) == values.max()
            assert int(row[f"intensity_integrated{suffix}"]) == values.sum()
            assert float(row[f"intensity_mean{suffix}"]) == pytest.approx(values.mean(), rel=1e-12)
    if dtype == np.uint16:
        assert max(int(r["intensity_max"]) for r in rows) > 255  # 16-bit values, not rescaled to 8 bits


def test_shape_columns_agree_with_scikit_image_regionprops():
    from skimage.measure import regionprops

    labels = synthetic_nuclei((128, 128), 15, 18, seed=5).labels
    table = measure_nuclei(labels)
    assert list(table)[:13] == ["label", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                                "area_px", "perimeter_px", "equivalent_diameter_px", "eccentricity", "solidity",
                                "orientation_rad"]
    for i, region in enumerate(regionprops(labels)):
        assert table["label"][i] == region.label and table["area_px"][i] == region.area
        assert (table["bbox_y0"][i], table["bbox_x0"][i], table["bbox_y1"][i], table["bbox_x1"][i]) == region.bbox
        assert table["centroid_y"][i] == pytest.approx(region.centroid[0])
        assert table["eccentricity"][i] == pytest.approx(region.eccentricity, abs=1e-9)
        assert table["orientation_rad"][i] == pytest.approx(region.orientation, abs=1e-9)
        assert table["solidity"][i] == pytest.approx(region.solidity)


def test_outlines_read_back_as_the_same_label_image_and_need_a_shape(tmp_path):
    labels, _ = _labels_with_hole_and_border()
    outlines = trace_outlines(labels)
    geojson = write_geojson(tmp_path / "a.geojson", outlines)
    assert np.array_equal(read_labels(geojson, shape=labels.shape), labels)
    rois = write_roi_zip(tmp_path / "a.zip", outlines)
    back = read_labels(rois, shape=labels.shape)
    assert np.array_equal(back[labels > 0], labels[labels > 0])  # holes are filled in a polygon ROI
    with pytest.raises(ImageReadError, match="a.zip: .*image shape"):
        read_labels(rois)
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(ImageReadError, match="bad.geojson: not a valid GeoJSON file"):
        read_labels(tmp_path / "bad.geojson", shape=(5, 5))


def test_empty_label_image_writes_valid_empty_files(tmp_path):
    empty = np.zeros((30, 30), np.uint16)
    rois = write_roi_zip(tmp_path / "e.zip", trace_outlines(empty))
    assert roifile.roiread(rois) == []
    geojson = write_geojson(tmp_path / "e.geojson", trace_outlines(empty), measure_nuclei(empty))
    assert json.loads(geojson.read_text()) == {"type": "FeatureCollection", "features": []}
    table = write_table_csv(tmp_path / "e.csv", measure_nuclei(empty, np.ones((30, 30), np.uint16)))
    lines = table.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("label,") and "intensity_mean" in lines[0]
    assert read_labels(rois, shape=(30, 30)).max() == 0


def _image_and_label_folders(tmp_path, n=2, shape=(96, 96)):
    images, masks = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    masks.mkdir()
    samples = []
    for i in range(n):
        sample = synthetic_nuclei(shape, 10, 16, seed=i)
        tifffile.imwrite(images / f"img{i}.tif", (sample.image[:, :, 2].astype(np.uint16) * 200))
        write_labels(masks / f"img{i}.tiff", sample.labels)
        samples.append(sample)
    return images, masks, samples


def test_measure_command_writes_csvs_rois_geojson_and_summary(tmp_path):
    images, masks, samples = _image_and_label_folders(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["measure", str(images), str(masks), str(out), "--save-rois", "--save-geojson",
                                 "--pixel-size", "0.325"])
    assert result.exit_code == 0, result.stderr
    summary = _read_csv(out / "summary.csv")
    assert [int(r["nuclei"]) for r in summary] == [int(s.labels.max()) for s in samples]
    assert "median_area_um2" in summary[0] and float(summary[0]["median_area_um2"]) > 0
    for i, sample in enumerate(samples):
        rows = _read_csv(out / "measurements" / f"img{i}.csv")
        assert len(rows) == sample.labels.max() and "area_um2" in rows[0]
        assert len(roifile.roiread(out / "rois" / f"img{i}.zip")) == sample.labels.max()
        assert len(json.loads((out / "geojson" / f"img{i}.geojson").read_text())["features"]) == sample.labels.max()


def test_measure_refuses_a_pair_of_different_shapes_in_one_line(tmp_path):
    images, masks, _ = _image_and_label_folders(tmp_path)
    write_labels(masks / "img1.tiff", np.zeros((50, 60), np.uint16))
    result = runner.invoke(app, ["measure", str(images), str(masks), str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "img1.tif" in lines[0] and "img1.tiff" in lines[0]


def test_evaluate_scores_an_roi_zip_against_a_tiff(tmp_path):
    images, masks, samples = _image_and_label_folders(tmp_path, n=1)
    drawn = tmp_path / "fiji"
    labels = samples[0].labels
    write_roi_zip(drawn / "img0.zip", trace_outlines(labels))
    result = runner.invoke(app, ["evaluate", str(masks), str(drawn), "-q"])
    assert result.exit_code == 0, result.stderr
    assert "DSB score 1.0000 over 1 images" in result.stdout
    fewer = labels.copy()
    fewer[fewer == 1] = 0
    write_roi_zip(drawn / "img0.zip", trace_outlines(fewer))  # one nucleus not drawn: the score must drop
    result = runner.invoke(app, ["evaluate", str(masks), str(drawn), "-q"])
    assert result.exit_code == 0 and "FN 1" in result.stdout


def test_predict_saves_rois_geojson_and_csv_with_the_default_model(tmp_path):
    images, _, _ = _image_and_label_folders(tmp_path, n=2, shape=(128, 128))
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(images), str(out), "--save-rois", "--save-geojson", "--save-csv", "-q"])
    assert result.exit_code == 0, result.stderr
    summary = _read_csv(out / "summary.csv")
    assert [r["image"].rsplit("/", 1)[-1] for r in summary] == ["img0.tif", "img1.tif"]
    assert all(r["model"].startswith("default") and float(r["seconds"]) > 0 for r in summary)
    for row in summary:
        stem = row["image"].rsplit("/", 1)[-1][:-4]
        labels = tifffile.imread(out / f"{stem}.tiff")
        count = len(np.unique(labels)) - 1
        assert count > 0 and int(row["nuclei"]) == count
        assert len(_read_csv(out / "measurements" / f"{stem}.csv")) == count
        rois = roifile.roiread(out / "rois" / f"{stem}.zip")
        assert sorted(int(r.name) for r in rois) == sorted(int(v) for v in np.unique(labels) if v)
        features = json.loads((out / "geojson" / f"{stem}.geojson").read_text())["features"]
        assert len(features) == count
