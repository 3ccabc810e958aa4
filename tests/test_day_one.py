"""What a Cellpose or StarDist user hits on day one (issue 27): promises the README makes, kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("missing", ["zarr", "dask"])
def test_large_without_the_dask_extra_is_one_line_naming_the_extra(tmp_path, monkeypatch, missing):
    image = tmp_path / "big.tif"
    tifffile.imwrite(image, np.zeros((256, 256), np.uint8), tile=(128, 128))
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it now fails as if it were not installed
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "out"), "--large"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: this needs {missing}, from the optional 'dask' extra: pip install 'nucleaizer-tf[dask]'"]
    assert result.stderr.strip().splitlines()[-1] == errors[0]


def _cli_options() -> set[str]:
    import typer

    found: set[str] = set()

    def walk(command):
        for param in command.params:
            found.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


def test_every_option_the_docs_and_messages_name_exists():
    """README, docs, weights/README and every message in the package and the CLI name only options that
    exist: of a command, or of the script in scripts/ they describe."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    known = _cli_options() | {"--help"} | {"--nworkers", "--nthreads"}  # the last two: dask-worker's own
    for script in (root / "scripts").glob("*.py"):
        known |= set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9-]*)\"", script.read_text()))
    sources = [root / "README.md", root / "docs" / "method.md", root / "weights" / "README.md",
               *(root / "nucleaizer_tf").rglob("*.py"), *(root / "cli").rglob("*.py")]
    named = {}
    for source in sources:
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w])", source.read_text()):
            named.setdefault(option, source.relative_to(root).as_posix())
    missing = {option: where for option, where in named.items() if option not in known}
    assert missing == {}
    assert "--tile" in known  # the default model's tile size, which messages name, is a predict option


def test_a_failed_image_is_named_once(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_text("not a png")
    result = runner.invoke(app, ["predict", str(images), str(tmp_path / "out"), "-q"])
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {images / 'a.png'}: not a PNG file (its first bytes do not match the format)"]


def test_predict_never_replaces_a_file_it_did_not_write(tmp_path):
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(images / f"{name}.png"), np.pad(np.full((12, 12), 200, np.uint8), 26))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.tiff").write_text("my notes, not a label image\n")
    first = runner.invoke(app, ["predict", str(images), str(out), "-q"])
    assert first.exit_code == 1 and "Traceback" not in first.output
    assert [line for line in first.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {images / 'a.png'}: {out / 'a.tiff'}: exists and was not written by nucleaizer-tf; not replaced "
        "(--overwrite replaces it)"]
    assert (out / "a.tiff").read_text() == "my notes, not a label image\n"
    assert tifffile.imread(out / "b.tiff").shape == (64, 64)  # the other image is segmented
    # what this tool wrote it replaces on a rerun, with other settings too
    again = runner.invoke(app, ["predict", str(images / "b.png"), str(out), "--tile", "512", "-q"])
    assert again.exit_code == 0, again.output
    # a user's file where an overlay would go is protected the same way
    (out / "overlays").mkdir()
    (out / "overlays" / "b.png").write_text("mine")
    overlay = runner.invoke(app, ["predict", str(images / "b.png"), str(out), "--overlay", "-q"])
    assert overlay.exit_code == 1 and f"{out / 'overlays' / 'b.png'}: exists and was not written" in overlay.stderr
    assert (out / "overlays" / "b.png").read_text() == "mine"
    (out / "overlays" / "b.png").unlink()  # once it is gone, the overlay is written; reruns replace it
    for _ in range(2):
        rerun = runner.invoke(app, ["predict", str(images / "b.png"), str(out), "--overlay", "-q"])
        assert rerun.exit_code == 0, rerun.output
    # a run on other images keeps what the journal knows of b: b's files are still this tool's
    assert runner.invoke(app, ["predict", str(images / "a.png"), str(out), "--overwrite", "-q"]).exit_code == 0
    assert runner.invoke(app, ["predict", str(images / "b.png"), str(out), "--overlay", "-q"]).exit_code == 0
    replaced = runner.invoke(app, ["predict", str(images), str(out), "--overwrite", "-q"])
    assert replaced.exit_code == 0 and tifffile.imread(out / "a.tiff").shape == (64, 64)


def test_diameter_is_the_nucleus_size(tmp_path):
    import json

    import cv2

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.pad(np.full((12, 12), 200, np.uint8), 26))
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "out"), "--diameter", "14", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "nucleaizer-tf.json").read_text())["settings"]["nucleus_size"] == 14


@pytest.mark.parametrize("code", [
    "import nucleaizer_tf, numpy; print(nucleaizer_tf.load_model('default').segment(numpy.zeros((32, 32))).max())",
    # the quick-start notebook's way in, and the legacy notebook's (TensorFlow first imported elsewhere)
    "import numpy; from nucleaizer_tf.default_model import DefaultModel; print(DefaultModel.load().segment(numpy.zeros((32, 32))).max())",
    "from nucleaizer_tf.maskrcnn import MaskRCNN; import tensorflow as tf; print(int(tf.reduce_sum(tf.zeros(3))))",
], ids=["load_model", "DefaultModel", "maskrcnn"])
def test_the_python_api_starts_tensorflow_without_chatter(code):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr[-2000:]
    assert done.stderr == "", done.stderr[-2000:]  # no oneDNN banner, no cuInit, no absl warnings


def test_predict_reports_the_model_load_as_a_stage(tmp_path):
    import cv2

    from nucleaizer_tf.pipelines.predict import run_predict
    from nucleaizer_tf.progress import RecordingReporter

    cv2.imwrite(str(tmp_path / "a.png"), np.pad(np.full((12, 12), 200, np.uint8), 26))
    recorder = RecordingReporter()
    run_predict(tmp_path / "a.png", tmp_path / "out", reporter=recorder)
    assert recorder.stages == [("loading the model", None), ("segmenting", 1)]


def test_the_instance_knobs_change_the_nuclei_and_are_recorded(tmp_path):
    import json

    from nucleaizer_tf import load_model
    from nucleaizer_tf.synthetic import synthetic_nuclei

    sample = synthetic_nuclei((128, 128), 12, 20.0, seed=3)
    model = load_model("default")
    plain = model.segment(sample.image, nucleus_size=20)
    edges = plain[[0, -1], :].ravel().tolist() + plain[:, [0, -1]].ravel().tolist()
    inner = model.segment(sample.image, nucleus_size=20, exclude_edges=True)
    assert inner.max() == len(set(np.unique(plain)) - set(edges) - {0})
    assert not (inner[[0, -1], :].any() or inner[:, [0, -1]].any())
    sizes = np.bincount(plain.ravel())[1:]
    big = model.segment(sample.image, nucleus_size=20, min_size=int(np.median(sizes)))
    assert big.max() == int((sizes >= np.median(sizes)).sum())
    loose = model.segment(sample.image, nucleus_size=20, foreground_threshold=0.9)
    assert (loose > 0).sum() > (plain > 0).sum()  # a higher P(background) bound draws larger outlines
    tifffile.imwrite(tmp_path / "a.tif", sample.image)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.tif"), str(tmp_path / "out"), "--exclude-edges",
                                 "--min-size", "30", "--seed-threshold", "0.8", "-q"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "out" / "nucleaizer-tf.json").read_text())["settings"]
    assert (settings["exclude_edges"], settings["min_size"], settings["seed_threshold"]) == (True, 30, 0.8)
    assert settings["foreground_threshold"] == model.model.foreground_threshold  # the model's, recorded


def test_save_probabilities_writes_the_class_map_the_labels_came_from(tmp_path):
    import json

    from nucleaizer_tf.io import read_labels
    from nucleaizer_tf.synthetic import synthetic_nuclei

    sample = synthetic_nuclei((96, 128), 8, 20.0, seed=6)
    tifffile.imwrite(tmp_path / "a.tif", sample.image)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.tif"), str(tmp_path / "out"), "--save-probabilities", "-q"])
    assert result.exit_code == 0, result.output
    prob = tifffile.imread(tmp_path / "out" / "probabilities" / "a.tiff")
    labels = read_labels(tmp_path / "out" / "a.tiff")
    assert prob.shape == (96, 128, 3) and prob.dtype == np.uint8
    background = prob[..., 0].astype(float)
    assert background[labels == 0].mean() > 200 and background[labels > 0].mean() < 80  # the map behind the nuclei
    record = json.loads((tmp_path / "out" / "nucleaizer-tf.json").read_text())
    assert record["settings"]["save_probabilities"] is True
    assert all("probabilities" not in entry for entry in record["images"])  # a file, not a fact in the record
    written = (tmp_path / "out" / "probabilities" / "a.tiff").stat().st_mtime_ns
    again = runner.invoke(app, ["predict", str(tmp_path / "a.tif"), str(tmp_path / "out"), "--save-probabilities",
                                "--skip-existing", "-q"])
    assert again.exit_code == 0 and (tmp_path / "out" / "probabilities" / "a.tiff").stat().st_mtime_ns == written
    (tmp_path / "out" / "probabilities" / "a.tiff").unlink()  # a missing map: the image is done again
    again = runner.invoke(app, ["predict", str(tmp_path / "a.tif"), str(tmp_path / "out"), "--save-probabilities",
                                "--skip-existing", "-q"])
    assert again.exit_code == 0 and (tmp_path / "out" / "probabilities" / "a.tiff").is_file()
    refused = runner.invoke(app, ["predict", str(tmp_path / "a.tif"), str(tmp_path / "o2"), "--mode", "full",
                                  "--save-probabilities"])
    assert refused.exit_code == 2 and "--save-probabilities does not apply to the" in refused.stderr


# --------------------------------------------------------------------------- channels


def _two_channel_tiff(path, *, ome=False):
    """Channel 0: noise; channel 1: nuclei (a user's nuclear stain is rarely channel 0)."""
    from nucleaizer_tf.synthetic import synthetic_nuclei

    sample = synthetic_nuclei((96, 96), 6, 18.0, seed=4)
    grey = sample.image[..., :3].mean(axis=2).astype(np.uint16) * 200
    noise = np.random.default_rng(0).integers(0, 60000, grey.shape).astype(np.uint16)
    stack = np.stack([noise, grey])
    if ome:
        tifffile.imwrite(path, stack, ome=True, metadata={"axes": "CYX"})
    else:
        tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "CYX"})
    return sample


@pytest.mark.parametrize("ome", [False, True], ids=["imagej", "ome"])
def test_a_multi_channel_image_needs_its_channel_named(tmp_path, ome):
    from nucleaizer_tf.errors import ImageReadError
    from nucleaizer_tf.io import read_image

    path = tmp_path / ("a.ome.tif" if ome else "a.tif")
    sample = _two_channel_tiff(path, ome=ome)
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert str(error.value) == (f"{path}: 2 channels (axes CYX, shape (2, 96, 96)); choose the nuclear one with "
                                "--channel 0…1 (channel= in Python)")
    assert read_image(path, channel=1).shape == (96, 96)
    with pytest.raises(ImageReadError, match="has no channel 2 \\(it has 2: 0…1\\)"):
        read_image(path, channel=2)
    out = tmp_path / "out"
    refused = runner.invoke(app, ["predict", str(path), str(out), "-q"])
    assert refused.exit_code == 1 and "choose the nuclear one with --channel 0…1" in refused.stderr
    done = runner.invoke(app, ["predict", str(path), str(tmp_path / "out1"), "--channel", "1", "-q"])
    assert done.exit_code == 0, done.output
    from nucleaizer_tf.metrics import score_image

    labels = tifffile.imread(tmp_path / "out1" / f"{path.stem}.tiff")

    assert score_image(sample.labels, labels).tp >= 5  # the nuclear channel: the nuclei are found


def test_channel_picks_a_colour_component_and_a_grey_sample_tiff_is_channels(tmp_path):
    from nucleaizer_tf.errors import ImageReadError
    from nucleaizer_tf.io import read_image

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 2] = 200
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert read_image(tmp_path / "rgb.tif").shape == (16, 16, 3)  # colour stays colour without --channel
    assert read_image(tmp_path / "rgb.tif", channel=2).max() == 200
    tifffile.imwrite(tmp_path / "two.tif", np.zeros((16, 16, 2), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageReadError, match="2 channels \\(axes YXS"):
        read_image(tmp_path / "two.tif")
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 2, 16, 16), np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})
    with pytest.raises(ImageReadError, match="multi-page TIFF"):  # planes are not channels
        read_image(tmp_path / "z.tif", channel=0)


def test_measure_reads_the_channel_predict_segmented(tmp_path):
    path = tmp_path / "images" / "a.tif"
    path.parent.mkdir()
    _two_channel_tiff(path)
    assert runner.invoke(app, ["predict", str(path), str(tmp_path / "labels"), "--channel", "1", "-q"]).exit_code == 0
    refused = runner.invoke(app, ["measure", str(path.parent), str(tmp_path / "labels"), str(tmp_path / "m0"), "-q"])
    assert refused.exit_code == 2 and "--channel 0…1" in refused.stderr
    done = runner.invoke(app, ["measure", str(path.parent), str(tmp_path / "labels"), str(tmp_path / "m"),
                               "--channel", "1", "-q"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "m" / "measurements" / "a.csv").is_file()


def test_a_z_stack_is_refused_or_segmented_as_its_maximum_projection(tmp_path):
    import json

    from nucleaizer_tf.errors import ImageReadError
    from nucleaizer_tf.io import read_image
    from nucleaizer_tf.synthetic import synthetic_nuclei

    sample = synthetic_nuclei((96, 96), 6, 18.0, seed=4)
    grey = sample.image[..., :3].mean(axis=2).astype(np.uint16) * 200
    planes = np.stack([grey // 4, grey, grey // 2])  # in focus in the middle plane
    stack = np.stack([np.zeros_like(planes), planes], axis=1)  # ZCYX: channel 1 holds the nuclei
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(ImageReadError, match="--planes each.*--planes max"):
        read_image(path, channel=1)
    assert np.array_equal(read_image(path, channel=1, planes="max"), grey)
    with pytest.raises(ImageReadError, match=r"z.tif: 288×96 pixels"):  # every plane counts against the limit
        read_image(path, channel=1, planes="max", max_pixels=20_000)
    result = runner.invoke(app, ["predict", str(path), str(tmp_path / "out"), "--channel", "1", "--planes", "max",
                                 "-q"])
    assert result.exit_code == 0, result.output
    from nucleaizer_tf.metrics import score_image

    assert score_image(sample.labels, tifffile.imread(tmp_path / "out" / "z.tiff")).tp >= 5
    settings = json.loads((tmp_path / "out" / "nucleaizer-tf.json").read_text())["settings"]
    assert settings["channel"] == 1 and settings["planes"] == "max"


def test_planes_each_segments_every_plane_into_a_label_stack_with_the_same_axes(tmp_path):
    """A T×Z stack (ImageJ hyperstack, with a channel) in, a T×Z label stack out: every plane segmented in
    2-D with the ids of the planes distinct, the measurements and ROIs carrying their plane, and `measure
    --planes each` reading the same files back; the 2-D image beside it is segmented as always."""
    import csv
    import json

    import roifile

    from nucleaizer_tf.io import read_planes
    from nucleaizer_tf.metrics import score_image
    from nucleaizer_tf.synthetic import synthetic_nuclei

    samples = [synthetic_nuclei((96, 96), 5 + k, 18.0, seed=10 + k) for k in range(4)]
    greys = [(s.image[..., :3].mean(axis=2) * 200).astype(np.uint16) for s in samples]
    planes = np.stack(greys).reshape(2, 2, 96, 96)  # T, Z
    stack = np.stack([np.zeros_like(planes), planes], axis=2)  # TZCYX: channel 1 holds the nuclei
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "s.tif", stack, imagej=True, metadata={"axes": "TZCYX"})
    tifffile.imwrite(images / "flat.tif", np.stack([np.zeros_like(greys[0]), greys[0]]), imagej=True,
                     metadata={"axes": "CYX"})
    read, axes = read_planes(images / "s.tif", channel=1)
    assert axes == "TZ" and np.array_equal(read, planes)
    refused = runner.invoke(app, ["predict", str(images), str(tmp_path / "x"), "--channel", "1", "--planes", "each",
                                  "--overlay", "-q"])
    assert refused.exit_code != 0 and "--overlay do(es) not apply to --planes each" in refused.stderr

    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(images), str(out), "--channel", "1", "--planes", "each",
                                 "--save-csv", "--save-rois", "-q"])
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out / "s.tiff") as tif:
        assert tif.series[0].axes == "TZYX" and tif.is_imagej
        labels = tif.asarray()
    assert labels.shape == (2, 2, 96, 96)
    per_plane = [set(np.unique(labels[t, z])) - {0} for t in range(2) for z in range(2)]
    assert all(not (a & b) for i, a in enumerate(per_plane) for b in per_plane[i + 1:])  # ids unique over the stack
    for k, sample in enumerate(samples):
        assert score_image(sample.labels, labels[k // 2, k % 2]).f1 >= 0.8
    assert tifffile.imread(out / "flat.tiff").shape == (96, 96)
    with open(out / "measurements" / "s.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["t", "z", "label"]
    assert {(r["t"], r["z"]) for r in rows} == {("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")}
    assert len(rows) == len(set().union(*per_plane))
    rois = roifile.roiread(out / "rois" / "s.zip")
    assert sorted({r.position for r in rois}) == [1, 2, 3, 4] and len(rois) == len(rows)
    record = json.loads((out / "nucleaizer-tf.json").read_text())
    assert record["settings"]["planes"] == "each"
    entry = next(e for e in record["images"] if e["image"].endswith("s.tif"))
    assert len(entry["planes"]) == 4 and entry["objects"] == len(rows)

    measured = runner.invoke(app, ["measure", str(images), str(out), str(tmp_path / "m"), "--channel", "1",
                                   "--planes", "each", "-q"])
    assert measured.exit_code == 0, measured.output
    assert (tmp_path / "m" / "measurements" / "s.csv").read_text() == (out / "measurements" / "s.csv").read_text()


def test_predict_help_groups_its_options_in_panels():
    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    headings = [line[:-1] for line in result.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["Arguments", "Inputs, outputs and the model", "Default model", "Legacy Mask R-CNN",
                        "Full pipeline (--mode full)", "Exports", "Scale-out", "Options"]
    sections, current = {}, None
    for line in result.stdout.splitlines():
        if line[:-1] in headings:
            current = line[:-1]
        elif line.startswith("  -"):
            sections.setdefault(current, []).append(line.split()[0].rstrip(","))
    assert {"--seed-threshold", "--min-size", "--tta"} <= set(sections["Default model"])
    assert {"--confidence", "--dilation"} <= set(sections["Legacy Mask R-CNN"])
    assert {"--save-rois", "--save-geojson"} <= set(sections["Exports"])
    assert sections["Options"] == ["--help"]  # every option has its panel


def test_the_python_api_takes_the_channel_like_predict():
    from nucleaizer_tf import load_model
    from nucleaizer_tf.errors import NucleaizerError
    from nucleaizer_tf.synthetic import synthetic_nuclei

    grey = (synthetic_nuclei((96, 96), 6, 18.0, seed=4).image[..., :3].mean(axis=2) * 200).astype(np.uint16)
    noise = np.random.default_rng(0).integers(0, 60000, grey.shape).astype(np.uint16)
    model = load_model("default")
    expected = model.segment(grey)
    assert expected.max() >= 4
    assert np.array_equal(model.segment(np.stack([noise, grey]), channel=1), expected)           # C, Y, X
    assert np.array_equal(model.segment(np.stack([noise, grey, noise], axis=-1), channel=1), expected)  # Y, X, C
    assert [np.array_equal(labels, expected) for labels in model.segment_many([np.stack([grey, noise])], channel=0)] == [True]
    with pytest.raises(NucleaizerError, match="pick one channel with channel=N"):
        model.segment(np.stack([noise, grey]))
    with pytest.raises(NucleaizerError, match=r"has 2 channels \(0…1\)"):
        model.segment(np.stack([noise, grey]), channel=2)


def test_the_planes_choices_of_the_cli_are_those_the_reader_takes():
    from nucleaizer_tf.cli.common import Planes
    from nucleaizer_tf.io.read import PLANES

    assert [p.value for p in Planes] == list(PLANES)
