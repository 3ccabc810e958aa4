"""The U-Net ensemble (docs/method.md §4.3–4.5): members on disk, whole-image inference, 16-bit quantised mean.

An ensemble is a model folder (`nucleaizer_tf.io.model_folder`): one Keras weight file per member plus
`manifest.json`, which names each member, its training sigma, its weight file with its sha256 and the
`build_unet` arguments that rebuild its graph. Inference follows
the original exactly where it decides numbers: RGB scaled to [0, 1] (no mean/std), the whole image in one
batch-1 pass in inference mode, each map stored as round(p·65535) in 16 bits, and the ensemble as the
MATLAB-rounded mean of those 16-bit maps (the post-processing thresholds are in these units).
"""

from __future__ import annotations

import copy
import inspect
import os
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.read import read_json
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.model_folder import FORMAT_VERSION, MANIFEST, checked_file, write_manifest
from nucleaizer_tf.unet.model import build_unet
from nucleaizer_tf.unet.train import WEIGHTS_SUFFIX, save_weights_atomic

FORMAT = "nucleaizer-tf/unet-ensemble"
#: The original seven members' sigmas (spec 4.3).
ORIGINAL_SIGMAS = (0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 2.0)
_ARCH_KEYS = {"in_channels", "out_channels", "base_filters", "depth", "output_activation"}


@dataclass(frozen=True)
class MemberSpec:
    """One member as the manifest lists it. `channel` = the output channel holding the foreground probability.

    Invalid names, weight file names or architecture keys raise ValueError.

    Attributes
    ----------
    name : str
        Member name, a plain file-name-safe word (`UNet_sigma0.5_1`).
    sigma : float
        The Gaussian sigma of its training targets.
    weights : str
        Its weight file name in the ensemble folder, ending in `.weights.h5`.
    architecture : dict
        `build_unet` keyword arguments (in_channels, out_channels, base_filters, depth, output_activation).
    channel : int
        The output channel holding the foreground probability (0).

    Examples
    --------
    >>> spec = MemberSpec("UNet_sigma0.5_1", 0.5, "UNet_sigma0.5_1.weights.h5", {"base_filters": 4})
    >>> spec.channel
    0
    >>> MemberSpec("../evil", 0.5, "evil.weights.h5")
    Traceback (most recent call last):
        ...
    ValueError: member name '../evil' must be a plain file-name-safe word
    """

    name: str
    sigma: float
    weights: str
    architecture: dict = field(default_factory=dict)
    channel: int = 0

    def __post_init__(self):
        if not self.name or any(sep in self.name for sep in ("/", "\\")) or self.name.startswith("."):
            raise ValueError(f"member name {self.name!r} must be a plain file-name-safe word")
        if Path(self.weights).name != self.weights or not self.weights.endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"member weights {self.weights!r} must be a file name ending in {WEIGHTS_SUFFIX}")
        unknown = set(self.architecture) - _ARCH_KEYS
        if unknown:
            raise ValueError(f"member {self.name!r}: unknown architecture arguments {sorted(unknown)}")

    def build(self) -> keras.Model:
        """The member's Keras graph (`build_unet(**architecture, name=name)`), randomly initialised."""
        return build_unet(**self.architecture, name=self.name)


def member_names(sigmas: Sequence[float]) -> list[str]:
    """The original naming: `UNet_sigma<σ:.1f>_<replicate>`, replicates counted per sigma from 1.

    Parameters
    ----------
    sigmas : sequence of float
        The members' sigmas, in member order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> member_names([0.0, 0.0, 0.5, 1.0])
    ['UNet_sigma0.0_1', 'UNet_sigma0.0_2', 'UNet_sigma0.5_1', 'UNet_sigma1.0_1']
    >>> len(member_names(ORIGINAL_SIGMAS))  # the original seven
    7
    """
    seen: dict[float, int] = {}
    names = []
    for sigma in sigmas:
        seen[float(sigma)] = seen.get(float(sigma), 0) + 1
        names.append(f"UNet_sigma{float(sigma):.1f}_{seen[float(sigma)]}")
    return names


# ---------------------------------------------------------------------------------------------- numbers

def quantize16(p) -> np.ndarray:
    """round(p·65535) as uint16, exactly as the original's `skimage.io.imsave` of a float32 map did.

    scikit-image's `img_as_uint` (checked in 0.26: `_convert`, float → uint branch) multiplies in float32
    for float32 input, rounds with `np.rint` (halves to EVEN, e.g. 2.5 → 2) and clips to 0..65535; this
    function does the same. NaN is refused: it means a broken model, not a probability.

    Parameters
    ----------
    p : array_like
        Float probability map (ValueError for other dtypes or NaN); float64 input is scaled in float64.

    Returns
    -------
    numpy.ndarray
        uint16, the shape of `p`.

    Examples
    --------
    >>> quantize16(np.array([0.0, 0.5, 1.0, 1.2], np.float32))  # 32767.5 rounds to even
    array([    0, 32768, 65535, 65535], dtype=uint16)
    """
    p = np.asarray(p)
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"expected a float probability map, got {p.dtype}")
    if np.isnan(p).any():
        raise ValueError("probability map holds NaN")
    work = np.float32 if p.dtype.itemsize <= 4 else np.float64
    scaled = np.multiply(p, 65535, dtype=work)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 65535, out=scaled)
    return scaled.astype(np.uint16)


def ensemble_mean(maps16: Sequence[np.ndarray]) -> np.ndarray:
    """MATLAB `uint16(mean(maps))`: the mean of 16-bit maps, rounded half away from zero (docs/method.md §4.5).

    Computed exactly in integers, round(S/n) = floor((2S + n) / 2n) for S ≥ 0, which equals MATLAB's
    double-precision result (for n = 7 no exact half can occur; for even n it can, e.g. 1 and 2 → 2).

    Parameters
    ----------
    maps16 : sequence of numpy.ndarray
        At least one uint16 map, all of one shape (ValueError otherwise).

    Returns
    -------
    numpy.ndarray
        uint16 mean map.

    Examples
    --------
    >>> ensemble_mean([np.array([1, 10], np.uint16), np.array([2, 11], np.uint16)])
    array([ 2, 11], dtype=uint16)
    """
    if len(maps16) == 0:
        raise ValueError("ensemble_mean needs at least one map")
    shape = np.shape(maps16[0])
    total = np.zeros(shape, dtype=np.int64)
    for m in maps16:
        m = np.asarray(m)
        if m.shape != shape:
            raise ValueError(f"maps differ in shape: {shape} vs {m.shape}")
        if m.dtype != np.uint16:
            raise ValueError(f"ensemble members must be uint16 maps, got {m.dtype}")
        total += m
    n = len(maps16)
    return ((2 * total + n) // (2 * n)).astype(np.uint16)


# ---------------------------------------------------------------------------------------------- inference

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inference_fn(model: keras.Model):
    """One tf.function per model, traced once for all image sizes (H and W are open in the signature)."""
    fn = _COMPILED.get(model)
    if fn is None:
        ref = weakref.ref(model)  # the cache must not keep the model alive
        spec = tf.TensorSpec([1, None, None, model.input_shape[-1]], tf.float32)
        fn = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
        _COMPILED[model] = fn
    return fn


def to_unit_rgb(image_rgb8, channels: int = 3) -> np.ndarray:
    """uint8 H×W×3 (grey H×W is repeated, an alpha channel dropped) → float32 [1, H, W, C] in [0, 1].

    Parameters
    ----------
    image_rgb8 : array_like
        uint8 H×W or H×W×C image with C >= `channels` (ValueError otherwise; use `to_rgb8` first).
    channels : int
        Channels the network takes (3).

    Returns
    -------
    numpy.ndarray
        float32 [1, H, W, channels]: value / 255, the first `channels` channels.

    Examples
    --------
    >>> to_unit_rgb(np.full((2, 3), 255, np.uint8)).shape
    (1, 2, 3, 3)
    >>> to_unit_rgb(np.full((2, 3, 4), 51, np.uint8))[0, 0, 0]  # RGBA: alpha dropped
    array([0.2, 0.2, 0.2], dtype=float32)
    """
    image = np.asarray(image_rgb8)
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image (use nucleaizer_tf.io.to_rgb8), got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], channels, axis=2)
    if image.ndim != 3 or image.shape[2] < channels:
        raise ValueError(f"expected an H×W×{channels} image, got shape {image.shape}")
    return (image[None, :, :, :channels].astype(np.float32) / np.float32(255.0))


def predict_probability(model: keras.Model, image_rgb8, channel: int = 0) -> np.ndarray:
    """The model's output channel `channel` for the whole image as float32 [H, W] (batch 1, inference mode).

    One `tf.function` per model, traced once for all image sizes.

    Parameters
    ----------
    model : keras.Model
        A U-Net (`build_unet`) with weights.
    image_rgb8 : array_like
        uint8 image (see `to_unit_rgb`).
    channel : int
        The output channel to return.

    Returns
    -------
    numpy.ndarray
        float32 [H, W].

    Examples
    --------
    >>> p = predict_probability(ensemble.models[0], image)  # doctest: +SKIP
    >>> p.shape == image.shape[:2], p.dtype  # doctest: +SKIP
    (True, dtype('float32'))
    """
    x = to_unit_rgb(image_rgb8, model.input_shape[-1])
    out = _inference_fn(model)(tf.constant(x))
    return np.asarray(out[0, :, :, channel], dtype=np.float32)


# ---------------------------------------------------------------------------------------------- ensemble

class UNetEnsemble:
    """Members (specs + built models) that predict together; `load`/`save` use the folder format above.

    Parameters
    ----------
    members : sequence of MemberSpec
        At least one; names and weight files must be unique (ValueError otherwise).
    models : sequence of keras.Model
        One built model per member, in the same order.

    Attributes
    ----------
    members : tuple of MemberSpec
        As given.
    models : tuple of keras.Model
        As given.

    Examples
    --------
    >>> ensemble = UNetEnsemble.load("unet-ensemble")  # doctest: +SKIP
    >>> len(ensemble), ensemble.sigmas  # doctest: +SKIP
    (7, (0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 2.0))
    >>> ensemble.predict(image).dtype  # doctest: +SKIP
    dtype('uint16')
    """

    def __init__(self, members: Sequence[MemberSpec], models: Sequence[keras.Model]):
        if len(members) == 0 or len(members) != len(models):
            raise ValueError(f"need one model per member, got {len(members)} members and {len(models)} models")
        names = [m.name for m in members]
        if len(set(names)) != len(names) or len({m.weights for m in members}) != len(members):
            raise ValueError(f"member names and weight files must be unique: {names}")
        self.members = tuple(members)
        self.models = tuple(models)
        #: where the members run ("tensorflow" or "openvino"), see `with_runtime`
        self.runtime = "tensorflow"
        self._forwards = None  # the members' OpenVINO forward passes, on an OpenVINO copy
        self._twins = {"tensorflow": self}

    def __len__(self) -> int:
        return len(self.members)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """Each member's sigma, in member order."""
        return tuple(m.sigma for m in self.members)

    def with_runtime(self, runtime: str) -> UNetEnsemble:
        """This ensemble with its members run by `runtime` ("tensorflow", "openvino" or "auto", see
        `nucleaizer_tf.runtime`): `self` when they already are, else a copy sharing the members (made once).

        Examples
        --------
        >>> ensemble.with_runtime("openvino").predict(image).dtype  # doctest: +SKIP
        dtype('uint16')
        """
        from nucleaizer_tf.runtime import openvino_forward, resolve_runtime

        wanted = resolve_runtime(runtime)
        if wanted not in self._twins:
            twin = copy.copy(self)
            twin.runtime = wanted
            twin._forwards = [openvino_forward(model) for model in self.models]
            self._twins[wanted] = twin
        return self._twins[wanted]

    def standalone_network(self, output_name: str = "probability") -> keras.Model:
        """The members averaged in one Keras model: float32 (batch, y, x, channels) in [0, 1] → a dict
        with one entry, `output_name`: the mean of the members' foreground probabilities (batch, y, x, 1).
        `predict` rounds each member's map to 16 bits before the mean; this does not (within 1/65535).

        Examples
        --------
        >>> net = ensemble.standalone_network()                               # doctest: +SKIP
        >>> net(to_unit_rgb(image))["probability"].shape                      # doctest: +SKIP
        TensorShape([1, 256, 256, 1])
        """
        channels = self.models[0].input_shape[-1]
        image = keras.Input(shape=(None, None, channels), name="image")
        maps = [model(image)[..., spec.channel:spec.channel + 1] for spec, model in zip(self.members, self.models)]
        mean = maps[0] if len(maps) == 1 else keras.layers.Average(name="ensemble_mean")(maps)
        return keras.Model(image, {output_name: mean}, name="unet_ensemble_standalone")

    def predict_maps(self, image_rgb8) -> list[np.ndarray]:
        """Each member's 16-bit map (what the original wrote to unet_out/<model>/images/<name>.png)."""
        if self._forwards is None:
            return [quantize16(predict_probability(model, image_rgb8, spec.channel))
                    for spec, model in zip(self.members, self.models)]
        return [quantize16(forward(to_unit_rgb(image_rgb8, model.input_shape[-1]))[0, :, :, spec.channel])
                for spec, model, forward in zip(self.members, self.models, self._forwards)]

    def predict(self, image_rgb8) -> np.ndarray:
        """The ensemble map E = round_half_away(mean_k round(65535·p_k)) as uint16 [H, W]."""
        return ensemble_mean(self.predict_maps(image_rgb8))

    def manifest(self) -> dict:
        """The manifest's format, version and members (without the weight files' sha256)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "members": [asdict(m) for m in self.members]}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write every member's weights, then the manifest with their sha256, each atomically (the manifest
        last, so a reader never finds a manifest naming a weight file that is not complete yet).

        Examples
        --------
        >>> UNetEnsemble.load("unet_ensemble").save("copy_of_ensemble")  # doctest: +SKIP
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for spec, model in zip(self.members, self.models):
            save_weights_atomic(model, folder / spec.weights)
        write_ensemble_manifest(folder, [asdict(m) for m in self.members])
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> UNetEnsemble:
        """Rebuild each member from the manifest and load its weights; NucleaizerError names what is wrong."""
        folder = Path(folder)
        if not folder.is_dir():
            raise NucleaizerError(f"{folder}: U-Net ensemble folder not found")
        specs, hashes = _read_manifest(folder / MANIFEST)
        models = []
        for spec in specs:
            path = checked_file(folder, spec.weights, hashes.get(spec.name), f"weight file of ensemble member {spec.name!r}")
            models.append(_load_member(spec, path))
        return cls(specs, models)


def write_ensemble_manifest(folder: str | os.PathLike, members: Sequence[dict]) -> Path:
    """The ensemble's `manifest.json`: the members (MemberSpec fields) with the sha256 of each weight file,
    which must already be written.

    Parameters
    ----------
    folder : str or os.PathLike
        The ensemble folder.
    members : sequence of dict
        One dict of MemberSpec fields per member (`dataclasses.asdict(spec)`).

    Returns
    -------
    Path
        The manifest written (by `nucleaizer_tf.io.model_folder.write_manifest`).

    Examples
    --------
    >>> write_ensemble_manifest("unet-ensemble", [asdict(m) for m in ensemble.members])  # doctest: +SKIP
    PosixPath('unet-ensemble/manifest.json')
    """
    folder = Path(folder)
    listed = [{**m, "sha256": sha256_of(folder / m["weights"])} for m in members]
    return write_manifest(folder, "unet-ensemble", {"members": listed}, format_version=FORMAT_VERSION)


def _load_member(spec: MemberSpec, path: Path) -> keras.Model:
    """Build and load one member strictly: Keras only WARNS when it skips part of a file (the skipped layers
    would keep random weights), so any such warning is an error here, as is a shape mismatch."""
    model = spec.build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            problem = next((str(w.message) for w in caught if "skipping" in str(w.message).lower()), None)
        except (ValueError, OSError, KeyError) as exc:
            problem = str(exc)
    if problem:
        first_line = problem.strip().splitlines()[0]
        raise NucleaizerError(f"{path}: cannot load the weights of member {spec.name!r} with architecture "
                              f"{spec.architecture} ({first_line})")
    return model


def _read_manifest(path: Path) -> tuple[list[MemberSpec], dict[str, str]]:
    hint = "a U-Net ensemble folder holds manifest.json and one weight file per member"
    if not path.is_file():
        raise NucleaizerError(f"{path}: missing ({hint})")
    data = read_json(path, "JSON ensemble manifest")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NucleaizerError(f"{path}: not a U-Net ensemble manifest (expected \"format\": \"{FORMAT}\")")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise NucleaizerError(f"{path}: format version {version!r} is not supported (this version reads "
                              f"{FORMAT_VERSION}); update nucleaizer-tf")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise NucleaizerError(f"{path}: the manifest lists no members")
    specs, hashes = [], {}
    for i, entry in enumerate(members):
        try:
            specs.append(MemberSpec(name=str(entry["name"]), sigma=float(entry["sigma"]),
                                    weights=str(entry["weights"]), architecture=dict(entry.get("architecture", {})),
                                    channel=int(entry.get("channel", 0))))
        except (KeyError, TypeError, ValueError) as exc:
            raise NucleaizerError(f"{path}: member {i} is invalid ({exc})") from None
        if entry.get("sha256"):  # ensembles saved before the hashes were recorded have none
            hashes[specs[-1].name] = str(entry["sha256"])
    return specs, hashes


# ---------------------------------------------------------------------------------------------- seeded

def _randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Glorot-uniform kernels and small random biases from `rng`: reproducible without global seeds."""
    for var in model.trainable_weights:
        shape = tuple(var.shape)
        if len(shape) == 4:  # conv kernel [kh, kw, in, out] (transposed: [kh, kw, out, in])
            limit = np.sqrt(6.0 / (shape[0] * shape[1] * (shape[2] + shape[3])))
            var.assign(rng.uniform(-limit, limit, shape).astype(np.float32))
        elif "bias" in var.path:
            var.assign(rng.uniform(-0.05, 0.05, shape).astype(np.float32))


def make_seeded_ensemble(folder: str | os.PathLike, sigmas: Sequence[float] = ORIGINAL_SIGMAS, seed: int = 0,
                         **arch) -> UNetEnsemble:
    """Write an ensemble of randomly initialised members (same seed → same weights) and return it.

    For tests, and for users checking the whole pipeline runs before any training; its maps are noise.
    `arch` goes to `build_unet` (e.g. base_filters=4 for a tiny one).

    Parameters
    ----------
    folder : str or os.PathLike
        The ensemble folder to write.
    sigmas : sequence of float
        One member per sigma (`ORIGINAL_SIGMAS`: the original seven), named by `member_names`.
    seed : int
        Member i is initialised from `numpy.random.default_rng([seed, i])`.
    **arch
        `build_unet` arguments; the manifest records every argument, defaults included.

    Returns
    -------
    UNetEnsemble
        The ensemble, already saved to `folder`.

    Examples
    --------
    >>> ensemble = make_seeded_ensemble("tiny-ensemble", sigmas=(0.0, 1.0), base_filters=4)  # doctest: +SKIP
    >>> [m.name for m in ensemble.members]  # doctest: +SKIP
    ['UNet_sigma0.0_1', 'UNet_sigma1.0_1']
    """
    defaults = {k: v.default for k, v in inspect.signature(build_unet).parameters.items() if k in _ARCH_KEYS}
    arch = {**defaults, **arch}  # the manifest records every argument, so later default changes cannot bite
    names = member_names(sigmas)
    specs = [MemberSpec(name, float(sigma), name + WEIGHTS_SUFFIX, dict(arch)) for name, sigma in zip(names, sigmas)]
    models = []
    for i, spec in enumerate(specs):
        model = spec.build()
        _randomise(model, np.random.default_rng([seed, i]))
        models.append(model)
    ensemble = UNetEnsemble(specs, models)
    ensemble.save(folder)
    return ensemble
