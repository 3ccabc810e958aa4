"""Training the default model from scratch on an annotated folder with the general recipe, resumably.

Files in, model folder out (`nucleaizer_tf.default_model.general` decides how to train):

* ``WORK/store/``: the training images prepared once (`general.prepared`) in an `ExampleStore`, reused
  by later runs with the same data;
* ``WORK/state/``: the run's state after every epoch (`train_unet`'s `state_dir`): the same command
  with `resume` continues after the last finished epoch;
* ``WORK/validation.jsonl``: one line per validation (epoch, per-group DSB, F1, nuclei);
* ``OUT/``: the best-validation model (`manifest.json` + weights) and `summary.json`, written at the end.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nucleaizer_tf.data import Pair, pair_folders
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.model_folder import prepare_folder
from nucleaizer_tf.progress import SILENT, Reporter

UNGROUPED = "all images"


def read_groups(path: str | os.PathLike) -> dict[str, str]:
    """Stem → group from a CSV with columns ``id`` and ``modality`` (or ``group``), e.g. DSB 2018's classes.csv.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    dict of str to str
        Image stem → group.

    Raises
    ------
    NucleaizerError
        When the file cannot be read or lacks the columns.

    Examples
    --------
    >>> read_groups("../shared/data/dsb2018/classes.csv")["00071198d059ba7f5914a526d124d28e6d010c92466da21d4a04cd5413362552"]  # doctest: +SKIP
    'fluorescence'
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NucleaizerError(f"{path}: cannot read the groups CSV ({exc})") from None
    column = "modality" if rows and "modality" in rows[0] else "group"
    if not rows or "id" not in rows[0] or column not in rows[0]:
        raise NucleaizerError(f"{path}: a groups CSV needs the columns id and modality (or group)")
    for number, row in enumerate(rows, start=2):
        if not row.get("id") or not row.get(column):
            raise NucleaizerError(f"{path}: line {number} has no id or no {column}")
    return {row["id"]: row[column] for row in rows}


def read_examples(pairs: Sequence[Pair], groups: dict[str, str], prepare: Callable | None = None):
    """Yield (stem, group, image, labels) for each pair, read with `read_pair` (image as stored).

    Parameters
    ----------
    pairs : sequence of Pair
        The image / mask pairs.
    groups : dict of str to str
        Stem → group (`read_groups`); stems not in it get the group ``"all images"``.
    prepare : callable, optional
        ``prepare(image, labels) -> (image, labels)`` applied to each pair (e.g. `general.prepared`).

    Yields
    ------
    tuple
        ``(stem, group, image, labels)``, one pair at a time.

    Examples
    --------
    >>> examples = list(read_examples(pairs, read_groups("classes.csv")))  # doctest: +SKIP
    """
    from nucleaizer_tf.data import read_pair

    for pair in pairs:
        image, labels = read_pair(pair)
        if prepare is not None:
            image, labels = prepare(image, labels)
        yield pair.stem, groups.get(pair.stem, UNGROUPED), image, labels


SYNTHETIC = "synthetic"


def _open_store(folder: Path, pairs: Sequence[Pair], groups: dict[str, str], synthetic: int = 0,
                reporter: Reporter = SILENT):
    """The `ExampleStore` of `pairs` (+ `synthetic` generated images) in `folder`: reused when it holds
    exactly these examples, else (re)built."""
    import shutil

    from nucleaizer_tf.default_model.general import prepared
    from nucleaizer_tf.default_model.recipe import synthetic_items
    from nucleaizer_tf.io.example_store import ExampleStore, write_example_store

    stems = [p.stem for p in pairs] + [f"{SYNTHETIC}-{i}" for i in range(synthetic)]
    wanted_groups = [groups.get(p.stem, UNGROUPED) for p in pairs] + [SYNTHETIC] * synthetic
    if folder.is_dir():
        try:
            store = ExampleStore(folder)
            if store.names() == stems and store.groups() == wanted_groups:
                return store
        except NucleaizerError:
            pass
        shutil.rmtree(folder)
    with reporter.stage("preparing the training images", len(pairs) + synthetic) as advance:
        def ticking():
            for example in read_examples(pairs, groups, prepared):
                yield example
                advance(example[0])
            for i, (image, labels) in enumerate(synthetic_items(synthetic, seed=1)):
                yield f"{SYNTHETIC}-{i}", SYNTHETIC, image, labels
                advance(f"{SYNTHETIC}-{i}")

        return write_example_store(folder, ticking(), info={"prepared": "nucleaizer_tf.default_model.general.prepared"})


def train_general_folders(
    images_dir, masks_dir, out_dir, *,
    validation: str | os.PathLike,
    groups: str | os.PathLike | dict[str, str] | None = None,
    work_dir: str | os.PathLike | None = None,
    store_dir: str | os.PathLike | None = None,
    recipe=None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    validate_every: int = 2,
    seed: int = 0,
    resume: bool = False,
    reporter: Reporter = SILENT,
    on_epoch: Callable | None = None,
    on_validation: Callable[[int, list[dict]], None] | None = None,
):
    """Train the default model from random weights with the general recipe; write the best model to `out_dir`.

    Two stages, both resumable from `work_dir` and both selected on the validation images: the main
    one (`epochs`), then the recipe's closing stage (`GeneralRecipe.polished`, `polish_epochs`) from the
    main stage's best weights, kept only where it scores higher. Every validation is appended to
    ``work_dir/validation.jsonl`` with its stage (``"main"`` or ``"polish"``).

    Parameters
    ----------
    images_dir, masks_dir : str or os.PathLike
        The annotated images and their label masks (paired by stem).
    out_dir : str or os.PathLike
        The model folder written at the end (what `predict --model` reads); one holding a model is refused.
    validation : str, os.PathLike or float
        The validation images, as `nucleaizer_tf.pipelines.train.resolve_validation` takes them (a
        stem-list file such as DSB 2018's validation.txt, a folder, a fraction): they are segmented
        whole to choose the best epoch.
    groups : str, os.PathLike or dict, optional
        A CSV (``id``, ``modality``) or a stem → group mapping: rarer groups are sampled more often and
        validation is reported per group. None: one group.
    work_dir : str or os.PathLike, optional
        The prepared images and the resumable state (default ``<out_dir>.training`` beside `out_dir`).
    store_dir : str or os.PathLike, optional
        Where the prepared training images are kept (default ``work_dir/store``); runs on the same
        images may share one.
    recipe : GeneralRecipe, optional
        The recipe's choices (default: the shipped model's, `general.GeneralRecipe()`).
    epochs, steps_per_epoch, validate_every, seed
        As `nucleaizer_tf.default_model.general.train_general_model` (the main stage's length: by
        default the recipe's; the closing stage runs `recipe.polish_epochs` of `steps_per_epoch`).
    resume : bool, optional
        Continue the run whose state is in `work_dir` after its last finished epoch (default False: a
        `work_dir` holding a run's state is refused, so a run is never continued by accident).
    reporter : Reporter, optional
        Progress: preparing the images, then one step per batch.
    on_epoch : callable, optional
        Called with every finished `EpochRecord`.
    on_validation : callable, optional
        Called with (epoch, rows of `validation.score_rows`) after every validation.

    Returns
    -------
    RunSummary
        What ``out_dir/summary.json`` holds.

    Examples
    --------
    >>> summary = train_general_folders("dsb2018/images", "dsb2018/masks", "model",  # doctest: +SKIP
    ...                                 validation="dsb2018/validation.txt", groups="dsb2018/classes.csv")
    """
    from nucleaizer_tf.default_model.general import GeneralRecipe, manifest_for, train_general_model
    from nucleaizer_tf.default_model.validation import score_rows
    from nucleaizer_tf.pipelines.train import RunSummary, _write_summary, resolve_validation

    start = time.perf_counter()
    recipe = recipe if recipe is not None else GeneralRecipe()
    out_dir = Path(out_dir)
    prepare_folder(out_dir)  # refuse an existing model before the work
    work_dir = Path(work_dir) if work_dir is not None else out_dir.parent / f"{out_dir.name}.training"
    if (work_dir / "state" / "history.json").is_file() and not resume:
        raise NucleaizerError(f"{work_dir} holds the state of an earlier run: --resume continues it, "
                              f"another --work starts a new one")
    pairs = pair_folders(images_dir, masks_dir)
    train_pairs, val_pairs = resolve_validation(pairs, validation, seed=seed)
    if not train_pairs or not val_pairs:
        raise NucleaizerError("training from scratch needs validation images (--val) and training images left besides them")
    group_of = (groups if isinstance(groups, dict) else read_groups(groups)) if groups is not None else {}
    work_dir.mkdir(parents=True, exist_ok=True)
    store = _open_store(Path(store_dir) if store_dir is not None else work_dir / "store", train_pairs, group_of,
                        recipe.synthetic, reporter)
    val_examples = list(read_examples(val_pairs, group_of))
    log = work_dir / "validation.jsonl"

    def validating(stage):
        def validated(epoch, scores):
            rows = score_rows(scores)
            with open(log, "a") as f:
                f.write(json.dumps({"stage": stage, "epoch": epoch, "groups": rows}) + "\n")
            if on_validation is not None:
                on_validation(epoch, rows)
        return validated

    def rows_of(stage, epoch):  # the last validation of that epoch (an interrupted run may have logged one before)
        logged = [json.loads(line) for line in log.read_text().splitlines()]
        return next((b["groups"] for b in reversed(logged) if b.get("stage", "main") == stage and b["epoch"] == epoch),
                    [])

    run = dict(steps_per_epoch=steps_per_epoch, validate_every=validate_every, reporter=reporter, on_epoch=on_epoch)
    model, history, config = train_general_model(store, val_examples, recipe=recipe, epochs=epochs, seed=seed,
                                                 state_dir=work_dir / "state", on_validation=validating("main"),
                                                 **run)
    kept_rows, polish = rows_of("main", history.best_epoch), None
    if recipe.polish_epochs:
        polished, polish_history, polish_config = train_general_model(
            store, val_examples, recipe=recipe.polished(), epochs=recipe.polish_epochs, seed=seed + 1, init=model,
            state_dir=work_dir / f"polish_after_epoch_{len(history.epochs)}", on_validation=validating("polish"), **run)
        kept = polish_history.best_value is not None and polish_history.best_value > history.best_value
        polish = (polish_config, polish_history, kept)
        if kept:
            model, kept_rows = polished, rows_of("polish", polish_history.best_epoch)
    data = {"images": str(images_dir), "masks": str(masks_dir), "train_ids": store.names(),
            "validation_ids": [p.stem for p in val_pairs], "train_groups": dict(Counter(store.groups()))}
    manifest = manifest_for(model.manifest, recipe=recipe, config=config, history=history, data=data,
                            validation=kept_rows, polish=polish)
    model.manifest = manifest
    model.save(out_dir, overwrite=True)
    summary = RunSummary(kind="default", out_dir=str(out_dir), n_train=len(store), n_val=len(val_pairs),
                         epochs=[e.to_dict() for e in history.epochs], best_epoch=history.best_epoch,
                         best_val=polish[1].best_value if polish and polish[2] else history.best_value,
                         val_metric=history.monitor,
                         resumed_from=history.resumed_from, seconds=time.perf_counter() - start,
                         seconds_per_step=float(np.median([e.seconds_per_step for e in history.epochs])),
                         outputs=[str(out_dir / "manifest.json")],
                         settings={"recipe": recipe.to_dict(), "config": config.to_dict(), "work_dir": str(work_dir),
                                   "polish": None if polish is None else {
                                       "epochs": [e.to_dict() for e in polish[1].epochs],
                                       "best_epoch": polish[1].best_epoch, "best_val": polish[1].best_value,
                                       "kept": polish[2]}})
    summary.outputs.append(str(_write_summary(summary)))
    return summary
