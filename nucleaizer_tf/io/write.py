"""Writers that never leave a half-written file: each writes to a temporary name, then renames."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path` (same suffixes, so writers pick the format); rename on success.

    On any exception the temporary file is removed and `path` keeps its previous content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # All suffixes are kept ("x.weights.h5" → ".x.weights.h5.XXXX.tmp.weights.h5"): Keras checks them.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def label_dtype(labels: np.ndarray) -> np.dtype:
    """uint16 (what the original wrote and every viewer opens) unless ids exceed 65,535, then uint32."""
    top = int(labels.max()) if labels.size else 0
    if top < 0:
        raise ValueError("label ids must be non-negative")
    if top > np.iinfo(np.uint32).max:
        raise ValueError(f"label id {top} does not fit in 32 bits")
    return np.dtype(np.uint16) if top <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def write_labels(path: str | os.PathLike, labels: np.ndarray, *, compress: bool = False) -> Path:
    """Write a 2-D label image as a 16-bit TIFF (32-bit above 65,535 objects), atomically."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image must be 2-D, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("label ids must be non-negative")
    data = labels.astype(label_dtype(labels), copy=False)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, compression="zlib" if compress else None, photometric="minisblack")
    return Path(path)


def write_rgb(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an 8-bit RGB (or grey) image, e.g. an overlay PNG, atomically."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{path}: could not encode image of shape {image.shape} and dtype {image.dtype}")
    return Path(path)


def write_json(path: str | os.PathLike, payload) -> Path:
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return Path(path)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
