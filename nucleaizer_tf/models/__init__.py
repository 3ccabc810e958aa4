"""The model facade: `load_model(name_or_path)` gives a segmenter for any model nucleaizer-tf runs.

    from nucleaizer_tf import load_model
    model = load_model("default")            # the shipped model
    labels = model.segment(image)            # uint16 label image
    model = load_model("mask_rcnn_final.h5") # a legacy Mask R-CNN file: nucleAIzer's fast mode
    model = load_model("adapt_out/model")    # any model folder (manifest.json + weights)

Modules: `load` (`load_model`), `base` (`Segmenter`: options, `segment`, `segment_many`, `describe`,
`save`), one module per kind (`default`, `maskrcnn`, `ensemble`, `full`) and `cache` (`cached_model`,
the process's one cache of loaded models). The model-folder format is `nucleaizer_tf.io.model_folder`.

Imports are lazy so that `import nucleaizer_tf` stays fast and free of TensorFlow.
"""

__all__ = ["Segmenter", "load_model"]


def __getattr__(name):
    if name == "load_model":
        from nucleaizer_tf.models.load import load_model

        return load_model
    if name == "Segmenter":
        from nucleaizer_tf.models.base import Segmenter

        return Segmenter
    raise AttributeError(f"module 'nucleaizer_tf.models' has no attribute {name!r}")
