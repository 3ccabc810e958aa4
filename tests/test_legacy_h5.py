"""Legacy Keras-2 / matterport .h5 weight files: reading (both string styles, both layouts), errors, writing."""

from __future__ import annotations

import re
import zlib

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from nucleaizer_tf.errors import NucleaizerError  # noqa: E402
from nucleaizer_tf.maskrcnn.legacy_h5 import (  # noqa: E402
    LegacyWeightsError,
    inspect_legacy_h5,
    legacy_layer_order,
    load_legacy_weights,
    save_legacy_weights,
)

L = keras.layers


def build_model(nc: int = 2) -> keras.Model:
    """A miniature with the structural features of matterport's graph (names as in the real files)."""
    image = keras.Input((16, 16, 3), name="input_image")
    x = L.ZeroPadding2D(1, name="zero_padding2d_1")(image)
    x = L.Conv2D(4, 3, name="conv1")(x)
    x = L.BatchNormalization(epsilon=1e-3, name="bn_conv1")(x, training=False)
    x = L.Activation("relu", name="activation_1")(x)

    feat = keras.Input((None, None, 4), name="input_rpn_feature_map")
    shared = L.Conv2D(8, 3, padding="same", activation="relu", name="rpn_conv_shared")(feat)
    cls = L.Conv2D(6, 1, name="rpn_class_raw")(shared)
    bbox = L.Conv2D(12, 1, name="rpn_bbox_pred")(shared)
    rpn = keras.Model(feat, [cls, bbox], name="rpn_model")
    rpn_cls, rpn_bbox = rpn(x)

    rois = keras.Input((3, 7, 7, 4), name="input_rois")
    y = L.TimeDistributed(L.Conv2D(8, 7), name="mrcnn_class_conv1")(rois)
    y = L.TimeDistributed(L.BatchNormalization(epsilon=1e-3), name="mrcnn_class_bn1")(y, training=False)
    y = L.Reshape((3, 8), name="pool_squeeze")(y)
    logits = L.TimeDistributed(L.Dense(nc), name="mrcnn_class_logits")(y)
    deltas = L.TimeDistributed(L.Dense(4 * nc), name="mrcnn_bbox_fc")(y)
    deltas = L.Reshape((3, nc, 4), name="mrcnn_bbox")(deltas)
    m = L.TimeDistributed(L.Conv2DTranspose(4, 2, strides=2, activation="relu"), name="mrcnn_mask_deconv")(rois)
    m = L.TimeDistributed(L.Conv2D(nc, 1, activation="sigmoid"), name="mrcnn_mask")(m)
    return keras.Model([image, rois], [rpn_cls, rpn_bbox, logits, deltas, m], name="mask_rcnn")


def expected_layers(nc: int = 2) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """The weighted groups a legacy file of `build_model(nc)` holds, written out by hand."""
    def bn(name, c):
        return [(f"{name}/{k}:0", (c,)) for k in ("gamma", "beta", "moving_mean", "moving_variance")]

    return {
        "conv1": [("conv1/kernel:0", (3, 3, 3, 4)), ("conv1/bias:0", (4,))],
        "bn_conv1": bn("bn_conv1", 4),
        "rpn_model": [("rpn_conv_shared/kernel:0", (3, 3, 4, 8)), ("rpn_conv_shared/bias:0", (8,)),
                      ("rpn_class_raw/kernel:0", (1, 1, 8, 6)), ("rpn_class_raw/bias:0", (6,)),
                      ("rpn_bbox_pred/kernel:0", (1, 1, 8, 12)), ("rpn_bbox_pred/bias:0", (12,))],
        "mrcnn_class_conv1": [("mrcnn_class_conv1/kernel:0", (7, 7, 4, 8)), ("mrcnn_class_conv1/bias:0", (8,))],
        "mrcnn_class_bn1": bn("mrcnn_class_bn1", 8),
        "mrcnn_class_logits": [("mrcnn_class_logits/kernel:0", (8, nc)), ("mrcnn_class_logits/bias:0", (nc,))],
        "mrcnn_bbox_fc": [("mrcnn_bbox_fc/kernel:0", (8, 4 * nc)), ("mrcnn_bbox_fc/bias:0", (4 * nc,))],
        "mrcnn_mask_deconv": [("mrcnn_mask_deconv/kernel:0", (2, 2, 4, 4)), ("mrcnn_mask_deconv/bias:0", (4,))],
        "mrcnn_mask": [("mrcnn_mask/kernel:0", (1, 1, 4, nc)), ("mrcnn_mask/bias:0", (nc,))],
    }


# Keras 2.1.6-style order with weightless and training-only entries mixed in.
LAYER_NAMES = ["input_image", "zero_padding2d_1", "conv1", "bn_conv1", "activation_1", "rpn_model", "rpn_class",
               "input_gt_boxes", "proposal_targets", "mrcnn_class_conv1", "mrcnn_class_bn1", "activation_68",
               "pool_squeeze", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask_deconv", "mrcnn_mask",
               "mrcnn_mask_loss"]


def value(weight_name: str, shape) -> np.ndarray:
    rng = np.random.RandomState(zlib.crc32(weight_name.encode()))
    return rng.standard_normal(shape).astype(np.float32)


def write_legacy(path, layers=None, *, style="bytes", wrapped=False, layer_names=None, keras_version="2.1.6",
                 suffix=""):
    """Write a legacy file with h5py. style 'bytes': fixed-length S arrays (Keras 2.1.6 / h5py 2);
    'str': variable-length strings (tf-keras 2.x / h5py 3). `suffix` renames the datasets (TF's `_1`)."""
    layers = expected_layers() if layers is None else layers
    layer_names = LAYER_NAMES if layer_names is None else layer_names

    def strings(values):
        if style == "bytes":
            return np.array([v.encode() for v in values]) if values else np.zeros((0,))
        return [v.encode() for v in values] if values else np.zeros((0,))

    def scalar(v):
        return np.bytes_(v.encode()) if style == "bytes" else v

    with h5py.File(path, "w") as f:
        f.attrs["backend"] = scalar("tensorflow")
        f.attrs["keras_version"] = scalar(keras_version)
        root = f
        if wrapped:
            f.attrs["model_config"] = scalar('{"class_name": "Model"}')
            root = f.create_group("model_weights")
            root.attrs["backend"] = scalar("tensorflow")
            root.attrs["keras_version"] = scalar(keras_version)
            f.create_group("optimizer_weights")
        root.attrs["layer_names"] = strings(layer_names)
        for name in layer_names:
            g = root.create_group(name)
            weights = layers.get(name, [])
            stored = [re.sub(r"^([^/]+)/", rf"\g<1>{suffix}/", w) for w, _ in weights]
            g.attrs["weight_names"] = strings(stored)
            for (w, shape), s in zip(weights, stored):
                g.create_dataset(s, data=value(w, shape))
    return path


def model_arrays(model) -> list[np.ndarray]:
    """All weights in model order (paths of auto-named inner layers differ between two builds)."""
    return [np.array(v.numpy()) for v in model.weights]


def same_arrays(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                                    for x, y in zip(a, b))


def assert_loaded(model, layers=None):
    """Every model weight equals the value written under its legacy name (bit for bit)."""
    layers = expected_layers() if layers is None else layers
    by_layer = {layer.name: layer for layer in model.layers}
    n = 0
    for lname, weights in layers.items():
        layer = by_layer[lname]
        variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if lname == "rpn_model":
            variables = [v for sub in layer.layers for v in sub.weights]
        assert len(variables) == len(weights), lname
        for var, (w, shape) in zip(variables, weights):
            got = np.array(var.numpy())
            assert got.shape == shape and got.dtype == np.float32
            assert got.tobytes() == value(w, shape).tobytes(), w
            n += 1
    return n


# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["bytes", "str"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_load_both_string_styles_and_layouts(tmp_path, style, wrapped):
    path = write_legacy(tmp_path / "w.h5", style=style, wrapped=wrapped)
    model = build_model()
    report = load_legacy_weights(model, path)
    assert report.ok
    assert report.root == ("/model_weights" if wrapped else "/")
    assert report.keras_version == "2.1.6" and report.backend == "tensorflow"
    assert sorted(report.loaded) == sorted(expected_layers())
    assert report.n_arrays == 26 == assert_loaded(model)
    assert report.n_values == sum(int(np.prod(s)) for ws in expected_layers().values() for _, s in ws)


def test_fixed_length_attributes_are_really_fixed_length(tmp_path):
    path = write_legacy(tmp_path / "w.h5", style="bytes")
    with h5py.File(path, "r") as f:
        assert f.attrs["layer_names"].dtype.kind == "S"
        assert f["conv1"].attrs["weight_names"].dtype.kind == "S"
        assert f["activation_1"].attrs["weight_names"].dtype == np.float64  # Keras 2's empty list


def test_dataset_names_do_not_have_to_match(tmp_path):
    """TF suffixes variable names when a graph is built twice (`mrcnn_bbox_fc_4/kernel:0`); Keras matched by
    position inside a layer group, so do we."""
    path = write_legacy(tmp_path / "w.h5", suffix="_4")
    model = build_model()
    assert load_legacy_weights(model, path).ok
    assert_loaded(model)


def test_nested_model_paired_by_sublayer_name(tmp_path):
    """rpn_model's arrays in the file in another order: paired by the sub-layer prefix of the weight name."""
    layers = expected_layers()
    rpn = layers["rpn_model"]
    layers["rpn_model"] = rpn[4:] + rpn[:4]
    path = write_legacy(tmp_path / "w.h5", layers)
    model = build_model()
    load_legacy_weights(model, path)
    assert_loaded(model)  # checks against the hand-written order


def test_loaded_values_are_used_by_the_graph(tmp_path):
    """Not only the variables: the forward pass sees them (deconv kernel (kh, kw, out, in) untransposed)."""
    path = write_legacy(tmp_path / "w.h5")
    model = build_model()
    load_legacy_weights(model, path)
    deconv = model.get_layer("mrcnn_mask_deconv")
    rois = np.random.RandomState(0).standard_normal((1, 3, 7, 7, 4)).astype(np.float32)
    out = np.array(deconv(rois))
    k = value("mrcnn_mask_deconv/kernel:0", (2, 2, 4, 4))
    b = value("mrcnn_mask_deconv/bias:0", (4,))
    # stride == kernel size: output pixel (2i+a, 2j+c) = x[i, j] @ k[a, c].T + b
    want = np.einsum("nrijc,abfc->nriajbf", rois, k).reshape(1, 3, 14, 14, 4) + b
    np.testing.assert_allclose(out, np.maximum(want, 0), rtol=1e-5, atol=1e-5)


def test_missing_layer(tmp_path):
    layers = expected_layers()
    del layers["mrcnn_class_bn1"]
    path = write_legacy(tmp_path / "w.h5", layers)
    model = build_model()
    before = model_arrays(model)
    with pytest.raises(LegacyWeightsError, match=r"not in the file: mrcnn_class_bn1"):
        load_legacy_weights(model, path)
    after = model_arrays(model)
    assert same_arrays(before, after), "a strict failure must load nothing"
    report = load_legacy_weights(model, path, strict=False)
    assert report.missing == ["mrcnn_class_bn1"] and not report.ok
    assert "mrcnn_class_bn1" not in report.loaded and len(report.loaded) == 8


def test_unexpected_layer(tmp_path):
    layers = expected_layers()
    layers["fpn_c5p5"] = [("fpn_c5p5/kernel:0", (1, 1, 4, 4)), ("fpn_c5p5/bias:0", (4,))]
    path = write_legacy(tmp_path / "w.h5", layers, layer_names=LAYER_NAMES + ["fpn_c5p5"])
    with pytest.raises(LegacyWeightsError, match=r"not in the model: fpn_c5p5"):
        load_legacy_weights(build_model(), path)
    # Weightless extra names (training-only layers, other auto names) are fine: see LAYER_NAMES.


def test_coco_like_81_class_file_and_exclude(tmp_path):
    path = write_legacy(tmp_path / "coco.h5", expected_layers(nc=81))
    model = build_model(nc=2)
    with pytest.raises(LegacyWeightsError) as info:
        load_legacy_weights(model, path)
    msg = str(info.value)
    assert isinstance(info.value, NucleaizerError)
    assert "mrcnn_bbox_fc: kernel:0 file (8, 324) vs model (8, 8); bias:0 file (324,) vs model (8,)" in msg
    assert msg.count("an 81-class COCO file? pass exclude=") == 1
    for name in ("mrcnn_class_logits", "mrcnn_mask"):
        assert f"{name}:" in msg
    assert "mrcnn_class_conv1" not in msg
    heads = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]  # train.py's list
    report = load_legacy_weights(model, path, exclude=heads)
    assert report.ok and sorted(report.excluded) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    layers = expected_layers()
    for name in report.excluded:
        del layers[name]
    assert assert_loaded(model, layers) == 20
    # regular expressions work too
    assert load_legacy_weights(build_model(), path, exclude=[r"mrcnn_(class_logits|bbox_fc|mask)"]).ok


def test_wrong_array_count(tmp_path):
    layers = expected_layers()
    layers["conv1"] = layers["conv1"][:1]  # a bias-less conv1 (the stale notebook output of 53afbae)
    path = write_legacy(tmp_path / "w.h5", layers)
    with pytest.raises(LegacyWeightsError, match=r"conv1: file has 1 arrays .* vs model 2"):
        load_legacy_weights(build_model(), path)


def test_truncated_file(tmp_path):
    path = write_legacy(tmp_path / "w.h5")
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LegacyWeightsError) as info:
        load_legacy_weights(build_model(), cut)
    msg = str(info.value)
    assert "\n" not in msg and str(cut) in msg and "truncated" in msg
    with pytest.raises(LegacyWeightsError, match="truncated"):
        inspect_legacy_h5(cut)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras 3's own save_weights under NumPy 2
def test_not_hdf5_missing_empty_folder_lfs(tmp_path):
    model = build_model()
    cases = {
        "text.h5": (b"this is not HDF5 at all\n" * 100, "not an HDF5 file"),
        "empty.h5": (b"", "empty"),
        "lfs.h5": (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 255840160\n", "Git LFS pointer"),
    }
    for name, (content, needle) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(LegacyWeightsError) as info:
            load_legacy_weights(model, p)
        assert needle in str(info.value) and "\n" not in str(info.value) and str(p) in str(info.value)
    with pytest.raises(LegacyWeightsError, match="no such file"):
        load_legacy_weights(model, tmp_path / "absent.h5")
    with pytest.raises(LegacyWeightsError, match="is a folder"):
        load_legacy_weights(model, tmp_path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(LegacyWeightsError, match="not a Keras-2 weight file"):
        load_legacy_weights(model, other)
    keras3 = tmp_path / "k3.weights.h5"
    model.save_weights(keras3)
    with pytest.raises(LegacyWeightsError, match="Keras 3 '.weights.h5' file"):
        load_legacy_weights(model, keras3)


def test_save_load_round_trip_bit_exact(tmp_path):
    src = write_legacy(tmp_path / "src.h5")
    model = build_model()
    load_legacy_weights(model, src)
    out = save_legacy_weights(model, tmp_path / "sub" / "saved.h5")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["saved.h5"]  # no temporary left over
    with h5py.File(out, "r") as f:
        assert f.attrs["layer_names"].dtype.kind == "S"
        assert f.attrs["keras_version"] == b"2.1.6" and f.attrs["backend"] == b"tensorflow"
        assert isinstance(f.attrs["keras_version"], np.bytes_)
        assert f["rpn_model"].attrs["weight_names"].dtype.kind == "S"
        rpn_names = [w.decode() for w in f["rpn_model"].attrs["weight_names"]]
        assert rpn_names == [w for w, _ in expected_layers()["rpn_model"]]
        assert [w.decode() for w in f["mrcnn_class_bn1"].attrs["weight_names"]] == [
            w for w, _ in expected_layers()["mrcnn_class_bn1"]]
        assert f["input_image"].attrs["weight_names"].shape == (0,)
        assert "rpn_model/rpn_conv_shared/kernel:0" in f
        assert "mrcnn_class_conv1/mrcnn_class_conv1/kernel:0" in f
        names = [n.decode() for n in f.attrs["layer_names"]]
        for lname, weights in expected_layers().items():  # the saved file equals what was loaded, bit for bit
            for w, shape in weights:
                assert f[lname][w][()].tobytes() == value(w, shape).tobytes()
    assert set(names) == {layer.name for layer in model.layers}
    known = [n for n in legacy_layer_order(training=False) if n in names]
    assert [n for n in names if n in known] == known  # Keras 2.1.6 order where the names are known
    fresh = build_model()
    assert load_legacy_weights(fresh, out).ok
    a, b = model_arrays(model), model_arrays(fresh)
    assert same_arrays(a, b)
    other = build_model()  # interoperability: Keras' own legacy by-name loader reads the file the same way
    other.load_weights(out, by_name=True)
    assert same_arrays(a, model_arrays(other))


def test_save_replaces_atomically(tmp_path):
    model = build_model()
    target = tmp_path / "w.h5"
    target.write_bytes(b"old")
    save_legacy_weights(model, target)
    assert load_legacy_weights(build_model(), target).ok


def test_long_layer_lists_are_chunked_like_keras(tmp_path):
    """Keras splits attributes above 64,512 bytes into layer_names0, layer_names1, ...; read and write that."""
    names = LAYER_NAMES + [f"unused_weightless_layer_with_a_long_name_{i:05d}" for i in range(1500)]
    path = write_legacy(tmp_path / "w.h5")
    with h5py.File(path, "r+") as f:
        data = np.array([n.encode() for n in names])
        del f.attrs["layer_names"]
        f.attrs["layer_names0"], f.attrs["layer_names1"] = data[:800], data[800:]
    model = build_model()
    assert load_legacy_weights(model, path).ok
    assert inspect_legacy_h5(path)["layer_names"] == names
    from nucleaizer_tf.maskrcnn import legacy_h5

    with h5py.File(tmp_path / "chunks.h5", "w") as f:
        legacy_h5._write_list_attr(f.attrs, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
        assert all(f.attrs[k].nbytes <= 64512 for k in f.attrs)
        assert legacy_h5._read_list_attr(f.attrs, "layer_names") == names


def test_inspect(tmp_path):
    path = write_legacy(tmp_path / "w.h5", wrapped=True, style="str", keras_version="2.21.0")
    info = inspect_legacy_h5(path)
    assert info["root"] == "/model_weights"
    assert info["attrs"]["keras_version"] == "2.21.0" and info["attrs"]["backend"] == "tensorflow"
    assert info["layer_names"] == LAYER_NAMES
    assert info["n_layers_with_weights"] == 9 and info["n_arrays"] == 26
    assert info["layers"]["rpn_model"][0] == ("rpn_conv_shared/kernel:0", (3, 3, 4, 8), "float32")
    assert "activation_1" not in info["layers"]


def test_legacy_layer_order_matches_design_appendix(shared_dir):
    doc = shared_dir / "design" / "maskrcnn-legacy.md"
    if not doc.exists():
        pytest.skip(f"needs {doc}")
    text = doc.read_text()
    blocks = re.findall(r"graph: (\d+) entries.*?```\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for count, body in blocks:
        names = [tok.split(":", 1)[1].rstrip("*") for tok in body.split()]
        assert len(names) == int(count)
        assert names == legacy_layer_order(training=int(count) == 406)


# ---------------------------------------------------------------------------------------------------------------
# The oracle's fixture (690 arrays) into the real port.


def _port_model():
    try:
        from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
        from nucleaizer_tf.maskrcnn.model import MaskRCNN
    except ImportError as exc:
        pytest.skip(f"the Mask R-CNN port is not importable yet ({exc})")
    return MaskRCNN(MaskRCNNConfig()).keras_model


@pytest.fixture(scope="module")
def fixture_files(legacy_fixture):
    return legacy_fixture.gen, legacy_fixture.manifest, legacy_fixture.plain, legacy_fixture.wrapped


def _check_against_recipe(model, path, gen, cache):
    info = inspect_legacy_h5(path)
    by_layer = {layer.name: layer for layer in model.layers}
    from nucleaizer_tf.maskrcnn.legacy_h5 import _model_layers  # the loader's own pairing, checked by value

    pairs = {m.name: m.weights for m in _model_layers(model)}
    n = 0
    for lname, weights in info["layers"].items():
        assert lname in by_layer
        variables = [v for _, v in pairs[lname]]
        if lname == "rpn_model":  # by sub-layer: the file's prefix names the owner
            queues: dict[str, list] = {}
            for owner, var in pairs[lname]:
                queues.setdefault(owner, []).append(var)
            variables = [queues[w.split("/")[0]].pop(0) for w, _, _ in weights]
        for var, (w, shape, _) in zip(variables, weights):
            if w not in cache:
                cache[w] = gen.weight_array(w, shape).tobytes()
            got = np.array(var.numpy())
            assert got.dtype == np.float32 and got.shape == shape, w
            assert got.tobytes() == cache[w], w
            n += 1
    return n


def test_oracle_fixture_into_port(fixture_files, tmp_path):
    gen, manifest, plain, wrapped = fixture_files
    model = _port_model()
    cache: dict[str, bytes] = {}
    report = load_legacy_weights(model, plain)
    assert report.ok and report.n_arrays == 690 and len(report.loaded) == 233
    assert report.n_values == 63_733_406 and report.keras_version == "2.21.0"
    assert _check_against_recipe(model, plain, gen, cache) == 690

    model2 = _port_model()
    report = load_legacy_weights(model2, wrapped)
    assert report.ok and report.root == "/model_weights" and report.n_arrays == 690
    a, b = model_arrays(model), model_arrays(model2)
    assert same_arrays(a, b)

    saved = save_legacy_weights(model, tmp_path / "saved.h5")
    with h5py.File(saved, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        weighted = [n for n in names if len(f[n].attrs["weight_names"])]
        assert len(weighted) == 233
        ref = [n for n in legacy_layer_order() if n in set(weighted)]
        assert weighted == ref  # Keras 2.1.6 order of the weighted groups
        for lname, weights in manifest["groups"].items():
            if weights:
                assert [w.decode() for w in f[lname].attrs["weight_names"]] == [w["name"] for w in weights]
    model3 = _port_model()
    assert load_legacy_weights(model3, saved).n_arrays == 690
    assert same_arrays(a, model_arrays(model3))
