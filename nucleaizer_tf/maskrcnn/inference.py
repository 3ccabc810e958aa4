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

    image_size: network size D (rounded up to a multiple of 64), ignored when `nucleus_size` is set;
    nucleus_size: the manual-size variant (docs/method.md §2.7) — typical nucleus diameter in pixels, from which D
        is chosen per image so nuclei reach 80 px in the network;
    padding: reflect padding ratio per side; dilation: disk radius of the per-instance dilation (0 = off);
    fill_holes: real hole filling per instance (the original's was a no-op, docs/method.md, quirk Q1);
    absolute_mask_threshold: threshold masks at probability 0.5 instead of the v2.1 min–max mid-point (Q2);
    conversion: `to_rgb8` mode for non-8-bit inputs.
    """

    image_size: int = 1024
    nucleus_size: float | None = None
    padding: float = 0.05
    dilation: int = 1
    fill_holes: bool = False
    absolute_mask_threshold: bool = False
    conversion: str = "nucleaizer"

    def network_size(self, height: int, width: int) -> int:
        if self.nucleus_size is not None:
            return manual_network_size(height, width, self.nucleus_size)
        return round_size_up(self.image_size)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detections:
    """Detections of one image in its own pixel coordinates.

    rois: int32 [n, 4] (y1, x1, y2, x2) — boxes of detections in the mirrored border lie partly or wholly
    outside the image; box_masks[i]: uint8 {0, 1} mask of box i; scores in descending order.
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
    """Run `model` (a `MaskRCNN`) on one image of any dtype/channels; boxes and masks in image pixels."""
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
    """Label image (uint16) of one image: `detect` followed by `detections_to_labels`."""
    return detections_to_labels(detect(model, image, options), options)
