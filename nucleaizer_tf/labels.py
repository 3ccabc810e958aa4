"""Label images in memory: the one check of what counts as one (2-D, integer ids, 0 = background), the
one rule for the type they are kept and stored in (`label_dtype`) and the one nearest-neighbour resize
to a given shape."""

from __future__ import annotations

import numpy as np


def as_label_array(a, what: str = "labels", *, allow_negative: bool = False, ndim: int = 2) -> np.ndarray:
    """Check that `a` is a label image and return it as a 2-D integer array.

    Bool becomes 0/1 (uint8); floats are accepted only if they hold whole (finite) numbers and become
    int64; integer input keeps its dtype (an ndarray is returned without a copy). Negative ids are refused
    unless `allow_negative` (the metric treats any distinct value as an object; the morphology steps
    need non-negative ids).

    Parameters
    ----------
    a : array_like
        The candidate label image, (H, W): 0 = background, k > 0 = object k.
    what : str, optional
        What `a` is, for the error messages (default "labels").
    allow_negative : bool, optional
        Accept negative ids (default False).
    ndim : int, optional
        The dimensions `a` must have (default 2; more for a stack of label images, planes first).

    Returns
    -------
    numpy.ndarray
        (H, W) integer array: `a`'s own integer dtype, uint8 for bool input, int64 for float input.

    Raises
    ------
    ValueError
        Naming `what`, when `a` is not 2-D, holds non-integer or non-finite floats, has any other dtype
        (complex, string, object), or holds negative ids without `allow_negative`.

    Examples
    --------
    >>> as_label_array(np.array([[True, False], [False, True]]))
    array([[1, 0],
           [0, 1]], dtype=uint8)
    >>> as_label_array(np.array([[0.0, 2.0], [2.0, 1.0]])).dtype
    dtype('int64')
    >>> as_label_array(np.array([[0.5, 1.0]]), "the mask")
    Traceback (most recent call last):
        ...
    ValueError: the mask must hold integer labels, got non-integer float64 values
    """
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise ValueError(f"{what} must be a {ndim}-D label {'image' if ndim == 2 else 'stack'}, got shape {arr.shape}")
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


def label_dtype(labels) -> np.dtype:
    """uint16 (what the original wrote and every viewer opens) unless ids exceed 65,535, then uint32.

    Parameters
    ----------
    labels : numpy.ndarray or int
        Label image of any shape (0 = background), or its largest id.

    Returns
    -------
    numpy.dtype
        uint16, or uint32 when the largest id exceeds 65,535.

    Raises
    ------
    ValueError
        When the largest id is negative or does not fit in 32 bits.

    Examples
    --------
    >>> label_dtype(np.array([[0, 3], [12, 0]]))
    dtype('uint16')
    >>> label_dtype(np.array([[0, 70000]])), label_dtype(65535)
    (dtype('uint32'), dtype('uint16'))
    """
    top = int(np.max(labels, initial=0)) if np.ndim(labels) else int(labels)
    if top < 0:
        raise ValueError("label ids must be non-negative")
    if top > np.iinfo(np.uint32).max:
        raise ValueError(f"label id {top} does not fit in 32 bits")
    return np.dtype(np.uint16) if top <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def in_label_dtype(labels: np.ndarray) -> np.ndarray:
    """`labels` as `label_dtype` gives (uint16, or uint32 above 65,535 ids); no copy when already so.

    Parameters
    ----------
    labels : numpy.ndarray
        A non-negative integer label image.

    Returns
    -------
    numpy.ndarray
        `labels` in the smaller of the two types that holds its largest id.

    Examples
    --------
    >>> in_label_dtype(np.array([[0, 1], [2, 3]])).dtype
    dtype('uint16')
    >>> in_label_dtype(np.array([[0, 70000]])).dtype
    dtype('uint32')
    """
    return labels.astype(label_dtype(labels), copy=False)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image to `shape` (rows, columns); any integer dtype, exact.

    Pixel-centre mapping by the size ratio: output row r reads input row floor((r + 0.5) · h / rows),
    clipped to h - 1 (columns alike); an image already of `shape` is returned as it is. Used by the
    default model's training data (`default_model.recipe`) and the style-transfer tiles
    (`style.tiles.resize_pair_to`).

    Not MATLAB's `imresize(labels, scale, 'nearest')`, which maps by the scale factor instead of the
    size ratio (floor((u + 0.5) / scale)): the faithful ports of that rule are
    `style.augment.resize_labels_nearest` and, for the fixed factor 0.5,
    `postprocess.resize.matlab_nearest_half`.

    Parameters
    ----------
    labels : numpy.ndarray
        (h, w) label image of any dtype (0 = background); no new ids are created.
    shape : tuple of int
        The output size (rows, columns).

    Returns
    -------
    numpy.ndarray
        (rows, columns) label image of the dtype of `labels`; `labels` itself (not a copy) when it
        already has `shape`.

    Examples
    --------
    >>> labels = np.array([[0, 1], [2, 3]], np.uint16)
    >>> resize_labels(labels, (4, 4))
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]], dtype=uint16)
    >>> resize_labels(np.arange(16).reshape(4, 4), (2, 2)).tolist()
    [[5, 7], [13, 15]]
    """
    h, w = labels.shape
    if (h, w) == tuple(shape):
        return labels
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def drop_objects(labels: np.ndarray, *, min_size: int = 0, touching_edges: bool = False) -> np.ndarray:
    """Labels without the objects under `min_size` pixels and, with `touching_edges`, those touching the
    image border; the ids left are renumbered 1..n in their order.

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) label image, 0 = background.
    min_size : int, optional
        Objects with fewer pixels are dropped (default 0: none).
    touching_edges : bool, optional
        Drop the objects with a pixel in the first or last row or column (default False).

    Returns
    -------
    numpy.ndarray
        A new label image of the same dtype; `labels` itself when nothing is dropped.

    Examples
    --------
    >>> labels = np.zeros((5, 5), np.uint16); labels[0, 0] = 1; labels[1:3, 2:4] = 2
    >>> drop_objects(labels, min_size=2)[1:3].tolist()
    [[0, 0, 1, 1, 0], [0, 0, 1, 1, 0]]
    >>> int(drop_objects(labels, touching_edges=True).max()), int(drop_objects(labels, touching_edges=True)[1, 2])
    (1, 1)
    """
    from skimage.segmentation import clear_border, relabel_sequential

    kept = labels
    if touching_edges:
        kept = clear_border(kept)
    if min_size > 0 and kept.max() > 0:
        sizes = np.bincount(kept.ravel())
        kept = np.where(sizes[kept] < min_size, 0, kept).astype(labels.dtype, copy=False)
    if kept is labels:
        return labels
    return relabel_sequential(kept)[0].astype(labels.dtype, copy=False)
