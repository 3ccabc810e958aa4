"""The whole post-processing of one image (docs/method.md §5.7): cleanup of both scales, scale selection / merge,
U-Net guided refinement.  A pure function on arrays; file handling belongs to the callers."""

from __future__ import annotations

import numpy as np

from .cleanup import cleanup_scale
from .merge import select_or_merge
from .params import DEFAULT, as_params
from .refine import refine_with_unet

__all__ = ["postprocess"]


def postprocess(l2x_raw, l4x_raw, ensemble16, params=DEFAULT) -> np.ndarray:
    """nucleAIzer's final post-processing (``postProcCodeFINAL``) of one image.

    ``l2x_raw`` / ``l4x_raw``: Mask R-CNN label images of the 2x and 4x runs at 2x resolution (2H x 2W),
    or None when the run produced no file; ``ensemble16``: the 16-bit U-Net ensemble map (H x W; resized
    with MATLAB bicubic if its size differs).  A missing scale is replaced by an all-zero H x W image
    (the size of the other scale's cleaned result, else of the ensemble map).  Returns uint16 labels 1..n.
    """
    p = as_params(params)
    e = np.asarray(ensemble16)
    if e.ndim != 2:
        raise ValueError(f"the ensemble probability map must be 2-D, got shape {e.shape}")
    l2 = cleanup_scale(l2x_raw, p) if l2x_raw is not None else None
    l4 = cleanup_scale(l4x_raw, p) if l4x_raw is not None else None
    if l2 is not None and l4 is not None and l2.shape != l4.shape:
        raise ValueError(f"2x and 4x label images differ in size: {l2.shape} vs {l4.shape} after downscaling")
    shape = l2.shape if l2 is not None else l4.shape if l4 is not None else e.shape
    if l2 is None:
        l2 = np.zeros(shape, dtype=np.uint16)
    if l4 is None:
        l4 = np.zeros(shape, dtype=np.uint16)
    master = select_or_merge(l2, l4, p)
    return refine_with_unet(master, e, p, connectivity=4)
