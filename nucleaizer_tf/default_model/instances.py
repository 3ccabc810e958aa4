"""The instance step: class probabilities (background / interior / boundary) → a label image.

1. foreground = P(background) < `foreground_threshold`; seeds = connected regions of
   P(interior) ≥ `seed_threshold` (4-connected), seeds smaller than `min_seed` pixels dropped.
   (Defaults 0.5; the shipped model's manifest sets 0.45 and 0.7.)
2. Each connected foreground region is handled on its own:
   * one seed → the whole region is one nucleus (no watershed needed: the common case);
   * several seeds → a marker watershed of 1 − P(interior) inside the region's bounding box, masked
     to the region, splits it between its seeds (touching nuclei);
   * no seed → one nucleus if it has at least `min_area` pixels, else dropped.
3. Nuclei smaller than `min_area` pixels are removed; ids are made consecutive 1..n, and
   ids keep their order (regions in raster order of their first pixel, then the split ones).

Working region by region keeps the watershed's cost and memory proportional to the touching clusters,
not the image, and the result depends only on the probability map: a map stitched from tiles gives
exactly the labels of the same map computed in one piece.

Probabilities are taken as uint8 (0..255 = 0..1, as `DefaultModel` stores them), or float in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed


def _as_uint8(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.dtype == np.uint8:
        return prob
    return np.floor(np.clip(prob, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _level(p: float) -> int:
    """A probability threshold in the uint8 units of the map."""
    return int(np.floor(np.clip(p, 0.0, 1.0) * 255.0 + 0.5))


def labels_from_probabilities(prob: np.ndarray, *, min_area: int = 12, min_seed: int = 3,
                              seed_threshold: float = 0.5, foreground_threshold: float = 0.5) -> np.ndarray:
    """int32 label image from an H×W×3 (background, interior, boundary) probability map.

    A pixel is foreground where P(background) < `foreground_threshold` (or it is a seed pixel); seeds
    are where P(interior) >= `seed_threshold`. The steps are those of the module docstring.

    Parameters
    ----------
    prob : numpy.ndarray
        H×W×3 map, uint8 (0..255 = 0..1) or float in [0, 1]; ValueError for another shape.
    min_area : int
        Nuclei smaller than this many pixels are removed (12).
    min_seed : int
        Seeds smaller than this many pixels are dropped (3).
    seed_threshold : float
        P(interior) at and above which a pixel is a seed (0.5).
    foreground_threshold : float
        P(background) below which a pixel is foreground (0.5).

    Returns
    -------
    numpy.ndarray
        int32 H×W labels 1..n, 0 = background.

    Examples
    --------
    >>> prob = np.zeros((6, 10, 3), np.float32)
    >>> prob[..., 0] = 1                                  # background everywhere ...
    >>> prob[1:5, 1:9] = [0, 0, 1]                        # ... but one boundary-only region
    >>> prob[2:4, 2:4] = prob[2:4, 6:8] = [0, 1, 0]       # with two interior seeds
    >>> labels_from_probabilities(prob, min_area=4, min_seed=2)  # the watershed splits the region
    array([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 2, 2, 2, 2, 0],
           [0, 1, 1, 1, 1, 2, 2, 2, 2, 0],
           [0, 1, 1, 1, 1, 2, 2, 2, 2, 0],
           [0, 1, 1, 1, 1, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=int32)
    """
    prob = _as_uint8(prob)
    if prob.ndim != 3 or prob.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 probability map, got shape {prob.shape}")
    interior = prob[:, :, 1]
    seeds_mask = interior >= _level(seed_threshold)
    foreground = (prob[:, :, 0] < _level(foreground_threshold)) | seeds_mask
    regions, n_regions = ndimage.label(foreground)
    out = np.zeros(foreground.shape, np.int32)
    if n_regions == 0:
        return out
    seeds, n_seeds = ndimage.label(seeds_mask)
    # the region of each seed (a seed lies inside one region: seeds ⊂ foreground); small seeds dropped
    seed_region = np.zeros(n_seeds + 1, np.int64)
    at = seeds > 0
    seed_region[seeds[at]] = regions[at]
    seed_size = np.bincount(seeds[at], minlength=n_seeds + 1)
    valid = seed_size >= min_seed
    valid[0] = False
    if n_seeds and not valid[1:].all():
        seeds[~valid[seeds]] = 0
    seeds_per_region = np.bincount(seed_region[valid], minlength=n_regions + 1)
    region_size = np.bincount(regions.ravel(), minlength=n_regions + 1)

    # regions with one seed, or none but large enough: one nucleus each
    whole = (seeds_per_region <= 1) & (region_size >= min_area)
    whole[0] = False
    lut = np.zeros(n_regions + 1, np.int64)
    lut[whole] = np.arange(1, int(whole.sum()) + 1)
    out = lut[regions].astype(np.int32)
    next_id = int(whole.sum()) + 1

    split = np.flatnonzero(seeds_per_region >= 2)
    if split.size:
        elevation = 255 - interior
        boxes = ndimage.find_objects(regions)
        for r in split:
            box = boxes[r - 1]
            mask = regions[box] == r
            markers = np.where(mask, seeds[box], 0)
            parts = watershed(elevation[box], markers, mask=mask)
            ids, inverse = np.unique(parts, return_inverse=True)
            new = np.zeros(ids.size, np.int64)
            keep = ids > 0
            new[keep] = np.arange(next_id, next_id + int(keep.sum()))
            next_id += int(keep.sum())
            view = out[box]
            view[mask] = new[inverse.reshape(parts.shape)][mask]
    return finish_labels(out, min_area=min_area)


def finish_labels(labels: np.ndarray, *, min_area: int = 0) -> np.ndarray:
    """Drop objects under `min_area` pixels and renumber the rest 1..n keeping their order (int32).

    Parameters
    ----------
    labels : numpy.ndarray
        Non-negative integer label image.
    min_area : int
        Smallest object kept, in pixels (0 = keep all).

    Returns
    -------
    numpy.ndarray
        int32 labels of the shape of `labels`, ids consecutive 1..n in the order of the old ids.

    Examples
    --------
    >>> finish_labels(np.array([[0, 7, 7], [3, 0, 9], [3, 3, 0]]), min_area=2)  # 9 has one pixel
    array([[0, 2, 2],
           [1, 0, 0],
           [1, 1, 0]], dtype=int32)
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return np.zeros(labels.shape, np.int32)
    flat = labels.ravel()
    size = np.bincount(flat, minlength=n + 1)
    present = size > 0
    present[0] = False
    if min_area > 0:
        present &= size >= min_area
    lut = np.zeros(n + 1, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[labels]
