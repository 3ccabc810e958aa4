"""One image through the legacy Mask R-CNN exactly as nucleAIzer's `segmentation.py` did (docs/method.md §2.3).

convert to 8-bit RGB → reflect-pad 5 % → long side resized to the network size D and zero-padded to
D × D → mean-pixel subtraction → network → matterport v2.1 unmolding (per-mask min–max byte-scaling,
docs/method.md, quirk Q2) → crop of the padding → per-instance dilation with disk(1) → merge in score order, lower
scores overwriting, label = detection rank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nucleaizer_tf.io import to_rgb8
from nucleaizer_tf.maskrcnn.molding import image_meta, manual_network_size, mold, reflect_pad, resize_for_model, round_size_up
from nucleaizer_tf.maskrcnn.unmold import box_masks_to_labels, unmold_box_masks


@dataclass(frozen=True)
class SegmentOptions:
    """The per-image settings of nucleAIzer's segmentation JSON (presegment.json defaults).

    Attributes
    ----------
    image_size : int
        Network size D (rounded up to a multiple of 64), ignored when `nucleus_size` is set (1024).
    nucleus_size : float or None
        The manual-size variant (docs/method.md §2.7): typical nucleus diameter in pixels, from which D
        is chosen per image so nuclei reach 80 px in the network (`molding.manual_network_size`).
    padding : float
        Reflect padding ratio per side (0.05).
    dilation : int
        Disk radius of the per-instance dilation (1; 0 = off).
    fill_holes : bool
        Real hole filling per instance (the original's was a no-op, docs/method.md, quirk Q1).
    absolute_mask_threshold : bool
        Threshold masks at probability 0.5 instead of the v2.1 min–max mid-point (Q2).
    conversion : str
        `to_rgb8` mode for non-8-bit inputs ("nucleaizer").

    Examples
    --------
    >>> SegmentOptions().network_size(500, 600)
    1024
    >>> SegmentOptions(nucleus_size=20.0).network_size(1000, 1000)
    3968
    """

    image_size: int = 1024
    nucleus_size: float | None = None
    padding: float = 0.05
    dilation: int = 1
    fill_holes: bool = False
    absolute_mask_threshold: bool = False
    conversion: str = "nucleaizer"

    def network_size(self, height: int, width: int) -> int:
        """Network size D for an image of `height` x `width` pixels (before reflect padding)."""
        if self.nucleus_size is not None:
            return manual_network_size(height, width, self.nucleus_size)
        return round_size_up(self.image_size)

    def to_dict(self) -> dict:
        """The options as a plain dict (`dataclasses.asdict`)."""
        return asdict(self)


@dataclass(frozen=True)
class Detections:
    """Detections of one image in its own pixel coordinates.

    Attributes
    ----------
    rois : numpy.ndarray
        int32 [n, 4] (y1, x1, y2, x2) — boxes of detections in the mirrored border lie partly or wholly
        outside the image.
    class_ids : numpy.ndarray
        int32 [n] class of each detection (1 = nucleus).
    scores : numpy.ndarray
        float32 [n] in descending order.
    box_masks : list of numpy.ndarray
        box_masks[i]: uint8 {0, 1} mask of box i, shape (y2-y1, x2-x1).
    image_shape : tuple of int
        (H, W) of the image.
    network_size : int
        The network size D the image ran at.

    Examples
    --------
    >>> detections = Detections(rois=np.array([[-2, 1, 3, 5], [2, 2, 6, 6]], np.int32),
    ...                         class_ids=np.array([1, 1], np.int32), scores=np.array([0.9, 0.7], np.float32),
    ...                         box_masks=[np.ones((5, 4), np.uint8), np.ones((4, 4), np.uint8)],
    ...                         image_shape=(6, 6), network_size=64)
    >>> len(detections), detections.masks().shape, detections.masks().sum(axis=(0, 1))
    (2, (6, 6, 2), array([12, 16]))
    """

    rois: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    box_masks: list
    image_shape: tuple[int, int]
    network_size: int

    def __len__(self) -> int:
        return len(self.scores)

    def masks(self) -> np.ndarray:
        """Full-size bool masks [H, W, n], cut to the image (memory H·W·n: for small images)."""
        h, w = self.image_shape
        out = np.zeros((h, w, len(self)), bool)
        for i, (roi, crop) in enumerate(zip(self.rois, self.box_masks)):
            y1, x1 = int(roi[0]), int(roi[1])
            ya, xa, yb, xb = max(y1, 0), max(x1, 0), min(y1 + crop.shape[0], h), min(x1 + crop.shape[1], w)
            if yb > ya and xb > xa:
                out[ya:yb, xa:xb, i] = crop[ya - y1:yb - y1, xa - x1:xb - x1] != 0
        return out


def detect(model, image: np.ndarray, options: SegmentOptions = SegmentOptions()) -> Detections:
    """Run `model` (a `MaskRCNN`) on one image of any dtype/channels; boxes and masks in image pixels.

    The steps of the module docstring up to the unmolding: `to_rgb8`, `reflect_pad`, `resize_for_model`
    to D = `options.network_size(H, W)`, `mold`, the network, `unmold_box_masks`, and the shift from
    padded-image to image coordinates.

    Parameters
    ----------
    model : MaskRCNN
        The network with its legacy weights (and its config's detection settings).
    image : numpy.ndarray
        H x W or H x W x C image, any dtype.
    options : SegmentOptions
        The per-image settings.

    Returns
    -------
    Detections
        In descending score order.

    Examples
    --------
    >>> from nucleaizer_tf.maskrcnn import MaskRCNN
    >>> model = MaskRCNN.from_legacy_h5("mask_rcnn_presegmentation.h5")  # doctest: +SKIP
    >>> detections = detect(model, image, SegmentOptions(image_size=512))  # doctest: +SKIP
    >>> detections.rois.shape  # doctest: +SKIP
    (57, 4)
    """
    rgb = to_rgb8(image, options.conversion)
    height, width = rgb.shape[:2]
    padded, (py, px) = reflect_pad(rgb, options.padding)
    size = options.network_size(height, width)
    resized, window, _, _ = resize_for_model(padded, size)
    molded = mold(resized, model.config.MEAN_PIXEL)[None]
    meta = image_meta(padded.shape, window, model.config.NUM_CLASSES)[None]
    out = model.run_molded(molded, meta, outputs=("detections", "mrcnn_mask"))
    rois, class_ids, scores, crops = unmold_box_masks(
        out["detections"][0], out["mrcnn_mask"][0], padded.shape, window, absolute_threshold=options.absolute_mask_threshold
    )
    rois = rois - np.array([py, px, py, px], np.int32)  # padded-image → image coordinates
    return Detections(rois, class_ids, scores, crops, (height, width), size)


def detections_to_labels(detections: Detections, options: SegmentOptions = SegmentOptions()) -> np.ndarray:
    """nucleAIzer's merge: dilate each instance, fill holes if asked, lower scores overwrite, label = rank.

    An image without detections gives an all-zero label image (the original wrote no file at all).

    Parameters
    ----------
    detections : Detections
        Output of `detect`.
    options : SegmentOptions
        Gives `dilation` and `fill_holes`.

    Returns
    -------
    numpy.ndarray
        uint16 H x W label image (uint32 above 65,535 detections), 0 = background.

    Examples
    --------
    >>> detections = Detections(np.array([[-2, 1, 3, 5], [2, 2, 6, 6]], np.int32), np.array([1, 1], np.int32),
    ...                         np.array([0.9, 0.7], np.float32),
    ...                         [np.ones((5, 4), np.uint8), np.ones((4, 4), np.uint8)], (6, 6), 64)
    >>> detections_to_labels(detections, SegmentOptions(dilation=0))
    array([[0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 2, 2, 2, 2],
           [0, 0, 2, 2, 2, 2],
           [0, 0, 2, 2, 2, 2],
           [0, 0, 2, 2, 2, 2]], dtype=uint16)
    """
    return box_masks_to_labels(
        detections.rois,
        detections.box_masks,
        pad=(0, 0),
        image_shape=detections.image_shape,
        dilation=options.dilation,
        fill_holes=options.fill_holes,
    )


def segment(model, image: np.ndarray, options: SegmentOptions = SegmentOptions()) -> np.ndarray:
    """Label image (uint16) of one image: `detect` followed by `detections_to_labels`.

    Parameters
    ----------
    model : MaskRCNN
        The network with its legacy weights.
    image : numpy.ndarray
        H x W or H x W x C image, any dtype.
    options : SegmentOptions
        The per-image settings.

    Returns
    -------
    numpy.ndarray
        uint16 H x W label image, 0 = background, label = detection rank.

    Examples
    --------
    >>> from nucleaizer_tf.maskrcnn import MaskRCNN
    >>> model = MaskRCNN.from_legacy_h5("mask_rcnn_presegmentation.h5")  # doctest: +SKIP
    >>> labels = segment(model, image)  # doctest: +SKIP
    >>> labels.dtype, labels.shape == image.shape[:2]  # doctest: +SKIP
    (dtype('uint16'), True)
    """
    return detections_to_labels(detect(model, image, options), options)
