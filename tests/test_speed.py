"""Issue 17: the precision option (float32 / bfloat16 / auto) and the pipelined folder loop."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from nucleaizer_tf import precision as precision_module
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.models.default import DefaultSegmenter
from nucleaizer_tf.models.maskrcnn import MaskRCNNSegmenter
from nucleaizer_tf.pipelines.measure import ExportOptions
from nucleaizer_tf.pipelines.predict import RECORD_NAME, predict_files


@pytest.fixture
def rng():
    return np.random.default_rng(17)


def write_image(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def probe(monkeypatch):
    """Replace the hardware probe: `probe(flags, gpu=None)` sets the CPU flags and the GPU half type."""

    def set_probe(flags, gpu=None):
        monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision_module, "gpu_half_type", lambda: gpu)
        precision_module._auto.cache_clear()

    yield set_probe
    precision_module._auto.cache_clear()


def test_auto_is_float32_on_a_cpu_without_bfloat16(probe):
    probe({"sse4_2", "avx", "avx2", "avx512f"})
    assert precision_module.resolve_precision("auto") == "float32"
    assert DefaultSegmenter.resolve_options({"precision": "auto"})["precision"] == "float32"
    assert MaskRCNNSegmenter.resolve_options({"precision": "auto"})["precision"] == "float32"


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_is_bfloat16_where_the_cpu_has_it(probe, flag):
    probe({"avx2", flag})
    assert precision_module.resolve_precision("auto") == "bfloat16"


def test_auto_on_a_gpu_takes_its_half_type(probe):
    probe({"avx2"}, gpu="float16")
    assert precision_module.resolve_precision("auto") == "float16"


def test_precision_defaults_and_refusals():
    assert DefaultSegmenter.resolve_options({})["precision"] == "float32"
    assert MaskRCNNSegmenter.resolve_options({})["precision"] == "float32"
    with pytest.raises(NucleaizerError, match="--precision 'half': must be one of float32, bfloat16, auto"):
        DefaultSegmenter.resolve_options({"precision": "half"})


def test_policy_scope_does_not_leak_the_policy():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with precision_module.policy_scope("bfloat16"):
            assert keras.layers.Dense(1).compute_dtype == "bfloat16"
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == before
    assert keras.layers.Dense(1).compute_dtype == before


def test_the_precision_option_reaches_the_default_network(rng):
    segmenter = DefaultSegmenter.load()
    image = rng.integers(0, 255, (64, 80), dtype=np.uint8)
    segmenter.segment(image, precision="bfloat16", nucleus_size=20)
    network = segmenter.model.with_precision("bfloat16").network
    inner = keras.Model(network.input, [network.get_layer("first_conv1").output, network.output])
    hidden, output = inner(np.zeros((1, 32, 32, 3), np.float32))
    assert hidden.dtype == "bfloat16"  # the convolutions compute in bfloat16 ...
    assert output.dtype == "float32"  # ... the softmax output is float32 ...
    assert {v.dtype for v in network.weights} == {"float32"}  # ... and the weights stay float32
    f32 = segmenter.model.with_precision("float32")
    assert f32 is segmenter.model and f32.network.get_layer("first_conv1").compute_dtype == "float32"
    for a, b in zip(f32.network.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_maskrcnn_convolutions_bfloat16_detection_maths_float32():
    from nucleaizer_tf.maskrcnn import MaskRCNN, MaskRCNNConfig

    model = MaskRCNN(MaskRCNNConfig.presegment(), precision="bfloat16").keras_model
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("fpn_p2").compute_dtype == "bfloat16"
    assert model.get_layer("mrcnn_mask_conv1").layer.compute_dtype == "bfloat16"
    for name in ("ROI", "mrcnn_detection", "anchors", "detection_boxes", "detection_masks",
                 "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "mrcnn_class_logits"):
        assert model.get_layer(name).compute_dtype == "float32", name
    assert {str(t.dtype) for t in model.outputs} == {"float32"}
    assert {v.dtype for v in model.weights} == {"float32"}


def _segment_by_threshold(image, stem):
    from skimage.measure import label

    grey = image if image.ndim == 2 else image[..., 0]
    return label(grey > grey.mean()).astype(np.uint16), {"mean": float(grey.mean())}


def test_pipelined_loop_writes_the_same_bytes_as_the_sequential_one(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        write_image(images / f"img{i}.png", (rng.random((40 + i, 50)) * 255).astype(np.uint8))
    (images / "img3.png").write_bytes(b"not a png")  # one bad image only skips itself
    files = sorted(images.iterdir())
    exports = ExportOptions(rois=True, geojson=True, csv=True)
    reports = {}
    for pipelined in (False, True):
        out = tmp_path / f"out_{pipelined}"
        reports[pipelined] = predict_files(files, out, _segment_by_threshold, overlay=True, exports=exports,
                                           pipelined=pipelined, progress=lambda name: None)
    seq, pipe = tmp_path / "out_False", tmp_path / "out_True"
    written = sorted(p.relative_to(seq) for p in seq.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(pipe) for p in pipe.rglob("*") if p.is_file())
    timed = {RECORD_NAME, "summary.csv"}  # carry per-image seconds
    assert len(written) > 10
    for relative in written:
        if relative.name not in timed:
            assert (seq / relative).read_bytes() == (pipe / relative).read_bytes(), relative
    records = [json.loads((out / RECORD_NAME).read_text()) for out in (seq, pipe)]
    for record in records:
        for item in record["images"]:
            item.pop("seconds")
        item_paths = [item["image"] for item in record["images"]]
        assert item_paths == sorted(item_paths) and len(item_paths) == 5
        assert [f["image"].endswith("img3.png") for f in record["failures"]] == [True]
    assert records[0]["images"] == [{**i, "labels": i["labels"].replace("out_True", "out_False")}
                                    for i in records[1]["images"]]
    assert reports[True].failures[0][1] == reports[False].failures[0][1]


def test_pipelined_loop_writes_what_was_segmented_before_an_interruption(tmp_path, rng):
    files = []
    for i in range(5):
        files.append(write_image(tmp_path / f"img{i}.png", (rng.random((30, 30)) * 255).astype(np.uint8)))
    calls = {"n": 0}

    def dies_on_third(image, stem):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _segment_by_threshold(image, stem)

    with pytest.raises(KeyboardInterrupt):
        predict_files(files, tmp_path / "out", dies_on_third)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tiff")) == ["img0.tiff", "img1.tiff"]


def test_predict_cli_passes_precision_to_the_model(tmp_path, rng, monkeypatch):
    from nucleaizer_tf.cli.main import app

    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "a.png", (rng.random((48, 48)) * 255).astype(np.uint8))
    seen = []
    real = DefaultSegmenter._segment

    def spy(self, image, options, name, advance):
        seen.append(options["precision"])
        return real(self, image, options, name, advance)

    monkeypatch.setattr(DefaultSegmenter, "_segment", spy)
    result = CliRunner().invoke(app, ["predict", str(images), str(tmp_path / "out"), "--precision", "bfloat16",
                                      "--nucleus-size", "20", "-q"])
    assert result.exit_code == 0, result.output
    assert seen == ["bfloat16"]
    assert json.loads((tmp_path / "out" / RECORD_NAME).read_text())["settings"]["precision"] == "bfloat16"
