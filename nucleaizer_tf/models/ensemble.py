"""A U-Net ensemble folder behind the model facade: its 16-bit mean map, thresholded, split into
connected components. (In the full pipeline the ensemble only refines Mask R-CNN's nuclei; on its own it
is a semantic segmenter, so touching nuclei stay merged.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucleaizer_tf.models.base import Option, Segmenter, fraction, labels_dtype, one_of
from nucleaizer_tf.models.maskrcnn import CONVERSIONS


class EnsembleSegmenter(Segmenter):
    """`UNetEnsemble` → labels: 8-connected components of E ≥ threshold·65535.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> labels = load_model("unet_ensemble/").segment(image, threshold=0.5)  # doctest: +SKIP
    """

    kind = "unet-ensemble"
    title = "U-Net ensemble"
    options = {
        "threshold": Option(0.5, fraction, "foreground where the ensemble probability is at least this"),
        "conversion": Option("nucleaizer", one_of(*CONVERSIONS), "how non-8-bit images become 8-bit RGB"),
    }

    def __init__(self, ensemble, source: str):
        self.ensemble = ensemble
        self.source = source

    @classmethod
    def load(cls, folder) -> EnsembleSegmenter:
        from nucleaizer_tf.unet.ensemble import UNetEnsemble

        return cls(UNetEnsemble.load(folder), str(Path(folder)))

    def probability(self, image: np.ndarray, conversion: str = "nucleaizer") -> np.ndarray:
        """The ensemble's uint16 map E (65535 = certain nucleus) of an image of any dtype."""
        from nucleaizer_tf.io import to_rgb8

        return self.ensemble.predict(to_rgb8(np.asarray(image), conversion))

    def _segment(self, image: np.ndarray, options: dict, name: str | None):
        from skimage.measure import label

        level = int(np.ceil(float(options["threshold"]) * 65535))
        labels = label(self.probability(image, options["conversion"]) >= level, connectivity=2)
        return labels_dtype(labels), {"members": len(self.ensemble)}

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.source, "members": [m.name for m in self.ensemble.members]}

    def save(self, folder, *, overwrite: bool = False) -> Path:
        from nucleaizer_tf.models.folder import prepare_folder

        return self.ensemble.save(prepare_folder(folder, overwrite=overwrite))
