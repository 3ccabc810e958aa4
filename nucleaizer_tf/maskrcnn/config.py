"""Mask R-CNN settings: matterport 53afbae (v2.1) defaults with nucleAIzer's `NucleiConfig` on top.

Field names keep matterport's upper-case spelling so values can be compared with the original
scripts one to one. The config is frozen (hashable, safe to share between threads and usable as
a cache key); derive variants with `replace(**changes)` or the named presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MaskRCNNConfig:
    """Every value of the legacy network, including the ones 53afbae hard-codes."""

    NAME: str = "nuclei"
    GPU_COUNT: int = 1
    IMAGES_PER_GPU: int = 1
    NUM_CLASSES: int = 2

    # Backbone / FPN (ResNet-101, the widths below and BatchNorm epsilon 1e-3 are hard-coded in 53afbae).
    BACKBONE: str = "resnet101"
    BACKBONE_STRIDES: tuple[int, ...] = (4, 8, 16, 32, 64)
    TOP_DOWN_PYRAMID_SIZE: int = 256
    FPN_CLASSIF_FC_LAYERS_SIZE: int = 1024

    # RPN and proposals.
    RPN_ANCHOR_SCALES: tuple[int, ...] = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS: tuple[float, ...] = (0.5, 1.0, 2.0)
    RPN_ANCHOR_STRIDE: int = 1
    RPN_NMS_THRESHOLD: float = 0.55
    RPN_TRAIN_ANCHORS_PER_IMAGE: int = 256
    PRE_NMS_LIMIT: int = 6000
    POST_NMS_ROIS_TRAINING: int = 2000
    POST_NMS_ROIS_INFERENCE: int = 1000
    RPN_BBOX_STD_DEV: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)

    # Image geometry: square zero padding to D x D, D a multiple of 64.
    IMAGE_MIN_DIM: int = 1024
    IMAGE_MAX_DIM: int = 1024
    IMAGE_PADDING: bool = True
    MEAN_PIXEL: tuple[float, ...] = (123.7, 116.8, 103.9)

    # Heads.
    POOL_SIZE: int = 7
    MASK_POOL_SIZE: int = 14
    MASK_SHAPE: tuple[int, int] = (28, 28)
    BBOX_STD_DEV: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)

    # Detection (nucleAIzer values; the JSON run settings override them, see the presets).
    DETECTION_MAX_INSTANCES: int = 512
    DETECTION_MIN_CONFIDENCE: float = 0.5
    DETECTION_NMS_THRESHOLD: float = 0.35

    # Training.
    TRAIN_ROIS_PER_IMAGE: int = 512
    ROI_POSITIVE_RATIO: float = 0.33
    USE_MINI_MASK: bool = True
    MINI_MASK_SHAPE: tuple[int, int] = (56, 56)
    MAX_GT_INSTANCES: int = 100
    USE_RPN_ROIS: bool = True
    STEPS_PER_EPOCH: int = 5000
    VALIDATION_STEPS: int = 50
    LEARNING_RATE: float = 0.001
    LEARNING_MOMENTUM: float = 0.9
    WEIGHT_DECAY: float = 0.0001
    GRADIENT_CLIP_NORM: float = 5.0

    @property
    def BATCH_SIZE(self) -> int:
        return self.IMAGES_PER_GPU * self.GPU_COUNT

    @property
    def IMAGE_SHAPE(self) -> tuple[int, int, int]:
        return (self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, 3)

    @property
    def IMAGE_META_SIZE(self) -> int:
        """1 (image id) + 3 (original shape) + 4 (window) + NUM_CLASSES (active class ids)."""
        return 1 + 3 + 4 + self.NUM_CLASSES

    def replace(self, **changes: Any) -> MaskRCNNConfig:
        return dataclasses.replace(self, **changes)

    def with_image_size(self, size: int) -> MaskRCNNConfig:
        """The config the original rebuilt its model with for network size `size` (D)."""
        if size <= 0 or size % 64:
            raise ValueError(f"network size must be a positive multiple of 64, got {size}")
        return self.replace(IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MaskRCNNConfig:
        """Inverse of `to_dict`; unknown keys are an error so that typos do not pass silently."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"unknown MaskRCNNConfig fields: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    @classmethod
    def presegment(cls) -> MaskRCNNConfig:
        """predict/presegment.json (mask_rcnn_presegmentation.h5, every image at 1024)."""
        return cls(DETECTION_MIN_CONFIDENCE=0.7, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=800)

    @classmethod
    def resegment(cls) -> MaskRCNNConfig:
        """predict/segmentation_params_{2x,4x}.json (mask_rcnn_final.h5 at estimated sizes)."""
        return cls(DETECTION_MIN_CONFIDENCE=0.60, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=800)

    @classmethod
    def manual_size(cls) -> MaskRCNNConfig:
        """predict/presegment_manualsize.json (mask_rcnn_final.h5 at a user-given nucleus size)."""
        return cls(DETECTION_MIN_CONFIDENCE=0.50, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=1200)
