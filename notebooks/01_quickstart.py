# %% [markdown]
# # 1 · Quick start: segment nuclei with the shipped model
#
# This notebook segments a few microscopy images with the **default model that ships with
# nucleaizer-tf** — no download, no training, no GPU — and then does what you would do next with the
# result:
#
# 1. look at the nuclei outlines drawn over each image,
# 2. measure every nucleus (area, mean intensity, position) into a table,
# 3. check the result against hand-made ground truth with the Data Science Bowl (DSB) score,
# 4. save one label image per input (a 16-bit TIFF where every nucleus has its own number, 0 = background),
#    ready for Fiji, CellProfiler, QuPath or napari.
#
# It runs top to bottom on a laptop CPU in well under a minute. To use it on your own data, change
# `IMAGE_DIR` in the second code cell.

# %%
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

# %% [markdown]
# ## The images
#
# A source checkout of nucleaizer-tf has three small example images with their ground truth in
# `examples/` (generated, so they can be shared freely): a sparse and a dense fluorescence image and a
# bright-field (stained tissue-like) image. If they are not there (for instance after a plain
# `pip install`), the cell generates similar images instead.
#
# We add a fourth, generated image stored the way many microscopes write their files: a single
# **16-bit grey** channel. The model accepts any bit depth and any number of channels, so no
# conversion is needed on your side.
#
# **Your own images:** set `IMAGE_DIR` to a folder of PNG/TIFF/JPEG files (and `MASK_DIR` to a folder
# of label images with the same file names, if you have ground truth; otherwise leave it `None`).

# %%
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

# %% [markdown]
# ## Load the model and segment
#
# `DefaultModel.load()` reads the network shipped in the package (about 8 MB) and checks the file's
# checksum. `segment(image)` returns the **label image**.
#
# The model was trained on nuclei about 20 pixels across. Like the original nucleAIzer, it first
# estimates how large the nuclei in *your* image are and rescales the image so they match, so you do
# not need to tell it the magnification. If you know the typical nucleus diameter in pixels, pass it
# (`segment(image, nucleus_size=35)`) to skip the estimate. Large images are processed in tiles
# automatically.

# %%
model = DefaultModel.load()
print("trained at a nucleus diameter of", model.trained_diameter, "pixels")

labels = {}
for name, image in images.items():
    labels[name], info = model.segment(image, return_info=True)
    print(f"{name:12s} {labels[name].max():3d} nuclei   estimated diameter {info.diameter:5.1f} px"
          f"   (network ran at scale {info.scale:.2f})")

# %% [markdown]
# ## Look at the result
#
# Each nucleus found is outlined in yellow. Touching nuclei get separate outlines, so a nucleus cut in
# two or two nuclei merged into one are easy to spot.

# %%
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

# %% [markdown]
# ## Measure every nucleus
#
# scikit-image's `regionprops_table` turns a label image into one row per nucleus. We measure the area
# (in pixels; multiply by the pixel area in µm² for physical units), the centroid, and the mean
# intensity in the original image (for colour images, the mean over the channels). The table is
# saved as a CSV file that opens in any spreadsheet program.

# %%
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

# %%
fig, (ax_area, ax_scatter) = plt.subplots(1, 2, figsize=(12, 4))
for name in images:
    areas = [r["area_px"] for r in rows if r["image"] == name]
    ax_area.hist(areas, bins=15, alpha=0.6, label=name)
    ax_scatter.scatter(areas, [r["eccentricity"] for r in rows if r["image"] == name], s=12, label=name)
ax_area.set(xlabel="nucleus area (pixels)", ylabel="nuclei", title="Nucleus size per image")
ax_scatter.set(xlabel="nucleus area (pixels)", ylabel="eccentricity (0 = round)", title="Size and shape")
ax_area.legend()
plt.show()

# %% [markdown]
# ## How good is it? (needs ground truth)
#
# When hand-drawn label images exist, the **DSB score** (the metric of the Kaggle Data Science Bowl
# 2018, which nucleAIzer won) summarises how well the predicted nuclei match them: for each
# overlap threshold from 50 % to 95 % it counts matched nuclei against missed and spurious ones, and
# averages. 1.0 is a perfect match. F1 at 50 % overlap is the fraction of nuclei found, balanced
# against false detections.

# %%
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

# %% [markdown]
# ## Save the label images
#
# `write_labels` writes one 16-bit TIFF per image (32-bit if an image holds more than 65,535 nuclei).
# Reading them back gives exactly the same numbers.

# %%
out = Path("labels")
for name, lab in labels.items():
    path = write_labels(out / f"{name}.tiff", lab)
    assert np.array_equal(read_labels(path), lab)
    print(path, lab.dtype, f"{path.stat().st_size / 1024:.0f} KiB")

# %% [markdown]
# ## Next steps
#
# * A whole folder from the command line: `nucleaizer-tf predict IMAGES/ OUT/ --overlay`
#   (see `nucleaizer-tf predict --help`).
# * Notebook 2 runs the original nucleAIzer Mask R-CNN networks (your `.h5` weight files).
# * Notebook 3 adapts a model to a new image style with nucleAIzer's style transfer.
