"""Kaggle Data Science Bowl 2018 score, as nucleAIzer computes it (docs/method.md §7.2).

Per image and threshold t in 0.50, 0.55, ..., 0.95 a ground-truth (GT) object is a true positive when some
predicted object has IoU > t (strict), and ``prec_t = TP / (TP + FP + FN)``; the image score is the mean of
the ten ``prec_t``.  Objects are the distinct nonzero values of a label image, whatever their values
(gaps and any order are fine).

Everything is computed from the sparse contingency table of (GT label, predicted label) pairs that share
pixels, so a 2048x2048 image with thousands of objects costs a few passes over the pixels and never a
dense ``pixels x objects`` array.

Deliberate differences from the MATLAB ``evalImage``: labels need not be consecutive (MATLAB indexes
``regionprops`` by label value), an image with a single row is scored normally (MATLAB returns 0), and a
shape mismatch raises instead of scoring 0 (a silent 0 would hide a pairing bug).  Substituting 0 for a
missing prediction is the caller's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .errors import NucleaizerError
from .labels import as_label_array

__all__ = [
    "THRESHOLDS",
    "ImageScore",
    "DatasetScore",
    "ShapeMismatchError",
    "iou_matrix",
    "agreement",
    "score_image",
    "dsb_score",
    "score_dataset",
]

#: IoU thresholds 0.50..0.95.  Rounded so each equals the double nearest to its decimal value
#: (``np.arange(0.5, 1, 0.05)`` yields e.g. 0.7500000000000002, which would change strict comparisons).
THRESHOLDS: np.ndarray = np.round(0.5 + 0.05 * np.arange(10), 2)
THRESHOLDS.setflags(write=False)

#: The threshold used for matching, F1 and the tp/fp/fn counts.
_MATCH_T = 0.5

# Labels up to max(this, pixel count) are indexed with a lookup table (linear time, table no larger than
# the image); larger or negative labels go through np.unique (a sort).
_LUT_MAX = 1 << 20


class ShapeMismatchError(NucleaizerError, ValueError):
    """GT and prediction differ in shape.  A ValueError for callers, a one-line message for the CLI."""


# --------------------------------------------------------------------------------------------------------
# contingency table


def _index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a label image to object indices: returns (ids, idx) with idx 0 = background, k = ids[k-1].

    ids are the sorted distinct nonzero labels.  Small non-negative labels (the usual case) go through a
    bincount + lookup table, which is linear in the pixel count; anything else falls back to a sort.
    """
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=labels.dtype), np.zeros(0, dtype=np.intp)
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi <= max(_LUT_MAX, flat.size):
        flat = flat.astype(np.intp, copy=False)  # bincount refuses uint64
        present = np.bincount(flat, minlength=hi + 1).astype(bool)
        present[0] = False
        ids = np.flatnonzero(present)
        lut = np.zeros(hi + 1, dtype=np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        return ids.astype(labels.dtype), lut[flat]
    values, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.ravel().astype(np.intp)
    zero = np.searchsorted(values, 0)
    has_zero = zero < values.size and values[zero] == 0
    if not has_zero:
        return values, inverse + 1  # shift so that index 0 stays "background"
    # move background to index 0, keep the others in ascending label order
    remap = np.arange(values.size, dtype=np.intp) + 1
    remap[zero:] -= 1
    remap[zero] = 0
    return np.delete(values, zero), remap[inverse]


def _pairs(gt, pred):
    """Sparse contingency table: (gt_ids, pred_ids, gi, pj, iou) for every overlapping pair.

    gi / pj index into gt_ids / pred_ids (0-based); iou[k] belongs to pair (gi[k], pj[k]).  Only pixels that
    are foreground in both images are visited, so memory is O(pixels + overlapping pairs).
    """
    g = as_label_array(gt, "ground truth", allow_negative=True)
    p = as_label_array(pred, "prediction", allow_negative=True)
    if g.shape != p.shape:
        raise ShapeMismatchError(
            f"ground truth and prediction differ in shape: ground truth {g.shape}, prediction {p.shape}"
        )
    gt_ids, g_idx = _index(g)
    pred_ids, p_idx = _index(p)
    n_gt, n_pred = gt_ids.size, pred_ids.size
    gt_area = np.bincount(g_idx, minlength=n_gt + 1)[1:]
    pred_area = np.bincount(p_idx, minlength=n_pred + 1)[1:]

    both = (g_idx > 0) & (p_idx > 0)
    codes = (g_idx[both].astype(np.int64) - 1) * max(n_pred, 1) + (p_idx[both].astype(np.int64) - 1)
    codes, inter = np.unique(codes, return_counts=True)
    gi = (codes // max(n_pred, 1)).astype(np.intp)
    pj = (codes % max(n_pred, 1)).astype(np.intp)
    union = gt_area[gi] + pred_area[pj] - inter
    iou = inter / union.astype(np.float64)
    return gt_ids, pred_ids, gi, pj, iou


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every GT object with every predicted object.

    Intersections are counted sparsely; only the returned ``n_gt x n_pred`` float matrix is dense.

    Parameters
    ----------
    gt : array_like
        (H, W) ground-truth label image; every distinct nonzero value is one object (any integer values,
        negative included; bool or whole-number floats accepted).
    pred : array_like
        (H, W) predicted label image, the same shape as `gt`.

    Returns
    -------
    iou : numpy.ndarray
        (n_gt, n_pred) float64 matrix: ``iou[i, j]`` is the IoU of label ``gt_ids[i]`` with label
        ``pred_ids[j]`` (0 where they do not touch).
    gt_ids : numpy.ndarray
        The sorted distinct nonzero labels of `gt`, (n_gt,).
    pred_ids : numpy.ndarray
        The sorted distinct nonzero labels of `pred`, (n_pred,).

    Raises
    ------
    ShapeMismatchError
        When `gt` and `pred` differ in shape (a ValueError).
    ValueError
        When either is not a 2-D label image.

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1; gt[3:6, 3:6] = 2
    >>> pred = np.zeros((6, 6), np.uint8); pred[0:3, 0:2] = 7; pred[4:6, 0:2] = 9
    >>> iou, gt_ids, pred_ids = iou_matrix(gt, pred)
    >>> iou.round(3).tolist(), gt_ids.tolist(), pred_ids.tolist()
    ([[0.667, 0.0], [0.0, 0.0]], [1, 2], [7, 9])
    """
    gt_ids, pred_ids, gi, pj, iou = _pairs(gt, pred)
    mat = np.zeros((gt_ids.size, pred_ids.size), dtype=np.float64)
    mat[gi, pj] = iou
    return mat, gt_ids, pred_ids


@dataclass(frozen=True)
class Agreement:
    """How closely two segmentations of one image agree, object by object (`agreement`).

    Attributes
    ----------
    objects
        (objects in the first, objects in the second).
    worst_iou
        (lowest best-match IoU of an object of the first, the same for the second); 1.0 when identical.
    below
        (objects of the first, of the second) whose best match has IoU < `threshold`.
    split
        Objects of the first overlapping two or more objects of the second.
    threshold
        The IoU `below` counts against.

    Examples
    --------
    >>> agreement(np.array([[1, 1, 0]]), np.array([[4, 4, 0]])).worst_iou
    (1.0, 1.0)
    """

    objects: tuple[int, int]
    worst_iou: tuple[float, float]
    below: tuple[int, int]
    split: int
    threshold: float

    @property
    def matched(self) -> bool:
        """Every object of either side has a partner at IoU >= `threshold`, and none is split."""
        return self.below == (0, 0) and self.split == 0


def agreement(first: np.ndarray, second: np.ndarray, threshold: float = 0.99) -> Agreement:
    """Object-by-object agreement of two label images of the same scene (any ids, any dtypes).

    Parameters
    ----------
    first, second
        Label images of one shape.
    threshold
        The IoU every object's best partner should reach.

    Returns
    -------
    Agreement

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 2, 2]])
    >>> agreement(a, a * 7).matched
    True
    >>> agreement(a, np.array([[1, 3, 0, 2, 2]])).split
    1
    """
    first_ids, second_ids, gi, pj, iou = _pairs(first, second)

    def best(index, n):
        out = np.zeros(n, np.float64)
        np.maximum.at(out, index, iou)
        return out

    best_first, best_second = best(gi, first_ids.size), best(pj, second_ids.size)
    # a split object: two or more objects of the second each cover a tenth of it or more
    first_area = np.bincount(_index(np.asarray(first))[1], minlength=first_ids.size + 1)[1:]
    second_area = np.bincount(_index(np.asarray(second))[1], minlength=second_ids.size + 1)[1:]
    inter = iou * (first_area[gi] + second_area[pj]) / (1.0 + iou)
    large = inter >= 0.1 * first_area[gi]
    split = int((np.bincount(gi[large], minlength=first_ids.size) >= 2).sum())
    worst = tuple(float(b.min()) if b.size else 1.0 for b in (best_first, best_second))
    below = tuple(int((b < threshold).sum()) for b in (best_first, best_second))
    return Agreement((int(first_ids.size), int(second_ids.size)), worst, below, split, float(threshold))


def _match(gi: np.ndarray, pj: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """One-to-one matching at IoU > 0.5; returns the IoUs of the matched pairs in GT-label order.

    For label images (disjoint objects) this keeps every pair above 0.5 unchanged: if g had IoU > 0.5 with
    p1 and p2, then |g n p1| > |g u p1| / 2 >= |g| / 2 and likewise for p2, so p1 and p2 would cover more
    than |g| pixels of g while being disjoint - impossible (symmetrically for a prediction).  Hence
    "some prediction has IoU > t" (MATLAB) equals "the matched partner has IoU > t" for every t >= 0.5.
    The greedy highest-IoU-first pass below makes the uniqueness explicit rather than assumed.
    """
    cand = np.flatnonzero(iou > _MATCH_T)
    order = cand[np.lexsort((gi[cand], -iou[cand]))]  # highest IoU first, ties by GT index
    _, first_g = np.unique(gi[order], return_index=True)
    keep = np.zeros(order.size, dtype=bool)
    keep[first_g] = True
    _, first_p = np.unique(pj[order], return_index=True)
    keep_p = np.zeros(order.size, dtype=bool)
    keep_p[first_p] = True
    chosen = order[keep & keep_p]
    chosen = chosen[np.argsort(gi[chosen], kind="stable")]
    return iou[chosen]


# --------------------------------------------------------------------------------------------------------
# scores


def _none_if_nan(x: float):
    return None if isinstance(x, float) and math.isnan(x) else x


def _ratio(num: float, den: float) -> float:
    """num / den with 0/0 -> NaN (the metric's undefined case) instead of a warning or exception."""
    return float(num) / float(den) if den else math.nan


@dataclass(frozen=True)
class ImageScore:
    """Score of one image.  Counts, F1 and matched IoUs are at IoU 0.5; ``precisions`` follow THRESHOLDS.

    ``dsb`` and ``f1`` are NaN when the image has no GT and no predicted object (0/0, as in the original);
    ``mean_matched_iou`` is NaN when nothing matched.  Made by `score_image`; ``to_dict`` gives the
    JSON-ready form.

    Attributes
    ----------
    name : str
        The image's name as given to `score_image` ("" by default).
    dsb : float
        The DSB 2018 score: the mean of ``precisions``.
    f1 : float
        ``2 TP / (n_gt + n_pred)`` at IoU 0.5.
    mean_matched_iou : float
        The mean IoU of the matched (TP) pairs.
    n_gt, n_pred : int
        The numbers of ground-truth and predicted objects.
    tp, fp, fn : int
        True positives (matched pairs), false positives (unmatched predictions) and false negatives
        (unmatched GT objects), at IoU 0.5.
    precisions : tuple of float
        ``TP / (TP + FP + FN)`` at each of the ten THRESHOLDS 0.50, 0.55, ..., 0.95 (IoU > t, strict).
    matched_ious : tuple of float
        The IoU of every matched pair, in GT-label order.

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1; gt[3:6, 3:6] = 2
    >>> pred = np.zeros((6, 6), np.uint8); pred[0:3, 0:2] = 7; pred[4:6, 0:2] = 9
    >>> s = score_image(gt, pred, "a")
    >>> s.name, round(s.dsb, 4), s.f1, (s.tp, s.fp, s.fn)
    ('a', 0.1333, 0.5, (1, 1, 1))
    >>> [round(p, 3) for p in s.precisions]
    [0.333, 0.333, 0.333, 0.333, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """

    name: str
    dsb: float
    f1: float
    mean_matched_iou: float
    n_gt: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precisions: tuple[float, ...]
    matched_ious: tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-ready dict (plain ints/floats/lists; NaN -> None so ``json.dumps`` stays strict-valid)."""
        return {
            "name": self.name,
            "dsb": _none_if_nan(float(self.dsb)),
            "f1": _none_if_nan(float(self.f1)),
            "mean_matched_iou": _none_if_nan(float(self.mean_matched_iou)),
            "n_gt": int(self.n_gt),
            "n_pred": int(self.n_pred),
            "tp": int(self.tp),
            "fp": int(self.fp),
            "fn": int(self.fn),
            "precisions": [_none_if_nan(float(x)) for x in self.precisions],
            "matched_ious": [float(x) for x in self.matched_ious],
        }


@dataclass(frozen=True)
class DatasetScore:
    """Scores of a set of images.

    ``dsb`` is the mean of the per-image scores that are defined; the original's plain mean would turn
    NaN as soon as one image has neither GT nor prediction, so those are counted in ``n_undefined``
    instead.  ``f1``/``tp``/``fp``/``fn`` are pooled over all images (object-level, so large images weigh
    more) and ``mean_matched_iou`` averages all matched pairs of all images.  Made by `score_dataset`;
    ``to_dict`` gives the JSON-ready form.

    Attributes
    ----------
    dsb : float
        The mean of the defined per-image DSB scores (NaN when none is defined).
    f1 : float
        Pooled ``2 TP / (2 TP + FP + FN)`` at IoU 0.5 (NaN when there is no object at all).
    mean_matched_iou : float
        The mean IoU of all matched pairs of all images (NaN when nothing matched).
    n_images : int
        The number of images.
    n_undefined : int
        The number of images whose DSB score is undefined (neither GT nor predicted objects).
    tp, fp, fn : int
        True positives, false positives and false negatives at IoU 0.5, summed over the images.
    images : tuple of ImageScore
        The per-image scores, in the order given.

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1; gt[3:6, 3:6] = 2
    >>> empty = np.zeros((6, 6), np.uint8)
    >>> d = score_dataset([score_image(gt, gt), score_image(empty, empty)])
    >>> d.dsb, d.f1, d.n_images, d.n_undefined
    (1.0, 1.0, 2, 1)
    """

    dsb: float
    f1: float
    mean_matched_iou: float
    n_images: int
    n_undefined: int
    tp: int
    fp: int
    fn: int
    images: tuple[ImageScore, ...]

    def to_dict(self) -> dict:
        """JSON-ready dict; ``images`` is the list of per-image dicts."""
        return {
            "dsb": _none_if_nan(float(self.dsb)),
            "f1": _none_if_nan(float(self.f1)),
            "mean_matched_iou": _none_if_nan(float(self.mean_matched_iou)),
            "n_images": int(self.n_images),
            "n_undefined": int(self.n_undefined),
            "tp": int(self.tp),
            "fp": int(self.fp),
            "fn": int(self.fn),
            "images": [s.to_dict() for s in self.images],
        }


def score_image(gt, pred, name: str = "") -> ImageScore:
    """DSB 2018 score of one predicted label image against its GT label image (docs/method.md §7.2).

    Predicted and GT objects are matched one-to-one at IoU > 0.5; at each threshold t of THRESHOLDS a GT
    object is a true positive when its match has IoU > t (strict), and ``prec_t = TP / (TP + FP + FN)``.

    Parameters
    ----------
    gt : array_like
        (H, W) ground-truth label image, 0 = background; every distinct nonzero value is one object
        (gaps and any order are fine).
    pred : array_like
        (H, W) predicted label image, the same shape as `gt`.
    name : str, optional
        Stored in the result's ``name`` (default "").

    Returns
    -------
    ImageScore
        The DSB score (mean of the ten ``prec_t``; NaN when both images are empty), F1, counts and
        matched IoUs at IoU 0.5.

    Raises
    ------
    ShapeMismatchError
        When the shapes differ (a ValueError).
    ValueError
        For non-label input (see `nucleaizer_tf.labels.as_label_array`).

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1; gt[3:6, 3:6] = 2
    >>> pred = np.zeros((6, 6), np.uint8); pred[0:3, 0:2] = 7; pred[4:6, 0:2] = 9
    >>> s = score_image(gt, pred, "a")
    >>> round(s.dsb, 4), s.n_gt, s.n_pred, s.tp, [round(x, 3) for x in s.matched_ious]
    (0.1333, 2, 2, 1, [0.667])
    """
    gt_ids, pred_ids, gi, pj, iou = _pairs(gt, pred)
    n_gt, n_pred = int(gt_ids.size), int(pred_ids.size)
    matched = _match(gi, pj, iou)
    # TP_t for all thresholds at once: matched IoUs are the only candidates above 0.5 (see _match).
    tp_t = (matched[None, :] > THRESHOLDS[:, None]).sum(axis=1)
    # TP + FP + FN = TP + (n_pred - TP) + (n_gt - TP)
    precisions = tuple(_ratio(tp, n_gt + n_pred - tp) for tp in tp_t)
    tp = int(matched.size)
    return ImageScore(
        name=name,
        dsb=float(np.mean(precisions)),  # NaN in, NaN out: the empty/empty case
        f1=_ratio(2 * tp, n_gt + n_pred),
        mean_matched_iou=float(matched.mean()) if tp else math.nan,
        n_gt=n_gt,
        n_pred=n_pred,
        tp=tp,
        fp=n_pred - tp,
        fn=n_gt - tp,
        precisions=precisions,
        matched_ious=tuple(float(x) for x in matched),
    )


def dsb_score(gt, pred) -> float:
    """Just the per-image DSB score (NaN when both images are empty): ``score_image(gt, pred).dsb``.

    Parameters
    ----------
    gt : array_like
        (H, W) ground-truth label image, 0 = background.
    pred : array_like
        (H, W) predicted label image, the same shape as `gt`.

    Returns
    -------
    float
        The DSB 2018 score in [0, 1], or NaN when neither image has an object.

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1
    >>> dsb_score(gt, gt), dsb_score(np.zeros((6, 6), int), np.zeros((6, 6), int))
    (1.0, nan)
    """
    return score_image(gt, pred).dsb


def score_dataset(scores: Iterable[ImageScore]) -> DatasetScore:
    """Combine per-image scores; see DatasetScore for how each number is pooled.

    Parameters
    ----------
    scores : iterable of ImageScore
        The per-image scores, e.g. from `score_image`.

    Returns
    -------
    DatasetScore
        The mean of the defined DSB scores, pooled F1 and counts, and the per-image scores in order.

    Examples
    --------
    >>> gt = np.zeros((6, 6), np.uint8); gt[0:3, 0:3] = 1; gt[3:6, 3:6] = 2
    >>> pred = np.zeros((6, 6), np.uint8); pred[0:3, 0:2] = 7; pred[4:6, 0:2] = 9
    >>> d = score_dataset([score_image(gt, pred, "a"), score_image(gt, gt, "b")])
    >>> round(d.dsb, 4), d.f1, (d.tp, d.fp, d.fn), [s.name for s in d.images]
    (0.5667, 0.75, (3, 1, 1), ['a', 'b'])
    """
    images = tuple(scores)
    dsb = np.array([s.dsb for s in images], dtype=np.float64)
    defined = dsb[~np.isnan(dsb)]
    tp = sum(s.tp for s in images)
    fp = sum(s.fp for s in images)
    fn = sum(s.fn for s in images)
    ious = [x for s in images for x in s.matched_ious]
    return DatasetScore(
        dsb=float(defined.mean()) if defined.size else math.nan,
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        mean_matched_iou=float(np.mean(ious)) if ious else math.nan,
        n_images=len(images),
        n_undefined=int(dsb.size - defined.size),
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        images=images,
    )
