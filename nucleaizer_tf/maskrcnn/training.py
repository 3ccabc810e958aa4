"""Mask R-CNN training with the recipe of matterport 53afbae as nucleAIzer's `FinalModel/train.py` ran it.

The trainer owns one inference `MaskRCNN` (legacy layer names, 233 weighted layers) and trains its
variables in a `tf.GradientTape` step, so the very same weights serve validation (`segment`) and the
checkpoints (`save_legacy_weights`, loadable strictly by `load_legacy_weights` and by matterport):

    image ─ ResNet-101/FPN ─ RPN ─ proposals (2000, NMS 0.55) ─ detection targets (512 ROIs)
                                                                 ─ classifier head / mask head ─ 5 losses

* Data: every image is resized and zero-padded to D × D once (`prepare_example`, exactly as inference:
  Pillow bilinear for the image, nearest for the labels, as `scipy.ndimage.zoom(order=0)`), then the
  shared tf.data layer streams it with matterport's only augmentation, a random left-right flip; its
  `target_fn` (`make_target_fn`) builds boxes, mini-masks and the unbalanced anchor match in the graph.
  Anchor balancing, the ground-truth subset (MAX_GT_INSTANCES) and the ROI sampling need randomness
  and run in the step with a stateless seed derived from (seed, global step).
* Optimiser: SGD momentum 0.9, gradients clipped to a global norm of 5 (Keras 2's `clipnorm`),
  loss + Σ 1e-4 · mean(w²) over the trained weights except BatchNorm gamma/beta. A fresh optimiser per
  epoch group, as matterport's `compile()` per `train()` call. BatchNorm always uses its stored
  statistics (the port's BatchNorm), gamma/beta train when their layer is selected, as in matterport.
* Layer groups select layers by the original regular expressions, full match on the top-level layer
  name (the TimeDistributed wrapper's name; inside the nested `rpn_model` its own layers' names).
* Epoch groups have cumulative epoch targets (train.json: all 1 → 5+ 2 → heads 3).

Differences from the original, on purpose: images of any dtype are converted to RGB8 instead of being
skipped; the training loss is the sum of the five losses and the decay term, as Keras reported it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.read import read_json
from nucleaizer_tf.maskrcnn import losses as L
from nucleaizer_tf.maskrcnn.anchors import pyramid_anchors
from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
from nucleaizer_tf.maskrcnn.model import MaskRCNN
from nucleaizer_tf.maskrcnn.molding import resize_for_model
from nucleaizer_tf.maskrcnn.proposal import propose
from nucleaizer_tf.maskrcnn.targets import detection_targets, gt_from_labels, match_anchors, sample_rpn_targets
from nucleaizer_tf.progress import SILENT, Reporter
from nucleaizer_tf.train_history import EpochRecord, TrainHistory

__all__ = [
    "COCO_HEAD_LAYERS",
    "EpochGroup",
    "LAYER_REGEX",
    "LOSS_NAMES",
    "MaskRCNNTrainer",
    "TrainJSON",
    "checkpoint_name",
    "find_checkpoints",
    "init_from_scratch",
    "layer_regex",
    "prepare_example",
    "read_train_json",
    "short_losses",
]

#: matterport's predefined layer groups (`MaskRCNN.train`), matched with `re.fullmatch`.
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}
#: Layers train.py excluded when starting from COCO weights (`blank_mrcnn`): the class-specific heads.
COCO_HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")
CHECKPOINT_RE = re.compile(r"mask_rcnn_(?P<name>\w+?)_(?P<epoch>\d{4})\.h5$")


def layer_regex(layers: str) -> str:
    """A group name (`all`, `3+`, `4+`, `5+`, `heads`) or a regular expression of layer names.

    Parameters
    ----------
    layers : str
        One of `LAYER_REGEX` (matterport's groups) or a regular expression, matched with `re.fullmatch`
        against layer names.

    Returns
    -------
    str
        The group's regular expression, or `layers` itself.

    Raises
    ------
    ValueError
        When `layers` is neither a group name nor a valid regular expression.

    Examples
    --------
    >>> import re
    >>> layer_regex("all"), layer_regex("mrcnn_mask.*")
    ('.*', 'mrcnn_mask.*')
    >>> [bool(re.fullmatch(layer_regex(group), "res5a_branch2a")) for group in ("all", "5+", "heads")]
    [True, True, False]
    """
    regex = LAYER_REGEX.get(layers, layers)
    try:
        re.compile(regex)
    except re.error as exc:
        raise ValueError(f"layers {layers!r} is neither one of {sorted(LAYER_REGEX)} nor a valid regular "
                         f"expression ({exc})") from None
    return regex


def checkpoint_name(config: MaskRCNNConfig, epoch: int) -> str:
    """matterport's per-epoch file name, `mask_rcnn_<name>_<epoch:04d>.h5` (epochs counted from 1).

    Parameters
    ----------
    config : MaskRCNNConfig
        Its `NAME`, lower-cased, is the ``<name>`` (``"nuclei"`` by default).
    epoch : int
        The finished epoch, counted from 1.

    Returns
    -------
    str
        The file name (no folder).

    Examples
    --------
    >>> checkpoint_name(MaskRCNNConfig(), 3)
    'mask_rcnn_nuclei_0003.h5'
    """
    return f"mask_rcnn_{config.NAME.lower()}_{epoch:04d}.h5"


def find_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """(epoch, path) of the per-epoch checkpoints in `folder`, ascending epoch.

    Files named as `checkpoint_name` writes them (any config name); other files are ignored.

    Parameters
    ----------
    folder : str or os.PathLike
        The training output folder.

    Returns
    -------
    list of tuple of (int, pathlib.Path)
        Epoch (counted from 1) and file of each checkpoint, in ascending epoch order; empty when
        `folder` does not exist.

    Examples
    --------
    >>> find_checkpoints("no_such_folder")
    []
    >>> find_checkpoints("run")[-1]                    # doctest: +SKIP
    (3, PosixPath('run/mask_rcnn_nuclei_0003.h5'))
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = CHECKPOINT_RE.fullmatch(p.name)
        if m and p.is_file():
            found.append((int(m.group("epoch")), p))
    return sorted(found)


# --------------------------------------------------------------------------------------------- train.json


@dataclass(frozen=True)
class EpochGroup:
    """One `mdl.train(lr, epochs=cumulative, layers)` call of train.py; `epochs` is this group's count.

    Parameters
    ----------
    layers : str
        The trained layers: a group name of `LAYER_REGEX` or a regular expression (see `layer_regex`).
    epochs : int
        Epochs of this group (not cumulative), at least 0.
    learning_rate : float
        SGD learning rate of the group, above 0.

    Raises
    ------
    ValueError
        For invalid `layers`, negative `epochs` or a learning rate that is not above 0.

    Examples
    --------
    >>> EpochGroup("heads", 1, 1e-4)
    EpochGroup(layers='heads', epochs=1, learning_rate=0.0001)
    >>> EpochGroup("heads", -1, 1e-4)
    Traceback (most recent call last):
    ...
    ValueError: epoch group EpochGroup(...): epochs must be >= 0 and learning_rate > 0
    """

    layers: str
    epochs: int
    learning_rate: float

    def __post_init__(self):
        layer_regex(self.layers)
        if self.epochs < 0 or not self.learning_rate > 0:
            raise ValueError(f"epoch group {self}: epochs must be >= 0 and learning_rate > 0")


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class TrainJSON:
    """The settings of nucleAIzer's train.json (`train_params`), with the script's defaults for absent keys.

    `TrainJSON.original()` is the shipped train.json; `read_train_json` reads one.

    Parameters
    ----------
    epoch_groups : tuple of EpochGroup
        The schedule (default: all layers 1 epoch at 1e-3, ``5+`` 1 at 5e-4, heads 1 at 1e-4; the
        cumulative targets 1, 2, 3 of train.py).
    train_dir, output_model : str or None
        The original's work folder and output file; kept in the run settings only.
    input_model : str or None
        The initial weights (a legacy .h5), relative to the working directory or the JSON's folder.
    blank_mrcnn : bool
        Drop the class-specific heads of `input_model` (`COCO_HEAD_LAYERS`; default True).
    step_ratio : float or None
        Steps per epoch as a fraction of the training images (default None: use `step_num`).
    step_num : int
        Steps per epoch when `step_ratio` is None (default 1000).
    train_to_val_seed : str or None
        Seed of the validation split (`nucleaizer_tf.pipelines.train.original_split`; default None).
    train_to_val_ratio : float
        Chance of each image going to validation (default 0.2; 0.0 in the shipped file, quirk Q17).
    use_eval_in_val : bool
        The original's flag (default True); kept in the run settings only.
    random_augmentation_level : int
        Only 0 is supported (the imgaug/PIL augmentation was not ported).
    detection_nms_threshold, rpn_nms_threshold : float
        DETECTION_NMS_THRESHOLD and RPN_NMS_THRESHOLD (defaults 0.35, 0.55).
    image_size : int
        Network size D (default 1024).

    Examples
    --------
    >>> plan = TrainJSON.original()
    >>> plan.train_to_val_ratio, plan.steps_per_epoch(25), TrainJSON().steps_per_epoch(25)
    (0.0, 25, 1000)
    >>> [(g.layers, g.epochs, g.learning_rate) for g in plan.epoch_groups]
    [('all', 1, 0.001), ('5+', 1, 0.0005), ('heads', 1, 0.0001)]
    """

    epoch_groups: tuple[EpochGroup, ...] = (EpochGroup("all", 1, 0.001), EpochGroup("5+", 1, 0.0005),
                                            EpochGroup("heads", 1, 0.0001))
    train_dir: str | None = None
    input_model: str | None = None
    blank_mrcnn: bool = True
    output_model: str | None = None
    step_ratio: float | None = None
    step_num: int = 1000
    train_to_val_seed: str | None = None
    train_to_val_ratio: float = 0.2
    use_eval_in_val: bool = True
    random_augmentation_level: int = 0
    detection_nms_threshold: float = 0.35
    rpn_nms_threshold: float = 0.55
    image_size: int = 1024

    @classmethod
    def original(cls) -> TrainJSON:
        """The shipped kaggle_workflow/maskrcnn/config/train/train.json.

        Returns
        -------
        TrainJSON
            COCO start (`mask_rcnn_coco.h5`, heads blanked), one step per training image
            (``step_ratio=1.0``), seed ``"0"`` and ratio 0.0 (so "validation" is the first training
            image, quirk Q17), no evaluation in validation, the default epoch groups.

        Examples
        --------
        >>> TrainJSON.original().input_model
        'kaggle_workflow/maskrcnn/model/mask_rcnn_coco.h5'
        """
        return cls(train_dir="kaggle_workflow/outputs/train_maskrcnn",
                   input_model="kaggle_workflow/maskrcnn/model/mask_rcnn_coco.h5", blank_mrcnn=True,
                   output_model="kaggle_workflow/outputs/model/mask_rcnn_trained.h5", step_ratio=1.0,
                   train_to_val_seed="0", train_to_val_ratio=0.0, use_eval_in_val=False)

    def steps_per_epoch(self, n_train: int) -> int:
        """`int(n_train · step_ratio)` when step_ratio is given, else step_num (at least 1).

        Parameters
        ----------
        n_train : int
            Number of training images.

        Returns
        -------
        int
            Steps per epoch.

        Examples
        --------
        >>> TrainJSON(step_ratio=0.5).steps_per_epoch(25), TrainJSON(step_ratio=0.01).steps_per_epoch(25)
        (12, 1)
        """
        steps = int(float(n_train) * self.step_ratio) if self.step_ratio is not None else self.step_num
        return max(1, steps)

    def config(self, base: MaskRCNNConfig | None = None) -> MaskRCNNConfig:
        """The network configuration: `base` at `image_size` with the JSON's two NMS thresholds.

        Parameters
        ----------
        base : MaskRCNNConfig, optional
            The configuration to start from (default `MaskRCNNConfig()`).

        Returns
        -------
        MaskRCNNConfig
            `base.with_image_size(image_size)` with DETECTION_NMS_THRESHOLD and RPN_NMS_THRESHOLD replaced.

        Examples
        --------
        >>> config = TrainJSON(image_size=512).config()
        >>> config.IMAGE_MAX_DIM, config.DETECTION_NMS_THRESHOLD, config.RPN_NMS_THRESHOLD
        (512, 0.35, 0.55)
        """
        base = base if base is not None else MaskRCNNConfig()
        return base.with_image_size(self.image_size).replace(
            DETECTION_NMS_THRESHOLD=self.detection_nms_threshold, RPN_NMS_THRESHOLD=self.rpn_nms_threshold)

    def to_dict(self) -> dict:
        """JSON-ready dict of the settings (kept in the run summary).

        Returns
        -------
        dict
            Every field by name; the epoch groups as a list of dicts.

        Examples
        --------
        >>> TrainJSON().to_dict()["epoch_groups"][0]
        {'layers': 'all', 'epochs': 1, 'learning_rate': 0.001}
        """
        out = dataclasses.asdict(self)
        out["epoch_groups"] = [dataclasses.asdict(g) for g in self.epoch_groups]
        return out


def read_train_json(path: str | os.PathLike) -> TrainJSON:
    """Read a train.json: the original (`{"train_params": {...}}`, values as strings) or the bare dict.

    Unknown keys are ignored as in the original script (e.g. `show_inputs`, `eval_dir`);
    `random_augmentation_level > 0` (imgaug/PIL augmentation, not ported) is an error. Absent keys keep
    the `TrainJSON` defaults. An ``epoch_groups`` key, a list of ``{"layers", "epochs", "learning_rate"}``
    (each group's own epoch count), replaces the default schedule; booleans may be written as
    ``"true"``/``"1"``/``"yes"``.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    TrainJSON
        The settings.

    Raises
    ------
    NucleaizerError
        For an unreadable file or invalid JSON, parameters that are not an object or do not convert,
        `random_augmentation_level > 0`, an image size that is not a positive multiple of 64, or no
        epoch group with epochs > 0.

    Examples
    --------
    >>> plan = read_train_json("kaggle_workflow/maskrcnn/config/train/train.json")  # doctest: +SKIP
    >>> plan.steps_per_epoch(len(train_pairs))                                     # doctest: +SKIP
    """
    path = Path(path)
    data = read_json(path, "train.json")
    params = data.get("train_params", data) if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise NucleaizerError(f"{path}: expected a JSON object with the training parameters")
    try:
        kw: dict = {}
        if "epoch_groups" in params:
            kw["epoch_groups"] = tuple(EpochGroup(str(g["layers"]), int(g["epochs"]), float(g["learning_rate"]))
                                       for g in params["epoch_groups"])
        for key in ("train_dir", "input_model", "output_model"):
            if key in params:
                kw[key] = str(params[key])
        if "train_to_val_seed" in params:
            kw["train_to_val_seed"] = str(params["train_to_val_seed"])
        for key in ("blank_mrcnn", "use_eval_in_val"):
            if key in params:
                kw[key] = _bool(params[key])
        for key in ("step_ratio", "train_to_val_ratio", "detection_nms_threshold", "rpn_nms_threshold"):
            if key in params:
                kw[key] = float(params[key])
        for key in ("step_num", "random_augmentation_level", "image_size"):
            if key in params:
                kw[key] = int(params[key])
        result = TrainJSON(**kw)
    except (KeyError, TypeError, ValueError) as exc:
        raise NucleaizerError(f"{path}: invalid training parameters ({exc})") from None
    if result.random_augmentation_level > 0:
        raise NucleaizerError(f"{path}: random_augmentation_level {result.random_augmentation_level} is not "
                              "supported (only 0, the shipped setting)")
    if result.image_size % 64 or result.image_size <= 0:
        raise NucleaizerError(f"{path}: image_size must be a positive multiple of 64, got {result.image_size}")
    if not any(g.epochs > 0 for g in result.epoch_groups):
        raise NucleaizerError(f"{path}: no epoch group has epochs > 0")
    return result


# --------------------------------------------------------------------------------------------- data


def prepare_example(image_rgb8: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and label image resized and zero-padded to `size` × `size` as matterport's `load_image_gt`.

    The image as at inference (`resize_for_model`: Pillow bilinear, centred padding); labels by nearest
    neighbour (`scipy.ndimage.zoom(order=0)`, what `resize_mask` did per instance) and the same padding.
    The long side becomes `size`.

    Parameters
    ----------
    image_rgb8 : numpy.ndarray
        (H, W, 3) image, converted to uint8.
    labels : numpy.ndarray
        (H, W) integer label image (0 = background).
    size : int
        The network size D.

    Returns
    -------
    image : numpy.ndarray
        (D, D, 3) uint8.
    labels : numpy.ndarray
        (D, D) int32, 0 in the padding.

    Examples
    --------
    >>> labels = np.zeros((100, 200), np.int32)
    >>> labels[10:30, 20:60] = 1
    >>> image, padded = prepare_example(np.full((100, 200, 3), 128, np.uint8), labels, 256)
    >>> image.shape, padded.shape, padded.dtype
    ((256, 256, 3), (256, 256), dtype('int32'))
    >>> image[0, 0].tolist(), image[128, 128].tolist()  # 64 rows of padding on top
    ([0, 0, 0], [128, 128, 128])
    """
    from scipy import ndimage

    resized, window, scale, padding = resize_for_model(np.asarray(image_rgb8, np.uint8), size)
    labels = np.asarray(labels)
    if scale != 1:
        labels = ndimage.zoom(labels, scale, order=0)
    h, w = window[2] - window[0], window[3] - window[1]
    labels = labels[:h, :w]
    if labels.shape != (h, w):  # zoom's rounding never differs from Python's round; be safe anyway
        labels = np.pad(labels, ((0, h - labels.shape[0]), (0, w - labels.shape[1])))
    out = np.zeros((size, size), np.int32)
    out[window[0]:window[2], window[1]:window[3]] = labels
    return resized, out


def make_target_fn(config: MaskRCNNConfig, *, legacy_constant_crop: bool = True) -> Callable:
    """tf.data map (image uint8 [D, D, 3], labels int32 [D, D]) -> the training element (a dict).

    image: molded float32 (RGB − MEAN_PIXEL); gt_boxes [G, 4] pixels; gt_masks [G, 56, 56] uint8;
    rpn_match [A] int8 (unbalanced); rpn_gt [A] int32 (best ground truth of each anchor).

    Parameters
    ----------
    config : MaskRCNNConfig
        Its IMAGE_MAX_DIM (the anchors), MEAN_PIXEL and MINI_MASK_SHAPE are used.
    legacy_constant_crop : bool, optional
        See `targets.minimize_masks` (default True: an all-foreground crop gives an all-zero mini-mask,
        as the original).

    Returns
    -------
    callable
        ``target_fn(image, labels) -> dict`` with the keys above, for `make_dataset`'s `target_fn`.

    Examples
    --------
    >>> target_fn = make_target_fn(MaskRCNNConfig().with_image_size(256))  # doctest: +SKIP
    >>> sorted(target_fn(image, labels))                                  # doctest: +SKIP
    ['gt_boxes', 'gt_masks', 'image', 'rpn_gt', 'rpn_match']
    """
    anchors = tf.constant(pyramid_anchors(config.IMAGE_MAX_DIM, config))
    mean = np.asarray(config.MEAN_PIXEL, np.float32)

    def target_fn(image, labels):
        _, boxes, masks = gt_from_labels(labels, config.MINI_MASK_SHAPE, legacy_constant_crop=legacy_constant_crop)
        match, gt_index = match_anchors(anchors, boxes)
        return {"image": tf.cast(image, tf.float32) - mean, "gt_boxes": boxes, "gt_masks": masks,
                "rpn_match": tf.cast(match, tf.int8), "rpn_gt": gt_index}

    return target_fn


# --------------------------------------------------------------------------------------------- trainer


def init_from_scratch(model) -> None:
    """Make a freshly built (Keras-initialised) network trainable from scratch: every residual branch starts at zero.

    The gamma of each block's last BatchNorm `bn*_branch2c` is set to 0, so the 33 blocks of a
    ResNet-101 whose BatchNorms never normalise cannot multiply the activations. matterport started
    from ImageNet or COCO weights; this is what "no initial weights" means here.

    Parameters
    ----------
    model : MaskRCNN or keras.Model
        The network (its `keras_model` is used when it has one); changed in place.

    Examples
    --------
    >>> trainer = MaskRCNNTrainer(MaskRCNNConfig().with_image_size(256))  # doctest: +SKIP
    >>> init_from_scratch(trainer.model)                                  # doctest: +SKIP
    """
    km = getattr(model, "keras_model", model)
    for layer in km.layers:
        if re.fullmatch(r"bn\d[a-z]_branch2c", layer.name):
            layer.gamma.assign(np.zeros(layer.gamma.shape, np.float32))


def _walk_layers(model) -> list:
    """Top-level layers; the layers of a nested model (rpn_model) instead of the model itself."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_walk_layers(layer))
        else:
            out.append(layer)
    return out


def _is_batchnorm(layer) -> bool:
    inner = getattr(layer, "layer", layer)
    return isinstance(inner, keras.layers.BatchNormalization)


class MaskRCNNTrainer:
    """Trains a `MaskRCNN` (built here, or given) with the 53afbae recipe.

    Parameters
    ----------
    config : MaskRCNNConfig
        The network and training configuration; BATCH_SIZE must be 1 (IMAGES_PER_GPU = GPU_COUNT = 1).
    model : MaskRCNN, optional
        The network to train (default: a new `MaskRCNN(config)`).
    seed : int, optional
        Data stream, anchor/ROI sampling (default 0). Weight initialisation of a fresh model is the
        caller's (`keras.utils.set_random_seed` before constructing).
    stop_proposal_gradient : bool, optional
        matterport let the box-target gradient flow back through the proposals into the RPN deltas (it
        had no stop-gradient there); True cuts that path (the usual Faster R-CNN practice). Default False.
    legacy_constant_crop : bool, optional
        See `targets.minimize_masks` (default True).

    Attributes
    ----------
    config, model, seed, stop_proposal_gradient, legacy_constant_crop
        The arguments.
    core : keras.Model
        The shared part of `model`: input image to the FPN maps P2–P6 and the RPN outputs.
    anchors : tf.Tensor
        The pyramid anchors of the D × D image.
    global_step : int
        Training steps run by this trainer.

    Raises
    ------
    ValueError
        When `config.BATCH_SIZE` is not 1.

    Examples
    --------
    >>> keras.utils.set_random_seed(0)                                                      # doctest: +SKIP
    >>> trainer = MaskRCNNTrainer(MaskRCNNConfig().with_image_size(512), seed=0)             # doctest: +SKIP
    >>> trainer.load_weights("mask_rcnn_coco.h5", exclude_heads=True)                      # doctest: +SKIP
    >>> history = trainer.train(pairs, TrainJSON.original().epoch_groups, out_dir="run")   # doctest: +SKIP
    """

    def __init__(self, config: MaskRCNNConfig, model: MaskRCNN | None = None, *, seed: int = 0,
                 stop_proposal_gradient: bool = False, legacy_constant_crop: bool = True):
        if config.BATCH_SIZE != 1:
            raise ValueError("the legacy Mask R-CNN trains with batch size 1 (IMAGES_PER_GPU = GPU_COUNT = 1)")
        self.config = config
        self.model = model if model is not None else MaskRCNN(config)
        self.seed = int(seed)
        self.stop_proposal_gradient = stop_proposal_gradient
        self.legacy_constant_crop = legacy_constant_crop
        km = self.model.keras_model
        names = ["fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6", "rpn_class_logits", "rpn_class", "rpn_bbox"]
        self.core = keras.Model(km.get_layer("input_image").output, [km.get_layer(n).output for n in names],
                                name="mask_rcnn_core")
        self._train_config = config.replace(POST_NMS_ROIS_INFERENCE=config.POST_NMS_ROIS_TRAINING)
        self.anchors = tf.constant(pyramid_anchors(config.IMAGE_MAX_DIM, config))
        self.global_step = 0
        self._current = None
        self._step_cache: dict = {}

    # ----------------------------------------------------------------- weights

    def load_weights(self, path, *, exclude_heads: bool = False, strict: bool = True):
        """Initialise from a legacy .h5: `exclude_heads` = COCO start (train.py's `blank_mrcnn`).

        Parameters
        ----------
        path : str or os.PathLike
            A matterport / nucleAIzer weight file.
        exclude_heads : bool, optional
            Skip `COCO_HEAD_LAYERS`, the class-specific heads (default False).
        strict : bool, optional
            Every other weighted layer must match (default True); see `legacy_h5.load_legacy_weights`.

        Returns
        -------
        LoadReport
            What was loaded.

        Examples
        --------
        >>> trainer.load_weights("mask_rcnn_coco.h5", exclude_heads=True)  # doctest: +SKIP
        """
        from nucleaizer_tf.maskrcnn.legacy_h5 import load_legacy_weights

        exclude = COCO_HEAD_LAYERS if exclude_heads else ()
        return load_legacy_weights(self.model.keras_model, path, exclude=exclude, strict=strict)

    def save_weights(self, path) -> Path:
        """Write the weights in the legacy layout (atomically: temporary file + rename).

        Parameters
        ----------
        path : str or os.PathLike
            The ``.h5`` file, loadable by `load_legacy_weights` and matterport.

        Returns
        -------
        pathlib.Path
            `path`.

        Examples
        --------
        >>> trainer.save_weights("run/mask_rcnn_nuclei_0001.h5")  # doctest: +SKIP
        """
        from nucleaizer_tf.maskrcnn.legacy_h5 import save_legacy_weights

        return save_legacy_weights(self.model.keras_model, path)

    def selected_layers(self, layers: str) -> list:
        """The weighted layers a group selects (full match on the top-level or `rpn_model` layer name).

        Parameters
        ----------
        layers : str
            A group name or regular expression (`layer_regex`).

        Returns
        -------
        list of keras.layers.Layer
            The layers with weights whose name matches.

        Examples
        --------
        >>> [layer.name for layer in trainer.selected_layers("heads")][:2]  # doctest: +SKIP
        """
        regex = layer_regex(layers)
        return [layer for layer in _walk_layers(self.model.keras_model)
                if layer.weights and re.fullmatch(regex, layer.name)]

    def trainable_variables(self, layers: str) -> tuple[list, list]:
        """(variables to train, variables under weight decay) of a layer group.

        Parameters
        ----------
        layers : str
            A group name or regular expression (`layer_regex`).

        Returns
        -------
        train : list of keras.Variable
            The trainable weights of the selected layers (BatchNorm gamma/beta included).
        decay : list of keras.Variable
            The same without BatchNorm gamma/beta.

        Examples
        --------
        >>> train, decay = trainer.trainable_variables("5+")  # doctest: +SKIP
        """
        train, decay = [], []
        for layer in self.selected_layers(layers):
            bn = _is_batchnorm(layer)
            inner = getattr(layer, "layer", layer)
            for var in layer.trainable_weights:
                train.append(var)
                if not (bn and (var is getattr(inner, "gamma", None) or var is getattr(inner, "beta", None))):
                    decay.append(var)
        return train, decay

    # ----------------------------------------------------------------- data

    def prepare(self, items: Sequence) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
        """Resize/pad `Pair`s or (image, labels) arrays to D; drop those without any instance.

        Returns (examples, names of the dropped items).

        Parameters
        ----------
        items : sequence
            `Pair`s (read with `load_pair`) or (image, labels) tuples.

        Returns
        -------
        examples : list of tuple of numpy.ndarray
            `prepare_example` of every item with at least one object.
        dropped : list of str
            The dropped items: a pair's stem, or ``"items[i]"``.

        Examples
        --------
        >>> examples, dropped = trainer.prepare(pairs)  # doctest: +SKIP
        """
        from nucleaizer_tf.data import Pair, load_pair

        out, dropped = [], []
        for i, item in enumerate(items):
            if isinstance(item, Pair):
                image, labels = load_pair(item)
                name = item.stem
            else:
                image, labels = item
                name = f"items[{i}]"
            image, labels = prepare_example(image, labels, self.config.IMAGE_MAX_DIM)
            if labels.max() <= 0:
                dropped.append(name)
                continue
            out.append((image, labels))
        return out, dropped

    def dataset(self, examples, *, epoch: int, steps: int, augment=None) -> tf.data.Dataset:
        """`steps` training elements for `epoch` (a seed of its own, so a resumed epoch sees the same stream).

        Parameters
        ----------
        examples : list of tuple of numpy.ndarray
            What `prepare` returns.
        epoch : int
            The epoch, counted from 1; the stream's seed is ``(seed · 1000003 + epoch) mod 2^31``.
        steps : int
            Number of elements.
        augment : Augment, optional
            Default `Augment.maskrcnn()`, matterport's random left-right flip.

        Returns
        -------
        tf.data.Dataset
            Batch-1 elements of `make_target_fn`, shuffled, repeated and cut to `steps`.

        Examples
        --------
        >>> batch = next(iter(trainer.dataset(examples, epoch=1, steps=1)))  # doctest: +SKIP
        """
        from nucleaizer_tf.data import Augment, make_dataset

        ds = make_dataset(examples, crop_size=None, batch_size=1, shuffle=True,
                          seed=(self.seed * 1_000_003 + epoch) % (2**31),
                          augment=augment if augment is not None else Augment.maskrcnn(), image_dtype="uint8",
                          target_fn=make_target_fn(self.config, legacy_constant_crop=self.legacy_constant_crop),
                          repeat=True, num_parallel_calls=1)
        return ds.take(steps)

    # ----------------------------------------------------------------- the step

    def _element_spec(self):
        d = self.config.IMAGE_MAX_DIM
        mh, mw = self.config.MINI_MASK_SHAPE
        return {"image": tf.TensorSpec([1, d, d, 3], tf.float32), "gt_boxes": tf.TensorSpec([1, None, 4], tf.float32),
                "gt_masks": tf.TensorSpec([1, None, mh, mw], tf.uint8),
                "rpn_match": tf.TensorSpec([1, None], tf.int8), "rpn_gt": tf.TensorSpec([1, None], tf.int32)}

    def compute_losses(self, batch: dict, seed) -> dict:
        """The five losses of one batch-1 element (call inside a GradientTape to train).

        Parameters
        ----------
        batch : dict
            One element of `dataset`.
        seed : tf.Tensor or array_like
            Stateless seed, shape (2,) int64, split into the RPN anchor balancing, the ground-truth
            subset (at most MAX_GT_INSTANCES for the heads) and the ROI sampling.

        Returns
        -------
        dict of str to tf.Tensor
            The scalar losses, by the names of `LOSS_NAMES`.

        Examples
        --------
        >>> losses = trainer.compute_losses(batch, [0, 1])  # doctest: +SKIP
        """
        cfg = self.config
        seed = tf.convert_to_tensor(seed, tf.int64)
        rpn_seed, gt_seed, roi_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        image = batch["image"]
        gt_boxes, gt_masks = batch["gt_boxes"][0], batch["gt_masks"][0]
        rpn_match, rpn_bbox_target = sample_rpn_targets(
            tf.cast(batch["rpn_match"][0], tf.int32), batch["rpn_gt"][0], self.anchors, gt_boxes, cfg, rpn_seed)

        # A random subset of at most MAX_GT_INSTANCES for the heads (the RPN used all, as the original).
        n_gt = tf.shape(gt_boxes)[0]
        keep = tf.argsort(tf.random.stateless_uniform([n_gt], gt_seed))[: cfg.MAX_GT_INSTANCES]
        keep = tf.cond(n_gt > cfg.MAX_GT_INSTANCES, lambda: keep, lambda: tf.range(n_gt))
        gt_boxes, gt_masks = tf.gather(gt_boxes, keep), tf.gather(gt_masks, keep)

        p2, p3, p4, p5, p6, rpn_class_logits, rpn_class, rpn_bbox = self.core(image, training=True)
        image_hw = tf.shape(image)[1:3]
        proposals = propose(rpn_class, rpn_bbox, self.anchors, image_hw, self._train_config)[0]
        if self.stop_proposal_gradient:
            proposals = tf.stop_gradient(proposals)
        d = tf.cast(image_hw[0], tf.float32)
        rois, class_ids, deltas, masks = detection_targets(
            proposals, tf.ones([tf.shape(gt_boxes)[0]], tf.int32), gt_boxes / d, gt_masks, cfg, roi_seed)
        class_logits, _, bbox = self.model._classifier(rois[None], [p2, p3, p4, p5])
        mask = self.model._mask(rois[None], [p2, p3, p4, p5])
        return {
            "rpn_class_loss": L.rpn_class_loss(rpn_match, rpn_class_logits[0]),
            "rpn_bbox_loss": L.rpn_bbox_loss(rpn_bbox_target, rpn_match, rpn_bbox[0]),
            "mrcnn_class_loss": L.mrcnn_class_loss(class_ids, class_logits[0], tf.ones([cfg.NUM_CLASSES])),
            "mrcnn_bbox_loss": L.mrcnn_bbox_loss(deltas, class_ids, bbox[0]),
            "mrcnn_mask_loss": L.mrcnn_mask_loss(masks, class_ids, mask[0]),
        }

    def make_step(self, layers: str, learning_rate: float, momentum: float | None = None,
                  clip_norm: float | None = None):
        """(step(batch, step_index) -> losses dict, optimizer) for one epoch group.

        Parameters
        ----------
        layers : str
            The trained layers (`layer_regex`).
        learning_rate : float
            SGD learning rate.
        momentum, clip_norm : float, optional
            Default LEARNING_MOMENTUM (0.9) and GRADIENT_CLIP_NORM (5, a global norm) of the config.

        Returns
        -------
        step : callable
            ``step(batch, index)``, a `tf.function`: one SGD step, the seed folded in from `index`; returns
            the five losses, ``"weight_decay"`` and their sum ``"loss"``.
        optimizer : keras.optimizers.SGD
            The step's optimiser.

        Raises
        ------
        ValueError
            When `layers` selects no weighted layer.

        Examples
        --------
        >>> step, optimizer = trainer.make_step("heads", 1e-3)  # doctest: +SKIP
        """
        cfg = self.config
        train_vars, decay_vars = self.trainable_variables(layers)
        if not train_vars:
            raise ValueError(f"layers {layers!r} selects no weighted layer")
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=cfg.LEARNING_MOMENTUM if momentum is None else momentum,
            global_clipnorm=cfg.GRADIENT_CLIP_NORM if clip_norm is None else clip_norm)
        optimizer.build(train_vars)
        base = tf.constant([self.seed, 0x6D72636E], tf.int64)

        @tf.function(input_signature=[self._element_spec(), tf.TensorSpec([], tf.int64)])
        def step(batch, index):
            seed = tf.random.experimental.stateless_fold_in(base, index)
            with tf.GradientTape() as tape:
                values = self.compute_losses(batch, seed)
                values["weight_decay"] = L.weight_decay(decay_vars, cfg.WEIGHT_DECAY)
                total = tf.add_n(list(values.values()))
            grads = tape.gradient(total, train_vars)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, train_vars)]
            optimizer.apply_gradients(zip(grads, train_vars))
            values["loss"] = total
            return values

        return step, optimizer

    def step_for(self, layers: str, learning_rate: float):
        """The step of a layer group with a fresh optimiser state.

        The traced step is kept per group and its SGD state (momentum, iteration count) reset, which
        equals a new optimiser without a retrace.

        Parameters
        ----------
        layers : str
            The trained layers (`layer_regex`).
        learning_rate : float
            SGD learning rate, set on the kept optimiser.

        Returns
        -------
        callable
            The step of `make_step`.

        Examples
        --------
        >>> step = trainer.step_for("5+", 5e-4)  # doctest: +SKIP
        """
        if layers not in self._step_cache:
            self._step_cache[layers] = self.make_step(layers, learning_rate)
        step, optimizer = self._step_cache[layers]
        for var in optimizer.variables:
            var.assign(tf.zeros(var.shape, var.dtype))
        optimizer.learning_rate = learning_rate
        return step

    # ----------------------------------------------------------------- validation

    def validate(self, items: Sequence, options=None) -> float:
        """Mean DSB score of `segment` on `Pair`s or (image, labels) items at the training size D.

        Parameters
        ----------
        items : sequence
            `Pair`s or (image, labels) tuples.
        options : SegmentOptions, optional
            Default ``SegmentOptions(image_size=D)``.

        Returns
        -------
        float
            The DSB 2018 score of the set (0.0 when undefined).

        Examples
        --------
        >>> trainer.validate(val_pairs)  # doctest: +SKIP
        """
        from nucleaizer_tf.data import Pair, load_pair
        from nucleaizer_tf.maskrcnn.inference import SegmentOptions
        from nucleaizer_tf.metrics import score_dataset, score_image

        options = options or SegmentOptions(image_size=self.config.IMAGE_MAX_DIM)
        scores = []
        for i, item in enumerate(items):
            image, labels = load_pair(item) if isinstance(item, Pair) else item
            pred = self.model.segment(image, options)
            scores.append(score_image(labels, pred, name=getattr(item, "stem", str(i))))
        dsb = score_dataset(scores).dsb
        return float(dsb) if not math.isnan(dsb) else 0.0

    # ----------------------------------------------------------------- the loop

    def train(self, train_items: Sequence, groups: Sequence[EpochGroup], *, out_dir: str | os.PathLike,
              val_items: Sequence = (), steps_per_epoch: int | None = None, resume: bool = False,
              early_stopping_patience: int | None = None, validate_every: int = 1,
              reporter: Reporter = SILENT, on_epoch: Callable[[EpochRecord], None] | None = None,
              augment=None) -> TrainHistory:
        """Run the epoch groups; a legacy checkpoint `mask_rcnn_<name>_<epoch>.h5` after every epoch.

        Parameters
        ----------
        train_items, val_items
            `Pair`s or (image, labels) tuples; the validation images are scored (DSB 2018) every
            `validate_every` epochs and after the last one. Training images without any object are
            left out (`prepare`; `train_state.json` lists them).
        groups
            The `EpochGroup` schedule (layers, epochs, learning rate per group).
        out_dir
            Checkpoints and `train_state.json` (the history, written after each checkpoint).
        steps_per_epoch
            None = one step per training image (those kept).
        resume
            Continue after the last checkpoint in `out_dir` (weights loaded strictly; the optimiser
            starts fresh, as matterport's did at every group and every restart).
        early_stopping_patience
            Stop after that many validated epochs without a better DSB score.
        validate_every
            Validate every that many epochs (default 1).
        reporter
            Progress (`nucleaizer_tf.progress.Reporter`): one stage "training", one step per batch,
            labelled with the epoch and its losses.
        on_epoch
            Called with every finished epoch's `EpochRecord`.
        augment
            An `Augment` (default: matterport's horizontal flip).

        Returns
        -------
        TrainHistory
            Monitor ``"val_dsb"``; epochs counted from 1, as the checkpoint names; each record keeps
            its per-step losses in memory (`EpochRecord.step_losses`).

        Examples
        --------
        >>> history = trainer.train(pairs, [EpochGroup("heads", 1, 1e-3)], out_dir="run")  # doctest: +SKIP
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state_path = out_dir / "train_state.json"
        examples, dropped = self.prepare(train_items)
        if not examples:
            raise NucleaizerError("no training image has any labelled object")
        steps = steps_per_epoch or len(examples)
        history = TrainHistory(monitor="val_dsb")
        done = 0
        if resume:
            found = find_checkpoints(out_dir)
            if found:
                done, last = found[-1]
                self.load_weights(last)
                if state_path.is_file():
                    saved = TrainHistory.from_dict(json.loads(state_path.read_text())["history"])
                    kept = [e for e in saved.epochs if e.epoch <= done]
                    for record in kept:
                        history.add(record)
                history.resumed_from = done
        schedule = [(gi, g) for gi, g in enumerate(groups) for _ in range(g.epochs)]
        self._current = None
        step_fn = None
        with reporter.stage("training", steps * (len(schedule) - min(done, len(schedule)))) as advance:
            for epoch_index, (group_index, group) in enumerate(schedule):
                epoch = epoch_index + 1
                if epoch <= done:
                    continue
                if self._current != group_index:  # a fresh optimiser per group, as compile() per train() call
                    step_fn = self.step_for(group.layers, group.learning_rate)
                    self._current = group_index
                record = self._train_epoch(step_fn, examples, epoch, group, steps, augment, advance)
                if val_items and (epoch % validate_every == 0 or epoch == len(schedule)):
                    record.val_dsb = record.monitored = self.validate(val_items)
                record.checkpoint = str(self.save_weights(out_dir / checkpoint_name(self.config, epoch)))
                history.add(record)
                _write_json_atomic(state_path, {"config": self.config.to_dict(), "dropped_images": dropped,
                                                "history": history.to_dict()})
                if on_epoch:
                    on_epoch(record)
                if early_stopping_patience is not None and history.epochs_since_best() >= early_stopping_patience:
                    history.stopped_early = True
                    break
        return history

    def _train_epoch(self, step_fn, examples, epoch: int, group: EpochGroup, steps: int, augment,
                     advance) -> EpochRecord:
        sums: dict = {}
        step_losses = []
        start = time.perf_counter()
        first = None
        for i, batch in enumerate(self.dataset(examples, epoch=epoch, steps=steps, augment=augment)):
            values = step_fn(batch, tf.constant(epoch * 1_000_000 + i, tf.int64))
            values = {k: float(v) for k, v in values.items()}
            if not math.isfinite(values["loss"]):
                raise NucleaizerError(f"training diverged at epoch {epoch}, step {i + 1} (loss {values['loss']})")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            step_losses.append(values)
            if first is None:
                first = time.perf_counter() - start
            self.global_step += 1
            advance(f"epoch {epoch} " + short_losses(values))
        seconds = time.perf_counter() - start
        n = max(1, steps)
        per_step = (seconds - first) / (n - 1) if n > 1 and first is not None else seconds / n
        return EpochRecord(epoch=epoch, layers=group.layers, learning_rate=group.learning_rate, steps=steps,
                           losses={k: v / n for k, v in sums.items()}, seconds=seconds, seconds_per_step=per_step,
                           step_losses=step_losses)


#: short names of the losses, for progress labels and summaries
SHORT_LOSS_NAMES = {"rpn_class_loss": "rpn_cls", "rpn_bbox_loss": "rpn_box", "mrcnn_class_loss": "cls",
                    "mrcnn_bbox_loss": "box", "mrcnn_mask_loss": "mask", "weight_decay": "l2"}


def short_losses(losses: dict) -> str:
    """``"loss 1.234 rpn_cls 0.100 ..."``: a one-line view of a step's or an epoch's losses.

    Parameters
    ----------
    losses : dict of str to float
        Losses by name; `SHORT_LOSS_NAMES` shortens the known names, others are kept.

    Returns
    -------
    str
        ``"<name> <value:.3f>"`` per loss, in the dict's order.

    Examples
    --------
    >>> short_losses({"loss": 1.5, "rpn_class_loss": 0.1, "mrcnn_mask_loss": 0.25, "weight_decay": 0.01})
    'loss 1.500 rpn_cls 0.100 mask 0.250 l2 0.010'
    """
    return " ".join(f"{SHORT_LOSS_NAMES.get(k, k)} {v:.3f}" for k, v in losses.items())


def _write_json_atomic(path: Path, data: dict) -> None:
    from nucleaizer_tf.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))
