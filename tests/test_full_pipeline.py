"""nucleAIzer's full prediction on shared images with seeded weights: outputs, resume after a kill, caching."""

import json
import shutil

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.io import read_image
from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings
from nucleaizer_tf.pipelines.predict import predict_files

# Small network sizes keep the seeded run fast; everything else is the original's default.
SETTINGS = FullSettings(preseg_size=256, max_network_size=256)


@pytest.fixture(scope="module")
def inputs(dsb_train, legacy_fixture, tmp_path_factory):
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    root = tmp_path_factory.mktemp("full")
    images = root / "images"
    images.mkdir()
    for path in sorted((dsb_train / "images").glob("*.png"))[:3]:
        shutil.copy(path, images / path.name)
    make_seeded_ensemble(root / "unet", sigmas=(0.0, 0.5), seed=1, base_filters=4)
    return {"images": images, "unet": root / "unet", "weights": legacy_fixture.plain}


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(app, ["predict", str(inputs["images"]), str(out), "--mode", "full",
                                      "--model", str(inputs["weights"]), "--unet", str(inputs["unet"]),
                                      "--image-size", "256", "--max-network-size", "256", "-q"])
    assert result.exit_code == 0, result.stderr
    return out


def test_full_run_writes_valid_labels_and_removes_its_work_folder(inputs, uninterrupted):
    for image_path in sorted(inputs["images"].iterdir()):
        labels = tifffile.imread(uninterrupted / f"{image_path.stem}.tiff")
        assert labels.dtype == np.uint16 and labels.shape == read_image(image_path).shape[:2]
        ids = np.unique(labels)[1:]
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # post-processing relabels consecutively
    record = json.loads((uninterrupted / "nucleaizer-tf.json").read_text())
    assert record["settings"]["mode"] == "full"
    assert record["settings"]["params"] == [76, 32, 0, 1, 44, 17, 32, 25, 21]
    assert all(item["network_size_2x"] in (None, 64, 128, 192, 256) for item in record["images"])
    assert not (uninterrupted / ".nucleaizer-work").exists()


def test_killed_run_resumes_and_matches_the_uninterrupted_one(inputs, uninterrupted, tmp_path):
    files = sorted(inputs["images"].iterdir())
    work, out = tmp_path / "work", tmp_path / "out"
    first = FullPipeline(work, inputs["weights"], inputs["weights"], inputs["unet"], SETTINGS)
    calls = {"n": 0}
    real = first.segment

    def dies_on_second_image(image, stem):
        calls["n"] += 1
        if calls["n"] == 2:
            first.intermediates(image, stem)  # stages of image 2 are written ...
            raise KeyboardInterrupt  # ... and the process is killed before its final label image
        return real(image, stem)

    with pytest.raises(KeyboardInterrupt):
        predict_files(files, out, dies_on_second_image)
    assert (out / f"{files[0].stem}.tiff").exists() and not (out / f"{files[1].stem}.tiff").exists()
    cached = work / "presegment" / f"{files[1].stem}.tiff"
    before = cached.stat().st_mtime_ns

    second = FullPipeline(work, inputs["weights"], inputs["weights"], inputs["unet"], SETTINGS)
    report = predict_files(files, out, second.segment)
    assert not report.failures and cached.stat().st_mtime_ns == before  # reused, not recomputed
    for path in files:
        assert np.array_equal(tifffile.imread(out / f"{path.stem}.tiff"), tifffile.imread(uninterrupted / f"{path.stem}.tiff"))
    second.write_scale_tables()
    assert len((work / "sizes" / "scales-rcnn-2x.csv").read_text().splitlines()) == 3


def test_changed_settings_do_not_reuse_stale_intermediates(inputs, tmp_path):
    work = tmp_path / "work"
    image = read_image(sorted(inputs["images"].iterdir())[0])
    FullPipeline(work, inputs["weights"], inputs["weights"], inputs["unet"], SETTINGS).intermediates(image, "a")
    assert (work / "presegment" / "a.tiff").exists()
    changed = FullSettings(preseg_size=256, max_network_size=256, preseg_confidence=0.99)
    FullPipeline(work, inputs["weights"], inputs["weights"], inputs["unet"], changed)
    assert not (work / "presegment" / "a.tiff").exists()  # other settings: the cache was cleared
    assert (work / "2ximages" / "a.png").exists()  # this stage does not depend on the change


def test_full_mode_needs_its_models(inputs, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(inputs["images"]), str(tmp_path / "o"), "--mode", "full",
                                      "--model", str(inputs["weights"])])
    assert result.exit_code == 2 and "--unet" in result.stderr and "Traceback" not in result.stderr


def test_param_search_cli_keeps_or_improves_the_objective(inputs, dsb_train, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in inputs["images"].iterdir():
        shutil.copy(dsb_train / "masks" / f"{path.stem}.tiff", masks / f"{path.stem}.tiff")
    out = tmp_path / "best.json"
    result = CliRunner().invoke(app, ["param-search", str(inputs["images"]), str(masks), "--model", str(inputs["weights"]),
                                      "--unet", str(inputs["unet"]), "--work-dir", str(tmp_path / "work"),
                                      "--image-size", "256", "--max-network-size", "256", "--time-limit", "5",
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    found = json.loads(out.read_text())
    assert found["best_score"] >= max(found["default_score"], found["x0_score"])
    assert found["n_images"] == 3 and len(found["best_vector"]) == 9
    assert f"DSB {found['best_score']:.4f}" in result.stdout
    # the result file drives the full prediction's post-processing
    from nucleaizer_tf.postprocess.params import read_params

    assert list(read_params(out).to_vector()) == found["best_vector"]


def test_estimate_size_prints_the_spec_worked_values(dsb_train, tmp_path):
    result = CliRunner().invoke(app, ["estimate-size", str(dsb_train / "masks"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0][:12]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    # spec section 3: median eq. diameter and the 1x / 2x / 4x sizes
    assert rows["64eeef16fdc4"] == ["10.1867", rows["64eeef16fdc4"][1], "1024", "2048", "4096"]
    assert rows["57bd029b19c1"][0] == "38.8431" and rows["57bd029b19c1"][2:] == ["320", "640", "1280"]
    assert rows["ec486143ecfe"][2:] == ["1088", "2176", "4352"]
    lines = (tmp_path / "scales-rcnn-4x.csv").read_text().splitlines()
    assert len(lines) == 15 and lines[-1].split("\t")[1] == "4352.000000"  # ascending, the largest last
