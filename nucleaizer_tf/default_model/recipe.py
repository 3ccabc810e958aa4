"""The training recipe of the first shipped model (`weights/first/`), for a handful of images held in memory (used by
`scripts/train_default_model.py --recipe first`, by the cross-validation in
`scripts/crossval_default_model.py` and by `adapt`'s fine-tuning, so all train exactly the same way).

For hundreds of images, `nucleaizer_tf.default_model.general` streams them from disk instead; the
constants both share (trained diameter, targets, class weights, instance step) are declared here once.

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

    The image is stretched to uint8 RGB first (`stretch_rgb8`) and resized with `resize_image` (area
    averaging when shrinking, bilinear when enlarging); labels are resized with nearest-neighbour
    sampling (`nucleaizer_tf.labels.resize_labels`). The median is the equivalent diameter
    sqrt(4·area/π) of the objects present (`median_diameter`).

    Parameters
    ----------
    image : numpy.ndarray
        Grey or RGB(A) image of any dtype.
    labels : numpy.ndarray
        Its (H, W) integer ground-truth label image (0 = background).
    jitter : sequence of float, optional
        The scale factors j (default `SCALE_JITTER`, 0.8–1.25); one copy per factor.
    diameter : float, optional
        The target median diameter in pixels (default `TRAINED_DIAMETER`, 20).

    Returns
    -------
    list of tuple of numpy.ndarray
        ``(uint8 H'×W'×3 image, int32 H'×W' labels)`` per factor, in the order of `jitter`. A label image
        without any object gives a single copy at the original size.

    Examples
    --------
    Two 10 × 10 nuclei (median diameter 11.3 px), brought to 20 px and to 20 · 1.25 = 25 px:

    >>> labels = np.zeros((60, 80), np.int32)
    >>> labels[10:20, 10:20] = 1
    >>> labels[30:40, 40:50] = 2
    >>> image = (labels > 0).astype(np.uint16) * 1000
    >>> [(img.shape, lab.shape) for img, lab in size_normalised(image, labels, jitter=(1.0, 1.25))]
    [((106, 142, 3), (106, 142)), ((133, 177, 3), (133, 177))]
    >>> len(size_normalised(image, np.zeros_like(labels)))  # no nucleus: one unscaled copy
    1
    """
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
    """`count` synthetic (image, labels) pairs, alternating styles, varied density, size and noise.

    Made with `nucleaizer_tf.synthetic.synthetic_nuclei`: fluorescence and bright-field in turn (the
    first is fluorescence), each image 160–256 pixels high and wide, nucleus diameter `diameter` × a
    factor in 0.8–1.25, nuclei covering nominally 10–45 % of the image, noise 0.02–0.1; about 30 % of
    the images are turned grey. Images go through `stretch_rgb8`, as at inference.

    Parameters
    ----------
    count : int
        Number of pairs.
    seed : int, optional
        Seed of every random choice (default 0); the same seed gives the same pairs.
    diameter : float, optional
        The nominal nucleus diameter in pixels (default `TRAINED_DIAMETER`, 20).

    Returns
    -------
    list of tuple of numpy.ndarray
        ``(uint8 H×W×3 image, int32 H×W labels)`` pairs.

    Examples
    --------
    >>> items = synthetic_items(2, seed=0)
    >>> [(image.dtype.name, labels.dtype.name) for image, labels in items]
    [('uint8', 'int32'), ('uint8', 'int32')]
    >>> all(160 <= side <= 256 for image, _ in items for side in image.shape[:2])
    True
    """
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


def training_items(real: Sequence[tuple[np.ndarray, np.ndarray]], *, n_synthetic: int = 40,
                   rendered: Sequence[tuple[np.ndarray, np.ndarray]] = (), seed: int = 0):
    """(train items, validation items) of the recipe from real (image any dtype, labels) pairs.

    Training: every real pair at each scale of `SCALE_JITTER` (`size_normalised`), plus, for a grey
    image, tinted copies (a random colour) of every second of those scales (0.8, 1.0 and 1.25), plus
    `n_synthetic` images of `synthetic_items` (seed ``seed + 1``), plus every `rendered` pair once at
    the nominal scale. Validation: every real pair once, at the nominal scale (no jitter, no
    augmentation).

    Parameters
    ----------
    real : sequence of tuple of numpy.ndarray
        ``(image, labels)`` pairs; images of any dtype, grey or RGB(A).
    n_synthetic : int, optional
        Number of synthetic images added to the training items (default 40).
    rendered : sequence of tuple of numpy.ndarray, optional
        Extra training pairs, e.g. pix2pix renderings of synthetic masks in the real images' styles
        (nucleAIzer's recipe for its general model); never used for validation (default none).
    seed : int, optional
        Seed of the tints and of the synthetic images (default 0).

    Returns
    -------
    train : list of tuple of numpy.ndarray
        ``(uint8 H×W×3 image, int32 labels)`` training items.
    validation : list of tuple of numpy.ndarray
        One such item per real pair.

    Examples
    --------
    A grey image gives five scaled copies and three tinted ones:

    >>> labels = np.zeros((60, 80), np.int32)
    >>> labels[10:20, 10:20] = 1
    >>> image = (labels > 0).astype(np.uint16) * 1000
    >>> train, val = training_items([(image, labels)], n_synthetic=0)
    >>> len(train), len(val)
    (8, 1)

    A rendered pair adds one training item and no validation item:

    >>> train, val = training_items([(image, labels)], n_synthetic=0, rendered=[(image, labels)])
    >>> len(train), len(val)
    (9, 1)
    """
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
    for image, labels in rendered:
        train += size_normalised(image, labels, jitter=(1.0,))
    return train, val


def train_config(*, epochs: int = 30, steps_per_epoch: int = 40, seed: int = 0, checkpoint_path=None):
    """The recipe's `TrainConfig` for `train_unet`.

    128² crops (`CROP`), batch 16 (`BATCH`), flips, 90° rotations and colour jitter 0.2 (hue 0.1),
    Adam 1e-3 with ×0.3 steps at 60 % and 85 % of the epochs (milestones ``int(0.6 · epochs)`` and
    ``int(0.85 · epochs)``, 0-based epoch indices as `TrainConfig.lr_milestones`), whole validation
    images one at a time (``val_crop_size=None``), reflect padding of images smaller than the crop.

    Parameters
    ----------
    epochs : int, optional
        Number of epochs (default 30).
    steps_per_epoch : int, optional
        Batches per epoch, drawn from an endless stream (default 40).
    seed : int, optional
        The data stream's seed (default 0).
    checkpoint_path : str or os.PathLike, optional
        Where the best weights are written (a ``*.weights.h5`` path); None (default) keeps them in memory.

    Returns
    -------
    TrainConfig
        The configuration.

    Examples
    --------
    >>> config = train_config(epochs=10)
    >>> config.batch_size, config.crop_size, config.steps_per_epoch, config.lr_milestones, config.lr_gamma
    (16, 128, 40, (6, 8), 0.3)
    """
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
    """The `manifest.json` content of a default model trained with the recipe.

    Parameters
    ----------
    weights_file : str
        The weight file's name, relative to the model folder.
    sha256 : str
        Its SHA-256 hex digest.
    config : TrainConfig
        The training configuration (kept as `TrainConfig.to_dict`).
    history : TrainHistory
        The run's history: its best epoch, best monitored value (stored as ``best_val_loss``), number of
        epochs and total seconds are kept.
    data : dict
        JSON-ready description of the training data, kept as it is.

    Returns
    -------
    dict
        Format ``"nucleaizer-tf/default-model"`` version 1: the name, weight file and digest,
        `ARCHITECTURE`, `TRAINED_DIAMETER`, the target classes (background, interior, boundary) with
        `BOUNDARY_WIDTH` and `CLASS_WEIGHTS`, `INSTANCE`, the input conversion, the training record and
        the licence.

    Examples
    --------
    >>> from nucleaizer_tf.train_history import TrainHistory
    >>> manifest = manifest_for(weights_file="default.weights.h5", sha256="0" * 64, config=train_config(),
    ...                         history=TrainHistory(monitor="val_loss"), data={"images": 10})
    >>> manifest["format"], manifest["trained_diameter"], manifest["training"]["epochs_run"]
    ('nucleaizer-tf/default-model', 20.0, 0)
    """
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
    rendered: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    seed: int = 0,
    checkpoint_path=None,
    reporter: Reporter = SILENT,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
):
    """Train the default network on real (image, labels) pairs with the recipe.

    Seeds Keras (`keras.utils.set_random_seed(seed)`), builds the items (`training_items`) and a fresh
    `ARCHITECTURE` network, and trains it with `train_config` and the class-weighted cross-entropy on
    background / interior / boundary targets. The model's manifest lacks the weight file fields.
    `reporter` and `on_epoch` are passed to `train_unet`.

    Parameters
    ----------
    real : sequence of tuple of numpy.ndarray
        ``(image, labels)`` pairs; images of any dtype.
    epochs, steps_per_epoch : int, optional
        Length of the run (defaults 30 epochs of 40 batches).
    n_synthetic : int, optional
        Synthetic images added to the training items (default 40).
    rendered : sequence of tuple of numpy.ndarray, optional
        Extra training pairs added once each (`training_items`), e.g. pix2pix renderings (default none).
    seed : int, optional
        Seed of the weights, the items and the data stream (default 0).
    checkpoint_path : str or os.PathLike, optional
        Where the best weights are written during the run (``*.weights.h5``); None (default) = in memory.
    reporter : Reporter, optional
        Progress: one stage, ``"training the default model"``, one step per batch.
    on_epoch : callable, optional
        Called with every finished epoch's `EpochRecord`; returning True stops training.

    Returns
    -------
    model : DefaultModel
        The trained model, with the best-validation weights; its manifest holds the architecture, the
        trained diameter and `INSTANCE` only.
    history : TrainHistory
        Monitor ``"val_loss"``; epochs counted from 1.
    config : TrainConfig
        The configuration used.

    Examples
    --------
    >>> model, history, config = train_default_model([(image, labels)], epochs=2)  # doctest: +SKIP
    >>> history.best_epoch                                                        # doctest: +SKIP
    """
    import keras

    from nucleaizer_tf.unet.train import train_unet

    keras.utils.set_random_seed(seed)
    train, val = training_items(real, n_synthetic=n_synthetic, rendered=rendered, seed=seed)
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
              freeze_normalization: bool = False, reporter: Reporter = SILENT,
              on_epoch: Callable[[EpochRecord], bool | None] | None = None):
    """Train `model`'s network further on (image, labels) pairs, in place; returns (model, TrainHistory, TrainConfig).

    Each pair is size-normalised as the recipe's training data (`size_normalised`: nuclei brought to
    the trained diameter × each of `jitter`), then trained with the recipe's crops, batch, augmentation
    and loss at a smaller learning rate (stepped down ×0.3 at 60 % and 85 % of the epochs). With
    `val_pairs` the best-validation weights are kept; without, the best training-loss weights.
    `reporter` and `on_epoch` are passed to `train_unet`.

    Parameters
    ----------
    model : DefaultModel
        The model to train further (e.g. `DefaultModel.load()`, the shipped one); changed in place.
    pairs : sequence of tuple of numpy.ndarray
        Training ``(image, labels)`` pairs, at least one; images of any dtype.
    epochs, steps_per_epoch : int, optional
        Length of the run (defaults 10 epochs of 20 batches).
    learning_rate : float, optional
        Adam's initial learning rate (default 3e-4).
    jitter : sequence of float, optional
        Scale factors of the training copies (default (0.9, 1.0, 1.12)).
    val_pairs : sequence of tuple of numpy.ndarray, optional
        Validation pairs, used at the nominal scale (default none).
    seed : int, optional
        Seed of Keras and of the data stream (default 0).
    freeze_normalization : bool, optional
        Keep the batch-normalisation layers as they are (running statistics and scale/offset): they
        then normalise with the statistics of the data the model was trained on, so what it knew is
        kept while it learns a narrow set of new images (`adapt`; default False).
    reporter : Reporter, optional
        Progress: one stage, ``"fine-tuning"``, one step per batch.
    on_epoch : callable, optional
        Called with every finished epoch's `EpochRecord`; returning True stops training.

    Returns
    -------
    model : DefaultModel
        `model` itself, with the best weights restored.
    history : TrainHistory
        Monitor ``"val_loss"`` with `val_pairs`, else ``"loss"``; epochs counted from 1.
    config : TrainConfig
        The configuration used (`train_config` with `learning_rate`; no checkpoint file).

    Raises
    ------
    ValueError
        When `pairs` is empty.

    Examples
    --------
    >>> model = DefaultModel.load()                                           # doctest: +SKIP
    >>> model, history, config = fine_tune(model, [(image, labels)], epochs=2)  # doctest: +SKIP
    """
    import keras

    from nucleaizer_tf.unet.train import train_unet

    if not pairs:
        raise ValueError("fine_tune needs at least one (image, labels) pair")
    keras.utils.set_random_seed(seed)
    for layer in model.network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = not freeze_normalization  # not trainable: inference mode in training too (Keras 3)
    train = [item for image, labels in pairs for item in size_normalised(image, labels, jitter=jitter)]
    val = [item for image, labels in val_pairs for item in size_normalised(image, labels, jitter=(1.0,))]
    config = train_config(epochs=epochs, steps_per_epoch=steps_per_epoch, seed=seed)
    config = dataclasses.replace(config, learning_rate=learning_rate)
    history = train_unet(model.network, train, val or None, target_fn=make_target_fn(BOUNDARY_WIDTH),
                         loss=weighted_crossentropy(CLASS_WEIGHTS), config=config, reporter=reporter,
                         on_epoch=on_epoch, name="fine-tuning")
    return model, history, config
