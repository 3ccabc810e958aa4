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
    """Every value of the legacy network, including the ones 53afbae hard-codes.

    Field names and defaults are matterport's (`Config` of 53afbae) with nucleAIzer's `NucleiConfig`
    values on top; the detection defaults are overridden by the presets `presegment`, `resegment`
    and `manual_size`, which mirror the original's JSON run settings.

    Attributes
    ----------
    NAME : str
        Configuration name, "nuclei".
    GPU_COUNT, IMAGES_PER_GPU : int
        1 and 1: the port runs batch size 1 only.
    NUM_CLASSES : int
        Classes including background: 2 (background, nucleus).
    BACKBONE : str
        matterport's backbone name, "resnet101"; the port always builds ResNet-101 (`backbone.resnet101`).
    BACKBONE_STRIDES : tuple of int
        Pixel strides of the pyramid levels P2..P6: (4, 8, 16, 32, 64).
    TOP_DOWN_PYRAMID_SIZE : int
        Channels of the feature pyramid maps (256).
    FPN_CLASSIF_FC_LAYERS_SIZE : int
        Width of the classifier head's two "fully connected" convolutions (1024).
    RPN_ANCHOR_SCALES : tuple of int
        Anchor side in pixels of the molded image, one per level P2..P6: (32, 64, 128, 256, 512).
    RPN_ANCHOR_RATIOS : tuple of float
        Anchor width / height ratios at every location: (0.5, 1.0, 2.0).
    RPN_ANCHOR_STRIDE : int
        Anchors at every `RPN_ANCHOR_STRIDE`-th feature-map cell (1 = every cell).
    RPN_NMS_THRESHOLD : float
        IoU threshold of the proposal NMS (0.55).
    RPN_TRAIN_ANCHORS_PER_IMAGE : int
        Anchors per image that train the RPN (256; at most half positive).
    PRE_NMS_LIMIT : int
        Top-scoring anchors kept before the proposal NMS (6000).
    POST_NMS_ROIS_TRAINING, POST_NMS_ROIS_INFERENCE : int
        Proposals kept after NMS in training (2000) and inference (1000).
    RPN_BBOX_STD_DEV : tuple of float
        Scale of the RPN box deltas (dy, dx, log dh, log dw): (0.1, 0.1, 0.2, 0.2).
    IMAGE_MIN_DIM, IMAGE_MAX_DIM : int
        Network size D (both 1024 by default; `with_image_size` sets both).
    IMAGE_PADDING : bool
        Zero padding to a square D x D input (True; the port always pads).
    MEAN_PIXEL : tuple of float
        RGB mean subtracted by `molding.mold`: (123.7, 116.8, 103.9).
    POOL_SIZE, MASK_POOL_SIZE : int
        ROI-align output side of the classifier (7) and the mask head (14).
    MASK_SHAPE : tuple of int
        Side of the predicted masks: (28, 28).
    BBOX_STD_DEV : tuple of float
        Scale of the head's box deltas: (0.1, 0.1, 0.2, 0.2).
    DETECTION_MAX_INSTANCES : int
        Detections returned per image (512; the presets use 800 or 1200).
    DETECTION_MIN_CONFIDENCE : float
        Lowest class score a detection keeps (0.5).
    DETECTION_NMS_THRESHOLD : float
        IoU threshold of the per-class detection NMS (0.35).
    TRAIN_ROIS_PER_IMAGE : int
        ROIs per image that train the heads (512).
    ROI_POSITIVE_RATIO : float
        Largest share of positive training ROIs (0.33).
    USE_MINI_MASK : bool
        Store ground-truth masks as mini-masks of `MINI_MASK_SHAPE` (56, 56) cut to their boxes.
    MINI_MASK_SHAPE : tuple of int
        Side of the mini-masks: (56, 56).
    MAX_GT_INSTANCES : int
        Largest random subset of ground-truth instances the heads train on (100; the RPN uses all).
    USE_RPN_ROIS : bool
        matterport's switch to train the heads on the RPN's proposals (True).
    STEPS_PER_EPOCH, VALIDATION_STEPS : int
        matterport's training steps per epoch (5000) and validation steps (50).
    LEARNING_RATE, LEARNING_MOMENTUM : float
        Learning rate (0.001) and SGD momentum (0.9).
    WEIGHT_DECAY : float
        L2 weight decay (0.0001), see `losses.weight_decay`.
    GRADIENT_CLIP_NORM : float
        Global gradient norm the gradients are clipped to (5.0).

    Examples
    --------
    >>> config = MaskRCNNConfig()
    >>> config.IMAGE_SHAPE, config.DETECTION_MIN_CONFIDENCE
    ((1024, 1024, 3), 0.5)
    >>> config.replace(DETECTION_MAX_INSTANCES=800).DETECTION_MAX_INSTANCES
    800
    """

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
        """Images per batch: IMAGES_PER_GPU · GPU_COUNT (1)."""
        return self.IMAGES_PER_GPU * self.GPU_COUNT

    @property
    def IMAGE_SHAPE(self) -> tuple[int, int, int]:
        """Shape (D, D, 3) of the molded network input, D = IMAGE_MAX_DIM."""
        return (self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, 3)

    @property
    def IMAGE_META_SIZE(self) -> int:
        """1 (image id) + 3 (original shape) + 4 (window) + NUM_CLASSES (active class ids)."""
        return 1 + 3 + 4 + self.NUM_CLASSES

    def replace(self, **changes: Any) -> MaskRCNNConfig:
        """A copy with the given fields changed (`dataclasses.replace`).

        Examples
        --------
        >>> MaskRCNNConfig().replace(NUM_CLASSES=81).IMAGE_META_SIZE
        89
        """
        return dataclasses.replace(self, **changes)

    def with_image_size(self, size: int) -> MaskRCNNConfig:
        """The config the original rebuilt its model with for network size `size` (D).

        Raises ValueError unless `size` is a positive multiple of 64.

        Examples
        --------
        >>> MaskRCNNConfig().with_image_size(512).IMAGE_SHAPE
        (512, 512, 3)
        """
        if size <= 0 or size % 64:
            raise ValueError(f"network size must be a positive multiple of 64, got {size}")
        return self.replace(IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dict (tuples become lists).

        Examples
        --------
        >>> MaskRCNNConfig().to_dict()["RPN_ANCHOR_SCALES"]
        [32, 64, 128, 256, 512]
        """
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MaskRCNNConfig:
        """Inverse of `to_dict`; unknown keys are an error so that typos do not pass silently.

        Examples
        --------
        >>> MaskRCNNConfig.from_dict(MaskRCNNConfig().to_dict()) == MaskRCNNConfig()
        True
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"unknown MaskRCNNConfig fields: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    @classmethod
    def presegment(cls) -> MaskRCNNConfig:
        """predict/presegment.json (mask_rcnn_presegmentation.h5, every image at 1024).

        Confidence 0.7, NMS 0.35, 800 instances.

        Examples
        --------
        >>> MaskRCNNConfig.presegment().DETECTION_MIN_CONFIDENCE
        0.7
        """
        return cls(DETECTION_MIN_CONFIDENCE=0.7, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=800)

    @classmethod
    def resegment(cls) -> MaskRCNNConfig:
        """predict/segmentation_params_{2x,4x}.json (mask_rcnn_final.h5 at estimated sizes)."""
        return cls(DETECTION_MIN_CONFIDENCE=0.60, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=800)

    @classmethod
    def manual_size(cls) -> MaskRCNNConfig:
        """predict/presegment_manualsize.json (mask_rcnn_final.h5 at a user-given nucleus size)."""
        return cls(DETECTION_MIN_CONFIDENCE=0.50, DETECTION_NMS_THRESHOLD=0.35, DETECTION_MAX_INSTANCES=1200)
