"""A legacy matterport/nucleAIzer Mask R-CNN `.h5` behind the model facade: nucleAIzer's fast mode."""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

from nucleaizer_tf.models.base import Option, Segmenter, at_least, boolean, fraction, labels_dtype, one_of, positive
from nucleaizer_tf.precision import check_precision, resolve_precision

CONVERSIONS = ("nucleaizer", "percentile")


def file_key(path: str | os.PathLike) -> dict:
    """Cheap identity of a weight file or folder (path, size, modification time) for caches."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def padding_fraction(value) -> str | None:
    return fraction(value) or (None if float(value) <= 0.5 else "must be between 0 and 0.5")


@lru_cache(maxsize=2)
def _built(path: str, size: int, mtime_ns: int, config, precision: str = "float32"):
    """Built networks are kept for the next use in this process (a notebook re-running a cell, a resumed
    run): building and loading a 255 MB file takes seconds. Size and mtime make a changed file miss."""
    from nucleaizer_tf.maskrcnn import MaskRCNN

    return MaskRCNN.from_legacy_h5(path, config, precision=precision)


def build_maskrcnn(path: str | os.PathLike, config, precision: str = "float32"):
    """The `MaskRCNN` of a legacy `.h5` with `config` and compute `precision` ("float32", "bfloat16",
    "auto"), from the process-wide cache."""
    from nucleaizer_tf.precision import resolve_precision

    key = file_key(path)
    return _built(key["path"], key["size"], key["mtime_ns"], config, resolve_precision(precision))


class MaskRCNNSegmenter(Segmenter):
    """nucleAIzer's presegmentation (`segmentation.py` + `presegment.json`), or its manual-size mode when
    `nucleus_size` is given (confidence 0.5 and 1200 nuclei by default there).

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("mask_rcnn_final.h5")                 # doctest: +SKIP
    >>> labels = model.segment(image, confidence=0.6)            # doctest: +SKIP
    """

    kind = "maskrcnn"
    title = "legacy Mask R-CNN"
    options = {
        "confidence": Option(None, fraction, "minimum detection score [0.7; 0.5 with nucleus_size]"),
        "nms": Option(0.35, fraction, "IoU above which the lower-scoring detection is suppressed"),
        "max_instances": Option(None, at_least(1), "most nuclei per image [800; 1200 with nucleus_size]"),
        "image_size": Option(1024, at_least(64), "network size D (rounded up to a multiple of 64)"),
        "nucleus_size": Option(None, positive, "nucleus diameter: D per image so nuclei reach 80 px"),
        "padding": Option(0.05, padding_fraction, "reflect padding per side, as a fraction of the image size"),
        "dilation": Option(1, at_least(0), "radius of the per-nucleus dilation"),
        "fill_holes": Option(False, boolean, "fill holes per nucleus (the original's was a no-op)"),
        "absolute_mask_threshold": Option(False, boolean, "cut masks at 0.5, not the min-max mid-point"),
        "conversion": Option("nucleaizer", one_of(*CONVERSIONS), "how non-8-bit images become 8-bit RGB"),
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
        """The built network for resolved `options` (its detection thresholds are part of the graph)."""
        config = self._preset(options).replace(DETECTION_MIN_CONFIDENCE=float(options["confidence"]),
                                               DETECTION_NMS_THRESHOLD=float(options["nms"]),
                                               DETECTION_MAX_INSTANCES=int(options["max_instances"]))
        return build_maskrcnn(self.path, config, options["precision"])

    @staticmethod
    def segment_options(options: dict):
        from nucleaizer_tf.maskrcnn.inference import SegmentOptions

        return SegmentOptions(image_size=int(options["image_size"]), nucleus_size=options["nucleus_size"],
                              padding=float(options["padding"]), dilation=int(options["dilation"]),
                              fill_holes=bool(options["fill_holes"]),
                              absolute_mask_threshold=bool(options["absolute_mask_threshold"]),
                              conversion=options["conversion"])

    def prepare(self, **options) -> dict:
        resolved = self.resolve_options(options)
        self.network(resolved)
        return resolved

    def _segment(self, image: np.ndarray, options: dict, name: str | None):
        from nucleaizer_tf.maskrcnn.inference import detect, detections_to_labels

        settings = self.segment_options(options)
        found = detect(self.network(options), image, settings)
        labels = detections_to_labels(found, settings)
        return labels_dtype(labels), {"network_size": found.network_size, "detections": len(found)}

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.source}

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """A `maskrcnn` model folder holding a copy of the `.h5` (e.g. to ship a fine-tuned model)."""
        from nucleaizer_tf.io import atomic_path
        from nucleaizer_tf.models.folder import prepare_folder, sha256_of, write_manifest

        folder = prepare_folder(folder, overwrite=overwrite)
        name = self.path.name if self.path.suffix == ".h5" else "mask_rcnn.h5"
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(self.path, tmp)
        write_manifest(folder, "maskrcnn", {"weights": {"file": name, "sha256": sha256_of(folder / name)}},
                       format_version=1)
        return folder
