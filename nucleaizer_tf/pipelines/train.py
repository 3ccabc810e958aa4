"""Training from folders: pair images/masks, carve out validation, train, write the run summary.

Three entry points, one per `nucleaizer-tf train` command:

* `train_maskrcnn_folders`: the legacy Mask R-CNN (FinalModel/train.py + train.json): per-epoch legacy
  checkpoints `mask_rcnn_nuclei_<epoch>.h5` in the output folder, `mask_rcnn_trained.h5` at the end,
  `train_state.json` for resuming.
* `train_unet_folders`: one U-Net member (docs/method.md §6.10) written as a one-member ensemble folder.
* `train_ensemble_folders`: the seven members (sigmas 0, 0, 0.5, 0.5, 0.5, 1, 2) into one ensemble folder
  (manifest + weights) that the full pipeline reads; members already finished are skipped on resume.

Every run writes `summary.json` (losses per epoch, validation score, time per step) next to its outputs.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from nucleaizer_tf.data import Pair, pair_folders, split_pairs
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.model_folder import prepare_folder
from nucleaizer_tf.io.read import read_json
from nucleaizer_tf.io.write import check_writable_folder
from nucleaizer_tf.progress import SILENT, Reporter

__all__ = [
    "FINAL_MODEL",
    "RunSummary",
    "original_split",
    "resolve_validation",
    "train_ensemble_folders",
    "train_maskrcnn_folders",
    "train_unet_folders",
]

FINAL_MODEL = "mask_rcnn_trained.h5"
SUMMARY = "summary.json"


# ----------------------------------------------------------------------------------------- validation


def _folder_pairs(folder: Path, what: str = "validation") -> list[Pair]:
    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise NucleaizerError(f"{what} folder {folder} must hold images/ and masks/ sub-folders")
    return pair_folders(images, masks)


def resolve_validation(pairs: Sequence[Pair], validation, *, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train, validation) pairs for a validation spec.

    None: no validation. A folder with images/ and masks/: those pairs. A file: a stem list as the
    original's validation.txt (one stem per line; those pairs leave the training set). With a folder or a
    list, training pairs derived from a validation image (stem + `_`/`-`/`.` + anything, e.g. augmented
    copies) are left out too, as the original's carve-out deleted them (docs/method.md §6.9). A number in
    (0, 1), or a string of one: that fraction, drawn with `seed` (`nucleaizer_tf.data.split_pairs`;
    derived pairs are not looked for then).

    Parameters
    ----------
    pairs : sequence of Pair
        The training folder's pairs (e.g. from `pair_folders`).
    validation : None, str, os.PathLike or float
        The spec above; ``""`` counts as None.
    seed : int, optional
        Seed of the random draw of a fraction (default 0).

    Returns
    -------
    train : list of Pair
        The training pairs, in input order.
    validation : list of Pair
        The validation pairs: from the folder, or taken out of `pairs`.

    Raises
    ------
    NucleaizerError
        When `validation` is neither a folder (with images/ and masks/), a stem-list file nor a number.

    Examples
    --------
    >>> from pathlib import Path
    >>> pairs = [Pair(s, Path(f"images/{s}.png"), Path(f"masks/{s}.png")) for s in ("a", "a_aug1", "b", "c", "d")]
    >>> [[p.stem for p in part] for part in resolve_validation(pairs, None)]
    [['a', 'a_aug1', 'b', 'c', 'd'], []]
    >>> [[p.stem for p in part] for part in resolve_validation(pairs, "0.4")]
    [['a', 'a_aug1', 'b'], ['c', 'd']]
    >>> train, val = resolve_validation(pairs, "validation.txt")  # a stem list, e.g. "a"  # doctest: +SKIP
    >>> [p.stem for p in train]                                   # a_aug1 left out too   # doctest: +SKIP
    ['b', 'c', 'd']
    """
    pairs = list(pairs)
    if validation is None or validation == "":
        return pairs, []
    if isinstance(validation, (int, float)) and not isinstance(validation, bool):
        return split_pairs(pairs, float(validation), seed=seed)
    text = str(validation)
    path = Path(text)
    if path.is_dir():
        val = _folder_pairs(path)
        return _drop_derivatives(pairs, val), val
    if path.is_file():
        train, val = split_pairs(pairs, path)
        return _drop_derivatives(train, val), val
    try:
        fraction = float(text)
    except ValueError:
        raise NucleaizerError(f"validation {text!r} is neither a folder, a stem-list file nor a fraction") from None
    return split_pairs(pairs, fraction, seed=seed)


def with_extra_data(train: list[Pair], val: list[Pair], extra_data: Sequence[str | os.PathLike] = ()) -> list[Pair]:
    """Training pairs plus those of each extra folder (images/ + masks/, e.g. `style-transfer`'s OUT/train).

    Extra pairs derived from a validation image (or of the same stem) are left out, as for the main folder.

    Parameters
    ----------
    train, val : list of Pair
        The training and validation pairs (`resolve_validation`); `train` is kept as it is.
    extra_data : sequence of str or os.PathLike, optional
        Folders with images/ and masks/ sub-folders (default none).

    Returns
    -------
    list of Pair
        `train` followed by the extra folders' pairs, folder by folder.

    Raises
    ------
    NucleaizerError
        When an extra folder lacks images/ or masks/.

    Examples
    --------
    >>> from pathlib import Path
    >>> pairs = [Pair(s, Path(f"images/{s}.png"), Path(f"masks/{s}.png")) for s in ("a", "b")]
    >>> [p.stem for p in with_extra_data(pairs[1:], pairs[:1])]
    ['b']
    >>> train = with_extra_data(pairs[1:], pairs[:1], ["style_out/train"])  # doctest: +SKIP
    """
    extra = [pair for folder in extra_data for pair in _folder_pairs(Path(folder), "extra training")]
    return list(train) + _drop_derivatives(extra, val)


def _drop_derivatives(train: list[Pair], val: list[Pair]) -> list[Pair]:
    """Leave out training pairs derived from a validation image (`<stem>_aug...`, `<stem>-tile...`,
    `<stem>.x`): the original deleted every `<name>*` file of a validation name (docs/method.md §6.9, leakage)."""
    stems = {p.stem for p in val}

    def derived(stem: str) -> bool:
        return any(stem.startswith(v) and len(stem) > len(v) and not stem[len(v)].isalnum() for v in stems)

    return [p for p in train if p.stem not in stems and not derived(p.stem)]


def original_split(pairs: Sequence[Pair], ratio: float, seed: str | None) -> tuple[list[Pair], list[Pair]]:
    """FinalModel/train.py's split (docs/method.md, quirk Q17): `random.Random(seed).random() > ratio` → training.

    One draw per pair, in file order (sorted here; the original used the directory listing); an empty
    validation set gets the first training pair, so with the shipped ratio 0.0 "validation" is one
    training image. Derived pairs (augmented copies) are not left out.

    Parameters
    ----------
    pairs : sequence of Pair
        The pairs, in file order.
    ratio : float
        train.json's `train_to_val_ratio`: the chance of a pair going to validation.
    seed : str or None
        train.json's `train_to_val_seed` (a string, as the JSON holds it; ``random.Random`` seeds with
        the string itself).

    Returns
    -------
    train : list of Pair
        The training pairs, in input order.
    validation : list of Pair
        The validation pairs, in input order (at least one: the first training pair when none drew).

    Raises
    ------
    NucleaizerError
        When no pair is left for training.

    Examples
    --------
    >>> from pathlib import Path
    >>> pairs = [Pair(s, Path(f"images/{s}.png"), Path(f"masks/{s}.png")) for s in ("a", "b", "c")]
    >>> train, val = original_split(pairs, 0.0, "0")  # the shipped train.json
    >>> [p.stem for p in train], [p.stem for p in val]
    (['a', 'b', 'c'], ['a'])
    >>> [[p.stem for p in part] for part in original_split(pairs, 0.5, "0")]
    [['b'], ['a', 'c']]
    """
    rnd = random.Random(seed)
    train, val = [], []
    for p in pairs:
        (train if rnd.random() > ratio else val).append(p)
    if not train:
        raise NucleaizerError("the validation split left no training image")
    if not val:
        val = [train[0]]
    return train, val


# ----------------------------------------------------------------------------------------- summary


@dataclass
class RunSummary:
    """What a training run did; `summary.json` holds `to_dict()`.

    `epochs` holds every trained epoch as `EpochRecord.to_dict()` (epochs counted from 1; `member`
    names the ensemble member), `best_epoch` / `best_val` the best by `val_metric`.

    Parameters
    ----------
    kind : str
        ``"maskrcnn"``, ``"unet"``, ``"ensemble"`` or ``"default"``.
    out_dir : str
        The output folder.
    n_train, n_val : int
        Number of training (extra data included) and validation images.
    epochs : list of dict
        Every epoch trained in this run (and, for Mask R-CNN, those kept from a resumed run), as
        `EpochRecord.to_dict()`.
    best_epoch, best_val : int or float or None
        The best epoch (counted from 1) and its `val_metric` value; None without a monitored value.
    val_metric : str or None
        What `best_val` is: ``"dsb"`` (the validation DSB 2018 score: Mask R-CNN, U-Net members with
        `val_dsb`), the default model's monitor (``"val_loss"`` or ``"loss"``), or None.
    stopped_early : bool
        True when early stopping ended a run (any member, for an ensemble).
    resumed_from : int or None
        Mask R-CNN: the last epoch already done; ensembles: the number of members already finished.
    seconds : float
        Wall time of the whole call.
    seconds_per_step : float or None
        Median time per training step over the epochs.
    outputs : list of str
        The files written (weights, manifest, `summary.json`).
    settings : dict
        The settings the run used, JSON-ready.
    members : list of dict
        Ensembles: name, sigma, best epoch, monitor, best value and early stop of each member trained.

    Examples
    --------
    >>> summary = RunSummary(kind="unet", out_dir="run", n_train=4, n_val=1, seconds=12.5, seconds_per_step=0.25,
    ...                      epochs=[{"epoch": 1, "losses": {"loss": -0.61}, "seconds_per_step": 0.25,
    ...                               "val_dsb": 0.42, "member": "UNet_sigma0.0_1"}],
    ...                      best_epoch=1, best_val=0.42, val_metric="dsb", outputs=["run/summary.json"])
    >>> print("\\n".join(summary.lines()))
    unet: 4 training / 1 validation images, 1 epochs in 12.5 s (0.250 s/step)
      UNet_sigma0.0_1 epoch 1: loss=-0.6100 dsb=0.4200 (0.250 s/step)
    best dsb 0.4200 at epoch 1
    wrote run/summary.json
    """

    kind: str
    out_dir: str
    n_train: int
    n_val: int
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val: float | None = None
    val_metric: str | None = None
    stopped_early: bool = False
    resumed_from: int | None = None
    seconds: float = 0.0
    seconds_per_step: float | None = None
    outputs: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    members: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (what `summary.json` holds).

        Returns
        -------
        dict
            The fields by name.

        Examples
        --------
        >>> RunSummary(kind="default", out_dir="model", n_train=3, n_val=0).to_dict()["n_train"]
        3
        """
        return asdict(self)

    def lines(self) -> list[str]:
        """A short human-readable report (the CLI prints it).

        Returns
        -------
        list of str
            The totals; "resumed after epoch N" when resumed; the last 10 epochs (member, losses, DSB
            score, time per step); the best value; early stopping; one "wrote PATH" per output.

        Examples
        --------
        >>> RunSummary(kind="maskrcnn", out_dir="run", n_train=10, n_val=1, seconds=3.0).lines()
        ['maskrcnn: 10 training / 1 validation images, 0 epochs in 3.0 s']
        """
        out = [f"{self.kind}: {self.n_train} training / {self.n_val} validation images, {len(self.epochs)} epochs "
               f"in {self.seconds:.1f} s" + (f" ({self.seconds_per_step:.3f} s/step)" if self.seconds_per_step else "")]
        if self.resumed_from:
            out.append(f"resumed after epoch {self.resumed_from}")
        for e in self.epochs[-10:]:
            losses = " ".join(f"{k}={v:.4f}" for k, v in e.get("losses", {}).items())
            val = f" dsb={e['val_dsb']:.4f}" if e.get("val_dsb") is not None else ""
            who = f"{e['member']} " if e.get("member") else ""
            out.append(f"  {who}epoch {e['epoch']}: {losses}{val} ({e.get('seconds_per_step', 0):.3f} s/step)")
        if self.best_val is not None:
            out.append(f"best {self.val_metric} {self.best_val:.4f} at epoch {self.best_epoch}")
        if self.stopped_early:
            out.append("stopped early (no validation improvement)")
        out += [f"wrote {p}" for p in self.outputs]
        return out


def _write_summary(summary: RunSummary) -> Path:
    from nucleaizer_tf.io import write_json

    path = Path(summary.out_dir) / SUMMARY
    write_json(path, summary.to_dict())
    return path


def _pairs(images_dir, masks_dir) -> list[Pair]:
    return pair_folders(images_dir, masks_dir)


# ----------------------------------------------------------------------------------------- Mask R-CNN


def _resolve_init(init, plan, config_path) -> Path | None:
    """--init beats the JSON's input_model; "scratch"/"none" = no weights. JSON paths are tried relative to
    the working directory, then to the JSON file's folder."""
    if init is not None:
        if str(init).lower() in ("scratch", "none", ""):
            return None
        path = Path(init)
        if not path.is_file():
            raise NucleaizerError(f"initial weights {path} not found")
        return path
    if plan.input_model and config_path is not None:
        for base in (Path.cwd(), Path(config_path).resolve().parent):
            candidate = base / plan.input_model
            if candidate.is_file():
                return candidate
        raise NucleaizerError(f"input_model {plan.input_model} of {config_path} not found (give --init FILE.h5 "
                              "or --init scratch)")
    return None


def train_maskrcnn_folders(
    images_dir, masks_dir, out_dir, *,
    init: str | os.PathLike | None = None,
    blank_heads: bool | None = None,
    config_json: str | os.PathLike | None = None,
    validation=None,
    extra_data: Sequence[str | os.PathLike] = (),
    image_size: int | None = None,
    steps_per_epoch: int | None = None,
    resume: bool = False,
    early_stopping: int | None = None,
    seed: int = 0,
    config=None,
    reporter: Reporter = SILENT,
) -> RunSummary:
    """Train the legacy Mask R-CNN on `images_dir`/`masks_dir` into `out_dir` (see module doc).

    The recipe is `nucleaizer_tf.maskrcnn.training.MaskRCNNTrainer` (docs/method.md §6.11). Writes, in
    `out_dir`: a legacy-layout checkpoint `mask_rcnn_nuclei_<epoch:04d>.h5` after every epoch (epochs
    counted from 1), `train_state.json` (the history, for resuming), `mask_rcnn_trained.h5` (a copy of
    the last checkpoint, `FINAL_MODEL`) and `summary.json`.

    Parameters
    ----------
    images_dir, masks_dir : str or os.PathLike
        Training images and their label masks (same stems).
    out_dir : str or os.PathLike
        The output folder; one that already holds checkpoints is refused unless `resume`.
    init : str or os.PathLike, optional
        A legacy .h5 (COCO or nucleAIzer), ``"scratch"`` (or ``"none"``: `init_from_scratch`), or None
        (default) = the JSON's input_model, tried relative to the working directory and then to the
        JSON file's folder; without `config_json` (the shipped plan) None means scratch.
    blank_heads : bool, optional
        Drop the class-specific heads of the init file (COCO start; default: the JSON's blank_mrcnn,
        True in the shipped one).
    config_json : str or os.PathLike, optional
        A train.json (default: the shipped one: all/5+/heads at 1e-3/5e-4/1e-4, one epoch each,
        steps = #training images, 1024 px, no real validation).
    validation : optional
        See `resolve_validation`; None (default) = the JSON's own split (`original_split`, docs/method.md,
        quirk Q17).
    extra_data : sequence of str or os.PathLike, optional
        Folders with images/ + masks/ added to the training set (e.g. style-transfer output).
    image_size : int, optional
        Network size D, a multiple of 64 (default: the JSON's image_size, 1024 in the shipped one).
    steps_per_epoch : int, optional
        Steps per epoch (default: the JSON's, `TrainJSON.steps_per_epoch` of the training pairs).
    resume : bool, optional
        Continue after the last checkpoint in `out_dir` (default False).
    early_stopping : int, optional
        Stop after this many validated epochs without a better validation DSB score (default never).
    seed : int, optional
        Seed of Keras, the data stream, the anchor/ROI sampling and a fraction `validation` (default 0).
    config : MaskRCNNConfig, optional
        A MaskRCNNConfig to start from (tests: a small network); the JSON's sizes/thresholds apply on top.
    reporter : Reporter, optional
        Progress (`nucleaizer_tf.progress.Reporter`), one step per training batch.

    Returns
    -------
    RunSummary
        Kind ``"maskrcnn"``, what `summary.json` holds; `val_metric` ``"dsb"`` with validation images.

    Raises
    ------
    NucleaizerError
        For a setting below its minimum or an image size that is not a multiple of 64, an unwritable
        `out_dir`, an unreadable train.json, no training pair left after the split, missing initial
        weights, or checkpoints in `out_dir` without `resume`.

    Examples
    --------
    >>> summary = train_maskrcnn_folders("train/images", "train/masks", "run", init="scratch")  # doctest: +SKIP
    >>> print("\\n".join(summary.lines()))                                                    # doctest: +SKIP
    """
    from nucleaizer_tf.maskrcnn.training import MaskRCNNTrainer, TrainJSON, find_checkpoints, read_train_json

    start = time.perf_counter()
    _check_numbers(image_size=(image_size, 64, "--image-size"), steps=(steps_per_epoch, 1, "--steps"),
                   early=(early_stopping, 1, "--early-stopping"))
    if image_size is not None and int(image_size) % 64:
        raise NucleaizerError(f"--image-size {image_size}: must be a multiple of 64")
    check_writable_folder(out_dir)
    plan = read_train_json(config_json) if config_json is not None else TrainJSON.original()
    if image_size is not None:
        plan = TrainJSON(**{**plan.__dict__, "image_size": int(image_size)})
    pairs = _pairs(images_dir, masks_dir)
    if validation is None:
        train_pairs, val_pairs = original_split(pairs, plan.train_to_val_ratio, plan.train_to_val_seed)
    else:
        train_pairs, val_pairs = resolve_validation(pairs, validation, seed=seed)
    train_pairs = with_extra_data(train_pairs, val_pairs, extra_data)
    if not train_pairs:
        raise NucleaizerError("no training pairs left after the validation split")
    init_path = _resolve_init(init, plan, config_json)
    blank = plan.blank_mrcnn if blank_heads is None else blank_heads
    cfg = plan.config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume and find_checkpoints(out_dir):
        raise NucleaizerError(f"{out_dir} already holds checkpoints; use --resume to continue or another --out")

    import keras

    keras.utils.set_random_seed(seed)
    trainer = MaskRCNNTrainer(cfg, seed=seed)
    if init_path is not None:
        trainer.load_weights(init_path, exclude_heads=blank)
    else:
        from nucleaizer_tf.maskrcnn.training import init_from_scratch

        init_from_scratch(trainer.model)
    steps = steps_per_epoch or plan.steps_per_epoch(len(train_pairs))
    history = trainer.train(train_pairs, plan.epoch_groups, out_dir=out_dir, val_items=val_pairs,
                            steps_per_epoch=steps, resume=resume, early_stopping_patience=early_stopping,
                            reporter=reporter)
    outputs = []
    if history.epochs:
        last = Path(history.epochs[-1].checkpoint)
        final = out_dir / FINAL_MODEL
        from nucleaizer_tf.io import atomic_path

        with atomic_path(final) as tmp:
            shutil.copyfile(last, tmp)
        outputs.append(str(final))
    per_step = [e.seconds_per_step for e in history.epochs]
    summary = RunSummary(
        kind="maskrcnn", out_dir=str(out_dir), n_train=len(train_pairs), n_val=len(val_pairs),
        epochs=[e.to_dict() for e in history.epochs],
        best_epoch=history.best_epoch, best_val=history.best_value, val_metric="dsb" if val_pairs else None,
        stopped_early=history.stopped_early, resumed_from=history.resumed_from,
        seconds=time.perf_counter() - start, seconds_per_step=float(np.median(per_step)) if per_step else None,
        outputs=outputs,
        settings={"train_json": plan.to_dict(), "init": str(init_path) if init_path else "scratch",
                  "blank_heads": bool(blank), "steps_per_epoch": steps, "seed": seed,
                  "validation": [p.stem for p in val_pairs], "config": cfg.to_dict()},
    )
    summary.outputs.append(str(_write_summary(summary)))
    return summary


# ----------------------------------------------------------------------------------------- U-Net


def _unet_val_dsb(model, val_items, image_mode: str) -> float:
    """Mean DSB of the member's map thresholded at 0.5 and split into 8-connected components."""
    from skimage.measure import label

    from nucleaizer_tf.data import load_pair
    from nucleaizer_tf.metrics import score_dataset, score_image
    from nucleaizer_tf.unet.ensemble import predict_probability

    scores = []
    for item in val_items:
        image, labels = load_pair(item, mode=image_mode) if isinstance(item, Pair) else item
        pred = label(predict_probability(model, image) >= 0.5, connectivity=2)
        scores.append(score_image(labels, pred))
    dsb = score_dataset(scores).dsb
    return 0.0 if math.isnan(dsb) else float(dsb)


def _train_member(name: str, sigma: float, train_pairs, val_pairs, out_dir: Path, *, arch: dict, epochs: int,
                  batch_size: int, crop_size: int, learning_rate: float, lr_schedule: bool,
                  early_stopping: int | None, steps_per_epoch: int | None, seed: int, val_dsb: bool,
                  reporter: Reporter, image_mode: str = "nucleaizer"):
    import keras

    from nucleaizer_tf.unet.ensemble import MemberSpec
    from nucleaizer_tf.unet.targets import soft_target_items, target_fn
    from nucleaizer_tf.unet.train import WEIGHTS_SUFFIX, TrainConfig, soft_jaccard_loss, train_unet

    spec = MemberSpec(name, float(sigma), name + WEIGHTS_SUFFIX, dict(arch))
    keras.utils.set_random_seed(seed)
    model = spec.build()
    train_items = soft_target_items(train_pairs, sigma, image_mode)
    val_items = soft_target_items(val_pairs, sigma, image_mode) if val_pairs else []
    config = TrainConfig(epochs=epochs, batch_size=batch_size, crop_size=crop_size, learning_rate=learning_rate,
                         lr_milestones=(50, 70, 90) if lr_schedule else (), steps_per_epoch=steps_per_epoch,
                         early_stopping_patience=early_stopping, checkpoint_path=out_dir / spec.weights, seed=seed,
                         image_mode=image_mode)

    def on_epoch(record):
        record.member = name
        if val_dsb and val_pairs:
            record.val_dsb = _unet_val_dsb(model, val_pairs, image_mode)

    history = train_unet(model, train_items, val_items, target_fn=target_fn, loss=soft_jaccard_loss, config=config,
                         reporter=reporter, on_epoch=on_epoch, name=f"training {name}")
    if not (out_dir / spec.weights).is_file():  # no improvement ever recorded: keep the final weights
        from nucleaizer_tf.unet.train import save_weights_atomic

        save_weights_atomic(model, out_dir / spec.weights)
    return spec, model, history


def _check_numbers(**values) -> None:
    """Refuse, in one line, a whole-number setting below its minimum (None: not given)."""
    for value, minimum, flag in values.values():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise NucleaizerError(f"{flag} {value}: must be a whole number of at least {minimum}")


def _default_arch(arch: dict | None) -> dict:
    import inspect

    from nucleaizer_tf.unet.model import build_unet

    keys = {"in_channels", "out_channels", "base_filters", "depth", "output_activation"}
    defaults = {k: v.default for k, v in inspect.signature(build_unet).parameters.items() if k in keys}
    return {**defaults, **(arch or {})}


def train_ensemble_folders(
    images_dir, masks_dir, out_dir, *,
    sigmas: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    validation=None,
    extra_data: Sequence[str | os.PathLike] = (),
    epochs: int = 100,
    batch_size: int = 12,
    crop_size: int = 256,
    learning_rate: float = 1e-3,
    lr_schedule: bool = False,
    early_stopping: int | None = None,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    arch: dict | None = None,
    val_dsb: bool = True,
    resume: bool = False,
    kind: str = "ensemble",
    reporter: Reporter = SILENT,
) -> RunSummary:
    """Train U-Net members (default: the original seven) into the ensemble folder `out_dir`.

    Each member keeps its best-validation weights (`<member>.weights.h5`, rewritten at each improvement;
    without validation the training loss is monitored); the manifest is written after every finished
    member, so the folder is always a loadable ensemble of the members done so far. With `resume`,
    members listed in the existing manifest are kept and not trained again. `extra_data`: folders with
    images/ + masks/ added to the training set (e.g. style-transfer output). `reporter`: progress, one
    stage per member. Each member is trained by `nucleaizer_tf.unet.train.train_unet` with the
    soft-Jaccard loss on its Gaussian-blurred target (docs/method.md §6.10); `summary.json` is written
    at the end.

    Parameters
    ----------
    images_dir, masks_dir : str or os.PathLike
        Training images and their label masks (same stems).
    out_dir : str or os.PathLike
        The ensemble folder (`manifest.json` + one weight file per member); one that already holds a
        manifest is refused unless `resume`.
    sigmas : sequence of float, optional
        Target blur of each member (default the original (0, 0, 0.5, 0.5, 0.5, 1, 2)).
    names : sequence of str, optional
        One member name per sigma (default `UNet_sigma<σ:.1f>_<replicate>`, replicates counted from 1).
    validation, extra_data : optional
        See `resolve_validation` (default None: no validation) and `with_extra_data`.
    epochs, batch_size, crop_size, learning_rate : optional
        100, 12, 256 and 1e-3 by default (the original); `crop_size` must be a multiple of 2^depth.
    lr_schedule : bool, optional
        ×0.1 at epochs 50, 70, 90, the original's intent (default False: a constant rate, as the
        original ran, quirk Q7).
    early_stopping : int, optional
        Stop a member after this many epochs without a better monitored loss (validation loss, or
        training loss without validation; default never).
    steps_per_epoch : int, optional
        Batches per epoch from an endless stream (default: one pass over the training images).
    seed : int, optional
        Seed of the split; member k (counted from 0) uses ``seed + k`` for its weights and data stream.
    arch : dict, optional
        `build_unet` arguments overriding its defaults (in_channels, out_channels, base_filters, depth,
        output_activation).
    val_dsb : bool, optional
        Also score the validation images (DSB 2018, map ≥ 0.5 split into 8-connected components) after
        every epoch (default True); only reported, the weights kept follow the loss.
    resume : bool, optional
        Keep the members already in `out_dir`'s manifest (default False).
    kind : str, optional
        `RunSummary.kind` (default ``"ensemble"``; `train_unet_folders` passes ``"unet"``).
    reporter : Reporter, optional
        Progress, one stage ``"training <member>"`` per member, one step per batch.

    Returns
    -------
    RunSummary
        What `summary.json` holds: every member's epochs, the best validation DSB score over all of
        them, and `members`.

    Raises
    ------
    NucleaizerError
        For a setting below its minimum, a crop that is not a multiple of 2^depth, a learning rate that
        is not a finite number above 0, an unwritable `out_dir`, or an existing ensemble without `resume`.
    ValueError
        When `names` and `sigmas` differ in length.

    Examples
    --------
    >>> summary = train_ensemble_folders("train/images", "train/masks", "unets", epochs=100)  # doctest: +SKIP
    >>> UNetEnsemble.load("unets").predict(image)                                          # doctest: +SKIP
    """
    from nucleaizer_tf.unet.ensemble import MANIFEST, ORIGINAL_SIGMAS, member_names, write_ensemble_manifest

    start = time.perf_counter()
    arch = _default_arch(arch)
    step = 2 ** int(arch["depth"])
    _check_numbers(epochs=(epochs, 1, "--epochs"), batch=(batch_size, 1, "--batch"), crop=(crop_size, step, "--crop"),
                   steps=(steps_per_epoch, 1, "--steps"), early=(early_stopping, 1, "--early-stopping"),
                   filters=(arch.get("base_filters"), 1, "--base-filters"))
    if isinstance(crop_size, (int, np.integer)) and crop_size % step:
        raise NucleaizerError(f"--crop {crop_size}: must be a multiple of {step} (the U-Net pools {arch['depth']} times)")
    if not (isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool)
            and math.isfinite(learning_rate) and learning_rate > 0):
        raise NucleaizerError(f"--lr {learning_rate}: must be a finite number above 0")
    check_writable_folder(out_dir)
    sigmas = list(ORIGINAL_SIGMAS if sigmas is None else sigmas)
    names = list(names) if names is not None else member_names(sigmas)
    if len(names) != len(sigmas):
        raise ValueError("one name per sigma")
    pairs = _pairs(images_dir, masks_dir)
    train_pairs, val_pairs = resolve_validation(pairs, validation, seed=seed)
    train_pairs = with_extra_data(train_pairs, val_pairs, extra_data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        if not resume:
            raise NucleaizerError(f"{out_dir} already holds an ensemble; use --resume to continue or another --out")
        recorded = read_json(manifest_path, "ensemble manifest")
        members = recorded.get("members") if isinstance(recorded, dict) else None
        if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                                    for m in members):
            raise NucleaizerError(f"{manifest_path}: not an ensemble manifest this run wrote (its members "
                                  "are not a list of named entries); use another --out")
        done = {m["name"]: m for m in members}
    summary = RunSummary(kind=kind, out_dir=str(out_dir), n_train=len(train_pairs), n_val=len(val_pairs),
                         val_metric="dsb" if (val_dsb and val_pairs) else None,
                         settings={"sigmas": sigmas, "epochs": epochs, "batch_size": batch_size, "crop_size": crop_size,
                                   "learning_rate": learning_rate, "lr_schedule": lr_schedule, "seed": seed,
                                   "architecture": arch, "validation": [p.stem for p in val_pairs]})
    finished: list[dict] = [done[n] for n in names if n in done]
    if done:
        summary.resumed_from = len(finished)
    per_step = []
    for index, (name, sigma) in enumerate(zip(names, sigmas)):
        if name in done:
            continue
        spec, _, history = _train_member(
            name, sigma, train_pairs, val_pairs, out_dir, arch=arch, epochs=epochs, batch_size=batch_size,
            crop_size=crop_size, learning_rate=learning_rate, lr_schedule=lr_schedule, early_stopping=early_stopping,
            steps_per_epoch=steps_per_epoch, seed=seed + index, val_dsb=val_dsb, reporter=reporter)
        summary.epochs.extend(e.to_dict() for e in history.epochs)
        per_step.extend(e.seconds_per_step for e in history.epochs)
        summary.members.append({"name": name, "sigma": float(sigma), "best_epoch": history.best_epoch,
                                "monitor": history.monitor, "best_value": history.best_value,
                                "stopped_early": history.stopped_early})
        summary.stopped_early = summary.stopped_early or history.stopped_early
        finished.append(asdict(spec))
        order = {n: i for i, n in enumerate(names)}
        finished.sort(key=lambda m: order.get(m["name"], len(order)))
        write_ensemble_manifest(out_dir, finished)
    vals = [(r["val_dsb"], r["epoch"]) for r in summary.epochs if r.get("val_dsb") is not None]
    if vals:
        summary.best_val, summary.best_epoch = max(vals)
    summary.seconds = time.perf_counter() - start
    summary.seconds_per_step = float(np.median(per_step)) if per_step else None
    summary.outputs = [str(out_dir / m["weights"]) for m in finished] + [str(manifest_path)]
    summary.outputs.append(str(_write_summary(summary)))
    return summary


def train_unet_folders(images_dir, masks_dir, out_dir, *, sigma: float = 0.0, name: str | None = None,
                       **kwargs) -> RunSummary:
    """One U-Net member with Gaussian `sigma`, written as a one-member ensemble folder.

    See `train_ensemble_folders` for the other arguments.

    Parameters
    ----------
    images_dir, masks_dir : str or os.PathLike
        Training images and their label masks (same stems).
    out_dir : str or os.PathLike
        The ensemble folder to write.
    sigma : float, optional
        Gaussian blur of the training target (default 0.0).
    name : str, optional
        The member's name (default `UNet_sigma<σ:.1f>_1`).
    **kwargs
        Any other argument of `train_ensemble_folders` but `sigmas`, `names` and `kind`.

    Returns
    -------
    RunSummary
        Kind ``"unet"``, what `summary.json` holds.

    Examples
    --------
    >>> summary = train_unet_folders("train/images", "train/masks", "unet_s1", sigma=1.0)  # doctest: +SKIP
    >>> summary.members[0]["name"]                                                      # doctest: +SKIP
    'UNet_sigma1.0_1'
    """
    from nucleaizer_tf.unet.ensemble import member_names

    name = name or member_names([sigma])[0]
    return train_ensemble_folders(images_dir, masks_dir, out_dir, sigmas=[sigma], names=[name], kind="unet", **kwargs)


# ----------------------------------------------------------------------------------------- default model


def train_default_folders(
    images_dir, masks_dir, out_dir, *,
    init: str | os.PathLike = "shipped",
    validation=None,
    extra_data: Sequence[str | os.PathLike] = (),
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    groups=None,
    work_dir: str | os.PathLike | None = None,
    resume: bool = False,
    polish_epochs: int | None = None,
    reporter: Reporter = SILENT,
) -> RunSummary:
    """Fine-tune (or retrain) the default model on annotated folders; write a model folder to `out_dir`.

    Parameters
    ----------
    images_dir, masks_dir
        Training images and their label masks (same stems).
    out_dir
        The model folder to write (`manifest.json` + weights + `summary.json`), what `adapt` writes and
        `predict --model` reads. A folder that already holds a model is refused.
    init
        ``"shipped"``: fine-tune the shipped model; a model folder: fine-tune that one; ``"scratch"``:
        train the shipped model's recipe (`nucleaizer_tf.default_model.general`) from random weights,
        resumably (`nucleaizer_tf.pipelines.train_default.train_general_folders`; needs `validation`).
    validation, extra_data
        As for the U-Net commands (`resolve_validation`; folders with images/ and masks/); `extra_data`
        only when fine-tuning.
    epochs, steps_per_epoch, learning_rate
        Defaults: fine-tuning 10 epochs × 20 batches at 3e-4; from scratch the general recipe's 32 × 200
        at 1e-3 (`GeneralRecipe`).
    groups, work_dir, resume, polish_epochs
        From scratch only: the image groups (a CSV of ``id``, ``modality``), the folder of prepared
        images and resumable state, whether to continue the run saved there, and the epochs of the
        recipe's closing stage (`train_general_folders`; default `GeneralRecipe.polish_epochs`).
    seed
        Seed of the crops, flips and jitter.
    reporter
        Progress (`nucleaizer_tf.progress.Reporter`), one step per batch.

    Returns
    -------
    RunSummary
        What `summary.json` in `out_dir` holds.

    Examples
    --------
    >>> summary = train_default_folders("train/images", "train/masks", "my_model")  # doctest: +SKIP
    >>> from nucleaizer_tf import load_model
    >>> labels = load_model("my_model").segment(image)                            # doctest: +SKIP
    """
    from nucleaizer_tf.data import load_pair
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.default_model.recipe import fine_tune

    start = time.perf_counter()
    for name, value, minimum in (("--epochs", epochs, 1), ("--steps", steps_per_epoch, 1),
                                 ("--polish-epochs", polish_epochs, 0)):
        if value is not None and value < minimum:
            raise NucleaizerError(f"{name} must be at least {minimum}, got {value}")
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate > 0):
        raise NucleaizerError(f"--lr must be a finite number above 0, got {learning_rate}")
    scratch = str(init).lower() == "scratch"
    if not scratch and (groups is not None or work_dir is not None or resume or polish_epochs is not None):
        raise NucleaizerError("--groups, --work, --resume and --polish-epochs apply to --init scratch only")
    if scratch:
        from nucleaizer_tf.pipelines.train_default import train_general_folders

        if extra_data:
            raise NucleaizerError("--extra-data applies to fine-tuning; from scratch, put the pairs in the training folders")
        from nucleaizer_tf.default_model.general import GeneralRecipe

        recipe = GeneralRecipe()
        if learning_rate is not None:
            recipe = replace(recipe, learning_rate=learning_rate)
        if polish_epochs is not None:
            recipe = replace(recipe, polish_epochs=polish_epochs)
        return train_general_folders(images_dir, masks_dir, out_dir, validation=validation, groups=groups,
                                     work_dir=work_dir, recipe=recipe, epochs=epochs,
                                     steps_per_epoch=steps_per_epoch, seed=seed, resume=resume,
                                     reporter=reporter)
    out_dir = Path(out_dir)
    prepare_folder(out_dir)  # refuse an existing model before the work
    pairs = _pairs(images_dir, masks_dir)
    train_pairs, val_pairs = resolve_validation(pairs, validation, seed=seed)
    train_pairs = with_extra_data(train_pairs, val_pairs, extra_data)
    if not train_pairs:
        raise NucleaizerError("no training pairs left after the validation split")
    train = [load_pair(p, mode="percentile") for p in train_pairs]
    val = [load_pair(p, mode="percentile") for p in val_pairs]

    model = DefaultModel.load(None if str(init).lower() == "shipped" else init)
    model, history, config = fine_tune(model, train, epochs=epochs or 10, steps_per_epoch=steps_per_epoch or 20,
                                       learning_rate=learning_rate or 3e-4, val_pairs=val, seed=seed,
                                       reporter=reporter)
    model.save(out_dir, overwrite=True, trained={"init": str(init), "images": str(images_dir),
                                                   "n_train": len(train), "n_val": len(val),
                                                   "epochs": len(history.epochs), "best_epoch": history.best_epoch})
    summary = RunSummary(kind="default", out_dir=str(out_dir), n_train=len(train), n_val=len(val),
                         epochs=[e.to_dict() for e in history.epochs], best_epoch=history.best_epoch,
                         best_val=history.best_value, val_metric=history.monitor, seconds=time.perf_counter() - start,
                         seconds_per_step=float(np.median([e.seconds_per_step for e in history.epochs])),
                         outputs=[str(out_dir / "manifest.json")],
                         settings={"init": str(init), "config": config.to_dict(),
                                   "validation": [p.stem for p in val_pairs]})
    summary.outputs.append(str(_write_summary(summary)))
    return summary
