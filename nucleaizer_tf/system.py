"""What `nucleaizer-tf info` reports: versions, the devices TensorFlow sees, thread settings.

Users paste this into bug reports, so it names everything that changes numbers or speed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import sys

from nucleaizer_tf.docs import METHOD

_PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "scipy",
    "scikit-image",
    "scikit-learn",
    "opencv-python-headless",
    "tifffile",
    "imagecodecs",
    "h5py",
    "pillow",
    "typer",
    "openvino",
)
_THREAD_VARIABLES = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "CUDA_VISIBLE_DEVICES",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine results ('not installed' where absent).

    Returns
    -------
    dict of str to str
        ``"nucleaizer-tf"`` (this package's ``__version__``) and ``"python"`` first, then TensorFlow,
        Keras, NumPy, SciPy, scikit-image, scikit-learn, opencv-python-headless, tifffile, imagecodecs,
        h5py, Pillow, Typer and OpenVINO (it runs the networks where installed, see
        `nucleaizer_tf.runtime`) by their distribution names, each its installed version or
        ``"not installed"``.

    Examples
    --------
    >>> import platform
    >>> versions = package_versions()
    >>> list(versions)[:3]
    ['nucleaizer-tf', 'python', 'tensorflow']
    >>> versions["python"] == platform.python_version()
    True
    """
    from nucleaizer_tf import __version__

    versions = {"nucleaizer-tf": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment_report() -> dict:
    """Versions, devices and threading as a JSON-ready dict (imports TensorFlow, so a few seconds).

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless already set) before importing TensorFlow, to keep its log
    quiet.

    Returns
    -------
    dict
        ``versions`` (`package_versions`), ``platform``, ``executable`` (the Python interpreter),
        ``cpu_count``, ``devices`` (name and type of every physical device TensorFlow sees), ``gpus`` (the
        details TensorFlow reports per GPU, as strings), ``built_with_cuda``, ``threads`` (TensorFlow's
        intra-op and inter-op thread counts; 0 = TensorFlow decides) and ``environment`` (those of
        TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS, TF_ENABLE_ONEDNN_OPTS and
        CUDA_VISIBLE_DEVICES that are set), ``method`` (the installed docs/method.md, which the help
        refers to).

    Examples
    --------
    >>> import json
    >>> report = environment_report()                        # doctest: +SKIP
    >>> print(json.dumps(report["threads"]))                 # doctest: +SKIP
    {"intra_op": 0, "inter_op": 0}
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    devices = [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]
    gpu_details = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpu_details.append({"name": gpu.name, **{k: str(v) for k, v in details.items()}})
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "devices": devices,
        "gpus": gpu_details,
        "built_with_cuda": tf.test.is_built_with_cuda(),
        "threads": {
            # 0 means "TensorFlow decides", which is one thread pool sized to the cores.
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "environment": {name: os.environ[name] for name in _THREAD_VARIABLES if name in os.environ},
        "method": str(METHOD),
    }


@contextlib.contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ start-up chatter (oneDNN banner, CUDA
    probing) bypasses Python and, in TF 2.21, TF_CPP_MIN_LOG_LEVEL. Python exceptions still raise.

    Returns
    -------
    contextlib.AbstractContextManager
        Within it, whatever writes to file descriptor 2 goes nowhere; it is restored on leaving.

    Examples
    --------
    >>> with native_stderr_silenced():
    ...     _ = os.write(2, b"not shown")
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow without its start-up banner on the user's terminal or notebook.

    Devices are listed inside the silenced block too: that is when TensorFlow probes for CUDA and,
    on a machine without a GPU, logs a failed `cuInit`; it does so only once per process. A log level
    the user set (TF_CPP_MIN_LOG_LEVEL) is kept; once TensorFlow is imported this does nothing more.

    Returns
    -------
    module
        The `tensorflow` module.

    Examples
    --------
    >>> tf = import_tensorflow()
    >>> tf.__name__
    'tensorflow'
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        import tensorflow

        tensorflow.config.list_physical_devices()
    return tensorflow
