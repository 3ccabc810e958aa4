"""The Mask R-CNN inference model of matterport v2.1, built once for every image size.

The original rebuilt its graph (and reloaded the weights) for each network size D. Here the
Keras model takes a [1, None, None, 3] molded image; anchors, the proposal normalisation, the
ROI-level formula and the window scaling read D from the tensors at run time (anchors are generated
in-graph from the P2..P6 grid sizes). `run_molded` goes through one `tf.function` per requested
output set whose input signature leaves H and W open, so a new size reuses the traced graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from nucleaizer_tf.maskrcnn.anchors import AnchorLayer
from nucleaizer_tf.maskrcnn.backbone import resnet101
from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
from nucleaizer_tf.maskrcnn.detection import DetectionBoxes, DetectionLayer, DetectionMasks
from nucleaizer_tf.maskrcnn.fpn import feature_pyramid
from nucleaizer_tf.maskrcnn.heads import ClassifierHead, MaskHead
from nucleaizer_tf.maskrcnn.proposal import ProposalLayer, normalize_boxes
from nucleaizer_tf.maskrcnn.rpn import build_rpn_model, rpn_outputs
from nucleaizer_tf.precision import policy_scope

#: Names under which `run_molded` returns tensors (the oracle's key names).
OUTPUT_NAMES = ("C2", "C3", "C4", "C5", "P2", "P3", "P4", "P5", "P6",
                "rpn_class_logits", "rpn_class", "rpn_bbox", "rpn_rois",
                "mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox", "detections", "mrcnn_mask")


class MaskRCNN:
    """Inference-mode Mask R-CNN whose `keras_model` carries the legacy layer names.

    `keras_model.layers` holds the 233 weight-bearing layers of a legacy `.h5` under their
    matterport names (the RPN as the nested model `rpn_model`), ready for by-name loading.

    Parameters
    ----------
    config : MaskRCNNConfig
        The network and detection settings.
    precision : str
        Compute type of the convolutions: "float32" (default, as the original ran), "bfloat16",
        "float16" or "auto" (resolved by `nucleaizer_tf.precision.resolve_precision`).

    Attributes
    ----------
    config : MaskRCNNConfig
        As given.
    precision : str
        The resolved compute type; anchors, proposals, box decoding, NMS, ROI align and the
        softmax/sigmoid outputs always run in float32.
    keras_model : keras.Model
        Inputs [input_image [1, None, None, 3], input_image_meta [1, IMAGE_META_SIZE]], outputs a dict
        keyed by `OUTPUT_NAMES`.

    Examples
    --------
    >>> model = MaskRCNN.from_legacy_h5("mask_rcnn_presegmentation.h5")  # doctest: +SKIP
    >>> labels = model.segment(image)  # doctest: +SKIP
    >>> untrained = MaskRCNN(MaskRCNNConfig.presegment())  # builds the network, random weights  # doctest: +SKIP
    """

    def __init__(self, config: MaskRCNNConfig, *, precision: str = "float32"):
        from nucleaizer_tf.precision import resolve_precision

        self.config = config
        #: compute type of the convolutions ("float32", "bfloat16", "float16"); anchors, proposals, box
        #: decoding, NMS, ROI align and the softmax/sigmoid outputs always run in float32
        self.precision = resolve_precision(precision)
        self._classifier = ClassifierHead(config, precision=self.precision)
        self._mask = MaskHead(config, precision=self.precision)
        self.keras_model = self._build()
        self._compiled: dict[tuple[str, ...], object] = {}

    @classmethod
    def from_legacy_h5(cls, path, config: MaskRCNNConfig | None = None, *, exclude=(), strict: bool = True,
                       precision: str = "float32") -> "MaskRCNN":
        """Build the network and load a matterport/nucleAIzer `.h5` by layer name (strict by default).

        `config` defaults to nucleAIzer's presegmentation settings (confidence 0.7, NMS 0.35, 800
        instances). The file is checked before the (slow) build so a wrong path fails at once.
        `precision` is the convolutions' compute type (float32 by default, as the original ran;
        "bfloat16" or "auto" opt in); the weights stay float32 variables.

        Parameters
        ----------
        path : str or os.PathLike
            The legacy weight file.
        config : MaskRCNNConfig, optional
            None: `MaskRCNNConfig.presegment()`.
        exclude : str or iterable of str
            Layer names or regular expressions skipped (`legacy_h5.load_legacy_weights`).
        strict : bool
            Refuse a file that does not fit the model exactly (LegacyWeightsError, nothing loaded).
        precision : str
            "float32", "bfloat16", "float16" or "auto".

        Returns
        -------
        MaskRCNN

        Examples
        --------
        >>> model = MaskRCNN.from_legacy_h5("mask_rcnn_final.h5", MaskRCNNConfig.resegment())  # doctest: +SKIP
        """
        from nucleaizer_tf.maskrcnn.legacy_h5 import inspect_legacy_h5, load_legacy_weights

        inspect_legacy_h5(path)
        model = cls(config if config is not None else MaskRCNNConfig.presegment(), precision=precision)
        load_legacy_weights(model.keras_model, path, exclude=exclude, strict=strict)
        return model

    def detect(self, image: np.ndarray, options=None):
        """Detections (rois, class_ids, scores, box masks) of one image, in its pixel coordinates."""
        from nucleaizer_tf.maskrcnn.inference import SegmentOptions, detect

        return detect(self, image, options or SegmentOptions())

    def segment(self, image: np.ndarray, options=None) -> np.ndarray:
        """nucleAIzer's label image of one image (uint16; 0 = background, label = detection rank)."""
        from nucleaizer_tf.maskrcnn.inference import SegmentOptions, segment

        return segment(self, image, options or SegmentOptions())

    def _build(self) -> keras.Model:
        cfg = self.config
        image = keras.Input(shape=(None, None, 3), batch_size=1, name="input_image")
        image_meta = keras.Input(shape=(cfg.IMAGE_META_SIZE,), batch_size=1, name="input_image_meta")
        with policy_scope(self.precision):
            c_maps = resnet101(image)
            p_maps = feature_pyramid(*c_maps, depth=cfg.TOP_DOWN_PYRAMID_SIZE)
            rpn = build_rpn_model(len(cfg.RPN_ANCHOR_RATIOS), cfg.TOP_DOWN_PYRAMID_SIZE)
        if self.precision != "float32":  # everything past the convolutions sees float32 maps
            c_maps = [_as_float32(x, name) for x, name in zip(c_maps, OUTPUT_NAMES[:4])]
            p_maps = [_as_float32(x, name) for x, name in zip(p_maps, OUTPUT_NAMES[4:9])]
        rpn_class_logits, rpn_class, rpn_bbox = rpn_outputs(rpn, p_maps)
        anchors = AnchorLayer(cfg, name="anchors")(p_maps)
        rois = ProposalLayer(cfg, name="ROI")([rpn_class, rpn_bbox, anchors, image])
        class_logits, class_probs, bbox = self._classifier(rois, p_maps[:4])
        detections = DetectionLayer(cfg, name="mrcnn_detection")([rois, class_probs, bbox, image_meta, image])
        boxes = DetectionBoxes(name="detection_boxes")([detections, image])
        masks = DetectionMasks(name="detection_masks")([self._mask(boxes, p_maps[:4]), detections])
        tensors = [*c_maps, *p_maps, rpn_class_logits, rpn_class, rpn_bbox, rois,
                   class_logits, class_probs, bbox, detections, masks]
        return keras.Model([image, image_meta], dict(zip(OUTPUT_NAMES, tensors)), name="mask_rcnn")

    def _function(self, outputs: tuple[str, ...]):
        if outputs not in self._compiled:
            signature = [tf.TensorSpec([1, None, None, 3], tf.float32),
                         tf.TensorSpec([1, self.config.IMAGE_META_SIZE], tf.float32)]

            def forward(images, image_meta):
                result = self.keras_model([images, image_meta], training=False)
                return {name: result[name] for name in outputs}

            self._compiled[outputs] = tf.function(forward, input_signature=signature)
        return self._compiled[outputs]

    def run_molded(self, molded_images: np.ndarray, image_meta: np.ndarray,
                   outputs: Sequence[str] = ("detections", "mrcnn_mask")) -> dict[str, np.ndarray]:
        """Run the network on a [1, D, D, 3] float32 molded image (D a multiple of 64).

        image_meta is [1, 8 + NUM_CLASSES] = [id, H0, W0, 3, window (4), class ids]; only the
        window (y1, x1, y2, x2 in pixels of the molded image) is used. Returns the requested tensors (OUTPUT_NAMES):
        `detections` [1, MAX, 6] rows (y1, x1, y2, x2, class, score) in molded-image pixels,
        `mrcnn_mask` [1, MAX, 28, 28, NC] (rows past the last detection are zero), `rpn_rois`
        normalised, C*/P* feature maps.

        Parameters
        ----------
        molded_images : numpy.ndarray
            float32 [1, D, D, 3] from `molding.mold` (ValueError for another shape).
        image_meta : numpy.ndarray
            [1, 8 + NUM_CLASSES] from `molding.image_meta`.
        outputs : sequence of str
            Names from `OUTPUT_NAMES` (ValueError for others).

        Returns
        -------
        dict of str to numpy.ndarray

        Examples
        --------
        >>> out = model.run_molded(molded[None], meta[None])  # doctest: +SKIP
        >>> out["detections"].shape, out["mrcnn_mask"].shape  # doctest: +SKIP
        ((1, 800, 6), (1, 800, 28, 28, 2))
        """
        molded_images = np.asarray(molded_images, np.float32)
        shape = molded_images.shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2] or shape[1] % 64:
            raise ValueError(f"expected one square molded image [1, D, D, 3] with D % 64 == 0, got {shape}")
        unknown = set(outputs) - set(OUTPUT_NAMES)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {OUTPUT_NAMES}")
        result = self._function(tuple(outputs))(tf.constant(molded_images),
                                                tf.constant(image_meta, tf.float32))
        return {name: value.numpy() for name, value in result.items()}

    def classifier_stage(self, feature_maps, rois) -> dict[str, np.ndarray]:
        """Classifier head alone on P2..P5 and [1, N, 4] normalised rois (stage-wise checks).

        The ROI levels depend on the molded image size, which follows from P2's shape. Like the
        stage functions of the other modules it runs as a graph, as inside the model.
        """
        logits, probs, bbox = tf.function(self._classifier)(tf.constant(rois, tf.float32), _tensors(feature_maps))
        return {"mrcnn_class_logits": logits.numpy(), "mrcnn_class": probs.numpy(), "mrcnn_bbox": bbox.numpy()}

    def mask_stage(self, feature_maps, boxes) -> np.ndarray:
        """Mask head alone on P2..P5 and [1, N, 4] detection boxes in pixels -> [1, N, 28, 28, NC]."""
        stride = self.config.BACKBONE_STRIDES[0]

        def run(boxes, maps):
            return self._mask(normalize_boxes(boxes, tf.shape(maps[0])[1:3] * stride), maps)

        return tf.function(run)(tf.constant(boxes, tf.float32), _tensors(feature_maps)).numpy()


def _as_float32(tensor, name: str):
    """`tensor` cast to float32 by a weightless float32 layer (Keras casts a layer's inputs to its dtype)."""
    return keras.layers.Activation("linear", dtype="float32", name=f"{name}_float32")(tensor)


def _tensors(arrays) -> list[tf.Tensor]:
    return [tf.constant(a, tf.float32) for a in arrays]
