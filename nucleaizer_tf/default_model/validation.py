"""Scoring a default model the way users meet it: whole images through `DefaultModel.segment`, per group."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from nucleaizer_tf.metrics import DatasetScore, score_dataset, score_image

ALL = "all"


def score_by_group(segment: Callable[[np.ndarray], np.ndarray],
                   examples: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
                   *, on_image: Callable[[str], None] | None = None) -> dict[str, DatasetScore]:
    """Segment every (name, group, image, labels) example with `segment` and score it, per group and overall.

    Parameters
    ----------
    segment : callable
        ``segment(image) -> labels``, e.g. ``DefaultModel.segment`` (the real inference path: size
        estimation, tiling, instance step) or `nucleaizer_tf.baseline.classical_segment`.
    examples : sequence of tuple
        ``(name, group, image, ground-truth labels)``; the group is e.g. the image's modality.
    on_image : callable, optional
        Called with each image's name once it is scored (a progress tick).

    Returns
    -------
    dict of str to DatasetScore
        One entry per group, in order of first appearance, then ``"all"`` (`ALL`) over every image.

    Examples
    --------
    >>> gt = np.zeros((8, 8), np.int32); gt[1:4, 1:4] = 1; gt[5:8, 5:8] = 2
    >>> scores = score_by_group(lambda image: gt, [("a", "fluorescence", gt, gt), ("b", "stained", gt, gt)])
    >>> list(scores), scores["all"].dsb, scores["stained"].n_images
    (['fluorescence', 'stained', 'all'], 1.0, 1)
    """
    per_group: dict[str, list] = {}
    every = []
    for name, group, image, labels in examples:
        score = score_image(labels, segment(image), name=name)
        per_group.setdefault(group, []).append(score)
        every.append(score)
        if on_image is not None:
            on_image(name)
    out = {group: score_dataset(scores) for group, scores in per_group.items()}
    out[ALL] = score_dataset(every)
    return out


def selection_score(scores: dict[str, DatasetScore]) -> float:
    """The number model selection maximises: the overall DSB score (mean over images; 0 when undefined).

    Parameters
    ----------
    scores : dict of str to DatasetScore
        `score_by_group`'s result.

    Returns
    -------
    float
        The ``"all"`` group's DSB score.

    Examples
    --------
    >>> gt = np.zeros((8, 8), np.int32); gt[1:4, 1:4] = 1
    >>> selection_score(score_by_group(lambda image: gt, [("a", "x", gt, gt)]))
    1.0
    """
    dsb = scores[ALL].dsb
    return 0.0 if math.isnan(dsb) else float(dsb)


def score_rows(scores: dict[str, DatasetScore]) -> list[dict]:
    """JSON-ready rows (group, images, DSB, F1@0.5, matched IoU, nuclei found / true) of `score_by_group`'s result.

    Parameters
    ----------
    scores : dict of str to DatasetScore
        `score_by_group`'s result.

    Returns
    -------
    list of dict
        One row per group, in order: group, images, dsb, f1, matched_iou, found, true.

    Examples
    --------
    >>> gt = np.zeros((8, 8), np.int32); gt[1:4, 1:4] = 1
    >>> score_rows(score_by_group(lambda image: gt, [("a", "x", gt, gt)]))[0]["dsb"]
    1.0
    """
    rows = []
    for group, s in scores.items():
        rows.append({"group": group, "images": s.n_images, "dsb": s.dsb, "f1": s.f1, "matched_iou": s.mean_matched_iou,
                     "found": int(s.tp + s.fp), "true": int(s.tp + s.fn)})
    return rows
