"""A legacy matterport/nucleAIzer Mask R-CNN `.h5` behind the model facade: nucleAIzer's fast mode."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.model_folder import prepare_folder, write_manifest
from nucleaizer_tf.labels import in_label_dtype
from nucleaizer_tf.maskrcnn.cached import build_maskrcnn
from nucleaizer_tf.maskrcnn.inference import SegmentOptions
from nucleaizer_tf.models.base import Option, Segmenter, at_least, boolean, fraction, one_of, positive
from nucleaizer_tf.precision import check_precision, resolve_precision

CONVERSIONS = ("nucleaizer", "percentile")


def padding_fraction(value) -> str | None:
    """Option check of `padding`: a fraction of the image size per side, between 0 and 0.5.

    Parameters
    ----------
    value : object
        The value to check; anything `float()` accepts.

    Returns
    -------
    str or None
        None when ``0 <= value <= 0.5``; the problem of `fraction` outside 0..1, else
        ``"must be between 0 and 0.5"``.

    Examples
    --------
    >>> padding_fraction(0.05) is None
    True
    >>> padding_fraction(0.7)
    'must be between 0 and 0.5'
    """
    return fraction(value) or (None if float(value) <= 0.5 else "must be between 0 and 0.5")


class MaskRCNNSegmenter(Segmenter):
    """nucleAIzer's presegmentation (`segmentation.py` + `presegment.json`), or its manual-size mode when
    `nucleus_size` is given (confidence 0.5 and 1200 nuclei by default there).

    nucleAIzer's fast mode: what ``load_model("mask_rcnn_final.h5")`` returns. Options of `segment`
    (defaults of the presegmentation):

    - `confidence`: minimum detection score (0.7; 0.5 with `nucleus_size`).
    - `nms`: IoU above which the lower-scoring detection is suppressed (0.35).
    - `max_instances`: most nuclei per image (800; 1200 with `nucleus_size`).
    - `image_size`: network size D, rounded up to a multiple of 64 (1024).
    - `nucleus_size`: nucleus diameter in pixels; D is then chosen per image so nuclei reach 80 px.
    - `padding`: reflect padding per side, as a fraction of the image size (0.05, at most 0.5).
    - `dilation`: radius of the per-nucleus dilation (1; 0 = off).
    - `fill_holes`: fill holes per nucleus (False; the original's was a no-op).
    - `absolute_mask_threshold`: cut masks at 0.5, not the min-max mid-point (False).
    - `conversion`: how non-8-bit images become 8-bit RGB (``"nucleaizer"`` or ``"percentile"``).
    - `precision`: network compute type (``"float32"``, to reproduce the original's numbers;
      ``"bfloat16"`` or ``"auto"`` opt-in).

    Parameters
    ----------
    path : str or os.PathLike
        The legacy `.h5` weight file; it is inspected now, so a wrong file fails here, not at the first
        image.
    source : str, optional
        Where the model came from, for `describe` (default: `path`; a `maskrcnn` model folder when
        loaded from one).

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("mask_rcnn_final.h5")                 # doctest: +SKIP
    >>> labels = model.segment(image, confidence=0.6)            # doctest: +SKIP
    >>> labels = model.segment(image, nucleus_size=20)           # doctest: +SKIP
    """

    kind = "maskrcnn"
    title = "legacy Mask R-CNN"
    options = {
        "confidence": Option(None, fraction, "minimum detection score [0.7; 0.5 with nucleus_size]"),
        "nms": Option(0.35, fraction, "IoU above which the lower-scoring detection is suppressed"),
        "max_instances": Option(None, at_least(1), "most nuclei per image [800; 1200 with nucleus_size]"),
        "image_size": Option(SegmentOptions.image_size, at_least(64), "network size D (rounded up to a multiple of 64)"),
        "nucleus_size": Option(None, positive, "nucleus diameter: D per image so nuclei reach 80 px"),
        "padding": Option(SegmentOptions.padding, padding_fraction, "reflect padding per side, as a fraction of the image size"),
        "dilation": Option(SegmentOptions.dilation, at_least(0), "radius of the per-nucleus dilation"),
        "fill_holes": Option(SegmentOptions.fill_holes, boolean, "fill holes per nucleus (the original's was a no-op)"),
        "absolute_mask_threshold": Option(SegmentOptions.absolute_mask_threshold, boolean,
                                          "cut masks at 0.5, not the min-max mid-point"),
        "conversion": Option(SegmentOptions.conversion, one_of(*CONVERSIONS), "how non-8-bit images become 8-bit RGB"),
        # float32 by default: the legacy modes reproduce the original's numbers; bfloat16 is opt-in
        "precision": Option("float32", check_precision,
                            "network compute type: float32, bfloat16, auto (bfloat16 where the hardware has it)"),
    }

    def __init__(self, path: str | os.PathLike, source: str | None = None):
        from nucleaizer_tf.maskrcnn.legacy_h5 import inspect_legacy_h5

        self.path = Path(path)
        inspect_legacy_h5(self.path)  # a wrong file fails now, not at the first image
        self.source = source or str(self.path)

    @classmethod
    def _fill_defaults(cls, resolved: dict) -> dict:
        preset = cls._preset(resolved)
        if resolved["confidence"] is None:
            resolved["confidence"] = preset.DETECTION_MIN_CONFIDENCE
        if resolved["max_instances"] is None:
            resolved["max_instances"] = preset.DETECTION_MAX_INSTANCES
        resolved["precision"] = resolve_precision(resolved["precision"])
        return resolved

    @staticmethod
    def _preset(options: dict):
        from nucleaizer_tf.maskrcnn import MaskRCNNConfig

        return MaskRCNNConfig.manual_size() if options.get("nucleus_size") is not None else MaskRCNNConfig.presegment()

    def network(self, options: dict):
        """The built network for resolved `options` (its detection thresholds are part of the graph).

        Parameters
        ----------
        options : dict
            Resolved options (see `resolve_options`).

        Returns
        -------
        nucleaizer_tf.maskrcnn.MaskRCNN
            The network, from the process-wide cache of `build_maskrcnn`.

        Examples
        --------
        >>> net = model.network(model.resolve_options({"confidence": 0.6}))  # doctest: +SKIP
        """
        config = self._preset(options).replace(DETECTION_MIN_CONFIDENCE=float(options["confidence"]),
                                               DETECTION_NMS_THRESHOLD=float(options["nms"]),
                                               DETECTION_MAX_INSTANCES=int(options["max_instances"]))
        return build_maskrcnn(self.path, config, options["precision"])

    @staticmethod
    def segment_options(options: dict):
        """The per-image `SegmentOptions` of resolved options.

        Parameters
        ----------
        options : dict
            Resolved options (see `resolve_options`).

        Returns
        -------
        nucleaizer_tf.maskrcnn.inference.SegmentOptions
            Network size, nucleus size, padding, dilation, hole filling, mask threshold and conversion.

        Examples
        --------
        >>> opts = MaskRCNNSegmenter.segment_options(MaskRCNNSegmenter.resolve_options())  # doctest: +SKIP
        >>> opts.image_size                                                              # doctest: +SKIP
        1024
        """
        from nucleaizer_tf.maskrcnn.inference import SegmentOptions

        return SegmentOptions(image_size=int(options["image_size"]), nucleus_size=options["nucleus_size"],
                              padding=float(options["padding"]), dilation=int(options["dilation"]),
                              fill_holes=bool(options["fill_holes"]),
                              absolute_mask_threshold=bool(options["absolute_mask_threshold"]),
                              conversion=options["conversion"])

    def _load_networks(self, options: dict) -> None:
        """Build the network now (see `Segmenter.prepare`)."""
        self.network(options)

    def _segment(self, image: np.ndarray, options: dict, name: str | None, advance):
        from nucleaizer_tf.maskrcnn.inference import detect, detections_to_labels

        settings = self.segment_options(options)
        found = detect(self.network(options), image, settings)
        labels = detections_to_labels(found, settings)
        advance()
        return in_label_dtype(labels), {"network_size": found.network_size, "detections": len(found)}

    def describe(self) -> dict:
        """The run record's model entry: kind and source.

        Returns
        -------
        dict
            ``{"kind": "maskrcnn", "model": source}``.

        Examples
        --------
        >>> load_model("mask_rcnn_final.h5").describe()  # doctest: +SKIP
        {'kind': 'maskrcnn', 'model': 'mask_rcnn_final.h5'}
        """
        return {"kind": self.kind, "model": self.source}

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """A `maskrcnn` model folder holding a copy of the `.h5` (e.g. to ship a fine-tuned model).

        The copy keeps the file's name (``mask_rcnn.h5`` if it does not end in `.h5`) and is written
        atomically, then the manifest with its sha256.

        Parameters
        ----------
        folder : str or os.PathLike
            The folder to write.
        overwrite : bool, optional
            Replace a model already in `folder` (default False: refuse).

        Returns
        -------
        pathlib.Path
            The model folder.

        Examples
        --------
        >>> load_model("mask_rcnn_final.h5").save("my_maskrcnn")  # doctest: +SKIP
        PosixPath('my_maskrcnn')
        """
        from nucleaizer_tf.io import atomic_path

        folder = prepare_folder(folder, overwrite=overwrite)
        name = self.path.name if self.path.suffix == ".h5" else "mask_rcnn.h5"
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(self.path, tmp)
        write_manifest(folder, "maskrcnn", {"weights": {"file": name, "sha256": sha256_of(folder / name)}})
        return folder
