"""Import of nucleAIzer's PyTorch U-Net pickles without torch: formats, refusals, numerics, full mode.

The fixtures are written here without torch, from the documented formats (`torch.save` of a whole module,
legacy and zip serialisation), for a narrow U-Net of the original architecture. Where torch is installed,
`torch.load` must read them to the same tensors and torch's forward must equal the converted Keras member;
torch's own `torch.save` output must convert too.
"""

from __future__ import annotations

import collections
import copyreg
import io
import pickle
import struct
import sys
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.torch_pickle import module_state, named_modules, read_torch_module
from nucleaizer_tf.pipelines.unet_import import ensemble_folder_for, original_members
from nucleaizer_tf.unet.convert import unet_from_state

BASE = 4  # channel width of the narrow fixtures (the original is 64)

# ---------------------------------------------------------------------------------------------- a torch-free writer

_FAKE_GLOBALS: dict[type, tuple[str, str]] = {}


def fake_global(module: str, name: str) -> type:
    """A class that pickles as the global `module.name` (the name need not be importable here)."""
    cls = type(name, (), {})
    _FAKE_GLOBALS[cls] = (module, name)
    return cls


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets save_global be overridden
    def __init__(self, file, persistent):
        super().__init__(file, protocol=2)
        self._persistent = persistent

    def persistent_id(self, obj):
        return self._persistent(obj)

    def save_global(self, obj, name=None):
        if obj in _FAKE_GLOBALS:
            module, qualname = _FAKE_GLOBALS[obj]
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


REBUILD_TENSOR = fake_global("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = fake_global("torch._utils", "_rebuild_parameter")
THNN_BACKEND = fake_global("torch.nn.backends.thnn", "_get_thnn_function_backend")
STORAGE_TYPES = {np.dtype("float32"): fake_global("torch", "FloatStorage"),
                 np.dtype("int64"): fake_global("torch", "LongStorage")}
# A model trained on a GPU (the original's were) and saved by PyTorch ≤ 1.5 names the CUDA storage types.
CUDA_STORAGE_TYPES = {np.dtype("float32"): fake_global("torch.cuda", "FloatStorage"),
                      np.dtype("int64"): fake_global("torch.cuda", "LongStorage")}
_CLASSES = {name: fake_global(module, name) for module, names in {
    "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"), "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("ReLU", "Sigmoid"), "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.container": ("Sequential",),
    "models.unet": ("UNet", "First", "Encoder", "Center", "Decoder", "Last")}.items() for name in names}


class Storage:
    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data).ravel()


class Tensor:
    def __init__(self, array, parameter=False):
        self.storage = Storage(np.asarray(array))
        self.shape = np.shape(array)
        self.parameter = parameter

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for n in reversed(self.shape):
            stride.insert(0, step)
            step *= n
        tensor = (REBUILD_TENSOR, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))
        if not self.parameter:
            return tensor
        return (REBUILD_PARAMETER, (_Reduced(tensor), True, collections.OrderedDict()))


class _Reduced:
    def __init__(self, reduced):
        self.reduced = reduced

    def __reduce_ex__(self, protocol):
        return self.reduced


class Module:
    """A pickled `nn.Module`: NEWOBJ of its class, then BUILD with its `__dict__`."""

    def __init__(self, kind, params=None, buffers=None, children=None, legacy=False, **attrs):
        self.cls = _CLASSES[kind]
        self.state = {"training": False, "_parameters": collections.OrderedDict(params or {}),
                      "_buffers": collections.OrderedDict(buffers or {}),
                      "_backward_hooks": collections.OrderedDict(), "_forward_hooks": collections.OrderedDict(),
                      "_forward_pre_hooks": collections.OrderedDict(), "_state_dict_hooks": collections.OrderedDict(),
                      "_load_state_dict_pre_hooks": collections.OrderedDict(),
                      "_modules": collections.OrderedDict(children or {}), **attrs}
        if legacy:
            self.state["_backend"] = _Reduced((THNN_BACKEND, ()))
        else:
            self.state["_non_persistent_buffers_set"] = set()

    @property
    def __class__(self):  # pickle checks that NEWOBJ's class is the object's
        return self.cls

    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, (self.cls,), self.state)


def write_torch_file(path: Path, obj, legacy: bool) -> None:
    """`torch.save(obj)` as PyTorch ≤ 1.5 (legacy=True) or ≥ 1.6 (zip) writes it, for `Module`/`Tensor` trees."""
    storages: dict[str, Storage] = {}
    seen_classes: set = set()

    def persistent_id(obj):
        if legacy and isinstance(obj, type) and obj in _CLASSES.values() and obj not in seen_classes:
            seen_classes.add(obj)
            return ("module", obj, "UNet/models/unet.py", "class ...")
        if isinstance(obj, Storage):
            key = str(len(storages)) if obj not in storages.values() else next(k for k, v in storages.items() if v is obj)
            storages[key] = obj
            pid = ("storage", (CUDA_STORAGE_TYPES if legacy else STORAGE_TYPES)[obj.data.dtype], key, "cuda:0",
                   obj.data.size)
            return pid + (None,) if legacy else pid
        return None

    body = io.BytesIO()
    _Pickler(body, persistent_id).dump(obj)
    if legacy:
        with open(path, "wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
            f.write(body.getvalue())
            keys = sorted(storages)
            pickle.dump(keys, f, protocol=2)
            for key in keys:
                data = storages[key].data
                f.write(struct.pack("<q", data.size) + data.astype(data.dtype.newbyteorder("<")).tobytes())
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("archive/data.pkl", body.getvalue())
            archive.writestr("archive/byteorder", "little")
            for key, storage in storages.items():
                archive.writestr(f"archive/data/{key}", storage.data.tobytes())
            archive.writestr("archive/version", "3\n")


# ---------------------------------------------------------------------------------------------- the narrow U-Net

def random_state(seed: int, base: int = BASE, in_channels: int = 3) -> dict[str, np.ndarray]:
    """An original-architecture state dict (torch layouts and names) with random weights and BN statistics."""
    rng = np.random.default_rng(seed)
    w = [base * 2**i for i in range(5)]
    state = {}

    def conv(prefix, cin, cout, k=3):
        state[f"{prefix}.weight"] = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        state[f"{prefix}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)

    def convt(prefix, cin, cout):
        state[f"{prefix}.weight"] = (rng.standard_normal((cin, cout, 2, 2)) / np.sqrt(cin)).astype(np.float32)
        state[f"{prefix}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)

    def bn(prefix, c):
        state[f"{prefix}.weight"] = rng.uniform(0.8, 1.2, c).astype(np.float32)
        state[f"{prefix}.bias"] = rng.uniform(-0.1, 0.1, c).astype(np.float32)
        state[f"{prefix}.running_mean"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        state[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[f"{prefix}.num_batches_tracked"] = np.array(1234, dtype=np.int64)

    def double(seq, start, cin, cout):
        conv(f"{seq}.{start}", cin, cout)
        bn(f"{seq}.{start + 1}", cout)
        conv(f"{seq}.{start + 3}", cout, cout)
        bn(f"{seq}.{start + 4}", cout)

    double("first.first", 0, in_channels, w[0])
    for k in (1, 2, 3):
        double(f"encoder_{k}.encoder", 1, w[k - 1], w[k])
    double("center.center", 1, w[3], w[4])
    convt("center.center.7", w[4], w[3])
    for k in (3, 2, 1):
        double(f"decoder_{k}.decoder", 0, 2 * w[k], w[k])
        convt(f"decoder_{k}.decoder.6", w[k], w[k - 1])
    double("last.first", 0, 2 * w[0], w[0])
    conv("last.first.6", w[0], 1, k=1)
    return state


def module_tree(state: dict[str, np.ndarray], legacy: bool) -> Module:
    """The pickled module tree of `UNet` for `state`, with the layers' hyper-parameters as torch keeps them."""
    def tensors(prefix, names, parameter):
        return {n: Tensor(state[f"{prefix}.{n}"], parameter) for n in names if f"{prefix}.{n}" in state}

    def layer(prefix, kind):
        if kind == "bn":
            c = state[f"{prefix}.weight"].shape[0]
            return Module("BatchNorm2d", tensors(prefix, ("weight", "bias"), True),
                          tensors(prefix, ("running_mean", "running_var", "num_batches_tracked"), False), legacy=legacy,
                          num_features=c, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)
        weight = state[f"{prefix}.weight"]
        transposed = kind == "convT"
        k = weight.shape[2]
        cin, cout = (weight.shape[0], weight.shape[1]) if transposed else (weight.shape[1], weight.shape[0])
        return Module("ConvTranspose2d" if transposed else "Conv2d", tensors(prefix, ("weight", "bias"), True),
                      legacy=legacy, in_channels=cin, out_channels=cout, kernel_size=(k, k),
                      stride=(2, 2) if transposed else (1, 1), padding=(1, 1) if k == 3 else (0, 0),
                      dilation=(1, 1), transposed=transposed, output_padding=(0, 0), groups=1, padding_mode="zeros")

    def simple(kind, **attrs):
        return Module(kind, legacy=legacy, **attrs)

    def sequential(seq, kinds):
        children = {}
        for i, kind in enumerate(kinds):
            if kind in ("conv", "bn", "convT"):
                children[str(i)] = layer(f"{seq}.{i}", kind)
            elif kind == "relu":
                children[str(i)] = simple("ReLU", inplace=True)
            elif kind == "pool":
                children[str(i)] = simple("MaxPool2d", kernel_size=2, stride=2, padding=0, dilation=1,
                                          return_indices=False, ceil_mode=False)
            else:
                children[str(i)] = simple("Sigmoid")
        return Module("Sequential", children=children, legacy=legacy)

    double = ["conv", "bn", "relu", "conv", "bn", "relu"]
    blocks = {"first": Module("First", children={"first": sequential("first.first", double)}, legacy=legacy)}
    for k in (1, 2, 3):
        blocks[f"encoder_{k}"] = Module("Encoder", legacy=legacy, children={
            "encoder": sequential(f"encoder_{k}.encoder", ["pool", *double])})
    blocks["center"] = Module("Center", legacy=legacy,
                              children={"center": sequential("center.center", ["pool", *double, "convT"])})
    for k in (3, 2, 1):
        blocks[f"decoder_{k}"] = Module("Decoder", legacy=legacy, children={
            "decoder": sequential(f"decoder_{k}.decoder", [*double, "convT"])})
    blocks["last"] = Module("Last", legacy=legacy, children={"first": sequential("last.first", [*double, "conv", "sigmoid"])})
    return Module("UNet", children=blocks, legacy=legacy)


def numpy_forward(state: dict[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    """The original `UNet.forward` in float64 NumPy, NCHW, written from the architecture spec. [H, W, 3] → [H, W]."""
    s = {k: v.astype(np.float64) for k, v in state.items()}

    def conv(x, prefix, pad=1):
        w, b = s[f"{prefix}.weight"], s[f"{prefix}.bias"]
        k = w.shape[2]
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # [C, H, W, k, k]
        return np.einsum("chwij,ocij->ohw", windows, w, optimize=True) + b[:, None, None]

    def bn(x, prefix):
        g, beta = s[f"{prefix}.weight"], s[f"{prefix}.bias"]
        mean, var = s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"]
        return ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)) * g[:, None, None] + beta[:, None, None]

    def double(x, seq, start):
        x = np.maximum(bn(conv(x, f"{seq}.{start}"), f"{seq}.{start + 1}"), 0)
        return np.maximum(bn(conv(x, f"{seq}.{start + 3}"), f"{seq}.{start + 4}"), 0)

    def pool(x):
        c, h, w = x.shape
        return x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))

    def up(x, prefix):  # ConvTranspose2d k=2 s=2: y[o, 2i+a, 2j+b] = Σ_c x[c, i, j]·W[c, o, a, b] + bias[o]
        w, b = s[f"{prefix}.weight"], s[f"{prefix}.bias"]
        c, h, wd = x.shape
        y = np.einsum("cij,coab->oiajb", x, w).reshape(w.shape[1], 2 * h, 2 * wd)
        return y + b[:, None, None]

    def cat(upsampled, skip):  # pad right/bottom to the skip's size; upsampled FIRST
        dh, dw = skip.shape[1] - upsampled.shape[1], skip.shape[2] - upsampled.shape[2]
        return np.concatenate([np.pad(upsampled, ((0, 0), (0, dh), (0, dw))), skip], axis=0)

    x = image.transpose(2, 0, 1).astype(np.float64)
    x_first = double(x, "first.first", 0)
    x1 = double(pool(x_first), "encoder_1.encoder", 1)
    x2 = double(pool(x1), "encoder_2.encoder", 1)
    x3 = double(pool(x2), "encoder_3.encoder", 1)
    xc = up(double(pool(x3), "center.center", 1), "center.center.7")
    d3 = up(double(cat(xc, x3), "decoder_3.decoder", 0), "decoder_3.decoder.6")
    d2 = up(double(cat(d3, x2), "decoder_2.decoder", 0), "decoder_2.decoder.6")
    d1 = up(double(cat(d2, x1), "decoder_1.decoder", 0), "decoder_1.decoder.6")
    out = conv(double(cat(d1, x_first), "last.first", 0), "last.first.6", pad=0)
    return (1.0 / (1.0 + np.exp(-out)))[0]


def keras_forward(model, image: np.ndarray) -> np.ndarray:
    return np.asarray(model(image[None].astype(np.float32), training=False))[0, :, :, 0]


MEMBERS = {"UNet_sigma0.0_1": (0, True), "UNet_sigma0.5_1": (1, False)}  # name → (seed, legacy)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """An original-layout folder: UNet_sigma0.0_1 in the legacy format, UNet_sigma0.5_1 in the zip format."""
    root = tmp_path_factory.mktemp("original") / "unet"
    states = {}
    for name, (seed, legacy) in MEMBERS.items():
        states[name] = random_state(seed)
        (root / name).mkdir(parents=True)
        write_torch_file(root / name / name, module_tree(states[name], legacy), legacy)
    return root, states


# ---------------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("name", list(MEMBERS))
def test_both_serialisations_read_back_the_exact_tensors_without_torch(original, name):
    root, states = original
    record = read_torch_module(root / name / name)
    assert record.torch_type == "models.unet.UNet"
    got = module_state(record)
    assert sorted(got) == sorted(states[name])
    for key, value in states[name].items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
    modules = named_modules(record)
    assert modules["center.center.7"].torch_type == "torch.nn.modules.conv.ConvTranspose2d"
    assert modules["first.first.1"].eps == 1e-5 and modules["first.first.1"].momentum == 0.1


def test_reading_does_not_import_torch(original, tmp_path):
    import subprocess

    root, _ = original
    code = ("import sys; from nucleaizer_tf.io.torch_pickle import read_torch_module, module_state; "
            f"s = module_state(read_torch_module({str(root / 'UNet_sigma0.0_1' / 'UNet_sigma0.0_1')!r})); "
            "assert len(s) > 100; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


PARAMETER_03 = fake_global("torch.nn.parameter", "Parameter")
REBUILD_TENSOR_03 = fake_global("torch._utils", "_rebuild_tensor")


class Parameter03:
    """A parameter as PyTorch 0.3 pickled it: `Parameter(data)` (data via `_rebuild_tensor`), then a BUILD
    with (requires_grad, volatile, backward hooks)."""

    def __init__(self, array):
        self.tensor = Tensor(array)

    def __reduce_ex__(self, protocol):
        t = self.tensor
        stride = tuple(int(np.prod(t.shape[i + 1:])) for i in range(len(t.shape)))
        data = _Reduced((REBUILD_TENSOR_03, (t.storage, 0, tuple(t.shape), stride)))
        return (PARAMETER_03, (data,), (True, False, collections.OrderedDict()))


def test_pytorch_03_parameters_and_cuda_storages_read_back(tmp_path):
    weight = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    path = tmp_path / "old"
    write_torch_file(path, collections.OrderedDict(weight=Parameter03(weight)), legacy=True)
    got = read_torch_module(path)
    assert list(got) == ["weight"] and np.array_equal(got["weight"], weight)


class _Hostile:
    def __init__(self, module, name, arg):
        self.target, self.arg = fake_global(module, name), arg

    def __reduce_ex__(self, protocol):
        return (self.target, (self.arg,))


@pytest.mark.parametrize("legacy,module,name", [(True, "os", "system"), (False, "builtins", "eval")])
def test_a_hostile_pickle_is_refused_naming_file_and_global(tmp_path, legacy, module, name):
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if name == "system" else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "UNet_sigma0.0_1"
    write_torch_file(path, {"model": _Hostile(module, name, payload)}, legacy)
    with pytest.raises(NucleaizerError) as info:
        read_torch_module(path)
    message = str(info.value)
    assert str(path) in message and f"{module}.{name}" in message and "\n" not in message
    assert not marker.exists()


def test_truncated_and_foreign_files_are_refused_with_one_line(original, tmp_path):
    root, _ = original
    for name in MEMBERS:
        data = (root / name / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(NucleaizerError, match=r"cut-.*(truncated|not a readable)"):
            read_torch_module(cut)
    foreign = tmp_path / "foreign"
    foreign.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(NucleaizerError, match="wrong magic number"):
        read_torch_module(foreign)


class _Strided:
    """A tensor whose size and stride are given as written (a forged header)."""

    def __init__(self, array, size, stride):
        self.storage, self.size, self.stride = Storage(np.asarray(array)), size, stride

    def __reduce_ex__(self, protocol):
        return (REBUILD_TENSOR, (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_a_tensor_claiming_more_elements_than_its_storage_is_refused_before_allocating(tmp_path, legacy):
    path = tmp_path / "UNet_sigma0.0_1"
    write_torch_file(path, {"weight": _Strided(np.ones(4, np.float32), (100_000, 100_000), (0, 0))}, legacy)
    with pytest.raises(NucleaizerError) as info:  # 10¹⁰ float32 elements would be 40 GB
        read_torch_module(path)
    assert str(info.value) == (f"{path}: not a readable PyTorch module pickle (a tensor of shape (100000, 100000) "
                               "(10,000,000,000 elements) in storage '0' of 4)")


def test_a_pickle_nested_300000_deep_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep"
    depth = 300_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # ']' pushes a list, 'a' appends it to the one below
        archive.writestr("archive/data.pkl", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    with pytest.raises(NucleaizerError, match=r"deep: not a readable PyTorch module pickle \(nested too deeply\)"):
        read_torch_module(path)


def test_storage_members_or_counts_larger_than_the_file_are_refused_before_reading(tmp_path):
    path = tmp_path / "bomb"
    write_torch_file(path, {"weight": Tensor(np.ones(4, np.float32))}, legacy=False)
    data = bytearray(path.read_bytes())
    entry = data.index(b"archive/data/0", data.index(b"archive/data/0") + 1) - 46  # its central directory record
    data[entry + 24:entry + 28] = struct.pack("<I", 3_000_000_000)  # declared uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(NucleaizerError, match=r"storage member archive/data/0 unpacks to 3,000,000,000 bytes, "
                                              r"its pickle declares 16"):
        read_torch_module(path)
    legacy = tmp_path / "legacy"
    write_torch_file(legacy, {"weight": Tensor(np.ones(4, np.float32))}, legacy=True)
    data = bytearray(legacy.read_bytes())
    count = data.rindex(struct.pack("<q", 4))
    data[count:count + 8] = struct.pack("<q", 10**12)  # a storage of 10¹² elements in a file of a few hundred bytes
    legacy.write_bytes(bytes(data))
    with pytest.raises(NucleaizerError, match="truncated PyTorch file"):
        read_torch_module(legacy)


# ---------------------------------------------------------------------------------------------- numerics

def test_converted_member_equals_a_numpy_forward_of_the_original_architecture(original):
    _, states = original
    rng = np.random.default_rng(7)
    model = unet_from_state(states["UNet_sigma0.0_1"])
    for shape in ((64, 64, 3), (37, 50, 3)):  # the odd size exercises the right/bottom padding
        image = rng.uniform(0, 1, shape)
        expected = numpy_forward(states["UNet_sigma0.0_1"], image)
        got = keras_forward(model, image)
        assert got.shape == shape[:2]
        assert np.max(np.abs(got - expected)) <= 1e-4
        assert np.std(expected) > 1e-3  # a real map, not a constant the check would pass trivially


def test_an_unknown_layout_is_refused(original):
    _, states = original
    bad = dict(states["UNet_sigma0.0_1"])
    bad["decoder_2.decoder.0.weight"] = bad["decoder_2.decoder.0.weight"][:, :-1]
    with pytest.raises(ValueError, match="unknown layout: decoder_2.decoder.0"):
        unet_from_state(bad)
    del bad["center.center.7.bias"]
    with pytest.raises(ValueError, match="center.center.7.bias"):
        unet_from_state(bad)


# ---------------------------------------------------------------------------------------------- the folder and the CLI

def test_convert_unet_writes_the_ensemble_folder_the_full_mode_reads(original, tmp_path):
    from nucleaizer_tf.unet.ensemble import UNetEnsemble

    root, states = original
    assert [(m.name, m.sigma) for m in original_members(root)] == [("UNet_sigma0.0_1", 0.0), ("UNet_sigma0.5_1", 0.5)]
    out = tmp_path / "ensemble"
    result = CliRunner().invoke(app, ["convert-unet", str(root), str(out), "-q"])
    assert result.exit_code == 0, result.output
    ensemble = UNetEnsemble.load(out)
    assert [m.name for m in ensemble.members] == ["UNet_sigma0.0_1", "UNet_sigma0.5_1"]
    assert ensemble.sigmas == (0.0, 0.5)
    assert ensemble.members[0].architecture["base_filters"] == BASE
    image = np.random.default_rng(3).uniform(0, 1, (64, 64, 3))
    for spec, model in zip(ensemble.members, ensemble.models):
        assert np.max(np.abs(keras_forward(model, image) - numpy_forward(states[spec.name], image))) <= 1e-4
    # the same source again is a no-op; a different ensemble in the folder is refused
    before = (out / "manifest.json").stat().st_mtime_ns
    assert CliRunner().invoke(app, ["convert-unet", str(root), str(out), "-q"]).exit_code == 0
    assert (out / "manifest.json").stat().st_mtime_ns == before
    other = tmp_path / "other"
    (other / "UNet_sigma1.0_1").mkdir(parents=True)
    write_torch_file(other / "UNet_sigma1.0_1" / "UNet_sigma1.0_1", module_tree(random_state(5), False), False)
    refused = CliRunner().invoke(app, ["convert-unet", str(other), str(out), "-q"])
    assert refused.exit_code == 2 and "already holds a different U-Net ensemble" in refused.stderr


def _bad_folder(tmp_path, kind):
    root = tmp_path / kind
    (root / "UNet_sigma0.0_1").mkdir(parents=True)
    good = root / "UNet_sigma0.0_1" / "UNet_sigma0.0_1"
    write_torch_file(good, module_tree(random_state(0), True), True)
    (root / "UNet_sigma2.0_1").mkdir()
    bad = root / "UNet_sigma2.0_1" / "UNet_sigma2.0_1"
    if kind == "hostile":
        write_torch_file(bad, _Hostile("os", "system", f"touch {tmp_path / 'pwned'}"), False)
    elif kind == "truncated":
        bad.write_bytes(good.read_bytes()[:5000])
    elif kind == "layout":
        state = random_state(1)
        state["last.first.6.weight"] = state["last.first.6.weight"][:, :, :1, :1].repeat(2, axis=2)  # 2×2 kernel
        write_torch_file(bad, module_tree(state, False), False)
    return root, bad  # "missing": the folder UNet_sigma2.0_1 holds no file


@pytest.mark.parametrize("kind,problem", [("hostile", "refused to load global os.system"),
                                          ("truncated", "truncated"), ("layout", "unknown layout"),
                                          ("missing", "missing")])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, kind, problem):
    root, bad = _bad_folder(tmp_path, kind)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert-unet", str(root), str(out), "-q"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0] and problem in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "pwned").exists()


def test_full_mode_with_the_original_folder_equals_the_trained_ensemble_format(original, dsb_train, tmp_path):
    """The full mode's U-Net input: `--unet` pointing at the original folder is converted once into the work
    folder, and its ensemble maps equal, bit for bit, those of a `train ensemble`-format folder holding the
    same weights (the Mask R-CNN stages do not depend on the U-Net, so identical uint16 maps mean
    identical full-mode results)."""
    from nucleaizer_tf.io import read_image, to_rgb8
    from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    # A Keras ensemble as `train ensemble` writes it, and the same weights as original PyTorch pickles.
    trained = make_seeded_ensemble(tmp_path / "trained", sigmas=(0.0, 0.5), seed=3, base_filters=BASE)
    root = tmp_path / "kaggle_workflow" / "unet"
    for i, (spec, model) in enumerate(zip(trained.members, trained.models)):
        rng = np.random.default_rng(i)
        for layer in model.layers:  # real running statistics, so BN conversion is exercised
            if layer.name.rsplit("_", 1)[-1].startswith("bn"):
                g, b, m, v = layer.get_weights()
                layer.set_weights([g, b, rng.uniform(-0.1, 0.1, m.shape).astype(np.float32),
                                   rng.uniform(0.5, 1.5, v.shape).astype(np.float32)])
        (root / spec.name).mkdir(parents=True)
        write_torch_file(root / spec.name / spec.name, module_tree(_keras_to_torch_state(model), i % 2 == 0), i % 2 == 0)
    trained.save(tmp_path / "trained")  # with the new statistics

    dummy = tmp_path / "mask_rcnn_final.h5"
    dummy.write_bytes(b"not loaded: the U-Net stage alone is compared")
    work = tmp_path / "work"
    pipeline = FullPipeline(work, dummy, dummy, root, FullSettings())
    assert pipeline.unet_dir.parent == work / "unet-converted"
    manifest = pipeline.unet_dir / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    reference = FullPipeline(tmp_path / "work2", dummy, dummy, tmp_path / "trained", FullSettings())
    assert reference.unet_dir == tmp_path / "trained"
    for path in sorted((dsb_train / "images").glob("*.png"))[:1]:
        rgb = to_rgb8(read_image(path), FullSettings().conversion)
        got, want = pipeline._ensemble().predict(rgb), reference._ensemble().predict(rgb)
        assert got.dtype == np.uint16 and np.array_equal(got, want)
        assert got.std() > 0
    again = FullPipeline(work, dummy, dummy, root, FullSettings())  # converted once, then reused
    assert again.unet_dir == pipeline.unet_dir and manifest.stat().st_mtime_ns == stamp
    assert ensemble_folder_for(tmp_path / "trained", work) == tmp_path / "trained"


def _keras_to_torch_state(model) -> dict[str, np.ndarray]:
    """Export a Keras U-Net's weights in the original's torch names and layouts (the inverse mapping)."""
    state = random_state(0)  # names and shapes
    blocks = {"first": ("first.first", 0), "center": ("center.center", 1), "last": ("last.first", 0),
              **{f"encoder_{k}": (f"encoder_{k}.encoder", 1) for k in (1, 2, 3)},
              **{f"decoder_{k}": (f"decoder_{k}.decoder", 0) for k in (1, 2, 3)}}
    for block, (seq, start) in blocks.items():
        for i, offset in ((1, 0), (2, 3)):
            kernel, bias = model.get_layer(f"{block}_conv{i}").get_weights()
            state[f"{seq}.{start + offset}.weight"] = kernel.transpose(3, 2, 0, 1)
            state[f"{seq}.{start + offset}.bias"] = bias
            g, b, m, v = model.get_layer(f"{block}_bn{i}").get_weights()
            for name, value in zip(("weight", "bias", "running_mean", "running_var"), (g, b, m, v)):
                state[f"{seq}.{start + offset + 1}.{name}"] = value
        if block == "center" or block.startswith("decoder"):
            kernel, bias = model.get_layer(f"{block}_up").get_weights()  # [kh, kw, out, in] → [in, out, kh, kw]
            state[f"{seq}.{start + 6}.weight"], state[f"{seq}.{start + 6}.bias"] = kernel.transpose(3, 2, 0, 1), bias
    kernel, bias = model.get_layer("last_conv_out").get_weights()
    state["last.first.6.weight"], state["last.first.6.bias"] = kernel.transpose(3, 2, 0, 1), bias
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- torch cross-checks

def _torch_unet_module(torch):
    """The original module classes, written here from the architecture spec, under the name `models.unet`."""
    nn = torch.nn
    module = types.ModuleType("models.unet")

    def double(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    def pad_to(x, ref):
        return nn.functional.pad(x, (0, ref.shape[3] - x.shape[3], 0, ref.shape[2] - x.shape[2]))

    class First(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.first = nn.Sequential(*double(cin, cout))

        def forward(self, x):
            return self.first(x)

    class Encoder(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.encoder = nn.Sequential(nn.MaxPool2d(2), *double(cin, cout))

        def forward(self, x):
            return self.encoder(x)

    class Center(nn.Module):
        def __init__(self, cin, cout, up):
            super().__init__()
            self.center = nn.Sequential(nn.MaxPool2d(2), *double(cin, cout), nn.ConvTranspose2d(cout, up, 2, stride=2))

        def forward(self, x):
            return self.center(x)

    class Decoder(nn.Module):
        def __init__(self, cin, cout, up):
            super().__init__()
            self.decoder = nn.Sequential(*double(cin, cout), nn.ConvTranspose2d(cout, up, 2, stride=2))

        def forward(self, x):
            return self.decoder(x)

    class Last(nn.Module):
        def __init__(self, cin, mid, cout):
            super().__init__()
            self.first = nn.Sequential(*double(cin, mid), nn.Conv2d(mid, cout, 1), nn.Sigmoid())

        def forward(self, x):
            return self.first(x)

    class UNet(nn.Module):
        def __init__(self, cin=3, cout=1, base=BASE):
            super().__init__()
            w = [base * 2**i for i in range(5)]
            self.first = First(cin, w[0])
            self.encoder_1, self.encoder_2, self.encoder_3 = Encoder(w[0], w[1]), Encoder(w[1], w[2]), Encoder(w[2], w[3])
            self.center = Center(w[3], w[4], w[3])
            self.decoder_3, self.decoder_2, self.decoder_1 = (Decoder(2 * w[3], w[3], w[2]), Decoder(2 * w[2], w[2], w[1]),
                                                              Decoder(2 * w[1], w[1], w[0]))
            self.last = Last(2 * w[0], w[0], cout)

        def forward(self, x):
            f = self.first(x)
            e1 = self.encoder_1(f)
            e2 = self.encoder_2(e1)
            e3 = self.encoder_3(e2)
            c = self.center(e3)
            d3 = self.decoder_3(torch.cat([pad_to(c, e3), e3], 1))
            d2 = self.decoder_2(torch.cat([pad_to(d3, e2), e2], 1))
            d1 = self.decoder_1(torch.cat([pad_to(d2, e1), e1], 1))
            return self.last(torch.cat([pad_to(d1, f), f], 1))

    for cls in (First, Encoder, Center, Decoder, Last, UNet):
        cls.__module__ = "models.unet"
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    return module


@pytest.fixture()
def torch_unet(monkeypatch):
    torch = pytest.importorskip("torch")
    module = _torch_unet_module(torch)
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.unet", module)
    return torch, module


def _torch_forward(torch, net, image):
    with torch.no_grad():
        return net.eval()(torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32)))[0, 0].numpy()


@pytest.mark.parametrize("name", list(MEMBERS))
def test_torch_load_of_the_fixtures_gives_the_same_tensors_and_forward(original, torch_unet, name):
    torch, _ = torch_unet
    root, states = original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SourceChangeWarning: the legacy fixture carries a placeholder source
        net = torch.load(root / name / name, map_location="cpu", weights_only=False)
    assert type(net).__name__ == "UNet"
    theirs = {k: v.numpy() for k, v in net.state_dict().items()}
    assert sorted(theirs) == sorted(states[name])
    for key, value in states[name].items():
        assert np.array_equal(theirs[key], value), key
    image = np.random.default_rng(11).uniform(0, 1, (64, 64, 3))
    assert np.max(np.abs(keras_forward(unet_from_state(states[name]), image) - _torch_forward(torch, net, image))) <= 1e-4


@pytest.mark.parametrize("legacy", [True, False])
def test_torch_save_output_converts_and_matches_torch_forward(torch_unet, tmp_path, legacy):
    torch, module = torch_unet
    torch.manual_seed(0)
    net = module.UNet()
    with torch.no_grad():  # non-trivial running statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "UNet_sigma0.5_2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    assert zipfile.is_zipfile(path) is not legacy
    record = read_torch_module(path)
    got = module_state(record)
    want = {k: v.numpy() for k, v in net.state_dict().items()}
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
    image = np.random.default_rng(5).uniform(0, 1, (45, 64, 3))
    diff = np.abs(keras_forward(unet_from_state(got), image) - _torch_forward(torch, net, image))
    assert diff.max() <= 1e-4
