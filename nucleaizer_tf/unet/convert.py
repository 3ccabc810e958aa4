"""The original PyTorch U-Net's weights (a `state_dict`) → the faithful Keras U-Net. Pure NumPy and Keras.

The original `UNet(in, out)` (`UNet/models/unet.py`) is nine blocks of `nn.Sequential`s. Their
state-dict names, the layer kinds at each index and the Keras layers of `build_unet` they become:

=========== ======================= ============================================ ============
block       sequential              conv / BN indices (conv1, bn1, conv2, bn2)   up / out
=========== ======================= ============================================ ============
first       ``first.first``         0, 1, 3, 4                                   –
encoder_k   ``encoder_k.encoder``   1, 2, 4, 5 (0 is the max-pool)               –
center      ``center.center``       1, 2, 4, 5                                   7 (convT)
decoder_k   ``decoder_k.decoder``   0, 1, 3, 4                                   6 (convT)
last        ``last.first``          0, 1, 3, 4                                   6 (1×1 conv)
=========== ======================= ============================================ ============

Layouts: Conv2d weight [out, in, kh, kw] → Keras [kh, kw, in, out]; ConvTranspose2d weight [in, out, kh, kw]
→ Keras Conv2DTranspose [kh, kw, out, in] (for k = s = 2 without padding both frameworks place
`x[i, j]·w[a, b]` at output pixel (2i + a, 2j + b), so no spatial flip); BatchNorm2d weight, bias,
running_mean, running_var → gamma, beta, moving_mean, moving_variance, with PyTorch's eps 1e-5 and
momentum 0.1 (Keras 0.9) built into `build_unet`.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from nucleaizer_tf.unet.model import BN_EPSILON, BN_MOMENTUM, build_unet

__all__ = ["LAYER_MAP", "check_torch_layers", "keras_weights_from_state", "unet_architecture", "unet_from_state"]

DEPTH = 4  # three encoders and the centre: the original is fixed at this depth


def _layer_map() -> dict[str, tuple[str, str]]:
    """Keras layer name → (kind, state-dict prefix); kind is conv, bn, convT."""
    blocks = [("first", "first.first", 0)]
    blocks += [(f"encoder_{k}", f"encoder_{k}.encoder", 1) for k in (1, 2, 3)]
    blocks += [("center", "center.center", 1)]
    blocks += [(f"decoder_{k}", f"decoder_{k}.decoder", 0) for k in (3, 2, 1)]
    blocks += [("last", "last.first", 0)]
    table = {}
    for block, seq, start in blocks:
        table[f"{block}_conv1"] = ("conv", f"{seq}.{start}")
        table[f"{block}_bn1"] = ("bn", f"{seq}.{start + 1}")
        table[f"{block}_conv2"] = ("conv", f"{seq}.{start + 3}")
        table[f"{block}_bn2"] = ("bn", f"{seq}.{start + 4}")
        if block in ("center",) or block.startswith("decoder"):
            table[f"{block}_up"] = ("convT", f"{seq}.{start + 6}")
    table["last_conv_out"] = ("conv", "last.first.6")
    return table


#: Keras layer name → (kind, PyTorch module path) for the original U-Net.
LAYER_MAP = _layer_map()

_TORCH_KINDS = {"conv": "Conv2d", "bn": "BatchNorm2d", "convT": "ConvTranspose2d"}


def _get(state: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    if key not in state:
        raise ValueError(f"unknown layout: the U-Net state has no {key!r}")
    return np.asarray(state[key], dtype=np.float32)


def unet_architecture(state: Mapping[str, np.ndarray]) -> dict:
    """The `build_unet` arguments of an original U-Net state dict (channel counts read from the weights).

    Parameters
    ----------
    state : mapping of str to ndarray
        `UNet.state_dict()` names to arrays in PyTorch layouts; ``first.first.0.weight`` and
        ``last.first.6.weight`` must be present and 4-D (ValueError otherwise).

    Returns
    -------
    dict
        in_channels, out_channels, base_filters (from those two kernels), depth (always 4) and
        output_activation ("sigmoid").

    Examples
    --------
    >>> unet_architecture(state)  # doctest: +SKIP
    {'in_channels': 3, 'out_channels': 1, 'base_filters': 64, 'depth': 4, 'output_activation': 'sigmoid'}
    """
    first = _get(state, "first.first.0.weight")
    out = _get(state, "last.first.6.weight")
    if first.ndim != 4 or out.ndim != 4:
        raise ValueError("unknown layout: convolution weights must be 4-D")
    return {"in_channels": int(first.shape[1]), "out_channels": int(out.shape[0]), "base_filters": int(first.shape[0]),
            "depth": DEPTH, "output_activation": "sigmoid"}


def keras_weights_from_state(state: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each Keras layer's weight list (in `layer.set_weights` order) from an original U-Net state dict.

    Kernels are transposed to Keras layouts (see the module docstring); BatchNorm gets weight, bias,
    running_mean, running_var as gamma, beta, moving_mean, moving_variance. A missing key or a kernel
    that is not 4-D raises ValueError.

    Parameters
    ----------
    state : mapping of str to ndarray
        `UNet.state_dict()` names to arrays in PyTorch layouts.

    Returns
    -------
    dict of str to list of ndarray
        Keras layer name (`LAYER_MAP`) to its float32 weights.

    Examples
    --------
    >>> weights = keras_weights_from_state(state)  # doctest: +SKIP
    >>> weights["first_conv1"][0].shape  # [kh, kw, in, out]  # doctest: +SKIP
    (3, 3, 3, 64)
    """
    weights = {}
    for layer, (kind, prefix) in LAYER_MAP.items():
        if kind == "bn":
            weights[layer] = [_get(state, f"{prefix}.{name}") for name in ("weight", "bias", "running_mean", "running_var")]
            continue
        kernel = _get(state, f"{prefix}.weight")
        if kernel.ndim != 4:
            raise ValueError(f"unknown layout: {prefix}.weight has shape {kernel.shape}, expected 4-D")
        # Conv2d [out, in, kh, kw] → [kh, kw, in, out]; ConvTranspose2d [in, out, kh, kw] → [kh, kw, out, in]:
        # the same axis permutation, since Keras orders a transposed kernel's channels the other way round.
        kernel = kernel.transpose(2, 3, 1, 0)
        weights[layer] = [np.ascontiguousarray(kernel), _get(state, f"{prefix}.bias")]
    return weights


def check_torch_layers(modules: Mapping[str, object]) -> None:
    """Check the pickled layers are what the Keras graph computes: kinds, kernel sizes, strides, padding,
    BatchNorm eps and momentum, a sigmoid output. `modules` maps module paths to records with `torch_type`
    and attribute access (see `nucleaizer_tf.io.torch_pickle.named_modules`). Raises ValueError.

    Parameters
    ----------
    modules : mapping of str to object
        Module path (``first.first.0``, ...) to its record; a record's attributes are read from its
        ``state`` dict when it has one.

    Examples
    --------
    >>> check_torch_layers(named_modules(read_torch_module(path)))  # doctest: +SKIP
    """
    def attr(module, name, default=None):
        return module.state.get(name, default) if hasattr(module, "state") else getattr(module, name, default)

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    for layer, (kind, path) in LAYER_MAP.items():
        module = modules.get(path)
        found = getattr(module, "torch_type", "nothing")
        if module is None or found.rsplit(".", 1)[-1] != _TORCH_KINDS[kind]:
            raise ValueError(f"unknown layout: expected a {_TORCH_KINDS[kind]} at {path!r}, found {found}")
        if kind == "bn":
            eps, momentum = attr(module, "eps"), attr(module, "momentum")
            if eps is None or abs(float(eps) - BN_EPSILON) > 1e-12:
                raise ValueError(f"unknown layout: BatchNorm {path!r} has eps {eps}, the Keras U-Net uses {BN_EPSILON}")
            if momentum is None or abs((1.0 - float(momentum)) - BN_MOMENTUM) > 1e-9:
                raise ValueError(f"unknown layout: BatchNorm {path!r} has momentum {momentum}, expected "
                                 f"{1.0 - BN_MOMENTUM:.1f}")
            if attr(module, "affine", True) is False or attr(module, "track_running_stats", True) is False:
                raise ValueError(f"unknown layout: BatchNorm {path!r} without affine weights or running statistics")
            continue
        size = 1 if layer == "last_conv_out" else (2 if kind == "convT" else 3)
        expected = {"kernel_size": (size, size), "stride": (2, 2) if kind == "convT" else (1, 1),
                    "padding": (0, 0) if size != 3 else (1, 1), "dilation": (1, 1), "groups": 1}
        for name, want in expected.items():
            value = attr(module, name, want)
            value = value if name == "groups" else pair(value)
            if value != want:
                raise ValueError(f"unknown layout: {_TORCH_KINDS[kind]} {path!r} has {name}={value}, expected {want}")
        if kind == "convT" and pair(attr(module, "output_padding", (0, 0))) != (0, 0):
            raise ValueError(f"unknown layout: ConvTranspose2d {path!r} has output padding")
    last = [m for p, m in modules.items() if p.startswith("last.first.")]
    kinds = [getattr(m, "torch_type", "").rsplit(".", 1)[-1] for m in last]
    if "Sigmoid" not in kinds or "Softmax2d" in kinds:
        raise ValueError("unknown layout: the last block must end in a sigmoid (and no softmax)")


def unet_from_state(state: Mapping[str, np.ndarray], name: str = "unet") -> keras.Model:
    """Build the faithful Keras U-Net and load an original PyTorch U-Net state dict into it.

    Parameters
    ----------
    state : mapping of str to ndarray
        `UNet.state_dict()` names (`first.first.0.weight`, ...) to arrays in PyTorch layouts.
    name : str
        The Keras model's name.

    Returns
    -------
    keras.Model
        `build_unet(**unet_architecture(state))` with every convolution, transposed convolution and
        BatchNorm (including its running statistics) set. Raises ValueError on a shape that does not fit.

    Examples
    --------
    >>> model = unet_from_state(module_state(read_torch_module(path)))  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, None, None, 1)
    """
    arch = unet_architecture(state)
    weights = keras_weights_from_state(state)
    model = build_unet(**arch, name=name)
    for layer, values in weights.items():
        target = model.get_layer(layer)
        shapes = [tuple(w.shape) for w in target.get_weights()]
        given = [tuple(v.shape) for v in values]
        if shapes != given:
            raise ValueError(f"unknown layout: {LAYER_MAP[layer][1]} has shapes {given}, the Keras layer {layer} "
                             f"of a U-Net with {arch['base_filters']} base filters needs {shapes}")
        target.set_weights(values)
    return model
