"""The nucleus-shape database behind synthetic masks (docs/method.md §6.2), and vectorised shape measurements.

A database is built from label images (the original's 1,047 DSB and other masks in
`shared/data/mask_db`, or any user folder): objects touching the image border are dropped (their
shape is cut), the remaining foreground is relabelled by 8-connectivity (touching nuclei become one
object, as `bwlabel` did) and every object is measured and its binary crop stored.

Measurements follow MATLAB `regionprops` definitions where they matter:
* MajorAxisLength / MinorAxisLength / Eccentricity from the second central moments with the 1/12
  pixel term (the ellipse with the same normalised second moments);
* Perimeter: the 4-neighbourhood border-pixel estimator with diagonal/corner weights (the same
  estimator as scikit-image's `perimeter`; MATLAB traces the boundary instead, so values differ by a
  few per cent, docs/method.md §8.4);
* Solidity = area / ConvexArea, the number of pixels whose centres lie in the convex hull of the
  object's pixel squares;
* Circularity = Area / Perimeter² (the original's definition, NOT 4πA/P²); ShapeRatio = Major/Minor.

All per-object statistics are computed for every label of an image at once with `np.bincount`;
only the convex hull loops over objects (OpenCV, ~10 µs each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components

FEATURES = ("area", "major", "minor", "eccentricity", "solidity", "perimeter", "circularity", "shape_ratio")
SHAPE_FEATURES = ("shape_ratio", "circularity", "eccentricity", "solidity")  # retrieval space (spec 6.5.3)

_KERNEL = np.array([[10, 2, 10], [2, 1, 2], [10, 2, 10]])
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + np.sqrt(2.0)) / 2.0


def _shift(a: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """out[y, x] = a[y + dy, x + dx] (outside -> fill)."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out


def perimeters(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Perimeter of every label 1..n (border-pixel estimator, see module doc), vectorised over labels.

    Touching objects with different ids are measured separately (each one's border stops at the other).

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image.
    n : int, optional
        Number of labels to measure (default max(labels)).

    Returns
    -------
    numpy.ndarray
        float64 [n], perimeter of label i at index i - 1 (0 for absent labels).

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1   # a 4×4 square
    >>> labels[7:10, 3:9] = 2  # a 3×6 rectangle
    >>> perimeters(labels)
    array([12., 14.])
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if n is None else n
    same = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same[dy, dx] = _shift(labels, dy, dx) == labels
    fg = labels > 0
    interior = fg & same[-1, 0] & same[1, 0] & same[0, -1] & same[0, 1]
    border = fg & ~interior
    code = np.zeros(labels.shape, np.int32)
    for (dy, dx), eq in same.items():
        code += _KERNEL[dy + 1, dx + 1] * (_shift(border, dy, dx, False) & eq)
    code = np.where(border, code, 0)
    weight = _PERIMETER_WEIGHTS[np.clip(code, 0, 49)]
    return np.bincount(labels[border].ravel(), weights=weight[border], minlength=n + 1)[1:n + 1]


def _lattice_points_in_hull(hull: np.ndarray, rows: int) -> int:
    """Number of integer points (x, y), 0 <= y < rows, strictly inside the convex polygon `hull` (m×2, x/y)."""
    x0, y0 = hull[:, 0], hull[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    y = np.arange(rows, dtype=np.float64)[:, None]
    eps = 1e-9
    spans = (y >= np.minimum(y0, y1) - eps) & (y <= np.maximum(y0, y1) + eps)
    dy = y1 - y0
    flat = np.abs(dy) < eps
    t = np.where(flat, 0.0, (y - y0) / np.where(flat, 1.0, dy))
    xa = np.where(flat, x0, x0 + t * (x1 - x0))
    xb = np.where(flat, x1, xa)
    lo = np.where(spans, np.minimum(xa, xb), np.inf).min(1)
    hi = np.where(spans, np.maximum(xa, xb), -np.inf).max(1)
    ok = np.isfinite(lo) & (y[:, 0] > y0.min() + eps) & (y[:, 0] < y0.max() - eps)
    return int(np.maximum(np.floor(hi[ok] - eps) - np.ceil(lo[ok] + eps) + 1, 0).sum())


def _convex_areas(labels: np.ndarray, n: int) -> np.ndarray:
    """`ConvexArea` of each object: the number of pixels whose centres lie strictly inside the convex hull
    of the object's pixel squares (MATLAB and scikit-image both hull the pixel corners; this matches
    scikit-image's `convex_hull_image`)."""
    fg = labels > 0
    border = fg & ~ndimage.binary_erosion(fg, structure=np.ones((3, 3), bool), border_value=0)
    rows, cols = np.nonzero(border)
    ids = labels[rows, cols]
    order = np.argsort(ids, kind="stable")
    rows, cols, ids = rows[order], cols[order], ids[order]
    starts = np.searchsorted(ids, np.arange(1, n + 2))
    out = np.zeros(n)
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], np.int32)
    for i in range(n):
        a, b = starts[i], starts[i + 1]
        if a == b:
            continue
        r0, c0 = rows[a:b].min(), cols[a:b].min()
        centres = np.stack([2 * (cols[a:b] - c0), 2 * (rows[a:b] - r0)], 1).astype(np.int32)
        pts = (centres[:, None, :] + corners[None]).reshape(-1, 2)
        hull = cv2.convexHull(pts)[:, 0, :].astype(np.float64) / 2.0
        out[i] = _lattice_points_in_hull(hull, int(rows[a:b].max() - r0 + 1))
    return out


def measure_objects(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Shape features (keys `FEATURES`) of every label 1..max(labels); absent labels get area 0, NaN shape.

    Definitions as in the module docstring (MATLAB `regionprops` where they matter).

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image (ValueError otherwise).

    Returns
    -------
    dict of str to numpy.ndarray
        One float64 array of length max(labels) per name in `FEATURES` (empty arrays without labels).

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> labels[7:10, 3:9] = 2
    >>> measured = measure_objects(labels)
    >>> measured["area"], measured["shape_ratio"], measured["solidity"]
    (array([16., 18.]), array([1., 2.]), array([1., 1.]))
    >>> measured["circularity"].round(4)  # Area / Perimeter²
    array([0.1111, 0.0918])
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return {k: np.zeros(0) for k in FEATURES}
    flat = labels.ravel()
    rr, cc = np.indices(labels.shape)
    area = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(area > 0, area, np.nan)
        my = np.bincount(flat, rr.ravel(), n + 1)[1:] / safe
        mx = np.bincount(flat, cc.ravel(), n + 1)[1:] / safe
        uyy = np.bincount(flat, rr.ravel() ** 2.0, n + 1)[1:] / safe - my ** 2 + 1.0 / 12.0
        uxx = np.bincount(flat, cc.ravel() ** 2.0, n + 1)[1:] / safe - mx ** 2 + 1.0 / 12.0
        uxy = np.bincount(flat, (rr * cc).ravel().astype(np.float64), n + 1)[1:] / safe - mx * my
        common = np.sqrt((uxx - uyy) ** 2 + 4.0 * uxy ** 2)
        major = 2.0 * np.sqrt(2.0) * np.sqrt(np.maximum(uxx + uyy + common, 0.0))
        minor = 2.0 * np.sqrt(2.0) * np.sqrt(np.maximum(uxx + uyy - common, 0.0))
        ecc = np.sqrt(np.maximum(1.0 - (minor / major) ** 2, 0.0))
        perim = perimeters(labels, n)
        convex = _convex_areas(labels, n)
        solidity = area / np.where(convex > 0, convex, np.nan)
        circularity = area / np.where(perim > 0, perim ** 2, np.nan)
        shape_ratio = major / np.where(minor > 0, minor, np.nan)
    return {"area": area, "major": major, "minor": minor, "eccentricity": ecc, "solidity": solidity,
            "perimeter": perim, "circularity": circularity, "shape_ratio": shape_ratio}


def clear_border(labels: np.ndarray) -> np.ndarray:
    """Zero every label that touches one of the four image borders (`clearBorderObjects`).

    Parameters
    ----------
    labels : numpy.ndarray
        2-D label image.

    Returns
    -------
    numpy.ndarray
        A new label image of the same dtype.

    Examples
    --------
    >>> labels = np.zeros((6, 6), np.int32)
    >>> labels[0:2, 0:2] = 1
    >>> labels[3:5, 3:5] = 2
    >>> np.unique(clear_border(labels))
    array([0, 2], dtype=int32)
    """
    labels = np.asarray(labels)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    return np.where(np.isin(labels, edge), 0, labels) if edge.size else labels.copy()


@dataclass
class MaskDB:
    """Measured nucleus shapes with their binary crops.

    `features`: n×len(FEATURES) float array (columns in `FEATURES` order); crops are stored flattened
    in one boolean array with per-object offsets and shapes; `source` is the index of the label image
    each object came from.

    Attributes
    ----------
    features : numpy.ndarray
        n×len(FEATURES) float64 measurements (`measure_objects`).
    shapes : numpy.ndarray
        n×2 int (rows, columns) of each crop.
    offsets : numpy.ndarray
        n+1 int: crop i is pixels[offsets[i]:offsets[i + 1]].
    pixels : numpy.ndarray
        Flat bool pixels of all crops, row-major.
    source : numpy.ndarray
        n int index of the label image of each object.

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> labels[7:10, 3:9] = 2
    >>> db = build_mask_db([labels, labels])
    >>> len(db), db.source, db.column("area")
    (4, array([0, 0, 1, 1]), array([16., 18., 16., 18.]))
    >>> db.crop(1).shape, db.shape_features().shape
    ((3, 6), (4, 4))
    >>> MaskDB.from_arrays(db.to_arrays()).shapes.tolist() == db.shapes.tolist()
    True
    """

    features: np.ndarray
    shapes: np.ndarray  # n×2 int
    offsets: np.ndarray  # n+1 int
    pixels: np.ndarray  # flat bool
    source: np.ndarray  # n int

    def __len__(self) -> int:
        return len(self.features)

    def column(self, name: str) -> np.ndarray:
        """The n values of feature `name` (one of `FEATURES`)."""
        return self.features[:, FEATURES.index(name)]

    def shape_features(self) -> np.ndarray:
        """n×4 [ShapeRatio, Circularity, Eccentricity, Solidity] (the retrieval space)."""
        return self.features[:, [FEATURES.index(f) for f in SHAPE_FEATURES]]

    def crop(self, i: int) -> np.ndarray:
        """The bool crop of object `i` (a view into `pixels`)."""
        h, w = self.shapes[i]
        return self.pixels[self.offsets[i]:self.offsets[i + 1]].reshape(h, w)

    def subset(self, indices) -> MaskDB:
        """A database of the objects at `indices` (in that order).

        Examples
        --------
        >>> small = db.subset(np.arange(0, len(db), 10))  # every 10th object  # doctest: +SKIP
        """
        indices = np.asarray(indices, np.int64)
        crops = [self.crop(int(i)).ravel() for i in indices]
        shapes = self.shapes[indices]
        offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.int64)
        pixels = np.concatenate(crops) if crops else np.zeros(0, bool)
        return MaskDB(self.features[indices], shapes, offsets, pixels, self.source[indices])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for `np.savez` (pixels bit-packed)."""
        return {"features": self.features, "shapes": self.shapes, "offsets": self.offsets,
                "pixels": np.packbits(self.pixels), "n_pixels": np.array([self.pixels.size]), "source": self.source,
                "feature_names": np.array(FEATURES)}

    @classmethod
    def from_arrays(cls, arrays) -> MaskDB:
        """Inverse of `to_arrays` (e.g. from `np.load` of an `.npz`); ValueError for other feature names."""
        names = tuple(str(x) for x in arrays["feature_names"])
        if names != FEATURES:
            raise ValueError(f"mask database has features {names}, expected {FEATURES}")
        n_pixels = int(arrays["n_pixels"][0])
        pixels = np.unpackbits(arrays["pixels"], count=n_pixels).astype(bool)
        return cls(np.asarray(arrays["features"], np.float64), np.asarray(arrays["shapes"], np.int64),
                   np.asarray(arrays["offsets"], np.int64), pixels, np.asarray(arrays["source"], np.int64))


def objects_of(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(features n×F, binary crops) of the DB objects of one label image (docs/method.md §6.2 preprocessing).

    Objects touching the border are dropped, the rest of the foreground is relabelled by 8-connectivity
    (touching nuclei become one object) and measured.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D label image.

    Returns
    -------
    features : numpy.ndarray
        n×len(FEATURES) float64.
    crops : list of numpy.ndarray
        Bool crop of each object (its bounding box).

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> labels[7:10, 3:9] = 2
    >>> labels[0, 8:11] = 3  # touches the border: dropped
    >>> features, crops = objects_of(labels)
    >>> features.shape, [c.shape for c in crops]
    ((2, 8), [(4, 4), (3, 6)])
    """
    kept = clear_border(labels) > 0
    comp = connected_components(kept, connectivity=2)
    measured = measure_objects(comp)
    feats = np.stack([measured[k] for k in FEATURES], axis=1) if len(measured["area"]) else np.zeros((0, len(FEATURES)))
    crops = [comp[sl] == i + 1 for i, sl in enumerate(ndimage.find_objects(comp))]
    return feats, crops


def build_mask_db(label_images: Iterable[np.ndarray], progress: Callable | None = None) -> MaskDB:
    """Measure and crop every object of every label image (see module doc).

    Parameters
    ----------
    label_images : iterable of numpy.ndarray
        2-D label images.
    progress : callable, optional
        Called without arguments after each image.

    Returns
    -------
    MaskDB
        All objects, image by image; ValueError when there is none.

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> len(build_mask_db([labels, labels]))
    2
    """
    all_feats, all_crops, sources = [], [], []
    for index, labels in enumerate(label_images):
        feats, crops = objects_of(np.asarray(labels))
        all_feats.append(feats)
        all_crops += crops
        sources.append(np.full(len(crops), index))
        if progress is not None:
            progress()
    if not all_crops:
        raise ValueError("the mask database holds no object (every object touched an image border?)")
    features = np.concatenate(all_feats)
    shapes = np.array([c.shape for c in all_crops], np.int64)
    offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    pixels = np.concatenate([c.ravel() for c in all_crops])
    return MaskDB(features, shapes, offsets, pixels, np.concatenate(sources))
