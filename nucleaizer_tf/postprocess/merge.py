"""Step B of nucleAIzer's post-processing: choose the 2x result or merge the 2x and 4x results (docs/method.md §5.5),
plus the variant the parameter search uses (docs/method.md §5.8.2, quirk Q5)."""

from __future__ import annotations

import math

import numpy as np

from nucleaizer_tf.labels import in_label_dtype

from .cleanup import _labels, relabel, relabel_consecutive
from .params import as_params
from .size import median_equivalent_diameter

__all__ = ["LABEL_OFFSET", "greedy_merge", "select_or_merge", "merge_for_search"]

#: Id offset of the second image's objects in the merge (``10000`` in the original).
LABEL_OFFSET = 10000


def _median_diameter(labels: np.ndarray, include_gaps: bool) -> float:
    return float(median_equivalent_diameter(labels, include_gaps=include_gaps))


def _pixel_lists(lab: np.ndarray):
    """(counts, order, starts): label k has counts[k] pixels, at flat indices ``order[starts[k]:starts[k + 1]]``."""
    flat = lab.ravel().astype(np.intp, copy=False)
    counts = np.bincount(flat)
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return counts, order, starts


def greedy_merge(labels1, labels2, scale_threshold: float, *, include_gaps: bool = True,
                 consecutive: bool = False) -> np.ndarray:
    """``mergeTwoFilesFINAL``: greedy area-ordered merge of two label images of the same shape.

    ``scale_threshold`` is the fraction (0.76 for the default parameter 76).  Candidates are labels 1..max of
    image 1 (ids k) then labels 1..max of image 2 (ids k + 10000), gap labels included with area 0; they are
    stably sorted by ``|area - jointSize|`` with ``jointSize = pi * ((m1 + m2) / 4)^2`` (m = median
    equivalent diameters, zero-inclusive unless ``include_gaps=False``; a NaN median makes every key NaN,
    i.e. the original order).  In that order an object is accepted when the fraction of its pixels already
    occupied is ``< scale_threshold`` (empty objects: NaN, rejected); accepted objects mark their pixels
    occupied and overwrite earlier ones.  Finally ``relabel`` (``relabel_consecutive`` if ``consecutive``).

    Deviation: if image 1 has >= 10000 labels the offset grows to max + 1 (the original's ids would collide).

    Parameters
    ----------
    labels1, labels2 : array_like
        (H, W) label images of the same shape, 0 = background: the 2x and the 4x result in step B.
    scale_threshold : float
        Largest occupied fraction (exclusive) at which an object is still accepted, e.g. 0.76.
    include_gaps : bool, default True, keyword-only
        Medians count missing ids as diameter 0 (quirk Q3, as step B); False for the search's variant.
    consecutive : bool, default False, keyword-only
        Renumber with ``relabel_consecutive`` instead of ``relabel``.

    Returns
    -------
    np.ndarray
        (H, W) merged labels (0 = background), uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If the images differ in shape or are not valid label images.

    Examples
    --------
    jointSize is about 6.8 px here, so the 6-pixel object 1 of the second image comes first and covers
    the 4-pixel object 1 of the first image, which is then rejected (fully occupied):

    >>> l2 = np.zeros((6, 6), dtype=np.int32)
    >>> l2[0:2, 0:2] = 1
    >>> l2[3:6, 0:3] = 2
    >>> l4 = np.zeros((6, 6), dtype=np.int32)
    >>> l4[0:2, 0:3] = 1
    >>> l4[3:6, 3:6] = 2
    >>> greedy_merge(l2, l4, 0.76)
    array([[2, 2, 2, 0, 0, 0],
           [2, 2, 2, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [1, 1, 1, 3, 3, 3],
           [1, 1, 1, 3, 3, 3],
           [1, 1, 1, 3, 3, 3]], dtype=uint16)
    """
    l1 = _labels(labels1, "first label image")
    l2 = _labels(labels2, "second label image")
    if l1.shape != l2.shape:
        raise ValueError(f"label images differ in shape: {l1.shape} vs {l2.shape}")
    m1 = _median_diameter(l1, include_gaps)
    m2 = _median_diameter(l2, include_gaps)
    joint = math.pi * ((m1 + m2) / 4) ** 2

    c1, order1, starts1 = _pixel_lists(l1)
    c2, order2, starts2 = _pixel_lists(l2)
    n1 = c1.size - 1
    offset = max(LABEL_OFFSET, n1 + 1)
    areas = np.concatenate([c1[1:], c2[1:]]).astype(np.float64)
    with np.errstate(invalid="ignore"):
        key = np.abs(areas - joint)
    sequence = np.argsort(key, kind="stable")  # NaN keys sort last, stably, like MATLAB sort

    occupied = np.zeros(l1.size, dtype=bool)
    out = np.zeros(l1.size, dtype=np.int64)
    for idx in sequence.tolist():
        if idx < n1:
            k = idx + 1
            pix = order1[starts1[k] : starts1[k + 1]]
            new_id = k
        else:
            k = idx - n1 + 1
            pix = order2[starts2[k] : starts2[k + 1]]
            new_id = k + offset
        if pix.size == 0:
            continue  # 0/0 = NaN is not < threshold
        if np.count_nonzero(occupied[pix]) / pix.size < scale_threshold:
            occupied[pix] = True
            out[pix] = new_id
    out = out.reshape(l1.shape)
    return relabel_consecutive(out) if consecutive else relabel(out)


def _scale_median(l2: np.ndarray, l4: np.ndarray, include_gaps: bool) -> float:
    """The median equivalent diameter that decides between the scales: the 2x result's, or the 4x
    result's when the 2x one is NaN (no labels)."""
    m = _median_diameter(l2, include_gaps)
    return _median_diameter(l4, include_gaps) if math.isnan(m) else m


def select_or_merge(l2, l4, params=None) -> np.ndarray:
    """Step B (``postProcCodeFINAL``, docs/method.md §5.5): choose the 2x result or merge it with the 4x one.

    The zero-inclusive median equivalent diameter of the 2x result (of the 4x result when the 2x one has
    no labels) decides: if it exceeds ``median_size`` the 2x image is returned as it is (gaps kept),
    otherwise (NaN included) ``greedy_merge(l2, l4, scale_threshold / 100)``.

    Parameters
    ----------
    l2, l4 : array_like
        (H, W) cleaned label images of the 2x and 4x runs (`cleanup_scale` output), 0 = background.
    params : PostprocessParams, sequence, dict or None, default None
        Anything `as_params` accepts (None = defaults); uses `median_size` and `scale_threshold`.

    Returns
    -------
    np.ndarray
        (H, W) labels, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If the inputs are not valid label images, or differ in shape when they are merged.

    Examples
    --------
    >>> l2 = np.zeros((6, 6), dtype=np.int32)
    >>> l2[0:2, 0:2] = 1
    >>> l2[3:6, 0:3] = 2
    >>> l4 = np.zeros((6, 6), dtype=np.int32)
    >>> l4[0:2, 0:3] = 1
    >>> l4[3:6, 3:6] = 2
    >>> select_or_merge(l2, l4)[:, 0]  # median 2.8 px <= 21: merged
    array([2, 2, 0, 1, 1, 1], dtype=uint16)
    >>> select_or_merge(l2, l4, {"median_size": 2})[:, 0]  # 2.8 px > 2: the 2x result as it is
    array([1, 1, 0, 2, 2, 2], dtype=uint16)
    """
    p = as_params(params)
    a = _labels(l2, "2x labels")
    b = _labels(l4, "4x labels")
    if _scale_median(a, b, include_gaps=True) > p.median_size:
        return in_label_dtype(a.copy())
    return greedy_merge(a, b, p.scale_fraction)


def merge_for_search(l2, l4, params=None, faithful_q5: bool = False) -> np.ndarray:
    """Step 2 of the parameter-search objective (``mergeScalesMapByDropping2``, docs/method.md §5.8.2).

    The median is the zero-EXCLUDED one (``estimateCellSize2``; NaN -> the 4x one); above ``median_size``
    the 2x result is used.  Otherwise, with ``faithful_q5`` the original's quirk Q5 (docs/method.md) is
    reproduced: the 2x result is returned whenever it has objects (the 4x one only when the 2x one is
    empty), so ``scale_threshold`` and ``median_size`` barely matter; by default the real greedy merge runs
    (with the zero-excluded medians).  Labels come back consecutive (0 kept).

    Parameters
    ----------
    l2, l4 : array_like
        (H, W) label images of the 2x and 4x runs after small-object removal and downscaling,
        0 = background.
    params : PostprocessParams, sequence, dict or None, default None
        Anything `as_params` accepts (None = defaults); uses `median_size` and `scale_threshold`.
    faithful_q5 : bool, default False
        Reproduce the original's quirk Q5 instead of running the real merge.

    Returns
    -------
    np.ndarray
        (H, W) labels 1..n (0 = background), uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If the inputs are not valid label images, or differ in shape when they are merged.

    Examples
    --------
    >>> l2 = np.zeros((6, 6), dtype=np.int32)
    >>> l2[0:2, 0:2] = 1
    >>> l2[3:6, 0:3] = 2
    >>> l4 = np.zeros((6, 6), dtype=np.int32)
    >>> l4[0:2, 0:3] = 1
    >>> l4[3:6, 3:6] = 2
    >>> merge_for_search(l2, l4)[:, 0]
    array([2, 2, 0, 1, 1, 1], dtype=uint16)
    >>> merge_for_search(l2, l4, faithful_q5=True)[:, 0]  # quirk Q5: the 2x result
    array([1, 1, 0, 2, 2, 2], dtype=uint16)
    """
    p = as_params(params)
    a = _labels(l2, "2x labels")
    b = _labels(l4, "4x labels")
    if _scale_median(a, b, include_gaps=False) > p.median_size:
        return relabel_consecutive(a)
    if faithful_q5:
        return relabel_consecutive(a if a.any() or not b.any() else b)
    return greedy_merge(a, b, p.scale_fraction, include_gaps=False, consecutive=True)
