"""Read a whole-module PyTorch pickle (`torch.save(model)`) without PyTorch, through an allow-list.

Both serialisations `torch.save` has written are understood:

* legacy (PyTorch ≤ 1.5): five consecutive pickles-and-blobs on one stream: the magic number
  0x1950a86a20f9469cfc6c, the protocol version 1001, a dict of system information (byte order, type
  sizes), the object itself, the sorted list of storage keys; then, per key, an int64 element count and
  the storage's raw bytes;
* zip (PyTorch ≥ 1.6): a zip archive with one top-level folder holding `data.pkl` (the object) and
  `data/<key>` (each storage's raw bytes).

In both, tensors are pickled as calls of `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)` and storages as persistent ids `("storage", storage_type, key, location, numel[, view])`. Nothing is
imported from the pickle: only the globals of `ALLOWED_GLOBALS` resolve, each to an inert stand-in
(module classes become `ModuleRecord`s that keep their attributes, parameters and buffers; tensors become
NumPy arrays); any other global is refused with an error naming the file and the global.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError

__all__ = ["ALLOWED_GLOBALS", "ModuleRecord", "module_state", "named_modules", "read_torch_module"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
MAX_INFLATE_RATIO = 1100
"""Deflate packs at most about 1,032 bytes into one: a member declaring more is a bomb or damaged."""

#: Storage type name → NumPy dtype of its elements (little-endian, as every file we accept is).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}

#: The PyTorch layer classes the nucleAIzer U-Net is made of (module → class names).
TORCH_MODULE_CLASSES = {
    "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("ReLU", "Sigmoid", "Softmax2d"),
    "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.dropout": ("Dropout2d",),
    "torch.nn.modules.container": ("Sequential",),
}
#: The U-Net's own classes (`UNet/models/unet.py`), under the module names its scripts imported them by.
UNET_MODULE_CLASSES = {
    module: ("UNet", "First", "Encoder", "Center", "Decoder", "Last")
    for module in ("models.unet", "UNet.models.unet", "unet")
}


class ModuleRecord:
    """An inert stand-in for a pickled `torch.nn.Module`: its class name and its pickled `__dict__`.

    Nothing of the original class runs; `state` holds what the pickle stored (hyper-parameters such as
    `eps`, and the `_parameters`, `_buffers` and `_modules` ordered dicts). Each allowed PyTorch class
    resolves to its own subclass (named like the PyTorch class); the entries of `state` also read as
    attributes (``record.eps``).

    Attributes
    ----------
    torch_type : str
        The dotted name of the PyTorch class, e.g. "torch.nn.modules.conv.Conv2d" ("?" on this base
        class).
    state : dict
        The pickled ``__dict__`` of the module, with tensors as NumPy arrays.

    Examples
    --------
    >>> record = ALLOWED_GLOBALS[("torch.nn.modules.batchnorm", "BatchNorm2d")]()
    >>> record.__setstate__({"eps": 1e-05, "_parameters": {}, "_buffers": {}, "_modules": {}})
    >>> record, record.torch_type, record.eps
    (<ModuleRecord torch.nn.modules.batchnorm.BatchNorm2d>, 'torch.nn.modules.batchnorm.BatchNorm2d', 1e-05)
    """

    torch_type = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.torch_type}: unexpected module state of type {type(state).__name__}")
        self.state = state

    def __getattr__(self, name):
        state = self.__dict__.get("state", {})
        if name in state:
            return state[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<ModuleRecord {self.torch_type}>"


_RECORD_CLASSES: dict[tuple[str, str], type] = {}


def _record_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _RECORD_CLASSES:
        _RECORD_CLASSES[key] = type(name, (ModuleRecord,), {"torch_type": f"{module}.{name}"})
    return _RECORD_CLASSES[key]


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])

    def __setstate__(self, state):  # a BUILD on the shared allow-list object must not alter it
        raise pickle.UnpicklingError(f"state given to the storage type {self.name}")


class _Storage:
    """A storage whose bytes arrive later (legacy format) or now (zip); `view` = (root, element offset)."""

    def __init__(self, dtype: np.dtype, key: str, root=None, offset: int = 0, numel: int | None = None):
        self.dtype, self.key, self.root, self.offset, self.numel = dtype, key, root, offset, numel
        self.data: np.ndarray | None = None

    def array(self) -> np.ndarray:
        if self.root is not None:
            base = self.root.array()
            end = self.offset + (self.numel if self.numel is not None else base.size - self.offset)
            if end > base.size:
                raise ValueError(f"storage view {self.key!r} reaches past its root storage")
            return base[self.offset:end]
        if self.data is None:
            raise ValueError(f"storage {self.key!r} has no data in the file")
        return self.data


class _LazyTensor:
    """`_rebuild_tensor_v2`'s arguments, materialised into a NumPy array once the storages are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride) or min(self.size + self.stride + (self.offset,), default=0) < 0:
            raise pickle.UnpicklingError(f"invalid tensor geometry size={self.size} stride={self.stride}")

    def __setstate__(self, state):
        """PyTorch 0.3 rebuilt a Parameter as `Parameter(data)` followed by a BUILD with (requires_grad,
        volatile, hooks): autograd settings, which inference ignores."""

    def materialise(self) -> np.ndarray:
        flat = self.storage.array()
        if 0 in self.size:
            return np.zeros(self.size, dtype=flat.dtype)
        elements = int(np.prod(self.size, dtype=np.float64))
        if elements > flat.size:  # only broadcast views (stride 0) have more, and no saved U-Net holds one
            raise ValueError(f"a tensor of shape {self.size} ({elements:,} elements) in storage "
                             f"{self.storage.key!r} of {flat.size:,}")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= flat.size:
            raise ValueError(f"a tensor of shape {self.size} reaches past the end of storage "
                             f"{self.storage.key!r} ({flat.size} elements)")
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * flat.itemsize for s in self.stride], writeable=False)
        return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *metadata):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *state):
    if not isinstance(data, _LazyTensor):
        raise pickle.UnpicklingError("parameter rebuilt from something that is not a tensor")
    return data


def _inert_backend(*args):
    """PyTorch ≤ 0.4 pickled each module's `_backend` as a call of `_get_thnn_function_backend()`."""
    return None


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,  # protocol-2 pickles name Python 2's module (pickle maps it back)
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.nn.parameter", "Parameter"): _rebuild_parameter,  # PyTorch 0.3/0.4: Parameter(data, ...)
        ("torch.autograd.variable", "Variable"): _rebuild_parameter,
        ("torch", "Size"): tuple,
        ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _inert_backend,
    }
    for name in STORAGE_DTYPES:
        allowed[("torch", name)] = allowed[("torch.cuda", name)] = _StorageType(name)
    for table in (TORCH_MODULE_CLASSES, UNET_MODULE_CLASSES):
        for module, names in table.items():
            for name in names:
                allowed[(module, name)] = _record_class(module, name)
    return allowed


#: (module, name) → the inert object it resolves to. Everything else is refused.
ALLOWED_GLOBALS = _allowed_globals()


class _Refused(Exception):
    """A global outside the allow-list; carries the dotted name."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding="latin1")  # Python-2 pickles (PyTorch < 1.5 ran there too)
        self._persistent = persistent_load

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        return self._persistent(pid)


class _StorageTable:
    """Turns persistent ids into `_Storage`s, one per key (views share their root)."""

    def __init__(self):
        self.storages: dict[str, _Storage] = {}

    def __call__(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        if pid[0] == "module":  # legacy: (module, class, source file, source); the class resolved already
            if len(pid) < 2 or not (isinstance(pid[1], type) and issubclass(pid[1], ModuleRecord)):
                raise pickle.UnpicklingError("a 'module' persistent id without a module class")
            return pid[1]
        if pid[0] != "storage" or len(pid) < 5:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r:.80}")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, key, numel=int(numel))
        root = self.storages[key]
        if view is None:
            return root
        view_key, offset, view_size = view
        if str(view_key) not in self.storages:
            self.storages[str(view_key)] = _Storage(root.dtype, str(view_key), root=root, offset=int(offset),
                                                    numel=int(view_size))
        return self.storages[str(view_key)]


def _materialise(obj):
    """Replace every lazy tensor in the loaded tree by its NumPy array (modules, dicts, lists, tuples)."""
    seen: set[int] = set()

    def walk(value):
        if isinstance(value, _LazyTensor):
            return value.materialise()
        if id(value) in seen:
            return value
        if isinstance(value, ModuleRecord):
            seen.add(id(value))
            for k, v in list(getattr(value, "state", {}).items()):
                value.state[k] = walk(v)
        elif isinstance(value, dict):
            seen.add(id(value))
            for k, v in list(value.items()):
                value[k] = walk(v)
        elif isinstance(value, list):
            seen.add(id(value))
            value[:] = [walk(v) for v in value]
        elif isinstance(value, tuple):
            return tuple(walk(v) for v in value)
        return value

    return walk(obj)


def _read_legacy(f, table: _StorageTable, size: int):
    magic = _RestrictedUnpickler(f).load()
    if magic != MAGIC_NUMBER:
        raise ValueError("not a PyTorch file (wrong magic number)")
    version = _RestrictedUnpickler(f).load()
    if version != PROTOCOL_VERSION:
        raise ValueError(f"unsupported PyTorch legacy protocol version {version!r}")
    sys_info = _RestrictedUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise ValueError("written on a big-endian machine, which is not supported")
    result = _RestrictedUnpickler(f, table).load()
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise ValueError("the storage key list is missing")
    for key in keys:
        storage = table.storages.get(str(key))
        if storage is None or storage.root is not None:
            raise ValueError(f"storage key {key!r} does not belong to the pickled object")
        header = f.read(8)
        if len(header) != 8:
            raise EOFError
        (count,) = struct.unpack("<q", header)
        nbytes = count * storage.dtype.itemsize
        if nbytes > size - f.tell():  # checked before reading: a forged count must not allocate
            raise EOFError
        blob = f.read(nbytes)
        if count < 0 or len(blob) != nbytes:
            raise EOFError
        storage.data = np.frombuffer(blob, dtype=storage.dtype)
    return result


def _read_zip(path: Path, table: _StorageTable):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("a zip file, but not a PyTorch archive (no single <folder>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            result = _RestrictedUnpickler(io.BytesIO(f.read()), table).load()
        for key, storage in table.storages.items():
            if storage.root is not None:
                continue
            member = f"{prefix}data/{key}"
            if member not in names:
                raise ValueError(f"storage {member} is missing from the archive")
            _check_member(archive.getinfo(member), storage, path.stat().st_size)
            blob = archive.read(member)
            usable = len(blob) - len(blob) % storage.dtype.itemsize
            storage.data = np.frombuffer(blob[:usable], dtype=storage.dtype)
    return result


def _check_member(info: zipfile.ZipInfo, storage: _Storage, archive_bytes: int) -> None:
    """Refuse a storage member larger than its pickle declares or than its archive could hold, before reading."""
    declared = (storage.numel or 0) * storage.dtype.itemsize
    if info.file_size > declared + storage.dtype.itemsize:
        raise ValueError(f"storage member {info.filename} unpacks to {info.file_size:,} bytes, its pickle "
                         f"declares {declared:,}")
    limit = archive_bytes if info.compress_type == zipfile.ZIP_STORED else MAX_INFLATE_RATIO * info.compress_size
    if info.file_size > limit:
        raise ValueError(f"storage member {info.filename} declares {info.file_size:,} bytes, more than the "
                         f"archive can hold (a ZIP bomb or a damaged file)")


def read_torch_module(path: str | os.PathLike):
    """Load a `torch.save`d object from `path` without PyTorch; modules come back as `ModuleRecord`s.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `torch.save`, in the legacy (PyTorch ≤ 1.5) or the zip (≥ 1.6) serialisation.

    Returns
    -------
    object
        The pickled object with every module replaced by an inert `ModuleRecord` and every tensor by a
        NumPy array of the stored dtype.

    Raises
    ------
    NucleaizerError
        One line naming the file and the problem: a global outside `ALLOWED_GLOBALS` (such as `os.system`),
        a truncated or corrupt file, or a file that is not a PyTorch pickle.

    Examples
    --------
    >>> net = read_torch_module("kaggle_workflow/unet/UNet_sigma0.0_1/UNet_sigma0.0_1")  # doctest: +SKIP
    >>> net.torch_type, sorted(module_state(net))[:2]  # doctest: +SKIP
    ('models.unet.UNet', ['center.center.1.bias', 'center.center.1.weight'])
    """
    path = Path(path)
    if not path.is_file():
        raise NucleaizerError(f"{path}: no such file")
    table = _StorageTable()
    try:
        if zipfile.is_zipfile(path):
            result = _read_zip(path, table)
        else:
            with open(path, "rb") as f:
                result = _read_legacy(f, table, path.stat().st_size)
        return _materialise(result)
    except RecursionError:
        raise NucleaizerError(f"{path}: not a readable PyTorch module pickle (nested too deeply)") from None
    except _Refused as exc:
        raise NucleaizerError(f"{path}: refused to load global {exc} (not on the allow-list of PyTorch "
                              "pickles this import reads)") from None
    except (EOFError, struct.error):
        raise NucleaizerError(f"{path}: truncated PyTorch file (it ends before its data does)") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError,
            AttributeError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        raise NucleaizerError(f"{path}: not a readable PyTorch module pickle ({str(exc).strip()[:200] or type(exc).__name__})") from None


def _group(module: ModuleRecord, group: str) -> dict:
    value = getattr(module, "state", {}).get(group) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{module.torch_type}.{group} is not a dict of names")
    return value


def named_modules(root: ModuleRecord, prefix: str = "") -> dict[str, ModuleRecord]:
    """Every module of the tree by its dotted path ("" for the root), in `state_dict` order.

    Child modules that are None are left out.

    Parameters
    ----------
    root : ModuleRecord
        The module tree, as from `read_torch_module`.
    prefix : str, optional
        The dotted path of `root` itself (default "": the top of the tree).

    Returns
    -------
    dict of str to ModuleRecord
        Dotted path -> module, parents before their children.

    Raises
    ------
    ValueError
        When `root` (or a child) is not a `ModuleRecord`, or a `_modules` entry is not a dict of names.

    Examples
    --------
    >>> conv = ALLOWED_GLOBALS[("torch.nn.modules.conv", "Conv2d")]()
    >>> conv.__setstate__({"_parameters": {"weight": np.zeros((8, 3, 3, 3), np.float32), "bias": None},
    ...                    "_buffers": {}, "_modules": {}})
    >>> seq = ALLOWED_GLOBALS[("torch.nn.modules.container", "Sequential")]()
    >>> seq.__setstate__({"_parameters": {}, "_buffers": {}, "_modules": {"0": conv}})
    >>> named_modules(seq)
    {'': <ModuleRecord torch.nn.modules.container.Sequential>, '0': <ModuleRecord torch.nn.modules.conv.Conv2d>}
    >>> [name for name in named_modules(net)][:3]  # doctest: +SKIP
    ['', 'first', 'first.first']
    """
    if not isinstance(root, ModuleRecord):
        raise ValueError(f"expected a pickled torch module, found {type(root).__name__}")
    found = {prefix: root}
    for name, child in _group(root, "_modules").items():
        if child is not None:
            found.update(named_modules(child, f"{prefix}.{name}" if prefix else str(name)))
    return found


def module_state(root: ModuleRecord) -> dict[str, np.ndarray]:
    """The module tree's parameters and buffers as `torch.nn.Module.state_dict()` names them.

    Entries that are None (such as a convolution without bias) are left out.

    Parameters
    ----------
    root : ModuleRecord
        The module tree, as from `read_torch_module`.

    Returns
    -------
    dict of str to numpy.ndarray
        Dotted name (e.g. "first.first.0.weight") -> array, in `state_dict` order: per module, its
        parameters, then its buffers.

    Raises
    ------
    ValueError
        When the tree holds something that is not a `ModuleRecord` where a module belongs.

    Examples
    --------
    >>> conv = ALLOWED_GLOBALS[("torch.nn.modules.conv", "Conv2d")]()
    >>> conv.__setstate__({"_parameters": {"weight": np.zeros((8, 3, 3, 3), np.float32), "bias": None},
    ...                    "_buffers": {}, "_modules": {}})
    >>> seq = ALLOWED_GLOBALS[("torch.nn.modules.container", "Sequential")]()
    >>> seq.__setstate__({"_parameters": {}, "_buffers": {}, "_modules": {"0": conv}})
    >>> {name: value.shape for name, value in module_state(seq).items()}
    {'0.weight': (8, 3, 3, 3)}
    >>> module_state(net)["first.first.0.weight"].shape  # doctest: +SKIP
    (64, 3, 3, 3)
    """
    state = {}
    for path, module in named_modules(root).items():
        for group in ("_parameters", "_buffers"):
            for name, value in _group(module, group).items():
                if value is not None:
                    state[f"{path}.{name}" if path else name] = value
    return state
