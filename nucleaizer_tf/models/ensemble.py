"""A U-Net ensemble folder behind the model facade: its 16-bit mean map, thresholded, split into
connected components. (In the full pipeline the ensemble only refines Mask R-CNN's nuclei; on its own it
is a semantic segmenter, so touching nuclei stay merged.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucleaizer_tf.io.model_folder import prepare_folder
from nucleaizer_tf.labels import in_label_dtype
from nucleaizer_tf.models.base import Option, Segmenter, fraction, one_of
from nucleaizer_tf.models.maskrcnn import CONVERSIONS
from nucleaizer_tf.runtime import check_runtime, resolve_runtime


class EnsembleSegmenter(Segmenter):
    """`UNetEnsemble` → labels: 8-connected components of E ≥ threshold·65535.

    E is the ensemble's uint16 mean map (65535 = certain nucleus). A semantic segmenter: touching nuclei
    stay one object. Options of `segment`: `threshold` (default 0.5, between 0 and 1), `conversion`
    (how non-8-bit images become 8-bit RGB: ``"nucleaizer"``, the default, or ``"percentile"``) and
    `runtime` (``"auto"``, the default: OpenVINO where installed; ``"tensorflow"``; ``"openvino"``).

    Parameters
    ----------
    ensemble : nucleaizer_tf.unet.ensemble.UNetEnsemble
        The loaded ensemble.
    source : str
        The ensemble folder, for `describe`.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("unet_ensemble/")                  # doctest: +SKIP
    >>> labels = model.segment(image, threshold=0.5)          # doctest: +SKIP
    >>> probability = model.probability(image)                # doctest: +SKIP
    """

    kind = "unet-ensemble"
    title = "U-Net ensemble"
    options = {
        "threshold": Option(0.5, fraction, "foreground where the ensemble probability is at least this"),
        "conversion": Option("nucleaizer", one_of(*CONVERSIONS), "how non-8-bit images become 8-bit RGB"),
        "runtime": Option("auto", check_runtime, "where the members run: auto (OpenVINO where installed), "
                          "tensorflow, openvino"),
    }

    def __init__(self, ensemble, source: str):
        self.ensemble = ensemble
        self.source = source

    @classmethod
    def load(cls, folder) -> EnsembleSegmenter:
        """Load a U-Net ensemble folder, checking each member's weight file against its sha256.

        Parameters
        ----------
        folder : str or os.PathLike
            A `unet-ensemble` model folder.

        Returns
        -------
        EnsembleSegmenter
            The segmenter of the ensemble.

        Examples
        --------
        >>> model = EnsembleSegmenter.load("unet_ensemble/")  # doctest: +SKIP
        """
        from nucleaizer_tf.unet.ensemble import UNetEnsemble

        return cls(UNetEnsemble.load(folder), str(Path(folder)))

    @classmethod
    def _fill_defaults(cls, resolved: dict) -> dict:
        resolved["runtime"] = resolve_runtime(resolved["runtime"])
        return resolved

    def probability(self, image: np.ndarray, conversion: str = "nucleaizer", runtime: str = "auto") -> np.ndarray:
        """The ensemble's uint16 map E (65535 = certain nucleus) of an image of any dtype.

        Parameters
        ----------
        image : numpy.ndarray
            A grey or RGB(A) image of any dtype.
        conversion : str, optional
            How a non-8-bit image becomes 8-bit RGB: ``"nucleaizer"`` (default) or ``"percentile"``.
        runtime : {"auto", "tensorflow", "openvino"}, optional
            Where the members run (default auto: OpenVINO where installed, see `nucleaizer_tf.runtime`).

        Returns
        -------
        numpy.ndarray
            H×W uint16: the mean of the members' 16-bit probability maps.

        Examples
        --------
        >>> E = load_model("unet_ensemble/").probability(image)  # doctest: +SKIP
        >>> E.dtype                                              # doctest: +SKIP
        dtype('uint16')
        """
        from nucleaizer_tf.io import to_rgb8

        return self.ensemble.with_runtime(runtime).predict(to_rgb8(np.asarray(image), conversion))

    def _segment(self, image: np.ndarray, options: dict, name: str | None, advance):
        from skimage.measure import label

        level = int(np.ceil(float(options["threshold"]) * 65535))
        labels = label(self.probability(image, options["conversion"], options["runtime"]) >= level, connectivity=2)
        advance()
        return in_label_dtype(labels), {"members": len(self.ensemble)}

    def _load_networks(self, options: dict) -> None:
        """Make the members' forward passes for the runtime now (an OpenVINO conversion, once per member)."""
        self.ensemble.with_runtime(options["runtime"])

    def describe(self) -> dict:
        """The run record's model entry: kind, folder and member names.

        Returns
        -------
        dict
            ``kind``, ``model`` (the folder) and ``members`` (the member names, in order).

        Examples
        --------
        >>> load_model("unet_ensemble/").describe()["kind"]  # doctest: +SKIP
        'unet-ensemble'
        """
        return {"kind": self.kind, "model": self.source, "members": [m.name for m in self.ensemble.members]}

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """Write the ensemble as a `unet-ensemble` model folder (weights, then the manifest, atomically).

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
        >>> load_model("unet_ensemble/").save("ensemble_copy")  # doctest: +SKIP
        PosixPath('ensemble_copy')
        """

        return self.ensemble.save(prepare_folder(folder, overwrite=overwrite))
