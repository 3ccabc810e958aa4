"""Package data: the shipped default model (`default/`), installed as `nucleaizer_tf.weights`.

This folder is `weights/` in the repository and `nucleaizer_tf/weights/` in an installed
distribution; `nucleaizer_tf.default_model.shipped_model_dirs` finds it either way.
"""
