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
    """nucleAIzer's final post-processing (``postProcCodeFINAL``) of one image (docs/method.md §5.7).

    Step A (`cleanup_scale`) for both scales, step B (`select_or_merge`), step C (`refine_with_unet`,
    4-connected component filter).  A missing scale is replaced by an all-zero H x W image (the size of
    the other scale's cleaned result, else of the ensemble map).

    Parameters
    ----------
    l2x_raw, l4x_raw : array_like or None
        Mask R-CNN label images of the 2x and 4x runs at 2x resolution (2H x 2W), 0 = background, or
        None when the run produced no file.
    ensemble16 : array_like
        The 16-bit U-Net ensemble map (H x W; resized with MATLAB bicubic if its size differs).
    params : PostprocessParams, sequence, dict or None, default DEFAULT
        Anything `as_params` accepts; the shipped defaults ``[76,32,0,1,44,17,32,25,21]`` by default.

    Returns
    -------
    np.ndarray
        (H, W) uint16 labels 1..n, 0 = background (uint32 only beyond 65535 objects).

    Raises
    ------
    ValueError
        If the ensemble map is not 2-D, or the cleaned 2x and 4x results differ in size.

    Examples
    --------
    A 2x run with two objects, no 4x run, and parameters small enough for a 6x6 image:

    >>> l2x = np.zeros((12, 12), dtype=np.int32)
    >>> l2x[2:8, 2:8] = 1
    >>> l2x[8:12, 8:12] = 2
    >>> e = np.zeros((6, 6), dtype=np.uint16)
    >>> e[0:5, 0:5] = 65535
    >>> postprocess(l2x, None, e, {"min_size": 2, "max_v": 2, "c_area": 2})
    array([[0, 1, 1, 1, 0, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 2, 2],
           [0, 0, 0, 0, 2, 2]], dtype=uint16)

    With real data the inputs come from files (stage 3 writes them):

    >>> from nucleaizer_tf.io import read_image, read_labels  # doctest: +SKIP
    >>> labels = postprocess(read_labels("2x/a.tiff"), read_labels("4x/a.tiff"),
    ...                      read_image("ensemble/a.png"))  # doctest: +SKIP
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
