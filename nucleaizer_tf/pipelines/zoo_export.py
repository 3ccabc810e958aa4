"""`export bioimageio`: a default model or a U-Net ensemble as a bioimage.io model package, for
deepImageJ (Fiji), QuPath, ilastik and the BioImage Model Zoo.

The package is a zip with a resource description (``rdf.yaml``, spec 0.5) and the files it names:

* the network as a TensorFlow SavedModel and, where tf2onnx is installed (the ``bioimageio`` extra has
  it), as ONNX, input ``image`` (batch, y, x, 3 channels; y and x multiples of
  the pooling factor, at least 64):

  - a default model (`DefaultModel.standalone_network`: the float32 U-Net with the training's
    class-weight correction folded in), output ``probabilities`` (background / interior / boundary,
    softmax, summing to 1 per pixel), after the preprocessing `stretch_rgb8` does as far as the spec can
    say it: one percentile scaling, 1 % → 0 and 99.8 % → 1, over all pixels and channels
    (`scale_range`), then `clip` to [0, 1] (`predict` also rounds to 8 bits, which the spec cannot
    express, so a zoo consumer's map differs from `predict`'s by a rounding step here and there);
  - a U-Net ensemble (`UNetEnsemble.standalone_network`: the members averaged), output ``probability``
    (the mean foreground probability), for 8-bit input scaled by 1/255 as nucleAIzer does;

* test tensors (a bundled example image and the network's output on it), sample images, a cover (the
  image beside its map), the licence, the citations and a documentation page that says what a zoo
  consumer does not do (size normalisation and the instance step) and, for a default model, its
  validation scores.

Writing and validating the description is `bioimageio.spec`'s (the optional ``bioimageio`` extra).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.convert import PERCENTILES
from nucleaizer_tf.io.write import atomic_path, check_output_file

#: the nucleAIzer paper (Hollandi et al., Cell Systems 2020)
NUCLEAIZER_DOI = "10.1016/j.cels.2020.04.003"
#: the input tensor's id in the description
INPUT_ID = "image"
#: the ONNX operator set of the ONNX weights
ONNX_OPSET = 17
#: the smallest input side and the step of the input sides (the U-Net's pooling factor 2^depth)
MIN_SIDE = 64
#: the bundled example used as test tensor and cover
TEST_IMAGE = "fluo_sparse.png"
#: the documentation's closing section
CITATION = f"""## Licence and citation

MIT. Please cite nucleAIzer: Hollandi R. et al., "nucleAIzer: a parameter-free deep learning framework
for nucleus segmentation using image style transfer", Cell Systems 10(5), 2020,
doi:{NUCLEAIZER_DOI}.
"""


def zoo_input(image: np.ndarray) -> np.ndarray:
    """What a bioimage.io consumer feeds the network for an RGB image: its preprocessing, in NumPy.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 image of any dtype (H and W multiples of 16).

    Returns
    -------
    numpy.ndarray
        float32 (1, H, W, 3): ``(x − p1) / (p99.8 − p1 + 1e-6)`` over all pixels and channels
        (linear percentiles, as the spec's ``scale_range``), clipped to [0, 1].

    Examples
    --------
    >>> x = zoo_input(np.arange(64 * 64 * 3, dtype=np.uint16).reshape(64, 64, 3))
    >>> x.shape, float(x.min()), float(x.max())
    ((1, 64, 64, 3), 0.0, 1.0)
    """
    values = np.asarray(image, np.float32)
    low, high = np.percentile(values, PERCENTILES)
    return np.clip((values - low) / (high - low + 1e-6), 0.0, 1.0).astype(np.float32)[None]


def _default_documentation(model, name: str) -> str:
    """The documentation page (markdown) of a default model's package."""
    return f"""# {name}

The default model of [nucleaizer-tf](https://pypi.org/project/nucleaizer-tf/), a TensorFlow 2
reimplementation of nucleAIzer (Hollandi et al., Cell Systems 2020): a U-Net that gives, per pixel, the
probabilities of background, nucleus interior and nucleus boundary (the three output channels, summing
to 1).

## Input

An RGB image (a grey image repeated into three channels), scaled by one percentile stretch over all
pixels and channels (1 % → 0, 99.8 % → 1) and clipped to [0, 1]; the description's preprocessing does
this. Height and width must be multiples of {model.multiple} (at least {MIN_SIDE}); the network sees about 120 pixels
of context on each side, so tile large images with an overlap of at least 128 pixels.

## What a zoo consumer does not do

1. **Size normalisation.** The network segments nuclei best at a diameter of about
   {model.segment_diameter:g} pixels. nucleaizer-tf estimates the nuclei's size on every image and resizes it
   before the network; here, resize your image yourself so that nuclei are about {model.segment_diameter:g}
   pixels wide (at {model.trained_diameter:g} px they are as in training).
2. **The instance step.** The output is a probability map, not labelled nuclei. nucleaizer-tf makes
   nuclei from it: the foreground is where P(background) < {model.foreground_threshold:g}; seeds are
   4-connected regions where P(interior) ≥ {model.seed_threshold:g} (at least {model.min_seed} pixels); a
   foreground region with one seed is one nucleus, one with several is split between them by a marker
   watershed of 1 − P(interior), one without a seed is a nucleus if it is large enough; nuclei under
   {model.min_area} pixels are dropped. Without it, threshold P(interior) and split touching
   nuclei with a distance-transform watershed (Fiji: *Process › Binary › Watershed*).

`nucleaizer-tf predict` does both, on folders of images of any size and dtype.

## Validation

{_validation_table(model.manifest)}

{CITATION}"""


def _ensemble_documentation(ensemble, name: str) -> str:
    """The documentation page (markdown) of a U-Net ensemble's package."""
    sigmas = ", ".join(f"{sigma:g}" for sigma in ensemble.sigmas)
    return f"""# {name}

nucleAIzer's U-Net ensemble (Hollandi et al., Cell Systems 2020) as nucleaizer-tf runs it: {len(ensemble)}
U-Nets (trained with target sigmas {sigmas}) whose foreground probabilities are averaged into one map,
the single output channel (0 = background, 1 = certain nucleus).

## Input

An 8-bit RGB image (a grey image repeated into three channels), scaled by 1/255. nucleAIzer turns a
16-bit image into 8 bits by stretching each channel from its minimum to its maximum; do that first.

## What a zoo consumer does not do

In nucleAIzer's full pipeline this map only refines the nuclei a Mask R-CNN found (`nucleaizer-tf
predict --mode full`), and the map there is the mean of the members' maps rounded to 16 bits (this
package's map differs from it by less than 1/65535). On its own it is a semantic segmentation: threshold
it at 0.5 and label the connected components; touching nuclei stay one object.

{CITATION}"""


def _validation_table(manifest: dict) -> str:
    """The model's validation scores (its manifest's, where it has them) as a markdown table."""
    rows = [row for row in manifest.get("validation") or [] if isinstance(row, dict) and "dsb" in row]
    if not rows:
        return ("This model folder records no validation scores; `nucleaizer-tf evaluate` scores it on your "
                "annotated images. The package's test tensors reproduce the network's output.")
    lines = ["Scores of nucleaizer-tf's whole method (size normalisation, network, instance step) on the "
             "model's validation images, as its manifest recorded them when the model was selected (DSB 2018 "
             "score, mean precision over IoU 0.5–0.95; F1 at IoU 0.5):", "",
             "| images | count | DSB | F1 |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {row.get('group', '')} | {row.get('images', '')} | {row['dsb']:.3f} | {row.get('f1', float('nan')):.3f} |"
              for row in rows]
    if manifest.get("adapted"):
        lines += ["", "This model was adapted (`nucleaizer-tf adapt`, without annotation) from the model these scores "
                      "belong to; `nucleaizer-tf evaluate` measures it on your annotated images."]
    return "\n".join(lines)


@dataclass(frozen=True)
class _ZooModel:
    """What a package says about one model: its network, input, output and documentation."""

    network: object  # keras.Model: float32 (batch, y, x, 3) → {output_id: (batch, y, x, channels)}
    output_id: str
    channels: tuple[str, ...]
    multiple: int
    input_type: str  # the test tensor's dtype and the input's data type, as the spec names them
    preprocessing: tuple[dict, ...]
    network_input: Callable[[np.ndarray], np.ndarray]  # NumPy twin of the preprocessing: image → (1, y, x, 3)
    name: str
    description: str
    input_description: str
    output_description: str
    documentation: str
    tags: tuple[str, ...]


def _default_zoo(model, name: str | None) -> _ZooModel:
    """The package contents of a default model."""
    title = name or model.manifest.get("name") or "nucleaizer-tf default model"
    return _ZooModel(
        network=model.standalone_network("probabilities"), output_id="probabilities",
        channels=("background", "interior", "boundary"), multiple=model.multiple, input_type="float32",
        preprocessing=({"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                       {"id": "scale_range", "kwargs": {"axes": ["y", "x", "channel"], "min_percentile": PERCENTILES[0],
                                                        "max_percentile": PERCENTILES[1], "eps": 1e-6}},
                       {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}),
        network_input=zoo_input, name=title,
        description="Nucleus segmentation (nucleAIzer's default model in nucleaizer-tf): per-pixel probabilities "
                    "of background, nucleus interior and nucleus boundary.",
        input_description=f"RGB image (grey repeated into three channels), nuclei about {model.segment_diameter:g} px wide",
        output_description="per-pixel probabilities of background, nucleus interior and nucleus boundary",
        documentation=_default_documentation(model, title),
        tags=("nuclei", "segmentation", "fluorescence-light-microscopy", "2d", "unet", "nucleaizer",
              "semantic-segmentation", "tensorflow"))


def _ensemble_zoo(ensemble, name: str | None) -> _ZooModel:
    """The package contents of a U-Net ensemble."""
    from nucleaizer_tf.unet.ensemble import to_unit_rgb

    title = name or f"nucleAIzer U-Net ensemble ({len(ensemble)} members)"
    depth = max(int(spec.architecture.get("depth", 4)) for spec in ensemble.members)
    return _ZooModel(
        network=ensemble.standalone_network("probability"), output_id="probability", channels=("nucleus",),
        multiple=2**depth, input_type="float32",  # holding 0..255: the spec's data type is what reaches the network
        preprocessing=({"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                       {"id": "scale_linear", "kwargs": {"gain": 1 / 255, "offset": 0.0}}),
        network_input=lambda image: to_unit_rgb(np.asarray(image, np.uint8)), name=title,
        description="nucleAIzer's U-Net ensemble in nucleaizer-tf: the mean foreground (nucleus) probability of "
                    f"{len(ensemble)} U-Nets.",
        input_description="8-bit RGB image, values 0-255 (grey repeated into three channels)",
        output_description="mean nucleus probability of the members",
        documentation=_ensemble_documentation(ensemble, title),
        tags=("nuclei", "segmentation", "2d", "unet", "nucleaizer", "semantic-segmentation", "tensorflow"))


def _colours(probabilities: np.ndarray) -> np.ndarray:
    """8-bit RGB of a map: three classes as red, green, blue; one channel as grey."""
    values = np.floor(np.clip(probabilities, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(values, 3, axis=-1) if values.shape[-1] == 1 else values


def _description(zoo: _ZooModel, files: dict[str, str]) -> dict:
    """The resource description (spec 0.5) as a dict, naming the files in `files`."""
    import tensorflow as tf
    from bioimageio.spec.model.v0_5 import ModelDescr

    from nucleaizer_tf import __version__

    space = {"min": MIN_SIDE, "step": zoo.multiple}
    return {
        "type": "model",
        "format_version": ModelDescr.implemented_format_version,
        "name": zoo.name,
        "description": zoo.description,
        "version": __version__,
        "authors": [{"name": "nucleaizer-tf contributors"}],
        "cite": [{"text": "Hollandi et al., nucleAIzer: a parameter-free deep learning framework for nucleus "
                          "segmentation using image style transfer, Cell Systems 2020", "doi": NUCLEAIZER_DOI},
                 {"text": f"nucleaizer-tf {__version__}, a TensorFlow 2 reimplementation of nucleAIzer",
                  "url": "https://pypi.org/project/nucleaizer-tf/"}],
        "license": "MIT",
        "tags": list(zoo.tags),
        "documentation": {"source": files["documentation"]},
        "covers": [{"source": files["cover"]}],
        "inputs": [{
            "id": INPUT_ID,
            "description": zoo.input_description,
            "axes": [{"type": "batch"},
                     {"type": "space", "id": "y", "size": space},
                     {"type": "space", "id": "x", "size": space},
                     {"type": "channel", "channel_names": ["r", "g", "b"]}],
            "test_tensor": {"source": files["test_input"]},
            "sample_tensor": {"source": files["sample_input"]},
            "data": {"type": zoo.input_type},
            "preprocessing": [dict(step) for step in zoo.preprocessing],
        }],
        "outputs": [{
            "id": zoo.output_id,
            "description": zoo.output_description,
            "axes": [{"type": "batch"},
                     {"type": "space", "id": "y", "size": {"tensor_id": INPUT_ID, "axis_id": "y"}},
                     {"type": "space", "id": "x", "size": {"tensor_id": INPUT_ID, "axis_id": "x"}},
                     {"type": "channel", "channel_names": list(zoo.channels)}],
            "test_tensor": {"source": files["test_output"]},
            "sample_tensor": {"source": files["sample_output"]},
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {"tensorflow_saved_model_bundle": {"source": files["weights"],
                                                      "tensorflow_version": tf.__version__},
                    **({"onnx": {"source": files["onnx"], "opset_version": ONNX_OPSET,
                                 "parent": "tensorflow_saved_model_bundle"}} if "onnx" in files else {})},
    }


def export_bioimageio(model_path, out: str | os.PathLike, *, overwrite: bool = False, name: str | None = None,
                      test_image: np.ndarray | None = None) -> Path:
    """Write a default model or a U-Net ensemble as a bioimage.io model package.

    Parameters
    ----------
    model_path : str or os.PathLike or None
        ``"default"`` (or None) for the shipped model, a default-model folder (what `adapt` and
        `train default` write) or a U-Net ensemble folder.
    out : str or os.PathLike
        The ``.zip`` to write (written under a temporary name, then renamed).
    overwrite : bool, optional
        Replace an existing `out` (default False: refuse).
    name : str, optional
        The model's name in the zoo (default: the manifest's name).
    test_image : numpy.ndarray, optional
        H×W×3 uint8 image for the test tensors and the cover (default: the bundled ``fluo_sparse.png``);
        cropped to multiples of the pooling factor.

    Returns
    -------
    pathlib.Path
        `out`.

    Raises
    ------
    NucleaizerError
        For a model that is neither, an existing `out` without `overwrite`, or a description
        `bioimageio.spec` finds invalid.
    ModuleNotFoundError
        Without the ``bioimageio`` extra (the CLI says which extra to install).

    Examples
    --------
    >>> export_bioimageio("default", "nucleaizer.zip")  # doctest: +SKIP
    PosixPath('nucleaizer.zip')
    """
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8
    from nucleaizer_tf.io import read_image, write_rgb
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.load import load_model, segmenter_class

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise NucleaizerError(f"{out}: a bioimage.io package is a .zip file")
    check_output_file(out, "package")
    if out.exists() and not overwrite:
        raise NucleaizerError(f"{out}: already exists (--overwrite replaces it)")
    kind = segmenter_class(model_path)
    if kind not in (DefaultSegmenter, EnsembleSegmenter):
        raise NucleaizerError(f"{model_path}: bioimage.io export takes the default model, a default-model folder "
                              "(what adapt and train default write) or a U-Net ensemble folder; legacy Mask R-CNN "
                              "files and the full pipeline need nucleaizer-tf's own post-processing")
    # without the extra this import fails, and the CLI names the extra (extras.missing_extra_message)
    from bioimageio.spec import ValidationContext, build_description, save_bioimageio_package
    segmenter = load_model(model_path)
    zoo = (_default_zoo(segmenter.model, name) if kind is DefaultSegmenter
           else _ensemble_zoo(segmenter.ensemble, name))
    if test_image is None:
        from nucleaizer_tf.examples import IMAGES

        test_image = read_image(IMAGES / TEST_IMAGE)
    step = zoo.multiple
    image = np.asarray(test_image)[: test_image.shape[0] // step * step, : test_image.shape[1] // step * step, :3]
    y = zoo.network(zoo.network_input(image), training=False)[zoo.output_id].numpy()
    with tempfile.TemporaryDirectory(prefix=".export.") as scratch:
        root = Path(scratch)
        files = {"documentation": "README.md", "cover": "cover.png", "test_input": "test_input.npy",
                 "test_output": "test_output.npy", "sample_input": "sample_input.png",
                 "sample_output": "sample_output.png", "weights": "tf_saved_model.zip"}
        (root / files["documentation"]).write_text(zoo.documentation, encoding="utf-8")
        shown, result = stretch_rgb8(image), _colours(y[0])
        write_rgb(root / files["cover"], np.concatenate([shown, result], axis=1))  # 2:1, as the zoo shows covers
        write_rgb(root / files["sample_input"], shown)
        write_rgb(root / files["sample_output"], result)
        np.save(root / files["test_input"], image[None].astype(zoo.input_type))
        np.save(root / files["test_output"], y)
        _saved_model_zip(zoo.network, root / files["weights"], root / "saved_model")
        if _onnx_weights(zoo.network, root / "weights.onnx"):
            files["onnx"] = "weights.onnx"
        context = ValidationContext(root=root, file_name="rdf.yaml", perform_io_checks=True)
        with context:
            description = build_description(_description(zoo, files), context=context)
        if type(description).__name__ == "InvalidDescr":
            problems = getattr(description, "validation_summary", None)
            raise NucleaizerError(f"{out}: the resource description is invalid: "
                                  f"{problems.format() if problems else description}"[:2000])
        with atomic_path(out) as tmp:
            save_bioimageio_package(description, output_path=tmp)
    return out


def _onnx_weights(network, target: Path) -> bool:
    """The network as ONNX (tf2onnx, where installed) into `target`; False without tf2onnx."""
    try:
        import tf2onnx
    except ModuleNotFoundError:
        return False
    import logging

    import tensorflow as tf

    from nucleaizer_tf.system import native_stderr_silenced

    tf2onnx.logging.set_level(logging.ERROR)
    spec = tf.TensorSpec([None, None, None, network.inputs[0].shape[-1]], tf.float32, name=INPUT_ID)
    with native_stderr_silenced():
        proto, _ = tf2onnx.convert.from_function(tf.function(lambda x: network(x, training=False)),
                                                 input_signature=[spec], opset=ONNX_OPSET)
    target.write_bytes(proto.SerializeToString())
    return True


def _saved_model_zip(network, target: Path, folder: Path) -> None:
    """The network exported as a TensorFlow SavedModel into `folder`, zipped into `target`."""
    import tensorflow as tf

    from nucleaizer_tf.system import native_stderr_silenced

    # one positional tensor (not the functional model's list of one), so TFSMLayer(image) binds
    spec = tf.TensorSpec([None, None, None, network.inputs[0].shape[-1]], tf.float32, name=INPUT_ID)
    with native_stderr_silenced():
        network.export(str(folder), format="tf_saved_model", verbose=False, input_signature=[spec])
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
