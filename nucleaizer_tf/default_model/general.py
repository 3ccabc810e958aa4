"""The recipe of the general default model: hundreds of real annotated images, streamed from disk.

The first shipped model's recipe (`recipe.py`) holds five rescaled copies of every image in memory and
was made for 15 images. This one scales to any annotated set (the shipped model, `weights/default/`, was
trained with it on 592 DSB 2018 images):

* Examples are prepared once (`prepared`: `stretch_rgb8`, then size normalisation so the ground-truth
  median nucleus diameter becomes `TRAINED_DIAMETER`) and written to an `ExampleStore`, read back one
  example at a time by memory map: training memory does not grow with the number of images.
* Scale variety comes on the fly (`Augment.scale`, a zoom per crop) instead of stored copies; the rest
  of the augmentation (`GeneralRecipe.augment`) is made for this field: flips and 90° rotations,
  colour jitter, HED stain jitter for tissue, grey conversion and intensity inversion between
  fluorescence and bright-field, blur and noise.
* Rare kinds of image are drawn more often (`group_weights`: each group's share of the stream grows
  with the square root of its size instead of its size).
* The best weights are chosen by the real score: whole validation images through
  `DefaultModel.segment` (size estimation, tiling, instance step), DSB over images
  (`validation.selection_score`), every `validate_every` epochs.
* A closing stage (`GeneralRecipe.polished`) continues from the best weights at a lower rate without
  the stain, grey, inversion, blur and noise augmentations; it is kept only where validation says so
  (`nucleaizer_tf.pipelines.train_default.train_general_folders` runs both stages).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nucleaizer_tf.default_model.model import DefaultModel, build_network
from nucleaizer_tf.default_model.recipe import BOUNDARY_WIDTH, CLASS_WEIGHTS, INSTANCE, TRAINED_DIAMETER, size_normalised
from nucleaizer_tf.default_model.targets import make_target_fn, weighted_crossentropy
from nucleaizer_tf.progress import SILENT, Reporter
from nucleaizer_tf.train_history import EpochRecord

ARCHITECTURE = dict(in_channels=3, out_channels=3, base_filters=16, depth=4, output_activation="softmax",
                    name="default_unet")


@dataclass(frozen=True)
class GeneralRecipe:
    """Every choice of the general recipe in one place (the defaults are the shipped model's).

    Parameters
    ----------
    architecture : dict
        `build_unet` arguments (default `ARCHITECTURE`: 16 filters, depth 4, 1.9 M parameters).
    crop, batch : int
        Training crop side and batch size (160, 12).
    scale_range : tuple of float
        On-the-fly zoom range around the trained size (0.67, 1.5), `Augment.scale`.
    group_power : float
        A group of n images gets a share of the stream ∝ n^power (0.5; 1 = every image alike).
    color_jitter, stain, grey, invert, blur, noise
        The photometric augmentations (`Augment`).
    learning_rate : float
        Adam's initial rate (1e-3), ×0.3 at 60 % and 85 % of the epochs.
    epochs, steps_per_epoch : int
        Length of the main stage (32 epochs of 200 batches).
    synthetic : int
        Generated images (`recipe.synthetic_items`, group ``"synthetic"``) added to the training
        images (0: none).
    polish_epochs, polish_learning_rate
        A closing stage (6 epochs at 1e-4; 0 epochs: none) that starts from the best weights of the
        main stage with the field augmentations off (`polished`); it is kept only where validation
        scores it higher.

    Examples
    --------
    >>> GeneralRecipe().crop, dataclasses.replace(GeneralRecipe(), crop=256).crop
    (160, 256)
    """

    architecture: dict = field(default_factory=lambda: dict(ARCHITECTURE))
    crop: int = 160
    batch: int = 12
    scale_range: tuple[float, float] = (0.67, 1.5)
    group_power: float = 0.5
    color_jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05)
    stain: float = 0.15
    grey: float = 0.1
    invert: float = 0.1
    blur: float = 1.0
    noise: float = 0.03
    learning_rate: float = 1e-3
    epochs: int = 32
    steps_per_epoch: int = 200
    synthetic: int = 0
    polish_epochs: int = 6
    polish_learning_rate: float = 1e-4

    def polished(self) -> GeneralRecipe:
        """The recipe of the closing stage: no stain, grey, inversion, blur or noise; `polish_learning_rate`.

        Examples
        --------
        >>> polish = GeneralRecipe().polished()
        >>> polish.stain, polish.invert, polish.learning_rate, polish.scale_range
        (0.0, 0.0, 0.0001, (0.67, 1.5))
        """
        return dataclasses.replace(self, stain=0.0, grey=0.0, invert=0.0, blur=0.0, noise=0.0,
                                   learning_rate=self.polish_learning_rate, polish_epochs=0)

    def augment(self):
        """The training `Augment`: flips, 90° rotations and the recipe's zoom and photometric transforms.

        Examples
        --------
        >>> GeneralRecipe().augment().scale
        (0.67, 1.5)
        """
        from nucleaizer_tf.data import Augment

        return Augment(flip_h=True, flip_v=True, rot90=True, color_jitter=self.color_jitter, scale=self.scale_range,
                       grey=self.grey, invert=self.invert, stain=self.stain, blur=self.blur, noise=self.noise)

    def train_config(self, *, epochs: int, steps_per_epoch: int, seed: int = 0, checkpoint_path=None):
        """The `TrainConfig`: crops, batch, `augment()`, Adam with ×0.3 steps at 60 % and 85 % of the
        epochs, reflect padding.

        Examples
        --------
        >>> config = GeneralRecipe().train_config(epochs=10, steps_per_epoch=5)
        >>> config.crop_size, config.batch_size, config.lr_milestones
        (160, 12, (6, 8))
        """
        from nucleaizer_tf.unet.train import TrainConfig

        return TrainConfig(epochs=epochs, batch_size=self.batch, crop_size=self.crop, learning_rate=self.learning_rate,
                           lr_milestones=(int(0.6 * epochs), int(0.85 * epochs)), lr_gamma=0.3,
                           steps_per_epoch=steps_per_epoch, augment=self.augment(), pad_mode="reflect",
                           checkpoint_path=checkpoint_path, seed=seed)

    def to_dict(self) -> dict:
        """JSON-ready fields (kept in the model's manifest)."""
        return dataclasses.asdict(self)


def prepared(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, int32 labels) at the trained nucleus size: what the store holds per example.

    Parameters
    ----------
    image : numpy.ndarray
        Grey or RGB(A) image of any dtype.
    labels : numpy.ndarray
        Its ground-truth label image.

    Returns
    -------
    tuple of numpy.ndarray
        `stretch_rgb8` of the image and the labels, both resized so the median nucleus diameter is
        `TRAINED_DIAMETER` (`recipe.size_normalised` at factor 1).

    Examples
    --------
    >>> labels = np.zeros((60, 80), np.int32); labels[10:20, 10:20] = 1
    >>> image, out = prepared(labels.astype(np.uint16) * 1000, labels)
    >>> image.shape, out.shape
    ((106, 142, 3), (106, 142))
    """
    return size_normalised(image, labels, jitter=(1.0,))[0]


def group_weights(groups: Sequence[str], power: float = 0.5) -> np.ndarray:
    """Per-example sampling weights so that a group of n examples gets a share of the stream ∝ n^power.

    Parameters
    ----------
    groups : sequence of str
        The group (e.g. modality) of every example.
    power : float, optional
        0.5 (default): shares ∝ √n; 1: every example alike; 0: every group alike.

    Returns
    -------
    numpy.ndarray
        float64 weight n_group^(power − 1) per example.

    Examples
    --------
    >>> w = group_weights(["f"] * 9 + ["s"])
    >>> round(float(w[:9].sum() / w.sum()), 2)  # 9 and 1 examples: shares 3 : 1
    0.75
    """
    counts = Counter(groups)
    return np.array([counts[g] ** (power - 1.0) for g in groups], np.float64)


def manifest_for(network_manifest: dict, *, recipe: GeneralRecipe, config, history, data: dict,
                 validation: list[dict], polish=None) -> dict:
    """The manifest of a model trained with this recipe (without the weight file fields).

    Parameters
    ----------
    network_manifest : dict
        The trained model's manifest so far (its ``instance`` block is kept).
    recipe : GeneralRecipe
        The recipe's choices.
    config : TrainConfig
        The run's configuration.
    history : TrainHistory
        The run's history (every epoch is kept, with its validation score).
    data : dict
        JSON-ready description of the training data (ids, groups).
    validation : list of dict
        The kept weights' validation rows (`validation.score_rows`).
    polish : tuple, optional
        ``(config, history, kept)`` of the closing stage (`GeneralRecipe.polished`); `kept` says
        whether its weights replaced the main stage's.

    Returns
    -------
    dict
        Format ``"nucleaizer-tf/default-model"`` version 1.

    Examples
    --------
    >>> from nucleaizer_tf.train_history import TrainHistory
    >>> recipe = GeneralRecipe()
    >>> m = manifest_for({}, recipe=recipe, config=recipe.train_config(epochs=2, steps_per_epoch=1),
    ...                  history=TrainHistory("val_dsb"), data={}, validation=[])
    >>> m["architecture"]["depth"], m["training"]["recipe"]
    (4, 'nucleaizer_tf.default_model.general')
    """
    def stage(config, history):
        return {"config": config.to_dict(), "monitor": history.monitor, "best_epoch": history.best_epoch,
                "best_val_dsb": history.best_value, "epochs_run": len(history.epochs),
                "train_seconds": float(sum(e.seconds for e in history.epochs)),
                "history": [e.to_dict() for e in history.epochs]}

    training = {"recipe": "nucleaizer_tf.default_model.general", "general_recipe": recipe.to_dict(),
                **stage(config, history), "data": data}
    if polish is not None:
        polish_config, polish_history, kept = polish
        training["polish"] = {**stage(polish_config, polish_history), "kept": bool(kept)}
        training["total_train_seconds"] = training["train_seconds"] + training["polish"]["train_seconds"]
    return {
        **network_manifest,
        "format": "nucleaizer-tf/default-model",
        "format_version": 1,
        "name": "nucleaizer-tf default model",
        "architecture": dict(recipe.architecture),
        "trained_diameter": TRAINED_DIAMETER,
        "target": {"classes": ["background", "interior", "boundary"], "boundary_width": BOUNDARY_WIDTH,
                   "class_weights": list(CLASS_WEIGHTS)},
        "instance": network_manifest.get("instance", dict(INSTANCE)),
        "input": "stretch_rgb8: grey/RGB(A) of any dtype -> uint8 RGB, one 1-99.8 percentile stretch; /255",
        "training": training,
        "validation": validation,
        "licence": "MIT (weights); trained on DSB 2018 / BBBC038v1 images (CC0 1.0)",
    }


def train_general_model(store, val_examples: Sequence[tuple[str, str, np.ndarray, np.ndarray]], *,
                        recipe: GeneralRecipe = GeneralRecipe(), epochs: int | None = None,
                        steps_per_epoch: int | None = None,
                        validate_every: int = 2, seed: int = 0, init: DefaultModel | None = None,
                        state_dir=None, checkpoint_path=None, reporter: Reporter = SILENT,
                        on_epoch: Callable[[EpochRecord], bool | None] | None = None,
                        on_validation: Callable[[int, dict], None] | None = None):
    """Train the default network with the general recipe on an `ExampleStore` of `prepared` examples.

    Parameters
    ----------
    store : ExampleStore
        The training examples (groups = modalities, used by `group_weights`).
    val_examples : sequence of tuple
        ``(name, group, image, labels)`` validation images at their own resolution, any dtype.
    recipe : GeneralRecipe, optional
        The choices (default: the shipped model's).
    epochs, steps_per_epoch : int, optional
        Length of the run (default: the recipe's).
    validate_every : int, optional
        Score the validation images every this many epochs (default 2) and after the last.
    seed : int, optional
        Seed of the weights and of the data stream (default 0).
    init : DefaultModel, optional
        Start from this model's weights (its architecture must be the recipe's); None (default) =
        random weights.
    state_dir : str or os.PathLike, optional
        Resumable state (`train_unet`): started again with the same folder, training resumes.
    checkpoint_path : str or os.PathLike, optional
        Where the best weights are written (``*.weights.h5``).
    reporter : Reporter, optional
        Progress, one step per batch.
    on_epoch : callable, optional
        Called with every finished `EpochRecord`.
    on_validation : callable, optional
        Called with (epoch, `score_by_group` result) after every validation.

    Returns
    -------
    model : DefaultModel
        The best-validation model; its manifest holds the architecture, trained size and `INSTANCE`.
    history : TrainHistory
        Monitor ``"val_dsb"``.
    config : TrainConfig
        The configuration.

    Examples
    --------
    >>> model, history, config = train_general_model(store, val, epochs=2)  # doctest: +SKIP
    """
    import keras

    from nucleaizer_tf.default_model.validation import score_by_group, selection_score
    from nucleaizer_tf.unet.train import train_unet

    keras.utils.set_random_seed(seed)
    network = build_network(recipe.architecture)
    if init is not None:
        network.set_weights(init.network.get_weights())
    manifest = {"architecture": dict(recipe.architecture), "trained_diameter": TRAINED_DIAMETER,
                "instance": dict(INSTANCE)}
    model = DefaultModel(network, manifest)
    last = {}

    def validate(_network):
        last["scores"] = score_by_group(model.segment, val_examples)
        return selection_score(last["scores"])

    def count(record):
        if record.val_dsb is not None and on_validation is not None:
            on_validation(record.epoch, last["scores"])
        return on_epoch(record) if on_epoch is not None else None

    config = recipe.train_config(epochs=epochs or recipe.epochs, seed=seed, checkpoint_path=checkpoint_path,
                                 steps_per_epoch=steps_per_epoch or recipe.steps_per_epoch)
    weights = group_weights(store.groups(), recipe.group_power)
    history = train_unet(network, store, None, target_fn=make_target_fn(BOUNDARY_WIDTH),
                         loss=weighted_crossentropy(CLASS_WEIGHTS), config=config, reporter=reporter,
                         on_epoch=count, name="training the default model", validate=validate,
                         validate_every=validate_every, state_dir=state_dir, sample_weights=weights)
    return model, history, config
