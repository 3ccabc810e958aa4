"""`nucleaizer-tf style-transfer`: adapt to a new image style without new annotations (nucleAIzer's idea)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import CliReporter, fail_cleanly
from nucleaizer_tf.system import import_tensorflow


@fail_cleanly
def style_transfer(
    images_dir: Path = typer.Argument(..., help="Folder of images of the new style(s) (png, tif, jpg, ...)."),
    out_dir: Path = typer.Argument(..., help="Work and output folder; a re-run resumes the finished stages. The training set is OUT_DIR/train/{images,masks}."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Folder of label images (<stem>.tiff) for the images: presegmentations or annotations."),
    preseg_model: Optional[Path] = typer.Option(None, "--preseg-model", help="Legacy Mask R-CNN weights (mask_rcnn_presegmentation.h5) to presegment the images instead of --masks."),
    mask_db: Optional[Path] = typer.Option(None, "--mask-db", help="Nucleus-shape database: a folder of label images (e.g. the original's mask_db) or a mask_db.npz of an earlier run [the run's own masks]."),
    single_experiment: bool = typer.Option(False, "--single-experiment", help="One style for all images (no clustering) and 1000 synthetic images."),
    images_per_cluster: Optional[int] = typer.Option(None, "--images-per-cluster", min=1, help="Synthetic images per style cluster, doubled for nuclei over 40 px radius [20; 1000 with --single-experiment]."),
    ngf: int = typer.Option(64, "--ngf", min=1, help="pix2pix generator width (64 = original; 8-16 for a quick CPU run)."),
    iterations: int = typer.Option(5000, "--iterations", min=1, help="pix2pix constant-learning-rate iterations per style: 5000 // tiles epochs."),
    decay_epochs: int = typer.Option(100, "--decay-epochs", min=0, help="pix2pix epochs of linear learning-rate decay after those."),
    final_generator: bool = typer.Option(False, "--final-generator", help="Synthesise with the final generator (the original used the one saved at the last multiple of 5000 steps)."),
    eval_mode_synthesis: bool = typer.Option(False, "--eval-mode-synthesis", help="Synthesise with BatchNorm running statistics and no dropout (the original ran the generator in training mode)."),
    sqrt_mask_resize: bool = typer.Option(False, "--sqrt-mask-resize", help="Resize database nuclei to the target AREA (the original used the area ratio as a linear factor)."),
    match_cluster: bool = typer.Option(False, "--match-cluster", help="Synthetic masks with each cluster's own nucleus sizes and nuclei per area (what adapt uses); the original drew Normal(mean area) sizes and as many nuclei as cover the canvas."),
    stretched_simcep: bool = typer.Option(False, "--stretched-simcep", help="Use random shapes stretched and rotated as accepted (the original used them unstretched)."),
    fresh_augmentations: bool = typer.Option(False, "--fresh-augmentations", help="Augment a fresh copy for each output (the original compounded augmentations of images up to 512 px)."),
    augment_copies: int = typer.Option(5, "--augment-copies", min=1, help="Augmented outputs per synthetic image."),
    style_step: int = typer.Option(6, "--style-step", min=1, help="Augment every k-th synthetic image (the original: 6)."),
    include_real: bool = typer.Option(False, "--include-real", help="Also augment the input images with their masks into the training set."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Stem list (one per line): those images go to OUT_DIR/validation and anything derived from them leaves the training set."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (clustering, masks, pix2pix, augmentation)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes, only the summary."),
) -> None:
    """Learn each image style with pix2pix and render synthetic annotated images in it: a training set for a new style, no new annotations needed."""
    from nucleaizer_tf.pipelines.style_transfer import StyleTransferSettings, run_style_transfer

    settings = StyleTransferSettings(
        masks_dir=None if masks is None else str(masks), preseg_model=None if preseg_model is None else str(preseg_model),
        mask_db=None if mask_db is None else str(mask_db), single_experiment=single_experiment,
        images_per_cluster=images_per_cluster, ngf=ngf, iterations=iterations, decay_epochs=decay_epochs,
        final_generator=final_generator, eval_mode_synthesis=eval_mode_synthesis, sqrt_mask_resize=sqrt_mask_resize,
        stretched_simcep=stretched_simcep, match_cluster=match_cluster, fresh_augmentations=fresh_augmentations, augment_copies=augment_copies,
        style_step=style_step, include_real=include_real, validation=None if validation is None else str(validation),
        seed=seed,
    )
    import_tensorflow()
    report = run_style_transfer(images_dir, out_dir, settings, CliReporter(quiet))
    for cluster, members in report.clusters.items():
        p2p = report.pix2pix.get(cluster, {})
        timing = f", {p2p['steps']} pix2pix iterations at {p2p['seconds_per_iteration'] * 1000:.0f} ms" if p2p.get("steps") else ""
        typer.echo(f"{cluster}: {len(members)} image(s){timing}; real vs synthetic: {report.comparisons.get(cluster, '-')}")
    skipped = f" (resumed: {', '.join(report.stages_skipped)} already done)" if report.stages_skipped else ""
    typer.echo(f"wrote {report.n_train} training pairs to {out_dir / 'train'}"
               + (f" and {report.n_validation} validation pairs to {out_dir / 'validation'}" if report.n_validation else "")
               + skipped)
