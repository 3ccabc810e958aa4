"""The one check of what counts as a label image in memory: 2-D, integer ids, 0 = background."""

from __future__ import annotations

import numpy as np


def as_label_array(a, what: str = "labels", *, allow_negative: bool = False) -> np.ndarray:
    """`a` as a 2-D integer array; bool becomes 0/1, floats are accepted only if they hold whole numbers.

    Raises ValueError naming `what`. Negative ids are refused unless `allow_negative` (the metric treats
    any distinct value as an object; the morphology steps need non-negative ids).
    """
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D label image, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{what} must hold integer labels, got non-integer {arr.dtype} values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer label image, got dtype {arr.dtype}")
    if not allow_negative and arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise ValueError(f"{what} must be non-negative")
    return arr
