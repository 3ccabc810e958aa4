"""The one digest of the package: every identity of a file or of settings that a cache, a journal or a
model folder records.

* `file_digest` / `sha256_of`: the content of a file (model folders, the run journal, stage caches);
* `fingerprint`: a JSON-able payload of settings, keys sorted (stage caches, the run journal);
* `file_key`: a cheap identity (path, size, modification time) for in-memory caches of built networks;
* `arrays_digest`: the values of a network's weights (the disk cache of converted networks).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_digest(path: str | os.PathLike) -> dict:
    """Size and sha256 of a file, as the journal and the stage caches record them.

    Parameters
    ----------
    path : str or os.PathLike
        The file, read in 1 MiB blocks.

    Returns
    -------
    dict
        ``{"size": bytes, "sha256": hex digest}``.

    Raises
    ------
    OSError
        When the file cannot be read.

    Examples
    --------
    >>> file_digest("out/a.tiff")  # doctest: +SKIP
    {'size': 8328, 'sha256': '5f0c...'}
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        The 64 lower-case hex digits of the file's sha256.

    Examples
    --------
    >>> sha256_of("weights/default/default.weights.h5")[:8]  # doctest: +SKIP
    'f86fbe6c'
    """
    return file_digest(path)["sha256"]


def fingerprint(payload) -> str:
    """Short sha256 of a JSON-able payload (keys sorted): equal settings, equal fingerprint.

    Parameters
    ----------
    payload : object
        Settings as JSON-able values (dicts, lists, strings, numbers); anything else (a path, say) is
        written with `str`.

    Returns
    -------
    str
        The first 16 hex digits of the sha256 of the payload's JSON, with its keys sorted.

    Examples
    --------
    >>> fingerprint({"seed": 0, "epochs": 30})
    'f3726b775caae041'
    >>> fingerprint({"epochs": 30, "seed": 0}) == fingerprint({"seed": 0, "epochs": 30})
    True
    """
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_key(path: str | os.PathLike) -> dict:
    """Cheap identity of a weight file or folder (path, size, modification time) for caches.

    Parameters
    ----------
    path : str or os.PathLike
        An existing file or folder.

    Returns
    -------
    dict
        ``path`` (resolved, as a string), ``size`` (bytes) and ``mtime_ns``; a changed file gives a
        different key.

    Examples
    --------
    >>> file_key("mask_rcnn_final.h5")  # doctest: +SKIP
    {'path': '/data/models/mask_rcnn_final.h5', 'size': 255856928, 'mtime_ns': 1699999999000000000}
    """
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def arrays_digest(arrays) -> str:
    """sha256 of a sequence of arrays' shapes, types and values (a network's weights, say).

    Parameters
    ----------
    arrays : sequence of array_like
        The arrays, in order (`keras.Model.get_weights()`).

    Returns
    -------
    str
        The 64 hex digits; equal values in the same order give the same digest.

    Examples
    --------
    >>> import numpy as np
    >>> arrays_digest([np.zeros(3)]) == arrays_digest([np.zeros(3)]) != arrays_digest([np.ones(3)])
    True
    """
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
