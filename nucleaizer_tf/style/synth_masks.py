"""Synthetic label images for one style cluster (docs/method.md §6.5, `generateMasks` + `tetrisImage`).

The pipeline per cluster:

1. `cluster_statistics`: measure the cluster's (presegmented) mask tiles: object areas (objects under
   35 px² dropped), the four shape features, each object's closest contour-to-contour distance to a
   neighbour, and per tile the count 512²/mean(area).
2. `build_mask_array`: fetch the 750 database nuclei nearest (Euclidean, raw 4-feature space) to any
   of the cluster's objects, drop those with holes or several 4-connected parts, resize each to a
   random target area ~ Normal(mean, min(0.2·mean, std)); then make random star-convex "SIMCEP"
   shapes for the remaining 2·750 − fetched slots (accepted when circularity, eccentricity and
   solidity are within ±10 % of a random cluster object). Fetched masks take slots 0, 2, 4, ...
3. `synthesize`: for each output image keep every slot with probability 0.3 and place the masks
   with `tetris_image` (≥ 25 nuclei, 5 % deliberately touching, gaps up to mean + 2·std of the
   cluster's neighbour distances).

Quirks (docs/method.md §8.2), both faithful by default:
* Q8 `linear_area_ratio=True`: the resize factor is the AREA ratio A*/A applied as a LINEAR scale,
  so a fetched nucleus ends with area ≈ A*²/A; False uses sqrt(A*/A) (area ≈ A*).
* Q9 `unstretched_simcep=True`: a SIMCEP shape is accepted on its stretched, rotated version but the
  un-stretched, un-rotated shape is used; False uses the shape that was accepted.

Placement ("tetris"), re-derived from the spec's description: masks are placed in order on a square
canvas either at a random free position (up to 49 tries) or dropped onto per-column piles that grow
from the top; the canvas is turned by 90° after every third mask (piles grow from all four sides) and
when a mask does not fit (up to 3 turns, then the canvas is full). To make the touching ratio the
controlled quantity it is in the original's intent, every placement except the deliberate
"touching" ones keeps at least one background pixel (8-connectivity) to all earlier nuclei; a
touching placement is lowered until it rests directly on the pile. Nuclei never overlap.
Labels are 1..n in placement order.

Random numbers come from one `numpy.random.Generator`: the same seed gives the same masks
(MATLAB's stream, seed 19950927, cannot be reproduced anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

from nucleaizer_tf.style.maskdb import SHAPE_FEATURES, MaskDB, measure_objects

SEED = 19950927
N_DB_MASKS = 750
MIN_AREA = 35
IMAGE_SIZE = (512, 512)
MIN_CELLS = 25
TOUCH_RATIO = 0.05
KEEP_PROBABILITY = 0.3
BLOCKS = (10, 30, 30)
TETRIS_RATIOS = (0.0, 0.75, 0.75)
RANDOM_TRIES = 49
ROTATE_EVERY = 3
SIMCEP_TOLERANCE = 0.10
SIMCEP_MAX_REJECTIONS = 100
LARGE_RADIUS = 40.0  # sqrt(mean area / π) above this doubles the number of images


# --------------------------------------------------------------------------- cluster statistics


def _contour_points(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points k×2 (row, col), label of each): the first and last pixel of every row and every column of
    every object (the original's cheap contour)."""
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols].astype(np.int64)
    pts, owner = [], []
    for major, minor in ((rows, cols), (cols, rows)):
        key = ids * (labels.shape[0] + labels.shape[1] + 1) + major
        order = np.lexsort((minor, key))
        k, m = key[order], minor[order]
        first = np.r_[True, k[1:] != k[:-1]]
        last = np.r_[k[1:] != k[:-1], True]
        for sel in (first, last):
            maj = major[order][sel]
            point = np.stack([maj, m[sel]], 1) if major is rows else np.stack([m[sel], maj], 1)
            pts.append(point)
            owner.append(ids[order][sel])
    points, owners = np.concatenate(pts), np.concatenate(owner)
    unique = np.unique(np.concatenate([points, owners[:, None]], 1), axis=0)
    return unique[:, :2].astype(np.float64), unique[:, 2]


def edge_distances(labels: np.ndarray) -> dict[int, float]:
    """Closest contour-to-contour Euclidean distance of each object to any other object (inf if alone).

    The contour is the original's cheap one: the first and last pixel of every row and column of an object.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D label image.

    Returns
    -------
    dict of int to float
        Label → distance in pixels (empty without objects).

    Examples
    --------
    >>> labels = np.zeros((12, 12), np.int32)
    >>> labels[2:6, 2:6] = 1
    >>> labels[2:6, 8:11] = 2
    >>> labels[8:11, 2:5] = 3
    >>> edge_distances(labels)
    {1: 3.0, 2: 3.0, 3: 3.0}
    >>> edge_distances(labels == 1)
    {1: inf}
    """
    labels = np.asarray(labels)
    present = np.unique(labels[labels > 0])
    if present.size == 0:
        return {}
    if present.size == 1:
        return {int(present[0]): np.inf}
    points, owner = _contour_points(labels)
    tree = cKDTree(points)
    out = {}
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], present)
    ends = np.searchsorted(owner[order], present, side="right")
    for lab, a, b in zip(present, starts, ends):
        own = order[a:b]
        k = min(len(own) + 1, len(points))
        dist, idx = tree.query(points[own], k=k)
        other = owner[idx] != lab
        out[int(lab)] = float(np.where(other, dist, np.inf).min())
    return out


@dataclass(frozen=True)
class ClusterStats:
    """What mask synthesis needs to know about one cluster's nuclei.

    Attributes
    ----------
    areas : numpy.ndarray
        Areas of all kept objects (area >= MIN_AREA).
    shape : numpy.ndarray
        n×4 SHAPE_FEATURES of the same objects.
    edge_distance : numpy.ndarray
        Their closest-neighbour contour distances (inf when alone).
    counts : numpy.ndarray
        Per tile: 512² / mean(area).
    densities : numpy.ndarray
        Per tile: kept objects per pixel.

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> stats = cluster_statistics(tiles)
    >>> stats.mean_area, round(stats.median_diameter, 3), round(stats.area_sigma, 3), stats.gap(cap=100)
    (110.0, 11.835, 8.528, 18)
    """

    areas: np.ndarray  # all kept objects (area >= MIN_AREA)
    shape: np.ndarray  # n×4 SHAPE_FEATURES of the same objects
    edge_distance: np.ndarray  # their closest-neighbour contour distances (inf when alone)
    counts: np.ndarray  # per tile: 512² / mean(area)
    densities: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per tile: kept objects per pixel

    @property
    def median_diameter(self) -> float:
        """Median equivalent diameter sqrt(4·area/π) of the kept objects."""
        return float(np.median(np.sqrt(4.0 * self.areas / np.pi)))

    @property
    def density(self) -> float:
        """Kept objects per pixel over all tiles that had any (nuclei per area)."""
        return float(self.densities.mean()) if self.densities.size else float("nan")

    @property
    def mean_area(self) -> float:
        """Mean area of the kept objects."""
        return float(self.areas.mean())

    @property
    def area_sigma(self) -> float:
        """min(0.2·mean, std): the spread of target areas."""
        std = float(self.areas.std(ddof=1)) if self.areas.size > 1 else 0.0
        return min(0.2 * self.mean_area, std)

    def gap(self, cap: int) -> int:
        """round(mean + 2·std) of the finite neighbour distances, in [1, cap]."""
        finite = self.edge_distance[np.isfinite(self.edge_distance)]
        if finite.size == 0:
            return max(1, min(10, cap))
        std = finite.std(ddof=1) if finite.size > 1 else 0.0
        return int(np.clip(np.floor(finite.mean() + 2 * std + 0.5), 1, cap))

    def n_cells(self, rng: np.random.Generator, minimum: int = MIN_CELLS) -> int:
        """The original's count: Normal(mean, std) of 512²/mean(area) per tile, i.e. as many nuclei as
        would cover the whole canvas, at least `minimum`."""
        std = float(self.counts.std(ddof=1)) if self.counts.size > 1 else 10.0
        return max(minimum, int(np.floor(rng.normal(self.counts.mean(), std) + 0.5)))

    def n_cells_matched(self, rng: np.random.Generator, canvas_pixels: int) -> int:
        """A count with the cluster's own density: a tile's nuclei per pixel (drawn from the tiles)
        times the canvas area, at least 1."""
        density = float(rng.choice(self.densities)) if self.densities.size else 0.0
        return max(1, int(np.floor(density * canvas_pixels + 0.5)))

    def target_areas(self, rng: np.random.Generator, n: int, *, matched: bool = False) -> np.ndarray:
        """`n` nucleus areas: the original's Normal(mean, min(0.2·mean, std)), or with `matched` a
        resample of the cluster's own areas (±5 %), so the size distribution and its median follow the
        presegmentation rather than only its mean."""
        if matched:
            return rng.choice(self.areas, size=n).astype(np.float64) * rng.uniform(0.95, 1.05, size=n)
        return rng.normal(self.mean_area, self.area_sigma, size=n)


def cluster_statistics(label_tiles: Sequence[np.ndarray], min_area: int = MIN_AREA,
                       image_size: tuple[int, int] = IMAGE_SIZE) -> ClusterStats:
    """Measure a cluster's label tiles (docs/method.md §6.5.2). Raises ValueError when no tile has an object.

    Objects under `min_area` pixels are dropped; tiles without a kept object do not count.

    Parameters
    ----------
    label_tiles : sequence of numpy.ndarray
        The cluster's (presegmented) label tiles.
    min_area : int
        Smallest object kept (`MIN_AREA`, 35 px²).
    image_size : tuple of int
        Size of the synthetic images, for the per-tile count (512, 512).

    Returns
    -------
    ClusterStats

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> stats = cluster_statistics(tiles)
    >>> stats.areas.shape, stats.shape.shape, stats.counts.round(1)
    ((12,), (12, 4), array([2621.4, 2383.1, 2184.5]))
    """
    areas, shapes, dists, counts, densities = [], [], [], [], []
    for tile in label_tiles:
        tile = np.asarray(tile).astype(np.int64)
        m = measure_objects(tile)
        keep = np.flatnonzero(m["area"] >= min_area)
        if keep.size == 0:
            continue
        densities.append(keep.size / tile.size)
        kept = np.where(np.isin(tile, keep + 1), tile, 0)
        ed = edge_distances(kept)
        areas.append(m["area"][keep])
        shapes.append(np.stack([m[f][keep] for f in SHAPE_FEATURES], 1))
        dists.append(np.array([ed[int(i) + 1] for i in keep]))
        counts.append(image_size[0] * image_size[1] / m["area"][keep].mean())
    if not areas:
        raise ValueError(f"no nucleus of at least {min_area} px² in the cluster's masks")
    return ClusterStats(np.concatenate(areas), np.concatenate(shapes), np.concatenate(dists), np.array(counts),
                        np.array(densities))


# --------------------------------------------------------------------------- masks from the database


def fetch_close(db: MaskDB, stats: ClusterStats, n: int = N_DB_MASKS) -> np.ndarray:
    """Indices of the `n` DB objects nearest (raw 4-feature Euclidean) to any cluster object, nearest first.

    Objects with a non-finite feature are skipped on both sides.

    Parameters
    ----------
    db : MaskDB
        The nucleus-shape database.
    stats : ClusterStats
        The cluster's measurements.
    n : int
        How many (`N_DB_MASKS`, 750).

    Returns
    -------
    numpy.ndarray
        int64 indices into `db`.

    Examples
    --------
    >>> from nucleaizer_tf.style.maskdb import build_mask_db
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> fetch_close(build_mask_db(tiles), cluster_statistics(tiles), n=5)
    array([0, 1, 2, 3, 4])
    """
    target = stats.shape[np.all(np.isfinite(stats.shape), axis=1)]
    feats = db.shape_features()
    valid = np.flatnonzero(np.all(np.isfinite(feats), axis=1))
    if target.size == 0 or valid.size == 0:
        return np.zeros(0, np.int64)
    dist, _ = cKDTree(target).query(feats[valid], k=1)
    order = np.argsort(dist, kind="stable")[:n]
    return valid[order]


def is_simple(mask: np.ndarray) -> tuple[bool, np.ndarray]:
    """`clearHoles`: (keep?, hole-filled mask): kept when, after filling holes, it is one 4-connected piece
    (Euler number 1 under both connectivities).

    Parameters
    ----------
    mask : numpy.ndarray
        2-D binary mask.

    Returns
    -------
    keep : bool
        One 4-connected piece after hole filling.
    filled : numpy.ndarray
        The hole-filled bool mask.

    Examples
    --------
    >>> ring = np.ones((5, 5), bool)
    >>> ring[2, 2] = False
    >>> keep, filled = is_simple(ring)
    >>> bool(keep), bool(filled.all())
    (True, True)
    >>> bool(is_simple(np.eye(3, dtype=bool))[0])  # diagonal pixels: three 4-connected pieces
    False
    """
    filled = ndimage.binary_fill_holes(mask)
    _, n4 = ndimage.label(filled)
    return n4 == 1, filled


def _tight(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return mask[:0, :0]
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def resize_nearest(mask: np.ndarray, factor: float) -> np.ndarray:
    """Nearest-neighbour resize of a binary mask by `factor` (output ceil(factor·size), pixel-centre mapping).

    Parameters
    ----------
    mask : numpy.ndarray
        2-D binary mask.
    factor : float
        Linear resize factor.

    Returns
    -------
    numpy.ndarray
        bool mask cut to its tight bounding box.

    Examples
    --------
    >>> resize_nearest(np.ones((4, 6), bool), 0.5).shape, resize_nearest(np.ones((3, 3), bool), 2.0).shape
    ((2, 3), (6, 6))
    """
    h, w = mask.shape
    out_h, out_w = max(1, int(np.ceil(h * factor - 1e-9))), max(1, int(np.ceil(w * factor - 1e-9)))
    small = cv2.resize(mask.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
    return _tight(small > 0)


def resize_to_areas(masks: Sequence[np.ndarray], stats: ClusterStats, rng: np.random.Generator, *,
                    linear_area_ratio: bool = True, matched: bool = False) -> list[np.ndarray]:
    """`resizeMasks`: target area A* ~ Normal(mean, min(0.2·mean, std)) per mask (`matched`: resampled
    from the cluster's areas); factor A*/A (Q8) or sqrt.

    Parameters
    ----------
    masks : sequence of numpy.ndarray
        Binary masks (non-empty).
    stats : ClusterStats
        Gives the target areas.
    rng : numpy.random.Generator
        The random stream.
    linear_area_ratio : bool
        Q8: True (faithful) applies A*/A as a linear factor, False sqrt(A*/A).
    matched : bool
        Draw the targets from the cluster's own areas.

    Returns
    -------
    list of numpy.ndarray
        The resized bool masks; masks that come out empty are dropped.

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> resized = resize_to_areas([np.ones((10, 10), bool)], cluster_statistics(tiles), np.random.default_rng(0))
    >>> resized[0].shape  # Q8: each side scaled by A*/A (A* near 110 px²), not by sqrt(A*/A)
    (12, 12)
    """
    out = []
    targets = stats.target_areas(rng, len(masks), matched=matched)
    for mask, target in zip(masks, targets):
        own = float(mask.sum())
        ratio = max(float(target), 1.0) / own
        resized = resize_nearest(mask, ratio if linear_area_ratio else np.sqrt(ratio))
        if resized.any():
            out.append(resized)
    return out


# --------------------------------------------------------------------------- SIMCEP-like random shapes

_N_CONTROL = 8
_N_OUTLINE = 64


def _spline_operator() -> np.ndarray:
    """Matrix mapping 8 control values (closed curve) to 64 samples of their periodic cubic spline."""
    t = np.arange(_N_CONTROL + 1) / _N_CONTROL
    s = np.arange(_N_OUTLINE) / _N_OUTLINE
    eye = np.eye(_N_CONTROL)
    cols = [CubicSpline(t, np.r_[eye[i], eye[i][:1]], bc_type="periodic")(s) for i in range(_N_CONTROL)]
    return np.stack(cols, 1)


_SPLINE = _spline_operator()


def random_outline(radius: float, rng: np.random.Generator, *, shape: tuple[float, float] = (0.1, 0.1)) -> np.ndarray:
    """Closed outline (64×2, x/y around the origin) of a random blob of mean radius `radius`.

    8 control points on a circle, their angles jittered by shape[0]·(2π/8)·N(0,1) and radii by
    shape[1]·N(0,1) relative, times a random lobed modulation 1 + a·cos(mθ + φ) (m ∈ {2, 3},
    a ~ U(0, 0.1)); interpolated by a closed cubic spline.

    Parameters
    ----------
    radius : float
        Mean radius in pixels.
    rng : numpy.random.Generator
        The random stream.
    shape : tuple of float
        Relative jitter of (angles, radii).

    Returns
    -------
    numpy.ndarray
        float64 [64, 2] points (x, y).

    Examples
    --------
    >>> outline = random_outline(6.0, np.random.default_rng(0))
    >>> outline.shape, float(np.abs(outline).max().round(2))
    ((64, 2), 6.2)
    """
    base = 2 * np.pi * np.arange(_N_CONTROL) / _N_CONTROL
    theta = base + shape[0] * (2 * np.pi / _N_CONTROL) * rng.normal(size=_N_CONTROL)
    lobes = 1 + rng.uniform(0, 0.1) * np.cos(rng.integers(2, 4) * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(1 + shape[1] * rng.normal(size=_N_CONTROL), 0.5, 1.5) * lobes
    ctrl = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    return _SPLINE @ ctrl


def rasterise(outline: np.ndarray) -> np.ndarray:
    """Filled binary mask (tight box) of a closed outline in pixel units.

    Parameters
    ----------
    outline : numpy.ndarray
        [m, 2] polygon points (x, y), e.g. from `random_outline`.

    Returns
    -------
    numpy.ndarray
        bool mask cut to its tight bounding box.

    Examples
    --------
    >>> rasterise(np.array([[0, 0], [4, 0], [4, 3], [0, 3]], float)).shape  # x 0..4, y 0..3
    (4, 5)
    """
    pts = outline - outline.min(0) + 1.0
    w, h = (np.ceil(pts.max(0)) + 2).astype(int)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return _tight(canvas > 0)


def _stretch_rotate(outline: np.ndarray, ratio: float, angle_deg: float) -> np.ndarray:
    s = np.sqrt(max(ratio, 1.0))
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (outline * np.array([s, 1.0])) @ rot.T


def _shape_features_many(masks: Sequence[np.ndarray]) -> np.ndarray:
    """[circularity, eccentricity, solidity] of each binary mask, measured in one vectorised pass
    (the masks are laid side by side on one label strip, 2 px apart)."""
    height = max(m.shape[0] for m in masks)
    width = sum(m.shape[1] + 2 for m in masks)
    strip = np.zeros((height, width), np.int64)
    x = 0
    for i, m in enumerate(masks):
        strip[: m.shape[0], x:x + m.shape[1]][m] = i + 1
        x += m.shape[1] + 2
    got = measure_objects(strip)
    n = len(masks)
    feats = np.full((n, 3), np.nan)
    present = min(n, len(got["area"]))
    feats[:present] = np.stack([got["circularity"], got["eccentricity"], got["solidity"]], 1)[:present]
    return feats


def simcep_shapes(count: int, stats: ClusterStats, rng: np.random.Generator, *, unstretched: bool = True,
                  tolerance: float = SIMCEP_TOLERANCE, max_rejections: int = SIMCEP_MAX_REJECTIONS,
                  batch: int = 64, matched: bool = False) -> list[np.ndarray]:
    """Up to `count` random shapes matching random cluster objects (docs/method.md §6.5.6; fewer after
    `max_rejections` consecutive rejections). `unstretched` = docs/method.md, quirk Q9 (see module doc).

    Candidates are drawn and measured `batch` at a time, then accepted or rejected in order. A candidate
    is accepted when its circularity, eccentricity and solidity are within ±`tolerance` of a random
    cluster object's, after stretching by that object's shape ratio and a random rotation.

    Parameters
    ----------
    count : int
        Shapes wanted.
    stats : ClusterStats
        The cluster's measurements.
    rng : numpy.random.Generator
        The random stream.
    unstretched : bool
        Q9: True (faithful) returns the un-stretched, un-rotated shape, False the accepted one.
    tolerance : float
        Relative tolerance (`SIMCEP_TOLERANCE`, 0.10).
    max_rejections : int
        Consecutive rejections after which it gives up (`SIMCEP_MAX_REJECTIONS`, 100).
    batch : int
        Candidates drawn per round.
    matched : bool
        Draw the areas from the cluster's own areas.

    Returns
    -------
    list of numpy.ndarray
        At most `count` bool masks.

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> shapes = simcep_shapes(5, cluster_statistics(tiles), np.random.default_rng(0))
    >>> len(shapes), shapes[0].dtype
    (5, dtype('bool'))
    """
    ok = np.all(np.isfinite(stats.shape), axis=1)
    targets = stats.shape[ok]
    if targets.size == 0 or count <= 0:
        return []
    ratio_i = SHAPE_FEATURES.index("shape_ratio")
    check = [SHAPE_FEATURES.index(f) for f in ("circularity", "eccentricity", "solidity")]
    out, rejections = [], 0
    while len(out) < count and rejections < max_rejections:
        picks = targets[rng.integers(len(targets), size=batch)]
        areas = np.maximum(stats.target_areas(rng, batch, matched=matched), 4.0)
        angles = rng.integers(0, 360, size=batch)
        outlines = [random_outline(np.sqrt(a / np.pi), rng) for a in areas]
        candidates = [rasterise(_stretch_rotate(o, t[ratio_i], float(g))) for o, t, g in zip(outlines, picks, angles)]
        got = _shape_features_many(candidates)
        want = picks[:, check]
        with np.errstate(invalid="ignore"):
            accept = np.all(np.abs(got - want) <= tolerance * np.abs(want), axis=1)
        accept &= np.array([c.sum() >= 4 for c in candidates])
        for j in range(batch):
            if accept[j]:
                out.append(rasterise(outlines[j]) if unstretched else candidates[j])
                rejections = 0
                if len(out) == count:
                    break
            else:
                rejections += 1
                if rejections >= max_rejections:
                    break
    return out


@dataclass(frozen=True)
class SynthesisOptions:
    """Settings of the mask synthesis of one cluster (the original's values by default).

    Attributes
    ----------
    n_db_masks : int
        Database nuclei fetched (`N_DB_MASKS`, 750); the candidate list has 2·n_db_masks slots.
    min_area : int
        Smallest cluster object measured (`MIN_AREA`, 35 px²).
    image_size : tuple of int
        Size of the synthetic label images (512, 512).
    min_cells : int
        Least nuclei per image (`MIN_CELLS`, 25).
    touch_ratio : float
        Share of deliberately touching placements (0.05).
    keep_probability : float
        Probability that a candidate takes part in one image (0.3).
    linear_area_ratio : bool
        Q8 faithful (True).
    unstretched_simcep : bool
        Q9 faithful (True).
    n_cells : int or None
        Fixed number of nuclei per image (None = drawn from the cluster).
    gap : int or None
        Fixed maximal gap (None = mean + 2·std of the cluster's distances).
    match_cluster : bool
        False = the original: areas ~ Normal(mean, ...) and as many nuclei as cover the canvas (dense
        fields whatever the style's density). True: areas resampled from the cluster and its own nuclei
        per area.

    Examples
    --------
    >>> options = SynthesisOptions(image_size=(256, 256), match_cluster=True)
    >>> options.n_db_masks, options.keep_probability
    (750, 0.3)
    """

    n_db_masks: int = N_DB_MASKS
    min_area: int = MIN_AREA
    image_size: tuple[int, int] = IMAGE_SIZE
    min_cells: int = MIN_CELLS
    touch_ratio: float = TOUCH_RATIO
    keep_probability: float = KEEP_PROBABILITY
    linear_area_ratio: bool = True  # Q8 faithful
    unstretched_simcep: bool = True  # Q9 faithful
    n_cells: int | None = None  # fixed number of nuclei per image (None = drawn from the cluster)
    gap: int | None = None  # fixed maximal gap (None = mean + 2·std of the cluster's distances)
    # False = the original: areas ~ Normal(mean, ...) and as many nuclei as cover the canvas (dense fields
    # whatever the style's density). True: areas resampled from the cluster and its own nuclei per area.
    match_cluster: bool = False


def build_mask_array(db: MaskDB | None, stats: ClusterStats, rng: np.random.Generator,
                     options: SynthesisOptions = SynthesisOptions()) -> list[np.ndarray]:
    """The ordered candidate list (`maskArray`, 2·n_db_masks slots): DB nuclei at even slots, SIMCEP rest.

    DB nuclei are the simple ones (`is_simple`) among the `fetch_close` results, hole-filled and resized
    (`resize_to_areas`); unfilled slots are dropped.

    Parameters
    ----------
    db : MaskDB or None
        The nucleus-shape database (None: SIMCEP shapes only).
    stats : ClusterStats
        The cluster's measurements.
    rng : numpy.random.Generator
        The random stream.
    options : SynthesisOptions
        Gives n_db_masks, linear_area_ratio, unstretched_simcep and match_cluster.

    Returns
    -------
    list of numpy.ndarray
        bool masks in slot order.

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> stats = cluster_statistics(tiles)
    >>> masks = build_mask_array(None, stats, np.random.default_rng(0), SynthesisOptions(n_db_masks=4))
    >>> len(masks)
    8
    """
    fetched = []
    if db is not None and len(db) and options.n_db_masks > 0:
        for i in fetch_close(db, stats, options.n_db_masks):
            keep, filled = is_simple(db.crop(int(i)))
            if keep:
                fetched.append(filled)
        fetched = resize_to_areas(fetched, stats, rng, linear_area_ratio=options.linear_area_ratio,
                                  matched=options.match_cluster)
    total = 2 * max(options.n_db_masks, 1)
    simcep = simcep_shapes(total - len(fetched), stats, rng, unstretched=options.unstretched_simcep,
                           matched=options.match_cluster)
    slots: list[np.ndarray | None] = [None] * total
    for j, m in enumerate(fetched[: total // 2]):
        slots[2 * j] = m
    it = iter(simcep)
    for j in range(total):
        if slots[j] is None:
            slots[j] = next(it, None)
    return [m for m in slots if m is not None]


# --------------------------------------------------------------------------- tetris placement


@dataclass
class Placement:
    """One synthetic label image and how its nuclei were placed.

    Attributes
    ----------
    labels : numpy.ndarray
        uint16 H×W, 1..n in placement order.
    touching : list of bool
        Per placed nucleus: rests on an earlier one.
    modes : list of str
        Per placed nucleus: "random" or "tetris".
    full : bool
        Stopped because nothing more fitted.

    Examples
    --------
    >>> placement = tetris_image([np.ones((20, 20), bool)] * 10, 6, np.random.default_rng(0), size=(32, 32))
    >>> int(placement.labels.max()), placement.full  # one 20×20 nucleus fills a 32×32 canvas
    (1, True)
    """

    labels: np.ndarray  # uint16 H×W, 1..n in placement order
    touching: list[bool] = field(default_factory=list)  # per placed nucleus: rests on an earlier one
    modes: list[str] = field(default_factory=list)  # "random" or "tetris"
    full: bool = False  # stopped because nothing more fitted


def _modes(n: int, blocks=BLOCKS, ratios=TETRIS_RATIOS) -> list[str]:
    out, b = [], 0
    while len(out) < n:
        size, ratio = blocks[b % len(blocks)], ratios[b % len(ratios)]
        n_random = max(0, int(np.ceil((1 - ratio) * size)) - 1)
        out += ["random"] * n_random + ["tetris"] * (size - n_random)
        b += 1
    return out[:n]


def _lowest_rows(occupied: np.ndarray) -> np.ndarray:
    """Per column, the lowest occupied row (-1 where the column is empty)."""
    h = occupied.shape[0]
    flipped = occupied[::-1].argmax(0)
    return np.where(occupied.any(0), h - 1 - flipped, -1)


def _window_max(top: np.ndarray, w: int) -> np.ndarray:
    """max(top[x-1 : x+w+1]) for every x in [0, S-w] (neighbour columns included)."""
    padded = np.r_[-1, top, -1]
    windows = np.lib.stride_tricks.sliding_window_view(padded, w + 2)
    return windows.max(1)


class _Canvas:
    def __init__(self, size: int):
        self.labels = np.zeros((size, size), np.int32)
        self.occupied = np.zeros((size, size), bool)
        self.turns = 0
        self.top = np.full(size, -1)

    def turn(self):
        self.labels = np.rot90(self.labels)
        self.occupied = np.rot90(self.occupied)
        self.turns += 1
        self.top = _lowest_rows(self.occupied)

    def touches(self, y, x, dilated) -> bool:
        s = self.occupied.shape[0]
        dh, dw = dilated.shape
        y0, x0 = y - 1, x - 1
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + dh, s), min(x0 + dw, s)
        return bool(np.any(self.occupied[ys:ye, xs:xe] & dilated[ys - y0:ye - y0, xs - x0:xe - x0]))

    def put(self, y, x, mask, label):
        h, w = mask.shape
        self.labels[y:y + h, x:x + w][mask] = label
        self.occupied[y:y + h, x:x + w] |= mask
        cols = mask.any(0)
        last = h - 1 - mask[::-1].argmax(0)
        seg = self.top[x:x + w]
        seg[cols] = np.maximum(seg[cols], y + last[cols])


def _try_random(canvas: _Canvas, mask, dilated, rng, tries: int) -> tuple[int, int] | None:
    s = canvas.occupied.shape[0]
    h, w = mask.shape
    if h > s or w > s:
        return None
    ys = rng.integers(0, s - h + 1, size=tries)
    xs = rng.integers(0, s - w + 1, size=tries)
    for y, x in zip(ys, xs):
        if not canvas.touches(int(y), int(x), dilated):
            return int(y), int(x)
    return None


def _try_tetris(canvas: _Canvas, mask, rng, touch_ratio: float, gap: int) -> tuple[int, int] | None:
    s = canvas.occupied.shape[0]
    h, w = mask.shape
    if h > s or w > s:
        return None
    covered = np.flatnonzero(canvas.top >= 0)
    centre = int(rng.choice(covered)) if covered.size else int(rng.integers(0, s))
    x = int(np.clip(centre - w // 2, 0, s - w))
    piles = _window_max(canvas.top, w)
    pile = int(piles[x])
    y = pile + 2 if pile >= 0 else 0
    if y + h > s:  # no room here: the window with the lowest pile
        x = int(piles.argmin())
        pile = int(piles[x])
        y = pile + 2 if pile >= 0 else 0
        if y + h > s:
            return None
    if pile >= 0 and rng.random() < touch_ratio:
        cols = mask.any(0)
        first = mask.argmax(0)
        y = max(0, int(np.max(canvas.top[x:x + w][cols] - first[cols])) + 1)
    elif gap >= 1:
        g = int(rng.integers(1, gap + 1))
        if y + g + h <= s:
            y += g
    return y, x


def tetris_image(masks: Sequence[np.ndarray], n_cells: int, rng: np.random.Generator, *,
                 size: tuple[int, int] = IMAGE_SIZE, touch_ratio: float = TOUCH_RATIO, gap: int = 10,
                 blocks=BLOCKS, tetris_ratios=TETRIS_RATIOS, random_tries: int = RANDOM_TRIES,
                 rotate_every: int = ROTATE_EVERY) -> Placement:
    """Place binary `masks` in order until `n_cells` are placed or the canvas is full (module doc).

    Parameters
    ----------
    masks : sequence of numpy.ndarray
        Binary masks in placement order (empty ones are skipped).
    n_cells : int
        Nuclei to place.
    rng : numpy.random.Generator
        The random stream.
    size : tuple of int
        Canvas size; placement runs on a square of max(size), cut to `size` afterwards.
    touch_ratio : float
        Probability that a tetris placement rests directly on the pile.
    gap : int
        Largest random gap above the pile.
    blocks, tetris_ratios : tuple
        Sizes of the placement blocks and the share of tetris placements in each.
    random_tries : int
        Random positions tried before falling back to tetris (`RANDOM_TRIES`, 49).
    rotate_every : int
        Turn the canvas by 90° after this many masks (`ROTATE_EVERY`, 3).

    Returns
    -------
    Placement

    Examples
    --------
    >>> placement = tetris_image([np.ones((5, 5), bool)] * 10, 6, np.random.default_rng(0), size=(32, 32))
    >>> placement.labels.shape, placement.labels.dtype, int(placement.labels.max()), placement.full
    ((32, 32), dtype('uint16'), 6, False)
    """
    s = max(size)
    canvas = _Canvas(s)
    modes = _modes(len(masks), blocks, tetris_ratios)
    touching, used_modes = [], []
    full = False
    kernel = np.ones((3, 3), np.uint8)
    for i, mask in enumerate(masks):
        if len(touching) >= n_cells:
            break
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        if i > 0 and i % rotate_every == 0:
            canvas.turn()
        dilated = cv2.dilate(np.pad(mask, 1).astype(np.uint8), kernel) > 0
        spot, mode = None, modes[i]
        if mode == "random":
            spot = _try_random(canvas, mask, dilated, rng, random_tries)
        if spot is None:
            mode = "tetris"
            for attempt in range(4):
                spot = _try_tetris(canvas, mask, rng, touch_ratio, gap)
                if spot is not None or attempt == 3:
                    break
                canvas.turn()
        if spot is None:
            full = True
            break
        y, x = spot
        touching.append(canvas.touches(y, x, dilated))
        used_modes.append(mode)
        canvas.put(y, x, mask, len(touching))
    labels = np.rot90(canvas.labels, -(canvas.turns % 4))[: size[0], : size[1]]
    return Placement(np.ascontiguousarray(labels).astype(np.uint16), touching, used_modes, full)


def images_for_cluster(stats: ClusterStats, per_cluster: int = 20) -> int:
    """20 images per cluster (or as asked), doubled when the mean nucleus radius exceeds 40 px.

    Parameters
    ----------
    stats : ClusterStats
        The cluster's measurements; the radius is sqrt(mean area / π).
    per_cluster : int
        Images for clusters of normal-sized nuclei (20).

    Returns
    -------
    int

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> images_for_cluster(cluster_statistics(tiles))  # radius 5.9 px
    20
    """
    return per_cluster * (2 if np.sqrt(stats.mean_area / np.pi) > LARGE_RADIUS else 1)


def synthesize(mask_array: Sequence[np.ndarray], stats: ClusterStats, rng: np.random.Generator,
               options: SynthesisOptions = SynthesisOptions()) -> Placement:
    """One synthetic label image: subsample the candidates (p = 0.3) and place them (docs/method.md §6.5.9).

    The number of nuclei is `options.n_cells`, or drawn from the cluster (`ClusterStats.n_cells`, or
    `n_cells_matched` with `match_cluster`); the gap is `options.gap` or `stats.gap` capped at a fifth
    of the image side.

    Parameters
    ----------
    mask_array : sequence of numpy.ndarray
        Candidates of `build_mask_array`.
    stats : ClusterStats
        The cluster's measurements.
    rng : numpy.random.Generator
        The random stream.
    options : SynthesisOptions
        The settings.

    Returns
    -------
    Placement

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> stats, rng = cluster_statistics(tiles), np.random.default_rng(0)
    >>> masks = build_mask_array(None, stats, rng, SynthesisOptions(n_db_masks=4))
    >>> options = SynthesisOptions(image_size=(64, 64), n_cells=3, keep_probability=1.0)
    >>> int(synthesize(masks, stats, rng, options).labels.max())
    3
    """
    keep = rng.random(len(mask_array)) < options.keep_probability
    subset = [m for m, k in zip(mask_array, keep) if k]
    if options.n_cells is not None:
        n_cells = options.n_cells
    elif options.match_cluster:
        n_cells = stats.n_cells_matched(rng, options.image_size[0] * options.image_size[1])
    else:
        n_cells = stats.n_cells(rng, options.min_cells)
    gap = options.gap if options.gap is not None else stats.gap(cap=max(options.image_size) // 5)
    return tetris_image(subset, n_cells, rng, size=options.image_size, touch_ratio=options.touch_ratio, gap=gap)


def generate_cluster_masks(db: MaskDB | None, label_tiles: Sequence[np.ndarray], n_images: int, *, seed: int = SEED,
                           options: SynthesisOptions = SynthesisOptions(),
                           progress: Callable | None = None) -> tuple[list[np.ndarray], ClusterStats]:
    """All synthetic label images of one cluster (deterministic under `seed`).

    `cluster_statistics`, `build_mask_array` once, then `synthesize` per image. ValueError when the
    cluster has no nucleus or no candidate shape is found.

    Parameters
    ----------
    db : MaskDB or None
        The nucleus-shape database (None: SIMCEP shapes only).
    label_tiles : sequence of numpy.ndarray
        The cluster's (presegmented) label tiles.
    n_images : int
        Images to make (e.g. `images_for_cluster(stats)`).
    seed : int
        Seed of the one generator (`SEED`).
    options : SynthesisOptions
        The settings.
    progress : callable, optional
        Called without arguments after each image.

    Returns
    -------
    images : list of numpy.ndarray
        uint16 label images of `options.image_size`.
    stats : ClusterStats
        The cluster's measurements.

    Examples
    --------
    >>> tiles = []
    >>> for k in range(3):  # three 64×64 tiles of four square nuclei each
    ...     tile = np.zeros((64, 64), np.int32)
    ...     for i, (y, x) in enumerate([(4, 4), (4, 30), (30, 4), (30, 30)]):
    ...         tile[y:y + 10 + k, x:x + 10] = i + 1
    ...     tiles.append(tile)
    >>> options = SynthesisOptions(n_db_masks=4, image_size=(64, 64))
    >>> images, stats = generate_cluster_masks(None, tiles, 2, options=options)
    >>> len(images), images[0].shape, images[0].dtype
    (2, (64, 64), dtype('uint16'))
    """
    rng = np.random.default_rng(seed)
    stats = cluster_statistics(label_tiles, options.min_area, options.image_size)
    array = build_mask_array(db, stats, rng, options)
    if not array:
        raise ValueError("no candidate nucleus shape: the database matched nothing and no random shape was accepted")
    out = []
    for _ in range(n_images):
        out.append(synthesize(array, stats, rng, options).labels)
        if progress is not None:
            progress()
    return out, stats
