"""`--runtime auto|tensorflow|openvino`: the same labels from OpenVINO, a conversion paid once, a clean fallback."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nucleaizer_tf import runtime
from nucleaizer_tf.errors import NucleaizerError

REPO_EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
runner = CliRunner()


def needs_openvino():
    return pytest.importorskip("openvino", reason="OpenVINO is the optional 'openvino' extra (the test extra has it)")


def test_the_cli_offers_the_runtimes_the_package_takes():
    from nucleaizer_tf.cli.predict import Runtime

    assert [r.value for r in Runtime] == list(runtime.RUNTIMES)


def test_auto_falls_back_to_tensorflow_with_one_line_in_the_record(monkeypatch):
    from nucleaizer_tf.models.default import DefaultSegmenter

    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert runtime.resolve_runtime("auto") == "tensorflow"
    with pytest.raises(NucleaizerError, match=r"needs the optional 'openvino' extra: pip install 'nucleaizer-tf\[openvino\]'"):
        runtime.resolve_runtime("openvino")
    model = DefaultSegmenter.load()
    resolved = model.resolve_options({})
    assert resolved["runtime"] == "tensorflow"
    note = model.record_settings(resolved)["runtime_note"]
    assert "\n" not in note and "OpenVINO is not installed" in note and "ran on TensorFlow" in note


def test_auto_means_openvino_where_it_is_installed_and_the_full_pipeline_stays_on_tensorflow():
    needs_openvino()
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.full import FullSegmenter

    assert runtime.resolve_runtime("auto") == "openvino"
    assert EnsembleSegmenter.resolve_options({})["runtime"] == "openvino"
    assert FullSegmenter.resolve_options({})["runtime"] == "tensorflow"  # the faithful legacy mode's default
    with pytest.raises(NucleaizerError, match="--runtime 'onnx': must be one of 'auto', 'tensorflow', 'openvino'"):
        EnsembleSegmenter.resolve_options({"runtime": "onnx"})


def _small_network(seed: int):
    from nucleaizer_tf.default_model.model import build_network

    import keras

    keras.utils.set_random_seed(seed)
    return build_network({"out_channels": 3, "base_filters": 4, "depth": 2})


def test_a_conversion_is_cached_per_weights_and_a_damaged_entry_is_replaced(tmp_path):
    needs_openvino()
    from nucleaizer_tf.io.converted_network import cached_openvino_model
    from nucleaizer_tf.io.digest import arrays_digest

    network = _small_network(0)
    digest = arrays_digest(network.get_weights())
    calls = []

    def convert():
        calls.append(1)
        return runtime.convert_keras(network, 3)

    _, hit = cached_openvino_model(digest, 3, convert, tmp_path)
    assert not hit and len(calls) == 1
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".bin", ".xml"]  # no temporary left behind
    model, hit = cached_openvino_model(digest, 3, convert, tmp_path)
    assert hit and len(calls) == 1
    x = np.random.default_rng(1).random((1, 32, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(runtime.OpenVINOForward(model)(x), network(x, training=False).numpy(), atol=1e-5)
    # other weights, another entry
    other = _small_network(1)
    _, hit = cached_openvino_model(arrays_digest(other.get_weights()), 3, lambda: runtime.convert_keras(other, 3), tmp_path)
    assert not hit and len(list(tmp_path.glob("*.xml"))) == 2
    # a damaged entry is converted again and replaced
    for xml in tmp_path.glob("*.xml"):
        xml.write_text("<net")
    for n in (network, other):
        model, hit = cached_openvino_model(arrays_digest(n.get_weights()), 3, lambda n=n: runtime.convert_keras(n, 3),
                                           tmp_path)
        assert not hit
        np.testing.assert_allclose(runtime.OpenVINOForward(model)(x), n(x, training=False).numpy(), atol=1e-5)
    assert all(cached_openvino_model(arrays_digest(n.get_weights()), 3, None, tmp_path)[1] for n in (network, other))


def test_the_shipped_model_gives_the_same_labels_on_openvino(dsb_train):
    needs_openvino()
    from nucleaizer_tf import load_model
    from nucleaizer_tf.io import read_image
    from nucleaizer_tf.metrics import score_image

    model = load_model("default")
    reference = model.model.with_runtime("tensorflow")
    converted = model.model.with_runtime("openvino")
    assert converted.runtime == "openvino" and model.model.with_runtime("openvino") is converted
    for path in sorted((dsb_train / "images").glob("*.png"))[:3]:
        image = read_image(path)
        tf_labels = model.segment(image, runtime="tensorflow")
        ov_labels = model.segment(image, runtime="openvino")
        assert score_image(tf_labels, ov_labels).f1 >= 0.999
        rgb8 = np.ascontiguousarray(image[..., :3])
        difference = np.abs(reference.probability_map(rgb8).astype(int) - converted.probability_map(rgb8).astype(int))
        assert difference.max() <= 1  # uint8 maps: a rounding step at most


def test_a_unet_ensemble_runs_on_openvino_within_one_16_bit_step(tmp_path):
    needs_openvino()
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    ensemble = make_seeded_ensemble(tmp_path / "ensemble", sigmas=(0.0, 1.0), base_filters=4, depth=2)
    image = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)
    converted = ensemble.with_runtime("openvino")
    assert converted.runtime == "openvino" and ensemble.runtime == "tensorflow"
    assert converted.with_runtime("tensorflow") is ensemble
    difference = np.abs(ensemble.predict(image).astype(int) - converted.predict(image).astype(int))
    assert difference.max() <= 1


def test_predict_records_the_runtime_and_writes_the_same_labels(tmp_path):
    needs_openvino()
    import tifffile

    from nucleaizer_tf.cli.main import app

    labels = {}
    for name in ("tensorflow", "openvino"):
        out = tmp_path / name
        result = runner.invoke(app, ["predict", str(REPO_EXAMPLES), str(out), "--runtime", name, "-q"])
        assert result.exit_code == 0, result.stderr
        record = json.loads((out / "nucleaizer-tf.json").read_text())
        assert record["settings"]["runtime"] == name and "runtime_note" not in record["settings"]
        labels[name] = {p.name: tifffile.imread(p) for p in sorted(out.glob("*.tiff"))}
    assert labels["tensorflow"].keys() == labels["openvino"].keys() and len(labels["openvino"]) == 3
    for name, tf_labels in labels["tensorflow"].items():
        assert np.array_equal(tf_labels, labels["openvino"][name]), name
