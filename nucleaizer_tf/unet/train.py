"""The one U-Net training loop: any `build_unet` variant, any per-pixel target and loss.

The faithful nucleAIzer ensemble (docs/method.md §6.10: soft-Jaccard loss, Adam 1e-3, batch 12, 256 crops, a
best-validation checkpoint per member) and the slim shipped default model (`nucleaizer_tf.default_model`)
both train here; they differ only in the `TrainConfig`, the `target_fn` that turns instance labels into
the network's target and the `loss`. Examples come from the shared input layer
(`nucleaizer_tf.data.make_dataset`), so cropping, augmentation and seeding are the same for every model.

The loop is a plain `tf.GradientTape` step rather than `Model.fit`: the per-epoch validation, the
best-validation checkpoint (written atomically, so an interrupted run never leaves a torn weight file),
the step-wise learning-rate schedule and early stopping are each a few explicit lines here.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nucleaizer_tf.data import Augment, make_dataset
from nucleaizer_tf.progress import SILENT, Reporter
from nucleaizer_tf.train_history import EpochRecord, TrainHistory

__all__ = ["TrainConfig", "save_weights_atomic", "soft_jaccard_loss", "train_unet"]

WEIGHTS_SUFFIX = ".weights.h5"  # Keras 3 refuses other names for `save_weights`


def soft_jaccard_loss(y_true, y_pred):
    """The original U-Net loss (docs/method.md §6.10), soft Jaccard over the whole batch.

    −(Σ x·y + 1e−40) / (Σ (x + y − x·y) + 1e−40), each sum over every element of the batch.
    `y_pred` = x (the network output), `y_true` = y (the soft target). The sums are taken in float32 and
    the ratio in float64, because 1e−40 is below float32's normal range (a CPU that flushes denormals
    would turn an all-zero batch into 0/0); two empty maps give −1, as the formula says.

    Parameters
    ----------
    y_true : tf.Tensor or array_like
        The soft target y, values in [0, 1], any shape (e.g. (batch, H, W, 1)).
    y_pred : tf.Tensor or array_like
        The network output x, the same shape.

    Returns
    -------
    tf.Tensor
        float32 scalar in [−1, 0]: −1 for a perfect match, near 0 for no overlap. One value for the
        whole batch, not a mean of per-image values.

    Examples
    --------
    >>> target = np.array([[1.0, 0.0]], np.float32)
    >>> float(soft_jaccard_loss(target, target))
    -1.0
    >>> round(float(soft_jaccard_loss(target, np.array([[0.5, 0.5]], np.float32))), 4)
    -0.3333
    >>> float(soft_jaccard_loss(np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)))
    -1.0
    """
    x = tf.cast(y_pred, tf.float32)
    y = tf.cast(y_true, tf.float32)
    intersection = tf.cast(tf.reduce_sum(x * y), tf.float64)
    union = tf.cast(tf.reduce_sum(x + y - x * y), tf.float64)
    eps = tf.constant(1e-40, tf.float64)
    return tf.cast(-(intersection + eps) / (union + eps), tf.float32)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model, the data, the target and the loss.

    Defaults are the original U-Net training (docs/method.md §6.10) except where noted. The config is
    frozen; derive variants with `dataclasses.replace`.

    Parameters
    ----------
    epochs : int
        Number of epochs (default 100, at least 1).
    batch_size : int
        Training batch size (default 12, at least 1).
    crop_size : int or tuple of int or None
        Side (or (height, width)) of the random training crops (default 256); None = whole images.
    learning_rate : float
        Adam's initial learning rate (default 1e-3; betas 0.9/0.999).
    adam_epsilon : float
        Adam's epsilon (default 1e-8).
    lr_milestones, lr_gamma : tuple of int, float
        Multiply the rate by `lr_gamma` (default 0.1) at each epoch index listed (0-based epoch counts:
        (50, 70, 90) is the original's intent; the rate of milestone 50 applies from the 51st epoch,
        `EpochRecord` number 51). Default () keeps 1e-3 throughout, which is what the original actually
        did (its scheduler quirk, quirk Q7).
    steps_per_epoch : int or None
        None (default) = one pass over the training items per epoch, one random crop each (the
        original); n = n batches from an endless stream (for small sets of large images).
    augment, val_augment : Augment
        `Augment` for training / validation examples (defaults `Augment.unet()`, the original's
        horizontal flip and colour jitter 0.2, and `Augment.none()`). The original applied the same
        random transform to its validation images; the default here is no augmentation.
    val_crop_size : int or tuple of int or None or "same"
        ``"same"`` (default) = `crop_size`; None = whole validation images (then `val_batch_size` 1
        unless they share a size).
    val_batch_size : int
        Validation batch size (default 1, at least 1).
    val_fixed : bool
        True (default) makes every epoch's validation see the very same crops, so the validation loss
        compares epochs rather than random draws.
    pad_mode, image_mode : str
        Passed to `make_dataset` (padding of images smaller than the crop, default ``"constant"``;
        `to_rgb8` conversion for file items, default ``"nucleaizer"``).
    early_stopping_patience : int or None
        Stop after this many epochs without a validation improvement larger than `min_delta` (None,
        the default = never).
    min_delta : float
        The smallest change of the monitored loss that counts as an improvement (default 0.0).
    checkpoint_path : str or os.PathLike or None
        Where the best weights go (a `*.weights.h5` path, as Keras 3 requires), rewritten atomically at
        each improvement; None (default) = keep them in memory only.
    restore_best : bool
        Load the best weights into the model at the end (default True).
    seed : int
        The data stream's seed (crops, flips, jitter, shuffling; default 0; validation uses seed + 1).
        Weight initialisation is the caller's: seed it (`keras.utils.set_random_seed`) before building
        the model.

    Raises
    ------
    ValueError
        For `epochs`, `batch_size` or `val_batch_size` below 1, `steps_per_epoch` below 1, or a
        `checkpoint_path` that does not end with ``.weights.h5``.

    Examples
    --------
    >>> config = TrainConfig(epochs=2, crop_size=128, lr_milestones=(1,))
    >>> config.batch_size, config.learning_rate, config.val_crop_size
    (12, 0.001, 'same')
    >>> config.to_dict()["augment"]["flip_h"]
    True
    >>> TrainConfig(checkpoint_path="best.h5")
    Traceback (most recent call last):
    ...
    ValueError: checkpoint_path must end with '.weights.h5' (Keras 3), got best.h5
    """

    epochs: int = 100
    batch_size: int = 12
    crop_size: int | tuple[int, int] | None = 256
    learning_rate: float = 1e-3
    adam_epsilon: float = 1e-8
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    steps_per_epoch: int | None = None
    augment: Augment = field(default_factory=Augment.unet)
    val_augment: Augment = field(default_factory=Augment.none)
    val_crop_size: int | tuple[int, int] | None | str = "same"
    val_batch_size: int = 1
    val_fixed: bool = True
    pad_mode: str = "constant"
    image_mode: str = "nucleaizer"
    early_stopping_patience: int | None = None
    min_delta: float = 0.0
    checkpoint_path: str | os.PathLike | None = None
    restore_best: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.val_batch_size < 1:
            raise ValueError("epochs, batch_size and val_batch_size must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be None or >= 1, got {self.steps_per_epoch}")
        if self.checkpoint_path is not None and not str(self.checkpoint_path).endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"checkpoint_path must end with {WEIGHTS_SUFFIX!r} (Keras 3), got {self.checkpoint_path}")

    def to_dict(self) -> dict:
        """JSON-ready description (for a model manifest or a run log).

        Returns
        -------
        dict
            Every field by name; the two `Augment` fields as dicts, `checkpoint_path` as a string.

        Examples
        --------
        >>> TrainConfig(checkpoint_path=Path("best.weights.h5")).to_dict()["checkpoint_path"]
        'best.weights.h5'
        """
        out = asdict(self)
        for key in ("augment", "val_augment"):
            out[key] = asdict(getattr(self, key))
        if out["checkpoint_path"] is not None:
            out["checkpoint_path"] = str(out["checkpoint_path"])
        return out


def save_weights_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """`model.save_weights(path)` through `io.atomic_path` (a temporary file in the same folder, then a
    rename), so readers only ever see the previous complete file or the new complete file.

    Parameters
    ----------
    model : keras.Model
        The model whose weights are written.
    path : str or os.PathLike
        The weight file; its name must end with ``.weights.h5`` (Keras 3). Its folder is created if
        needed; an existing file is replaced.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ValueError
        When the file name does not end with ``.weights.h5``.

    Examples
    --------
    >>> save_weights_atomic(model, "run/UNet_sigma0.0_1.weights.h5")  # doctest: +SKIP
    """
    from nucleaizer_tf.io import atomic_path

    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"weights path must end with {WEIGHTS_SUFFIX!r}, got {path}")
    with atomic_path(path) as tmp:
        model.save_weights(tmp, overwrite=True)
    return path


class _RunState:
    """A training run's resumable state in one folder (see `train_unet`'s `state_dir`)."""

    LAST, BEST, OPTIMIZER, HISTORY = "last.weights.h5", "best.npz", "optimizer.npz", "history.json"

    def __init__(self, folder: Path):
        self.folder = folder

    def exists(self) -> bool:
        return (self.folder / self.HISTORY).is_file()

    def save(self, model, optimizer, history: TrainHistory, best_weights) -> None:
        from nucleaizer_tf.io import atomic_path, write_json

        save_weights_atomic(model, self.folder / self.LAST)
        with atomic_path(self.folder / self.OPTIMIZER) as tmp, open(tmp, "wb") as f:
            np.savez(f, *[v.numpy() for v in optimizer.variables])
        if best_weights is not None and history.epochs and history.best_epoch == history.epochs[-1].epoch:
            with atomic_path(self.folder / self.BEST) as tmp, open(tmp, "wb") as f:
                np.savez(f, *best_weights)
        # the history last: it is what marks the epoch as finished
        write_json(self.folder / self.HISTORY, history.to_dict())

    def restore(self, model, optimizer, monitor: str):
        import json

        from nucleaizer_tf.errors import NucleaizerError

        try:
            history = TrainHistory.from_dict(json.loads((self.folder / self.HISTORY).read_text()))
            model.load_weights(self.folder / self.LAST)
            with np.load(self.folder / self.OPTIMIZER) as saved:
                values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            best = None
            if (self.folder / self.BEST).is_file():
                with np.load(self.folder / self.BEST) as saved:
                    best = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        except (OSError, ValueError, KeyError) as exc:
            raise NucleaizerError(f"{self.folder}: cannot resume from this training state ({exc})") from None
        if history.monitor != monitor:
            raise NucleaizerError(f"{self.folder}: the saved run monitored {history.monitor}, this one {monitor}")
        if len(values) != len(optimizer.variables) or best is not None and len(best) != len(model.weights):
            raise NucleaizerError(f"{self.folder}: the saved state belongs to another network")
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)
        return history, best


def _lr_at(config: TrainConfig, epoch: int) -> float:
    return config.learning_rate * config.lr_gamma ** sum(1 for m in config.lr_milestones if epoch >= m)


def train_unet(
    model: keras.Model,
    train_items: Sequence,
    val_items: Sequence | None,
    *,
    target_fn: Callable | None,
    loss: Callable,
    config: TrainConfig = TrainConfig(),
    reporter: Reporter = SILENT,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    name: str = "training",
    validate: Callable[[keras.Model], float] | None = None,
    validate_every: int = 1,
    state_dir: str | os.PathLike | None = None,
    sample_weights: Sequence[float] | None = None,
) -> TrainHistory:
    """Train `model` in place and return its `TrainHistory`.

    Parameters
    ----------
    model
        A Keras model (any `build_unet` variant).
    train_items, val_items
        `Pair`s or in-memory (uint8 H×W×3 image, int labels) tuples, as `make_dataset` takes them
        (`train_items` may also be an `ExampleStore`). Without validation items (and without
        `validate`) the training loss is monitored instead.
    target_fn
        ``target_fn(image, labels) -> (image, target)``, run inside the tf.data graph after augmentation
        (images arrive as float32 in [0, 1]).
    loss
        ``loss(target, prediction)`` returning a scalar.
    config
        The `TrainConfig`.
    reporter
        Progress (`nucleaizer_tf.progress.Reporter`): one stage named `name`, one step per batch.
    on_epoch
        Called with every finished epoch's `EpochRecord` (already in the history; the hook may fill in
        `val_dsb`); returning True stops training.
    name
        The name of the progress stage (default ``"training"``).
    validate
        ``validate(model) -> score``, higher is better (e.g. the DSB score of whole validation images
        through the real inference path): when given, it picks the best epoch (monitor ``"val_dsb"``)
        and runs after every `validate_every`-th epoch and after the last.
    validate_every
        See `validate` (default 1).
    state_dir
        A folder for the run's state, rewritten atomically after every epoch (the latest weights, the
        optimizer's moments, the best weights and the history): a run started again with the same
        `state_dir` resumes after the last finished epoch (`TrainHistory.resumed_from`). The data
        stream of a resumed run is seeded from (seed, epoch), so it is reproducible but not the stream
        an uninterrupted run would have seen.
    sample_weights
        Per training item sampling weights of the endless stream (`make_dataset`).

    Returns
    -------
    TrainHistory
        Monitor ``"val_dsb"`` with `validate`, else ``"val_loss"`` (``"loss"`` without validation
        items); epochs counted from 1.

    Notes
    -----
    Each epoch: the training batches (BatchNorm in training mode), then the mean loss over the
    validation batches (inference mode); when it improves on the best so far by more than
    `config.min_delta`, the weights are kept (and written to `config.checkpoint_path`, atomically).

    Examples
    --------
    >>> history = train_unet(build_unet(base_filters=8), pairs, None, target_fn=None,
    ...                      loss=soft_jaccard_loss, config=TrainConfig(epochs=2))  # doctest: +SKIP
    >>> history.best_epoch, history.loss                                          # doctest: +SKIP
    """
    from nucleaizer_tf.io.example_store import ExampleStore

    if validate_every < 1:
        raise ValueError(f"validate_every must be >= 1, got {validate_every}")
    if not isinstance(train_items, ExampleStore):
        train_items = list(train_items)
    val_items = list(val_items or [])
    common = dict(target_fn=target_fn, image_mode=config.image_mode, pad_mode=config.pad_mode)
    endless = config.steps_per_epoch is not None
    if sample_weights is not None and not endless:
        raise ValueError("sample_weights need an endless stream (TrainConfig.steps_per_epoch)")
    state = _RunState(Path(state_dir)) if state_dir is not None else None
    monitor = "val_dsb" if validate is not None else ("val_loss" if val_items else "loss")
    history = TrainHistory(monitor=monitor)
    start_epoch, best_weights = 0, None
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=0.9, beta_2=0.999,
                                      epsilon=config.adam_epsilon)
    weights = model.trainable_variables
    # the moments exist before the first step: created inside it, they made tf.function trace the step
    # twice (the second trace as slow as the first)
    optimizer.build(weights)
    if state is not None and state.exists():
        history, best_weights = state.restore(model, optimizer, monitor)
        start_epoch = len(history.epochs)
        history.resumed_from = start_epoch
    stream_seed = config.seed if start_epoch == 0 else int(config.seed) * 1_000_003 + start_epoch
    train_ds = make_dataset(train_items, crop_size=config.crop_size, batch_size=config.batch_size,
                            shuffle=True, seed=stream_seed, augment=config.augment, repeat=endless,
                            sample_weights=sample_weights, **common)
    val_ds = None
    if val_items:
        val_crop = config.crop_size if config.val_crop_size == "same" else config.val_crop_size
        val_ds = make_dataset(val_items, crop_size=val_crop, batch_size=config.val_batch_size, shuffle=False,
                              seed=config.seed + 1, augment=config.val_augment,
                              reshuffle_each_iteration=not config.val_fixed, **common)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
            if model.losses:
                value = value + tf.add_n(model.losses)
        optimizer.apply_gradients(zip(tape.gradient(value, weights), weights))
        return value

    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        return loss(y, model(x, training=False))

    stream = iter(train_ds) if endless else None
    steps = config.steps_per_epoch if endless else max(1, math.ceil(len(train_items) / config.batch_size))
    with reporter.stage(name, (config.epochs - start_epoch) * steps) as advance:
        for index in range(start_epoch, config.epochs):
            start = time.perf_counter()
            lr = _lr_at(config, index)
            optimizer.learning_rate.assign(lr)
            batches = (next(stream) for _ in range(config.steps_per_epoch)) if endless else train_ds
            train_losses = []
            for x, y in batches:
                train_losses.append(float(train_step(x, y)))
                advance(f"epoch {index + 1} loss {train_losses[-1]:.3f}")
            train_loss = float(np.mean(train_losses))
            val_loss = float(np.mean([float(eval_step(x, y)) for x, y in val_ds])) if val_ds is not None else None
            seconds = time.perf_counter() - start
            val_dsb = None
            if validate is not None and ((index + 1) % validate_every == 0 or index + 1 == config.epochs):
                val_dsb = float(validate(model))
            monitored = {"val_dsb": val_dsb, "val_loss": val_loss, "loss": train_loss}[monitor]
            record = EpochRecord(epoch=index + 1, learning_rate=lr, steps=len(train_losses),
                                 losses={"loss": train_loss}, seconds=time.perf_counter() - start,
                                 seconds_per_step=seconds / max(1, len(train_losses)),
                                 monitored=monitored, val_loss=val_loss, val_dsb=val_dsb)
            if history.add(record, config.min_delta):
                best_weights = [w.value.numpy() for w in model.weights]
                if config.checkpoint_path is not None:
                    record.checkpoint = str(save_weights_atomic(model, config.checkpoint_path))
            stop = bool(on_epoch(record)) if on_epoch is not None else False
            if state is not None:
                state.save(model, optimizer, history, best_weights)
            if (config.early_stopping_patience is not None
                    and history.epochs_since_best() >= config.early_stopping_patience):
                history.stopped_early = True
                stop = True
            if stop:
                break
    if config.restore_best and best_weights is not None:
        for variable, value in zip(model.weights, best_weights):
            variable.assign(value)
    return history
