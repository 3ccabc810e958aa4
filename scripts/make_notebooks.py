#!/usr/bin/env python3
"""Write the Jupyter notebooks under `notebooks/` from the cell lists below (outputs stripped).

The notebooks are generated so that their source is reviewable as plain Python and every regeneration
gives byte-identical files (fixed cell ids, no outputs, no execution counts). Edit the cells here, then

    python scripts/make_notebooks.py            # rewrite notebooks/*.ipynb
    python scripts/make_notebooks.py --check    # exit 1 if a committed notebook differs (used by the tests)

`tests/test_notebooks.py` executes every notebook top to bottom and checks that the committed files are
what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip("\n")


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip("\n")


# ------------------------------------------------------------------------------------------------------
# 01 quickstart

QUICKSTART = [
    md("""
    # 1 · Quick start: segment nuclei with the shipped model

    This notebook segments a few microscopy images with the **default model that ships with
    nucleaizer-tf** — no download, no training, no GPU — and then does what you would do next with the
    result:

    1. look at the nuclei outlines drawn over each image,
    2. measure every nucleus (area, mean intensity, position) into a table,
    3. check the result against hand-made ground truth with the Data Science Bowl (DSB) score,
    4. save one label image per input (a 16-bit TIFF where every nucleus has its own number, 0 = background),
       ready for Fiji, CellProfiler, QuPath or napari.

    It runs top to bottom on a laptop CPU in well under a minute. To use it on your own data, change
    `IMAGE_DIR` in the second code cell.
    """),
    code("""
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np
    from skimage.measure import regionprops_table

    import nucleaizer_tf
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.io import list_images, read_image, read_labels, to_rgb8, write_labels
    from nucleaizer_tf.metrics import score_dataset, score_image
    from nucleaizer_tf.synthetic import synthetic_nuclei
    from nucleaizer_tf.visualize import outline_overlay

    print("nucleaizer-tf", nucleaizer_tf.__version__)
    """),
    md("""
    ## The images

    A source checkout of nucleaizer-tf has three small example images with their ground truth in
    `examples/` (generated, so they can be shared freely): a sparse and a dense fluorescence image and a
    bright-field (stained tissue-like) image. If they are not there (for instance after a plain
    `pip install`), the cell generates similar images instead.

    We add a fourth, generated image stored the way many microscopes write their files: a single
    **16-bit grey** channel. The model accepts any bit depth and any number of channels, so no
    conversion is needed on your side.

    **Your own images:** set `IMAGE_DIR` to a folder of PNG/TIFF/JPEG files (and `MASK_DIR` to a folder
    of label images with the same file names, if you have ground truth; otherwise leave it `None`).
    """),
    code("""
    EXAMPLES = Path(nucleaizer_tf.__file__).resolve().parents[1] / "examples"
    IMAGE_DIR = EXAMPLES / "images"   # <- your folder of images
    MASK_DIR = EXAMPLES / "masks"     # <- your ground-truth label images, or None

    images, truth = {}, {}
    if IMAGE_DIR.is_dir():
        for path in list_images(IMAGE_DIR):
            images[path.stem] = read_image(path)
            if MASK_DIR is not None and (MASK_DIR / f"{path.stem}.tiff").exists():
                truth[path.stem] = read_labels(MASK_DIR / f"{path.stem}.tiff")
    else:  # no examples folder: generate two images in the same spirit
        for name, style, seed in (("fluo", "fluorescence", 1), ("brightfield", "brightfield", 2)):
            sample = synthetic_nuclei((256, 256), n_nuclei=30, diameter=20, style=style, seed=seed)
            images[name], truth[name] = sample.image, sample.labels

    sample = synthetic_nuclei((256, 256), n_nuclei=20, diameter=30, seed=7)
    images["grey_16bit"] = (sample.image[..., 2].astype(np.uint16) * 180 + 300)  # one 16-bit channel
    truth["grey_16bit"] = sample.labels

    for name, image in images.items():
        print(f"{name:12s} shape {str(image.shape):15s} {image.dtype}, value range {image.min()}..{image.max()}")
    """),
    md("""
    ## Load the model and segment

    `DefaultModel.load()` reads the network shipped in the package (about 2 MB) and checks the file's
    checksum. `segment(image)` returns the **label image**.

    The model was trained on nuclei about 20 pixels across. Like the original nucleAIzer, it first
    estimates how large the nuclei in *your* image are and rescales the image so they match, so you do
    not need to tell it the magnification. If you know the typical nucleus diameter in pixels, pass it
    (`segment(image, diameter=35)`) to skip the estimate. Large images are processed in tiles
    automatically.
    """),
    code("""
    model = DefaultModel.load()
    print("trained at a nucleus diameter of", model.trained_diameter, "pixels")

    labels = {}
    for name, image in images.items():
        labels[name], info = model.segment(image, return_info=True)
        print(f"{name:12s} {labels[name].max():3d} nuclei   estimated diameter {info.diameter:5.1f} px"
              f"   (network ran at scale {info.scale:.2f})")
    """),
    md("""
    ## Look at the result

    Each nucleus found is outlined in yellow. Touching nuclei get separate outlines, so a nucleus cut in
    two or two nuclei merged into one are easy to spot.
    """),
    code("""
    fig, axes = plt.subplots(2, len(images), figsize=(4 * len(images), 8))
    for column, (name, image) in enumerate(images.items()):
        axes[0, column].imshow(to_rgb8(image))
        axes[0, column].set_title(name)
        axes[1, column].imshow(outline_overlay(image, labels[name]))
        axes[1, column].set_title(f"{labels[name].max()} nuclei")
    for ax in axes.ravel():
        ax.axis("off")
    plt.tight_layout()
    plt.show()
    """),
    md("""
    ## Measure every nucleus

    scikit-image's `regionprops_table` turns a label image into one row per nucleus. We measure the area
    (in pixels; multiply by the pixel area in µm² for physical units), the centroid, and the mean
    intensity in the original image (for colour images, the mean over the channels). The table is
    saved as a CSV file that opens in any spreadsheet program.
    """),
    code("""
    import csv

    rows = []
    for name, image in images.items():
        grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
        table = regionprops_table(labels[name], intensity_image=grey,
                                  properties=("label", "area", "centroid", "intensity_mean", "eccentricity"))
        for i in range(len(table["label"])):
            rows.append({"image": name, "nucleus": int(table["label"][i]), "area_px": int(table["area"][i]),
                         "centroid_y": round(float(table["centroid-0"][i]), 1),
                         "centroid_x": round(float(table["centroid-1"][i]), 1),
                         "mean_intensity": round(float(table["intensity_mean"][i]), 1),
                         "eccentricity": round(float(table["eccentricity"][i]), 3)})

    with open("nuclei.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"{len(rows)} nuclei measured, saved to nuclei.csv; the first ten:")
    print(" | ".join(f"{key:>14s}" for key in rows[0]))
    for row in rows[:10]:
        print(" | ".join(f"{value!s:>14}" for value in row.values()))
    """),
    code("""
    fig, (ax_area, ax_scatter) = plt.subplots(1, 2, figsize=(12, 4))
    for name in images:
        areas = [r["area_px"] for r in rows if r["image"] == name]
        ax_area.hist(areas, bins=15, alpha=0.6, label=name)
        ax_scatter.scatter(areas, [r["eccentricity"] for r in rows if r["image"] == name], s=12, label=name)
    ax_area.set(xlabel="nucleus area (pixels)", ylabel="nuclei", title="Nucleus size per image")
    ax_scatter.set(xlabel="nucleus area (pixels)", ylabel="eccentricity (0 = round)", title="Size and shape")
    ax_area.legend()
    plt.show()
    """),
    md("""
    ## How good is it? (needs ground truth)

    When hand-drawn label images exist, the **DSB score** (the metric of the Kaggle Data Science Bowl
    2018, which nucleAIzer won) summarises how well the predicted nuclei match them: for each
    overlap threshold from 50 % to 95 % it counts matched nuclei against missed and spurious ones, and
    averages. 1.0 is a perfect match. F1 at 50 % overlap is the fraction of nuclei found, balanced
    against false detections.
    """),
    code("""
    scores = [score_image(truth[name], labels[name], name=name) for name in images if name in truth]
    for s in scores:
        print(f"{s.name:12s} DSB {s.dsb:.3f}   F1@0.5 {s.f1:.3f}   {s.tp} matched, {s.fn} missed, {s.fp} spurious")
    print(f"{'all':12s} DSB {score_dataset(scores).dsb:.3f}")

    thresholds = np.round(np.arange(0.5, 1.0, 0.05), 2)
    for s in scores:
        plt.plot(thresholds, s.precisions, marker="o", label=s.name)
    plt.xlabel("overlap (IoU) a nucleus needs to count as found")
    plt.ylabel("TP / (TP + FP + FN)")
    plt.title("Matching quality per overlap threshold (the DSB score is the mean)")
    plt.ylim(0, 1.05)
    plt.legend()
    plt.show()
    """),
    md("""
    ## Save the label images

    `write_labels` writes one 16-bit TIFF per image (32-bit if an image holds more than 65,535 nuclei).
    Reading them back gives exactly the same numbers.
    """),
    code("""
    out = Path("labels")
    for name, lab in labels.items():
        path = write_labels(out / f"{name}.tiff", lab)
        assert np.array_equal(read_labels(path), lab)
        print(path, lab.dtype, f"{path.stat().st_size / 1024:.0f} KiB")
    """),
    md("""
    ## Next steps

    * A whole folder from the command line: `nucleaizer-tf predict IMAGES/ OUT/ --overlay`
      (see `nucleaizer-tf predict --help`).
    * Notebook 2 runs the original nucleAIzer Mask R-CNN networks (your `.h5` weight files).
    * Notebook 3 adapts a model to a new image style with nucleAIzer's style transfer.
    """),
]


# ------------------------------------------------------------------------------------------------------
# 02 legacy Mask R-CNN

LEGACY = [
    md("""
    # 2 · The original nucleAIzer networks: legacy Mask R-CNN weight files

    nucleAIzer (Hollandi et al., *Cell Systems* 2020) segments nuclei with a **Mask R-CNN** network
    (matterport's implementation, Keras 2.1). Its trained weights are `.h5` files of about 255 MB,
    usually called `mask_rcnn_presegmentation.h5` and `mask_rcnn_final.h5`. You get them from the
    original nucleAIzer release (the model download linked from the authors' nucleAIzer repository and
    website), or from your own training with the original code. nucleaizer-tf reads these files
    unchanged.

    This notebook shows how to

    1. inspect such a file,
    2. load it and look at the raw detections (boxes, scores, masks),
    3. run nucleAIzer's **fast** prediction (one Mask R-CNN pass) and its **full** prediction
       (presegmentation → nucleus size → U-Net ensemble → Mask R-CNN at two scales → post-processing),
    4. compare with the default model shipped with nucleaizer-tf.

    **No real weights here.** A notebook that runs anywhere (and in our automatic tests) cannot download
    255 MB, so it *writes* a file with the exact layout of the original ones but **random weights**.
    Everything runs exactly as with a real file, but the detections of a random network are meaningless
    boxes: do not read anything into them. Set `LEGACY_H5` below to your own file to see real results.

    Runs in about two minutes on a laptop CPU and needs ~300 MB of free disk in the temporary folder.
    """),
    code("""
    import re
    import shutil
    import tempfile
    import time
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.maskrcnn import MaskRCNN, MaskRCNNConfig, SegmentOptions, inspect_legacy_h5, save_legacy_weights
    from nucleaizer_tf.metrics import score_image
    from nucleaizer_tf.synthetic import synthetic_nuclei
    from nucleaizer_tf.visualize import outline_overlay

    LEGACY_H5 = None   # <- e.g. Path("~/models/mask_rcnn_presegmentation.h5").expanduser()
    WORK = Path(tempfile.mkdtemp(prefix="nucleaizer-legacy-"))
    print("scratch folder:", WORK)
    """),
    md("""
    ## A stand-in weight file (skip with real weights)

    We build the network, fill it with seeded random numbers and save it in the Keras 2.1.6 layout the
    original code wrote. The recipe only keeps the numbers in a sane range (He-normal kernels, damped
    where the 101-layer ResNet would otherwise blow up; neutral batch normalisation; a small nudge
    towards the "nucleus" class so that a few boxes pass the 0.7 confidence threshold).
    """),
    code("""
    def seed_legacy_weights(keras_model, seed=0):
        rng = np.random.default_rng(seed)
        damp = {"conv1": 1 / 64, "fpn_c2p2": 0.02, "fpn_c3p3": 0.02, "fpn_c4p4": 0.02, "fpn_c5p5": 0.02}
        values = []
        for var in keras_model.weights:
            layer, kind, shape = var.path.split("/")[0], var.path.split("/")[-1], tuple(var.shape)
            if kind == "kernel":
                fan_in = shape[-1] if layer == "mrcnn_mask_deconv" else int(np.prod(shape[:-1]))
                gain = damp.get(layer, 0.2 if re.fullmatch(r"res\\d[b-z]_branch2c", layer) else 1.0)
                values.append(rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), shape))
            elif kind in ("gamma", "moving_variance"):
                values.append(np.ones(shape))
            elif layer == "mrcnn_class_logits" and kind == "bias":
                values.append(np.array([0.0, 1.5]))
            else:
                values.append(np.zeros(shape))
        keras_model.set_weights([v.astype(np.float32) for v in values])


    if LEGACY_H5 is None:
        start = time.perf_counter()
        stand_in = MaskRCNN(MaskRCNNConfig.presegment())
        seed_legacy_weights(stand_in.keras_model)
        LEGACY_H5 = save_legacy_weights(stand_in.keras_model, WORK / "mask_rcnn_seeded.h5")
        del stand_in
        print(f"wrote {LEGACY_H5} ({LEGACY_H5.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
    """),
    md("""
    ## What is in the file?

    `inspect_legacy_h5` reads only the file's table of contents (fast, no arrays): the Keras version
    that wrote it, the layers and the shapes of their weights. A file that does not fit (a COCO model
    with 81 classes, a truncated download, a Git-LFS placeholder) is refused with a message saying why.
    """),
    code("""
    info = inspect_legacy_h5(LEGACY_H5)
    print("written by Keras", info["attrs"].get("keras_version"), "/", info["attrs"].get("backend"))
    print(f"{info['n_layers_with_weights']} layers with weights, {info['n_arrays']} arrays, "
          f"{info['n_values'] / 1e6:.1f} million numbers")
    for layer in ["conv1", "res5c_branch2c", "rpn_model", "mrcnn_class_logits", "mrcnn_mask"]:
        for weight, shape, dtype in info["layers"].get(layer, []):
            print(f"  {weight:45s} {str(shape):22s} {dtype}")
    """),
    md("""
    ## Load it and look at the raw detections

    `MaskRCNN.from_legacy_h5` builds the network once (any image size) and loads the file layer by
    layer, checking every array. `MaskRCNNConfig.presegment()` holds nucleAIzer's presegmentation
    settings. `detect` returns what the network found, in the image's own pixel coordinates: one box,
    score and small mask per nucleus. The network size is 256 here to keep the notebook fast; nucleAIzer
    uses 1024.

    Our test image is generated, so we know the true nuclei.
    """),
    code("""
    config = MaskRCNNConfig.presegment()
    print("confidence", config.DETECTION_MIN_CONFIDENCE, " NMS", config.DETECTION_NMS_THRESHOLD,
          " at most", config.DETECTION_MAX_INSTANCES, "nuclei")
    start = time.perf_counter()
    rcnn = MaskRCNN.from_legacy_h5(LEGACY_H5, config)
    print(f"loaded in {time.perf_counter() - start:.0f} s")

    sample = synthetic_nuclei((256, 256), n_nuclei=25, diameter=20, seed=3)
    image, truth = sample.image, sample.labels
    options = SegmentOptions(image_size=256)
    detections = rcnn.detect(image, options)
    print(f"{len(detections)} detections (network size {detections.network_size})")
    for roi, score in list(zip(detections.rois, detections.scores))[:5]:
        print("  box y1, x1, y2, x2 =", roi.tolist(), f" score {score:.3f}")
    """),
    code("""
    fig, (ax_boxes, ax_masks) = plt.subplots(1, 2, figsize=(11, 5.5))
    ax_boxes.imshow(image)
    for (y1, x1, y2, x2), score in zip(detections.rois, detections.scores):
        ax_boxes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2,
                                     color=plt.cm.autumn((score - 0.7) / 0.3)))
    ax_boxes.set_title(f"{len(detections)} boxes, coloured by score (random weights!)")
    masks = detections.masks()  # H x W x n booleans
    ax_masks.imshow(masks.sum(axis=-1), cmap="magma")
    ax_masks.set_title("how many detection masks cover each pixel")
    for ax in (ax_boxes, ax_masks):
        ax.axis("off")
    plt.show()
    """),
    md("""
    ## Fast prediction

    nucleAIzer's fast mode is one Mask R-CNN pass followed by its merge of the detections into a label
    image (each nucleus slightly dilated; where two overlap, the lower-scoring one wins, as in the
    original). The same as `nucleaizer-tf predict IMAGES OUT --model FILE.h5`.
    """),
    code("""
    start = time.perf_counter()
    fast = rcnn.segment(image, options)
    print(f"fast mode: {fast.max()} labels in {time.perf_counter() - start:.1f} s")
    """),
    md("""
    ## Full prediction

    The full pipeline of the paper needs two Mask R-CNN files (presegmentation and final; we reuse the
    same stand-in for both) and a **U-Net ensemble** folder, which refines the nucleus outlines. Again
    a random stand-in: `make_seeded_ensemble` writes two tiny untrained U-Nets. With real files you
    would point to the ensemble trained with `nucleaizer-tf train unet` or converted from the original.

    The pipeline estimates the nucleus size from the presegmentation, runs the final network on a 2×
    upscaled image at two sizes and merges them. `max_network_size=256` caps those sizes for a laptop;
    leave it out for the original behaviour. Intermediate results are cached in `work_dir`, so an
    interrupted run resumes where it stopped.
    """),
    code("""
    from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    unet_dir = WORK / "unet_ensemble"
    make_seeded_ensemble(unet_dir, sigmas=(0.0, 0.5), base_filters=4)

    pipeline = FullPipeline(WORK / "full_cache", LEGACY_H5, LEGACY_H5, unet_dir,
                            FullSettings(preseg_size=256, max_network_size=256))
    start = time.perf_counter()
    full, facts = pipeline.segment(image, "synthetic")
    print(f"full mode: {full.max()} labels in {time.perf_counter() - start:.0f} s", facts)
    """),
    md("""
    ## Compare with the shipped default model

    The same image through the default model of notebook 1, next to the ground truth, with the DSB
    score of each (1.0 = perfect). With the random stand-in weights the Mask R-CNN panels score about
    zero, as they should; with real nucleAIzer weights this is the comparison to make on your own
    annotated images.
    """),
    code("""
    default = DefaultModel.load().segment(image)
    results = {"Mask R-CNN fast": fast, "Mask R-CNN full": full, "default model": default, "ground truth": truth}
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4.8))
    for ax, (name, lab) in zip(axes, results.items()):
        ax.imshow(outline_overlay(image, lab))
        ax.set_title(f"{name}\\n{lab.max()} nuclei, DSB {score_image(truth, lab).dsb:.2f}")
        ax.axis("off")
    plt.tight_layout()
    plt.show()
    """),
    code("""
    shutil.rmtree(WORK)  # the stand-in weight file and caches (~300 MB)
    """),
]


# ------------------------------------------------------------------------------------------------------
# 03 train and adapt

ADAPT = [
    md("""
    # 3 · Adapt a model to a new kind of image (nucleAIzer's style transfer, in miniature)

    A segmentation model works best on images that look like the ones it was trained on. nucleAIzer's
    central idea is to adapt to a **new experiment without annotating it by hand**:

    1. segment the new images with the model you have (a rough *presegmentation*),
    2. group all images into **styles** (image appearance: colour, texture, nucleus size and density),
    3. for the new style, draw many **synthetic masks** whose nuclei have the sizes and shapes found in step 1,
    4. train an image-to-image network (**pix2pix**) that turns a mask into an image of that style,
    5. render the synthetic masks into synthetic images: training pairs with *perfect* annotations,
    6. **fine-tune** the segmentation model on them,
    7. check the result on annotated images of the new style with the DSB score.

    Everything here is tiny (128-pixel images, a pix2pix with 8 filters, a few hundred training steps)
    so that it runs in two to three minutes on a laptop CPU. Real runs use 256-pixel tiles, 64 filters
    and thousands of steps (`nucleaizer-tf style-transfer` and `nucleaizer-tf train` do it on folders),
    but every function called below is the one the real workflow uses.
    """),
    code("""
    import time

    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy import ndimage

    from nucleaizer_tf.data import Augment
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.default_model.recipe import size_normalised
    from nucleaizer_tf.default_model.targets import make_target_fn, weighted_crossentropy
    from nucleaizer_tf.metrics import score_image
    from nucleaizer_tf.pix2pix import Pix2PixConfig, Pix2PixTrainer, generate_images
    from nucleaizer_tf.style.clustering import cluster_styles, contact_sheet
    from nucleaizer_tf.style.features import image_style_features, style_distances
    from nucleaizer_tf.style.maskdb import build_mask_db
    from nucleaizer_tf.style.synth_masks import SynthesisOptions, generate_cluster_masks
    from nucleaizer_tf.synthetic import synthetic_nuclei
    from nucleaizer_tf.unet.train import TrainConfig, train_unet
    from nucleaizer_tf.visualize import outline_overlay
    """),
    md("""
    ## A new experiment

    We invent a staining the shipped model has never seen: a **nuclear-envelope (lamin-like) stain** —
    bright rims, dark nucleus interiors, a red background that brightens across the field. The model
    was trained on filled nuclei on even backgrounds; step 7 shows what it makes of these images.

    Our image collection mixes 8 images of this new experiment with 8 images of two familiar styles
    (fluorescence and bright-field). As with real data, **none of them is annotated**. Six further
    images of the new style *with* ground truth are kept aside to measure the result; they are never
    used for training.
    """),
    code("""
    def envelope_stain(seed, size=128):
        \"\"\"A generated image of the new style and its true nuclei.\"\"\"
        labels = synthetic_nuclei((size, size), n_nuclei=14, diameter=18, seed=seed).labels
        rng = np.random.default_rng(seed)
        depth = ndimage.distance_transform_edt(labels > 0)          # distance from the nuclear border
        rim = np.exp(-((depth - 1.5) ** 2) / 2.0) * (labels > 0)
        interior = (labels > 0) * (0.08 + 0.08 * ndimage.gaussian_filter(rng.normal(0, 1, labels.shape), 1.0))
        yy, xx = np.mgrid[0:size, 0:size] / size
        background = 0.12 + 0.15 * (xx * np.cos(seed) + yy * np.sin(seed)) ** 2
        signal = ndimage.gaussian_filter(np.maximum(rim, interior), 0.8) + background
        signal = np.clip(signal + rng.normal(0, 0.06, labels.shape), 0, 1)
        return (np.stack([signal, 0.35 * signal, 0.25 * signal], -1) * 255).astype(np.uint8), labels


    collection = {}
    for i in range(8):
        collection[f"new_{i}"] = envelope_stain(seed=i)[0]
        old_style = "fluorescence" if i % 2 else "brightfield"
        collection[f"old_{i}"] = synthetic_nuclei((128, 128), n_nuclei=14, diameter=18, style=old_style,
                                                  seed=50 + i).image
    held_out = [envelope_stain(seed=100 + i) for i in range(6)]
    names = list(collection)
    print(len(collection), "unannotated images,", len(held_out), "annotated held-out images")
    """),
    md("""
    ## Step 1 · Presegment with the model we have

    The shipped default model (notebook 1) gives a first, imperfect segmentation of every image. We
    also score it on the held-out images: this is the **"before"** number that adaptation should beat.
    """),
    code("""
    model = DefaultModel.load()
    presegmentation = {name: model.segment(image) for name, image in collection.items()}


    def dsb_on_held_out(model):
        return [score_image(truth, model.segment(image)).dsb for image, truth in held_out]


    before = dsb_on_held_out(model)
    print(f"shipped model on the new style: DSB {np.mean(before):.3f}")
    """),
    md("""
    ## Step 2 · Group the images into styles

    Each image is described by a vector of style features (colour and intensity statistics, texture,
    and — from the presegmentation — nucleus size, density and shape). Images are then clustered by
    how similar their feature profiles are (correlation k-means, as in nucleAIzer). `k=None` would let
    the method choose the number of styles; we know there are three. With hundreds of images
    nucleAIzer keeps only the 3 most typical images per style for learning (`keep=3`, the default);
    here we keep all (`keep=None`).
    """),
    code("""
    features = np.stack([image_style_features(collection[n], presegmentation[n]) for n in names])
    clusters = cluster_styles(names, style_distances(features).distances, k=3, keep=None, replicates=5, seed=0)

    fig, axes = plt.subplots(1, len(clusters.groups), figsize=(5 * len(clusters.groups), 4))
    for ax, group in zip(axes, clusters.groups):
        members = clusters.members(group)
        ax.imshow(contact_sheet([collection[n] for n in members], captions=members, thumb=96, columns=3))
        ax.set_title(f"style {group}: {len(members)} images")
        ax.axis("off")
    plt.show()

    new_style = max(clusters.groups, key=lambda g: sum(n.startswith("new") for n in clusters.members(g)))
    members = clusters.members(new_style)
    print("the new experiment is style", new_style, ":", members)
    """),
    md("""
    ## Step 3 · Synthetic masks for the new style

    A database of nucleus shapes (here built from all presegmentations; nucleAIzer ships one built
    from many annotated data sets) and the sizes, shapes and spacing measured in the new style's
    presegmentation drive a generator of new label images: nuclei are picked or drawn to match,
    resized, and packed onto the canvas. We make 24 masks of 128 × 128 pixels.
    """),
    code("""
    shape_db = build_mask_db(presegmentation.values())
    synthetic_masks, stats = generate_cluster_masks(
        shape_db, [presegmentation[n] for n in members], n_images=24, seed=0,
        options=SynthesisOptions(image_size=(128, 128), n_db_masks=40, min_cells=10))
    print(f"{len(shape_db)} shapes in the database; mean nucleus area in the new style {stats.mean_area:.0f} px;",
          f"{np.mean([m.max() for m in synthetic_masks]):.0f} nuclei per synthetic mask on average")
    """),
    md("""
    ## Step 4 · Learn to draw the new style (pix2pix)

    pix2pix learns to turn a mask (white nuclei on black) into an image, from pairs of real images of
    the style and their presegmentation. A generator network draws; a discriminator network tries to
    tell drawn from real image patches; both improve together. We train 600 steps (nucleAIzer: about
    5000 + 100 per image). The curve shows how far the drawn images still are from the real ones
    (mean absolute difference).
    """),
    code("""
    start = time.perf_counter()
    trainer = Pix2PixTrainer(Pix2PixConfig(ngf=8, ndf=8, depth=7, tile=128, iterations=600, decay_epochs=0,
                                           snapshot_every=None, seed=0))
    pix2pix_run = trainer.fit([(collection[n], presegmentation[n]) for n in members])
    print(f"{pix2pix_run.steps} pix2pix steps in {time.perf_counter() - start:.0f} s")

    plt.figure(figsize=(6, 3.5))
    plt.plot(pix2pix_run.losses["l1"])
    plt.xlabel("epoch (one pass over the style's images)")
    plt.ylabel("|drawn - real| (L1)")
    plt.title("pix2pix learning the new style")
    plt.show()
    """),
    md("""
    ## Step 5 · Render the synthetic masks into images

    Each synthetic mask becomes an image of the new style. Because the image was drawn *from* the
    mask, the mask is its exact annotation. Top: synthetic masks; middle: the drawn images; bottom:
    real images of the style for comparison.
    """),
    code("""
    synthetic_images = generate_images(trainer.generator, synthetic_masks)

    fig, axes = plt.subplots(3, 6, figsize=(13, 6.8))
    for i in range(6):
        axes[0, i].imshow(synthetic_masks[i] > 0, cmap="gray")
        axes[1, i].imshow(synthetic_images[i])
        axes[2, i].imshow(collection[members[i]])
    for ax, title in zip(axes[:, 0], ["synthetic mask", "drawn by pix2pix", "real image"]):
        ax.set_ylabel(title)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    plt.tight_layout()
    plt.show()
    """),
    md("""
    ## Step 6 · Fine-tune the segmentation model

    The synthetic pairs are brought to the nucleus size the model works at (`size_normalised`, the
    same rescaling its training used) and the shipped network is trained a little further on them:
    5 short epochs with a small learning rate, with the loss it was trained with (background /
    interior / boundary classes).
    """),
    code("""
    pairs = []
    for image, mask in zip(synthetic_images, synthetic_masks):
        pairs += size_normalised(image, mask, jitter=(0.9, 1.0, 1.12))

    keras.utils.set_random_seed(0)
    config = TrainConfig(epochs=5, steps_per_epoch=8, batch_size=8, crop_size=64, learning_rate=3e-4,
                         augment=Augment(flip_h=True, flip_v=True, rot90=True), pad_mode="reflect")
    start = time.perf_counter()
    history = train_unet(model.network, pairs, None, target_fn=make_target_fn(2), loss=weighted_crossentropy(),
                         config=config)
    print(f"fine-tuned on {len(pairs)} pairs in {time.perf_counter() - start:.0f} s")

    plt.figure(figsize=(6, 3.5))
    plt.plot(range(1, len(history.loss) + 1), history.loss, marker="o")
    plt.xlabel("epoch")
    plt.ylabel("training loss")
    plt.title("Fine-tuning on the synthetic pairs")
    plt.show()
    """),
    md("""
    ## Step 7 · Before and after

    The same held-out, annotated images of the new style, segmented by the shipped model (before) and
    by the fine-tuned one (after). Each pair of dots is one image.

    This toy style is easy to learn, so the gain is large. On real data the gain depends on how far
    the new style is from what the model knows and on how much data and training you give it:
    measure it, as here, on a few images of your own that you annotate by hand.
    """),
    code("""
    after = dsb_on_held_out(model)
    print(f"DSB on the new style: before {np.mean(before):.3f}, after {np.mean(after):.3f}")

    fig, (ax_score, ax_before, ax_after) = plt.subplots(1, 3, figsize=(15, 4.6))
    for b, a in zip(before, after):
        ax_score.plot([0, 1], [b, a], color="grey", marker="o")
    ax_score.bar([0, 1], [np.mean(before), np.mean(after)], width=0.5, alpha=0.4, color=["tab:red", "tab:green"])
    ax_score.set_xticks([0, 1], ["shipped model", "adapted model"])
    ax_score.set(ylim=(0, 1), ylabel="DSB score", title="Held-out images of the new style")

    image, truth = held_out[1]
    shipped = DefaultModel.load()
    for ax, m, title in ((ax_before, shipped, "before"), (ax_after, model, "after")):
        labels = m.segment(image)
        ax.imshow(outline_overlay(image, labels, color=(0, 255, 255)))
        ax.set_title(f"{title}: {labels.max()} nuclei (truth {truth.max()}), DSB {score_image(truth, labels).dsb:.2f}")
        ax.axis("off")
    plt.tight_layout()
    plt.show()
    """),
    md("""
    ## Keep the adapted model

    A model folder is the weight file plus a `manifest.json` (architecture, trained nucleus size,
    instance settings, checksum). `DefaultModel.save` writes one; `DefaultModel.load(folder)` reads it
    exactly like the shipped one.
    """),
    code("""
    folder = model.save("adapted_model", adapted={"style": "nuclear-envelope stain", "pairs": len(pairs),
                                                  "epochs": len(history.loss)})
    reloaded = DefaultModel.load(folder)
    assert np.array_equal(reloaded.segment(held_out[0][0]), model.segment(held_out[0][0]))
    print("saved and reloaded", folder)
    """),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_legacy_maskrcnn.ipynb": LEGACY,
    "03_train_and_adapt.ipynb": ADAPT,
}


def build(name: str, cells) -> str:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    stem = name.split("_")[0]
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"nb{stem}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def essence(text: str):
    """What the check compares: cell kinds, ids and sources, and the kernel spec (not the JSON layout,
    which another nbformat version may write differently)."""
    nb = json.loads(text)
    cells = [(c["cell_type"], c.get("id"), "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
             for c in nb["cells"]]
    return cells, nb.get("metadata", {}).get("kernelspec")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook differs")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = NOTEBOOK_DIR / name
        text = build(name, cells)
        old = path.read_text() if path.exists() else None
        if args.check:
            if old is None or essence(old) != essence(text):
                stale.append(name)
        elif old != text:
            stale.append(name)
            NOTEBOOK_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print("out of date (run python scripts/make_notebooks.py):", ", ".join(stale), file=sys.stderr)
        return 1
    print(("differ: " if args.check else "written: ") + (", ".join(stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
