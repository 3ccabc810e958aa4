"""Keras 3 port of matterport Mask R-CNN 53afbae (v2.1), the network nucleAIzer runs.

Everything but the configuration is imported on first use, so that reading or writing a
`MaskRCNNConfig` does not load TensorFlow.
"""

import importlib

from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
from nucleaizer_tf.system import import_tensorflow

_LAZY = {
    "MaskRCNN": "model",
    "OUTPUT_NAMES": "model",
    "pyramid_anchors": "anchors",
    "proposal_stage": "proposal",
    "detection_stage": "detection",
    "SegmentOptions": "inference",
    "Detections": "inference",
    "load_legacy_weights": "legacy_h5",
    "save_legacy_weights": "legacy_h5",
    "inspect_legacy_h5": "legacy_h5",
    "LegacyWeightsError": "legacy_h5",
}

__all__ = ["MaskRCNNConfig", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import_tensorflow()  # the first import of TensorFlow without its start-up chatter
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
