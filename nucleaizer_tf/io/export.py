"""Files that Fiji, QuPath and spreadsheets open: ImageJ ROI sets, GeoJSON, CSV tables; and back.

Outlines come from `nucleaizer_tf.measure.trace_outlines` (pixel-corner integer vertices, x = column,
y = row). Reading an ROI set or a GeoJSON back fills each outline at the pixel centres, which is how
ImageJ and QuPath turn outlines into pixels, so a written file reads back as the same label image.
Everything is written through `atomic_path`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import roifile
import shapely
from shapely.geometry import mapping, shape as geometry_from_json
from shapely.geometry.polygon import orient
from skimage.draw import polygon as fill_polygon

from nucleaizer_tf.errors import ImageReadError
from nucleaizer_tf.io.read import VECTOR_LABEL_EXTENSIONS, read_json
from nucleaizer_tf.io.write import atomic_path
from nucleaizer_tf.labels import label_dtype

_AREA_ROI_TYPES = {roifile.ROI_TYPE.POLYGON, roifile.ROI_TYPE.RECT, roifile.ROI_TYPE.OVAL,
                   roifile.ROI_TYPE.FREEHAND, roifile.ROI_TYPE.TRACED}
NUCLEUS_CLASS = {"name": "Nucleus", "color": [0, 160, 255]}
MAX_ROI_MEMBERS = 1_000_000
"""The most ROIs one ImageJ ROI set may hold (a whole-slide image has a few hundred thousand nuclei)."""
MAX_ROI_BYTES = 1 << 30
"""The most bytes an ImageJ ROI set may unpack to (1 GiB; a nucleus outline is about 0.5 KB)."""
MAX_COORDINATE = 2.0**31
"""Outline coordinates beyond ±this are refused (no image is that large)."""


def roi_names(labels) -> list[str]:
    """Zero-padded names (at least 4 digits) so that Fiji's ROI Manager sorts them by label id.

    Parameters
    ----------
    labels : iterable of int
        Label ids.

    Returns
    -------
    list of str
        One name per id, all padded to the width of the largest id (at least 4 digits).

    Examples
    --------
    >>> roi_names([3, 12, 250])
    ['0003', '0012', '0250']
    """
    labels = [int(v) for v in labels]
    width = max(4, len(str(max(labels)))) if labels else 4
    return [f"{v:0{width}d}" for v in labels]


def write_roi_zip(path: str | os.PathLike, outlines, *, positions=None) -> Path:
    """Write one ImageJ polygon ROI per nucleus (the outer ring of its largest part) to a ZIP.

    Vertices are integer pixel corners (no sub-pixel coordinates); each ROI is named by its label id,
    zero-padded. No nucleus gives a valid empty ZIP.

    Parameters
    ----------
    path : str or os.PathLike
        The ZIP file to write (its folder is created if needed).
    outlines : iterable of Outline
        The nuclei, as from `nucleaizer_tf.measure.trace_outlines`.
    positions : sequence of int, optional
        Each nucleus' plane in a stack, ImageJ's 1-based stack position (default None: a 2-D image).

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Examples
    --------
    >>> from nucleaizer_tf.measure import trace_outlines
    >>> write_roi_zip("rois.zip", trace_outlines(labels))  # doctest: +SKIP
    """
    outlines = list(outlines)
    positions = [0] * len(outlines) if positions is None else list(positions)
    rois = []
    for name, outline, position in zip(roi_names([o.label for o in outlines]), outlines, positions):
        roi = roifile.ImagejRoi.frompoints(outline.exterior.astype(np.int32), name=name)
        roi.roitype = roifile.ROI_TYPE.POLYGON
        roi.position = position
        rois.append(roi)
    with atomic_path(path) as tmp:
        roifile.roiwrite(tmp, rois, mode="w")
    return Path(path)


def _polygons(outline) -> shapely.Geometry:
    polygons = [shapely.Polygon(exterior, holes) for exterior, holes in outline.parts]
    geometry = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
    if not geometry.is_valid:  # a ring touching itself where two pixels meet only at a corner
        geometry = shapely.make_valid(geometry)
        if geometry.geom_type == "GeometryCollection":
            geometry = shapely.MultiPolygon([g for g in geometry.geoms if g.geom_type == "Polygon"]
                                            + [p for g in geometry.geoms if g.geom_type == "MultiPolygon" for p in g.geoms])
    if geometry.geom_type == "Polygon":
        return orient(geometry)
    return shapely.MultiPolygon([orient(p) for p in geometry.geoms])


def _number(value):
    value = value.item() if isinstance(value, np.generic) else value
    return value if not isinstance(value, float) or math.isfinite(value) else None


def geojson_collection(outlines, measurements: dict | None = None, *, classification: dict = NUCLEUS_CLASS) -> dict:
    """A GeoJSON FeatureCollection of the nuclei that QuPath imports as detections.

    Each feature holds a Polygon (MultiPolygon for a nucleus in several parts) in pixel coordinates,
    closed rings, holes as interior rings, and `properties` with `objectType: "detection"`,
    `classification`, `name` (the zero-padded label id) and `measurements` (the row of
    `measurements`, a table as from `measure_nuclei`, for that label; non-finite values left out).

    Parameters
    ----------
    outlines : iterable of Outline
        The nuclei, as from `nucleaizer_tf.measure.trace_outlines`.
    measurements : dict of str to array_like, optional
        A column table with a "label" column (as from `measure_nuclei` or `basic_measurements`); None
        (default) gives each feature only ``{"label": id}`` as measurements, as does a label missing
        from the table.
    classification : dict, optional
        QuPath's class of every feature (default `NUCLEUS_CLASS`: ``{"name": "Nucleus", "color":
        [0, 160, 255]}``), copied into each feature.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``, one feature per outline in order, with
        ``isLocked: False`` in its properties too.

    Examples
    --------
    >>> from nucleaizer_tf.measure import trace_outlines
    >>> labels = np.zeros((3, 3), np.uint8); labels[1, 1] = 4
    >>> feature = geojson_collection(trace_outlines(labels))["features"][0]
    >>> feature["geometry"]["type"], feature["properties"]["objectType"], feature["properties"]["name"]
    ('Polygon', 'detection', '0004')
    """
    outlines = list(outlines)
    rows = {}
    if measurements is not None:
        columns = list(measurements)
        for i, label in enumerate(np.asarray(measurements["label"]).tolist()):
            rows[int(label)] = {c: _number(measurements[c][i]) for c in columns}
    features = []
    for name, outline in zip(roi_names([o.label for o in outlines]), outlines):
        values = {k: v for k, v in rows.get(outline.label, {"label": outline.label}).items() if v is not None}
        features.append({
            "type": "Feature",
            "geometry": mapping(_polygons(outline)),
            "properties": {"objectType": "detection", "classification": dict(classification), "name": name,
                           "isLocked": False, "measurements": values},
        })
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: str | os.PathLike, outlines, measurements: dict | None = None) -> Path:
    """Write `geojson_collection(outlines, measurements)` as compact JSON, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The GeoJSON file to write (its folder is created if needed).
    outlines : iterable of Outline
        The nuclei, as from `nucleaizer_tf.measure.trace_outlines`.
    measurements : dict of str to array_like, optional
        A column table with a "label" column, e.g. from `measure_nuclei` (default None).

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Examples
    --------
    >>> write_geojson("nuclei.geojson", trace_outlines(labels), measure_nuclei(labels))  # doctest: +SKIP
    """
    payload = geojson_collection(outlines, measurements)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, separators=(",", ":"), default=_plain) + "\n")
    return Path(path)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value):
    value = value.item() if isinstance(value, np.generic) else value
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def write_table_csv(path: str | os.PathLike, table: dict) -> Path:
    """Write a column table (name -> equal-length 1-D array) as CSV; header only when it has no rows.

    Non-finite floats (NaN, inf) are written as empty cells. Written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file to write (its folder is created if needed).
    table : dict of str to array_like
        The columns in order, e.g. from `measure_nuclei`.

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Examples
    --------
    >>> write_table_csv("nuclei.csv", {"label": np.array([1, 2]), "area_px": np.array([40, 52])})  # doctest: +SKIP
    """
    columns = list(table)
    arrays = [np.asarray(table[c]) for c in columns]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in zip(*(a.tolist() for a in arrays)):
                writer.writerow([_cell(v) for v in row])
    return Path(path)


def write_rows_csv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: `columns`, else every key in first-seen order), atomically.

    A key missing from a row, and a non-finite float, give an empty cell; keys not in `columns` are
    left out.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file to write (its folder is created if needed).
    rows : list of dict
        One dict per row, e.g. the `summarise` row of each image.
    columns : list of str, optional
        The columns in order (default None: every key of `rows` in first-seen order).

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Examples
    --------
    >>> write_rows_csv("summary.csv", [{"image": "a.png", "nuclei": 12}])  # doctest: +SKIP
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(v) for k, v in row.items()})
    return Path(path)


# ---------------------------------------------------------------- reading outlines back as labels


def _paint(labels: np.ndarray, label: int, rings: list[np.ndarray]) -> None:
    """Set the pixels whose centres lie inside the rings (even-odd: holes and parts) to `label`."""
    h, w = labels.shape
    points = np.concatenate(rings)
    x0, y0 = max(int(np.floor(points[:, 0].min())), 0), max(int(np.floor(points[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(points[:, 0].max())), w), min(int(np.ceil(points[:, 1].max())), h)
    if x1 <= x0 or y1 <= y0:
        return
    inside = np.zeros((y1 - y0, x1 - x0), bool)
    for ring in rings:
        rr, cc = fill_polygon(ring[:, 1] - y0 - 0.5, ring[:, 0] - x0 - 0.5, inside.shape)
        ring_mask = np.zeros_like(inside)
        ring_mask[rr, cc] = True
        inside ^= ring_mask
    labels[y0:y1, x0:x1][inside] = label


def _ids_from_names(names: list[str]) -> list[int]:
    """Label ids from names that are all distinct positive integers (as written here), else 1..n."""
    if names and all(n.strip().isdigit() for n in names):
        ids = [int(n) for n in names]
        if len(set(ids)) == len(ids) and min(ids) > 0:
            return ids
    return list(range(1, len(names) + 1))


def _new_labels(shape, count: int) -> np.ndarray:
    return np.zeros(tuple(shape), label_dtype(count))


def read_roi_zip(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise an ImageJ ROI set (ZIP; polygon, freehand, traced, rectangle, oval or composite ROIs).

    ROI k becomes label k (or its name's number when every name is a distinct number, as written by
    `write_roi_zip`); where ROIs overlap, the later one wins. Line and point ROIs are refused.
    Each ROI is filled at the pixel centres (even-odd, so holes and parts are kept).

    Parameters
    ----------
    path : str or os.PathLike
        The ImageJ ROI set (a ``.zip`` of ``.roi`` files, or a single ROI file roifile reads).
    shape : tuple of int
        (H, W) of the image the ROIs belong to; parts outside it are cut off.

    Returns
    -------
    numpy.ndarray
        (H, W) label image, 0 = background: uint16, or uint32 when the largest id exceeds 65,535.

    Raises
    ------
    ImageReadError
        When the file cannot be read as an ROI set, or holds an ROI that is not an area (line, point).

    Examples
    --------
    >>> labels = read_roi_zip("RoiSet.zip", (512, 512))  # doctest: +SKIP
    """
    path = Path(path)
    _check_roi_archive(path)
    try:
        rois = roifile.roiread(path)
    except Exception as exc:  # zipfile and roifile raise many types for damaged files
        raise ImageReadError(f"{path}: cannot read as an ImageJ ROI set ({type(exc).__name__}: {exc})") from None
    rois = [rois] if isinstance(rois, roifile.ImagejRoi) else list(rois)
    names = [r.name or "" for r in rois]
    ids = _ids_from_names(names)
    labels = _new_labels(shape, max(ids, default=0))
    for roi, label, name in zip(rois, ids, names):
        what = f"ROI {name or label!r}"
        if roi.roitype not in _AREA_ROI_TYPES:
            raise ImageReadError(f"{path}: {what} is a {roi.roitype.name.lower()} ROI, not an area")
        try:
            rings = [np.asarray(c, np.float64).reshape(-1, 2) for c in roi.coordinates(multi=True)]
        except Exception as exc:  # a damaged ROI record
            raise ImageReadError(f"{path}: {what} has unreadable coordinates ({type(exc).__name__}: {exc})") from None
        _paint_checked(labels, label, rings, path, what)
    return labels


def _check_roi_archive(path: Path) -> None:
    """Refuse a ZIP whose declared contents exceed `MAX_ROI_MEMBERS` or `MAX_ROI_BYTES`, before unpacking."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # a single .roi file, or not an archive: roifile says which
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read as an ImageJ ROI set ({exc})") from None
    if len(members) > MAX_ROI_MEMBERS:
        raise ImageReadError(f"{path}: {len(members):,} members, more than the {MAX_ROI_MEMBERS:,} ROIs read")
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_ROI_BYTES:
        raise ImageReadError(f"{path}: unpacks to {unpacked:,} bytes, more than the {MAX_ROI_BYTES:,} an ROI set "
                             "may hold (a ZIP bomb, or not an ROI set)")


def _paint_checked(labels: np.ndarray, label: int, rings: list[np.ndarray], path: Path, what: str) -> None:
    """`_paint` the rings of 3 points or more, after refusing coordinates that are not finite or are absurd."""
    rings = [r for r in rings if len(r) >= 3]
    for ring in rings:
        if not np.isfinite(ring).all():
            raise ImageReadError(f"{path}: {what} has coordinates that are not finite numbers (NaN or infinity)")
        if np.abs(ring).max() > MAX_COORDINATE:
            raise ImageReadError(f"{path}: {what} has coordinates beyond ±{MAX_COORDINATE:,.0f}")
    if rings:
        _paint(labels, label, rings)


def _features(payload, path: Path) -> list[dict]:
    """The features of a GeoJSON payload, each checked to be an object whose properties are an object."""
    kind = payload.get("type") if isinstance(payload, dict) else None
    if isinstance(payload, list):  # QuPath's "export as array"
        features = payload
    elif kind == "FeatureCollection":
        features = payload.get("features") or []
        if not isinstance(features, list):
            raise ImageReadError(f"{path}: the FeatureCollection's features are not a list")
    elif kind == "Feature":
        features = [payload]
    elif kind in ("Polygon", "MultiPolygon"):
        features = [{"type": "Feature", "geometry": payload, "properties": {}}]
    else:
        raise ImageReadError(f"{path}: not a GeoJSON FeatureCollection, Feature or polygon (type {kind!r:.40})")
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            raise ImageReadError(f"{path}: feature {number} is not a JSON object")
        if not isinstance(feature.get("properties") or {}, dict):
            raise ImageReadError(f"{path}: feature {number}'s properties are not a JSON object")
    return features


def read_geojson(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise the Polygon / MultiPolygon features of a GeoJSON (pixel coordinates, as QuPath writes).

    Feature k becomes label k (or its `properties.name` number when every name is a distinct number, as
    `write_geojson` writes them); interior rings are holes; where features overlap the later one wins.
    A FeatureCollection, a single Feature, a bare Polygon / MultiPolygon or a list of features
    (QuPath's "export as array") is accepted; each polygon is filled at the pixel centres.

    Parameters
    ----------
    path : str or os.PathLike
        The GeoJSON file (UTF-8).
    shape : tuple of int
        (H, W) of the image the features belong to; parts outside it are cut off.

    Returns
    -------
    numpy.ndarray
        (H, W) label image, 0 = background: uint16, or uint32 when the largest id exceeds 65,535.

    Raises
    ------
    ImageReadError
        When the file cannot be read as GeoJSON, or a feature has no readable geometry or is not a
        polygon.

    Examples
    --------
    >>> labels = read_geojson("detections.geojson", (512, 512))  # doctest: +SKIP
    """
    path = Path(path)
    payload = read_json(path, "GeoJSON file", ImageReadError)
    features = _features(payload, path)
    names = [str(((f.get("properties") or {}).get("name")) or "") for f in features]
    ids = _ids_from_names(names)
    labels = _new_labels(shape, max(ids, default=0))
    for number, (feature, label) in enumerate(zip(features, ids), start=1):
        try:
            geometry = geometry_from_json(feature.get("geometry"))
        except Exception as exc:
            raise ImageReadError(f"{path}: feature {number} has no readable geometry ({exc})") from None
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise ImageReadError(f"{path}: feature {number} is a {geometry.geom_type}, not a polygon")
        polygons = [geometry] if geometry.geom_type == "Polygon" else list(geometry.geoms)
        rings = [np.asarray(ring.coords, np.float64) for p in polygons for ring in (p.exterior, *p.interiors)]
        _paint_checked(labels, label, rings, path, f"feature {number}")
    return labels


def read_vector_labels(path: str | os.PathLike, shape: tuple[int, int] | None) -> np.ndarray:
    """An ROI set (.zip) or GeoJSON (.geojson) as a label image of `shape` (needed: outlines carry no size).

    Dispatches on the suffix to `read_roi_zip` or `read_geojson`.

    Parameters
    ----------
    path : str or os.PathLike
        An ImageJ ROI set (``.zip``) or a GeoJSON (``.geojson``).
    shape : tuple of int or None
        (H, W) of the image the outlines belong to (extra entries, e.g. channels, are ignored).

    Returns
    -------
    numpy.ndarray
        (H, W) label image, 0 = background: uint16, or uint32 when the largest id exceeds 65,535.

    Raises
    ------
    ImageReadError
        When the file does not exist, `shape` is None, the suffix is neither .zip nor .geojson, or the
        file cannot be read.

    Examples
    --------
    >>> labels = read_vector_labels("RoiSet.zip", image.shape[:2])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if shape is None:
        raise ImageReadError(f"{path}: outlines carry no image size; pass the image shape to rasterise them")
    shape = tuple(int(s) for s in shape[:2])
    if path.suffix.lower() == ".zip":
        return read_roi_zip(path, shape)
    if path.suffix.lower() == ".geojson":
        return read_geojson(path, shape)
    raise ImageReadError(f"{path}: not an ROI set or GeoJSON; expected one of {', '.join(VECTOR_LABEL_EXTENSIONS)}")
