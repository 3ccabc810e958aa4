"""Step C of nucleAIzer's post-processing: U-Net guided contour correction and false-positive removal
(docs/method.md §5.6; the parameter-search variant differs only in the component connectivity, §5.8)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as _cc_label
from skimage.morphology import disk

from nucleaizer_tf.labels import in_label_dtype

from .cleanup import _check_connectivity, _labels
from .params import as_params
from .resize import matlab_resize_bicubic

__all__ = [
    "dilate_labels",
    "erode_labels",
    "probability_mask",
    "ring_correction",
    "first_component_filter",
    "support_filter",
    "refine_with_unet",
]


def _radius(r) -> int:
    r = int(r)
    if r < 0:
        raise ValueError(f"radius must be >= 0, got {r}")
    return r


def dilate_labels(labels, r: int) -> np.ndarray:
    """``dilateLabelledMasks``: labelled dilation of all objects at once.

    The UNION foreground is dilated with ``disk(r)`` (MATLAB ``strel('disk', r)`` for r <= 2; r = 1 is the
    3x3 cross), and every pixel of the result takes the label of its nearest foreground pixel (Euclidean;
    ties broken by SciPy's EDT, which may differ from MATLAB ``bwdist``).

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    r : int
        Disk radius in pixels, >= 0; 0 returns the labels unchanged.

    Returns
    -------
    np.ndarray
        (H, W) labels, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `r` is negative or `labels` is not a valid label image.

    Examples
    --------
    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[1:3, 1:3] = 1
    >>> lab[4, 4] = 2
    >>> dilate_labels(lab, 1)
    array([[0, 1, 1, 0, 0, 0],
           [1, 1, 1, 1, 0, 0],
           [1, 1, 1, 1, 0, 0],
           [0, 1, 1, 0, 2, 0],
           [0, 0, 0, 2, 2, 2],
           [0, 0, 0, 0, 2, 0]], dtype=uint16)
    """
    lab = _labels(labels)
    r = _radius(r)
    fg = lab > 0
    if r == 0 or not fg.any():
        return in_label_dtype(lab.copy())
    grown = ndimage.binary_dilation(fg, structure=disk(r).astype(bool))
    rows, cols = ndimage.distance_transform_edt(~fg, return_distances=False, return_indices=True)
    out = np.where(grown, lab[rows, cols], 0)
    return in_label_dtype(out)


def erode_labels(labels, r: int) -> np.ndarray:
    """``erodeLabelledMasks``: labelled erosion of all objects at once.

    The UNION foreground is eroded with ``disk(r)`` (touching objects are not separated; outside the
    image counts as foreground, as in MATLAB ``imerode``) and the labels are kept where the eroded mask
    is set.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    r : int
        Disk radius in pixels, >= 0; 0 returns the labels unchanged.

    Returns
    -------
    np.ndarray
        (H, W) labels, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `r` is negative or `labels` is not a valid label image.

    Examples
    --------
    Objects 1 and 2 touch and are not separated; the image border does not erode the top row:

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:5, 0:3] = 1
    >>> lab[0:5, 3:5] = 2
    >>> erode_labels(lab, 1)
    array([[1, 1, 1, 2, 0, 0],
           [1, 1, 1, 2, 0, 0],
           [1, 1, 1, 2, 0, 0],
           [1, 1, 1, 2, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    lab = _labels(labels)
    r = _radius(r)
    if r == 0:
        return in_label_dtype(lab.copy())
    kept = ndimage.binary_erosion(lab > 0, structure=disk(r).astype(bool), border_value=1)
    return in_label_dtype(np.where(kept, lab, 0))


def _resize_to(e: np.ndarray, shape: tuple) -> np.ndarray:
    out = np.asarray(matlab_resize_bicubic(e, shape))
    if out.dtype.kind == "f" and e.dtype.kind in "iu":
        info = np.iinfo(e.dtype)
        out = np.clip(np.floor(out + 0.5), info.min, info.max).astype(e.dtype)  # MATLAB round, saturate
    return out


def probability_mask(ensemble16, shape: tuple, prob_level: float) -> np.ndarray:
    """``P = E >= prob_level`` with E resized to ``shape`` (MATLAB bicubic) when its size differs.

    An integer map is rounded (MATLAB round) and saturated to its type after resizing.

    Parameters
    ----------
    ensemble16 : array_like
        (h, w) U-Net ensemble map, normally uint16 (0..65535).
    shape : tuple of int
        ``(H, W)`` of the label image the mask is for.
    prob_level : float
        Threshold on the map's values, ``PostprocessParams.prob_level`` (65535.0 by default).

    Returns
    -------
    np.ndarray
        (H, W) bool U-Net foreground mask.

    Raises
    ------
    ValueError
        If the map is not 2-D.

    Examples
    --------
    >>> e = np.array([[0, 65535], [65535, 65535]], dtype=np.uint16)
    >>> probability_mask(e, (2, 2), 65535.0)
    array([[False,  True],
           [ True,  True]])
    >>> probability_mask(e, (4, 4), 32768).astype(int)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1]])
    """
    e = np.asarray(ensemble16)
    if e.ndim != 2:
        raise ValueError(f"the ensemble probability map must be 2-D, got shape {e.shape}")
    if e.shape != tuple(shape):
        e = _resize_to(e, tuple(shape))
    return e >= prob_level


def ring_correction(labels, P, erosion_radius: int, dilation_radius: int) -> np.ndarray:
    """``Out = Small + (Big - Small) * P`` with Big/Small the labelled dilation/erosion.

    The eroded core is always kept, the ring up to the dilation goes to the nearest object where P is
    set. With the defaults (erosion 0, dilation 1) every object keeps its pixels and gains those of its
    one-pixel outer ring that lie in P.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    P : array_like
        (H, W) U-Net foreground mask (converted to bool), e.g. from `probability_mask`.
    erosion_radius : int
        Disk radius of the erosion (inner limit), >= 0.
    dilation_radius : int
        Disk radius of the dilation (outer limit), >= 0.

    Returns
    -------
    np.ndarray
        (H, W) labels, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `P` and `labels` differ in shape, or a radius is negative.

    Examples
    --------
    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[1:3, 1:3] = 1
    >>> lab[4, 4] = 2
    >>> P = np.zeros((6, 6), dtype=bool)
    >>> P[:, :3] = True
    >>> ring_correction(lab, P, 0, 1)
    array([[0, 1, 1, 0, 0, 0],
           [1, 1, 1, 0, 0, 0],
           [1, 1, 1, 0, 0, 0],
           [0, 1, 1, 0, 0, 0],
           [0, 0, 0, 0, 2, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    lab = _labels(labels)
    P = np.asarray(P, dtype=bool)
    if P.shape != lab.shape:
        raise ValueError(f"P has shape {P.shape}, labels {lab.shape}")
    big = dilate_labels(lab, dilation_radius)
    small = erode_labels(lab, erosion_radius)
    return in_label_dtype(np.where(small > 0, small, np.where(P, big, 0)))


def first_component_filter(labels, max_v: int, connectivity: int = 4) -> np.ndarray:
    """For j = 1..max: objects whose TOTAL area is > max_v keep only the ``connectivity``-connected
    component holding their first pixel in column-major order (docs/method.md, quirk Q4: not the largest
    component); the others are dropped.  Kept objects get consecutive ids in the order of j.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    max_v : int
        Objects with total area <= max_v (pixels) are dropped; the `max_v` parameter (32 by default).
    connectivity : {4, 8}, default 4
        Connectivity of the components: 4 in `postprocess`, 8 in the parameter search.

    Returns
    -------
    np.ndarray
        (H, W) labels 1..n, uint16 when they fit, else uint32.

    Raises
    ------
    ValueError
        If `connectivity` is not 4 or 8, or `labels` is not a valid label image.

    Examples
    --------
    Object 5 keeps its single pixel in column 0, not its larger piece (quirk Q4):

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:2, 0:2] = 3
    >>> lab[4:6, 4:6] = 3
    >>> lab[0:3, 4:6] = 5
    >>> lab[5, 0] = 5
    >>> first_component_filter(lab, 3)
    array([[1, 1, 0, 0, 0, 0],
           [1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [2, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    lab = _labels(labels)
    _check_connectivity(connectivity)
    if not lab.any():
        return in_label_dtype(np.zeros(lab.shape, dtype=np.uint16))
    # one labelling of the whole image; skimage only joins neighbours of EQUAL value
    comp = _cc_label(lab, background=0, connectivity=1 if connectivity == 4 else 2)
    values, first = np.unique(lab.ravel(order="F"), return_index=True)
    top = int(values[-1])
    chosen = np.zeros(top + 1, dtype=np.int64)
    chosen[values] = comp.ravel(order="F")[first]
    areas = np.bincount(lab.ravel().astype(np.intp, copy=False), minlength=top + 1)
    keep = areas > max_v
    keep[0] = False
    new_id = np.cumsum(keep)
    lab_i = lab.astype(np.intp, copy=False)
    in_first = comp == chosen[lab_i]
    return in_label_dtype(np.where(keep[lab_i] & in_first, new_id[lab_i], 0))


def support_filter(labels, P, min_overlap: float, c_area: int) -> np.ndarray:
    """False-positive filter: with ``A`` the area and ``s = sum(P over the object) / A``, keep an object if
    ``s >= min_overlap and A >= c_area`` or ``s < min_overlap and A >= 4 * c_area``; consecutive ids.
    ``min_overlap`` is the fraction (0.0017 for the default parameter 17).

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    P : array_like
        (H, W) U-Net foreground mask (converted to bool).
    min_overlap : float
        Fraction of an object's pixels in P from which it counts as supported.
    c_area : int
        Minimum area (pixels) of a supported object; unsupported ones need ``4 * c_area``.

    Returns
    -------
    np.ndarray
        (H, W) labels 1..n of the kept objects in ascending order of their ids, uint16 when they fit,
        else uint32.

    Raises
    ------
    ValueError
        If `P` and `labels` differ in shape, or `labels` is not a valid label image.

    Examples
    --------
    Object 1 is supported (area 4 >= 2); 2 and 3 are not, and only 3 reaches 4 * 2 = 8 pixels:

    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:2, 0:2] = 1
    >>> lab[0:2, 4:6] = 2
    >>> lab[3:6, 3:6] = 3
    >>> P = np.zeros((6, 6), dtype=bool)
    >>> P[0:2, 0:3] = True
    >>> support_filter(lab, P, 0.5, 2)
    array([[1, 1, 0, 0, 0, 0],
           [1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 0, 2, 2, 2],
           [0, 0, 0, 2, 2, 2],
           [0, 0, 0, 2, 2, 2]], dtype=uint16)
    """
    lab = _labels(labels)
    P = np.asarray(P, dtype=bool)
    if P.shape != lab.shape:
        raise ValueError(f"P has shape {P.shape}, labels {lab.shape}")
    if not lab.any():
        return in_label_dtype(np.zeros(lab.shape, dtype=np.uint16))
    flat = lab.ravel().astype(np.intp, copy=False)
    area = np.bincount(flat)
    on = np.bincount(flat, weights=P.ravel().astype(np.float64), minlength=area.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = on / area
    supported = s >= min_overlap
    keep = (supported & (area >= c_area)) | (~supported & (area >= 4 * c_area))
    keep &= area > 0
    keep[0] = False
    new_id = np.cumsum(keep)
    return in_label_dtype(np.where(keep[flat], new_id[flat], 0).reshape(lab.shape))


def refine_with_unet(M, E16, params=None, connectivity: int = 4) -> np.ndarray:
    """Step C (``postProcCodeFINAL``; with ``connectivity=8`` the search's ``correctWithUnet2``).

    ``P = E >= prob_threshold * 65535 / 32`` (E resized to M's size with MATLAB bicubic if needed),
    ring correction with the erosion/dilation radii, the first-component filter (``max_v``), the U-Net
    support filter (``min_overlap / 10000``, ``c_area``, ``4 * c_area``); uint16 labels 1..n.

    Parameters
    ----------
    M : array_like
        (H, W) master label image from step B, 0 = background.
    E16 : array_like
        (h, w) 16-bit U-Net ensemble map; resized to (H, W) with MATLAB bicubic when the sizes differ.
    params : PostprocessParams, sequence, dict or None, default None
        Anything `as_params` accepts (None = defaults).
    connectivity : {4, 8}, default 4
        Connectivity of the first-component filter: 4 in `postprocess`, 8 in the search.

    Returns
    -------
    np.ndarray
        (H, W) labels 1..n, 0 = background; uint16 (uint32 only beyond 65535 objects).

    Raises
    ------
    ValueError
        If the map is not 2-D, `connectivity` is not 4 or 8, or `M` is not a valid label image.

    Examples
    --------
    Object 1 gains its ring where E is saturated; the one-pixel objects 2 and 3 stay at or below
    ``max_v`` = 2 and are dropped:

    >>> M = np.zeros((6, 6), dtype=np.int32)
    >>> M[1:3, 1:3] = 1
    >>> M[4, 4] = 2
    >>> M[4, 0] = 3
    >>> E = np.zeros((6, 6), dtype=np.uint16)
    >>> E[0:4, 0:4] = 65535
    >>> refine_with_unet(M, E, {"max_v": 2, "c_area": 1})
    array([[0, 1, 1, 0, 0, 0],
           [1, 1, 1, 1, 0, 0],
           [1, 1, 1, 1, 0, 0],
           [0, 1, 1, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    p = as_params(params)
    lab = _labels(M, "master labels")
    P = probability_mask(E16, lab.shape, p.prob_level)
    out = ring_correction(lab, P, p.erosion_radius, p.dilation_radius)
    out = first_component_filter(out, p.max_v, connectivity)
    out = support_filter(out, P, p.overlap_fraction, p.c_area)
    return in_label_dtype(out)
