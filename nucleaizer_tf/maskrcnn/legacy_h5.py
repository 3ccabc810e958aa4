"""Legacy Keras-2 HDF5 weight files (matterport Mask R-CNN / nucleAIzer ``*.h5``) for Keras 3 models.

Keras 3 can read these files by name, but it silently skips every name it does not find, so a
misspelt layer or a COCO file with 81 classes would load "successfully" with random heads. This
module reads and writes the layout itself, with h5py, and refuses anything it cannot account for.

File layout (what Keras 2.1.6's ``save_weights`` wrote; section 3 of ``maskrcnn-legacy.md``)::

    /                          attrs: layer_names (all layers, model order), backend, keras_version
    /<layer>                   attrs: weight_names, e.g. [b"conv1/kernel:0", b"conv1/bias:0"]
    /<layer>/<weight name>     float32 dataset (the "/" in the weight name makes a sub-group)

A full-model save puts the same tree under ``/model_weights``. Real nucleAIzer files (Keras 2.1.x)
store the strings as fixed-length byte arrays; tf-keras 2.x files use variable-length strings; both
are read.

Matching is by layer name. Inside a layer the arrays are taken in the file's order and assigned to
the layer's weights in Keras-2 order (trainable first, then non-trainable: kernel, bias /
gamma, beta, moving_mean, moving_variance). A nested model (``rpn_model``) is one group holding the
weights of all its layers (``rpn_conv_shared/kernel:0`` ...); a ``TimeDistributed`` wrapper's weights
are those of the wrapped layer, stored under the wrapper's name.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.write import atomic_path

__all__ = [
    "LegacyWeightsError",
    "LoadReport",
    "inspect_legacy_h5",
    "legacy_layer_order",
    "load_legacy_weights",
    "save_legacy_weights",
]

# Keras 2 splits an attribute into name0, name1, ... when it would exceed the HDF5 object header.
_HDF5_ATTR_LIMIT = 64512
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Layers that only the training graph has (used to pick the layer order when saving).
_TRAINING_ONLY = frozenset({
    "input_gt_boxes", "input_gt_class_ids", "input_gt_masks", "proposal_targets", "input_rpn_match",
    "input_rpn_bbox", "output_rois", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
    "mrcnn_bbox_loss", "mrcnn_mask_loss",
})


class LegacyWeightsError(NucleaizerError):
    """A legacy weight file cannot be read, or does not fit the model (message lists every problem)."""


@dataclass
class LoadReport:
    """What `load_legacy_weights` did. Layer names are the file's / model's top-level names.

    Attributes
    ----------
    path : str
        The weight file.
    root : str
        Group holding the weights: "/" or "/model_weights" (a full-model save).
    keras_version, backend : str or None
        The file's attributes of those names.
    loaded : list of str
        Layers whose weights were assigned.
    n_arrays : int
        Arrays assigned.
    n_values : int
        Scalars assigned (parameters).
    excluded : list of str
        Weighted layers skipped by `exclude`.
    missing : list of str
        Model layers with weights, not in the file.
    unexpected : list of str
        File layers with weights, not in the model.
    mismatched : list of str
        "<layer>: <what differs>" (array counts or shapes).

    Examples
    --------
    >>> report = LoadReport("mask_rcnn_final.h5", "/", "2.1.6", "tensorflow", loaded=["conv1", "bn_conv1"],
    ...                     n_arrays=6, n_values=9728)
    >>> report.ok
    True
    >>> print(report)
    mask_rcnn_final.h5: loaded 2 layers, 6 arrays, 9,728 values (keras_version 2.1.6, root /)
    >>> LoadReport("coco.h5", "/", "2.1.6", "tensorflow", missing=["mrcnn_mask"]).problems()
    ['1 model layer(s) with weights not in the file: mrcnn_mask']
    """

    path: str
    root: str                      # "/" or "/model_weights"
    keras_version: str | None
    backend: str | None
    loaded: list[str] = field(default_factory=list)        # layers whose weights were assigned
    n_arrays: int = 0                                      # arrays assigned
    n_values: int = 0                                      # scalars assigned (parameters)
    excluded: list[str] = field(default_factory=list)      # weighted layers skipped by `exclude`
    missing: list[str] = field(default_factory=list)       # model layers with weights, not in the file
    unexpected: list[str] = field(default_factory=list)    # file layers with weights, not in the model
    mismatched: list[str] = field(default_factory=list)    # "<layer>: <what differs>"

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mismatched."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> list[str]:
        """One line per kind of problem (missing, unexpected), then each mismatch."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} model layer(s) with weights not in the file: "
                       + _short_list(self.missing))
        if self.unexpected:
            out.append(f"{len(self.unexpected)} file layer(s) with weights not in the model: "
                       + _short_list(self.unexpected))
        out.extend(self.mismatched)
        return out

    def __str__(self) -> str:
        head = (f"{self.path}: loaded {len(self.loaded)} layers, {self.n_arrays} arrays, "
                f"{self.n_values:,} values (keras_version {self.keras_version}, root {self.root})")
        if self.excluded:
            head += f"; excluded {len(self.excluded)}: " + _short_list(self.excluded)
        probs = self.problems()
        return head if not probs else head + "\n  " + "\n  ".join(probs)


def _short_list(names: list[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... (+{len(names) - limit} more)"


# --------------------------------------------------------------------------------------------
# Strings and attributes


def _to_str(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value).decode("utf8")
    return str(value)


def _str_list(value: Any) -> list[str]:
    """Decode an h5py attribute holding a list of names (S array, object array, scalar, or empty)."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, np.bytes_, str)):
        return [_to_str(value)]
    arr = np.asarray(value)
    if arr.size == 0:  # Keras 2 stored [] as an empty float64 array
        return []
    return [_to_str(v) for v in arr.ravel().tolist()]


def _read_list_attr(attrs, name: str) -> list[str] | None:
    """`name`, or the chunks name0, name1, ... Keras writes for long lists; None if absent."""
    if name in attrs:
        return _str_list(attrs[name])
    if f"{name}0" not in attrs:
        return None
    out: list[str] = []
    i = 0
    while f"{name}{i}" in attrs:
        out.extend(_str_list(attrs[f"{name}{i}"]))
        i += 1
    return out


def _scalar_attr(attrs, name: str) -> str | None:
    if name not in attrs:
        return None
    vals = _str_list(attrs[name])
    return vals[0] if len(vals) == 1 else ",".join(vals)


def _write_list_attr(attrs, name: str, values: list[str]) -> None:
    """Fixed-length byte strings as Keras 2.1.6 / h5py 2 wrote them; an empty list as empty float64."""
    if not values:
        attrs[name] = np.zeros((0,), dtype=np.float64)
        return
    data = np.array([v.encode("utf8") for v in values])  # dtype S<maxlen>
    for v, b in zip(values, data.tolist()):
        if len(b) > _HDF5_ATTR_LIMIT:
            raise LegacyWeightsError(f"name too long for an HDF5 attribute: {v[:60]}...")
    chunks = 1
    while any(c.nbytes > _HDF5_ATTR_LIMIT for c in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        attrs[name] = data
    else:
        for i, part in enumerate(np.array_split(data, chunks)):
            attrs[f"{name}{i}"] = part


# --------------------------------------------------------------------------------------------
# Opening files with one-line errors


def _probe_unreadable(path: Path, exc: BaseException) -> str:
    """Explain in one line why h5py could not open `path`."""
    msg = str(exc)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        return f"cannot read the file ({err.strerror or err})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (fetch the real file, e.g. `git lfs pull`)"
    m = re.search(r"truncated file: eof = (\d+).*?stored_eof = (\d+)", msg)
    if m:
        return (f"truncated HDF5 file: {int(m.group(1)):,} bytes on disk, the header says "
                f"{int(m.group(2)):,} (incomplete download or copy?)")
    if "truncated" in msg:
        return f"truncated HDF5 file ({size:,} bytes)"
    if _HDF5_SIGNATURE not in head and ("signature" in msg or "not an hdf5" in msg.lower()):
        if head[:2] == b"PK":
            return "not an HDF5 file (a zip archive; a Keras 3 .keras file? use keras.models.load_model)"
        return "not an HDF5 file (no HDF5 signature)"
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    return f"cannot open as HDF5 ({first})"


@contextlib.contextmanager
def _open_h5(path: str | os.PathLike):
    import h5py

    p = Path(path)
    if not p.exists():
        raise LegacyWeightsError(f"{p}: no such file")
    if p.is_dir():
        raise LegacyWeightsError(f"{p}: is a folder, expected a .h5 weight file")
    try:
        fh = h5py.File(p, "r")
    except (OSError, ValueError) as exc:
        raise LegacyWeightsError(f"{p}: {_probe_unreadable(p, exc)}") from None
    try:
        yield fh
    except OSError as exc:  # h5py errors while reading a damaged file: one line, no HDF5 traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LegacyWeightsError(f"{p}: cannot read the file ({first}; truncated or damaged?)") from None
    finally:
        fh.close()


def _weights_root(fh, path) -> tuple[Any, str]:
    """The group holding `layer_names`: the file root, or `model_weights` of a full-model save."""
    if "layer_names" in fh.attrs or "layer_names0" in fh.attrs:
        return fh, "/"
    if "model_weights" in fh:
        g = fh["model_weights"]
        if "layer_names" in g.attrs or "layer_names0" in g.attrs:
            return g, "/model_weights"
    if "layers" in fh and "vars" in fh:
        raise LegacyWeightsError(f"{path}: a Keras 3 '.weights.h5' file, not a legacy Keras-2 weight file "
                                 "(load it with model.load_weights)")
    raise LegacyWeightsError(f"{path}: HDF5 file without a 'layer_names' attribute (at the root or under "
                             "'model_weights'): not a Keras-2 weight file")


@dataclass
class _FileLayer:
    index: int                     # position in layer_names (Keras 2 error messages count from 0)
    name: str
    weight_names: list[str]
    group: Any                     # h5py group or None


def _file_layers(root, path) -> list[_FileLayer]:
    names = _read_list_attr(root.attrs, "layer_names") or []
    out = []
    for k, name in enumerate(names):
        group = root.get(name)
        if group is None:
            # Keras itself would crash here; a weightless entry without a group is harmless.
            out.append(_FileLayer(k, name, [], None))
            continue
        wnames = _read_list_attr(group.attrs, "weight_names") or []
        out.append(_FileLayer(k, name, wnames, group))
    return out


def _dataset(layer: _FileLayer, wname: str, path):
    import h5py

    try:
        obj = layer.group[wname]
    except KeyError:
        raise LegacyWeightsError(f"{path}: layer {layer.name!r} lists weight {wname!r} but the file has no "
                                 "such dataset (damaged file?)") from None
    if not isinstance(obj, h5py.Dataset):
        raise LegacyWeightsError(f"{path}: {layer.name}/{wname} is not a dataset (damaged file?)")
    return obj


# --------------------------------------------------------------------------------------------
# The model side


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _leaf_weights(layer) -> list:
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _model_weights_keras2(model) -> list[tuple[str, Any]]:
    """(owner layer name, variable) of a nested model in Keras 2's `Network.weights` order.

    Keras 2 lists the trainable weights of all sub-layers (in layer order, recursively), then the
    non-trainable ones. (Loading pairs nested weights by sub-layer name when it can, so this order
    only matters for files whose weight names do not carry the sub-layer names, and for saving.)
    """
    trainable: list[tuple[str, Any]] = []
    frozen: list[tuple[str, Any]] = []

    def walk(m) -> None:
        for sub in m.layers:
            if _is_model(sub):
                walk(sub)
            else:
                trainable.extend((sub.name, v) for v in sub.trainable_weights)
                frozen.extend((sub.name, v) for v in sub.non_trainable_weights)

    walk(model)
    return trainable + frozen


@dataclass
class _ModelLayer:
    name: str
    weights: list[tuple[str, Any]]   # (owner name for the saved weight name, variable)
    nested: bool


def _model_layers(model) -> list[_ModelLayer]:
    """Top-level layers of `model` with their weights in legacy order (weightless layers included)."""
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out.append(_ModelLayer(layer.name, _model_weights_keras2(layer), True))
        else:
            out.append(_ModelLayer(layer.name, [(layer.name, v) for v in _leaf_weights(layer)], False))
    return out


def _var_name(var) -> str:
    name = getattr(var, "name", None) or str(var.path).rsplit("/", 1)[-1]
    return name.split(":")[0]


def _prefix(wname: str) -> str:
    return wname.split("/", 1)[0] if "/" in wname else ""


def _pair_nested(mlayer: _ModelLayer, wnames: list[str]) -> list[int] | None:
    """For a nested model: file position of each model weight, paired by sub-layer name.

    Used when every file weight name starts with a sub-layer name of the model and the counts per
    sub-layer agree; this is immune to trainable-flag reordering. None: fall back to positions.
    """
    owners = [o for o, _ in mlayer.weights]
    by_owner: dict[str, list[int]] = {}
    for i, w in enumerate(wnames):
        by_owner.setdefault(_prefix(w), []).append(i)
    model_counts: dict[str, int] = {}
    for o in owners:
        model_counts[o] = model_counts.get(o, 0) + 1
    if set(by_owner) != set(model_counts) or any(len(by_owner[o]) != c for o, c in model_counts.items()):
        return None
    taken: dict[str, int] = {}
    order = []
    for o in owners:
        k = taken.get(o, 0)
        order.append(by_owner[o][k])
        taken[o] = k + 1
    return order


def _compile_exclude(exclude) -> list[re.Pattern]:
    if exclude is None:
        return []
    if isinstance(exclude, (str, re.Pattern)):
        exclude = [exclude]
    return [p if isinstance(p, re.Pattern) else re.compile(str(p)) for p in exclude]


def _excluded(name: str, patterns: list[re.Pattern]) -> bool:
    return any(p.fullmatch(name) for p in patterns)


_HEADS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")


def _head_classes(name: str, file_shape: tuple[int, ...]) -> int | None:
    """Number of classes a head array of the file implies (last axis; 4 per class for mrcnn_bbox_fc)."""
    if name not in _HEADS or not file_shape:
        return None
    return file_shape[-1] // 4 if name == "mrcnn_bbox_fc" else file_shape[-1]


def _add_head_hint(mismatched: list[tuple[str, str, int | None]]) -> list[str]:
    """Append the exclude= advice once, to the first head whose class count differs."""
    out, done = [], False
    for name, line, nc in mismatched:
        if nc and not done:
            article = "an" if str(nc)[0] == "8" or nc in (11, 18) else "a"
            coco = " COCO" if nc == 81 else ""
            line += (f" — {article} {nc}-class{coco} file? pass exclude={_HEADS!r} to start the class-specific "
                     "heads fresh")
            done = True
        out.append(line)
    return out


# --------------------------------------------------------------------------------------------
# Public API


def load_legacy_weights(model, path: str | os.PathLike, *, exclude: Iterable[str] | str = (),
                        strict: bool = True) -> LoadReport:
    """Load a Keras-2 / matterport ``.h5`` weight file into `model` (a keras.Model, or an object with a
    ``keras_model`` attribute) by layer name.

    Unreadable, truncated, non-HDF5 or missing files always raise `LegacyWeightsError`, as do Keras 1
    files and models with duplicate layer names. All arrays are read before any is assigned, so a read
    error leaves the model untouched.

    Parameters
    ----------
    model : keras.Model or MaskRCNN
        The model to fill; an object with a ``keras_model`` attribute is unwrapped.
    path : str or os.PathLike
        The weight file.
    exclude : str or iterable of str
        Layer names or regular expressions (full match) skipped on both sides, e.g. the heads of
        an 81-class COCO file when training a 2-class model.
    strict : bool
        Every non-excluded weighted layer of the model must be in the file, every non-excluded
        weighted layer of the file must be in the model, and all counts and shapes must agree;
        otherwise one `LegacyWeightsError` lists every problem and **nothing** is assigned.
        With ``strict=False`` the layers that fit are loaded and the rest is only reported.

    Returns
    -------
    LoadReport
        What was loaded, skipped and (with ``strict=False``) did not fit.

    Examples
    --------
    >>> from nucleaizer_tf.maskrcnn import MaskRCNN, MaskRCNNConfig
    >>> model = MaskRCNN(MaskRCNNConfig())  # doctest: +SKIP
    >>> print(load_legacy_weights(model, "mask_rcnn_final.h5"))  # doctest: +SKIP
    mask_rcnn_final.h5: loaded 233 layers, ... values (keras_version 2.1.6, root /)
    >>> heads = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
    >>> load_legacy_weights(model, "mask_rcnn_coco.h5", exclude=heads)  # doctest: +SKIP
    """
    patterns = _compile_exclude(exclude)
    path = Path(path)
    model = getattr(model, "keras_model", model)  # accept the MaskRCNN wrapper too
    mlayers = _model_layers(model)
    counts = Counter(m.name for m in mlayers)
    dup = [n for n, c in counts.items() if c > 1]
    if dup:
        raise LegacyWeightsError(f"model has duplicate layer names {sorted(dup)}; by-name loading is ambiguous")

    with _open_h5(path) as fh:
        root, root_name = _weights_root(fh, path)
        attrs_src = root if "keras_version" in root.attrs else fh
        report = LoadReport(path=str(path), root=root_name,
                            keras_version=_scalar_attr(attrs_src.attrs, "keras_version"),
                            backend=_scalar_attr(attrs_src.attrs, "backend"))
        if report.keras_version and report.keras_version.startswith("1"):
            raise LegacyWeightsError(f"{path}: written by Keras {report.keras_version}; Keras 1 weight files "
                                     "are not supported")
        try:
            flayers = _file_layers(root, path)
        except (OSError, KeyError, ValueError) as exc:
            raise LegacyWeightsError(f"{path}: cannot read the layer list ({exc})") from None

        file_by_name: dict[str, _FileLayer] = {}
        for fl in flayers:
            if fl.weight_names and fl.name in file_by_name and file_by_name[fl.name].weight_names:
                raise LegacyWeightsError(f"{path}: layer {fl.name!r} appears twice in layer_names")
            if fl.name not in file_by_name or fl.weight_names:
                file_by_name[fl.name] = fl

        plan: list[tuple[_ModelLayer, _FileLayer, list[int]]] = []
        head_nc: list[tuple[str, str, int | None]] = []
        for ml in mlayers:
            if not ml.weights:
                continue
            if _excluded(ml.name, patterns):
                report.excluded.append(ml.name)
                continue
            fl = file_by_name.get(ml.name)
            if fl is None or not fl.weight_names:
                report.missing.append(ml.name)
                continue
            try:
                problem, order = _check_layer(ml, fl, path)
            except (OSError, KeyError) as exc:
                raise LegacyWeightsError(f"{path}: cannot read layer {fl.name!r} ({exc})") from None
            if problem:
                nc_file = _head_classes(ml.name, tuple(_dataset(fl, fl.weight_names[0], path).shape))
                nc_model = _head_classes(ml.name, tuple(int(d) for d in ml.weights[0][1].shape))
                head_nc.append((ml.name, problem, nc_file if nc_file != nc_model else None))
                continue
            plan.append((ml, fl, order))

        report.mismatched = _add_head_hint(head_nc)
        model_weighted = {m.name for m in mlayers if m.weights}
        for fl in flayers:
            if not fl.weight_names or fl.name in model_weighted:
                continue
            if _excluded(fl.name, patterns):
                if fl.name not in report.excluded:
                    report.excluded.append(fl.name)
                continue
            if fl.name not in report.unexpected:
                report.unexpected.append(fl.name)

        if strict and not report.ok:
            lines = report.problems()
            raise LegacyWeightsError(f"{path}: weights do not fit the model ({len(plan)} layers fit; nothing "
                                     "was loaded):\n  " + "\n  ".join(lines))

        # Read everything first, then assign: a read error leaves the model untouched.
        values = []
        for ml, fl, order in plan:
            for (_, var), pos in zip(ml.weights, order):
                value = np.asarray(_dataset(fl, fl.weight_names[pos], path)[()])
                if value.dtype != np.dtype(str(var.dtype)):
                    value = value.astype(str(var.dtype))
                values.append((var, value))
        for var, value in values:
            var.assign(value)
            report.n_arrays += 1
            report.n_values += int(value.size)
        report.loaded = [ml.name for ml, _, _ in plan]
    return report


def _check_layer(ml: _ModelLayer, fl: _FileLayer, path) -> tuple[str | None, list[int]]:
    """(problem or None, file position of each model weight)."""
    wnames = fl.weight_names
    file_shapes = [tuple(_dataset(fl, w, path).shape) for w in wnames]
    model_shapes = [tuple(int(d) for d in var.shape) for _, var in ml.weights]
    if len(wnames) != len(ml.weights):
        return (f"{ml.name}: file has {len(wnames)} arrays {file_shapes} vs model {len(ml.weights)} "
                f"{model_shapes} (file layer #{fl.index})"), []
    order = list(range(len(wnames)))
    if ml.nested:
        paired = _pair_nested(ml, wnames)
        if paired is not None:
            order = paired
    bad = [(wnames[pos], file_shapes[pos], model_shapes[i]) for i, pos in enumerate(order)
           if file_shapes[pos] != model_shapes[i]]
    if bad:
        shown = [w if ml.nested else w.split("/", 1)[-1] for w, _, _ in bad]
        parts = "; ".join(f"{w} file {fs} vs model {ms}" for w, (_, fs, ms) in zip(shown, bad))
        return f"{ml.name}: {parts} (file layer #{fl.index})", []
    return None, order


def legacy_layer_order(training: bool = False) -> list[str]:
    """`layer_names` of matterport 53afbae's model as Keras 2.1.6 saved it (maskrcnn-legacy.md, App. A).

    Weightless layers (inputs, activations, additions, lambdas) included, with Keras 2's automatic names.

    Parameters
    ----------
    training : bool
        False: the inference model's order; True: the training model's (with its loss and target layers).

    Returns
    -------
    list of str

    Examples
    --------
    >>> names = legacy_layer_order()
    >>> len(names), names[:4], names[-1]
    (393, ['input_image', 'zero_padding2d_1', 'conv1', 'bn_conv1'], 'mrcnn_mask')
    >>> legacy_layer_order(training=True)[-1]
    'mrcnn_mask_loss'
    """
    names = ["input_image", "zero_padding2d_1", "conv1", "bn_conv1", "activation_1", "max_pooling2d_1"]
    act, add = 2, 1
    for stage, blocks in ((2, 3), (3, 4), (4, 23), (5, 3)):
        for b in range(blocks):
            blk = f"{stage}{chr(ord('a') + b)}"
            names += [f"res{blk}_branch2a", f"bn{blk}_branch2a", f"activation_{act}",
                      f"res{blk}_branch2b", f"bn{blk}_branch2b", f"activation_{act + 1}", f"res{blk}_branch2c"]
            act += 2
            if b == 0:
                names += [f"res{blk}_branch1", f"bn{blk}_branch2c", f"bn{blk}_branch1"]
            else:
                names += [f"bn{blk}_branch2c"]
            names += [f"add_{add}", f"res{blk}_out"]
            add += 1
    names += ("fpn_c5p5 fpn_p5upsampled fpn_c4p4 fpn_p4add fpn_p4upsampled fpn_c3p3 fpn_p3add "
              "fpn_p3upsampled fpn_c2p2 fpn_p2add fpn_p5 fpn_p2 fpn_p3 fpn_p4 fpn_p6 "
              "rpn_model rpn_class rpn_bbox").split()
    if training:
        names += ("input_gt_boxes ROI input_gt_class_ids lambda_1 input_gt_masks proposal_targets "
                  "roi_align_mask mrcnn_mask_conv1 mrcnn_mask_bn1 activation_71 mrcnn_mask_conv2 "
                  "roi_align_classifier mrcnn_mask_bn2 mrcnn_class_conv1 activation_72 mrcnn_class_bn1 "
                  "mrcnn_mask_conv3 activation_68 mrcnn_mask_bn3 mrcnn_class_conv2 activation_73 "
                  "mrcnn_class_bn2 mrcnn_mask_conv4 activation_69 mrcnn_mask_bn4 pool_squeeze activation_74 "
                  "mrcnn_bbox_fc mrcnn_mask_deconv input_image_meta rpn_class_logits mrcnn_class_logits "
                  "mrcnn_bbox mrcnn_mask input_rpn_match input_rpn_bbox lambda_4 mrcnn_class output_rois "
                  "rpn_class_loss rpn_bbox_loss mrcnn_class_loss mrcnn_bbox_loss mrcnn_mask_loss").split()
    else:
        names += ("ROI roi_align_classifier mrcnn_class_conv1 mrcnn_class_bn1 activation_68 mrcnn_class_conv2 "
                  "mrcnn_class_bn2 activation_69 pool_squeeze mrcnn_class_logits mrcnn_bbox_fc mrcnn_class "
                  "mrcnn_bbox input_image_meta mrcnn_detection lambda_3 roi_align_mask mrcnn_mask_conv1 "
                  "mrcnn_mask_bn1 activation_71 mrcnn_mask_conv2 mrcnn_mask_bn2 activation_72 "
                  "mrcnn_mask_conv3 mrcnn_mask_bn3 activation_73 mrcnn_mask_conv4 mrcnn_mask_bn4 "
                  "activation_74 mrcnn_mask_deconv mrcnn_mask").split()
    return names


def _save_order(names: list[str]) -> list[str]:
    """Model layer names sorted into the Keras 2.1.6 order; unknown names follow their model predecessor."""
    legacy = legacy_layer_order(training=bool(_TRAINING_ONLY.intersection(names)))
    pos = {n: i for i, n in enumerate(legacy)}
    keys = []
    anchor = -1
    for i, n in enumerate(names):
        if n in pos:
            anchor = pos[n]
            keys.append((anchor, 0, i))
        else:
            keys.append((anchor, 1, i))
    return [names[k[2]] for k in sorted(keys)]


def save_legacy_weights(model, path: str | os.PathLike, *, keras_version: str = "2.1.6",
                        backend: str = "tensorflow") -> Path:
    """Write `model`'s weights in the Keras 2.1.6 ``save_weights`` layout (readable by matterport code).

    Strings are fixed-length byte arrays as Keras 2.1.6 wrote them; ``layer_names`` follows the order
    matterport's model had where the names are known, the model order otherwise. The file is written
    under a temporary name in the same folder and renamed, so `path` is never half-written.

    Parameters
    ----------
    model : keras.Model or MaskRCNN
        The model to save; an object with a ``keras_model`` attribute is unwrapped.
    path : str or os.PathLike
        The file to write.
    keras_version : str
        Written as the ``keras_version`` attribute ("2.1.6").
    backend : str
        Written as the ``backend`` attribute ("tensorflow").

    Returns
    -------
    Path
        `path`.

    Examples
    --------
    >>> save_legacy_weights(model, "mask_rcnn_nuclei_0005.h5")  # doctest: +SKIP
    PosixPath('mask_rcnn_nuclei_0005.h5')
    >>> load_legacy_weights(MaskRCNN(model.config), "mask_rcnn_nuclei_0005.h5").ok  # doctest: +SKIP
    True
    """
    import h5py

    path = Path(path)
    model = getattr(model, "keras_model", model)
    mlayers = _model_layers(model)
    by_name = {m.name: m for m in mlayers}
    order = _save_order([m.name for m in mlayers])
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        _write_list_attr(fh.attrs, "layer_names", order)
        fh.attrs["backend"] = np.bytes_(backend.encode("utf8"))
        fh.attrs["keras_version"] = np.bytes_(keras_version.encode("utf8"))
        for name in order:
            ml = by_name[name]
            group = fh.create_group(name)
            wnames = [f"{owner}/{_var_name(var)}:0" for owner, var in ml.weights]
            if len(set(wnames)) != len(wnames):
                raise LegacyWeightsError(f"layer {name!r} has duplicate weight names {wnames}")
            _write_list_attr(group.attrs, "weight_names", wnames)
            for wname, (_, var) in zip(wnames, ml.weights):
                value = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
                ds = group.create_dataset(wname, value.shape, dtype=value.dtype)
                if value.shape:
                    ds[:] = value
                else:
                    ds[()] = value
    return path


def inspect_legacy_h5(path: str | os.PathLike) -> dict:
    """Cheap summary of a legacy weight file (reads metadata only, no arrays).

    Raises `LegacyWeightsError` for files that cannot be read or are no Keras-2 weight files.

    Parameters
    ----------
    path : str or os.PathLike
        The weight file.

    Returns
    -------
    dict
        ``{"path", "root", "attrs": {name: str}, "layer_names": [...],
        "layers": {layer: [(weight name, shape, dtype str), ...]} (weighted layers only, file order),
        "n_layers_with_weights", "n_arrays", "n_values"}``; the JSON attributes model_config and
        training_config are summarised by their length.

    Examples
    --------
    >>> info = inspect_legacy_h5("mask_rcnn_final.h5")  # doctest: +SKIP
    >>> info["n_layers_with_weights"], info["layers"]["conv1"]  # doctest: +SKIP
    (233, [('conv1/kernel:0', (7, 7, 3, 64), 'float32'), ('conv1/bias:0', (64,), 'float32')])
    """
    path = Path(path)
    with _open_h5(path) as fh:
        root, root_name = _weights_root(fh, path)
        attrs: dict[str, str] = {}
        for src in ({fh, root} if root is not fh else {fh}):
            for k in src.attrs:
                if k.startswith("layer_names"):
                    continue
                if k in ("model_config", "training_config"):
                    attrs[k] = f"<{len(_to_str(_str_list(src.attrs[k])[0]))} characters of JSON>"
                    continue
                attrs[k] = _scalar_attr(src.attrs, k) or ""
        flayers = _file_layers(root, path)
        layers: dict[str, list[tuple[str, tuple[int, ...], str]]] = {}
        n_arrays = n_values = 0
        for fl in flayers:
            if not fl.weight_names:
                continue
            entries = []
            for w in fl.weight_names:
                ds = _dataset(fl, w, path)
                entries.append((w, tuple(int(d) for d in ds.shape), str(ds.dtype)))
                n_arrays += 1
                n_values += int(np.prod(ds.shape))
            layers[fl.name] = entries
    return {
        "path": str(path),
        "root": root_name,
        "attrs": attrs,
        "layer_names": [fl.name for fl in flayers],
        "layers": layers,
        "n_layers_with_weights": len(layers),
        "n_arrays": n_arrays,
        "n_values": n_values,
    }
