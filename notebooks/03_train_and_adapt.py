# %% [markdown]
# # 3 · Adapt a model to a new kind of image (nucleAIzer's style transfer, in miniature)
#
# A segmentation model works best on images that look like the ones it was trained on. nucleAIzer's
# central idea is to adapt to a **new experiment without annotating it by hand**:
#
# 1. segment the new images with the model you have (a rough *presegmentation*),
# 2. group all images into **styles** (image appearance: colour, texture, nucleus size and density),
# 3. for the new style, draw many **synthetic masks** whose nuclei have the sizes and shapes found in step 1,
# 4. train an image-to-image network (**pix2pix**) that turns a mask into an image of that style,
# 5. render the synthetic masks into synthetic images: training pairs with *perfect* annotations,
# 6. **fine-tune** the segmentation model on them,
# 7. check the result on annotated images of the new style with the DSB score.
#
# Everything here is tiny (128-pixel images, a pix2pix with 8 filters, a few hundred training steps)
# so that it runs in two to three minutes on a laptop CPU. Real runs use 256-pixel tiles, 64 filters
# and thousands of steps (`nucleaizer-tf style-transfer` and `nucleaizer-tf train` do it on folders),
# but every function called below is the one the real workflow uses.

# %%
import os
import time

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

# The test suite runs this notebook with NUCLEAIZER_NOTEBOOK_QUICK=1: the same steps, shorter training.
QUICK = os.environ.get("NUCLEAIZER_NOTEBOOK_QUICK") == "1"


# %% [markdown]
# ## A new experiment
#
# We invent a staining the shipped model has never seen: a **nuclear-envelope (lamin-like) stain** —
# bright rims, dark nucleus interiors, a red background that brightens across the field. The model
# was trained on filled nuclei on even backgrounds; step 7 shows what it makes of these images.
#
# Our image collection mixes 8 images of this new experiment with 8 images of two familiar styles
# (fluorescence and bright-field). As with real data, **none of them is annotated**. Six further
# images of the new style *with* ground truth are kept aside to measure the result; they are never
# used for training.

# %%
def envelope_stain(seed, size=128):
    """A generated image of the new style and its true nuclei."""
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

# %% [markdown]
# ## Step 1 · Presegment with the model we have
#
# The shipped default model (notebook 1) gives a first, imperfect segmentation of every image. We
# also score it on the held-out images: this is the **"before"** number that adaptation should beat.

# %%
model = DefaultModel.load()
presegmentation = {name: model.segment(image) for name, image in collection.items()}


def dsb_on_held_out(model):
    return [score_image(truth, model.segment(image)).dsb for image, truth in held_out]


before = dsb_on_held_out(model)
print(f"shipped model on the new style: DSB {np.mean(before):.3f}")

# %% [markdown]
# ## Step 2 · Group the images into styles
#
# Each image is described by a vector of style features (colour and intensity statistics, texture,
# and — from the presegmentation — nucleus size, density and shape). Images are then clustered by
# how similar their feature profiles are (correlation k-means, as in nucleAIzer). `k=None` would let
# the method choose the number of styles; we know there are three. With hundreds of images
# nucleAIzer keeps only the 3 most typical images per style for learning (`keep=3`, the default);
# here we keep all (`keep=None`).

# %%
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

# %% [markdown]
# ## Step 3 · Synthetic masks for the new style
#
# A database of nucleus shapes (here built from all presegmentations; nucleAIzer ships one built
# from many annotated data sets) and the sizes, shapes and spacing measured in the new style's
# presegmentation drive a generator of new label images: nuclei are picked or drawn to match,
# resized, and packed onto the canvas. We make 24 masks of 128 × 128 pixels.

# %%
shape_db = build_mask_db(presegmentation.values())
synthetic_masks, stats = generate_cluster_masks(
    shape_db, [presegmentation[n] for n in members], n_images=24, seed=0,
    options=SynthesisOptions(image_size=(128, 128), n_db_masks=40, min_cells=10))
print(f"{len(shape_db)} shapes in the database; mean nucleus area in the new style {stats.mean_area:.0f} px;",
      f"{np.mean([m.max() for m in synthetic_masks]):.0f} nuclei per synthetic mask on average")

# %% [markdown]
# ## Step 4 · Learn to draw the new style (pix2pix)
#
# pix2pix learns to turn a mask (white nuclei on black) into an image, from pairs of real images of
# the style and their presegmentation. A generator network draws; a discriminator network tries to
# tell drawn from real image patches; both improve together. We train 600 steps (nucleAIzer: about
# 5000 + 100 per image). The curve shows how far the drawn images still are from the real ones
# (mean absolute difference).

# %%
start = time.perf_counter()
trainer = Pix2PixTrainer(Pix2PixConfig(ngf=8, ndf=8, depth=7, tile=128, iterations=150 if QUICK else 600, decay_epochs=0,
                                       snapshot_every=None, seed=0))
pix2pix_run = trainer.fit([(collection[n], presegmentation[n]) for n in members])
print(f"{pix2pix_run.steps} pix2pix steps in {time.perf_counter() - start:.0f} s")

plt.figure(figsize=(6, 3.5))
plt.plot(pix2pix_run.losses["l1"])
plt.xlabel("epoch (one pass over the style's images)")
plt.ylabel("|drawn - real| (L1)")
plt.title("pix2pix learning the new style")
plt.show()

# %% [markdown]
# ## Step 5 · Render the synthetic masks into images
#
# Each synthetic mask becomes an image of the new style. Because the image was drawn *from* the
# mask, the mask is its exact annotation. Top: synthetic masks; middle: the drawn images; bottom:
# real images of the style for comparison.

# %%
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

# %% [markdown]
# ## Step 6 · Fine-tune the segmentation model
#
# The synthetic pairs are brought to the nucleus size the model works at (`size_normalised`, the
# same rescaling its training used) and the shipped network is trained a little further on them:
# 5 short epochs with a small learning rate, with the loss it was trained with (background /
# interior / boundary classes).

# %%
import keras  # TensorFlow is loaded by now (nucleaizer_tf imports it without its start-up messages)

pairs = []
for image, mask in zip(synthetic_images, synthetic_masks):
    pairs += size_normalised(image, mask, jitter=(0.9, 1.0, 1.12))

keras.utils.set_random_seed(0)
config = TrainConfig(epochs=2 if QUICK else 5, steps_per_epoch=8, batch_size=8, crop_size=64, learning_rate=3e-4,
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

# %% [markdown]
# ## Step 7 · Before and after
#
# The same held-out, annotated images of the new style, segmented by the shipped model (before) and
# by the fine-tuned one (after). Each pair of dots is one image.
#
# This toy style is easy to learn, so the gain is large. On real data the gain depends on how far
# the new style is from what the model knows and on how much data and training you give it:
# measure it, as here, on a few images of your own that you annotate by hand.

# %%
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

# %% [markdown]
# ## Keep the adapted model
#
# A model folder is the weight file plus a `manifest.json` (architecture, trained nucleus size,
# instance settings, checksum). `DefaultModel.save` writes one; `DefaultModel.load(folder)` reads it
# exactly like the shipped one.

# %%
folder = model.save("adapted_model", adapted={"style": "nuclear-envelope stain", "pairs": len(pairs),
                                              "epochs": len(history.loss)})
reloaded = DefaultModel.load(folder)
assert np.array_equal(reloaded.segment(held_out[0][0]), model.segment(held_out[0][0]))
print("saved and reloaded", folder)

# %% [markdown]
# ## All of it in one call: `adapt`
#
# Steps 1–6 are what `nucleaizer_tf.pipelines.adapt.adapt` (and `nucleaizer-tf adapt IMAGES OUT` on
# the command line) does on a folder of images, with everything written to disk and resumable: it
# presegments, clusters, draws synthetic masks that follow each style's nucleus sizes and density
# (with the database of real nucleus shapes that ships with the package), trains one pix2pix per style,
# renders, fine-tunes, segments the images again and writes a report with a before/after figure. Here
# we give it the eight unannotated images of the new experiment, tiny settings again, and the held-out
# annotations only for scoring (`evaluate_masks`; they are never used for training).

# %%
from pathlib import Path

from nucleaizer_tf import load_model
from nucleaizer_tf.io import write_labels, write_rgb
from nucleaizer_tf.pipelines.adapt import adapt

new_images, scoring = Path("new_experiment"), Path("new_experiment_truth")
for name in names:
    if name.startswith("new"):
        write_rgb(new_images / f"{name}.png", collection[name])
for i, (image, truth) in enumerate(held_out):
    write_rgb(new_images / f"held_out_{i}.png", image)
    write_labels(scoring / f"held_out_{i}.tiff", truth)

start = time.perf_counter()
run = adapt(new_images, "adapt_out", single_experiment=True, ngf=8, iterations=100 if QUICK else 300,
            epochs=1 if QUICK else 3,
            evaluate_masks=str(scoring))
scores = run.summary["scores"]
print(f"adapt in {time.perf_counter() - start:.0f} s: DSB {scores['dsb_before']:.3f} before, "
      f"{scores['dsb_after']:.3f} after, on {scores['n_images']} annotated images")

plt.figure(figsize=(8, 10))
plt.imshow(plt.imread("adapt_out/before_after.png"))
plt.title("adapt_out/before_after.png: starting model (left), adapted model (right)")
plt.axis("off")
plt.show()

adapted = load_model("adapt_out/model")  # the adapted model folder, like any other model
print(adapted.describe())
