"""nucleaizer-tf: the nucleAIzer nucleus segmentation method in TensorFlow 2 / Keras 3.

    from nucleaizer_tf import load_model
    labels = load_model("default").segment(image)

`load_model` is the model facade (`nucleaizer_tf.models`); the networks behind it are imported when
a model is loaded, so importing the package stays quick and does not start TensorFlow.
"""

__version__ = "0.2.0"

from nucleaizer_tf.models.load import load_model  # noqa: E402

__all__ = ["__version__", "load_model"]
