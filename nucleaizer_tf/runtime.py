"""Where the networks run: TensorFlow (the reference) or OpenVINO (a runtime built for CPU inference).

`runtime="auto"` runs a network on OpenVINO when the optional extra is installed
(``pip install 'nucleaizer-tf[openvino]'``) and on TensorFlow otherwise; ``"tensorflow"`` and
``"openvino"`` ask for one of them. OpenVINO runs the same float32 network: at ``precision="float32"``
its maps equal TensorFlow's to about 1e-6 (README "Speed and precision"); ``precision="bfloat16"``
asks it for its bfloat16 kernels, which change the maps by about 5e-3, as TensorFlow's bfloat16 does.

This module compiles and calls; the converted network's disk cache is `io/converted_network.py`.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np

from nucleaizer_tf.errors import NucleaizerError

#: the values a `runtime` option takes
RUNTIMES = ("auto", "tensorflow", "openvino")
#: resolved precision → OpenVINO's inference precision hint
OPENVINO_PRECISION = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
#: the one line that says how to get OpenVINO
INSTALL_OPENVINO = "pip install 'nucleaizer-tf[openvino]'"


def openvino_installed() -> bool:
    """Whether the `openvino` package can be imported (without importing it).

    Returns
    -------
    bool
        True when the optional ``openvino`` extra (or the package itself) is installed.

    Examples
    --------
    >>> isinstance(openvino_installed(), bool)
    True
    """
    return importlib.util.find_spec("openvino") is not None


def check_runtime(value) -> str | None:
    """Option check: `value` is one of `RUNTIMES`.

    Parameters
    ----------
    value : object
        The requested runtime.

    Returns
    -------
    str or None
        None when acceptable, else the problem as a short phrase.

    Examples
    --------
    >>> check_runtime("openvino") is None
    True
    >>> check_runtime("onnx")
    "must be one of 'auto', 'tensorflow', 'openvino'"
    """
    return None if value in RUNTIMES else "must be one of " + ", ".join(repr(r) for r in RUNTIMES)


def resolve_runtime(runtime: str = "auto") -> str:
    """The runtime a request gives on this installation: `auto` is OpenVINO where it is installed.

    Parameters
    ----------
    runtime : {"auto", "tensorflow", "openvino"}
        The request.

    Returns
    -------
    str
        ``"tensorflow"`` or ``"openvino"``.

    Raises
    ------
    NucleaizerError
        For an unknown runtime, or ``"openvino"`` without the package.

    Examples
    --------
    >>> resolve_runtime("tensorflow")
    'tensorflow'
    >>> resolve_runtime("auto") == ("openvino" if openvino_installed() else "tensorflow")
    True
    """
    problem = check_runtime(runtime)
    if problem:
        raise NucleaizerError(f"runtime {problem}, got {runtime!r}")
    if runtime == "tensorflow" or (runtime == "auto" and not openvino_installed()):
        return "tensorflow"
    if not openvino_installed():
        raise NucleaizerError(f"--runtime openvino needs the optional 'openvino' extra: {INSTALL_OPENVINO}")
    return "openvino"


def convert_keras(network, channels: int):
    """The OpenVINO model of a Keras network taking one (1, H, W, `channels`) float32 image of any size.

    Parameters
    ----------
    network : keras.Model
        A float32 network (its weights are read as they are now).
    channels : int
        The input's channel count.

    Returns
    -------
    openvino.Model
        The converted, not yet compiled, network (H and W left open).

    Examples
    --------
    >>> model = convert_keras(DefaultModel.load().network, 3)  # doctest: +SKIP
    """
    import warnings

    import openvino

    with warnings.catch_warnings():  # Keras warns that the traced input is not named like the model's
        warnings.simplefilter("ignore")
        return openvino.convert_model(network, input=[(1, -1, -1, int(channels))])


class OpenVINOForward:
    """A converted network compiled for this CPU, called like the TensorFlow forward pass.

    Calls are serialised (one compiled network, one inference request at a time), so threads may share it.

    Parameters
    ----------
    model : openvino.Model
        The converted network (`convert_keras`, or read from the cache).
    precision : {"float32", "bfloat16", "float16"}
        The compute type asked of OpenVINO (`OPENVINO_PRECISION`); float32 keeps TensorFlow's numbers.

    Examples
    --------
    >>> forward = OpenVINOForward(convert_keras(network, 3), "float32")   # doctest: +SKIP
    >>> forward(np.zeros((1, 64, 64, 3), np.float32)).shape               # doctest: +SKIP
    (1, 64, 64, 3)
    """

    def __init__(self, model, precision: str = "float32"):
        import openvino

        if precision not in OPENVINO_PRECISION:
            raise NucleaizerError(f"OpenVINO runs float32, bfloat16 or float16, not {precision!r}")
        self.precision = precision
        self._compiled = openvino.Core().compile_model(
            model, "CPU", {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]})
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The network's first output for a float32 batch (N, H, W, C), as a NumPy array."""
        return self.outputs(batch)[0]

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of the network, in order, for a float32 batch (N, H, W, C)."""
        with self._lock:
            return [np.array(out) for out in self._compiled(np.ascontiguousarray(batch, np.float32)).values()]


def openvino_forward(network, precision: str = "float32") -> OpenVINOForward:
    """A Keras network's forward pass on OpenVINO, its conversion read from or written to the disk cache.

    Parameters
    ----------
    network : keras.Model
        The float32 network (its input's channel count is part of the cache key).
    precision : {"float32", "bfloat16", "float16"}, optional
        The compute type asked of OpenVINO (default float32: TensorFlow's numbers).

    Returns
    -------
    OpenVINOForward
        ``forward(batch) -> numpy.ndarray``, the network's first output.

    Examples
    --------
    >>> forward = openvino_forward(DefaultModel.load().network)  # doctest: +SKIP
    """
    from nucleaizer_tf.io.converted_network import cached_openvino_model
    from nucleaizer_tf.io.digest import arrays_digest

    channels = int(network.input_shape[-1])
    model, _ = cached_openvino_model(arrays_digest(network.get_weights()), channels,
                                     lambda: convert_keras(network, channels))
    return OpenVINOForward(model, precision)
