"""The training recipe of the shipped default model (used by `scripts/train_default_model.py` and by the
cross-validation in `scripts/crossval_default_model.py`, so both train exactly the same way).

* Network: `build_unet(3, 3, base_filters=16, depth=3, output_activation="softmax")` (485k parameters).
* Targets: background / interior / boundary (boundary width 2 px at the trained size), class-weighted
  cross-entropy (1, 1, 2) (`targets.py`): boundaries are few and are what separates touching nuclei.
  (Equal weights give slightly tighter outlines but lower recall; measured in-sample, not adopted.)
* Size normalisation: every real training image is rescaled so that its ground-truth median nucleus
  diameter becomes `TRAINED_DIAMETER` (20 px) times a factor in `SCALE_JITTER` (0.8–1.25, one copy
  per factor), which is what the inference's size estimation does to a new image (± its tolerance).
  (A wider 0.5–2 range, meant to make the first, native-scale pass more reliable on large nuclei,
  lowered the accuracy at the normalised scale; the robust size estimate in `model.py` does that job.)
* Images: `stretch_rgb8` (1–99.8 % percentile stretch) as at inference; grey fluorescence images are
  also added with a random tint.
* Synthetic variety: `nucleaizer_tf.synthetic` images in both styles (fluorescence, bright-field), some
  turned grey, nucleus diameters 0.8–1.25 × the trained size. (Cross-validated without them:
  fluorescence 0.562 instead of 0.584, bright-field 0.285 instead of 0.360.)
* Training: `nucleaizer_tf.unet.train.train_unet` (the one U-Net loop) with 128² crops, batch 16, flips,
  90° rotations and colour jitter 0.2 (hue 0.1), Adam 1e-3 with ×0.3 steps at 60 % and 85 % of the
  epochs; the validation set is the real training images at the nominal scale (no jitter, no
  augmentation), and the best-validation weights are kept. Validation on training images is the
  original's practice (docs/method.md §6.10) and keeps held-out images out of every choice in cross-validation.
  (A 4× larger network, depth 4, trained twice as long, scored the same on the two cross-validation
  folds it finished: the 10 training images per fold, not capacity, limit it.)
* Instance step (`INSTANCE`, stored in the manifest; the network's pixels, i.e. at the trained size):
  seeds P(interior) ≥ 0.7, foreground P(background) < 0.45, seeds under 10 px and nuclei under 30 px
  (a tenth of a trained-size nucleus) dropped. Unlike everything above, these were chosen on the
  cross-validation's held-out predictions (weights/README.md says by how much each moved the score),
  and the same choices helped the depth-4 models' folds as well.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from nucleaizer_tf.default_model.model import DefaultModel, build_network, median_diameter
from nucleaizer_tf.default_model.preprocess import resize_image, scaled_shape, stretch_rgb8
from nucleaizer_tf.default_model.targets import make_target_fn, weighted_crossentropy
from nucleaizer_tf.labels import resize_labels
from nucleaizer_tf.progress import SILENT, Reporter
from nucleaizer_tf.train_history import EpochRecord

TRAINED_DIAMETER = 20.0
ARCHITECTURE = dict(in_channels=3, out_channels=3, base_filters=16, depth=3, output_activation="softmax", name="default_unet")
BOUNDARY_WIDTH = 2
CLASS_WEIGHTS = (1.0, 1.0, 2.0)
SCALE_JITTER = (0.8, 0.9, 1.0, 1.12, 1.25)
INSTANCE = dict(min_area=30, min_seed=10, seed_threshold=0.7, foreground_threshold=0.45, class_weights=list(CLASS_WEIGHTS))
CROP = 128
BATCH = 16


def size_normalised(image, labels, *, jitter: Sequence[float] = SCALE_JITTER, diameter: float = TRAINED_DIAMETER):
    """Copies of (image, labels) rescaled so the GT median nucleus diameter becomes diameter·j for each j.
    The image is stretched to uint8 RGB first; labels are resized with nearest-neighbour sampling."""
    rgb8 = stretch_rgb8(image)
    labels = np.asarray(labels).astype(np.int32)
    d = median_diameter(labels)
    if not np.isfinite(d):
        return [(rgb8, labels)]
    out = []
    for j in jitter:
        shape = scaled_shape(labels.shape, diameter * j / d)
        out.append((resize_image(rgb8, shape), resize_labels(labels, shape).astype(np.int32)))
    return out


def _tinted(rgb8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey image given a random colour (fluorescence channels come in any hue)."""
    colour = rng.uniform(0.3, 1.0, 3)
    colour /= colour.max()
    return np.clip(rgb8.astype(np.float32) * colour + 0.5, 0, 255).astype(np.uint8)


def synthetic_items(count: int, *, seed: int = 0, diameter: float = TRAINED_DIAMETER) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` synthetic (image, labels) pairs, alternating styles, varied density, size and noise."""
    from nucleaizer_tf.synthetic import synthetic_nuclei

    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        d = diameter * rng.uniform(0.8, 1.25)
        shape = (int(rng.integers(160, 257)), int(rng.integers(160, 257)))
        n = int(rng.uniform(0.1, 0.45) * shape[0] * shape[1] / (math.pi * d * d / 4))
        style = ("fluorescence", "brightfield")[i % 2]
        sample = synthetic_nuclei(shape, max(n, 1), d, style=style, noise=float(rng.uniform(0.02, 0.1)),
                                  seed=int(rng.integers(1 << 31)))
        image = stretch_rgb8(sample.image)
        if rng.random() < 0.3:
            image = np.repeat(stretch_rgb8(image.mean(axis=2))[:, :, :1], 3, axis=2)
        items.append((image, sample.labels.astype(np.int32)))
    return items


def training_items(real: Sequence[tuple[np.ndarray, np.ndarray]], *, n_synthetic: int = 40, seed: int = 0):
    """(train items, validation items) of the recipe from real (image any dtype, labels) pairs."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for image, labels in real:
        copies = size_normalised(image, labels)
        train += copies
        rgb8 = copies[0][0]
        if (np.ptp(rgb8.astype(np.int16), axis=2) == 0).all():  # grey: add tinted copies too
            train += [(_tinted(img, rng), lab) for img, lab in copies[::2]]
        val += size_normalised(image, labels, jitter=(1.0,))
    train += synthetic_items(n_synthetic, seed=seed + 1)
    return train, val


def train_config(*, epochs: int = 30, steps_per_epoch: int = 40, seed: int = 0, checkpoint_path=None):
    from nucleaizer_tf.data import Augment
    from nucleaizer_tf.unet.train import TrainConfig

    return TrainConfig(
        epochs=epochs,
        batch_size=BATCH,
        crop_size=CROP,
        learning_rate=1e-3,
        lr_milestones=(int(0.6 * epochs), int(0.85 * epochs)),
        lr_gamma=0.3,
        steps_per_epoch=steps_per_epoch,
        augment=Augment(flip_h=True, flip_v=True, rot90=True, color_jitter=(0.2, 0.2, 0.2, 0.1)),
        val_crop_size=None,
        val_batch_size=1,
        pad_mode="reflect",
        checkpoint_path=checkpoint_path,
        seed=seed,
    )


def manifest_for(*, weights_file: str, sha256: str, config, history, data: dict) -> dict:
    return {
        "format": "nucleaizer-tf/default-model",
        "format_version": 1,
        "name": "nucleaizer-tf default model",
        "weights_file": weights_file,
        "sha256": sha256,
        "architecture": {k: v for k, v in ARCHITECTURE.items()},
        "trained_diameter": TRAINED_DIAMETER,
        "target": {"classes": ["background", "interior", "boundary"], "boundary_width": BOUNDARY_WIDTH,
                   "class_weights": list(CLASS_WEIGHTS)},
        "instance": dict(INSTANCE),
        "input": "stretch_rgb8: grey/RGB(A) of any dtype -> uint8 RGB, one 1-99.8 percentile stretch; /255",
        "training": {
            "recipe": "nucleaizer_tf.default_model.recipe",
            "scale_jitter": list(SCALE_JITTER),
            "config": config.to_dict(),
            "best_epoch": history.best_epoch,
            "best_val_loss": history.best_value,
            "epochs_run": len(history.epochs),
            "train_seconds": float(sum(history.seconds)),
            "data": data,
        },
        "licence": "MIT (weights); trained on DSB 2018 / BBBC038v1 images (CC0 1.0) and project-generated synthetic images",
    }


def train_default_model(
    real: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    epochs: int = 30,
    steps_per_epoch: int = 40,
    n_synthetic: int = 40,
    seed: int = 0,
    checkpoint_path=None,
    reporter: Reporter = SILENT,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
):
    """Train the default network on real (image, labels) pairs with the recipe; returns
    (DefaultModel, TrainHistory, TrainConfig). The model's manifest lacks the weight file fields.
    `reporter` and `on_epoch` are passed to `train_unet`."""
    import keras

    from nucleaizer_tf.unet.train import train_unet

    keras.utils.set_random_seed(seed)
    train, val = training_items(real, n_synthetic=n_synthetic, seed=seed)
    network = build_network(ARCHITECTURE)
    config = train_config(epochs=epochs, steps_per_epoch=steps_per_epoch, seed=seed, checkpoint_path=checkpoint_path)
    history = train_unet(network, train, val, target_fn=make_target_fn(BOUNDARY_WIDTH),
                         loss=weighted_crossentropy(CLASS_WEIGHTS), config=config, reporter=reporter,
                         on_epoch=on_epoch, name="training the default model")
    manifest = {"architecture": dict(ARCHITECTURE), "trained_diameter": TRAINED_DIAMETER, "instance": dict(INSTANCE)}
    return DefaultModel(network, manifest), history, config


def fine_tune(model: DefaultModel, pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, epochs: int = 10,
              steps_per_epoch: int = 20, learning_rate: float = 3e-4, jitter: Sequence[float] = (0.9, 1.0, 1.12),
              val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] = (), seed: int = 0,
              reporter: Reporter = SILENT, on_epoch: Callable[[EpochRecord], bool | None] | None = None):
    """Train `model`'s network further on (image, labels) pairs, in place; returns (model, TrainHistory,
    TrainConfig).

    Each pair is size-normalised as the recipe's training data (`size_normalised`: nuclei brought to
    the trained diameter × each of `jitter`), then trained with the recipe's crops, batch, augmentation
    and loss at a smaller learning rate (stepped down ×0.3 at 60 % and 85 % of the epochs). With
    `val_pairs` the best-validation weights are kept; without, the best training-loss weights.
    `reporter` and `on_epoch` are passed to `train_unet`.

    Examples
    --------
    >>> model = DefaultModel.load()
    >>> model, history, config = fine_tune(model, [(image, labels)], epochs=2)  # doctest: +SKIP
    """
    import keras

    from nucleaizer_tf.unet.train import train_unet

    if not pairs:
        raise ValueError("fine_tune needs at least one (image, labels) pair")
    keras.utils.set_random_seed(seed)
    train = [item for image, labels in pairs for item in size_normalised(image, labels, jitter=jitter)]
    val = [item for image, labels in val_pairs for item in size_normalised(image, labels, jitter=(1.0,))]
    config = train_config(epochs=epochs, steps_per_epoch=steps_per_epoch, seed=seed)
    config = dataclasses.replace(config, learning_rate=learning_rate)
    history = train_unet(model.network, train, val or None, target_fn=make_target_fn(BOUNDARY_WIDTH),
                         loss=weighted_crossentropy(CLASS_WEIGHTS), config=config, reporter=reporter,
                         on_epoch=on_epoch, name="fine-tuning")
    return model, history, config
