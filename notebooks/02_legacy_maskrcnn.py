# %% [markdown]
# # 2 · The original nucleAIzer networks: legacy Mask R-CNN weight files
#
# nucleAIzer (Hollandi et al., *Cell Systems* 2020) segments nuclei with a **Mask R-CNN** network
# (matterport's implementation, Keras 2.1). Its trained weights are `.h5` files of about 255 MB,
# usually called `mask_rcnn_presegmentation.h5` and `mask_rcnn_final.h5`. You get them from the
# original nucleAIzer release (the model download linked from the authors' nucleAIzer repository and
# website), or from your own training with the original code. nucleaizer-tf reads these files
# unchanged.
#
# This notebook shows how to
#
# 1. inspect such a file,
# 2. load it and look at the raw detections (boxes, scores, masks),
# 3. run nucleAIzer's **fast** prediction (one Mask R-CNN pass) and its **full** prediction
#    (presegmentation → nucleus size → U-Net ensemble → Mask R-CNN at two scales → post-processing),
# 4. compare with the default model shipped with nucleaizer-tf.
#
# **No real weights here.** A notebook that runs anywhere (and in our automatic tests) cannot download
# 255 MB, so it *writes* a file with the exact layout of the original ones but **random weights**.
# Everything runs exactly as with a real file, but the detections of a random network are meaningless
# boxes: do not read anything into them. Set `LEGACY_H5` below to your own file to see real results.
#
# Runs in about two minutes on a laptop CPU and needs ~300 MB of free disk in the temporary folder.

# %%
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


# %% [markdown]
# ## A stand-in weight file (skip with real weights)
#
# We build the network, fill it with seeded random numbers and save it in the Keras 2.1.6 layout the
# original code wrote. The recipe only keeps the numbers in a sane range (He-normal kernels, damped
# where the 101-layer ResNet would otherwise blow up; neutral batch normalisation; a small nudge
# towards the "nucleus" class so that a few boxes pass the 0.7 confidence threshold).

# %%
def seed_legacy_weights(keras_model, seed=0):
    rng = np.random.default_rng(seed)
    damp = {"conv1": 1 / 64, "fpn_c2p2": 0.02, "fpn_c3p3": 0.02, "fpn_c4p4": 0.02, "fpn_c5p5": 0.02}
    values = []
    for var in keras_model.weights:
        layer, kind, shape = var.path.split("/")[0], var.path.split("/")[-1], tuple(var.shape)
        if kind == "kernel":
            fan_in = shape[-1] if layer == "mrcnn_mask_deconv" else int(np.prod(shape[:-1]))
            gain = damp.get(layer, 0.2 if re.fullmatch(r"res\d[b-z]_branch2c", layer) else 1.0)
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

# %% [markdown]
# ## What is in the file?
#
# `inspect_legacy_h5` reads only the file's table of contents (fast, no arrays): the Keras version
# that wrote it, the layers and the shapes of their weights. A file that does not fit (a COCO model
# with 81 classes, a truncated download, a Git-LFS placeholder) is refused with a message saying why.

# %%
info = inspect_legacy_h5(LEGACY_H5)
print("written by Keras", info["attrs"].get("keras_version"), "/", info["attrs"].get("backend"))
print(f"{info['n_layers_with_weights']} layers with weights, {info['n_arrays']} arrays, "
      f"{info['n_values'] / 1e6:.1f} million numbers")
for layer in ["conv1", "res5c_branch2c", "rpn_model", "mrcnn_class_logits", "mrcnn_mask"]:
    for weight, shape, dtype in info["layers"].get(layer, []):
        print(f"  {weight:45s} {str(shape):22s} {dtype}")

# %% [markdown]
# ## Load it and look at the raw detections
#
# `MaskRCNN.from_legacy_h5` builds the network once (any image size) and loads the file layer by
# layer, checking every array. `MaskRCNNConfig.presegment()` holds nucleAIzer's presegmentation
# settings. `detect` returns what the network found, in the image's own pixel coordinates: one box,
# score and small mask per nucleus. The network size is 256 here to keep the notebook fast; nucleAIzer
# uses 1024.
#
# Our test image is generated, so we know the true nuclei.

# %%
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

# %%
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

# %% [markdown]
# ## Fast prediction
#
# nucleAIzer's fast mode is one Mask R-CNN pass followed by its merge of the detections into a label
# image (each nucleus slightly dilated; where two overlap, the lower-scoring one wins, as in the
# original). The same as `nucleaizer-tf predict IMAGES OUT --model FILE.h5`.

# %%
start = time.perf_counter()
fast = rcnn.segment(image, options)
print(f"fast mode: {fast.max()} labels in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## Full prediction
#
# The full pipeline of the paper needs two Mask R-CNN files (presegmentation and final; we reuse the
# same stand-in for both) and a **U-Net ensemble** folder, which refines the nucleus outlines. Again
# a random stand-in: `make_seeded_ensemble` writes two tiny untrained U-Nets. With real files you
# would point to the ensemble trained with `nucleaizer-tf train unet` or converted from the original.
#
# The pipeline estimates the nucleus size from the presegmentation, runs the final network on a 2×
# upscaled image at two sizes and merges them. `max_network_size=256` caps those sizes for a laptop;
# leave it out for the original behaviour. Intermediate results are cached in `work_dir`, so an
# interrupted run resumes where it stopped.

# %%
from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings
from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

unet_dir = WORK / "unet_ensemble"
make_seeded_ensemble(unet_dir, sigmas=(0.0, 0.5), base_filters=4)

pipeline = FullPipeline(WORK / "full_cache", LEGACY_H5, LEGACY_H5, unet_dir,
                        FullSettings(preseg_size=256, max_network_size=256))
start = time.perf_counter()
full, facts = pipeline.segment(image, "synthetic")
print(f"full mode: {full.max()} labels in {time.perf_counter() - start:.0f} s", facts)

# %% [markdown]
# ## Compare with the shipped default model
#
# The same image through the default model of notebook 1, next to the ground truth, with the DSB
# score of each (1.0 = perfect). With the random stand-in weights the Mask R-CNN panels score about
# zero, as they should; with real nucleAIzer weights this is the comparison to make on your own
# annotated images.

# %%
default = DefaultModel.load().segment(image)
results = {"Mask R-CNN fast": fast, "Mask R-CNN full": full, "default model": default, "ground truth": truth}
fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4.8))
for ax, (name, lab) in zip(axes, results.items()):
    ax.imshow(outline_overlay(image, lab))
    ax.set_title(f"{name}\n{lab.max()} nuclei, DSB {score_image(truth, lab).dsb:.2f}")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %%
shutil.rmtree(WORK)  # the stand-in weight file and caches (~300 MB)
