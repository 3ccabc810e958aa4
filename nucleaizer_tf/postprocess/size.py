"""Nucleus-size estimation (docs/method.md §3): how large to make each image so its median nucleus is ~40·f px.

The presegmentation gives a median nucleus diameter per image; from it the second Mask R-CNN pass gets a
per-image input size ("scale") for each correction factor f. The original's statistic is kept exactly,
docs/method.md, quirk Q3 included: labels 1..max that are absent from the image count as diameter 0 in the median.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import atomic_path
from nucleaizer_tf.postprocess.resize import matlab_round

EXPECTED_CELL_SIZE = 40.0  # target median equivalent diameter (px) the detector was trained for
MAX_TENSOR = 6000.0  # cap on the long side fed to Mask R-CNN
TENSOR_STEP = 64  # scales are multiples of 64·f
FACTORS = (1, 2, 4)
UNET_CSV = "scales-unet.csv"


def rcnn_csv_name(factor: int) -> str:
    """File name of the original's scale table for correction factor `factor`.

    Parameters
    ----------
    factor : int
        Correction factor f (1, 2 or 4 in the original).

    Returns
    -------
    str
        ``"scales-rcnn-<f>x.csv"``.

    Examples
    --------
    >>> rcnn_csv_name(2)
    'scales-rcnn-2x.csv'
    """
    return f"scales-rcnn-{factor}x.csv"


def object_areas(labels) -> np.ndarray:
    """Pixel count of every label 1..max(label); absent labels (gaps) get 0.

    Parameters
    ----------
    labels : array_like
        Label image of non-negative integers, 0 = background (any shape, normally (H, W)).

    Returns
    -------
    np.ndarray
        (max(label),) int64 areas in pixels, entry k - 1 for label k; empty for an empty image or one
        without labels.

    Raises
    ------
    ValueError
        If the values are not non-negative integers, or the ids are far above the pixel count
        (see `label_id_problem`).

    Examples
    --------
    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:2, 0:2] = 1
    >>> lab[3:6, 3:6] = 3
    >>> object_areas(lab)
    array([4, 0, 9])
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("a label image must hold non-negative integers")
    problem = label_id_problem(labels)
    if problem:
        raise ValueError(problem)
    return np.bincount(labels.ravel().astype(np.intp, copy=False))[1:]  # uint32/uint64 ids need the cast


def label_id_problem(labels) -> str | None:
    """Why the ids of `labels` cannot be counted 1..max(label), or None when they can.

    The ids are refused when max(label) exceeds the pixel count by more than `MAX_ID_GAP` (65536): the
    gaps would outnumber any object and a table of them would not fit in memory.

    Parameters
    ----------
    labels : array_like
        Integer label image, 0 = background.

    Returns
    -------
    str or None
        A message saying what is wrong and how to fix it (relabel 1..N, or ``--exclude-gaps``), or None.

    Examples
    --------
    >>> label_id_problem(np.array([[0, 10**12]]))[:32]
    'label ids up to 1000000000000 in'
    >>> label_id_problem(np.array([[0, 1], [2, 7]])) is None
    True
    """
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    if top <= labels.size + MAX_ID_GAP:
        return None
    return (f"label ids up to {top} in an image of {labels.size} pixels: every missing id of 1..{top} would "
            "count as a 0-diameter object; relabel the objects 1..N (or use --exclude-gaps)")


MAX_ID_GAP = 65536  # ids this far above the pixel count are refused when gaps are counted


def median_equivalent_diameter(labels, include_gaps: bool = True) -> float:
    """Median of sqrt(4·area/π) over labels 1..max(label), MATLAB `regionprops(…,'EquivDiameter')` style.

    `include_gaps=True` (faithful, docs/method.md, quirk Q3) counts each missing id as a 0-diameter object,
    which pulls the median down when stage 1 or small-object removal left gaps; `False` takes the median
    over objects that exist. NaN when there is no object.

    Parameters
    ----------
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    include_gaps : bool, default True
        Count ids 1..max(label) that do not occur as diameter 0 (quirk Q3, faithful). With False, huge
        sparse ids are accepted too, since no table of 1..max is built.

    Returns
    -------
    float
        Median equivalent diameter in pixels; NaN when the image has no object.

    Raises
    ------
    ValueError
        With `include_gaps`, for non-integer or negative values or ids far above the pixel count.

    Examples
    --------
    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:2, 0:2] = 1                 # area 4, diameter 2.257
    >>> lab[3:6, 3:6] = 3                 # area 9, diameter 3.385; id 2 is a gap (diameter 0)
    >>> round(median_equivalent_diameter(lab), 3)
    2.257
    >>> round(median_equivalent_diameter(lab, include_gaps=False), 3)
    2.821
    >>> median_equivalent_diameter(np.zeros((6, 6), dtype=np.int32))
    nan
    """
    if not include_gaps:  # by id, so huge (sparse) ids need no table of 1..max
        labels = np.asarray(labels)
        areas = np.unique(labels[labels > 0], return_counts=True)[1] if labels.size else np.zeros(0, np.int64)
    else:
        areas = object_areas(labels)
    if areas.size == 0:  # no label at all (the last id 1..max always exists, so gaps alone cannot empty it)
        return math.nan
    return float(np.median(np.sqrt(4.0 * areas / np.pi)))


@dataclass(frozen=True)
class SizeRecord:
    """What the scale computation needs from one label image.

    Attributes
    ----------
    name : str
        Image name; tables sort the images by it.
    shape : tuple of int
        ``(H, W)`` of the label image, in pixels.
    median_diameter : float
        Median equivalent diameter in pixels (`median_equivalent_diameter`); NaN when there is no object.
    n_objects : int or None, default None
        Number of labels present in the image; None when the record was built from a bare median.
    n_labels : int or None, default None
        Maximum label id, gaps included; None when built from a bare median.

    Examples
    --------
    >>> SizeRecord("a.tiff", (256, 320), 38.84)
    SizeRecord(name='a.tiff', shape=(256, 320), median_diameter=38.84, n_objects=None, n_labels=None)
    """

    name: str
    shape: tuple[int, int]
    median_diameter: float
    n_objects: int | None = None  # labels present (None when built from a bare median)
    n_labels: int | None = None  # max label id, gaps included


def measure(name: str, labels, include_gaps: bool = True) -> SizeRecord:
    """Size record of one label image.

    Parameters
    ----------
    name : str
        Image name stored in the record (also used in error messages).
    labels : array_like
        (H, W) label image of non-negative integers, 0 = background.
    include_gaps : bool, default True
        Passed to `median_equivalent_diameter` (quirk Q3). With False, ids far above the pixel count are
        accepted.

    Returns
    -------
    SizeRecord
        Name, shape, median diameter, number of labels present (`n_objects`) and max id (`n_labels`).

    Raises
    ------
    ValueError
        If `labels` is not 2-D or not a valid label image; the message starts with `name`.

    Examples
    --------
    >>> lab = np.zeros((6, 6), dtype=np.int32)
    >>> lab[0:2, 0:2] = 1
    >>> lab[3:6, 3:6] = 3
    >>> r = measure("a.tiff", lab)
    >>> r.shape, round(r.median_diameter, 3), r.n_objects, r.n_labels
    ((6, 6), 2.257, 2, 3)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name}: a label image must be 2-D, got shape {labels.shape}")
    if not include_gaps and label_id_problem(labels):
        present = np.unique(labels[labels > 0])
        return SizeRecord(name, (int(labels.shape[0]), int(labels.shape[1])),
                          median_equivalent_diameter(labels, include_gaps),
                          n_objects=int(present.size), n_labels=int(labels.max()))
    try:
        areas = object_areas(labels)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return SizeRecord(name, (int(labels.shape[0]), int(labels.shape[1])),
                      median_equivalent_diameter(labels, include_gaps),
                      n_objects=int(np.count_nonzero(areas)), n_labels=int(areas.size))


@dataclass(frozen=True)
class ScaleTable:
    """Per-image scales, images in name order; `raw[f]`/`rounded[f]` are aligned with `records`.

    Built by `network_sizes`; `rows` gives the order of the original's CSV files.

    Attributes
    ----------
    records : tuple of SizeRecord
        One record per image, sorted by name.
    factors : tuple of int
        Correction factors f, e.g. ``(1, 2, 4)``.
    target : float
        Target median equivalent diameter in pixels (`EXPECTED_CELL_SIZE`, 40).
    cap : float
        Cap on the raw size (`MAX_TENSOR`, 6000).
    raw : dict of int to np.ndarray
        Per factor, (n_images,) float64 raw sizes ``min(target/median · (H+W)/2 · f, cap)``; NaN when
        the median is NaN.
    rounded : dict of int to np.ndarray
        Per factor, the raw sizes rounded to the nearest multiple of 64·f (halves away from zero).

    Examples
    --------
    >>> table = network_sizes([("a", (256, 320), 38.84), ("b", (256, 256), 10.19)])
    >>> table.names
    ['a', 'b']
    >>> table.rows(4)
    [('a', 1280.0), ('b', 4096.0)]
    """

    records: tuple[SizeRecord, ...]
    factors: tuple[int, ...]
    target: float
    cap: float
    raw: dict[int, np.ndarray] = field(repr=False)
    rounded: dict[int, np.ndarray] = field(repr=False)

    @property
    def names(self) -> list[str]:
        """Image names in table (name) order."""
        return [r.name for r in self.records]

    def order(self, factor: int) -> np.ndarray:
        """Indices sorting the raw values ascending, ties (e.g. at the cap) kept in name order; NaN last."""
        return np.argsort(self.raw[factor], kind="stable")

    def rows(self, factor: int) -> list[tuple[str, float]]:
        """(name, rounded scale) in the order the original's CSV lists them."""
        return [(self.records[i].name, float(self.rounded[factor][i])) for i in self.order(factor)]

    def unet_ratio(self, factor: int) -> np.ndarray:
        """target/median·f: the resize ratio the original wrote to scales-unet.csv (used by no workflow)."""
        medians = np.array([r.median_diameter for r in self.records], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.target / medians * factor

    def report(self) -> list[dict]:
        """One JSON-ready "measured" entry per image: median, object counts, raw and rounded scale per f."""
        out = []
        for i, r in enumerate(self.records):
            out.append({
                "name": r.name,
                "shape": list(r.shape),
                "median_diameter": _json_float(r.median_diameter),
                "n_objects": r.n_objects,
                "n_labels": r.n_labels,
                "scales": {f"{f}x": {"raw": _json_float(self.raw[f][i]), "rounded": _json_float(self.rounded[f][i])}
                           for f in self.factors},
            })
        return out


def _json_float(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def network_sizes(
    labels_by_name: Mapping[str, np.ndarray] | Iterable,
    factors: Iterable[int] = FACTORS,
    target: float = EXPECTED_CELL_SIZE,
    cap: float = MAX_TENSOR,
    include_gaps: bool = True,
) -> ScaleTable:
    """Mask R-CNN input sizes per image and factor (docs/method.md §3).

    raw = min(target/median · (H+W)/2 · f, cap); rounded = nearest multiple of 64·f, halves away from zero.
    Accepts {name: label image} or records (`SizeRecord` or (name, shape, median) tuples). Images are
    taken in name order (the original listed `*.tiff` alphabetically), which decides ties in the sort.
    A NaN median (no object) stays NaN, as in the original; the segmenter must clamp it
    (docs/method.md, quirk Q16).

    Parameters
    ----------
    labels_by_name : mapping or iterable
        ``{name: (H, W) label image}`` (each measured with `measure`), or an iterable of `SizeRecord`
        objects or ``(name, shape, median_diameter)`` tuples.
    factors : iterable of int, default (1, 2, 4)
        Correction factors f (`FACTORS`).
    target : float, default 40.0
        Target median equivalent diameter in pixels (`EXPECTED_CELL_SIZE`).
    cap : float, default 6000.0
        Upper limit of the raw size (`MAX_TENSOR`).
    include_gaps : bool, default True
        For label images: count missing ids as diameter 0 in the median (quirk Q3).

    Returns
    -------
    ScaleTable
        Records in name order with the raw and rounded sizes per factor.

    Examples
    --------
    The two examples of docs/method.md §3:

    >>> table = network_sizes([("a", (256, 320), 38.84), ("b", (256, 256), 10.19)])
    >>> [table.rounded[f].tolist() for f in table.factors]
    [[320.0, 1024.0], [640.0, 2048.0], [1280.0, 4096.0]]
    >>> table.raw[1].round(2)
    array([ 296.6 , 1004.91])
    """
    if isinstance(labels_by_name, Mapping):
        records = [measure(name, labels, include_gaps) for name, labels in labels_by_name.items()]
    else:
        records = [r if isinstance(r, SizeRecord) else SizeRecord(str(r[0]), tuple(int(v) for v in r[1][:2]),
                                                                  float(r[2])) for r in labels_by_name]
    records.sort(key=lambda r: r.name)
    factors = tuple(int(f) for f in factors)
    medians = np.array([r.median_diameter for r in records], dtype=np.float64)
    mean_side = np.array([(r.shape[0] + r.shape[1]) / 2.0 for r in records], dtype=np.float64)
    raw, rounded = {}, {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for f in factors:
            values = target / medians * mean_side * f
            raw[f] = np.where(np.isnan(values), np.nan, np.minimum(values, cap))
            step = TENSOR_STEP * f
            rounded[f] = matlab_round(raw[f] / step) * step
    return ScaleTable(tuple(records), factors, float(target), float(cap), raw, rounded)


def _fmt(value: float) -> str:
    """MATLAB `%f` (6 decimals; NaN/Inf spelled as MATLAB prints them)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return f"{value:f}"


def write_scale_csvs(table: ScaleTable, out_dir: str | os.PathLike) -> list[Path]:
    """Write the original's scale files into `out_dir`, each atomically; returns the paths written.

    `scales-rcnn-<f>x.csv`: `name<TAB>value` per line, ascending, no header. `scales-unet.csv`: name order,
    target/median·f for the LAST factor (the original rewrote it per factor, so f = 4 survived).
    Values are written as MATLAB's ``%f`` does (six decimals, ``NaN``/``Inf``).

    Parameters
    ----------
    table : ScaleTable
        Sizes from `network_sizes`.
    out_dir : str or os.PathLike
        Folder to write into (created if missing); existing files of the same names are replaced.

    Returns
    -------
    list of pathlib.Path
        One `scales-rcnn-<f>x.csv` per factor, in factor order, then `scales-unet.csv` (when there are
        factors).

    Examples
    --------
    >>> import tempfile
    >>> table = network_sizes([("a", (256, 320), 38.84), ("b", (256, 256), 10.19)])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_scale_csvs(table, tmp)
    ...     print([p.name for p in paths])
    ...     print(read_scale_csv(paths[1]))
    ['scales-rcnn-1x.csv', 'scales-rcnn-2x.csv', 'scales-rcnn-4x.csv', 'scales-unet.csv']
    {'a': 640.0, 'b': 2048.0}
    """
    out_dir = Path(out_dir)
    written = []
    for f in table.factors:
        lines = "".join(f"{name}\t{_fmt(value)}\n" for name, value in table.rows(f))
        written.append(_write_text(out_dir / rcnn_csv_name(f), lines))
    if table.factors:
        ratios = table.unet_ratio(table.factors[-1])
        lines = "".join(f"{r.name}\t{_fmt(v)}\n" for r, v in zip(table.records, ratios))
        written.append(_write_text(out_dir / UNET_CSV, lines))
    return written


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_scale_csv(path: str | os.PathLike) -> dict[str, float]:
    """Read a scale file (`name<TAB>value` lines) into {name: value}, file order kept.

    Blank lines are skipped; the name is everything before the last tab.

    Parameters
    ----------
    path : str or os.PathLike
        A `scales-rcnn-<f>x.csv` or `scales-unet.csv` file, as `write_scale_csvs` or the original wrote it.

    Returns
    -------
    dict of str to float
        Image name -> scale value (``NaN`` lines give nan).

    Raises
    ------
    NucleaizerError
        If the file is missing or unreadable, or a line is not ``name<TAB>number`` (file and line named).

    Examples
    --------
    >>> read_scale_csv("work/scales-rcnn-2x.csv")  # doctest: +SKIP
    {'a': 640.0, 'b': 2048.0}
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NucleaizerError(f"{path}: scale file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NucleaizerError(f"{path}: cannot read scale file ({exc})") from None
    scales = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.rstrip("\r").rpartition("\t")
        try:
            if not sep or not name:
                raise ValueError
            scales[name] = float(value)
        except ValueError:
            raise NucleaizerError(f"{path}:{number}: expected 'name<TAB>number', got {line!r}") from None
    return scales
