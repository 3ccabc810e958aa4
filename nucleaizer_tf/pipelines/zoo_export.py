"""`export bioimageio`: a default model as a bioimage.io model package, for deepImageJ (Fiji), QuPath,
ilastik and the BioImage Model Zoo.

The package is a zip with a resource description (``rdf.yaml``, spec 0.5) and the files it names:

* the network as a TensorFlow SavedModel (`DefaultModel.standalone_network`: the float32 U-Net with the
  training's class-weight correction folded in), input ``image`` (batch, y, x, 3 channels; y and x
  multiples of 16, at least 64), output ``probabilities`` (batch, y, x, background / interior /
  boundary), softmax probabilities that sum to 1 per pixel;
* the preprocessing `stretch_rgb8` does, as far as the spec can say it: one percentile scaling,
  1 % → 0 and 99.8 % → 1, over all pixels and channels of the image (`scale_range`), then `clip` to
  [0, 1]; `predict` also rounds to 8 bits, which the spec cannot express, so a zoo consumer's map
  differs from `predict`'s by a rounding step here and there;
* test tensors (a bundled example image and the network's output on it), sample images, a cover (the
  image beside its class map), the licence, the citations and a documentation page with the model's
  validation scores that says what a zoo consumer does not do: rescale the image so nuclei have the
  model's diameter, and turn the map into nuclei.

Writing and validating the description is `bioimageio.spec`'s (the optional ``bioimageio`` extra).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.convert import PERCENTILES
from nucleaizer_tf.io.write import atomic_path, check_output_file

#: the nucleAIzer paper (Hollandi et al., Cell Systems 2020)
NUCLEAIZER_DOI = "10.1016/j.cels.2020.04.003"
#: the tensors' ids in the description
INPUT_ID, OUTPUT_ID = "image", "probabilities"
#: the output's channels, in order
CLASSES = ("background", "interior", "boundary")
#: the smallest input side and the step of the input sides (the U-Net's pooling factor 2^depth)
MIN_SIDE = 64
#: the bundled example used as test tensor and cover
TEST_IMAGE = "fluo_sparse.png"


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


def _documentation(model, name: str) -> str:
    """The package's documentation page (markdown)."""
    return f"""# {name}

The default model of [nucleaizer-tf](https://pypi.org/project/nucleaizer-tf/), a TensorFlow 2
reimplementation of nucleAIzer (Hollandi et al., Cell Systems 2020): a U-Net that gives, per pixel, the
probabilities of background, nucleus interior and nucleus boundary (the three output channels, summing
to 1).

## Input

An RGB image (a grey image repeated into three channels), scaled by one percentile stretch over all
pixels and channels (1 % → 0, 99.8 % → 1) and clipped to [0, 1]; the description's preprocessing does
this. Height and width must be multiples of 16 (at least {MIN_SIDE}); the network sees about 120 pixels
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

## Licence and citation

MIT. Please cite nucleAIzer: Hollandi R. et al., "nucleAIzer: a parameter-free deep learning framework
for nucleus segmentation using image style transfer", Cell Systems 10(5), 2020,
doi:{NUCLEAIZER_DOI}.
"""


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
    return "\n".join(lines)


def _class_colours(probabilities: np.ndarray) -> np.ndarray:
    """8-bit RGB of a class map: red background, green interior, blue boundary."""
    return np.floor(np.clip(probabilities, 0, 1) * 255 + 0.5).astype(np.uint8)


def _description(model, name: str, files: dict[str, str]) -> dict:
    """The resource description (spec 0.5) as a dict, naming the files in `files`."""
    import tensorflow as tf

    from nucleaizer_tf import __version__

    from bioimageio.spec.model.v0_5 import ModelDescr

    space = {"min": MIN_SIDE, "step": model.multiple}
    return {
        "type": "model",
        "format_version": ModelDescr.implemented_format_version,
        "name": name,
        "description": "Nucleus segmentation (nucleAIzer's default model in nucleaizer-tf): per-pixel "
                       "probabilities of background, nucleus interior and nucleus boundary.",
        "version": __version__,
        "authors": [{"name": "nucleaizer-tf contributors"}],
        "cite": [{"text": "Hollandi et al., nucleAIzer: a parameter-free deep learning framework for nucleus "
                          "segmentation using image style transfer, Cell Systems 2020", "doi": NUCLEAIZER_DOI},
                 {"text": f"nucleaizer-tf {__version__}, a TensorFlow 2 reimplementation of nucleAIzer",
                  "url": "https://pypi.org/project/nucleaizer-tf/"}],
        "license": "MIT",
        "tags": ["nuclei", "segmentation", "fluorescence-light-microscopy", "2d", "unet", "nucleaizer",
                 "semantic-segmentation", "tensorflow"],
        "documentation": {"source": files["documentation"]},
        "covers": [{"source": files["cover"]}],
        "inputs": [{
            "id": INPUT_ID,
            "description": "RGB image (grey repeated into three channels), nuclei about "
                           f"{model.segment_diameter:g} px wide",
            "axes": [{"type": "batch"},
                     {"type": "space", "id": "y", "size": space},
                     {"type": "space", "id": "x", "size": space},
                     {"type": "channel", "channel_names": ["r", "g", "b"]}],
            "test_tensor": {"source": files["test_input"]},
            "sample_tensor": {"source": files["sample_input"]},
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {"axes": ["y", "x", "channel"], "min_percentile": PERCENTILES[0],
                                                 "max_percentile": PERCENTILES[1], "eps": 1e-6}},
                {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "per-pixel probabilities of background, nucleus interior and nucleus boundary",
            "axes": [{"type": "batch"},
                     {"type": "space", "id": "y", "size": {"tensor_id": INPUT_ID, "axis_id": "y"}},
                     {"type": "space", "id": "x", "size": {"tensor_id": INPUT_ID, "axis_id": "x"}},
                     {"type": "channel", "channel_names": list(CLASSES)}],
            "test_tensor": {"source": files["test_output"]},
            "sample_tensor": {"source": files["sample_output"]},
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {"tensorflow_saved_model_bundle": {"source": files["weights"],
                                                      "tensorflow_version": tf.__version__}},
    }


def export_bioimageio(model_path, out: str | os.PathLike, *, overwrite: bool = False, name: str | None = None,
                      test_image: np.ndarray | None = None) -> Path:
    """Write a default model (the shipped one or a model folder) as a bioimage.io model package.

    Parameters
    ----------
    model_path : str or os.PathLike or None
        ``"default"`` (or None) for the shipped model, or a default-model folder (what `adapt` and
        `train default` write).
    out : str or os.PathLike
        The ``.zip`` to write (written under a temporary name, then renamed).
    overwrite : bool, optional
        Replace an existing `out` (default False: refuse).
    name : str, optional
        The model's name in the zoo (default: the manifest's name).
    test_image : numpy.ndarray, optional
        H×W×3 image for the test tensors and the cover (default: the bundled ``fluo_sparse.png``);
        cropped to multiples of 16.

    Returns
    -------
    pathlib.Path
        `out`.

    Raises
    ------
    NucleaizerError
        For a model that is not a default model, an existing `out` without `overwrite`, or a description
        `bioimageio.spec` finds invalid.

    Examples
    --------
    >>> export_bioimageio("default", "nucleaizer.zip")  # doctest: +SKIP
    PosixPath('nucleaizer.zip')
    """
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8
    from nucleaizer_tf.io import read_image, write_rgb
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.load import load_model, segmenter_class

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise NucleaizerError(f"{out}: a bioimage.io package is a .zip file")
    check_output_file(out, "package")
    if out.exists() and not overwrite:
        raise NucleaizerError(f"{out}: already exists (--overwrite replaces it)")
    if segmenter_class(model_path) is not DefaultSegmenter:
        raise NucleaizerError(f"{model_path}: bioimage.io export takes the default model or a default-model folder "
                              "(what adapt and train default write); legacy Mask R-CNN files, U-Net ensembles and the "
                              "full pipeline need nucleaizer-tf's own post-processing")
    try:
        from bioimageio.spec import ValidationContext, build_description, save_bioimageio_package
    except ModuleNotFoundError as exc:
        raise NucleaizerError("export bioimageio needs bioimageio.spec, from the optional 'bioimageio' extra: "
                              "pip install 'nucleaizer-tf[bioimageio]'") from exc
    model = load_model(model_path).model
    if test_image is None:
        from nucleaizer_tf.examples import IMAGES

        test_image = read_image(IMAGES / TEST_IMAGE)
    step = model.multiple
    image = np.asarray(test_image)[: test_image.shape[0] // step * step, : test_image.shape[1] // step * step, :3]
    network = model.standalone_network(OUTPUT_ID)
    x = zoo_input(image)
    y = network(x, training=False)[OUTPUT_ID].numpy()
    title = name or model.manifest.get("name") or "nucleaizer-tf default model"
    with tempfile.TemporaryDirectory(prefix=".export.") as scratch:
        root = Path(scratch)
        files = {"documentation": "README.md", "cover": "cover.png", "test_input": "test_input.npy",
                 "test_output": "test_output.npy", "sample_input": "sample_input.png",
                 "sample_output": "sample_output.png", "weights": "tf_saved_model.zip"}
        (root / files["documentation"]).write_text(_documentation(model, title), encoding="utf-8")
        shown, classes = stretch_rgb8(image), _class_colours(y[0])
        write_rgb(root / files["cover"], np.concatenate([shown, classes], axis=1))  # 2:1, as the zoo shows covers
        write_rgb(root / files["sample_input"], shown)
        write_rgb(root / files["sample_output"], classes)
        np.save(root / files["test_input"], image[None].astype(np.float32))
        np.save(root / files["test_output"], y)
        _saved_model_zip(network, root / files["weights"], root / "saved_model")
        context = ValidationContext(root=root, file_name="rdf.yaml", perform_io_checks=True)
        with context:
            description = build_description(_description(model, title, files), context=context)
        problems = getattr(description, "validation_summary", None)
        if type(description).__name__ == "InvalidDescr":
            raise NucleaizerError(f"{out}: the resource description is invalid: "
                                  f"{problems.format() if problems else description}"[:2000])
        with atomic_path(out) as tmp:
            save_bioimageio_package(description, output_path=tmp)
    return out


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
