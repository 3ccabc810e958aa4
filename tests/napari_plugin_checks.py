"""The napari plugin: the manifest validates, Segment on the sample data gives the CLI's labels, Export
writes files that read back, Cancel stops a long run, and errors are one-line notifications.

Run by tests/test_napari_plugin.py in a pytest process of its own, one without TensorFlow: TensorFlow
and an OpenGL driver built on LLVM (Mesa's, as under Xvfb) cannot share a process (it crashes when the
second loads or at exit), and other test files import TensorFlow. The plugin runs its models in a
separate process for the same reason (nucleaizer_tf.napari.engine); the CLI runs in a subprocess here.
Needs napari (the `test` extra) and a display: pytest-xvfb starts a virtual one where Xvfb is installed
(`.ci/run` installs it).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari", reason="the napari plugin's tests need napari (pip install -e '.[test]')")
assert "tensorflow" not in sys.modules, "run these checks in a process without TensorFlow (tests/test_napari_plugin.py)"
if not os.environ.get("DISPLAY"):
    pytest.skip("needs a display for napari's canvas: install Xvfb (pytest-xvfb starts it) or run on a desktop",
                allow_module_level=True)

from napari.utils.notifications import notification_manager

from nucleaizer_tf.io import read_geojson, read_image, read_labels, read_roi_zip
from nucleaizer_tf.napari.adapt_widget import AdaptWidget
from nucleaizer_tf.napari.engine import ENGINE
from nucleaizer_tf.napari.export_widget import ExportWidget
from nucleaizer_tf.napari.model_list import ModelList
from nucleaizer_tf.napari.segment_widget import SegmentWidget

REPO = Path(__file__).resolve().parents[1]
SEGMENT_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module", autouse=True)
def _engine_stopped_after_the_module():
    yield
    ENGINE.close()


def _errors_since(start: int) -> list[str]:
    return [n.message for n in notification_manager.records[start:] if n.severity == "error"]


def _segment(qtbot, viewer, widget) -> None:
    widget.run()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=SEGMENT_TIMEOUT_MS)


def test_manifest_validates_and_every_command_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("nucleaizer-tf")
    manifest.validate_imports()
    assert {w.display_name for w in manifest.contributions.widgets} == {"Segment", "Adapt", "Export"}
    assert {s.key for s in manifest.contributions.sample_data} == {"fluo_dense", "fluo_sparse", "brightfield"}


def test_segment_on_sample_data_equals_the_cli_and_export_reads_back(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("nucleaizer-tf", "fluo_sparse")
    assert viewer.layers["fluo_sparse"].data.shape == (256, 256, 3)
    widget = SegmentWidget(viewer, models=ModelList())
    viewer.window.add_dock_widget(widget, name="Segment")
    assert widget.image.value == "fluo_sparse" and widget.model.value == "default"
    _segment(qtbot, viewer, widget)
    assert "fluo_sparse nuclei" in viewer.layers, widget.panel.status.value
    labels = np.asarray(viewer.layers["fluo_sparse nuclei"].data)

    cli = tmp_path / "cli"
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REPO / "examples" / "images" / "fluo_sparse.png", images)
    done = subprocess.run([sys.executable, "-m", "nucleaizer_tf", "predict", str(images), str(cli), "-q"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = read_labels(cli / "fluo_sparse.tiff")
    assert labels.max() > 5
    np.testing.assert_array_equal(labels, expected)
    assert widget.panel.status.value.startswith(f"{labels.max()} nuclei, median diameter")

    exporter = ExportWidget(viewer)
    viewer.window.add_dock_widget(exporter, name="Export")
    exporter.labels_layer.value, exporter.image_layer.value = "fluo_sparse nuclei", "fluo_sparse"
    exporter.out.value = tmp_path / "exports"
    written = exporter.export()
    stem = "fluo_sparse nuclei"
    assert [p.relative_to(tmp_path / "exports").as_posix() for p in written] == [
        f"labels/{stem}.tiff", f"measurements/{stem}.csv", f"rois/{stem}.zip", f"geojson/{stem}.geojson"]
    np.testing.assert_array_equal(read_labels(written[0]), labels)
    rows = (tmp_path / "exports" / "measurements" / f"{stem}.csv").read_text().splitlines()
    assert len(rows) == 1 + labels.max()
    for reread in (read_roi_zip(written[2], labels.shape), read_geojson(written[3], labels.shape)):
        for label in range(1, int(labels.max()) + 1):
            a, b = labels == label, reread == label
            assert (a & b).sum() / (a | b).sum() >= 0.95
    feature = json.loads(written[3].read_text())["features"][0]
    assert feature["properties"]["objectType"] == "detection"

    start = len(notification_manager.records)
    assert exporter.export() == []  # the files exist now: refused, nothing replaced
    assert any("already exists" in m for m in _errors_since(start))
    exporter.overwrite.value = True
    assert len(exporter.export()) == 4

    # the instance knobs: the same settings give the same nuclei in napari and in predict
    widget.seed_threshold.value, widget.min_size.value, widget.exclude_edges.value = 0.7, 300, True
    assert widget.options()["seed_threshold"] == 0.7 and widget.options()["foreground_threshold"] is None
    _segment(qtbot, viewer, widget)
    tuned = np.asarray(viewer.layers[-1].data)  # the second "fluo_sparse nuclei" layer
    done = subprocess.run([sys.executable, "-m", "nucleaizer_tf", "predict", str(images), str(tmp_path / "cli2"), "-q",
                           "--seed-threshold", "0.7", "--min-size", "300", "--exclude-edges"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(tuned, read_labels(tmp_path / "cli2" / "fluo_sparse.tiff"))
    assert 1 < len(np.unique(tuned)) < len(np.unique(labels))  # fewer nuclei: the small ones are gone (25 -> 8)


def test_cancel_stops_a_long_run(make_napari_viewer, qtbot):
    rng = np.random.default_rng(0)
    big = (rng.random((2600, 2600)) * 40).astype(np.uint8)
    for y, x in rng.integers(20, 2580, size=(1500, 2)):
        big[y - 8:y + 8, x - 8:x + 8] = 200
    viewer = make_napari_viewer()
    viewer.add_image(big, name="mosaic")
    widget = SegmentWidget(viewer, models=ModelList())
    widget.run()
    qtbot.waitUntil(lambda: ": 1 step" in widget.panel.status.value, timeout=SEGMENT_TIMEOUT_MS)  # first tile done
    widget.cancel()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=60_000)
    assert widget.panel.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["mosaic"]

    widget.run()  # closing the viewer stops a run the same way (ENGINE.stop on the application's aboutToQuit)
    qtbot.waitUntil(lambda: ": 1 step" in widget.panel.status.value, timeout=SEGMENT_TIMEOUT_MS)
    ENGINE.stop()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=60_000)
    assert widget.panel.status.value == "cancelled"


def test_errors_are_one_line_notifications(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 32, 32), np.uint8), name="stack")
    viewer.add_image(np.zeros((64, 64), np.uint8), name="flat")
    models = ModelList()
    widget = SegmentWidget(viewer, models=models)
    start = len(notification_manager.records)
    widget.image.value = "stack"
    widget.run()
    assert _errors_since(start) == ["layer 'stack': a 3-D layer of shape (4, 32, 32); choose a 2-D image (grey or "
                                    "RGB) or split the stack into 2-D layers"]
    bad = tmp_path / "mask_rcnn_final.h5"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    widget.add_model.value = bad
    assert widget.model.value == str(bad)
    assert widget.nucleus_size.enabled  # Mask R-CNN takes a nucleus size too
    assert not widget.tta.enabled  # only the default model has test-time augmentation
    assert not (widget.seed_threshold.enabled or widget.exclude_edges.enabled)  # the default model's knobs
    widget.image.value = "flat"
    start = len(notification_manager.records)
    _segment(qtbot, viewer, widget)
    errors = _errors_since(start)
    assert len(errors) == 1 and "\n" not in errors[0] and str(bad) in errors[0], errors
    assert [layer.name for layer in viewer.layers] == ["stack", "flat"]
    start = len(notification_manager.records)
    widget.add_model.value = tmp_path / "missing.h5"
    assert _errors_since(start) == [f"{tmp_path / 'missing.h5'}: no such model folder or weight file"]

    adapt = AdaptWidget(viewer, models=models)  # the real loop, in the model process: a blank image has no nuclei
    adapt.layers.value = ["flat"]
    adapt.out.value = tmp_path / "adapted"
    start = len(notification_manager.records)
    adapt.run()
    qtbot.waitUntil(lambda: adapt.panel.run_button.enabled, timeout=SEGMENT_TIMEOUT_MS)
    errors = _errors_since(start)
    assert len(errors) == 1 and errors[0].startswith("Adapt: ") and "nuclei" in errors[0] and "\n" not in errors[0]
    assert adapt.panel.status.value == "failed" and len(models.choices) == 2


class _FakeEngine:
    """Stands in for the model process: records the adapt call, reports two stages, writes a model."""

    def __init__(self):
        self.calls = []

    def call(self, task, progress, cancelled, **arguments):
        self.calls.append((task, arguments))
        for stage in ("presegmenting", "pix2pix 0"):
            progress(stage, 0, 2)
            progress(stage, 1, 2)
            progress(stage, 2, 2)
        out = Path(arguments["out_dir"])
        shutil.copytree(REPO / "weights" / "default", out / "model")
        return {"adapted_model": str(out / "model"), "report": str(out / "report.md"), "scores": None}


def test_adapt_widget_runs_the_loop_on_the_chosen_layers_and_adds_the_model(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("nucleaizer-tf", "fluo_dense")
    viewer.open_sample("nucleaizer-tf", "brightfield")
    models, engine = ModelList(), _FakeEngine()
    segment = SegmentWidget(viewer, models=models, engine=engine)
    widget = AdaptWidget(viewer, models=models, engine=engine)
    start = len(notification_manager.records)
    widget.run()
    assert _errors_since(start) == ["choose an output folder for the adapted model"]
    widget.out.value = tmp_path / "adapted"
    widget.source.value = "a folder"
    start = len(notification_manager.records)
    widget.run()
    assert _errors_since(start) == ["choose the image folder to adapt to"] and not engine.calls
    widget.source.value = "image layers"
    widget.layers.value = ["fluo_dense"]
    widget.preset.value = "standard"
    widget.run()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=30_000)
    (task, arguments), = engine.calls
    assert task == "adapt" and sorted(arguments["images"]) == ["fluo_dense"]
    np.testing.assert_array_equal(arguments["images"]["fluo_dense"], read_image(REPO / "examples/images/fluo_dense.png"))
    assert arguments["settings"] == {"preset": "standard", "model": "default", "single_experiment": False}
    assert models.choices[-1] == ("adapted: adapted", str(tmp_path / "adapted" / "model"))
    assert str(tmp_path / "adapted" / "model") in segment.model.choices
    assert widget.panel.status.value.startswith("adapted in")
