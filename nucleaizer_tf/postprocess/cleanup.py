"""Step A of nucleAIzer's post-processing: per-scale cleanup of a Mask R-CNN label image (docs/method.md §5.4).

``cleanup_scale`` = hole absorption -> convexity-based merging of touching objects -> removal of small
objects (no relabel) -> MATLAB ``imresize(L, 0.5, 'nearest')``.

Everything works on label statistics and bounding-box crops (``scipy.ndimage.find_objects``); no step runs
a full-image operation per object.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from nucleaizer_tf.labels import as_label_array, in_label_dtype

from .params import as_params
from .resize import matlab_nearest_half

__all__ = [
    "relabel",
    "relabel_consecutive",
    "absorb_holes",
    "neighbour_pairs",
    "convex_deficiency",
    "merge_touching",
    "remove_small",
    "cleanup_scale",
    "first_component",
]

_STRUCT = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


# ---------------------------------------------------------------------------------------------------------
# helpers


def _labels(a, what: str = "labels") -> np.ndarray:
    """A 2-D non-negative integer label array (bool -> 0/1)."""
    return as_label_array(a, what)


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return connectivity


def first_component(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """The connected component of ``mask`` holding its first True pixel in column-major (MATLAB) order.

    That is the region ``bwlabel(mask, connectivity)`` numbers 1.  Empty mask -> empty mask.

    Parameters
    ----------
    mask : array_like
        (H, W) mask (converted to bool).
    connectivity : {8, 4}, default 8
        Pixel connectivity of the components.

    Returns
    -------
    np.ndarray
        (H, W) bool mask of that component; all False when `mask` is empty.

    Raises
    ------
    ValueError
        If `connectivity` is not 4 or 8 (checked only when `mask` has a True pixel).

    Examples
    --------
    >>> mask = np.array([[0, 0, 0, 1],
    ...                  [1, 0, 0, 1],
    ...                  [1, 0, 0, 0]], dtype=bool)
    >>> first_component(mask).astype(int)
    array([[0, 0, 0, 0],
           [1, 0, 0, 0],
           [1, 0, 0, 0]])
    """
    mask = np.asarray(mask, dtype=bool)
    flat_f = mask.ravel(order="F")
    first = int(np.argmax(flat_f))
    if not flat_f[first]:
        return np.zeros_like(mask)
    comp, _ = ndimage.label(mask, structure=_STRUCT[_check_connectivity(connectivity)])
    r, c = np.unravel_index(first, mask.shape, order="F")
    return comp == comp[r, c]


# ---------------------------------------------------------------------------------------------------------
# relabelling


def relabel(labels) -> np.ndarray:
    """postProcess ``relabel``: the sorted distinct values (0 included) are mapped to 0..n-1.

    If 0 does not occur the smallest label becomes 0 (the original's edge case, kept on purpose).

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers (bool is taken as 0/1).

    Returns
    -------
    np.ndarray
        (H, W) labels 0..n-1, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `labels` is not a 2-D non-negative integer label image.

    Examples
    --------
    >>> relabel(np.array([[0, 3], [7, 3]]))
    array([[0, 1],
           [2, 1]], dtype=uint16)
    >>> relabel(np.array([[2, 3], [7, 3]]))  # no 0: label 2 becomes background
    array([[0, 1],
           [2, 1]], dtype=uint16)
    """
    lab = _labels(labels)
    if lab.size == 0:
        return in_label_dtype(lab.copy())
    flat = lab.ravel().astype(np.intp, copy=False)
    present = np.bincount(flat).astype(bool)
    lut = np.cumsum(present) - 1
    return in_label_dtype(lut[flat].reshape(lab.shape))


def relabel_consecutive(labels) -> np.ndarray:
    """``relabelImage`` semantics: 0 stays 0, the other distinct labels become 1..n in ascending order.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background (bool is taken as 0/1).

    Returns
    -------
    np.ndarray
        (H, W) labels 1..n (0 = background), uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `labels` is not a 2-D non-negative integer label image.

    Examples
    --------
    >>> relabel_consecutive(np.array([[0, 3], [7, 3]]))
    array([[0, 1],
           [2, 1]], dtype=uint16)
    >>> relabel_consecutive(np.array([[2, 3], [7, 3]]))
    array([[1, 2],
           [3, 2]], dtype=uint16)
    """
    lab = _labels(labels)
    if lab.size == 0:
        return in_label_dtype(lab.copy())
    flat = lab.ravel().astype(np.intp, copy=False)
    present = np.bincount(flat).astype(bool)
    present[0] = False
    lut = np.cumsum(present)
    lut[0] = 0
    return in_label_dtype(lut[flat].reshape(lab.shape))


# ---------------------------------------------------------------------------------------------------------
# 1. removeObjectWithinObject


def absorb_holes(labels) -> np.ndarray:
    """For k = 1..max: fill the holes of (L == k) (4-connected background, like ``imfill 'holes'``) and give
    every filled pixel label k, so objects lying in another object's hole are absorbed; then ``relabel``.

    Each object is processed on its bounding-box crop: a pixel of the box is a hole of k exactly when it is
    one in the full image (every pixel outside the box is non-k, so the box border reaches the image
    border).  Boxes computed before the loop stay valid because objects only ever lose pixels to others.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.

    Returns
    -------
    np.ndarray
        (H, W) labels after ``relabel`` (0..n-1), uint16 when they fit, else uint32.

    Examples
    --------
    Object 5 lies in the hole of object 2 and is absorbed with the hole's background:

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:5, 0:5] = 2
    >>> lab[1:4, 1:4] = 0
    >>> lab[2, 2] = 5
    >>> lab[5, 5] = 7
    >>> absorb_holes(lab)
    array([[1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 2]], dtype=uint16)
    """
    lab = _labels(labels)
    out = lab.astype(np.int64, copy=True)
    if out.size == 0:
        return relabel(out)
    for k, box in enumerate(ndimage.find_objects(out), start=1):
        if box is None:
            continue
        crop = out[box]
        obj = crop == k
        if obj.shape[0] < 3 or obj.shape[1] < 3:
            continue  # nothing can be enclosed
        filled = ndimage.binary_fill_holes(obj)
        holes = filled & ~obj
        if holes.any():
            crop[holes] = k
    return relabel(out)


# ---------------------------------------------------------------------------------------------------------
# 2. mergeTouchingObjects


def neighbour_pairs(labels, connectivity: int = 8) -> np.ndarray:
    """All pairs (i, j), i < j, of labels that touch, sorted by i then j.

    Touching: j lies in the ring obtained by dilating i with a 3x3 square for connectivity 8, a cross
    for 4.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    connectivity : {8, 4}, default 8
        Neighbourhood that counts as touching.

    Returns
    -------
    np.ndarray
        (n, 2) int64 array of label pairs, each row ``(i, j)`` with i < j; (0, 2) when nothing touches.

    Raises
    ------
    ValueError
        If `connectivity` is not 4 or 8, or `labels` is not a valid label image.

    Examples
    --------
    >>> lab = np.array([[1, 1, 0, 0],
    ...                 [1, 1, 2, 0],
    ...                 [0, 0, 0, 3],
    ...                 [0, 0, 0, 3]])
    >>> neighbour_pairs(lab)
    array([[1, 2],
           [2, 3]])
    >>> neighbour_pairs(lab, connectivity=4)
    array([[1, 2]])
    """
    lab = _labels(labels).astype(np.int64, copy=False)
    _check_connectivity(connectivity)
    shifts = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 8 else [])
    h, w = lab.shape
    found = []
    for dr, dc in shifts:
        a = lab[0 : h - dr, max(0, -dc) : w - max(0, dc)]
        b = lab[dr:h, max(0, dc) : w - max(0, -dc)]
        m = (a != b) & (a > 0) & (b > 0)
        if m.any():
            x, y = a[m], b[m]
            found.append(np.stack([np.minimum(x, y), np.maximum(x, y)], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _convex_area(mask: np.ndarray) -> int:
    """Pixel count of the filled convex hull of the True pixels: MATLAB regionprops ConvexArea as skimage
    computes it (``convex_hull_image(mask).sum()``: hull of the pixel-edge midpoints, pixel centres inside
    or on the hull counted), in exact integer arithmetic and about 3x faster.

    Coordinates are doubled so every hull vertex is an integer point.  Only the leftmost and rightmost
    pixel of each row can contribute hull vertices; for every pixel row between the first and the last
    the hull is an interval whose integer column bounds come from floor/ceil of exact rationals.
    MATLAB's own rasterisation of the hull (poly2mask) may differ on centres exactly on the hull.
    """
    r, c = np.nonzero(mask)
    n = r.size
    if n <= 1:
        return int(n)
    rows, first = np.unique(r, return_index=True)  # np.nonzero is row-major: rows sorted, cols sorted
    last = np.append(first[1:], n) - 1
    lo, hi = 2 * c[first].astype(np.int64), 2 * c[last].astype(np.int64)
    y = 2 * rows.astype(np.int64)
    ys = np.concatenate([y - 1, y + 1, y, y - 1, y + 1, y])
    xs = np.concatenate([lo, lo, lo - 1, hi, hi, hi + 1])
    pts = np.stack([ys, xs], axis=1)
    v = pts[ConvexHull(pts).vertices]  # 2-D: vertices in order around the hull
    y1, x1 = v[:, 0], v[:, 1]
    y2, x2 = np.roll(y1, -1), np.roll(x1, -1)
    slanted = y1 != y2  # horizontal edges add nothing beyond their end points
    y1, x1, y2, x2 = y1[slanted], x1[slanted], y2[slanted], x2[slanted]
    down = y2 < y1
    y1, y2 = np.where(down, y2, y1), np.where(down, y1, y2)
    x1, x2 = np.where(down, x2, x1), np.where(down, x1, x2)
    dy, dx = y2 - y1, x2 - x1  # dy > 0
    yr = 2 * np.arange(rows[0], rows[-1] + 1, dtype=np.int64)[:, None]
    crossing = (y1 <= yr) & (yr <= y2)
    num = x1 * dy + (yr - y1) * dx  # edge abscissa at yr = num / dy; pixel column = abscissa / 2
    col_lo = -((-num) // (2 * dy))  # ceil
    col_hi = num // (2 * dy)  # floor
    big = np.iinfo(np.int64).max
    left = np.where(crossing, col_lo, big).min(axis=1)
    right = np.where(crossing, col_hi, -big).max(axis=1)
    return int(np.maximum(right - left + 1, 0).sum())


def convex_deficiency(mask: np.ndarray) -> int:
    """``ConvexArea - Area`` of the True pixels of ``mask`` (all of them, connected or not).

    ConvexArea is MATLAB regionprops' value as scikit-image computes it (``convex_hull_image(mask).sum()``),
    in exact integer arithmetic.

    Parameters
    ----------
    mask : array_like
        (H, W) mask (converted to bool).

    Returns
    -------
    int
        Number of pixels inside the filled convex hull that are not in `mask` (0 for an empty mask).

    Examples
    --------
    >>> square = np.ones((3, 3), dtype=bool)
    >>> convex_deficiency(square)
    0
    >>> ell = np.zeros((6, 6), dtype=bool)
    >>> ell[1:5, 1:3] = True
    >>> ell[3:5, 3:5] = True
    >>> convex_deficiency(ell)
    1
    >>> convex_deficiency(np.array([[1, 0, 1]], dtype=bool))  # two pixels, the one between is counted
    1
    """
    mask = np.asarray(mask, dtype=bool)
    return _convex_area(mask) - int(np.count_nonzero(mask))


def _union_box(a: tuple, b: tuple) -> tuple:
    return tuple(slice(min(s.start, t.start), max(s.stop, t.stop)) for s, t in zip(a, b))


def merge_touching(labels, connectivity: int = 8) -> np.ndarray:
    """``mergeTouchingObjects(L, connectivity)``: iterative convexity-based merging of touching objects.

    One pass: for every touching pair (i < j, in ascending (i, j) order), with
    ``def(X) = ConvexArea(X) - Area(X)`` (X = all pixels of a label; for the union of i and j its first
    ``connectivity``-connected component in column-major order), record i -> j when
    ``def(i) + def(j) > def(i u j)``.  The recorded relabellings ``L[L == i] = j`` are applied sequentially
    in recorded order, then ``relabel``; passes repeat until one records nothing; a final ``relabel``.

    Later passes only re-test pairs involving an object changed by the previous pass: a pair of unchanged
    objects gives the same answer again (their pixels are the same), so the recorded list is identical.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    connectivity : {8, 4}, default 8
        Neighbourhood for touching pairs (`neighbour_pairs`) and for the union's first component;
        step A uses 8.

    Returns
    -------
    np.ndarray
        (H, W) labels after ``relabel`` (0..n-1), uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `connectivity` is not 4 or 8, or `labels` is not a valid label image.

    Examples
    --------
    The L-shaped object 1 (deficiency 1) and the square 2 in its notch (0) make a square (0), so they
    merge; object 3 touches 2 only at a corner and stays:

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[1:5, 1:3] = 1
    >>> lab[3:5, 3:5] = 1
    >>> lab[1:3, 3:5] = 2
    >>> lab[0, 5] = 3
    >>> merge_touching(lab)
    array([[0, 0, 0, 0, 0, 2],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint16)

    Two touching squares are not merged (0 + 0 is not more than the rectangle's 0):

    >>> lab = np.zeros((4, 4), dtype=np.int32)
    >>> lab[0:2, 0:2] = 1
    >>> lab[0:2, 2:4] = 2
    >>> merge_touching(lab)[0]
    array([1, 1, 2, 2], dtype=uint16)
    """
    _check_connectivity(connectivity)
    lab = _labels(labels).astype(np.int64, copy=True)
    if lab.size == 0:
        return relabel(lab)
    deficiency: dict[int, int] = {}  # label -> def, valid for the current ids
    rejected: set = set()  # pairs of current ids known not to merge
    while True:
        pairs = neighbour_pairs(lab, connectivity)
        boxes = ndimage.find_objects(lab)
        recorded = []
        for i, j in pairs.tolist():
            if (i, j) in rejected:
                continue
            for k in (i, j):
                if k not in deficiency:
                    deficiency[k] = convex_deficiency(lab[boxes[k - 1]] == k)
            crop = lab[_union_box(boxes[i - 1], boxes[j - 1])]
            union = first_component((crop == i) | (crop == j), connectivity)
            if deficiency[i] + deficiency[j] > convex_deficiency(union):
                recorded.append((i, j))
            else:
                rejected.add((i, j))
        if not recorded:
            break
        lut = np.arange(int(lab.max()) + 1, dtype=np.int64)
        for i, j in recorded:  # sequential L[L == i] = j, done on the label table
            lut[lut == i] = j
        merged = lut[lab]
        rank = np.cumsum(np.bincount(merged.ravel()).astype(bool)) - 1  # relabel, as a table
        old_to_new = rank[lut]
        lab = old_to_new[lab]
        changed = {k for pair in recorded for k in pair}
        deficiency = {int(old_to_new[k]): d for k, d in deficiency.items() if k not in changed and old_to_new[k] > 0}
        rejected = {
            (int(old_to_new[i]), int(old_to_new[j]))
            for i, j in rejected
            if i not in changed and j not in changed and old_to_new[i] > 0
        }
    return relabel(lab)


# ---------------------------------------------------------------------------------------------------------
# 3. removeSmallObjects, 4. nearest 0.5 resize


def remove_small(labels, min_size: int) -> np.ndarray:
    """Every label with area <= min_size becomes 0; the others keep their ids (gaps remain, no relabel).

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    min_size : int
        Largest area (pixels) that is removed; the `min_size` parameter (44 by default) at 2x resolution.

    Returns
    -------
    np.ndarray
        (H, W) labels, uint16 when they fit, else uint32.

    Examples
    --------
    >>> lab = np.array([[1, 1, 0, 3],
    ...                 [1, 1, 0, 3],
    ...                 [0, 0, 0, 0],
    ...                 [4, 4, 4, 0]])
    >>> remove_small(lab, 2)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 0, 0],
           [4, 4, 4, 0]], dtype=uint16)
    """
    lab = _labels(labels)
    if lab.size == 0:
        return in_label_dtype(lab.copy())
    flat = lab.ravel().astype(np.intp, copy=False)
    areas = np.bincount(flat)
    lut = np.arange(areas.size, dtype=np.int64)
    lut[areas <= min_size] = 0
    return in_label_dtype(lut[flat].reshape(lab.shape))


def cleanup_scale(labels_2x, params=None) -> np.ndarray:
    """Step A for one scale (docs/method.md §5.4), from 2x resolution to the original resolution.

    absorb_holes -> merge_touching(8) -> remove_small(min_size) -> ``matlab_nearest_half``.

    Parameters
    ----------
    labels_2x : array_like
        (2H, 2W) Mask R-CNN label image at 2x resolution, 0 = background.
    params : PostprocessParams, sequence, dict or None, default None
        Anything `as_params` accepts; only `min_size` is used (44 by default, None = defaults).

    Returns
    -------
    np.ndarray
        (H, W) labels (ceil of half the input size), uint16 (uint32 only beyond 65535 labels); the ids
        of removed objects stay as gaps.

    Examples
    --------
    Objects 1 and 2 merge, the one-pixel object 3 is removed, then the image is halved:

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[1:5, 1:3] = 1
    >>> lab[3:5, 3:5] = 1
    >>> lab[1:3, 3:5] = 2
    >>> lab[0, 5] = 3
    >>> cleanup_scale(lab, {"min_size": 1})
    array([[1, 1, 0],
           [1, 1, 0],
           [0, 0, 0]], dtype=uint16)
    """
    p = as_params(params)
    lab = absorb_holes(labels_2x)
    lab = merge_touching(lab, 8)
    lab = remove_small(lab, p.min_size)
    return in_label_dtype(np.asarray(matlab_nearest_half(lab)))
