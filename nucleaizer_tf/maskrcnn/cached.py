"""Legacy Mask R-CNN networks built once per process: building and loading a 255 MB `.h5` takes seconds."""

from __future__ import annotations

import os
from functools import lru_cache

from nucleaizer_tf.io.digest import file_key


@lru_cache(maxsize=2)
def _built(path: str, size: int, mtime_ns: int, config, precision: str = "float32"):
    """Built networks are kept for the next use in this process (a notebook re-running a cell, a resumed
    run): building and loading a 255 MB file takes seconds. Size and mtime make a changed file miss."""
    from nucleaizer_tf.maskrcnn import MaskRCNN

    return MaskRCNN.from_legacy_h5(path, config, precision=precision)


def build_maskrcnn(path: str | os.PathLike, config, precision: str = "float32"):
    """The `MaskRCNN` of a legacy `.h5` with `config` and compute `precision`, from the process-wide cache.

    The two most recently built networks are kept for the next use in this process (a notebook re-running
    a cell, a resumed run): building and loading a 255 MB file takes seconds. The file's size and
    modification time are part of the key, so a changed file is loaded again.

    Parameters
    ----------
    path : str or os.PathLike
        A legacy matterport/nucleAIzer Mask R-CNN `.h5` file.
    config : nucleaizer_tf.maskrcnn.MaskRCNNConfig
        The network's configuration (detection thresholds included: they are part of the graph).
    precision : str, optional
        The compute type: ``"float32"`` (default), ``"bfloat16"`` or ``"auto"``.

    Returns
    -------
    nucleaizer_tf.maskrcnn.MaskRCNN
        The built network with the file's weights.

    Examples
    --------
    >>> from nucleaizer_tf.maskrcnn import MaskRCNNConfig                           # doctest: +SKIP
    >>> net = build_maskrcnn("mask_rcnn_final.h5", MaskRCNNConfig.presegment())    # doctest: +SKIP
    """
    from nucleaizer_tf.precision import resolve_precision

    key = file_key(path)
    return _built(key["path"], key["size"], key["mtime_ns"], config, resolve_precision(precision))
