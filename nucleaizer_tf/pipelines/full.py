"""Folder work of nucleAIzer's full pipeline: its network stages run over validation folders for the
post-processing parameter search. The pipeline itself is the model kind `nucleaizer_tf.full`; its names
are also importable from here, where they used to live.
"""

from __future__ import annotations

from typing import Callable

from nucleaizer_tf.full import FACTORS, FullPipeline, FullSettings
from nucleaizer_tf.io import read_image, read_labels

__all__ = ["FACTORS", "FullPipeline", "FullSettings", "validation_samples"]


def validation_samples(pipeline: FullPipeline, gt_dir, images_dir, progress: Callable[[str], None] | None = None) -> list:
    """Run (or reuse) the full pipeline's network stages on validation images and pair them with their
    ground truth, ready for `postprocess.search.search_parameters` (docs/method.md §5.8 reads the same
    outputs).

    Parameters
    ----------
    pipeline : FullPipeline
        The pipeline; with a work folder, cached results are reused.
    gt_dir : str or os.PathLike
        The ground-truth label images, paired with the images by file stem.
    images_dir : str or os.PathLike
        The validation images.
    progress : callable, optional
        Called with each image's stem when it is done.

    Returns
    -------
    list of ValidationSample
        One per image pair: its stem, ground truth, raw 2x/4x labels and ensemble map.

    Raises
    ------
    PairingError
        When the image and ground-truth folders do not pair up by file stem.

    Examples
    --------
    >>> from nucleaizer_tf.postprocess.search import search_parameters                  # doctest: +SKIP
    >>> samples = validation_samples(pipeline, "val/masks", "val/images", progress=print)  # doctest: +SKIP
    """
    from nucleaizer_tf.data.pairs import pair_folders
    from nucleaizer_tf.postprocess.search import ValidationSample

    samples = []
    for pair in pair_folders(images_dir, gt_dir):
        parts = pipeline.intermediates(read_image(pair.image_path), pair.stem)
        samples.append(ValidationSample(pair.stem, read_labels(pair.mask_path), parts["2x"], parts["4x"], parts["ensemble"]))
        if progress is not None:
            progress(pair.stem)
    return samples
