"""What `nucleaizer-tf info` reports: versions, the devices TensorFlow sees, thread settings.

Users paste this into bug reports, so it names everything that changes numbers or speed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

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
)
_THREAD_VARIABLES = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "CUDA_VISIBLE_DEVICES",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine results ('not installed' where absent)."""
    from nucleaizer_tf import __version__

    versions = {"nucleaizer-tf": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment_report() -> dict:
    """Versions, devices and threading as a JSON-ready dict (imports TensorFlow, so a few seconds)."""
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
    }
