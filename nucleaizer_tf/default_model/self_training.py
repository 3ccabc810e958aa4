"""Self-training targets: a model's own confident nuclei in unannotated images, the rest left out of the loss.

`adapt` can fine-tune the default model on the images it is about to segment, without annotation, by
teaching it its own best answers there: nuclei it found with high confidence are kept as training
nuclei, pixels it calls background with high confidence are kept as background, and everything in
between (uncertain nuclei, their surroundings, doubtful pixels) is marked `IGNORE`, which the training
targets (`targets.make_target_fn`) turn into pixels that add nothing to the loss, rather than calling
them background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: label value of the pixels left out of the loss (`targets.make_target_fn` gives them no class)
IGNORE = -1


def nucleus_confidence(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per nucleus, the mean foreground probability (1 − P(background)) over its pixels.

    Parameters
    ----------
    prob : numpy.ndarray
        H×W×3 class probabilities (background, interior, boundary), float in [0, 1].
    labels : numpy.ndarray
        H×W label image of the same image, 0 = background.

    Returns
    -------
    numpy.ndarray
        float64 array indexed by label id (index 0 and absent ids: 0).

    Examples
    --------
    >>> prob = np.zeros((4, 4, 3)); prob[..., 0] = 1.0; prob[:2, :2] = (0.1, 0.8, 0.1)
    >>> labels = np.zeros((4, 4), np.int32); labels[:2, :2] = 1; labels[3, 3] = 2
    >>> nucleus_confidence(prob, labels).round(2).tolist()
    [0.0, 0.9, 0.0]
    """
    labels = np.asarray(labels)
    foreground = 1.0 - np.asarray(prob, np.float64)[..., 0]
    n = int(labels.max(initial=0)) + 1
    sums = np.bincount(labels.ravel(), weights=foreground.ravel(), minlength=n)
    counts = np.bincount(labels.ravel(), minlength=n)
    confidence = np.divide(sums, counts, out=np.zeros(n), where=counts > 0)
    confidence[0] = 0.0
    return confidence


def confident_pixels(prob: np.ndarray, labels: np.ndarray, min_confidence: float = 0.85) -> np.ndarray:
    """(pixels of the nuclei with `nucleus_confidence` ≥ `min_confidence`, pixels of all nuclei).

    Their ratio, pooled over images, says how much of what a model found it is sure of: `adapt` keeps
    the view of the images (as they are or inverted grey) where it is larger.

    Parameters
    ----------
    prob : numpy.ndarray
        H×W×3 class probabilities (background, interior, boundary): float in [0, 1] or uint8 (0–255).
    labels : numpy.ndarray
        H×W label image of the same image, 0 = background.
    min_confidence : float, optional
        Least mean foreground probability of a confident nucleus (default 0.85).

    Returns
    -------
    numpy.ndarray
        float64 [confident nucleus pixels, nucleus pixels].

    Examples
    --------
    >>> prob = np.zeros((2, 4, 3)); prob[..., 0] = 1.0
    >>> prob[:, :2] = (0.05, 0.9, 0.05); prob[:, 2] = (0.5, 0.5, 0.0)  # a sure nucleus, an unsure one
    >>> labels = np.array([[1, 1, 2, 0], [1, 1, 2, 0]])
    >>> confident_pixels(prob, labels).tolist()
    [4.0, 6.0]
    """
    prob = np.asarray(prob)
    if prob.dtype == np.uint8:
        prob = prob.astype(np.float32) / np.float32(255.0)
    labels = np.asarray(labels).astype(np.int64)
    sure = nucleus_confidence(prob, labels) >= min_confidence
    sure[0] = False
    return np.array([float(sure[labels].sum()), float((labels > 0).sum())])


def confident_targets(prob: np.ndarray, labels: np.ndarray, *, min_confidence: float = 0.85,
                      background: float = 0.9, margin: int = 3) -> np.ndarray:
    """int32 self-training labels: the confident nuclei, confident background, `IGNORE` elsewhere.

    A nucleus is kept when its `nucleus_confidence` is at least `min_confidence`. A pixel is
    background when its background probability is at least `background` and it lies more than
    `margin` pixels from every nucleus that was not kept. All other pixels are `IGNORE`.

    Parameters
    ----------
    prob : numpy.ndarray
        H×W×3 class probabilities (background, interior, boundary), float in [0, 1].
    labels : numpy.ndarray
        The model's H×W label image of the same image.
    min_confidence : float, optional
        Least mean foreground probability of a kept nucleus (default 0.85).
    background : float, optional
        Least background probability of a background pixel (default 0.9).
    margin : int, optional
        Pixels around a rejected nucleus that are ignored even where the model calls them
        background (default 3).

    Returns
    -------
    numpy.ndarray
        int32 H×W: kept nuclei numbered 1..n, 0 background, `IGNORE` (−1) elsewhere.

    Examples
    --------
    >>> prob = np.zeros((6, 6, 3)); prob[..., 0] = 1.0
    >>> prob[:2, :2] = (0.05, 0.9, 0.05)           # a confident nucleus
    >>> prob[4:, 4:] = (0.4, 0.5, 0.1)             # a doubtful one
    >>> labels = np.zeros((6, 6), np.int32); labels[:2, :2] = 3; labels[4:, 4:] = 7
    >>> confident_targets(prob, labels, margin=1)
    array([[ 1,  1,  0,  0,  0,  0],
           [ 1,  1,  0,  0,  0,  0],
           [ 0,  0,  0,  0,  0,  0],
           [ 0,  0,  0, -1, -1, -1],
           [ 0,  0,  0, -1, -1, -1],
           [ 0,  0,  0, -1, -1, -1]], dtype=int32)
    """
    labels = np.asarray(labels).astype(np.int64)
    prob = np.asarray(prob, np.float64)
    confidence = nucleus_confidence(prob, labels)
    keep = confidence >= min_confidence
    keep[0] = False
    new_ids = np.zeros(confidence.size, np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    out = np.full(labels.shape, IGNORE, np.int32)
    rejected = (labels > 0) & ~keep[labels]
    if margin > 0 and rejected.any():
        rejected = ndimage.binary_dilation(rejected, np.ones((3, 3), bool), iterations=margin)
    out[(prob[..., 0] >= background) & ~rejected & (labels == 0)] = 0
    kept = keep[labels]
    out[kept] = new_ids[labels[kept]]
    return out
