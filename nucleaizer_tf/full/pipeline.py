"""nucleAIzer's full prediction (docs/method.md §1.2), one image at a time, resumable.

presegmentation (Mask R-CNN at 1024) → nucleus size (zero-inclusive median equivalent diameter) →
2× MATLAB-bicubic upscaling → U-Net ensemble on the original image → final Mask R-CNN on the 2× image at
the "2x" and "4x" sizes → post-processing (cleanup, scale merge, U-Net refinement) → label image.

Every intermediate result is cached under the work folder (`nucleaizer_tf.io.stage_cache.ItemCache`), written
atomically, in a folder whose `stage.json` records the settings it was made with: an interrupted run
resumes from what exists, and a run with other settings (or other model files) recomputes instead of
reusing stale results. The cached files are lossless (uint16 TIFF/PNG, uint8 PNG), so a resumed run
gives the same labels as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import to_rgb8
from nucleaizer_tf.maskrcnn.inference import SegmentOptions
from nucleaizer_tf.io.digest import file_key
from nucleaizer_tf.io.stage_cache import ItemCache
from nucleaizer_tf.maskrcnn.cached import build_maskrcnn
from nucleaizer_tf.unet.torch_import import ensemble_folder_for
from nucleaizer_tf.postprocess.params import DEFAULT_PARAMS, PostprocessParams
from nucleaizer_tf.postprocess.size import network_sizes, measure, write_scale_csvs

FACTORS = (2, 4)


@dataclass(frozen=True)
class FullSettings:
    """Settings of the full pipeline; the defaults are the original's: presegment.json,
    segmentation_params_{2x,4x}.json, postProcCodeRunnerFINAL.

    Attributes
    ----------
    preseg_size : int
        Network size of the presegmentation Mask R-CNN (1024).
    preseg_confidence : float
        Minimum detection score of the presegmentation (0.7).
    final_confidence : float
        Minimum detection score of the final Mask R-CNN at 2x and 4x (0.6).
    nms : float
        Detection NMS IoU threshold of both networks (0.35).
    max_instances : int
        Most detections per image (800).
    padding : float
        Reflect padding per side, as a fraction of the image size (0.05).
    dilation : int
        Radius of the per-nucleus dilation (1; 0 = off).
    fill_holes : bool
        Fill holes per nucleus (False; the original's was a no-op).
    absolute_mask_threshold : bool
        Cut masks at probability 0.5 instead of the min-max mid-point (False).
    conversion : str
        How non-8-bit images become 8-bit RGB (``"nucleaizer"`` or ``"percentile"``).
    params : PostprocessParams
        The 9 post-processing parameters (`DEFAULT_PARAMS`: ``[76, 32, 0, 1, 44, 17, 32, 25, 21]``).
    max_network_size : int or None
        Cap on the 2x/4x network sizes (the original's own cap is 6000 before rounding); lower it to
        bound time and memory on CPU. Sizes above it are reduced to the largest multiple of 64 below the
        cap (at least 64). None (default): no cap.
    precision : str
        Compute type of both Mask R-CNN networks (``"float32"``; the U-Net ensemble always runs in
        float32).
    runtime : str
        Where the U-Net ensemble's members run: ``"tensorflow"`` (default, the faithful reference) or
        ``"openvino"`` (the same float32 network, its 16-bit maps within one step of TensorFlow's).

    Examples
    --------
    >>> settings = FullSettings(final_confidence=0.5, max_network_size=2048)
    >>> settings.to_dict()["params"]
    [76, 32, 0, 1, 44, 17, 32, 25, 21]
    >>> settings.segment_options(1536).image_size
    1536
    """

    preseg_size: int = 1024
    preseg_confidence: float = 0.7
    final_confidence: float = 0.6
    nms: float = 0.35
    max_instances: int = 800
    padding: float = SegmentOptions.padding  # the per-image Mask R-CNN settings' defaults are SegmentOptions'
    dilation: int = SegmentOptions.dilation
    fill_holes: bool = SegmentOptions.fill_holes
    absolute_mask_threshold: bool = SegmentOptions.absolute_mask_threshold
    conversion: str = SegmentOptions.conversion
    params: PostprocessParams = field(default_factory=lambda: DEFAULT_PARAMS)
    # Cap on the 2x/4x network sizes (the original's own cap is 6000 before rounding); lower it to bound
    # time and memory on CPU. Sizes above it are reduced to the largest multiple of 64 below the cap.
    max_network_size: int | None = None
    # Compute type of both Mask R-CNN networks (the U-Net ensemble always runs in float32).
    precision: str = "float32"
    # Where the U-Net ensemble's members run ("tensorflow" or "openvino").
    runtime: str = "tensorflow"

    def segment_options(self, image_size: int) -> SegmentOptions:
        """The per-image Mask R-CNN options of these settings at network size `image_size`.

        Parameters
        ----------
        image_size : int
            The network size of this run (presegmentation, 2x or 4x).

        Returns
        -------
        SegmentOptions
            `image_size` with these settings' padding, dilation, hole filling, mask threshold and
            conversion.

        Examples
        --------
        >>> FullSettings().segment_options(2048).padding
        0.05
        """
        return SegmentOptions(
            image_size=image_size,
            padding=self.padding,
            dilation=self.dilation,
            fill_holes=self.fill_holes,
            absolute_mask_threshold=self.absolute_mask_threshold,
            conversion=self.conversion,
        )

    def to_dict(self) -> dict:
        """The settings as a JSON-able dict (for the run record), the 9 parameters as a vector.

        Returns
        -------
        dict
            One entry per field; ``params`` as a list of 9 numbers in the original order.

        Examples
        --------
        >>> FullSettings().to_dict()["final_confidence"]
        0.6
        """
        values = asdict(self)
        values["params"] = list(self.params.to_vector())
        return values


class FullPipeline:
    """Callable per image (`segment(image, stem)`), with the networks loaded on first need.

    `work_dir` None keeps nothing on disk (each call computes every stage); with a folder, results are
    cached per image stem and a rerun resumes from them. The cached stages are ``presegment/``,
    ``2ximages/``, ``ensemble/`` and ``maskrcnn/{2x,4x}/`` under `work_dir`, each an `ItemCache` keyed by
    the settings and model files it depends on.

    Parameters
    ----------
    work_dir : str or os.PathLike or None
        The work folder of the cached intermediate results, or None.
    preseg_model : pathlib.Path
        The presegmentation Mask R-CNN `.h5`.
    final_model : pathlib.Path
        The final Mask R-CNN `.h5`.
    unet_dir : pathlib.Path
        The U-Net ensemble folder; an original PyTorch folder is converted once into
        ``work_dir/unet-converted/<fingerprint>/`` (a temporary folder without `work_dir`; see
        `nucleaizer_tf.unet.torch_import.ensemble_folder_for`).
    settings : FullSettings, optional
        The pipeline's settings (default: the original's).

    Attributes
    ----------
    unet_dir : pathlib.Path
        The ensemble folder actually loaded (after any conversion).
    stages : dict of str to ItemCache
        The stage caches, by stage name.
    sizes : dict
        The size record (`postprocess.size.measure`) of each image segmented so far, by stem.

    Raises
    ------
    NucleaizerError
        When one of the three model paths does not exist.

    Examples
    --------
    >>> pipeline = FullPipeline("work", Path("mask_rcnn_presegmentation.h5"), Path("mask_rcnn_final.h5"),
    ...                         Path("unet_ensemble"))                                    # doctest: +SKIP
    >>> labels, facts = pipeline.segment(image, "a")                                      # doctest: +SKIP
    >>> sorted(facts)                                                                      # doctest: +SKIP
    ['median_diameter', 'network_size_2x', 'network_size_4x']
    """

    def __init__(self, work_dir, preseg_model: Path, final_model: Path, unet_dir: Path, settings: FullSettings = FullSettings()):
        for path, what in ((preseg_model, "presegmentation weight file"), (final_model, "weight file"), (unet_dir, "U-Net ensemble folder")):
            if not Path(path).exists():
                raise NucleaizerError(f"{path}: no such {what}")
        self.work_dir = None if work_dir is None else Path(work_dir)
        self.settings = settings
        # An original PyTorch U-Net folder is converted once into the work folder (nucleaizer_tf.unet.torch_import).
        self.preseg_model, self.final_model = Path(preseg_model), Path(final_model)
        self.unet_dir = ensemble_folder_for(unet_dir, self.work_dir)
        s = settings
        preseg_key = {"model": file_key(self.preseg_model), "size": s.preseg_size, "confidence": s.preseg_confidence,
                      "nms": s.nms, "max_instances": s.max_instances, "padding": s.padding, "dilation": s.dilation,
                      "fill_holes": s.fill_holes, "absolute_mask_threshold": s.absolute_mask_threshold,
                      "conversion": s.conversion}
        if s.precision != "float32":  # float32 results keep the cache keys they always had
            preseg_key["precision"] = s.precision
        final_key = {"presegment": preseg_key, "model": file_key(self.final_model), "confidence": s.final_confidence,
                     "max_network_size": s.max_network_size,
                     **{k: preseg_key[k] for k in ("nms", "max_instances", "padding", "dilation", "fill_holes",
                                                  "absolute_mask_threshold", "conversion")}}
        if s.precision != "float32":
            final_key["precision"] = s.precision
        def folder(*parts):
            return None if self.work_dir is None else self.work_dir.joinpath(*parts)

        self.stages = {
            "presegment": ItemCache(folder("presegment"), preseg_key),
            "2ximages": ItemCache(folder("2ximages"), {"conversion": s.conversion}),
            "ensemble": ItemCache(folder("ensemble"), {"unet": file_key(self.unet_dir / "manifest.json"),
                                                     "conversion": s.conversion,
                                                     # TensorFlow maps keep the cache keys they always had
                                                     **({} if s.runtime == "tensorflow" else {"runtime": s.runtime})}),
            **{f"{f}x": ItemCache(folder("maskrcnn", f"{f}x"), {**final_key, "factor": f}) for f in FACTORS},
        }
        self._networks: dict[str, object] = {}
        self.sizes: dict[str, object] = {}

    # -- networks, loaded lazily so a resumed run only loads what it still needs
    def _maskrcnn(self, which: str):
        if which not in self._networks:
            from nucleaizer_tf.maskrcnn import MaskRCNNConfig

            s = self.settings
            confidence = s.preseg_confidence if which == "presegment" else s.final_confidence
            config = MaskRCNNConfig().replace(DETECTION_MIN_CONFIDENCE=confidence, DETECTION_NMS_THRESHOLD=s.nms,
                                              DETECTION_MAX_INSTANCES=s.max_instances)
            path = self.preseg_model if which == "presegment" else self.final_model
            self._networks[which] = build_maskrcnn(path, config, s.precision)
        return self._networks[which]

    def _ensemble(self):
        if "unet" not in self._networks:
            key = file_key(self.unet_dir / "manifest.json")
            self._networks["unet"] = _load_ensemble(str(self.unet_dir.resolve()), key["size"],
                                                    key["mtime_ns"]).with_runtime(self.settings.runtime)
        return self._networks["unet"]

    def load_networks(self) -> None:
        """Load every network now rather than on first need (for timing, or to fail early on a bad file).

        Examples
        --------
        >>> pipeline.load_networks()  # doctest: +SKIP
        """
        self._maskrcnn("presegment")
        self._maskrcnn("final")
        self._ensemble()

    def _network_size(self, value: float) -> int | None:
        """Scale-file value → network size; None (no 2x/4x run) for an image without objects (NaN)."""
        if not math.isfinite(value):
            return None
        size = int(value)
        cap = self.settings.max_network_size
        if cap is not None and size > cap:
            size = max(64, cap // 64 * 64)
        return size

    def intermediates(self, image: np.ndarray, stem: str | None) -> dict:
        """Everything the post-processing needs, from cache where possible.

        Parameters
        ----------
        image : numpy.ndarray
            The input image, any dtype.
        stem : str or None
            The name the results are cached under; None computes without caching.

        Returns
        -------
        dict
            ``presegment`` (labels), ``ensemble`` (uint16 map), ``median_diameter`` (pixels, NaN without
            nuclei), ``size_2x``/``size_4x`` (network sizes, None for an image without nuclei) and
            ``2x``/``4x`` (Mask R-CNN labels on the 2× image, or None when that run is skipped).

        Examples
        --------
        >>> parts = pipeline.intermediates(image, "a")  # doctest: +SKIP
        >>> parts["size_2x"], parts["size_4x"]          # doctest: +SKIP
        (1472, 2944)
        """
        s = self.settings
        rgb = to_rgb8(image, s.conversion)

        def key(ext: str) -> str | None:  # no stem: nothing to cache under
            return None if stem is None else f"{stem}.{ext}"

        preseg = self.stages["presegment"].cached(
            key("tiff"), lambda: self._maskrcnn("presegment").segment(rgb, s.segment_options(s.preseg_size)), labels=True
        )
        record = measure(stem, preseg)
        table = network_sizes([record], factors=(1, *FACTORS))
        if stem is not None:
            self.sizes[stem] = record
        upscaled = self.stages["2ximages"].cached(key("png"), lambda: _upscale(rgb), labels=False)
        ensemble = self.stages["ensemble"].cached(key("png"), lambda: self._ensemble().predict(rgb), labels=False)
        result = {"presegment": preseg, "ensemble": ensemble, "median_diameter": record.median_diameter}
        for f in FACTORS:
            size = self._network_size(float(table.rounded[f][0]))
            result[f"size_{f}x"] = size
            if size is None:
                result[f"{f}x"] = None
                continue
            options = s.segment_options(size)
            result[f"{f}x"] = self.stages[f"{f}x"].cached(
                key("tiff"), lambda o=options: self._maskrcnn("final").segment(upscaled, o), labels=True
            )
        return result

    def segment(self, image: np.ndarray, stem: str | None) -> tuple[np.ndarray, dict]:
        """Labels of one image: the intermediate results, then the post-processing.

        Parameters
        ----------
        image : numpy.ndarray
            The input image, any dtype.
        stem : str or None
            The name the intermediate results are cached under; None computes without caching.

        Returns
        -------
        labels : numpy.ndarray
            uint16 labels 1..n (0 = background).
        facts : dict
            ``median_diameter`` (rounded, None without nuclei), ``network_size_2x``, ``network_size_4x``.

        Examples
        --------
        >>> labels, facts = pipeline.segment(image, "a")  # doctest: +SKIP
        """
        from nucleaizer_tf.postprocess.chain import postprocess

        parts = self.intermediates(image, stem)
        labels = postprocess(parts["2x"], parts["4x"], parts["ensemble"], self.settings.params)
        median = parts["median_diameter"]
        facts = {"median_diameter": None if not math.isfinite(median) else round(float(median), 4),
                 "network_size_2x": parts["size_2x"], "network_size_4x": parts["size_4x"]}
        return labels, facts

    def write_scale_tables(self) -> None:
        """Write the original's scales-rcnn-{1,2,4}x.csv of every image segmented so far, for inspection.

        Into ``<work_dir>/sizes``; nothing without a work folder or before the first image.

        Examples
        --------
        >>> pipeline.write_scale_tables()  # doctest: +SKIP
        """
        if self.sizes and self.work_dir is not None:
            write_scale_csvs(network_sizes(list(self.sizes.values())), self.work_dir / "sizes")


@lru_cache(maxsize=1)
def _load_ensemble(folder: str, manifest_size: int, manifest_mtime_ns: int):
    from nucleaizer_tf.unet.ensemble import UNetEnsemble

    return UNetEnsemble.load(folder)


def _upscale(rgb: np.ndarray) -> np.ndarray:
    from nucleaizer_tf.postprocess.resize import matlab_bicubic_upscale2

    return matlab_bicubic_upscale2(rgb)
