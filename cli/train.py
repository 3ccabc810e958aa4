"""`nucleaizer-tf train ...`: Mask R-CNN, one U-Net member, or the U-Net ensemble. No logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import CliReporter, fail_cleanly, new_app
from nucleaizer_tf.system import import_tensorflow

train_app = new_app("train", "Train the default model, the legacy Mask R-CNN, a U-Net member or the 7-member U-Net ensemble from image/mask folders.")

_VAL_HELP = ("Validation: a stem-list file (one stem per line, like the original's validation.txt), a folder with "
             "images/ and masks/, a fraction such as 0.2, or 'none'.")


def _validation(value: Optional[str]):
    if value is None:
        return None
    return "" if value.strip().lower() == "none" else value


_IMAGES = typer.Argument(..., help="Folder of training images.")
_MASKS = typer.Argument(..., help="Folder of label masks (same stems; 0 = background).")
_EXTRA = typer.Option(None, "--extra-data", help="A folder with images/ and masks/ added to the training set, e.g. style-transfer's OUT/train (repeatable).")
_QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the summary line.")


def _finish(summary, quiet: bool) -> None:
    lines = summary.lines()
    for line in (lines if not quiet else lines[:1] + [x for x in lines if x.startswith("best")]):
        typer.echo(line)


@train_app.command("maskrcnn")
@fail_cleanly
def maskrcnn(
    images: Path = _IMAGES,
    masks: Path = _MASKS,
    out: Path = typer.Option(..., "--out", help="Output folder: per-epoch checkpoints, mask_rcnn_trained.h5, summary.json."),
    init: Optional[str] = typer.Option(None, "--init", help="Initial legacy .h5 (COCO or nucleAIzer), or 'scratch'. Default: the JSON's input_model, else scratch."),
    config: Optional[Path] = typer.Option(None, "--config", help="A train.json (original format). Default: the shipped one (all/5+/heads, 1 epoch each)."),
    blank_heads: Optional[bool] = typer.Option(None, "--blank-heads/--keep-heads", help="Drop / keep the class-specific heads of --init (default: the JSON's blank_mrcnn, true when starting from COCO)."),
    val: Optional[str] = typer.Option(None, "--val", help=_VAL_HELP + " Default: the JSON's split (the shipped one validates on one training image)."),
    extra_data: Optional[list[Path]] = _EXTRA,
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Network size D (multiple of 64); default the JSON's image_size (1024)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps per epoch (default: number of training images x step_ratio)."),
    rois: Optional[int] = typer.Option(None, "--rois", help="ROIs per image for the heads (recipe: 512); fewer is faster on a CPU."),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last checkpoint in --out."),
    early_stopping: Optional[int] = typer.Option(None, "--early-stopping", help="Stop after N validated epochs without a better DSB score."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order, flips and sampling."),
    quiet: bool = _QUIET,
) -> None:
    """Mask R-CNN training with nucleAIzer's recipe (matterport 53afbae; FinalModel/train.py + train.json)."""
    import_tensorflow()
    from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
    from nucleaizer_tf.pipelines.train import train_maskrcnn_folders

    base = MaskRCNNConfig() if rois is None else MaskRCNNConfig(TRAIN_ROIS_PER_IMAGE=int(rois))
    summary = train_maskrcnn_folders(
        images, masks, out, init=init, blank_heads=blank_heads, config_json=config, validation=_validation(val),
        extra_data=extra_data or (), image_size=image_size, steps_per_epoch=steps, resume=resume,
        early_stopping=early_stopping, seed=seed, config=base, reporter=CliReporter(quiet))
    _finish(summary, quiet)


def _unet_options(images, masks, out, val, extra_data, epochs, batch, crop, lr, lr_schedule, early_stopping, steps,
                  seed, base_filters, val_dsb, resume):
    return dict(images_dir=images, masks_dir=masks, out_dir=out, validation=_validation(val),
                extra_data=extra_data or (), epochs=epochs,
                batch_size=batch, crop_size=crop, learning_rate=lr, lr_schedule=lr_schedule,
                early_stopping=early_stopping, steps_per_epoch=steps, seed=seed,
                arch=None if base_filters is None else {"base_filters": int(base_filters)}, val_dsb=val_dsb,
                resume=resume)


_EPOCHS = typer.Option(100, "--epochs", help="Epochs (original: 100).")
_BATCH = typer.Option(12, "--batch", help="Batch size (original: 12).")
_CROP = typer.Option(256, "--crop", help="Random crop size (original: 256).")
_LR = typer.Option(1e-3, "--lr", help="Adam learning rate (original: 1e-3).")
_SCHEDULE = typer.Option(False, "--lr-schedule", help="x0.1 at epochs 50/70/90 (the original's intent; it actually kept 1e-3, quirk Q7).")
_EARLY = typer.Option(None, "--early-stopping", help="Stop after N epochs without a better validation loss.")
_STEPS = typer.Option(None, "--steps", help="Batches per epoch (default: one pass, one random crop per image).")
_SEED = typer.Option(0, "--seed", help="Seed of initialisation, crops, flips and jitter.")
_FILTERS = typer.Option(None, "--base-filters", help="Width of the first level (original: 64); smaller for quick trials.")
_VALDSB = typer.Option(True, "--val-dsb/--no-val-dsb", help="Also score the validation images (DSB of the 0.5-thresholded map) each epoch.")
_RESUME = typer.Option(False, "--resume", help="Keep the members already in --out and train the rest.")


@train_app.command("unet")
@fail_cleanly
def unet(
    images: Path = _IMAGES,
    masks: Path = _MASKS,
    out: Path = typer.Option(..., "--out", help="Output folder (a one-member ensemble: manifest.json + weights)."),
    sigma: float = typer.Option(0.0, "--sigma", help="Gaussian sigma of the soft target (original members: 0, 0.5, 1, 2)."),
    name: Optional[str] = typer.Option(None, "--name", help="Member name (default UNet_sigma<sigma>_1)."),
    val: Optional[str] = typer.Option(None, "--val", help=_VAL_HELP),
    extra_data: Optional[list[Path]] = _EXTRA,
    epochs: int = _EPOCHS, batch: int = _BATCH, crop: int = _CROP, lr: float = _LR, lr_schedule: bool = _SCHEDULE,
    early_stopping: Optional[int] = _EARLY, steps: Optional[int] = _STEPS, seed: int = _SEED,
    base_filters: Optional[int] = _FILTERS, val_dsb: bool = _VALDSB, resume: bool = _RESUME, quiet: bool = _QUIET,
) -> None:
    """One U-Net member (docs/method.md §6.10): soft 20/235 targets, soft-Jaccard loss, Adam, best-validation weights."""
    import_tensorflow()
    from nucleaizer_tf.pipelines.train import train_unet_folders

    options = _unet_options(images, masks, out, val, extra_data, epochs, batch, crop, lr, lr_schedule,
                            early_stopping, steps, seed, base_filters, val_dsb, resume)
    summary = train_unet_folders(sigma=sigma, name=name, reporter=CliReporter(quiet), **options)
    _finish(summary, quiet)


@train_app.command("ensemble")
@fail_cleanly
def ensemble(
    images: Path = _IMAGES,
    masks: Path = _MASKS,
    out: Path = typer.Option(..., "--out", help="Ensemble folder (manifest.json + one weight file per member) for the full pipeline."),
    sigmas: str = typer.Option("0,0,0.5,0.5,0.5,1,2", "--sigmas", help="Comma-separated member sigmas (original: 0,0,0.5,0.5,0.5,1,2)."),
    val: Optional[str] = typer.Option(None, "--val", help=_VAL_HELP),
    extra_data: Optional[list[Path]] = _EXTRA,
    epochs: int = _EPOCHS, batch: int = _BATCH, crop: int = _CROP, lr: float = _LR, lr_schedule: bool = _SCHEDULE,
    early_stopping: Optional[int] = _EARLY, steps: Optional[int] = _STEPS, seed: int = _SEED,
    base_filters: Optional[int] = _FILTERS, val_dsb: bool = _VALDSB, resume: bool = _RESUME, quiet: bool = _QUIET,
) -> None:
    """The U-Net ensemble: one member per sigma, trained in turn into one folder."""
    try:
        values = [float(s) for s in sigmas.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sigmas must be comma-separated numbers, got {sigmas!r}") from None
    if not values or min(values) < 0:
        raise ValueError(f"--sigmas needs at least one sigma >= 0, got {sigmas!r}")
    import_tensorflow()
    from nucleaizer_tf.pipelines.train import train_ensemble_folders

    options = _unet_options(images, masks, out, val, extra_data, epochs, batch, crop, lr, lr_schedule,
                            early_stopping, steps, seed, base_filters, val_dsb, resume)
    summary = train_ensemble_folders(sigmas=values, reporter=CliReporter(quiet), **options)
    _finish(summary, quiet)


@train_app.command("default")
@fail_cleanly
def default(
    images: Path = _IMAGES,
    masks: Path = _MASKS,
    out: Path = typer.Option(..., "--out", help="Model folder to write (manifest.json + weights): predict --model and load_model read it."),
    init: str = typer.Option("shipped", "--init", help="'shipped' (fine-tune the shipped model), a model folder (fine-tune it, e.g. adapt's OUT/model), or 'scratch' (the shipped model's recipe from random weights; needs --val; resumable)."),
    val: Optional[str] = typer.Option(None, "--val", help=_VAL_HELP + " From scratch these images are segmented whole to pick the best epoch."),
    extra_data: Optional[list[Path]] = _EXTRA,
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs [fine-tuning 10; scratch 32, then --polish-epochs]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Batches per epoch [fine-tuning 20; scratch 200]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate [fine-tuning 3e-4; scratch 1e-3]."),
    groups: Optional[Path] = typer.Option(None, "--groups", help="Scratch: CSV with columns id, modality (e.g. DSB 2018's classes.csv): rarer modalities are drawn more often, validation is reported per modality."),
    work: Optional[Path] = typer.Option(None, "--work", help="Scratch: folder for the prepared images and the state after every epoch [OUT.training]."),
    resume: bool = typer.Option(False, "--resume", help="Scratch: continue the run saved in --work after its last finished epoch."),
    polish_epochs: Optional[int] = typer.Option(None, "--polish-epochs", help="Scratch: closing epochs at 1e-4 without the stain, grey, inversion, blur and noise augmentations, kept where validation scores them higher [6; 0 = none]."),
    seed: int = _SEED,
    quiet: bool = _QUIET,
) -> None:
    """The shipped default model, fine-tuned (or retrained) on annotated images: the supervised counterpart of adapt."""
    import_tensorflow()
    from nucleaizer_tf.pipelines.train import train_default_folders

    summary = train_default_folders(images, masks, out, init=init, validation=_validation(val),
                                    extra_data=extra_data or (), epochs=epochs, steps_per_epoch=steps,
                                    learning_rate=lr, seed=seed, groups=groups, work_dir=work, resume=resume,
                                    polish_epochs=polish_epochs, reporter=CliReporter(quiet))
    _finish(summary, quiet)
