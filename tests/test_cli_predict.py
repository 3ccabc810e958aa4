"""`nucleaizer-tf predict` end to end with the seeded legacy weight file on shared sample images."""

import json
import shutil

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.io import read_image

runner = CliRunner()


@pytest.fixture(scope="module")
def three_images(dsb_train, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for path in sorted((dsb_train / "images").glob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    return folder


def _predict(*args):
    result = runner.invoke(app, ["predict", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_predict_writes_labels_overlays_and_record(legacy_fixture, three_images, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = _predict(three_images, out, "--model", legacy_fixture.plain, "--image-size", "256",
                                    "--overlay", "--confidence", "0.6")
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    for image_path in sorted(three_images.iterdir()):
        labels = tifffile.imread(out / f"{image_path.stem}.tiff")
        assert labels.dtype == np.uint16 and labels.shape == read_image(image_path).shape[:2]
        overlay = read_image(out / "overlays" / f"{image_path.stem}.png")
        assert overlay.shape == labels.shape + (3,)
    record = json.loads((out / "nucleaizer-tf.json").read_text())
    assert record["settings"]["confidence"] == 0.6 and record["settings"]["image_size"] == 256
    assert record["settings"]["padding"] == 0.05 and record["settings"]["dilation"] == 1
    assert [item["network_size"] for item in record["images"]] == [256, 256, 256]
    assert sum(item["objects"] for item in record["images"]) > 0  # the seeded weights do detect things
    assert record["failures"] == [] and "tensorflow" in record["versions"]
    assert "wrote 3 label images" in stdout


def test_one_bad_image_is_reported_and_skipped(legacy_fixture, three_images, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(three_images, images)
    good = sorted(images.iterdir())[0]
    (images / "broken.png").write_bytes(good.read_bytes()[:300])
    out = tmp_path / "out"
    code, stdout, stderr = _predict(images, out, "--model", legacy_fixture.plain, "--image-size", "128", "-q")
    assert code == 1
    assert "failed: " in stderr and "broken.png" in stderr and "corrupt or truncated" in stderr
    assert "error: 1 of 4 images failed" in stderr and "Traceback" not in stderr
    assert len(list(out.glob("*.tiff"))) == 3
    record = json.loads((out / "nucleaizer-tf.json").read_text())
    assert [f["image"].endswith("broken.png") for f in record["failures"]] == [True]


def test_predict_input_errors_are_one_line(legacy_fixture, three_images, tmp_path):
    for args, needle in [
        ((three_images, tmp_path / "o", "--model", tmp_path / "missing.h5"), "missing.h5: no such weight file"),
        ((tmp_path / "nothing", tmp_path / "o", "--model", legacy_fixture.plain), "no such folder"),
        ((three_images, three_images, "--model", legacy_fixture.plain), "must differ from the input folder"),
    ]:
        code, stdout, stderr = _predict(*args)
        assert code == 2 and "Traceback" not in stdout + stderr
        assert stderr.strip().startswith("error: ") and needle in stderr and len(stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = _predict(empty, tmp_path / "o", "--model", legacy_fixture.plain)
    assert code == 2 and "no images" in stderr
    not_h5 = tmp_path / "weights.h5"
    not_h5.write_text("not weights")
    code, _, stderr = _predict(three_images, tmp_path / "o", "--model", not_h5)
    assert code == 2 and "weights.h5" in stderr and len(stderr.strip().splitlines()) == 1


def test_predict_without_model_uses_the_shipped_default_model(tmp_path):
    """The README's main command: the bundled examples segmented with the shipped model."""
    from pathlib import Path

    from nucleaizer_tf.io import read_labels
    from nucleaizer_tf.metrics import score_dataset, score_image

    examples = Path(__file__).resolve().parents[1] / "examples"
    out = tmp_path / "out"
    code, stdout, stderr = _predict(examples / "images", out, "--overlay")
    assert code == 0, stderr
    scores = [score_image(read_labels(examples / "masks" / f"{p.stem}.tiff"), read_labels(out / f"{p.stem}.tiff"))
              for p in sorted((examples / "images").iterdir())]
    assert score_dataset(scores).f1 > 0.95 and score_dataset(scores).dsb > 0.85
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["brightfield.png", "fluo_dense.png", "fluo_sparse.png"]
    record = json.loads((out / "nucleaizer-tf.json").read_text())
    assert record["settings"]["model"].startswith("default") and record["images"][0]["estimated_diameter"] > 0


def test_tta_is_refused_outside_the_default_model(tmp_path):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples" / "images"
    code, _, stderr = _predict(examples, tmp_path / "o", "--tta", "--mode", "full")
    assert code == 2 and "--tta" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
