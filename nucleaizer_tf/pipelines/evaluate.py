"""Score a folder of predicted label images against a folder of ground-truth label images."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import numpy as np

from nucleaizer_tf.data.pairs import match_stems
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import LABEL_SOURCE_EXTENSIONS, VECTOR_LABEL_EXTENSIONS, atomic_path, read_labels
from nucleaizer_tf.metrics import THRESHOLDS, DatasetScore, ImageScore, score_dataset, score_image


def pair_predictions(
    gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, *, missing_as_empty: bool = False
) -> list[tuple[str, Path, Path | None]]:
    """(stem, ground truth, prediction) triples; unmatched stems are an error unless `missing_as_empty`.

    With `missing_as_empty` a ground truth without a prediction is scored against an empty prediction
    (score 0), as the original's evaluation did, and predictions without a ground truth are ignored.
    Either side may hold ImageJ ROI sets (.zip) or GeoJSON outlines; see `read_pair`.

    Parameters
    ----------
    gt_dir : str or os.PathLike
        The ground-truth folder (label images, ROI sets or GeoJSON).
    pred_dir : str or os.PathLike
        The prediction folder (the same kinds of file).
    missing_as_empty : bool, optional
        Accept ground truths without a prediction (default False: unmatched stems are an error).

    Returns
    -------
    list of tuple
        ``(stem, ground-truth path, prediction path or None)``, sorted by stem.

    Raises
    ------
    PairingError
        When a folder is missing or empty, a stem occurs twice in one folder, or stems do not match
        (the message lists the unmatched stems of each side).

    Examples
    --------
    >>> pair_predictions("gt", "out")                           # doctest: +SKIP
    [('a', PosixPath('gt/a.tiff'), PosixPath('out/a.tiff'))]
    >>> pair_predictions("gt", "out", missing_as_empty=True)    # doctest: +SKIP
    [('a', PosixPath('gt/a.tiff'), PosixPath('out/a.tiff')), ('b', PosixPath('gt/b.tiff'), None)]
    """
    return match_stems(
        gt_dir,
        pred_dir,
        left=("ground-truth", LABEL_SOURCE_EXTENSIONS),
        right=("prediction", LABEL_SOURCE_EXTENSIONS),
        allow_missing_right=missing_as_empty,
    )


def _is_outlines(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() in VECTOR_LABEL_EXTENSIONS


def read_pair(gt_path: Path, pred_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) label images; outlines (.zip, .geojson) take the other side's shape.

    Parameters
    ----------
    gt_path : pathlib.Path
        The ground truth: a label image, an ImageJ ROI set or a GeoJSON file.
    pred_path : pathlib.Path or None
        The prediction, of the same kinds; None = an empty prediction of the ground truth's shape.

    Returns
    -------
    gt : numpy.ndarray
        The ground-truth label image.
    pred : numpy.ndarray
        The predicted label image.

    Raises
    ------
    NucleaizerError
        When both sides are outlines (or the ground truth is and the prediction is absent): outlines
        carry no image size.

    Examples
    --------
    >>> gt, pred = read_pair(Path("gt/a.tiff"), Path("fiji/a.zip"))  # doctest: +SKIP
    """
    if _is_outlines(gt_path) and (pred_path is None or _is_outlines(pred_path)):
        raise NucleaizerError(f"{gt_path}: outlines carry no image size, so the other side of the pair must be a "
                              "label image (TIFF/PNG)")
    if _is_outlines(gt_path):
        pred = read_labels(pred_path)
        return read_labels(gt_path, shape=pred.shape), pred
    gt = read_labels(gt_path)
    pred = read_labels(pred_path, shape=gt.shape) if pred_path is not None else np.zeros_like(gt)
    return gt, pred


def score_pairs(
    pairs: list[tuple[str, Path, Path | None]], *, progress: Callable[[str], None] | None = None
) -> DatasetScore:
    """Read and score each pair (an absent prediction counts as empty), then pool the scores.

    Parameters
    ----------
    pairs : list of tuple
        ``(stem, ground-truth path, prediction path or None)``, as `pair_predictions` gives them.
    progress : callable, optional
        Called with each stem after its image is scored.

    Returns
    -------
    DatasetScore
        The DSB score, pooled F1 and counts, and the per-image scores (`nucleaizer_tf.metrics`).

    Raises
    ------
    NucleaizerError
        When a prediction's shape differs from its ground truth's.

    Examples
    --------
    >>> result = score_pairs(pair_predictions("gt", "out"), progress=print)  # doctest: +SKIP
    a
    >>> round(result.dsb, 3)                                                 # doctest: +SKIP
    0.612
    """
    scores: list[ImageScore] = []
    for stem, gt_path, pred_path in pairs:
        gt, pred = read_pair(gt_path, pred_path)
        if pred.shape != gt.shape:
            raise NucleaizerError(f"{pred_path}: prediction of shape {pred.shape} but ground truth {gt_path} is {gt.shape}")
        scores.append(score_image(gt, pred, name=stem))
        if progress is not None:
            progress(stem)
    return score_dataset(scores)


def evaluate_folders(gt_dir, pred_dir, *, missing_as_empty: bool = False) -> DatasetScore:
    """DSB score of every ground-truth image in `gt_dir` against the same-stem prediction in `pred_dir`.

    Parameters
    ----------
    gt_dir : str or os.PathLike
        The ground-truth folder.
    pred_dir : str or os.PathLike
        The prediction folder.
    missing_as_empty : bool, optional
        Score a ground truth without a prediction against an empty one (default False: an error).

    Returns
    -------
    DatasetScore
        See `score_pairs`.

    Examples
    --------
    >>> result = evaluate_folders("gt", "out")   # doctest: +SKIP
    >>> result.n_images, round(result.f1, 3)      # doctest: +SKIP
    (12, 0.781)
    """
    return score_pairs(pair_predictions(gt_dir, pred_dir, missing_as_empty=missing_as_empty))


CSV_COLUMNS = ("name", "dsb", "f1", "mean_matched_iou", "n_gt", "n_pred", "tp", "fp", "fn") + tuple(
    f"p{t:.2f}" for t in THRESHOLDS
)


def write_scores_csv(path: str | os.PathLike, result: DatasetScore) -> Path:
    """Per-image rows (and per-threshold precisions) as CSV for spreadsheets; NaN written as empty.

    The columns are `CSV_COLUMNS`: name, dsb, f1, mean_matched_iou, n_gt, n_pred, tp, fp, fn, then
    p0.50 ... p0.95. The file is written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file to write.
    result : DatasetScore
        The scores, as `score_pairs` gives them.

    Returns
    -------
    pathlib.Path
        `path`.

    Examples
    --------
    >>> write_scores_csv("scores.csv", evaluate_folders("gt", "out"))  # doctest: +SKIP
    PosixPath('scores.csv')
    """

    def cell(value):
        return "" if isinstance(value, float) and np.isnan(value) else value

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for s in result.images:
                row = [s.name, s.dsb, s.f1, s.mean_matched_iou, s.n_gt, s.n_pred, s.tp, s.fp, s.fn, *s.precisions]
                writer.writerow([cell(v) for v in row])
    return Path(path)
