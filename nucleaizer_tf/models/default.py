"""The shipped default model (and every fine-tuned copy of it) behind the model facade."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nucleaizer_tf.models.base import Option, Segmenter, boolean, labels_dtype, positive


class DefaultSegmenter(Segmenter):
    """`nucleaizer_tf.default_model.DefaultModel` with the facade's options.

    Options: `nucleus_size` (typical nucleus diameter in pixels; None = estimated per image), `tta`
    (average over 8 flips/rotations, about 8× slower), `tile` (core size of tiles for large images).

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("default")
    >>> labels = model.segment(image, nucleus_size=25)  # doctest: +SKIP
    """

    kind = "default-model"
    title = "default model"
    options = {
        "nucleus_size": Option(None, positive, "nucleus diameter in pixels; None = estimated per image"),
        "tta": Option(False, boolean, "average over the 8 flips and rotations"),
        "tile": Option(1024, positive, "core size of the tiles large images are run in"),
    }

    def __init__(self, model, source: str):
        self.model = model
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> DefaultSegmenter:
        """The shipped model (None) or a default-model folder."""
        from nucleaizer_tf.default_model import DefaultModel

        return cls(DefaultModel.load(path), "shipped" if path is None else str(Path(path)))

    def _segment(self, image: np.ndarray, options: dict, name: str | None):
        labels, info = self.model.segment(image, diameter=options["nucleus_size"], tta=options["tta"],
                                          tile=int(options["tile"]), return_info=True)
        estimated = None if not math.isfinite(info.diameter) else round(float(info.diameter), 2)
        return labels_dtype(labels), {"scale": round(float(info.scale), 4), "estimated_diameter": estimated}

    def describe(self) -> dict:
        manifest = self.model.manifest
        return {"kind": self.kind, "model": "default (weights/default)" if self.source == "shipped" else self.source,
                "model_sha256": manifest.get("sha256"), "name": manifest.get("name")}

    def save(self, folder, *, overwrite: bool = False, **notes) -> Path:
        return self.model.save(folder, overwrite=overwrite, **notes)
