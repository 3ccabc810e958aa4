"""`nucleaizer-tf export bioimageio`: a package bioimage.io's own test accepts, whose network gives predict's map."""

import io
import sys
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app

runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    pytest.importorskip("bioimageio.spec", reason="the optional 'bioimageio' extra (the test extra has it)")
    out = tmp_path_factory.mktemp("zoo") / "nucleaizer.zip"
    code, stdout, stderr = cli("export", "bioimageio", "default", out)
    assert code == 0, stderr
    assert "wrote the bioimage.io package" in stdout and "Traceback" not in stdout + stderr
    return out


def _member(package, name):
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


def assert_bioimageio_core_passes(package, folder, monkeypatch):
    core = pytest.importorskip("bioimageio.core", reason="the optional 'bioimageio' extra (the test extra has it)")
    monkeypatch.chdir(folder)  # the test unzips the weights into the working folder
    summary = core.test_model(package)
    failed = [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    reproduced = {d.name for d in summary.details if d.name.startswith("Reproduce test outputs")}
    assert reproduced == {"Reproduce test outputs from test inputs (tensorflow_saved_model_bundle)",
                          "Reproduce test outputs from test inputs (onnx)"}, reproduced  # both weight formats


def test_bioimageio_core_accepts_the_package(package, tmp_path, monkeypatch):
    assert_bioimageio_core_passes(package, tmp_path, monkeypatch)
    with zipfile.ZipFile(package) as archive:
        assert {"rdf.yaml", "README.md", "cover.png", "test_input.npy", "test_output.npy",
                "tf_saved_model.zip", "weights.onnx"} <= set(archive.namelist())
    documentation = _member(package, "README.md").decode()
    for needle in ("Size normalisation", "The instance step", "## Validation", "10.1016/j.cels.2020.04.003"):
        assert needle in documentation


def test_the_packaged_network_gives_predicts_probability_map(package):
    from nucleaizer_tf import load_model
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8
    from nucleaizer_tf.pipelines.zoo_export import zoo_input

    image = np.load(io.BytesIO(_member(package, "test_input.npy")))[0]
    expected = np.load(io.BytesIO(_member(package, "test_output.npy")))
    model = load_model("default")
    # predict --save-probabilities, with the nucleus size that keeps the image at its own scale
    _, facts = model.segment_with_facts(image, nucleus_size=model.model.segment_diameter, save_probabilities=True)
    predicted = facts["probabilities"]
    network = model.model.standalone_network("probabilities")
    same_input = network(stretch_rgb8(image)[None].astype(np.float32) / 255)["probabilities"].numpy()[0]
    assert np.array_equal(np.floor(same_input * 255 + 0.5).astype(np.uint8), predicted)
    # the zoo's float preprocessing skips predict's rounding to 8 bits: a few steps here and there
    np.testing.assert_allclose(network(zoo_input(image))["probabilities"].numpy(), expected, atol=1e-5)
    zoo = np.floor(expected[0] * 255 + 0.5).astype(int)
    difference = np.abs(zoo - predicted.astype(int))
    assert difference.max() <= 4 and (difference == 0).mean() >= 0.95
    assert np.allclose(expected.sum(axis=-1), 1.0, atol=1e-5)


def test_bad_exports_are_refused_in_one_line(package, tmp_path, monkeypatch):
    code, _, stderr = cli("export", "bioimageio", "default", package)
    assert code != 0 and "already exists" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli("export", "bioimageio", "default", tmp_path / "model.tar")
    assert code != 0 and "is a .zip file" in stderr
    weights = tmp_path / "mask_rcnn_final.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n")
    code, _, stderr = cli("export", "bioimageio", weights, tmp_path / "legacy.zip")
    assert code != 0 and "takes the default model, a default-model folder" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "legacy.zip").exists()
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    code, _, stderr = cli("export", "bioimageio", "default", tmp_path / "no_extra.zip")
    assert code != 0 and "pip install 'nucleaizer-tf[bioimageio]'" in stderr


def test_a_unet_ensemble_exports_its_mean_map(tmp_path, monkeypatch):
    pytest.importorskip("bioimageio.spec", reason="the optional 'bioimageio' extra (the test extra has it)")
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    ensemble = make_seeded_ensemble(tmp_path / "ensemble", sigmas=(0.0, 1.0), base_filters=4, depth=2)
    out = tmp_path / "ensemble.zip"
    code, _, stderr = cli("export", "bioimageio", tmp_path / "ensemble", out, "-q")
    assert code == 0, stderr
    assert_bioimageio_core_passes(out, tmp_path, monkeypatch)
    values = np.load(io.BytesIO(_member(out, "test_input.npy")))[0]
    image = values.astype(np.uint8)
    mean = np.load(io.BytesIO(_member(out, "test_output.npy")))[0, ..., 0]
    assert np.array_equal(image, values) and mean.shape == image.shape[:2]
    # predict's map rounds each member to 16 bits before the mean: within one 16-bit step
    assert np.abs(mean * 65535 - ensemble.predict(image).astype(float)).max() <= 1.0
    assert "touching nuclei stay one object" in _member(out, "README.md").decode()
