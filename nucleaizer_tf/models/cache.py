"""The one process-wide cache of loaded models, used by the Dask workers, the napari engine and the
blockwise `--large` path: a request gives the same segmenter until the files behind it change."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from nucleaizer_tf.io.digest import file_key
from nucleaizer_tf.io.model_folder import MANIFEST
from nucleaizer_tf.models.base import Segmenter
from nucleaizer_tf.models.load import load_model

_SEGMENTERS: dict[str, tuple[str, Segmenter]] = {}
_LOCK = threading.Lock()


def _identity(source) -> object:
    """What a model source is now: the cheap key (path, size, mtime) of its manifest or weight file, or its name."""
    path = Path(source)
    target = path / MANIFEST if path.is_dir() else path
    return file_key(target) if target.is_file() else str(source)


def cached_model(name_or_path: str | os.PathLike | None = "default", *, mode: str | None = None,
                 preseg_model: str | os.PathLike | None = None, unet: str | os.PathLike | None = None,
                 options: dict | None = None) -> Segmenter:
    """`load_model` kept for this process: the same request gives the same segmenter, loaded once.

    A model folder or file that changed since (a model adapted again into the same folder, say) is
    loaded again and replaces the old one.

    Parameters
    ----------
    name_or_path, mode, preseg_model, unet
        As for `load_model`.
    options : dict, optional
        Segment options to `prepare` the segmenter with at its load (its networks built for them); None
        loads it without preparing (networks built at first use).

    Returns
    -------
    Segmenter
        The cached segmenter.

    Examples
    --------
    >>> from nucleaizer_tf.models.cache import cached_model
    >>> cached_model("default") is cached_model("default")
    True
    """
    parts = [p for p in (name_or_path, preseg_model, unet) if p is not None]
    request = json.dumps({"model": name_or_path, "mode": mode, "preseg_model": preseg_model, "unet": unet,
                          "options": options}, sort_keys=True, default=str)
    identity = json.dumps([_identity(p) for p in parts], sort_keys=True, default=str)
    with _LOCK:
        known = _SEGMENTERS.get(request)
        if known is None or known[0] != identity:
            segmenter = load_model(name_or_path, mode=mode, preseg_model=preseg_model, unet=unet)
            if options is not None:
                segmenter.prepare(**options)
            _SEGMENTERS[request] = known = (identity, segmenter)
        return known[1]
