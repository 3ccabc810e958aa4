"""The shipped default model: a U-Net (background / interior / boundary) with a seeded instance
step, nucleAIzer's nucleus-size normalisation around it, and tiling for images of any size.

    from nucleaizer_tf.default_model import DefaultModel
    model = DefaultModel.load()            # the model shipped under weights/default/
    labels = model.segment(image)          # uint16 label image, any input dtype

Modules: `preprocess` (stretch, resizing), `targets` (training targets and loss), `instances`
(probabilities → labels), `tiling` (seamless tiled inference), `model` (`DefaultModel`), `general`
(how the shipped weights were trained: hundreds of images streamed from disk), `recipe` (the first
model's recipe for a handful of images in memory, also `adapt`'s fine-tuning).
"""

from nucleaizer_tf.default_model.instances import finish_labels, labels_from_probabilities
from nucleaizer_tf.default_model.model import DefaultModel, SegmentInfo, median_diameter, shipped_model_dirs
from nucleaizer_tf.default_model.preprocess import stretch_rgb8
from nucleaizer_tf.default_model.targets import three_class_map

__all__ = [
    "DefaultModel",
    "SegmentInfo",
    "finish_labels",
    "labels_from_probabilities",
    "median_diameter",
    "shipped_model_dirs",
    "stretch_rgb8",
    "three_class_map",
]
