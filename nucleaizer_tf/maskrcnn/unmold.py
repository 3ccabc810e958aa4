"""From the network's detections to nucleAIzer's label image (NumPy / Pillow / OpenCV, no TensorFlow).

`unmold_detections` is matterport v2.1's (boxes back to the input image, 28x28 masks pasted with
SciPy 1.x `imresize` semantics); `masks_to_labels` is the rest of nucleAIzer's `Segment()`
(crop the reflect padding, dilate each instance, optional hole filling, `MergeMasks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from nucleaizer_tf.labels import label_dtype

__all__ = [
    "box_masks_to_labels",
    "masks_to_labels",
    "unmold_box_masks",
    "unmold_detections",
    "unmold_mask",
]


def _bytescale(mask: np.ndarray) -> np.ndarray:
    """SciPy 1.x `bytescale` of a float mask: its own min..max stretched to 0..255, rounded half up.

    Arithmetic in the mask's dtype (float32), as NumPy does it for ``float32_array * scalar``.
    """
    m = np.asarray(mask)
    lo, hi = m.min(), m.max()
    span = hi - lo
    if span == 0:
        span = 1
    scale = 255.0 / span
    stretched = (m - lo) * scale + 0
    return (stretched.clip(0, 255) + 0.5).astype(np.uint8)


def unmold_mask(mask: np.ndarray, box: Sequence[int], *, absolute_threshold: bool = False) -> np.ndarray:
    """One 28x28 float mask -> uint8 {0, 1} mask of the box size ``(y2-y1, x2-x1)``.

    Faithful (default, QUIRK Q2): byte-scale the mask to its own min/max, Pillow bilinear resize of
    the 8-bit image, keep ``value / 255 >= 0.5`` — i.e. the cut lies mid-way between the mask's
    minimum and maximum, not at probability 0.5 (a constant mask gives an empty result).
    ``absolute_threshold=True`` fixes Q2 like later matterport versions: the float mask is resized
    (Pillow bilinear, 32-bit float) and thresholded at probability 0.5.

    Parameters
    ----------
    mask : numpy.ndarray
        float 28 x 28 sigmoid mask of one detection (its class channel).
    box : sequence of int
        (y1, x1, y2, x2) in pixels of the image given to the detector.
    absolute_threshold : bool
        False (faithful, Q2) or True (threshold at probability 0.5).

    Returns
    -------
    numpy.ndarray
        uint8 {0, 1} of shape (y2-y1, x2-x1); empty (0 rows or columns) for a box of no area.

    Examples
    --------
    >>> constant = np.full((28, 28), 0.9, np.float32)
    >>> int(unmold_mask(constant, (0, 0, 4, 4)).sum())  # Q2: a constant mask gives nothing
    0
    >>> int(unmold_mask(constant, (0, 0, 4, 4), absolute_threshold=True).sum())
    16
    """
    y1, x1, y2, x2 = (int(v) for v in box)
    h, w = y2 - y1, x2 - x1
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), np.uint8)
    if absolute_threshold:
        resized = np.asarray(Image.fromarray(np.asarray(mask, np.float32)).resize((w, h), Image.Resampling.BILINEAR))
        return (resized >= 0.5).astype(np.uint8)
    resized = np.asarray(Image.fromarray(_bytescale(mask)).resize((w, h), Image.Resampling.BILINEAR))
    return (resized.astype(np.float32) / 255.0 >= 0.5).astype(np.uint8)


def unmold_box_masks(detections: np.ndarray, mrcnn_mask: np.ndarray, original_shape: Sequence[int],
                     window: Sequence[int], *, absolute_threshold: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Like `unmold_detections`, but each mask only as its box crop (``rois[i]`` gives its place).

    Memory stays proportional to the boxes, not to ``H x W x N``.

    Parameters
    ----------
    detections : numpy.ndarray
        ``[M, 6]`` (or ``[1, M, 6]``) rows (y1, x1, y2, x2, class_id, score) in molded-image pixels,
        zero-padded.
    mrcnn_mask : numpy.ndarray
        ``[M, 28, 28, num_classes]`` (or with a batch axis) sigmoid masks.
    original_shape : sequence of int
        Shape of the image given to the detector.
    window : sequence of int
        (y1, x1, y2, x2) of the image inside the molded input.
    absolute_threshold : bool
        See `unmold_mask`.

    Returns
    -------
    rois : numpy.ndarray
        int32 [n, 4] boxes in pixels of the image given to the detector (area > 0 only).
    class_ids : numpy.ndarray
        int32 [n].
    scores : numpy.ndarray
        float32 [n].
    masks : list of numpy.ndarray
        uint8 {0, 1} crop of each box, shape (y2-y1, x2-x1).

    Examples
    --------
    >>> detections = np.zeros((4, 6), np.float32)
    >>> detections[0] = [10, 10, 30, 40, 1, 0.99]
    >>> detections[1] = [50, 50, 60, 70, 1, 0.8]
    >>> masks = np.zeros((4, 28, 28, 2), np.float32)
    >>> masks[:, 4:24, 4:24, 1] = 1.0
    >>> rois, class_ids, scores, crops = unmold_box_masks(detections, masks, (64, 64, 3), (0, 0, 128, 128))
    >>> rois, [c.shape for c in crops]  # the 128 x 128 input held the image at scale 2
    (array([[ 5,  5, 15, 20],
           [25, 25, 30, 35]], dtype=int32), [(10, 15), (5, 10)])
    """
    det = np.asarray(detections)
    if det.ndim == 3:
        det = det[0]
    masks = np.asarray(mrcnn_mask)
    if masks.ndim == 5:
        masks = masks[0]
    zero = np.flatnonzero(det[:, 4] == 0)
    n = int(zero[0]) if zero.size else det.shape[0]
    boxes = det[:n, :4]
    class_ids = det[:n, 4].astype(np.int32)
    scores = det[:n, 5]
    wy1, wx1, wy2, wx2 = (int(v) for v in window)
    scale = min(original_shape[0] / (wy2 - wy1), original_shape[1] / (wx2 - wx1))
    shift = np.array([wy1, wx1, wy1, wx1], dtype=np.int64)
    # float32 - int64 promotes to float64, as in matterport; then truncation towards zero.
    rois = np.multiply(boxes - shift, np.array([scale] * 4)).astype(np.int32)
    keep = (rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]) > 0
    idx = np.flatnonzero(keep)
    rois, class_ids, scores = rois[idx], class_ids[idx], scores[idx]
    crops = [unmold_mask(masks[i, :, :, c], rois[k], absolute_threshold=absolute_threshold)
             for k, (i, c) in enumerate(zip(idx, class_ids))]
    return rois, class_ids, scores, crops


def unmold_detections(detections: np.ndarray, mrcnn_mask: np.ndarray, original_shape: Sequence[int],
                      window: Sequence[int], *, absolute_threshold: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """matterport v2.1 `MaskRCNN.unmold_detections` for one image.

    Boxes: ``int32((box - [wy1, wx1, wy1, wx1]) * min(H/wh, W/ww))`` (truncation); boxes of area <= 0
    are dropped.

    Parameters
    ----------
    detections : numpy.ndarray
        ``[M, 6]`` (or ``[1, M, 6]``) rows ``(y1, x1, y2, x2, class_id, score)`` in molded-image
        pixels, zero-padded; only rows before the first ``class_id == 0`` count.
    mrcnn_mask : numpy.ndarray
        ``[M, 28, 28, num_classes]`` sigmoid masks (the channel of each row's class is used).
    original_shape : sequence of int
        Shape of the image given to the detector.
    window : sequence of int
        ``(y1, x1, y2, x2)`` of the image inside the molded input.
    absolute_threshold : bool
        See `unmold_mask`.

    Returns
    -------
    rois : numpy.ndarray
        int32 [n, 4].
    class_ids : numpy.ndarray
        int32 [n].
    scores : numpy.ndarray
        float32 [n].
    masks : numpy.ndarray
        uint8 {0, 1} [H, W, n].

    Examples
    --------
    >>> detections = np.zeros((4, 6), np.float32)
    >>> detections[0] = [10, 10, 30, 40, 1, 0.99]
    >>> masks = np.zeros((4, 28, 28, 2), np.float32)
    >>> masks[:, 4:24, 4:24, 1] = 1.0
    >>> rois, class_ids, scores, full = unmold_detections(detections, masks, (64, 64, 3), (0, 0, 128, 128))
    >>> rois, class_ids, full.shape
    (array([[ 5,  5, 15, 20]], dtype=int32), array([1], dtype=int32), (64, 64, 1))
    """
    rois, class_ids, scores, crops = unmold_box_masks(detections, mrcnn_mask, original_shape, window,
                                                     absolute_threshold=absolute_threshold)
    h, w = int(original_shape[0]), int(original_shape[1])
    full = np.zeros((h, w, len(crops)), np.uint8)
    for k, (roi, crop) in enumerate(zip(rois, crops)):
        _paste(full[:, :, k], roi, crop)
    return rois, class_ids, scores, full


def _paste(canvas: np.ndarray, roi, crop: np.ndarray) -> None:
    """canvas[y1:y2, x1:x2] = crop, clipped to the canvas (v2.1 boxes are inside the window anyway)."""
    y1, x1 = int(roi[0]), int(roi[1])
    h, w = crop.shape
    ya, xa = max(y1, 0), max(x1, 0)
    yb, xb = min(y1 + h, canvas.shape[0]), min(x1 + w, canvas.shape[1])
    if yb > ya and xb > xa:
        canvas[ya:yb, xa:xb] = crop[ya - y1:yb - y1, xa - x1:xb - x1]


# ---------------------------------------------------------------------------------------------------------
# nucleAIzer's post-processing (segmentation.py, spec 2.3 steps 8-12)


@lru_cache(maxsize=8)
def _disk(radius: int) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(np.uint8)


def _instance_pieces(masks: np.ndarray) -> Iterable[tuple[int, int, np.ndarray]]:
    """(y0, x0, crop) of each instance of an ``[H, W, N]`` mask stack (empty instances: 0 x 0 crop)."""
    rows = masks.any(axis=1)  # [H, N]
    cols = masks.any(axis=0)  # [W, N]
    for i in range(masks.shape[2]):
        ys, xs = np.flatnonzero(rows[:, i]), np.flatnonzero(cols[:, i])
        if ys.size == 0:
            yield 0, 0, np.zeros((0, 0), np.uint8)
            continue
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        yield int(y0), int(x0), masks[y0:y1, x0:x1, i]


def _merge(pieces: Iterable[tuple[int, int, np.ndarray]], n: int, image_shape: Sequence[int],
           pad: Sequence[int], dilation: int, fill_holes: bool) -> np.ndarray:
    """Crop the padding, dilate, fill, and merge box-local instance masks (positions on the padded canvas)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    py, px = int(pad[0]), int(pad[1])
    labels = np.zeros((h, w), label_dtype(n))
    r = int(dilation)
    kernel = _disk(r) if r > 0 else None
    for i, (y0, x0, crop) in enumerate(pieces):
        if crop.size == 0:
            continue
        # Into unpadded image coordinates, cut to the image (the reflect border is cropped away).
        y0 -= py
        x0 -= px
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + crop.shape[0], h), min(x0 + crop.shape[1], w)
        if yb <= ya or xb <= xa:
            continue  # entirely in the mirrored border: an empty instance that keeps its number
        piece = crop[ya - y0:yb - y0, xa - x0:xb - x0] != 0
        if kernel is not None:
            # Grow the window by r (inside the image) so the dilation is that of the full image.
            ga, gb = max(ya - r, 0), min(yb + r, h)
            gl, gr = max(xa - r, 0), min(xb + r, w)
            grown = np.zeros((gb - ga, gr - gl), np.uint8)
            grown[ya - ga:yb - ga, xa - gl:xb - gl] = piece
            piece = cv2.dilate(grown, kernel) != 0
            ya, yb, xa, xb = ga, gb, gl, gr
        if fill_holes:
            from scipy.ndimage import binary_fill_holes

            piece = binary_fill_holes(piece)
        region = labels[ya:yb, xa:xb]
        region[piece] = i + 1
    return labels


def masks_to_labels(masks: np.ndarray, *, pad: Sequence[int] = (0, 0), image_shape: Sequence[int],
                    dilation: int = 1, fill_holes: bool = False) -> np.ndarray:
    """nucleAIzer's `Segment()` after `detect()`: instance masks of the padded image -> label image.

    Instance i gets label i+1; on overlap the later (lower-score) instance wins; instances that are
    empty or fully overwritten leave gaps in the numbering. uint16, uint32 above 65,535 instances.
    Works on each instance's bounding box, not on whole images.

    Parameters
    ----------
    masks : numpy.ndarray
        ``[H+2py, W+2px, N]`` {0,1} (or {0,255}) masks in detection order (descending score), e.g.
        from `unmold_detections` on the reflect-padded image.
    pad : sequence of int
        ``(py, px)`` of `molding.reflect_pad`.
    image_shape : sequence of int
        ``(H, W)`` of the unpadded image.
    dilation : int
        Per-instance `cv2.dilate` with skimage ``disk(dilation)`` (disk(1) = 3x3 cross); 0 = off.
    fill_holes : bool
        Fill each instance's holes (what the original's "cavity filling" meant to do; as run it was
        a no-op, QUIRK Q1, hence off by default).

    Returns
    -------
    numpy.ndarray
        uint16 (or uint32) H x W label image, 0 = background.

    Examples
    --------
    >>> masks = np.zeros((10, 10, 2), np.uint8)
    >>> masks[2:6, 2:6, 0] = 1
    >>> masks[4:8, 4:8, 1] = 1
    >>> masks_to_labels(masks, pad=(1, 1), image_shape=(8, 8), dilation=0)  # instance 2 wins the overlap
    array([[0, 0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0, 0, 0],
           [0, 1, 1, 1, 1, 0, 0, 0],
           [0, 1, 1, 2, 2, 2, 2, 0],
           [0, 1, 1, 2, 2, 2, 2, 0],
           [0, 0, 0, 2, 2, 2, 2, 0],
           [0, 0, 0, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected masks of shape [H, W, N], got {masks.shape}")
    py, px = int(pad[0]), int(pad[1])
    h, w = int(image_shape[0]), int(image_shape[1])
    if masks.shape[0] < h + 2 * py or masks.shape[1] < w + 2 * px:
        raise ValueError(f"masks {masks.shape[:2]} smaller than the image {h}x{w} plus padding {py}, {px}")
    return _merge(_instance_pieces(masks), masks.shape[2], (h, w), (py, px), dilation, fill_holes)


def box_masks_to_labels(rois: np.ndarray, box_masks: Sequence[np.ndarray], *, pad: Sequence[int] = (0, 0),
                        image_shape: Sequence[int], dilation: int = 1, fill_holes: bool = False) -> np.ndarray:
    """`masks_to_labels` for the output of `unmold_box_masks` (box crops placed at ``rois[:, :2]``).

    Parameters
    ----------
    rois : numpy.ndarray
        [n, 4] int boxes on the padded canvas; only (y1, x1) is used.
    box_masks : sequence of numpy.ndarray
        One {0, 1} crop per box, in detection order (descending score).
    pad : sequence of int
        ``(py, px)`` of `molding.reflect_pad` ((0, 0) when `rois` are already in image coordinates).
    image_shape : sequence of int
        ``(H, W)`` of the unpadded image.
    dilation : int
        Disk radius of the per-instance dilation (1; 0 = off).
    fill_holes : bool
        Fill each instance's holes (off: QUIRK Q1).

    Returns
    -------
    numpy.ndarray
        uint16 (uint32 above 65,535 instances) H x W label image; instance i gets label i+1.

    Examples
    --------
    >>> rois = np.array([[1, 1, 4, 4], [3, 3, 6, 6]])
    >>> crops = [np.ones((3, 3), np.uint8), np.ones((3, 3), np.uint8)]
    >>> box_masks_to_labels(rois, crops, image_shape=(7, 7), dilation=0)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0, 0, 0],
           [0, 1, 1, 1, 0, 0, 0],
           [0, 1, 1, 2, 2, 2, 0],
           [0, 0, 0, 2, 2, 2, 0],
           [0, 0, 0, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0, 0]], dtype=uint16)
    """
    if len(rois) != len(box_masks):
        raise ValueError(f"{len(rois)} boxes but {len(box_masks)} masks")
    pieces = ((int(r[0]), int(r[1]), np.asarray(m)) for r, m in zip(rois, box_masks))
    return _merge(pieces, len(box_masks), image_shape, pad, dilation, fill_holes)
