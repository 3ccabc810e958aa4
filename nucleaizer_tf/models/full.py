"""nucleAIzer's full pipeline (presegmentation, size estimation, U-Net ensemble, Mask R-CNN at two
scales, post-processing) behind the model facade, from its three parts or from one model folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.model_folder import MANIFEST, file_entry, prepare_folder, write_manifest
from nucleaizer_tf.labels import in_label_dtype
from nucleaizer_tf.maskrcnn.inference import SegmentOptions
from nucleaizer_tf.models.base import Option, Segmenter, at_least, boolean, fraction, one_of
from nucleaizer_tf.models.maskrcnn import CONVERSIONS, padding_fraction
from nucleaizer_tf.precision import check_precision, resolve_precision
from nucleaizer_tf.runtime import check_runtime, resolve_runtime

FOLDER_FILES = {"presegmentation": "mask_rcnn_presegmentation.h5", "final": "mask_rcnn_final.h5"}


def _params(value) -> str | None:
    from nucleaizer_tf.postprocess.params import PostprocessParams

    if isinstance(value, (str, os.PathLike)):
        return None if Path(value).is_file() else "no such parameter file"
    try:
        PostprocessParams.from_vector(list(value)) if not isinstance(value, PostprocessParams) else None
    except (TypeError, ValueError) as exc:
        return f"not 9 post-processing parameters ({exc})"
    return None


class FullSegmenter(Segmenter):
    """The full pipeline. With `work_dir`, intermediate results are cached per image name
    (`segment_with_facts(image, name=stem)`), so an interrupted folder run resumes.

    Made by ``load_model(FINAL.h5, mode="full", unet=DIR)`` or by `load_model` on a `full-pipeline` folder.
    Options of `segment`: `image_size` (presegmentation network size, default 1024), `confidence` (minimum
    detection score of the final model, 0.6), `nms` (0.35), `max_instances` (800), `padding` (0.05),
    `dilation` (1), `fill_holes` (False), `absolute_mask_threshold` (False), `conversion` ("nucleaizer"),
    `postprocess_params` (the 9 post-processing parameters or a param-search result file; None = the
    defaults), `max_network_size` (cap of the 2x/4x Mask R-CNN sizes; None = no cap) and `precision`
    (Mask R-CNN compute type, "float32").

    Parameters
    ----------
    preseg_model : str or os.PathLike
        The presegmentation Mask R-CNN (`mask_rcnn_presegmentation.h5`).
    final_model : str or os.PathLike
        The final Mask R-CNN (`mask_rcnn_final.h5`).
    unet_dir : str or os.PathLike
        The U-Net ensemble folder (an original PyTorch folder is converted once into the work folder, or
        into a temporary folder without one).
    work_dir : str or os.PathLike, optional
        Folder for the cached intermediate results; None (default) keeps nothing on disk.
    source : str, optional
        The `full-pipeline` model folder the parts came from, for `describe`.

    Raises
    ------
    NucleaizerError
        When one of the three parts does not exist.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> full = load_model("mask_rcnn_final.h5", mode="full", preseg_model="mask_rcnn_presegmentation.h5",
    ...                   unet="unet_ensemble/")                       # doctest: +SKIP
    >>> labels = full.segment(image)                                  # doctest: +SKIP
    >>> full.save("my_nucleaizer")  # one folder: load_model("my_nucleaizer")  # doctest: +SKIP
    """

    kind = "full-pipeline"
    title = "full pipeline"
    options = {
        "image_size": Option(1024, at_least(64), "presegmentation network size"),
        "confidence": Option(0.6, fraction, "minimum detection score of the final model"),
        "nms": Option(0.35, fraction, "detection NMS threshold"),
        "max_instances": Option(800, at_least(1), "most nuclei per image"),
        "padding": Option(SegmentOptions.padding, padding_fraction),
        "dilation": Option(SegmentOptions.dilation, at_least(0)),
        "fill_holes": Option(SegmentOptions.fill_holes, boolean),
        "absolute_mask_threshold": Option(SegmentOptions.absolute_mask_threshold, boolean),
        "conversion": Option(SegmentOptions.conversion, one_of(*CONVERSIONS)),
        "postprocess_params": Option(None, _params, "9 post-processing parameters, or a param-search result file"),
        "max_network_size": Option(None, at_least(64), "cap of the 2x/4x Mask R-CNN sizes"),
        "precision": Option("float32", check_precision, "Mask R-CNN compute type: float32, bfloat16, auto"),
        "runtime": Option("tensorflow", check_runtime, "where the U-Net members run: tensorflow (default, faithful), "
                          "openvino, auto (OpenVINO where installed)"),
    }

    def __init__(self, preseg_model, final_model, unet_dir, *, work_dir=None, source: str | None = None):
        for path, what in ((preseg_model, "presegmentation weight file"), (final_model, "weight file"),
                           (unet_dir, "U-Net ensemble folder")):
            if not Path(path).exists():
                raise NucleaizerError(f"{path}: no such {what}")
        self.preseg_model, self.final_model, self.unet_dir = Path(preseg_model), Path(final_model), Path(unet_dir)
        self.work_dir = None if work_dir is None else Path(work_dir)
        self.source = source
        self._pipelines: dict = {}

    @classmethod
    def from_folder(cls, folder, manifest: dict, *, work_dir=None) -> FullSegmenter:
        """The full pipeline of a `full-pipeline` model folder, both `.h5` files checked by sha256.

        Parameters
        ----------
        folder : str or os.PathLike
            The model folder.
        manifest : dict
            Its parsed manifest (see `nucleaizer_tf.io.model_folder.read_manifest`).
        work_dir : str or os.PathLike, optional
            Folder for the cached intermediate results; None (default) keeps nothing on disk.

        Returns
        -------
        FullSegmenter
            The pipeline, with the folder as its source.

        Examples
        --------
        >>> folder, manifest, _ = read_manifest("my_nucleaizer", expect="full-pipeline")  # doctest: +SKIP
        >>> full = FullSegmenter.from_folder(folder, manifest, work_dir="work")          # doctest: +SKIP
        """

        parts = [file_entry(folder, manifest, k, f"{k} weight file") for k in FOLDER_FILES]
        unet = manifest.get("unet")
        if not isinstance(unet, str) or not unet or Path(unet).is_absolute() or ".." in Path(unet).parts:
            raise NucleaizerError(f"{Path(folder) / MANIFEST}: field unet must name a sub-folder of the model "
                                  f"folder, got {str(unet)[:40]!r}")
        return cls(*parts, Path(folder) / unet, work_dir=work_dir, source=str(folder))

    def settings(self, options: dict):
        """The `FullSettings` of resolved options.

        Parameters
        ----------
        options : dict
            Resolved options (see `resolve_options`); `postprocess_params` None means
            `DEFAULT_PARAMS`, a path is read as a param-search result file.

        Returns
        -------
        nucleaizer_tf.full.FullSettings
            The settings the pipeline runs with.

        Examples
        --------
        >>> full.settings(full.resolve_options({"confidence": 0.5})).final_confidence  # doctest: +SKIP
        0.5
        """
        from nucleaizer_tf.full import FullSettings
        from nucleaizer_tf.postprocess.params import DEFAULT_PARAMS, PostprocessParams, read_params

        params = options["postprocess_params"]
        if params is None:
            params = DEFAULT_PARAMS
        elif isinstance(params, (str, os.PathLike)):
            params = read_params(params)
        elif not isinstance(params, PostprocessParams):
            params = PostprocessParams.from_vector(list(params))
        return FullSettings(preseg_size=int(options["image_size"]), final_confidence=float(options["confidence"]),
                            nms=float(options["nms"]), max_instances=int(options["max_instances"]),
                            padding=float(options["padding"]), dilation=int(options["dilation"]),
                            fill_holes=bool(options["fill_holes"]),
                            absolute_mask_threshold=bool(options["absolute_mask_threshold"]),
                            conversion=options["conversion"], params=params,
                            max_network_size=options["max_network_size"],
                            precision=resolve_precision(options["precision"]),
                            runtime=resolve_runtime(options["runtime"]))

    def pipeline(self, options: dict):
        """The `FullPipeline` for resolved options (one per distinct settings, kept for reuse).

        Parameters
        ----------
        options : dict
            Resolved options (see `resolve_options`).

        Returns
        -------
        nucleaizer_tf.full.FullPipeline
            The pipeline, its networks loaded on first need.

        Examples
        --------
        >>> pipeline = full.pipeline(full.resolve_options())  # doctest: +SKIP
        """
        from nucleaizer_tf.full import FullPipeline

        settings = self.settings(options)
        if settings not in self._pipelines:
            self._pipelines[settings] = FullPipeline(self.work_dir, self.preseg_model, self.final_model,
                                                     self.unet_dir, settings)
        return self._pipelines[settings]

    def _load_networks(self, options: dict) -> None:
        """Load all three networks now (see `Segmenter.prepare`)."""
        self.pipeline(options).load_networks()

    def _segment(self, image: np.ndarray, options: dict, name: str | None, advance):
        labels, facts = self.pipeline(options).segment(image, name)
        advance()
        return in_label_dtype(labels), facts

    def record_settings(self, options: dict) -> dict:
        """The settings block of the run record (the 9 parameters as a vector).

        Parameters
        ----------
        options : dict
            Resolved options.

        Returns
        -------
        dict
            `FullSettings.to_dict` of the options' settings.

        Examples
        --------
        >>> full.record_settings(full.resolve_options())["final_confidence"]  # doctest: +SKIP
        0.6
        """
        return self.settings(options).to_dict()

    def write_scale_tables(self) -> None:
        """Write the original's scales-rcnn-{1,2,4}x.csv of every image segmented so far.

        Into ``<work_dir>/sizes``, one set per distinct settings used; nothing without a work folder.

        Examples
        --------
        >>> full.write_scale_tables()  # doctest: +SKIP
        """
        for pipeline in self._pipelines.values():
            pipeline.write_scale_tables()

    def describe(self) -> dict:
        """The run record's model entry: the three parts, and the model folder and work folder if any.

        Returns
        -------
        dict
            ``kind``, ``model`` (the final `.h5`), ``preseg_model``, ``unet``, and ``folder`` and
            ``work_dir`` where they apply.

        Examples
        --------
        >>> full.describe()["preseg_model"]  # doctest: +SKIP
        'mask_rcnn_presegmentation.h5'
        """
        info = {"kind": self.kind, "model": str(self.final_model), "preseg_model": str(self.preseg_model),
                "unet": str(self.unet_dir)}
        if self.source:
            info["folder"] = self.source
        if self.work_dir is not None:
            info["work_dir"] = str(self.work_dir)
        return info

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """One `full-pipeline` folder: copies of both `.h5` files and the ensemble as `unet/`.

        Each file is written atomically and the manifest last, so ``load_model(folder)`` gives this
        pipeline back.

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
        >>> full.save("my_nucleaizer")  # doctest: +SKIP
        PosixPath('my_nucleaizer')
        """
        from nucleaizer_tf.io import atomic_path
        from nucleaizer_tf.unet.ensemble import UNetEnsemble

        folder = prepare_folder(folder, overwrite=overwrite)
        body = {}
        for role, source in (("presegmentation", self.preseg_model), ("final", self.final_model)):
            name = FOLDER_FILES[role]
            with atomic_path(folder / name) as tmp:
                shutil.copyfile(source, tmp)
            body[role] = {"file": name, "sha256": sha256_of(folder / name)}
        UNetEnsemble.load(self.unet_dir).save(folder / "unet")
        body["unet"] = "unet"
        write_manifest(folder, "full-pipeline", body)
        return folder
