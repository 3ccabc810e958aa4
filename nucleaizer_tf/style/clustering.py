"""Group images into styles: correlation k-means on distance profiles, best-3 per cluster (docs/method.md §6.3).

As in `fromKaggleToClusters` (clustering type "Kmeans-correlation-Best3Cluster"):

1. every image is represented by its row of the N×N style distance matrix (its distance profile);
2. for each candidate k in `round(N / [5 6 7 8 9 10])` (zeros -> 1) k-means with correlation
   distance (1 - Pearson correlation between a profile and a centroid) runs with k-means++ seeding and
   30 replicates; the k with the smallest total within-cluster distance wins;
3. only the 3 members closest to each centroid stay in the cluster, the others become "thrash"
   (cluster -1) and are not used for style learning.

Correlation k-means is spherical k-means on rows that are centred and scaled to unit length (docs/method.md §8.4):
the centroid is the mean of the normalised member rows and the distance is 1 - cos(row, centroid).
It is implemented here in numpy (batch Lloyd iterations, MATLAB's "singleton" rule for empty clusters)
because scikit-learn's `KMeans` minimises squared Euclidean distance, whose assignments differ from
the correlation rule when centroids have different lengths; scikit-learn's `kmeans_plusplus` is not
used either for the same reason (its D² weighting is Euclidean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

IMAGES_PER_CLUSTER_CANDIDATES = (5, 6, 7, 8, 9, 10)
REPLICATES = 30
MAX_ITER = 10000
KEEP_BEST = 3
THRASH = -1


def matlab_round(x):
    """MATLAB `round`: halves away from zero (NumPy's `round` takes them to even).

    Parameters
    ----------
    x : array_like
        Numbers.

    Returns
    -------
    numpy.ndarray
        float64, the shape of `x`.

    Examples
    --------
    >>> matlab_round([0.5, 1.5, 2.5, -0.5, -1.4])
    array([ 1.,  2.,  3., -1., -1.])
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def candidate_ks(n: int, per_cluster=IMAGES_PER_CLUSTER_CANDIDATES) -> list[int]:
    """`round(n ./ per_cluster)` with zeros replaced by 1, in the original's order (duplicates kept).

    Each k is also capped at n.

    Parameters
    ----------
    n : int
        Number of images.
    per_cluster : sequence of int
        Images per cluster tried (`IMAGES_PER_CLUSTER_CANDIDATES`, 5..10).

    Returns
    -------
    list of int

    Examples
    --------
    >>> candidate_ks(24)
    [5, 4, 3, 3, 3, 2]
    >>> candidate_ks(3)
    [1, 1, 1, 1, 1, 1]
    """
    ks = matlab_round(n / np.asarray(per_cluster, dtype=np.float64)).astype(int)
    ks[ks == 0] = 1
    return [int(min(k, max(n, 1))) for k in ks]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Centre every row and scale it to unit length (rows that are constant become 0)."""
    z = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return np.divide(z, norm, out=np.zeros_like(z), where=norm > 1e-12)


def _distances(z: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """1 - correlation between the unit rows `z` (N×D) and the centroids (k×D)."""
    c = _unit_rows(centroids)
    return 1.0 - z @ c.T


@dataclass(frozen=True)
class KMeansResult:
    """One correlation k-means solution.

    Attributes
    ----------
    labels : numpy.ndarray
        N, 0-based cluster index of each row.
    distances : numpy.ndarray
        N×k point-to-centroid correlation distances.
    sumd : numpy.ndarray
        k, within-cluster sums of distances.
    iterations : int
        Lloyd iterations run.

    Examples
    --------
    >>> x = np.array([[1, 2, 3, 4], [1, 2, 3, 5], [4, 3, 2, 1], [5, 3, 2, 1]], float)
    >>> result = correlation_kmeans(x, 2)
    >>> result.distances.shape, result.sumd.shape, result.total == float(result.sumd.sum())
    ((4, 2), (2,), True)
    """

    labels: np.ndarray  # N, 0-based cluster index
    distances: np.ndarray  # N×k point-to-centroid correlation distances
    sumd: np.ndarray  # k, within-cluster sums of distances
    iterations: int

    @property
    def total(self) -> float:
        """The total within-cluster distance, sum(sumd)."""
        return float(self.sumd.sum())


def _plusplus(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding under the correlation distance (probability proportional to the distance)."""
    n = len(z)
    chosen = [int(rng.integers(n))]
    nearest = 1.0 - z @ z[chosen[0]]
    for _ in range(1, k):
        weights = np.maximum(nearest, 0.0)
        total = weights.sum()
        pick = int(rng.choice(n, p=weights / total)) if total > 1e-15 else int(rng.integers(n))
        chosen.append(pick)
        nearest = np.minimum(nearest, 1.0 - z @ z[pick])
    return z[chosen].copy()


def _lloyd(z: np.ndarray, centroids: np.ndarray, max_iter: int) -> KMeansResult:
    n, k = len(z), len(centroids)
    labels = np.full(n, -1)
    it = 0
    for it in range(1, max_iter + 1):
        d = _distances(z, centroids)
        new = d.argmin(axis=1)
        counts = np.bincount(new, minlength=k)
        for empty in np.flatnonzero(counts == 0):  # "singleton": the farthest point starts the empty cluster
            own = d[np.arange(n), new]
            far = int(own.argmax())
            new[far] = empty
            counts = np.bincount(new, minlength=k)
            d[far] = 1.0
            d[far, empty] = 0.0
        if np.array_equal(new, labels):
            break
        labels = new
        one_hot = np.zeros((n, k))
        one_hot[np.arange(n), labels] = 1.0
        centroids = (one_hot.T @ z) / np.maximum(one_hot.sum(0), 1.0)[:, None]
    d = _distances(z, centroids)
    sumd = np.bincount(labels, weights=d[np.arange(n), labels], minlength=k)
    return KMeansResult(labels, d, sumd, it)


def correlation_kmeans(x: np.ndarray, k: int, *, replicates: int = REPLICATES, max_iter: int = MAX_ITER,
                       seed: int = 0) -> KMeansResult:
    """MATLAB `kmeans(x, k, 'Distance', 'correlation', 'Replicates', r)`: best of `replicates` runs.

    Each replicate seeds with k-means++ under the correlation distance and runs batch Lloyd iterations
    (module docstring); the replicate with the smallest total distance wins (the first on ties).

    Parameters
    ----------
    x : numpy.ndarray
        Non-empty N×D matrix, one row per point (ValueError otherwise).
    k : int
        Number of clusters, 1 <= k <= N (ValueError otherwise).
    replicates : int
        Runs (`REPLICATES`, 30).
    max_iter : int
        Iteration limit per run (`MAX_ITER`).
    seed : int
        Seed of the one generator of all replicates.

    Returns
    -------
    KMeansResult

    Examples
    --------
    >>> x = np.array([[1, 2, 3, 4], [1, 2, 3, 5], [2, 4, 6, 8.5], [4, 3, 2, 1], [5, 3, 2, 1], [4, 3, 1, 1]], float)
    >>> correlation_kmeans(x, 2).labels  # rising rows and falling rows
    array([1, 1, 1, 0, 0, 0])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"expected a non-empty N×D matrix, got shape {x.shape}")
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}], got {k}")
    z = _unit_rows(x)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(max(1, replicates)):
        result = _lloyd(z, _plusplus(z, k, rng), max_iter)
        if best is None or result.total < best.total - 1e-12:
            best = result
    return best


@dataclass(frozen=True)
class StyleClusters:
    """Outcome of the clustering over N images (in input order).

    Attributes
    ----------
    names : list of str
        The images.
    cluster : numpy.ndarray
        N, 1-based style group after the best-k filter; THRASH (-1) for the rest.
    assigned : numpy.ndarray
        N, 1-based group before the filter.
    distance : numpy.ndarray
        N, correlation distance to the own centroid.
    k : int
        The chosen number of clusters.
    candidates : list of (int, float)
        (k, total within-cluster distance) of every k tried.

    Examples
    --------
    >>> names = [f"img{i}" for i in range(8)]
    >>> position = np.r_[np.zeros(4), np.ones(4)] + np.arange(8) * 0.01  # two styles of four images
    >>> clusters = cluster_styles(names, np.abs(np.subtract.outer(position, position)), k=2, replicates=5)
    >>> clusters.assigned, clusters.cluster  # the best 3 of each group are kept
    (array([2, 2, 2, 2, 1, 1, 1, 1]), array([ 2,  2,  2, -1, -1,  1,  1,  1]))
    >>> clusters.members(1), clusters.groups
    (['img5', 'img6', 'img7'], [1, 2])
    """

    names: list[str]
    cluster: np.ndarray  # N, 1-based style group after the best-k filter; THRASH (-1) for the rest
    assigned: np.ndarray  # N, 1-based group before the filter
    distance: np.ndarray  # N, correlation distance to the own centroid
    k: int
    candidates: list[tuple[int, float]] = field(default_factory=list)  # (k, total within-cluster distance)

    def members(self, group: int, kept_only: bool = True) -> list[str]:
        """Names in `group`, nearest to the centroid first."""
        ref = self.cluster if kept_only else self.assigned
        idx = np.flatnonzero(ref == group)
        return [self.names[i] for i in idx[np.argsort(self.distance[idx], kind="stable")]]

    @property
    def groups(self) -> list[int]:
        """The 1-based groups assigned, ascending."""
        return sorted(int(g) for g in np.unique(self.assigned))

    def rows(self) -> list[dict]:
        """One dict per image: name, style (1-based or -1), assigned group, distance, kept."""
        return [{"name": n, "style": int(c), "assigned": int(a), "distance": float(d), "kept": bool(c != THRASH)}
                for n, c, a, d in zip(self.names, self.cluster, self.assigned, self.distance)]


def keep_best(assigned: np.ndarray, distance: np.ndarray, keep: int = KEEP_BEST) -> np.ndarray:
    """`filterBest`: in every cluster only the `keep` members nearest their centroid keep their label.

    Parameters
    ----------
    assigned : numpy.ndarray
        N group labels.
    distance : numpy.ndarray
        N distances to the own centroid (ties: input order).
    keep : int
        Members kept per group (`KEEP_BEST`, 3).

    Returns
    -------
    numpy.ndarray
        N labels, THRASH (-1) for the members not kept.

    Examples
    --------
    >>> keep_best(np.array([1, 1, 1, 1, 2, 2]), np.array([0.4, 0.1, 0.3, 0.2, 0.5, 0.6]))
    array([-1,  1,  1,  1,  2,  2])
    """
    out = np.full(len(assigned), THRASH)
    for g in np.unique(assigned):
        idx = np.flatnonzero(assigned == g)
        order = idx[np.argsort(distance[idx], kind="stable")]
        out[order[:keep]] = g
    return out


def cluster_styles(names, distances: np.ndarray, *, keep: int | None = KEEP_BEST, replicates: int = REPLICATES,
                   max_iter: int = MAX_ITER, seed: int = 0, k: int | None = None) -> StyleClusters:
    """Cluster images given their N×N style distance matrix (rows = distance profiles).

    `k=None` picks k among `candidate_ks(N)` by the smallest total within-cluster distance (the
    original's rule, which usually picks the largest candidate); `keep=None` keeps every member.

    Parameters
    ----------
    names : iterable of str
        The N images.
    distances : numpy.ndarray
        N×N style distances (`features.style_distances`); ValueError for another shape or N = 0.
    keep : int or None
        Members kept per group (`KEEP_BEST`, 3).
    replicates, max_iter, seed : int
        Passed to `correlation_kmeans`.
    k : int, optional
        A fixed number of clusters.

    Returns
    -------
    StyleClusters

    Examples
    --------
    >>> names = [f"img{i}" for i in range(8)]
    >>> position = np.r_[np.zeros(4), np.ones(4)] + np.arange(8) * 0.01
    >>> clusters = cluster_styles(names, np.abs(np.subtract.outer(position, position)), replicates=5)
    >>> clusters.k, [k for k, _ in clusters.candidates]  # candidate_ks(8) = [2, 1, 1, 1, 1, 1]
    (2, [2, 1])
    """
    names = list(names)
    dd = np.asarray(distances, dtype=np.float64)
    n = len(names)
    if dd.shape != (n, n):
        raise ValueError(f"distance matrix must be {n}×{n}, got {dd.shape}")
    if n == 0:
        raise ValueError("no images to cluster")
    ks = [k] if k is not None else candidate_ks(n)
    tried: dict[int, KMeansResult] = {}
    for kk in ks:
        if kk not in tried:
            tried[kk] = correlation_kmeans(dd, kk, replicates=replicates, max_iter=max_iter, seed=seed)
    best_k = min(tried, key=lambda kk: (tried[kk].total, ks.index(kk)))
    result = tried[best_k]
    assigned = result.labels + 1
    own = result.distances[np.arange(n), result.labels]
    cluster = assigned.copy() if keep is None else keep_best(assigned, own, keep)
    return StyleClusters(names, cluster, assigned, own, best_k, [(kk, tried[kk].total) for kk in tried])


def quadrants(array: np.ndarray) -> list[np.ndarray]:
    """The four quadrants of `multiplySmallFodlersForClustering` (docs/method.md §6.3.8): top-left, top-right,
    bottom-left, bottom-right; rows [0, r) and [r-1, H) with r = round(H/2) (the middle row is shared),
    the same for columns.

    Parameters
    ----------
    array : numpy.ndarray
        H×W[×C] image or label image.

    Returns
    -------
    list of numpy.ndarray
        The four quadrants (views).

    Examples
    --------
    >>> parts = quadrants(np.arange(25).reshape(5, 5))
    >>> [p.shape for p in parts], parts[3]
    ([(3, 3), (3, 3), (3, 3), (3, 3)], array([[12, 13, 14],
           [17, 18, 19],
           [22, 23, 24]]))
    """
    h, w = array.shape[:2]
    r, c = int(matlab_round(h / 2)), int(matlab_round(w / 2))
    rows, cols = (slice(0, r), slice(r - 1, h)), (slice(0, c), slice(c - 1, w))
    return [array[rows[0], cols[0]], array[rows[0], cols[1]], array[rows[1], cols[0]], array[rows[1], cols[1]]]


def contact_sheet(images, kept=None, captions=None, *, thumb: int = 128, columns: int = 6) -> np.ndarray:
    """uint8 RGB grid of thumbnails (aspect kept, `thumb` px) for a cluster report.

    Kept members get a green frame, thrash members a grey one; `captions` are drawn at the top-left.

    Parameters
    ----------
    images : iterable of numpy.ndarray
        uint8 RGB images.
    kept : sequence of bool, optional
        Per image: kept (green) or thrash (grey); default all kept.
    captions : sequence, optional
        Per image, drawn with `str`.
    thumb : int
        Longest side of a thumbnail in pixels.
    columns : int
        Thumbnails per row (at most the number of images).

    Returns
    -------
    numpy.ndarray
        uint8 RGB sheet, cells of thumb + 8 pixels on a white background; a white thumb×thumb image
        when there are no images.

    Examples
    --------
    >>> sheet = contact_sheet([np.zeros((64, 32, 3), np.uint8)] * 3, kept=[True, False, True], thumb=32, columns=2)
    >>> sheet.shape, sheet.dtype
    ((80, 80, 3), dtype('uint8'))
    """
    images = list(images)
    if not images:
        return np.full((thumb, thumb, 3), 255, np.uint8)
    kept = [True] * len(images) if kept is None else list(kept)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    pad = 4
    cell = thumb + 2 * pad
    sheet = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for i, image in enumerate(images):
        image = np.asarray(image)
        h, w = image.shape[:2]
        s = thumb / max(h, w)
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        y0, x0 = (i // columns) * cell, (i % columns) * cell
        colour = (40, 170, 40) if kept[i] else (150, 150, 150)
        sheet[y0:y0 + cell, x0:x0 + cell] = colour
        sheet[y0 + pad:y0 + pad + small.shape[0], x0 + pad:x0 + pad + small.shape[1]] = small
        if captions is not None:
            cv2.putText(sheet, str(captions[i]), (x0 + pad + 2, y0 + pad + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 0), 1, cv2.LINE_AA)
    return sheet
