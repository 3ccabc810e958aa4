"""The one shared tf.data input layer: pair folders, read pairs, stream augmented (image, labels) examples.

Mask R-CNN, the U-Net ensemble and pix2pix all train from `make_dataset`; they differ only in
crop, `Augment` and the `target_fn` that turns instance labels into their targets.

Pairing and loading need no TensorFlow, so the pipeline module is imported on first use (PEP 562):
`nucleaizer-tf evaluate` pairs folders without paying TensorFlow's start-up.
"""

from nucleaizer_tf.data.loading import load_pair, read_pair
from nucleaizer_tf.data.pairs import Pair, match_stems, pair_folders, read_stem_list, split_pairs

_PIPELINE = ("Augment", "color_jitter", "make_dataset", "random_crop", "random_geometry")

__all__ = ["Pair", "load_pair", "match_stems", "pair_folders", "read_pair", "read_stem_list", "split_pairs", *_PIPELINE]


def __getattr__(name):
    if name in _PIPELINE:
        from nucleaizer_tf.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'nucleaizer_tf.data' has no attribute {name!r}")
