"""nucleAIzer's full pipeline as a model kind (docs/method.md §1.2): presegmentation, nucleus size, 2×
upscaling, U-Net ensemble, final Mask R-CNN at two sizes and the post-processing, one image at a time,
its intermediate results optionally cached per image (`nucleaizer_tf.io.stage_cache`).

Examples
--------
>>> from nucleaizer_tf.full import FullSettings
>>> FullSettings().final_confidence
0.6
"""

from nucleaizer_tf.full.pipeline import FACTORS, FullPipeline, FullSettings

__all__ = ["FACTORS", "FullPipeline", "FullSettings"]
