"""Per-image exports for Fiji, QuPath and spreadsheets, for `predict` and for `measure`.

`export_image` writes `OUT/rois/<stem>.zip`, `OUT/geojson/<stem>.geojson` and
`OUT/measurements/<stem>.csv` for one image and returns its `summary.csv` row; `predict_files`
calls it after each label image, `measure_folders` for label images made by any tool.
"""

from __future__ import annotations

import math

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nucleaizer_tf.data.pairs import match_stems
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import IMAGE_EXTENSIONS, LABEL_SOURCE_EXTENSIONS, read_labels, write_labels
from nucleaizer_tf.io.read import ReadOptions, read_input
from nucleaizer_tf.io.export import write_geojson, write_roi_zip, write_rows_csv, write_table_csv
from nucleaizer_tf.measure import basic_measurements, measure_nuclei, summarise, trace_outlines

SUMMARY_NAME = "summary.csv"


@dataclass(frozen=True)
class ExportOptions:
    """Which per-image files to write besides the label image, and the pixel size for µm columns.

    Attributes
    ----------
    rois : bool
        Write an ImageJ/Fiji ROI set, ``rois/<stem>.zip`` (default False).
    geojson : bool
        Write QuPath-readable outlines with their measurements, ``geojson/<stem>.geojson`` (default False).
    csv : bool
        Write one measurement row per nucleus, ``measurements/<stem>.csv``, and the run's `summary.csv`
        (default False).
    pixel_size : float or None
        µm per pixel: adds the µm columns (default None: pixels only). Only with `csv` or `geojson`.
    probabilities : bool
        Write the default model's class map, ``probabilities/<stem>.tiff``: uint8 RGB at the image's
        resolution, red = P(background), green = P(interior), blue = P(boundary), 0–255 (default False).

    Raises
    ------
    NucleaizerError
        For a pixel size that is not a finite positive number, or one given without `csv` or `geojson`.

    Examples
    --------
    >>> ExportOptions(rois=True, csv=True, pixel_size=0.325).any
    True
    >>> ExportOptions().any
    False
    >>> ExportOptions(rois=True, pixel_size=0.325)
    Traceback (most recent call last):
    ...
    nucleaizer_tf.errors.NucleaizerError: --pixel-size applies to the measurements: give --save-csv or ...
    """

    rois: bool = False
    geojson: bool = False
    csv: bool = False
    pixel_size: float | None = None
    probabilities: bool = False

    def __post_init__(self):
        if self.pixel_size is not None and not (math.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise NucleaizerError(f"--pixel-size must be a finite positive number (µm per pixel), got {self.pixel_size}")
        if self.pixel_size is not None and not (self.csv or self.geojson):
            raise NucleaizerError("--pixel-size applies to the measurements: give --save-csv or --save-geojson with it")

    @property
    def any(self) -> bool:
        """Whether any export is asked for (ROI set, GeoJSON or CSV).

        Returns
        -------
        bool
            ``rois or geojson or csv``.

        Examples
        --------
        >>> ExportOptions(geojson=True).any
        True
        """
        return self.rois or self.geojson or self.csv


#: export kind -> (sub-folder of OUT, file suffix), in the order the files are written
_EXPORT_FILES = {"labels": ("labels", ".tiff"), "csv": ("measurements", ".csv"), "rois": ("rois", ".zip"),
                 "geojson": ("geojson", ".geojson")}


def _export_path(out_dir, stem: str, kind: str) -> Path:
    folder, suffix = _EXPORT_FILES[kind]
    return Path(out_dir) / folder / f"{stem}{suffix}"


def export_image(out_dir: str | os.PathLike, stem: str, image: np.ndarray | None, labels: np.ndarray,
                 options: ExportOptions, facts: dict | None = None, *, stack_axes: str = "") -> dict:
    """Write the chosen exports of one image and return its summary row (`facts` first, then counts).

    Measurements use `image`'s own values (a 16-bit image gives 16-bit intensities). Each file is written
    atomically: ``<out_dir>/measurements/<stem>.csv``, ``<out_dir>/rois/<stem>.zip`` and
    ``<out_dir>/geojson/<stem>.geojson``, as `options` asks. A stack (`stack_axes`) is measured plane by
    plane: its rows start with one column per plane axis (``z``, ``t``: the 0-based plane index), and
    each ROI carries its plane (ImageJ's 1-based stack position).

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    stem : str
        The image's file stem, which names its files.
    image : numpy.ndarray or None
        The image the labels were made from (for intensity columns), or None (shape columns only).
    labels : numpy.ndarray
        Its label image (0 = background), or label stack.
    options : ExportOptions
        Which files to write, and the pixel size.
    facts : dict, optional
        The row's first entries (image, labels, model, seconds, ...).
    stack_axes : str, optional
        The plane axes in front of `image` and `labels` (``"Z"``, ``"TZ"``); ``""`` (default): 2-D.

    Returns
    -------
    dict
        `facts`, then ``nuclei`` and, with `options.csv`, ``median_area_px`` and ``median_diameter_px``
        (and the µm versions with a pixel size).

    Raises
    ------
    NucleaizerError
        When `image` and `labels` differ in height or width (or planes), or GeoJSON is asked of a stack.

    Examples
    --------
    >>> row = export_image("out", "a", image, labels, ExportOptions(csv=True), {"image": "a.tif"})  # doctest: +SKIP
    >>> row["nuclei"]                                                                                 # doctest: +SKIP
    42
    """
    n = len(stack_axes)
    if image is not None and np.shape(image)[:n + 2] != np.shape(labels):
        raise NucleaizerError(f"{stem}: image of shape {np.shape(image)} but labels of shape {np.shape(labels)}")
    if n and options.geojson:
        raise NucleaizerError(f"{stem}: QuPath detections are 2-D; GeoJSON is not written for a stack (axes {stack_axes})")
    tables, outlines, positions = [], [], []
    for flat, index in enumerate(np.ndindex(*np.shape(labels)[:n])):  # one index, (), for a 2-D image
        plane = labels[index]
        if options.csv:
            table = measure_nuclei(plane, None if image is None else image[index], pixel_size=options.pixel_size)
        else:
            table = basic_measurements(plane, pixel_size=options.pixel_size)
        rows = len(table["label"])
        tables.append({**{a.lower(): np.full(rows, i) for a, i in zip(stack_axes, index)}, **table})
        if options.rois or options.geojson:
            traced = trace_outlines(plane)
            outlines += traced
            positions += [flat + 1 if n else 0] * len(traced)
    table = tables[0] if len(tables) == 1 else {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
    if options.csv:
        write_table_csv(_export_path(out_dir, stem, "csv"), table)
    if options.rois:
        write_roi_zip(_export_path(out_dir, stem, "rois"), outlines, positions=positions if n else None)
    if options.geojson:
        write_geojson(_export_path(out_dir, stem, "geojson"), outlines, table)
    row = dict(facts or {})
    if "equivalent_diameter_px" in table:
        row.update(summarise(table))
    else:
        row["nuclei"] = int(len(table["label"]))
    return row


def export_paths(out_dir: str | os.PathLike, stem: str, options: ExportOptions, *, label_tiff: bool = True) -> list[Path]:
    """The files `export_labels` writes for `stem` with these options, in the order it writes them.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    stem : str
        The image's file stem.
    options : ExportOptions
        Which exports.
    label_tiff : bool, optional
        Include the label TIFF ``labels/<stem>.tiff`` (default True).

    Returns
    -------
    list of pathlib.Path
        Label TIFF, measurements CSV, ROI zip, GeoJSON, as chosen.

    Examples
    --------
    >>> [p.as_posix() for p in export_paths("out", "a", ExportOptions(rois=True))]
    ['out/labels/a.tiff', 'out/rois/a.zip']
    """
    wanted = {"labels": label_tiff, "csv": options.csv, "rois": options.rois, "geojson": options.geojson}
    return [_export_path(out_dir, stem, kind) for kind in _EXPORT_FILES if wanted[kind]]


def export_labels(out_dir: str | os.PathLike, stem: str, labels: np.ndarray, image: np.ndarray | None = None, *,
                  options: ExportOptions = ExportOptions(rois=True, geojson=True, csv=True), label_tiff: bool = True,
                  overwrite: bool = False) -> list[Path]:
    """Write one label image (say, corrected by hand in napari) as a label TIFF and the chosen exports.

    The same writers as `predict --save-rois --save-geojson --save-csv`: ``labels/<stem>.tiff``,
    ``measurements/<stem>.csv``, ``rois/<stem>.zip`` and ``geojson/<stem>.geojson`` under `out_dir`,
    each written atomically. Without `overwrite`, an existing file among them stops the export before
    anything is written.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder (created if needed).
    stem : str
        The file stem the files are named by.
    labels : numpy.ndarray
        2-D label image, 0 = background.
    image : numpy.ndarray, optional
        The image the labels belong to, for the intensity columns; None for shape columns only.
    options : ExportOptions, optional
        Which exports (default: ROI set, GeoJSON and CSV) and the pixel size.
    label_tiff : bool, optional
        Also write the label TIFF (default True).
    overwrite : bool, optional
        Replace files already there (default False: refuse).

    Returns
    -------
    list of pathlib.Path
        The files written, as `export_paths` lists them.

    Raises
    ------
    NucleaizerError
        When a target file exists and `overwrite` is False, `labels` is not 2-D, or `image` and `labels`
        differ in height or width; nothing is written then.

    Examples
    --------
    >>> export_labels("exports", "cells", labels, image)  # doctest: +SKIP
    [PosixPath('exports/labels/cells.tiff'), PosixPath('exports/measurements/cells.csv'), ...]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise NucleaizerError(f"{stem}: a label image must be 2-D, got shape {labels.shape}")
    if image is not None and np.shape(image)[:2] != labels.shape:
        raise NucleaizerError(f"{stem}: image of shape {np.shape(image)} but labels of shape {labels.shape}")
    paths = export_paths(out_dir, stem, options, label_tiff=label_tiff)
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise NucleaizerError(f"{existing[0]}: already exists; choose another folder or allow overwriting")
    if label_tiff:
        write_labels(paths[0], labels)
    export_image(out_dir, stem, image, labels, options)
    return paths


SUMMARY_COLUMNS = ["image", "labels", "nuclei", "median_area_px", "median_diameter_px", "median_area_um2",
                   "median_diameter_um", "model", "seconds"]


def write_summary(out_dir: str | os.PathLike, rows: list[dict], options: ExportOptions) -> Path | None:
    """`OUT/summary.csv`, one row per image, when CSV output is on (header only when no image succeeded).

    Written atomically, with the columns of `SUMMARY_COLUMNS` (the µm columns only with a pixel size).

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    rows : list of dict
        The summary rows, as `export_image` returns them, in order.
    options : ExportOptions
        The run's exports; nothing is written without `options.csv`.

    Returns
    -------
    pathlib.Path or None
        The written `summary.csv`, or None when CSV output is off.

    Examples
    --------
    >>> write_summary("out", rows, ExportOptions(csv=True))  # doctest: +SKIP
    """
    if not options.csv:
        return None
    columns = SUMMARY_COLUMNS if options.pixel_size is not None else [c for c in SUMMARY_COLUMNS if "_um" not in c]
    return write_rows_csv(Path(out_dir) / SUMMARY_NAME, rows, columns)


@dataclass
class MeasureReport:
    """What `measure_folders` did: the summary rows and the `summary.csv` written.

    Attributes
    ----------
    rows : list of dict
        One summary row per image pair, in order (see `export_image`), with its ``seconds``.
    summary : pathlib.Path or None
        The written `summary.csv`.

    Examples
    --------
    >>> report = measure_folders(pairs, "out", ExportOptions(csv=True))  # doctest: +SKIP
    >>> report.rows[0]["nuclei"], report.summary                        # doctest: +SKIP
    (42, PosixPath('out/summary.csv'))
    """

    rows: list[dict] = field(default_factory=list)
    summary: Path | None = None


def pair_images_with_labels(images_dir: str | os.PathLike, labels_dir: str | os.PathLike,
                            out_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """(stem, image, label source) triples, matched by stem like `evaluate`; OUT must be a third folder.

    Label sources are label images, ImageJ ROI sets (.zip) or GeoJSON (.geojson).

    Parameters
    ----------
    images_dir : str or os.PathLike
        The image folder.
    labels_dir : str or os.PathLike
        The label folder.
    out_dir : str or os.PathLike
        The output folder; it must differ from both input folders.

    Returns
    -------
    list of tuple
        ``(stem, image path, label path)``, sorted by stem.

    Raises
    ------
    NucleaizerError
        When `out_dir` is one of the input folders.
    PairingError
        When the folders do not pair up by stem (see `nucleaizer_tf.data.pairs.match_stems`).

    Examples
    --------
    >>> pair_images_with_labels("images", "labels", "out")  # doctest: +SKIP
    [('a', PosixPath('images/a.png'), PosixPath('labels/a.tiff'))]
    """
    out = Path(out_dir)
    for folder in (images_dir, labels_dir):
        if out.exists() and Path(folder).exists() and out.resolve() == Path(folder).resolve():
            raise NucleaizerError(f"{out}: the output folder must differ from the input folders")
    return match_stems(images_dir, labels_dir, left=("image", IMAGE_EXTENSIONS),
                       right=("label", LABEL_SOURCE_EXTENSIONS))


def measure_folders(pairs: list[tuple[str, Path, Path]], out_dir: str | os.PathLike, options: ExportOptions, *,
                    progress: Callable[[str], None] | None = None, read: ReadOptions = ReadOptions()) -> MeasureReport:
    """Measurements (and the chosen ROI / GeoJSON exports) for each image / label pair, then `summary.csv`.

    A pair whose image and labels differ in shape stops the run with an error naming both files.
    Per-nucleus measurements are always written (`options.csv` is taken as True); ROI sets and GeoJSON
    as `options` asks.

    Parameters
    ----------
    pairs : list of tuple
        ``(stem, image path, label path)``, as `pair_images_with_labels` gives them.
    out_dir : str or os.PathLike
        The output folder.
    options : ExportOptions
        The ROI / GeoJSON exports and the pixel size.
    progress : callable, optional
        Called with each stem after its files are written.
    read : ReadOptions, optional
        How the images are read, as `predict` reads them (the channel of multi-channel images; with
        ``planes="each"`` a stack is measured plane by plane against its label stack).

    Returns
    -------
    MeasureReport
        The summary rows and the path of `summary.csv`.

    Raises
    ------
    NucleaizerError
        When an image and its labels differ in shape, or a file cannot be read.

    Examples
    --------
    >>> pairs = pair_images_with_labels("images", "labels", "out")        # doctest: +SKIP
    >>> measure_folders(pairs, "out", ExportOptions(csv=True, rois=True))  # doctest: +SKIP
    """
    options = ExportOptions(rois=options.rois, geojson=options.geojson, csv=True, pixel_size=options.pixel_size)
    report = MeasureReport()
    for stem, image_path, label_path in pairs:
        started = time.perf_counter()
        image, axes = read_input(image_path, read)
        shape = image.shape[:len(axes) + 2]
        labels = read_labels(label_path, shape=shape)
        if labels.shape != shape:
            raise NucleaizerError(f"{image_path} and {label_path}: image of shape {shape} but labels "
                                  f"of shape {labels.shape}; they must be the same size")
        row = export_image(out_dir, stem, image, labels, options, {"image": str(image_path), "labels": str(label_path)},
                           stack_axes=axes)
        row["seconds"] = round(time.perf_counter() - started, 3)
        report.rows.append(row)
        if progress is not None:
            progress(stem)
    report.summary = write_summary(out_dir, report.rows, options)
    return report
