"""`DefaultModel`: the shipped U-Net with nucleAIzer's size normalisation around it.

Per image (`segment`):

1. `stretch_rgb8`: any dtype, grey or RGB(A) → 8-bit RGB, 1 %–99.8 % percentile stretch.
2. Size estimation (nucleAIzer's idea, spec 3, with this network in place of the Mask R-CNN
   presegmentation): segment at the native scale (for images larger than `SAMPLE_SIDE`² a central
   `SAMPLE_SIDE`² window only), take the median equivalent diameter sqrt(4·area/π) of the nuclei found
   (`size_estimate`: ignoring specks below half the area-weighted median) and rescale the image by
   segment_diameter / median, so nuclei reach the size the network segments best: the manifest's
   ``segment_diameter``, chosen on validation images (`scripts/choose_instance_step.py`), by default
   ``trained_diameter``, the size the training normalised nuclei to. When the
   estimate is within `tolerance` (×1.2) of the current scale the pass already run is kept (no
   second network pass); otherwise the image is segmented again at the new scale and the estimate
   refined once more (`max_passes` = 2 estimation passes, then the final pass at the
   last estimate). A `nucleus_size=` given by the caller skips the estimation. Scales are clipped to
   1/8..8. An image where nothing is found keeps scale 1.
3. The network runs at the chosen scale, in tiles for large images (`tiling.py`), giving a uint8
   (background, interior, boundary) probability map (optionally averaged over the 8 flips and
   rotations of each tile, `tta`). The map is resized back to the image (bilinear / area) and the
   instance step (`instances.py`) runs at the image's own resolution, its pixel-count limits scaled
   by 1/scale²: outlines are drawn at native precision rather than as nearest-neighbour blocks of
   the network's grid (weights/README.md gives the measured effect).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nucleaizer_tf.default_model.instances import labels_from_probabilities
from nucleaizer_tf.default_model.preprocess import resize_image, scaled_shape, stretch_rgb8
from nucleaizer_tf.default_model.tiling import context_margin, predict_map
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.model_folder import MANIFEST, checked_file, prepare_folder, read_manifest, write_manifest
from nucleaizer_tf.labels import in_label_dtype
from nucleaizer_tf.postprocess.size import median_equivalent_diameter

#: environment variable naming a model folder (or manifest) to use instead of the shipped one
ENV_MODEL = "NUCLEAIZER_TF_DEFAULT_MODEL"
#: images up to this side run in one piece; larger ones in tiles of this core size
DEFAULT_TILE = 1024
#: the first (size-estimation) pass looks at a central window of at most this side
SAMPLE_SIDE = 1024
SCALE_LIMITS = (1 / 8, 8.0)


def shipped_model_dirs() -> list[Path]:
    """Where `DefaultModel.load()` looks for the shipped model, in order: `$NUCLEAIZER_TF_DEFAULT_MODEL`,
    then `default/` of the package data `nucleaizer_tf.weights` (the repository's `weights/` folder in
    a source checkout, `nucleaizer_tf/weights/` in an installed wheel).

    Returns
    -------
    list of Path
        The candidate folders (or manifest files); they need not exist.

    Examples
    --------
    >>> shipped_model_dirs()[-1].name
    'default'
    """
    from importlib.resources import files

    found = [Path(os.environ[ENV_MODEL])] if os.environ.get(ENV_MODEL) else []
    return found + [Path(str(files("nucleaizer_tf.weights"))) / "default"]


def segment_diameter_of(manifest: dict) -> float:
    """The nucleus diameter in pixels a default model's `segment` brings nuclei to.

    The manifest's ``segment_diameter`` (chosen on validation images by `scripts/choose_instance_step.py`),
    else its ``trained_diameter`` (the size its training normalised nuclei to).

    Parameters
    ----------
    manifest : dict
        A default model's manifest.

    Returns
    -------
    float

    Examples
    --------
    >>> segment_diameter_of({"trained_diameter": 20.0}), segment_diameter_of({"trained_diameter": 20.0, "segment_diameter": 24})
    (20.0, 24.0)
    """
    return float(manifest.get("segment_diameter", manifest["trained_diameter"]))


def median_diameter(labels: np.ndarray) -> float:
    """Median equivalent diameter sqrt(4·area/π) of the objects present in `labels` (NaN if none).

    Unlike the original's MATLAB statistic (spec 3), ids absent from the image are not counted as
    zero-diameter objects: the labels here always come from our own instance step or a GT file.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image, 0 = background.

    Returns
    -------
    float
        In pixels.

    Examples
    --------
    >>> labels = np.zeros((20, 20), np.int32)
    >>> labels[:10, :10] = 1       # 100 px: diameter 11.28
    >>> labels[15:, 15:] = 4       # 25 px: diameter 5.64 (ids 2 and 3 are absent, not zero-sized)
    >>> round(median_diameter(labels), 2)
    8.46
    """
    return median_equivalent_diameter(labels, include_gaps=False)


def size_estimate(labels: np.ndarray) -> float:
    """Nucleus diameter of a first-pass segmentation: the median equivalent diameter, over the objects
    whose diameter is at least half the area-weighted median diameter (NaN if none).

    A network looking at nuclei much larger than it was trained for breaks them into pieces and finds
    specks of texture and debris; those are many but small, so they dominate a plain median (a 41 px
    bright-field nucleus measured as 15 px) and send the rescaling the wrong way. Weighting by area
    first finds the size most of the foreground belongs to; the plain median over the objects near it
    then measures the same statistic the training normalised by (`median_diameter`). On clean
    segmentations nothing is dropped and the two agree.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image of a first-pass segmentation, 0 = background.

    Returns
    -------
    float
        Diameter in pixels of `labels`.

    Examples
    --------
    >>> labels = np.zeros((20, 40), np.int32)
    >>> labels[:10, :10] = 1
    >>> labels[10:, 10:20] = 2                        # two 100 px nuclei
    >>> labels[[0, 5, 15], [30, 35, 35]] = [3, 4, 5]  # three 1 px specks
    >>> round(median_diameter(labels), 3), round(size_estimate(labels), 3)
    (1.128, 11.284)
    """
    counts = np.bincount(np.asarray(labels).ravel())[1:]
    counts = counts[counts > 0]
    if counts.size == 0:
        return math.nan
    diameters = np.sqrt(4.0 * counts / np.pi)
    order = np.argsort(diameters, kind="stable")
    cumulative = np.cumsum(counts[order])
    weighted = diameters[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    return float(np.median(diameters[diameters >= 0.5 * weighted]))


@dataclass
class SegmentInfo:
    """How `segment` handled one image: the scale it ran at, the estimated nucleus diameter (native
    pixels; NaN when given or nothing was found) and each estimation pass (scale, median diameter at
    that scale, objects found).

    Attributes
    ----------
    scale : float
        The scale the final pass ran at.
    diameter : float
        Estimated nucleus diameter in the image's own pixels (NaN when given or nothing was found).
    passes : list of dict
        Per estimation pass: {"scale", "median_diameter" (at that scale), "objects"}.
    probabilities : numpy.ndarray or None
        With ``segment(..., keep_probabilities=True)``: the uint8 H×W×3 class map (background,
        interior, boundary; 255 = 1) at the image's size that the labels were made from; else None.

    Examples
    --------
    >>> labels, info = model.segment(image, return_info=True)  # doctest: +SKIP
    >>> info  # doctest: +SKIP
    SegmentInfo(scale=0.78, diameter=25.6, passes=[{'scale': 1.0, 'median_diameter': 25.6, 'objects': 212}])
    """

    scale: float
    diameter: float
    passes: list[dict] = field(default_factory=list)
    probabilities: np.ndarray | None = field(default=None, repr=False)


class DefaultModel:
    """The shipped default nucleus segmentation model (see the module docstring for the method).

    Usually made by `load`; the constructor wraps an already built network.

    Parameters
    ----------
    network : keras.Model
        The U-Net (`build_network(manifest["architecture"])`) with its weights.
    manifest : dict
        The model folder's manifest: "architecture", "trained_diameter" and optionally "instance"
        (min_area, min_seed, seed_threshold, foreground_threshold, class_weights).
    precision : str
        The network's compute type ("float32", "bfloat16", "float16" or "auto").

    Attributes
    ----------
    network : keras.Model
        As given.
    manifest : dict
        As given.
    precision : str
        The resolved compute type.
    depth, multiple, margin : int
        The U-Net depth, its pooling factor 2^depth and the tiling context margin (`tiling.context_margin`).
    trained_diameter : float
        Nucleus diameter in pixels the network was trained at.
    segment_diameter : float
        Nucleus diameter in pixels `segment` brings nuclei to (`segment_diameter_of` the manifest).
    min_area, min_seed : int
        Pixel-count limits of the instance step at the trained scale (default 12 and 3).
    seed_threshold, foreground_threshold : float
        Thresholds of the instance step (default 0.5 and 0.5).

    Examples
    --------
    >>> model = DefaultModel.load()  # doctest: +SKIP
    >>> labels = model.segment(image)  # doctest: +SKIP
    >>> labels, info = model.segment(image, nucleus_size=18.0, return_info=True)  # doctest: +SKIP
    """

    def __init__(self, network, manifest: dict, *, precision: str = "float32"):
        import tensorflow as tf

        from nucleaizer_tf.precision import resolve_precision

        self.network = network
        self.manifest = manifest
        #: the network's compute type ("float32", "bfloat16" or "float16"), see `with_precision`
        self.precision = resolve_precision(precision)
        #: where the network runs ("tensorflow" or "openvino"), see `with_runtime`
        self.runtime = "tensorflow"
        self._variants: dict[tuple[str, str], DefaultModel] = {(self.precision, self.runtime): self}
        self.depth = int(manifest["architecture"]["depth"])
        self.multiple = 2**self.depth
        self.margin = context_margin(self.depth)
        self.trained_diameter = float(manifest["trained_diameter"])
        self.segment_diameter = segment_diameter_of(manifest)
        inst = manifest.get("instance", {})
        self.min_area = int(inst.get("min_area", 12))
        self.min_seed = int(inst.get("min_seed", 3))
        self.seed_threshold = float(inst.get("seed_threshold", 0.5))
        self.foreground_threshold = float(inst.get("foreground_threshold", 0.5))
        # The loss weighted the classes (targets.weighted_crossentropy), which inflates the weighted
        # classes' predicted probabilities by their weight; dividing by the weights and renormalising
        # undoes that, so the thresholds mean what they say (a nucleus is not drawn a pixel too wide).
        weights = inst.get("class_weights")
        self._class_weights = None if weights is None else np.asarray(weights, np.float32)
        spec = tf.TensorSpec([1, None, None, int(manifest["architecture"].get("in_channels", 3))], tf.float32)

        def infer(x):
            return network(x, training=False)

        forward = tf.function(infer, input_signature=[spec], autograph=False)
        self._run = lambda batch: forward(batch).numpy()

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, verify: bool = True,
             precision: str = "float32") -> DefaultModel:
        """Load a model folder (with `manifest.json`) or manifest file; None = the shipped model.

        `verify` checks the weight file's sha256 against the manifest. `precision` ("float32",
        "bfloat16" or "auto", see `nucleaizer_tf.precision`) is the network's compute type; the
        weights stay float32 variables either way.

        Examples
        --------
        >>> model = DefaultModel.load()                  # the shipped model
        >>> fast = DefaultModel.load(precision="bfloat16")
        >>> fast.network.layers[1].compute_dtype
        'bfloat16'
        >>> adapted = DefaultModel.load("adapt_out/model")  # doctest: +SKIP
        """
        from nucleaizer_tf.default_model.schema import check_manifest

        if path is None:
            candidates = [p for p in shipped_model_dirs() if (p / MANIFEST).is_file() or p.is_file()]
            if not candidates:
                tried = ", ".join(str(p) for p in shipped_model_dirs())
                raise NucleaizerError(f"the shipped default model was not found (looked in {tried})")
            path = candidates[0]
        folder, manifest, _ = read_manifest(path, expect="default-model")
        check_manifest(manifest, folder / MANIFEST)
        weights = checked_file(folder, manifest["weights_file"], manifest.get("sha256") if verify else None,
                               "weight file")
        network = build_network(manifest["architecture"], precision=precision)
        try:
            network.load_weights(weights)
        except Exception as exc:  # h5py and Keras raise many types for truncated or foreign files
            raise NucleaizerError(f"{weights}: cannot load the weights of the model in {folder} "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None
        return cls(network, manifest, precision=precision)

    def with_instance(self, *, seed_threshold: float | None = None,
                      foreground_threshold: float | None = None) -> DefaultModel:
        """This model with other thresholds for its instance step (None keeps the manifest's): `self`
        when nothing changes, else a copy sharing the network.

        The thresholds also steer the size estimate (its first pass counts the nuclei they give).

        Examples
        --------
        >>> model = DefaultModel.load()
        >>> strict = model.with_instance(seed_threshold=0.9)
        >>> strict.seed_threshold, strict.network is model.network, model.with_instance() is model
        (0.9, True, True)
        """
        import copy

        changes = {name: float(value) for name, value in (("seed_threshold", seed_threshold),
                                                          ("foreground_threshold", foreground_threshold))
                   if value is not None and float(value) != getattr(self, name)}
        if not changes:
            return self
        twin = copy.copy(self)
        twin.__dict__.update(changes)
        return twin

    def with_precision(self, precision: str) -> DefaultModel:
        """This model with its network computing in `precision` ("float32", "bfloat16", "auto"):
        `self` when it already does, else a copy sharing the weight values (built once, then kept).

        Examples
        --------
        >>> model = DefaultModel.load()
        >>> model.with_precision("bfloat16").precision
        'bfloat16'
        >>> model.with_precision("float32") is model
        True
        """
        from nucleaizer_tf.precision import resolve_precision

        return self._variant(resolve_precision(precision), self.runtime)

    def with_runtime(self, runtime: str) -> DefaultModel:
        """This model with its network run by `runtime` ("tensorflow", "openvino" or "auto", see
        `nucleaizer_tf.runtime`) in its precision: `self` when it already is, else a copy (made once, then
        kept). OpenVINO runs the float32 network, converted once per weights (`io/converted_network.py`).

        Examples
        --------
        >>> model = DefaultModel.load()
        >>> model.with_runtime("tensorflow") is model
        True
        >>> model.with_runtime("openvino").runtime  # doctest: +SKIP
        'openvino'
        """
        from nucleaizer_tf.runtime import resolve_runtime

        return self._variant(self.precision, resolve_runtime(runtime))

    def _variant(self, precision: str, runtime: str) -> DefaultModel:
        """The copy of this model computing in `precision` on `runtime`, made on first request."""
        import copy

        from nucleaizer_tf.runtime import openvino_forward

        key = (precision, runtime)
        if key not in self._variants:
            if runtime == "tensorflow":
                network = build_network(self.manifest["architecture"], precision=precision)
                network.set_weights(self.network.get_weights())
                variant = DefaultModel(network, self.manifest, precision=precision)
            else:
                reference = self._variant("float32", "tensorflow")
                variant = copy.copy(reference)
                variant.precision, variant.runtime = precision, runtime
                variant._run = openvino_forward(reference.network, precision)
            variant._variants = self._variants
            self._variants[key] = variant
        return self._variants[key]

    def standalone_network(self, output_name: str = "probabilities"):
        """The float32 network as one Keras model that needs nothing of this package around it: the
        training's class-weight correction (`probability_map` divides by the weights and renormalises) is
        folded into the last convolution's bias, since softmax(z − log w) ∝ softmax(z) / w; the output
        is a dict with one entry, `output_name` (what SavedModel consumers expect).

        Examples
        --------
        >>> model = DefaultModel.load()
        >>> x = np.zeros((1, 64, 64, 3), np.float32)
        >>> p = model.standalone_network()(x)["probabilities"].numpy()[0]
        >>> bool(np.allclose(p, model._forward(x[0]), atol=1e-5))
        True
        """
        import keras

        reference = self._variant("float32", "tensorflow").network
        network = build_network(self.manifest["architecture"])
        network.set_weights(reference.get_weights())
        if self._class_weights is not None:
            if self.manifest["architecture"].get("output_activation", "softmax") != "softmax":
                raise NucleaizerError("the class-weight correction folds into the network only before a softmax")
            last = network.get_layer("last_conv_out")
            kernel, bias = last.get_weights()
            last.set_weights([kernel, bias - np.log(self._class_weights).astype(np.float32)])
        return keras.Model(network.inputs[0], {output_name: network.outputs[0]}, name=f"{network.name}_standalone")

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False, **notes) -> Path:
        """Write this model as a folder `load` reads: the weights, then `manifest.json` with the weights'
        sha256 (each atomically, the manifest last). `notes` are added to the manifest, e.g. what a
        fine-tuned model was adapted to. A folder that already holds a model is refused unless
        `overwrite`.

        Examples
        --------
        >>> DefaultModel.load().save("my_model", adapted={"style": "H&E"})  # doctest: +SKIP
        PosixPath('my_model')
        """
        from nucleaizer_tf.unet.train import save_weights_atomic

        folder = prepare_folder(folder, overwrite=overwrite)
        weights_file = self.manifest.get("weights_file", "default.weights.h5")
        save_weights_atomic(self.network, folder / weights_file)
        manifest = {**self.manifest, **notes, "weights_file": weights_file, "sha256": sha256_of(folder / weights_file)}
        write_manifest(folder, "default-model", manifest)
        return folder

    # ------------------------------------------------------------------ building blocks

    def _forward(self, batchless: np.ndarray) -> np.ndarray:
        prob = self._run(batchless[None])[0]
        if self._class_weights is not None:
            prob = prob / self._class_weights
            prob /= prob.sum(axis=-1, keepdims=True)
        return prob

    def _forward_tta(self, batchless: np.ndarray) -> np.ndarray:
        """Mean of the network's maps over the 8 flips and 90° rotations of one window. A window's
        sides are multiples of the pooling factor, so each transform keeps the pooling grid and tiled
        maps still equal the one-piece map."""
        total = None
        for k in range(4):
            for flip in (False, True):
                x = np.rot90(batchless[:, ::-1] if flip else batchless, k)
                p = np.rot90(self._forward(np.ascontiguousarray(x)), -k)
                p = p[:, ::-1] if flip else p
                total = p if total is None else total + p
        return total / 8.0

    def probability_map(self, rgb8: np.ndarray, *, tile: int | None = DEFAULT_TILE, tta: bool = False,
                        on_window=None) -> np.ndarray:
        """uint8 H×W×3 (background, interior, boundary) map of an already prepared uint8 RGB image,
        at its own scale (no stretch, no resizing), corrected for the training's class weights.
        `tta`: average over the 8 flips/rotations (8× the time); `on_window`: called after each tile
        (`tiling.predict_map`)."""
        forward = self._forward_tta if tta else self._forward
        return predict_map(forward, rgb8, multiple=self.multiple, margin=self.margin, tile=tile, on_window=on_window)

    def _prob_at(self, rgb8: np.ndarray, scale: float, tile: int | None, tta: bool = False,
                 on_window=None) -> np.ndarray:
        """uint8 map of `rgb8` resized by `scale`, still at that scale."""
        return self.probability_map(resize_image(rgb8, scaled_shape(rgb8.shape[:2], scale)), tile=tile, tta=tta,
                                    on_window=on_window)

    def instances(self, prob: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
        """int32 labels from a uint8 map computed at `scale`, at the map's own size, with the
        manifest's thresholds and the pixel-count limits of the trained scale converted by 1/scale²."""
        area = max(1, int(round(self.min_area / scale**2)))
        seed = max(1, int(round(self.min_seed / scale**2)))
        return labels_from_probabilities(prob, min_area=area, min_seed=seed, seed_threshold=self.seed_threshold,
                                         foreground_threshold=self.foreground_threshold)

    # ------------------------------------------------------------------ public API

    def probabilities(self, image: np.ndarray, *, scale: float = 1.0, tile: int | None = DEFAULT_TILE,
                      tta: bool = False) -> np.ndarray:
        """float32 H×W×3 class probabilities (background, interior, boundary) of `image` (any dtype),
        the network run at `scale` and the map resized back to the image (bilinear / area)."""
        rgb8 = stretch_rgb8(image)
        prob = self._prob_at(rgb8, scale, tile, tta).astype(np.float32) / np.float32(255.0)
        return resize_image(prob, rgb8.shape[:2])

    def estimate_scale(self, rgb8: np.ndarray, *, tolerance: float = 1.2, max_passes: int = 2,
                       tile: int | None = DEFAULT_TILE, on_window=None) -> tuple[float, list[dict], np.ndarray | None]:
        """(scale, passes, map or None) for a prepared uint8 RGB image.

        The uint8 probability map at the returned scale is returned when the last pass covered the
        whole image at that scale, so `segment` can reuse it instead of running the network again."""
        h, w = rgb8.shape[:2]
        y0, x0 = max(0, (h - SAMPLE_SIDE) // 2), max(0, (w - SAMPLE_SIDE) // 2)
        sample = rgb8[y0:y0 + SAMPLE_SIDE, x0:x0 + SAMPLE_SIDE]
        whole = sample.shape[:2] == (h, w)
        scale, passes = 1.0, []
        for n in range(max_passes):
            prob = self._prob_at(sample, scale, tile, on_window=on_window)
            labels = self.instances(prob)  # at the network's scale: the size the training normalised
            d = size_estimate(labels)
            passes.append({"scale": scale, "median_diameter": d, "objects": int(labels.max())})
            if not np.isfinite(d):  # nothing found: keep the scale we have
                return scale, passes, prob if whole else None
            new = float(np.clip(self.segment_diameter * scale / d, *SCALE_LIMITS))
            if abs(math.log(new / scale)) <= math.log(tolerance):  # close enough: this pass is final
                return scale, passes, prob if whole else None
            if n == max_passes - 1:  # out of estimation passes: the caller runs the final one
                return new, passes, None
            scale = new
        return scale, passes, None  # max_passes < 1

    def segment(self, image: np.ndarray, *, nucleus_size: float | None = None, tile: int | None = DEFAULT_TILE,
                tolerance: float = 1.2, max_passes: int = 2, tta: bool = False, return_info: bool = False,
                keep_probabilities: bool = False, on_window=None, diameter: float | None = None):
        """Label image (uint16; uint32 above 65,535 nuclei) of the nuclei in `image` (any dtype, grey or
        RGB(A)). `nucleus_size`: the nucleus diameter in pixels if known (skips the size estimation; the
        facade's and `predict --nucleus-size`'s name for it);
        `tile`: core size of the tiles for large images (None = one piece, whatever the size);
        `tta`: average the final pass over 8 flips/rotations (about 8× slower, slightly better
        outlines). With `return_info` returns (labels, SegmentInfo); `keep_probabilities` also keeps the
        class map the labels came from in `SegmentInfo.probabilities`. `on_window`: called with no argument
        after each run of the network on a tile (a progress tick; raising in it stops the run).
        `diameter` is this argument's former name (a DeprecationWarning)."""
        if diameter is not None:
            import warnings

            warnings.warn("DefaultModel.segment(diameter=) is now nucleus_size=", DeprecationWarning, stacklevel=2)
            nucleus_size = diameter if nucleus_size is None else nucleus_size
        rgb8 = stretch_rgb8(image)
        if nucleus_size is not None:
            if not nucleus_size > 0:
                raise ValueError(f"nucleus_size must be positive, got {nucleus_size}")
            scale = float(np.clip(self.segment_diameter / nucleus_size, *SCALE_LIMITS))
            passes, prob = [], None
        else:
            scale, passes, prob = self.estimate_scale(rgb8, tolerance=tolerance, max_passes=max_passes, tile=tile,
                                                      on_window=on_window)
        if prob is None or tta:
            prob = self._prob_at(rgb8, scale, tile, tta, on_window=on_window)
        prob = resize_image(prob, rgb8.shape[:2])
        labels = self.instances(prob, scale=scale)
        labels = in_label_dtype(labels)
        if not return_info:
            return labels
        estimate = math.nan
        if passes and np.isfinite(passes[-1]["median_diameter"]):
            estimate = passes[-1]["median_diameter"] / passes[-1]["scale"]
        return labels, SegmentInfo(scale=scale, diameter=estimate, passes=passes,
                                   probabilities=prob if keep_probabilities else None)


def build_network(architecture: dict, *, precision: str = "float32"):
    """The Keras network of a manifest's `architecture` (keyword arguments of `build_unet`), its layers
    computing in `precision` (variables float32; the output activation always float32).

    Parameters
    ----------
    architecture : dict
        `build_unet` keyword arguments.
    precision : str
        "float32", "bfloat16", "float16" or "auto".

    Returns
    -------
    keras.Model
        The untrained network.

    Examples
    --------
    >>> network = build_network({"out_channels": 3, "base_filters": 16, "depth": 4,  # doctest: +SKIP
    ...                          "output_activation": "softmax"})
    """
    from nucleaizer_tf.precision import policy_scope
    from nucleaizer_tf.unet.model import build_unet

    with policy_scope(precision):
        return build_unet(**architecture)
