"""Per-nucleus outlines and measurements from a label image: pure functions, arrays in, arrays out.

Outlines follow the pixel edges (vertices on pixel corners, integer coordinates, x = column,
y = row), so filling an outline at the pixel centres gives back exactly the nucleus. Every nucleus is
handled on its own bounding-box crop (`scipy.ndimage.find_objects`), so 10,000 nuclei take
seconds, not minutes. The file formats that carry these (ImageJ ROI sets, GeoJSON, CSV) live in
`nucleaizer_tf.io.export`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage
from skimage.measure import regionprops_table

from nucleaizer_tf.labels import as_label_array

# regionprops_table property -> column name (pixel units; x = column, y = row)
_SHAPE_COLUMNS = {
    "label": "label",
    "centroid-1": "centroid_x",
    "centroid-0": "centroid_y",
    "bbox-1": "bbox_x0",
    "bbox-0": "bbox_y0",
    "bbox-3": "bbox_x1",
    "bbox-2": "bbox_y1",
    "area": "area_px",
    "perimeter": "perimeter_px",
    "equivalent_diameter_area": "equivalent_diameter_px",
    "solidity": "solidity",
}
# eccentricity and orientation come from `_second_moments` (vectorised: regionprops spends most of its
# time computing them one region at a time), with regionprops' formulas
_SHAPE_PROPERTIES = ("label", "centroid", "bbox", "area", "perimeter", "equivalent_diameter_area", "solidity")


@dataclass
class Outline:
    """The outline of one nucleus: one or more parts, each an exterior ring and its holes.

    Rings are (n, 2) int arrays of x, y pixel-corner coordinates, not closed (the first vertex is
    not repeated). `parts` is sorted by enclosed area, largest first. Made by `trace_outlines`.

    Parameters
    ----------
    label : int
        The nucleus' id in its label image.
    parts : list of (numpy.ndarray, list of numpy.ndarray), optional
        ``(exterior, holes)`` per connected part: the exterior ring and the list of its hole rings,
        largest part first (default: no part).

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.uint16); labels[0:2, 0:2] = 1
    >>> outline = trace_outlines(labels)[0]
    >>> outline.label, outline.exterior.tolist(), len(outline.parts)
    (1, [[0, 0], [0, 2], [2, 2], [2, 0]], 1)
    """

    label: int
    parts: list[tuple[np.ndarray, list[np.ndarray]]] = field(default_factory=list)

    @property
    def exterior(self) -> np.ndarray:
        """The outer ring of the largest part (what an ImageJ polygon ROI holds)."""
        return self.parts[0][0]


def _simplify_ring(points: np.ndarray) -> np.ndarray:
    """Drop repeated vertices and the middle vertices of straight runs (the ring is cyclic)."""
    keep = np.any(points != np.roll(points, 1, axis=0), axis=1)
    points = points[keep] if keep.any() else points[:1]
    if len(points) < 3:
        return points
    before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
    cross = (points[:, 0] - before[:, 0]) * (after[:, 1] - points[:, 1]) - (points[:, 1] - before[:, 1]) * (
        after[:, 0] - points[:, 0]
    )
    return points[cross != 0]


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def trace_mask(mask: np.ndarray) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Trace a binary mask along pixel edges: [(exterior, [holes...]), ...], largest part first.

    The mask is doubled (each pixel becomes 2×2) and traced with OpenCV; a traced point u of the
    doubled grid lies on pixel corner (u + 1) // 2, which turns OpenCV's pixel-centre contours into
    pixel-edge rings with integer vertices. Pixels touching only at a corner stay one part (its ring
    touches itself at that corner). Repeated vertices and the middle vertices of straight runs are
    dropped.

    Parameters
    ----------
    mask : array_like
        (H, W) mask; nonzero = inside.

    Returns
    -------
    list of (numpy.ndarray, list of numpy.ndarray)
        One ``(exterior, holes)`` pair per part, sorted by the area the exterior encloses, largest
        first: (n, 2) int rings of x (column), y (row) pixel-corner coordinates, not closed. Empty for
        an empty mask.

    Examples
    --------
    >>> mask = np.zeros((3, 4), bool); mask[1, 1:3] = True
    >>> [ring.tolist() for ring, holes in trace_mask(mask)]
    [[[1, 1], [1, 2], [3, 2], [3, 1]]]
    >>> ring = np.ones((5, 5), bool); ring[1:4, 1:4] = False
    >>> [len(holes) for _, holes in trace_mask(ring)]
    [1]
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    doubled = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    doubled = np.pad(doubled, 1)  # contours must not touch the array border
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    # padded doubled point u + 1 -> pixel corner (u + 1) // 2
    rings = [_simplify_ring(c.reshape(-1, 2) // 2) for c in contours]
    parts: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
    for i, (_next, _prev, _child, parent) in enumerate(hierarchy[0]):
        if parent < 0:
            parts[i] = (rings[i], [])
    for i, (_next, _prev, _child, parent) in enumerate(hierarchy[0]):
        if parent >= 0 and len(rings[i]) >= 3:
            parts[parent][1].append(rings[i])
    return sorted((p for p in parts.values() if len(p[0]) >= 3), key=lambda p: -_ring_area(p[0]))


def trace_outlines(labels: np.ndarray) -> list[Outline]:
    """The pixel-edge outline of every nucleus of a label image, in label order.

    Each nucleus is traced with `trace_mask` on its own bounding-box crop, then shifted back into
    image coordinates.

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) label image, 0 = background, k > 0 = nucleus k (non-negative integer ids).

    Returns
    -------
    list of Outline
        One `Outline` per label present, in ascending label order.

    Raises
    ------
    ValueError
        When `labels` is not a 2-D non-negative integer label image.

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.uint16); labels[0:2, 0:2] = 1; labels[3, 3] = 2
    >>> [(o.label, o.exterior.tolist()) for o in trace_outlines(labels)]
    [(1, [[0, 0], [0, 2], [2, 2], [2, 0]]), (2, [[3, 3], [3, 4], [4, 4], [4, 3]])]
    """
    labels = as_label_array(labels, "the label image")
    outlines = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        label = index + 1
        y0, x0 = box[0].start, box[1].start
        offset = np.array([x0, y0])
        parts = trace_mask(labels[box] == label)
        outlines.append(Outline(label, [(ring + offset, [hole + offset for hole in holes]) for ring, holes in parts]))
    return outlines


def _second_moments(labels: np.ndarray, ids: np.ndarray, area: np.ndarray, cy: np.ndarray, cx: np.ndarray):
    """Eccentricity and orientation of every label from its central second moments, all labels at once.

    The same formulas as `skimage.measure.regionprops` (inertia tensor [[var_x, -cov], [-cov, var_y]]).
    """
    if not len(ids):
        return np.zeros(0), np.zeros(0)
    lookup = np.zeros(int(labels.max()) + 1, np.int64)
    lookup[ids] = np.arange(len(ids))
    rows, cols = np.nonzero(labels)
    which = lookup[labels[rows, cols]]
    dy, dx = rows - cy[which], cols - cx[which]
    var_y = np.bincount(which, dy * dy, len(ids)) / area
    var_x = np.bincount(which, dx * dx, len(ids)) / area
    cov = np.bincount(which, dy * dx, len(ids)) / area
    a, b, c = var_x, -cov, var_y
    mean, spread = (a + c) / 2, np.sqrt(((a - c) / 2) ** 2 + b**2)
    l1, l2 = np.maximum(mean + spread, 0), np.maximum(mean - spread, 0)
    eccentricity = np.where(l1 > 0, np.sqrt(1 - np.divide(l2, l1, out=np.ones_like(l1), where=l1 > 0)), 0.0)
    orientation = np.where(a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a))
    return eccentricity, orientation


def _channels(image: np.ndarray | None, shape) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape[:2] != tuple(shape):
        raise ValueError(f"image of shape {image.shape} does not match the label image of shape {tuple(shape)}")
    return image[:, :, None] if image.ndim == 2 else image


def measure_nuclei(labels: np.ndarray, image: np.ndarray | None = None, *, pixel_size: float | None = None) -> dict:
    """One row per nucleus: shape measurements and, given `image`, intensities in its own values.

    Columns (name -> 1-D array, in this order): label, centroid_x, centroid_y, bbox_x0, bbox_y0,
    bbox_x1, bbox_y1 (exclusive), area_px, perimeter_px, equivalent_diameter_px, eccentricity,
    solidity, orientation_rad (scikit-image's: angle between the row axis and the major axis); per
    channel c (suffix `_c<k>` when the image has several): intensity_mean, intensity_min,
    intensity_max (the image's dtype: 16-bit stays 16-bit) and intensity_integrated (sum over the
    nucleus); with `pixel_size` (µm per pixel) also centroid_x_um, centroid_y_um, area_um2,
    perimeter_um and equivalent_diameter_um.

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) label image, 0 = background, k > 0 = nucleus k (non-negative integer ids).
    image : numpy.ndarray, optional
        (H, W) grey or (H, W, C) image of the same height and width, any dtype; None (default) = shape
        measurements only.
    pixel_size : float, optional
        Pixel size in µm per pixel (> 0); adds the µm columns. None (default) = pixel units only.

    Returns
    -------
    dict of str to numpy.ndarray
        The columns above, each a 1-D array with one entry per nucleus, in ascending label order.
        label, bbox_* and area_px are int64; the intensity columns keep the image's dtype (min, max),
        float64 (mean) or int64/float64 (integrated, for integer/float images).

    Raises
    ------
    ValueError
        When `labels` is not a label image, `image` does not match its height and width, or
        `pixel_size` is not positive.

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.uint8); labels[1:3, 1:3] = 1
    >>> image = np.full((4, 4), 1000, np.uint16)
    >>> table = measure_nuclei(labels, image, pixel_size=0.5)
    >>> int(table["area_px"][0]), float(table["area_um2"][0]), int(table["intensity_max"][0])
    (4, 1.0, 1000)
    """
    labels = as_label_array(labels, "the label image")
    channels = _channels(image, labels.shape)
    props = regionprops_table(labels, properties=_SHAPE_PROPERTIES)
    table = {name: np.asarray(props[key]) for key, name in _SHAPE_COLUMNS.items()}
    for name in ("label", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area_px"):  # pixel counts and indices
        table[name] = table[name].astype(np.int64)
    eccentricity, orientation = _second_moments(labels, table["label"], table["area_px"], table["centroid_y"],
                                                table["centroid_x"])
    solidity = table.pop("solidity")
    table.update(eccentricity=eccentricity, solidity=solidity, orientation_rad=orientation)
    if channels is not None:
        ids = table["label"]
        n = channels.shape[2]
        for c in range(n):
            suffix = f"_c{c}" if n > 1 else ""
            values = channels[:, :, c]
            wide = values.astype(np.float64 if values.dtype.kind == "f" else np.int64)
            if len(ids):
                lo = ndimage.minimum(values, labels, ids)
                hi = ndimage.maximum(values, labels, ids)
                total = ndimage.sum_labels(wide, labels, ids)
            else:
                lo = hi = total = []
            table[f"intensity_mean{suffix}"] = np.asarray(total, np.float64) / np.maximum(table["area_px"], 1)
            table[f"intensity_min{suffix}"] = np.asarray(lo, values.dtype)
            table[f"intensity_max{suffix}"] = np.asarray(hi, values.dtype)
            table[f"intensity_integrated{suffix}"] = np.asarray(total, wide.dtype)
    if pixel_size is not None:
        if not pixel_size > 0:
            raise ValueError(f"pixel size must be positive, got {pixel_size}")
        table["centroid_x_um"] = table["centroid_x"] * pixel_size
        table["centroid_y_um"] = table["centroid_y"] * pixel_size
        table["area_um2"] = table["area_px"] * pixel_size**2
        table["perimeter_um"] = table["perimeter_px"] * pixel_size
        table["equivalent_diameter_um"] = table["equivalent_diameter_px"] * pixel_size
    return table


def basic_measurements(labels: np.ndarray, *, pixel_size: float | None = None) -> dict:
    """label, centroid_x, centroid_y, area_px (and area_um2): the cheap columns, for GeoJSON alone.

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) label image, 0 = background, k > 0 = nucleus k (non-negative integer ids).
    pixel_size : float, optional
        Pixel size in µm per pixel; adds area_um2. None (default) = pixel units only.

    Returns
    -------
    dict of str to numpy.ndarray
        The columns, each a 1-D array with one entry per nucleus in ascending label order: label and
        area_px integer, centroid_x (column) and centroid_y (row) float64 in pixels, area_um2 float64.

    Examples
    --------
    >>> labels = np.zeros((3, 3), np.uint8); labels[0, :2] = 5
    >>> {k: v.tolist() for k, v in basic_measurements(labels).items()}
    {'label': [5], 'centroid_x': [0.5], 'centroid_y': [0.0], 'area_px': [2]}
    """
    labels = as_label_array(labels, "the label image")
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    ys, xs = np.indices(labels.shape, sparse=True)
    area = counts[ids]
    table = {
        "label": ids,
        "centroid_x": np.bincount(labels.ravel(), np.broadcast_to(xs, labels.shape).ravel())[ids] / area,
        "centroid_y": np.bincount(labels.ravel(), np.broadcast_to(ys, labels.shape).ravel())[ids] / area,
        "area_px": area,
    }
    if pixel_size is not None:
        table["area_um2"] = area * pixel_size**2
    return table


def summarise(table: dict) -> dict:
    """nuclei, median_area_px, median_diameter_px (and the µm versions when the table has them).

    Parameters
    ----------
    table : dict of str to array_like
        A column table as from `measure_nuclei`: it needs label, area_px and equivalent_diameter_px
        (and equivalent_diameter_um when it has area_um2).

    Returns
    -------
    dict
        One summary row: nuclei (int, the number of rows), median_area_px and median_diameter_px, and
        with area_um2 in `table` also median_area_um2 and median_diameter_um; medians are floats
        rounded to 4 decimals, or "" when the table has no row.

    Examples
    --------
    >>> summarise({"label": np.array([1, 2]), "area_px": np.array([10, 30]),
    ...            "equivalent_diameter_px": np.array([3.0, 6.0])})
    {'nuclei': 2, 'median_area_px': 20.0, 'median_diameter_px': 4.5}
    """
    def median(name):
        values = table[name]
        return round(float(np.median(values)), 4) if len(values) else ""

    row = {"nuclei": int(len(table["label"])), "median_area_px": median("area_px"),
           "median_diameter_px": median("equivalent_diameter_px")}
    if "area_um2" in table:
        row["median_area_um2"] = median("area_um2")
        row["median_diameter_um"] = median("equivalent_diameter_um")
    return row


def nucleus_summary(labels: np.ndarray) -> dict:
    """Nuclei count, median area and median equivalent diameter of a label image, cheaply (no regionprops).

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) label image, 0 = background.

    Returns
    -------
    dict
        ``nuclei``, ``median_area_px``, ``median_diameter_px`` as `summarise` gives them (medians ""
        when there is no nucleus).

    Examples
    --------
    >>> labels = np.zeros((10, 10), np.uint8); labels[:2, :2] = 1; labels[5:9, 5:9] = 2
    >>> nucleus_summary(labels)
    {'nuclei': 2, 'median_area_px': 10.0, 'median_diameter_px': 3.3851}
    """
    table = basic_measurements(labels)
    table["equivalent_diameter_px"] = np.sqrt(4.0 * table["area_px"] / np.pi)
    return summarise(table)
