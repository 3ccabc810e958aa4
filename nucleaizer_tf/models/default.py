"""The shipped default model (and every fine-tuned copy of it) behind the model facade."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nucleaizer_tf.labels import drop_objects, in_label_dtype
from nucleaizer_tf.models.base import Option, Segmenter, at_least, boolean, fraction, positive
from nucleaizer_tf.precision import check_precision, resolve_precision
from nucleaizer_tf.runtime import check_runtime, resolve_runtime

#: The facade's default precision of the default model. "auto" would need bfloat16 to change the DSB
#: score by at most 0.005 per modality; measured on the 15 shared DSB images (README "Speed and
#: precision") bright-field moved by +0.040 (one image's size estimate changed), so float32 stays the
#: default and bfloat16 / auto are opt-in.
DEFAULT_PRECISION = "float32"


class DefaultSegmenter(Segmenter):
    """`nucleaizer_tf.default_model.DefaultModel` with the facade's options.

    Made by ``load_model("default")`` (the shipped model) or by `load_model` on a default-model folder
    (a fine-tuned copy, as `adapt` and `train default` write). Options of `segment`:

    - `nucleus_size`: typical nucleus diameter in pixels; None (default) = estimated per image.
    - `tta`: average over the 8 flips/rotations, about 8× slower (default False).
    - `tile`: core size of the tiles large images are run in (default 1024).
    - `precision`: the network's compute type: float32 (default, `DEFAULT_PRECISION`), bfloat16 or
      auto = bfloat16 where the hardware has it (see `nucleaizer_tf.precision`).
    - `runtime`: where the network runs: auto (default: OpenVINO where the ``openvino`` extra is
      installed, else TensorFlow), tensorflow or openvino (see `nucleaizer_tf.runtime`).

    Parameters
    ----------
    model : nucleaizer_tf.default_model.DefaultModel
        The loaded network and its manifest.
    source : str
        Where the model came from: ``"shipped"`` or the model folder's path (for `describe`).

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("default")                   # doctest: +SKIP
    >>> labels = model.segment(image, nucleus_size=25)  # doctest: +SKIP
    >>> labels = model.segment(image, tta=True)         # doctest: +SKIP
    """

    kind = "default-model"
    title = "default model"
    options = {
        "nucleus_size": Option(None, positive, "nucleus diameter in pixels; None = estimated per image"),
        "tta": Option(False, boolean, "average over the 8 flips and rotations"),
        "tile": Option(1024, positive, "core size of the tiles large images are run in"),
        "precision": Option(DEFAULT_PRECISION, check_precision,
                            "network compute type: float32, bfloat16, auto (bfloat16 where the hardware has it)"),
        "runtime": Option("auto", check_runtime, "where the network runs: auto (OpenVINO where installed), "
                          "tensorflow, openvino"),
        "seed_threshold": Option(None, fraction, "interior probability that seeds a nucleus; None = the model's"),
        "foreground_threshold": Option(None, fraction, "P(background) under which a pixel is nucleus; None = the model's"),
        "min_size": Option(0, at_least(0), "drop nuclei of fewer pixels (at the image's resolution)"),
        "exclude_edges": Option(False, boolean, "drop nuclei touching the image border"),
        "save_probabilities": Option(False, boolean, "also give the class map the labels came from: uint8 H×W×3 "
                                     "(background, interior, boundary) at the image's size, facts['probabilities']"),
    }

    def __init__(self, model, source: str):
        self.model = model
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> DefaultSegmenter:
        """The shipped model (None) or a default-model folder.

        Parameters
        ----------
        path : str or os.PathLike, optional
            A default-model folder or its `manifest.json`; None (default) = the shipped model.

        Returns
        -------
        DefaultSegmenter
            The model, its weight file checked against the manifest's sha256.

        Examples
        --------
        >>> model = DefaultSegmenter.load()                 # doctest: +SKIP
        >>> tuned = DefaultSegmenter.load("adapt_out/model")  # doctest: +SKIP
        """
        from nucleaizer_tf.default_model import DefaultModel

        return cls(DefaultModel.load(path), "shipped" if path is None else str(Path(path)))

    @classmethod
    def _fill_defaults(cls, resolved: dict) -> dict:
        resolved["precision"] = resolve_precision(resolved["precision"])
        resolved["runtime"] = resolve_runtime(resolved["runtime"])
        return resolved

    def _load_networks(self, options: dict) -> None:
        """Build the network in the chosen precision, and convert it for the runtime, now (see `Segmenter.prepare`)."""
        self.model.with_precision(options["precision"]).with_runtime(options["runtime"])

    def record_settings(self, options: dict) -> dict:
        """The applied settings, with the thresholds in force where the options left them to the model.

        Examples
        --------
        >>> model = load_model("default")                                    # doctest: +SKIP
        >>> model.record_settings(model.resolve_options({}))["seed_threshold"]  # doctest: +SKIP
        0.5
        """
        return {**super().record_settings(options),
                **{name: getattr(self.model, name) if options[name] is None else options[name]
                              for name in ("seed_threshold", "foreground_threshold")}}

    def _segment(self, image: np.ndarray, options: dict, name: str | None, advance):
        model = self.model.with_precision(options["precision"]).with_runtime(options["runtime"]).with_instance(
            seed_threshold=options["seed_threshold"], foreground_threshold=options["foreground_threshold"])
        labels, info = model.segment(image, nucleus_size=options["nucleus_size"], tta=options["tta"],
                                     tile=int(options["tile"]), return_info=True, on_window=advance,
                                     keep_probabilities=options["save_probabilities"])
        labels = drop_objects(labels, min_size=int(options["min_size"]), touching_edges=options["exclude_edges"])
        estimated = None if not math.isfinite(info.diameter) else round(float(info.diameter), 2)
        facts = {"scale": round(float(info.scale), 4), "estimated_diameter": estimated}
        if options["save_probabilities"]:
            facts["probabilities"] = info.probabilities
        return in_label_dtype(labels), facts

    def describe(self) -> dict:
        """The run record's model entry: kind, source, the weights' sha256 and the model's name.

        Returns
        -------
        dict
            ``kind``, ``model`` (``"default (weights/default)"`` for the shipped model, else the folder),
            ``model_sha256`` and ``name`` (from the manifest; None where it has none).

        Examples
        --------
        >>> load_model("default").describe()["model"]  # doctest: +SKIP
        'default (weights/default)'
        """
        manifest = self.model.manifest
        return {"kind": self.kind, "model": "default (weights/default)" if self.source == "shipped" else self.source,
                "model_sha256": manifest.get("sha256"), "name": manifest.get("name")}

    def save(self, folder, *, overwrite: bool = False, **notes) -> Path:
        """Write the model as a default-model folder (see `DefaultModel.save`).

        The weights are written first, then `manifest.json` with their sha256, each atomically.

        Parameters
        ----------
        folder : str or os.PathLike
            The folder to write.
        overwrite : bool, optional
            Replace a model already in `folder` (default False: refuse).
        **notes
            Added to the manifest, e.g. what a fine-tuned model was adapted to.

        Returns
        -------
        pathlib.Path
            The model folder.

        Examples
        --------
        >>> load_model("default").save("my_model", adapted={"style": "H&E"})  # doctest: +SKIP
        PosixPath('my_model')
        """
        return self.model.save(folder, overwrite=overwrite, **notes)
