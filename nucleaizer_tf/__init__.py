"""nucleaizer-tf: the nucleAIzer nucleus segmentation method in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
